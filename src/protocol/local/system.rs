//! The singleton classes: Win32_OperatingSystem, Win32_ComputerSystem,
//! Win32_ComputerSystemProduct and Win32_BIOS.
//!
//! Hardware identity comes from the SMBIOS data the kernel exposes in `/sys/class/dmi/id`;
//! some of it (serial numbers, the UUID) is readable by root only, and containers and some
//! virtual machines have none, so those properties are often null.

use crate::cim::{DateTime, Instance, Value};

use super::host::{self, Host};
use super::row::Row;
use super::sys;

/// CIM_OperatingSystem.OSType for Linux.
const OS_TYPE_LINUX: u16 = 36;

fn dmi(field: &str) -> Option<String> {
    sys::read_trimmed(format!("/sys/class/dmi/id/{field}"))
}

/// Windows' SystemType names, from the kernel's machine name.
fn system_type(machine: &str) -> Option<&'static str> {
    Some(match machine {
        "x86_64" => "x64-based PC",
        "i386" | "i486" | "i586" | "i686" => "X86-based PC",
        "aarch64" | "arm64" => "ARM64-based PC",
        _ => return None,
    })
}

/// Parses the SMBIOS BIOS date as the kernel shows it (`MM/DD/YYYY`).
pub fn parse_bios_date(s: &str) -> Option<DateTime> {
    let mut parts = s.trim().split('/');
    let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let iso =
        format!("{:04}-{:02}-{:02}T00:00:00Z", y.parse::<u16>().ok()?, m.parse::<u8>().ok()?, d.parse::<u8>().ok()?);
    DateTime::parse_iso8601(&iso)
}

pub fn operating_system(host: &Host) -> Instance {
    let meminfo = std::fs::read_to_string("/proc/meminfo").map(|t| host::parse_meminfo(&t)).unwrap_or_default();
    let mem = |k: &str| meminfo.get(k).copied();
    let kb = |v: Option<u64>| v.map(Value::UInt64);
    let (now_s, now_us) = sys::now();
    let (offset, _) = sys::local_offset(now_s);
    let caption = host.os_caption();
    let release = |k: &str| host.os_release.get(k).cloned();
    let process_count = super::process::pids().ok().map(|p| Value::UInt32(p.len() as u32));
    let swap_total = mem("SwapTotal");

    let mut r = Row::new("Win32_OperatingSystem");
    r.text("BootDevice", host.root_device.clone())
        .text("BuildNumber", release("BUILD_ID").or_else(|| release("VERSION_ID")))
        .text("BuildType", host.uname.as_ref().map(|u| u.version.clone()))
        .text("Caption", Some(caption.as_str()))
        .text("CreationClassName", Some("Win32_OperatingSystem"))
        .text("CSCreationClassName", Some("Win32_ComputerSystem"))
        .text("CSName", Some(host.hostname.as_str()))
        .set("CurrentTimeZone", Value::SInt16((offset / 60) as i16))
        .set("Distributed", Value::Bool(false))
        .set("FreePhysicalMemory", kb(mem("MemAvailable").or(mem("MemFree"))))
        .set("FreeSpaceInPagingFiles", kb(mem("SwapFree")))
        .set("FreeVirtualMemory", kb(mem("MemAvailable").or(mem("MemFree")).map(|m| m + mem("SwapFree").unwrap_or(0))))
        .datetime("LastBootUpTime", host.boot_time.map(|b| sys::local_datetime(b, 0)))
        .datetime("LocalDateTime", Some(sys::local_datetime(now_s, now_us)))
        .set(
            "MaxNumberOfProcesses",
            sys::read_u64("/proc/sys/kernel/pid_max").and_then(|v| u32::try_from(v).ok()).map(Value::UInt32),
        )
        .text("Name", Some(host.os_name()))
        .set("NumberOfProcesses", process_count)
        .text("OSArchitecture", host.is_64bit().map(|b| if b { "64-bit" } else { "32-bit" }))
        .set("OSType", Value::UInt16(OS_TYPE_LINUX))
        .set("Primary", Value::Bool(true))
        .text("SerialNumber", sys::read_trimmed("/etc/machine-id"))
        .set("SizeStoredInPagingFiles", kb(swap_total))
        .text("Status", Some("OK"))
        .text("SystemDevice", host.root_device.clone())
        .text("SystemDrive", Some("/"))
        .set("TotalVirtualMemorySize", kb(mem("MemTotal").map(|m| m + swap_total.unwrap_or(0))))
        .set("TotalVisibleMemorySize", kb(mem("MemTotal")))
        .text("Version", host.uname.as_ref().map(|u| u.release.clone()));
    r.finish()
}

pub fn computer_system(host: &Host) -> Instance {
    let meminfo = std::fs::read_to_string("/proc/meminfo").map(|t| host::parse_meminfo(&t)).unwrap_or_default();
    let cpus = super::cpu::read_packages();
    let logical: usize = cpus.values().map(Vec::len).sum();
    let (now_s, _) = sys::now();
    let (offset, dst) = sys::local_offset(now_s);
    let machine = host.uname.as_ref().map(|u| u.machine.as_str()).unwrap_or("");

    let mut r = Row::new("Win32_ComputerSystem");
    r.text("Caption", Some(host.hostname.as_str()))
        .text("CreationClassName", Some("Win32_ComputerSystem"))
        .set("CurrentTimeZone", Value::SInt16((offset / 60) as i16))
        .set("DaylightInEffect", Value::Bool(dst))
        .text("DNSHostName", Some(host.hostname.as_str()))
        .text("Domain", host.domain.clone())
        .text("Manufacturer", dmi("sys_vendor"))
        .text("Model", dmi("product_name"))
        .text("Name", Some(host.hostname.as_str()))
        .set("NumberOfLogicalProcessors", (logical > 0).then_some(Value::UInt32(logical as u32)))
        .set("NumberOfProcessors", (!cpus.is_empty()).then_some(Value::UInt32(cpus.len() as u32)))
        .text("Status", Some("OK"))
        .text("SystemType", system_type(machine))
        .set("TotalPhysicalMemory", meminfo.get("MemTotal").map(|kb| Value::UInt64(kb * 1024)));
    r.finish()
}

pub fn computer_system_product() -> Instance {
    let mut r = Row::new("Win32_ComputerSystemProduct");
    r.text("Caption", Some("Computer System Product"))
        .text("Description", Some("Computer System Product"))
        .text("IdentifyingNumber", dmi("product_serial"))
        .text("Name", dmi("product_name"))
        .text("SKUNumber", dmi("product_sku"))
        .text("UUID", dmi("product_uuid").map(|u| u.to_ascii_uppercase()))
        .text("Vendor", dmi("sys_vendor"))
        .text("Version", dmi("product_version"));
    r.finish()
}

pub fn bios() -> Instance {
    let present = std::path::Path::new("/sys/class/dmi/id").is_dir();
    let version = dmi("bios_version");
    let mut r = Row::new("Win32_BIOS");
    r.texts("BIOSVersion", version.clone().map(|v| vec![v]))
        .text("Caption", version.clone())
        .text("Description", version.clone())
        .text("Manufacturer", dmi("bios_vendor"))
        .text("Name", version.clone())
        .set("PrimaryBIOS", Value::Bool(true))
        .datetime("ReleaseDate", dmi("bios_date").and_then(|d| parse_bios_date(&d)))
        .text("SerialNumber", dmi("product_serial"))
        .text("SMBIOSBIOSVersion", version.clone())
        .set("SMBIOSPresent", Value::Bool(present))
        .text("SoftwareElementID", version.clone())
        .set("SoftwareElementState", Value::UInt16(3))
        .text("Status", Some("OK"))
        .set("TargetOperatingSystem", Value::UInt16(0))
        .text("Version", dmi("bios_release").or(version));
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bios_dates() {
        assert_eq!(parse_bios_date("04/01/2014").unwrap().to_string(), "2014-04-01T00:00:00Z");
        assert!(parse_bios_date("2014-04-01").is_none());
        assert!(parse_bios_date("13/01/2014").is_none());
        assert!(parse_bios_date("01/02/2014/5").is_none());
    }

    #[test]
    fn system_types() {
        assert_eq!(system_type("x86_64"), Some("x64-based PC"));
        assert_eq!(system_type("aarch64"), Some("ARM64-based PC"));
        assert_eq!(system_type("mips"), None);
    }
}
