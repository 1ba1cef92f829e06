//! A throwaway PKI for the HTTPS listeners: one CA per server, leaf certificates per host.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority generated at start-up; clients trust [`TestPki::ca_pem`].
pub struct TestPki {
    ca_pem: String,
    ca_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// Why a certificate or TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TestPki {
    /// A new CA with a fresh key.
    pub fn new() -> Result<TestPki, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, "cimrun test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(TestPki { ca_pem: cert.pem(), ca_der: cert.der().to_vec(), issuer: Issuer::new(params, key) })
    }

    /// The CA certificate, PEM-encoded.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, DER-encoded.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// A server configuration with a leaf certificate for `names` (DNS names or IP addresses),
    /// issued by this CA, or self-signed (untrusted by any client) when `self_signed` is set;
    /// and the leaf certificate (DER).
    pub fn server_config(
        &self,
        names: &[String],
        self_signed: bool,
    ) -> Result<(Arc<rustls::ServerConfig>, Vec<u8>), TlsError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name.push(DnType::CommonName, names.first().map_or("localhost", String::as_str));
        let key = KeyPair::generate()?;
        let cert = if self_signed { params.self_signed(&key)? } else { params.signed_by(&key, &self.issuer)? };
        let leaf = cert.der().to_vec();
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok((Arc::new(config), leaf))
    }
}
