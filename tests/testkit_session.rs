//! The whole WS-Man stack of cimrun (connector, session, message layer, transport with NTLM
//! sealing) against the test server: every class of a simulated host must come back as the
//! very instances the dataset holds, typed, with arrays and nulls intact.
#![cfg(feature = "testkit")]

use std::sync::Arc;
use std::time::Duration;

use cimrun::cim::{Instance, Value};
use cimrun::protocol::wsman::session::{ConnectFn, WsManConnector};
use cimrun::protocol::wsman::transport::connect;
use cimrun::protocol::{AuthMechanism, Connector, Credential, Endpoint, ProtocolKind, QuerySpec};
use cimrun::testkit::{HostConfig, TestServer, dataset};
use futures::StreamExt;
use secrecy::SecretString;

fn endpoint(server: &TestServer) -> Endpoint {
    let addr = server.addr(0).expect("host");
    let mut e = Endpoint::local();
    e.protocol = ProtocolKind::WsMan;
    e.computer = Some(addr.ip().to_string());
    e.port = Some(addr.port());
    e.authentication = AuthMechanism::Ntlm;
    e.credential = Some(Credential { username: "cimrun".into(), password: SecretString::from("P@ssw0rd!".to_string()) });
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
    let server = TestServer::builder()
        .host(HostConfig::new("full01.corp.example").seed(77).allow_unencrypted(false))
        .start()
        .expect("server");
    let host = server.config(0).expect("host").dataset();
    let connect: ConnectFn = Arc::new(|e: &Endpoint| connect(e));
    let connector = WsManConnector::new(connect);
    let mut session = connector.open(&endpoint(&server)).await.expect("session opens");
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
