//! The WS-Man session: Enumerate → Pull* over one [`Transport`], with Release of abandoned
//! enumerations and the retries the protocol itself calls for (a larger MaxEnvelopeSize).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};

use super::envelope::{self, EnumerateBody, Headers, Message};
use super::response::{self, Expect, Limits, Reply};
use super::uri::{self, Scheme};
use super::{HttpReply, Transport};
use crate::cim::Instance;
use crate::protocol::{Category, Connector, Endpoint, Error, Page, QuerySpec, Session};

/// Per-session settings derived from the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// The listener URL, sent as wsa:To.
    pub to: String,
    pub scheme: Scheme,
    /// MaxEnvelopeSize first asked for, in bytes.
    pub max_envelope_size: u32,
    /// Largest MaxEnvelopeSize a retry after an envelope-too-large fault may ask for.
    pub max_envelope_cap: u32,
    pub operation_timeout: Duration,
    pub locale: String,
    pub data_locale: String,
    /// Items per Enumerate/Pull response asked for; the server sends fewer to fit the envelope.
    pub max_elements: u32,
    pub limits: Limits,
}

/// Pulls that time out with no items are asked again this many times.
const PULL_TIMEOUT_RETRIES: u32 = 2;

/// The most a retry asks for. Windows clamps a larger MaxEnvelopeSize to its own
/// MaxEnvelopeSizekb (MS-WSMV 3.1.4.1.7), so asking is harmless; the cap bounds what one
/// response may make us hold.
const ENVELOPE_CAP: u32 = 8 << 20;

impl SessionConfig {
    /// Settings for an endpoint: URL from computer, port, TLS and prefix; locales from the cultures.
    pub fn from_endpoint(ep: &Endpoint) -> SessionConfig {
        let w = &ep.wsman;
        let scheme = if w.use_ssl { "https" } else { "http" };
        let host = ep.computer.as_deref().unwrap_or("localhost");
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
        let prefix = if w.http_prefix.starts_with('/') { w.http_prefix.clone() } else { format!("/{}", w.http_prefix) };
        let size = w.max_envelope_size_kb.saturating_mul(1024).max(8192);
        SessionConfig {
            to: format!("{scheme}://{host}:{}{prefix}", ep.port.unwrap_or(w.default_port())),
            scheme: if w.dmtf_resource_uris { Scheme::Dmtf } else { Scheme::Wmi },
            max_envelope_size: size,
            max_envelope_cap: ENVELOPE_CAP.max(size),
            operation_timeout: ep.operation_timeout,
            locale: w.culture.clone().unwrap_or_else(|| "en-US".into()),
            data_locale: w.ui_culture.clone().or_else(|| w.culture.clone()).unwrap_or_else(|| "en-US".into()),
            max_elements: 32000,
            limits: Limits::default(),
        }
    }
}

/// An enumeration the server still holds and we no longer read: released before the next
/// operation or on close.
#[derive(Debug, Clone)]
struct Open {
    headers: Headers,
    context: String,
}

/// A WS-Man session over one transport.
pub struct WsManSession {
    transport: Box<dyn Transport>,
    config: SessionConfig,
    open: Option<Open>,
}

impl WsManSession {
    /// A session over an already connected (and authenticated) transport.
    pub fn new(transport: Box<dyn Transport>, config: SessionConfig) -> WsManSession {
        WsManSession { transport, config, open: None }
    }

    fn headers(&self, resource_uri: String, selectors: Vec<(String, String)>) -> Headers {
        Headers {
            to: self.config.to.clone(),
            resource_uri,
            selectors,
            max_envelope_size: self.config.max_envelope_size,
            operation_timeout: self.config.operation_timeout,
            locale: self.config.locale.clone(),
            data_locale: self.config.data_locale.clone(),
        }
    }

    /// Releases an abandoned enumeration. Failure is not the caller's problem: the server
    /// expires the context on its own, so errors are only logged.
    async fn release_open(&mut self) {
        if let Some(open) = self.open.take() {
            let id = envelope::new_message_id();
            match envelope::release(&open.headers, &id, &open.context) {
                Ok(msg) => {
                    if let Err(e) = self.transport.exchange_resendable(msg.xml).await {
                        tracing::debug!(error = %e, "releasing an abandoned enumeration failed");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot build a Release"),
            }
        }
    }

    /// Sends one request built by `build` (retrying once with a larger MaxEnvelopeSize when the
    /// server says the response would not fit) and parses the reply. Only a `resendable`
    /// request may be sent again by the transport after a broken connection: a repeated Pull
    /// would skip a page, so an enumeration is restarted instead.
    async fn round_trip(
        &mut self,
        headers: &mut Headers,
        build: &(dyn Fn(&Headers, &str) -> Result<Message, Error> + Send + Sync),
        class: &str,
        arrays: &[String],
        resendable: bool,
    ) -> Result<response::Page, Error> {
        let mut retried = false;
        loop {
            let msg = build(headers, &envelope::new_message_id())?;
            let reply = if resendable {
                self.transport.exchange_resendable(msg.xml).await?
            } else {
                self.transport.exchange(msg.xml).await?
            };
            let expect =
                Expect { class, arrays, relates_to: Some(&msg.message_id), limits: self.config.limits.clone() };
            match interpret(&reply, &expect) {
                Err(e)
                    if e.category == Category::EnvelopeTooLarge
                        && !retried
                        && headers.max_envelope_size < self.config.max_envelope_cap =>
                {
                    retried = true;
                    headers.max_envelope_size =
                        headers.max_envelope_size.saturating_mul(4).min(self.config.max_envelope_cap);
                    tracing::debug!(size = headers.max_envelope_size, "retrying with a larger MaxEnvelopeSize");
                }
                other => return other,
            }
        }
    }

    /// Runs one step of an enumeration: the Enumerate (no context) or a Pull.
    async fn step(&mut self, query: &QuerySpec, state: &mut Step) -> Result<Page, Error> {
        let arrays = query.arrays.as_slice();
        let class = query.class_name();
        let page = match std::mem::replace(state, Step::Done) {
            Step::Start => {
                self.release_open().await;
                let res = uri::resource(query, self.config.scheme);
                let mut headers = self.headers(res.uri, res.selectors);
                let body = EnumerateBody {
                    max_elements: self.config.max_elements,
                    filter: res.filter,
                    key_only: query.key_only,
                };
                let page = self
                    .round_trip(&mut headers, &|h, id| envelope::enumerate(h, id, &body), class, arrays, true)
                    .await?;
                (headers, page)
            }
            Step::Pull(mut headers, context) => {
                let max = self.config.max_elements;
                let mut timeouts = 0;
                let result = loop {
                    let r = self
                        .round_trip(&mut headers, &|h, id| envelope::pull(h, id, &context, max), class, arrays, false)
                        .await;
                    // WS-Enumeration keeps the context valid after a Pull times out with no
                    // items (a slow provider), so ask again before giving up on the enumeration.
                    match r {
                        Err(e) if e.category == Category::TimedOut && timeouts < PULL_TIMEOUT_RETRIES => {
                            timeouts += 1;
                            tracing::debug!(error = %e, "Pull timed out; pulling again");
                        }
                        other => break other,
                    }
                };
                match result {
                    Ok(p) => (headers, p),
                    Err(e) => {
                        // The server may still hold the context unless it said it does not.
                        self.open =
                            (e.category != Category::InvalidEnumerationContext).then_some(Open { headers, context });
                        return Err(e);
                    }
                }
            }
            Step::Done => return Ok(Vec::new()),
        };
        let (headers, page) = page;
        match (page.end_of_sequence, page.context) {
            (true, _) => self.open = None,
            (false, Some(ctx)) => {
                self.open = Some(Open { headers: headers.clone(), context: ctx.clone() });
                *state = Step::Pull(headers, ctx);
            }
            (false, None) => {
                self.open = None;
                return Err(Error::new(
                    Category::ProtocolError,
                    "the server neither ended the enumeration nor gave a context to continue it",
                ));
            }
        }
        Ok(page.items)
    }

    /// Gets one instance with WS-Transfer Get, addressed by a resource URI and its key selectors.
    pub async fn get(
        &mut self,
        resource_uri: &str,
        selectors: Vec<(String, String)>,
        class: &str,
    ) -> Result<Instance, Error> {
        self.release_open().await;
        let mut headers = self.headers(resource_uri.to_string(), selectors);
        let page = self.round_trip(&mut headers, &|h, id| envelope::get(h, id), class, &[], true).await?;
        page.items
            .into_iter()
            .next()
            .ok_or_else(|| Error::new(Category::ProtocolError, "the Get response holds no instance"))
    }
}

/// Where an enumeration stands.
enum Step {
    Start,
    Pull(Headers, String),
    Done,
}

/// Maps an HTTP reply to a page or the error it carries.
fn interpret(reply: &HttpReply, expect: &Expect<'_>) -> Result<response::Page, Error> {
    let parsed = response::parse(&reply.body, reply.content_type.as_deref(), expect);
    match (reply.status, parsed) {
        (_, Ok(Reply::Fault(f))) => Err(f.to_error()),
        (200, Ok(Reply::Page(p))) => Ok(p),
        (200, Err(e)) => Err(e),
        (status, _) => {
            let category = match status {
                401 => Category::AuthFailed,
                403 => Category::AccessDenied,
                500..=599 => Category::ServerFault,
                _ => Category::ProtocolError,
            };
            Err(Error::new(category, format!("HTTP status {status} without a WS-Man fault"))
                .with_code(status.to_string()))
        }
    }
}

impl Session for WsManSession {
    fn enumerate<'a>(&'a mut self, query: &'a QuerySpec) -> BoxStream<'a, Result<Page, Error>> {
        stream::unfold((self, Step::Start), move |(session, mut state)| async move {
            if matches!(state, Step::Done) {
                return None;
            }
            match session.step(query, &mut state).await {
                Ok(page) => Some((Ok(page), (session, state))),
                Err(e) => Some((Err(e), (session, Step::Done))),
            }
        })
        .boxed()
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move {
            self.release_open().await;
            self.transport.shutdown().await;
            Ok(())
        })
    }
}

/// Opens a transport for an endpoint (connect, authenticate).
pub type ConnectFn =
    Arc<dyn for<'e> Fn(&'e Endpoint) -> BoxFuture<'e, Result<Box<dyn Transport>, Error>> + Send + Sync>;

/// The WS-Man [`Connector`]: a transport factory and the session on top of it.
#[derive(Clone)]
pub struct WsManConnector {
    connect: ConnectFn,
}

impl WsManConnector {
    /// A connector that opens transports with `connect`.
    pub fn new(connect: ConnectFn) -> WsManConnector {
        WsManConnector { connect }
    }
}

impl Connector for WsManConnector {
    fn open<'a>(&'a self, endpoint: &'a Endpoint) -> BoxFuture<'a, Result<Box<dyn Session>, Error>> {
        Box::pin(async move {
            let transport = (self.connect)(endpoint).await?;
            Ok(Box::new(WsManSession::new(transport, SessionConfig::from_endpoint(endpoint))) as Box<dyn Session>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_endpoint() {
        let mut ep = Endpoint::local();
        ep.computer = Some("fe80::1".into());
        ep.wsman.use_ssl = true;
        ep.wsman.http_prefix = "custom".into();
        ep.wsman.max_envelope_size_kb = 1;
        ep.wsman.dmtf_resource_uris = true;
        ep.wsman.culture = Some("de-DE".into());
        let c = SessionConfig::from_endpoint(&ep);
        assert_eq!(c.to, "https://[fe80::1]:5986/custom");
        assert_eq!(c.scheme, Scheme::Dmtf);
        // DSP0226 lets servers refuse less than 8192 octets.
        assert_eq!(c.max_envelope_size, 8192);
        assert_eq!((c.locale.as_str(), c.data_locale.as_str()), ("de-DE", "de-DE"));

        ep.computer = Some("srv.example".into());
        ep.port = Some(8080);
        ep.wsman = Default::default();
        ep.wsman.ui_culture = Some("fr-FR".into());
        let c = SessionConfig::from_endpoint(&ep);
        assert_eq!(c.to, "http://srv.example:8080/wsman");
        assert_eq!((c.scheme, c.max_envelope_size), (Scheme::Wmi, 512 * 1024));
        assert_eq!((c.locale.as_str(), c.data_locale.as_str()), ("en-US", "fr-FR"));
    }

    #[test]
    fn http_statuses_without_a_fault() {
        let expect = Expect::default();
        let reply = |status: u16, body: &str| HttpReply { status, content_type: None, body: body.as_bytes().to_vec().into() };
        let cat = |r: HttpReply| interpret(&r, &expect).unwrap_err().category;
        assert_eq!(cat(reply(403, "")), Category::AccessDenied);
        assert_eq!(cat(reply(502, "<html/>")), Category::ServerFault);
        assert_eq!(cat(reply(415, "")), Category::ProtocolError);
    }
}
