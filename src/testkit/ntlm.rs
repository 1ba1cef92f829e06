//! The server side of NTLM: `sspi`'s acceptor, and sealing of message bodies (MS-WSMV 2.2.9.1)
//! with the framing of [`crate::protocol::wsman::encryption`].

use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, CredentialUse, DataRepresentation, EncryptionFlags, Ntlm,
    SecurityBuffer, SecurityBufferRef, SecurityStatus, ServerRequestFlags, Sspi, SspiImpl, Username,
};

use crate::protocol::wsman::encryption::{self, SealProtocol};

/// What one handshake leg produced.
pub(crate) enum Leg {
    /// Send this challenge back with a 401.
    Challenge(Vec<u8>),
    /// The client is authenticated.
    Complete,
}

/// One connection's NTLM acceptor; after the handshake it seals and unseals bodies.
pub(crate) struct Acceptor {
    ntlm: Ntlm,
    credentials: Option<AuthIdentityBuffers>,
    complete: bool,
}

impl Acceptor {
    /// An acceptor that admits `username` with `password`.
    pub(crate) fn new(username: &str, password: &str) -> Result<Acceptor, String> {
        let mut ntlm = Ntlm::new();
        let identity = AuthIdentity {
            username: Username::parse(username).map_err(|e| format!("bad user name {username:?}: {e}"))?,
            password: password.to_string().into(),
        };
        let credentials = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Inbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .map_err(|e| format!("NTLM credentials: {e}"))?
            .credentials_handle;
        Ok(Acceptor { ntlm, credentials, complete: false })
    }

    /// Whether the handshake finished.
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// Consumes a client token (NEGOTIATE, then AUTHENTICATE).
    pub(crate) fn step(&mut self, token: &[u8]) -> Result<Leg, String> {
        let mut input = vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)];
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let builder = self
            .ntlm
            .accept_security_context()
            .with_credentials_handle(&mut self.credentials)
            .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut input)
            .with_output(&mut output);
        let status = self
            .ntlm
            .accept_security_context_impl(builder)
            .and_then(|mut g| g.resolve_to_result())
            .map_err(|e| format!("NTLM rejected: {e}"))?
            .status;
        match status {
            SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue | SecurityStatus::Ok => {
                if status != SecurityStatus::Ok {
                    self.ntlm.complete_auth_token(&mut output).map_err(|e| format!("NTLM rejected: {e}"))?;
                }
                self.complete = true;
                Ok(Leg::Complete)
            }
            SecurityStatus::ContinueNeeded => {
                let token = output.into_iter().next().map(|b| b.buffer).unwrap_or_default();
                Ok(Leg::Challenge(token))
            }
            other => Err(format!("NTLM handshake ended with {other:?}")),
        }
    }

    /// Decrypts a `multipart/encrypted` request body and verifies its signature and length.
    pub(crate) fn unseal_body(&mut self, body: &[u8]) -> Result<Vec<u8>, String> {
        let parts = encryption::parse_body(body).map_err(|e| e.to_string())?;
        let mut token = parts.signature.to_vec();
        let mut data = parts.sealed.to_vec();
        let mut buffers = [SecurityBufferRef::token_buf(&mut token), SecurityBufferRef::data_buf(&mut data)];
        self.ntlm.decrypt_message(&mut buffers).map_err(|e| format!("request failed decryption: {e}"))?;
        let [_, plain] = buffers;
        let plain = plain.data().to_vec();
        parts.check_length(&plain).map_err(|e| e.to_string())?;
        Ok(plain)
    }

    /// Seals a response body into a `multipart/encrypted` body; returns it with its Content-Type.
    pub(crate) fn seal_body(&mut self, plaintext: &[u8], original_type: &str) -> Result<(Vec<u8>, String), String> {
        let trailer = self.ntlm.query_context_sizes().map_err(|e| format!("sealing: {e}"))?.security_trailer;
        let mut signature = vec![0u8; usize::try_from(trailer).unwrap_or(16)];
        let mut data = plaintext.to_vec();
        let mut buffers = [SecurityBufferRef::token_buf(&mut signature), SecurityBufferRef::data_buf(&mut data)];
        self.ntlm.encrypt_message(EncryptionFlags::empty(), &mut buffers).map_err(|e| format!("sealing: {e}"))?;
        let body = encryption::build_body(SealProtocol::Spnego, original_type, plaintext.len(), &signature, &data)
            .map_err(|e| e.to_string())?;
        Ok((body, SealProtocol::Spnego.content_type()))
    }
}
