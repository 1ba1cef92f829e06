//! Shared pieces of the reliability tests: a job file written for a test server's hosts, the
//! `cimrun` binary run on it with a deadline, and readers for what the run left behind.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cimrun::report::{self, Status, TaskRecord};
use cimrun::testkit::{HostConfig, TestServer, dataset};

#[path = "../python/mod.rs"]
mod python;
// Not every test binary that includes this module starts a peer.
#[allow(unused_imports)]
pub use python::python;

/// The password every test host accepts (see `HostConfig::new`).
pub const PASSWORD: &str = "P@ssw0rd!";
/// The environment variable the jobs read it from.
pub const PASSWORD_ENV: &str = "CIMRUN_TEST_PASSWORD";

/// How a session reaches its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP with NTLM (sealed bodies).
    HttpNtlm,
    /// Plain HTTP with Basic (`allow_unencrypted`).
    HttpBasic,
    /// Plain HTTP with Basic but without `allow_unencrypted`: refused before anything is sent.
    HttpBasicNotAllowed,
    /// HTTPS with Basic, the test CA trusted through `ca_bundle`.
    Https,
    /// HTTPS with Basic and both certificate checks skipped.
    HttpsSkipChecks,
}

/// One session of a job: one host of the test server.
#[derive(Debug, Clone)]
pub struct SessionDef {
    pub name: String,
    pub host: usize,
    pub transport: Transport,
}

/// A job file over a test server's hosts.
#[derive(Debug, Clone)]
pub struct JobDef {
    pub sessions: Vec<SessionDef>,
    /// (query name, class).
    pub queries: Vec<(String, String)>,
    /// (type, path template).
    pub sinks: Vec<(String, String)>,
    pub throttle: usize,
    pub retries: u32,
    pub operation_timeout: &'static str,
    pub connect_timeout: &'static str,
    pub task_timeout: &'static str,
}

impl JobDef {
    /// A job with one session per host, named after the host, and the given queries.
    pub fn new(sessions: Vec<SessionDef>, queries: &[(&str, &str)]) -> JobDef {
        JobDef {
            sessions,
            queries: queries.iter().map(|(n, c)| (n.to_string(), c.to_string())).collect(),
            sinks: vec![("ndjson".into(), "{{query}}/{{computer}}.ndjson".into())],
            throttle: 64,
            retries: 1,
            operation_timeout: "1s",
            connect_timeout: "1s",
            task_timeout: "8s",
        }
    }

    /// The YAML text, with the CA bundle (for HTTPS sessions) at `ca_bundle`.
    pub fn yaml(&self, server: &TestServer, ca_bundle: Option<&Path>) -> String {
        let mut y = String::from("version: 1\noptions:\n");
        y.push_str("  http_ntlm: { allow_unencrypted: false }\n");
        y.push_str("  http_basic: { allow_unencrypted: true }\n");
        if let Some(ca) = ca_bundle {
            y.push_str(&format!("  https: {{ use_ssl: true, ca_bundle: {:?} }}\n", ca.display().to_string()));
        }
        y.push_str("  https_skip: { use_ssl: true, skip_ca_check: true, skip_cn_check: true }\n");
        y.push_str(&format!(
            "credentials:\n  admin:\n    username: cimrun\n    password: {{ env: {PASSWORD_ENV} }}\nsessions:\n"
        ));
        for s in &self.sessions {
            let addr = server.addr(s.host).expect("host index");
            let (options, auth) = match s.transport {
                Transport::HttpNtlm => ("http_ntlm", "ntlm"),
                Transport::HttpBasic => ("http_basic", "basic"),
                Transport::HttpBasicNotAllowed => ("http_ntlm", "basic"),
                Transport::Https => ("https", "basic"),
                Transport::HttpsSkipChecks => ("https_skip", "basic"),
            };
            y.push_str(&format!(
                "  - name: {}\n    computers: [\"{}\"]\n    port: {}\n    credential: admin\n    authentication: {auth}\n    options: {options}\n",
                s.name,
                addr.ip(),
                addr.port()
            ));
        }
        y.push_str("queries:\n");
        for (name, class) in &self.queries {
            y.push_str(&format!("  - name: {name}\n    class: {class}\n"));
        }
        y.push_str("sinks:\n");
        for (kind, path) in &self.sinks {
            y.push_str(&format!("  - type: {kind}\n    path: \"{path}\"\n"));
        }
        y.push_str(&format!(
            "run:\n  throttle: {}\n  retries: {}\n  operation_timeout: {}\n  connect_timeout: {}\n  task_timeout: {}\n",
            self.throttle, self.retries, self.operation_timeout, self.connect_timeout, self.task_timeout
        ));
        y
    }

    /// Writes the job (and the CA bundle when the server has one) into `dir`; returns the job path.
    pub fn write(&self, server: &TestServer, dir: &Path) -> PathBuf {
        let ca = server.ca_pem().map(|pem| {
            let p = dir.join("ca.pem");
            std::fs::write(&p, pem).expect("write CA");
            p
        });
        let job = dir.join("job.yaml");
        std::fs::write(&job, self.yaml(server, ca.as_deref())).expect("write job");
        job
    }
}

/// `cimrun run <job> --out <out> --progress never` with the password in the environment.
pub fn cimrun_run(job: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cimrun"));
    c.arg("run").arg(job).arg("--out").arg(out).args(["--progress", "never"]).args(extra);
    c.env(PASSWORD_ENV, PASSWORD).env_remove("RUST_LOG");
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Waits for a child for at most `limit`, killing it past that (the test then fails).
/// Its stdout and stderr are read meanwhile: a child blocked on a full pipe would never end.
pub fn wait_bounded(mut child: Child, limit: Duration) -> (Output, Duration) {
    use std::io::Read;
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let t0 = Instant::now();
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if t0.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.join().unwrap_or_default();
                panic!("cimrun did not finish within {limit:?}\nstderr:\n{}", String::from_utf8_lossy(&err));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("wait: {e}"),
        }
    };
    let elapsed = t0.elapsed();
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    (output, elapsed)
}

/// Runs a command to its end within `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> (Output, Duration) {
    wait_bounded(cmd.spawn().expect("cimrun starts"), limit)
}

/// The tasks of `run.json` by (session, query).
pub fn tasks_by_session(run_json: &Path) -> BTreeMap<(String, String), TaskRecord> {
    let (tasks, _) = report::read(run_json).unwrap_or_else(|e| panic!("{}: {e}", run_json.display()));
    tasks.into_iter().map(|t| ((t.session.clone(), t.query.clone()), t)).collect()
}

/// `ok`, `cancelled` or the failure category of a task.
pub fn category(t: &TaskRecord) -> String {
    match t.status {
        Status::Ok => "ok".into(),
        _ => t.category_name().to_string(),
    }
}

/// Every JSON object of the NDJSON files found under `dir` whose relative path satisfies `want`.
pub fn ndjson_rows(dir: &Path, want: impl Fn(&Path) -> bool) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for f in files_under(dir) {
        let rel = f.strip_prefix(dir).unwrap_or(&f);
        if f.extension().is_some_and(|e| e == "ndjson") && want(rel) {
            let text = std::fs::read_to_string(&f).expect("read output");
            for line in text.lines() {
                rows.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", f.display())));
            }
        }
    }
    rows
}

/// Every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The key values of a class's instances in a host's dataset, as the sinks write them.
pub fn dataset_keys(config: &HostConfig, class: &str) -> BTreeSet<String> {
    let host = config.dataset();
    let keys = dataset::key_properties(class);
    host.class(class).expect("class in dataset").iter().map(|i| key_of_instance(i, keys)).collect()
}

fn key_of_instance(i: &cimrun::cim::Instance, keys: &[&str]) -> String {
    keys.iter()
        .map(|k| {
            let v = i.get(k);
            let json = v.map(|v| serde_json::to_value(cimrun::sink::JsonValue(v)).unwrap_or_default());
            json.map(|j| j.to_string()).unwrap_or_else(|| "null".into())
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// The key values of NDJSON rows of `class`.
pub fn row_keys(rows: &[serde_json::Value], class: &str) -> Vec<String> {
    let keys = dataset::key_properties(class);
    rows.iter()
        .map(|r| {
            keys.iter().map(|k| r.get(*k).map(|v| v.to_string()).unwrap_or_else(|| "null".into())).collect::<Vec<_>>().join("|")
        })
        .collect()
}
