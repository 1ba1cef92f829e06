//! Times the writer's per-row path: pages of realistic instances through the `SinkSet` a run
//! uses, one file per query (`{{query}}.csv`, `.json`, `.ndjson`), pages dropped once written
//! as the writer thread drops them.
//!
//! `cargo run --release --features testkit --example sink_bench -- [FORMAT] [HOSTS] [ROUNDS]`
//! FORMAT is `csv`, `json`, `ndjson` or `all` (default); HOSTS defaults to 200, ROUNDS to 3.
//! With `SINK_BENCH_KEEP` set, the output files are kept and their directory printed.
//! For instruction counts, run it under
//! `valgrind --tool=callgrind --toggle-collect=sink_bench::write_pages` and divide by the rows
//! it prints.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use cimrun::cim::{Instance, Name};
use cimrun::job::{SinkKind, SinkSpec};
use cimrun::sink::{RowContext, RunVars, SinkSet};
use cimrun::testkit::dataset;

/// The classes of the fleet benchmark (bench/run.py).
const CLASSES: &[&str] = &["Win32_OperatingSystem", "Win32_ComputerSystem", "Win32_BIOS", "Win32_LogicalDisk", "Win32_Service"];
/// Instances per page, as the fleet's WS-Man enumerations return them.
const PAGE: usize = 50;

/// One page as the writer thread receives it.
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
    let kinds: &[(&str, SinkKind)] = &[("csv", SinkKind::Csv), ("json", SinkKind::Json), ("ndjson", SinkKind::Ndjson)];
    let template = pages(hosts);
    let rows: usize = template.iter().map(|p| p.rows.len()).sum();
    for (ext, kind) in kinds.iter().filter(|(e, _)| format == "all" || format == *e) {
        let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
        let mut bytes = 0;
        for round in 0..rounds {
            let dir = std::env::temp_dir().join(format!("cimrun-sink-bench-{}-{round}", std::process::id()));
            let spec = SinkSpec { kind: *kind, path: format!("{{{{query}}}}.{ext}"), array_separator: None };
            let vars = RunVars { run_id: "bench".into(), date: "2026-11-21".into() };
            let mut sinks = SinkSet::new(&[spec], &dir, vars).unwrap_or_else(|e| panic!("{e}"));
            let pages = copy(&template);
            let (start, start_cpu) = (Instant::now(), thread_cpu());
            write_pages(&mut sinks, pages);
            let written = sinks.finish().unwrap_or_else(|e| panic!("{e}"));
            best = best.min(start.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(thread_cpu() - start_cpu);
            bytes = written.iter().map(|p| size(p)).sum();
            if std::env::var_os("SINK_BENCH_KEEP").is_some() {
                println!("output kept in {}", dir.display());
            } else {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        println!(
            "{ext}: {rows} rows ({hosts} hosts x {} classes, {PAGE} per page), {bytes} bytes, best of {rounds}: \
             {:.0} ns/row wall, {:.0} ns/row CPU",
            CLASSES.len(),
            best * 1e9 / rows.max(1) as f64,
            best_cpu * 1e9 / rows.max(1) as f64
        );
    }
}

/// What the writer thread does with each page: write its rows, then drop them.
#[inline(never)]
fn write_pages(sinks: &mut SinkSet, pages: Vec<Page>) {
    for page in pages {
        let ctx = RowContext {
            session: "fleet",
            computer: &page.computer,
            query: page.class,
            class: page.class,
            properties: &[],
        };
        if let Err(e) = sinks.write_rows(&ctx, &page.rows) {
            panic!("{e}");
        }
    }
}

/// Every host's pages, host by host; the names of a page are shared between its instances, as
/// the WS-Man parser shares them.
fn pages(hosts: usize) -> Vec<Page> {
    let mut out = Vec::new();
    for h in 0..hosts {
        let computer = format!("WIN-{h:05}");
        for class in CLASSES {
            let instances = dataset::generate_class(&computer, 7, class).unwrap_or_default();
            for chunk in instances.chunks(PAGE) {
                out.push(Page { computer: computer.clone(), class, rows: share_names(chunk) });
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

/// A fresh copy of the pages for a round, keeping each page's names shared.
fn copy(pages: &[Page]) -> Vec<Page> {
    pages.iter().map(|p| Page { computer: p.computer.clone(), class: p.class, rows: p.rows.clone() }).collect()
}

/// This thread's CPU time (user and system), in seconds: on a busy machine, wall time also
/// counts the time other processes had the CPU.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
