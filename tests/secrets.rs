//! Secrets: a whole job at `RUST_LOG=trace` never shows the password (plain, base64, UTF-16,
//! hex) on stdout, stderr, in any output file or in run.json; a password file readable by
//! others is warned about once; TLS checks turned off are warned about once per session.
#![cfg(feature = "testkit")]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use cimrun::testkit::{Fault, HostConfig, TestServer, fleet_address};
use support::{JobDef, SessionDef, Transport};

/// Long and distinctive, so finding any of its forms by chance is impossible.
const SECRET: &str = "Zq9!k7#Secret-Horse-Battery-4u";

fn host(name: &str, i: u16, transport: Transport) -> HostConfig {
    let c = HostConfig::new(name).credentials("cimrun", SECRET).bind(SocketAddr::new(fleet_address(3400 + i), 0));
    match transport {
        Transport::HttpNtlm => c.allow_unencrypted(false),
        Transport::Https | Transport::HttpsSkipChecks => c.https(true),
        Transport::HttpBasic | Transport::HttpBasicNotAllowed => c,
    }
}

/// Every encoding of the secret a leak could take.
fn forms() -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let utf16: Vec<u8> = SECRET.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    vec![
        ("plain".into(), SECRET.as_bytes().to_vec()),
        ("base64".into(), b64.encode(SECRET).into_bytes()),
        ("basic token".into(), b64.encode(format!("cimrun:{SECRET}")).into_bytes()),
        ("utf-16le".into(), utf16.clone()),
        ("utf-16le base64".into(), b64.encode(&utf16).into_bytes()),
        ("hex".into(), hex(SECRET.as_bytes()).into_bytes()),
        ("utf-16le hex".into(), hex(&utf16).into_bytes()),
        ("debug bytes".into(), format!("{:?}", SECRET.as_bytes()).into_bytes()),
    ]
}

fn leaks(what: &str, haystack: &[u8]) -> Vec<String> {
    let lower = haystack.to_ascii_lowercase();
    forms()
        .into_iter()
        .filter(|(_, needle)| {
            let n = needle.to_ascii_lowercase();
            lower.windows(n.len()).any(|w| w == n.as_slice())
        })
        .map(|(form, _)| format!("{what}: {form}"))
        .collect()
}

#[test]
fn the_password_appears_nowhere_even_at_trace_level() {
    use Transport::*;
    let plan = [
        ("ntlm", HttpNtlm, None),
        ("basic", HttpBasic, None),
        ("https", Https, None),
        ("bad-ntlm", HttpNtlm, Some(Fault::WrongPassword)),
        ("bad-basic", HttpBasic, Some(Fault::WrongPassword)),
        ("basic-in-clear", HttpBasicNotAllowed, None),
    ];
    let server = TestServer::builder()
        .hosts(plan.iter().enumerate().map(|(i, (name, t, fault))| {
            let c = host(name, i as u16, *t);
            match fault {
                Some(f) => c.fault(f.clone()),
                None => c,
            }
        }))
        .lifetime(Duration::from_secs(60))
        .start()
        .expect("server");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let sessions = plan
        .iter()
        .enumerate()
        .map(|(i, (name, t, _))| SessionDef { name: name.to_string(), host: i, transport: *t })
        .collect();
    let mut job = JobDef::new(sessions, &[("os", "Win32_OperatingSystem"), ("disks", "Win32_LogicalDisk")]);
    job.sinks = vec![
        ("ndjson".into(), "{{query}}.ndjson".into()),
        ("csv".into(), "{{computer}}.csv".into()),
        ("json".into(), "all-{{query}}.json".into()),
    ];
    job.operation_timeout = "5s";
    let job_path = job.write(&server, dir.path());
    let mut cmd = support::cimrun_run(&job_path, &out, &[]);
    cmd.env(support::PASSWORD_ENV, SECRET).env("RUST_LOG", "trace");
    let (output, _) = support::run_bounded(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "the bad-password hosts fail: {}", tail(&stderr));

    // The run really happened: data from the good hosts, auth failures from the bad ones.
    let tasks = support::tasks_by_session(&out.join("run.json"));
    for ((session, query), t) in &tasks {
        let want = match session.as_str() {
            s if s.starts_with("bad-") => "auth_failed",
            // Basic over plain HTTP without allow_unencrypted is refused before connecting.
            "basic-in-clear" => "unsupported",
            _ => "ok",
        };
        assert_eq!(support::category(t), want, "{session} {query}");
    }
    assert_eq!(server.stats(5).expect("host").connections, 0, "nothing was sent to basic-in-clear");
    assert!(stderr.lines().count() > 100, "trace logging is on: {} lines", stderr.lines().count());
    assert!(stderr.contains("TRACE"), "trace lines from the dependencies too");

    let mut found = leaks("stdout", &output.stdout);
    found.extend(leaks("stderr", &output.stderr));
    let files = support::files_under(&out);
    assert!(files.len() >= 6, "{files:?}");
    for f in files {
        found.extend(leaks(&f.display().to_string(), &std::fs::read(&f).expect("read")));
    }
    assert!(found.is_empty(), "the password leaked: {found:#?}");
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.lines().filter(|l| l.contains(needle)).count()
}

/// Three hosts behind one credential read from a file.
fn run_with_password_file(dir: &Path, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::builder()
        .hosts((0..3).map(|i| host(&format!("pf{i}"), 10 + i + (mode as u16 % 7) * 3, Transport::HttpBasic)))
        .lifetime(Duration::from_secs(30))
        .start()
        .expect("server");
    let sessions = (0..3).map(|i| SessionDef { name: format!("s{i}"), host: i, transport: Transport::HttpBasic });
    let job = JobDef::new(sessions.collect(), &[("os", "Win32_OperatingSystem")]);
    let pw = dir.join("password.txt");
    std::fs::write(&pw, format!("{SECRET}\n")).expect("write");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(mode)).expect("chmod");
    let job_path = job.write(&server, dir);
    let yaml = std::fs::read_to_string(&job_path).expect("read job");
    let yaml = yaml.replace(&format!("{{ env: {} }}", support::PASSWORD_ENV), "{ file: password.txt }");
    std::fs::write(&job_path, yaml).expect("write job");
    let cmd = support::cimrun_run(&job_path, &dir.join("out"), &[]);
    let (output, _) = support::run_bounded(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    stderr
}

#[test]
fn a_password_file_readable_by_others_is_warned_about_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = run_with_password_file(dir.path(), 0o644);
    assert_eq!(count(&stderr, "readable by group or others"), 1, "{stderr}");
    assert!(stderr.contains("password.txt") && stderr.contains("644"), "{stderr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = run_with_password_file(dir.path(), 0o600);
    assert_eq!(count(&stderr, "readable by group or others"), 0, "{stderr}");
}

#[test]
fn skipped_certificate_checks_are_warned_about_once_per_session() {
    use Transport::*;
    // skip-b has two computers on one port: a free port of the second address serves both.
    let port = std::net::TcpListener::bind(SocketAddr::new(fleet_address(3422), 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let server = TestServer::builder()
        .hosts((0..4u16).map(|i| {
            let t = if i < 3 { HttpsSkipChecks } else { Https };
            let c = host(&format!("tls{i}"), 20 + i, t).fault(Fault::WrongCertificateName);
            if i == 1 || i == 2 { c.bind(SocketAddr::new(fleet_address(3420 + i), port)) } else { c }
        }))
        .lifetime(Duration::from_secs(30))
        .start()
        .expect("server");
    let dir = tempfile::tempdir().expect("tempdir");
    let sessions = vec![
        SessionDef { name: "skip-a".into(), host: 0, transport: HttpsSkipChecks },
        SessionDef { name: "skip-b".into(), host: 1, transport: HttpsSkipChecks },
        SessionDef { name: "checked".into(), host: 3, transport: Https },
    ];
    let job = JobDef::new(sessions, &[("os", "Win32_OperatingSystem"), ("disks", "Win32_LogicalDisk")]);
    let job_path = job.write(&server, dir.path());
    let ip = |i: usize| server.addr(i).expect("host").ip().to_string();
    let yaml = std::fs::read_to_string(&job_path).expect("job").replace(
        &format!("computers: [\"{}\"]", ip(1)),
        &format!("computers: [\"{}\", \"{}\"]", ip(1), ip(2)),
    );
    std::fs::write(&job_path, yaml).expect("job");
    let mut cmd = support::cimrun_run(&job_path, &dir.path().join("out"), &[]);
    cmd.env(support::PASSWORD_ENV, SECRET);
    let (output, _) = support::run_bounded(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "the checked session fails on the wrong name: {stderr}");
    let tasks = support::tasks_by_session(&dir.path().join("out").join("run.json"));
    assert_eq!(support::category(&tasks[&("checked".into(), "os".into())]), "tls_failure");
    assert_eq!(support::category(&tasks[&("skip-a".into(), "os".into())]), "ok");
    assert_eq!(support::category(&tasks[&("skip-b".into(), "os".into())]), "ok");
    let (all, _) = cimrun::report::read(&dir.path().join("out").join("run.json")).expect("run.json");
    let skip_b: Vec<_> = all.iter().filter(|t| t.session == "skip-b").collect();
    assert_eq!(skip_b.len(), 4, "skip-b ran on both its computers");
    assert!(skip_b.iter().all(|t| support::category(t) == "ok"), "{skip_b:?}");
    for s in ["skip-a", "skip-b"] {
        let field = format!("session={s}");
        let warnings = stderr
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("certificate checks are off") && l.split_whitespace().any(|w| w == field));
        assert_eq!(warnings.count(), 1, "{s}: one warning\n{stderr}");
    }
    assert_eq!(count(&stderr, "certificate checks are off"), 2, "none for the checked session: {stderr}");
}
