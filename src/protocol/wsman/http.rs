//! One HTTP/1.1 connection (optionally inside TLS), driven by hyper's low-level client.
//!
//! NTLM and Negotiate authenticate a TCP connection, not a request, so every request of a
//! session must travel on the same connection: a pool could move one elsewhere.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::tls::TlsSetup;
use crate::protocol::{Category, Error};

/// Largest reply body accepted. Windows caps envelopes at MaxEnvelopeSize (512 KB by default,
/// configurable to a few MB); this only stops a broken peer from exhausting memory.
pub const MAX_BODY: usize = 64 << 20;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Where to connect and how.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// TLS configuration for HTTPS, `None` for plain HTTP.
    pub tls: Option<TlsSetup>,
    pub connect_timeout: Duration,
    /// HTTP proxy to tunnel through, `None` to connect directly.
    pub proxy: Option<Proxy>,
}

/// An HTTP proxy, used through CONNECT for HTTP as well as HTTPS: a tunnel keeps the one
/// TCP connection NTLM authenticates, where a forwarding proxy may spread requests over
/// several upstream connections.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization` value, from the URL's user and password.
    pub authorization: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl Proxy {
    /// Parses `http://[user[:password]@]host[:port]` (port 80 by default; a bare `host:port` is
    /// taken as http).
    pub fn parse(url: &str) -> Result<Proxy, Error> {
        let bad = |why: &str| Error::new(Category::Unsupported, format!("proxy {url:?}: {why}"));
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "scheme {scheme} is not supported (only http)"
                )));
            }
            None => url,
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("no valid host[:port]"))?;
        let authorization = userinfo.map(|userinfo| {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let pair = format!("{}:{}", percent_decode(user), percent_decode(password));
            format!(
                "Basic {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pair)
            )
        });
        Ok(Proxy {
            host,
            port: port.unwrap_or(80),
            authorization,
        })
    }

    /// Resolves the `proxy` setting (`none`, `env` or a URL) for a connection to `host`.
    /// `env` reads HTTPS_PROXY or HTTP_PROXY (lower case first, then ALL_PROXY) and honours NO_PROXY.
    pub fn resolve(
        setting: Option<&str>,
        https: bool,
        host: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Proxy>, Error> {
        match setting.map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) if s.eq_ignore_ascii_case("none") => Ok(None),
            Some(s) if s.eq_ignore_ascii_case("env") => {
                let names: [&str; 4] = if https {
                    ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
                } else {
                    ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
                };
                let Some(url) = names
                    .iter()
                    .filter_map(|n| env(n))
                    .find(|v| !v.trim().is_empty())
                else {
                    return Ok(None);
                };
                let no_proxy = env("no_proxy")
                    .or_else(|| env("NO_PROXY"))
                    .unwrap_or_default();
                if bypasses(&no_proxy, host) {
                    Ok(None)
                } else {
                    Proxy::parse(url.trim()).map(Some)
                }
            }
            Some(url) => Proxy::parse(url).map(Some),
        }
    }
}

/// Whether a NO_PROXY list names the host: `*`, the host itself, or a domain suffix of it.
fn bypasses(no_proxy: &str, host: &str) -> bool {
    let host = host
        .trim_matches(['[', ']'])
        .trim_end_matches('.')
        .to_ascii_lowercase();
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let name = split_host_port(entry)
                .map(|(h, _)| h)
                .unwrap_or_else(|| entry.to_string());
            let name = name
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .to_ascii_lowercase();
            host == name || host.ends_with(&format!(".{name}"))
        })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            _ => (text, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host.to_string(), port))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Largest CONNECT reply head we read.
const MAX_PROXY_REPLY: usize = 16 * 1024;

/// Asks the proxy for a tunnel to `host:port`.
async fn tunnel(tcp: &mut TcpStream, proxy: &Proxy, host: &str, port: u16) -> Result<(), Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = &proxy.authorization {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    let lost = |e: std::io::Error| {
        Error::new(
            Category::Unreachable,
            format!("proxy {}:{}: {e}", proxy.host, proxy.port),
        )
    };
    tcp.write_all(request.as_bytes()).await.map_err(lost)?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_PROXY_REPLY {
            return Err(Error::new(
                Category::ProtocolError,
                "proxy reply head is too long",
            ));
        }
        let n = tcp.read(&mut chunk).await.map_err(lost)?;
        if n == 0 {
            return Err(lost(std::io::ErrorKind::UnexpectedEof.into()));
        }
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let status_line = head
        .split(|&b| b == b'\n')
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(()),
        Some(407) => Err(Error::new(
            Category::AuthFailed,
            format!(
                "proxy {}:{} requires authentication",
                proxy.host, proxy.port
            ),
        )
        .with_code("407")),
        Some(code) => Err(Error::new(
            Category::Unreachable,
            format!(
                "proxy refused the tunnel to {authority}: {}",
                status_line.trim()
            ),
        )
        .with_code(code.to_string())),
        None => Err(Error::new(
            Category::ProtocolError,
            format!("proxy sent no HTTP status: {:?}", status_line.trim()),
        )),
    }
}

/// An open connection.
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
    /// The server's leaf certificate (DER), for channel binding over HTTPS.
    pub peer_certificate: Option<Vec<u8>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A complete HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Connection {
    /// Connects (TCP, then TLS when configured) and performs the HTTP/1.1 handshake.
    pub async fn open(target: &Target) -> Result<Connection, Error> {
        let addr = format!("{}:{}", target.host, target.port);
        let tcp = open_tcp(target, &addr).await?;
        let (io, peer_certificate): (Box<dyn Io>, _) = match &target.tls {
            None => (Box::new(tcp), None),
            Some(setup) => match rustls_handshake(setup, target, &addr, tcp).await {
                Ok((tls, cert)) => (Box::new(tls), cert),
                #[cfg(feature = "native-tls")]
                Err((error, true)) if setup.legacy.is_some() => {
                    let Some(legacy) = &setup.legacy else {
                        return Err(error);
                    };
                    tracing::info!("{addr}: {error}; retrying with the platform TLS library");
                    let tcp = open_tcp(target, &addr).await?;
                    let handshake = legacy.connect(&target.host, tcp);
                    let (tls, cert) = tokio::time::timeout(target.connect_timeout, handshake)
                        .await
                        .map_err(|_| handshake_timeout(&addr))??;
                    (Box::new(tls), Some(cert))
                }
                Err((error, _)) => return Err(error),
            },
        };
        let (sender, conn) = http1::handshake(TokioIo::new(io)).await.map_err(|e| {
            Error::new(
                Category::ConnectionFailed,
                format!("HTTP handshake with {addr}: {e}"),
            )
        })?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("WS-Man connection ended: {e}");
            }
        });
        Ok(Connection {
            sender,
            driver,
            peer_certificate,
        })
    }

    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed() && !self.driver.is_finished()
    }

    /// Sends one request and reads the whole reply within `read_timeout`.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
        read_timeout: Duration,
    ) -> Result<Reply, Error> {
        let exchange = async {
            self.sender.ready().await.map_err(|e| hyper_error(&e))?;
            let response: Response<hyper::body::Incoming> = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| hyper_error(&e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| match e.downcast_ref::<hyper::Error>() {
                    Some(h) => hyper_error(h),
                    None if e.is::<http_body_util::LengthLimitError>() => Error::new(
                        Category::ProtocolError,
                        format!("the reply body exceeds the limit of {} MiB", MAX_BODY >> 20),
                    ),
                    None => Error::new(Category::ProtocolError, format!("reply body: {e}")),
                })?;
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.to_bytes(),
            })
        };
        match tokio::time::timeout(read_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                Category::TimedOut,
                format!("no HTTP reply within {read_timeout:?}"),
            )),
        }
    }
}

/// Connects directly or through the proxy's tunnel, within the connect timeout.
async fn open_tcp(target: &Target, addr: &str) -> Result<TcpStream, Error> {
    let connect = async {
        match &target.proxy {
            None => connect_tcp(&target.host, target.port).await,
            Some(proxy) => {
                let mut tcp = connect_tcp(&proxy.host, proxy.port).await?;
                tunnel(&mut tcp, proxy, &target.host, target.port).await?;
                Ok(tcp)
            }
        }
    };
    let tcp = tokio::time::timeout(target.connect_timeout, connect)
        .await
        .map_err(|_| {
            Error::new(
                Category::TimedOut,
                format!(
                    "connecting to {addr}: no answer within {:?}",
                    target.connect_timeout
                ),
            )
        })??;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

fn handshake_timeout(addr: &str) -> Error {
    Error::new(
        Category::TimedOut,
        format!("TLS handshake with {addr} timed out"),
    )
}

/// The rustls handshake; on failure also says whether the server looked merely incompatible
/// (old protocol versions or suites), which the platform TLS library may still talk to.
async fn rustls_handshake(
    setup: &TlsSetup,
    target: &Target,
    addr: &str,
    tcp: TcpStream,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>), (Error, bool)> {
    let name = rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
        let message = format!("{:?} is not a valid TLS server name: {e}", target.host);
        (Error::new(Category::TlsFailure, message), false)
    })?;
    let connector = tokio_rustls::TlsConnector::from(setup.rustls.clone());
    let tls = tokio::time::timeout(target.connect_timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| (handshake_timeout(addr), false))?
        .map_err(|e| (tls_error(addr, &e), incompatible(&e)))?;
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    Ok((tls, cert))
}

/// Whether a handshake failure means "no common protocol version or cipher suite": the
/// server's alert, or the abrupt close some old TLS stacks answer a TLS 1.2+ hello with.
fn incompatible(e: &std::io::Error) -> bool {
    use rustls::AlertDescription as Alert;
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::PeerIncompatible(_)) => true,
        Some(rustls::Error::AlertReceived(
            Alert::HandshakeFailure | Alert::ProtocolVersion | Alert::InsufficientSecurity,
        )) => true,
        Some(_) => false,
        None => matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ),
    }
}

/// Resolves and connects, trying every address; maps failures to Unreachable.
async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, Error> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Error::new(Category::Unreachable, format!("resolving {host}: {e}")))?
        .collect();
    let mut last = Error::new(
        Category::Unreachable,
        format!("{host} resolved to no address"),
    );
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                last = Error::new(Category::Unreachable, format!("connecting to {addr}: {e}"))
            }
        }
    }
    Err(last)
}

fn tls_error(addr: &str, e: &std::io::Error) -> Error {
    // rustls reports handshake failures as InvalidData carrying a rustls::Error; other kinds
    // are the socket failing under the handshake.
    let is_tls = e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
        || e.kind() == std::io::ErrorKind::InvalidData;
    let category = if is_tls {
        Category::TlsFailure
    } else {
        Category::ConnectionFailed
    };
    Error::new(category, format!("TLS handshake with {addr}: {e}"))
}

/// The description of a TLS alert the peer sent, found in an error's source chain.
fn received_alert(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::AlertReceived(description)) = tls {
            return Some(format!("{description:?}"));
        }
        next = err.source();
    }
    None
}

fn hyper_error(e: &hyper::Error) -> Error {
    // With TLS 1.3 a server that refuses the client certificate says so after the client's
    // side of the handshake is done: the alert arrives under the first request.
    if let Some(alert) = received_alert(e) {
        return Error::new(
            Category::TlsFailure,
            format!("the server ended the TLS session with the alert {alert} (a client certificate it does not accept?)"),
        );
    }
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        Error::new(
            Category::ProtocolError,
            format!("malformed HTTP reply: {e}"),
        )
    } else if e.is_timeout() {
        Error::new(Category::TimedOut, format!("HTTP: {e}"))
    } else {
        // Closed, reset, incomplete message, canceled: the connection broke under the request.
        let detail = std::error::Error::source(e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        Error::new(
            Category::ConnectionFailed,
            format!("connection lost: {e}{detail}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        let p = Proxy::parse("http://us%65r:p%40ss@proxy.example.com:3128/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.example.com", 3128));
        // "user:p@ss"
        assert_eq!(p.authorization.as_deref(), Some("Basic dXNlcjpwQHNz"));
        let p = Proxy::parse("[::1]:8080").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.authorization),
            ("::1", 8080, None)
        );
        assert_eq!(Proxy::parse("HTTP://proxy").unwrap().port, 80);
        for bad in [
            "https://proxy:443",
            "socks5://p:1080",
            "http://:80",
            "http://proxy:99999",
        ] {
            assert_eq!(
                Proxy::parse(bad).unwrap_err().category,
                Category::Unsupported,
                "{bad}"
            );
        }
    }

    #[test]
    fn proxy_from_the_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let vars: &[(&str, &str)] = &[
            ("http_proxy", "http://p1:3128"),
            ("HTTPS_PROXY", "p2:8443"),
            ("NO_PROXY", "localhost, .corp.example,10.0.0.7:5985"),
        ];
        let resolve = |https, host| {
            Proxy::resolve(Some("env"), https, host, env(vars))
                .unwrap()
                .map(|p| p.host)
        };
        assert_eq!(resolve(false, "srv01.example.com"), Some("p1".to_string()));
        assert_eq!(resolve(true, "srv01.example.com"), Some("p2".to_string()));
        assert_eq!(resolve(false, "localhost"), None);
        assert_eq!(resolve(false, "dc01.corp.example"), None);
        assert_eq!(resolve(false, "corp.example"), None);
        assert_eq!(resolve(false, "notcorp.example"), Some("p1".to_string()));
        assert_eq!(resolve(false, "10.0.0.7"), None);
        assert_eq!(
            Proxy::resolve(
                Some("env"),
                false,
                "h",
                env(&[("NO_PROXY", "*"), ("http_proxy", "p")])
            )
            .unwrap(),
            None
        );
        assert_eq!(
            Proxy::resolve(Some("env"), false, "h", env(&[])).unwrap(),
            None
        );
        assert_eq!(
            Proxy::resolve(Some("none"), false, "h", env(vars)).unwrap(),
            None
        );
        assert_eq!(Proxy::resolve(None, false, "h", env(vars)).unwrap(), None);
        assert_eq!(
            Proxy::resolve(Some("http://p3:1"), false, "localhost", env(vars))
                .unwrap()
                .map(|p| p.port),
            Some(1)
        );
    }
}
