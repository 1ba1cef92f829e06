//! cimrun against a simulated fleet: deadlines and the probe bound what bad hosts cost, and
//! shards merged with `cimrun merge` equal one unsharded run.
#![cfg(feature = "testkit")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cimrun::testkit::{Fault, HostConfig, TestServer, fleet_address};

/// A job with one session per host (each host has its own port), Basic over HTTP.
fn job(dir: &Path, server: &TestServer, run: &str) -> std::path::PathBuf {
    let mut sessions = String::new();
    for i in 0..server.len() {
        let addr = server.addr(i).unwrap();
        sessions.push_str(&format!(
            "  - name: s{i}\n    computers: [\"{}\"]\n    port: {}\n    credential: c\n    \
             authentication: basic\n    options: plain\n",
            addr.ip(),
            addr.port()
        ));
    }
    let text = format!(
        "version: 1\ncredentials:\n  c:\n    username: cimrun\n    password: {{ env: FLEET_TEST_PASSWORD }}\n\
         options:\n  plain:\n    allow_unencrypted: true\nsessions:\n{sessions}queries:\n  \
         - name: os\n    class: Win32_OperatingSystem\n  - name: services\n    class: Win32_Service\n\
         sinks:\n  - type: csv\n    path: \"{{{{query}}}}.csv\"\n  - type: json\n    path: \"{{{{query}}}}.json\"\n\
         run:\n{run}"
    );
    let path = dir.join("job.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn cimrun(args: &[&str]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cimrun"));
    command.args(args);
    if args.first() == Some(&"run") {
        command.args(["--progress", "never"]);
    }
    let out = command
        .env("FLEET_TEST_PASSWORD", "P@ssw0rd!")
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn fleet(first: u16, configs: Vec<HostConfig>) -> TestServer {
    let hosts = configs
        .into_iter()
        .enumerate()
        .map(|(k, h)| h.bind(SocketAddr::new(fleet_address(first + k as u16), 0)));
    TestServer::builder().hosts(hosts).worker_threads(2).lifetime(Duration::from_secs(120)).start().unwrap()
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn shards_merged_equal_one_run() {
    let server = fleet(64_000, (0..12).map(|i| HostConfig::new(format!("web{i:02}")).seed(i)).collect());
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &server, "  throttle: 4\n");
    let job = job.to_str().unwrap();
    let whole = dir.path().join("whole");
    let (code, err) = cimrun(&["run", job, "--out", whole.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut shards = Vec::new();
    for i in 0..3 {
        let out = dir.path().join(format!("shard-{i}"));
        let (code, err) = cimrun(&["run", job, "--shard", &format!("{i}/3"), "--out", out.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        shards.push(out.to_str().unwrap().to_string());
    }
    let merged = dir.path().join("merged");
    let mut args = vec!["merge"];
    args.extend(shards.iter().map(String::as_str));
    args.extend(["--out", merged.to_str().unwrap()]);
    let (code, err) = cimrun(&args);
    assert_eq!(code, 0, "{err}");

    for file in ["os.csv", "services.csv"] {
        let (a, b) = (sorted_lines(&whole.join(file)), sorted_lines(&merged.join(file)));
        assert!(a.len() > 12, "{file} has rows");
        assert_eq!(a, b, "{file}");
        // One header, first.
        let text = std::fs::read_to_string(merged.join(file)).unwrap();
        assert!(text.starts_with("PSComputerName,"), "{file}");
        assert_eq!(text.matches("PSComputerName,").count(), 1, "{file}");
    }
    let objects = |p: &Path| {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        let mut items: Vec<String> = v.as_array().unwrap().iter().map(|o| o.to_string()).collect();
        items.sort();
        items
    };
    assert_eq!(objects(&whole.join("services.json")), objects(&merged.join("services.json")));

    let (whole_tasks, whole_summary) = cimrun::report::read(&whole.join("run.json")).unwrap();
    let (merged_tasks, merged_summary) = cimrun::report::read(&merged.join("run.json")).unwrap();
    let key = |t: &cimrun::report::TaskRecord| (t.session.clone(), t.query.clone(), t.rows, t.status);
    let mut a: Vec<_> = whole_tasks.iter().map(key).collect();
    let mut b: Vec<_> = merged_tasks.iter().map(key).collect();
    a.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    b.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    assert_eq!(a, b);
    assert_eq!(whole_summary, merged_summary);
}

#[test]
fn a_hanging_host_costs_its_deadline_and_a_dead_one_the_probe() {
    let mut hosts = vec![HostConfig::new("hang").fault(Fault::Hang), HostConfig::new("dead").fault(Fault::Refuse)];
    hosts.extend((0..6).map(|i| HostConfig::new(format!("ok{i}")).seed(i)));
    let server = fleet(64_100, hosts);
    let dir = tempfile::tempdir().unwrap();
    let run = "  throttle: 2\n  retries: 2\n  connect_timeout: 1s\n  operation_timeout: 1s\n  task_timeout: 3s\n  \
               probe_timeout: 500ms\n  fail_if: never\n";
    let job = job(dir.path(), &server, run);
    let out = dir.path().join("out");
    let t0 = Instant::now();
    let (code, err) = cimrun(&["run", job.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let wall = t0.elapsed();
    assert_eq!(code, 0, "{err}");
    // The hung host holds one of the two slots for its 3 s deadline; the other slot serves the
    // rest meanwhile.
    assert!(wall < Duration::from_secs(7), "{wall:?}\n{err}");
    let (tasks, summary) = cimrun::report::read(&out.join("run.json")).unwrap();
    let mut by_session: BTreeMap<String, Vec<&cimrun::report::TaskRecord>> = BTreeMap::new();
    for t in &tasks {
        by_session.entry(t.session.clone()).or_default().push(t);
    }
    let hang = &by_session["s0"];
    assert!(hang.iter().all(|t| t.category.as_deref() == Some("timed_out")), "{hang:?}");
    assert!(hang.iter().map(|t| t.duration_ms).sum::<u64>() <= 3_500, "{hang:?}");
    let dead = &by_session["s1"];
    assert!(dead.iter().all(|t| t.category.as_deref() == Some("unreachable") && t.duration_ms < 600), "{dead:?}");
    assert_eq!(summary.ok, 12, "{summary:?}");
}
