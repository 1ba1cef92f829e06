//! Interop: cimrun's WS-Man transport against an endpoint built on pyspnego's NTLM/SPNEGO
//! acceptor (tests/peers/winrm_ntlm_endpoint.py), which shares no code with ours. It seals
//! recorded Windows replies with pypsrp's framing; we must get them back byte for byte, and it
//! must be able to unseal and verify every request we send.
//!
//! The peer needs Python with pyspnego and pypsrp: `$CIMRUN_PYTHON`, else `.venv/bin/python` in
//! the crate root. These tests fail, not skip, when it is missing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cimrun::protocol::wsman::transport::connect;
use cimrun::protocol::{AuthMechanism, Category, Endpoint};

mod winrm_peer;
use winrm_peer::{Peer, envelope, pages};

const USER: &str = "WINHOST\\inventory";
const PASSWORD: &str = "Pa55w.rd-Ünïcode";

impl Peer {
    fn start(protocol: &str, extra: &[&str]) -> Peer {
        Peer::start_with(protocol, extra, &pages())
    }

    fn start_with(protocol: &str, extra: &[&str], pages: &[PathBuf]) -> Peer {
        let mut args = vec!["--user", USER, "--password", PASSWORD, "--protocol", protocol];
        args.extend_from_slice(extra);
        Peer::spawn(&args, &[], pages)
    }

    fn endpoint(&self, mechanism: AuthMechanism, password: &str) -> Endpoint {
        self.endpoint_as("127.0.0.1", mechanism, USER, password)
    }
}

/// Exchanges every recorded page over a fresh connection; returns the peer to look into.
async fn round_trip_pages(mechanism: AuthMechanism, protocol: &str, extra: &[&str]) -> Peer {
    let peer = Peer::start(protocol, extra);
    let mut transport = connect(&peer.endpoint(mechanism, PASSWORD)).await.unwrap();
    for reply in peer.exchange_pages(transport.as_mut()).await {
        assert_eq!(reply.content_type.as_deref(), Some("application/soap+xml;charset=UTF-8"));
    }
    transport.shutdown().await;
    peer
}

/// The AUTHENTICATE leg rides on the first sealed request (one round trip fewer per
/// connection): the peer's acceptor finishes the handshake, unseals that request with the new
/// keys and answers it.
#[tokio::test]
async fn ntlm_sealed_pages_round_trip() {
    let peer = round_trip_pages(AuthMechanism::Ntlm, "ntlm", &[]).await;
    assert_eq!(peer.handshakes(), "bodies=1 ignored=0 failed=0 connections=1");
}

/// Under SPNEGO the server's final token (its mechListMIC) comes on the sealed reply to that
/// first request; it is checked before the reply is unsealed, and both directions' sequence
/// numbers start after the MICs.
// Multi-threaded: Negotiate legs run as blocking sections there (they may call a KDC).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_sealed_pages_round_trip() {
    let peer = round_trip_pages(AuthMechanism::Negotiate, "negotiate", &[]).await;
    assert_eq!(peer.handshakes(), "bodies=1 ignored=0 failed=0 connections=1");
    assert_eq!(peer.mechanisms(), "ntlm");
}

/// A server that takes the last leg but answers its request with an empty 200 (dropping the
/// body) gets the request again on a connection authenticated on empty POSTs, and nothing
/// is lost or sent twice to the WS-Man layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_drops_the_body_of_the_last_leg_gets_it_again() {
    for (mechanism, protocol) in [(AuthMechanism::Ntlm, "ntlm"), (AuthMechanism::Negotiate, "negotiate")] {
        let peer = round_trip_pages(mechanism, protocol, &["--ignore-last-leg-body"]).await;
        assert_eq!(peer.handshakes(), "bodies=0 ignored=1 failed=0 connections=2", "{protocol}");
    }
}

/// The whole WS-Man stack (session, envelopes, parsing) over this transport: Enumerate and
/// three Pulls, every instance of the recorded Windows pages, through NTLM sealing.
#[tokio::test]
async fn session_enumerates_every_instance_through_sealed_ntlm() {
    use cimrun::protocol::{Connector, QuerySpec};
    use futures::StreamExt;

    let peer = Peer::start("ntlm", &["--relate"]);
    let connector = cimrun::protocol::wsman::transport::connector();
    let endpoint = peer.endpoint(AuthMechanism::Ntlm, PASSWORD);
    let mut session = connector.open(&endpoint).await.unwrap();
    let query = QuerySpec::class("Win32_Service");
    let mut names = Vec::new();
    let mut pages_seen = 0;
    {
        let mut stream = session.enumerate(&query);
        while let Some(page) = stream.next().await {
            pages_seen += 1;
            for instance in page.unwrap() {
                names.push(format!("{:?}", instance.get("Name").unwrap()));
            }
        }
    }
    session.close().await.unwrap();

    // What the recorded pages hold, found by plain text search.
    let mut expected = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(page).unwrap();
        for chunk in text.split("<p:Name>").skip(1) {
            expected.push(chunk.split('<').next().unwrap().to_string());
        }
    }
    assert_eq!(names.len(), expected.len());
    for (got, want) in names.iter().zip(&expected) {
        assert!(got.contains(want.as_str()), "{got} vs {want}");
    }
    assert!(pages_seen >= 2, "{pages_seen} pages");
    assert!(
        peer.recorded(3).windows(5).any(|w| w == b"Pull>"),
        "the last request is a Pull"
    );
}

/// With `auth_with_first_request: false` the handshake ends on an empty POST of its own, and a
/// wrong password fails the connection, as before the combination existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_leg_can_be_sent_on_its_own() {
    for (mechanism, protocol) in [(AuthMechanism::Ntlm, "ntlm"), (AuthMechanism::Negotiate, "negotiate")] {
        let peer = Peer::start(protocol, &[]);
        let mut endpoint = peer.endpoint(mechanism, PASSWORD);
        endpoint.wsman.auth_with_first_request = false;
        let mut transport = connect(&endpoint).await.unwrap();
        peer.exchange_pages(transport.as_mut()).await;
        assert_eq!(peer.handshakes(), "bodies=0 ignored=0 failed=0 connections=1", "{protocol}");

        let mut endpoint = peer.endpoint(mechanism, "not the password");
        endpoint.wsman.auth_with_first_request = false;
        let error = connect(&endpoint).await.err().unwrap();
        assert_eq!(error.category, Category::AuthFailed, "{protocol}: {error}");
    }
}

/// A wrong password is one failed logon per session: the verdict (a 401 to the request that
/// carried the last leg) fails that request and every later one without a new handshake,
/// which would count towards the account's lockout.
#[tokio::test]
async fn wrong_password_is_auth_failed_quickly() {
    let peer = Peer::start("ntlm", &[]);
    let started = Instant::now();
    let mut transport = connect(&peer.endpoint(AuthMechanism::Ntlm, "not the password"))
        .await
        .unwrap();
    for _ in 0..3 {
        let error = transport.exchange(envelope(0)).await.unwrap_err();
        assert_eq!(
            (error.category, error.code.as_deref()),
            (Category::AuthFailed, Some("401")),
            "{error}"
        );
    }
    assert_eq!(peer.handshakes(), "bodies=0 ignored=0 failed=1 connections=1");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_sealed_fault_arrives_unsealed_with_its_status() {
    // Windows seals SOAP faults too, and sends them with HTTP 500.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/wsman/txwinrm");
    let fault = data.join("data_error/max_concurrent.xml");
    let page = data.join("data/server_2012/Win32_Service_star_000.xml");
    let peer = Peer::start_with(
        "ntlm",
        &["--fault-reply", "0"],
        &[fault.clone(), page.clone()],
    );
    let mut transport = connect(&peer.endpoint(AuthMechanism::Ntlm, PASSWORD))
        .await
        .unwrap();
    let reply = transport.exchange(envelope(0)).await.unwrap();
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, std::fs::read(fault).unwrap());
    // The sealing state survives a fault: the next exchange works on the same connection.
    let reply = transport.exchange(envelope(1)).await.unwrap();
    assert_eq!(
        (reply.status, reply.body.to_vec()),
        (200, std::fs::read(page).unwrap())
    );
}

#[tokio::test]
async fn tampered_reply_is_a_protocol_error() {
    let peer = Peer::start("ntlm", &["--tamper-reply", "1"]);
    let mut transport = connect(&peer.endpoint(AuthMechanism::Ntlm, PASSWORD))
        .await
        .unwrap();
    transport.exchange(envelope(0)).await.unwrap();
    let error = transport.exchange(envelope(1)).await.unwrap_err();
    assert_eq!(error.category, Category::ProtocolError, "{error}");
}

/// A self-signed certificate for `localhost`, written as PEM files, and its SHA-256 thumbprint.
fn certificate(dir: &Path) -> (PathBuf, PathBuf, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, certified.cert.der());
    (
        cert,
        key,
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    )
}

/// `ciphers`: an OpenSSL cipher list restricting the peer to TLS 1.2 with those suites.
async fn ntlm_over_https(
    bindings: &str,
    ciphers: Option<&str>,
) -> Result<(), cimrun::protocol::Error> {
    over_https(AuthMechanism::Ntlm, "ntlm", bindings, ciphers).await
}

async fn over_https(
    mechanism: AuthMechanism,
    protocol: &str,
    bindings: &str,
    ciphers: Option<&str>,
) -> Result<(), cimrun::protocol::Error> {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, thumbprint) = certificate(dir.path());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut args = vec!["--tls-cert", cert, "--tls-key", key, "--bindings", bindings];
    if let Some(ciphers) = ciphers {
        args.extend(["--tls-ciphers", ciphers]);
    }
    let peer = Peer::start(protocol, &args);
    let mut endpoint = peer.endpoint(mechanism, PASSWORD);
    endpoint.computer = Some("localhost".into());
    endpoint.wsman.use_ssl = true;
    endpoint.wsman.certificate_thumbprint = Some(thumbprint);
    let mut transport = connect(&endpoint).await?;
    for (i, page) in pages().iter().take(2).enumerate() {
        let reply = transport.exchange(envelope(i)).await?;
        assert_eq!(reply.body, std::fs::read(page).unwrap(), "page {i} differs");
        assert_eq!(peer.recorded(i), envelope(i).as_bytes());
    }
    Ok(())
}

#[tokio::test]
async fn ntlm_over_https_sends_channel_bindings() {
    // The peer requires tls-server-end-point bindings of its certificate, as Windows does
    // with CbtHardeningLevel=Strict.
    ntlm_over_https("right", None).await.unwrap();
    // Bindings the peer computed for another certificate: our token cannot match them.
    let error = ntlm_over_https("wrong", None).await.unwrap_err();
    assert_eq!(error.category, Category::AuthFailed, "{error}");
    // The same through SPNEGO.
    over_https(AuthMechanism::Negotiate, "negotiate", "right", None)
        .await
        .unwrap();
    let error = over_https(AuthMechanism::Negotiate, "negotiate", "wrong", None)
        .await
        .unwrap_err();
    assert_eq!(error.category, Category::AuthFailed, "{error}");
}

/// A listener that offers only CBC suites (as old Windows servers do): rustls has none of
/// them, so the default build fails cleanly and the `native-tls` build falls back to the
/// platform library, with channel bindings of the certificate it saw.
#[tokio::test]
async fn cbc_only_listener() {
    let result = ntlm_over_https("right", Some("ECDHE-ECDSA-AES128-SHA256")).await;
    if cfg!(feature = "native-tls") {
        result.unwrap();
    } else {
        assert_eq!(result.unwrap_err().category, Category::TlsFailure);
    }
}

/// A CONNECT proxy on loopback for the rest of the test; counts the tunnels it opened and
/// answers 407 when `require` (a Proxy-Authorization value) is not sent.
async fn connect_proxy(require: Option<&'static str>) -> (u16, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let target = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let authorized = require
                    .is_none_or(|auth| head.contains(&format!("Proxy-Authorization: {auth}\r\n")));
                if !head.starts_with("CONNECT ") || !authorized {
                    let _ = client.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n").await;
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, tunnels)
}

#[tokio::test]
async fn ntlm_through_a_connect_proxy() {
    let peer = Peer::start("ntlm", &[]);
    let (proxy_port, tunnels) = connect_proxy(Some("Basic cHg6c2VjcmV0")).await; // px:secret
    let mut endpoint = peer.endpoint(AuthMechanism::Ntlm, PASSWORD);
    endpoint.wsman.proxy = Some(format!("http://px:secret@127.0.0.1:{proxy_port}"));
    let mut transport = connect(&endpoint).await.unwrap();
    for (i, page) in pages().iter().enumerate() {
        let reply = transport.exchange(envelope(i)).await.unwrap();
        assert_eq!(reply.body, std::fs::read(page).unwrap(), "page {i} differs");
    }
    // One tunnel: the connection NTLM authenticated carried every sealed request.
    assert_eq!(tunnels.load(Ordering::SeqCst), 1);

    endpoint.wsman.proxy = Some(format!("http://px:wrong@127.0.0.1:{proxy_port}"));
    let error = connect(&endpoint).await.err().unwrap();
    assert_eq!(
        (error.category, error.code.as_deref()),
        (Category::AuthFailed, Some("407")),
        "{error}"
    );
}

#[tokio::test]
async fn lost_connection_resends_only_when_safe() {
    // The peer drops the connection under request 1, then under nothing else.
    let peer = Peer::start("ntlm", &["--drop-request", "1"]);
    let mut transport = connect(&peer.endpoint(AuthMechanism::Ntlm, PASSWORD))
        .await
        .unwrap();
    transport.exchange(envelope(0)).await.unwrap();
    // Safe to resend: a new connection, a new NTLM context, and the reply to the resent request.
    let reply = transport.exchange_resendable(envelope(1)).await.unwrap();
    assert_eq!(reply.body, std::fs::read(&pages()[1]).unwrap());
    assert_eq!(peer.recorded(2), envelope(1).as_bytes());

    let peer = Peer::start("ntlm", &["--drop-request", "1"]);
    let mut transport = connect(&peer.endpoint(AuthMechanism::Ntlm, PASSWORD))
        .await
        .unwrap();
    transport.exchange(envelope(0)).await.unwrap();
    let error = transport.exchange(envelope(1)).await.unwrap_err();
    assert_eq!(error.category, Category::ConnectionFailed, "{error}");
    // The next request reconnects and re-authenticates by itself.
    let reply = transport.exchange(envelope(2)).await.unwrap();
    assert_eq!(reply.body, std::fs::read(&pages()[1]).unwrap());
}

/// Kerberos cannot be tested end to end without a KDC; without one it must fail as an
/// authentication failure, quickly, and never fall back to sending anything in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_without_a_kdc_is_an_auth_failure() {
    let peer = Peer::start("ntlm", &[]);
    let mut endpoint = peer.endpoint(AuthMechanism::Kerberos, PASSWORD);
    endpoint.credential.as_mut().unwrap().username = "inventory@NO-KDC.INVALID".into();
    let started = Instant::now();
    let error = connect(&endpoint).await.err().unwrap();
    assert_eq!(error.category, Category::AuthFailed, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
