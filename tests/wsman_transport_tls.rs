//! The transport over HTTPS against a local tokio-rustls + hyper server with rcgen-made
//! certificates: each certificate check and skip flag, thumbprint pins, CA bundles, and
//! Basic authentication (which is only allowed over HTTPS).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use secrecy::SecretString;
use tokio::net::TcpListener;

use cimrun::protocol::wsman::transport::connect;
use cimrun::protocol::{
    AuthMechanism, Category, Credential, Endpoint, Error, ProtocolKind, WsManSettings,
};

const BASIC: &str = "Basic b3BzOnMzY3JldA=="; // ops:s3cret

struct Pki {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

/// A CA and a leaf for `localhost` signed by it.
fn make_pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cimrun test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        leaf: leaf.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// Serves HTTPS on a loopback port for the rest of the test: 200 with an echo of the body
/// when Basic credentials match, 401 otherwise.
async fn serve(pki: &Pki) -> u16 {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pki.leaf.clone()], pki.key.clone_key())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                    let authorized = request
                        .headers()
                        .get("authorization")
                        .is_some_and(|v| v == BASIC);
                    let content_type = request.headers().get("content-type").cloned();
                    let body = request
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let mut reply =
                        Response::new(Full::new(if authorized { body } else { Bytes::new() }));
                    if authorized {
                        if let Some(ct) = content_type {
                            reply.headers_mut().insert("content-type", ct);
                        }
                    } else {
                        *reply.status_mut() = hyper::StatusCode::UNAUTHORIZED;
                        reply
                            .headers_mut()
                            .insert("www-authenticate", "Basic realm=\"WSMAN\"".parse().unwrap());
                    }
                    Ok::<_, Infallible>(reply)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

fn endpoint(host: &str, port: u16, settings: WsManSettings, password: &str) -> Endpoint {
    let mut e = Endpoint::local();
    e.protocol = ProtocolKind::WsMan;
    e.computer = Some(host.into());
    e.port = Some(port);
    e.authentication = AuthMechanism::Basic;
    e.credential = Some(Credential {
        username: "ops".into(),
        password: SecretString::from(password.to_string()),
    });
    e.connect_timeout = Duration::from_secs(5);
    e.operation_timeout = Duration::from_secs(5);
    e.wsman = WsManSettings {
        use_ssl: true,
        ..settings
    };
    e
}

async fn exchange(endpoint: Endpoint) -> Result<(), Error> {
    let mut transport = connect(&endpoint).await?;
    let envelope = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"/>".to_string();
    let reply = transport.exchange(envelope.clone()).await?;
    if reply.status != 200 {
        return Err(Error::new(
            Category::ProtocolError,
            format!("status {}", reply.status),
        ));
    }
    assert_eq!(reply.body, envelope.as_bytes());
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/soap+xml;charset=UTF-8")
    );
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test]
async fn certificate_checks_and_skip_flags() {
    let pki = make_pki();
    let other = make_pki();
    let port = serve(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&ours, &pki.ca_pem).unwrap();
    std::fs::write(&theirs, &other.ca_pem).unwrap();
    let trusted = WsManSettings {
        ca_bundle: Some(ours.clone()),
        ..Default::default()
    };
    let untrusted = WsManSettings {
        ca_bundle: Some(theirs.clone()),
        ..Default::default()
    };

    let cases: Vec<(&str, &str, WsManSettings, Option<Category>)> = vec![
        ("trusted CA, right name", "localhost", trusted.clone(), None),
        (
            "untrusted CA",
            "localhost",
            untrusted.clone(),
            Some(Category::TlsFailure),
        ),
        (
            "system roots only",
            "localhost",
            WsManSettings::default(),
            Some(Category::TlsFailure),
        ),
        (
            "wrong name",
            "127.0.0.1",
            trusted.clone(),
            Some(Category::TlsFailure),
        ),
        (
            "wrong name, skip_cn_check",
            "127.0.0.1",
            WsManSettings {
                skip_cn_check: true,
                ..trusted.clone()
            },
            None,
        ),
        (
            "untrusted, skip_cn_check",
            "127.0.0.1",
            WsManSettings {
                skip_cn_check: true,
                ..untrusted.clone()
            },
            Some(Category::TlsFailure),
        ),
        (
            "untrusted, skip_ca_check",
            "localhost",
            WsManSettings {
                skip_ca_check: true,
                ..untrusted.clone()
            },
            None,
        ),
        (
            "untrusted + wrong name, skip_ca_check",
            "127.0.0.1",
            WsManSettings {
                skip_ca_check: true,
                ..untrusted.clone()
            },
            Some(Category::TlsFailure),
        ),
        (
            "untrusted + wrong name, both skipped",
            "127.0.0.1",
            WsManSettings {
                skip_ca_check: true,
                skip_cn_check: true,
                ..untrusted.clone()
            },
            None,
        ),
        (
            "skip_revocation_check alone changes nothing",
            "localhost",
            WsManSettings {
                skip_revocation_check: true,
                ..untrusted.clone()
            },
            Some(Category::TlsFailure),
        ),
    ];
    for (name, host, settings, want) in cases {
        let got = exchange(endpoint(host, port, settings, "s3cret"))
            .await
            .err()
            .map(|e| e.category);
        assert_eq!(got, want, "{name}");
    }
}

#[tokio::test]
async fn thumbprint_pins() {
    let pki = make_pki();
    let port = serve(&pki).await;
    let sha256 = hex(ring::digest::digest(&ring::digest::SHA256, &pki.leaf).as_ref());
    let sha1 =
        hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &pki.leaf).as_ref());
    let mut wrong = sha256.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    // A pin trusts the certificate as itself: no CA, any name.
    for (pin, want) in [
        (sha256.to_lowercase(), None),
        (sha1, None),
        (wrong, Some(Category::TlsFailure)),
    ] {
        let settings = WsManSettings {
            certificate_thumbprint: Some(pin.clone()),
            ..Default::default()
        };
        let got = exchange(endpoint("127.0.0.1", port, settings, "s3cret"))
            .await
            .err()
            .map(|e| e.category);
        assert_eq!(got, want, "pin {pin}");
    }
}

#[tokio::test]
async fn basic_over_https_and_wrong_password() {
    let pki = make_pki();
    let port = serve(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &pki.ca_pem).unwrap();
    let settings = WsManSettings {
        ca_bundle: Some(bundle),
        ..Default::default()
    };
    exchange(endpoint("localhost", port, settings.clone(), "s3cret"))
        .await
        .unwrap();
    let error = exchange(endpoint("localhost", port, settings, "wrong"))
        .await
        .unwrap_err();
    assert_eq!(error.category, Category::AuthFailed, "{error}");
}

#[tokio::test]
async fn unreachable_and_refused() {
    // A port nobody listens on: bind, learn the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = WsManSettings {
        skip_ca_check: true,
        skip_cn_check: true,
        ..Default::default()
    };
    let error = exchange(endpoint("127.0.0.1", port, settings.clone(), "s3cret"))
        .await
        .unwrap_err();
    assert_eq!(error.category, Category::Unreachable, "{error}");
    let error = exchange(endpoint("no-such-host.invalid", port, settings, "s3cret"))
        .await
        .unwrap_err();
    assert_eq!(error.category, Category::Unreachable, "{error}");
}
