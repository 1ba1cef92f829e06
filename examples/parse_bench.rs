//! Times `response::parse` on recorded Windows pages: CPU per parsed instance.
//!
//! `cargo run --release --example parse_bench [ROUNDS]` from the crate root.

use std::time::Instant;

use cimrun::protocol::wsman::response::{self, Expect, Reply};

const DIR: &str = "../shared/testdata/wsman/txwinrm/data/server_2012";

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    for class in ["Win32_Service", "Win32_Process"] {
        let mut pages = Vec::new();
        for i in 0.. {
            match std::fs::read(format!("{DIR}/{class}_all_{i:03}.xml")) {
                Ok(b) => pages.push(b),
                Err(_) => break,
            }
        }
        let expect = Expect { class, ..Expect::default() };
        let mut instances = 0usize;
        let start = Instant::now();
        for _ in 0..rounds {
            for p in &pages {
                match response::parse(p, None, &expect) {
                    Ok(Reply::Page(page)) => instances += page.items.len(),
                    Ok(Reply::Fault(f)) => panic!("{class}: fault {f:?}"),
                    Err(e) => panic!("{class}: {e}"),
                }
            }
        }
        let el = start.elapsed();
        println!(
            "{class}: {} pages x {rounds} rounds, {instances} instances, {:.2} us/instance",
            pages.len(),
            el.as_secs_f64() * 1e6 / instances.max(1) as f64
        );
    }
}
