//! Output sinks: where instances end up.
//!
//! Row writers ([`CsvWriter`], [`JsonWriter`], [`NdjsonWriter`], [`TableWriter`]) turn
//! instances into bytes on any `io::Write`; `cimrun query` uses them on stdout. [`SinkSet`]
//! owns the files of a run: it renders each row's path from the job's templates, keeps the
//! path inside the output directory, writes to a temporary name and renames the file only
//! when it is complete, so an interrupted run never leaves a truncated file that looks
//! finished.
//!
//! Every row starts with `PSComputerName`, then the properties: the query's property list in
//! its order if it has one, otherwise the instance's properties in their order.

mod columns;
mod csv;
mod json;
mod path;
mod scan;
mod set;
mod table;
mod value;

use std::io;
use std::path::PathBuf;

pub use self::csv::{CsvOptions, CsvWriter};
pub use self::json::{JsonWriter, NdjsonWriter};
pub use self::path::sanitize;
pub use self::set::{FinishOutcome, SinkSet};
pub use self::table::{TableOptions, TableWriter};
pub use self::value::{COMPUTER_COLUMN, JsonValue, text, write_text};

/// What the sinks need to know about the row being written, besides the instance.
#[derive(Debug, Clone, Copy)]
pub struct RowContext<'a> {
    /// The session's name (`{{session}}`).
    pub session: &'a str,
    /// The computer the instance came from: `PSComputerName` and `{{computer}}`.
    pub computer: &'a str,
    /// The query's name (`{{query}}`).
    pub query: &'a str,
    /// The class queried (`{{class}}`).
    pub class: &'a str,
    /// The query's property list; empty for all properties.
    pub properties: &'a [String],
}

/// Values that are the same for every path of a run.
#[derive(Debug, Clone)]
pub struct RunVars {
    /// The run's identifier (`{{run_id}}`); also names temporary files.
    pub run_id: String,
    /// The run's date as the caller formats it, e.g. `2026-11-21` (`{{date}}`).
    pub date: String,
}

/// The file operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateDir,
    Create,
    Write,
    Flush,
    Sync,
    Rename,
    Reopen,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::CreateDir => "create the directory",
            Operation::Create => "create",
            Operation::Write => "write",
            Operation::Flush => "flush",
            Operation::Sync => "sync to disk",
            Operation::Rename => "rename into place",
            Operation::Reopen => "reopen to continue",
        })
    }
}

/// Why a sink could not write.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A path template does not compile or uses an unknown variable.
    #[error("invalid output path template {template:?}: {message}")]
    Template { template: String, message: String },
    /// A rendered path would leave the output directory (or is no file path at all); nothing
    /// was written.
    #[error("output path {path:?} (from template {template:?}) is refused: {reason}")]
    PathEscapes { template: String, path: PathBuf, reason: &'static str },
    /// Two sinks rendered the same file; each file has one format.
    #[error("output file {path:?} would be written by two sinks ({first:?} and {second:?})")]
    SharedPath { path: PathBuf, first: String, second: String },
    /// A file operation failed (disk full, permissions, I/O error).
    #[error("could not {op} {path:?}: {source}")]
    Io { path: PathBuf, op: Operation, source: io::Error },
    /// The file failed earlier in the run; its rows are no longer written (its temporary
    /// file keeps what was written before the failure).
    #[error("output file {path:?} failed earlier in the run; row not written")]
    Failed { path: PathBuf },
}

impl SinkError {
    /// Whether the error is an I/O failure of the output (as opposed to a refused path or a
    /// template error): a run stopped by it should exit with "could not proceed".
    pub fn is_io(&self) -> bool {
        matches!(self, SinkError::Io { .. } | SinkError::Failed { .. })
    }

    /// Whether the error is the disk (or quota) being full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            SinkError::Io { source, .. } => {
                matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
            }
            _ => false,
        }
    }

    /// The file concerned, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            SinkError::Template { .. } => None,
            SinkError::PathEscapes { path, .. }
            | SinkError::SharedPath { path, .. }
            | SinkError::Io { path, .. }
            | SinkError::Failed { path } => Some(path),
        }
    }
}
