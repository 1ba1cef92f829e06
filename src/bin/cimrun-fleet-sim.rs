//! The fleet simulator: serves N simulated Windows hosts on loopback for benchmarks and
//! large-scale tests, one host per address in 127.1.0.0/16 on port 5985 (Linux routes all of
//! 127.0.0.0/8 to the loopback device, so no setup is needed).
//!
//! It writes the hosts file a job's `computers_from` reads, prints one JSON line on stdout once
//! every listener is bound, and stops by itself after `--lifetime`, when its stdin closes, or
//! when killed (run it as `sleep 600 | cimrun-fleet-sim …` to keep it up by hand). A `stats` line on stdin prints the request counters summed over the fleet, so a
//! harness can count the round trips each client made.
//!
//! ```text
//! cimrun-fleet-sim --hosts 1000 --latency 50ms --auth basic --hosts-file hosts.txt \
//!     --fault refuse=1 --fault hang=0.5 --lifetime 10m
//! ```

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use cimrun::testkit::{Fault, HostConfig, TestServer, fleet_address};

/// Serve simulated Windows hosts (WS-Man) on 127.1.x.y:5985.
#[derive(Debug, Parser)]
#[command(name = "cimrun-fleet-sim")]
struct Args {
    /// Number of hosts (at most 65,535).
    #[arg(long, default_value_t = 100)]
    hosts: u16,
    /// First host index: host i listens on 127.1.(i>>8).(i&255).
    #[arg(long, default_value_t = 1)]
    first: u16,
    /// Port every host listens on.
    #[arg(long, default_value_t = 5985)]
    port: u16,
    /// Added before every HTTP response (simulated round-trip time), e.g. `50ms`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0ms")]
    latency: Duration,
    /// `basic` (Basic over HTTP, AllowUnencrypted) or `ntlm` (Negotiate/NTLM with message
    /// encryption; unencrypted traffic refused, as a default WinRM listener does).
    #[arg(long, default_value = "basic", value_parser = ["basic", "ntlm"])]
    auth: String,
    /// User name hosts accept.
    #[arg(long, default_value = "cimrun")]
    username: String,
    /// Password hosts accept.
    #[arg(long, default_value = "P@ssw0rd!")]
    password: String,
    /// A fault and the percentage of hosts that show it, e.g. `refuse=1` (repeatable). Kinds:
    /// refuse, hang, slow (answers after 30 s), reset (drops the connection on the 2nd Pull),
    /// timeout-once, quota, access-denied, wrong-password, garbage, http500.
    #[arg(long = "fault", value_name = "KIND=PERCENT")]
    faults: Vec<String>,
    /// Where to write the hosts file (one address per line).
    #[arg(long, value_name = "PATH")]
    hosts_file: Option<PathBuf>,
    /// Server runtime worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Stop after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    lifetime: Duration,
    /// Most items one Enumerate or Pull response holds (a client asking for fewer gets fewer).
    /// Smaller pages mean more round trips for the same data.
    #[arg(long, default_value_t = 50)]
    max_page: u32,
}

/// A fault kind and the share of hosts (in basis points) that get it.
struct FaultShare {
    fault: Fault,
    basis_points: u32,
}

fn parse_fault(spec: &str) -> Result<FaultShare, String> {
    let (kind, pct) = spec.split_once('=').ok_or_else(|| format!("--fault {spec:?}: expected KIND=PERCENT"))?;
    let pct: f64 = pct.trim().parse().map_err(|_| format!("--fault {spec:?}: {pct:?} is not a number"))?;
    if !(0.0..=100.0).contains(&pct) {
        return Err(format!("--fault {spec:?}: the percentage must be between 0 and 100"));
    }
    let fault = match kind.trim() {
        "refuse" => Fault::Refuse,
        "hang" => Fault::Hang,
        "slow" => Fault::Slow(Duration::from_secs(30)),
        "reset" => Fault::ResetAfterPulls(2),
        "timeout-once" => Fault::TimedOutOnce,
        "quota" => Fault::QuotaExceeded,
        "access-denied" => Fault::AccessDenied,
        "wrong-password" => Fault::WrongPassword,
        "garbage" => Fault::GarbageXml,
        "http500" => Fault::Http500Empty,
        other => return Err(format!("--fault {spec:?}: unknown kind {other:?}")),
    };
    Ok(FaultShare { fault, basis_points: (pct * 100.0).round() as u32 })
}

/// The fault of host `i`: a stable hash of its index picks a slot in 10,000, and the shares
/// are laid end to end over those slots, so the mix is deterministic and spread over the fleet.
fn fault_for(i: u16, shares: &[FaultShare]) -> Option<Fault> {
    let slot = (cimrun::plan::stable_hash(&format!("sim-host-{i}")) % 10_000) as u32;
    let mut start = 0;
    for share in shares {
        if slot < start + share.basis_points {
            return Some(share.fault.clone());
        }
        start += share.basis_points;
    }
    None
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("cimrun-fleet-sim: error: {e}");
        std::process::exit(2);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let shares = args.faults.iter().map(|s| parse_fault(s)).collect::<Result<Vec<_>, _>>()?;
    if shares.iter().map(|s| s.basis_points).sum::<u32>() > 10_000 {
        return Err("the fault percentages add up to more than 100".into());
    }
    let last = u32::from(args.first) + u32::from(args.hosts);
    if args.first == 0 || last > 65_536 {
        return Err("hosts must fit in 127.1.0.1 … 127.1.255.255 (--first 1 or more, first + hosts ≤ 65,536)".into());
    }
    let ntlm = args.auth == "ntlm";
    let t0 = Instant::now();
    let mut addresses = Vec::with_capacity(usize::from(args.hosts));
    let hosts = (0..args.hosts).map(|k| {
        let index = args.first + k;
        let ip = fleet_address(index);
        addresses.push(ip.to_string());
        let mut host = HostConfig::new(ip.to_string())
            .seed(u64::from(index))
            .bind((ip, args.port).into())
            .credentials(&args.username, &args.password)
            .latency(args.latency)
            .basic(!ntlm)
            .negotiate(ntlm)
            .allow_unencrypted(!ntlm)
            .max_page(args.max_page);
        if let Some(f) = fault_for(index, &shares) {
            host = host.fault(f);
        }
        host
    });
    let hosts: Vec<HostConfig> = hosts.collect();
    let server = TestServer::builder()
        .hosts(hosts)
        .worker_threads(args.workers)
        .lifetime(args.lifetime)
        .start()
        .map_err(|e| e.to_string())?;
    if let Some(path) = &args.hosts_file {
        let mut text = addresses.join("\n");
        text.push('\n');
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let faulty = (0..server.len()).filter(|&i| server.config(i).is_some_and(|c| c.fault.is_some())).count();
    let ready = serde_json::json!({
        "ready": true,
        "hosts": server.len(),
        "faulty": faulty,
        "port": args.port,
        "auth": args.auth,
        "latency_ms": args.latency.as_millis() as u64,
        "hosts_file": args.hosts_file.as_ref().map(|p| p.display().to_string()),
        "pid": std::process::id(),
        "start_ms": t0.elapsed().as_millis() as u64,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{ready}").and_then(|_| out.flush()).map_err(|e| format!("stdout: {e}"))?;
    drop(out);
    serve_commands(&server, args.lifetime);
    drop(server);
    Ok(())
}

/// Answers `stats` lines on stdin until stdin closes or the lifetime ends.
fn serve_commands(server: &TestServer, lifetime: Duration) {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // A reader thread, so the lifetime bounds the process even while stdin stays open.
    let _ = std::thread::Builder::new().name("sim-stdin".into()).spawn(move || {
        // Commands are a few bytes; a bounded read keeps stray input (e.g. /dev/zero) harmless.
        for line in std::io::BufReader::new(std::io::stdin().take(1 << 20)).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + lifetime;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.trim() == "stats" => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", fleet_stats(server)).and_then(|_| out.flush());
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// The counters of every host, summed.
fn fleet_stats(server: &TestServer) -> serde_json::Value {
    let (mut requests, mut connections, mut unauthorized, mut open_contexts, mut releases) = (0u64, 0u64, 0u64, 0usize, 0u64);
    let (mut http_requests, mut last_legs) = (0u64, 0u64);
    let mut by_operation = std::collections::BTreeMap::<&str, u64>::new();
    for s in (0..server.len()).filter_map(|i| server.stats(i)) {
        for (op, n) in &s.requests {
            requests += n;
            *by_operation.entry(op).or_insert(0) += n;
        }
        connections += s.connections;
        http_requests += s.http_requests;
        last_legs += s.requests_with_last_leg;
        unauthorized += s.unauthorized;
        open_contexts += s.open_contexts;
        releases += s.releases;
    }
    serde_json::json!({
        "requests": requests,
        "http_requests": http_requests,
        "requests_with_last_leg": last_legs,
        "by_operation": by_operation,
        "connections": connections,
        "unauthorized": unauthorized,
        "open_contexts": open_contexts,
        "releases": releases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_mix_is_deterministic_and_close_to_the_shares() {
        let shares = vec![parse_fault("refuse=10").unwrap(), parse_fault("hang=5").unwrap()];
        let picks: Vec<Option<Fault>> = (1..=10_000).map(|i| fault_for(i, &shares)).collect();
        let again: Vec<Option<Fault>> = (1..=10_000).map(|i| fault_for(i, &shares)).collect();
        assert_eq!(picks, again);
        let refused = picks.iter().filter(|f| **f == Some(Fault::Refuse)).count();
        let hung = picks.iter().filter(|f| **f == Some(Fault::Hang)).count();
        assert!((800..=1200).contains(&refused), "{refused}");
        assert!((350..=650).contains(&hung), "{hung}");
    }

    #[test]
    fn fault_specs_are_checked() {
        assert!(parse_fault("refuse").is_err());
        assert!(parse_fault("melt=1").is_err());
        assert!(parse_fault("hang=101").is_err());
        assert_eq!(parse_fault("quota=2.5").map(|s| s.basis_points), Ok(250));
    }
}
