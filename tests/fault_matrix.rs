//! The fault matrix: one `cimrun run` over healthy hosts mixed with every way a host fails in
//! real fleets. Every host must end with its exact category in run.json, every healthy host's
//! instances must all be in the sinks, the run must end within its deadlines, abandoned
//! enumerations must be released, and the exit code must say tasks failed.
#![cfg(feature = "testkit")]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cimrun::testkit::{Fault, HostConfig, TestServer, fleet_address};
use support::{JobDef, SessionDef, Transport};

/// Queries of the matrix: a class of many instances (several Pulls) and a small one.
const QUERIES: &[(&str, &str)] = &[("services", "Win32_Service"), ("disks", "Win32_LogicalDisk")];

/// A host of the matrix: its session name, how it is configured, how the job reaches it, and
/// the category run.json must give each of its queries.
struct Case {
    name: &'static str,
    config: HostConfig,
    transport: Transport,
    expect: [&'static str; 2],
}

fn case(name: &'static str, transport: Transport, fault: Option<Fault>, expect: [&'static str; 2]) -> Case {
    let mut config = HostConfig::new(format!("{name}.corp.example")).seed(name.len() as u64).max_page(20);
    if let Some(f) = fault {
        config = config.fault(f);
    }
    if matches!(transport, Transport::Https | Transport::HttpsSkipChecks) {
        config = config.https(true);
    }
    if transport == Transport::HttpNtlm {
        config = config.allow_unencrypted(false);
    }
    Case { name, config, transport, expect }
}

fn matrix() -> Vec<Case> {
    use Transport::*;
    let ok = ["ok", "ok"];
    vec![
        case("healthy-ntlm", HttpNtlm, None, ok),
        case("healthy-basic", HttpBasic, None, ok),
        case("healthy-https", Https, None, ok),
        case("healthy-skip", HttpsSkipChecks, Some(Fault::WrongCertificateName), ok),
        case("timedout-once", HttpNtlm, Some(Fault::TimedOutOnce), ok),
        case("refuse", HttpNtlm, Some(Fault::Refuse), ["unreachable", "unreachable"]),
        case("hang", HttpNtlm, Some(Fault::Hang), ["timed_out", "timed_out"]),
        case("slow", HttpBasic, Some(Fault::Slow(Duration::from_secs(4))), ["timed_out", "timed_out"]),
        case("reset", HttpNtlm, Some(Fault::ResetAfterPulls(1)), ["connection_failed", "ok"]),
        case("garbage", HttpBasic, Some(Fault::GarbageXml), ["protocol_error", "protocol_error"]),
        case("http500", HttpBasic, Some(Fault::Http500Empty), ["server_fault", "server_fault"]),
        case("invalid-class", HttpNtlm, Some(Fault::InvalidClass), ["invalid_class", "invalid_class"]),
        case("denied", HttpNtlm, Some(Fault::AccessDenied), ["access_denied", "access_denied"]),
        case("quota", HttpBasic, Some(Fault::QuotaExceeded), ["quota_exceeded", "quota_exceeded"]),
        case("too-large", HttpNtlm, Some(Fault::EnvelopeTooLarge), ["envelope_too_large", "envelope_too_large"]),
        case("bad-password-ntlm", HttpNtlm, Some(Fault::WrongPassword), ["auth_failed", "auth_failed"]),
        case("bad-password-basic", HttpBasic, Some(Fault::WrongPassword), ["auth_failed", "auth_failed"]),
        case("untrusted-cert", Https, Some(Fault::UntrustedCertificate), ["tls_failure", "tls_failure"]),
        case("wrong-name-cert", Https, Some(Fault::WrongCertificateName), ["tls_failure", "tls_failure"]),
    ]
}

/// Serves `hosts` on consecutive fleet addresses from `base`, each on a free port.
fn start(hosts: impl Iterator<Item = HostConfig>, base: u16) -> TestServer {
    TestServer::builder()
        .hosts(hosts.enumerate().map(|(i, c)| c.bind(SocketAddr::new(fleet_address(base + i as u16), 0))))
        .lifetime(Duration::from_secs(60))
        .worker_threads(2)
        .start()
        .expect("server")
}

/// Runs the matrix with `throttle` and checks everything; `base` spaces the addresses of the
/// two runs apart so they never share a listener.
fn run_matrix(throttle: usize, base: u16) {
    let cases = matrix();
    let server = start(cases.iter().map(|c| c.config.clone()), base);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let sessions = cases
        .iter()
        .enumerate()
        .map(|(i, c)| SessionDef { name: c.name.to_string(), host: i, transport: c.transport })
        .collect();
    let mut job = JobDef::new(sessions, QUERIES);
    job.throttle = throttle;
    let job_path = job.write(&server, dir.path());

    let (output, elapsed) = support::run_bounded(support::cimrun_run(&job_path, &out, &[]), Duration::from_secs(45));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "tasks failed, so exit 1\n{stderr}");

    // Each host's worst case is its task deadline (8 s); with `throttle` hosts at a time the
    // slow ones queue behind each other, so the bound grows with the number of waves.
    eprintln!("fault matrix, throttle {throttle}: {} hosts in {elapsed:?}", cases.len());
    let waves = cases.len().div_ceil(throttle) as u64;
    let bound = Duration::from_secs(9 * waves.min(3) + 4);
    assert!(elapsed < bound, "the run took {elapsed:?} (bound {bound:?})\n{stderr}");

    let tasks = support::tasks_by_session(&out.join("run.json"));
    assert_eq!(tasks.len(), cases.len() * QUERIES.len(), "one record per (host, query)");
    let mut wrong = Vec::new();
    for c in &cases {
        for ((query, _), want) in QUERIES.iter().zip(c.expect) {
            let t = &tasks[&(c.name.to_string(), query.to_string())];
            let got = support::category(t);
            if got != want {
                wrong.push(format!("{} {query}: {got} (want {want}): {:?}", c.name, t.message));
            }
        }
    }
    assert!(wrong.is_empty(), "wrong categories:\n{}\n{stderr}", wrong.join("\n"));

    // A wrong password is one failed logon per host, however many queries it has: a retry
    // or a new handshake per query would count towards the account's lockout.
    for (i, c) in cases.iter().enumerate().filter(|(_, c)| c.name.starts_with("bad-password")) {
        let stats = server.stats(i).expect("host");
        assert_eq!(stats.unauthorized, 1, "{}: {stats:?}", c.name);
    }

    for (i, c) in cases.iter().enumerate() {
        let ip = server.addr(i).expect("host").ip().to_string();
        for ((query, class), want) in QUERIES.iter().zip(c.expect) {
            let rows = support::ndjson_rows(&out, |p| p == Path::new(query).join(format!("{ip}.ndjson")));
            let t = &tasks[&(c.name.to_string(), query.to_string())];
            if want == "ok" {
                let expected = support::dataset_keys(&c.config, class);
                let mut got = support::row_keys(&rows, class);
                assert_eq!(got.len(), expected.len(), "{} {query}: every instance once", c.name);
                got.sort();
                assert_eq!(got, expected.into_iter().collect::<Vec<_>>(), "{} {query}: the dataset's instances", c.name);
                assert_eq!(t.rows, rows.len() as u64, "{} {query}: run.json counts the rows written", c.name);
                assert!(
                    rows.iter().all(|r| r["PSComputerName"] == serde_json::Value::String(ip.clone())),
                    "{} {query}: rows name their computer",
                    c.name
                );
            } else {
                assert_eq!(t.rows, rows.len() as u64, "{} {query}: rows written match the record", c.name);
            }
        }
    }

    // Retryable failures were retried within the budget (retries: 1), the others were not.
    // (Where a w:TimedOut is retried, the session or the scheduler, is not this test's concern.)
    for c in cases.iter().filter(|c| c.name != "timedout-once") {
        let t = &tasks[&(c.name.to_string(), QUERIES[0].0.to_string())];
        let want = match c.name {
            "quota" | "slow" | "hang" => 2,
            _ => 1,
        };
        assert_eq!(t.attempts, want, "{}: attempts", c.name);
    }

    // Nothing left open on any host: abandoned enumerations were released.
    for (i, c) in cases.iter().enumerate() {
        let stats = server.stats(i).expect("host");
        assert_eq!(stats.open_contexts, 0, "{}: enumerations left open: {stats:?}", c.name);
    }
    let reset = cases.iter().position(|c| c.name == "reset").expect("reset host");
    let stats = server.stats(reset).expect("host");
    assert!(stats.resets >= 1, "the reset host reset a Pull: {stats:?}");
    assert!(stats.releases >= 1, "the enumeration cut by the reset was released: {stats:?}");

    // The only temporary file left is the one of the query cut by the reset: part of a result
    // is never under a final name (a rerun of the failed task then adds each instance once).
    let leftovers: Vec<_> = support::files_under(&out)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    let reset_ip = server.addr(reset).expect("host").ip().to_string();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");
    let name = leftovers[0].file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    assert!(name.starts_with(&format!(".{reset_ip}.ndjson.tmp-")), "{leftovers:?}");
    assert!(leftovers[0].starts_with(out.join("services")), "{leftovers:?}");
    let basic = &tasks[&("bad-password-basic".to_string(), "services".to_string())];
    assert!(basic.message.as_deref().is_some_and(|m| m.contains("wrong user name or password")), "{basic:?}");
    let cut = &tasks[&("reset".to_string(), "services".to_string())];
    assert!(cut.message.as_deref().is_some_and(|m| m.contains("unfinished temporary file")), "{cut:?}");
}

#[test]
fn every_fault_has_its_category_and_nothing_healthy_is_lost() {
    run_matrix(64, 3000);
}

#[test]
fn a_throttle_below_the_host_count_gives_the_same_outcome() {
    run_matrix(4, 3100);
}

/// Replies built to exceed the parser's limits, or to expand XML entities, end as
/// `protocol_error` for their host only, quickly and without the memory they ask for.
#[test]
fn hostile_replies_hit_the_parser_limits_end_to_end() {
    use cimrun::testkit::Hostile;
    let kinds = [
        ("oversized", Hostile::OversizedBody, "exceeds"),
        ("deep", Hostile::DeepNesting, "deeper than"),
        ("many-properties", Hostile::ManyProperties, "more than"),
        ("long-string", Hostile::LongString, "string limit"),
        ("long-array", Hostile::LongArray, "array"),
        ("entities", Hostile::EntityExpansion, ""),
    ];
    let mut configs = vec![HostConfig::new("healthy.corp.example").seed(1)];
    configs.extend(kinds.iter().map(|(name, kind, _)| HostConfig::new(*name).fault(Fault::Hostile(*kind))));
    let server = start(configs.into_iter(), 3180);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let mut sessions = vec![SessionDef { name: "healthy".into(), host: 0, transport: Transport::HttpBasic }];
    sessions.extend(
        kinds.iter().enumerate().map(|(i, (name, _, _))| SessionDef { name: name.to_string(), host: i + 1, transport: Transport::HttpBasic }),
    );
    let mut job = JobDef::new(sessions, &[("services", "Win32_Service")]);
    job.operation_timeout = "10s";
    job.task_timeout = "20s";
    let job_path = job.write(&server, dir.path());
    let (output, elapsed) = support::run_bounded(support::cimrun_run(&job_path, &out, &[]), Duration::from_secs(40));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let tasks = support::tasks_by_session(&out.join("run.json"));
    assert_eq!(support::category(&tasks[&("healthy".into(), "services".into())]), "ok");
    let mut wrong = Vec::new();
    for (name, _, says) in kinds {
        let t = &tasks[&(name.to_string(), "services".to_string())];
        let message = t.message.clone().unwrap_or_default();
        if support::category(t) != "protocol_error" || !message.contains(says) || t.attempts != 1 {
            wrong.push(format!("{name}: {} attempts {}: {message}", support::category(t), t.attempts));
        }
        assert!(!message.contains("lollollol"), "entities never expand: {message}");
    }
    assert!(wrong.is_empty(), "{}\n{stderr}", wrong.join("\n"));
    // SAFETY: getrusage only writes the struct passed by pointer.
    let max_rss_kb = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    };
    eprintln!("hostile replies: {elapsed:?}, largest child RSS {max_rss_kb} KiB");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}
