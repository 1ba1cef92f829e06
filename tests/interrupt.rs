//! Interrupted runs: SIGINT and SIGTERM stop a run cleanly (exit 130/143, only complete files
//! under final names, run.json marks the rest cancelled, enumerations released, a request in
//! flight heard out so the context the server holds now is the one released), a second
//! SIGINT exits at once, SIGKILL leaves no truncated final file, and `--retry-failed`
//! completes an interrupted run so both runs' outputs hold every instance once.
#![cfg(feature = "testkit")]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cimrun::report::Status;
use cimrun::testkit::{Fault, HostConfig, TestServer, fleet_address};
use support::{JobDef, SessionDef, Transport};

const QUERIES: &[(&str, &str)] = &[("services", "Win32_Service"), ("disks", "Win32_LogicalDisk")];
const HOSTS: usize = 6;

/// Hosts slow enough (latency, small pages) that a run of them takes a few seconds.
fn slow_fleet(base: u16, latency: Duration) -> TestServer {
    TestServer::builder()
        .hosts((0..HOSTS).map(|i| {
            HostConfig::new(format!("srv{i:02}.corp.example"))
                .seed(i as u64)
                // Host 0 is quicker: it is done while the others are in the middle of a query.
                .latency(if i == 0 { latency / 4 } else { latency })
                .max_page(10)
                .bind(SocketAddr::new(fleet_address(base + i as u16), 0))
        }))
        .lifetime(Duration::from_secs(60))
        .start()
        .expect("server")
}

fn job(server: &TestServer, dir: &Path, throttle: usize) -> PathBuf {
    let sessions = (0..HOSTS)
        .map(|i| SessionDef { name: format!("s{i}"), host: i, transport: Transport::HttpBasic })
        .collect();
    let mut job = JobDef::new(sessions, QUERIES);
    job.throttle = throttle;
    job.operation_timeout = "5s";
    job.task_timeout = "30s";
    job.write(server, dir)
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: kill(2) on a child this test spawned and has not reaped yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill");
}

/// Waits until the hosts have answered `pulls` Pulls in all: the run is well under way.
fn wait_for_pulls(server: &TestServer, pulls: u64) {
    let t0 = Instant::now();
    while (0..HOSTS).map(|i| server.stats(i).map_or(0, |s| s.count("Pull"))).sum::<u64>() < pulls {
        assert!(t0.elapsed() < Duration::from_secs(20), "the run did not get going");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until host 0's counters satisfy `done`.
fn wait_until(server: &TestServer, done: impl Fn(&cimrun::testkit::HostStats) -> bool) {
    let t0 = Instant::now();
    while !server.stats(0).is_some_and(|s| done(&s)) {
        assert!(t0.elapsed() < Duration::from_secs(20), "the run did not get going");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The session of host `i` and the file its query's rows go to.
fn output_of(out: &Path, server: &TestServer, i: usize, query: &str) -> PathBuf {
    out.join(query).join(format!("{}.ndjson", server.addr(i).expect("host").ip()))
}

/// Checks that every file under a final name is complete (its task ok, every instance of the
/// dataset in it) and returns the tasks by (session, query).
fn check_final_files_complete(out: &Path, server: &TestServer) -> BTreeMap<(String, String), Status> {
    let report = out.join("run.json");
    let tasks = if report.exists() { support::tasks_by_session(&report) } else { BTreeMap::new() };
    for i in 0..HOSTS {
        for (query, class) in QUERIES {
            let file = output_of(out, server, i, query);
            if !file.exists() {
                continue;
            }
            let rows = support::ndjson_rows(out, |p| out.join(p) == file);
            let want = support::dataset_keys(server.config(i).expect("host"), class);
            let mut got = support::row_keys(&rows, class);
            got.sort();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{} is complete", file.display());
            if let Some(t) = tasks.get(&(format!("s{i}"), query.to_string())) {
                assert_eq!(t.status, Status::Ok, "{} exists, so its task is ok", file.display());
            }
        }
    }
    tasks.into_iter().map(|(k, t)| (k, t.status)).collect()
}

fn interrupted_run(sig: i32, code: i32, base: u16) -> (TestServer, tempfile::TempDir, PathBuf, PathBuf) {
    let server = slow_fleet(base, Duration::from_millis(40));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let job = job(&server, dir.path(), 2);
    let child = support::cimrun_run(&job, &out, &[]).spawn().expect("cimrun starts");
    // Host 0 is done with both queries, host 1 is likely in the middle of one.
    wait_until(&server, |s| s.count("Enumerate") == 2 && s.open_contexts == 0 && s.count("Pull") > 0);
    let t_sig = Instant::now();
    signal(&child, sig);
    let (output, _) = support::wait_bounded(child, Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(t_sig.elapsed() < Duration::from_secs(5), "stopping took {:?}", t_sig.elapsed());

    let statuses = check_final_files_complete(&out, &server);
    assert_eq!(statuses.len(), HOSTS * QUERIES.len(), "run.json has every task\n{stderr}");
    let ok = statuses.values().filter(|s| **s == Status::Ok).count();
    let cancelled = statuses.values().filter(|s| **s == Status::Cancelled).count();
    assert!(ok >= 1 && cancelled >= 1, "some tasks done, some cancelled: {statuses:?}");
    assert_eq!(ok + cancelled, statuses.len(), "nothing failed: {statuses:?}");
    let tasks = support::tasks_by_session(&out.join("run.json"));
    let cut = tasks.values().filter(|t| t.message.as_deref().is_some_and(|m| m.contains("unfinished temporary file")));
    assert!(cut.count() >= 1, "a query was interrupted part-way and its rows were not kept: {tasks:#?}");
    for i in 0..HOSTS {
        let stats = server.stats(i).expect("host");
        assert_eq!(stats.open_contexts, 0, "host {i}: enumerations released: {stats:?}");
    }
    (server, dir, job, out)
}

#[test]
fn sigint_stops_cleanly_and_a_retry_completes_the_rest() {
    let (server, dir, job, out) = interrupted_run(libc::SIGINT, 130, 3200);
    let out2 = dir.path().join("out2");
    let retry = support::cimrun_run(&job, &out2, &["--retry-failed", out.join("run.json").to_str().expect("utf-8")]);
    let (output, _) = support::run_bounded(retry, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let retried = support::tasks_by_session(&out2.join("run.json"));
    assert!(retried.values().all(|t| t.status == Status::Ok));

    assert_once_across(&server, &[&out, &out2]);
}

/// Both runs' outputs together hold every instance of every host and query exactly once.
fn assert_once_across(server: &TestServer, outs: &[&Path]) {
    for i in 0..HOSTS {
        for (query, class) in QUERIES {
            let mut got = Vec::new();
            for o in outs {
                let file = output_of(o, server, i, query);
                got.extend(support::row_keys(&support::ndjson_rows(o, |p| o.join(p) == file), class));
            }
            got.sort();
            let want = support::dataset_keys(server.config(i).expect("host"), class);
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "host {i} {query}: once across both runs");
        }
    }
}

#[test]
fn sigterm_stops_cleanly_with_143() {
    interrupted_run(libc::SIGTERM, 143, 3220);
}

#[test]
fn sigkill_leaves_no_truncated_final_file_and_its_report_drives_the_retry() {
    let server = slow_fleet(3240, Duration::from_millis(40));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let job = job(&server, dir.path(), 3);
    let child = support::cimrun_run(&job, &out, &[]).spawn().expect("cimrun starts");
    // Host 0 is done and the others are part-way; its end reaches the report a moment later.
    wait_until(&server, |s| s.count("Enumerate") == 2 && s.open_contexts == 0 && s.count("Pull") > 0);
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, libc::SIGKILL);
    let (output, _) = support::wait_bounded(child, Duration::from_secs(5));
    assert_eq!(output.status.code(), None, "killed by the signal");
    assert!(!out.join("run.json").exists(), "no run.json under its final name");
    check_final_files_complete(&out, &server);
    let temps = support::files_under(&out)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains(".tmp-")))
        .count();
    assert!(temps >= 1, "the unfinished files are temporary files");

    // The killed run's temporary report lists what it finished; the retry does the rest.
    let partial = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .map(|e| e.path())
        .find(|p| cimrun::report::is_partial(p))
        .expect("the temporary report");
    let done = cimrun::report::read_partial(&partial).expect("partial report");
    assert!(done.iter().any(|t| t.status == Status::Ok), "some tasks were recorded done: {done:?}");
    let out2 = dir.path().join("out2");
    let retry = support::cimrun_run(&job, &out2, &["--retry-failed", partial.to_str().expect("utf-8")]);
    let (output, _) = support::run_bounded(retry, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let retried = support::tasks_by_session(&out2.join("run.json"));
    assert_eq!(retried.len() + done.iter().filter(|t| t.status == Status::Ok).count(), HOSTS * QUERIES.len());
    assert_once_across(&server, &[&out, &out2]);
}

#[test]
fn a_killed_runs_report_is_refused_when_outputs_are_shared_by_all_computers() {
    let server = slow_fleet(3280, Duration::ZERO);
    let dir = tempfile::tempdir().expect("tempdir");
    let sessions = vec![SessionDef { name: "s0".into(), host: 0, transport: Transport::HttpBasic }];
    let mut job = JobDef::new(sessions, QUERIES);
    job.sinks = vec![("csv".into(), "{{query}}.csv".into())];
    let job_path = job.write(&server, dir.path());
    let partial = dir.path().join(".run.json.tmp-20260101T000000Z-000000");
    std::fs::write(&partial, "{\"cimrun\":\"0\",\n\"tasks\": [").expect("write");
    let retry = support::cimrun_run(&job_path, &dir.path().join("out"), &["--retry-failed", partial.to_str().expect("utf-8")]);
    let (output, _) = support::run_bounded(retry, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("run the whole job again"), "{stderr}");
    assert_eq!(server.stats(0).expect("host").connections, 0);
}

#[test]
fn a_second_sigint_exits_at_once() {
    // A long latency makes the clean stop (Release, session close) take seconds.
    let server = slow_fleet(3260, Duration::from_millis(4000));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let job = job(&server, dir.path(), HOSTS);
    let child = support::cimrun_run(&job, &out, &[]).spawn().expect("cimrun starts");
    wait_for_pulls(&server, 1);
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    signal(&child, libc::SIGINT);
    let (output, _) = support::wait_bounded(child, Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(t0.elapsed() < Duration::from_millis(1500), "exited {:?} after the second SIGINT", t0.elapsed());
    check_final_files_complete(&out, &server);
}

#[test]
fn an_interrupted_pull_is_heard_out_and_the_context_the_server_holds_is_released() {
    // The host carries out each operation at once and answers 600 ms later, so the Pull in
    // flight when the signal comes has already replaced the server's context.
    let server = TestServer::builder()
        .host(
            HostConfig::new("srv00.corp.example")
                .max_page(10)
                .fault(Fault::SlowReply(Duration::from_millis(600)))
                .bind(SocketAddr::new(fleet_address(3380), 0)),
        )
        .lifetime(Duration::from_secs(60))
        .start()
        .expect("server");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let sessions = vec![SessionDef { name: "s0".into(), host: 0, transport: Transport::HttpBasic }];
    let mut job = JobDef::new(sessions, &QUERIES[..1]);
    job.operation_timeout = "5s";
    job.task_timeout = "30s";
    let job = job.write(&server, dir.path());
    let child = support::cimrun_run(&job, &out, &[]).spawn().expect("cimrun starts");
    wait_until(&server, |s| s.count("Pull") == 1);
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, libc::SIGINT);
    let (output, _) = support::wait_bounded(child, Duration::from_secs(15));
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    let stats = server.stats(0).expect("host");
    assert_eq!((stats.count("Pull"), stats.count("Release")), (1, 1), "no Pull after the signal: {stats:?}");
    assert_eq!((stats.releases, stats.open_contexts), (1, 0), "the current context was released: {stats:?}");
    let tasks = support::tasks_by_session(&out.join("run.json"));
    assert!(tasks.values().all(|t| t.status == Status::Cancelled), "{tasks:#?}");
    assert!(!output_of(&out, &server, 0, "services").exists(), "no rows of the cancelled query under a final name");
}
