//! End-to-end tests of the command line against the local provider (no network).

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn cimrun() -> Command {
    let mut c = Command::cargo_bin("cimrun").unwrap();
    c.env_remove("RUST_LOG").env("NO_COLOR", "1");
    c
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn local_job_writes_every_output_and_an_all_ok_report() {
    let out = tempfile::tempdir().unwrap();
    cimrun()
        .args(["run", "jobs/local.yaml", "--progress", "never", "--out"])
        .arg(out.path())
        .assert()
        .code(0)
        .stderr(predicate::str::contains("0 failed"));
    let report = read_json(&out.path().join("run.json"));
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 7, "one record per query of the one local host");
    for t in tasks {
        assert_eq!(t["status"], "ok", "{t}");
        assert_eq!(t["computer"], "localhost");
        assert_eq!(t["protocol"], "local");
    }
    assert_eq!(report["summary"]["failed"], 0);
    assert_eq!(report["exit_code"], 0);

    // Every query has its CSV and JSON; the CSV header starts with PSComputerName and then
    // the query's properties in the order the job lists them.
    let csv = std::fs::read_to_string(out.path().join("os.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "PSComputerName,Caption,Version,BuildNumber,OSArchitecture,LastBootUpTime,TotalVisibleMemorySize,FreePhysicalMemory"
    );
    assert_eq!(csv.lines().count(), 2, "one OS instance");
    let os = read_json(&out.path().join("os.json"));
    let os = &os.as_array().unwrap()[0];
    assert_eq!(os["PSComputerName"], "localhost");
    assert!(os["TotalVisibleMemorySize"].is_u64(), "typed values in JSON: {os}");
    assert!(os["LastBootUpTime"].as_str().unwrap().contains('T'), "ISO 8601 datetime: {os}");

    // The WHERE filter ran: every disk row is a local disk.
    let disks = read_json(&out.path().join("disks.json"));
    for d in disks.as_array().unwrap() {
        assert!(d.get("DriveType").is_none(), "projection keeps only the listed properties");
        assert!(d["Size"].as_u64().unwrap_or(0) > 0, "{d}");
    }
    // The process count is in the same range as /proc's.
    let procs = read_json(&out.path().join("processes.json"));
    let n = procs.as_array().unwrap().len();
    let proc_dirs = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .count();
    assert!(n > 0 && n.abs_diff(proc_dirs) < proc_dirs / 2 + 10, "{n} vs {proc_dirs}");

    // No temporary file is left behind.
    for e in std::fs::read_dir(out.path()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "leftover temporary file {name}");
    }
}

#[test]
fn plan_lists_one_line_per_task() {
    let out = cimrun().args(["plan", "jobs/example-fleet.yaml"]).assert().code(0).get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // servers: srv01 + web01..12 + the hosts file; local: localhost. `auto-services` only on servers.
    assert!(lines.iter().any(|l| l.starts_with("servers\tweb07.corp.example\tauto-services\twsman https://web07.corp.example:5986/wsman")), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("local\tlocalhost\tos\tlocal")), "{text}");
    assert!(!lines.iter().any(|l| l.starts_with("local\tlocalhost\tauto-services")), "{text}");
    let web = lines.iter().filter(|l| l.contains("\tweb") && l.contains("\tos\t")).count();
    assert_eq!(web, 12, "web[01:12] expands to 12 hosts");
}

#[test]
fn shards_partition_the_plan() {
    let all = cimrun().args(["plan", "jobs/example-fleet.yaml"]).output().unwrap();
    let all = String::from_utf8(all.stdout).unwrap();
    let mut union: Vec<String> = Vec::new();
    for i in 0..3 {
        let part = cimrun().args(["plan", "jobs/example-fleet.yaml", "--shard", &format!("{i}/3")]).output().unwrap();
        union.extend(String::from_utf8(part.stdout).unwrap().lines().map(String::from));
    }
    let mut a: Vec<String> = all.lines().map(String::from).collect();
    a.sort();
    union.sort();
    assert_eq!(a, union, "the shards together are the whole plan, no line twice");
    cimrun().args(["plan", "jobs/example-fleet.yaml", "--shard", "3/3"]).assert().code(2);
}

#[test]
fn limit_keeps_matching_computers() {
    let out = cimrun().args(["plan", "jobs/example-fleet.yaml", "--limit", "web0?.*"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.is_empty());
    for l in text.lines() {
        let computer = l.split('\t').nth(1).unwrap();
        assert!(computer.starts_with("web0"), "{l}");
    }
}

#[test]
fn usage_errors_exit_2() {
    cimrun().args(["run", "no/such/job.yaml"]).assert().code(2);
    cimrun().args(["frobnicate"]).assert().code(2);
    cimrun().args(["validate", "jobs/local.yaml", "--set", "run.throttle=0"]).assert().code(2);
}

#[test]
fn unwritable_output_exits_3() {
    // A path below a regular file can never be created, whoever runs the test.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    cimrun()
        .args(["run", "jobs/local.yaml", "--progress", "never", "--out"])
        .arg(file.join("out"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("output directory"));
}

#[test]
fn unknown_class_is_an_invalid_class_failure() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "version: 1\nsessions:\n  - name: local\nqueries:\n  - name: nope\n    class: Win32_NoSuchClass\n",
    )
    .unwrap();
    cimrun()
        .args(["run", "--progress", "never", "--out"])
        .arg(dir.path().join("out"))
        .arg(&job)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("invalid_class"));
    let report = read_json(&dir.path().join("out/run.json"));
    assert_eq!(report["tasks"][0]["category"], "invalid_class");
    assert_eq!(report["summary"]["by_category"]["invalid_class"], 1);
}

#[test]
fn fail_if_never_turns_failures_into_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "version: 1\nsessions:\n  - name: local\nqueries:\n  - name: nope\n    class: Win32_NoSuchClass\nrun:\n  fail_if: never\n",
    )
    .unwrap();
    cimrun().args(["run", "--progress", "never", "--out"]).arg(dir.path().join("out")).arg(&job).assert().code(0);
}

#[test]
fn adhoc_query_of_the_local_machine() {
    let out = cimrun()
        .args(["query", "--class", "Win32_ComputerSystem", "--property", "Name,NumberOfLogicalProcessors", "--format", "csv"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("PSComputerName,Name,NumberOfLogicalProcessors"));
    let row = lines.next().unwrap();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(row.ends_with(&format!(",{cpus}")) || row.contains(','), "{row}");
    cimrun().args(["query", "--class", "Win32_Nope"]).assert().code(1).stderr(predicate::str::contains("invalid_class"));
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = cimrun().arg("schema").output().unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed = read_json(Path::new("schemas/job.schema.json"));
    assert_eq!(printed, committed);
}

#[test]
fn retry_failed_reruns_only_the_failed_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "version: 1\nsessions:\n  - name: local\nqueries:\n  - name: os\n    class: Win32_OperatingSystem\n  - name: nope\n    class: Win32_NoSuchClass\n",
    )
    .unwrap();
    cimrun().args(["run", "--progress", "never", "--out"]).arg(dir.path().join("first")).arg(&job).assert().code(1);
    cimrun()
        .args(["run", "--progress", "never", "--out"])
        .arg(dir.path().join("second"))
        .arg("--retry-failed")
        .arg(dir.path().join("first/run.json"))
        .arg(&job)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("retrying 1 failed"));
    let second = read_json(&dir.path().join("second/run.json"));
    let tasks = second["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["query"], "nope");
    assert!(!dir.path().join("second/os.csv").exists(), "the succeeded query did not run again");
    cimrun()
        .args(["run", "--retry-failed", "/no/such/run.json", "--out"])
        .arg(dir.path().join("third"))
        .arg(&job)
        .assert()
        .code(2);
}

#[test]
fn every_shipped_job_validates_and_plans() {
    let mut n = 0;
    for entry in std::fs::read_dir("jobs").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        n += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# yaml-language-server: $schema=../schemas/job.schema.json"), "{}", path.display());
        cimrun().arg("validate").arg(&path).assert().code(0);
        cimrun().arg("plan").arg(&path).assert().code(0);
    }
    assert!(n >= 3, "jobs/local.yaml, baseline.yaml and example-fleet.yaml at least");
}

#[test]
fn baseline_job_runs_as_shipped_on_the_local_machine() {
    // The credential is for the fleet; the local machine needs none, so no password is set here.
    let out = tempfile::tempdir().unwrap();
    cimrun()
        .env_remove("CIMRUN_PASSWORD")
        .args(["run", "jobs/baseline.yaml", "--progress", "never", "--out"])
        .arg(out.path())
        .assert()
        .code(0);
    let report = read_json(&out.path().join("run.json"));
    assert_eq!(report["summary"]["tasks"], 9);
    assert_eq!(report["summary"]["failed"], 0, "{report}");
}
