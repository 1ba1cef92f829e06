//! The WS-Man test server, driven over real sockets by a minimal hyper client: paging as
//! Windows does it, contexts, Release, Get, EPRs, authentication, every fault kind, lifetime.
#![cfg(feature = "testkit")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use cimrun::protocol::Credential;
use cimrun::protocol::wsman::auth::{Package, SecurityContext, tls_server_end_point};
use cimrun::protocol::wsman::encryption::{self, SealProtocol};
use cimrun::testkit::client::{GET, PULL, context, enumerate, enumerate_with, envelope, pull, release, wsman_code};
use cimrun::testkit::{Fault, HostConfig, TestServer, fleet_address};
use secrecy::SecretString;

const WMI: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/";

/// One keep-alive HTTP/1.1 connection, as a WS-Man session uses.
struct Client {
    sender: SendRequest<Full<Bytes>>,
    auth: Option<String>,
}

/// A reply: status, body, and the WWW-Authenticate headers.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
    challenges: Vec<String>,
    server: Option<String>,
}

async fn connect(addr: SocketAddr) -> std::io::Result<Client> {
    let stream = TcpStream::connect(addr).await?;
    handshake(TokioIo::new(stream)).await
}

async fn handshake<IO>(io: IO) -> std::io::Result<Client>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(Client { sender, auth: Some(basic("cimrun", "P@ssw0rd!")) })
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

impl Client {
    async fn post(&mut self, envelope: String) -> Result<Reply, hyper::Error> {
        self.post_raw(envelope.into_bytes(), "application/soap+xml;charset=UTF-8").await.map(|(r, _)| r)
    }

    /// Posts any body; also returns the raw reply body and its Content-Type.
    async fn post_raw(
        &mut self,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(Reply, (Vec<u8>, String)), hyper::Error> {
        let mut req = http::Request::post("/wsman").header("Host", "localhost").header("Content-Type", content_type);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let challenges = resp
            .headers()
            .get_all("WWW-Authenticate")
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .collect();
        let server = resp.headers().get("Server").and_then(|v| v.to_str().ok()).map(str::to_string);
        let reply_type =
            resp.headers().get("Content-Type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let body = resp.into_body().collect().await?.to_bytes();
        let reply = Reply { status, body: String::from_utf8_lossy(&body).into_owned(), challenges, server };
        Ok((reply, (body.to_vec(), reply_type)))
    }
}

fn start(hosts: impl IntoIterator<Item = HostConfig>) -> TestServer {
    TestServer::builder().hosts(hosts).lifetime(Duration::from_secs(60)).start().expect("server starts")
}

/// Runs a whole enumeration and returns (items seen, pages, last body).
async fn enumerate_all(c: &mut Client, class: &str, max: u32, item_tag: &str) -> (usize, usize, String) {
    let r = c.post(enumerate(class, max)).await.expect("enumerate");
    assert_eq!(r.status, 200, "{}", r.body);
    let mut items = r.body.matches(item_tag).count();
    let mut pages = 1;
    let mut ctx = context(&r.body).map(str::to_string);
    let mut last = r.body;
    while let Some(cx) = ctx {
        let r = c.post(pull(class, &cx, max)).await.expect("pull");
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("<a:RelatesTo>uuid:P-1</a:RelatesTo>"));
        items += r.body.matches(item_tag).count();
        pages += 1;
        let next = context(&r.body).map(str::to_string);
        assert_ne!(next.as_deref(), Some(cx.as_str()), "each page hands out a new context");
        ctx = next;
        last = r.body;
    }
    (items, pages, last)
}

#[tokio::test]
async fn enumeration_pages_like_windows() {
    let server = start([HostConfig::new("app01").seed(5)]);
    let services = server.config(0).unwrap().dataset().class("Win32_Service").unwrap().len();
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();

    let r = c.post(enumerate("Win32_Service", 50)).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<a:RelatesTo>uuid:E-1</a:RelatesTo>"));
    assert_eq!(r.body.matches("<p:Win32_Service ").count(), 1, "optimized Enumerate carries one item");
    assert!(r.body.contains("<w:Items>") && !r.body.contains("EndOfSequence"));
    let first_ctx = context(&r.body).unwrap().to_string();

    // However many items a Pull asks for, a page holds at most about 50, as on Windows.
    let r = c.post(pull("Win32_Service", &first_ctx, 32_000)).await.unwrap();
    assert_eq!(r.body.matches("<p:Win32_Service ").count(), 50);
    assert!(r.body.contains("<n:Items>"));
    // The context of the first page is no longer valid once a new one was handed out.
    let stale = c.post(pull("Win32_Service", &first_ctx, 50)).await.unwrap();
    assert_eq!(stale.status, 500);
    assert_eq!(wsman_code(&stale.body), Some(2_150_858_779));
    assert!(stale.body.contains("n:InvalidEnumerationContext"));

    let (items, pages, last) = enumerate_all(&mut c, "Win32_Service", 50, "<p:Win32_Service ").await;
    assert_eq!(items, services);
    assert_eq!(pages, 1 + (services - 1).div_ceil(50));
    assert!(last.contains("<n:EndOfSequence/></n:PullResponse>"));
    assert!(context(&last).is_none(), "the last PullResponse has no context");
    let stats = server.stats(0).unwrap();
    assert_eq!(stats.open_contexts, 1, "only the abandoned first enumeration is open");
    assert_eq!(stats.count("Enumerate"), 2);
    assert_eq!(stats.connections, 1, "one keep-alive connection");
}

#[tokio::test]
async fn single_instance_and_unoptimized_enumerations() {
    let server = start([HostConfig::new("app02")]);
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();
    let r = c.post(enumerate("Win32_OperatingSystem", 10)).await.unwrap();
    assert!(r.body.contains("<n:EnumerationContext></n:EnumerationContext><w:Items><p:Win32_OperatingSystem "));
    assert!(r.body.contains("</w:Items><w:EndOfSequence/></n:EnumerateResponse>"));
    assert!(r.body.contains("<p:LastBootUpTime><cim:Datetime>"));
    assert!(r.body.contains("<p:CSDVersion xsi:nil=\"true\"/>"));

    let r = c.post(enumerate_with(&format!("{WMI}Win32_BIOS"), "", "")).await.unwrap();
    assert!(!r.body.contains("Items"), "no items without OptimizeEnumeration");
    let ctx = context(&r.body).unwrap().to_string();
    let r = c.post(pull("Win32_BIOS", &ctx, 5)).await.unwrap();
    assert_eq!(r.body.matches("<p:Win32_BIOS ").count(), 1);
    assert!(r.body.contains("<n:EndOfSequence/>"));
    assert_eq!(server.stats(0).unwrap().open_contexts, 0);
}

#[tokio::test]
async fn wql_property_lists_and_epr_mode() {
    let server = start([HostConfig::new("app03").seed(9)]);
    let data = server.config(0).unwrap().dataset();
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();
    let filter = r#"<w:OptimizeEnumeration/><w:MaxElements>500</w:MaxElements><w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">select Description, IPAddress from Win32_NetworkAdapterConfiguration</w:Filter>"#;
    let r = c.post(enumerate_with(&format!("{WMI}*"), "", filter)).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<w:XmlFragment xmlns:xsi="));
    assert!(r.body.contains("<IPAddress xsi:nil=\"true\"/>"), "{}", r.body);
    let ctx = context(&r.body).unwrap().to_string();
    let r2 = c.post(pull("*", &ctx, 500)).await.unwrap();
    let fragments = r.body.matches("<w:XmlFragment ").count() + r2.body.matches("<w:XmlFragment ").count();
    assert_eq!(fragments, data.class("Win32_NetworkAdapterConfiguration").unwrap().len());
    assert!(!r2.body.contains("<Caption>"), "only the selected properties");

    let epr =
        "<w:OptimizeEnumeration/><w:MaxElements>500</w:MaxElements><w:EnumerationMode>EnumerateEPR</w:EnumerationMode>";
    let r = c.post(enumerate_with(&format!("{WMI}Win32_LogicalDisk"), "", epr)).await.unwrap();
    let first = data.class("Win32_LogicalDisk").unwrap()[0].get("DeviceID").unwrap().to_string();
    assert!(r.body.contains(&format!(
        "<a:EndpointReference><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address><a:ReferenceParameters><w:ResourceURI>{WMI}Win32_LogicalDisk</w:ResourceURI><w:SelectorSet><w:Selector Name=\"DeviceID\">{first}</w:Selector></w:SelectorSet>"
    )));

    // WHERE is evaluated with WMI's semantics (case-insensitive strings, LIKE).
    let wanted: Vec<String> = data
        .class("Win32_Service")
        .unwrap()
        .iter()
        .filter(|s| s.get("State").is_some_and(|v| v.to_string() == "Running"))
        .filter(|s| s.get("Name").is_some_and(|v| v.to_string().to_ascii_lowercase().starts_with('w')))
        .map(|s| s.get("Name").unwrap().to_string())
        .collect();
    assert!(!wanted.is_empty());
    let filter = r#"<w:OptimizeEnumeration/><w:MaxElements>500</w:MaxElements><w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">SELECT Name FROM Win32_Service WHERE State = 'running' AND Name LIKE 'W%'</w:Filter>"#;
    let r = c.post(enumerate_with(&format!("{WMI}*"), "", filter)).await.unwrap();
    let mut names: Vec<String> =
        r.body.split("<Name>").skip(1).filter_map(|s| s.split_once("</Name>")).map(|(n, _)| n.to_string()).collect();
    if let Some(ctx) = context(&r.body) {
        let r = c.post(pull("*", ctx, 500)).await.unwrap();
        names
            .extend(r.body.split("<Name>").skip(1).filter_map(|s| s.split_once("</Name>")).map(|(n, _)| n.to_string()));
    }
    assert_eq!(names, wanted);

    let bad = r#"<w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">SELECT Nope FROM Win32_Service</w:Filter>"#;
    let r = c.post(enumerate_with(&format!("{WMI}*"), "", bad)).await.unwrap();
    assert_eq!(r.status, 500);
    assert!(r.body.contains("w:CannotProcessFilter") && r.body.contains("Code=\"2147749911\""));
    for bad in [
        "SELECT Name FROM Win32_Service WHERE Nope = 1",
        "SELECT FROM Win32_Service",
        "SELECT * FROM Win32_Service WHERE",
    ] {
        let f = format!(r#"<w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">{bad}</w:Filter>"#);
        let r = c.post(enumerate_with(&format!("{WMI}*"), "", &f)).await.unwrap();
        assert_eq!(wsman_code(&r.body), Some(2_150_858_752), "{bad}");
        assert!(r.body.contains("Code=\"2147749911\""), "{bad}");
    }
}

#[tokio::test]
async fn release_get_and_lookup_faults() {
    let server = start([HostConfig::new("app04")]);
    let data = server.config(0).unwrap().dataset();
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();
    let r = c.post(enumerate("Win32_Process", 5)).await.unwrap();
    let ctx = context(&r.body).unwrap().to_string();
    assert_eq!(server.stats(0).unwrap().open_contexts, 1);
    let r = c.post(release("Win32_Process", &ctx)).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("enumeration/ReleaseResponse</a:Action>") && r.body.contains("<s:Body></s:Body>"));
    let s = server.stats(0).unwrap();
    assert_eq!((s.releases, s.open_contexts, s.count("Release")), (1, 0, 1));
    let r = c.post(release("Win32_Process", &ctx)).await.unwrap();
    assert_eq!(wsman_code(&r.body), Some(2_150_858_779));
    assert_eq!(server.stats(0).unwrap().releases, 1);

    let name = data.class("Win32_Service").unwrap()[3].get("Name").unwrap().to_string();
    let selectors = format!("<w:SelectorSet><w:Selector Name=\"Name\">{name}</w:Selector></w:SelectorSet>");
    let r = c.post(envelope(GET, &format!("{WMI}Win32_Service"), "uuid:G-1", &selectors, "")).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("transfer/GetResponse") && r.body.contains(&format!("<p:Name>{name}</p:Name>")));
    let missing = "<w:SelectorSet><w:Selector Name=\"Name\">NoSuchService</w:Selector></w:SelectorSet>";
    let r = c.post(envelope(GET, &format!("{WMI}Win32_Service"), "uuid:G-2", missing, "")).await.unwrap();
    assert_eq!(r.status, 500);
    assert!(r.body.contains("w:InvalidSelectors") && r.body.contains("<a:RelatesTo>uuid:G-2</a:RelatesTo>"));

    let r = c.post(enumerate("Win32_NoSuchClass", 5)).await.unwrap();
    assert_eq!(r.status, 500);
    assert!(r.body.contains("Code=\"2147749904\"") && r.body.contains("w:DestinationUnreachable"));
    let r = c
        .post(enumerate_with("http://schemas.microsoft.com/wbem/wsman/1/wmi/root/nope/Win32_BIOS", "", ""))
        .await
        .unwrap();
    assert!(r.body.contains("Code=\"2147749902\""));
    let r = c.post("<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><oops".into()).await.unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("w:SchemaValidationError"));
}

#[tokio::test]
async fn dmtf_resource_uri_with_cimnamespace_selector() {
    let server = start([HostConfig::new("app05")]);
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();
    let ns = "<w:SelectorSet><w:Selector Name=\"__cimnamespace\">root/cimv2</w:Selector></w:SelectorSet>";
    let body = "<w:OptimizeEnumeration/><w:MaxElements>10</w:MaxElements>";
    let uri = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/Win32_ComputerSystem";
    let r = c.post(enumerate_with(uri, ns, body)).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<p:Name>APP05</p:Name>"));
}

#[tokio::test]
async fn authentication() {
    let server = start([
        HostConfig::new("a1"),
        HostConfig::new("a2").allow_unencrypted(false),
        HostConfig::new("a3").fault(Fault::WrongPassword),
    ]);
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();
    c.auth = None;
    let r = c.post(enumerate("Win32_BIOS", 1)).await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.server.as_deref(), Some("Microsoft-HTTPAPI/2.0"));
    assert_eq!(r.challenges, ["Negotiate", "Basic realm=\"WSMAN\""]);
    c.auth = Some(basic("cimrun", "wrong"));
    assert_eq!(c.post(enumerate("Win32_BIOS", 1)).await.unwrap().status, 401);
    c.auth = Some(basic("CIMRUN", "P@ssw0rd!"));
    assert_eq!(c.post(enumerate("Win32_BIOS", 1)).await.unwrap().status, 200);

    // Basic over plain HTTP is refused unless allowed, and not even offered.
    let mut c = connect(server.addr(1).unwrap()).await.unwrap();
    let r = c.post(enumerate("Win32_BIOS", 1)).await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.challenges, ["Negotiate"]);

    let mut c = connect(server.addr(2).unwrap()).await.unwrap();
    assert_eq!(c.post(enumerate("Win32_BIOS", 1)).await.unwrap().status, 401);
    assert_eq!(server.stats(2).unwrap().unauthorized, 1);
    assert!(server.stats(2).unwrap().requests.is_empty(), "nothing unauthenticated is counted as an operation");
}

#[tokio::test]
async fn refuse_hang_slow_and_latency() {
    let server = start([
        HostConfig::new("f1").fault(Fault::Refuse),
        HostConfig::new("f2").fault(Fault::Hang),
        HostConfig::new("f3").fault(Fault::Slow(Duration::from_millis(400))),
        HostConfig::new("f4").latency(Duration::from_millis(150)),
    ]);
    let err = connect(server.addr(0).unwrap()).await.err().expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    let mut c = connect(server.addr(1).unwrap()).await.expect("hang accepts");
    let hung = tokio::time::timeout(Duration::from_millis(700), c.post(enumerate("Win32_BIOS", 1))).await;
    assert!(hung.is_err(), "a hanging host never answers");

    for (i, at_least) in [(2, 400), (3, 150)] {
        let mut c = connect(server.addr(i).unwrap()).await.unwrap();
        let t = Instant::now();
        let r = c.post(enumerate("Win32_BIOS", 1)).await.unwrap();
        assert_eq!(r.status, 200);
        assert!(t.elapsed() >= Duration::from_millis(at_least), "host {i}: {:?}", t.elapsed());
    }
    // Dropping the server with a hung connection still returns promptly.
    let t = Instant::now();
    drop(server);
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn reset_after_pulls_closes_the_connection() {
    let server = start([HostConfig::new("r1").fault(Fault::ResetAfterPulls(1))]);
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();
    let r = c.post(enumerate("Win32_Service", 20)).await.unwrap();
    let ctx = context(&r.body).unwrap().to_string();
    let r = c.post(pull("Win32_Service", &ctx, 20)).await.unwrap();
    assert_eq!(r.status, 200);
    let ctx = context(&r.body).unwrap().to_string();
    assert!(c.post(pull("Win32_Service", &ctx, 20)).await.is_err(), "the second Pull loses the connection");
    let s = server.stats(0).unwrap();
    assert_eq!((s.resets, s.open_contexts), (1, 1));
    // A new connection can still Release the abandoned enumeration.
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();
    assert_eq!(c.post(release("Win32_Service", &ctx)).await.unwrap().status, 200);
    assert_eq!(server.stats(0).unwrap().releases, 1);
}

#[tokio::test]
async fn utf16_hosts_answer_in_utf16_with_a_bom() {
    let server = start([HostConfig::new("u1").utf16(true)]);
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();
    let (r, (raw, content_type)) =
        c.post_raw(enumerate("Win32_BIOS", 1).into_bytes(), "application/soap+xml;charset=UTF-8").await.unwrap();
    assert_eq!((r.status, content_type.as_str()), (200, "application/soap+xml;charset=UTF-16"));
    assert_eq!(raw.get(..2), Some(&[0xff, 0xfe][..]));
    let units: Vec<u16> = raw[2..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let text = String::from_utf16(&units).expect("UTF-16LE");
    assert!(text.starts_with("<s:Envelope ") && text.contains("<p:Win32_BIOS "));
}

#[tokio::test]
async fn timed_out_once_then_success() {
    let server = start([HostConfig::new("t1").fault(Fault::TimedOutOnce)]);
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();
    let r = c.post(enumerate("Win32_BIOS", 1)).await.unwrap();
    assert_eq!(r.status, 500);
    assert!(r.body.contains("<s:Value>w:TimedOut</s:Value>"));
    assert_eq!(wsman_code(&r.body), Some(2_150_858_793));
    let r = c.post(enumerate("Win32_BIOS", 1)).await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn broken_responses_and_fault_codes() {
    let server = start([
        HostConfig::new("b1").fault(Fault::GarbageXml),
        HostConfig::new("b2").fault(Fault::Http500Empty),
        HostConfig::new("b3").fault(Fault::InvalidClass),
        HostConfig::new("b4").fault(Fault::AccessDenied),
        HostConfig::new("b5").fault(Fault::QuotaExceeded),
        HostConfig::new("b6").fault(Fault::EnvelopeTooLarge),
    ]);
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();
    let r = c.post(enumerate("Win32_BIOS", 1)).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(cimrun_xml_is_malformed(&r.body));

    let mut c = connect(server.addr(1).unwrap()).await.unwrap();
    let r = c.post(enumerate("Win32_BIOS", 1)).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (500, ""));

    let expected = [
        (2, "w:DestinationUnreachable", 2_150_858_752),
        (3, "w:AccessDenied", 5),
        (4, "w:InternalError", 2_150_859_174),
        (5, "w:EncodingLimit", 2_150_858_824),
    ];
    for (i, subcode, code) in expected {
        let mut c = connect(server.addr(i).unwrap()).await.unwrap();
        let r = c.post(enumerate("Win32_BIOS", 1)).await.unwrap();
        assert_eq!(r.status, 500, "host {i}");
        assert!(r.body.contains(&format!("<s:Value>{subcode}</s:Value>")), "host {i}: {}", r.body);
        assert_eq!(wsman_code(&r.body), Some(code), "host {i}");
        assert!(!cimrun_xml_is_malformed(&r.body));
    }
}

fn cimrun_xml_is_malformed(body: &str) -> bool {
    let mut reader = quick_xml::Reader::from_str(body);
    loop {
        match reader.read_event() {
            Err(_) => return true,
            Ok(quick_xml::events::Event::Eof) => return false,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn small_max_envelope_size_limits_pages_and_faults_when_one_item_is_too_big() {
    let server = start([HostConfig::new("e1")]);
    let mut c = connect(server.addr(0).unwrap()).await.unwrap();
    let small = "<w:MaxEnvelopeSize s:mustUnderstand=\"true\">8192</w:MaxEnvelopeSize>";
    let r = c.post(enumerate_with(&format!("{WMI}Win32_Service"), small, "")).await.unwrap();
    let ctx = context(&r.body).unwrap().to_string();
    let body = format!(
        "<n:Pull><n:EnumerationContext>{ctx}</n:EnumerationContext><n:MaxElements>100</n:MaxElements></n:Pull>"
    );
    let r = c.post(envelope(PULL, &format!("{WMI}Win32_Service"), "uuid:P-9", small, &body)).await.unwrap();
    assert_eq!(r.status, 200);
    let n = r.body.matches("<p:Win32_Service ").count();
    assert!((1..100).contains(&n), "an 8 KB envelope holds a few services, got {n}");
    assert!(r.body.len() <= 8192);

    let tiny = "<w:MaxEnvelopeSize s:mustUnderstand=\"true\">1500</w:MaxEnvelopeSize>";
    let r = c
        .post(enumerate_with(
            &format!("{WMI}Win32_OperatingSystem"),
            tiny,
            "<w:OptimizeEnumeration/><w:MaxElements>1</w:MaxElements>",
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(wsman_code(&r.body), Some(2_150_858_824));
}

fn tls_client_config(ca_der: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(ca_der.to_vec())).expect("CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

async fn connect_tls(addr: SocketAddr, name: &str, config: Arc<rustls::ClientConfig>) -> std::io::Result<Client> {
    let stream = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(name.to_string()).map_err(std::io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, stream).await?;
    handshake(TokioIo::new(tls)).await
}

#[tokio::test]
async fn https_certificates_trusted_untrusted_and_wrong_name() {
    let server = start([
        HostConfig::new("s1").https(true),
        HostConfig::new("s2").https(true).fault(Fault::UntrustedCertificate),
        HostConfig::new("s3").https(true).fault(Fault::WrongCertificateName),
    ]);
    let config = tls_client_config(server.ca_der().expect("CA"));
    assert!(server.url(0).unwrap().starts_with("https://127.0.0.1:"));
    assert!(server.ca_pem().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    for name in ["s1", "localhost", "127.0.0.1"] {
        let mut c = connect_tls(server.addr(0).unwrap(), name, config.clone()).await.expect(name);
        assert_eq!(c.post(enumerate("Win32_BIOS", 1)).await.unwrap().status, 200);
    }
    let e = connect_tls(server.addr(1).unwrap(), "s2", config.clone()).await.err().expect("untrusted");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    let e = connect_tls(server.addr(2).unwrap(), "s3", config).await.err().expect("wrong name");
    assert!(e.to_string().contains("not valid for name"), "{e}");
}

/// The certificate a TLS server presents (DER).
async fn server_certificate(addr: SocketAddr, name: &str, config: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, stream).await.unwrap();
    tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).expect("a certificate")
}

#[tokio::test]
async fn ntlm_over_https_requires_channel_bindings() {
    let strict = HostConfig::new("cb1").https(true).require_channel_bindings(true);
    let server = start([strict, HostConfig::new("cb2").https(true)]);
    let (addr, config) = (server.addr(0).unwrap(), tls_client_config(server.ca_der().expect("CA")));
    // Without bindings the logon is refused, as with Windows' CbtHardeningLevel=Strict...
    let c = connect_tls(addr, "cb1", config.clone()).await.unwrap();
    assert_eq!(ntlm_handshake(c, "P@ssw0rd!", None).await.2.status, 401);
    // ...and accepted with Relaxed, WinRM's default.
    let c = connect_tls(server.addr(1).unwrap(), "cb2", config.clone()).await.unwrap();
    assert_eq!(ntlm_handshake(c, "P@ssw0rd!", None).await.2.status, 200);
    // With the tls-server-end-point bindings of the certificate the server presents: accepted.
    let bindings = tls_server_end_point(&server_certificate(addr, "cb1", config.clone()).await);
    let c = connect_tls(addr, "cb1", config).await.unwrap();
    let (mut c, _, r) = ntlm_handshake(c, "P@ssw0rd!", Some(bindings)).await;
    assert_eq!(r.status, 200);
    assert_eq!(c.post(enumerate("Win32_BIOS", 1)).await.unwrap().status, 200, "HTTPS bodies are not sealed");
}

#[tokio::test]
async fn many_hosts_have_their_own_data_and_counters() {
    let server = start((0..20).map(|i| HostConfig::new(format!("node{i:02}")).seed(i)));
    assert_eq!(server.len(), 20);
    for i in [0usize, 7, 19] {
        let mut c = connect(server.addr(i).unwrap()).await.unwrap();
        let r = c.post(enumerate("Win32_ComputerSystem", 1)).await.unwrap();
        assert!(r.body.contains(&format!("<p:Name>NODE{i:02}</p:Name>")));
    }
    assert_eq!(server.stats(7).unwrap().count("Enumerate"), 1);
    assert_eq!(server.stats(8).unwrap().count("Enumerate"), 0);
    assert_eq!(server.index_of("NODE07"), Some(7));
}

#[test]
fn server_stops_after_its_lifetime_and_on_drop() {
    let server = TestServer::builder()
        .host(HostConfig::new("l1"))
        .lifetime(Duration::from_millis(300))
        .start()
        .expect("server starts");
    let addr = server.addr(0).unwrap();
    assert!(std::net::TcpStream::connect(addr).is_ok());
    std::thread::sleep(Duration::from_millis(900));
    assert!(std::net::TcpStream::connect(addr).is_err(), "lifetime over: nothing listens");

    let server = TestServer::builder().host(HostConfig::new("l2")).start().expect("server starts");
    let addr = server.addr(0).unwrap();
    assert!(std::net::TcpStream::connect(addr).is_ok());
    drop(server);
    assert!(std::net::TcpStream::connect(addr).is_err(), "dropped: nothing listens");
}

/// Runs the NTLM handshake (empty POSTs, as WinRM clients do) with cimrun's own client context.
async fn ntlm_session(addr: SocketAddr, password: &str) -> (Client, SecurityContext, Reply) {
    ntlm_handshake(connect(addr).await.unwrap(), password, None).await
}

/// The NTLM handshake on an open connection, with `bindings` (SEC_CHANNEL_BINDINGS) if any.
async fn ntlm_handshake(mut c: Client, password: &str, bindings: Option<Vec<u8>>) -> (Client, SecurityContext, Reply) {
    let credential = Credential { username: "cimrun".into(), password: SecretString::from(password.to_string()) };
    let mut ctx =
        SecurityContext::new(Package::Ntlm, &credential, "HTTP/localhost".into(), bindings, Duration::from_secs(1))
            .expect("context");
    let mut input: Option<Vec<u8>> = None;
    loop {
        let step = ctx.step(input.as_deref()).expect("client step");
        c.auth = Some(format!("Negotiate {}", base64::engine::general_purpose::STANDARD.encode(&step.token)));
        let (r, _) = c.post_raw(Vec::new(), "application/soap+xml;charset=UTF-8").await.unwrap();
        let challenge = r.challenges.iter().find_map(|h| h.strip_prefix("Negotiate ")).map(str::to_string);
        match challenge {
            Some(ch) if r.status == 401 => input = Some(base64::engine::general_purpose::STANDARD.decode(ch).unwrap()),
            _ => {
                c.auth = None;
                return (c, ctx, r);
            }
        }
    }
}

fn seal(ctx: &mut SecurityContext, xml: &str) -> Vec<u8> {
    let (sig, sealed) = ctx.seal(xml.as_bytes()).expect("seal");
    encryption::build_body(SealProtocol::Spnego, "application/soap+xml;charset=UTF-8", xml.len(), &sig, &sealed)
        .expect("frame")
}

#[tokio::test]
async fn ntlm_sessions_seal_both_directions() {
    let server = start([HostConfig::new("n1").allow_unencrypted(false)]);
    let (mut c, mut ctx, r) = ntlm_session(server.addr(0).unwrap(), "P@ssw0rd!").await;
    assert_eq!(r.status, 200, "the handshake ends with 200 on the empty POST");
    assert!(ctx.is_complete());
    let content_type = SealProtocol::Spnego.content_type();
    for round in 0..3 {
        let (r, (raw, reply_type)) =
            c.post_raw(seal(&mut ctx, &enumerate("Win32_BIOS", 1)), &content_type).await.unwrap();
        assert_eq!(r.status, 200, "round {round}");
        assert!(encryption::is_encrypted_content_type(&reply_type), "{reply_type}");
        let parts = encryption::parse_body(&raw).expect("sealed reply");
        let mut plain = parts.sealed.to_vec();
        let len = ctx.unseal(parts.signature, &mut plain).expect("reply signature verifies");
        plain.truncate(len);
        parts.check_length(&plain).unwrap();
        assert!(String::from_utf8(plain).unwrap().contains("<p:Win32_BIOS "));
    }
    let s = server.stats(0).unwrap();
    assert_eq!((s.sealed_requests, s.count("Enumerate"), s.unauthorized), (3, 3, 0));

    // A plain body on the same authenticated connection is refused (AllowUnencrypted=false).
    assert_eq!(c.post(enumerate("Win32_BIOS", 1)).await.unwrap().status, 401);
    // A tampered sealed body fails verification and is not executed.
    let mut body = seal(&mut ctx, &enumerate("Win32_BIOS", 1));
    if let Some(last) = body.len().checked_sub(40) {
        body[last] ^= 0x01;
    }
    let (r, _) = c.post_raw(body, &content_type).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(server.stats(0).unwrap().count("Enumerate"), 3);

    // A sealed body on a connection that never authenticated is refused.
    let mut other = connect(server.addr(0).unwrap()).await.unwrap();
    other.auth = None;
    let (r, _) = other.post_raw(seal(&mut ctx, &enumerate("Win32_BIOS", 1)), &content_type).await.unwrap();
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn ntlm_wrong_password_is_refused_after_the_handshake() {
    let server = start([HostConfig::new("n2"), HostConfig::new("n3").fault(Fault::WrongPassword)]);
    let (_, ctx, r) = ntlm_session(server.addr(0).unwrap(), "not the password").await;
    assert_eq!(r.status, 401);
    assert!(ctx.is_complete(), "the client finished its side; the server refused it");
    assert_eq!(server.stats(0).unwrap().unauthorized, 1);
    let (_, _, r) = ntlm_session(server.addr(1).unwrap(), "P@ssw0rd!").await;
    assert_eq!(r.status, 401, "WrongPassword refuses even the right password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_many_loopback_addresses() {
    const HOSTS: u16 = 200;
    let hosts = (1..=HOSTS).map(|i| {
        let ms = if i % 3 == 0 { 20 } else { 0 };
        HostConfig::new(format!("fleet{i:04}.corp.example"))
            .seed(u64::from(i))
            .bind(SocketAddr::new(fleet_address(i), 0))
            .latency(Duration::from_millis(ms))
    });
    let server = TestServer::builder().hosts(hosts).worker_threads(2).start().expect("fleet starts");
    assert_eq!(server.addr(199).unwrap().ip().to_string(), "127.1.0.200");
    let t = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..server.len() {
        let addr = server.addr(i).unwrap();
        // Every host answers for its own name; every tenth also pages through its services.
        let class = if i % 10 == 0 { "Win32_Service" } else { "Win32_ComputerSystem" };
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await.expect("connect");
            let (n, _, last) = enumerate_all(&mut c, class, 50, &format!("<p:{class} ")).await;
            (class, n, last)
        }));
    }
    let mut total = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        let (class, got, last) = task.await.expect("task");
        let data = server.config(i).unwrap().dataset();
        assert_eq!(got, data.class(class).unwrap().len(), "host {i}");
        if class == "Win32_ComputerSystem" {
            assert!(last.contains(&format!("<p:Name>{}</p:Name>", data.name)), "host {i}");
        }
        total += got;
    }
    let elapsed = t.elapsed();
    eprintln!(
        "{HOSTS} hosts, {total} instances in {elapsed:?}: {:.0} instances/s",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(server.stats(5).unwrap().open_contexts, 0);
}
