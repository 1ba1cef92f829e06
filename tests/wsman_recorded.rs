//! Recorded Windows Server 2003/2008/2012 WS-Man responses through the response parser and
//! the session driver, plus property tests for what the envelope builders escape.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cimrun::cim::Value;
use cimrun::cim::schema::{self, CimType};
use cimrun::protocol::wsman::envelope::{self, EnumerateBody, Headers};
use cimrun::protocol::wsman::response::{self, Expect, Limits, Reply};
use cimrun::protocol::wsman::session::{ConnectFn, SessionConfig};
use cimrun::protocol::wsman::{HttpReply, Transport, WsManConnector, WsManSession};
use cimrun::protocol::{Category, Connector, Endpoint, Error, ProtocolKind, QuerySpec, Session};
use futures::StreamExt;
use futures::future::BoxFuture;
use proptest::prelude::*;

/// Stands for the MessageID of the request in synthetic replies; [`relate`] swaps it.
const RELATES_TO_PLACEHOLDER: &str = "uuid:00000000-0000-0000-0000-000000000000";

fn shared(rel: &str) -> PathBuf {
    // `shared/` sits beside the crate in CI and two levels up from a worktree.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [root.join("../shared").join(rel), root.join("../../shared").join(rel)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("shared/{rel} not found beside the crate"))
}

fn data_dir(server: &str) -> PathBuf {
    shared(&format!("testdata/wsman/txwinrm/data/{server}"))
}

const SERVERS: [&str; 3] = ["server_2003", "server_2008", "server_2012"];

fn classes(server: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data_dir(server))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".properties").map(str::to_string))
        .collect();
    v.sort();
    v
}

/// The pages of one recorded enumeration, in order.
fn pages(server: &str, class: &str, variant: &str) -> Vec<Vec<u8>> {
    (0..)
        .map(|n| data_dir(server).join(format!("{class}_{variant}_{n:03}.xml")))
        .take_while(|p| p.exists())
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// The classes of the items of a page, from the raw text (independently of the parser): the
/// `xsi:type` of each typed element (a subclass's instances carry their own), or one
/// XmlFragment per item of a property-list query.
fn raw_item_classes(page: &[u8], class: &str, variant: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(page);
    if variant == "all" {
        return text.matches("<w:XmlFragment").map(|_| class.to_string()).collect();
    }
    text.split("xsi:type=\"p:")
        .skip(1)
        .filter_map(|rest| rest.split_once("_Type\"").map(|(c, _)| c.to_string()))
        .collect()
}

fn raw_item_count(page: &[u8], class: &str, variant: &str) -> usize {
    raw_item_classes(page, class, variant).len()
}

/// The distinct `p:` element names below the class elements of a star page, from the raw text.
fn raw_star_properties(page: &[u8], class: &str) -> BTreeSet<String> {
    let classes: BTreeSet<String> = raw_item_classes(page, class, "star").into_iter().collect();
    let text = String::from_utf8_lossy(page);
    text.split("<p:")
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>())
        .filter(|name| !classes.contains(name))
        .collect()
}

fn expected_properties(server: &str, class: &str) -> BTreeSet<String> {
    std::fs::read_to_string(data_dir(server).join(format!("{class}.properties")))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_recorded_page_parses_with_exactly_the_listed_properties() {
    let mut files = 0;
    for server in SERVERS {
        let classes = classes(server);
        assert_eq!(classes.len(), if server == "server_2003" { 13 } else { 14 }, "{server}");
        for class in &classes {
            let want = expected_properties(server, class);
            for variant in ["star", "all"] {
                let pages = pages(server, class, variant);
                assert!(!pages.is_empty(), "{server} {class} {variant}");
                let mut names = BTreeSet::new();
                let mut raw_names = BTreeSet::new();
                for (n, body) in pages.iter().enumerate() {
                    raw_names.extend(raw_star_properties(body, class));
                    files += 1;
                    let expect = Expect { class, arrays: &[], relates_to: None, limits: Limits::default() };
                    let Reply::Page(page) = response::parse(body, Some("application/soap+xml;charset=UTF-8"), &expect)
                        .unwrap_or_else(|e| panic!("{server} {class}_{variant}_{n:03}: {e}"))
                    else {
                        panic!("{server} {class} {variant}: unexpected fault");
                    };
                    let raw_classes = raw_item_classes(body, class, variant);
                    let classes: Vec<_> = page.items.iter().map(|i| i.class_name.clone()).collect();
                    assert_eq!(classes, raw_classes, "{server} {class} {variant} {n}");
                    assert_eq!(page.end_of_sequence, n + 1 == pages.len(), "{server} {class} {variant} {n}");
                    for item in &page.items {
                        names.extend(item.properties.iter().map(|p| p.name.to_string()));
                    }
                }
                if variant == "all" {
                    // `.properties` is the property list the `all` query asked for.
                    assert_eq!(names, want, "{server} {class} {variant}");
                } else {
                    // `SELECT *` returns those and more (the array properties the list left out).
                    assert!(names.is_superset(&want), "{server} {class}: {:?}", want.difference(&names));
                    assert_eq!(names, raw_names, "{server} {class} {variant}");
                }
            }
        }
    }
    assert_eq!(files, 135);
}

#[test]
fn recorded_values_keep_nulls_arrays_and_datetimes() {
    // Every property element in the text is a value (none is dropped when one repeats), and
    // every xsi:nil is a null.
    let mut arrays = 0;
    for server in SERVERS {
        for class in classes(server) {
            let expect = Expect { class: &class, arrays: &[], relates_to: None, limits: Limits::default() };
            for body in pages(server, &class, "star") {
                let Ok(Reply::Page(page)) = response::parse(&body, None, &expect) else { panic!("{server} {class}") };
                let mut values = 0;
                for p in page.items.iter().flat_map(|i| &i.properties) {
                    values += match &p.value {
                        Value::Array(a) => {
                            arrays += 1;
                            a.len()
                        }
                        _ => 1,
                    };
                }
                let text = String::from_utf8_lossy(&body);
                let elements = text.matches("<p:").count() - raw_item_count(&body, &class, "star");
                assert_eq!(values, elements, "{server} {class}");
                let nulls = page.items.iter().flat_map(|i| &i.properties).filter(|p| p.value.is_null()).count();
                assert_eq!(nulls, text.matches("xsi:nil=\"true\"").count(), "{server} {class}");
            }
        }
    }
    assert!(arrays > 0, "Roles and DNSDomainSuffixSearchOrder repeat in the recordings");

    let os = &pages("server_2012", "Win32_OperatingSystem", "star")[0];
    let expect = Expect { class: "Win32_OperatingSystem", arrays: &[], relates_to: None, limits: Limits::default() };
    let Ok(Reply::Page(page)) = response::parse(os, None, &expect) else { panic!() };
    assert_eq!(
        page.items[0].get("LastBootUpTime").map(Value::to_string).as_deref(),
        Some("2013-04-15T16:28:43.488171Z")
    );
    let fragment = &pages("server_2012", "Win32_Process", "all")[1];
    let expect = Expect { class: "Win32_Process", arrays: &[], relates_to: None, limits: Limits::default() };
    let Ok(Reply::Page(page)) = response::parse(fragment, None, &expect) else { panic!() };
    assert!(page.items.iter().any(|i| matches!(i.get("CreationDate"), Some(Value::DateTime(_)))));
}

/// Marks the requests sent with `exchange_resendable` in the log.
const RESENDABLE: &str = "RESENDABLE:";

/// Whether a value has a schema type: `Value::type_name` spells types as the `CimType`
/// variants do, lower-cased; a datetime property may also hold an interval.
fn has_type(v: &Value, t: CimType) -> bool {
    let want = format!("{t:?}").to_ascii_lowercase();
    v.type_name() == want || (t == CimType::DateTime && v.type_name() == "interval")
}

#[test]
fn recorded_values_are_typed_by_the_class_table() {
    let mut typed = 0;
    for server in SERVERS {
        for class in classes(server) {
            let Some(schema) = schema::class(&class) else { continue };
            for variant in ["star", "all"] {
                let expect = Expect { class: &class, arrays: &[], relates_to: None, limits: Limits::default() };
                for body in pages(server, &class, variant) {
                    let Ok(Reply::Page(page)) = response::parse(&body, None, &expect) else {
                        panic!("{server} {class}")
                    };
                    for item in page.items.iter().filter(|i| i.class_name == class) {
                        for p in &item.properties {
                            let Some(ps) = schema.property(&p.name) else { continue };
                            let values = match (&p.value, ps.is_array) {
                                (Value::Null, _) => continue,
                                (Value::Array(a), true) => a.clone(),
                                (v, false) => vec![v.clone()],
                                (v, true) => panic!("{server} {class}.{}: {v:?} is not an array", p.name),
                            };
                            for v in values.iter().filter(|v| !v.is_null()) {
                                assert!(
                                    has_type(v, ps.cim_type),
                                    "{server} {class}_{variant}.{}: {v:?} is not {:?}",
                                    p.name,
                                    ps.cim_type
                                );
                                typed += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(typed > 10_000, "{typed}");
}

/// A transport that replays replies, answers each request's MessageID, and logs the requests.
struct Scripted {
    replies: VecDeque<Result<HttpReply, Error>>,
    sent: Arc<Mutex<Vec<String>>>,
}

fn element_text<'a>(xml: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = xml.find(open)? + open.len();
    let end = xml[start..].find(close)? + start;
    Some(&xml[start..end])
}

/// The recorded reply with its RelatesTo pointed at `id`.
fn relate(xml: &str, id: &str) -> String {
    let Some(start) = xml.find("RelatesTo>").map(|i| i + "RelatesTo>".len()) else { return xml.to_string() };
    let end = xml[start..].find('<').map_or(xml.len(), |e| e + start);
    format!("{}{id}{}", &xml[..start], &xml[end..])
}

impl Transport for Scripted {
    fn exchange<'a>(&'a mut self, envelope: String) -> BoxFuture<'a, Result<HttpReply, Error>> {
        let id = element_text(&envelope, "<a:MessageID>", "</a:MessageID>").unwrap_or_default().to_string();
        self.sent.lock().unwrap().push(envelope);
        let reply = self
            .replies
            .pop_front()
            .unwrap_or_else(|| Err(Error::new(Category::ConnectionFailed, "script exhausted")))
            .map(|mut r| {
                r.body = relate(&String::from_utf8_lossy(&r.body), &id).into_bytes().into();
                r
            });
        Box::pin(async move { reply })
    }
    fn exchange_resendable<'a>(&'a mut self, envelope: String) -> BoxFuture<'a, Result<HttpReply, Error>> {
        self.exchange(format!("{RESENDABLE}{envelope}"))
    }
    fn shutdown<'a>(&'a mut self) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

fn ok(body: Vec<u8>) -> Result<HttpReply, Error> {
    Ok(HttpReply { status: 200, content_type: Some("application/soap+xml;charset=UTF-8".into()), body: body.into() })
}

fn fault_reply(status: u16, subcode: &str, code: u32) -> Result<HttpReply, Error> {
    let body = format!(
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:RelatesTo>{RELATES_TO_PLACEHOLDER}</a:RelatesTo></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>{subcode}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">r</s:Text></s:Reason><s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="{code}"><f:Message>m</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"#
    );
    Ok(HttpReply { status, content_type: Some("application/soap+xml;charset=UTF-8".into()), body: body.into_bytes().into() })
}

fn endpoint() -> Endpoint {
    let mut ep = Endpoint::local();
    ep.computer = Some("srv1".into());
    ep.protocol = ProtocolKind::WsMan;
    ep
}

fn session(replies: Vec<Result<HttpReply, Error>>) -> (WsManSession, Arc<Mutex<Vec<String>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let t = Scripted { replies: replies.into(), sent: sent.clone() };
    (WsManSession::new(Box::new(t), SessionConfig::from_endpoint(&endpoint())), sent)
}

fn action(xml: &str) -> &str {
    element_text(xml, "<a:Action s:mustUnderstand=\"true\">", "</a:Action>")
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or("")
}

fn context_of(xml: &str) -> Option<&str> {
    element_text(xml, "<n:EnumerationContext>", "</n:EnumerationContext>")
}

#[tokio::test]
async fn recorded_pages_chain_through_the_session() {
    for server in SERVERS {
        for class in classes(server) {
            for variant in ["star", "all"] {
                let pages = pages(server, &class, variant);
                let want: usize = pages.iter().map(|p| raw_item_count(p, &class, variant)).sum();
                let (mut s, sent) = session(pages.iter().cloned().map(ok).collect());
                let mut q = QuerySpec::class(&class);
                if variant == "all" {
                    q.wql.properties = expected_properties(server, &class).into_iter().collect();
                }
                let results: Vec<_> = s.enumerate(&q).collect().await;
                let mut total = 0;
                for r in &results {
                    total += r.as_ref().unwrap_or_else(|e| panic!("{server} {class} {variant}: {e}")).len();
                }
                assert_eq!(total, want, "{server} {class} {variant}");
                assert_eq!(results.len(), pages.len(), "one page per round trip");
                Box::new(s).close().await.unwrap();
                let sent = sent.lock().unwrap();
                assert_eq!(sent.len(), pages.len(), "no Release after EndOfSequence");
                assert_eq!(action(&sent[0]), "Enumerate");
                // The transport may resend an Enumerate after a broken connection, never a Pull.
                assert!(sent[0].starts_with(RESENDABLE));
                assert!(sent.iter().skip(1).all(|x| !x.starts_with(RESENDABLE)));
                let uri =
                    element_text(&sent[0], "<w:ResourceURI s:mustUnderstand=\"true\">", "</w:ResourceURI>").unwrap();
                if variant == "all" {
                    assert!(uri.ends_with("/wmi/root/cimv2/*"), "{uri}");
                    assert!(
                        sent[0].contains("<w:Filter Dialect=\"http://schemas.microsoft.com/wbem/wsman/1/WQL\">SELECT ")
                    );
                } else {
                    assert!(uri.ends_with(&format!("/wmi/root/cimv2/{class}")), "{uri}");
                }
                // Every Pull sends the context of the response just before it.
                for (n, req) in sent.iter().enumerate().skip(1) {
                    assert_eq!(action(req), "Pull");
                    let prev = String::from_utf8_lossy(&pages[n - 1]).into_owned();
                    assert_eq!(context_of(req), context_of_response(&prev).as_deref(), "{server} {class} {n}");
                }
            }
        }
    }
}

fn context_of_response(xml: &str) -> Option<String> {
    let start = xml.find("EnumerationContext>")? + "EnumerationContext>".len();
    let end = xml[start..].find('<')? + start;
    Some(xml[start..end].to_string())
}

fn process_pages() -> Vec<Vec<u8>> {
    pages("server_2008", "Win32_Process", "star")
}

#[tokio::test]
async fn abandoned_enumeration_is_released_on_next_operation_and_close() {
    let p = process_pages();
    let ctx0 = context_of_response(&String::from_utf8_lossy(&p[0])).unwrap();
    let (mut s, sent) = session(vec![ok(p[0].clone()), ok(Vec::new()), ok(p[0].clone()), ok(Vec::new())]);
    let q = QuerySpec::class("Win32_Process");
    {
        let mut stream = s.enumerate(&q);
        assert_eq!(stream.next().await.unwrap().unwrap().len(), 1);
    } // dropped mid-enumeration
    {
        let mut stream = s.enumerate(&q);
        assert_eq!(stream.next().await.unwrap().unwrap().len(), 1);
    }
    Box::new(s).close().await.unwrap();
    let sent = sent.lock().unwrap();
    let actions: Vec<_> = sent.iter().map(|x| action(x)).collect();
    assert_eq!(actions, ["Enumerate", "Release", "Enumerate", "Release"]);
    assert_eq!(context_of(&sent[1]), Some(ctx0.as_str()));
    assert!(sent[1].starts_with(RESENDABLE), "a Release may be resent");
    // Pull and Release address the same resource as the Enumerate.
    let uri =
        |x: &str| element_text(x, "<w:ResourceURI s:mustUnderstand=\"true\">", "</w:ResourceURI>").map(str::to_string);
    assert_eq!(uri(&sent[0]), uri(&sent[1]));
}

#[tokio::test]
async fn quota_fault_mid_pull_surfaces_and_the_context_is_released() {
    let p = process_pages();
    let quota = std::fs::read(shared("testdata/wsman/txwinrm/data_error/max_concurrent.xml")).unwrap();
    let (mut s, sent) = session(vec![
        ok(p[0].clone()),
        Ok(HttpReply { status: 500, content_type: Some("application/soap+xml;charset=UTF-8".into()), body: quota.into() }),
        ok(Vec::new()),
    ]);
    let q = QuerySpec::class("Win32_Process");
    let results: Vec<_> = s.enumerate(&q).collect().await;
    assert_eq!(results.len(), 2, "the stream ends after the first error");
    let err = results[1].clone().unwrap_err();
    assert_eq!(err.category, Category::QuotaExceeded);
    assert!(err.category.is_retryable());
    assert_eq!(err.code.as_deref(), Some("2150859174"));
    Box::new(s).close().await.unwrap();
    let sent = sent.lock().unwrap();
    let actions: Vec<_> = sent.iter().map(|x| action(x)).collect();
    assert_eq!(actions, ["Enumerate", "Pull", "Release"]);
    assert_eq!(context_of(&sent[2]), context_of(&sent[1]));
}

#[tokio::test]
async fn invalid_context_is_not_released() {
    let p = process_pages();
    let (mut s, sent) = session(vec![ok(p[0].clone()), fault_reply(400, "n:InvalidEnumerationContext", 2_150_858_779)]);
    let q = QuerySpec::class("Win32_Process");
    let results: Vec<_> = s.enumerate(&q).collect().await;
    assert_eq!(results[1].clone().unwrap_err().category, Category::InvalidEnumerationContext);
    Box::new(s).close().await.unwrap();
    assert_eq!(sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn envelope_too_large_retries_once_with_a_larger_size() {
    let p = process_pages();
    let too_big = || fault_reply(500, "w:EncodingLimit", 2_150_858_824);
    let (mut s, sent) = session(vec![too_big(), ok(p[0].clone()), ok(p[1].clone()), ok(p[2].clone())]);
    let q = QuerySpec::class("Win32_Process");
    let n: usize = s.enumerate(&q).map(|r| r.unwrap().len()).collect::<Vec<_>>().await.iter().sum();
    assert_eq!(n, 42);
    let sizes: Vec<u32> = sent
        .lock()
        .unwrap()
        .iter()
        .map(|x| element_text(x, "<w:MaxEnvelopeSize s:mustUnderstand=\"true\">", "<").unwrap().parse().unwrap())
        .collect();
    assert_eq!(sizes, [512 * 1024, 2048 * 1024, 2048 * 1024, 2048 * 1024], "the larger size is kept for the Pulls");

    // Twice too large: the second fault is surfaced, not retried again.
    let (mut s, sent) = session(vec![too_big(), too_big(), ok(Vec::new())]);
    let results: Vec<_> = s.enumerate(&q).collect().await;
    assert_eq!(results[0].clone().unwrap_err().category, Category::EnvelopeTooLarge);
    assert_eq!(sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn timed_out_pulls_are_asked_again_then_surfaced() {
    let p = process_pages();
    let timed_out = || fault_reply(500, "w:TimedOut", 2_150_858_793);
    let (mut s, sent) = session(vec![ok(p[0].clone()), timed_out(), ok(p[1].clone()), ok(p[2].clone())]);
    let q = QuerySpec::class("Win32_Process");
    let n: usize = s.enumerate(&q).map(|r| r.unwrap().len()).collect::<Vec<_>>().await.iter().sum();
    assert_eq!(n, 42);
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.iter().map(|x| action(x)).collect::<Vec<_>>(), ["Enumerate", "Pull", "Pull", "Pull"]);
    assert_eq!(context_of(&sent[1]), context_of(&sent[2]), "the timed-out Pull is repeated with its context");

    let (mut s, sent) = session(vec![ok(p[0].clone()), timed_out(), timed_out(), timed_out(), ok(Vec::new())]);
    let results: Vec<_> = s.enumerate(&q).collect().await;
    let e = results[1].clone().unwrap_err();
    assert_eq!((e.category, e.code.as_deref()), (Category::TimedOut, Some("2150858793")));
    Box::new(s).close().await.unwrap();
    assert_eq!(action(&sent.lock().unwrap()[4]), "Release");
}

#[tokio::test]
async fn get_returns_the_instance_addressed_by_selectors() {
    let body = format!(
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse</a:Action><a:RelatesTo>{RELATES_TO_PLACEHOLDER}</a:RelatesTo></s:Header><s:Body><p:Win32_Service xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Service" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><p:Name>Spooler</p:Name><p:State>Running</p:State></p:Win32_Service></s:Body></s:Envelope>"#
    );
    let (mut s, sent) = session(vec![ok(body.into_bytes())]);
    let uri = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Service";
    let i = s.get(uri, vec![("Name".into(), "Spooler".into())], "Win32_Service").await.unwrap();
    assert_eq!(i.get("State"), Some(&Value::String("Running".into())));
    let sent = sent.lock().unwrap();
    assert_eq!(action(&sent[0]), "Get");
    assert!(sent[0].starts_with(RESENDABLE));
    assert!(sent[0].contains("<w:SelectorSet><w:Selector Name=\"Name\">Spooler</w:Selector></w:SelectorSet>"));
}

#[tokio::test]
async fn http_errors_without_a_fault_keep_their_status() {
    let q = QuerySpec::class("Win32_Process");
    for (status, body, want) in [
        (500, Vec::new(), Category::ServerFault),
        (400, b"<html>bad</html>".to_vec(), Category::ProtocolError),
        (401, Vec::new(), Category::AuthFailed),
        (200, b"garbage".to_vec(), Category::ProtocolError),
    ] {
        let (mut s, _) = session(vec![Ok(HttpReply { status, content_type: None, body: body.into() })]);
        let results: Vec<_> = s.enumerate(&q).collect().await;
        let e = results[0].clone().unwrap_err();
        assert_eq!(e.category, want, "{status}");
        if status != 200 {
            assert_eq!(e.code, Some(status.to_string()));
        }
    }
    // A transport error ends the stream with that error.
    let (mut s, _) = session(vec![Err(Error::new(Category::ConnectionFailed, "reset"))]);
    let results: Vec<_> = s.enumerate(&q).collect().await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].clone().unwrap_err().category, Category::ConnectionFailed);
}

#[tokio::test]
async fn connector_opens_sessions_through_its_connect_function() {
    let p = process_pages();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    let connect: ConnectFn = Arc::new(move |ep: &Endpoint| {
        let t = Scripted { replies: p.iter().cloned().map(ok).collect(), sent: log.clone() };
        let host = ep.computer.clone();
        Box::pin(async move {
            match host {
                Some(_) => Ok(Box::new(t) as Box<dyn Transport>),
                None => Err(Error::new(Category::Unreachable, "no host")),
            }
        })
    });
    let c = WsManConnector::new(connect);
    let mut s = c.open(&endpoint()).await.unwrap();
    let q = QuerySpec::class("Win32_Process");
    let n: usize = s.enumerate(&q).map(|r| r.unwrap().len()).collect::<Vec<_>>().await.iter().sum();
    assert_eq!(n, 42);
    s.close().await.unwrap();
    assert!(sent.lock().unwrap()[0].contains("<a:To>http://srv1:5985/wsman</a:To>"));
    assert_eq!(c.open(&Endpoint::local()).await.err().map(|e| e.category), Some(Category::Unreachable));
}

fn headers(selectors: Vec<(String, String)>) -> Headers {
    Headers {
        to: "http://h:5985/wsman".into(),
        resource_uri: "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_X".into(),
        selectors,
        max_envelope_size: 153600,
        operation_timeout: Duration::from_secs(20),
        locale: "en-US".into(),
        data_locale: "en-US".into(),
    }
}

/// The text of every element with the given local name, read back with quick-xml.
fn read_back(xml: &str, local: &[u8]) -> Vec<(Option<String>, String)> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    let mut current: Option<(Option<String>, String)> = None;
    loop {
        match r.read_event().unwrap() {
            Event::Start(e) if e.local_name().as_ref() == local => {
                let name = e.try_get_attribute("Name").unwrap().map(|a| a.unescape_value().unwrap().into_owned());
                current = Some((name, String::new()));
            }
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    c.1.push_str(&t.decode().unwrap());
                }
            }
            Event::GeneralRef(g) => {
                if let Some(c) = current.as_mut() {
                    match g.resolve_char_ref().unwrap() {
                        Some(ch) => c.1.push(ch),
                        None => {
                            c.1.push_str(quick_xml::escape::resolve_predefined_entity(&g.decode().unwrap()).unwrap())
                        }
                    }
                }
            }
            Event::End(e) if e.local_name().as_ref() == local => out.extend(current.take()),
            Event::Eof => return out,
            _ => {}
        }
    }
}

/// Text XML 1.0 can carry.
fn xml_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('&'),
            Just('<'),
            Just('>'),
            Just('"'),
            Just('\''),
            Just('\r'),
            Just('\n'),
            Just('\t'),
            Just(']'),
            Just(';'),
            Just('€'),
            Just('😀'),
            proptest::char::range(' ', '~'),
            proptest::char::range('\u{A0}', '\u{D7FF}'),
        ],
        0..40,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn filters_read_back_unchanged(filter in xml_text()) {
        let h = headers(Vec::new());
        let m = envelope::enumerate(&h, "uuid:1", &EnumerateBody { max_elements: 10, filter: Some(filter.clone()), key_only: false }).unwrap();
        prop_assert_eq!(read_back(&m.xml, b"Filter"), vec![(None, filter)]);
    }

    #[test]
    fn selectors_read_back_unchanged(name in xml_text(), value in xml_text()) {
        let h = headers(vec![(name.clone(), value.clone()), ("__cimnamespace".into(), "root/cimv2".into())]);
        let m = envelope::get(&h, "uuid:2").unwrap();
        prop_assert_eq!(
            read_back(&m.xml, b"Selector"),
            vec![(Some(name), value), (Some("__cimnamespace".to_string()), "root/cimv2".to_string())]
        );
    }

    #[test]
    fn text_xml_cannot_carry_is_refused(prefix in xml_text(), c in proptest::char::range('\u{0}', '\u{8}')) {
        let h = headers(Vec::new());
        let r = envelope::enumerate(&h, "uuid:3", &EnumerateBody { max_elements: 1, filter: Some(format!("{prefix}{c}")), key_only: false });
        prop_assert_eq!(r.unwrap_err().category, Category::InvalidQuery);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Damaged responses (cut short, bytes overwritten) are errors or pages, never a panic.
    #[test]
    fn damaged_recordings_never_panic(
        page in 0usize..4,
        cut in 0.0f64..1.0,
        flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..8),
    ) {
        let pages = pages("server_2008", "Win32_Process", "star");
        let mut body = pages[page % pages.len()].clone();
        for (at, byte) in flips {
            let i = ((body.len() as f64) * at) as usize;
            if let Some(b) = body.get_mut(i) {
                *b = byte;
            }
        }
        body.truncate(((body.len() as f64) * (0.5 + cut / 2.0)) as usize);
        let expect = Expect { class: "Win32_Process", arrays: &[], relates_to: None, limits: Limits::default() };
        let _ = response::parse(&body, None, &expect);
        let _ = response::parse(&body, Some("text/xml;charset=utf-16"), &expect);
    }
}
