//! The files of a run: one per rendered path, written to a temporary name and renamed into
//! place when complete.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::cim::Instance;
use crate::job::{SinkKind, SinkSpec};

use super::csv::{CsvOptions, CsvWriter, read_header};
use super::json::{JsonWriter, NdjsonWriter, resume_point};
use super::path::{PathRenderer, sanitize};
use super::value::listed;
use super::{Operation, RowContext, RunVars, SinkError};

/// The sink used when a job declares none.
const DEFAULT_TEMPLATE: &str = "{{query}}.csv";
/// Longest file name most file systems accept, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// The output files of a run, driven from one thread.
///
/// A file is created when its first row arrives, under a temporary name in its own directory
/// (`.NAME.tmp-RUNID`), and renamed to its name once complete. A file whose path template uses
/// `{{computer}}` is complete when every session that wrote to it has reported
/// [`task_done`](SinkSet::task_done) for that computer, so a large fleet does not hold a file
/// open per host; if the same path gets rows again later (the same computer in another
/// session), the finished file is copied to a temporary name and continued there (CSV without
/// a second header, JSON inside the same array), and renamed over it when complete again.
/// Every other file is completed by [`finish`](SinkSet::finish).
///
/// When a file fails (disk full, I/O error), its temporary file is left as is, never renamed,
/// its later rows are refused with [`SinkError::Failed`], and every other file carries on.
pub struct SinkSet {
    out_dir: PathBuf,
    /// `out_dir` with symbolic links resolved, to check where new directories really are.
    real_out_dir: PathBuf,
    run_id: String,
    renderer: PathRenderer,
    sinks: Vec<SinkConf>,
    /// Files being written, by path relative to `out_dir`.
    open: HashMap<PathBuf, OpenFile>,
    /// Open per-computer files, by computer, so `task_done` finds them.
    by_computer: HashMap<String, Vec<PathBuf>>,
    /// Files completed in this run, by relative path, with the sink that wrote them.
    done: HashMap<PathBuf, usize>,
    failed: HashSet<PathBuf>,
    /// Each sink's rendered paths by the values of the variables its template uses: rows
    /// come in pages from many hosts at once, and rendering a template costs more than
    /// writing a page of rows.
    paths: Vec<PathCache>,
    durable: bool,
    continue_existing: bool,
}

/// Rendered paths of one sink, keyed by the row's variables that its template uses.
#[derive(Default)]
struct PathCache {
    paths: HashMap<String, PathBuf>,
    /// Built for each lookup, kept to reuse its allocation.
    key: String,
}

/// Most paths a cache keeps: a template naming each computer has one per host, and a fleet
/// can be large; past this the cache starts over.
const MAX_CACHED_PATHS: usize = 4096;

impl PathCache {
    fn get(&mut self, sink: usize, renderer: &PathRenderer, row: &RowContext) -> Result<PathBuf, SinkError> {
        let Some(uses) = renderer.template(sink).map(|t| t.uses) else {
            return renderer.render(sink, row);
        };
        self.key.clear();
        for (used, value) in uses.iter().zip([row.session, row.computer, row.query, row.class]) {
            if *used {
                // Length-prefixed, so no two value lists make the same key.
                self.key.push_str(itoa::Buffer::new().format(value.len()));
                self.key.push(':');
                self.key.push_str(value);
            }
        }
        if let Some(path) = self.paths.get(self.key.as_str()) {
            return Ok(path.clone());
        }
        let path = renderer.render(sink, row)?;
        if self.paths.len() >= MAX_CACHED_PATHS {
            self.paths.clear();
        }
        self.paths.insert(self.key.clone(), path.clone());
        Ok(path)
    }
}

struct SinkConf {
    kind: SinkKind,
    csv: CsvOptions,
    uses_computer: bool,
    template: String,
}

struct OpenFile {
    sink: usize,
    temp: PathBuf,
    path: PathBuf,
    writer: FileWriter,
    /// Sessions that wrote to this per-computer file and have not reported `task_done`.
    pending: Vec<String>,
    /// The (session, query) pairs whose rows are in this per-computer file.
    queries: Vec<(String, String)>,
}

enum FileWriter {
    Csv(CsvWriter<BufWriter<File>>),
    Json(JsonWriter<BufWriter<File>>),
    Ndjson(NdjsonWriter<BufWriter<File>>),
}

impl FileWriter {
    fn write_rows(&mut self, row: &RowContext, instances: &[Instance]) -> io::Result<()> {
        match self {
            FileWriter::Csv(w) => instances.iter().try_for_each(|i| w.write_row(row.computer, i)),
            // The property list's repeats are left out once per page, not per row.
            FileWriter::Json(w) => {
                let properties = listed(row.properties);
                instances.iter().try_for_each(|i| w.write_row_with(row.computer, i, &properties))
            }
            FileWriter::Ndjson(w) => {
                let properties = listed(row.properties);
                instances.iter().try_for_each(|i| w.write_row_with(row.computer, i, &properties))
            }
        }
    }

    fn finish(self) -> io::Result<BufWriter<File>> {
        match self {
            FileWriter::Csv(w) => w.finish(),
            FileWriter::Json(w) => w.finish(),
            FileWriter::Ndjson(w) => w.finish(),
        }
    }
}

/// What [`SinkSet::finish_all`] did: the files now complete, and every error met on the way.
#[derive(Debug)]
pub struct FinishOutcome {
    /// Every file completed in the run, sorted.
    pub written: Vec<PathBuf>,
    /// Files that could not be completed.
    pub errors: Vec<SinkError>,
}

impl SinkSet {
    /// Checks the sinks' path templates without touching the disk (for `cimrun validate`): an
    /// unknown variable, a syntax error or a path leaving the output directory is an error.
    pub fn check_templates(specs: &[SinkSpec]) -> Result<(), SinkError> {
        let vars = RunVars { run_id: "run".to_string(), date: "date".to_string() };
        PathRenderer::new(specs.iter().map(|s| s.path.as_str()), &vars).map(|_| ())
    }

    /// Whether every sink's file is named after the computer, so each is completed when its
    /// host ends (without sinks, the default `{{query}}.csv` is shared by all hosts).
    pub fn all_per_computer(specs: &[SinkSpec]) -> bool {
        let vars = RunVars { run_id: "run".to_string(), date: "date".to_string() };
        !specs.is_empty()
            && PathRenderer::new(specs.iter().map(|s| s.path.as_str()), &vars)
                .is_ok_and(|r| (0..specs.len()).all(|i| r.template(i).is_some_and(|t| t.uses_computer)))
    }

    /// Compiles the path templates and prepares `out_dir` (created if missing, and checked to
    /// be writable, so a run that cannot write fails before contacting any host). With no
    /// specs, each query is written as `{{query}}.csv`.
    pub fn new(specs: &[SinkSpec], out_dir: &Path, vars: RunVars) -> Result<SinkSet, SinkError> {
        let default;
        let specs = if specs.is_empty() {
            default = [SinkSpec { kind: SinkKind::Csv, path: DEFAULT_TEMPLATE.to_string(), array_separator: None }];
            &default[..]
        } else {
            specs
        };
        let renderer = PathRenderer::new(specs.iter().map(|s| s.path.as_str()), &vars)?;
        let sinks = specs
            .iter()
            .enumerate()
            .map(|(i, s)| SinkConf {
                kind: s.kind,
                csv: match &s.array_separator {
                    Some(sep) => CsvOptions { array_separator: sep.clone() },
                    None => CsvOptions::default(),
                },
                uses_computer: renderer.template(i).is_some_and(|t| t.uses_computer),
                template: s.path.clone(),
            })
            .collect();
        fs::create_dir_all(out_dir).map_err(|e| io_err(out_dir, Operation::CreateDir, e))?;
        let real_out_dir = fs::canonicalize(out_dir).map_err(|e| io_err(out_dir, Operation::CreateDir, e))?;
        let run_id = sanitize(&vars.run_id);
        let probe = out_dir.join(format!(".cimrun-probe.tmp-{run_id}"));
        create_new(&probe).map_err(|e| io_err(&probe, Operation::Create, e))?;
        let _ = fs::remove_file(&probe);
        Ok(SinkSet {
            paths: specs.iter().map(|_| PathCache::default()).collect(),
            durable: false,
            continue_existing: false,
            out_dir: out_dir.to_path_buf(),
            real_out_dir,
            run_id,
            renderer,
            sinks,
            open: HashMap::new(),
            by_computer: HashMap::new(),
            done: HashMap::new(),
            failed: HashSet::new(),
        })
    }

    /// Also survive a power loss or OS crash: sync each file to disk before renaming it, and
    /// its directory after. Off by default: an interrupted or killed process never leaves a
    /// truncated file under a final name either way (the data is in the kernel before the
    /// rename), and a sync per file costs milliseconds, minutes over a fleet of per-host files.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    /// Continue files already in the output directory (from an earlier run) instead of
    /// replacing them, as a rerun that completes an interrupted or partly failed run needs.
    /// A file that does not end as this program writes them is an error, never overwritten.
    pub fn set_continue_existing(&mut self, on: bool) {
        self.continue_existing = on;
    }

    /// Writes one instance to every sink. A failing sink does not keep the row from the
    /// others; the first error is returned.
    pub fn write(&mut self, row: &RowContext, instance: &Instance) -> Result<(), SinkError> {
        self.write_rows(row, std::slice::from_ref(instance))
    }

    /// Writes a page of instances of one query to every sink: the file of each sink is looked
    /// up once for the page. A failing sink does not keep the rows from the others; the first
    /// error is returned.
    pub fn write_rows(&mut self, row: &RowContext, instances: &[Instance]) -> Result<(), SinkError> {
        let mut first = None;
        for sink in 0..self.sinks.len() {
            if let Err(e) = self.write_to(sink, row, instances) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn write_to(&mut self, sink: usize, row: &RowContext, instances: &[Instance]) -> Result<(), SinkError> {
        if instances.is_empty() {
            return Ok(());
        }
        let rel = match self.paths.get_mut(sink) {
            Some(cache) => cache.get(sink, &self.renderer, row)?,
            None => self.renderer.render(sink, row)?,
        };
        if self.failed.contains(&rel) {
            return Err(SinkError::Failed { path: self.out_dir.join(&rel) });
        }
        if !self.open.contains_key(&rel) {
            let file = self.open_file(sink, &rel, row)?;
            if self.sinks.get(sink).is_some_and(|s| s.uses_computer) {
                self.by_computer.entry(row.computer.to_string()).or_default().push(rel.clone());
            }
            self.open.insert(rel.clone(), file);
        }
        let Some(file) = self.open.get_mut(&rel) else {
            return Ok(());
        };
        if file.sink != sink {
            let first = file.sink;
            return Err(self.shared(&rel, first, sink));
        }
        if self.sinks.get(sink).is_some_and(|s| s.uses_computer) {
            if !file.pending.iter().any(|s| s == row.session) {
                file.pending.push(row.session.to_string());
            }
            if !file.queries.iter().any(|(s, q)| s == row.session && q == row.query) {
                file.queries.push((row.session.to_string(), row.query.to_string()));
            }
        }
        if let Err(e) = file.writer.write_rows(row, instances) {
            let path = file.path.clone();
            self.fail(&rel);
            return Err(io_err(&path, Operation::Write, e));
        }
        Ok(())
    }

    /// Reports that every query of `computer` in `session` is finished: its per-computer files
    /// that no other session is still writing are completed now.
    pub fn task_done(&mut self, session: &str, computer: &str) -> Result<(), SinkError> {
        let Some(paths) = self.by_computer.remove(computer) else {
            return Ok(());
        };
        let mut keep = Vec::new();
        let mut first = None;
        for rel in paths {
            let Some(file) = self.open.get_mut(&rel) else { continue };
            file.pending.retain(|s| s != session);
            if file.pending.is_empty() {
                if let Err(e) = self.complete(&rel) {
                    first.get_or_insert(e);
                }
            } else {
                keep.push(rel);
            }
        }
        if !keep.is_empty() {
            self.by_computer.insert(computer.to_string(), keep);
        }
        first.map_or(Ok(()), Err)
    }

    /// Gives up the per-computer files holding rows of a query that did not finish (failed or
    /// interrupted part-way): they are never completed, so no final name holds part of a
    /// result, and their temporary files keep what was written. Returns `None` when no file was
    /// given up, else the other queries of `session` whose rows were in those files (their
    /// results are gone with them). Files not named after the computer are shared by every
    /// host and stay as they are.
    pub fn abandon(&mut self, session: &str, computer: &str, query: &str) -> Option<Vec<String>> {
        let paths = self.by_computer.remove(computer)?;
        let mut abandoned = false;
        let mut lost = Vec::new();
        let mut keep = Vec::new();
        for rel in paths {
            let Some(file) = self.open.get(&rel) else { continue };
            if !file.queries.iter().any(|(s, q)| s == session && q == query) {
                keep.push(rel);
                continue;
            }
            for (s, q) in &file.queries {
                if s == session && q != query && !lost.contains(q) {
                    lost.push(q.clone());
                }
            }
            if let Some(file) = self.open.remove(&rel) {
                abandoned = true;
                tracing::warn!(
                    temp = %file.temp.display(),
                    "{session} {computer} {query} did not finish: its output file is left unfinished"
                );
            }
        }
        if !keep.is_empty() {
            self.by_computer.insert(computer.to_string(), keep);
        }
        abandoned.then_some(lost)
    }

    /// Completes every file still open and returns all completed files, or the first error
    /// (after completing every other file; see [`finish_all`](SinkSet::finish_all)).
    pub fn finish(self) -> Result<Vec<PathBuf>, SinkError> {
        let outcome = self.finish_all();
        let mut errors = outcome.errors.into_iter();
        match errors.next() {
            None => Ok(outcome.written),
            Some(first) => {
                for e in errors {
                    tracing::error!("{e}");
                }
                Err(first)
            }
        }
    }

    /// Completes every file still open, carrying on past failures, and reports them all.
    pub fn finish_all(mut self) -> FinishOutcome {
        let mut open: Vec<PathBuf> = self.open.keys().cloned().collect();
        open.sort();
        let errors = open.iter().filter_map(|rel| self.complete(rel).err()).collect();
        let mut written: Vec<PathBuf> = self.done.keys().map(|rel| self.out_dir.join(rel)).collect();
        written.sort();
        FinishOutcome { written, errors }
    }

    /// Creates the temporary file for `rel`, or continues the one completed earlier.
    fn open_file(&mut self, sink: usize, rel: &Path, row: &RowContext) -> Result<OpenFile, SinkError> {
        let conf = self.sinks.get(sink).ok_or_else(|| SinkError::Failed { path: rel.to_path_buf() })?;
        let path = self.out_dir.join(rel);
        let escapes = |reason| SinkError::PathEscapes { template: conf.template.clone(), path: path.clone(), reason };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(escapes("it names no file"));
        };
        let temp_name = format!(".{}.tmp-{}", name.to_string_lossy(), self.run_id);
        if temp_name.len() > MAX_NAME_BYTES {
            return Err(escapes("its file name is too long"));
        }
        let temp = parent.join(temp_name);
        fs::create_dir_all(parent).map_err(|e| io_err(parent, Operation::CreateDir, e))?;
        // A symbolic link already in the output directory must not carry files elsewhere.
        let real_parent = fs::canonicalize(parent).map_err(|e| io_err(parent, Operation::CreateDir, e))?;
        if !real_parent.starts_with(&self.real_out_dir) {
            return Err(escapes("a symbolic link leads it out of the output directory"));
        }
        let earlier = self.done.get(rel).copied();
        let writer = match earlier {
            Some(first) if first != sink => return Err(self.shared(rel, first, sink)),
            Some(_) => {
                let w = self.reopen(conf, &path, &temp)?;
                self.done.remove(rel);
                w
            }
            None if self.continue_existing && path.is_file() => self.reopen(conf, &path, &temp)?,
            None => {
                let file = create_new(&temp).map_err(|e| io_err(&temp, Operation::Create, e))?;
                let out = buffered(file);
                let label = path.display().to_string();
                match conf.kind {
                    SinkKind::Csv => FileWriter::Csv(CsvWriter::new(out, row.properties, &conf.csv).labelled(&label)),
                    SinkKind::Json => FileWriter::Json(JsonWriter::new(out, &[])),
                    SinkKind::Ndjson => FileWriter::Ndjson(NdjsonWriter::new(out, &[])),
                }
            }
        };
        Ok(OpenFile { sink, temp, path, writer, pending: Vec::new(), queries: Vec::new() })
    }

    /// Copies a completed file to `temp` and positions a writer to continue it there; the
    /// completed file stays intact until the continued one replaces it.
    fn reopen(&self, conf: &SinkConf, path: &Path, temp: &Path) -> Result<FileWriter, SinkError> {
        Self::reopen_at(conf, path, temp).map_err(|e| {
            // The copy is useless without a writer; the completed file is untouched.
            let _ = fs::remove_file(temp);
            io_err(path, Operation::Reopen, e)
        })
    }

    fn reopen_at(conf: &SinkConf, path: &Path, temp: &Path) -> io::Result<FileWriter> {
        let _ = fs::remove_file(temp);
        fs::copy(path, temp)?;
        let mut file = OpenOptions::new().read(true).write(true).open(temp)?;
        let label = path.display().to_string();
        let writer = match conf.kind {
            SinkKind::Csv => {
                let columns = read_header(io::BufReader::new(File::open(path)?))?;
                file.seek(SeekFrom::End(0))?;
                FileWriter::Csv(CsvWriter::resume(buffered(file), columns, &conf.csv, &label))
            }
            SinkKind::Json => {
                let len = file.metadata()?.len();
                let tail_len = len.min(3);
                file.seek(SeekFrom::Start(len - tail_len))?;
                let mut tail = Vec::with_capacity(3);
                file.by_ref().take(tail_len).read_to_end(&mut tail)?;
                let (cut, has_items) = resume_point(len, &tail).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the file does not end like a JSON array this program wrote",
                    )
                })?;
                file.set_len(cut)?;
                file.seek(SeekFrom::End(0))?;
                FileWriter::Json(JsonWriter::resume(buffered(file), &[], has_items))
            }
            SinkKind::Ndjson => {
                file.seek(SeekFrom::End(0))?;
                FileWriter::Ndjson(NdjsonWriter::new(buffered(file), &[]))
            }
        };
        Ok(writer)
    }

    /// Flushes, syncs and renames an open file into place.
    fn complete(&mut self, rel: &Path) -> Result<(), SinkError> {
        let Some(file) = self.open.remove(rel) else {
            return Ok(());
        };
        let OpenFile { sink, temp, path, writer, .. } = file;
        let durable = self.durable;
        let result = (|| {
            let buffered = writer.finish().map_err(|e| io_err(&temp, Operation::Flush, e))?;
            let file = buffered.into_inner().map_err(|e| io_err(&temp, Operation::Flush, e.into_error()))?;
            if durable {
                file.sync_data().map_err(|e| io_err(&temp, Operation::Sync, e))?;
            }
            drop(file);
            fs::rename(&temp, &path).map_err(|e| io_err(&path, Operation::Rename, e))?;
            if durable && let Some(dir) = path.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err(dir, Operation::Sync, e))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.done.insert(rel.to_path_buf(), sink);
                Ok(())
            }
            Err(e) => {
                self.failed.insert(rel.to_path_buf());
                Err(e)
            }
        }
    }

    /// Marks an open file failed: its writer is dropped without completing it, so the
    /// temporary file keeps what was written and the final name is never created from it.
    fn fail(&mut self, rel: &Path) {
        if let Some(file) = self.open.remove(rel) {
            tracing::error!(temp = %file.temp.display(), "output file failed; its partial content is left in the temporary file");
        }
        self.failed.insert(rel.to_path_buf());
    }

    fn shared(&self, rel: &Path, first: usize, second: usize) -> SinkError {
        let template = |i: usize| self.sinks.get(i).map(|s| s.template.clone()).unwrap_or_default();
        SinkError::SharedPath { path: self.out_dir.join(rel), first: template(first), second: template(second) }
    }
}

/// Output files are written in 64 KiB blocks: a row is a few hundred bytes, and the default
/// 8 KiB buffer makes a write system call every few dozen rows. Larger blocks save little
/// more and hold back a full disk's error for longer.
const FILE_BUFFER: usize = 64 * 1024;

fn buffered(file: File) -> BufWriter<File> {
    BufWriter::with_capacity(FILE_BUFFER, file)
}

fn create_new(path: &Path) -> io::Result<File> {
    match OpenOptions::new().write(true).create_new(true).open(path) {
        // A temporary file left by an interrupted run with the same id: it is ours to replace.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            OpenOptions::new().write(true).create_new(true).open(path)
        }
        other => other,
    }
}

fn io_err(path: &Path, op: Operation, source: io::Error) -> SinkError {
    SinkError::Io { path: path.to_path_buf(), op, source }
}
