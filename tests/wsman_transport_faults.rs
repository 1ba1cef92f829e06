//! How the transport fails against servers that misbehave at the socket level: every failure
//! is a precise category, and none hangs past its timeout.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use cimrun::protocol::wsman::transport::connect;
use cimrun::protocol::{
    AuthMechanism, Category, Credential, Endpoint, Error, ProtocolKind, WsManSettings,
};

/// Accepts connections for the rest of the test and hands each to `behave`.
async fn serve<F, Fut>(behave: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(behave(stream));
        }
    });
    port
}

/// Reads one request's head (the test requests are small).
async fn read_request(stream: &mut TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn endpoint(port: u16, settings: WsManSettings) -> Endpoint {
    let mut e = Endpoint::local();
    e.protocol = ProtocolKind::WsMan;
    e.computer = Some("127.0.0.1".into());
    e.port = Some(port);
    e.authentication = AuthMechanism::Basic;
    e.credential = Some(Credential {
        username: "ops".into(),
        password: SecretString::from("pw".to_string()),
    });
    e.connect_timeout = Duration::from_secs(1);
    e.operation_timeout = Duration::from_secs(1);
    e.wsman = settings;
    e
}

fn plain_http() -> WsManSettings {
    WsManSettings {
        allow_unencrypted: true,
        ..Default::default()
    }
}

async fn exchange(endpoint: Endpoint) -> Error {
    let started = Instant::now();
    let result = async {
        let mut transport = connect(&endpoint).await?;
        transport.exchange("<s:Envelope/>".to_string()).await
    }
    .await;
    // Read timeout: 1 s operation timeout + 1 s margin; nothing may take much longer.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    result.unwrap_err()
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let port = serve(|mut s| async move {
        read_request(&mut s).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let started = Instant::now();
    let error = exchange(endpoint(port, plain_http())).await;
    assert_eq!(error.category, Category::TimedOut, "{error}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "gave up after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_reset_mid_response_is_a_connection_failure() {
    let port = serve(|mut s| async move {
        read_request(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n<s:Envelope")
            .await;
        // Dropping the socket closes it with the body incomplete.
    })
    .await;
    let error = exchange(endpoint(port, plain_http())).await;
    assert_eq!(error.category, Category::ConnectionFailed, "{error}");
}

#[tokio::test]
async fn a_close_before_any_reply_is_a_connection_failure() {
    let port = serve(|mut s| async move { read_request(&mut s).await }).await;
    let error = exchange(endpoint(port, plain_http())).await;
    assert_eq!(error.category, Category::ConnectionFailed, "{error}");
}

#[tokio::test]
async fn garbage_instead_of_http_is_a_protocol_error() {
    let port = serve(|mut s| async move {
        read_request(&mut s).await;
        let _ = s.write_all(b"\x16\x03\x01 this is not HTTP\r\n\r\n").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let error = exchange(endpoint(port, plain_http())).await;
    assert_eq!(error.category, Category::ProtocolError, "{error}");
}

#[tokio::test]
async fn a_silent_tls_listener_times_out_the_handshake() {
    let port = serve(|s| async move {
        let _open = s;
        tokio::time::sleep(Duration::from_secs(30)).await
    })
    .await;
    let settings = WsManSettings {
        use_ssl: true,
        skip_ca_check: true,
        skip_cn_check: true,
        ..Default::default()
    };
    let error = exchange(endpoint(port, settings)).await;
    assert_eq!(error.category, Category::TimedOut, "{error}");
}

#[tokio::test]
async fn plain_http_where_tls_is_expected_is_a_tls_failure() {
    // An HTTP listener answers the ClientHello with an HTTP error.
    let port = serve(|mut s| async move {
        let _ = s.read(&mut [0u8; 4096]).await;
        let _ = s
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let settings = WsManSettings {
        use_ssl: true,
        skip_ca_check: true,
        skip_cn_check: true,
        ..Default::default()
    };
    let error = exchange(endpoint(port, settings)).await;
    assert_eq!(error.category, Category::TlsFailure, "{error}");
}

#[tokio::test]
async fn a_plain_http_error_reply_reaches_the_message_layer() {
    let port = serve(|mut s| async move {
        read_request(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let mut transport = connect(&endpoint(port, plain_http())).await.unwrap();
    let reply = transport
        .exchange("<s:Envelope/>".to_string())
        .await
        .unwrap();
    assert_eq!((reply.status, reply.body.len()), (500, 0));
}
