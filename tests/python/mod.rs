//! Where the Python with the interop peers is, for every test that starts one.

use std::path::{Path, PathBuf};

/// The Python with the interop peers: `CIMRUN_PYTHON` (set by scripts/test.sh) or the repo's
/// `.venv`.
pub fn python() -> PathBuf {
    match std::env::var_os("CIMRUN_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    }
}
