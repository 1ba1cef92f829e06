//! cimrun's own WS-Man transport against the test server: the pairing the fleet simulator and
//! the fault matrix rely on. (The server's independence from our client is proven by
//! tests/interop_pypsrp.rs; here both sides are ours, so this checks they fit together.)
#![cfg(feature = "testkit")]

use std::io::Write as _;
use std::time::{Duration, Instant};

use cimrun::protocol::wsman::transport::connect;
use cimrun::protocol::{AuthMechanism, Category, Credential, Endpoint, ProtocolKind, WsManSettings};
use cimrun::testkit::client::{context, enumerate, pull};
use cimrun::testkit::{Fault, HostConfig, TestServer};
use secrecy::SecretString;

fn endpoint(
    server: &TestServer,
    i: usize,
    mechanism: AuthMechanism,
    password: &str,
    settings: WsManSettings,
) -> Endpoint {
    let addr = server.addr(i).expect("host");
    let mut e = Endpoint::local();
    e.protocol = ProtocolKind::WsMan;
    e.computer = Some(addr.ip().to_string());
    e.port = Some(addr.port());
    e.authentication = mechanism;
    e.credential = Some(Credential { username: "cimrun".into(), password: SecretString::from(password.to_string()) });
    e.connect_timeout = Duration::from_secs(2);
    e.operation_timeout = Duration::from_secs(1);
    e.wsman = settings;
    e
}

/// Every service over a sealed connection authenticated with `mechanism`.
async fn sealed_enumeration_of_every_service(mechanism: AuthMechanism) {
    let server = TestServer::builder()
        .host(HostConfig::new("t1").allow_unencrypted(false).basic(false))
        .start()
        .expect("server");
    let want = server.config(0).unwrap().dataset().class("Win32_Service").unwrap().len();
    let mut t = connect(&endpoint(&server, 0, mechanism, "P@ssw0rd!", WsManSettings::default())).await.unwrap();
    let reply = t.exchange(enumerate("Win32_Service", 40)).await.unwrap();
    let mut body = String::from_utf8(reply.body.to_vec()).unwrap();
    let mut items = body.matches("<p:Win32_Service ").count();
    let mut exchanges = 1;
    while let Some(ctx) = context(&body).map(str::to_string) {
        let reply = t.exchange(pull("Win32_Service", &ctx, 40)).await.unwrap();
        assert_eq!(reply.status, 200);
        body = String::from_utf8(reply.body.to_vec()).unwrap();
        items += body.matches("<p:Win32_Service ").count();
        exchanges += 1;
    }
    assert_eq!(items, want);
    let s = server.stats(0).unwrap();
    assert_eq!((s.sealed_requests, s.connections, s.open_contexts), (exchanges, 1, 0));
    let spnego = u64::from(mechanism != AuthMechanism::Ntlm);
    assert_eq!(s.spnego_logons, spnego, "{mechanism:?}: {s:?}");
    // The handshake's last leg came with the first request, not on an empty POST of its own.
    assert_eq!(s.requests_with_last_leg, 1, "{mechanism:?}: {s:?}");
    t.shutdown().await;
}

#[tokio::test]
async fn ntlm_sealed_enumeration_of_every_service() {
    sealed_enumeration_of_every_service(AuthMechanism::Ntlm).await;
}

// Negotiate and Default send SPNEGO (NegTokenInit, NegTokenResp with mechListMIC), which the
// server unwraps and answers in kind. Multi-threaded: Negotiate legs run as blocking sections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_sealed_enumeration_of_every_service() {
    sealed_enumeration_of_every_service(AuthMechanism::Negotiate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_authentication_is_spnego_and_sealed() {
    sealed_enumeration_of_every_service(AuthMechanism::Default).await;
}

#[tokio::test]
async fn basic_over_https_with_the_server_ca_and_certificate_faults() {
    let server = TestServer::builder()
        .host(HostConfig::new("t2").https(true).allow_unencrypted(false))
        .host(HostConfig::new("t3").https(true).fault(Fault::UntrustedCertificate))
        .host(HostConfig::new("t4").https(true).fault(Fault::WrongCertificateName))
        .start()
        .expect("server");
    let mut bundle = tempfile::NamedTempFile::new().unwrap();
    bundle.write_all(server.ca_pem().unwrap().as_bytes()).unwrap();
    let trusted = WsManSettings { use_ssl: true, ca_bundle: Some(bundle.path().to_path_buf()), ..Default::default() };

    let mut t = connect(&endpoint(&server, 0, AuthMechanism::Basic, "P@ssw0rd!", trusted.clone())).await.unwrap();
    let reply = t.exchange(enumerate("Win32_BIOS", 1)).await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(String::from_utf8(reply.body.to_vec()).unwrap().contains("<p:Win32_BIOS "));

    for i in [1, 2] {
        let e = endpoint(&server, i, AuthMechanism::Basic, "P@ssw0rd!", trusted.clone());
        let err = match connect(&e).await {
            Ok(mut t) => t.exchange(enumerate("Win32_BIOS", 1)).await.expect_err("TLS must fail"),
            Err(e) => e,
        };
        assert_eq!(err.category, Category::TlsFailure, "host {i}: {err}");
    }
    // Skipping the name check (and only that) accepts the wrong-name certificate.
    let skip_cn = WsManSettings { skip_cn_check: true, ..trusted };
    let mut t = connect(&endpoint(&server, 2, AuthMechanism::Basic, "P@ssw0rd!", skip_cn)).await.unwrap();
    assert_eq!(t.exchange(enumerate("Win32_BIOS", 1)).await.unwrap().status, 200);
}

#[tokio::test]
async fn wrong_password_refuse_hang_and_reset_map_to_their_categories() {
    let server = TestServer::builder()
        .host(HostConfig::new("t5").allow_unencrypted(false))
        .host(HostConfig::new("t6").fault(Fault::Refuse))
        .host(HostConfig::new("t7").fault(Fault::Hang))
        .host(HostConfig::new("t8").fault(Fault::ResetAfterPulls(0)))
        .start()
        .expect("server");
    let ntlm = WsManSettings::default();
    let run = |i: usize, password: &'static str| {
        let e = endpoint(&server, i, AuthMechanism::Ntlm, password, ntlm.clone());
        async move {
            let mut t = connect(&e).await?;
            let reply = t.exchange(enumerate("Win32_Service", 10)).await?;
            let body = String::from_utf8(reply.body.to_vec()).unwrap_or_default();
            let ctx = context(&body).unwrap_or_default().to_string();
            t.exchange(pull("Win32_Service", &ctx, 10)).await.map(|_| ())
        }
    };
    assert_eq!(run(0, "wrong").await.unwrap_err().category, Category::AuthFailed);
    assert_eq!(run(1, "P@ssw0rd!").await.unwrap_err().category, Category::Unreachable);
    let started = Instant::now();
    assert_eq!(run(2, "P@ssw0rd!").await.unwrap_err().category, Category::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(run(3, "P@ssw0rd!").await.unwrap_err().category, Category::ConnectionFailed);
    assert_eq!(server.stats(3).unwrap().resets, 1);
}

/// A TLS-terminating relay with its own self-signed certificate in front of `upstream`, as a
/// middlebox would be: a client's channel bindings then name the relay's certificate, not the
/// server's.
async fn tls_relay(upstream: std::net::SocketAddr, ca_der: Vec<u8>) -> std::net::SocketAddr {
    use std::sync::Arc;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let down = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der)).unwrap();
    let up = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(down));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(up));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, connector) = (acceptor.clone(), connector.clone());
            tokio::spawn(async move {
                let Ok(mut down) = acceptor.accept(tcp).await else { return };
                let Ok(tcp) = tokio::net::TcpStream::connect(upstream).await else { return };
                let name = ServerName::IpAddress(upstream.ip().into());
                let Ok(mut up) = connector.connect(name, tcp).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_over_https_is_bound_to_the_server_certificate() {
    // Strict: a logon without bindings would be refused too, so success shows ours sends them.
    let host = HostConfig::new("t9").https(true).require_channel_bindings(true);
    let server = TestServer::builder().host(host).start().expect("server");
    let mut bundle = tempfile::NamedTempFile::new().unwrap();
    bundle.write_all(server.ca_pem().unwrap().as_bytes()).unwrap();
    let trusted = WsManSettings { use_ssl: true, ca_bundle: Some(bundle.path().to_path_buf()), ..Default::default() };
    for mechanism in [AuthMechanism::Ntlm, AuthMechanism::Negotiate] {
        let mut t = connect(&endpoint(&server, 0, mechanism, "P@ssw0rd!", trusted.clone())).await.unwrap();
        assert_eq!(t.exchange(enumerate("Win32_BIOS", 1)).await.unwrap().status, 200, "{mechanism:?}");
    }

    // Through a relay that terminates TLS, the bindings the client sends name the relay's
    // certificate: the server refuses the logon, as Windows does with CbtHardeningLevel=Strict.
    let relay = tls_relay(server.addr(0).unwrap(), server.ca_der().unwrap().to_vec()).await;
    let blind = WsManSettings { use_ssl: true, skip_ca_check: true, skip_cn_check: true, ..Default::default() };
    let via_relay = |mechanism| {
        let mut e = endpoint(&server, 0, mechanism, "P@ssw0rd!", blind.clone());
        e.port = Some(relay.port());
        e
    };
    for mechanism in [AuthMechanism::Ntlm, AuthMechanism::Negotiate] {
        let error = connect(&via_relay(mechanism)).await.err().expect("the relayed logon is refused");
        assert_eq!(error.category, Category::AuthFailed, "{mechanism:?}: {error}");
    }
    // The relay itself works: Basic, which binds nothing, passes through it.
    let mut t = connect(&via_relay(AuthMechanism::Basic)).await.unwrap();
    assert_eq!(t.exchange(enumerate("Win32_BIOS", 1)).await.unwrap().status, 200);
}

#[tokio::test]
async fn client_certificate_over_https() {
    let host = HostConfig::new("t10").https(true).basic(false).negotiate(false).certificate_auth(true);
    let server = TestServer::builder().host(host).start().expect("server");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca = write("ca.pem", server.ca_pem().unwrap());
    let settings = |name: &str, cert: &str, key: &str| WsManSettings {
        use_ssl: true,
        ca_bundle: Some(ca.clone()),
        client_certificate: Some(write(&format!("{name}.pem"), cert)),
        client_key: Some(write(&format!("{name}.key"), key)),
        ..Default::default()
    };
    let with_certificate = |settings: WsManSettings| {
        let mut e = endpoint(&server, 0, AuthMechanism::Default, "", settings);
        e.credential = None;
        e
    };
    async fn bios(e: Endpoint) -> Result<u16, cimrun::protocol::Error> {
        let mut t = connect(&e).await?;
        Ok(t.exchange(enumerate("Win32_BIOS", 1)).await?.status)
    }

    // Mapped to the host's account: no credential needed.
    let (cert, key) = server.client_certificate("cimrun").unwrap().unwrap();
    assert_eq!(bios(with_certificate(settings("mapped", &cert, &key))).await.unwrap(), 200);
    assert_eq!(server.stats(0).unwrap().certificate_logons, 1);

    // From the right CA but mapped to another account: refused by WS-Man, after TLS.
    let (other, other_key) = server.client_certificate("someone-else").unwrap().unwrap();
    let error = bios(with_certificate(settings("other", &other, &other_key))).await.unwrap_err();
    assert_eq!((error.category, error.code.as_deref()), (Category::AuthFailed, Some("401")), "{error}");

    // Not from the server's CA: refused in the TLS handshake.
    let stranger = rcgen::generate_simple_self_signed(vec!["client".to_string()]).unwrap();
    let pem = (stranger.cert.pem(), stranger.signing_key.serialize_pem());
    let error = bios(with_certificate(settings("stranger", &pem.0, &pem.1))).await.unwrap_err();
    assert_eq!(error.category, Category::TlsFailure, "{error}");
    assert!(error.message.contains("alert"), "the server's TLS alert is named: {error}");
    assert_eq!(server.stats(0).unwrap().certificate_logons, 1);

    // A key that is not the certificate's is caught before connecting.
    let error = bios(with_certificate(settings("mismatch", &cert, &other_key))).await.unwrap_err();
    assert_eq!(error.category, Category::TlsFailure, "{error}");
    // Over plain HTTP the option is refused: the certificate would never be presented.
    let plain = WsManSettings { use_ssl: false, ..settings("plain", &cert, &key) };
    let error = bios(with_certificate(plain)).await.unwrap_err();
    assert_eq!(error.category, Category::Unsupported, "{error}");
    // And a certificate does not mix with another mechanism.
    let basic = endpoint(&server, 0, AuthMechanism::Basic, "P@ssw0rd!", settings("basic", &cert, &key));
    let error = bios(basic).await.unwrap_err();
    assert_eq!(error.category, Category::Unsupported, "{error}");
}
