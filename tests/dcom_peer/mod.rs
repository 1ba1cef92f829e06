//! Runs a Python peer script from tests/peers and parses the JSON object it prints.
//!
//! The interpreter is CIMRUN_PYTHON, or `.venv/bin/python` in the crate root. A missing
//! interpreter or library fails the calling test: a differential test that silently skips
//! proves nothing.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Map, Value};

/// Runs `tests/peers/<script>` with `args` and returns its JSON object.
pub fn run<I, S>(script: &str, args: I) -> Map<String, Value>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = python();
    let out =
        Command::new(&python).arg(root.join("tests/peers").join(script)).args(args).output().unwrap_or_else(|e| {
            panic!("cannot run {} (set CIMRUN_PYTHON to a python with impacket): {e}", python.display())
        });
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Object(map)) => map,
        other => panic!("{script} printed no JSON object: {other:?}"),
    }
}

#[path = "../python/mod.rs"]
mod python;
// Not every test binary that includes this module starts a peer.
#[allow(unused_imports)]
pub use python::python;
