//! Win32_NetworkAdapter (each network interface) and Win32_NetworkAdapterConfiguration (its
//! TCP/IP settings), sharing `Index` as Windows links the two.
//!
//! Addresses come from `getifaddrs`, gateways from the kernel routing tables, DNS from
//! `/etc/resolv.conf`. The loopback interface is left out, as Windows does not list one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::cim::{Instance, Value};

use super::host::Host;
use super::row::Row;
use super::sys::{self, IfAddr};

/// The parts of resolv.conf(5) Windows reports per adapter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolver {
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
    pub domain: Option<String>,
}

impl Resolver {
    /// Parses resolv.conf; the last `domain`/`search` line wins, as in the resolver.
    pub fn parse(text: &str) -> Resolver {
        let mut r = Resolver::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => r.nameservers.extend(words.next().map(str::to_string)),
                Some("search") => r.search = words.map(str::to_string).collect(),
                Some("domain") => r.domain = words.next().map(str::to_string),
                _ => {}
            }
        }
        r
    }

    /// The DNS domain: `domain`, else the first `search` entry.
    pub fn domain(&self) -> Option<String> {
        self.domain.clone().or_else(|| self.search.first().cloned())
    }
}

/// A default route: the gateway an interface sends off-link traffic to, and its metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub interface: String,
    pub gateway: IpAddr,
    pub metric: u32,
}

const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;

/// Default routes (destination 0.0.0.0/0 through a gateway) from `/proc/net/route`, whose
/// addresses are the raw network-order words printed in hex.
pub fn parse_ipv4_default_routes(text: &str) -> Vec<DefaultRoute> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let hex = |i: usize| f.get(i).and_then(|s| u32::from_str_radix(s, 16).ok());
            let (dest, gw, flags, metric, mask) = (hex(1)?, hex(2)?, hex(3)?, f.get(6)?.parse().ok()?, hex(7)?);
            let is_default = dest == 0 && mask == 0 && flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY;
            is_default.then(|| DefaultRoute {
                interface: f.first().map(|s| s.to_string()).unwrap_or_default(),
                gateway: IpAddr::V4(Ipv4Addr::from(gw.to_ne_bytes())),
                metric,
            })
        })
        .collect()
}

/// Default routes (::/0 through a gateway) from `/proc/net/ipv6_route`.
pub fn parse_ipv6_default_routes(text: &str) -> Vec<DefaultRoute> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, prefix, next_hop) = (f.first()?, f.get(1)?, f.get(4)?);
            let metric = u32::from_str_radix(f.get(5)?, 16).ok()?;
            let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
            let gateway = Ipv6Addr::from(u128::from_str_radix(next_hop, 16).ok()?);
            let is_default = dest.bytes().all(|b| b == b'0')
                && *prefix == "00"
                && flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY
                && !gateway.is_unspecified();
            is_default.then(|| DefaultRoute {
                interface: f.get(9).map(|s| s.to_string()).unwrap_or_default(),
                gateway: IpAddr::V6(gateway),
                metric,
            })
        })
        .collect()
}

/// A MAC address in Windows' form (`02:FC:00:00:00:01`); `None` for an absent or all-zero one.
pub fn windows_mac(sysfs_address: &str) -> Option<String> {
    let parts: Vec<&str> = sysfs_address.trim().split(':').collect();
    let valid = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid || parts.iter().all(|p| *p == "00") {
        return None;
    }
    Some(parts.join(":").to_ascii_uppercase())
}

/// IPAddress and IPSubnet as Windows gives them: IPv4 first, IPv4 masks dotted, IPv6 subnets
/// as prefix lengths.
pub fn addresses_and_subnets(addrs: &[&IfAddr]) -> (Vec<String>, Vec<String>) {
    let mut sorted: Vec<&&IfAddr> = addrs.iter().collect();
    sorted.sort_by_key(|a| a.address.is_ipv6());
    sorted
        .into_iter()
        .map(|a| {
            let subnet = match a.address {
                IpAddr::V4(_) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(a.prefix.min(32))).unwrap_or(0);
                    Ipv4Addr::from(mask).to_string()
                }
                IpAddr::V6(_) => a.prefix.to_string(),
            };
            (a.address.to_string(), subnet)
        })
        .unzip()
}

const IFF_UP: u64 = 0x1;
const IFF_LOOPBACK: u64 = 0x8;
/// ARPHRD_ETHER, the link type of Ethernet and Wi-Fi interfaces.
const ARPHRD_ETHER: u64 = 1;

fn interface_flags(name: &str) -> Option<u64> {
    sys::read_trimmed(format!("/sys/class/net/{name}/flags"))
        .and_then(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok())
}

/// The non-loopback interfaces as (index, name), in index order.
fn interfaces() -> Vec<(u32, String)> {
    let mut out: Vec<(u32, String)> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|name| interface_flags(name).is_some_and(|f| f & IFF_LOOPBACK == 0))
                .filter_map(|name| Some((sys::interface_index(&name)?, name)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The kernel driver bound to an interface's device (`virtio_net`, `e1000e`…).
fn driver(name: &str) -> Option<String> {
    let link = std::fs::read_link(format!("/sys/class/net/{name}/device/driver")).ok()?;
    link.file_name()?.to_str().map(str::to_string)
}

/// Win32_NetworkAdapter: the interfaces themselves (link type, MAC, speed, state).
pub fn adapters(host: &Host) -> Vec<Instance> {
    interfaces()
        .into_iter()
        .map(|(index, name)| {
            let dir = format!("/sys/class/net/{name}");
            let ethernet = sys::read_u64(format!("{dir}/type")) == Some(ARPHRD_ETHER);
            let up = interface_flags(&name).map(|f| f & IFF_UP != 0);
            // NetConnectionStatus: 2 connected, 7 media disconnected.
            let status = match sys::read_trimmed(format!("{dir}/operstate")).as_deref() {
                Some("up") => Some(2u16),
                Some("down" | "lowerlayerdown") => Some(7),
                _ => None,
            };
            // `speed` is in Mb/s, and unreadable or -1 when the link is down.
            let speed = sys::read_u64(format!("{dir}/speed")).filter(|&s| s > 0 && s < u64::from(u32::MAX));
            let mut r = Row::new("Win32_NetworkAdapter");
            r.text("AdapterType", ethernet.then_some("Ethernet 802.3"))
                .set("AdapterTypeID", ethernet.then_some(Value::UInt16(0)))
                .set("Availability", Value::UInt16(3))
                .text("Caption", Some(format!("[{index:08}] {name}")))
                .text("CreationClassName", Some("Win32_NetworkAdapter"))
                .text("Description", Some(name.as_str()))
                .text("DeviceID", Some(index.to_string()))
                .set("Index", Value::UInt32(index))
                .set("Installed", Value::Bool(true))
                .set("InterfaceIndex", Value::UInt32(index))
                .text("MACAddress", sys::read_trimmed(format!("{dir}/address")).and_then(|a| windows_mac(&a)))
                .text("Name", Some(name.as_str()))
                .text("NetConnectionID", Some(name.as_str()))
                .set("NetConnectionStatus", status.map(Value::UInt16))
                .set("NetEnabled", up.map(Value::Bool))
                .set("PhysicalAdapter", Value::Bool(std::path::Path::new(&format!("{dir}/device")).exists()))
                .text("ServiceName", driver(&name))
                .set("Speed", speed.map(|s| Value::UInt64(s * 1_000_000)))
                .text("SystemCreationClassName", Some("Win32_ComputerSystem"))
                .text("SystemName", Some(host.hostname.as_str()))
                .datetime("TimeOfLastReset", host.boot_time.map(|b| sys::local_datetime(b, 0)));
            r.finish()
        })
        .collect()
}

pub fn adapter_configurations(host: &Host) -> Vec<Instance> {
    let resolver = Resolver::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let mut routes = parse_ipv4_default_routes(&std::fs::read_to_string("/proc/net/route").unwrap_or_default());
    routes.extend(parse_ipv6_default_routes(&std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default()));
    let addrs = sys::interface_addresses();
    let default_ttl = sys::read_u64("/proc/sys/net/ipv4/ip_default_ttl").and_then(|v| u8::try_from(v).ok());

    interfaces()
        .into_iter()
        .map(|(index, name)| {
            let own: Vec<&IfAddr> = addrs.iter().filter(|a| a.interface == name).collect();
            let (ips, subnets) = addresses_and_subnets(&own);
            let ip_enabled = !ips.is_empty();
            let gateways: Vec<&DefaultRoute> = routes.iter().filter(|r| r.interface == name).collect();
            let dir = format!("/sys/class/net/{name}");
            let mut r = Row::new("Win32_NetworkAdapterConfiguration");
            r.text("Caption", Some(format!("[{index:08}] {name}")))
                .text("DatabasePath", Some("/etc"))
                .texts(
                    "DefaultIPGateway",
                    (!gateways.is_empty()).then(|| gateways.iter().map(|g| g.gateway.to_string()).collect()),
                )
                .set("DefaultTTL", default_ttl.map(Value::UInt8))
                .text("Description", Some(name.as_str()))
                .text("DNSDomain", resolver.domain())
                .texts("DNSDomainSuffixSearchOrder", (!resolver.search.is_empty()).then(|| resolver.search.clone()))
                .text("DNSHostName", Some(host.hostname.as_str()))
                .texts(
                    "DNSServerSearchOrder",
                    (ip_enabled && !resolver.nameservers.is_empty()).then(|| resolver.nameservers.clone()),
                )
                .set(
                    "GatewayCostMetric",
                    (!gateways.is_empty()).then(|| {
                        Value::Array(
                            gateways.iter().map(|g| Value::UInt16(g.metric.min(u16::MAX as u32) as u16)).collect(),
                        )
                    }),
                )
                .set("Index", Value::UInt32(index))
                .set("InterfaceIndex", Value::UInt32(index))
                .texts("IPAddress", ip_enabled.then_some(ips))
                .set("IPEnabled", Value::Bool(ip_enabled))
                .texts("IPSubnet", ip_enabled.then_some(subnets))
                .text("MACAddress", sys::read_trimmed(format!("{dir}/address")).and_then(|a| windows_mac(&a)))
                .set("MTU", sys::read_u64(format!("{dir}/mtu")).and_then(|v| u32::try_from(v).ok()).map(Value::UInt32))
                .text("ServiceName", driver(&name))
                .text("SettingID", Some(name.as_str()));
            r.finish()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let r = Resolver::parse(
            "# generated\nnameserver 10.0.0.2\nnameserver fd00::53 # v6\nsearch a.example b.example\noptions ndots:2\n",
        );
        assert_eq!(r.nameservers, vec!["10.0.0.2", "fd00::53"]);
        assert_eq!(r.search, vec!["a.example", "b.example"]);
        assert_eq!(r.domain(), Some("a.example".into()));
        let r = Resolver::parse("domain corp.example\nsearch x.example\n");
        assert_eq!(r.domain(), Some("corp.example".into()));
        assert_eq!(Resolver::parse(""), Resolver::default());
    }

    #[test]
    fn ipv4_default_routes() {
        let text = include_str!("../../../tests/data/local/route");
        let r = parse_ipv4_default_routes(text);
        assert_eq!(
            r,
            vec![DefaultRoute { interface: "eth0".into(), gateway: "192.0.2.1".parse().unwrap(), metric: 100 }]
        );
    }

    #[test]
    fn ipv6_default_routes() {
        let text = include_str!("../../../tests/data/local/ipv6_route");
        let r = parse_ipv6_default_routes(text);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].interface, "eth0");
        assert_eq!(r[0].gateway, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(r[0].metric, 1024);
    }

    #[test]
    fn mac_form() {
        assert_eq!(windows_mac("02:fc:00:0a:bc:01\n"), Some("02:FC:00:0A:BC:01".into()));
        assert_eq!(windows_mac("00:00:00:00:00:00"), None);
        assert_eq!(windows_mac(""), None);
        assert_eq!(windows_mac("00:11:22:33:44:55:66:77:88"), None);
    }

    #[test]
    fn subnets_in_windows_form() {
        let a = |ip: &str, prefix| IfAddr { interface: "eth0".into(), address: ip.parse().unwrap(), prefix };
        let v = [a("fe80::1", 64), a("192.0.2.2", 24), a("10.1.2.3", 0), a("10.9.9.9", 32)];
        let refs: Vec<&IfAddr> = v.iter().collect();
        let (ips, subnets) = addresses_and_subnets(&refs);
        assert_eq!(ips, vec!["192.0.2.2", "10.1.2.3", "10.9.9.9", "fe80::1"]);
        assert_eq!(subnets, vec!["255.255.255.0", "0.0.0.0", "255.255.255.255", "64"]);
    }
}
