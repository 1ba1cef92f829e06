//! The scheduler: opens sessions on demand under a global throttle, runs each host's queries
//! in order on its one connection, streams instances to the sinks, and always closes sessions.
//!
//! Host tasks are tokio tasks. Each page of instances is written as soon as it is parsed, on
//! the same thread, by the one `Writer` that owns every output file and the run report: the
//! page is then formatted while its memory is still in that core's cache and freed by the
//! thread that allocated it, and a slow disk pushes back on the network instead of growing
//! memory.
//!
//! Deadlines nest: a TCP connect gets the endpoint's `connect_timeout`; each WS-Man operation
//! is sent with `operation_timeout` and its HTTP reply awaited a margin longer (the read
//! timeout); the whole host task, retries included, ends at `task_timeout`. So a host that
//! hangs costs at most its task deadline and one throttle slot.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, info, warn};

use crate::cim::{self, Instance};
use crate::job::SinkSpec;
use crate::plan::{HostTask, Plan};
use crate::protocol::{Category, Connector, Credential, Error, ProtocolKind, QuerySpec, Session};
use crate::report::{self, ReportWriter, RunInfo, Status, Summary, TaskRecord};
use crate::sink::{RowContext, RunVars, SinkSet};

/// When to draw a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain log lines otherwise (cron, CI).
    #[default]
    Auto,
    Always,
    Never,
}

impl ProgressMode {
    /// Whether a run in this mode draws a bar (rather than writing log lines).
    pub fn shows_bar(self) -> bool {
        match self {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
        }
    }
}

/// The protocols available to this run.
#[derive(Clone)]
pub struct Connectors {
    pub local: Arc<dyn Connector>,
    pub wsman: Option<Arc<dyn Connector>>,
    pub dcom: Option<Arc<dyn Connector>>,
}

impl Connectors {
    fn get(&self, kind: ProtocolKind) -> Result<&Arc<dyn Connector>, Error> {
        let c = match kind {
            ProtocolKind::Local => Some(&self.local),
            ProtocolKind::WsMan => self.wsman.as_ref(),
            ProtocolKind::Dcom => self.dcom.as_ref(),
        };
        c.ok_or_else(|| Error::new(Category::Unsupported, format!("the {kind} protocol is not available in this build")))
    }
}

/// Everything a run needs besides the plan.
pub struct RunConfig {
    pub out_dir: PathBuf,
    pub job_name: String,
    pub run_id: String,
    pub date: String,
    pub started: String,
    pub sinks: Vec<SinkSpec>,
    pub throttle: usize,
    /// Operations in flight to one computer at once, across every session that lists it.
    pub per_host_operations: usize,
    pub retries: u32,
    pub task_timeout: Duration,
    /// A TCP connect within this budget before a session opens; `None` skips the probe.
    pub probe_timeout: Option<Duration>,
    pub progress: ProgressMode,
    /// Resolved credentials by name.
    pub credentials: HashMap<String, Credential>,
    /// What counts as a failed run (exit 1).
    pub fail_policy: crate::job::fail_if::FailPolicy,
}

/// How the run ended, for the exit code.
#[derive(Debug)]
pub struct RunOutcome {
    pub summary: Summary,
    /// The process exit code this run earns (also written to `run.json`).
    pub exit_code: i32,
    /// Set when a signal stopped the run: 130 for SIGINT, 143 for SIGTERM.
    pub interrupted: Option<i32>,
    /// Set when outputs could not be written; the run stopped early.
    pub output_error: Option<String>,
    pub outputs: Vec<PathBuf>,
    /// The finished `run.json`, when it could be written.
    pub report: Option<PathBuf>,
    /// The first failed tasks (at most [`FAILURES_SHOWN`]), in the order they ended.
    pub failures: Vec<TaskRecord>,
}

/// How many failed tasks a run keeps for its end-of-run message.
pub const FAILURES_SHOWN: usize = 20;

/// Why a run could not start at all (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("output directory {} is not writable: {source}", path.display())]
    NotWritable { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Sinks(String),
}

/// Identifies the file(s) a query's rows go to.
struct RowKey {
    session: Arc<str>,
    computer: Arc<str>,
    query: String,
    class: String,
    properties: Vec<String>,
}

/// State shared by the host tasks.
struct Shared {
    connectors: Connectors,
    writer: std::sync::Mutex<Writer>,
    cancel: watch::Receiver<bool>,
    retries: u32,
    task_timeout: Duration,
    probe_timeout: Option<Duration>,
    hosts: HostLimits,
    credentials: HashMap<String, Credential>,
    rows: AtomicU64,
    failed_tasks: AtomicU64,
}

/// A handle to interrupt a run (signals, output failure).
#[derive(Clone)]
pub struct CancelHandle {
    tx: Arc<watch::Sender<bool>>,
    code: Arc<std::sync::atomic::AtomicI32>,
}

impl CancelHandle {
    /// Stops starting hosts and ends running ones as soon as they can close cleanly.
    /// `code` is the exit code to report (130 for SIGINT, 143 for SIGTERM, 0 for internal).
    pub fn cancel(&self, code: i32) {
        self.code.compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst).ok();
        self.tx.send_replace(true);
    }
}

impl Shared {
    /// Runs `f` with the writer, on this thread. File writes go to the page cache and return
    /// in microseconds; when the disk stalls, the run waits for it, as it must to bound memory.
    /// (Signals are handled on a thread of their own, so a second Ctrl-C still exits.)
    fn write(&self, f: impl FnOnce(&mut Writer)) {
        f(&mut self.writer.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// Creates the cancellation pair used by [`execute`].
pub fn cancel_pair() -> (CancelHandle, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    (CancelHandle { tx: Arc::new(tx), code: Arc::new(0.into()) }, rx)
}

/// Runs the plan to completion (or interruption) and finalizes every output.
pub async fn execute(
    plan: Plan,
    cfg: RunConfig,
    connectors: Connectors,
    cancel: (CancelHandle, watch::Receiver<bool>),
) -> Result<RunOutcome, StartError> {
    // SinkSet::new creates the output directory and proves it writable before any host is contacted.
    let vars = RunVars { run_id: cfg.run_id.clone(), date: cfg.date.clone() };
    let sinks = SinkSet::new(&cfg.sinks, &cfg.out_dir, vars).map_err(|e| match e {
        crate::sink::SinkError::Io { source, .. } => StartError::NotWritable { path: cfg.out_dir.clone(), source },
        other => StartError::Sinks(other.to_string()),
    })?;
    let info = RunInfo {
        cimrun: env!("CARGO_PKG_VERSION"),
        run_id: cfg.run_id.clone(),
        job: cfg.job_name.clone(),
        started: cfg.started.clone(),
    };
    let report = ReportWriter::create(&cfg.out_dir, &info)
        .map_err(|source| StartError::NotWritable { path: cfg.out_dir.clone(), source })?;

    let (cancel_handle, cancel_rx) = cancel;
    let shared = Arc::new(Shared {
        connectors,
        writer: std::sync::Mutex::new(Writer::new(sinks, report, cancel_handle.clone())),
        cancel: cancel_rx.clone(),
        retries: cfg.retries,
        task_timeout: cfg.task_timeout,
        probe_timeout: cfg.probe_timeout,
        hosts: HostLimits::new(cfg.per_host_operations),
        credentials: cfg.credentials,
        rows: AtomicU64::new(0),
        failed_tasks: AtomicU64::new(0),
    });

    let host_count = plan.hosts.len();
    // Each open session holds a socket; a large throttle needs more than the usual 1,024.
    raise_open_file_limit(cfg.throttle as u64 * 2 + 256);
    check_deadlines(&plan.hosts, cfg.task_timeout);
    let progress = Progress::new(cfg.progress, host_count as u64);
    info!(
        run_id = %cfg.run_id,
        "starting: {} hosts, {} tasks, throttle {}",
        host_count,
        plan.task_count(),
        cfg.throttle
    );

    let throttle = Arc::new(Semaphore::new(cfg.throttle.max(1)));
    let mut running = tokio::task::JoinSet::new();
    let mut cancel_watch = cancel_rx.clone();
    for host in plan.hosts {
        // Wait for a slot, unless the run is cancelled meanwhile.
        let permit = tokio::select! {
            p = throttle.clone().acquire_owned() => p.ok(),
            _ = cancel_watch.wait_for(|c| *c) => None,
        };
        while let Some(done) = running.try_join_next() {
            log_join(done);
            progress.host_done(&shared);
        }
        match permit {
            Some(permit) if !*cancel_rx.borrow() => {
                let shared = shared.clone();
                running.spawn(async move {
                    run_host(host, &shared).await;
                    drop(permit);
                });
            }
            _ => cancel_host(host, &shared).await,
        }
    }
    while let Some(done) = running.join_next().await {
        log_join(done);
        progress.host_done(&shared);
    }
    progress.finish();
    // Every host task has ended, and with it every other holder of `shared`.
    let Ok(shared) = Arc::try_unwrap(shared) else {
        return Err(StartError::Sinks("a host task outlived the run; outputs not finished".into()));
    };
    let writer = shared.writer.into_inner().unwrap_or_else(|e| e.into_inner());
    let (sinks, report, output_error, failures) = writer.finish();
    let interrupted = match cancel_handle.code.load(Ordering::SeqCst) {
        0 => None,
        c => Some(c),
    };
    let mut output_error = output_error;
    let outputs = match sinks.finish() {
        Ok(paths) => paths,
        Err(e) => {
            output_error.get_or_insert(e.to_string());
            Vec::new()
        }
    };
    let finished = now_iso();
    let summary_so_far = report.summary().clone();
    let exit_code = exit_code(interrupted, output_error.is_some(), &summary_so_far, &cfg.fail_policy);
    let (report_path, summary) = match report.finish(host_count, &finished, exit_code) {
        Ok((p, s)) => (Some(p), s),
        Err(e) => {
            output_error.get_or_insert(format!("cannot write run.json: {e}"));
            (None, summary_so_far)
        }
    };
    let exit_code = exit_code_final(exit_code, output_error.is_some());
    Ok(RunOutcome { summary, exit_code, interrupted, output_error, outputs, report: report_path, failures })
}

/// The documented exit codes: an interruption wins, then an output failure (3), then the
/// job's `fail_if` policy over the task outcomes (1), else 0.
fn exit_code(interrupted: Option<i32>, output_failed: bool, s: &Summary, policy: &crate::job::fail_if::FailPolicy) -> i32 {
    if let Some(code) = interrupted {
        code
    } else if output_failed {
        3
    } else if policy.is_failure(&s.counts(), s.tasks) {
        1
    } else {
        0
    }
}

/// Writing run.json itself may fail after the code was decided: that is an output failure too.
fn exit_code_final(code: i32, output_failed: bool) -> i32 {
    if output_failed && code < 3 { 3 } else { code }
}

fn log_join(r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r {
        // A host task must never panic; if one does, its records are missing from the report,
        // so say so loudly rather than losing it silently.
        tracing::error!("a host task ended abnormally: {e}");
    }
}

/// What the writer hands back at the end: the sinks and report to finalize, the first output
/// error, and the failed records shown in the summary.
type WriterParts = (SinkSet, ReportWriter, Option<String>, Vec<TaskRecord>);

/// The outputs and what the writer keeps about the run while it writes them.
struct Writer {
    sinks: SinkSet,
    report: ReportWriter,
    cancel: CancelHandle,
    output_error: Option<String>,
    /// Kept for the end-of-run message, so it needs no second read of run.json (whose size
    /// grows with the fleet).
    failures: Vec<TaskRecord>,
    /// Per (session, computer) of a running host.
    held: HashMap<(Arc<str>, Arc<str>), Held>,
}

/// What the writer keeps about a host until it ends.
#[derive(Default)]
struct Held {
    /// The host's records wait for its end, so that run.json calls a task ok only once the
    /// host's files are complete, and a query that stopped part-way can take its files back.
    records: Vec<TaskRecord>,
    /// Queries whose rows could not all be written: their records must not say ok.
    broken: Vec<String>,
}

impl Writer {
    fn new(sinks: SinkSet, report: ReportWriter, cancel: CancelHandle) -> Writer {
        Writer {
            sinks,
            report,
            cancel,
            output_error: None,
            failures: Vec::new(),
            held: HashMap::new(),
        }
    }

    /// The first output failure stops the run.
    fn fail(&mut self, msg: String) {
        if self.output_error.is_none() {
            tracing::error!("output failed, stopping the run: {msg}");
            self.cancel.cancel(0);
            self.output_error = Some(msg);
        }
    }

    /// Writes a page of a query's rows.
    fn rows(&mut self, key: &RowKey, rows: &[Instance]) {
        if self.output_error.is_some() {
            self.broken(key);
            return;
        }
        let ctx = RowContext {
            session: &key.session,
            computer: &key.computer,
            query: &key.query,
            class: &key.class,
            properties: &key.properties,
        };
        if let Err(e) = self.sinks.write_rows(&ctx, rows) {
            self.broken(key);
            self.fail(e.to_string());
        }
    }

    /// Notes that not all of a query's rows were written.
    fn broken(&mut self, key: &RowKey) {
        let broken = &mut self.held.entry((key.session.clone(), key.computer.clone())).or_default().broken;
        if !broken.contains(&key.query) {
            broken.push(key.query.clone());
        }
    }

    /// Holds a task's record until its host ends.
    fn record(&mut self, session: &Arc<str>, computer: &Arc<str>, mut rec: TaskRecord) {
        let held = self.held.entry((session.clone(), computer.clone())).or_default();
        if let Some(i) = held.broken.iter().position(|q| *q == rec.query) {
            held.broken.swap_remove(i);
            if rec.status == Status::Ok {
                rec.status = Status::Failed;
                rec.category = report::category(Category::OutputError);
                rec.message = self.output_error.clone();
            }
        }
        held.records.push(rec);
    }

    /// Completes a host's files and writes its records to the run report.
    fn host_done(&mut self, session: &Arc<str>, computer: &Arc<str>) {
        let mut records =
            self.held.remove(&(session.clone(), computer.clone())).map(|h| h.records).unwrap_or_default();
        if self.output_error.is_none() {
            abandon_unfinished(&mut self.sinks, session, computer, &mut records);
            if let Err(e) = self.sinks.task_done(session, computer) {
                self.fail(e.to_string());
            }
        }
        keep_failures(&mut self.failures, &records);
        // Flushed per host: a killed run's temporary report then lists what it finished.
        let written = records.iter().try_for_each(|rec| self.report.record(rec)).and_then(|()| self.report.flush());
        if let Err(e) = written {
            self.fail(format!("cannot write run.json: {e}"));
        }
    }

    /// Records the hosts that never started (cancelled) or never reported their end.
    fn finish(mut self) -> WriterParts {
        for rec in std::mem::take(&mut self.held).into_values().flat_map(|h| h.records) {
            keep_failures(&mut self.failures, std::slice::from_ref(&rec));
            if let Err(e) = self.report.record(&rec) {
                self.fail(format!("cannot write run.json: {e}"));
            }
        }
        (self.sinks, self.report, self.output_error, self.failures)
    }
}

/// Keeps the first [`FAILURES_SHOWN`] failed records for the summary, so the end of a run
/// need not read run.json back.
fn keep_failures(failures: &mut Vec<TaskRecord>, records: &[TaskRecord]) {
    for rec in records {
        if rec.status == Status::Failed && failures.len() < FAILURES_SHOWN {
            failures.push(rec.clone());
        }
    }
}

/// Gives up the per-computer files of every query of a host that stopped after writing rows
/// (failed or interrupted): a final file never holds part of a result, so a rerun with
/// `--retry-failed` adds each instance exactly once. Records are updated to match: a stopped
/// query kept no rows, and an ok query whose rows shared a given-up file takes its status.
fn abandon_unfinished(sinks: &mut SinkSet, session: &str, computer: &str, records: &mut [TaskRecord]) {
    let stopped: Vec<usize> =
        (0..records.len()).filter(|&i| records[i].status != Status::Ok && records[i].rows > 0).collect();
    for i in stopped {
        let Some(lost) = sinks.abandon(session, computer, &records[i].query) else { continue };
        let (status, category, query) = (records[i].status, records[i].category.clone(), records[i].query.clone());
        discard_rows(&mut records[i], None);
        for rec in records.iter_mut().filter(|r| r.status == Status::Ok && lost.contains(&r.query)) {
            rec.status = status;
            rec.category = category.clone();
            discard_rows(rec, Some(&query));
        }
    }
}

fn discard_rows(rec: &mut TaskRecord, shared_with: Option<&str>) {
    let why = match shared_with {
        Some(q) => format!("its output file also held {q}, which did not finish"),
        None => rec.message.clone().unwrap_or_default(),
    };
    rec.message = Some(format!("{why}; the {} rows received are only in an unfinished temporary file", rec.rows));
    rec.rows = 0;
}

/// Records every query of a host that never started as cancelled.
async fn cancel_host(host: HostTask, shared: &Shared) {
    let started = now_iso();
    for q in &host.queries {
        let rec = record(&host, q, &started, Instant::now(), 0, 0, Some(cancelled_error()));
        shared.write(|w| w.record(&host.session, &host.computer, rec));
    }
}

fn cancelled_error() -> Error {
    Error::new(Category::Cancelled, "the run was interrupted before this task finished")
}

/// Runs every query of one host on one session, then closes it.
async fn run_host(host: HostTask, shared: &Shared) {
    let deadline = tokio::time::Instant::now() + shared.task_timeout;
    let mut endpoint = host.endpoint.clone();
    if let Some(name) = &host.credential {
        endpoint.credential = shared.credentials.get(name).cloned();
    }
    let mut session: Option<Box<dyn Session>> = None;
    // A failure to connect fails the host's remaining queries the same way, without
    // hammering a dead or refusing host once per query.
    let mut open_error: Option<Error> = None;
    let mut cancel = shared.cancel.clone();
    let limit = shared.hosts.enter(&host.computer);
    if let Some(budget) = shared.probe_timeout {
        match probe(&endpoint, budget, &mut cancel).await {
            Err(e) if e.category != Category::Cancelled => open_error = Some(e),
            _ => {}
        }
    }

    for q in &host.queries {
        let started = now_iso();
        let t0 = Instant::now();
        if *cancel.borrow() {
            let rec = record(&host, q, &started, t0, 0, 0, Some(cancelled_error()));
            shared.write(|w| w.record(&host.session, &host.computer, rec));
            continue;
        }
        if let Some(e) = &open_error {
            let rec = record(&host, q, &started, t0, 0, 0, Some(e.clone()));
            shared.failed_tasks.fetch_add(1, Ordering::Relaxed);
            shared.write(|w| w.record(&host.session, &host.computer, rec));
            continue;
        }
        let key = RowKey {
            session: host.session.clone(),
            computer: host.computer.clone(),
            query: q.name.clone(),
            class: q.class_name().to_string(),
            properties: q.wql.properties.clone(),
        };
        let mut attempts = 0u32;
        let mut rows = 0u64;
        let result: Result<(), Error> = loop {
            attempts += 1;
            if session.is_none() {
                match open(&endpoint, shared, deadline, &mut cancel).await {
                    Ok(s) => session = Some(s),
                    Err(e) => {
                        if should_retry(&e, attempts, rows, shared, deadline) {
                            backoff(attempts, deadline, &mut cancel).await;
                            continue;
                        }
                        if e.category != Category::Cancelled {
                            open_error = Some(e.clone());
                        }
                        break Err(e);
                    }
                }
            }
            let Some(s) = session.as_mut() else { continue };
            // WinRM counts an enumeration against the per-user quota until it ends, so the
            // permit covers the whole query, not one round trip.
            let permit = tokio::select! {
                p = tokio::time::timeout_at(deadline, limit.acquire()) => p,
                _ = cancel.wait_for(|c| *c) => break Err(cancelled_error()),
            };
            let Ok(_permit) = permit else {
                break Err(Error::new(Category::TimedOut, "the task deadline passed waiting for a per-host operation slot"));
            };
            let outcome = stream_query(s.as_mut(), q, &key, &mut rows, shared, deadline, &mut cancel).await;
            match outcome {
                Ok(()) => break Ok(()),
                Err(e) => {
                    if matches!(e.category, Category::ConnectionFailed | Category::TimedOut) {
                        // The connection's state is unknown: start the next attempt on a fresh one.
                        if let Some(s) = session.take() {
                            close_session(s, &host).await;
                        }
                    }
                    if should_retry(&e, attempts, rows, shared, deadline) {
                        backoff(attempts, deadline, &mut cancel).await;
                        continue;
                    }
                    break Err(e);
                }
            }
        };
        let err = result.err();
        if err.as_ref().is_some_and(|e| e.category != Category::Cancelled) {
            shared.failed_tasks.fetch_add(1, Ordering::Relaxed);
            let e = err.as_ref().map(|e| e.to_string()).unwrap_or_default();
            warn!(session = %host.session, computer = %host.computer, query = %q.name, "{e}");
        } else {
            debug!(session = %host.session, computer = %host.computer, query = %q.name, rows, "done");
        }
        let rec = record(&host, q, &started, t0, rows, attempts, err);
        shared.write(|w| w.record(&host.session, &host.computer, rec));
    }
    if let Some(s) = session.take() {
        close_session(s, &host).await;
    }
    drop(limit);
    shared.write(|w| w.host_done(&host.session, &host.computer));
}

/// Retry only what may succeed later, only while no rows of this query were written (a retry
/// would duplicate them), within the retry budget and the task deadline.
fn should_retry(e: &Error, attempts: u32, rows: u64, shared: &Shared, deadline: tokio::time::Instant) -> bool {
    is_retryable(e)
        && rows == 0
        && attempts <= shared.retries
        && tokio::time::Instant::now() + backoff_delay(attempts) < deadline
        && !*shared.cancel.borrow()
}

/// The retryable categories, plus HTTP 503: http.sys answers it while WinRM restarts or is
/// overloaded, which passes, though the protocol layer files it as a server fault.
fn is_retryable(e: &Error) -> bool {
    e.category.is_retryable() || e.code.as_deref() == Some("503")
}

/// Exponential backoff with jitter: 0.5 s, 1 s, 2 s … capped at 30 s, ±25%.
fn backoff_delay(attempt: u32) -> Duration {
    let base = 500u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(6)).min(30_000);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let jitter = (u64::from(nanos) % 500) as i64 - 250; // ±25% of 1000 per mille
    Duration::from_millis((base as i64 + base as i64 * jitter / 1000).max(1) as u64)
}

async fn backoff(attempt: u32, deadline: tokio::time::Instant, cancel: &mut watch::Receiver<bool>) {
    let until = (tokio::time::Instant::now() + backoff_delay(attempt)).min(deadline);
    tokio::select! {
        _ = tokio::time::sleep_until(until) => {}
        _ = cancel.wait_for(|c| *c) => {}
    }
}

/// Operation slots per computer, shared by every session that lists it. An entry exists only
/// while a task for that computer runs, so nothing per host outlives its sessions.
struct HostLimits {
    per_host: usize,
    slots: std::sync::Mutex<HostSlots>,
}

/// Per computer: its semaphore and how many tasks hold it.
type HostSlots = HashMap<Box<str>, (Arc<Semaphore>, usize)>;

/// A running task's hold on its computer's slots; leaving drops the entry when it is the last.
struct HostSlot<'a> {
    limits: &'a HostLimits,
    key: Box<str>,
    semaphore: Arc<Semaphore>,
}

impl HostLimits {
    fn new(per_host: usize) -> HostLimits {
        HostLimits { per_host: per_host.max(1), slots: Default::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HostSlots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a task for `computer` (names compare case-insensitively, as Windows does).
    fn enter(&self, computer: &str) -> HostSlot<'_> {
        let key: Box<str> = computer.to_ascii_lowercase().into();
        let mut slots = self.lock();
        let entry = slots.entry(key.clone()).or_insert_with(|| (Arc::new(Semaphore::new(self.per_host)), 0));
        entry.1 += 1;
        HostSlot { limits: self, key, semaphore: entry.0.clone() }
    }

    /// Computers with a running task.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl HostSlot<'_> {
    async fn acquire(&self) -> Result<tokio::sync::SemaphorePermit<'_>, tokio::sync::AcquireError> {
        self.semaphore.acquire().await
    }
}

impl Drop for HostSlot<'_> {
    fn drop(&mut self) {
        let mut slots = self.limits.lock();
        if let Some(entry) = slots.get_mut(&self.key) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                slots.remove(&self.key);
            }
        }
    }
}

/// The reachability probe: a TCP connect to the host's port within `budget`. A host behind a
/// proxy is not probed (it may well be unreachable directly and fine through the proxy).
async fn probe(
    endpoint: &crate::protocol::Endpoint,
    budget: Duration,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), Error> {
    let (Some(host), Some(port)) = (endpoint.computer.as_deref(), crate::plan::effective_port(endpoint)) else {
        return Ok(());
    };
    if endpoint.protocol == ProtocolKind::WsMan && endpoint.wsman.proxy.as_deref().is_some_and(|p| p != "none") {
        return Ok(());
    }
    tokio::select! {
        r = tokio::time::timeout(budget, tokio::net::TcpStream::connect((host, port))) => match r {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::new(Category::Unreachable, format!("probe: cannot connect to {host}:{port}: {e}"))),
            Err(_) => Err(Error::new(
                Category::Unreachable,
                format!("probe: no TCP connection to {host}:{port} within {budget:?}"),
            )),
        },
        _ = cancel.wait_for(|c| *c) => Err(cancelled_error()),
    }
}

/// Caps glibc's malloc arenas, unless `MALLOC_ARENA_MAX` is set. At one with the default single
/// runtime worker ([`one_worker`]): the run then allocates on that thread alone (the main thread
/// waits), from the main arena, which grows in 128 KiB steps, where a thread's own arena grows a
/// page at a time with an `mprotect` call each (627 of them in a 100-host run, against 137 `brk`
/// calls). At two with more workers, so they do not all queue on one lock; with an arena per
/// thread, freed memory once fragmented a 10,000-host run to 74 MB instead of 28 MB. Call before
/// any thread starts; elsewhere a no-op.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let arenas = if one_worker() { 1 } else { 2 };
        // SAFETY: mallopt only sets a tuning parameter of the allocator; called before threads start.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Whether the async runtime has its default single worker thread: `TOKIO_WORKER_THREADS`,
/// which tokio reads itself, is unset.
pub fn one_worker() -> bool {
    std::env::var_os("TOKIO_WORKER_THREADS").is_none()
}

/// Raises the soft limit on open files towards `wanted`, never above the hard limit (best
/// effort: a run that still hits the limit reports those hosts as failed connections).
pub fn raise_open_file_limit(wanted: u64) {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit only read or write the struct passed by pointer.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= wanted as libc::rlim_t {
                return;
            }
            lim.rlim_cur = (wanted as libc::rlim_t).min(lim.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                warn!("cannot raise the open file limit to {wanted}; a large throttle may run out of sockets");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = wanted;
}

/// Warns about deadlines that do not nest (connect < operation < read timeout < task): the
/// outer one would cut the inner one short and turn a slow answer into a confusing timeout.
fn check_deadlines(hosts: &[HostTask], task_timeout: Duration) {
    let Some(h) = hosts.iter().find(|h| {
        let e = &h.endpoint;
        e.protocol != ProtocolKind::Local
            && (e.connect_timeout >= task_timeout
                || crate::protocol::wsman::transport::read_timeout(e.operation_timeout) >= task_timeout)
    }) else {
        return;
    };
    warn!(
        session = %h.session,
        "task_timeout {task_timeout:?} does not leave room for connect_timeout {:?} and operation_timeout {:?} \
         (plus the reply margin): slow hosts will fail at the task deadline",
        h.endpoint.connect_timeout,
        h.endpoint.operation_timeout
    );
}

async fn open(
    endpoint: &crate::protocol::Endpoint,
    shared: &Shared,
    deadline: tokio::time::Instant,
    cancel: &mut watch::Receiver<bool>,
) -> Result<Box<dyn Session>, Error> {
    let connector = shared.connectors.get(endpoint.protocol)?;
    tokio::select! {
        r = tokio::time::timeout_at(deadline, connector.open(endpoint)) => match r {
            Ok(r) => r,
            Err(_) => Err(Error::new(Category::TimedOut, "the task deadline passed while connecting")),
        },
        _ = cancel.wait_for(|c| *c) => Err(cancelled_error()),
    }
}

async fn stream_query(
    session: &mut dyn Session,
    q: &Arc<QuerySpec>,
    key: &RowKey,
    rows: &mut u64,
    shared: &Shared,
    deadline: tokio::time::Instant,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut stream = session.enumerate(q);
    loop {
        let next = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.next()) => Some(r),
            _ = cancel.wait_for(|c| *c) => None,
        };
        let Some(next) = next else {
            // The request on the wire may already have been carried out: a Pull replaces the
            // server's context, an Enumerate opens one. Hearing the reply lets the session
            // release the context the server holds now, not the one it had; its rows are not
            // written, since the task is cancelled either way.
            let grace = (tokio::time::Instant::now() + IN_FLIGHT_GRACE).min(deadline);
            let _ = tokio::time::timeout_at(grace, stream.next()).await;
            return Err(cancelled_error());
        };
        match next {
            Err(_) => return Err(Error::new(Category::TimedOut, "the task deadline passed during the query")),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(page))) => {
                if page.is_empty() {
                    continue;
                }
                *rows += page.len() as u64;
                shared.rows.fetch_add(page.len() as u64, Ordering::Relaxed);
                shared.write(|w| w.rows(key, &page));
            }
        }
    }
}

/// How long an interrupted query waits for the reply to the request it has sent.
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(2);

/// Closes a session with its own short deadline: removing the session (and releasing open
/// enumerations) matters even after the task deadline or an interruption.
async fn close_session(s: Box<dyn Session>, host: &HostTask) {
    match tokio::time::timeout(Duration::from_secs(10), s.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(computer = %host.computer, "closing the session failed: {e}"),
        Err(_) => debug!(computer = %host.computer, "closing the session timed out"),
    }
}

fn record(
    host: &HostTask,
    q: &QuerySpec,
    started: &str,
    t0: Instant,
    rows: u64,
    attempts: u32,
    err: Option<Error>,
) -> TaskRecord {
    let (status, category, code, message) = match err {
        None => (Status::Ok, None, None, None),
        Some(e) if e.category == Category::Cancelled => (Status::Cancelled, None, None, Some(e.message)),
        Some(e) => (Status::Failed, report::category(e.category), e.code, Some(e.message)),
    };
    TaskRecord {
        session: host.session.to_string(),
        computer: host.computer.to_string(),
        query: q.name.clone(),
        class: q.class_name().to_string(),
        namespace: q.namespace.clone(),
        status,
        category,
        code,
        message,
        rows,
        attempts,
        protocol: host.endpoint.protocol.to_string(),
        started: started.to_string(),
        duration_ms: t0.elapsed().as_millis() as u64,
    }
}

/// The progress display: a bar on a terminal, periodic log lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: AtomicU64,
    last_log: std::sync::Mutex<Instant>,
}

impl Progress {
    fn new(mode: ProgressMode, total: u64) -> Progress {
        let bar = mode.shows_bar().then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} hosts  {msg}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress { bar, total, done: AtomicU64::new(0), last_log: std::sync::Mutex::new(Instant::now()) }
    }

    fn host_done(&self, shared: &Shared) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let rows = shared.rows.load(Ordering::Relaxed);
        let failed = shared.failed_tasks.load(Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_position(done);
            b.set_message(format!("{rows} rows, {failed} failed"));
        } else if let Ok(mut last) = self.last_log.lock() {
            // Under cron a line per host would bury the summary: one line every 30 s.
            if last.elapsed() >= Duration::from_secs(30) {
                *last = Instant::now();
                info!("progress: {done}/{} hosts, {rows} rows, {failed} failed tasks", self.total);
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The current time as ISO 8601 UTC with milliseconds.
pub fn now_iso() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let micros = d.subsec_millis() * 1000;
    cim::DateTime::from_unix(d.as_secs() as i64, micros).to_string()
}

/// A run id that sorts by time and is unique enough across concurrent shards:
/// `20261121T052400Z-1a2b3c`.
pub fn new_run_id() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let t = cim::DateTime::from_unix(d.as_secs() as i64, 0);
    let salt = crate::plan::stable_hash(&format!("{}-{}", std::process::id(), d.as_nanos())) & 0xff_ffff;
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{salt:06x}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Today's date (UTC) as `YYYY-MM-DD`, the `{{date}}` of output paths.
pub fn today() -> String {
    now_iso()[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let d1 = backoff_delay(1).as_millis();
        let d3 = backoff_delay(3).as_millis();
        let d20 = backoff_delay(20).as_millis();
        assert!((375..=625).contains(&d1), "{d1}");
        assert!((1500..=2500).contains(&d3), "{d3}");
        assert!(d20 <= 37_500, "{d20}");
    }

    use std::sync::Mutex;

    use futures::future::BoxFuture;
    use futures::stream::BoxStream;

    use crate::cim::Value;
    use crate::protocol::{Endpoint, Page};

    /// A protocol that fails the first `open` attempts of each computer with a scripted error,
    /// then serves one page per query, and records how many operations run at once per computer.
    #[derive(Default)]
    struct Scripted {
        open_errors: Mutex<HashMap<String, Vec<Error>>>,
        opens: AtomicU64,
        in_flight: Mutex<HashMap<String, usize>>,
        max_in_flight: AtomicU64,
    }

    struct ScriptedSession {
        computer: String,
        proto: Arc<Scripted>,
    }

    struct ScriptedConnector(Arc<Scripted>);

    impl Connector for ScriptedConnector {
        fn open<'a>(&'a self, endpoint: &'a Endpoint) -> BoxFuture<'a, Result<Box<dyn Session>, Error>> {
            Box::pin(async move {
                self.0.opens.fetch_add(1, Ordering::SeqCst);
                let computer = endpoint.computer.clone().unwrap_or_default().to_ascii_lowercase();
                let scripted = self.0.open_errors.lock().unwrap().get_mut(&computer).and_then(|v| v.pop());
                match scripted {
                    Some(e) => Err(e),
                    None => Ok(Box::new(ScriptedSession { computer, proto: self.0.clone() }) as Box<dyn Session>),
                }
            })
        }
    }

    impl Session for ScriptedSession {
        fn enumerate<'a>(&'a mut self, query: &'a QuerySpec) -> BoxStream<'a, Result<Page, Error>> {
            Box::pin(futures::stream::once(async move {
                let now = {
                    let mut m = self.proto.in_flight.lock().unwrap();
                    let n = m.entry(self.computer.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                self.proto.max_in_flight.fetch_max(now as u64, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                *self.proto.in_flight.lock().unwrap().get_mut(&self.computer).unwrap() -= 1;
                let mut i = Instance::new(query.class_name());
                i.push("Name", Value::String(self.computer.as_str().into()));
                Ok(vec![i])
            }))
        }

        fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn host(session: &str, computer: &str, port: Option<u16>, queries: &[&str]) -> HostTask {
        let mut endpoint = Endpoint::local();
        endpoint.protocol = ProtocolKind::WsMan;
        endpoint.computer = Some(computer.to_string());
        endpoint.port = port;
        HostTask {
            session: Arc::from(session),
            computer: Arc::from(computer),
            endpoint,
            credential: None,
            queries: queries.iter().map(|q| Arc::new(QuerySpec::class(q))).collect(),
        }
    }

    fn config(dir: &std::path::Path, per_host: usize, probe: Option<Duration>) -> RunConfig {
        RunConfig {
            out_dir: dir.to_path_buf(),
            job_name: "test".into(),
            run_id: "r".into(),
            date: "2026-11-21".into(),
            started: now_iso(),
            sinks: vec![SinkSpec { kind: crate::job::SinkKind::Csv, path: "{{query}}.csv".into(), array_separator: None }],
            throttle: 16,
            per_host_operations: per_host,
            retries: 2,
            task_timeout: Duration::from_secs(20),
            probe_timeout: probe,
            progress: ProgressMode::Never,
            credentials: HashMap::new(),
            fail_policy: crate::job::fail_if::parse(None).unwrap(),
        }
    }

    fn run(hosts: Vec<HostTask>, cfg: RunConfig, proto: &Arc<Scripted>) -> Vec<TaskRecord> {
        let connectors = Connectors {
            local: Arc::new(ScriptedConnector(proto.clone())),
            wsman: Some(Arc::new(ScriptedConnector(proto.clone()))),
            dcom: None,
        };
        let plan = Plan { total_before_filters: hosts.len(), hosts };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let outcome = rt.block_on(execute(plan, cfg, connectors, cancel_pair())).unwrap();
        crate::report::read(&outcome.report.unwrap()).unwrap().0
    }

    fn busy_host(per_host: usize) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let proto = Arc::new(Scripted::default());
        // The same computer in three sessions (names differ in case only), plus another computer.
        let hosts = vec![
            host("a", "web01", None, &["q1", "q2", "q3"]),
            host("b", "WEB01", None, &["q1", "q2", "q3"]),
            host("c", "web01", None, &["q1", "q2", "q3"]),
            host("a", "web02", None, &["q1"]),
        ];
        let records = run(hosts, config(dir.path(), per_host, None), &proto);
        assert_eq!(records.len(), 10);
        assert!(records.iter().all(|r| r.status == Status::Ok), "{records:?}");
        proto.max_in_flight.load(Ordering::SeqCst)
    }

    #[test]
    fn per_host_operations_bounds_a_computer_across_sessions() {
        assert_eq!(busy_host(1), 1);
        assert_eq!(busy_host(2), 2);
        assert_eq!(busy_host(8), 3);
    }

    #[test]
    fn host_slots_are_dropped_with_their_last_task() {
        let limits = HostLimits::new(1);
        let a = limits.enter("web01");
        let b = limits.enter("WEB01");
        let c = limits.enter("web02");
        assert_eq!(limits.len(), 2);
        assert!(Arc::ptr_eq(&a.semaphore, &b.semaphore));
        drop(a);
        assert_eq!(limits.len(), 2);
        drop(b);
        drop(c);
        assert_eq!(limits.len(), 0);
    }

    #[test]
    fn http_503_is_retried_and_the_attempts_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let proto = Arc::new(Scripted::default());
        let busy = Error::new(Category::ServerFault, "HTTP status 503 without a WS-Man fault").with_code("503");
        let denied = Error::new(Category::AuthFailed, "rejected").with_code("401");
        proto.open_errors.lock().unwrap().insert("busy".into(), vec![busy]);
        proto.open_errors.lock().unwrap().insert("denied".into(), vec![denied.clone(), denied]);
        let hosts = vec![host("s", "busy", None, &["q"]), host("s", "denied", None, &["q"])];
        let records = run(hosts, config(dir.path(), 1, None), &proto);
        let by = |c: &str| records.iter().find(|r| r.computer == c).unwrap();
        assert_eq!((by("busy").status, by("busy").attempts, by("busy").rows), (Status::Ok, 2, 1));
        // Authentication failures are not retried: one attempt, whatever the retry budget.
        assert_eq!((by("denied").status, by("denied").attempts), (Status::Failed, 1));
        assert_eq!(by("denied").category.as_deref(), Some("auth_failed"));
    }

    #[test]
    fn the_probe_fails_a_dead_host_fast_as_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let proto = Arc::new(Scripted::default());
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_port = closed.local_addr().unwrap().port();
        drop(closed);
        let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let live_port = live.local_addr().unwrap().port();
        let hosts = vec![
            host("s", "127.0.0.1", Some(dead_port), &["q1", "q2"]),
            host("t", "127.0.0.1", Some(live_port), &["q1"]),
        ];
        let t0 = Instant::now();
        let records = run(hosts, config(dir.path(), 1, Some(Duration::from_secs(1))), &proto);
        assert!(t0.elapsed() < Duration::from_secs(5));
        let dead: Vec<_> = records.iter().filter(|r| r.session == "s").collect();
        assert_eq!(dead.len(), 2);
        assert!(dead.iter().all(|r| r.category.as_deref() == Some("unreachable") && r.attempts == 0), "{dead:?}");
        // Only the live host's session was opened.
        assert_eq!(proto.opens.load(Ordering::SeqCst), 1);
        assert!(records.iter().any(|r| r.session == "t" && r.status == Status::Ok));
    }

    #[test]
    fn after_an_output_failure_a_query_with_unwritten_rows_is_failed_not_ok() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), 1, None);
        let vars = RunVars { run_id: cfg.run_id.clone(), date: cfg.date.clone() };
        let sinks = SinkSet::new(&cfg.sinks, dir.path(), vars).unwrap();
        let info = RunInfo { cimrun: "0", run_id: "r".into(), job: "test".into(), started: now_iso() };
        let report = ReportWriter::create(dir.path(), &info).unwrap();
        let (cancel, cancelled) = cancel_pair();
        let mut w = Writer::new(sinks, report, cancel);
        let h = host("s", "web01", None, &["before", "after", "empty"]);
        let key = |q: &str| RowKey {
            session: h.session.clone(),
            computer: h.computer.clone(),
            query: q.into(),
            class: "C".into(),
            properties: Vec::new(),
        };
        let page = vec![Instance::new("C").with("Name", Value::String("a".into()))];
        let ok = |q: &Arc<QuerySpec>| record(&h, q, "", Instant::now(), 1, 1, None);

        w.rows(&key("before"), &page);
        w.fail("No space left on device".into());
        assert!(*cancelled.borrow(), "the first output failure stops the run");
        w.rows(&key("after"), &page);
        for q in &h.queries {
            w.record(&h.session, &h.computer, ok(q));
        }
        w.host_done(&h.session, &h.computer);
        let (_, report, output_error, failures) = w.finish();
        drop(report);
        assert_eq!(output_error.as_deref(), Some("No space left on device"));
        let failed: Vec<_> = failures.iter().map(|r| (r.query.as_str(), r.category.as_deref())).collect();
        assert_eq!(failed, [("after", Some("output_error"))]);
        assert_eq!(failures[0].message.as_deref(), Some("No space left on device"));
    }

    #[test]
    fn run_ids_and_dates_have_their_shape() {
        let id = new_run_id();
        assert_eq!(id.len(), 23, "{id}");
        assert_eq!(&id[8..9], "T");
        let d = today();
        assert_eq!(d.len(), 10);
        assert_eq!(&d[4..5], "-");
    }
}
