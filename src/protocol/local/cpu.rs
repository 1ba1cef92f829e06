//! Win32_Processor: one instance per physical package (socket), as Windows counts processors.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::cim::{Instance, Value};

use super::host::Host;
use super::row::Row;
use super::sys;

/// One logical CPU: its `/proc/cpuinfo` block and where it sits in the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalCpu {
    pub number: u32,
    pub package: u32,
    pub core: u32,
    pub fields: HashMap<String, String>,
}

/// Parses `/proc/cpuinfo` into logical CPUs. `topology(cpu)` supplies (package, core) from
/// sysfs for architectures whose cpuinfo lacks `physical id`/`core id` (arm64, for one).
pub fn parse_cpuinfo(text: &str, topology: impl Fn(u32) -> (Option<u32>, Option<u32>)) -> Vec<LogicalCpu> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let fields: HashMap<String, String> = block
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((k.trim().to_string(), v.trim().to_string()))
            })
            .collect();
        let Some(number) = fields.get("processor").and_then(|p| p.parse().ok()) else { continue };
        let field_u32 = |k: &str| fields.get(k).and_then(|v| v.parse().ok());
        let (sys_package, sys_core) = topology(number);
        let package = field_u32("physical id").or(sys_package).unwrap_or(0);
        let core = field_u32("core id").or(sys_core).unwrap_or(number);
        out.push(LogicalCpu { number, package, core, fields });
    }
    out
}

/// Logical CPUs grouped by package, in package order.
pub fn packages(cpus: Vec<LogicalCpu>) -> BTreeMap<u32, Vec<LogicalCpu>> {
    let mut out: BTreeMap<u32, Vec<LogicalCpu>> = BTreeMap::new();
    for c in cpus {
        out.entry(c.package).or_default().push(c);
    }
    out
}

fn sysfs_topology(cpu: u32) -> (Option<u32>, Option<u32>) {
    let dir = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
    let read = |f: &str| sys::read_u64(format!("{dir}/{f}")).and_then(|v| u32::try_from(v).ok());
    (read("physical_package_id"), read("core_id"))
}

/// Architecture codes of Win32_Processor.Architecture, from the kernel's machine name.
fn architecture(machine: &str) -> Option<u16> {
    Some(match machine {
        "x86_64" => 9,
        "i386" | "i486" | "i586" | "i686" => 0,
        "aarch64" | "arm64" => 12,
        m if m.starts_with("arm") => 5,
        "ia64" => 6,
        m if m.starts_with("ppc") => 3,
        _ => return None,
    })
}

/// This machine's logical CPUs grouped by package.
pub fn read_packages() -> BTreeMap<u32, Vec<LogicalCpu>> {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    packages(parse_cpuinfo(&text, sysfs_topology))
}

pub fn processors(host: &Host) -> Vec<Instance> {
    let machine = host.uname.as_ref().map(|u| u.machine.as_str()).unwrap_or("");
    let width = host.is_64bit().map(|b| if b { 64u16 } else { 32 });
    read_packages().into_iter().map(|(package, cpus)| processor_row(host, package, &cpus, machine, width)).collect()
}

fn processor_row(host: &Host, package: u32, cpus: &[LogicalCpu], machine: &str, width: Option<u16>) -> Instance {
    let first = cpus.first().map(|c| &c.fields);
    let field = |k: &str| first.and_then(|f| f.get(k)).cloned();
    let vendor = field("vendor_id").or_else(|| field("CPU implementer"));
    let name = field("model name").or_else(|| field("Processor")).or_else(|| field("cpu"));
    // Windows' caption for x86: "Intel64 Family 6 Model 85 Stepping 4" / "AMD64 Family 25 …".
    let caption = match (field("cpu family"), field("model"), field("stepping")) {
        (Some(f), Some(m), Some(s)) => {
            let arch = match vendor.as_deref() {
                Some("GenuineIntel") if machine == "x86_64" => "Intel64",
                Some("AuthenticAMD") if machine == "x86_64" => "AMD64",
                _ if machine == "x86_64" => "x64",
                _ => "x86",
            };
            Some(format!("{arch} Family {f} Model {m} Stepping {s}"))
        }
        _ => name.clone(),
    };
    let mhz = field("cpu MHz").and_then(|v| v.parse::<f64>().ok()).map(|v| v.round() as u32);
    let first_number = cpus.first().map(|c| c.number).unwrap_or(0);
    let max_mhz = sys::read_u64(format!("/sys/devices/system/cpu/cpu{first_number}/cpufreq/cpuinfo_max_freq"))
        .map(|khz| (khz / 1000) as u32)
        .or(mhz);
    let cores: BTreeSet<u32> = cpus.iter().map(|c| c.core).collect();
    let flags: BTreeSet<&str> = first
        .and_then(|f| f.get("flags").or_else(|| f.get("Features")))
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default();
    let has_flags = !flags.is_empty();

    let mut r = Row::new("Win32_Processor");
    r.set("AddressWidth", width.map(Value::UInt16))
        .set("Architecture", architecture(machine).map(Value::UInt16))
        .set("Availability", Value::UInt16(3))
        .text("Caption", caption.clone())
        .set("CpuStatus", Value::UInt16(1))
        .text("CreationClassName", Some("Win32_Processor"))
        .set("CurrentClockSpeed", mhz.map(Value::UInt32))
        .set("DataWidth", width.map(Value::UInt16))
        .text("Description", caption)
        .text("DeviceID", Some(format!("CPU{package}")))
        .set("L2CacheSize", cache_kb(cpus, 2).map(Value::UInt32))
        .set("L3CacheSize", cache_kb(cpus, 3).map(Value::UInt32))
        .text("Manufacturer", vendor)
        .set("MaxClockSpeed", max_mhz.map(Value::UInt32))
        .text("Name", name)
        .set("NumberOfCores", Value::UInt32(cores.len() as u32))
        .set("NumberOfLogicalProcessors", Value::UInt32(cpus.len() as u32))
        .set("ProcessorType", Value::UInt16(3))
        .text("Role", Some("CPU"))
        .set(
            "SecondLevelAddressTranslationExtensions",
            has_flags.then(|| Value::Bool(flags.contains("ept") || flags.contains("npt"))),
        )
        .text("Status", Some("OK"))
        .set("StatusInfo", Value::UInt16(3))
        .text("Stepping", field("stepping"))
        .text("SystemCreationClassName", Some("Win32_ComputerSystem"))
        .text("SystemName", Some(host.hostname.as_str()))
        .set("VMMonitorModeExtensions", has_flags.then(|| Value::Bool(flags.contains("vmx") || flags.contains("svm"))));
    r.finish()
}

/// Total size in KB of the unified caches of one level in a package: each distinct cache
/// instance (by the CPUs sharing it) counted once, as Windows reports the package's total.
fn cache_kb(cpus: &[LogicalCpu], level: u32) -> Option<u32> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut total: u64 = 0;
    for c in cpus {
        let base = format!("/sys/devices/system/cpu/cpu{}/cache", c.number);
        let Ok(dir) = std::fs::read_dir(&base) else { continue };
        for entry in dir.filter_map(|e| e.ok()) {
            let p = entry.path();
            if sys::read_u64(p.join("level")) != Some(u64::from(level)) {
                continue;
            }
            if sys::read_trimmed(p.join("type")).as_deref() == Some("Instruction") {
                continue;
            }
            let Some(shared) = sys::read_trimmed(p.join("shared_cpu_list")) else { continue };
            if seen.insert(shared) {
                total += sys::read_trimmed(p.join("size")).and_then(|s| parse_size_kb(&s)).unwrap_or(0);
            }
        }
    }
    (total > 0).then(|| total.min(u64::from(u32::MAX)) as u32)
}

/// Cache sizes as sysfs writes them: `1024K`, `32M`.
fn parse_size_kb(s: &str) -> Option<u64> {
    if let Some(k) = s.strip_suffix('K') {
        k.parse().ok()
    } else if let Some(m) = s.strip_suffix('M') {
        m.parse::<u64>().ok().map(|m| m * 1024)
    } else {
        s.parse::<u64>().ok().map(|b| b / 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sockets_with_hyperthreads() {
        let text = include_str!("../../../tests/data/local/cpuinfo-2socket");
        let cpus = parse_cpuinfo(text, |_| (None, None));
        assert_eq!(cpus.len(), 8);
        let p = packages(cpus);
        assert_eq!(p.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
        for cpus in p.values() {
            assert_eq!(cpus.len(), 4);
            assert_eq!(cpus.iter().map(|c| c.core).collect::<BTreeSet<_>>().len(), 2);
        }
        assert_eq!(p[&1][0].fields["model name"], "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz");
    }

    #[test]
    fn arm_topology_comes_from_sysfs() {
        let text =
            "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n\nprocessor\t: 1\nCPU implementer\t: 0x41\n";
        let cpus = parse_cpuinfo(text, |n| (Some(0), Some(n + 10)));
        assert_eq!(cpus.iter().map(|c| (c.package, c.core)).collect::<Vec<_>>(), vec![(0, 10), (0, 11)]);
        let no_topology = parse_cpuinfo(text, |_| (None, None));
        assert_eq!(no_topology.iter().map(|c| (c.package, c.core)).collect::<Vec<_>>(), vec![(0, 0), (0, 1)]);
    }

    #[test]
    fn sizes_and_architectures() {
        assert_eq!(parse_size_kb("1024K"), Some(1024));
        assert_eq!(parse_size_kb("32M"), Some(32 * 1024));
        assert_eq!(parse_size_kb("x"), None);
        assert_eq!(architecture("x86_64"), Some(9));
        assert_eq!(architecture("aarch64"), Some(12));
        assert_eq!(architecture("riscv64"), None);
    }
}
