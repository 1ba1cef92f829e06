//! Snapshots of what users and scripts read: the plan listing, error reports, the run report.
//! Timestamps, run ids and durations are filtered; everything else must match exactly.

use assert_cmd::Command;

fn cimrun() -> Command {
    let mut c = Command::cargo_bin("cimrun").unwrap();
    c.env_remove("RUST_LOG").env("NO_COLOR", "1");
    c
}

#[test]
fn plan_of_the_example_fleet() {
    let out = cimrun().args(["plan", "jobs/example-fleet.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("plan_example_fleet", String::from_utf8(out.stdout).unwrap());
    insta::assert_snapshot!("plan_example_fleet_stderr", String::from_utf8(out.stderr).unwrap());
}

#[test]
fn every_error_of_a_job_file_is_reported_with_its_position() {
    let out = cimrun().args(["validate", "tests/data/jobs/bad/multi-error.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("validate_multi_error", String::from_utf8(out.stderr).unwrap());
}

#[test]
fn run_report_of_a_failing_query() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "version: 1\nsessions:\n  - name: local\nqueries:\n  - name: os\n    class: Win32_OperatingSystem\n    properties: [Caption]\n  - name: nope\n    class: Win32_NoSuchClass\n  - name: elsewhere\n    class: Win32_OperatingSystem\n    namespace: root/nowhere\n",
    )
    .unwrap();
    let out = cimrun().args(["run", "--progress", "never", "--out"]).arg(dir.path().join("out")).arg(&job).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = std::fs::read_to_string(dir.path().join("out/run.json")).unwrap();
    insta::with_settings!({filters => vec![
        (r#""(started|finished)": ?"[^"]+""#, r#""$1": "[time]""#),
        (r#""run_id": ?"[^"]+""#, r#""run_id": "[run id]""#),
        (r#""duration_ms": ?\d+"#, r#""duration_ms": 0"#),
        (r#""job": ?"[^"]+""#, r#""job": "[job]""#),
        (r#""cimrun": ?"[^"]+""#, r#""cimrun": "[version]""#),
    ]}, {
        insta::assert_snapshot!("run_report_failing_query", report);
    });
}
