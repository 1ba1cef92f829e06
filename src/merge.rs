//! `cimrun merge`: combines the output directories of shards (`--shard I/N`) into one.
//!
//! Files with the same relative path are joined by kind: CSV keeps one header (the shards'
//! headers must agree), NDJSON is concatenated, a JSON array gets the items of every shard, and
//! the `run.json` reports are merged task by task with the summary recomputed. Everything is
//! streamed; a file is written under a temporary name and renamed when complete.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::report::{ReportWriter, RunInfo};

/// What a merge wrote.
#[derive(Debug, Default)]
pub struct MergeOutcome {
    /// Output files, relative to the output directory, in path order.
    pub files: Vec<PathBuf>,
    /// The merged report, when the inputs had `run.json` files.
    pub summary: Option<crate::report::Summary>,
    /// The largest exit code among the shards' reports.
    pub exit_code: i32,
}

/// Why a merge failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: the CSV header differs from {}'s", path.display(), first.display())]
    HeaderMismatch { path: PathBuf, first: PathBuf },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("{} appears in several inputs and is not a csv, ndjson, json or run.json file", rel.display())]
    Unmergeable { rel: PathBuf },
    #[error("the output directory {} is also an input", .0.display())]
    OutIsInput(PathBuf),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> MergeError + '_ {
    move |source| MergeError::Io { path: path.to_path_buf(), source }
}

/// Merges the shard directories `inputs` into `out` (created if needed).
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<MergeOutcome, MergeError> {
    std::fs::create_dir_all(out).map_err(io_at(out))?;
    let out_canon = out.canonicalize().map_err(io_at(out))?;
    // Relative path → the inputs holding it, in the order given.
    let mut by_rel: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for dir in inputs {
        if dir.canonicalize().map_err(io_at(dir))? == out_canon {
            return Err(MergeError::OutIsInput(dir.clone()));
        }
        let mut files = Vec::new();
        walk(dir, Path::new(""), &mut files)?;
        for rel in files {
            by_rel.entry(rel.clone()).or_default().push(dir.join(rel));
        }
    }
    let mut outcome = MergeOutcome::default();
    for (rel, sources) in &by_rel {
        let dest = out.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        let ext = rel.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if rel.as_os_str() == "run.json" {
            let (summary, code) = merge_reports(sources, out)?;
            outcome.summary = Some(summary);
            outcome.exit_code = code;
        } else {
            let kind = match ext.as_deref() {
                Some("csv") => Kind::Csv,
                Some("ndjson" | "jsonl") => Kind::Ndjson,
                Some("json") => Kind::Json,
                _ if sources.len() == 1 => Kind::Ndjson, // a lone file is copied as it is
                _ => return Err(MergeError::Unmergeable { rel: rel.clone() }),
            };
            write_atomically(&dest, |w| match kind {
                Kind::Csv => concat_csv(sources, w),
                Kind::Ndjson => concat_bytes(sources, w),
                Kind::Json => concat_json_arrays(sources, w),
            })?;
        }
        outcome.files.push(rel.clone());
    }
    Ok(outcome)
}

enum Kind {
    Csv,
    Ndjson,
    Json,
}

/// Every regular file under `dir`, as paths relative to the shard's root. Hidden files (the
/// temporary files of an unfinished run) are skipped.
fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), MergeError> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(io_at(&dir))?;
    for entry in entries {
        let entry = entry.map_err(io_at(&dir))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(io_at(&entry.path()))?;
        if kind.is_dir() {
            walk(root, &rel.join(&name), out)?;
        } else if kind.is_file() {
            out.push(rel.join(&name));
        }
    }
    Ok(())
}

fn write_atomically(
    dest: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> Result<(), MergeError>,
) -> Result<(), MergeError> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.merge-tmp-{}", std::process::id()));
    let mut w = BufWriter::new(File::create(&tmp).map_err(io_at(&tmp))?);
    let result = fill(&mut w).and_then(|()| {
        let file = w.into_inner().map_err(|e| MergeError::Io { path: tmp.clone(), source: e.into_error() })?;
        file.sync_all().map_err(io_at(&tmp))?;
        std::fs::rename(&tmp, dest).map_err(io_at(dest))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Concatenates files, adding a final newline where one is missing so lines never join.
fn concat_bytes(sources: &[PathBuf], w: &mut impl Write) -> Result<(), MergeError> {
    for path in sources {
        let mut f = File::open(path).map_err(io_at(path))?;
        let n = io::copy(&mut f, w).map_err(io_at(path))?;
        if n > 0 {
            f.seek(SeekFrom::End(-1)).map_err(io_at(path))?;
            let mut last = [0u8; 1];
            f.read_exact(&mut last).map_err(io_at(path))?;
            if last[0] != b'\n' {
                w.write_all(b"\n").map_err(io_at(path))?;
            }
        }
    }
    Ok(())
}

/// One header (every shard's must be the same), then every shard's rows.
fn concat_csv(sources: &[PathBuf], w: &mut impl Write) -> Result<(), MergeError> {
    let mut first_header: Option<(csv::StringRecord, &PathBuf)> = None;
    for path in sources {
        let file = File::open(path).map_err(io_at(path))?;
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(BufReader::new(file));
        let header = reader
            .headers()
            .map_err(|e| MergeError::Format { path: path.clone(), message: format!("CSV header: {e}") })?
            .clone();
        let body_start = reader.position().byte();
        if header.is_empty() {
            continue; // an empty file: nothing to add
        }
        let mut f = BufReader::new(File::open(path).map_err(io_at(path))?);
        match &first_header {
            None => first_header = Some((header, path)),
            Some((h, _)) if *h == header => {
                f.seek(SeekFrom::Start(body_start)).map_err(io_at(path))?;
                // The reader's position may stop inside the header's line end.
                while let Some(&b'\r' | &b'\n') = f.fill_buf().map_err(io_at(path))?.first() {
                    f.consume(1);
                }
            }
            Some((_, first)) => {
                return Err(MergeError::HeaderMismatch { path: path.clone(), first: (*first).clone() });
            }
        }
        io::copy(&mut f, w).map_err(io_at(path))?;
    }
    Ok(())
}

/// The items of every shard's JSON array, as one array in the layout the JSON sink writes
/// (`[`, one object per line, `]`), so merged files read like unsharded ones.
fn concat_json_arrays(sources: &[PathBuf], w: &mut impl Write) -> Result<(), MergeError> {
    let mut items = 0u64;
    for path in sources {
        let bad = |message: &str| MergeError::Format { path: path.clone(), message: message.to_string() };
        let reader = BufReader::new(File::open(path).map_err(io_at(path))?);
        for line in reader.lines() {
            let line = line.map_err(io_at(path))?;
            let item = line.trim().trim_end_matches(',');
            match item {
                "" | "[" | "]" | "[]" => continue,
                _ if item.starts_with('{') && item.ends_with('}') => {
                    w.write_all(if items == 0 { b"[\n" } else { b",\n" }).map_err(io_at(path))?;
                    w.write_all(item.as_bytes()).map_err(io_at(path))?;
                    items += 1;
                }
                _ => return Err(bad("not a JSON array written by cimrun (one object per line)")),
            }
        }
    }
    let tail: &[u8] = if items == 0 { b"[]\n" } else { b"\n]\n" };
    w.write_all(tail).map_err(|source| MergeError::Io { path: PathBuf::from("json output"), source })
}

/// The header fields of a shard's `run.json` that the merged one keeps.
#[derive(serde::Deserialize)]
struct ReportHead {
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    job: String,
    #[serde(default)]
    started: String,
    #[serde(default)]
    finished: String,
    #[serde(default)]
    exit_code: i32,
    summary: crate::report::Summary,
}

/// Streams every shard's task records into one `run.json`; the summary is recomputed from the
/// records (hosts are summed: shards partition the computers). Returns it and the worst exit code.
fn merge_reports(sources: &[PathBuf], out: &Path) -> Result<(crate::report::Summary, i32), MergeError> {
    let mut heads = Vec::with_capacity(sources.len());
    for path in sources {
        let file = File::open(path).map_err(io_at(path))?;
        let head: ReportHead = serde_json::from_reader(BufReader::new(file))
            .map_err(|e| MergeError::Format { path: path.clone(), message: format!("run.json: {e}") })?;
        heads.push(head);
    }
    let started = heads.iter().map(|h| h.started.as_str()).filter(|s| !s.is_empty()).min().unwrap_or_default();
    let finished = heads.iter().map(|h| h.finished.as_str()).max().unwrap_or_default().to_string();
    let ids: Vec<&str> = heads.iter().map(|h| h.run_id.as_str()).collect();
    let info = RunInfo {
        cimrun: env!("CARGO_PKG_VERSION"),
        // Short and file-name safe (it names the temporary file); the shards' ids are in
        // their own reports.
        run_id: format!("merged-{}-shards-{}", ids.len(), ids.first().copied().unwrap_or("none")),
        job: heads.first().map(|h| h.job.clone()).unwrap_or_default(),
        started: started.to_string(),
    };
    let mut writer = ReportWriter::create(out, &info).map_err(io_at(out))?;
    for path in sources {
        let (tasks, _) = crate::report::read(path).map_err(io_at(path))?;
        for t in &tasks {
            writer.record(t).map_err(io_at(out))?;
        }
    }
    let hosts = heads.iter().map(|h| h.summary.hosts).sum();
    let code = heads.iter().map(|h| h.exit_code).max().unwrap_or(0);
    let (_, summary) = writer.finish(hosts, &finished, code).map_err(io_at(out))?;
    Ok((summary, code))
}
