//! One HTTP/1.1 connection (optionally inside TLS), driven by hyper's low-level client.
//!
//! NTLM and Negotiate authenticate a TCP connection, not a request, so every request of a
//! session must travel on the same connection: a pool could move one elsewhere.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

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
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
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
        let tcp = match tokio::time::timeout(target.connect_timeout, connect_tcp(&target.host, target.port)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(Error::new(
                    Category::TimedOut,
                    format!("connecting to {addr}: no answer within {:?}", target.connect_timeout),
                ));
            }
        };
        let _ = tcp.set_nodelay(true);
        let (io, peer_certificate): (Box<dyn Io>, _) = match &target.tls {
            None => (Box::new(tcp), None),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
                    Error::new(Category::TlsFailure, format!("{:?} is not a valid TLS server name: {e}", target.host))
                })?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let tls = tokio::time::timeout(target.connect_timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| Error::new(Category::TimedOut, format!("TLS handshake with {addr} timed out")))?
                    .map_err(|e| tls_error(&addr, e))?;
                let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
                (Box::new(tls), cert)
            }
        };
        let (sender, conn) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| Error::new(Category::ConnectionFailed, format!("HTTP handshake with {addr}: {e}")))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("WS-Man connection ended: {e}");
            }
        });
        Ok(Connection { sender, driver, peer_certificate })
    }

    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed() && !self.driver.is_finished()
    }

    /// Sends one request and reads the whole reply within `read_timeout`.
    pub async fn send(&mut self, request: Request<Full<Bytes>>, read_timeout: Duration) -> Result<Reply, Error> {
        let exchange = async {
            self.sender
                .ready()
                .await
                .map_err(|e| Error::new(Category::ConnectionFailed, format!("connection lost: {e}")))?;
            let response: Response<hyper::body::Incoming> =
                self.sender.send_request(request).await.map_err(|e| hyper_error(&e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY).collect().await.map_err(|e| {
                match e.downcast_ref::<hyper::Error>() {
                    Some(h) => hyper_error(h),
                    None => Error::new(Category::ProtocolError, format!("reply body: {e}")),
                }
            })?;
            Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body: body.to_bytes() })
        };
        match tokio::time::timeout(read_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(Category::TimedOut, format!("no HTTP reply within {read_timeout:?}"))),
        }
    }
}

/// Resolves and connects, trying every address; maps failures to Unreachable.
async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, Error> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Error::new(Category::Unreachable, format!("resolving {host}: {e}")))?
        .collect();
    let mut last = Error::new(Category::Unreachable, format!("{host} resolved to no address"));
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Error::new(Category::Unreachable, format!("connecting to {addr}: {e}")),
        }
    }
    Err(last)
}

fn tls_error(addr: &str, e: std::io::Error) -> Error {
    // rustls reports handshake failures as InvalidData carrying a rustls::Error; other kinds
    // are the socket failing under the handshake.
    let is_tls = e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
        || e.kind() == std::io::ErrorKind::InvalidData;
    let category = if is_tls { Category::TlsFailure } else { Category::ConnectionFailed };
    Error::new(category, format!("TLS handshake with {addr}: {e}"))
}

fn hyper_error(e: &hyper::Error) -> Error {
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        Error::new(Category::ProtocolError, format!("malformed HTTP reply: {e}"))
    } else if e.is_timeout() {
        Error::new(Category::TimedOut, format!("HTTP: {e}"))
    } else {
        // Closed, reset, incomplete message, canceled: the connection broke under the request.
        let detail = std::error::Error::source(e).map(|s| format!(": {s}")).unwrap_or_default();
        Error::new(Category::ConnectionFailed, format!("connection lost: {e}{detail}"))
    }
}
