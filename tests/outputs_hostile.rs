//! Outputs under stress: an output directory that cannot be written, a disk that fills up in
//! the middle of a run, and computer names and remote values that try to write outside the
//! output directory.
#![cfg(feature = "testkit")]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cimrun::job::fail_if;
use cimrun::plan::{self, Selection};
use futures::future::BoxFuture;
use cimrun::protocol::{Connector, Credential, Endpoint, Error, Session};
use cimrun::run::{self, Connectors, ProgressMode, RunConfig};
use cimrun::testkit::{HostConfig, TestServer, fleet_address};
use secrecy::SecretString;
use support::{JobDef, SessionDef, Transport};

/// A tmpfs mounted on a temporary directory for the test's lifetime.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount -t tmpfs -o {options} (the tests run as root)");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn fleet(base: u16, hosts: usize) -> TestServer {
    TestServer::builder()
        .hosts((0..hosts).map(|i| {
            HostConfig::new(format!("disk{i:02}.corp.example"))
                .seed(i as u64)
                .bind(SocketAddr::new(fleet_address(base + i as u16), 0))
        }))
        .lifetime(Duration::from_secs(60))
        .start()
        .expect("server")
}

fn job_over(server: &TestServer, dir: &Path, throttle: usize) -> PathBuf {
    let sessions = (0..server.len())
        .map(|i| SessionDef { name: format!("s{i}"), host: i, transport: Transport::HttpBasic })
        .collect();
    let mut job = JobDef::new(sessions, &[("disks", "Win32_LogicalDisk"), ("services", "Win32_Service")]);
    job.throttle = throttle;
    job.operation_timeout = "5s";
    job.task_timeout = "20s";
    job.write(server, dir)
}

#[test]
fn an_output_directory_that_cannot_be_written_is_exit_3() {
    let server = fleet(3300, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job_over(&server, dir.path(), 1);
    // Root writes through permission bits, so the directory is on a read-only file system.
    let ro = Tmpfs::mount("ro,size=64k");
    for out in [ro.path().to_path_buf(), ro.path().join("new-dir")] {
        let (output, _) = support::run_bounded(support::cimrun_run(&job, &out, &[]), Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains(&out.display().to_string()), "the message names the directory: {stderr}");
        assert!(stderr.contains("Read-only file system"), "the message says why: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(server.stats(0).expect("host").connections, 0, "no host is contacted without outputs");
}

#[test]
fn a_full_disk_stops_the_run_with_exit_3_and_keeps_finished_files() {
    // How much one host's outputs take, measured on a normal directory.
    let server = fleet(3320, 6);
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job_over(&server, dir.path(), 1);
    let probe_out = dir.path().join("probe");
    {
        let one = fleet(3340, 1);
        let probe_dir = dir.path().join("probe-job");
        std::fs::create_dir_all(&probe_dir).expect("mkdir");
        let j = job_over(&one, &probe_dir, 1);
        let (output, _) = support::run_bounded(support::cimrun_run(&j, &probe_out, &[]), Duration::from_secs(20));
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let per_host: u64 = support::files_under(&probe_out)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .map(|p| p.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(per_host > 0);

    // Room for two hosts and a half: the third host's files fill the disk.
    let size_kb = (per_host * 5 / 2).div_ceil(1024);
    let fs = Tmpfs::mount(&format!("size={size_kb}k"));
    let out = fs.path().join("out");
    let (output, _) = support::run_bounded(support::cimrun_run(&job, &out, &[]), Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("No space left on device"), "the message says why: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Every file under its final name is complete; the first hosts' files are all there.
    let mut complete_hosts = 0;
    for i in 0..server.len() {
        let ip = server.addr(i).expect("host").ip().to_string();
        let mut files = 0;
        for (query, class) in [("disks", "Win32_LogicalDisk"), ("services", "Win32_Service")] {
            let file = out.join(query).join(format!("{ip}.ndjson"));
            if !file.exists() {
                continue;
            }
            files += 1;
            let mut got = support::row_keys(&support::ndjson_rows(&out, |p| out.join(p) == file), class);
            got.sort();
            let want = support::dataset_keys(server.config(i).expect("host"), class);
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{} is complete", file.display());
        }
        if files == 2 {
            complete_hosts += 1;
        }
    }
    assert!(complete_hosts >= 2, "the hosts finished before the disk filled keep their files\n{stderr}");
    assert!(complete_hosts < server.len(), "the disk did fill up\n{stderr}");
}

/// Sends every session to one test server host, whatever its computer name: the names can
/// then be anything a job file or a host list may hold.
struct Reroute {
    inner: Arc<dyn Connector>,
    targets: HashMap<String, SocketAddr>,
}

impl Connector for Reroute {
    fn open<'a>(&'a self, endpoint: &'a Endpoint) -> BoxFuture<'a, Result<Box<dyn Session>, Error>> {
        Box::pin(async move {
            let mut e = endpoint.clone();
            let name = e.computer.clone().unwrap_or_default();
            let addr = self.targets.get(&name).unwrap_or_else(|| panic!("no host for {name:?}"));
            e.computer = Some(addr.ip().to_string());
            e.port = Some(addr.port());
            self.inner.open(&e).await
        })
    }
}

/// Computer names (and so session values, and the remote's own names) that try to leave the
/// output directory or name special files.
const HOSTILE: &[&str] = &[
    "../../escape",
    "a/b/../../../c",
    "..",
    "/etc/passwd",
    "x\\..\\..\\y",
    ".hidden",
    "CON",
    "nul.txt",
    "dots...",
    "%2e%2e%2fenc",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_computer_names_and_values_stay_in_the_output_directory() {
    let server = TestServer::builder()
        .hosts(HOSTILE.iter().enumerate().map(|(i, name)| {
            // The host's own data carries the hostile name too (CSName, SystemName…).
            HostConfig::new(*name).seed(i as u64).bind(SocketAddr::new(fleet_address(3360 + i as u16), 0))
        }))
        .lifetime(Duration::from_secs(60))
        .start()
        .expect("server");
    let root = tempfile::tempdir().expect("tempdir");
    let jail = root.path().join("a").join("b").join("jail");
    let out = jail.join("out");
    std::fs::create_dir_all(&jail).expect("mkdir");
    let computers: Vec<String> = HOSTILE.iter().map(|c| format!("{c:?}").replace("\\\\", "\\")).collect();
    let yaml = format!(
        r#"version: 1
options:
  plain: {{ allow_unencrypted: true }}
credentials:
  admin: {{ username: cimrun, password: {{ env: {env} }} }}
sessions:
  - name: "..s"
    computers: [{list}]
    credential: admin
    authentication: basic
    options: plain
    port: 5985
queries:
  - name: disks
    class: Win32_LogicalDisk
  - name: os
    query: SELECT CSName, Name FROM Win32_OperatingSystem
sinks:
  - {{ type: ndjson, path: "{{{{computer}}}}.ndjson" }}
  - {{ type: json, path: "{{{{session}}}}/{{{{computer}}}}/{{{{query}}}}-{{{{class}}}}.json" }}
  - {{ type: csv, path: "{{{{query}}}}/../{{{{query}}}}.csv" }}
"#,
        env = support::PASSWORD_ENV,
        list = computers.join(", ").replace('"', "'").replace("\\'", "'")
    );
    let job_path = jail.join("job.yaml");
    std::fs::write(&job_path, &yaml).expect("write job");
    let loaded = cimrun::job::load(&job_path, &[]);
    // The csv sink's `..` is caught before anything runs.
    let Err(diags) = loaded else { panic!("a template going up with `..` is refused") };
    assert!(diags.to_string().contains(".."), "{diags}");
    let yaml = yaml.replace("{{query}}/../{{query}}.csv", "{{query}}.csv");
    std::fs::write(&job_path, &yaml).expect("write job");
    let loaded = cimrun::job::load(&job_path, &[]).unwrap_or_else(|d| panic!("{d}"));
    let plan = plan::build(&loaded, &Selection::default()).expect("plan");
    assert_eq!(plan.hosts.len(), HOSTILE.len());

    let targets = HOSTILE.iter().enumerate().map(|(i, c)| (c.to_string(), server.addr(i).expect("host"))).collect();
    let connectors = Connectors {
        local: Arc::new(cimrun::protocol::local::LocalConnector),
        wsman: Some(Arc::new(Reroute { inner: Arc::new(cimrun::protocol::wsman::transport::connector()), targets })),
        dcom: None,
    };
    let credentials = HashMap::from([(
        "admin".to_string(),
        Credential { username: "cimrun".into(), password: SecretString::from(support::PASSWORD.to_string()) },
    )]);
    let cfg = RunConfig {
        out_dir: out.clone(),
        job_name: "hostile".into(),
        run_id: run::new_run_id(),
        date: run::today(),
        started: run::now_iso(),
        sinks: loaded.file.sinks.clone(),
        throttle: 4,
        per_host_operations: 1,
        probe_timeout: None,
        retries: 0,
        task_timeout: Duration::from_secs(20),
        progress: ProgressMode::Never,
        credentials,
        fail_policy: fail_if::parse(None).expect("default policy"),
    };
    let outcome = run::execute(plan, cfg, connectors, run::cancel_pair()).await.expect("run");
    assert_eq!(outcome.exit_code, 0, "{:?}", outcome.summary);
    assert_eq!(outcome.summary.ok, HOSTILE.len() * 2);

    // Nothing outside the output directory: the jail holds only the job and `out`.
    let mut outside: Vec<PathBuf> =
        support::files_under(root.path()).into_iter().filter(|p| !p.starts_with(&out)).collect();
    outside.retain(|p| p != &job_path);
    assert!(outside.is_empty(), "files outside the output directory: {outside:?}");
    // Every file is a plain, visible name directly under `out` or one level per variable.
    let files = support::files_under(&out);
    for f in &files {
        let rel = f.strip_prefix(&out).expect("under out");
        for c in rel.components() {
            let s = c.as_os_str().to_string_lossy();
            assert!(!s.starts_with('.') && s != ".." && !s.contains('\\'), "{}", rel.display());
        }
    }
    // Every host's rows arrived in its own file, the hostile values intact inside.
    let expected_files = HOSTILE.len() * (1 + 2) + 2 + 1; // ndjson + 2 json per host, 2 csv, run.json
    assert_eq!(files.len(), expected_files, "{files:#?}");
    for (i, name) in HOSTILE.iter().enumerate() {
        let config = server.config(i).expect("host");
        let file = out.join(format!("{}.ndjson", cimrun::sink::sanitize(name)));
        let rows = support::ndjson_rows(&out, |p| out.join(p) == file);
        let disks = config.dataset().class("Win32_LogicalDisk").expect("disks").len();
        assert_eq!(rows.len(), disks + 1, "{}", file.display());
        assert!(rows.iter().all(|r| r["PSComputerName"] == serde_json::Value::String(name.to_string())));
        let os = rows.iter().find(|r| r.get("CSName").is_some()).expect("the os row");
        assert_eq!(os["CSName"], serde_json::Value::String(config.dataset().name.clone()));
    }
}
