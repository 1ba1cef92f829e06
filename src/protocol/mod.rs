//! The seam between the scheduler and the wire protocols.
//!
//! A protocol is a [`Connector`] that opens a [`Session`] to one computer. A session runs
//! queries one at a time on its one connection and yields instances page by page, so the
//! scheduler can stream them to the sinks without holding a whole result set.

pub mod dcom;
pub mod local;
pub mod wbem;
pub mod wsman;
pub mod ntlm;

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use secrecy::SecretString;
use serde::Serialize;

use crate::cim::Instance;
use crate::wql;

/// What went wrong, in a small taxonomy shared by every protocol and the run report.
///
/// The categories are what a user acts on (fix a password, open a firewall, fix a query),
/// so they are few and stable; protocol detail goes into [`Error::code`] and the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The server refused the operation for this account (authenticated, not authorized).
    AccessDenied,
    /// Authentication failed: bad credentials, or no common mechanism.
    AuthFailed,
    /// The class does not exist in the namespace.
    InvalidClass,
    /// The namespace does not exist.
    InvalidNamespace,
    /// The query or filter was rejected.
    InvalidQuery,
    /// The instance (WS-Transfer Get) or resource does not exist.
    NotFound,
    /// The operation or the task ran out of time.
    TimedOut,
    /// The server's per-user quota was exceeded (too many concurrent operations).
    QuotaExceeded,
    /// The response would exceed MaxEnvelopeSize.
    EnvelopeTooLarge,
    /// The server no longer knows the enumeration context.
    InvalidEnumerationContext,
    /// No connection could be made (refused, no route, DNS).
    Unreachable,
    /// An established connection broke (reset, closed mid-response).
    ConnectionFailed,
    /// The TLS handshake or certificate check failed.
    TlsFailure,
    /// The peer sent something that is not the protocol (garbage, bad framing, bad signature).
    ProtocolError,
    /// A server fault that fits no other category.
    ServerFault,
    /// The job asked for something this protocol or build does not do.
    Unsupported,
    /// The run was interrupted before the task finished.
    Cancelled,
    /// Writing the output failed.
    OutputError,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 18] = [
        Category::AccessDenied,
        Category::AuthFailed,
        Category::InvalidClass,
        Category::InvalidNamespace,
        Category::InvalidQuery,
        Category::NotFound,
        Category::TimedOut,
        Category::QuotaExceeded,
        Category::EnvelopeTooLarge,
        Category::InvalidEnumerationContext,
        Category::Unreachable,
        Category::ConnectionFailed,
        Category::TlsFailure,
        Category::ProtocolError,
        Category::ServerFault,
        Category::Unsupported,
        Category::Cancelled,
        Category::OutputError,
    ];

    /// Whether trying again later may succeed (the scheduler retries only these).
    pub fn is_retryable(self) -> bool {
        matches!(self, Category::TimedOut | Category::QuotaExceeded | Category::ConnectionFailed)
    }

    /// The snake_case name used in the run report and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::AccessDenied => "access_denied",
            Category::AuthFailed => "auth_failed",
            Category::InvalidClass => "invalid_class",
            Category::InvalidNamespace => "invalid_namespace",
            Category::InvalidQuery => "invalid_query",
            Category::NotFound => "not_found",
            Category::TimedOut => "timed_out",
            Category::QuotaExceeded => "quota_exceeded",
            Category::EnvelopeTooLarge => "envelope_too_large",
            Category::InvalidEnumerationContext => "invalid_enumeration_context",
            Category::Unreachable => "unreachable",
            Category::ConnectionFailed => "connection_failed",
            Category::TlsFailure => "tls_failure",
            Category::ProtocolError => "protocol_error",
            Category::ServerFault => "server_fault",
            Category::Unsupported => "unsupported",
            Category::Cancelled => "cancelled",
            Category::OutputError => "output_error",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed protocol operation: a category to act on, the protocol's own code, and a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{category}: {message}")]
pub struct Error {
    pub category: Category,
    /// The protocol's code (a WS-Man fault code, an HRESULT, an HTTP status…), when there is one.
    pub code: Option<String>,
    pub message: String,
}

impl Error {
    /// A new error with no protocol code.
    pub fn new(category: Category, message: impl Into<String>) -> Error {
        Error { category, code: None, message: message.into() }
    }

    /// Attaches the protocol's own code.
    pub fn with_code(mut self, code: impl Into<String>) -> Error {
        self.code = Some(code.into());
        self
    }
}

/// Which wire protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolKind {
    WsMan,
    Dcom,
    Local,
}

impl fmt::Display for ProtocolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolKind::WsMan => "wsman",
            ProtocolKind::Dcom => "dcom",
            ProtocolKind::Local => "local",
        })
    }
}

/// Authentication mechanism, as `-Authentication` of New-CimSession names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AuthMechanism {
    /// Negotiate over HTTP, as PowerShell's default does.
    #[default]
    Default,
    Basic,
    Negotiate,
    Ntlm,
    Kerberos,
    Digest,
    CredSsp,
}

/// A username and password, resolved from the job's credential source.
#[derive(Clone)]
pub struct Credential {
    /// `DOMAIN\user`, `user@domain` or a local user name.
    pub username: String,
    pub password: SecretString,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// WS-Man specific connection settings (the WSMan parameter set of New-CimSessionOption).
#[derive(Debug, Clone, PartialEq)]
pub struct WsManSettings {
    pub use_ssl: bool,
    pub skip_ca_check: bool,
    pub skip_cn_check: bool,
    pub skip_revocation_check: bool,
    /// Basic or unencrypted Negotiate over plain HTTP; refused unless set.
    pub allow_unencrypted: bool,
    /// Send bodies without message encryption (PowerShell's -NoEncryption).
    pub no_encryption: bool,
    /// URL path of the listener, `/wsman` by default.
    pub http_prefix: String,
    pub max_envelope_size_kb: u32,
    /// `none`, `env` or a proxy URL.
    pub proxy: Option<String>,
    /// Locale sent as wsman:Locale.
    pub culture: Option<String>,
    /// Locale sent as wsmv:DataLocale.
    pub ui_culture: Option<String>,
    /// Use DMTF resource URIs (`…/wscim/1/cim-schema/2/<Class>`) with a `__cimnamespace` selector, as OMI expects.
    pub dmtf_resource_uris: bool,
    /// SPN service class for Kerberos (`HTTP` by default).
    pub spn_service: Option<String>,
    pub encode_port_in_spn: bool,
    /// Send NTLM's last handshake leg with the first sealed request rather than on an empty POST.
    pub auth_with_first_request: bool,
    /// SHA-1 or SHA-256 thumbprint (hex) the server certificate must match.
    pub certificate_thumbprint: Option<String>,
    /// PEM file of CA certificates to trust instead of the system roots.
    pub ca_bundle: Option<std::path::PathBuf>,
    /// PEM file of the client certificate (and any intermediates) that authenticates the
    /// session over HTTPS instead of a user name and password.
    pub client_certificate: Option<std::path::PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<std::path::PathBuf>,
}

impl WsManSettings {
    /// WinRM's listener port when the job names none: 5986 for HTTPS, 5985 for HTTP.
    pub fn default_port(&self) -> u16 {
        if self.use_ssl { 5986 } else { 5985 }
    }
}

impl Default for WsManSettings {
    fn default() -> Self {
        WsManSettings {
            use_ssl: false,
            skip_ca_check: false,
            skip_cn_check: false,
            skip_revocation_check: false,
            allow_unencrypted: false,
            no_encryption: false,
            http_prefix: "/wsman".into(),
            max_envelope_size_kb: 512,
            proxy: None,
            culture: None,
            ui_culture: None,
            dmtf_resource_uris: false,
            spn_service: None,
            encode_port_in_spn: false,
            auth_with_first_request: true,
            certificate_thumbprint: None,
            ca_bundle: None,
            client_certificate: None,
            client_key: None,
        }
    }
}

/// DCOM specific settings (the Dcom parameter set of New-CimSessionOption).
#[derive(Debug, Clone, PartialEq)]
pub struct DcomSettings {
    /// `default`, `identify`, `impersonate` or `delegate`.
    pub impersonation: String,
    pub packet_privacy: bool,
    pub packet_integrity: bool,
}

impl Default for DcomSettings {
    fn default() -> Self {
        DcomSettings { impersonation: "impersonate".into(), packet_privacy: true, packet_integrity: true }
    }
}

/// Everything needed to open a session to one computer, resolved from the job.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host name or address; `None` is the local machine.
    pub computer: Option<String>,
    pub protocol: ProtocolKind,
    /// Port, when the job sets one (otherwise the protocol's default).
    pub port: Option<u16>,
    pub authentication: AuthMechanism,
    pub credential: Option<Credential>,
    pub connect_timeout: Duration,
    /// Sent to the server as the operation timeout; the HTTP read timeout is a margin above it.
    pub operation_timeout: Duration,
    pub wsman: WsManSettings,
    pub dcom: DcomSettings,
}

impl Endpoint {
    /// An endpoint for the local machine with default settings.
    pub fn local() -> Endpoint {
        Endpoint {
            computer: None,
            protocol: ProtocolKind::Local,
            port: None,
            authentication: AuthMechanism::Default,
            credential: None,
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(60),
            wsman: WsManSettings::default(),
            dcom: DcomSettings::default(),
        }
    }
}

/// `root\cimv2`, `/root//StandardCimv2/` → `root/cimv2`, `root/StandardCimv2`: the form every
/// protocol names a namespace in (a URI path for WS-Man); empty means `root/cimv2`.
pub fn normalize_namespace(ns: &str) -> String {
    let parts: Vec<&str> = ns.split(['/', '\\']).filter(|s| !s.is_empty()).collect();
    if parts.is_empty() { "root/cimv2".to_string() } else { parts.join("/") }
}

/// One query as a protocol needs it, resolved from the job.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    /// The query's name in the job (for logs and outputs).
    pub name: String,
    /// CIM namespace with `/` separators (`root/cimv2`).
    pub namespace: String,
    /// The parsed query: class, properties (empty = all) and WHERE filter.
    pub wql: wql::Query,
    /// Whether the job gave WQL text or a filter, so the server must filter (WS-Man sends the
    /// WQL dialect). A plain class enumeration sends no filter.
    pub needs_filter: bool,
    /// An explicit resource URI that overrides the one derived from namespace and class.
    pub resource_uri: Option<String>,
    /// Enumerate endpoint references only (EnumerationMode EnumerateEPR).
    pub key_only: bool,
    /// Properties to treat as arrays even when a single element arrives.
    pub arrays: Vec<String>,
}

impl QuerySpec {
    /// A plain `SELECT * FROM class` in `root/cimv2`.
    pub fn class(class: &str) -> QuerySpec {
        QuerySpec {
            name: class.to_string(),
            namespace: "root/cimv2".into(),
            wql: wql::Query { properties: Vec::new(), class: class.to_string(), filter: None },
            needs_filter: false,
            resource_uri: None,
            key_only: false,
            arrays: Vec::new(),
        }
    }

    /// The class being queried.
    pub fn class_name(&self) -> &str {
        &self.wql.class
    }
}

/// A page of instances: what one round trip (or one local read) produced.
pub type Page = Vec<Instance>;

/// Opens sessions for one protocol.
pub trait Connector: Send + Sync {
    /// Opens a session (connect, authenticate). Called when the session's first query starts.
    fn open<'a>(&'a self, endpoint: &'a Endpoint) -> BoxFuture<'a, Result<Box<dyn Session>, Error>>;
}

/// An open session to one computer.
pub trait Session: Send {
    /// Runs one query and yields its instances page by page. The stream ends after the last
    /// page or the first error. Dropping the stream early abandons the query; the session
    /// cleans up (e.g. WS-Man Release) on its next operation or on close.
    fn enumerate<'a>(&'a mut self, query: &'a QuerySpec) -> BoxStream<'a, Result<Page, Error>>;

    /// Closes the session and frees its server-side resources. Always called, even after errors.
    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), Error>>;
}
