//! WS-Management (MS-WSMV / DSP0226), the default protocol.
//!
//! The message layer (envelopes, responses, faults) is sans-IO: pure functions over bytes,
//! so recorded Windows responses and fuzzers drive the same code as production. The
//! [`Transport`] is the I/O edge: one authenticated (and, for NTLM/Negotiate, sealed) HTTP
//! connection per session.

use futures::future::BoxFuture;

use crate::protocol::Error;

/// An HTTP response to one SOAP request, after message decryption.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    pub status: u16,
    /// The (inner, decrypted) Content-Type, which carries the charset.
    pub content_type: Option<String>,
    /// The body as received (no copy), or the unsealed plaintext.
    pub body: bytes::Bytes,
}

/// One WS-Man connection: sends a SOAP envelope, returns the reply.
///
/// Implementations own authentication and message encryption, and reconnect (re-authenticating
/// and resetting the sealing state) when the connection is lost.
pub trait Transport: Send {
    /// Sends one envelope (UTF-8 XML) and waits for the reply.
    fn exchange<'a>(&'a mut self, envelope: String) -> BoxFuture<'a, Result<HttpReply, Error>>;
    /// Sends an envelope that is safe to send again (Enumerate, Get, Release; never Pull): if
    /// the connection breaks before the reply, the transport reconnects, re-authenticates and
    /// resends it once. Transports that never resend keep the default.
    fn exchange_resendable<'a>(&'a mut self, envelope: String) -> BoxFuture<'a, Result<HttpReply, Error>> {
        self.exchange(envelope)
    }
    /// Closes the connection.
    fn shutdown<'a>(&'a mut self) -> BoxFuture<'a, ()>;
}

pub mod auth;
pub mod encryption;
pub mod envelope;
pub mod fault;
pub mod http;
pub mod response;
pub mod session;
pub mod tls;
pub mod transport;
pub mod uri;
pub(crate) mod xml;

pub use session::{WsManConnector, WsManSession};
