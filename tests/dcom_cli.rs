//! `cimrun run` with `protocol: dcom` against the DCOM/WMI emulator (impacket-based):
//! the job file, the scheduler, the DCOM session and the sinks together.

mod dcom_emulator;
#[allow(dead_code)]
mod dcom_peer;

use assert_cmd::Command;
use dcom_emulator::{Emulator, PASSWORD, USER};

fn job(port: u16, password_env: &str) -> String {
    format!(
        "version: 1
options:
  legacy:
    protocol: dcom
    packet_privacy: true
credentials:
  lab:
    username: '{USER}'
    password: {{ env: {password_env} }}
sessions:
  - name: dcom
    computers: [127.0.0.1]
    port: {port}
    credential: lab
    options: legacy
    connect_timeout: 3s
    operation_timeout: 5s
queries:
  - name: utc
    class: Win32_UTCTime
    properties: [Hour, Minute, Second]
sinks:
  - type: csv
    path: '{{{{query}}}}.csv'
run:
  retries: 0
"
    )
}

#[test]
fn a_dcom_job_runs_end_to_end() {
    let emu = Emulator::start(&["--rows", "700"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.yaml");
    std::fs::write(&path, job(emu.activation_port, "CIMRUN_TEST_DCOM_PW")).unwrap();
    Command::cargo_bin("cimrun")
        .unwrap()
        .env("CIMRUN_TEST_DCOM_PW", PASSWORD)
        .args(["run", "--progress", "never", "--out"])
        .arg(dir.path().join("out"))
        .arg(&path)
        .assert()
        .code(0);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/run.json")).unwrap()).unwrap();
    let task = &report["tasks"][0];
    assert_eq!(task["status"], "ok", "{task}");
    assert_eq!(task["protocol"], "dcom");
    assert_eq!(task["rows"], 700);
    let csv = std::fs::read_to_string(dir.path().join("out/utc.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("PSComputerName,Hour,Minute,Second"));
    assert_eq!(lines.count(), 700);
    // Packet privacy, every object released, no bad signature, as the emulator saw it.
    let object = &emu.connections()[1];
    assert_eq!(object["level"].as_u64(), Some(6));
    assert_eq!(object["bad_signatures"].as_u64(), Some(0));
    assert_eq!(object["live_objects"].as_u64(), Some(0));
}

#[test]
fn a_wrong_dcom_password_is_an_auth_failure_in_the_report() {
    let emu = Emulator::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.yaml");
    std::fs::write(&path, job(emu.activation_port, "CIMRUN_TEST_DCOM_PW")).unwrap();
    let started = std::time::Instant::now();
    Command::cargo_bin("cimrun")
        .unwrap()
        .env("CIMRUN_TEST_DCOM_PW", "not-the-password")
        .args(["run", "--progress", "never", "--out"])
        .arg(dir.path().join("out"))
        .arg(&path)
        .assert()
        .code(1);
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "fails fast, not a hang");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/run.json")).unwrap()).unwrap();
    let cat = report["tasks"][0]["category"].as_str().unwrap().to_string();
    assert!(cat == "auth_failed" || cat == "access_denied", "{}", report["tasks"][0]);
}
