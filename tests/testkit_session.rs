//! The whole WS-Man stack of cimrun (connector, session, message layer, transport with NTLM
//! sealing) against the test server: every class of a simulated host must come back as the
//! very instances the dataset holds, typed, with arrays and nulls intact.
#![cfg(feature = "testkit")]

use std::time::Duration;

use cimrun::cim::{Instance, Value};
use cimrun::protocol::wsman::transport::connector;
use cimrun::protocol::{AuthMechanism, Category, Connector, Credential, Endpoint, ProtocolKind, QuerySpec};
use cimrun::testkit::{Fault, HostConfig, TestServer, dataset};
use futures::StreamExt;
use secrecy::SecretString;

fn endpoint(server: &TestServer, i: usize) -> Endpoint {
    let addr = server.addr(i).expect("host");
    let mut e = Endpoint::local();
    e.protocol = ProtocolKind::WsMan;
    e.computer = Some(addr.ip().to_string());
    e.port = Some(addr.port());
    e.authentication = AuthMechanism::Ntlm;
    e.credential =
        Some(Credential { username: "cimrun".into(), password: SecretString::from("P@ssw0rd!".to_string()) });
    e.connect_timeout = Duration::from_secs(2);
    e.operation_timeout = Duration::from_secs(5);
    e
}

/// The dataset as a client sees it: an empty array is not on the wire at all.
fn as_sent(i: &Instance) -> Instance {
    let mut out = Instance::new(i.class_name.clone());
    for p in &i.properties {
        if !matches!(&p.value, Value::Array(items) if items.is_empty()) {
            out.push(p.name.clone(), p.value.clone());
        }
    }
    out
}

#[tokio::test]
async fn every_class_arrives_typed_through_the_whole_stack() {
    every_class_arrives(HostConfig::new("full01.corp.example").seed(77).allow_unencrypted(false)).await;
}

#[tokio::test]
async fn utf16_replies_arrive_the_same() {
    every_class_arrives(HostConfig::new("full02").seed(78).allow_unencrypted(false).utf16(true)).await;
}

async fn every_class_arrives(config: HostConfig) {
    let server = TestServer::builder().host(config).start().expect("server");
    let host = server.config(0).expect("host").dataset();
    let connector = connector();
    let mut session = connector.open(&endpoint(&server, 0)).await.expect("session opens");
    for class in dataset::CLASSES {
        let query = QuerySpec::class(class);
        let pages: Vec<_> = session.enumerate(&query).collect().await;
        let mut got = Vec::new();
        for page in pages {
            got.extend(page.unwrap_or_else(|e| panic!("{class}: {e}")));
        }
        let want: Vec<Instance> = host.class(class).expect("class").iter().map(as_sent).collect();
        assert_eq!(got.len(), want.len(), "{class}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{class}");
        }
    }
    session.close().await.expect("close");
    let stats = server.stats(0).expect("host");
    assert_eq!(stats.open_contexts, 0);
    assert_eq!(stats.count("Enumerate"), dataset::CLASSES.len() as u64);
    assert_eq!(stats.sealed_requests, stats.requests.values().sum::<u64>());
}

#[tokio::test]
async fn a_wql_query_is_filtered_by_the_server() {
    let server =
        TestServer::builder().host(HostConfig::new("q1").seed(5).allow_unencrypted(false)).start().expect("server");
    let host = server.config(0).expect("host").dataset();
    let text = "SELECT Name, State FROM Win32_Service WHERE StartMode = 'Auto' AND NOT Name LIKE '[a-m]%'";
    let mut query = QuerySpec::class("Win32_Service");
    query.wql = cimrun::wql::parse(text).expect("query");
    query.needs_filter = true;
    let mut session = connector().open(&endpoint(&server, 0)).await.expect("session");
    let got: Vec<Instance> =
        session.enumerate(&query).collect::<Vec<_>>().await.into_iter().flat_map(|p| p.expect("page")).collect();
    let names = ["Name".to_string(), "State".to_string()];
    let want: Vec<Instance> = host
        .class("Win32_Service")
        .expect("class")
        .iter()
        .filter(|i| query.wql.filter.as_ref().is_some_and(|f| f.matches(i)))
        .map(|i| i.project(&names))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    session.close().await.expect("close");
}

/// Each fault ends the query with the category a user acts on.
#[tokio::test]
async fn faults_reach_the_session_as_their_categories() {
    let cases = [
        (Fault::InvalidClass, Category::InvalidClass),
        (Fault::AccessDenied, Category::AccessDenied),
        (Fault::QuotaExceeded, Category::QuotaExceeded),
        (Fault::EnvelopeTooLarge, Category::EnvelopeTooLarge),
        (Fault::TimedOutOnce, Category::TimedOut),
        (Fault::GarbageXml, Category::ProtocolError),
        (Fault::ResetAfterPulls(1), Category::ConnectionFailed),
        (Fault::WrongPassword, Category::AuthFailed),
        (Fault::Refuse, Category::Unreachable),
    ];
    let server = TestServer::builder()
        .hosts(
            cases
                .iter()
                .enumerate()
                .map(|(i, (f, _))| HostConfig::new(format!("f{i}")).fault(f.clone()).allow_unencrypted(false)),
        )
        .start()
        .expect("server");
    let connector = connector();
    let query = QuerySpec::class("Win32_Service");
    for (i, (fault, want)) in cases.iter().enumerate() {
        let error = match connector.open(&endpoint(&server, i)).await {
            Err(e) => e,
            Ok(mut session) => {
                let results: Vec<_> = session.enumerate(&query).collect().await;
                let _ = session.close().await;
                results.into_iter().find_map(Result::err).unwrap_or_else(|| panic!("{fault:?}: no error"))
            }
        };
        assert_eq!(error.category, *want, "{fault:?}: {error}");
        // Nothing is left open on the server: the enumeration cut by the reset was Released
        // over a new connection, as MS-WSMV asks of an abandoned enumeration.
        let stats = server.stats(i).expect("host");
        assert_eq!(stats.open_contexts, 0, "{fault:?}: {stats:?}");
        if let Fault::ResetAfterPulls(_) = fault {
            assert_eq!((stats.resets, stats.releases, stats.connections), (1, 1, 2), "{stats:?}");
        }
    }
}
