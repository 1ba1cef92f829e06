//! SinkSet: files appear only when complete, paths stay inside the output directory,
//! per-computer files are completed and continued correctly, and a failing file does not
//! take the others down.

use std::fs;
use std::path::{Path, PathBuf};

use cimrun::cim::{Instance, Value};
use cimrun::job::{SinkKind, SinkSpec};
use cimrun::sink::{RowContext, RunVars, SinkError, SinkSet};

fn spec(kind: SinkKind, path: &str) -> SinkSpec {
    SinkSpec { kind, path: path.to_string(), array_separator: None }
}

fn vars() -> RunVars {
    RunVars { run_id: "r42".into(), date: "2026-11-21".into() }
}

fn row<'a>(session: &'a str, computer: &'a str, props: &'a [String]) -> RowContext<'a> {
    RowContext { session, computer, query: "disks", class: "Win32_LogicalDisk", properties: props }
}

fn disk(id: &str, size: u64) -> Instance {
    Instance::new("Win32_LogicalDisk").with("DeviceID", Value::String(id.into())).with("Size", Value::UInt64(size))
}

/// Every file below `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p).unwrap()
}

#[test]
fn files_appear_only_when_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let specs = [spec(SinkKind::Csv, "{{query}}.csv"), spec(SinkKind::Json, "{{date}}/{{query}}.json")];
    let mut set = SinkSet::new(&specs, &out, vars()).unwrap();
    set.write(&row("s", "h1", &[]), &disk("C:", 10)).unwrap();
    set.write(&row("s", "h2", &[]), &disk("D:", 20)).unwrap();
    set.task_done("s", "h1").unwrap();
    assert_eq!(tree(&out), [".disks.csv.tmp-r42", "2026-11-21/.disks.json.tmp-r42"], "nothing final yet");

    let written = set.finish().unwrap();
    assert_eq!(written, [out.join("2026-11-21/disks.json"), out.join("disks.csv")]);
    assert_eq!(tree(&out), ["2026-11-21/disks.json", "disks.csv"], "no temporary file left");
    assert_eq!(read(out.join("disks.csv")), "PSComputerName,DeviceID,Size\r\nh1,C:,10\r\nh2,D:,20\r\n");
    let json: serde_json::Value = serde_json::from_str(&read(out.join("2026-11-21/disks.json"))).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"PSComputerName": "h1", "DeviceID": "C:", "Size": 10},
            {"PSComputerName": "h2", "DeviceID": "D:", "Size": 20}
        ])
    );
}

#[test]
fn no_sinks_means_one_csv_per_query() {
    let tmp = tempfile::tempdir().unwrap();
    let mut set = SinkSet::new(&[], tmp.path(), vars()).unwrap();
    set.write(&row("s", "h", &[]), &disk("C:", 1)).unwrap();
    assert_eq!(set.finish().unwrap(), [tmp.path().join("disks.csv")]);
}

#[test]
fn per_computer_files_complete_at_task_done_once_every_session_is_done() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = [spec(SinkKind::Ndjson, "hosts/{{computer}}.ndjson")];
    let mut set = SinkSet::new(&specs, tmp.path(), vars()).unwrap();
    set.write(&row("a", "h1", &[]), &disk("C:", 1)).unwrap();
    set.write(&row("b", "h1", &[]), &disk("E:", 3)).unwrap();
    set.write(&row("a", "h2", &[]), &disk("D:", 2)).unwrap();
    set.task_done("a", "h1").unwrap();
    assert!(!tmp.path().join("hosts/h1.ndjson").exists(), "session b still writes h1");
    set.task_done("b", "h1").unwrap();
    assert_eq!(read(tmp.path().join("hosts/h1.ndjson")).lines().count(), 2);
    assert!(!tmp.path().join("hosts/h2.ndjson").exists());
    set.task_done("b", "h2").unwrap();
    assert!(!tmp.path().join("hosts/h2.ndjson").exists(), "only session a wrote h2");
    set.task_done("a", "h2").unwrap();
    assert!(tmp.path().join("hosts/h2.ndjson").exists());
    assert_eq!(set.finish().unwrap().len(), 2);
    assert_eq!(tree(tmp.path()), ["hosts/h1.ndjson", "hosts/h2.ndjson"]);
}

#[test]
fn a_completed_file_is_continued_when_its_computer_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = [
        spec(SinkKind::Csv, "{{computer}}.csv"),
        spec(SinkKind::Json, "{{computer}}.json"),
        spec(SinkKind::Ndjson, "{{computer}}.ndjson"),
    ];
    let mut set = SinkSet::new(&specs, tmp.path(), vars()).unwrap();
    set.write(&row("first", "h1", &[]), &disk("C:", 1)).unwrap();
    set.write(&row("first", "h1", &[]), &disk("D:", 2)).unwrap();
    set.task_done("first", "h1").unwrap();
    let csv_before = read(tmp.path().join("h1.csv"));
    let json_before = read(tmp.path().join("h1.json"));

    // Another session, its properties in another order and one extra that has no column.
    let later = Instance::new("Win32_LogicalDisk")
        .with("Size", Value::UInt64(3))
        .with("Extra", Value::Bool(true))
        .with("DeviceID", Value::String("E:".into()));
    set.write(&row("second", "h1", &[]), &later).unwrap();
    // Until it completes again, the finished files stay as they were: an interrupted run
    // leaves the earlier complete version, never a half-continued one.
    assert_eq!(read(tmp.path().join("h1.csv")), csv_before);
    assert_eq!(read(tmp.path().join("h1.json")), json_before);
    set.task_done("second", "h1").unwrap();

    assert_eq!(read(tmp.path().join("h1.csv")), "PSComputerName,DeviceID,Size\r\nh1,C:,1\r\nh1,D:,2\r\nh1,E:,3\r\n");
    let json: Vec<serde_json::Value> = serde_json::from_str(&read(tmp.path().join("h1.json"))).unwrap();
    let ids: Vec<&str> = json.iter().map(|o| o["DeviceID"].as_str().unwrap()).collect();
    assert_eq!(ids, ["C:", "D:", "E:"]);
    assert_eq!(json[2]["Extra"], true, "JSON keeps every property");
    let nd = read(tmp.path().join("h1.ndjson"));
    assert_eq!(nd.lines().count(), 3);
    for line in nd.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    set.finish().unwrap();
    assert_eq!(tree(tmp.path()), ["h1.csv", "h1.json", "h1.ndjson"]);
}

#[test]
fn a_file_left_by_an_earlier_run_is_replaced_not_continued() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("h1.csv"), "old,content\r\n").unwrap();
    let mut set = SinkSet::new(&[spec(SinkKind::Csv, "{{computer}}.csv")], tmp.path(), vars()).unwrap();
    set.write(&row("s", "h1", &[]), &disk("C:", 1)).unwrap();
    set.task_done("s", "h1").unwrap();
    set.finish().unwrap();
    assert_eq!(read(tmp.path().join("h1.csv")), "PSComputerName,DeviceID,Size\r\nh1,C:,1\r\n");
}

#[test]
fn csv_rows_keep_the_column_count_of_the_query_property_list() {
    let tmp = tempfile::tempdir().unwrap();
    let props = vec!["Size".to_string(), "VolumeName".into()];
    let mut set = SinkSet::new(&[spec(SinkKind::Csv, "{{class}}.csv")], tmp.path(), vars()).unwrap();
    set.write(&row("s", "h1", &props), &disk("C:", 1)).unwrap();
    set.write(&row("s", "h2", &[]), &Instance::new("X").with("Other", Value::UInt8(1))).unwrap();
    set.finish().unwrap();
    let text = read(tmp.path().join("Win32_LogicalDisk.csv"));
    assert_eq!(text, "PSComputerName,Size,VolumeName\r\nh1,1,\r\nh2,,\r\n");
}

#[test]
fn hostile_computer_names_stay_inside_the_output_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("a/b/out");
    let specs = [spec(SinkKind::Ndjson, "{{computer}}/{{query}}.ndjson"), spec(SinkKind::Csv, "{{computer}}.csv")];
    let mut set = SinkSet::new(&specs, &out, vars()).unwrap();
    let long = "x".repeat(5000);
    let hostile =
        ["../../etc/passwd", "C:\\x", "a/b", "..", ".", "nul\0byte", "/abs", "~root", &long, "\u{202e}rtl", ""];
    for h in hostile {
        set.write(&row("s", h, &[]), &disk("C:", 1)).unwrap();
        set.task_done("s", h).unwrap();
    }
    let written = set.finish().unwrap();
    // `.` and the empty name both become `_` and share (continue) one file.
    assert_eq!(written.len(), (hostile.len() - 1) * 2);
    assert_eq!(read(out.join("_.csv")).lines().count(), 3);
    for p in &written {
        assert!(p.starts_with(&out), "{p:?}");
        let rel = p.strip_prefix(&out).unwrap();
        assert!(rel.components().all(|c| matches!(c, std::path::Component::Normal(_))), "{rel:?}");
    }
    assert_eq!(tree(tmp.path()).iter().filter(|p| !p.starts_with("a/b/out/")).count(), 0);
    // Each file holds the real computer name.
    let passwd = read(out.join("______etc_passwd.csv"));
    assert!(passwd.contains("../../etc/passwd,C:,1"), "{passwd}");
}

#[test]
fn templates_that_escape_are_refused_before_any_write() {
    let tmp = tempfile::tempdir().unwrap();
    for t in ["../{{query}}.csv", "/tmp/{{query}}.csv", "{{query}}/../../x.csv", "{{query}}/"] {
        let err = SinkSet::new(&[spec(SinkKind::Csv, t)], tmp.path(), vars()).err();
        assert!(matches!(err, Some(SinkError::PathEscapes { .. })), "{t}: {err:?}");
    }
    let err = SinkSet::new(&[spec(SinkKind::Csv, "{{hostname}}.csv")], tmp.path(), vars()).err();
    assert!(matches!(err, Some(SinkError::Template { .. })), "{err:?}");
    // The same checks without an output directory, for `cimrun validate`.
    let err = SinkSet::check_templates(&[spec(SinkKind::Csv, "{{query}}.csv"), spec(SinkKind::Json, "../x")]).err();
    assert!(matches!(err, Some(SinkError::PathEscapes { .. })), "{err:?}");
    let ok = [spec(SinkKind::Csv, "{{date}}/{{session}}/{{computer}}-{{class}}-{{query}}-{{run_id}}.csv")];
    assert!(SinkSet::check_templates(&ok).is_ok());
    assert_eq!(tree(tmp.path()), Vec::<String>::new(), "nothing was created");
}

#[test]
fn a_symlink_in_the_output_directory_does_not_lead_writes_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, outside) = (tmp.path().join("out"), tmp.path().join("outside"));
    fs::create_dir_all(&out).unwrap();
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
    let specs = [spec(SinkKind::Csv, "link/{{query}}.csv"), spec(SinkKind::Csv, "ok/{{query}}.csv")];
    let mut set = SinkSet::new(&specs, &out, vars()).unwrap();
    let err = set.write(&row("s", "h", &[]), &disk("C:", 1)).unwrap_err();
    assert!(matches!(err, SinkError::PathEscapes { .. }), "{err:?}");
    assert_eq!(set.finish().unwrap(), [out.join("ok/disks.csv")], "the other sink still got the row");
    assert!(tree(&outside).is_empty());
}

#[test]
fn two_sinks_rendering_one_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = [spec(SinkKind::Csv, "{{query}}.out"), spec(SinkKind::Json, "{{query}}.out")];
    let mut set = SinkSet::new(&specs, tmp.path(), vars()).unwrap();
    let err = set.write(&row("s", "h", &[]), &disk("C:", 1)).unwrap_err();
    assert!(matches!(err, SinkError::SharedPath { .. }), "{err:?}");
    assert_eq!(set.finish().unwrap(), [tmp.path().join("disks.out")]);
}

#[test]
fn an_unwritable_output_directory_fails_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("file"), "").unwrap();
    let err = SinkSet::new(&[], &tmp.path().join("file/out"), vars()).err().unwrap();
    assert!(err.is_io(), "{err:?}");
    assert!(err.to_string().contains("file/out"), "{err}");
}

#[test]
fn an_io_error_on_one_file_leaves_the_others_complete() {
    let tmp = tempfile::tempdir().unwrap();
    // A file where a directory should be: creating the sink's directory fails, as root too.
    fs::write(tmp.path().join("blocked"), "").unwrap();
    let specs = [spec(SinkKind::Csv, "blocked/{{query}}.csv"), spec(SinkKind::Json, "{{query}}.json")];
    let mut set = SinkSet::new(&specs, tmp.path(), vars()).unwrap();
    let err = set.write(&row("s", "h", &[]), &disk("C:", 1)).unwrap_err();
    assert!(err.is_io() && err.path() == Some(&tmp.path().join("blocked")), "{err:?}");
    let err = set.write(&row("s", "h", &[]), &disk("D:", 2)).unwrap_err();
    assert!(err.is_io(), "{err:?}");
    let written = set.finish().unwrap();
    assert_eq!(written, [tmp.path().join("disks.json")]);
    let json: Vec<serde_json::Value> = serde_json::from_str(&read(&written[0])).unwrap();
    assert_eq!(json.len(), 2, "nothing already written is lost");
}

/// A file that hits the file-size limit mid-run (as on a full disk) fails alone: it is never
/// renamed into place, its partial content stays in the temporary file, and the other sink's
/// file completes. Runs in a child process because the limit applies to the whole process.
#[test]
fn a_file_that_fills_up_fails_alone() {
    const CHILD: &str = "CIMRUN_SINK_TEST_FSIZE_DIR";
    if let Some(dir) = std::env::var_os(CHILD) {
        return fill_up_in_child(Path::new(&dir));
    }
    let tmp = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_file_that_fills_up_fails_alone", "--nocapture", "--test-threads=1"])
        .env(CHILD, tmp.path())
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&child.stdout) + String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "{logs}");
    assert!(logs.contains("1 passed"), "the child ran the scenario: {logs}");
    let files = tree(tmp.path());
    assert_eq!(files, [".big.csv.tmp-r42", "small.csv"], "the failed file is not renamed");
    assert_eq!(read(tmp.path().join("small.csv")).lines().count(), 1 + 200);
    let partial = read(tmp.path().join(".big.csv.tmp-r42"));
    assert!(partial.len() >= 32 * 1024 && partial.lines().count() > 1, "the partial content is kept");
}

fn fill_up_in_child(dir: &Path) {
    // SAFETY: plain libc calls on this process's own limits and signal disposition.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit { rlim_cur: 64 * 1024, rlim_max: libc::RLIM_INFINITY };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let specs = [spec(SinkKind::Csv, "{{query}}.csv")];
    let mut set = SinkSet::new(&specs, dir, vars()).unwrap();
    let big = Instance::new("C").with("Blob", Value::String("z".repeat(1000).into()));
    let mut errors: Vec<SinkError> = Vec::new();
    for i in 0..200 {
        let r = RowContext { session: "s", computer: "h", query: "big", class: "C", properties: &[] };
        if let Err(e) = set.write(&r, &big) {
            errors.push(e);
        }
        let small = Instance::new("C").with("N", Value::UInt32(i));
        set.write(&RowContext { query: "small", ..r }, &small).unwrap();
    }
    let first = errors.first().expect("the big file must fail");
    assert!(first.is_io(), "{first:?}");
    assert!(matches!(errors.last(), Some(SinkError::Failed { .. })), "later rows are refused quickly");
    let written: Vec<PathBuf> = set.finish().unwrap();
    assert_eq!(written, [dir.join("small.csv")]);
}

#[test]
fn durable_mode_writes_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut set = SinkSet::new(&[spec(SinkKind::Ndjson, "{{computer}}/{{query}}.ndjson")], tmp.path(), vars()).unwrap();
    set.set_durable(true);
    set.write(&row("s", "h1", &[]), &disk("C:", 1)).unwrap();
    set.task_done("s", "h1").unwrap();
    assert_eq!(tree(tmp.path()), ["h1/disks.ndjson"]);
    assert_eq!(
        read(tmp.path().join("h1/disks.ndjson")),
        "{\"PSComputerName\":\"h1\",\"DeviceID\":\"C:\",\"Size\":1}\n"
    );
    assert_eq!(set.finish().unwrap(), [tmp.path().join("h1/disks.ndjson")]);
}

#[test]
fn a_sink_set_can_move_between_threads() {
    // With more than one runtime worker, pages are written on whichever worker parsed them.
    fn send<T: Send>(_: &T) {}
    let tmp = tempfile::tempdir().unwrap();
    let set = SinkSet::new(&[], tmp.path(), vars()).unwrap();
    send(&set);
    let handle = std::thread::spawn(move || {
        let mut set = set;
        set.write(&row("s", "h", &[]), &disk("C:", 1)).unwrap();
        set.finish().unwrap()
    });
    assert_eq!(handle.join().unwrap(), [tmp.path().join("disks.csv")]);
}

#[test]
fn a_rerun_can_continue_the_files_of_an_earlier_run() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = [spec(SinkKind::Csv, "{{query}}.csv"), spec(SinkKind::Json, "{{query}}.json")];
    let mut first = SinkSet::new(&specs, tmp.path(), vars()).unwrap();
    first.write(&row("s", "h1", &[]), &disk("C:", 1)).unwrap();
    first.finish().unwrap();

    let rerun = RunVars { run_id: "r43".into(), date: "2026-11-22".into() };
    let mut second = SinkSet::new(&specs, tmp.path(), rerun).unwrap();
    second.set_continue_existing(true);
    second.write(&row("s", "h2", &[]), &disk("D:", 2)).unwrap();
    second.finish().unwrap();
    assert_eq!(read(tmp.path().join("disks.csv")), "PSComputerName,DeviceID,Size\r\nh1,C:,1\r\nh2,D:,2\r\n");
    let json: Vec<serde_json::Value> = serde_json::from_str(&read(tmp.path().join("disks.json"))).unwrap();
    assert_eq!(json.len(), 2);

    // A file this program did not write is refused, and left as it was.
    fs::write(tmp.path().join("disks.json"), "{\"not\": \"an array\"}").unwrap();
    let mut third = SinkSet::new(&specs, tmp.path(), vars()).unwrap();
    third.set_continue_existing(true);
    let err = third.write(&row("s", "h3", &[]), &disk("E:", 3)).unwrap_err();
    assert!(matches!(err, SinkError::Io { op: cimrun::sink::Operation::Reopen, .. }), "{err:?}");
    third.finish().unwrap();
    assert_eq!(read(tmp.path().join("disks.json")), "{\"not\": \"an array\"}");
    assert_eq!(read(tmp.path().join("disks.csv")).lines().count(), 4);
    assert_eq!(tree(tmp.path()), ["disks.csv", "disks.json"], "the refused reopen left no temporary file");
}

/// A process killed mid-run leaves every file under a final name complete: per-computer
/// files completed before the kill parse in full, the rest are only temporary files.
#[test]
fn a_killed_run_leaves_no_truncated_final_file() {
    const CHILD: &str = "CIMRUN_SINK_TEST_KILL_DIR";
    const ROWS: usize = 40;
    if let Some(dir) = std::env::var_os(CHILD) {
        let specs = [spec(SinkKind::Json, "{{computer}}.json"), spec(SinkKind::Csv, "{{computer}}.csv")];
        let mut set = SinkSet::new(&specs, Path::new(&dir), vars()).unwrap();
        let started = std::time::Instant::now();
        // Bounded: the parent kills it long before.
        for h in 0.. {
            if started.elapsed() > std::time::Duration::from_secs(20) {
                break;
            }
            let computer = format!("h{h:06}");
            for i in 0..ROWS {
                set.write(&row("s", &computer, &[]), &disk(&format!("{i}:"), i as u64)).unwrap();
            }
            set.task_done("s", &computer).unwrap();
        }
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_killed_run_leaves_no_truncated_final_file", "--test-threads=1"])
        .env(CHILD, tmp.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while tree(tmp.path()).iter().filter(|f| !f.starts_with('.')).count() < 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let files = tree(tmp.path());
    let finals: Vec<&String> = files.iter().filter(|f| !f.starts_with('.')).collect();
    assert!(finals.len() >= 20, "the child completed files before the kill: {files:?}");
    for f in finals {
        let text = read(tmp.path().join(f));
        if f.ends_with(".json") {
            let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(rows.len(), ROWS, "{f}");
        } else {
            assert_eq!(text.lines().count(), ROWS + 1, "{f}");
            assert!(text.ends_with("\r\n"), "{f}");
        }
    }
}

/// Pages of several hosts and queries arrive interleaved; each page's rows reach the file its
/// template names, whether the template is plain variables or uses a helper.
#[test]
fn interleaved_pages_reach_their_files() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = [
        spec(SinkKind::Ndjson, "{{query}}.ndjson"),
        spec(SinkKind::Csv, "{{#if session}}{{computer}}{{/if}}/{{class}}.csv"),
    ];
    let mut set = SinkSet::new(&specs, tmp.path(), vars()).unwrap();
    let mut expected: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for round in 0..3u64 {
        for computer in ["h1", "h2"] {
            for (query, class) in [("disks", "Win32_LogicalDisk"), ("vols", "Win32_Volume")] {
                let r = RowContext { session: "s", computer, query, class, properties: &[] };
                let page: Vec<Instance> = (0..2).map(|i| disk(&format!("{computer}-{query}-{round}-{i}"), i)).collect();
                set.write_rows(&r, &page).unwrap();
                for i in 0..2 {
                    let id = format!("{computer}-{query}-{round}-{i}");
                    expected.entry(format!("{query}.ndjson")).or_default().push(id.clone());
                    expected.entry(format!("{computer}/{class}.csv")).or_default().push(id);
                }
            }
        }
    }
    set.finish().unwrap();
    assert_eq!(tree(tmp.path()), expected.keys().cloned().collect::<Vec<_>>());
    for (file, ids) in expected {
        let text = read(tmp.path().join(&file));
        let found: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| text.contains(&format!("{id}\"")) || text.contains(&format!(",{id},")))
            .collect();
        assert_eq!(found.len(), ids.len(), "{file}: {text}");
        let rows = text.lines().count() - usize::from(file.ends_with(".csv"));
        assert_eq!(rows, ids.len(), "{file}: {text}");
    }
}
