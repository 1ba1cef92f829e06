//! Win32_Process: every process of `/proc`, from its `stat`, `status`, `cmdline` and `exe`.
//!
//! Processes come and go while the directory is read: one that vanishes between listing and
//! reading is skipped. Files of other users' processes that need privileges (`exe`, `fd`,
//! `io`) leave their properties null.

use std::collections::HashMap;

use crate::cim::{Instance, Value};

use super::host::Host;
use super::row::Row;
use super::sys;

/// The fields of `/proc/<pid>/stat` the class uses (proc(5) numbering in comments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// (2) The command name, up to 15 bytes; may contain spaces and parentheses.
    pub comm: String,
    /// (4)
    pub ppid: u32,
    /// (10) + (12): minor and major faults.
    pub faults: u64,
    /// (14), (15): CPU time in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// (20)
    pub threads: u32,
    /// (22): start time in clock ticks after boot.
    pub start_ticks: u64,
    /// (23): virtual memory size in bytes.
    pub vsize: u64,
    /// (24): resident set size in pages.
    pub rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name is found by the last `)`, since the name
/// itself may contain `)` and spaces.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field (3); field n is rest[n - 3].
    let f = |n: usize| -> Option<u64> { rest.get(n - 3)?.parse().ok() };
    Some(Stat {
        pid,
        comm,
        ppid: u32::try_from(f(4)?).ok()?,
        faults: f(10)?.saturating_add(f(12)?),
        utime: f(14)?,
        stime: f(15)?,
        threads: u32::try_from(f(20)?).unwrap_or(u32::MAX),
        start_ticks: f(22)?,
        vsize: f(23)?,
        rss_pages: f(24)?,
    })
}

/// `/proc/<pid>/status` memory lines (`VmPeak:  1234 kB`) as name → kB.
pub fn parse_status_kb(text: &str) -> HashMap<String, u64> {
    super::host::proc_fields(text)
        .filter(|(_, _, unit)| *unit == Some("kB"))
        .map(|(k, n, _)| (k.to_string(), n))
        .collect()
}

/// `/proc/<pid>/cmdline` as one command line: arguments joined by spaces, as `ps` shows them
/// (programs such as nginx rewrite their arguments into one spaced string, which quoting would
/// garble). `None` for kernel threads and zombies, which have none.
pub fn command_line(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return None;
    }
    let args: Vec<String> = raw.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    Some(args.join(" "))
}

/// `/proc/<pid>/io` counters.
fn parse_io(text: &str) -> HashMap<String, u64> {
    super::host::proc_fields(text).map(|(k, n, _)| (k.to_string(), n)).collect()
}

/// The pids listed in `/proc`.
pub fn pids() -> std::io::Result<Vec<u32>> {
    let mut out: Vec<u32> = std::fs::read_dir("/proc")?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

pub fn processes(host: &Host) -> std::io::Result<Vec<Instance>> {
    let os_name = host.os_name();
    Ok(pids()?.into_iter().filter_map(|pid| process_row(host, &os_name, pid)).collect())
}

/// One process, or `None` when it vanished before its `stat` could be read.
fn process_row(host: &Host, os_name: &str, pid: u32) -> Option<Instance> {
    let dir = format!("/proc/{pid}");
    let stat = parse_stat(&std::fs::read_to_string(format!("{dir}/stat")).ok()?)?;
    let status = std::fs::read_to_string(format!("{dir}/status")).map(|t| parse_status_kb(&t)).unwrap_or_default();
    let io = std::fs::read_to_string(format!("{dir}/io")).map(|t| parse_io(&t)).ok();
    let cmdline = std::fs::read(format!("{dir}/cmdline")).ok().and_then(|raw| command_line(&raw));
    let exe = std::fs::read_link(format!("{dir}/exe")).ok().map(|p| p.to_string_lossy().into_owned());
    let handles = std::fs::read_dir(format!("{dir}/fd")).ok().map(|d| d.count() as u32);

    let tck = host.clock_ticks.max(1);
    // 100-nanosecond units, as Windows counts CPU time.
    let cpu_100ns = |ticks: u64| Value::UInt64((u128::from(ticks) * 10_000_000 / u128::from(tck)) as u64);
    let created = host.boot_time.map(|boot| {
        let secs = boot + (stat.start_ticks / tck) as i64;
        let micros = ((stat.start_ticks % tck) * 1_000_000 / tck) as u32;
        sys::local_datetime(secs, micros)
    });
    let kb = |k: &str| status.get(k).copied();
    let kb_u32 = |k: &str| kb(k).map(|v| Value::UInt32(v.min(u64::from(u32::MAX)) as u32));
    let io_count = |k: &str| io.as_ref().and_then(|m| m.get(k)).map(|&v| Value::UInt64(v));
    let private_bytes = kb("RssAnon").map(|anon| Value::UInt64((anon + kb("VmSwap").unwrap_or(0)) * 1024));

    let mut r = Row::new("Win32_Process");
    r.text("Caption", Some(stat.comm.as_str()))
        .text("CommandLine", cmdline)
        .text("CreationClassName", Some("Win32_Process"))
        .datetime("CreationDate", created)
        .text("CSCreationClassName", Some("Win32_ComputerSystem"))
        .text("CSName", Some(host.hostname.as_str()))
        .text("Description", Some(stat.comm.as_str()))
        .text("ExecutablePath", exe)
        .text("Handle", Some(pid.to_string()))
        .set("HandleCount", handles.map(Value::UInt32))
        .set("KernelModeTime", cpu_100ns(stat.stime))
        .text("Name", Some(stat.comm.as_str()))
        .text("OSCreationClassName", Some("Win32_OperatingSystem"))
        .text("OSName", Some(os_name))
        .set("PageFaults", Value::UInt32(stat.faults.min(u64::from(u32::MAX)) as u32))
        .set("PageFileUsage", kb_u32("VmSwap"))
        .set("ParentProcessId", Value::UInt32(stat.ppid))
        .set("PeakVirtualSize", kb("VmPeak").map(|v| Value::UInt64(v * 1024)))
        .set("PeakWorkingSetSize", kb_u32("VmHWM"))
        .set("PrivatePageCount", private_bytes)
        .set("ProcessId", Value::UInt32(stat.pid))
        .set("ReadOperationCount", io_count("syscr"))
        .set("ReadTransferCount", io_count("rchar"))
        .set("ThreadCount", Value::UInt32(stat.threads))
        .set("UserModeTime", cpu_100ns(stat.utime))
        .set("VirtualSize", Value::UInt64(stat.vsize))
        .set("WorkingSetSize", Value::UInt64(stat.rss_pages.saturating_mul(host.page_size)))
        .set("WriteOperationCount", io_count("syscw"))
        .set("WriteTransferCount", io_count("wchar"));
    Some(r.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_the_name() {
        let text = include_str!("../../../tests/data/local/stat-odd-name");
        let s = parse_stat(text).unwrap();
        assert_eq!(s.pid, 4242);
        assert_eq!(s.comm, "my (odd) name");
        assert_eq!(s.ppid, 1);
        assert_eq!(s.faults, 1500 + 7);
        assert_eq!((s.utime, s.stime), (250, 40));
        assert_eq!(s.threads, 3);
        assert_eq!(s.start_ticks, 123456);
        assert_eq!(s.vsize, 10_485_760);
        assert_eq!(s.rss_pages, 512);
    }

    #[test]
    fn truncated_stat_is_rejected() {
        assert!(parse_stat("").is_none());
        assert!(parse_stat("12 (x) S 1 2").is_none());
        assert!(parse_stat("x (y) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 6 7").is_none());
    }

    #[test]
    fn status_memory_lines() {
        let m = parse_status_kb(
            "Name:\tbash\nVmPeak:\t   10000 kB\nVmHWM:\t    3000 kB\nThreads:\t1\nRssAnon:\t  900 kB\n",
        );
        assert_eq!(m.get("VmPeak"), Some(&10_000));
        assert_eq!(m.get("RssAnon"), Some(&900));
        assert_eq!(m.get("Threads"), None);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn command_lines() {
        assert_eq!(command_line(b"/bin/sh\0-c\0echo hi\0").as_deref(), Some("/bin/sh -c echo hi"));
        assert_eq!(command_line(b"a\0\0b\0").as_deref(), Some("a  b"));
        assert_eq!(command_line(b"").as_deref(), None);
        assert_eq!(command_line(b"\0").as_deref(), None);
        assert_eq!(command_line(b"nginx: worker process").as_deref(), Some("nginx: worker process"));
    }
}
