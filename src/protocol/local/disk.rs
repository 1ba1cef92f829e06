//! Win32_LogicalDisk: the mounted filesystems that live on a block device or a network share.
//!
//! Windows lists drive letters; here each mount point plays the part of the drive letter
//! (`DeviceID` = mount point). Pseudo filesystems (proc, tmpfs, cgroup…) and bind mounts of a
//! subdirectory are left out, as they are not volumes; `/` is always listed, being the system
//! volume even when an overlay (containers) or tmpfs (live media) backs it.

use std::path::Path;
use std::time::Duration;

use crate::cim::{Instance, Value};

use super::host::Host;
use super::row::Row;
use super::sys;

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub major: u32,
    pub minor: u32,
    /// The directory of the filesystem that is mounted (`/` unless a bind mount or subvolume).
    pub root: String,
    pub mount_point: String,
    pub options: String,
    pub fstype: String,
    pub source: String,
}

/// Parses `/proc/<pid>/mountinfo` (proc(5)); malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_mount_line).collect()
}

fn parse_mount_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let _id = l.next()?;
    let _parent = l.next()?;
    let (major, minor) = l.next()?.split_once(':')?;
    let root = unescape(l.next()?);
    let mount_point = unescape(l.next()?);
    let options = l.next()?.to_string();
    let mut r = right.split(' ');
    let fstype = r.next()?.to_string();
    let source = unescape(r.next()?);
    Some(Mount { major: major.parse().ok()?, minor: minor.parse().ok()?, root, mount_point, options, fstype, source })
}

/// Undoes the kernel's octal escapes (`\040` for a space) in mountinfo paths.
fn unescape(s: &str) -> String {
    unescape_bytes(s, "\\", 3, 8)
}

/// Undoes escapes of the form `lead` + `digits` digits in `radix`; anything else is kept.
fn unescape_bytes(s: &str, lead: &str, digits: usize, radix: u32) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b
            .get(i..)
            .filter(|rest| rest.starts_with(lead.as_bytes()))
            .and_then(|_| b.get(i + lead.len()..i + lead.len() + digits))
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.chars().all(|c| c.is_digit(radix)))
            .and_then(|d| u8::from_str_radix(d, radix).ok());
        match code {
            Some(v) => {
                out.push(v);
                i += lead.len() + digits;
            }
            None => {
                out.extend(b.get(i));
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Filesystems whose data lives on another machine.
const NETWORK_FS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ncpfs",
    "afs",
    "ceph",
    "glusterfs",
    "fuse.glusterfs",
    "fuse.sshfs",
    "fuse.rclone",
    "fuse.s3fs",
    "davfs",
    "fuse.davfs2",
    "9p",
    "lustre",
];

/// Win32_LogicalDisk.DriveType values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveType {
    Removable = 2,
    Local = 3,
    Network = 4,
    CompactDisc = 5,
}

impl DriveType {
    fn description(self) -> &'static str {
        match self {
            DriveType::Removable => "Removable Disk",
            DriveType::Local => "Local Fixed Disk",
            DriveType::Network => "Network Connection",
            DriveType::CompactDisc => "CD-ROM Disc",
        }
    }
}

/// Which drive type a mount is, or `None` when it is not a volume. `removable` tells whether
/// the block device `major:minor` is removable media.
pub fn classify(m: &Mount, removable: impl Fn(u32, u32) -> bool) -> Option<DriveType> {
    if NETWORK_FS.contains(&m.fstype.as_str()) {
        return Some(DriveType::Network);
    }
    // The root filesystem is the system volume (Windows' C:) whatever backs it: in a
    // container it is an overlay, on live media a tmpfs.
    if m.mount_point == "/" && m.root == "/" {
        return Some(DriveType::Local);
    }
    // Major 0 is the kernel's "no device" (proc, tmpfs, overlay…).
    if m.major == 0 {
        return None;
    }
    // A bind mount of a subdirectory is not another volume; btrfs mounts subvolumes that way.
    if m.root != "/" && m.fstype != "btrfs" {
        return None;
    }
    // squashfs holds package images (snaps, live media), not user volumes.
    if m.fstype == "squashfs" {
        return None;
    }
    if m.fstype == "iso9660" || m.fstype == "udf" {
        return Some(DriveType::CompactDisc);
    }
    Some(if removable(m.major, m.minor) { DriveType::Removable } else { DriveType::Local })
}

/// The volumes among the mounts, each mount point once (the last mount there is the visible
/// one), sorted by mount point as Windows sorts drive letters.
pub fn volumes(mounts: Vec<Mount>, removable: impl Fn(u32, u32) -> bool) -> Vec<(Mount, DriveType)> {
    let mut out: Vec<(Mount, DriveType)> = Vec::new();
    for m in mounts {
        out.retain(|(o, _)| o.mount_point != m.mount_point);
        if let Some(t) = classify(&m, &removable) {
            out.push((m, t));
        }
    }
    out.sort_by(|a, b| a.0.mount_point.cmp(&b.0.mount_point));
    out
}

/// Whether a block device is removable media (`removable` of the device, or of the disk a
/// partition belongs to).
fn is_removable(major: u32, minor: u32) -> bool {
    let dev = format!("/sys/dev/block/{major}:{minor}");
    sys::read_u64(format!("{dev}/removable")).or_else(|| sys::read_u64(format!("{dev}/../removable"))) == Some(1)
}

/// The name under which `dir` (a udev directory such as `/dev/disk/by-uuid`) links to `device`,
/// with udev's `\xNN` escapes undone.
pub fn udev_name(dir: &Path, device: &Path) -> Option<String> {
    let target = std::fs::canonicalize(device).ok()?;
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| std::fs::canonicalize(e.path()).is_ok_and(|t| t == target))
        .and_then(|e| e.file_name().to_str().map(unescape_udev))
}

/// Undoes udev's `\xNN` escapes (`My\x20Disk`).
fn unescape_udev(s: &str) -> String {
    unescape_bytes(s, "\\x", 2, 16)
}

/// How long to wait for a network filesystem's server before leaving its sizes null.
const NETWORK_STATVFS_LIMIT: Duration = Duration::from_secs(5);

pub fn logical_disks(host: &Host) -> Vec<Instance> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    volumes(parse_mountinfo(&text), is_removable)
        .into_iter()
        .map(|(m, t)| {
            let space = if t == DriveType::Network {
                sys::statvfs_within(&m.mount_point, NETWORK_STATVFS_LIMIT)
            } else {
                sys::statvfs(&m.mount_point)
            };
            disk_row(host, &m, t, space)
        })
        .collect()
}

fn disk_row(host: &Host, m: &Mount, t: DriveType, space: Option<sys::FsSpace>) -> Instance {
    let read_only = m.options.split(',').any(|o| o == "ro") || space.is_some_and(|s| s.read_only);
    // Labels and filesystem UUIDs are what udev links to the block device under /dev/disk.
    let block = t != DriveType::Network && m.source.starts_with("/dev/");
    let mut r = Row::new("Win32_LogicalDisk");
    r.set("Access", Value::UInt16(if read_only { 1 } else { 3 }))
        .set("BlockSize", space.map(|s| Value::UInt64(s.block_size)))
        .text("Caption", Some(m.mount_point.as_str()))
        .text("CreationClassName", Some("Win32_LogicalDisk"))
        .text("Description", Some(t.description()))
        .text("DeviceID", Some(m.mount_point.as_str()))
        .set("DriveType", Value::UInt32(t as u32))
        .text("FileSystem", Some(m.fstype.as_str()))
        .set("FreeSpace", space.map(|s| Value::UInt64(s.available)))
        .set("MaximumComponentLength", space.and_then(|s| u32::try_from(s.name_max).ok()).map(Value::UInt32))
        .set(
            "MediaType",
            match t {
                DriveType::Local => Some(Value::UInt32(12)),
                DriveType::Removable => Some(Value::UInt32(11)),
                _ => None,
            },
        )
        .text("Name", Some(m.mount_point.as_str()))
        .set("NumberOfBlocks", space.filter(|s| s.block_size > 0).map(|s| Value::UInt64(s.size / s.block_size)))
        .text("ProviderName", (t == DriveType::Network).then_some(m.source.as_str()))
        .set("Size", space.map(|s| Value::UInt64(s.size)))
        .text("VolumeName", block.then(|| udev_name(Path::new("/dev/disk/by-label"), Path::new(&m.source))).flatten())
        .text(
            "VolumeSerialNumber",
            block
                .then(|| udev_name(Path::new("/dev/disk/by-uuid"), Path::new(&m.source)))
                .flatten()
                .map(|u| u.to_ascii_uppercase()),
        )
        .text("SystemCreationClassName", Some("Win32_ComputerSystem"))
        .text("SystemName", Some(host.hostname.as_str()));
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../tests/data/local/mountinfo");

    #[test]
    fn mountinfo_lines() {
        let m = parse_mountinfo(SAMPLE);
        let root = m.iter().find(|m| m.mount_point == "/").unwrap();
        assert_eq!((root.major, root.minor), (254, 0));
        assert_eq!(root.fstype, "ext4");
        assert_eq!(root.source, "/dev/vda");
        // Optional fields before the separator and escaped spaces are handled.
        let spaced = m.iter().find(|m| m.mount_point == "/mnt/my disk").unwrap();
        assert_eq!(spaced.source, "/dev/sdb1");
        assert_eq!(spaced.fstype, "vfat");
        assert!(parse_mountinfo("garbage\n1 2 x:y / / rw - ext4 /dev/a rw\n").is_empty());
    }

    #[test]
    fn volumes_are_real_disks_and_shares() {
        let v = volumes(parse_mountinfo(SAMPLE), |major, _| major == 8);
        let got: Vec<(&str, DriveType)> = v.iter().map(|(m, t)| (m.mount_point.as_str(), *t)).collect();
        assert_eq!(
            got,
            vec![
                ("/", DriveType::Local),
                ("/home", DriveType::Local),
                ("/media/cdrom", DriveType::CompactDisc),
                ("/mnt/my disk", DriveType::Removable),
                ("/srv/share", DriveType::Network),
            ]
        );
        // /home was mounted twice; the later mount hides the earlier one.
        let home = &v.iter().find(|(m, _)| m.mount_point == "/home").unwrap().0;
        assert_eq!(home.source, "/dev/vdb2");
    }

    #[test]
    fn labels_and_uuids_from_udev_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dev = tmp.path().join("sdb1");
        let other = tmp.path().join("sdc1");
        std::fs::write(&dev, b"").unwrap();
        std::fs::write(&other, b"").unwrap();
        let by_label = tmp.path().join("by-label");
        std::fs::create_dir(&by_label).unwrap();
        std::os::unix::fs::symlink("../sdc1", by_label.join("OTHER")).unwrap();
        std::os::unix::fs::symlink("../sdb1", by_label.join(r"My\x20Data")).unwrap();
        assert_eq!(udev_name(&by_label, &dev).as_deref(), Some("My Data"));
        assert_eq!(udev_name(&by_label, &other).as_deref(), Some("OTHER"));
        assert_eq!(udev_name(&by_label, &tmp.path().join("missing")), None);
        assert_eq!(udev_name(&tmp.path().join("no-dir"), &dev), None);
        assert_eq!(unescape_udev(r"a\x2fb\xZZ\x"), "a/b\\xZZ\\x");
    }

    #[test]
    fn a_container_root_is_still_the_system_volume() {
        let text =
            "500 400 0:77 / / rw,relatime - overlay overlay rw,lowerdir=/l\n501 500 0:78 / /proc rw - proc proc rw\n";
        let v = volumes(parse_mountinfo(text), |_, _| false);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].0.mount_point.as_str(), v[0].1), ("/", DriveType::Local));
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape(r"/a\040b\011c\134d\0"), "/a b\tc\\d\\0");
        assert_eq!(unescape(r"\+12\999\777"), r"\+12\999\777");
    }
}
