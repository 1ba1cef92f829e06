//! Replays the fuzz corpora and every crash reproducer through the fuzz targets' own code
//! (`fuzz/src/targets.rs`), so the normal test suite keeps what fuzzing found fixed without
//! needing cargo-fuzz or a nightly compiler.
//!
//! Each input must run without panicking and within a time bound: the parsers are meant to be
//! linear in their input, and a quadratic corner shows up here as a slow reproducer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../fuzz/src/targets.rs"]
mod targets;

/// Generous for an unoptimized build on a loaded machine; a linear parser needs milliseconds.
const PER_INPUT: Duration = Duration::from_secs(10);

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Regular files below `dir`, recursively, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn target(name: &str) -> fn(&[u8]) {
    targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target named {name}"))
}

/// Runs every file of `dirs` through the target; returns how many ran.
fn replay(name: &str, dirs: &[PathBuf]) -> usize {
    let run = target(name);
    let mut count = 0;
    for dir in dirs {
        for path in files(dir) {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let start = Instant::now();
            run(&data);
            let took = start.elapsed();
            assert!(took < PER_INPUT, "{name}: {} took {took:?}", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn every_target_has_seeds_and_a_committed_corpus() {
    for (name, _) in targets::TARGETS {
        let fuzz = crate_dir().join("fuzz");
        let seeds = files(&fuzz.join("seeds").join(name)).len()
            + shared_seeds(name).iter().map(|s| files(&crate_dir().join(s)).len()).sum::<usize>();
        assert!(seeds > 0, "{name} has no seeds");
        assert!(!files(&fuzz.join("corpus").join(name)).is_empty(), "fuzz/corpus/{name} is empty");
    }
}

/// Seeds a target reads from the project's test data besides fuzz/seeds (paths from the crate
/// root), as scripts/fuzz.sh passes them: the recorded Windows responses, the job files and the
/// MS-WMIO vectors.
fn shared_seeds(name: &str) -> &'static [&'static str] {
    match name {
        "wsman_response" => &["../shared/testdata/wsman/txwinrm"],
        "job_load" => &["jobs", "tests/data/jobs"],
        "dcom_wmio" | "dcom_ndr" => &["../shared/testdata/wmio"],
        _ => &[],
    }
}

#[test]
fn every_corpus_file_and_reproducer_runs_clean() {
    for (name, _) in targets::TARGETS {
        let fuzz = crate_dir().join("fuzz");
        let mut dirs: Vec<PathBuf> =
            ["seeds", "corpus", "regressions"].iter().map(|kind| fuzz.join(kind).join(name)).collect();
        dirs.extend(shared_seeds(name).iter().map(|s| crate_dir().join(s)));
        let ran = replay(name, &dirs);
        assert!(ran > 0, "{name}: no input ran");
    }
}

#[test]
fn the_recorded_responses_are_replayed() {
    let dir = crate_dir().join("../shared/testdata/wsman/txwinrm");
    assert!(files(&dir).len() > 100, "{} holds too few recordings", dir.display());
}
