//! The server side of NTLM, raw or inside SPNEGO: `sspi`'s acceptors, and sealing of message bodies (MS-WSMV 2.2.9.1)
//! with the framing of [`crate::protocol::wsman::encryption`].

use sspi::{
    AuthIdentity, BufferType, CredentialUse, Credentials, DataRepresentation, EncryptionFlags, Negotiate,
    NegotiateConfig, Ntlm, SecurityBuffer, SecurityBufferRef, SecurityStatus, ServerRequestFlags, Sspi, SspiImpl,
    Username, ntlm::NtlmConfig,
};

use crate::protocol::ntlm::find_authenticate;
use crate::protocol::wsman::encryption::{self, SealProtocol};

/// What one handshake leg produced.
pub(crate) enum Leg {
    /// Send this challenge back with a 401.
    Challenge(Vec<u8>),
    /// The client is authenticated; a final token (SPNEGO's accept-completed with its
    /// mechListMIC) rides on the 200.
    Complete(Option<Vec<u8>>),
}

/// Which token format the client chose under the HTTP `Negotiate` scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrapping {
    /// Raw NTLM messages, as pywinrm's `ntlm` transport and cimrun's `ntlm` send them.
    Raw,
    /// NTLM inside SPNEGO (RFC 4178), as Windows and cimrun's `negotiate` send it.
    Spnego,
}

impl Wrapping {
    /// The format of a handshake's first token, or `None` if it starts neither.
    pub(crate) fn of_first_token(token: &[u8]) -> Option<Wrapping> {
        if token.starts_with(b"NTLMSSP\0") && token.get(8) == Some(&1) {
            Some(Wrapping::Raw)
        } else if token.first() == Some(&0x60) {
            // A GSS-API InitialContextToken ([APPLICATION 0]) carrying a NegTokenInit.
            Some(Wrapping::Spnego)
        } else {
            None
        }
    }
}

enum Context {
    Ntlm(Box<Ntlm>, Option<sspi::AuthIdentityBuffers>),
    Negotiate(Box<Negotiate>, Option<sspi::CredentialsBuffers>),
}

/// One connection's NTLM acceptor, raw or SPNEGO-wrapped; after the handshake it seals and
/// unseals bodies.
pub(crate) struct Acceptor {
    context: Context,
    /// A SEC_CHANNEL_BINDINGS structure the client's NTLM response must match (HTTPS).
    channel_bindings: Option<Vec<u8>>,
    /// Refuse a response without bindings too (WinRM's CbtHardeningLevel=Strict).
    require_bindings: bool,
    complete: bool,
}

const SERVER_NAME: &str = "WSMAN-TEST";

impl Acceptor {
    /// An acceptor that admits `username` with `password`, for tokens in `wrapping`. Bindings
    /// a client sends must match `channel_bindings`; with `require_bindings`, it must send them.
    pub(crate) fn new(
        username: &str,
        password: &str,
        wrapping: Wrapping,
        channel_bindings: Option<Vec<u8>>,
        require_bindings: bool,
    ) -> Result<Acceptor, String> {
        let identity = AuthIdentity {
            username: Username::parse(username).map_err(|e| format!("bad user name {username:?}: {e}"))?,
            password: password.to_string().into(),
        };
        let context = match wrapping {
            Wrapping::Raw => {
                let mut ntlm = Ntlm::new();
                let credentials = ntlm
                    .acquire_credentials_handle()
                    .with_credential_use(CredentialUse::Inbound)
                    .with_auth_data(&identity)
                    .execute(&mut ntlm)
                    .map_err(|e| format!("NTLM credentials: {e}"))?
                    .credentials_handle;
                Context::Ntlm(Box::new(ntlm), credentials)
            }
            Wrapping::Spnego => {
                // NTLM only: the test server has no KDC.
                let config = NegotiateConfig::new(
                    Box::new(NtlmConfig::new(SERVER_NAME.into())),
                    Some("ntlm,!kerberos,!pku2u".into()),
                    SERVER_NAME.into(),
                );
                let mut negotiate = Negotiate::new_server(config, vec![identity.clone()])
                    .map_err(|e| format!("SPNEGO acceptor: {e}"))?;
                let auth_data = Credentials::AuthIdentity(identity);
                let credentials = negotiate
                    .acquire_credentials_handle()
                    .with_credential_use(CredentialUse::Inbound)
                    .with_auth_data(&auth_data)
                    .execute(&mut negotiate)
                    .map_err(|e| format!("SPNEGO credentials: {e}"))?
                    .credentials_handle;
                Context::Negotiate(Box::new(negotiate), credentials)
            }
        };
        Ok(Acceptor { context, channel_bindings, require_bindings, complete: false })
    }

    /// The token format of this handshake.
    pub(crate) fn wrapping(&self) -> Wrapping {
        match self.context {
            Context::Ntlm(..) => Wrapping::Raw,
            Context::Negotiate(..) => Wrapping::Spnego,
        }
    }

    /// Whether the handshake finished.
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// Consumes a client token (NEGOTIATE, then AUTHENTICATE; each SPNEGO-wrapped or not).
    pub(crate) fn step(&mut self, token: &[u8]) -> Result<Leg, String> {
        let cbt = self.channel_bindings.as_deref();
        // sspi rejects bindings that differ (WinRM's default, Relaxed) but not missing ones,
        // which Strict also rejects.
        if cbt.is_some() && self.require_bindings && find_authenticate(token).is_some_and(|m| !carries_channel_bindings(m)) {
            return Err("the NTLM response carries no channel bindings, which HTTPS requires".into());
        }
        let (status, output) = match &mut self.context {
            Context::Ntlm(ntlm, creds) => accept(ntlm.as_mut(), creds, token, cbt)?,
            Context::Negotiate(negotiate, creds) => accept(negotiate.as_mut(), creds, token, cbt)?,
        };
        match status {
            SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue | SecurityStatus::Ok => {
                self.complete = true;
                Ok(Leg::Complete(Some(output).filter(|t| !t.is_empty())))
            }
            SecurityStatus::ContinueNeeded => Ok(Leg::Challenge(output)),
            other => Err(format!("NTLM handshake ended with {other:?}")),
        }
    }

    /// Decrypts a `multipart/encrypted` request body and verifies its signature and length.
    pub(crate) fn unseal_body(&mut self, body: &[u8]) -> Result<Vec<u8>, String> {
        let parts = encryption::parse_body(body).map_err(|e| e.to_string())?;
        let mut token = parts.signature.to_vec();
        let mut data = parts.sealed.to_vec();
        let mut buffers = [SecurityBufferRef::token_buf(&mut token), SecurityBufferRef::data_buf(&mut data)];
        let decrypted = match &mut self.context {
            Context::Ntlm(ntlm, _) => ntlm.decrypt_message(&mut buffers),
            Context::Negotiate(negotiate, _) => negotiate.decrypt_message(&mut buffers),
        };
        decrypted.map_err(|e| format!("request failed decryption: {e}"))?;
        let [_, plain] = buffers;
        let plain = plain.data().to_vec();
        parts.check_length(&plain).map_err(|e| e.to_string())?;
        Ok(plain)
    }

    /// Seals a response body into a `multipart/encrypted` body; returns it with its Content-Type.
    pub(crate) fn seal_body(&mut self, plaintext: &[u8], original_type: &str) -> Result<(Vec<u8>, String), String> {
        let sizes = match &mut self.context {
            Context::Ntlm(ntlm, _) => ntlm.query_context_sizes(),
            Context::Negotiate(negotiate, _) => negotiate.query_context_sizes(),
        };
        let trailer = sizes.map_err(|e| format!("sealing: {e}"))?.security_trailer;
        let mut signature = vec![0u8; usize::try_from(trailer).unwrap_or(16)];
        let mut data = plaintext.to_vec();
        let mut buffers = [SecurityBufferRef::token_buf(&mut signature), SecurityBufferRef::data_buf(&mut data)];
        let encrypted = match &mut self.context {
            Context::Ntlm(ntlm, _) => ntlm.encrypt_message(EncryptionFlags::empty(), &mut buffers),
            Context::Negotiate(negotiate, _) => negotiate.encrypt_message(EncryptionFlags::empty(), &mut buffers),
        };
        encrypted.map_err(|e| format!("sealing: {e}"))?;
        let body = encryption::build_body(SealProtocol::Spnego, original_type, plaintext.len(), &signature, &data)
            .map_err(|e| e.to_string())?;
        Ok((body, SealProtocol::Spnego.content_type()))
    }
}

/// One `AcceptSecurityContext` call, with the channel bindings on every leg (NTLM reads them
/// with the AUTHENTICATE message).
fn accept<S>(
    ctx: &mut S,
    credentials: &mut S::CredentialsHandle,
    token: &[u8],
    channel_bindings: Option<&[u8]>,
) -> Result<(SecurityStatus, Vec<u8>), String>
where
    S: Sspi + SspiImpl,
{
    let mut input = vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)];
    if let Some(cbt) = channel_bindings {
        input.push(SecurityBuffer::new(cbt.to_vec(), BufferType::ChannelBindings));
    }
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let builder = ctx
        .accept_security_context()
        .with_credentials_handle(credentials)
        .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
        .with_target_data_representation(DataRepresentation::Native)
        .with_input(&mut input)
        .with_output(&mut output);
    let status = ctx
        .accept_security_context_impl(builder)
        .and_then(|mut g| g.resolve_to_result())
        .map_err(|e| format!("NTLM rejected: {e}"))?
        .status;
    if matches!(status, SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue) {
        ctx.complete_auth_token(&mut output).map_err(|e| format!("NTLM rejected: {e}"))?;
    }
    Ok((status, output.into_iter().next().map(|b| b.buffer).unwrap_or_default()))
}

/// Whether an AUTHENTICATE message's NTLMv2 response has a non-zero MsvAvChannelBindings
/// (MS-NLMP 2.2.1.3, 2.2.2.1, 2.2.2.7).
fn carries_channel_bindings(message: &[u8]) -> bool {
    let u16_at = |b: &[u8], i: usize| {
        b.get(i..i + 2).and_then(|x| <[u8; 2]>::try_from(x).ok()).map(|x| usize::from(u16::from_le_bytes(x)))
    };
    let u32_at = |b: &[u8], i: usize| {
        b.get(i..i + 4).and_then(|x| <[u8; 4]>::try_from(x).ok()).and_then(|x| usize::try_from(u32::from_le_bytes(x)).ok())
    };
    // NtChallengeResponseFields: length at 20, offset at 24.
    let (Some(len), Some(offset)) = (u16_at(message, 20), u32_at(message, 24)) else { return false };
    let Some(response) = offset.checked_add(len).and_then(|end| message.get(offset..end)) else { return false };
    // NTProofStr (16 bytes), then the blob's fixed part (28 bytes), then the AV pairs.
    let mut at = 16 + 28;
    while let (Some(id), Some(len)) = (u16_at(response, at), u16_at(response, at + 2)) {
        let Some(value) = response.get(at + 4..at + 4 + len) else { return false };
        match id {
            0x0000 => return false,
            0x000A => return value.iter().any(|&b| b != 0),
            _ => at += 4 + len,
        }
    }
    false
}
