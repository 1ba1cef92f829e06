//! End to end through the real command line: `cimrun run JOB` against WS-Man endpoints.
//!
//! Two kinds of peer: the testkit server (NTLM with message encryption over HTTP, Basic and
//! client certificates over HTTPS, DMTF resource URIs), whose answers are compared row by row
//! with the dataset it serves; and the pyspnego-based endpoint (tests/peers/winrm_ntlm_endpoint.py),
//! which shares no code with cimrun and answers with recorded Windows pages.
//!
//! The Python peer needs `$CIMRUN_PYTHON`, else `.venv/bin/python` in the crate root, with
//! pyspnego and pypsrp. These tests fail, not skip, when it is missing.
#![cfg(feature = "testkit")]

mod support;
use support::python;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use cimrun::cim::Instance;
use cimrun::sink::NdjsonWriter;
use cimrun::testkit::{HostConfig, TestServer};
use serde_json::Value as Json;

const PASSWORD_VAR: &str = "CIMRUN_E2E_PASSWORD";

fn cimrun() -> Command {
    let mut c = Command::cargo_bin("cimrun").unwrap();
    c.env_remove("RUST_LOG").env("NO_COLOR", "1").env("NO_PROXY", "*").timeout(Duration::from_secs(90));
    c
}

fn read_json(p: &Path) -> Json {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The queries every testkit job runs: several classes whose instances need several Pulls.
const CLASSES: &[&str] = &["Win32_Service", "Win32_Process", "Win32_LogicalDisk", "Win32_OperatingSystem"];

/// One session on `127.0.0.1:port`, one ndjson file per query.
struct Job {
    options: String,
    authentication: &'static str,
    username: String,
    queries: String,
    credential: bool,
}

impl Job {
    fn new(options: &str, authentication: &'static str, username: &str) -> Job {
        let queries = CLASSES.iter().map(|c| format!("  - name: {c}\n    class: {c}\n")).collect();
        Job { options: options.to_string(), authentication, username: username.to_string(), queries, credential: true }
    }

    fn without_credential(mut self) -> Job {
        self.credential = false;
        self
    }

    fn queries(mut self, queries: &str) -> Job {
        self.queries = queries.to_string();
        self
    }

    fn yaml(&self, port: u16) -> String {
        let yaml = format!(
            "version: 1\n\
             options:\n  lab:\n{options}\
             credentials:\n  admin:\n    username: '{user}'\n    password: {{ env: {PASSWORD_VAR} }}\n\
             sessions:\n  - name: lab\n    computers: [127.0.0.1]\n    port: {port}\n    credential: admin\n    \
             authentication: {auth}\n    options: lab\n    operation_timeout: 10s\n    connect_timeout: 5s\n\
             queries:\n{queries}\
             sinks:\n  - type: ndjson\n    path: \"{{{{query}}}}.ndjson\"\n\
             run:\n  retries: 0\n",
            options = self.options,
            user = self.username,
            auth = self.authentication,
            queries = self.queries,
        );
        if self.credential { yaml } else { yaml.replace("    credential: admin\n", "") }
    }

    /// Runs `cimrun run` with the password; returns the output directory and the exit code.
    fn run(&self, port: u16, password: &str) -> (tempfile::TempDir, i32) {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job.yaml");
        std::fs::write(&job, self.yaml(port)).unwrap();
        let out = dir.path().join("out");
        let output = cimrun()
            .args(["run", "--progress", "never", "--out"])
            .arg(&out)
            .arg(&job)
            .env(PASSWORD_VAR, password)
            .output()
            .unwrap();
        let code = output.status.code().unwrap_or(-1);
        if !out.join("run.json").exists() {
            panic!("no run.json (exit {code}):\n{}", String::from_utf8_lossy(&output.stderr));
        }
        (dir, code)
    }
}

fn tasks(dir: &Path) -> Vec<Json> {
    read_json(&dir.join("out/run.json"))["tasks"].as_array().cloned().unwrap_or_default()
}

/// The rows a query must produce: the dataset's instances as the ndjson sink writes them.
fn expected_rows(instances: &[Instance], computer: &str) -> Vec<Json> {
    let mut writer = NdjsonWriter::new(Vec::new(), &[]);
    for i in instances {
        writer.write_row(computer, i).unwrap();
    }
    let bytes = writer.finish().unwrap();
    String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn written_rows(dir: &Path, query: &str) -> Vec<Json> {
    let path = dir.join("out").join(format!("{query}.ndjson"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn assert_same_rows(dir: &Path, query: &str, want: Vec<Json>) {
    let got = written_rows(dir, query);
    assert_eq!(got.len(), want.len(), "{query}: row count");
    for (n, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{query}: row {n} differs");
    }
}

/// Every query's file holds exactly the dataset's instances of its class, row for row.
fn assert_rows_match_dataset(dir: &Path, server: &TestServer) {
    let host = server.config(0).unwrap().dataset();
    let tasks = tasks(dir);
    assert_eq!(tasks.len(), CLASSES.len());
    for t in &tasks {
        assert_eq!(t["status"], "ok", "{t}");
    }
    for class in CLASSES {
        assert_same_rows(dir, class, expected_rows(host.class(class).unwrap(), "127.0.0.1"));
    }
}

/// A host with small pages, so every class of any size takes several Pulls.
fn host(name: &str) -> HostConfig {
    HostConfig::new(name).seed(7).max_page(9)
}

#[test]
fn ntlm_with_message_encryption_over_http() {
    // WinRM's defaults: AllowUnencrypted=false, Basic off; only sealed bodies are accepted.
    let server = TestServer::builder()
        .host(host("app01").allow_unencrypted(false).basic(false))
        .lifetime(Duration::from_secs(90))
        .start()
        .unwrap();
    let config = server.config(0).unwrap().clone();
    let port = server.addr(0).unwrap().port();
    let (dir, code) = Job::new("    protocol: wsman\n", "ntlm", &config.username).run(port, &config.password);
    assert_eq!(code, 0);
    assert_rows_match_dataset(dir.path(), &server);
    let stats = server.stats(0).unwrap();
    let operations: u64 = stats.requests.values().sum();
    assert_eq!(stats.sealed_requests, operations, "every request sealed: {stats:?}");
    assert!(stats.count("Pull") >= 20, "{stats:?}");
    assert_eq!((stats.open_contexts, stats.spnego_logons), (0, 0));

    // PowerShell's default, Negotiate: the same rows through NTLM inside SPNEGO.
    let (dir, code) = Job::new("    protocol: wsman\n", "default", &config.username).run(port, &config.password);
    assert_eq!(code, 0);
    assert_rows_match_dataset(dir.path(), &server);
    let stats = server.stats(0).unwrap();
    assert_eq!(stats.sealed_requests, stats.requests.values().sum::<u64>(), "{stats:?}");
    assert_eq!((stats.open_contexts, stats.spnego_logons), (0, 1));
}

#[test]
fn basic_over_https_with_the_test_ca() {
    let server = TestServer::builder()
        .host(host("app02.corp.example").https(true).allow_unencrypted(false).negotiate(false))
        .lifetime(Duration::from_secs(90))
        .start()
        .unwrap();
    let config = server.config(0).unwrap().clone();
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), server.ca_pem().unwrap()).unwrap();
    let options = format!("    use_ssl: true\n    ca_bundle: '{}'\n", ca.path().display());
    let port = server.addr(0).unwrap().port();
    let (dir, code) = Job::new(&options, "basic", &config.username).run(port, &config.password);
    assert_eq!(code, 0);
    assert_rows_match_dataset(dir.path(), &server);
    let stats = server.stats(0).unwrap();
    assert!(stats.count("Pull") >= 20, "{stats:?}");
    assert_eq!(stats.sealed_requests, 0);

    // Without the CA the same listener is a TLS failure, not a silent downgrade.
    let (dir, code) = Job::new("    use_ssl: true\n", "basic", &config.username).run(port, &config.password);
    assert_eq!(code, 1);
    for t in tasks(dir.path()) {
        assert_eq!(t["category"], "tls_failure", "{t}");
    }
}

#[test]
fn client_certificate_over_https() {
    let host = host("app03.corp.example").https(true).basic(false).negotiate(false).certificate_auth(true);
    let server = TestServer::builder().host(host).lifetime(Duration::from_secs(90)).start().unwrap();
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = files.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (cert, key) = server.client_certificate("cimrun").unwrap().unwrap();
    let options = format!(
        "    use_ssl: true\n    ca_bundle: '{}'\n    client_certificate: '{}'\n    client_key: '{}'\n",
        write("ca.pem", server.ca_pem().unwrap()),
        write("client.pem", &cert),
        write("client.key", &key),
    );
    let port = server.addr(0).unwrap().port();
    // No credential: the certificate is the logon.
    let job = Job::new(&options, "default", "unused").without_credential();
    let (dir, code) = job.run(port, "");
    assert_eq!(code, 0);
    assert_rows_match_dataset(dir.path(), &server);
    let stats = server.stats(0).unwrap();
    assert_eq!(stats.certificate_logons, stats.requests.values().sum::<u64>(), "{stats:?}");
}

#[test]
fn dmtf_resource_uris_filters_key_only_and_an_explicit_resource_uri() {
    let server = TestServer::builder()
        .host(host("omi01").allow_unencrypted(false).basic(false))
        .lifetime(Duration::from_secs(90))
        .start()
        .unwrap();
    let config = server.config(0).unwrap().clone();
    let queries = "  - name: services\n    class: Win32_Service\n\
                   \x20 - name: processes\n    class: Win32_Process\n    properties: [Name, ProcessId]\n    filter: ProcessId < 2000\n\
                   \x20 - name: service_keys\n    class: Win32_Service\n    key_only: true\n\
                   \x20 - name: bios\n    class: Win32_BIOS\n    \
                   resource_uri: http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_BIOS\n";
    let job = Job::new("    resource_uri_scheme: dmtf\n", "ntlm", &config.username).queries(queries);
    let (dir, code) = job.run(server.addr(0).unwrap().port(), &config.password);
    let tasks = tasks(dir.path());
    assert_eq!(tasks.len(), 4);
    for t in &tasks {
        assert_eq!(t["status"], "ok", "{t}");
    }
    assert_eq!(code, 0);
    let data = config.dataset();
    let services = data.class("Win32_Service").unwrap();
    assert_same_rows(dir.path(), "services", expected_rows(services, "127.0.0.1"));
    assert_same_rows(dir.path(), "bios", expected_rows(data.class("Win32_BIOS").unwrap(), "127.0.0.1"));

    // The server filtered and projected: the rows are the dataset's, selected the same way.
    let condition = cimrun::wql::parse_condition("ProcessId < 2000").unwrap();
    let processes = data.class("Win32_Process").unwrap();
    let names = vec!["Name".to_string(), "ProcessId".to_string()];
    let selected: Vec<Instance> = processes.iter().filter(|i| condition.matches(i)).map(|i| i.project(&names)).collect();
    assert!(!selected.is_empty() && selected.len() < processes.len(), "the filter must select some, not all");
    let mut writer = NdjsonWriter::new(Vec::new(), &names);
    for i in &selected {
        writer.write_row("127.0.0.1", i).unwrap();
    }
    let want = String::from_utf8(writer.finish().unwrap()).unwrap();
    assert_same_rows(dir.path(), "processes", want.lines().map(|l| serde_json::from_str(l).unwrap()).collect());

    // EnumerateEPR: each service as its key, nothing else.
    let keys: Vec<Json> =
        services.iter().map(|s| serde_json::json!({"PSComputerName": "127.0.0.1", "Name": s.get("Name").unwrap().to_string()})).collect();
    assert_same_rows(dir.path(), "service_keys", keys);

    // Three queries went out with DMTF URIs and `__cimnamespace`; the explicit URI did not.
    let stats = server.stats(0).unwrap();
    assert_eq!((stats.count("Enumerate"), stats.dmtf_requests), (4, 3), "{stats:?}");
}

// --- the independent pyspnego endpoint ---

const PEER_USER: &str = "WINHOST\\inventory";
const PEER_PASSWORD: &str = "Pa55w.rd-Ünïcode";


/// The recorded Windows Server 2012 pages of Win32_Service: an EnumerateResponse and 3 Pulls.
fn recorded_pages() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/wsman/txwinrm/data/server_2012");
    (0..4).map(|i| dir.join(format!("Win32_Service_star_{i:03}.xml"))).collect()
}

/// The running peer; killed (by its own handle) when dropped.
struct Peer {
    child: Child,
    port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn start(protocol: &str) -> Peer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/winrm_ntlm_endpoint.py");
        let python = python();
        let mut child = StdCommand::new(&python)
            .arg(script)
            .args(["--user", PEER_USER, "--password", PEER_PASSWORD, "--protocol", protocol])
            .args(["--lifetime", "60", "--relate"])
            .args(recorded_pages())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the pyspnego peer with {}: {e} (set CIMRUN_PYTHON)", python.display()));
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let Ok(port) = line.trim().parse() else {
            let status = child.wait();
            panic!("the pyspnego peer did not start ({status:?}); are pyspnego and pypsrp installed for {}?", python.display())
        };
        Peer { child, port }
    }
}

/// The service names in the recorded pages, found by plain text search.
fn recorded_service_names() -> Vec<String> {
    let mut names = Vec::new();
    for page in recorded_pages() {
        let text = std::fs::read_to_string(page).unwrap();
        for chunk in text.split("<p:Name>").skip(1) {
            names.push(chunk.split('<').next().unwrap_or_default().to_string());
        }
    }
    names
}

const SERVICES_QUERY: &str = "  - name: services\n    class: Win32_Service\n";

fn peer_enumerates_every_recorded_service(protocol: &str, authentication: &'static str) {
    let peer = Peer::start(protocol);
    let job = Job::new("    protocol: wsman\n", authentication, PEER_USER).queries(SERVICES_QUERY);
    let (dir, code) = job.run(peer.port, PEER_PASSWORD);
    let tasks = tasks(dir.path());
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["status"], "ok", "{}", tasks[0]);
    assert_eq!(code, 0);
    let rows = written_rows(dir.path(), "services");
    let names: Vec<&str> = rows.iter().map(|r| r["Name"].as_str().unwrap_or_default()).collect();
    let want = recorded_service_names();
    assert!(want.len() > 100, "the recorded pages hold {} services", want.len());
    assert_eq!(names, want);
    assert_eq!(tasks[0]["rows"], want.len());
    for r in &rows {
        assert_eq!(r["PSComputerName"], "127.0.0.1");
        assert!(r["State"].is_string() && r["ProcessId"].is_u64(), "{r}");
    }
}

#[test]
fn pyspnego_endpoint_ntlm_over_several_pull_pages() {
    peer_enumerates_every_recorded_service("ntlm", "ntlm");
}

#[test]
fn pyspnego_endpoint_negotiate_over_several_pull_pages() {
    peer_enumerates_every_recorded_service("negotiate", "negotiate");
}

#[test]
fn pyspnego_endpoint_wrong_password_is_auth_failed_quickly() {
    let peer = Peer::start("ntlm");
    let job = Job::new("    protocol: wsman\n", "ntlm", PEER_USER).queries(SERVICES_QUERY);
    let started = Instant::now();
    let (dir, code) = job.run(peer.port, "not the password");
    let elapsed = started.elapsed();
    assert_eq!(code, 1);
    let tasks = tasks(dir.path());
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["status"], "failed", "{}", tasks[0]);
    assert_eq!(tasks[0]["category"], "auth_failed", "{}", tasks[0]);
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
}
