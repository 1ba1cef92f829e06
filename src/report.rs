//! The run report: one record per (computer, query), streamed to `run.json` as tasks finish.
//!
//! Records are written as they arrive so memory stays flat however large the fleet; the file
//! is written under a temporary name and renamed when the run ends, like every output.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::protocol::Category;

/// How one (computer, query) task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
    Cancelled,
}

/// One line of the run report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub session: String,
    pub computer: String,
    pub query: String,
    pub class: String,
    pub namespace: String,
    pub status: Status,
    /// Why it failed, in the shared taxonomy (absent when ok).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub category: Option<String>,
    /// The protocol's own error code (WS-Man fault code, HRESULT, HTTP status).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
    /// Instances written to the sinks.
    pub rows: u64,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    pub protocol: String,
    /// When the task started, ISO 8601 UTC.
    pub started: String,
    pub duration_ms: u64,
}

impl TaskRecord {
    /// The category as the report and `fail_if` name it (`ok`, `cancelled`, or a failure category).
    pub fn category_name(&self) -> &str {
        match self.status {
            Status::Ok => "ok",
            Status::Cancelled => "cancelled",
            Status::Failed => self.category.as_deref().unwrap_or("failed"),
        }
    }
}

/// Totals of a run, written at the end of `run.json` and printed on stderr.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub hosts: usize,
    pub tasks: usize,
    pub ok: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub rows: u64,
    /// Failed tasks by category.
    pub by_category: BTreeMap<String, usize>,
    /// Hosts with at least one failed task.
    pub failed_hosts: usize,
}

impl Summary {
    /// Adds one record.
    pub fn add(&mut self, rec: &TaskRecord) {
        self.tasks += 1;
        self.rows += rec.rows;
        match rec.status {
            Status::Ok => self.ok += 1,
            Status::Cancelled => self.cancelled += 1,
            Status::Failed => {
                self.failed += 1;
                *self.by_category.entry(rec.category_name().to_string()).or_default() += 1;
            }
        }
    }

    /// Counts by name for `fail_if`: `failed`, `cancelled`, `ok` and each failure category.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = self.by_category.clone();
        m.insert("failed".into(), self.failed);
        m.insert("cancelled".into(), self.cancelled);
        m.insert("ok".into(), self.ok);
        m
    }

    /// One line for humans: `36 tasks on 12 hosts: 30 ok, 6 failed (unreachable 3, access_denied 3); 1234 rows`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} task{} on {} host{}: {} ok, {} failed",
            self.tasks,
            plural(self.tasks),
            self.hosts,
            plural(self.hosts),
            self.ok,
            self.failed
        );
        if !self.by_category.is_empty() {
            let parts: Vec<String> = self.by_category.iter().map(|(k, v)| format!("{k} {v}")).collect();
            s.push_str(&format!(" ({})", parts.join(", ")));
        }
        if self.cancelled > 0 {
            s.push_str(&format!(", {} cancelled", self.cancelled));
        }
        s.push_str(&format!("; {} row{}", self.rows, plural(self.rows as usize)));
        s
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Header fields of `run.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub cimrun: &'static str,
    pub run_id: String,
    pub job: String,
    pub started: String,
}

/// Streams `run.json`: `{ header…, "tasks": [ records… ], "summary": {…}, "finished": …, "exit_code": N }`.
pub struct ReportWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    first: bool,
    summary: Summary,
    /// Hosts with a failed task, to count them once each.
    failed_hosts: std::collections::HashSet<(String, String)>,
}

impl ReportWriter {
    /// Starts the report at `dir/run.json` (written as a temporary file until [`ReportWriter::finish`]).
    pub fn create(dir: &Path, info: &RunInfo) -> io::Result<ReportWriter> {
        let path = dir.join("run.json");
        let tmp = dir.join(format!(".run.json.tmp-{}", info.run_id));
        let mut out = BufWriter::new(File::create(&tmp)?);
        let head = serde_json::to_string(info).map_err(io::Error::other)?;
        // Reopen the header object to append the streamed array and the trailer.
        let head = head.strip_suffix('}').unwrap_or(&head);
        write!(out, "{head},\n\"tasks\": [")?;
        // On disk at once: a run killed before any host ends still leaves a readable report.
        out.flush()?;
        Ok(ReportWriter { out, tmp, path, first: true, summary: Summary::default(), failed_hosts: Default::default() })
    }

    /// Appends one record.
    pub fn record(&mut self, rec: &TaskRecord) -> io::Result<()> {
        self.summary.add(rec);
        if rec.status == Status::Failed && self.failed_hosts.insert((rec.session.clone(), rec.computer.clone())) {
            self.summary.failed_hosts += 1;
        }
        let sep: &[u8] = if self.first { b"\n  " } else { b",\n  " };
        self.first = false;
        self.out.write_all(sep)?;
        serde_json::to_writer(&mut self.out, rec).map_err(io::Error::from)
    }

    /// Pushes the records so far to the temporary file, so a run killed later leaves them
    /// readable by [`read_partial`].
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The totals so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Writes the trailer, flushes, syncs and renames into place. Returns the final path.
    pub fn finish(mut self, hosts: usize, finished: &str, exit_code: i32) -> io::Result<(PathBuf, Summary)> {
        self.summary.hosts = hosts;
        let summary = serde_json::to_string(&self.summary).map_err(io::Error::other)?;
        write!(
            self.out,
            "\n],\n\"summary\": {summary},\n\"finished\": {},\n\"exit_code\": {exit_code}\n}}\n",
            serde_json::Value::String(finished.to_string())
        )?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)?;
        Ok((self.path, self.summary))
    }
}

/// Reads a finished `run.json` back (for `--retry-failed` and tests).
pub fn read(path: &Path) -> io::Result<(Vec<TaskRecord>, Summary)> {
    #[derive(Deserialize)]
    struct Doc {
        tasks: Vec<TaskRecord>,
        summary: Summary,
    }
    let text = std::fs::read_to_string(path)?;
    let doc: Doc = serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((doc.tasks, doc.summary))
}

/// Reads the records of a report that was never finished: the temporary file a killed run
/// leaves (`.run.json.tmp-RUNID`). Records are one a line; a last line cut short is skipped.
pub fn read_partial(path: &Path) -> io::Result<Vec<TaskRecord>> {
    let text = std::fs::read_to_string(path)?;
    let (_, tasks) = text
        .split_once("\"tasks\": [")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a cimrun run report"))?;
    Ok(tasks
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Whether `path` names the temporary report of an unfinished run.
pub fn is_partial(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".run.json.tmp-"))
}

/// Builds a failure record's category from a protocol error category.
pub fn category(c: Category) -> Option<String> {
    Some(c.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_cut_anywhere_reads_back_its_whole_records() {
        let tmpdir = tempfile::tempdir().unwrap();
        let dir = tmpdir.path();
        let info = RunInfo { cimrun: "0", run_id: "r1".into(), job: "j".into(), started: "t".into() };
        let mut w = ReportWriter::create(dir, &info).unwrap();
        let recs = [rec(Status::Ok, None, 3), rec(Status::Failed, Some("timed_out"), 0), rec(Status::Ok, None, 1)];
        for r in &recs {
            w.record(r).unwrap();
        }
        w.flush().unwrap();
        let tmp = dir.join(".run.json.tmp-r1");
        assert!(is_partial(&tmp) && !is_partial(&dir.join("run.json")));
        let full = std::fs::read(&tmp).unwrap();
        for cut in 0..=full.len() {
            std::fs::write(&tmp, &full[..cut]).unwrap();
            let got = read_partial(&tmp);
            let whole = full[..cut].split(|b| *b == b'\n').filter(|l| l.ends_with(b"}") || l.ends_with(b"},")).count();
            match got {
                Ok(got) => {
                    assert_eq!(got.len(), whole, "cut at {cut}");
                    assert_eq!(got[..], recs[..got.len()]);
                }
                Err(_) => assert!(!String::from_utf8_lossy(&full[..cut]).contains("\"tasks\": ["), "cut at {cut}"),
            }
        }
        drop(w);
    }

    fn rec(status: Status, category: Option<&str>, rows: u64) -> TaskRecord {
        TaskRecord {
            session: "s".into(),
            computer: "h".into(),
            query: "q".into(),
            class: "C".into(),
            namespace: "root/cimv2".into(),
            status,
            category: category.map(String::from),
            code: None,
            message: None,
            rows,
            attempts: 1,
            protocol: "local".into(),
            started: "2026-01-01T00:00:00Z".into(),
            duration_ms: 3,
        }
    }

    #[test]
    fn streamed_report_is_valid_json_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let info = RunInfo { cimrun: "0", run_id: "r1".into(), job: "j.yaml".into(), started: "t0".into() };
        let mut w = ReportWriter::create(dir.path(), &info).unwrap();
        assert!(!dir.path().join("run.json").exists(), "not visible before finish");
        w.record(&rec(Status::Ok, None, 5)).unwrap();
        w.record(&rec(Status::Failed, Some("unreachable"), 0)).unwrap();
        w.record(&rec(Status::Cancelled, None, 0)).unwrap();
        let (path, summary) = w.finish(2, "t1", 1).unwrap();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["run_id"], "r1");
        assert_eq!(v["tasks"].as_array().unwrap().len(), 3);
        assert_eq!(v["exit_code"], 1);
        assert_eq!(summary.by_category.get("unreachable"), Some(&1));
        assert_eq!(summary.failed_hosts, 1);
        let (tasks, s2) = read(&path).unwrap();
        assert_eq!(tasks[1].category_name(), "unreachable");
        assert_eq!(s2, summary);
        assert_eq!(summary.line(), "3 tasks on 2 hosts: 1 ok, 1 failed (unreachable 1), 1 cancelled; 5 rows");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temp file renamed away");
    }

    #[test]
    fn empty_report_is_valid_json() {
        let dir = tempfile::tempdir().unwrap();
        let info = RunInfo { cimrun: "0", run_id: "r".into(), job: "j".into(), started: "t".into() };
        let w = ReportWriter::create(dir.path(), &info).unwrap();
        let (path, _) = w.finish(0, "t", 0).unwrap();
        let (tasks, summary) = read(&path).unwrap();
        assert!(tasks.is_empty());
        assert_eq!(summary.tasks, 0);
    }
}
