//! Facts about the machine that several classes share, read once per query.

use std::collections::HashMap;

use super::disk;
use super::sys::{self, Uname};

/// The machine-wide facts classes draw on.
pub struct Host {
    /// The host name as `uname` gives it, up to the first dot.
    pub hostname: String,
    /// The DNS domain: the rest of a dotted host name, else `domain`/`search` of resolv.conf.
    pub domain: Option<String>,
    pub uname: Option<Uname>,
    /// `/etc/os-release` (or `/usr/lib/os-release`) fields.
    pub os_release: HashMap<String, String>,
    /// Boot time, seconds since the Unix epoch (`btime` of `/proc/stat`).
    pub boot_time: Option<i64>,
    pub clock_ticks: u64,
    pub page_size: u64,
    /// The device mounted at `/`.
    pub root_device: Option<String>,
}

impl Host {
    pub fn read() -> Host {
        let uname = sys::uname();
        let node =
            uname.as_ref().map(|u| u.nodename.clone()).or_else(|| sys::read_trimmed("/proc/sys/kernel/hostname"));
        let node = node.unwrap_or_default();
        let (hostname, dotted_domain) = match node.split_once('.') {
            Some((h, d)) if !d.is_empty() => (h.to_string(), Some(d.to_string())),
            _ => (node.clone(), None),
        };
        let domain = dotted_domain.or_else(|| {
            let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            super::net::Resolver::parse(&resolv).domain()
        });
        let os_release = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .map(|t| parse_os_release(&t))
            .unwrap_or_default();
        let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|t| parse_btime(&t));
        let root_device = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|t| disk::parse_mountinfo(&t).into_iter().rev().find(|m| m.mount_point == "/"))
            .map(|m| m.source);
        Host {
            hostname,
            domain,
            uname,
            os_release,
            boot_time,
            clock_ticks: sys::clock_ticks(),
            page_size: sys::page_size(),
            root_device,
        }
    }

    /// The OS caption: `PRETTY_NAME`, else `NAME VERSION`, else the kernel name.
    pub fn os_caption(&self) -> String {
        if let Some(p) = self.os_release.get("PRETTY_NAME") {
            return p.clone();
        }
        match (self.os_release.get("NAME"), self.os_release.get("VERSION")) {
            (Some(n), Some(v)) => format!("{n} {v}"),
            (Some(n), None) => n.clone(),
            _ => "Linux".to_string(),
        }
    }

    /// Win32_OperatingSystem.Name, shaped like Windows' `caption|system dir|boot partition`.
    pub fn os_name(&self) -> String {
        format!("{}|/|{}", self.os_caption(), self.root_device.as_deref().unwrap_or(""))
    }

    /// Whether the kernel runs 64-bit code, from the machine name.
    pub fn is_64bit(&self) -> Option<bool> {
        let m = self.uname.as_ref()?.machine.as_str();
        Some(m.contains("64") || m == "s390x")
    }
}

/// Parses os-release(5): `KEY=value` lines, values optionally quoted with shell escapes.
pub fn parse_os_release(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else { continue };
        let value = match raw.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = raw.get(1..).unwrap_or("");
                let inner = inner.strip_suffix(q).unwrap_or(inner);
                let mut v = String::new();
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' && q == '"' {
                        v.extend(chars.next());
                    } else {
                        v.push(c);
                    }
                }
                v
            }
            _ => raw.to_string(),
        };
        out.insert(key.trim().to_string(), value);
    }
    out
}

/// The `btime` line of `/proc/stat`: boot time in seconds since the epoch.
pub fn parse_btime(proc_stat: &str) -> Option<i64> {
    proc_stat.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// `/proc/meminfo` as name → kB.
pub fn parse_meminfo(text: &str) -> HashMap<String, u64> {
    proc_fields(text).map(|(name, n, _)| (name.to_string(), n)).collect()
}

/// The `Name:  123 unit` lines of a /proc file (meminfo, a process's status and io): name,
/// number and unit, if any; other lines are left out.
pub fn proc_fields(text: &str) -> impl Iterator<Item = (&str, u64, Option<&str>)> {
    text.lines().filter_map(|l| {
        let (name, rest) = l.split_once(':')?;
        let mut words = rest.split_whitespace();
        let n = words.next()?.parse().ok()?;
        Some((name.trim(), n, words.next()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quoting() {
        let r = parse_os_release(
            "# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nNAME='Single quoted'\nX=\"a \\\"b\\\" \\$c\"\nbroken line\n",
        );
        assert_eq!(r["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(r["ID"], "debian");
        assert_eq!(r["NAME"], "Single quoted");
        assert_eq!(r["X"], "a \"b\" $c");
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn btime_and_meminfo() {
        assert_eq!(parse_btime("cpu  1 2 3\nintr 5\nbtime 1763700000\nprocesses 9\n"), Some(1_763_700_000));
        assert_eq!(parse_btime("cpu 1\n"), None);
        let m =
            parse_meminfo("MemTotal:       24669048 kB\nMemAvailable:   20000000 kB\nHugePages_Total:       0\nbad\n");
        assert_eq!(m["MemTotal"], 24_669_048);
        assert_eq!(m["HugePages_Total"], 0);
        assert_eq!(m.len(), 3);
    }
}
