//! Times the writer's per-row path: pages of realistic instances through the `SinkSet` a run
//! uses, one file per query (`{{query}}.csv`, `.json`, `.ndjson`), pages dropped once written
//! as a run drops them.
//!
//! `cargo run --release --features testkit --example sink_bench -- [FORMAT] [HOSTS] [ROUNDS] [NAMES]`
//! FORMAT is `csv`, `json`, `ndjson` or `all` (default); HOSTS defaults to 200, ROUNDS to 3.
//! NAMES is `shared` (default: the instances of a page share their property names) or `own`
//! (every instance has its own copies).
//! With `SINK_BENCH_KEEP` set, the output files are kept and their directory printed. With
//! `SINK_BENCH_LISTED` set, each query lists its class's properties, last first (a job's
//! `properties:` in an order of its own).
//! For instruction counts, run it under
//! `valgrind --tool=callgrind --toggle-collect=sink_bench::write_page` and divide by twice the
//! rows it prints per round (each round writes every page twice: from memory and in cache).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cimrun::cim::{Instance, Name};
use cimrun::job::{SinkKind, SinkSpec};
use cimrun::sink::{RowContext, RunVars, SinkSet};
use cimrun::testkit::dataset;

/// The classes of the fleet benchmark (bench/run.py).
const CLASSES: &[&str] =
    &["Win32_OperatingSystem", "Win32_ComputerSystem", "Win32_BIOS", "Win32_LogicalDisk", "Win32_Service"];
/// Instances per page, as the fleet's WS-Man enumerations return them.
const PAGE: usize = 50;

/// One page as the writer receives it.
struct Page {
    computer: String,
    class: &'static str,
    rows: Vec<Instance>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let format = args.next().unwrap_or_else(|| "all".to_string());
    let hosts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let shared = args.next().is_none_or(|a| a != "own");
    let kinds: &[(&str, SinkKind)] = &[("csv", SinkKind::Csv), ("json", SinkKind::Json), ("ndjson", SinkKind::Ndjson)];
    let template = pages(hosts, shared);
    let rows: usize = template.iter().map(|p| p.rows.len()).sum();
    let listed = listed_properties(&template);
    for (ext, kind) in kinds.iter().filter(|(e, _)| format == "all" || format == *e) {
        let spec = SinkSpec { kind: *kind, path: format!("{{{{query}}}}.{ext}"), array_separator: None };
        let (mut cold, mut hot, mut user, mut sys) = (f64::INFINITY, f64::INFINITY, f64::INFINITY, f64::INFINITY);
        let mut bytes = 0;
        for round in 0..rounds {
            let (mut sinks, dir) = sink_set(&spec, round, "cold");
            let pages = copy(&template);
            let (start, start_cpu) = (Instant::now(), thread_cpu());
            for page in pages {
                write_page(&mut sinks, page, &listed);
            }
            let written = sinks.finish().unwrap_or_else(|e| panic!("{e}"));
            cold = cold.min(start.elapsed().as_secs_f64());
            let end_cpu = thread_cpu();
            user = user.min(end_cpu.0 - start_cpu.0);
            sys = sys.min(end_cpu.1 - start_cpu.1);
            bytes = written.iter().map(|p| size(p)).sum();
            done_with(&dir);

            // Each page copied just before it is written: in cache, as a page just parsed.
            let (mut sinks, dir) = sink_set(&spec, round, "hot");
            let mut elapsed = Duration::ZERO;
            for page in &template {
                let page = Page { computer: page.computer.clone(), class: page.class, rows: page.rows.clone() };
                let start = Instant::now();
                write_page(&mut sinks, page, &listed);
                elapsed += start.elapsed();
            }
            let start = Instant::now();
            sinks.finish().unwrap_or_else(|e| panic!("{e}"));
            hot = hot.min((elapsed + start.elapsed()).as_secs_f64());
            done_with(&dir);
        }
        let per_row = |secs: f64| secs * 1e9 / rows.max(1) as f64;
        println!(
            "{ext}: {rows} rows ({hosts} hosts x {} classes, {PAGE} per page, names {}), {bytes} bytes, best of {rounds}, \
             ns/row: {:.0} wall (CPU {:.0} user + {:.0} system); {:.0} wall with pages in cache",
            CLASSES.len(),
            if shared { "shared" } else { "own" },
            per_row(cold),
            per_row(user),
            per_row(sys),
            per_row(hot)
        );
    }
}

fn sink_set(spec: &SinkSpec, round: usize, name: &str) -> (SinkSet, PathBuf) {
    let dir = std::env::temp_dir().join(format!("cimrun-sink-bench-{}-{name}-{round}", std::process::id()));
    let vars = RunVars { run_id: "bench".into(), date: "2026-11-21".into() };
    let sinks = SinkSet::new(std::slice::from_ref(spec), &dir, vars).unwrap_or_else(|e| panic!("{e}"));
    (sinks, dir)
}

fn done_with(dir: &Path) {
    if std::env::var_os("SINK_BENCH_KEEP").is_some() {
        println!("output kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// What the writer does with each page: write its rows, then drop them.
#[inline(never)]
fn write_page(sinks: &mut SinkSet, page: Page, listed: &HashMap<&str, Vec<String>>) {
    let ctx = RowContext {
        session: "fleet",
        computer: &page.computer,
        query: page.class,
        class: page.class,
        properties: listed.get(page.class).map_or(&[], Vec::as_slice),
    };
    if let Err(e) = sinks.write_rows(&ctx, &page.rows) {
        panic!("{e}");
    }
}

/// With `SINK_BENCH_LISTED`, each class's property names in reverse order; otherwise none.
fn listed_properties(pages: &[Page]) -> HashMap<&'static str, Vec<String>> {
    let mut out = HashMap::new();
    if std::env::var_os("SINK_BENCH_LISTED").is_none() {
        return out;
    }
    for page in pages {
        if let Some(first) = page.rows.first() {
            out.entry(page.class).or_insert_with(|| first.properties.iter().rev().map(|p| p.name.to_string()).collect());
        }
    }
    out
}

/// Every host's pages, host by host; with `shared`, the names of a page are shared between its
/// instances, otherwise each instance has its own.
fn pages(hosts: usize, shared: bool) -> Vec<Page> {
    let mut out = Vec::new();
    for h in 0..hosts {
        let computer = format!("WIN-{h:05}");
        for class in CLASSES {
            let instances = dataset::generate_class(&computer, 7, class).unwrap_or_default();
            for chunk in instances.chunks(PAGE) {
                let rows = if shared { share_names(chunk) } else { own_names(chunk) };
                out.push(Page { computer: computer.clone(), class, rows });
            }
        }
    }
    out
}

fn share_names(chunk: &[Instance]) -> Vec<Instance> {
    let mut names: HashMap<String, Name> = HashMap::new();
    let mut intern = |n: &Name| names.entry(n.to_string()).or_insert_with(|| n.clone()).clone();
    chunk
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i.class_name = intern(&i.class_name);
            for p in &mut i.properties {
                p.name = intern(&p.name);
            }
            i
        })
        .collect()
}

fn own_names(chunk: &[Instance]) -> Vec<Instance> {
    let mut rows = chunk.to_vec();
    for i in &mut rows {
        i.class_name = Name::from(i.class_name.as_str());
        for p in &mut i.properties {
            p.name = Name::from(p.name.as_str());
        }
    }
    rows
}

/// A fresh copy of the pages for a round, keeping each page's names shared.
fn copy(pages: &[Page]) -> Vec<Page> {
    pages.iter().map(|p| Page { computer: p.computer.clone(), class: p.class, rows: p.rows.clone() }).collect()
}

/// This thread's CPU time so far, user and system, in seconds: on a busy machine, wall time
/// also counts the time other processes had the CPU.
fn thread_cpu() -> (f64, f64) {
    // SAFETY: an all-zero rusage is a valid value, and getrusage only writes the one it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return (f64::NAN, f64::NAN);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
