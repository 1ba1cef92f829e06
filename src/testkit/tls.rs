//! A throwaway PKI for the HTTPS listeners: one CA per server, leaf certificates per host.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
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

    /// A client certificate for `common_name`, issued by this CA for client authentication:
    /// its PEM, its private key's PEM (PKCS#8) and its DER.
    pub fn client_certificate(&self, common_name: &str) -> Result<(String, String, Vec<u8>), TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem(), cert.der().to_vec()))
    }

    /// A server configuration with a leaf certificate for `names` (DNS names or IP addresses),
    /// issued by this CA, or self-signed (untrusted by any client) when `self_signed` is set;
    /// and the leaf certificate (DER). With `client_auth`, clients may present a certificate,
    /// which must then be issued by this CA (clients without one can still use Basic or NTLM).
    pub fn server_config(
        &self,
        names: &[String],
        self_signed: bool,
        client_auth: bool,
    ) -> Result<(Arc<rustls::ServerConfig>, Vec<u8>), TlsError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name.push(DnType::CommonName, names.first().map_or("localhost", String::as_str));
        let key = KeyPair::generate()?;
        let cert = if self_signed { params.self_signed(&key)? } else { params.signed_by(&key, &self.issuer)? };
        let leaf = cert.der().to_vec();
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from(self.ca_der.clone()))?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder.with_single_cert(chain, key)?;
        Ok((Arc::new(config), leaf))
    }
}
