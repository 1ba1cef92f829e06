//! The WS-Man [`Transport`]: one authenticated, and over HTTP sealed, connection per session.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT, WWW_AUTHENTICATE,
};
use http::{HeaderMap, Request};
use http_body_util::Full;

use super::auth::{Package, SecurityContext, basic_authorization, tls_server_end_point};
use super::encryption::{build_body, check_length, is_encrypted_content_type, parse_body};
use super::http::{Connection, Proxy, Reply, Target};
use super::{HttpReply, Transport, tls};
use crate::protocol::{AuthMechanism, Category, Credential, Endpoint, Error};

/// Content-Type of a plain SOAP body, and of the plaintext inside a sealed one.
pub const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

/// How much longer than the operation timeout the HTTP read waits: the server answers a
/// timed-out operation with a fault at OperationTimeout, which must arrive before we give up.
/// A quarter of the operation timeout, between 1 and 30 seconds.
pub fn read_timeout(operation_timeout: Duration) -> Duration {
    operation_timeout
        + (operation_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// Handshake legs before giving up (NTLM needs 2, Kerberos 1 or 2, SPNEGO up to 3).
const MAX_AUTH_LEGS: usize = 6;

/// Opens a WS-Man connection to the endpoint: connects, authenticates, and returns it.
pub fn connect(endpoint: &Endpoint) -> BoxFuture<'_, Result<Box<dyn Transport>, Error>> {
    Box::pin(async move {
        let mut transport = HttpTransport::new(endpoint)?;
        transport.ensure_connected().await?;
        Ok(Box::new(transport) as Box<dyn Transport>)
    })
}

/// The WS-Man [`Connector`](crate::protocol::Connector): sessions over this transport.
pub fn connector() -> super::WsManConnector {
    super::WsManConnector::new(std::sync::Arc::new(connect))
}

/// The `Authorization` value of client certificate authentication: the `https/mutual` security
/// profile (DSP0226 Annex C.3.5, MS-WSMV 2.2.4.4). The certificate itself is presented in the
/// TLS handshake.
pub const CLIENT_CERTIFICATE_AUTHORIZATION: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual";

enum AuthPlan {
    /// The `Authorization` header sent with every request: Basic credentials, or the
    /// client-certificate profile.
    Header(String),
    Sspi(Package),
}

/// A WS-Man HTTP(S) transport. Built by [`connect`]; public for tests that drive it directly.
pub struct HttpTransport {
    target: Target,
    path: String,
    host_header: String,
    auth: AuthPlan,
    credential: Option<Credential>,
    /// Seal bodies (NTLM/Negotiate/Kerberos over plain HTTP, unless no_encryption).
    seal: bool,
    spn: String,
    read_timeout: Duration,
    connection: Option<Connection>,
    context: Option<SecurityContext>,
    /// The handshake's last leg (`Authorization` value), to go with the first sealed request.
    last_leg: Option<String>,
    /// Whether the last leg may ride on the first request (`auth_with_first_request`); cleared
    /// for good when a server answers such a request as a bare handshake.
    combine_last_leg: bool,
    /// The server's verdict on the credential, once it refused Basic credentials or a last
    /// leg that rode on a request: kept, so the session's next operations fail with it instead
    /// of logging on (and failing) again, which would count towards the account's lockout.
    refused: Option<Error>,
}

/// What a reply to a request that carried the handshake's last leg showed.
enum LastLeg {
    /// The server authenticated the connection and answered the request.
    Answered,
    /// The server took the handshake but not the request: it must be sent again, on a
    /// connection authenticated the usual way (its sequence numbers are now out of step).
    BodyIgnored,
}

impl HttpTransport {
    /// Checks the endpoint's settings (refusing unsafe combinations) without connecting.
    pub fn new(endpoint: &Endpoint) -> Result<HttpTransport, Error> {
        let settings = &endpoint.wsman;
        let host = endpoint
            .computer
            .clone()
            .unwrap_or_else(|| "localhost".to_string());
        let port = endpoint.port.unwrap_or(settings.default_port());
        let https = settings.use_ssl;
        let refuse = |message: String| Error::new(Category::Unsupported, message);

        let certificate = settings.client_certificate.is_some();
        if certificate && endpoint.authentication != AuthMechanism::Default {
            return Err(refuse(format!(
                "a client certificate authenticates the session by itself; {:?} authentication cannot be combined with it",
                endpoint.authentication
            )));
        }
        let auth = match endpoint.authentication {
            AuthMechanism::Default if certificate => {
                if !https {
                    return Err(refuse("client certificate authentication needs HTTPS (use_ssl)".into()));
                }
                AuthPlan::Header(CLIENT_CERTIFICATE_AUTHORIZATION.to_string())
            }
            AuthMechanism::Basic => {
                if !https && !settings.allow_unencrypted {
                    return Err(refuse(
                        "Basic authentication over HTTP sends the password in clear; use HTTPS or set allow_unencrypted"
                            .into(),
                    ));
                }
                let credential = endpoint
                    .credential
                    .as_ref()
                    .ok_or_else(|| refuse("Basic authentication needs a credential".into()))?;
                AuthPlan::Header(basic_authorization(credential))
            }
            AuthMechanism::Default | AuthMechanism::Negotiate => AuthPlan::Sspi(Package::Negotiate),
            AuthMechanism::Ntlm => AuthPlan::Sspi(Package::Ntlm),
            AuthMechanism::Kerberos => AuthPlan::Sspi(Package::Kerberos),
            AuthMechanism::Digest | AuthMechanism::CredSsp => {
                return Err(refuse(format!(
                    "{:?} authentication is not supported over WS-Man",
                    endpoint.authentication
                )));
            }
        };
        if matches!(auth, AuthPlan::Sspi(_)) {
            if endpoint.credential.is_none() {
                return Err(refuse(
                    "NTLM, Negotiate and Kerberos need an explicit credential (the current user's logon is not used)".into(),
                ));
            }
            if !https && settings.no_encryption && !settings.allow_unencrypted {
                return Err(refuse(
                    "no_encryption over HTTP would send every message in clear; use HTTPS or set allow_unencrypted".into(),
                ));
            }
        }
        let seal = matches!(auth, AuthPlan::Sspi(_)) && !https && !settings.no_encryption;
        let tls = if https {
            Some(tls::setup(settings)?)
        } else {
            None
        };
        let proxy = Proxy::resolve(settings.proxy.as_deref(), https, &host, |name| {
            std::env::var(name).ok()
        })?;

        let service = settings.spn_service.as_deref().unwrap_or("HTTP");
        let spn = if settings.encode_port_in_spn {
            format!("{service}/{host}:{port}")
        } else {
            format!("{service}/{host}")
        };
        let host_header = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut path = settings.http_prefix.clone();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        Ok(HttpTransport {
            target: Target {
                host: host.trim_matches(['[', ']']).to_string(),
                port,
                tls,
                connect_timeout: endpoint.connect_timeout,
                proxy,
            },
            path,
            host_header,
            auth,
            credential: endpoint.credential.clone(),
            seal,
            spn,
            read_timeout: read_timeout(endpoint.operation_timeout),
            connection: None,
            context: None,
            last_leg: None,
            combine_last_leg: settings.auth_with_first_request,
            refused: None,
        })
    }

    /// Whether request bodies are sealed on this transport.
    pub fn seals(&self) -> bool {
        self.seal
    }

    /// Connects and authenticates unless the current connection is still usable. A new
    /// connection always gets a new security context: sequence numbers start over.
    pub async fn ensure_connected(&mut self) -> Result<(), Error> {
        if let Some(e) = &self.refused {
            return Err(e.clone());
        }
        if self.connection.as_ref().is_some_and(Connection::is_open) {
            return Ok(());
        }
        self.drop_connection();
        let mut connection = Connection::open(&self.target).await?;
        if let AuthPlan::Sspi(package) = self.auth {
            let (context, last_leg) = self.authenticate(&mut connection, package).await?;
            self.context = Some(context);
            self.last_leg = last_leg;
        }
        self.connection = Some(connection);
        Ok(())
    }

    fn drop_connection(&mut self) {
        self.connection = None;
        self.context = None;
        self.last_leg = None;
    }

    /// Runs the handshake on empty POSTs. When sealing, the leg that carries NTLM's
    /// AUTHENTICATE is not sent alone: it is returned, to go with the first sealed request,
    /// as Windows' own client does, which saves a round trip per connection.
    async fn authenticate(
        &self,
        connection: &mut Connection,
        package: Package,
    ) -> Result<(SecurityContext, Option<String>), Error> {
        let credential = self
            .credential
            .as_ref()
            .ok_or_else(|| Error::new(Category::AuthFailed, "no credential"))?;
        let bindings = connection
            .peer_certificate
            .as_deref()
            .map(tls_server_end_point);
        let mut context = SecurityContext::new(
            package,
            credential,
            self.spn.clone(),
            bindings,
            self.target.connect_timeout,
        )?;
        let scheme = package.http_scheme();
        let mut input: Option<Vec<u8>> = None;
        for _ in 0..MAX_AUTH_LEGS {
            let step = step_context(&mut context, input.as_deref())?;
            let authorization = format!("{scheme} {}", B64.encode(&step.token));
            if self.seal && self.combine_last_leg && step.authenticate && context.seal_early() {
                return Ok((context, Some(authorization)));
            }
            let request = self.request(Some(&authorization), None, Bytes::new())?;
            let reply = connection.send(request, self.read_timeout).await?;
            let server_token = auth_token(&reply.headers, scheme)?;
            match reply.status {
                200 => {
                    // Kerberos mutual authentication: the last token rides on the 200.
                    if let (false, Some(token)) = (context.is_complete(), server_token) {
                        step_context(&mut context, Some(&token))?;
                    }
                    return if context.is_complete() {
                        Ok((context, None))
                    } else {
                        Err(unfinished())
                    };
                }
                401 => match server_token {
                    Some(token) if !step.complete => input = Some(token),
                    _ => return Err(rejected(scheme)),
                },
                status => return Err(status_error(status, "during authentication")),
            }
        }
        Err(Error::new(
            Category::AuthFailed,
            format!("{scheme} handshake did not finish in {MAX_AUTH_LEGS} legs"),
        ))
    }

    fn request(
        &self,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, Error> {
        let mut builder = Request::post(self.path.as_str())
            .header(HOST, &self.host_header)
            .header(USER_AGENT, concat!("cimrun/", env!("CARGO_PKG_VERSION")))
            .header(CONTENT_LENGTH, body.len());
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value);
        }
        if let Some(value) = content_type {
            builder = builder.header(CONTENT_TYPE, value);
        }
        builder.body(Full::new(body)).map_err(|e| {
            Error::new(
                Category::Unsupported,
                format!("cannot build the HTTP request: {e}"),
            )
        })
    }

    /// Seals (when required) and frames one envelope; the request carries the handshake's
    /// last leg when that is still to be sent.
    fn envelope_request(&mut self, envelope: &str) -> Result<Request<Full<Bytes>>, Error> {
        let basic = match &self.auth {
            AuthPlan::Header(header) => Some(header.clone()),
            AuthPlan::Sspi(_) => None,
        };
        if !self.seal {
            let body = Bytes::copy_from_slice(envelope.as_bytes());
            return self.request(basic.as_deref(), Some(SOAP_CONTENT_TYPE), body);
        }
        let context = self.context.as_mut().ok_or_else(not_authenticated)?;
        let protocol = context.package().seal_protocol();
        let (signature, sealed) = context.seal(envelope.as_bytes())?;
        let body = build_body(
            protocol,
            SOAP_CONTENT_TYPE,
            envelope.len(),
            &signature,
            &sealed,
        )?;
        let last_leg = self.last_leg.take();
        self.request(last_leg.as_deref(), Some(&protocol.content_type()), Bytes::from(body))
    }

    /// Finishes a handshake whose last leg rode on a request, from that request's reply:
    /// a 401 is the verdict on the credential (never retried: each try is a failed logon);
    /// a sealed reply brings SPNEGO's final token, stepped before the reply is unsealed.
    fn finish_last_leg(&mut self, reply: &Reply) -> Result<LastLeg, Error> {
        let AuthPlan::Sspi(package) = self.auth else {
            return Ok(LastLeg::Answered);
        };
        let scheme = package.http_scheme();
        if reply.status == 401 {
            return Err(rejected(scheme));
        }
        if !is_sealed(reply) {
            // An empty 200 is a server that took the handshake alone; an unsealed failure
            // may be the same server refusing the combination. Either way nothing ran.
            return Ok(LastLeg::BodyIgnored);
        }
        let context = self.context.as_mut().ok_or_else(not_authenticated)?;
        if !context.is_complete() {
            let token = auth_token(&reply.headers, scheme)?.ok_or_else(unfinished)?;
            step_context(context, Some(&token))?;
            if !context.is_complete() {
                return Err(unfinished());
            }
        }
        Ok(LastLeg::Answered)
    }

    /// Turns an HTTP reply into the plaintext reply, unsealing and verifying it.
    fn open_reply(&mut self, reply: Reply) -> Result<HttpReply, Error> {
        if reply.status == 401 {
            // Header-based schemes have no handshake: their first 401 is the verdict on the credential.
            let message = match &self.auth {
                AuthPlan::Header(h) if h == CLIENT_CERTIFICATE_AUTHORIZATION => {
                    "the server refused the client certificate (HTTP 401): is it mapped to an account?"
                }
                AuthPlan::Header(_) => {
                    "Basic authentication rejected by the server (wrong user name or password?)"
                }
                AuthPlan::Sspi(_) => "HTTP 401 on an authenticated connection",
            };
            return Err(Error::new(Category::AuthFailed, message).with_code("401"));
        }
        let content_type = content_type(&reply.headers).map(str::to_string);
        if is_sealed(&reply) {
            let context = self.context.as_mut().ok_or_else(|| {
                Error::new(
                    Category::ProtocolError,
                    "sealed reply on a connection without message encryption",
                )
            })?;
            let parts = parse_body(&reply.body)?;
            if parts.protocol != context.package().seal_protocol() {
                return Err(Error::new(
                    Category::ProtocolError,
                    format!("reply sealed with {}", parts.protocol),
                ));
            }
            let signature = parts.signature.to_vec();
            let outside =
                || Error::new(Category::ProtocolError, "sealed data outside the reply body");
            let sealed = parts.sealed_range();
            let (original_type, declared) = (parts.original_type, parts.original_len);
            // Unsealed in place: the body is ours unless the HTTP layer still shares its
            // buffer, and then one copy makes it ours.
            let mut body = reply
                .body
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
            let data = body.get_mut(sealed.clone()).ok_or_else(outside)?;
            let len = context.unseal(&signature, data)?;
            check_length(declared, len)?;
            return Ok(HttpReply {
                status: reply.status,
                content_type: Some(original_type),
                body: body.freeze().slice(sealed.start..sealed.start + len),
            });
        }
        // An unsealed success on a sealed session would be unauthenticated data; Windows sends
        // some failures (400, 500 with an empty body) in clear, which the message layer reports.
        if self.seal && reply.status == 200 {
            return Err(Error::new(
                Category::ProtocolError,
                "unsealed reply on a session with message encryption",
            ));
        }
        Ok(HttpReply {
            status: reply.status,
            content_type,
            body: reply.body,
        })
    }

    async fn send_envelope(
        &mut self,
        envelope: String,
        resendable: bool,
    ) -> Result<HttpReply, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.ensure_connected().await?;
            let with_last_leg = self.last_leg.is_some();
            let request = self.envelope_request(&envelope)?;
            let connection = self.connection.as_mut().ok_or_else(not_authenticated)?;
            match connection.send(request, self.read_timeout).await {
                Ok(reply) => {
                    if with_last_leg {
                        match self.finish_last_leg(&reply) {
                            Ok(LastLeg::Answered) => {}
                            Ok(LastLeg::BodyIgnored) => {
                                tracing::debug!(
                                    status = reply.status,
                                    "the server did not take a request with the handshake's last leg; authenticating first"
                                );
                                self.combine_last_leg = false;
                                self.drop_connection();
                                attempt -= 1;
                                continue;
                            }
                            Err(e) => {
                                self.drop_connection();
                                if e.category == Category::AuthFailed {
                                    self.refused = Some(e.clone());
                                }
                                return Err(e);
                            }
                        }
                    }
                    let result = self.open_reply(reply);
                    if let Err(e) = &result {
                        // A reply we could not open leaves the sealing state unknown.
                        self.drop_connection();
                        // Basic's (or a certificate's) 401 is the verdict on the credential.
                        if e.category == Category::AuthFailed && matches!(self.auth, AuthPlan::Header(_)) {
                            self.refused = Some(e.clone());
                        }
                    }
                    return result;
                }
                Err(e) => {
                    // Lost or timed out: the reply may still come, so the connection is done.
                    self.drop_connection();
                    if e.category == Category::ConnectionFailed && resendable && attempt < 2 {
                        tracing::debug!("resending after a lost connection: {e}");
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// Runs a handshake leg. Kerberos legs may talk to the KDC synchronously (sspi's network
/// client is blocking), so on a multi-threaded runtime they run as blocking sections rather
/// than stall the other sessions sharing the worker.
fn step_context(
    context: &mut SecurityContext,
    input: Option<&[u8]>,
) -> Result<super::auth::Step, Error> {
    let may_block = context.package() != Package::Ntlm
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if may_block {
        tokio::task::block_in_place(|| context.step(input))
    } else {
        context.step(input)
    }
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// Whether a reply's body is sealed (`multipart/encrypted`).
fn is_sealed(reply: &Reply) -> bool {
    content_type(&reply.headers).is_some_and(is_encrypted_content_type)
}

fn rejected(scheme: &str) -> Error {
    Error::new(
        Category::AuthFailed,
        format!("{scheme} authentication rejected by the server (wrong user name or password?)"),
    )
    .with_code("401")
}

fn unfinished() -> Error {
    Error::new(Category::AuthFailed, "the server accepted an unfinished handshake")
}

fn not_authenticated() -> Error {
    Error::new(
        Category::ConnectionFailed,
        "the connection is not authenticated",
    )
}

fn status_error(status: u16, context: &str) -> Error {
    let category = match status {
        403 => Category::AccessDenied,
        404 => Category::NotFound,
        _ => Category::ProtocolError,
    };
    Error::new(category, format!("unexpected HTTP {status} {context}"))
        .with_code(status.to_string())
}

/// The token of a `WWW-Authenticate: <scheme> <base64>` header, if the server sent one.
fn auth_token(headers: &HeaderMap, scheme: &str) -> Result<Option<Vec<u8>>, Error> {
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(value) = value.to_str() else { continue };
        // Several challenges may share one header, comma-separated.
        for challenge in value.split(',') {
            let challenge = challenge.trim();
            let Some((name, token)) = challenge.split_once(' ') else {
                continue;
            };
            if name.eq_ignore_ascii_case(scheme) && !token.trim().is_empty() {
                let token = B64.decode(token.trim()).map_err(|e| {
                    Error::new(
                        Category::ProtocolError,
                        format!("WWW-Authenticate {scheme} token is not base64: {e}"),
                    )
                })?;
                return Ok(Some(token));
            }
        }
    }
    Ok(None)
}

impl Transport for HttpTransport {
    fn exchange<'a>(&'a mut self, envelope: String) -> BoxFuture<'a, Result<HttpReply, Error>> {
        Box::pin(self.send_envelope(envelope, false))
    }

    fn exchange_resendable<'a>(
        &'a mut self,
        envelope: String,
    ) -> BoxFuture<'a, Result<HttpReply, Error>> {
        Box::pin(self.send_envelope(envelope, true))
    }

    fn shutdown<'a>(&'a mut self) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.drop_connection() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::WsManSettings;
    use secrecy::SecretString;

    fn endpoint(mechanism: AuthMechanism, settings: WsManSettings) -> Endpoint {
        let mut e = Endpoint::local();
        e.computer = Some("srv01.example.com".into());
        e.protocol = crate::protocol::ProtocolKind::WsMan;
        e.authentication = mechanism;
        e.credential = Some(Credential {
            username: "EX\\ops".into(),
            password: SecretString::from("pw".to_string()),
        });
        e.wsman = settings;
        e
    }

    #[test]
    fn refuses_unsafe_combinations() {
        let basic_http =
            HttpTransport::new(&endpoint(AuthMechanism::Basic, WsManSettings::default()));
        assert_eq!(
            basic_http.err().map(|e| e.category),
            Some(Category::Unsupported)
        );
        let allowed = WsManSettings {
            allow_unencrypted: true,
            ..Default::default()
        };
        assert!(HttpTransport::new(&endpoint(AuthMechanism::Basic, allowed.clone())).is_ok());
        let https = WsManSettings {
            use_ssl: true,
            ..Default::default()
        };
        assert!(HttpTransport::new(&endpoint(AuthMechanism::Basic, https.clone())).is_ok());

        let clear = WsManSettings {
            no_encryption: true,
            ..Default::default()
        };
        let refused = HttpTransport::new(&endpoint(AuthMechanism::Negotiate, clear.clone()));
        assert_eq!(
            refused.err().map(|e| e.category),
            Some(Category::Unsupported)
        );
        let t = HttpTransport::new(&endpoint(
            AuthMechanism::Ntlm,
            WsManSettings {
                allow_unencrypted: true,
                ..clear
            },
        ))
        .unwrap();
        assert!(!t.seals());
        assert!(
            HttpTransport::new(&endpoint(AuthMechanism::Ntlm, WsManSettings::default()))
                .unwrap()
                .seals()
        );
        assert!(
            !HttpTransport::new(&endpoint(AuthMechanism::Ntlm, https))
                .unwrap()
                .seals()
        );

        let mut no_cred = endpoint(AuthMechanism::Ntlm, WsManSettings::default());
        no_cred.credential = None;
        assert_eq!(
            HttpTransport::new(&no_cred).err().map(|e| e.category),
            Some(Category::Unsupported)
        );
        let credssp =
            HttpTransport::new(&endpoint(AuthMechanism::CredSsp, WsManSettings::default()));
        assert_eq!(
            credssp.err().map(|e| e.category),
            Some(Category::Unsupported)
        );
    }

    #[test]
    fn spn_port_and_prefix() {
        let settings = WsManSettings {
            spn_service: Some("WSMAN".into()),
            encode_port_in_spn: true,
            http_prefix: "custom".into(),
            ..Default::default()
        };
        let mut e = endpoint(AuthMechanism::Kerberos, settings);
        e.port = Some(8080);
        let t = HttpTransport::new(&e).unwrap();
        assert_eq!(t.spn, "WSMAN/srv01.example.com:8080");
        assert_eq!(t.path, "/custom");
        assert_eq!(t.host_header, "srv01.example.com:8080");
        let t = HttpTransport::new(&endpoint(AuthMechanism::Kerberos, WsManSettings::default()))
            .unwrap();
        assert_eq!(
            (t.spn.as_str(), t.target.port),
            ("HTTP/srv01.example.com", 5985)
        );
    }

    #[test]
    fn read_timeout_is_above_the_operation_timeout() {
        assert_eq!(
            read_timeout(Duration::from_secs(60)),
            Duration::from_secs(75)
        );
        assert_eq!(read_timeout(Duration::from_secs(2)), Duration::from_secs(3));
        assert_eq!(
            read_timeout(Duration::from_secs(600)),
            Duration::from_secs(630)
        );
    }

    #[test]
    fn finds_the_scheme_token() {
        let mut headers = HeaderMap::new();
        headers.append(WWW_AUTHENTICATE, "Basic realm=\"WSMAN\"".parse().unwrap());
        headers.append(WWW_AUTHENTICATE, "Negotiate TlRMTVNTUAAC".parse().unwrap());
        assert_eq!(
            auth_token(&headers, "negotiate").unwrap(),
            Some(b"NTLMSSP\0\x02".to_vec())
        );
        assert_eq!(auth_token(&headers, "Kerberos").unwrap(), None);
        headers.append(WWW_AUTHENTICATE, "Kerberos !!!".parse().unwrap());
        assert_eq!(
            auth_token(&headers, "Kerberos").unwrap_err().category,
            Category::ProtocolError
        );
    }
}
