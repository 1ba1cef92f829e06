//! The DCOM session end to end: cimrun's `DcomConnector` against the DCOM/WMI emulator
//! (tests/peers/dcom_emulator.py, on impacket), from activation to releasing every object.

mod dcom_emulator;
mod dcom_peer;

use std::time::{Duration, Instant};

use cimrun::protocol::dcom::DcomConnector;
use cimrun::protocol::{Category, Connector, Credential, Endpoint, Error, Page, ProtocolKind, QuerySpec, Session};
use dcom_emulator::{Emulator, PASSWORD, USER};
use futures::TryStreamExt;

fn endpoint(port: u16, password: &str) -> Endpoint {
    let mut ep = Endpoint::local();
    ep.computer = Some("127.0.0.1".into());
    ep.protocol = ProtocolKind::Dcom;
    ep.port = Some(port);
    ep.credential = Some(Credential { username: USER.into(), password: password.to_string().into() });
    ep.connect_timeout = Duration::from_secs(2);
    ep.operation_timeout = Duration::from_secs(5);
    ep
}

async fn run(session: &mut Box<dyn Session>, query: &QuerySpec) -> Result<Vec<Page>, Error> {
    session.enumerate(query).try_collect().await
}

#[tokio::test]
async fn smart_enum_query_end_to_end() {
    let emu = Emulator::start(&["--rows", "1200"]);
    let connector = DcomConnector { batch: 250 };
    let started = Instant::now();
    let mut session = connector.open(&endpoint(emu.activation_port, PASSWORD)).await.unwrap();
    let pages = run(&mut session, &QuerySpec::class("Win32_UTCTime")).await.unwrap();
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [250, 250, 250, 250, 200]);
    let first = &pages[0][0];
    assert_eq!(first.class_name, "Win32_UTCTime");
    assert!(first.properties.iter().any(|p| p.name == "Hour"), "{first:?}");

    // A second query on the same session reuses the login.
    let again = run(&mut session, &QuerySpec::class("Win32_UTCTime")).await.unwrap();
    assert_eq!(again.iter().map(Vec::len).sum::<usize>(), 1200);
    session.close().await.unwrap();
    let elapsed = started.elapsed();

    let conns = emu.connections();
    assert_eq!(conns.len(), 2);
    let object = &conns[1];
    assert_eq!(object["level"].as_u64(), Some(6), "packet privacy by default");
    assert_eq!(object["auth"]["mic"].as_str(), Some("ok"));
    assert_eq!(object["bad_signatures"].as_u64(), Some(0));
    let opnums: Vec<u64> =
        object["requests"].as_array().unwrap().iter().map(|r| r["opnum"].as_u64().unwrap()).collect();
    // Login once; per query ExecQuery, QI, GetSmartEnum, 5 batches, RemRelease; RemRelease at close.
    let per_query = [20, 3, 3, 3, 3, 3, 3, 3, 5];
    let want: Vec<u64> = [6].into_iter().chain(per_query).chain(per_query).chain([5]).collect();
    assert_eq!(opnums, want);
    assert_eq!(object["live_objects"].as_u64(), Some(0), "every object released");
    let round_trips = per_query.len();
    eprintln!(
        "DCOM SmartEnum: 1200 rows per query in {round_trips} round trips ({:.1} per 1000 rows); \
         open + 2 queries + close in {elapsed:?}",
        round_trips as f64 * 1000.0 / 1200.0
    );
}

#[tokio::test]
async fn wmi_errors_map_to_the_taxonomy() {
    let emu = Emulator::start(&[]);
    let mut session = DcomConnector::default().open(&endpoint(emu.activation_port, PASSWORD)).await.unwrap();
    let err = run(&mut session, &QuerySpec::class("Win32_Nope")).await.unwrap_err();
    assert_eq!((err.category, err.code.as_deref()), (Category::InvalidClass, Some("0x80041010")));
    let mut query = QuerySpec::class("Win32_UTCTime");
    query.namespace = "root/nope".into();
    let err = run(&mut session, &query).await.unwrap_err();
    assert_eq!(err.category, Category::InvalidNamespace);
    // The session is still good after both.
    assert_eq!(run(&mut session, &QuerySpec::class("Win32_UTCTime")).await.unwrap().concat().len(), 5);
    session.close().await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_is_access_denied_at_open() {
    let emu = Emulator::start(&[]);
    let err = DcomConnector::default().open(&endpoint(emu.activation_port, "wrong")).await.err().unwrap();
    assert_eq!(err.category, Category::AccessDenied);
}

#[tokio::test]
async fn a_silent_port_fails_within_the_connect_timeout() {
    // A listener that never answers: TCP connects, the bind gets no reply.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let err = DcomConnector::default().open(&endpoint(port, PASSWORD)).await.err().unwrap();
    assert_eq!(err.category, Category::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    drop(silent);
    // Nothing listening at all: refused at once.
    let err = DcomConnector::default().open(&endpoint(port, PASSWORD)).await.err().unwrap();
    assert_eq!(err.category, Category::Unreachable);
}

/// Round trips (requests) on the object exporter connection, from the emulator's log.
fn object_round_trips(emu: &Emulator) -> usize {
    let conns = emu.connections();
    conns.iter().filter(|c| c["role"] == "object").map(|c| c["requests"].as_array().unwrap().len()).sum()
}

#[tokio::test]
async fn impacket_passes_against_the_same_emulator_and_we_need_10x_fewer_round_trips() {
    const ROWS: usize = 200;
    let rows = ROWS.to_string();

    // impacket, as wmiquery.py drives it: Next one object per call.
    let emu = Emulator::start(&["--rows", &rows]);
    let port = emu.activation_port.to_string();
    let got = dcom_peer::run("dcom_impacket_client.py", [port.as_str(), "alice", PASSWORD, "LAB"]);
    assert_eq!(got["rows"].as_u64(), Some(ROWS as u64), "{got:?}");
    assert_eq!(got["class"].as_str(), Some("Win32_UTCTime"));
    assert_eq!(got["first"]["Year"].as_u64(), Some(2021));
    let theirs = object_round_trips(&emu);
    let their_secs = got["seconds"].as_f64().unwrap();
    for conn in emu.connections() {
        assert_eq!(conn["auth"]["proof"].as_str(), Some("ok"));
        assert_eq!(conn["bad_signatures"].as_u64(), Some(0));
    }
    drop(emu);

    let emu = Emulator::start(&["--rows", &rows]);
    let started = Instant::now();
    let mut session = DcomConnector { batch: 250 }.open(&endpoint(emu.activation_port, PASSWORD)).await.unwrap();
    let pages = run(&mut session, &QuerySpec::class("Win32_UTCTime")).await.unwrap();
    session.close().await.unwrap();
    let our_secs = started.elapsed().as_secs_f64();
    assert_eq!(pages.iter().map(Vec::len).sum::<usize>(), ROWS);
    let ours = object_round_trips(&emu);
    eprintln!(
        "{ROWS} rows: cimrun {ours} round trips in {our_secs:.2}s ({:.0} rows/s), impacket {theirs} round trips in \
         {their_secs:.2}s ({:.0} rows/s) on the object connection",
        ROWS as f64 / our_secs,
        ROWS as f64 / their_secs
    );
    assert!(ours * 10 <= theirs, "cimrun {ours} round trips, impacket {theirs}");
}

#[tokio::test]
async fn a_com_5_6_server_gets_a_5_6_activation() {
    let emu = Emulator::start(&["--com-minor", "6"]);
    let mut session = DcomConnector::default().open(&endpoint(emu.activation_port, PASSWORD)).await.unwrap();
    assert_eq!(run(&mut session, &QuerySpec::class("Win32_UTCTime")).await.unwrap().concat().len(), 5);
    session.close().await.unwrap();
    assert_eq!(emu.connections()[0]["com_versions"], serde_json::json!([7, 6]));
}

#[tokio::test]
async fn an_abandoned_enumeration_is_released_by_the_next_operation() {
    use futures::StreamExt;
    let emu = Emulator::start(&["--rows", "30"]);
    let mut session = DcomConnector { batch: 10 }.open(&endpoint(emu.activation_port, PASSWORD)).await.unwrap();
    let query = QuerySpec::class("Win32_UTCTime");
    {
        let mut stream = session.enumerate(&query);
        assert_eq!(stream.next().await.unwrap().unwrap().len(), 10);
    }
    // Dropped after one page: the enumerator, fetcher and smart enumerator are still held.
    let live = || emu.connections()[1]["live_objects"].as_u64().unwrap();
    assert_eq!(live(), 5, "login, services, enumerator, fetcher, smart enumerator");
    assert_eq!(run(&mut session, &query).await.unwrap().concat().len(), 30);
    session.close().await.unwrap();
    assert_eq!(live(), 0);
    let opnums: Vec<u64> =
        emu.connections()[1]["requests"].as_array().unwrap().iter().map(|r| r["opnum"].as_u64().unwrap()).collect();
    // The second ExecQuery comes after the release of the first enumeration's objects.
    assert_eq!(opnums[..7], [6, 20, 3, 3, 3, 5, 20]);
}

#[test]
fn aiowmi_passes_against_the_same_emulator() {
    let emu = Emulator::start(&["--rows", "7"]);
    let port = emu.activation_port.to_string();
    let got = dcom_peer::run("dcom_aiowmi_client.py", [port.as_str(), "alice", PASSWORD, "LAB"]);
    assert_eq!(got["rows"].as_u64(), Some(7), "{got:?}");
    assert_eq!(got["first"]["Year"].as_u64(), Some(2021));
    let conns = emu.connections();
    for conn in &conns {
        assert_eq!(conn["auth"]["proof"].as_str(), Some("ok"));
        assert_eq!(conn["bad_signatures"].as_u64(), Some(0));
    }
    // aiowmi reads through SmartEnum, one object per IWbemWCOSmartEnum::Next.
    let opnums: Vec<u64> =
        conns[1]["requests"].as_array().unwrap().iter().map(|r| r["opnum"].as_u64().unwrap()).collect();
    assert_eq!(opnums[..4], [6, 20, 3, 3]);
}

#[tokio::test]
async fn without_smart_enum_the_session_reads_the_enumerator_in_batches() {
    let emu = Emulator::start(&["--rows", "30", "--no-smart-enum"]);
    let mut session = DcomConnector { batch: 10 }.open(&endpoint(emu.activation_port, PASSWORD)).await.unwrap();
    let pages = run(&mut session, &QuerySpec::class("Win32_UTCTime")).await.unwrap();
    // The fourth Next returns nothing but WBEM_S_FALSE: no empty page for it.
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 10]);
    assert_eq!(pages[0][0].class_name, "Win32_UTCTime");
    session.close().await.unwrap();
    let object = &emu.connections()[1];
    let opnums: Vec<u64> =
        object["requests"].as_array().unwrap().iter().map(|r| r["opnum"].as_u64().unwrap()).collect();
    assert_eq!(opnums, [6, 20, 3, 4, 4, 4, 4, 5, 5]);
    assert_eq!(object["live_objects"].as_u64(), Some(0));
}

/// The emulator's benchmark knobs: --latency-ms delays every exchange the client waits for,
/// and the round trips it counts are the binds, alter_contexts and requests it answered.
#[tokio::test]
async fn emulator_latency_delays_each_counted_round_trip() {
    let emu = Emulator::start(&["--rows", "600", "--latency-ms", "40", "--log-on-close"]);
    let started = Instant::now();
    let mut session = DcomConnector { batch: 250 }.open(&endpoint(emu.activation_port, PASSWORD)).await.unwrap();
    let rows: usize = run(&mut session, &QuerySpec::class("Win32_UTCTime")).await.unwrap().iter().map(Vec::len).sum();
    session.close().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(rows, 600);
    // --log-on-close: the log is written as each connection closes.
    // On a loaded machine a log can take a while to appear, and the log may also hold a
    // connection that closed without a request: the object connection is the one that carried
    // the requests.
    let requests_of = |c: &serde_json::Value| c["requests"].as_array().map_or(0, Vec::len);
    let mut conns = emu.connections();
    for _ in 0..250 {
        let done = conns.iter().filter(|c| c.get("round_trips").is_some()).count() >= 2;
        if done && conns.iter().any(|c| c["role"] == "object" && requests_of(c) > 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        conns = emu.connections();
    }
    let object = conns
        .iter()
        .filter(|c| c["role"] == "object")
        .max_by_key(|c| requests_of(c))
        .expect("the object connection's log");
    let activation = conns.iter().find(|c| c["role"] != "object").expect("the activation connection's log");
    let trips = [activation["round_trips"].as_u64().unwrap_or(0), object["round_trips"].as_u64().unwrap_or(0)];
    let requests = object["requests"].as_array().unwrap().len() as u64;
    let binds = (object["binds"].as_array().unwrap().len() + object["alter_contexts"].as_array().unwrap().len()) as u64;
    assert_eq!(trips[1], requests + binds, "{object}");
    // Login, ExecQuery, QI, GetSmartEnum, 3 batches, 2 releases at least, plus activation.
    assert!(trips[0] >= 2 && trips[1] >= 9, "{trips:?}");
    let floor = Duration::from_millis(40 * (trips[0] + trips[1]));
    assert!(elapsed >= floor, "{elapsed:?} for {trips:?} round trips at 40 ms");
}
