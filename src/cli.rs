//! The command line: `run`, `validate`, `plan`, `query`, `merge`, `schema`.
//!
//! Exit codes (also in the README): 0 every task succeeded; 1 the run finished but tasks failed
//! (as `run.fail_if` counts failure); 2 invalid job file or usage; 3 the run could not proceed
//! (output not writable, a credential could not be read); 130/143 interrupted by SIGINT/SIGTERM.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use tracing::warn;

use crate::job::{self, LoadedJob};
use crate::plan::{self, Selection, Shard};
use crate::protocol::{self, Category, Connector, Credential, Endpoint, ProtocolKind};
use crate::report::{Status, Summary};
use crate::run::{self, Connectors, ProgressMode, RunConfig};
use crate::sink;

/// Exit code: every task succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit code: the run finished but some tasks failed.
pub const EXIT_TASKS_FAILED: i32 = 1;
/// Exit code: invalid job file or usage.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the run could not proceed.
pub const EXIT_CANNOT_PROCEED: i32 = 3;

/// Query CIM/WMI across a fleet of Windows hosts, as declared in a job file.
#[derive(Debug, Parser)]
#[command(name = "cimrun", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a job: query every computer and write the outputs and run.json.
    Run(RunArgs),
    /// Check a job file without contacting any host.
    Validate {
        /// The job file.
        job: PathBuf,
        /// Override a job setting, e.g. `run.throttle=8` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print the expanded task list: one line per (session, computer, query).
    Plan {
        job: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Query one computer ad hoc (default: the local machine), like Get-CimInstance.
    Query(QueryArgs),
    /// Combine the output directories of `--shard I/N` runs into one: outputs of the same name
    /// are concatenated (one CSV header, one JSON array), run.json reports merged and re-summed.
    Merge {
        /// The shards' output directories.
        #[arg(required = true, value_name = "OUT_DIR")]
        inputs: Vec<PathBuf>,
        /// Where to write the merged outputs.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Print the JSON Schema of the job file.
    Schema,
}

#[derive(Debug, Args)]
struct SelectArgs {
    /// Only computers matching this glob (`*`, `?`; repeatable, any may match).
    #[arg(long, value_name = "PATTERN")]
    limit: Vec<String>,
    /// Only shard I of N (0-based), by a stable hash of the computer name.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The job file.
    job: PathBuf,
    /// Output directory (default: `out/<run id>`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Override a job setting, e.g. `run.throttle=8` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[command(flatten)]
    select: SelectArgs,
    /// Progress bar: on a terminal (auto), always, or never.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    /// Re-run only the (computer, query) tasks that failed or were cancelled in this earlier run.json.
    #[arg(long, value_name = "RUN_JSON")]
    retry_failed: Option<PathBuf>,
}

/// Output format of `cimrun query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
    Ndjson,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// Computer to query (default: the local machine).
    computer: Option<String>,
    /// CIM class to enumerate.
    #[arg(long, required_unless_present = "wql", conflicts_with = "wql")]
    class: Option<String>,
    /// A WQL SELECT instead of --class.
    #[arg(long = "query", value_name = "WQL")]
    wql: Option<String>,
    /// CIM namespace.
    #[arg(long, default_value = "root/cimv2")]
    namespace: String,
    /// Properties to return (repeatable or comma-separated).
    #[arg(long = "property", value_delimiter = ',')]
    properties: Vec<String>,
    /// A WQL condition (the text after WHERE).
    #[arg(long, conflicts_with = "wql")]
    filter: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// WS-Man port (default 5985, or 5986 with --ssl).
    #[arg(long)]
    port: Option<u16>,
    /// Use HTTPS.
    #[arg(long)]
    ssl: bool,
    /// Authentication mechanism.
    #[arg(long, value_enum, default_value_t = job::Authentication::Default)]
    authentication: job::Authentication,
    /// User name (`DOMAIN\user`); the password comes from --password-env.
    #[arg(long)]
    username: Option<String>,
    /// Environment variable holding the password.
    #[arg(long, value_name = "VAR", default_value = "CIMRUN_PASSWORD")]
    password_env: String,
    /// Accept a certificate from an untrusted CA.
    #[arg(long)]
    skip_ca_check: bool,
    /// Accept a certificate whose name does not match.
    #[arg(long)]
    skip_cn_check: bool,
    /// Allow Basic or unencrypted bodies over plain HTTP.
    #[arg(long)]
    allow_unencrypted: bool,
    /// Server-side operation timeout.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    operation_timeout: Duration,
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    let quiet_default = matches!(&cli.command, Command::Run(a) if a.progress.shows_bar());
    init_logging(quiet_default);
    match cli.command {
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&job::schema()).unwrap_or_default());
            EXIT_OK
        }
        Command::Validate { job, set } => match load(&job, &set) {
            Ok(_) => {
                eprintln!("{}: ok", job.display());
                EXIT_OK
            }
            Err(code) => code,
        },
        Command::Plan { job, set, select } => match load(&job, &set) {
            Ok(loaded) => print_plan(&loaded, &select),
            Err(code) => code,
        },
        Command::Run(args) => match load(&args.job, &args.set) {
            Ok(loaded) => runtime().map(|rt| rt.block_on(on_worker(run_job(loaded, args)))).unwrap_or(EXIT_CANNOT_PROCEED),
            Err(code) => code,
        },
        Command::Merge { inputs, out } => merge(&inputs, &out),
        Command::Query(args) => runtime().map(|rt| rt.block_on(query(args))).unwrap_or(EXIT_CANNOT_PROCEED),
    }
}

fn merge(inputs: &[PathBuf], out: &std::path::Path) -> i32 {
    match crate::merge::merge(inputs, out) {
        Ok(outcome) => {
            eprintln!("cimrun: merged {} shards into {}: {} files", inputs.len(), out.display(), outcome.files.len());
            if let Some(s) = &outcome.summary {
                eprintln!("cimrun: {}", s.line());
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("cimrun: error: merge: {e}");
            EXIT_CANNOT_PROCEED
        }
    }
}

/// The async runtime: one worker thread unless `TOKIO_WORKER_THREADS` says otherwise.
///
/// The runtime's work is the parsing of responses, a few µs of CPU per instance: one thread
/// keeps up with 100,000 instances a second, more than a fleet of WinRM servers hands out, and a
/// second one only adds wake-ups and cross-thread frees. Measured on a simulated fleet of 1,000
/// hosts (BENCHMARKS.md): 8% less CPU with no latency, 12-26% less with 50 ms, and less wall
/// time. The blocking pool and the signal watcher are separate threads either way.
fn runtime() -> Option<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if run::one_worker() {
        builder.worker_threads(1);
    }
    match builder.enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("cimrun: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Runs `job` as a task of the runtime rather than on the calling thread, so that starting
/// hosts and collecting their ends happen on the thread that runs them, not through a wake-up
/// of the main thread per host.
async fn on_worker(job: impl std::future::Future<Output = i32> + Send + 'static) -> i32 {
    match tokio::spawn(job).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cimrun: error: the run ended abnormally: {e}");
            EXIT_CANNOT_PROCEED
        }
    }
}

/// Logs go to stderr. With a progress bar only warnings show (the bar is the progress);
/// without one, info lines (start, periodic progress, end) so cron mail stays short but useful.
fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("cimrun={default},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

fn load(path: &std::path::Path, set: &[String]) -> Result<LoadedJob, i32> {
    job::load(path, set).map_err(|diags| {
        // A terminal gets miette's framed rendering; logs and scripts the grep-able lines.
        if std::io::stderr().is_terminal() {
            let color = std::env::var_os("NO_COLOR").is_none();
            eprint!("{}", diags.render_graphical(color));
        } else {
            eprintln!("{diags}");
        }
        EXIT_USAGE
    })
}

fn selection(s: &SelectArgs) -> Selection {
    Selection { limit: s.limit.clone(), shard: s.shard, only: None }
}

/// The plan of a job, or the exit code after reporting why it cannot be built.
fn build_plan(loaded: &LoadedJob, select: &Selection) -> Result<plan::Plan, i32> {
    plan::build(loaded, select).map_err(|e| {
        eprintln!("{}: error: {e}", loaded.path.display());
        EXIT_USAGE
    })
}

fn print_plan(loaded: &LoadedJob, select: &SelectArgs) -> i32 {
    let plan = match build_plan(loaded, &selection(select)) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut out = std::io::stdout().lock();
    for h in &plan.hosts {
        let target = plan::describe_endpoint(h);
        for q in &h.queries {
            let line = format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                h.session, h.computer, q.name, target, q.namespace, q.wql
            );
            if out.write_all(line.as_bytes()).is_err() {
                return EXIT_OK; // stdout closed (e.g. `| head`): not an error
            }
        }
    }
    eprintln!(
        "{} tasks on {} hosts ({} of {} computers selected)",
        plan.task_count(),
        plan.hosts.len(),
        plan.hosts.len(),
        plan.total_before_filters
    );
    EXIT_OK
}

fn connectors() -> Connectors {
    Connectors {
        local: Arc::new(protocol::local::LocalConnector),
        wsman: Some(Arc::new(protocol::wsman::transport::connector())),
        dcom: Some(Arc::new(protocol::dcom::DcomConnector::default())),
    }
}

/// Certificate checks turned off are the job's choice, but whoever reads the results should
/// find it in the log: one warning per session (not per computer, which would bury it).
fn warn_skipped_tls_checks<'a>(sessions: impl IntoIterator<Item = (&'a str, &'a Endpoint)>) {
    let mut warned = std::collections::HashSet::new();
    for (session, e) in sessions {
        let w = &e.wsman;
        if e.protocol != ProtocolKind::WsMan || !w.use_ssl || !(w.skip_ca_check || w.skip_cn_check) {
            continue;
        }
        if warned.insert(session.to_string()) {
            let skipped: Vec<&str> =
                [(w.skip_ca_check, "skip_ca_check"), (w.skip_cn_check, "skip_cn_check")]
                    .into_iter()
                    .filter_map(|(on, name)| on.then_some(name))
                    .collect();
            warn!(
                session = %session,
                "TLS certificate checks are off ({}): the servers' identity is not verified",
                skipped.join(", ")
            );
        }
    }
}

/// Resolves the credentials the plan uses, once each.
fn resolve_credentials(loaded: &LoadedJob, plan: &plan::Plan) -> Result<HashMap<String, Credential>, String> {
    let mut out = HashMap::new();
    for h in &plan.hosts {
        let Some(name) = &h.credential else { continue };
        // The local machine needs no password: a job that also lists a fleet runs locally as is.
        if h.endpoint.protocol == ProtocolKind::Local || out.contains_key(name) {
            continue;
        }
        let spec = loaded.file.credentials.get(name).ok_or_else(|| format!("credential {name} is not defined"))?;
        let cred = job::secrets::resolve(spec, &loaded.base_dir).map_err(|e| format!("credential {name}: {e}"))?;
        out.insert(name.clone(), cred);
    }
    Ok(out)
}

async fn run_job(loaded: LoadedJob, args: RunArgs) -> i32 {
    let t0 = Instant::now();
    let mut select = selection(&args.select);
    if let Some(previous) = &args.retry_failed {
        match retry_selection(&loaded, &select, previous) {
            Ok(only) => select.only = Some(only),
            Err(code) => return code,
        }
    }
    let plan = match build_plan(&loaded, &select) {
        Ok(p) => p,
        Err(code) => return code,
    };
    warn_skipped_tls_checks(plan.hosts.iter().map(|h| (&*h.session, &h.endpoint)));
    let credentials = match resolve_credentials(&loaded, &plan) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cimrun: error: {e}");
            return EXIT_CANNOT_PROCEED;
        }
    };
    let policy = match job::fail_if::parse(loaded.file.run.fail_if.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: error: run.fail_if: {e}", loaded.path.display());
            return EXIT_USAGE;
        }
    };
    let run_id = run::new_run_id();
    let out_dir = args.out.clone().unwrap_or_else(|| PathBuf::from("out").join(&run_id));
    let settings = &loaded.file.run;
    // No sinks: SinkSet writes `{{query}}.csv`, as the job-file reference says.
    let sinks = loaded.file.sinks.clone();
    let cfg = RunConfig {
        out_dir: out_dir.clone(),
        job_name: loaded.path.display().to_string(),
        run_id,
        date: run::today(),
        started: run::now_iso(),
        sinks,
        throttle: settings.throttle,
        per_host_operations: settings.per_host_operations,
        retries: settings.retries,
        task_timeout: settings.task_timeout.map(|d| d.0).unwrap_or(plan::DEFAULT_TASK_TIMEOUT),
        probe_timeout: settings.probe_timeout.map(|d| d.0),
        progress: args.progress,
        credentials,
        fail_policy: policy,
    };
    let cancel = run::cancel_pair();
    spawn_signal_handler(cancel.0.clone());
    let outcome = match run::execute(plan, cfg, connectors(), cancel).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cimrun: error: {e}");
            return EXIT_CANNOT_PROCEED;
        }
    };
    print_summary(&outcome.summary, &outcome.outputs, outcome.report.as_deref(), t0.elapsed());
    print_failures(&outcome.failures, outcome.summary.failed, outcome.report.as_deref());
    if outcome.interrupted.is_some() {
        eprintln!("cimrun: interrupted; outputs hold what was collected, run.json marks the rest cancelled");
    }
    if let Some(e) = &outcome.output_error {
        eprintln!("cimrun: error: {e}");
    }
    outcome.exit_code
}

/// The tasks `--retry-failed` runs again. From a finished run.json: those not ok. From the
/// temporary report a killed run leaves: every task of the job not recorded ok, which is
/// sound only when each output file is completed with its host (named after the computer).
fn retry_selection(
    loaded: &LoadedJob,
    select: &Selection,
    previous: &std::path::Path,
) -> Result<std::collections::HashSet<(String, String, String)>, i32> {
    let cannot_read = |e: std::io::Error| {
        eprintln!("cimrun: error: cannot read {}: {e}", previous.display());
        if !previous.exists() {
            eprintln!("cimrun: a run that was killed leaves its report as .run.json.tmp-<run id> beside it; pass that file");
        }
        EXIT_USAGE
    };
    let key = |t: crate::report::TaskRecord| (t.session, t.computer, t.query);
    if !crate::report::is_partial(previous) {
        let (tasks, _) = crate::report::read(previous).map_err(cannot_read)?;
        let only: std::collections::HashSet<_> = tasks.into_iter().filter(|t| t.status != Status::Ok).map(key).collect();
        eprintln!("cimrun: retrying {} failed or cancelled tasks from {}", only.len(), previous.display());
        return Ok(only);
    }
    if !sink::SinkSet::all_per_computer(&loaded.file.sinks) {
        eprintln!(
            "cimrun: error: {} is the report of a run that did not finish; its output files shared by all computers were never completed, so run the whole job again",
            previous.display()
        );
        return Err(EXIT_USAGE);
    }
    let done: std::collections::HashSet<_> = crate::report::read_partial(previous)
        .map_err(cannot_read)?
        .into_iter()
        .filter(|t| t.status == Status::Ok)
        .map(key)
        .collect();
    let plan = build_plan(loaded, select)?;
    let only: std::collections::HashSet<_> = plan
        .hosts
        .iter()
        .flat_map(|h| h.queries.iter().map(move |q| (h.session.to_string(), h.computer.to_string(), q.name.clone())))
        .filter(|k| !done.contains(k))
        .collect();
    eprintln!(
        "cimrun: retrying {} tasks the unfinished run {} did not complete ({} were ok)",
        only.len(),
        previous.display(),
        done.len()
    );
    Ok(only)
}

/// First Ctrl-C / SIGTERM: stop starting hosts, close sessions, finalize outputs.
/// A second one exits at once (temporary files are left, never a truncated final file).
fn spawn_signal_handler(cancel: run::CancelHandle) {
    // On a thread and runtime of its own: the run's thread also writes the outputs, and a
    // second signal must end the process even while a stalled disk holds that thread.
    let spawned = std::thread::Builder::new().name("cimrun-signals".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_io().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("cimrun: cannot watch for Ctrl-C: {e}");
                return;
            }
        };
        rt.block_on(async move {
            let mut count = 0;
            loop {
                let code = wait_signal().await;
                count += 1;
                if count == 1 {
                    eprintln!("cimrun: stopping: closing sessions and finishing outputs (again to exit at once)");
                    cancel.cancel(code);
                } else {
                    std::process::exit(code);
                }
            }
        });
    });
    if let Err(e) = spawned {
        eprintln!("cimrun: cannot watch for Ctrl-C: {e}");
    }
}

#[cfg(unix)]
async fn wait_signal() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return 130;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => 130,
        _ = term.recv() => 143,
    }
}

#[cfg(not(unix))]
async fn wait_signal() -> i32 {
    let _ = tokio::signal::ctrl_c().await;
    130
}

fn print_summary(s: &Summary, outputs: &[PathBuf], report: Option<&std::path::Path>, elapsed: Duration) {
    eprintln!("cimrun: {} in {:.1}s", s.line(), elapsed.as_secs_f64());
    if !outputs.is_empty() {
        let shown: Vec<String> = outputs.iter().take(8).map(|p| p.display().to_string()).collect();
        let more = if outputs.len() > 8 { format!(" (+{} more)", outputs.len() - 8) } else { String::new() };
        eprintln!("cimrun: wrote {}{more}", shown.join(", "));
    }
    if let Some(r) = report {
        eprintln!("cimrun: report {}", r.display());
    }
}

/// Lists up to 20 failed tasks, so a cron mail says what to fix without opening run.json.
/// The first failed tasks, and how many more `run.json` lists.
fn print_failures(failed: &[crate::report::TaskRecord], total: usize, report: Option<&std::path::Path>) {
    for t in failed {
        eprintln!(
            "  failed: {} {} {}: {}: {}",
            t.session,
            t.computer,
            t.query,
            t.category_name(),
            t.message.as_deref().unwrap_or("")
        );
    }
    if total > failed.len() {
        let place = report.map(|p| format!(" in {}", p.display())).unwrap_or_default();
        eprintln!("  … and {} more{place}", total - failed.len());
    }
}

async fn query(args: QueryArgs) -> i32 {
    let def = job::QueryDef {
        name: args.class.clone().unwrap_or_else(|| "query".into()),
        class: args.class.clone(),
        query: args.wql.clone(),
        namespace: Some(args.namespace.clone()),
        properties: args.properties.clone(),
        filter: args.filter.clone(),
        sessions: Vec::new(),
        resource_uri: None,
        key_only: false,
        arrays: Vec::new(),
    };
    let spec = match plan::query_spec(&def) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cimrun: error: {e}");
            return EXIT_USAGE;
        }
    };
    let mut endpoint = Endpoint::local();
    let computer = args.computer.clone().filter(|c| !c.eq_ignore_ascii_case("localhost") && c != ".");
    if let Some(c) = &computer {
        endpoint.computer = Some(c.clone());
        endpoint.protocol = ProtocolKind::WsMan;
        endpoint.port = args.port;
        endpoint.wsman.use_ssl = args.ssl;
        endpoint.wsman.skip_ca_check = args.skip_ca_check;
        endpoint.wsman.skip_cn_check = args.skip_cn_check;
        endpoint.wsman.allow_unencrypted = args.allow_unencrypted;
        endpoint.operation_timeout = args.operation_timeout;
        endpoint.authentication = plan::auth_mechanism(args.authentication);
        if let Some(user) = &args.username {
            let Ok(pw) = std::env::var(&args.password_env) else {
                eprintln!("cimrun: error: --username needs the password in ${}", args.password_env);
                return EXIT_USAGE;
            };
            endpoint.credential = Some(Credential { username: user.clone(), password: pw.into() });
        }
    }
    let display = computer.clone().unwrap_or_else(|| plan::LOCALHOST.to_string());
    warn_skipped_tls_checks([(display.as_str(), &endpoint)]);
    let conns = connectors();
    let connector: &Arc<dyn Connector> = match endpoint.protocol {
        ProtocolKind::Local => &conns.local,
        _ => match &conns.wsman {
            Some(c) => c,
            None => return EXIT_CANNOT_PROCEED,
        },
    };
    let mut writer = StdoutWriter::new(args.format, &spec.wql.properties);
    let result = async {
        let mut session = connector.open(&endpoint).await?;
        let r = async {
            let mut stream = session.enumerate(&spec);
            use futures::StreamExt;
            while let Some(page) = stream.next().await {
                for inst in page? {
                    writer
                        .write_row(&display, &inst)
                        .map_err(|e| protocol::Error::new(Category::OutputError, e.to_string()))?;
                }
            }
            Ok::<(), protocol::Error>(())
        }
        .await;
        let _ = session.close().await;
        r
    }
    .await;
    let finished = writer.finish().map_err(|e| protocol::Error::new(Category::OutputError, e.to_string()));
    match result.and(finished) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            if e.category == Category::OutputError {
                warn!("{e}");
                return EXIT_CANNOT_PROCEED;
            }
            eprintln!("cimrun: {display}: {e}");
            EXIT_TASKS_FAILED
        }
    }
}

/// `cimrun query`'s output: the sinks' row writers over stdout.
enum StdoutWriter {
    Table(sink::TableWriter<std::io::Stdout>),
    Csv(sink::CsvWriter<std::io::Stdout>),
    Json(sink::JsonWriter<std::io::Stdout>),
    Ndjson(sink::NdjsonWriter<std::io::Stdout>),
}

impl StdoutWriter {
    fn new(format: Format, properties: &[String]) -> StdoutWriter {
        let out = std::io::stdout();
        match format {
            Format::Table => StdoutWriter::Table(sink::TableWriter::new(out, properties, Default::default())),
            Format::Csv => StdoutWriter::Csv(sink::CsvWriter::new(out, properties, &Default::default())),
            Format::Json => StdoutWriter::Json(sink::JsonWriter::new(out, properties)),
            Format::Ndjson => StdoutWriter::Ndjson(sink::NdjsonWriter::new(out, properties)),
        }
    }

    fn write_row(&mut self, computer: &str, instance: &crate::cim::Instance) -> std::io::Result<()> {
        match self {
            StdoutWriter::Table(w) => w.write_row(computer, instance),
            StdoutWriter::Csv(w) => w.write_row(computer, instance),
            StdoutWriter::Json(w) => w.write_row(computer, instance),
            StdoutWriter::Ndjson(w) => w.write_row(computer, instance),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            StdoutWriter::Table(w) => w.finish().map(drop),
            StdoutWriter::Csv(w) => w.finish().map(drop),
            StdoutWriter::Json(w) => w.finish().map(drop),
            StdoutWriter::Ndjson(w) => w.finish().map(drop),
        }
    }
}
