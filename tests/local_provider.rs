//! The local provider on this machine, checked against independent tools (`df`, `getconf`,
//! `hostname`, `uptime`, `ip`) and the kernel's own counts.

use std::collections::BTreeSet;
use std::process::Command;

use cimrun::cim::{Instance, Value};
use cimrun::protocol::local::LocalConnector;
use cimrun::protocol::{Connector, Endpoint, QuerySpec};
use futures::StreamExt;

async fn query(class: &str) -> Vec<Instance> {
    run(QuerySpec::class(class)).await
}

/// Runs a WQL query through a local session.
async fn wql(text: &str) -> Vec<Instance> {
    let parsed = cimrun::wql::parse(text).expect("valid WQL");
    let mut q = QuerySpec::class(&parsed.class);
    q.wql = parsed;
    q.needs_filter = true;
    run(q).await
}

async fn run(q: QuerySpec) -> Vec<Instance> {
    let endpoint = Endpoint::local();
    let mut session = LocalConnector.open(&endpoint).await.expect("local session opens");
    let mut out = Vec::new();
    let mut pages = session.enumerate(&q);
    while let Some(page) = pages.next().await {
        out.extend(page.expect("local query succeeds"));
    }
    drop(pages);
    session.close().await.unwrap();
    out
}

/// Runs an independent tool and returns its stdout. A missing tool fails the test rather than
/// skipping the comparison: scripts/test.sh installs them (procps, iproute2).
fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is needed for this comparison (scripts/test.sh installs it): {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn u64_of(i: &Instance, p: &str) -> u64 {
    match i.get(p) {
        Some(Value::UInt64(v)) => *v,
        Some(Value::UInt32(v)) => u64::from(*v),
        other => panic!("{p} = {other:?}"),
    }
}

fn text_of(i: &Instance, p: &str) -> String {
    match i.get(p) {
        Some(Value::String(s)) => s.to_string(),
        other => panic!("{p} = {other:?}"),
    }
}

fn within(a: u64, b: u64, fraction: f64) -> bool {
    (a as f64 - b as f64).abs() <= fraction * (a.max(b) as f64)
}

#[tokio::test]
async fn root_filesystem_matches_df() {
    let disks = query("Win32_LogicalDisk").await;
    let root = disks.iter().find(|d| text_of(d, "DeviceID") == "/").expect("/ is a logical disk");
    assert_eq!(root.get("DriveType"), Some(&Value::UInt32(3)));
    let df = tool("df", &["-B1", "--output=size,avail", "/"]);
    let nums: Vec<u64> = df.lines().nth(1).unwrap().split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert_eq!(u64_of(root, "Size"), nums[0]);
    // Free space moves while tests run; a few percent is the margin.
    assert!(
        within(u64_of(root, "FreeSpace"), nums[1], 0.03),
        "FreeSpace {} vs df {}",
        u64_of(root, "FreeSpace"),
        nums[1]
    );
    // No pseudo filesystem is listed as a disk, except that `/` is the system volume whatever
    // backs it (an overlay in a container).
    for d in disks.iter().filter(|d| text_of(d, "DeviceID") != "/") {
        let fs = text_of(d, "FileSystem");
        assert!(!["proc", "sysfs", "tmpfs", "cgroup", "cgroup2", "devpts", "overlay"].contains(&fs.as_str()), "{fs}");
    }
}

#[tokio::test]
async fn logical_processors_match_getconf() {
    let n = tool("getconf", &["_NPROCESSORS_ONLN"]);
    // getconf counts online CPUs; `nproc` would count only those this process may run on.
    let online: u64 = n.trim().parse().unwrap();
    let procs = query("Win32_Processor").await;
    let sum: u64 = procs.iter().map(|p| u64_of(p, "NumberOfLogicalProcessors")).sum();
    assert_eq!(sum, online);
    for p in &procs {
        assert!(u64_of(p, "NumberOfCores") <= u64_of(p, "NumberOfLogicalProcessors"));
    }
    let cs = query("Win32_ComputerSystem").await;
    assert_eq!(u64_of(&cs[0], "NumberOfLogicalProcessors"), online);
    assert_eq!(u64_of(&cs[0], "NumberOfProcessors"), procs.len() as u64);
}

#[tokio::test]
async fn host_name_matches_hostname() {
    let h = tool("hostname", &[]);
    let short = h.trim().split('.').next().unwrap().to_string();
    let cs = query("Win32_ComputerSystem").await;
    assert_eq!(text_of(&cs[0], "Name"), short);
    let os = query("Win32_OperatingSystem").await;
    assert_eq!(text_of(&os[0], "CSName"), short);
}

#[tokio::test]
async fn processes_match_proc_and_include_this_one() {
    let count = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().parse::<u32>().is_ok())
            .count()
    };
    let before = count();
    let procs = query("Win32_Process").await;
    let after = count();
    let (lo, hi) = (before.min(after), before.max(after));
    // Processes start and end meanwhile; allow a little churn around what /proc showed.
    assert!(procs.len() + 5 >= lo && procs.len() <= hi + 5, "{} processes, /proc had {before}..{after}", procs.len());
    let me = procs
        .iter()
        .find(|p| p.get("ProcessId") == Some(&Value::UInt32(std::process::id())))
        .expect("this test process");
    assert_eq!(me.get("ParentProcessId"), Some(&Value::UInt32(std::os::unix::process::parent_id())));
    assert!(u64_of(me, "ThreadCount") >= 1);
    assert!(u64_of(me, "WorkingSetSize") > 0);
    let exe = std::env::current_exe().unwrap();
    assert_eq!(text_of(me, "ExecutablePath"), exe.to_string_lossy());
    let pids: BTreeSet<u32> = procs
        .iter()
        .map(|p| match p.get("ProcessId") {
            Some(Value::UInt32(v)) => *v,
            _ => 0,
        })
        .collect();
    assert_eq!(pids.len(), procs.len(), "process ids are unique");
}

#[tokio::test]
async fn boot_time_matches_uptime() {
    let since = tool("uptime", &["-s"]);
    let os = query("Win32_OperatingSystem").await;
    let Some(Value::DateTime(boot)) = os[0].get("LastBootUpTime") else { panic!("no LastBootUpTime") };
    // `uptime -s` prints the local boot time as `YYYY-MM-DD HH:MM:SS`; it derives it from
    // /proc/uptime, so it may differ from btime by a second.
    let ours = format!("{:04}-{:02}-{:02} {:02}:{:02}", boot.year, boot.month, boot.day, boot.hour, boot.minute);
    let secs = |s: &str| -> i64 {
        let t: Vec<i64> = s.split([' ', '-', ':']).map(|x| x.parse().unwrap()).collect();
        ((t[2] * 24 + t[3]) * 60 + t[4]) * 60 + t.get(5).copied().unwrap_or(0)
    };
    let theirs = since.trim();
    assert!((secs(&format!("{ours}:{:02}", boot.second)) - secs(theirs)).abs() <= 2, "{ours} vs {theirs}");
    let Some(Value::SInt16(tz)) = os[0].get("CurrentTimeZone") else { panic!() };
    assert_eq!(boot.offset_minutes, *tz);
}

#[tokio::test]
async fn addresses_and_gateway_match_ip() {
    let configs = query("Win32_NetworkAdapterConfiguration").await;
    let addr = tool("ip", &["-o", "addr", "show"]);
    // `ip -o addr`: "4: eth0    inet 192.0.2.2/24 brd … scope global eth0".
    let mut theirs: BTreeSet<(String, String)> = BTreeSet::new();
    for line in addr.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[1] != "lo" && (f[2] == "inet" || f[2] == "inet6") {
            theirs.insert((f[1].to_string(), f[3].split('/').next().unwrap().to_string()));
        }
    }
    let mut ours: BTreeSet<(String, String)> = BTreeSet::new();
    for c in &configs {
        if let Some(Value::Array(ips)) = c.get("IPAddress") {
            for ip in ips {
                ours.insert((text_of(c, "SettingID"), ip.to_string()));
            }
        }
    }
    assert_eq!(ours, theirs);
    let route = tool("ip", &["-4", "route", "show", "default"]);
    for line in route.lines() {
        // "default via 192.0.2.1 dev eth0 …"
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(gw), Some(dev)) = (f.iter().position(|w| *w == "via"), f.iter().position(|w| *w == "dev")) else {
            continue;
        };
        let c = configs.iter().find(|c| text_of(c, "SettingID") == f[dev + 1]).unwrap();
        let Some(Value::Array(gws)) = c.get("DefaultIPGateway") else { panic!("no gateway on {}", f[dev + 1]) };
        assert!(gws.contains(&Value::String(f[gw + 1].into())));
    }
}

#[tokio::test]
async fn adapters_match_ip_link_and_their_configurations() {
    let adapters = query("Win32_NetworkAdapter").await;
    let configs = query("Win32_NetworkAdapterConfiguration").await;
    let index = |i: &Instance| u64_of(i, "Index");
    let a: Vec<u64> = adapters.iter().map(index).collect();
    let c: Vec<u64> = configs.iter().map(index).collect();
    assert_eq!(a, c, "every adapter has its configuration, in the same order");
    let link = tool("ip", &["-o", "link", "show"]);
    // "4: eth0: <BROADCAST,…,UP> mtu 1400 … link/ether 02:fc:00:00:00:01 brd …"
    for line in link.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let name = f[1].trim_end_matches(':').split('@').next().unwrap();
        let Some(mac_at) = f.iter().position(|w| *w == "link/ether") else { continue };
        let ad = adapters.iter().find(|a| text_of(a, "Name") == name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(text_of(ad, "MACAddress"), f[mac_at + 1].to_ascii_uppercase());
        assert_eq!(text_of(ad, "AdapterType"), "Ethernet 802.3");
        let up = f[2].trim_matches(['<', '>']).split(',').any(|flag| flag == "UP");
        assert_eq!(ad.get("NetEnabled"), Some(&Value::Bool(up)));
    }
}

#[tokio::test]
async fn where_clause_finds_a_child_process() {
    let mut child = Command::new("sleep").arg("30").spawn().expect("sleep runs");
    let me = std::process::id();
    let rows =
        wql(&format!("SELECT ProcessId, Name, CommandLine FROM Win32_Process WHERE ParentProcessId = {me}")).await;
    let _ = child.kill();
    let _ = child.wait();
    let row =
        rows.iter().find(|r| r.get("ProcessId") == Some(&Value::UInt32(child.id()))).expect("the child is listed");
    assert_eq!(text_of(row, "Name"), "sleep");
    assert_eq!(text_of(row, "CommandLine"), "sleep 30");
    assert_eq!(row.properties.len(), 3);
    assert!(rows.iter().all(|r| r.get("ProcessId") != Some(&Value::UInt32(me))));
}

/// The child half of `datetimes_use_the_local_time_zone`: started with `TZ` set and the
/// expected offset in CIMRUN_TZ_CHILD. Run directly, without that variable, it has no zone to
/// check and returns.
#[tokio::test]
async fn tz_child() {
    let Ok(expected) = std::env::var("CIMRUN_TZ_CHILD") else { return };
    let expected: i16 = expected.parse().unwrap();
    let os = query("Win32_OperatingSystem").await;
    assert_eq!(os[0].get("CurrentTimeZone"), Some(&Value::SInt16(expected)));
    let Some(Value::DateTime(boot)) = os[0].get("LastBootUpTime") else { panic!("no LastBootUpTime") };
    let Some(Value::DateTime(now)) = os[0].get("LocalDateTime") else { panic!("no LocalDateTime") };
    assert_eq!((boot.offset_minutes, now.offset_minutes), (expected, expected));
    // The wall-clock fields are the UTC boot time shifted by the offset.
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let btime: i64 = stat.lines().find_map(|l| l.strip_prefix("btime ")).unwrap().trim().parse().unwrap();
    let shifted = cimrun::cim::DateTime::from_unix(btime + i64::from(expected) * 60, 0);
    assert_eq!(
        (boot.day, boot.hour, boot.minute, boot.second),
        (shifted.day, shifted.hour, shifted.minute, shifted.second)
    );
    let cs = query("Win32_ComputerSystem").await;
    assert_eq!(cs[0].get("CurrentTimeZone"), Some(&Value::SInt16(expected)));
    println!("tz-child-checked");
}

/// Datetimes carry the offset of the zone `TZ` names (POSIX zone strings need no tz database).
#[test]
fn datetimes_use_the_local_time_zone() {
    for (tz, minutes) in [("XST-5:30", 330), ("YST+3", -180)] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tz_child", "--nocapture", "--test-threads=1"])
            .env("TZ", tz)
            .env("CIMRUN_TZ_CHILD", minutes.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "TZ={tz}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("tz-child-checked"), "TZ={tz}: child did not run: {stdout}");
    }
}
