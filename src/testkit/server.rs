//! The WS-Man test server: many simulated Windows hosts, one listener each, in one process.
//!
//! Every host answers Enumerate/Pull/Release/Get for the classes of its [`dataset::Host`] the
//! way Windows Server 2012 does, behind Basic or NTLM (raw or SPNEGO-wrapped, sealed over HTTP,
//! channel-bound over HTTPS), and can be told to misbehave in one of the ways real fleets do
//! ([`Fault`]). The server runs on its own thread and runtime so synchronous tests, async tests
//! and child processes can all use it; it stops when the [`TestServer`] is dropped or its
//! lifetime runs out, whichever comes first.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::dataset;
use super::faults;
pub use super::hostile::Hostile;
use super::ntlm;
use super::ops::{self, Enumerations};
use super::render;
use super::request::{self, Operation, Request};
use super::tls::{TestPki, TlsError};
use crate::protocol::wsman::auth::tls_server_end_point;
use crate::protocol::wsman::encryption;

/// A way a host misbehaves, as seen in real fleets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Nothing listens: connections are refused.
    Refuse,
    /// Connections are accepted and requests read, but never answered.
    Hang,
    /// Every WS-Man operation is answered only after this delay (past a client's timeout).
    Slow(Duration),
    /// Every WS-Man operation is carried out at once, but its reply is held back this long:
    /// the server has moved on (a Pull has replaced its context) before the client hears so.
    SlowReply(Duration),
    /// The connection is closed without an answer on the Pull after this many Pulls of an
    /// enumeration (every enumeration; the context stays open, as on a real server).
    ResetAfterPulls(u32),
    /// The first Enumerate or Pull gets a `w:TimedOut` fault; everything after succeeds.
    TimedOutOnce,
    /// WS-Man operations get HTTP 200 with a body that is not XML.
    GarbageXml,
    /// WS-Man operations get HTTP 500 with an empty body.
    Http500Empty,
    /// Every class is unknown (`WBEM_E_INVALID_CLASS`).
    InvalidClass,
    /// The account is authenticated but not authorized (`w:AccessDenied`).
    AccessDenied,
    /// The per-user operation quota is exceeded on every operation.
    QuotaExceeded,
    /// Every operation exceeds MaxEnvelopeSize (`w:EncodingLimit`).
    EnvelopeTooLarge,
    /// No password is accepted (HTTP 401).
    WrongPassword,
    /// HTTPS with a self-signed certificate the test CA did not issue.
    UntrustedCertificate,
    /// HTTPS with a certificate from the test CA for another name.
    WrongCertificateName,
    /// Enumerate gets a reply built to exceed a parser limit or expand entities.
    Hostile(Hostile),
}

/// One simulated host: its identity, listener, authentication and behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// Host name; the dataset and the certificate are made for it.
    pub name: String,
    /// Seed of the dataset (with the name).
    pub seed: u64,
    /// Where to listen (`127.0.0.1:0` by default: any free port).
    pub bind: SocketAddr,
    pub username: String,
    pub password: String,
    /// Serve HTTPS (with a certificate from the server's CA) instead of HTTP.
    pub https: bool,
    /// Accept Basic authentication (over HTTPS, or over HTTP with `allow_unencrypted`).
    pub basic: bool,
    /// Accept NTLM, raw or SPNEGO-wrapped, under the `Negotiate` scheme, with message
    /// encryption over HTTP and channel bindings over HTTPS.
    pub negotiate: bool,
    /// WinRM's `AllowUnencrypted`: accept Basic and unsealed bodies over plain HTTP.
    pub allow_unencrypted: bool,
    /// WinRM's `CbtHardeningLevel=Strict`: over HTTPS, refuse NTLM responses without channel
    /// bindings. Bindings that do not match the certificate are refused either way (Relaxed,
    /// the default).
    pub require_channel_bindings: bool,
    /// WinRM's `Auth/Certificate`: over HTTPS, accept a client certificate from the server's CA
    /// that [`TestServer::client_certificate`] issued for this host's user name.
    pub certificate_auth: bool,
    /// Added before every HTTP response (simulated round-trip time).
    pub latency: Duration,
    /// Answer in UTF-16LE (with a byte order mark) instead of UTF-8.
    pub utf16: bool,
    /// The most items one Pull returns whatever MaxElements asks: WinRM's WMI plugin hands
    /// out about 50 (default 50).
    pub max_page: u32,
    pub fault: Option<Fault>,
}

impl HostConfig {
    /// A healthy HTTP host accepting Basic and NTLM (`cimrun` / `P@ssw0rd!`), unencrypted
    /// traffic allowed, no latency.
    pub fn new(name: impl Into<String>) -> HostConfig {
        HostConfig {
            name: name.into(),
            seed: 0,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            username: "cimrun".into(),
            password: "P@ssw0rd!".into(),
            https: false,
            basic: true,
            negotiate: true,
            allow_unencrypted: true,
            certificate_auth: false,
            require_channel_bindings: false,
            latency: Duration::ZERO,
            max_page: 50,
            utf16: false,
            fault: None,
        }
    }

    /// Sets the dataset seed.
    pub fn seed(mut self, seed: u64) -> HostConfig {
        self.seed = seed;
        self
    }

    /// Sets the listen address.
    pub fn bind(mut self, addr: SocketAddr) -> HostConfig {
        self.bind = addr;
        self
    }

    /// Sets the accepted credentials.
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> HostConfig {
        self.username = username.into();
        self.password = password.into();
        self
    }

    /// Serves HTTPS.
    pub fn https(mut self, on: bool) -> HostConfig {
        self.https = on;
        self
    }

    /// Accepts Basic or not.
    pub fn basic(mut self, on: bool) -> HostConfig {
        self.basic = on;
        self
    }

    /// Accepts NTLM (Negotiate) or not.
    pub fn negotiate(mut self, on: bool) -> HostConfig {
        self.negotiate = on;
        self
    }

    /// Accepts Basic and unsealed bodies over plain HTTP or not.
    pub fn allow_unencrypted(mut self, on: bool) -> HostConfig {
        self.allow_unencrypted = on;
        self
    }

    /// Requires NTLM channel bindings over HTTPS (Strict) or only checks those sent (Relaxed).
    pub fn require_channel_bindings(mut self, on: bool) -> HostConfig {
        self.require_channel_bindings = on;
        self
    }

    /// Accepts client certificate authentication (over HTTPS) or not.
    pub fn certificate_auth(mut self, on: bool) -> HostConfig {
        self.certificate_auth = on;
        self
    }

    /// Sets the per-response latency.
    pub fn latency(mut self, latency: Duration) -> HostConfig {
        self.latency = latency;
        self
    }

    /// Answers in UTF-16LE or not.
    pub fn utf16(mut self, on: bool) -> HostConfig {
        self.utf16 = on;
        self
    }

    /// Sets the most items per Pull.
    pub fn max_page(mut self, items: u32) -> HostConfig {
        self.max_page = items.max(1);
        self
    }

    /// Makes the host misbehave.
    pub fn fault(mut self, fault: Fault) -> HostConfig {
        self.fault = Some(fault);
        self
    }

    /// The dataset this host serves.
    pub fn dataset(&self) -> dataset::Host {
        dataset::Host::generate(&self.name, self.seed)
    }
}

/// What a host has seen so far; read with [`TestServer::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Authenticated WS-Man requests by operation (`Enumerate`, `Pull`, `Release`, `Get`, `Other`).
    pub requests: BTreeMap<&'static str, u64>,
    /// Release requests that closed an open enumeration context.
    pub releases: u64,
    /// Enumeration contexts currently open (neither finished nor released).
    pub open_contexts: usize,
    /// TCP connections accepted.
    pub connections: u64,
    /// HTTP requests received, handshake legs and refused ones included: the round trips.
    pub http_requests: u64,
    /// Requests answered with 401 (not counting NTLM challenges).
    pub unauthorized: u64,
    /// Requests whose body arrived sealed (NTLM message encryption) and verified.
    pub sealed_requests: u64,
    /// Connections closed on purpose in the middle of a Pull sequence.
    pub resets: u64,
    /// NTLM handshakes completed inside SPNEGO (raw NTLM ones are not counted).
    pub spnego_logons: u64,
    /// Requests that carried the handshake's last leg and a body (rather than an empty POST).
    pub requests_with_last_leg: u64,
    /// Requests authenticated by a client certificate.
    pub certificate_logons: u64,
    /// Enumerate and Get requests that addressed a DMTF resource URI (`…/cim-schema/2/…`).
    pub dmtf_requests: u64,
}

impl HostStats {
    /// Requests seen for one operation.
    pub fn count(&self, op: &str) -> u64 {
        self.requests.get(op).copied().unwrap_or(0)
    }
}

/// Configures and starts a [`TestServer`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    hosts: Vec<HostConfig>,
    lifetime: Duration,
    workers: usize,
}

impl ServerBuilder {
    /// Adds a host.
    pub fn host(mut self, host: HostConfig) -> ServerBuilder {
        self.hosts.push(host);
        self
    }

    /// Adds hosts.
    pub fn hosts(mut self, hosts: impl IntoIterator<Item = HostConfig>) -> ServerBuilder {
        self.hosts.extend(hosts);
        self
    }

    /// The server stops by itself after this long (default 120 s).
    pub fn lifetime(mut self, lifetime: Duration) -> ServerBuilder {
        self.lifetime = lifetime;
        self
    }

    /// Runtime worker threads (default 1; a fleet simulator may want more).
    pub fn worker_threads(mut self, n: usize) -> ServerBuilder {
        self.workers = n.max(1);
        self
    }

    /// Binds every listener and starts serving on a background thread.
    pub fn start(self) -> Result<TestServer, StartError> {
        // A listener per host plus a connection or two each: a large fleet needs more
        // descriptors than the usual soft limit of 1024.
        crate::run::raise_open_file_limit(self.hosts.len() as u64 * 3 + 256);
        let needs_pki = self.hosts.iter().any(|h| h.https);
        let pki = if needs_pki { Some(TestPki::new()?) } else { None };
        let certificate_map = CertificateMap::default();
        let mut hosts = Vec::with_capacity(self.hosts.len());
        let mut listeners = Vec::with_capacity(self.hosts.len());
        for config in self.hosts {
            let std_listener = StdListener::bind(config.bind).map_err(|e| StartError::Bind(config.bind, e))?;
            let addr = std_listener.local_addr().map_err(|e| StartError::Bind(config.bind, e))?;
            let tls = match (&pki, config.https) {
                (Some(pki), true) => {
                    let names = match config.fault {
                        Some(Fault::WrongCertificateName) => vec!["wrong-name.invalid".to_string()],
                        _ => vec![config.name.clone(), "localhost".into(), addr.ip().to_string()],
                    };
                    let self_signed = config.fault == Some(Fault::UntrustedCertificate);
                    Some(pki.server_config(&names, self_signed, config.certificate_auth)?)
                }
                _ => None,
            };
            // NTLM over HTTPS binds the handshake to this certificate (tls-server-end-point).
            let channel_bindings = tls.as_ref().map(|(_, der)| tls_server_end_point(der));
            let tls = tls.map(|(config, _)| config);
            // A refusing host gets a port that nothing listens on.
            let listener = if config.fault == Some(Fault::Refuse) {
                drop(std_listener);
                None
            } else {
                std_listener.set_nonblocking(true).map_err(|e| StartError::Bind(addr, e))?;
                Some(std_listener)
            };
            let state = Arc::new(HostState::new(config, addr, channel_bindings, certificate_map.clone()));
            listeners.push((listener, tls, state.clone()));
            hosts.push(state);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.workers)
            .enable_all()
            .thread_name("wsman-test-server")
            .build()
            .map_err(StartError::Runtime)?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let lifetime = self.lifetime;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread = std::thread::Builder::new()
            .name("wsman-test-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut started = Ok(());
                    let mut accepting = Vec::new();
                    for (listener, tls, state) in listeners {
                        let Some(listener) = listener else { continue };
                        match TcpListener::from_std(listener) {
                            Ok(l) => accepting.push(tokio::spawn(accept_loop(l, tls, state))),
                            Err(e) => {
                                started = Err(e);
                                break;
                            }
                        }
                    }
                    let failed = started.is_err();
                    let _ = ready_tx.send(started);
                    if !failed {
                        let _ = tokio::time::timeout(lifetime, stop_rx).await;
                    }
                    // Close every listener before returning, so "stopped" means nothing listens.
                    for task in &accepting {
                        task.abort();
                    }
                    for task in accepting {
                        let _ = task.await;
                    }
                });
                // Hung connections and slow answers are abandoned here, not awaited.
                runtime.shutdown_background();
            })
            .map_err(StartError::Runtime)?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StartError::Runtime(e)),
            Err(_) => return Err(StartError::Runtime(io::Error::other("server thread exited"))),
        }
        Ok(TestServer { hosts, pki, certificate_map, stop: Some(stop_tx), thread: Some(thread) })
    }
}

/// The `index`-th fleet address in 127.1.0.0/16 (`1` → 127.1.0.1, `10000` → 127.1.39.16), for
/// simulating one host per address; Linux routes all of 127.0.0.0/8 to the loopback device.
pub fn fleet_address(index: u16) -> std::net::IpAddr {
    let [hi, lo] = index.to_be_bytes();
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 1, hi, lo))
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, #[source] io::Error),
    #[error("cannot start the server runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A running test server; dropping it stops every host.
pub struct TestServer {
    hosts: Vec<Arc<HostState>>,
    /// The CA of the HTTPS hosts.
    pki: Option<TestPki>,
    certificate_map: CertificateMap,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// A builder with no hosts.
    pub fn builder() -> ServerBuilder {
        ServerBuilder { hosts: Vec::new(), lifetime: Duration::from_secs(120), workers: 1 }
    }

    /// The number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// True when the server has no hosts.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The address host `i` listens on (for a refusing host: a port nothing listens on).
    pub fn addr(&self, i: usize) -> Option<SocketAddr> {
        self.hosts.get(i).map(|h| h.addr)
    }

    /// `http(s)://ip:port/wsman` of host `i`.
    pub fn url(&self, i: usize) -> Option<String> {
        self.hosts.get(i).map(|h| {
            let scheme = if h.config.https { "https" } else { "http" };
            format!("{scheme}://{}/wsman", h.addr)
        })
    }

    /// The configuration of host `i`.
    pub fn config(&self, i: usize) -> Option<&HostConfig> {
        self.hosts.get(i).map(|h| &h.config)
    }

    /// The index of the host called `name` (case-insensitive).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.config.name.eq_ignore_ascii_case(name))
    }

    /// A snapshot of host `i`'s counters.
    pub fn stats(&self, i: usize) -> Option<HostStats> {
        self.hosts.get(i).map(|h| {
            let mut s = lock(&h.stats).clone();
            s.open_contexts = lock(&h.contexts).open();
            s
        })
    }

    /// The PEM of the CA that issued the HTTPS hosts' certificates (`None` without HTTPS hosts).
    pub fn ca_pem(&self) -> Option<&str> {
        self.pki.as_ref().map(TestPki::ca_pem)
    }

    /// The same CA, DER-encoded.
    pub fn ca_der(&self) -> Option<&[u8]> {
        self.pki.as_ref().map(TestPki::ca_der)
    }

    /// Issues a client certificate from the server's CA and maps it to the account `username`,
    /// as WinRM's certificate mapping does; returns the certificate's PEM and its key's PEM
    /// (PKCS#8). `None` without HTTPS hosts.
    pub fn client_certificate(&self, username: &str) -> Option<Result<(String, String), TlsError>> {
        let pki = self.pki.as_ref()?;
        Some(pki.client_certificate(username).map(|(pem, key, der)| {
            lock(&self.certificate_map).insert(der, username.to_string());
            (pem, key)
        }))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A lock that survives a panicked holder: the counters stay readable for the test's report.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct HostState {
    config: HostConfig,
    addr: SocketAddr,
    stats: Mutex<HostStats>,
    contexts: Mutex<Enumerations>,
    timed_out_sent: AtomicBool,
    /// The SEC_CHANNEL_BINDINGS of the HTTPS certificate, which NTLM responses must match.
    channel_bindings: Option<Vec<u8>>,
    certificate_map: CertificateMap,
}

/// Client certificates (DER) the server issued, and the account each one maps to.
type CertificateMap = Arc<Mutex<std::collections::HashMap<Vec<u8>, String>>>;

impl HostState {
    fn new(
        config: HostConfig,
        addr: SocketAddr,
        channel_bindings: Option<Vec<u8>>,
        certificate_map: CertificateMap,
    ) -> HostState {
        HostState {
            config,
            addr,
            channel_bindings,
            certificate_map,
            stats: Mutex::new(HostStats::default()),
            contexts: Mutex::new(Enumerations::default()),
            timed_out_sent: AtomicBool::new(false),
        }
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, state: Arc<HostState>) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        lock(&state.stats).connections += 1;
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match acceptor {
                Some(acceptor) => {
                    if let Ok(tls_stream) = acceptor.accept(stream).await {
                        // rustls verified the chain; the mapping to an account is checked per request.
                        let client_certificate =
                            tls_stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
                        serve(TokioIo::new(tls_stream), state, client_certificate).await;
                    }
                }
                None => serve(TokioIo::new(stream), state, None).await,
            }
        });
    }
}

async fn serve<IO>(io: IO, state: Arc<HostState>, client_certificate: Option<Vec<u8>>)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let connection = Arc::new(Mutex::new(Connection { ntlm: None, client_certificate }));
    let service = service_fn(move |req| {
        let state = state.clone();
        let connection = connection.clone();
        async move {
            let mut reply = handle(state, connection, req).await?;
            // As http.sys, which serves WinRM, names itself.
            reply.headers_mut().insert(header::SERVER, http::HeaderValue::from_static("Microsoft-HTTPAPI/2.0"));
            Ok::<_, ResetConnection>(reply)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, service).await;
}

/// Returned by the handler to make hyper drop the connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("connection reset by fault injection")]
struct ResetConnection;

type Reply = Response<Full<Bytes>>;

const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

/// Requests larger than this are refused; WS-Man requests are a few kilobytes.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// What a connection remembers between requests: NTLM authenticates the connection, and its
/// sealing state (sequence numbers) belongs to it.
struct Connection {
    ntlm: Option<ntlm::Acceptor>,
    /// The certificate the client presented in the TLS handshake (DER), already verified
    /// against the server's CA.
    client_certificate: Option<Vec<u8>>,
}

/// The answer to an authenticated request, before sealing.
enum Answer {
    Soap(StatusCode, String),
    Raw(Reply),
}

async fn handle(
    state: Arc<HostState>,
    connection: Arc<Mutex<Connection>>,
    req: http::Request<Incoming>,
) -> Result<Reply, ResetConnection> {
    lock(&state.stats).http_requests += 1;
    if state.config.fault == Some(Fault::Hang) {
        std::future::pending::<()>().await;
    }
    if !state.config.latency.is_zero() {
        tokio::time::sleep(state.config.latency).await;
    }
    if req.uri().path() != "/wsman" {
        return Ok(empty(StatusCode::NOT_FOUND));
    }
    if req.method() != http::Method::POST {
        return Ok(empty(StatusCode::METHOD_NOT_ALLOWED));
    }
    let authorization = header_text(&req, header::AUTHORIZATION);
    let content_type = header_text(&req, header::CONTENT_TYPE);
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(empty(StatusCode::PAYLOAD_TOO_LARGE)),
    };
    let sealed = encryption::is_encrypted_content_type(content_type.as_deref().unwrap_or_default());
    let (plaintext, final_token, logged_on_here) = {
        let mut conn = lock(&connection);
        let complete = |c: &Connection| c.ntlm.as_ref().is_some_and(ntlm::Acceptor::is_complete);
        let was_complete = complete(&conn);
        let final_token = match authenticate(&state, &mut conn, authorization.as_deref()) {
            Ok(token) => token,
            Err(challenge) => return Ok(unauthorized(&state.config, challenge)),
        };
        let logged_on_here = !was_complete && complete(&conn);
        if sealed {
            let unsealed = conn.ntlm.as_mut().filter(|a| a.is_complete()).map(|a| a.unseal_body(&body));
            match unsealed {
                Some(Ok(plain)) => {
                    lock(&state.stats).sealed_requests += 1;
                    (Bytes::from(plain), final_token, logged_on_here)
                }
                Some(Err(e)) => {
                    return Ok(soap_fault(&state, &faults::invalid_request(&e), None, StatusCode::BAD_REQUEST));
                }
                None => return Ok(unauthorized(&state.config, None)),
            }
        } else {
            // WinRM's AllowUnencrypted=false: a plain body over HTTP is refused.
            if !body.is_empty() && !state.config.https && !state.config.allow_unencrypted {
                lock(&state.stats).unauthorized += 1;
                return Ok(unauthorized(&state.config, None));
            }
            (body, final_token, logged_on_here)
        }
    };
    // The last handshake leg came on an empty POST, or with the first request (as Windows'
    // own client sends it); SPNEGO's final token goes on the reply either way.
    if logged_on_here && !plaintext.is_empty() {
        lock(&state.stats).requests_with_last_leg += 1;
    }
    let mut reply = if plaintext.is_empty() {
        empty(StatusCode::OK)
    } else {
        respond(&state, &connection, &plaintext, sealed).await?
    };
    if let Some(v) = final_token.and_then(|t| http::HeaderValue::from_str(&t).ok()) {
        reply.headers_mut().append(header::WWW_AUTHENTICATE, v);
    }
    Ok(reply)
}

/// Answers an authenticated request, sealing the answer when the request was sealed.
async fn respond(
    state: &HostState,
    connection: &Mutex<Connection>,
    plaintext: &[u8],
    sealed: bool,
) -> Result<Reply, ResetConnection> {
    let (status, xml) = match answer(state, plaintext).await? {
        Answer::Raw(reply) => return Ok(reply),
        Answer::Soap(status, xml) => (status, xml),
    };
    let (bytes, soap_type) = encode(&state.config, xml);
    if !sealed {
        return Ok(with_body(status, bytes, soap_type));
    }
    let sealed_reply = lock(connection).ntlm.as_mut().map(|a| a.seal_body(&bytes, soap_type));
    Ok(match sealed_reply {
        Some(Ok((body, content_type))) => with_body(status, body, &content_type),
        _ => empty(StatusCode::INTERNAL_SERVER_ERROR),
    })
}

fn header_text(req: &http::Request<Incoming>, name: header::HeaderName) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Checks the request's credentials (or the connection's NTLM session). `Ok` may carry a
/// final `WWW-Authenticate` value for the 200; `Err` means a 401, carrying the NTLM challenge
/// when the handshake continues.
fn authenticate(
    state: &HostState,
    conn: &mut Connection,
    authorization: Option<&str>,
) -> Result<Option<String>, Option<String>> {
    let config = &state.config;
    let deny = || {
        lock(&state.stats).unauthorized += 1;
        Err(None)
    };
    let Some(value) = authorization else {
        return if conn.ntlm.as_ref().is_some_and(ntlm::Acceptor::is_complete) { Ok(None) } else { deny() };
    };
    // The https/mutual security profile (DSP0226 Annex C.3.5), written out here rather than
    // shared with the client, so a typo on either side fails the tests.
    if value == "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual" {
        let mapped = conn.client_certificate.as_ref().and_then(|der| lock(&state.certificate_map).get(der).cloned());
        let accepted = config.https
            && config.certificate_auth
            && config.fault != Some(Fault::WrongPassword)
            && mapped.is_some_and(|user| user.eq_ignore_ascii_case(&config.username));
        if !accepted {
            return deny();
        }
        lock(&state.stats).certificate_logons += 1;
        return Ok(None);
    }
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let Ok(token) = base64::engine::general_purpose::STANDARD.decode(token.trim()) else { return deny() };
    if scheme.eq_ignore_ascii_case("Basic") {
        let basic_allowed = config.basic && (config.https || config.allow_unencrypted);
        return if basic_allowed && basic_matches(config, &token) { Ok(None) } else { deny() };
    }
    let ntlm_scheme = scheme.eq_ignore_ascii_case("Negotiate") || scheme.eq_ignore_ascii_case("NTLM");
    if !ntlm_scheme || !config.negotiate {
        return deny();
    }
    // An NTLM NEGOTIATE message (type 1), raw or in a SPNEGO NegTokenInit, starts a new
    // handshake on this connection.
    if let Some(wrapping) = ntlm::Wrapping::of_first_token(&token) {
        // With WrongPassword the acceptor expects a password no client has.
        let password = match config.fault {
            Some(Fault::WrongPassword) => format!("not-{}", config.password),
            _ => config.password.clone(),
        };
        let bindings = state.channel_bindings.clone();
        let strict = config.require_channel_bindings;
        conn.ntlm = match ntlm::Acceptor::new(&config.username, &password, wrapping, bindings, strict) {
            Ok(a) => Some(a),
            Err(_) => return deny(),
        };
    }
    let Some(acceptor) = conn.ntlm.as_mut() else { return deny() };
    match acceptor.step(&token) {
        Ok(ntlm::Leg::Challenge(challenge)) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(challenge);
            // A challenge is part of the handshake, not a failed attempt.
            Err(Some(format!("Negotiate {b64}")))
        }
        Ok(ntlm::Leg::Complete(token)) => {
            if acceptor.wrapping() == ntlm::Wrapping::Spnego {
                lock(&state.stats).spnego_logons += 1;
            }
            Ok(token.map(|t| format!("Negotiate {}", base64::engine::general_purpose::STANDARD.encode(t))))
        }
        Err(_) => {
            conn.ntlm = None;
            deny()
        }
    }
}

fn basic_matches(config: &HostConfig, decoded: &[u8]) -> bool {
    if config.fault == Some(Fault::WrongPassword) {
        return false;
    }
    let Ok(decoded) = std::str::from_utf8(decoded) else { return false };
    let Some((user, password)) = decoded.split_once(':') else { return false };
    // WinRM matches account names case-insensitively and passwords exactly.
    user.eq_ignore_ascii_case(&config.username) && password == config.password
}

/// Parses and answers one authenticated SOAP request.
async fn answer(state: &HostState, body: &[u8]) -> Result<Answer, ResetConnection> {
    let request = match request::parse(body) {
        Ok(r) => r,
        Err(e) => {
            let f = faults::invalid_request(&e.to_string());
            return Ok(Answer::Soap(StatusCode::BAD_REQUEST, render::fault(&f, None, &state.config.name)));
        }
    };
    {
        let mut stats = lock(&state.stats);
        *stats.requests.entry(request.operation.as_str()).or_insert(0) += 1;
        let dmtf = request.resource_uri.as_deref().is_some_and(|u| u.starts_with(ops::DMTF_URI_PREFIX));
        if dmtf && matches!(request.operation, Operation::Enumerate | Operation::Get) {
            stats.dmtf_requests += 1;
        }
    }
    let is_data_op = matches!(request.operation, Operation::Enumerate | Operation::Pull | Operation::Get);
    if is_data_op && let Some(answer) = injected(state, &request, state.config.fault.as_ref()).await? {
        return Ok(answer);
    }
    let result = match request.operation {
        Operation::Enumerate => ops::enumerate(&state.config, &mut lock(&state.contexts), &request),
        Operation::Pull => ops::pull(&mut lock(&state.contexts), &request, state.config.max_page),
        Operation::Release => {
            let released = ops::release(&mut lock(&state.contexts), &request);
            if released.is_ok() {
                lock(&state.stats).releases += 1;
            }
            released
        }
        Operation::Get => ops::get(&state.config, &request),
        Operation::Other => Err(faults::action_not_supported(&request.action)),
    };
    if let Some(Fault::SlowReply(delay)) = state.config.fault {
        tokio::time::sleep(delay).await;
    }
    Ok(match result {
        Ok(xml) => Answer::Soap(StatusCode::OK, xml),
        Err(f) => fault_answer(state, &f, &request),
    })
}

fn fault_answer(state: &HostState, f: &render::Fault, request: &Request) -> Answer {
    let xml = render::fault(f, request.message_id.as_deref(), &state.config.name);
    Answer::Soap(StatusCode::INTERNAL_SERVER_ERROR, xml)
}

/// Applies the host's fault to a data operation: `Some(reply)` replaces the normal answer.
async fn injected(
    state: &HostState,
    request: &Request,
    fault: Option<&Fault>,
) -> Result<Option<Answer>, ResetConnection> {
    let fault_reply = |f: render::Fault| Some(fault_answer(state, &f, request));
    Ok(match fault {
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(*delay).await;
            None
        }
        Some(Fault::GarbageXml) => Some(Answer::Soap(StatusCode::OK, "<s:Envelope><<this is not XML &&".to_string())),
        Some(Fault::Http500Empty) => Some(Answer::Raw(empty(StatusCode::INTERNAL_SERVER_ERROR))),
        Some(Fault::Hostile(kind)) if request.operation == Operation::Enumerate => {
            Some(Answer::Soap(StatusCode::OK, super::hostile::reply(*kind, request.message_id.as_deref())))
        }
        Some(Fault::InvalidClass) => fault_reply(faults::invalid_class()),
        Some(Fault::AccessDenied) => fault_reply(faults::access_denied()),
        Some(Fault::QuotaExceeded) => fault_reply(faults::quota_exceeded()),
        Some(Fault::EnvelopeTooLarge) => fault_reply(faults::envelope_too_large()),
        Some(Fault::TimedOutOnce) if request.operation != Operation::Get => {
            if state.timed_out_sent.swap(true, Ordering::SeqCst) { None } else { fault_reply(faults::timed_out()) }
        }
        Some(Fault::ResetAfterPulls(n)) if request.operation == Operation::Pull => {
            let ctx = request.context.as_deref().unwrap_or_default();
            let reset = lock(&state.contexts).pulls(ctx).is_some_and(|pulls| pulls >= *n);
            if reset {
                lock(&state.stats).resets += 1;
                return Err(ResetConnection);
            }
            None
        }
        _ => None,
    })
}

/// A 401 offering the schemes the host accepts, as WinRM does, or carrying an NTLM challenge.
fn unauthorized(config: &HostConfig, challenge: Option<String>) -> Reply {
    let mut r = empty(StatusCode::UNAUTHORIZED);
    let headers = r.headers_mut();
    match challenge {
        Some(c) => {
            if let Ok(v) = http::HeaderValue::from_str(&c) {
                headers.append(header::WWW_AUTHENTICATE, v);
            }
        }
        None => {
            if config.negotiate {
                headers.append(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Negotiate"));
            }
            if config.basic && (config.https || config.allow_unencrypted) {
                headers.append(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Basic realm=\"WSMAN\""));
            }
        }
    }
    r
}

fn empty(status: StatusCode) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

fn with_body(status: StatusCode, body: Vec<u8>, content_type: &str) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// The body bytes and Content-Type of a SOAP reply in the host's encoding: UTF-8, or
/// UTF-16LE with a byte order mark, as WinRM answers a client that wrote UTF-16.
fn encode(config: &HostConfig, xml: String) -> (Vec<u8>, &'static str) {
    if config.utf16 {
        let mut bytes = vec![0xff, 0xfe];
        bytes.extend(xml.encode_utf16().flat_map(u16::to_le_bytes));
        (bytes, "application/soap+xml;charset=UTF-16")
    } else {
        (xml.into_bytes(), SOAP_CONTENT_TYPE)
    }
}

fn soap_fault(state: &HostState, f: &render::Fault, relates: Option<&str>, status: StatusCode) -> Reply {
    let (bytes, content_type) = encode(&state.config, render::fault(f, relates, &state.config.name));
    with_body(status, bytes, content_type)
}
