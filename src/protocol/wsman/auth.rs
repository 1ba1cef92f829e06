//! Authentication of a WS-Man connection: Basic, and NTLM / Negotiate / Kerberos through `sspi`.
//!
//! The SSPI mechanisms authenticate the TCP connection with a handshake on empty POSTs
//! (`Authorization: Negotiate <token>` / `WWW-Authenticate: Negotiate <token>`) and then seal
//! every body with the established context. NTLM's last leg (AUTHENTICATE) goes with the first
//! sealed request instead, as Windows' own client sends it ([`SecurityContext::seal_early`]).
//! The context carries the sequence numbers of both directions, so it lives exactly as long as
//! the connection it authenticated.
//!
//! Once an NTLM handshake (raw or under SPNEGO) completes, bodies are sealed with our own
//! [`NtlmSession`], which works in place on the reply buffer; sspi keeps Kerberos.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::ExposeSecret;
use sspi::network_client::NetworkClient;
use sspi::ntlm::NtlmConfig;
use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, ClientRequestFlags, Credentials,
    CredentialsBuffers, DataRepresentation, EncryptionFlags, KdcResolution, Kerberos,
    KerberosConfig, Negotiate, NegotiateConfig, NegotiatedProtocol, NetworkProtocol,
    NetworkRequest, Ntlm, SecurityBuffer, SecurityBufferRef, SecurityStatus, Sspi, SspiImpl,
    Username,
};

use super::encryption::SealProtocol;
use crate::protocol::ntlm::{NtlmSession, Side, authenticate_flags, find_authenticate, workstation};
use crate::protocol::{Category, Credential, Error};

/// Which SSPI package authenticates the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Package {
    /// Raw NTLM tokens under the `Negotiate` HTTP scheme, as pywinrm's `ntlm` transport sends.
    Ntlm,
    /// SPNEGO: Kerberos when a KDC is reachable, NTLM otherwise.
    Negotiate,
    /// Kerberos tokens under the `Kerberos` HTTP scheme.
    Kerberos,
}

impl Package {
    /// The HTTP authentication scheme the tokens travel under.
    pub fn http_scheme(self) -> &'static str {
        match self {
            Package::Ntlm | Package::Negotiate => "Negotiate",
            Package::Kerberos => "Kerberos",
        }
    }

    /// The protocol named in sealed bodies.
    pub fn seal_protocol(self) -> SealProtocol {
        match self {
            Package::Ntlm | Package::Negotiate => SealProtocol::Spnego,
            Package::Kerberos => SealProtocol::Kerberos,
        }
    }
}

/// The `Authorization` value for Basic authentication.
pub fn basic_authorization(credential: &Credential) -> String {
    let pair = format!(
        "{}:{}",
        credential.username,
        credential.password.expose_secret()
    );
    format!("Basic {}", B64.encode(pair))
}

/// The tls-server-end-point channel binding (RFC 5929) as a SEC_CHANNEL_BINDINGS structure,
/// for the server's leaf certificate (DER).
///
/// The hash is SHA-256 unless the certificate is signed with SHA-384 or SHA-512, which are
/// then used; MD5 and SHA-1 signatures map to SHA-256 as the RFC says.
pub fn tls_server_end_point(certificate_der: &[u8]) -> Vec<u8> {
    let algorithm = match signature_hash(certificate_der) {
        Some(SignatureHash::Sha384) => &ring::digest::SHA384,
        Some(SignatureHash::Sha512) => &ring::digest::SHA512,
        _ => &ring::digest::SHA256,
    };
    let mut application_data = b"tls-server-end-point:".to_vec();
    application_data.extend_from_slice(ring::digest::digest(algorithm, certificate_der).as_ref());
    sec_channel_bindings(&application_data)
}

/// SEC_CHANNEL_BINDINGS: eight u32 fields (initiator and acceptor unused), then the application data.
fn sec_channel_bindings(application_data: &[u8]) -> Vec<u8> {
    const HEADER: u32 = 32;
    let len = u32::try_from(application_data.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(32 + application_data.len());
    for field in [0, 0, 0, 0, 0, 0, len, HEADER] {
        out.extend_from_slice(&u32::to_le_bytes(field));
    }
    out.extend_from_slice(application_data);
    out
}

enum SignatureHash {
    Sha384,
    Sha512,
}

/// The hash of an X.509 certificate's signature algorithm, when it is SHA-384 or SHA-512.
///
/// Reads just enough DER: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm
/// SEQUENCE { algorithm OID, ... }, signature }.
fn signature_hash(der: &[u8]) -> Option<SignatureHash> {
    const SHA384: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
    ];
    const SHA512: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
    ];
    let (certificate, _) = der_element(der, 0x30)?;
    let (_tbs, rest) = der_element(certificate, 0x30)?;
    let (algorithm, _) = der_element(rest, 0x30)?;
    let (oid, _) = der_element(algorithm, 0x06)?;
    if SHA384.contains(&oid) {
        Some(SignatureHash::Sha384)
    } else if SHA512.contains(&oid) {
        Some(SignatureHash::Sha512)
    } else {
        None
    }
}

/// Splits one DER element with the expected tag off the front: (contents, rest).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len_byte, mut rest) = rest.split_first()?;
    let len = if len_byte < 0x80 {
        usize::from(len_byte)
    } else {
        let count = usize::from(len_byte & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (len_bytes, after) = rest.split_at_checked(count)?;
        rest = after;
        len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    rest.split_at_checked(len)
}

/// One leg's outcome of the handshake.
#[derive(Debug)]
pub struct Step {
    /// Token to send (may be empty on the last leg of some mechanisms).
    pub token: Vec<u8>,
    /// Whether the context is established after this leg.
    pub complete: bool,
    /// Whether the token carries NTLM's AUTHENTICATE (raw or inside SPNEGO): the leg that
    /// fixes the session keys, which may go with the first sealed request.
    pub authenticate: bool,
}

// Boxed: the sspi contexts are large and differ in size.
enum Context {
    Ntlm(Box<Ntlm>, Option<AuthIdentityBuffers>),
    Negotiate(Box<Negotiate>, Option<CredentialsBuffers>),
    Kerberos(Box<Kerberos>, Option<CredentialsBuffers>),
}

/// An SSPI client context for one connection: the handshake, then sealing and unsealing.
pub struct SecurityContext {
    package: Package,
    context: Context,
    target: String,
    channel_bindings: Option<Vec<u8>>,
    kdc: KdcClient,
    complete: bool,
    /// What the handshake showed of NTLM that sspi does not expose.
    seen: NtlmHandshake,
    /// After an NTLM handshake: the session security that seals and unseals bodies.
    ntlm: Option<NtlmSession>,
}

/// The NTLM session parameters a handshake fixed, read from the tokens that crossed.
#[derive(Debug, Default, Clone, Copy)]
struct NtlmHandshake {
    /// NegotiateFlags of the AUTHENTICATE message we sent (sspi sets KEY_EXCH only when the
    /// server offered it).
    flags: Option<u32>,
    /// SPNEGO mechListMICs we sent and the server's that sspi verified: each took a sequence
    /// number of its direction.
    mics_sent: u32,
    mics_received: u32,
}

impl std::fmt::Debug for SecurityContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityContext")
            .field("package", &self.package)
            .field("target", &self.target)
            .field("complete", &self.complete)
            .field("ntlm", &self.ntlm)
            .finish_non_exhaustive()
    }
}

impl SecurityContext {
    /// A fresh client context for `target` (the SPN, `HTTP/host` or `HTTP/host:port`).
    ///
    /// `channel_bindings` is a SEC_CHANNEL_BINDINGS structure ([`tls_server_end_point`]) over HTTPS.
    pub fn new(
        package: Package,
        credential: &Credential,
        target: String,
        channel_bindings: Option<Vec<u8>>,
        kdc_timeout: Duration,
    ) -> Result<SecurityContext, Error> {
        let identity = AuthIdentity {
            username: Username::parse(&credential.username)
                .map_err(|e| auth_error(format!("user name {:?}: {e}", credential.username)))?,
            password: credential.password.expose_secret().to_string().into(),
        };
        let workstation = workstation();
        let context = match package {
            Package::Ntlm => {
                let mut ntlm = Ntlm::with_config(NtlmConfig::new(workstation));
                let creds = ntlm
                    .acquire_credentials_handle()
                    .with_credential_use(sspi::CredentialUse::Outbound)
                    .with_auth_data(&identity)
                    .execute(&mut ntlm)
                    .map_err(sspi_auth_error)?
                    .credentials_handle;
                Context::Ntlm(Box::new(ntlm), creds)
            }
            Package::Negotiate => {
                let kerberos = KerberosConfig {
                    kdc_resolution: KdcResolution::KdcUrl(None),
                    client_computer_name: workstation.clone(),
                };
                let config = NegotiateConfig::new(Box::new(kerberos), None, workstation);
                let mut negotiate = Negotiate::new_client(config).map_err(sspi_auth_error)?;
                let creds = acquire(&mut negotiate, identity)?;
                Context::Negotiate(Box::new(negotiate), creds)
            }
            Package::Kerberos => {
                let config = KerberosConfig {
                    kdc_resolution: KdcResolution::KdcUrl(None),
                    client_computer_name: workstation,
                };
                let mut kerberos =
                    Kerberos::new_client_from_config(config).map_err(sspi_auth_error)?;
                let creds = acquire(&mut kerberos, identity)?;
                Context::Kerberos(Box::new(kerberos), creds)
            }
        };
        Ok(SecurityContext {
            package,
            context,
            target,
            channel_bindings,
            kdc: KdcClient {
                timeout: kdc_timeout,
            },
            complete: false,
            seen: NtlmHandshake::default(),
            ntlm: None,
        })
    }

    /// The package this context runs.
    pub fn package(&self) -> Package {
        self.package
    }

    /// Whether the handshake has finished.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Runs one leg of the handshake: `None` for the first, then the server's token.
    pub fn step(&mut self, input: Option<&[u8]>) -> Result<Step, Error> {
        let cbt = self.channel_bindings.as_deref();
        let target = self.target.as_str();
        let kdc = &self.kdc;
        let spnego = self.package == Package::Negotiate;
        let server_mic = spnego && input.is_some_and(carries_mech_list_mic);
        let (token, status) = match &mut self.context {
            Context::Ntlm(ctx, creds) => init_step(ctx.as_mut(), creds, target, input, cbt, kdc),
            Context::Negotiate(ctx, creds) => {
                init_step(ctx.as_mut(), creds, target, input, cbt, kdc)
            }
            Context::Kerberos(ctx, creds) => {
                init_step(ctx.as_mut(), creds, target, input, cbt, kdc)
            }
        }
        .map_err(sspi_auth_error)?;
        // sspi verifies every mechListMIC the server sends once a mechanism is chosen, and
        // fails the leg if it does not check out.
        if server_mic {
            self.seen.mics_received += 1;
        }
        if spnego && carries_mech_list_mic(&token) {
            self.seen.mics_sent += 1;
        }
        let authenticate = find_authenticate(&token).and_then(authenticate_flags);
        if let Some(flags) = authenticate {
            self.seen.flags = Some(flags);
        }
        self.complete = matches!(status, SecurityStatus::Ok | SecurityStatus::CompleteNeeded);
        if self.complete {
            match &mut self.ntlm {
                // Sealing started before the server's last token (`seal_early`): its sending
                // side is in use; only the receiving sequence is now known.
                Some(early) => early.set_receive_sequence(self.seen.mics_received),
                None => self.ntlm = self.ntlm_session()?,
            }
        }
        Ok(Step {
            token,
            complete: self.complete,
            authenticate: authenticate.is_some(),
        })
    }

    /// Whether a request can be sealed now, to travel with the token just produced: true once
    /// that token carries NTLM's AUTHENTICATE, whose keys seal it. Raw NTLM is then complete;
    /// under SPNEGO the server's final token (its mechListMIC, checked by the next
    /// [`SecurityContext::step`]) is still to come, on the reply, and must be stepped before
    /// the reply is unsealed. Kerberos never seals early.
    pub fn seal_early(&mut self) -> bool {
        if self.ntlm.is_some() {
            return true;
        }
        if self.complete || self.seen.flags.is_none() {
            return false;
        }
        match self.ntlm_session() {
            Ok(Some(session)) => {
                self.ntlm = Some(session);
                true
            }
            _ => false,
        }
    }

    /// Our NTLM session security for a completed handshake, when NTLM is the mechanism.
    fn ntlm_session(&self) -> Result<Option<NtlmSession>, Error> {
        let keys = match &self.context {
            Context::Ntlm(ctx, _) => ctx.query_context_session_key(),
            Context::Negotiate(ctx, _)
                if matches!(ctx.negotiated_protocol(), NegotiatedProtocol::Ntlm(_)) =>
            {
                ctx.query_context_session_key()
            }
            Context::Negotiate(..) | Context::Kerberos(..) => return Ok(None),
        };
        let flags = self.seen.flags.ok_or_else(|| {
            auth_error("the NTLM handshake completed without an AUTHENTICATE message".into())
        })?;
        let keys = keys.map_err(sspi_auth_error)?;
        // sspi's NTLM client keeps the exported session key, from which it derives its own
        // sealing keys too.
        let key = <[u8; 16]>::try_from(keys.session_key.as_ref().as_slice()).map_err(|_| {
            auth_error(format!(
                "an NTLM session key of {} bytes",
                keys.session_key.as_ref().len()
            ))
        })?;
        Ok(Some(
            NtlmSession::new(flags, &key, Side::Client)
                .with_sequence(self.seen.mics_sent, self.seen.mics_received),
        ))
    }

    /// Seals a body: returns (signature, sealed data) for [`super::encryption::build_body`].
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
        if let Some(session) = &mut self.ntlm {
            let mut data = plaintext.to_vec();
            let signature = session.seal_message(&mut data);
            return Ok((signature.to_vec(), data));
        }
        let trailer = match &mut self.context {
            Context::Ntlm(ctx, _) => ctx.query_context_sizes(),
            Context::Negotiate(ctx, _) => ctx.query_context_sizes(),
            Context::Kerberos(ctx, _) => ctx.query_context_sizes(),
        }
        .map_err(|e| Error::new(Category::ProtocolError, format!("sealing: {e}")))?
        .security_trailer;
        let mut signature = vec![0u8; usize::try_from(trailer).unwrap_or(0)];
        let mut data = plaintext.to_vec();
        let mut buffers = [
            SecurityBufferRef::token_buf(&mut signature),
            SecurityBufferRef::data_buf(&mut data),
        ];
        let flags = EncryptionFlags::empty();
        match &mut self.context {
            Context::Ntlm(ctx, _) => ctx.encrypt_message(flags, &mut buffers),
            Context::Negotiate(ctx, _) => ctx.encrypt_message(flags, &mut buffers),
            Context::Kerberos(ctx, _) => ctx.encrypt_message(flags, &mut buffers),
        }
        .map_err(|e| Error::new(Category::ProtocolError, format!("sealing a request: {e}")))?;
        // Kerberos may shrink the token buffer to what it used.
        let [token, sealed] = buffers;
        let (token_len, sealed_len) = (token.buf_len(), sealed.buf_len());
        signature.truncate(token_len);
        data.truncate(sealed_len);
        Ok((signature, data))
    }

    /// Unseals a reply body in place and verifies its signature; a bad signature is a
    /// protocol error. The plaintext is the first `n` bytes of `sealed`, `n` returned.
    pub fn unseal(&mut self, signature: &[u8], sealed: &mut [u8]) -> Result<usize, Error> {
        if !self.complete {
            return Err(Error::new(
                Category::ProtocolError,
                "a sealed reply before the handshake finished",
            ));
        }
        if let Some(session) = &mut self.ntlm {
            session.unseal_message(sealed, signature)?;
            return Ok(sealed.len());
        }
        let mut token = signature.to_vec();
        let data_at = sealed.as_ptr() as usize;
        let mut buffers = [
            SecurityBufferRef::token_buf(&mut token),
            SecurityBufferRef::data_buf(sealed),
        ];
        match &mut self.context {
            Context::Ntlm(ctx, _) => ctx.decrypt_message(&mut buffers),
            Context::Negotiate(ctx, _) => ctx.decrypt_message(&mut buffers),
            Context::Kerberos(ctx, _) => ctx.decrypt_message(&mut buffers),
        }
        .map_err(|e| {
            Error::new(
                Category::ProtocolError,
                format!("reply failed decryption or signature check: {e}"),
            )
        })?;
        let [_, plain] = buffers;
        let (at, len) = (plain.data().as_ptr() as usize, plain.data().len());
        if at == data_at {
            // Decrypted in place, as NTLM and Kerberos do.
            return Ok(len);
        }
        let moved = plain.data().to_vec();
        let room = sealed.get_mut(..moved.len()).ok_or_else(|| {
            Error::new(
                Category::ProtocolError,
                "the decrypted reply is longer than the sealed one",
            )
        })?;
        room.copy_from_slice(&moved);
        Ok(moved.len())
    }
}

/// Whether an SPNEGO NegTokenResp (RFC 4178 4.2.2, `[1] SEQUENCE { [0] negState, [1]
/// supportedMech, [2] responseToken, [3] mechListMIC }`) carries a mechListMIC.
fn carries_mech_list_mic(token: &[u8]) -> bool {
    let Some((fields, _)) = der_element(token, 0xa1).and_then(|(r, _)| der_element(r, 0x30))
    else {
        return false;
    };
    let mut rest = fields;
    while let Some(&tag) = rest.first() {
        if tag == 0xa3 {
            return true;
        }
        match der_element(rest, tag) {
            Some((_, after)) => rest = after,
            None => return false,
        }
    }
    false
}

fn acquire<S>(ctx: &mut S, identity: AuthIdentity) -> Result<Option<CredentialsBuffers>, Error>
where
    S: Sspi
        + SspiImpl<CredentialsHandle = Option<CredentialsBuffers>, AuthenticationData = Credentials>,
{
    let credentials = Credentials::from(identity);
    ctx.acquire_credentials_handle()
        .with_credential_use(sspi::CredentialUse::Outbound)
        .with_auth_data(&credentials)
        .execute(ctx)
        .map(|r| r.credentials_handle)
        .map_err(sspi_auth_error)
}

fn init_step<S>(
    ctx: &mut S,
    creds: &mut S::CredentialsHandle,
    target: &str,
    input: Option<&[u8]>,
    channel_bindings: Option<&[u8]>,
    kdc: &KdcClient,
) -> sspi::Result<(Vec<u8>, SecurityStatus)>
where
    S: Sspi + SspiImpl,
{
    let mut input_buffers = Vec::new();
    if let Some(token) = input {
        input_buffers.push(SecurityBuffer::new(token.to_vec(), BufferType::Token));
    }
    // On every leg: Kerberos binds the channel in its first token (the AP-REQ), NTLM in its
    // last (the AUTHENTICATE message).
    if let Some(cbt) = channel_bindings {
        input_buffers.push(SecurityBuffer::new(cbt.to_vec(), BufferType::ChannelBindings));
    }
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let status = {
        let mut builder = ctx
            .initialize_security_context()
            .with_credentials_handle(creds)
            .with_context_requirements(
                ClientRequestFlags::CONFIDENTIALITY
                    | ClientRequestFlags::INTEGRITY
                    | ClientRequestFlags::MUTUAL_AUTH
                    | ClientRequestFlags::ALLOCATE_MEMORY,
            )
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(target)
            .with_input(&mut input_buffers)
            .with_output(&mut output);
        ctx.initialize_security_context_impl(&mut builder)?
            .resolve_with_client(kdc)?
            .status
    };
    if matches!(
        status,
        SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue
    ) {
        ctx.complete_auth_token(&mut output)?;
    }
    let token = output
        .into_iter()
        .next()
        .map(|b| b.buffer)
        .unwrap_or_default();
    Ok((token, status))
}

fn auth_error(message: String) -> Error {
    Error::new(Category::AuthFailed, message)
}

fn sspi_auth_error(e: sspi::Error) -> Error {
    Error::new(Category::AuthFailed, format!("authentication: {e}"))
        .with_code(format!("{:?}", e.error_type))
}

/// Talks to the KDC for Kerberos (TCP or UDP, RFC 4120 7.2), bounded by a timeout.
///
/// sspi calls it synchronously from inside the handshake; it runs only for Kerberos and
/// Negotiate with a configured realm, once per connection.
struct KdcClient {
    timeout: Duration,
}

impl NetworkClient for KdcClient {
    fn send(&self, request: &NetworkRequest) -> sspi::Result<Vec<u8>> {
        let kdc_error = |e: std::io::Error| {
            sspi::Error::new(
                sspi::ErrorKind::NoAuthenticatingAuthority,
                format!("KDC {}: {e}", request.url),
            )
        };
        let host = request.url.host_str().unwrap_or_default();
        let port = request.url.port().unwrap_or(88);
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(kdc_error)?
            .next()
            .ok_or_else(|| kdc_error(std::io::Error::other("no address")))?;
        match request.protocol {
            NetworkProtocol::Tcp => {
                let mut stream =
                    TcpStream::connect_timeout(&addr, self.timeout).map_err(kdc_error)?;
                stream
                    .set_read_timeout(Some(self.timeout))
                    .map_err(kdc_error)?;
                stream
                    .set_write_timeout(Some(self.timeout))
                    .map_err(kdc_error)?;
                // The request already carries its 4-byte length prefix; the reply is returned with it.
                stream.write_all(&request.data).map_err(kdc_error)?;
                let mut len = [0u8; 4];
                stream.read_exact(&mut len).map_err(kdc_error)?;
                let n = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
                if n > 1 << 20 {
                    return Err(kdc_error(std::io::Error::other(format!(
                        "reply of {n} bytes is too large"
                    ))));
                }
                let mut reply = len.to_vec();
                reply.resize(4 + n, 0);
                stream
                    .read_exact(reply.get_mut(4..).unwrap_or_default())
                    .map_err(kdc_error)?;
                Ok(reply)
            }
            NetworkProtocol::Udp => {
                let bind = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let socket = UdpSocket::bind(bind).map_err(kdc_error)?;
                socket
                    .set_read_timeout(Some(self.timeout))
                    .map_err(kdc_error)?;
                socket.send_to(&request.data, addr).map_err(kdc_error)?;
                let mut buf = vec![0u8; 0xbb80];
                let n = socket.recv(&mut buf).map_err(kdc_error)?;
                let mut reply = u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes().to_vec();
                reply.extend_from_slice(buf.get(..n).unwrap_or_default());
                Ok(reply)
            }
            NetworkProtocol::Http | NetworkProtocol::Https => Err(sspi::Error::new(
                sspi::ErrorKind::NoAuthenticatingAuthority,
                format!("KDC proxy URLs are not supported: {}", request.url),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn credential(user: &str, password: &str) -> Credential {
        Credential {
            username: user.into(),
            password: SecretString::from(password.to_string()),
        }
    }

    #[test]
    fn basic_header_is_rfc7617() {
        // RFC 7617 section 2's example.
        assert_eq!(
            basic_authorization(&credential("Aladdin", "open sesame")),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn binding_hash_follows_the_signature_algorithm() {
        for (alg, want) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, None),
            (&rcgen::PKCS_ECDSA_P384_SHA384, Some(48)),
            (&rcgen::PKCS_ED25519, None),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["h".to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let got = signature_hash(cert.der()).map(|h| match h {
                SignatureHash::Sha384 => 48,
                SignatureHash::Sha512 => 64,
            });
            assert_eq!(got, want, "{alg:?}");
            let binding = tls_server_end_point(cert.der());
            let digest_len = binding.len() - 32 - b"tls-server-end-point:".len();
            assert_eq!(digest_len, want.unwrap_or(32));
        }
        assert!(signature_hash(b"").is_none());
        assert!(signature_hash(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn channel_bindings_layout() {
        let cb = sec_channel_bindings(b"tls-server-end-point:abc");
        assert_eq!(cb.len(), 32 + 24);
        assert_eq!(&cb[24..28], &24u32.to_le_bytes());
        assert_eq!(&cb[28..32], &32u32.to_le_bytes());
        assert_eq!(&cb[32..], b"tls-server-end-point:abc");
        let parsed = sspi::channel_bindings::ChannelBindings::from_bytes(&cb).unwrap();
        assert_eq!(parsed.application_data, b"tls-server-end-point:abc");
    }

    #[test]
    fn negotiate_starts_with_a_spnego_token_and_ntlm_with_a_raw_one() {
        let cred = credential("EX\\alice", "pw");
        let first = |package| {
            let mut ctx = SecurityContext::new(
                package,
                &cred,
                "HTTP/host".into(),
                None,
                Duration::from_secs(1),
            )
            .unwrap();
            ctx.step(None).unwrap().token
        };
        // GSS-API InitialContextToken (RFC 2743 3.1) carrying the SPNEGO OID 1.3.6.1.5.5.2.
        let spnego = first(Package::Negotiate);
        assert_eq!(spnego.first(), Some(&0x60));
        assert!(
            spnego
                .windows(8)
                .any(|w| w == [0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02])
        );
        assert!(first(Package::Ntlm).starts_with(b"NTLMSSP\0\x01\0\0\0"));
    }

    /// sspi's acceptor for the client's tokens: its reply token and whether it is done.
    fn accept<S: Sspi + SspiImpl>(
        server: &mut S,
        creds: &mut S::CredentialsHandle,
        token: Vec<u8>,
    ) -> (Vec<u8>, bool) {
        let mut server_in = vec![SecurityBuffer::new(token, BufferType::Token)];
        let mut server_out = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let builder = server
            .accept_security_context()
            .with_credentials_handle(creds)
            .with_context_requirements(sspi::ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut server_in)
            .with_output(&mut server_out);
        let status = server
            .accept_security_context_impl(builder)
            .unwrap()
            .resolve_to_result()
            .unwrap()
            .status;
        if matches!(
            status,
            SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue
        ) {
            server.complete_auth_token(&mut server_out).unwrap();
        }
        let done = status != SecurityStatus::ContinueNeeded;
        (server_out.remove(0).buffer, done)
    }

    /// Authenticates a client of `package` against sspi's acceptor as the transport does (the
    /// acceptor's last token rides on the 200), then exchanges sealed messages both ways,
    /// the last reply tampered with.
    fn handshake_and_seal<S: Sspi + SspiImpl>(
        package: Package,
        server: &mut S,
        mut server_creds: S::CredentialsHandle,
    ) -> SecurityContext {
        let cred = credential("alice", "S3cret!");
        let mut client =
            SecurityContext::new(package, &cred, "HTTP/host".into(), None, Duration::from_secs(1))
                .unwrap();
        let mut input: Option<Vec<u8>> = None;
        for _ in 0..4 {
            let step = client.step(input.as_deref()).unwrap();
            let (reply, done) = accept(server, &mut server_creds, step.token);
            if done {
                if !client.is_complete() {
                    client.step(Some(&reply)).unwrap();
                }
                break;
            }
            input = Some(reply);
        }
        assert!(client.is_complete());
        assert!(client.ntlm.is_some(), "NTLM sealing is ours");

        for i in 0..5 {
            let request = format!("<s:Envelope n='{i}'>{}</s:Envelope>", "é".repeat(i * 100));
            let (sig, sealed) = client.seal(request.as_bytes()).unwrap();
            assert_eq!(sig.len(), 16);
            assert_ne!(sealed, request.as_bytes());
            let (mut s, mut d) = (sig.clone(), sealed.clone());
            let mut bufs = [
                SecurityBufferRef::token_buf(&mut s),
                SecurityBufferRef::data_buf(&mut d),
            ];
            server.decrypt_message(&mut bufs).unwrap();
            assert_eq!(bufs[1].data(), request.as_bytes());

            let reply = format!("<reply n='{i}'/>").into_bytes();
            let mut s = vec![0u8; 16];
            let mut d = reply.clone();
            let mut bufs = [
                SecurityBufferRef::token_buf(&mut s),
                SecurityBufferRef::data_buf(&mut d),
            ];
            server
                .encrypt_message(EncryptionFlags::empty(), &mut bufs)
                .unwrap();
            if i == 4 {
                d[3] ^= 0x20;
                let err = client.unseal(&s, &mut d).unwrap_err();
                assert_eq!(err.category, Category::ProtocolError);
            } else {
                let len = client.unseal(&s, &mut d).unwrap();
                assert_eq!(d.get(..len), Some(reply.as_slice()));
            }
        }
        client
    }

    fn inbound<S: Sspi + SspiImpl>(
        server: &mut S,
        auth: &S::AuthenticationData,
    ) -> S::CredentialsHandle {
        server
            .acquire_credentials_handle()
            .with_credential_use(sspi::CredentialUse::Inbound)
            .with_auth_data(auth)
            .execute(server)
            .unwrap()
            .credentials_handle
    }

    fn server_identity() -> AuthIdentity {
        AuthIdentity {
            username: Username::parse("alice").unwrap(),
            password: "S3cret!".to_string().into(),
        }
    }

    /// Raw NTLM against sspi's own acceptor: a unit check of the handshake and sealing
    /// plumbing (interop with an independent acceptor is in tests/wsman_transport_ntlm.rs).
    #[test]
    fn ntlm_handshake_and_sealing_against_sspi_acceptor() {
        let mut server = Ntlm::new();
        let creds = inbound(&mut server, &server_identity());
        let client = handshake_and_seal(Package::Ntlm, &mut server, creds);
        assert_eq!((client.seen.mics_sent, client.seen.mics_received), (0, 0));
    }

    /// sspi's SPNEGO acceptor, offering NTLM only, and its credentials.
    fn spnego_ntlm_acceptor() -> (Negotiate, <Negotiate as SspiImpl>::CredentialsHandle) {
        let config = NegotiateConfig::new(
            Box::new(NtlmConfig::new("SERVER".into())),
            Some("ntlm,!kerberos,!pku2u".into()),
            "SERVER".into(),
        );
        let mut server = Negotiate::new_server(config, vec![server_identity()]).unwrap();
        let creds = inbound(&mut server, &Credentials::AuthIdentity(server_identity()));
        (server, creds)
    }

    /// NTLM under SPNEGO: the mechListMICs both ways take sequence number 0 of each direction,
    /// so sealing starts at 1.
    #[test]
    fn spnego_ntlm_sealing_starts_after_the_mech_list_mics() {
        let (mut server, creds) = spnego_ntlm_acceptor();
        let client = handshake_and_seal(Package::Negotiate, &mut server, creds);
        assert_eq!((client.seen.mics_sent, client.seen.mics_received), (1, 1));
    }

    /// The last leg riding on the first request: once the AUTHENTICATE is produced, a request
    /// can be sealed before the server's final token; a reply cannot be unsealed until that
    /// token is stepped; then both directions continue in step with the acceptor.
    #[test]
    fn spnego_ntlm_seals_early_and_unseals_after_the_final_token() {
        let (mut server, mut creds) = spnego_ntlm_acceptor();
        let cred = credential("alice", "S3cret!");
        let mut client =
            SecurityContext::new(Package::Negotiate, &cred, "HTTP/host".into(), None, Duration::from_secs(1))
                .unwrap();
        let first = client.step(None).unwrap();
        assert!(!client.seal_early(), "nothing to seal with before the AUTHENTICATE");
        let (challenge, done) = accept(&mut server, &mut creds, first.token);
        assert!(!done);
        let last = client.step(Some(&challenge)).unwrap();
        assert!(!last.complete, "SPNEGO waits for the server's mechListMIC");
        assert!(client.seal_early());

        let request = b"<s:Envelope>first</s:Envelope>".to_vec();
        let (sig, sealed) = client.seal(&request).unwrap();
        let (final_token, done) = accept(&mut server, &mut creds, last.token);
        assert!(done);
        let (mut s, mut d) = (sig, sealed);
        let mut bufs = [SecurityBufferRef::token_buf(&mut s), SecurityBufferRef::data_buf(&mut d)];
        server.decrypt_message(&mut bufs).unwrap();
        assert_eq!(bufs[1].data(), request.as_slice());

        let reply = b"<reply/>".to_vec();
        let (mut s, mut d) = (vec![0u8; 16], reply.clone());
        let mut bufs = [SecurityBufferRef::token_buf(&mut s), SecurityBufferRef::data_buf(&mut d)];
        server.encrypt_message(EncryptionFlags::empty(), &mut bufs).unwrap();
        let mut early = d.clone();
        let err = client.unseal(&s, &mut early).unwrap_err();
        assert_eq!(err.category, Category::ProtocolError, "{err}");
        client.step(Some(&final_token)).unwrap();
        assert!(client.is_complete());
        assert_eq!((client.seen.mics_sent, client.seen.mics_received), (1, 1));
        let len = client.unseal(&s, &mut d).unwrap();
        assert_eq!(d.get(..len), Some(reply.as_slice()));

        // The next request, in sequence.
        let (mut s, mut d) = client.seal(b"<second/>").unwrap();
        let mut bufs = [SecurityBufferRef::token_buf(&mut s), SecurityBufferRef::data_buf(&mut d)];
        server.decrypt_message(&mut bufs).unwrap();
        assert_eq!(bufs[1].data(), b"<second/>");
    }

    #[test]
    fn mech_list_mic_is_found_only_in_a_neg_token_resp() {
        // [1] SEQUENCE { [0] ENUMERATED 0, [3] OCTET STRING (empty) }
        let with = [0xa1, 0x0b, 0x30, 0x09, 0xa0, 0x03, 0x0a, 0x01, 0x00, 0xa3, 0x02, 0x04, 0x00];
        assert!(carries_mech_list_mic(&with));
        let mut without = with;
        without[9] = 0xa2;
        assert!(!carries_mech_list_mic(&without));
        assert!(!carries_mech_list_mic(b"NTLMSSP\0\x03\0\0\0"));
        assert!(!carries_mech_list_mic(&with[..8]));
        assert!(!carries_mech_list_mic(&[]));
    }
}
