//! Thin, panic-free wrappers over the files and libc calls the local provider reads.
//!
//! Every reader returns `None` when the source is missing, unreadable or malformed: on Linux
//! many sources are optional (no DMI in containers, root-only files, processes that vanish),
//! and a missing source becomes a null property, never an error.

use std::ffi::{CStr, CString};
use std::fs;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use crate::cim::DateTime;

/// Reads a text file, trimmed; `None` when unreadable or empty.
pub fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Reads a file holding one unsigned number.
pub fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// `uname(2)`: (nodename, release, version, machine).
pub struct Uname {
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
}

pub fn uname() -> Option<Uname> {
    let mut buf = MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: uname fills the struct it is given; it is zero-initialised, so every field is a
    // NUL-terminated array even if the call fails part way.
    let rc = unsafe { libc::uname(buf.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: uname returned success, so the struct is initialised.
    let u = unsafe { buf.assume_init() };
    let field = |f: &[libc::c_char]| -> String {
        let bytes: Vec<u8> = f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Some(Uname {
        nodename: field(&u.nodename),
        release: field(&u.release),
        version: field(&u.version),
        machine: field(&u.machine),
    })
}

/// Clock ticks per second, the unit of times in `/proc/<pid>/stat`.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as u64 } else { 100 }
}

/// The memory page size in bytes, the unit of RSS in `/proc/<pid>/stat`.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as u64 } else { 4096 }
}

/// The local time zone's offset from UTC at `unix_secs`, in seconds east, and whether daylight
/// saving time is in effect then. Uses `localtime_r`, so it honours `TZ` and `/etc/localtime`.
// libc's field types differ between targets (32-bit time_t, c_ulong), hence the casts.
#[allow(clippy::unnecessary_cast)]
pub fn local_offset(unix_secs: i64) -> (i64, bool) {
    let t = unix_secs as libc::time_t;
    let mut tm = MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: both pointers are valid for the call; localtime_r writes only into `tm`.
    let r = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if r.is_null() {
        return (0, false);
    }
    // SAFETY: localtime_r succeeded and initialised `tm`.
    let tm = unsafe { tm.assume_init() };
    (tm.tm_gmtoff as i64, tm.tm_isdst > 0)
}

/// A point in time as a CIM datetime in the local time zone (WMI reports local times).
pub fn local_datetime(unix_secs: i64, micros: u32) -> DateTime {
    let (offset, _) = local_offset(unix_secs);
    let mut dt = DateTime::from_unix(unix_secs + offset, micros);
    dt.offset_minutes = (offset / 60) as i16;
    dt
}

/// The current time as (seconds, microseconds) since the Unix epoch.
pub fn now() -> (i64, u32) {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
        Err(_) => (0, 0),
    }
}

/// Space figures of a mounted filesystem, from `statvfs(3)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    /// Total size in bytes.
    pub size: u64,
    /// Bytes available to unprivileged users (what `df` reports as available).
    pub available: u64,
    pub block_size: u64,
    pub name_max: u64,
    pub read_only: bool,
}

/// `statvfs(3)` of a path.
#[allow(clippy::unnecessary_cast)] // fsblkcnt_t and c_ulong are 32-bit on some targets
pub fn statvfs(path: &str) -> Option<FsSpace> {
    let c = CString::new(path).ok()?;
    let mut st = MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded and initialised `st`.
    let st = unsafe { st.assume_init() };
    let frsize = if st.f_frsize > 0 { st.f_frsize as u64 } else { st.f_bsize as u64 };
    Some(FsSpace {
        size: (st.f_blocks as u64).saturating_mul(frsize),
        available: (st.f_bavail as u64).saturating_mul(frsize),
        block_size: frsize,
        name_max: st.f_namemax as u64,
        read_only: st.f_flag & libc::ST_RDONLY != 0,
    })
}

/// `statvfs` with a time limit, for network filesystems, whose server may not answer: the
/// call then keeps one thread blocked in the kernel, but the query goes on without the figures.
pub fn statvfs_within(path: &str, limit: Duration) -> Option<FsSpace> {
    let (tx, rx) = mpsc::channel();
    let owned = path.to_string();
    std::thread::Builder::new()
        .name("cimrun-statvfs".into())
        .spawn(move || {
            let _ = tx.send(statvfs(&owned));
        })
        .ok()?;
    rx.recv_timeout(limit).ok().flatten()
}

/// One address of a network interface, from `getifaddrs(3)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub interface: String,
    pub address: IpAddr,
    /// Prefix length of the netmask.
    pub prefix: u8,
}

/// Every IPv4 and IPv6 address of every interface.
pub fn interface_addresses() -> Vec<IfAddr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `head`; it is freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
        // SAFETY: the address pointers are either null or point at sockaddrs of the family
        // their sa_family says, owned by the list.
        let (Some(address), netmask) = (unsafe { sockaddr_ip(ifa.ifa_addr) }, unsafe { sockaddr_ip(ifa.ifa_netmask) })
        else {
            continue;
        };
        let prefix = match netmask {
            Some(IpAddr::V4(m)) => u32::from(m).count_ones() as u8,
            Some(IpAddr::V6(m)) => u128::from(m).count_ones() as u8,
            None => {
                if address.is_ipv4() {
                    32
                } else {
                    128
                }
            }
        };
        out.push(IfAddr { interface: name, address, prefix });
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Reads an IPv4 or IPv6 address out of a sockaddr.
///
/// # Safety
/// `sa` must be null or point at a valid sockaddr whose real size matches its family.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    match unsafe { (*sa).sa_family } as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin = unsafe { &*(sa as *const libc::sockaddr_in) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6 = unsafe { &*(sa as *const libc::sockaddr_in6) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// `if_nametoindex(3)`.
pub fn interface_index(name: &str) -> Option<u32> {
    let c = CString::new(std::ffi::OsStr::new(name).as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_datetime_carries_the_offset_it_was_computed_with() {
        // The zone itself is exercised under set TZ values by tests/local_provider.rs.
        let (off, _) = local_offset(1_700_000_000);
        let dt = local_datetime(1_700_000_000, 5);
        assert_eq!(i64::from(dt.offset_minutes), off / 60);
        let shifted = DateTime::from_unix(1_700_000_000 + off, 5);
        assert_eq!(
            (dt.day, dt.hour, dt.minute, dt.second, dt.microsecond),
            (shifted.day, shifted.hour, shifted.minute, shifted.second, 5)
        );
    }

    #[test]
    fn statvfs_of_missing_path_is_none() {
        assert!(statvfs("/nonexistent/cimrun/path").is_none());
        assert!(statvfs("bad\0path").is_none());
        assert!(statvfs("/").is_some_and(|s| s.size > 0 && s.available <= s.size));
    }

    #[test]
    fn loopback_has_an_index_and_an_address() {
        assert!(interface_index("lo").is_some());
        assert!(interface_index("no-such-if0").is_none());
        let addrs = interface_addresses();
        assert!(addrs.iter().any(|a| a.interface == "lo" && a.address.is_loopback() && a.prefix == 8));
    }
}
