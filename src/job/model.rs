//! The job file's types. Their doc comments are the job-file reference: they become the
//! JSON Schema's descriptions (`cimrun schema`, `schemas/job.schema.json`) and the README's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A cimrun job: which computers to ask, what to ask them, and where to write the answers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Job file format version. Always `1`.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Named option sets (the `New-CimSessionOption` equivalent); a session refers to one by name.
    #[serde(default)]
    pub options: BTreeMap<String, OptionSet>,
    /// Named credentials; a session refers to one by name. Passwords are never logged.
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialSpec>,
    /// Groups of computers sharing a credential and options (the `New-CimSession` equivalent).
    pub sessions: Vec<SessionSpec>,
    /// What to ask every computer (the `Get-CimInstance` equivalent).
    pub queries: Vec<QueryDef>,
    /// Where instances are written. Without sinks, each query is written as `{{query}}.csv`.
    #[serde(default)]
    pub sinks: Vec<SinkSpec>,
    /// Scheduler settings: concurrency, deadlines, retries, failure policy.
    #[serde(default)]
    pub run: RunSettings,
}

/// The protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// WS-Management (WinRM), on 5985 (HTTP) or 5986 (HTTPS).
    #[default]
    Wsman,
    /// DCOM (MS-WMI over DCE/RPC), on 135 and a dynamic port.
    Dcom,
}

/// How WS-Man resource URIs are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourceUriScheme {
    /// `http://schemas.microsoft.com/wbem/wsman/1/wmi/<namespace>/<Class>`, as Windows expects.
    #[default]
    Wmi,
    /// `http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/<Class>` with a `__cimnamespace`
    /// selector, as OMI (the Linux CIM server) expects.
    Dmtf,
}

/// DCOM impersonation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Impersonation {
    /// The DCOM default level of the client.
    Default,
    /// The server may identify the caller but not act as it.
    Identify,
    /// The server may act as the caller on its own machine (PowerShell's default).
    #[default]
    Impersonate,
    /// The server may act as the caller on other machines too.
    Delegate,
}

/// A named set of session options, like `New-CimSessionOption`. WS-Man options and DCOM
/// options are separate parameter sets: using one of the other protocol's is an error.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionSet {
    /// `wsman` (default) or `dcom`.
    #[serde(default)]
    pub protocol: Protocol,

    // --- WS-Man only ---
    /// WS-Man: use HTTPS (port 5986 by default).
    pub use_ssl: Option<bool>,
    /// WS-Man: accept a certificate not issued by a trusted CA. Logged as a warning.
    pub skip_ca_check: Option<bool>,
    /// WS-Man: accept a certificate whose name does not match the computer. Logged as a warning.
    pub skip_cn_check: Option<bool>,
    /// WS-Man: do not check certificate revocation. Accepted for compatibility with
    /// `New-CimSessionOption`, but it changes nothing: cimrun fetches no CRL and no OCSP
    /// response, so revocation is never checked, with or without this option.
    pub skip_revocation_check: Option<bool>,
    /// WS-Man: allow Basic authentication, or unencrypted bodies, over plain HTTP.
    pub allow_unencrypted: Option<bool>,
    /// WS-Man: send bodies without message encryption (needs `allow_unencrypted` over HTTP).
    pub no_encryption: Option<bool>,
    /// WS-Man: the listener's URL path (default `/wsman`).
    pub http_prefix: Option<String>,
    /// WS-Man: largest response envelope to ask for, in KiB (default 512).
    pub max_envelope_size_kb: Option<u32>,
    /// WS-Man: `none`, `env` (HTTP(S)_PROXY variables) or a proxy URL (HTTP CONNECT).
    pub proxy: Option<String>,
    /// WS-Man: how resource URIs are formed: `wmi` (Windows, default) or `dmtf` (OMI).
    pub resource_uri_scheme: Option<ResourceUriScheme>,
    /// WS-Man: SPN service class for Kerberos (`HTTP` by default; `host` or `WSMAN` on some hosts).
    pub spn_service: Option<String>,
    /// WS-Man: add the port to the Kerberos SPN (`HTTP/host:5985`).
    pub encode_port_in_spn: Option<bool>,
    /// WS-Man: send NTLM's last handshake leg with the first sealed request, as Windows' own
    /// client does (default true; one round trip fewer per connection). `false` sends it on an
    /// empty POST first, for servers that answer the combination with 401 (OMI before 2018).
    pub auth_with_first_request: Option<bool>,
    /// WS-Man: the server certificate's SHA-1 or SHA-256 thumbprint (hex), pinned.
    pub certificate_thumbprint: Option<String>,
    /// WS-Man: a PEM file (relative to the job file) of CA certificates to trust instead of
    /// the system roots.
    pub ca_bundle: Option<PathBuf>,
    /// WS-Man: a PEM file (relative to the job file) with a client certificate (and any
    /// intermediates) that authenticates the session over HTTPS, as WinRM's certificate
    /// authentication does; needs `use_ssl: true` and `client_key`. The session needs no
    /// credential, and its `authentication` must be left at `default`.
    pub client_certificate: Option<PathBuf>,
    /// WS-Man: a PEM file (relative to the job file) with the private key of
    /// `client_certificate` (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,

    // --- DCOM only ---
    /// DCOM: impersonation level (default `impersonate`).
    pub impersonation: Option<Impersonation>,
    /// DCOM: encrypt every packet (default true, as PowerShell does).
    pub packet_privacy: Option<bool>,
    /// DCOM: sign every packet (default true).
    pub packet_integrity: Option<bool>,

    // --- both ---
    /// Locale for the server's messages (WS-Man `Locale`), e.g. `en-US`.
    pub culture: Option<String>,
    /// Locale for the server's data (WS-Man `DataLocale`), e.g. `en-US`.
    pub ui_culture: Option<String>,
}

/// Where a password comes from. A plain string is accepted only with `allow_inline_password`.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum PasswordSource {
    /// `{ env: NAME }`: an environment variable.
    Env {
        /// Name of the environment variable holding the password.
        env: String,
    },
    /// `{ file: path }`: the first line of a file (relative to the job file); a warning is
    /// logged when the file is readable by group or others.
    File {
        /// Path of the file holding the password.
        file: PathBuf,
    },
    /// `{ command: [argv...] }`: the first line a command prints (run without a shell).
    Command {
        /// Program and arguments.
        command: Vec<String>,
    },
    /// A password written in the job file. Refused unless `allow_inline_password: true`.
    Inline(String),
}

// Written by hand so that an inline password never reaches a log through `{:?}`.
impl std::fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordSource::Env { env } => f.debug_struct("Env").field("env", env).finish(),
            PasswordSource::File { file } => f.debug_struct("File").field("file", file).finish(),
            PasswordSource::Command { command } => f.debug_struct("Command").field("command", command).finish(),
            PasswordSource::Inline(_) => f.write_str("Inline([REDACTED])"),
        }
    }
}

// By hand too: a job serialized for a report or a plan must not carry an inline password.
impl Serialize for PasswordSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn one<S: serde::Serializer, V: Serialize + ?Sized>(s: S, key: &str, value: &V) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(key, value)?;
            map.end()
        }
        match self {
            PasswordSource::Env { env } => one(s, "env", env),
            PasswordSource::File { file } => one(s, "file", file),
            PasswordSource::Command { command } => one(s, "command", command),
            PasswordSource::Inline(_) => s.serialize_str("[REDACTED]"),
        }
    }
}

/// A named credential.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    /// `DOMAIN\user`, `user@domain.example` or a local user name.
    pub username: String,
    /// Where the password comes from: `{ env: VAR }`, `{ file: path }` or `{ command: [argv...] }`.
    pub password: PasswordSource,
    /// Accept a plain password written in the job file (not recommended).
    #[serde(default)]
    pub allow_inline_password: bool,
}

/// Authentication mechanism, as `New-CimSession -Authentication` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Authentication {
    /// Negotiate (NTLM or Kerberos), as PowerShell's default.
    #[default]
    Default,
    /// Basic: only over HTTPS unless `allow_unencrypted`.
    Basic,
    /// Negotiate: Kerberos when the domain allows it, NTLM otherwise.
    Negotiate,
    /// NTLM only.
    Ntlm,
    /// Kerberos only.
    Kerberos,
    /// HTTP Digest.
    Digest,
    /// CredSSP: delegates the credential to the server.
    Credssp,
}

/// A group of computers queried with the same credential and options.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// The session's name, used by `queries[].sessions` and in outputs as `{{session}}`.
    pub name: String,
    /// Computer names or addresses. `name[01:12]` ranges expand (zero padding kept);
    /// duplicates are removed. With neither this nor `computers_from`, the local machine.
    #[serde(default)]
    pub computers: Vec<String>,
    /// A file (relative to the job file) with one computer per line; `#` starts a comment.
    pub computers_from: Option<PathBuf>,
    /// Name of an entry in `credentials`. Without one, the current user's (Kerberos) or none.
    pub credential: Option<String>,
    /// Authentication mechanism (default: negotiate).
    pub authentication: Option<Authentication>,
    /// Name of an entry in `options`. Without one, WS-Man over HTTP with defaults.
    pub options: Option<String>,
    /// TCP port (default 5985, or 5986 with `use_ssl`).
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// Time the server may take for one operation (sent to it), e.g. `60s`.
    pub operation_timeout: Option<HumanDuration>,
    /// Time to establish the connection, e.g. `10s`.
    pub connect_timeout: Option<HumanDuration>,
}

/// One query run against every computer of its sessions.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryDef {
    /// The query's name, used in outputs as `{{query}}` and in the run report.
    pub name: String,
    /// A CIM class to enumerate (give `class` or `query`, not both).
    pub class: Option<String>,
    /// A WQL `SELECT` (give `class` or `query`, not both).
    pub query: Option<String>,
    /// CIM namespace (default `root/cimv2`); `\` and `/` are both accepted.
    pub namespace: Option<String>,
    /// Properties to return, in this order (with `class`). Default: all.
    #[serde(default)]
    pub properties: Vec<String>,
    /// A WQL condition (the text after WHERE), with `class`.
    pub filter: Option<String>,
    /// Only run against these sessions (default: all).
    #[serde(default)]
    pub sessions: Vec<String>,
    /// WS-Man: a resource URI to use instead of the one derived from namespace and class.
    pub resource_uri: Option<String>,
    /// Return only each instance's key properties (WS-Man EnumerateEPR).
    #[serde(default)]
    pub key_only: bool,
    /// Properties that are arrays even when one element arrives (WS-Man cannot tell).
    #[serde(default)]
    pub arrays: Vec<String>,
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// RFC 4180 CSV, UTF-8, a header row, arrays joined with `array_separator`.
    Csv,
    /// One JSON array of objects per file, values typed.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// Where and how instances are written.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// `csv`, `json` or `ndjson`.
    #[serde(rename = "type")]
    pub kind: SinkKind,
    /// Output path template, relative to the output directory, e.g. `{{query}}.csv`.
    /// Variables: `{{query}}`, `{{class}}`, `{{session}}`, `{{computer}}`, `{{date}}`, `{{run_id}}`.
    /// The result never leaves the output directory.
    pub path: String,
    /// CSV: the separator for array values (default `;`).
    pub array_separator: Option<String>,
}

/// Scheduler settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Sessions (computers) open at once (default 64).
    #[serde(default = "default_throttle")]
    #[schemars(range(min = 1))]
    pub throttle: usize,
    /// Operations in flight to one host at once (default 1; WinRM's per-user quota is low).
    #[serde(default = "default_per_host")]
    #[schemars(range(min = 1))]
    pub per_host_operations: usize,
    /// Default time to establish a connection (default `10s`).
    pub connect_timeout: Option<HumanDuration>,
    /// Default server-side time for one operation (default `60s`).
    pub operation_timeout: Option<HumanDuration>,
    /// Deadline for a whole session, all queries and retries included (default `10m`).
    pub task_timeout: Option<HumanDuration>,
    /// When set, a TCP connect within this budget (e.g. `1s`) checks each host before its
    /// session opens, so a dead host fails fast as `unreachable` (default: no probe).
    pub probe_timeout: Option<HumanDuration>,
    /// Retries for retryable failures (timeouts, quota, dropped connections; default 2).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// When the run counts as failed (exit 1), e.g. `failed > 0` (default), `unreachable > 5%`,
    /// `never`. Conditions joined with `or`.
    pub fail_if: Option<String>,
}

fn default_throttle() -> usize {
    64
}
fn default_per_host() -> usize {
    1
}
fn default_retries() -> u32 {
    2
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            throttle: default_throttle(),
            per_host_operations: default_per_host(),
            connect_timeout: None,
            operation_timeout: None,
            task_timeout: None,
            probe_timeout: None,
            retries: default_retries(),
            fail_if: None,
        }
    }
}

/// A duration written as humans do: `30s`, `5m`, `1h 30m`, `250ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub std::time::Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as `30s`, `5m`, `1h 30m` or `250ms`.",
            "pattern": "^\\s*[0-9]+\\s*[a-zA-Zµ]+(\\s*[0-9]+\\s*[a-zA-Zµ]+)*\\s*$"
        })
    }
}
