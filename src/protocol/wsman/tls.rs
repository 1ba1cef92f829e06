//! TLS client configuration for HTTPS listeners (5986): rustls with the ring provider and our
//! own certificate verifier.
//!
//! The verifier implements New-CimSessionOption's checks separately: `skip_ca_check` accepts
//! an untrusted chain but still requires the name, `skip_cn_check` requires a trusted chain for
//! any name, and a thumbprint pin replaces both (a pinned certificate is trusted as itself).
//! Handshake signatures are always verified, so a pinned or unchecked certificate still proves
//! the server holds its key.
//!
//! Revocation: no CRL or OCSP is fetched, so revocation is not checked whatever
//! `skip_revocation_check` says; the flag is accepted for compatibility with job files.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::protocol::{Category, Error, WsManSettings};

/// A certificate fingerprint the server's leaf certificate must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbprint {
    sha256: bool,
    digest: Vec<u8>,
}

impl Thumbprint {
    /// Parses 40 (SHA-1) or 64 (SHA-256) hex digits; colons and spaces between them are ignored.
    pub fn parse(text: &str) -> Result<Thumbprint, Error> {
        let hex: String = text
            .chars()
            .filter(|c| !matches!(c, ':' | ' ' | '-'))
            .collect();
        let bad = || {
            Error::new(
                Category::Unsupported,
                format!("certificate thumbprint {text:?} is not 40 or 64 hex digits"),
            )
        };
        if !matches!(hex.len(), 40 | 64) || !hex.is_ascii() {
            return Err(bad());
        }
        let digest = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        Ok(Thumbprint {
            sha256: digest.len() == 32,
            digest,
        })
    }

    /// Whether a DER certificate has this thumbprint.
    pub fn matches(&self, der: &[u8]) -> bool {
        let algorithm = if self.sha256 {
            &ring::digest::SHA256
        } else {
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY
        };
        ring::digest::digest(algorithm, der).as_ref() == self.digest.as_slice()
    }
}

/// Builds the client configuration for one endpoint's settings.
pub fn client_config(settings: &WsManSettings) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &settings.ca_bundle {
        Some(path) => Arc::new(load_ca_bundle(path)?),
        None => system_roots(),
    };
    let pin = settings
        .certificate_thumbprint
        .as_deref()
        .map(Thumbprint::parse)
        .transpose()?;
    let verifier = Verifier::new(
        roots,
        provider.clone(),
        settings.skip_ca_check,
        settings.skip_cn_check,
        pin,
    );
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(Category::TlsFailure, format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match client_identity(settings)? {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            Error::new(Category::TlsFailure, format!("client certificate and key do not fit together: {e}"))
        })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The client certificate chain and private key of the settings, read from their PEM files.
pub fn client_identity(
    settings: &WsManSettings,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, Error> {
    let (cert, key) = match (&settings.client_certificate, &settings.client_key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => {
            return Err(Error::new(
                Category::Unsupported,
                "client certificate authentication needs both a certificate and its key",
            ));
        }
    };
    let file_error = |path: &Path, e: &dyn std::fmt::Display| {
        Error::new(Category::TlsFailure, format!("client certificate {}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert, &e))?;
    if chain.is_empty() {
        return Err(file_error(cert, &"no certificate in the file"));
    }
    // PKCS#8, PKCS#1 (RSA) or SEC1 (EC), whichever the file holds first.
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, &e))?;
    Ok(Some((chain, key)))
}

/// The TLS side of an HTTPS endpoint: rustls, and with the `native-tls` feature the platform
/// library for hosts rustls cannot talk to.
#[derive(Clone)]
pub struct TlsSetup {
    pub rustls: Arc<ClientConfig>,
    #[cfg(feature = "native-tls")]
    pub legacy: Option<legacy::LegacyTls>,
}

/// Builds the TLS setup for one endpoint's settings.
pub fn setup(settings: &WsManSettings) -> Result<TlsSetup, Error> {
    Ok(TlsSetup {
        rustls: client_config(settings)?,
        #[cfg(feature = "native-tls")]
        legacy: Some(legacy::LegacyTls::new(settings)?),
    })
}

/// Reads the CA certificates of a PEM file.
pub fn load_ca_bundle(path: &Path) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    for cert in read_pem_certificates(path)? {
        store.add(cert).map_err(|e| ca_bundle_error(path, e))?;
    }
    Ok(store)
}

fn ca_bundle_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::new(
        Category::TlsFailure,
        format!("CA bundle {}: {e}", path.display()),
    )
}

/// The certificates of a PEM file; at least one.
fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ca_bundle_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_bundle_error(path, e))?;
    if certs.is_empty() {
        return Err(ca_bundle_error(path, "no certificates"));
    }
    Ok(certs)
}

/// TLS through the platform library (SChannel, Secure Transport, OpenSSL).
///
/// Used only after rustls failed because the server offered nothing it accepts; an active
/// attacker can provoke that fallback, which is why it is a build-time opt-in. Certificates
/// are checked as with rustls: the platform library checks the chain and name unless a skip
/// flag or a pin says otherwise, and a name check that survives `skip_ca_check` is done here.
#[cfg(feature = "native-tls")]
pub mod legacy {
    use super::*;

    /// A configured platform TLS connector.
    #[derive(Clone)]
    pub struct LegacyTls {
        connector: tokio_native_tls::TlsConnector,
        pin: Option<Thumbprint>,
        /// Check the name ourselves: the library's chain check is off but the name must hold.
        check_name: bool,
    }

    impl LegacyTls {
        /// A connector that also accepts TLS 1.0 and 1.1.
        pub fn new(settings: &WsManSettings) -> Result<LegacyTls, Error> {
            let pin = settings
                .certificate_thumbprint
                .as_deref()
                .map(Thumbprint::parse)
                .transpose()?;
            let mut builder = native_tls::TlsConnector::builder();
            builder.min_protocol_version(Some(native_tls::Protocol::Tlsv10));
            let skip_chain = pin.is_some() || settings.skip_ca_check;
            let skip_name = pin.is_some() || settings.skip_cn_check;
            // Turning off the chain check turns off the library's name check with it.
            builder.danger_accept_invalid_certs(skip_chain);
            builder.danger_accept_invalid_hostnames(skip_name);
            if let (Some(cert), Some(key)) = (&settings.client_certificate, &settings.client_key) {
                let read = |path: &Path| {
                    std::fs::read(path).map_err(|e| {
                        Error::new(Category::TlsFailure, format!("client certificate {}: {e}", path.display()))
                    })
                };
                // The platform libraries take a PKCS#8 key only.
                let identity = native_tls::Identity::from_pkcs8(&read(cert)?, &read(key)?).map_err(|e| {
                    Error::new(Category::TlsFailure, format!("client certificate {}: {e}", cert.display()))
                })?;
                builder.identity(identity);
            }
            if let Some(path) = &settings.ca_bundle {
                builder.disable_built_in_roots(true);
                for cert in read_pem_certificates(path)? {
                    let cert = native_tls::Certificate::from_der(&cert)
                        .map_err(|e| ca_bundle_error(path, e))?;
                    builder.add_root_certificate(cert);
                }
            }
            let connector = builder
                .build()
                .map_err(|e| Error::new(Category::TlsFailure, format!("platform TLS: {e}")))?;
            Ok(LegacyTls {
                connector: connector.into(),
                pin,
                check_name: skip_chain && !skip_name,
            })
        }

        /// Handshakes and checks the certificate; returns the stream and the leaf (DER).
        pub async fn connect<S>(
            &self,
            host: &str,
            stream: S,
        ) -> Result<(tokio_native_tls::TlsStream<S>, Vec<u8>), Error>
        where
            S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        {
            let failed = |e: String| {
                Error::new(
                    Category::TlsFailure,
                    format!("TLS handshake with {host} (platform library): {e}"),
                )
            };
            let tls = self
                .connector
                .connect(host, stream)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let leaf = tls
                .get_ref()
                .peer_certificate()
                .ok()
                .flatten()
                .and_then(|c| c.to_der().ok())
                .ok_or_else(|| failed("no server certificate".into()))?;
            if let Some(pin) = &self.pin {
                if !pin.matches(&leaf) {
                    return Err(failed(
                        "certificate does not match the pinned thumbprint".into(),
                    ));
                }
            } else if self.check_name {
                let name =
                    ServerName::try_from(host.to_string()).map_err(|e| failed(e.to_string()))?;
                let der = CertificateDer::from(leaf.as_slice());
                let cert =
                    webpki::EndEntityCert::try_from(&der).map_err(|e| failed(e.to_string()))?;
                cert.verify_is_valid_for_subject_name(&name)
                    .map_err(|e| failed(e.to_string()))?;
            }
            Ok((tls, leaf))
        }
    }
}

/// The operating system's trust store, read once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!("system trust store: {e}");
            }
            let mut store = RootCertStore::empty();
            let (added, ignored) = store.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system trust store loaded");
            Arc::new(store)
        })
        .clone()
}

#[derive(Debug)]
struct Verifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    /// Full web PKI check (chain and name), used when nothing is skipped; `None` without roots.
    full: Option<Arc<WebPkiServerVerifier>>,
    skip_ca: bool,
    skip_cn: bool,
    pin: Option<Thumbprint>,
}

impl Verifier {
    fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        skip_ca: bool,
        skip_cn: bool,
        pin: Option<Thumbprint>,
    ) -> Verifier {
        // The builder refuses an empty store; with no roots nothing chains, which a pin or
        // skip_ca_check may make irrelevant.
        let full = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .ok();
        Verifier {
            roots,
            provider,
            full,
            skip_ca,
            skip_cn,
            pin,
        }
    }
}

fn webpki_error(e: webpki::Error) -> rustls::Error {
    let cert = match e {
        webpki::Error::UnknownIssuer => CertificateError::UnknownIssuer,
        webpki::Error::CertNotValidForName(_) => CertificateError::NotValidForName,
        webpki::Error::CertExpired { .. } => CertificateError::Expired,
        webpki::Error::CertNotValidYet { .. } => CertificateError::NotValidYet,
        webpki::Error::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(cert)
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = &self.pin {
            return if pin.matches(end_entity.as_ref()) {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            };
        }
        match (self.skip_ca, self.skip_cn) {
            (false, false) => match &self.full {
                Some(full) => full.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ),
                None => Err(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                )),
            },
            (true, true) => Ok(ServerCertVerified::assertion()),
            (true, false) => {
                let cert = webpki::EndEntityCert::try_from(end_entity).map_err(webpki_error)?;
                cert.verify_is_valid_for_subject_name(server_name)
                    .map_err(webpki_error)?;
                Ok(ServerCertVerified::assertion())
            }
            (false, true) => {
                let cert = webpki::EndEntityCert::try_from(end_entity).map_err(webpki_error)?;
                cert.verify_for_usage(
                    self.provider.signature_verification_algorithms.all,
                    &self.roots.roots,
                    intermediates,
                    now,
                    webpki::KeyUsage::server_auth(),
                    None,
                    None,
                )
                .map_err(webpki_error)?;
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_parse_both_lengths() {
        let sha1 = Thumbprint::parse("AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:AB:CD:EF:01")
            .unwrap();
        assert!(!sha1.sha256);
        assert_eq!(sha1.digest.len(), 20);
        let sha256 = Thumbprint::parse(&"0f".repeat(32)).unwrap();
        assert!(sha256.sha256);
        for bad in [
            "",
            "abc",
            &"zz".repeat(20),
            &"ab".repeat(21),
            "é".repeat(20).as_str(),
        ] {
            assert_eq!(
                Thumbprint::parse(bad).unwrap_err().category,
                Category::Unsupported,
                "{bad}"
            );
        }
    }

    #[test]
    fn thumbprint_matches_the_digest() {
        // SHA-1("abc") from FIPS 180 appendix A.
        let pin = Thumbprint::parse("a9993e364706816aba3e25717850c26c9cd0d89d").unwrap();
        assert!(pin.matches(b"abc"));
        assert!(!pin.matches(b"abd"));
    }
}
