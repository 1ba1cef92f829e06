//! The local machine as a CIM provider.
//!
//! A session with no computer queries this Linux machine: its own sources (`/proc`, `/sys`,
//! `/etc/os-release`, statvfs, the network interfaces) are presented as the standard Windows
//! classes, with Windows' property names and types from the class table, so the same job runs
//! against Windows hosts and the machine it runs on. Properties Linux has no data for are null;
//! every instance has every property of its class, in the table's order.
//!
//! Classes are looked up as WMI does: by Win32_ name or by the CIM_ superclass name, which
//! returns the Win32_ instances. A class this provider does not produce is `invalid_class`
//! when Windows does not know it either, and `unsupported` when it is a real Windows class.
//!
//! WHERE filters are evaluated here with the WQL AST, before the SELECT projection. Limits:
//! Win32_QuickFixEngineering has no instances on Linux; Win32_PhysicalMemory has none either,
//! since memory modules are only in the root-only SMBIOS table; a key-only (EPR) query gets full
//! instances; each query reads the sources afresh, so two queries may see different processes.

mod cpu;
mod disk;
mod host;
mod net;
mod process;
mod row;
mod sys;
mod system;

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};

use crate::cim::{Instance, schema};
use crate::protocol::{Category, Connector, Endpoint, Error, Page, QuerySpec, Session};

/// Instances per page: small enough to stream a long process list, large enough that most
/// classes are one page.
pub const PAGE_SIZE: usize = 256;

/// WMI's code for an unknown class (WBEM_E_INVALID_CLASS), as a Windows host reports it.
const WBEM_E_INVALID_CLASS: &str = "0x80041010";
/// WMI's code for an unknown namespace (WBEM_E_INVALID_NAMESPACE).
const WBEM_E_INVALID_NAMESPACE: &str = "0x8004100E";

/// Opens sessions on the local machine. There is nothing to connect to; the only failure is
/// an endpoint that names another computer, which this provider cannot answer for.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalConnector;

impl Connector for LocalConnector {
    fn open<'a>(&'a self, endpoint: &'a Endpoint) -> BoxFuture<'a, Result<Box<dyn Session>, Error>> {
        let result = match endpoint.computer.as_deref() {
            Some(c) if !is_this_machine(c) => Err(Error::new(
                Category::Unsupported,
                format!("the local provider answers for this machine only, not {c}"),
            )),
            _ => Ok(Box::new(LocalSession) as Box<dyn Session>),
        };
        Box::pin(async move { result })
    }
}

/// Whether a computer name denotes this machine: `localhost`, `.`, a loopback address, or the
/// host name (short or full).
fn is_this_machine(name: &str) -> bool {
    let n = name.trim().trim_end_matches('.');
    if n.is_empty() || n.eq_ignore_ascii_case("localhost") || name.trim() == "." {
        return true;
    }
    if n.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    let node = sys::uname().map(|u| u.nodename).unwrap_or_default();
    let short = node.split('.').next().unwrap_or("");
    !node.is_empty() && (n.eq_ignore_ascii_case(&node) || n.eq_ignore_ascii_case(short))
}

/// A session on the local machine; each query reads the sources afresh.
#[derive(Debug, Default)]
pub struct LocalSession;

impl Session for LocalSession {
    fn enumerate<'a>(&'a mut self, query: &'a QuerySpec) -> BoxStream<'a, Result<Page, Error>> {
        let source = match resolve(query) {
            Ok(s) => s,
            Err(e) => return stream::once(async { Err(e) }).boxed(),
        };
        let query = query.clone();
        let read = async move {
            // Reading /proc and /sys blocks; keep it off the async workers when there are any.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => rt
                    .spawn_blocking(move || run(source, &query))
                    .await
                    .unwrap_or_else(|e| Err(Error::new(Category::ServerFault, format!("local provider failed: {e}")))),
                Err(_) => run(source, &query),
            }
        };
        stream::once(read)
            .flat_map(|result| {
                let pages: Vec<Result<Page, Error>> = match result {
                    Ok(instances) => paginate(instances).into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                stream::iter(pages)
            })
            .boxed()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// What the provider reads to produce a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    OperatingSystem,
    ComputerSystem,
    ComputerSystemProduct,
    Bios,
    Processor,
    LogicalDisk,
    Adapter,
    AdapterConfiguration,
    Process,
    /// Hotfixes are a Windows notion: the class is valid and has no instances.
    QuickFixEngineering,
    /// Memory modules are in SMBIOS type 17, which only root can read (`/sys/firmware/dmi`),
    /// so the class is valid and has no instances.
    PhysicalMemory,
}

/// The classes the provider answers, by the names a query may use.
const CLASSES: &[(&str, Source)] = &[
    ("Win32_OperatingSystem", Source::OperatingSystem),
    ("CIM_OperatingSystem", Source::OperatingSystem),
    ("Win32_ComputerSystem", Source::ComputerSystem),
    ("CIM_ComputerSystem", Source::ComputerSystem),
    ("CIM_UnitaryComputerSystem", Source::ComputerSystem),
    ("Win32_ComputerSystemProduct", Source::ComputerSystemProduct),
    ("Win32_BIOS", Source::Bios),
    ("CIM_BIOSElement", Source::Bios),
    ("Win32_Processor", Source::Processor),
    ("CIM_Processor", Source::Processor),
    ("Win32_LogicalDisk", Source::LogicalDisk),
    ("CIM_LogicalDisk", Source::LogicalDisk),
    ("Win32_NetworkAdapter", Source::Adapter),
    ("CIM_NetworkAdapter", Source::Adapter),
    ("Win32_NetworkAdapterConfiguration", Source::AdapterConfiguration),
    ("Win32_Process", Source::Process),
    ("CIM_Process", Source::Process),
    ("Win32_QuickFixEngineering", Source::QuickFixEngineering),
    ("Win32_PhysicalMemory", Source::PhysicalMemory),
    ("CIM_PhysicalMemory", Source::PhysicalMemory),
];

/// The class names the local provider answers (Win32_ and CIM_ names).
pub fn supported_classes() -> impl Iterator<Item = &'static str> {
    CLASSES.iter().map(|(n, _)| *n)
}

/// Checks the namespace and finds the source of the queried class.
fn resolve(query: &QuerySpec) -> Result<Source, Error> {
    if query.resource_uri.is_some() {
        return Err(Error::new(
            Category::Unsupported,
            "the local provider takes a namespace and class, not a WS-Man resource URI",
        ));
    }
    let ns = query.namespace.replace('\\', "/");
    if !ns.trim_matches('/').eq_ignore_ascii_case("root/cimv2") {
        return Err(Error::new(
            Category::InvalidNamespace,
            format!("namespace {} does not exist on the local machine (only root/cimv2 does)", query.namespace),
        )
        .with_code(WBEM_E_INVALID_NAMESPACE));
    }
    let class = query.class_name();
    if let Some((_, s)) = CLASSES.iter().find(|(n, _)| n.eq_ignore_ascii_case(class)) {
        return Ok(*s);
    }
    if schema::class(class).is_some() {
        return Err(Error::new(
            Category::Unsupported,
            format!("the local provider does not produce {class} on this platform"),
        ));
    }
    Err(Error::new(Category::InvalidClass, format!("class {class} does not exist in root/cimv2"))
        .with_code(WBEM_E_INVALID_CLASS))
}

/// Reads the class and applies the query's filter and projection.
fn run(source: Source, query: &QuerySpec) -> Result<Vec<Instance>, Error> {
    let instances = read(source)?;
    // Filter before projecting: the WHERE clause may name properties the SELECT list drops.
    Ok(instances
        .into_iter()
        .filter(|i| query.wql.filter.as_ref().is_none_or(|f| f.matches(i)))
        .map(|i| if query.wql.properties.is_empty() { i } else { i.project(&query.wql.properties) })
        .collect())
}

fn read(source: Source) -> Result<Vec<Instance>, Error> {
    let host = host::Host::read();
    Ok(match source {
        Source::OperatingSystem => vec![system::operating_system(&host)],
        Source::ComputerSystem => vec![system::computer_system(&host)],
        Source::ComputerSystemProduct => vec![system::computer_system_product()],
        Source::Bios => vec![system::bios()],
        Source::Processor => cpu::processors(&host),
        Source::LogicalDisk => disk::logical_disks(&host),
        Source::Adapter => net::adapters(&host),
        Source::AdapterConfiguration => net::adapter_configurations(&host),
        Source::Process => process::processes(&host)
            .map_err(|e| Error::new(Category::ServerFault, format!("cannot list /proc: {e}")))?,
        Source::QuickFixEngineering | Source::PhysicalMemory => Vec::new(),
    })
}

fn paginate(mut instances: Vec<Instance>) -> Vec<Page> {
    let mut pages = Vec::with_capacity(instances.len().div_ceil(PAGE_SIZE));
    while !instances.is_empty() {
        let rest = instances.split_off(instances.len().min(PAGE_SIZE));
        pages.push(std::mem::replace(&mut instances, rest));
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cim::Value;

    fn query(class: &str) -> QuerySpec {
        QuerySpec::class(class)
    }

    /// Every class the provider answers yields instances of the Win32_ class with exactly the
    /// table's properties, in its order, each null or of the table's type.
    #[test]
    fn every_class_has_the_table_shape() {
        for name in supported_classes() {
            let q = query(name);
            let instances = run(resolve(&q).unwrap(), &q).unwrap();
            for inst in &instances {
                let class = schema::class(&inst.class_name).unwrap();
                assert!(inst.class_name.starts_with("Win32_"), "{name} gave {}", inst.class_name);
                let got: Vec<&str> = inst.properties.iter().map(|p| p.name.as_str()).collect();
                let want: Vec<&str> = class.properties.iter().map(|p| p.name.as_str()).collect();
                assert_eq!(got, want, "{name}");
                for (p, s) in inst.properties.iter().zip(&class.properties) {
                    assert!(row::conforms(&p.value, s), "{name}.{} = {:?}", p.name, p.value);
                }
            }
            let singleton = ["OperatingSystem", "ComputerSystem", "ComputerSystemProduct", "BIOS", "BIOSElement"];
            if singleton.iter().any(|s| name.ends_with(&format!("_{s}"))) {
                assert_eq!(instances.len(), 1, "{name}");
            }
        }
    }

    #[test]
    fn cim_names_return_win32_instances() {
        let q = query("cim_process");
        let procs = run(resolve(&q).unwrap(), &q).unwrap();
        assert!(procs.iter().all(|i| i.class_name == "Win32_Process"));
        let me = std::process::id();
        assert!(procs.iter().any(|i| i.get("ProcessId") == Some(&Value::UInt32(me))));
    }

    #[test]
    fn namespaces_and_classes_fail_as_windows_does() {
        for ns in ["root/cimv2", "root\\cimv2", "ROOT/CIMV2", "/root/cimv2"] {
            let mut q = query("Win32_BIOS");
            q.namespace = ns.into();
            assert!(resolve(&q).is_ok(), "{ns}");
        }
        let mut q = query("Win32_BIOS");
        q.namespace = "root/StandardCimv2".into();
        let e = resolve(&q).unwrap_err();
        assert_eq!(e.category, Category::InvalidNamespace);
        assert_eq!(e.code.as_deref(), Some(WBEM_E_INVALID_NAMESPACE));
        let e = resolve(&query("Win32_NoSuchThing")).unwrap_err();
        assert_eq!(e.category, Category::InvalidClass);
        assert_eq!(e.code.as_deref(), Some(WBEM_E_INVALID_CLASS));
        assert_eq!(resolve(&query("Win32_Service")).unwrap_err().category, Category::Unsupported);
        let mut q = query("Win32_BIOS");
        q.resource_uri = Some("http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_BIOS".into());
        assert_eq!(resolve(&q).unwrap_err().category, Category::Unsupported);
    }

    #[test]
    fn projection_keeps_the_selected_properties_in_order() {
        let mut q = query("Win32_OperatingSystem");
        q.wql.properties = vec!["version".into(), "Caption".into(), "NoSuchProperty".into()];
        let os = run(resolve(&q).unwrap(), &q).unwrap();
        let names: Vec<&str> = os[0].properties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Version", "Caption", "NoSuchProperty"]);
        assert!(matches!(os[0].get("Caption"), Some(Value::String(_))));
        assert_eq!(os[0].get("NoSuchProperty"), Some(&Value::Null));
    }

    fn wql(text: &str) -> QuerySpec {
        let parsed = crate::wql::parse(text).unwrap();
        let mut q = query(&parsed.class);
        q.wql = parsed;
        q.needs_filter = true;
        q
    }

    #[test]
    fn where_filters_select_instances() {
        let me = std::process::id();
        let q = wql(&format!("SELECT Name, ProcessId FROM Win32_Process WHERE ProcessId = {me}"));
        let hits = run(resolve(&q).unwrap(), &q).unwrap();
        assert_eq!(hits.len(), 1);
        // Projected after filtering, in the SELECT order.
        let names: Vec<&str> = hits[0].properties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Name", "ProcessId"]);

        let all = run(Source::Process, &query("Win32_Process")).unwrap();
        let q = wql("SELECT * FROM Win32_Process WHERE ParentProcessId = 0 OR NOT ParentProcessId = 0");
        let both = run(resolve(&q).unwrap(), &q).unwrap();
        // Processes can come and go between the two reads.
        assert!(both.len().abs_diff(all.len()) <= 5);

        let q = wql("SELECT * FROM Win32_LogicalDisk WHERE DeviceID = '/' AND DriveType = 3");
        assert_eq!(run(resolve(&q).unwrap(), &q).unwrap().len(), 1);
        let q = wql("SELECT * FROM Win32_OperatingSystem WHERE Caption LIKE '%' AND OSType = 36");
        assert_eq!(run(resolve(&q).unwrap(), &q).unwrap().len(), 1);
        let q = wql("SELECT * FROM Win32_OperatingSystem WHERE OSType <> 36");
        assert!(run(resolve(&q).unwrap(), &q).unwrap().is_empty());
        let q = wql("SELECT * FROM CIM_OperatingSystem WHERE InstallDate IS NULL");
        assert_eq!(run(resolve(&q).unwrap(), &q).unwrap().len(), 1);
    }

    #[test]
    fn pages_are_bounded() {
        let sizes = |n: usize| paginate(vec![Instance::new("C"); n]).iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), vec![1]);
        assert_eq!(sizes(PAGE_SIZE), vec![PAGE_SIZE]);
        assert_eq!(sizes(2 * PAGE_SIZE + 88), vec![PAGE_SIZE, PAGE_SIZE, 88]);
    }

    #[tokio::test]
    async fn only_this_machine_is_served() {
        let host = sys::uname().unwrap().nodename;
        for name in ["localhost", "LOCALHOST.", ".", "127.0.0.1", "::1", "[::1]", host.as_str()] {
            let mut e = Endpoint::local();
            e.computer = Some(name.to_string());
            assert!(LocalConnector.open(&e).await.is_ok(), "{name}");
        }
        let mut e = Endpoint::local();
        e.computer = Some("srv01.corp.example".into());
        let err = LocalConnector.open(&e).await.err().unwrap();
        assert_eq!(err.category, Category::Unsupported);
        assert!(err.message.contains("srv01.corp.example"));
    }

    #[tokio::test]
    async fn session_streams_pages_and_errors() {
        let endpoint = Endpoint::local();
        let mut session = LocalConnector.open(&endpoint).await.unwrap();
        let q = query("Win32_Process");
        let pages: Vec<Result<Page, Error>> = session.enumerate(&q).collect().await;
        let total: usize = pages.iter().map(|p| p.as_ref().unwrap().len()).sum();
        assert!(total > 0);
        assert!(pages.iter().all(|p| p.as_ref().is_ok_and(|p| !p.is_empty() && p.len() <= PAGE_SIZE)));
        let bad = query("Win32_Nope");
        let pages: Vec<Result<Page, Error>> = session.enumerate(&bad).collect().await;
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].as_ref().unwrap_err().category, Category::InvalidClass);
        let none: Vec<Result<Page, Error>> = session.enumerate(&query("Win32_QuickFixEngineering")).collect().await;
        assert!(none.is_empty());
        session.close().await.unwrap();
    }
}
