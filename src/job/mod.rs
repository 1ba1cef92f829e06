//! Loading a job file: parse the YAML, validate it, report every error with its position.
//!
//! [`load()`] reads a file, applies `--set` overrides and validates; every error found is
//! returned at once in [`Diagnostics`], each with its file position and a snippet.

mod diag;
pub mod fail_if;
pub mod hosts;
mod load;
pub mod model;
mod schema;
pub mod secrets;
mod validate;
mod yaml;

pub use diag::{DiagSource, Diagnostics, JobDiagnostic};
pub use load::{LoadedJob, load, load_str};
pub use model::*;
pub use schema::{reference_markdown, schema};
pub use validate::{SINK_VARIABLES, check_template};
