//! Deterministic, realistic Windows hosts: the instances a Windows Server would return for the
//! common inventory classes, generated from a host name and a seed.
//!
//! The same (name, seed) always yields the same instances, so a test can compare what a client
//! received with [`Host::generate`] run again on its side. Property names, CIM types, nulls and
//! array shapes follow what Windows Server 2012 sends (see the recorded responses under
//! `shared/testdata/wsman/txwinrm/data/server_2012`); properties are listed in the
//! case-insensitive alphabetical order WMI uses on the wire.

use crate::cim::{DateTime, Instance, Text, Value};

/// The classes every generated host has, in the order [`Host::classes`] lists them.
pub const CLASSES: &[&str] = &[
    "Win32_OperatingSystem",
    "Win32_ComputerSystem",
    "Win32_ComputerSystemProduct",
    "Win32_BIOS",
    "Win32_Processor",
    "Win32_LogicalDisk",
    "Win32_Service",
    "Win32_NetworkAdapterConfiguration",
    "Win32_QuickFixEngineering",
    "Win32_Process",
];

/// The key properties of a dataset class (what an EnumerateEPR selector set carries and a
/// WS-Transfer Get is addressed by), or an empty slice for an unknown class.
pub fn key_properties(class: &str) -> &'static [&'static str] {
    const KEYS: &[(&str, &[&str])] = &[
        ("Win32_OperatingSystem", &["Name"]),
        ("Win32_ComputerSystem", &["Name"]),
        ("Win32_ComputerSystemProduct", &["IdentifyingNumber", "Name", "Version"]),
        ("Win32_BIOS", &["Name", "SoftwareElementID", "SoftwareElementState", "TargetOperatingSystem", "Version"]),
        ("Win32_Processor", &["DeviceID"]),
        ("Win32_LogicalDisk", &["DeviceID"]),
        ("Win32_Service", &["Name"]),
        ("Win32_NetworkAdapterConfiguration", &["Index"]),
        ("Win32_QuickFixEngineering", &["HotFixID", "ServicePackInEffect"]),
        ("Win32_Process", &["Handle"]),
    ];
    KEYS.iter().find(|(c, _)| c.eq_ignore_ascii_case(class)).map_or(&[], |(_, k)| k)
}

/// One simulated Windows host and all its instances.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// The computer name (upper case, as `CSName`/`SystemName` report it).
    pub name: String,
    classes: Vec<(&'static str, Vec<Instance>)>,
}

impl Host {
    /// Generates the host `name` deterministically from `name` and `seed`.
    pub fn generate(name: &str, seed: u64) -> Host {
        let classes = CLASSES.iter().map(|c| (*c, generate_class(name, seed, c).unwrap_or_default())).collect();
        Host { name: computer_name(name), classes }
    }

    /// The instances of `class` (case-insensitive), or `None` if the host has no such class.
    pub fn class(&self, class: &str) -> Option<&[Instance]> {
        self.classes.iter().find(|(c, _)| c.eq_ignore_ascii_case(class)).map(|(_, v)| v.as_slice())
    }

    /// How many instances the host has in all.
    pub fn instance_count(&self) -> usize {
        self.classes.iter().map(|(_, v)| v.len()).sum()
    }

    /// Every class with its instances.
    pub fn classes(&self) -> impl Iterator<Item = (&'static str, &[Instance])> {
        self.classes.iter().map(|(c, v)| (*c, v.as_slice()))
    }
}

/// The instances of one class of the host `name`, generated alone: the same instances
/// [`Host::generate`] lists for it, at a fraction of the cost, so a large fleet can generate
/// what a query asks for and keep nothing per host. `None` for a class hosts do not have.
pub fn generate_class(name: &str, seed: u64, class: &str) -> Option<Vec<Instance>> {
    let class = *CLASSES.iter().find(|c| c.eq_ignore_ascii_case(class))?;
    let g = Gen::new(name, seed);
    // Each class draws from its own stream, so it does not depend on which others were made.
    let mut rng = Rng::new(name, seed ^ fnv1a(class));
    let rng = &mut rng;
    Some(match class {
        "Win32_OperatingSystem" => vec![g.operating_system(rng)],
        "Win32_ComputerSystem" => vec![g.computer_system(rng)],
        "Win32_ComputerSystemProduct" => vec![g.product(rng)],
        "Win32_BIOS" => vec![g.bios(rng)],
        "Win32_Processor" => (0..g.processors).map(|i| g.processor(rng, i as usize)).collect(),
        "Win32_LogicalDisk" => g.logical_disks(rng),
        "Win32_Service" => g.services(rng),
        "Win32_NetworkAdapterConfiguration" => g.network_adapters(rng),
        "Win32_QuickFixEngineering" => g.hotfixes(rng),
        _ => g.processes(rng),
    })
}

fn fnv1a(text: &str) -> u64 {
    text.to_ascii_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// SplitMix64 seeded from FNV-1a of the host name: tiny, fast and stable across platforms and
/// releases, which a general-purpose RNG crate does not promise for its seeded output.
struct Rng(u64);

impl Rng {
    fn new(name: &str, seed: u64) -> Rng {
        Rng(fnv1a(name) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // Every caller passes a non-empty constant table.
        &items[self.below(items.len() as u64) as usize]
    }

    fn hex(&mut self, digits: usize) -> String {
        (0..digits).map(|_| char::from(b"0123456789ABCDEF"[self.below(16) as usize])).collect()
    }

    fn guid(&mut self) -> String {
        format!("{{{}-{}-{}-{}-{}}}", self.hex(8), self.hex(4), self.hex(4), self.hex(4), self.hex(12))
    }
}

/// The NetBIOS-style computer name: the first label of a DNS name, upper case, at most 15 chars.
fn computer_name(name: &str) -> String {
    let first = name.split('.').next().unwrap_or(name);
    first.chars().take(15).collect::<String>().to_ascii_uppercase()
}

fn domain_of(name: &str) -> Option<String> {
    name.split_once('.').map(|(_, d)| d.to_ascii_lowercase()).filter(|d| !d.is_empty())
}

/// Collects properties and sorts them the way WMI lists them.
struct Props(Instance);

impl Props {
    fn new(class: &str) -> Props {
        Props(Instance::new(class))
    }
    fn v(mut self, name: &str, value: Value) -> Props {
        self.0.push(name, value);
        self
    }
    fn s(self, name: &str, value: impl Into<Text>) -> Props {
        self.v(name, Value::String(value.into()))
    }
    fn null(self, names: &[&str]) -> Props {
        names.iter().fold(self, |p, n| p.v(n, Value::Null))
    }
    fn strings(self, name: &str, values: &[String]) -> Props {
        self.v(name, Value::Array(values.iter().map(|s| Value::String(s.as_str().into())).collect()))
    }
    fn done(mut self) -> Instance {
        self.0.properties.sort_by_cached_key(|p| p.name.to_ascii_lowercase());
        self.0
    }
}

fn dt(secs: i64) -> Value {
    Value::DateTime(DateTime::from_unix(secs, 0))
}

fn dt_micros(secs: i64, micros: u32) -> Value {
    Value::DateTime(DateTime::from_unix(secs, micros))
}

/// What every class of a host agrees on, drawn from the host's own stream.
struct Gen {
    name: String,
    domain: Option<String>,
    /// (Caption, Version, BuildNumber) of the host's Windows release.
    os: (&'static str, &'static str, &'static str),
    platform: (&'static str, &'static str, &'static str, &'static str),
    /// Unix time of the last boot.
    boot: i64,
    processors: u32,
    cores: u32,
    cpu: (&'static str, u32, &'static str),
    memory_kb: u64,
}

/// (Caption, Version, BuildNumber) of the Windows releases a fleet typically runs.
const OS_RELEASES: &[(&str, &str, &str)] = &[
    ("Microsoft Windows Server 2012 R2 Standard", "6.3.9600", "9600"),
    ("Microsoft Windows Server 2016 Standard", "10.0.14393", "14393"),
    ("Microsoft Windows Server 2019 Datacenter", "10.0.17763", "17763"),
    ("Microsoft Windows Server 2022 Standard", "10.0.20348", "20348"),
];

/// (Name, MHz, Caption) of common server processors.
const CPU_MODELS: &[(&str, u32, &str)] = &[
    ("Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", 3000, "Intel64 Family 6 Model 85 Stepping 7"),
    ("Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz", 2200, "Intel64 Family 6 Model 85 Stepping 7"),
    ("AMD EPYC 7763 64-Core Processor", 2450, "AMD64 Family 25 Model 1 Stepping 1"),
];

/// (Manufacturer, Model, BIOS manufacturer, BIOS version prefix) of common server platforms.
const PLATFORMS: &[(&str, &str, &str, &str)] = &[
    ("VMware, Inc.", "VMware7,1", "VMware, Inc.", "VMW71.00V"),
    ("Microsoft Corporation", "Virtual Machine", "Microsoft Corporation", "Hyper-V UEFI Release v4."),
    ("Dell Inc.", "PowerEdge R740", "Dell Inc.", "2.1"),
    ("HPE", "ProLiant DL380 Gen10", "HPE", "U30 v2."),
];

impl Gen {
    fn new(name: &str, seed: u64) -> Gen {
        let mut rng = Rng::new(name, seed);
        Gen {
            name: computer_name(name),
            domain: domain_of(name),
            os: *rng.pick(OS_RELEASES),
            platform: *rng.pick(PLATFORMS),
            boot: 1_700_000_000 + rng.below(30_000_000) as i64,
            processors: 1 + rng.below(2) as u32,
            cores: *rng.pick(&[1u32, 2, 4, 8]),
            cpu: *rng.pick(CPU_MODELS),
            memory_kb: *rng.pick(&[4u64, 8, 16, 32, 64]) * 1024 * 1024,
        }
    }

    fn operating_system(&self, rng: &mut Rng) -> Instance {
        let (caption, version, build) = self.os;
        let (boot, memory_kb) = (self.boot, self.memory_kb);
        let install = boot - 86_400 * (30 + rng.below(900) as i64);
        let free_kb = memory_kb / 4 + rng.below(memory_kb / 2);
        Props::new("Win32_OperatingSystem")
            .s("BootDevice", "\\Device\\HarddiskVolume1")
            .s("BuildNumber", build)
            .s("BuildType", "Multiprocessor Free")
            .s("Caption", caption)
            .s("CodeSet", "1252")
            .s("CountryCode", "1")
            .s("CreationClassName", "Win32_OperatingSystem")
            .s("CSCreationClassName", "Win32_ComputerSystem")
            .s("CSName", &self.name)
            .v("CurrentTimeZone", Value::SInt16(0))
            .v("DataExecutionPrevention_32BitApplications", Value::Bool(true))
            .v("DataExecutionPrevention_Available", Value::Bool(true))
            .v("DataExecutionPrevention_Drivers", Value::Bool(true))
            .v("DataExecutionPrevention_SupportPolicy", Value::UInt8(3))
            .v("Debug", Value::Bool(false))
            .s("Description", "")
            .v("Distributed", Value::Bool(false))
            .v("EncryptionLevel", Value::UInt32(256))
            .v("ForegroundApplicationBoost", Value::UInt8(2))
            .v("FreePhysicalMemory", Value::UInt64(free_kb))
            .v("FreeSpaceInPagingFiles", Value::UInt64(memory_kb / 2 - rng.below(4096)))
            .v("FreeVirtualMemory", Value::UInt64(free_kb + memory_kb / 3))
            .v("InstallDate", dt(install))
            .v("LastBootUpTime", dt_micros(boot, rng.below(1_000_000) as u32))
            .v("LocalDateTime", dt(boot + 86_400 * (1 + rng.below(60) as i64)))
            .s("Locale", "0409")
            .s("Manufacturer", "Microsoft Corporation")
            .v("MaxNumberOfProcesses", Value::UInt32(u32::MAX))
            .v("MaxProcessMemorySize", Value::UInt64(137_438_953_344))
            .strings("MUILanguages", &["en-US".to_string()])
            .s("Name", format!("{caption}|C:\\Windows|\\Device\\Harddisk0\\Partition2"))
            .v("NumberOfLicensedUsers", Value::UInt32(0))
            .v("NumberOfProcesses", Value::UInt32(40 + rng.below(60) as u32))
            .v("NumberOfUsers", Value::UInt32(rng.below(4) as u32))
            .v("OperatingSystemSKU", Value::UInt32(7))
            .s("Organization", "")
            .s("OSArchitecture", "64-bit")
            .v("OSLanguage", Value::UInt32(1033))
            .v("OSProductSuite", Value::UInt32(272))
            .v("OSType", Value::UInt16(18))
            .v("PortableOperatingSystem", Value::Bool(false))
            .v("Primary", Value::Bool(true))
            .v("ProductType", Value::UInt32(3))
            .s("RegisteredUser", "Windows User")
            .s(
                "SerialNumber",
                format!("00{}-{}-{}-AA{}", rng.below(900) + 100, rng.hex(5), rng.hex(5), rng.below(900) + 100),
            )
            .v("ServicePackMajorVersion", Value::UInt16(0))
            .v("ServicePackMinorVersion", Value::UInt16(0))
            .v("SizeStoredInPagingFiles", Value::UInt64(memory_kb / 2))
            .s("Status", "OK")
            .v("SuiteMask", Value::UInt32(272))
            .s("SystemDevice", "\\Device\\HarddiskVolume2")
            .s("SystemDirectory", "C:\\Windows\\system32")
            .s("SystemDrive", "C:")
            .v("TotalVirtualMemorySize", Value::UInt64(memory_kb + memory_kb / 2))
            .v("TotalVisibleMemorySize", Value::UInt64(memory_kb))
            .s("Version", version)
            .s("WindowsDirectory", "C:\\Windows")
            .null(&[
                "CSDVersion",
                "LargeSystemCache",
                "OtherTypeDescription",
                "PAEEnabled",
                "PlusProductID",
                "PlusVersionNumber",
                "TotalSwapSpaceSize",
            ])
            .done()
    }

    fn computer_system(&self, rng: &mut Rng) -> Instance {
        let (maker, model, _, _) = self.platform;
        let (processors, cores, memory_kb) = (self.processors, self.cores, self.memory_kb);
        let (domain, part_of_domain, role) = match &self.domain {
            Some(d) => (d.clone(), true, 3u16),
            None => ("WORKGROUP".to_string(), false, 2u16),
        };
        let roles: Vec<String> =
            ["LM_Workstation", "LM_Server", "NT", "Server_NT"].iter().map(|s| s.to_string()).collect();
        let p = Props::new("Win32_ComputerSystem")
            .v("AdminPasswordStatus", Value::UInt16(3))
            .v("AutomaticManagedPagefile", Value::Bool(true))
            .v("AutomaticResetBootOption", Value::Bool(true))
            .v("AutomaticResetCapability", Value::Bool(true))
            .v("BootROMSupported", Value::Bool(true))
            .s("BootupState", "Normal boot")
            .s("Caption", &self.name)
            .v("ChassisBootupState", Value::UInt16(3))
            .s("CreationClassName", "Win32_ComputerSystem")
            .v("CurrentTimeZone", Value::SInt16(0))
            .s("Description", "AT/AT COMPATIBLE")
            .s("DNSHostName", self.name.to_ascii_lowercase())
            .s("Domain", domain)
            .v("DomainRole", Value::UInt16(role))
            .v("EnableDaylightSavingsTime", Value::Bool(true))
            .v("FrontPanelResetStatus", Value::UInt16(3))
            .v("HypervisorPresent", Value::Bool(model.contains("Virtual") || maker.starts_with("VMware")))
            .v("InfraredSupported", Value::Bool(false))
            .v("KeyboardPasswordStatus", Value::UInt16(3))
            .s("Manufacturer", maker)
            .s("Model", model)
            .s("Name", &self.name)
            .v("NetworkServerModeEnabled", Value::Bool(true))
            .v("NumberOfLogicalProcessors", Value::UInt32(processors * cores))
            .v("NumberOfProcessors", Value::UInt32(processors))
            .v("PartOfDomain", Value::Bool(part_of_domain))
            .v("PauseAfterReset", Value::SInt64(-1))
            .v("PCSystemType", Value::UInt16(1))
            .v("PowerOnPasswordStatus", Value::UInt16(3))
            .v("PowerState", Value::UInt16(0))
            .v("PowerSupplyState", Value::UInt16(3))
            .s("PrimaryOwnerName", "Windows User")
            .v("ResetCapability", Value::UInt16(1))
            .v("ResetCount", Value::SInt16(-1))
            .v("ResetLimit", Value::SInt16(-1))
            .strings("Roles", &roles)
            .s("Status", "OK")
            .s("SystemType", "x64-based PC")
            .v("ThermalState", Value::UInt16(3))
            .v("TotalPhysicalMemory", Value::UInt64(memory_kb * 1024 - rng.below(64) * 1024 * 1024))
            .v("WakeUpType", Value::UInt16(6))
            .null(&[
                "BootOptionOnLimit",
                "BootOptionOnWatchDog",
                "DaylightInEffect",
                "InstallDate",
                "LastLoadInfo",
                "NameFormat",
                "PowerManagementSupported",
                "PrimaryOwnerContact",
                "SystemStartupDelay",
                "SystemStartupSetting",
                "UserName",
            ]);
        // A domain member has no Workgroup; a workgroup member reports it.
        let p = if part_of_domain { p.null(&["Workgroup"]) } else { p.s("Workgroup", "WORKGROUP") };
        p.done()
    }

    fn product(&self, rng: &mut Rng) -> Instance {
        let (maker, model, _, _) = self.platform;
        Props::new("Win32_ComputerSystemProduct")
            .s("Caption", "Computer System Product")
            .s("Description", "Computer System Product")
            .s("IdentifyingNumber", format!("{}{}", rng.hex(3), rng.below(9_000_000) + 1_000_000))
            .s("Name", model)
            .s("SKUNumber", "")
            .s("UUID", rng.guid().trim_matches(['{', '}']).to_string())
            .s("Vendor", maker)
            .s("Version", "None")
            .done()
    }

    fn bios(&self, rng: &mut Rng) -> Instance {
        let (_, _, maker, prefix) = self.platform;
        let version = format!("{prefix}{}", rng.below(20) + 1);
        let serial = format!("{}-{}", rng.hex(8), rng.hex(8));
        let release = 1_500_000_000 + rng.below(200_000_000) as i64;
        Props::new("Win32_BIOS")
            .v("BiosCharacteristics", Value::Array([4u16, 7, 8, 9, 10, 11, 12, 14, 15].map(Value::UInt16).to_vec()))
            .strings("BIOSVersion", &[format!("{} - 1", maker.split(',').next().unwrap_or(maker)), version.clone()])
            .s("Caption", &version)
            .s("Description", &version)
            .v("EmbeddedControllerMajorVersion", Value::UInt8(255))
            .v("EmbeddedControllerMinorVersion", Value::UInt8(255))
            .s("Manufacturer", maker)
            .s("Name", &version)
            .v("PrimaryBIOS", Value::Bool(true))
            .v("ReleaseDate", dt(release))
            .s("SerialNumber", serial)
            .s("SMBIOSBIOSVersion", &version)
            .v("SMBIOSMajorVersion", Value::UInt16(3))
            .v("SMBIOSMinorVersion", Value::UInt16(1))
            .v("SMBIOSPresent", Value::Bool(true))
            .s("SoftwareElementID", &version)
            .v("SoftwareElementState", Value::UInt16(3))
            .s("Status", "OK")
            .v("SystemBiosMajorVersion", Value::UInt8(rng.below(5) as u8))
            .v("SystemBiosMinorVersion", Value::UInt8(rng.below(20) as u8))
            .v("TargetOperatingSystem", Value::UInt16(0))
            .s("Version", format!("{} - {}", maker.split(',').next().unwrap_or(maker), rng.below(90000) + 10000))
            .null(&[
                "BuildNumber",
                "CodeSet",
                "CurrentLanguage",
                "IdentificationCode",
                "InstallableLanguages",
                "InstallDate",
                "LanguageEdition",
                "OtherTargetOS",
            ])
            .done()
    }

    fn processor(&self, rng: &mut Rng, index: usize) -> Instance {
        let cores = self.cores;
        let (name, mhz, caption) = self.cpu;
        let maker = if name.starts_with("AMD") { "AuthenticAMD" } else { "GenuineIntel" };
        Props::new("Win32_Processor")
            .v("AddressWidth", Value::UInt16(64))
            .v("Architecture", Value::UInt16(9))
            .v("Availability", Value::UInt16(3))
            .s("Caption", caption)
            .v("CpuStatus", Value::UInt16(1))
            .s("CreationClassName", "Win32_Processor")
            .v("CurrentClockSpeed", Value::UInt32(mhz))
            .v("DataWidth", Value::UInt16(64))
            .s("Description", caption)
            .s("DeviceID", format!("CPU{index}"))
            .v("Family", Value::UInt16(if maker == "AuthenticAMD" { 107 } else { 179 }))
            .v("L2CacheSize", Value::UInt32(1024 * cores))
            .v("L3CacheSize", Value::UInt32(36_608))
            .v("L3CacheSpeed", Value::UInt32(0))
            .v("Level", Value::UInt16(6))
            .v("LoadPercentage", Value::UInt16(rng.below(100) as u16))
            .s("Manufacturer", maker)
            .v("MaxClockSpeed", Value::UInt32(mhz))
            .s("Name", name)
            .v("NumberOfCores", Value::UInt32(cores))
            .v("NumberOfLogicalProcessors", Value::UInt32(cores))
            .v("PowerManagementSupported", Value::Bool(false))
            .s("ProcessorId", format!("{}000{}", rng.hex(8), rng.hex(5)))
            .v("ProcessorType", Value::UInt16(3))
            .v("Revision", Value::UInt16(rng.below(30_000) as u16))
            .s("Role", "CPU")
            .v("SecondLevelAddressTranslationExtensions", Value::Bool(false))
            .s("SocketDesignation", format!("CPU {}", index + 1))
            .s("Status", "OK")
            .v("StatusInfo", Value::UInt16(3))
            .s("SystemCreationClassName", "Win32_ComputerSystem")
            .s("SystemName", &self.name)
            .v("UpgradeMethod", Value::UInt16(1))
            .s("Version", "")
            .v("VirtualizationFirmwareEnabled", Value::Bool(false))
            .v("VMMonitorModeExtensions", Value::Bool(false))
            .v("VoltageCaps", Value::UInt32(0))
            .null(&[
                "ConfigManagerErrorCode",
                "ConfigManagerUserConfig",
                "CurrentVoltage",
                "ErrorCleared",
                "ErrorDescription",
                "ExtClock",
                "InstallDate",
                "L2CacheSpeed",
                "LastErrorCode",
                "OtherFamilyDescription",
                "PNPDeviceID",
                "Stepping",
                "UniqueId",
            ])
            .done()
    }

    fn logical_disks(&self, rng: &mut Rng) -> Vec<Instance> {
        let count = 1 + rng.below(4) as usize;
        (0..count)
            .map(|i| {
                let letter = char::from(b'C' + i as u8);
                let id = format!("{letter}:");
                // The last of several drives is an optical drive with no medium, as on many servers.
                let cdrom = count > 1 && i == count - 1;
                let p = Props::new("Win32_LogicalDisk")
                    .v("Access", Value::UInt16(0))
                    .s("Caption", &id)
                    .s("CreationClassName", "Win32_LogicalDisk")
                    .s("DeviceID", &id)
                    .s("Name", &id)
                    .s("SystemCreationClassName", "Win32_ComputerSystem")
                    .s("SystemName", &self.name)
                    .null(&[
                        "Availability",
                        "BlockSize",
                        "ConfigManagerErrorCode",
                        "ConfigManagerUserConfig",
                        "ErrorCleared",
                        "ErrorDescription",
                        "ErrorMethodology",
                        "InstallDate",
                        "LastErrorCode",
                        "NumberOfBlocks",
                        "PNPDeviceID",
                        "PowerManagementSupported",
                        "ProviderName",
                        "Purpose",
                        "Status",
                        "StatusInfo",
                    ]);
                if cdrom {
                    return p
                        .s("Description", "CD-ROM Disc")
                        .v("DriveType", Value::UInt32(5))
                        .v("MediaType", Value::UInt32(11))
                        .null(&[
                            "Compressed",
                            "FileSystem",
                            "FreeSpace",
                            "MaximumComponentLength",
                            "QuotasDisabled",
                            "QuotasIncomplete",
                            "QuotasRebuilding",
                            "Size",
                            "SupportsDiskQuotas",
                            "SupportsFileBasedCompression",
                            "VolumeDirty",
                            "VolumeName",
                            "VolumeSerialNumber",
                        ])
                        .done();
                }
                let size: u64 = [64u64, 127, 255, 511, 1023][rng.below(5) as usize] * 1024 * 1024 * 1024;
                let label =
                    if i == 0 { String::new() } else { (*rng.pick(&["Data", "Logs", "Apps", "Backup"])).to_string() };
                p.v("Compressed", Value::Bool(false))
                    .s("Description", "Local Fixed Disk")
                    .v("DriveType", Value::UInt32(3))
                    .s("FileSystem", "NTFS")
                    .v("FreeSpace", Value::UInt64(rng.below(size)))
                    .v("MaximumComponentLength", Value::UInt32(255))
                    .v("MediaType", Value::UInt32(12))
                    .v("QuotasDisabled", Value::Bool(true))
                    .v("QuotasIncomplete", Value::Bool(false))
                    .v("QuotasRebuilding", Value::Bool(false))
                    .v("Size", Value::UInt64(size))
                    .v("SupportsDiskQuotas", Value::Bool(true))
                    .v("SupportsFileBasedCompression", Value::Bool(true))
                    .v("VolumeDirty", Value::Bool(false))
                    .s("VolumeName", label)
                    .s("VolumeSerialNumber", rng.hex(8))
                    .done()
            })
            .collect()
    }

    fn services(&self, rng: &mut Rng) -> Vec<Instance> {
        let mut out: Vec<Instance> = Vec::new();
        let optional = ROLE_SERVICES.lines().map(|l| (l, true));
        for (line, is_optional) in SERVICES.lines().map(|l| (l, false)).chain(optional) {
            let mut f = line.split('|');
            let (Some(name), Some(display), Some(kind)) = (f.next(), f.next(), f.next()) else { continue };
            if is_optional && !rng.chance(35) {
                continue;
            }
            out.push(self.service(rng, name, display, kind));
        }
        out.sort_by_cached_key(|s| match s.get("Name") {
            Some(Value::String(n)) => n.to_ascii_lowercase(),
            _ => Text::default(),
        });
        out
    }

    fn service(&self, rng: &mut Rng, name: &str, display: &str, kind: &str) -> Instance {
        let (path, start_name, own) = match kind {
            "own" => (format!("C:\\Windows\\System32\\{}.exe", name.to_ascii_lowercase()), "LocalSystem", true),
            "local" => (
                "C:\\Windows\\system32\\svchost.exe -k LocalService -p".to_string(),
                "NT AUTHORITY\\LocalService",
                false,
            ),
            "net" => (
                "C:\\Windows\\System32\\svchost.exe -k NetworkService -p".to_string(),
                "NT Authority\\NetworkService",
                false,
            ),
            "vendor" => (format!("\"C:\\Program Files\\{display}\\{name}.exe\""), "LocalSystem", true),
            _ => ("C:\\Windows\\system32\\svchost.exe -k netsvcs -p".to_string(), "LocalSystem", false),
        };
        let mode = *rng.pick(&["Auto", "Auto", "Manual", "Manual", "Manual", "Disabled"]);
        let running = mode == "Auto" || (mode == "Manual" && rng.chance(30));
        let pid = if running { 400 + 4 * rng.below(3000) as u32 } else { 0 };
        Props::new("Win32_Service")
            .v("AcceptPause", Value::Bool(false))
            .v("AcceptStop", Value::Bool(running))
            .s("Caption", display)
            .v("CheckPoint", Value::UInt32(0))
            .s("CreationClassName", "Win32_Service")
            .s("Description", format!("Provides {display} functionality."))
            .v("DesktopInteract", Value::Bool(false))
            .s("DisplayName", display)
            .s("ErrorControl", "Normal")
            .v("ExitCode", Value::UInt32(if running { 0 } else { 1077 }))
            .null(&["InstallDate"])
            .s("Name", name)
            .s("PathName", path)
            .v("ProcessId", Value::UInt32(pid))
            .v("ServiceSpecificExitCode", Value::UInt32(0))
            .s("ServiceType", if own { "Own Process" } else { "Share Process" })
            .v("Started", Value::Bool(running))
            .s("StartMode", mode)
            .s("StartName", start_name)
            .s("State", if running { "Running" } else { "Stopped" })
            .s("Status", "OK")
            .s("SystemCreationClassName", "Win32_ComputerSystem")
            .s("SystemName", &self.name)
            .v("TagId", Value::UInt32(0))
            .v("WaitHint", Value::UInt32(0))
            .done()
    }

    fn network_adapters(&self, rng: &mut Rng) -> Vec<Instance> {
        // Windows lists many disabled pseudo-adapters (WAN miniports, ISATAP) besides the real NICs.
        const PSEUDO: &[&str] = &[
            "WAN Miniport (SSTP)",
            "WAN Miniport (IKEv2)",
            "WAN Miniport (L2TP)",
            "WAN Miniport (PPTP)",
            "WAN Miniport (PPPOE)",
            "WAN Miniport (IP)",
            "WAN Miniport (IPv6)",
            "WAN Miniport (Network Monitor)",
            "Microsoft Kernel Debug Network Adapter",
            "Microsoft ISATAP Adapter",
        ];
        let nics = 1 + rng.below(3) as usize;
        let subnet = rng.below(200) as u8 + 10;
        let mut out = Vec::new();
        let mut index = 0u32;
        for (i, desc) in PSEUDO.iter().enumerate() {
            out.push(self.pseudo_adapter(rng, index, i as u32 + 2, desc));
            index += 1;
            if i == 1 {
                for n in 0..nics {
                    out.push(self.real_adapter(rng, index, 10 + n as u32, n, subnet));
                    index += 1;
                }
            }
        }
        out
    }

    fn adapter_common(&self, index: u32, interface: u32, desc: &str) -> Props {
        Props::new("Win32_NetworkAdapterConfiguration")
            .s("Caption", format!("[{index:08}] {desc}"))
            .s("DatabasePath", "%SystemRoot%\\System32\\drivers\\etc")
            .s("Description", desc)
            .v("Index", Value::UInt32(index))
            .v("InterfaceIndex", Value::UInt32(interface))
            .s("SettingID", format!("{{{:08X}-0000-4000-8000-{:012X}}}", index * 7919 + interface, index))
            .null(&[
                "ArpAlwaysSourceRoute",
                "ArpUseEtherSNAP",
                "DeadGWDetectEnabled",
                "DefaultTOS",
                "DefaultTTL",
                "ForwardBufferMemory",
                "IGMPLevel",
                "IPPortSecurityEnabled",
                "IPUseZeroBroadcast",
                "IPXAddress",
                "IPXEnabled",
                "IPXMediaType",
                "IPXVirtualNetNumber",
                "KeepAliveInterval",
                "KeepAliveTime",
                "MTU",
                "NumForwardPackets",
                "PMTUBHDetectEnabled",
                "PMTUDiscoveryEnabled",
                "TcpMaxConnectRetransmissions",
                "TcpMaxDataRetransmissions",
                "TcpNumConnections",
                "TcpUseRFC1122UrgentPointer",
                "TcpWindowSize",
                "WINSHostLookupFile",
            ])
    }

    fn pseudo_adapter(&self, rng: &mut Rng, index: u32, interface: u32, desc: &str) -> Instance {
        let service = desc.split(['(', ')']).nth(1).unwrap_or("kdnic").replace(' ', "");
        let p = self
            .adapter_common(index, interface, desc)
            .v("DHCPEnabled", Value::Bool(false))
            .v("IPEnabled", Value::Bool(false));
        let p = if rng.chance(50) { p.s("MACAddress", self.mac(rng)) } else { p.null(&["MACAddress"]) };
        p.s("ServiceName", service)
            .null(&[
                "DefaultIPGateway",
                "DHCPLeaseExpires",
                "DHCPLeaseObtained",
                "DHCPServer",
                "DNSDomain",
                "DNSDomainSuffixSearchOrder",
                "DNSEnabledForWINSResolution",
                "DNSHostName",
                "DNSServerSearchOrder",
                "DomainDNSRegistrationEnabled",
                "FullDNSRegistrationEnabled",
                "GatewayCostMetric",
                "IPAddress",
                "IPConnectionMetric",
                "IPFilterSecurityEnabled",
                "IPSubnet",
                "TcpipNetbiosOptions",
                "WINSEnableLMHostsLookup",
                "WINSPrimaryServer",
                "WINSScopeID",
                "WINSSecondaryServer",
            ])
            .done()
    }

    fn real_adapter(&self, rng: &mut Rng, index: u32, interface: u32, n: usize, subnet: u8) -> Instance {
        let desc = if n == 0 {
            "vmxnet3 Ethernet Adapter".to_string()
        } else {
            format!("vmxnet3 Ethernet Adapter #{}", n + 1)
        };
        let net = subnet.wrapping_add(n as u8);
        let host = 10 + rng.below(240);
        let v4 = format!("10.{net}.{}.{host}", rng.below(8));
        let mut ips = vec![v4.clone()];
        let mut masks = vec!["255.255.255.0".to_string()];
        // About half the adapters also carry a link-local IPv6 address: a two-element array.
        if rng.chance(50) {
            ips.push(format!("fe80::{}:{}:{}:{}", rng.hex(4), rng.hex(4), rng.hex(4), rng.hex(4)).to_ascii_lowercase());
            masks.push("64".to_string());
        }
        let gateway = v4.rsplit_once('.').map(|(a, _)| format!("{a}.1")).unwrap_or_default();
        let dns: Vec<String> = if n == 0 {
            (0..1 + rng.below(2)).map(|k| format!("10.{subnet}.0.{}", 10 + k)).collect()
        } else {
            Vec::new()
        };
        let dhcp = rng.chance(30);
        let p = self
            .adapter_common(index, interface, &desc)
            .v("DHCPEnabled", Value::Bool(dhcp))
            .s("DNSHostName", self.name.to_ascii_lowercase())
            .v("DNSEnabledForWINSResolution", Value::Bool(false))
            .v("DomainDNSRegistrationEnabled", Value::Bool(false))
            .v("FullDNSRegistrationEnabled", Value::Bool(true))
            .strings("IPAddress", &ips)
            .v("IPConnectionMetric", Value::UInt32(15))
            .v("IPEnabled", Value::Bool(true))
            .v("IPFilterSecurityEnabled", Value::Bool(false))
            .strings("IPSubnet", &masks)
            .s("MACAddress", self.mac(rng))
            .s("ServiceName", "vmxnet3ndis6")
            .v("TcpipNetbiosOptions", Value::UInt32(0))
            .v("WINSEnableLMHostsLookup", Value::Bool(true))
            .s("WINSScopeID", "")
            .null(&["WINSPrimaryServer", "WINSSecondaryServer"]);
        let p = match &self.domain {
            Some(d) => p.s("DNSDomain", d).strings("DNSDomainSuffixSearchOrder", std::slice::from_ref(d)),
            None => p.null(&["DNSDomain", "DNSDomainSuffixSearchOrder"]),
        };
        // Only the first adapter has a gateway and DNS servers; the others are back-end networks.
        let p = if n == 0 {
            p.strings("DefaultIPGateway", &[gateway])
                .v("GatewayCostMetric", Value::Array(vec![Value::UInt16(0)]))
                .strings("DNSServerSearchOrder", &dns)
        } else {
            p.null(&["DefaultIPGateway", "GatewayCostMetric", "DNSServerSearchOrder"])
        };
        let p = if dhcp {
            let obtained = 1_730_000_000 + rng.below(1_000_000) as i64;
            p.v("DHCPLeaseObtained", dt(obtained))
                .v("DHCPLeaseExpires", dt(obtained + 691_200))
                .s("DHCPServer", format!("10.{net}.0.2"))
        } else {
            p.null(&["DHCPLeaseExpires", "DHCPLeaseObtained", "DHCPServer"])
        };
        p.done()
    }

    fn mac(&self, rng: &mut Rng) -> String {
        format!("00:50:56:{}:{}:{}", rng.hex(2), rng.hex(2), rng.hex(2))
    }

    fn hotfixes(&self, rng: &mut Rng) -> Vec<Instance> {
        let count = 5 + rng.below(20);
        let mut kb = 4_500_000 + rng.below(50_000);
        (0..count)
            .map(|_| {
                kb += 1 + rng.below(9_000);
                let kind = *rng.pick(&["Update", "Security Update", "Security Update", "Hotfix"]);
                let installed = 1_600_000_000 + rng.below(150_000_000);
                Props::new("Win32_QuickFixEngineering")
                    .s("Caption", format!("http://support.microsoft.com/?kbid={kb}"))
                    .s("CSName", &self.name)
                    .s("Description", kind)
                    .s("FixComments", "")
                    .s("HotFixID", format!("KB{kb}"))
                    .null(&["InstallDate", "Name", "Status"])
                    .s("InstalledBy", "NT AUTHORITY\\SYSTEM")
                    // WMI reports this as a US-format date string, not a datetime.
                    .s("InstalledOn", us_date(installed as i64))
                    .s("ServicePackInEffect", "")
                    .done()
            })
            .collect()
    }

    fn processes(&self, rng: &mut Rng) -> Vec<Instance> {
        let boot = self.boot;
        let mut list: Vec<(&str, u32, u32)> =
            vec![("System Idle Process", 0, 0), ("System", 4, 0), ("Registry", 100, 4)];
        let mut pid = 300u32;
        let mut next = |rng: &mut Rng| {
            pid += 4 * (1 + rng.below(60) as u32);
            pid
        };
        let smss = next(rng);
        list.push(("smss.exe", smss, 4));
        let wininit = next(rng);
        for name in ["csrss.exe", "wininit.exe", "csrss.exe", "winlogon.exe"] {
            let p = if name == "wininit.exe" { wininit } else { next(rng) };
            list.push((name, p, smss));
        }
        let services = next(rng);
        list.push(("services.exe", services, wininit));
        list.push(("lsass.exe", next(rng), wininit));
        for _ in 0..(20 + rng.below(40)) {
            list.push(("svchost.exe", next(rng), services));
        }
        for name in ["spoolsv.exe", "MsMpEng.exe", "vmtoolsd.exe", "WmiPrvSE.exe", "dllhost.exe", "msdtc.exe"] {
            list.push((name, next(rng), services));
        }
        if rng.chance(40) {
            let explorer = next(rng);
            list.push(("explorer.exe", explorer, 0));
            list.push(("powershell.exe", next(rng), explorer));
            list.push(("conhost.exe", next(rng), explorer));
        }
        list.into_iter().map(|(name, pid, parent)| self.process(rng, boot, name, pid, parent)).collect()
    }

    fn process(&self, rng: &mut Rng, boot: i64, name: &str, pid: u32, parent: u32) -> Instance {
        let kernel = pid <= 100;
        let path = (!kernel).then(|| format!("C:\\Windows\\system32\\{name}"));
        let p = Props::new("Win32_Process")
            .s("Caption", name)
            .s("CreationClassName", "Win32_Process")
            .s("CSCreationClassName", "Win32_ComputerSystem")
            .s("CSName", &self.name)
            .s("Description", name)
            .s("Handle", pid.to_string())
            .v("HandleCount", Value::UInt32(rng.below(3000) as u32))
            .v("KernelModeTime", Value::UInt64(rng.below(10_000_000_000)))
            .v("MaximumWorkingSetSize", Value::UInt32(1380))
            .v("MinimumWorkingSetSize", Value::UInt32(200))
            .s("Name", name)
            .s("OSCreationClassName", "Win32_OperatingSystem")
            .s("OSName", format!("{}|C:\\Windows|\\Device\\Harddisk0\\Partition2", self.os.0))
            .v("OtherOperationCount", Value::UInt64(rng.below(1_000_000)))
            .v("OtherTransferCount", Value::UInt64(rng.below(100_000_000)))
            .v("PageFaults", Value::UInt32(rng.below(1_000_000) as u32))
            .v("PageFileUsage", Value::UInt32(rng.below(200_000) as u32))
            .v("ParentProcessId", Value::UInt32(parent))
            .v("PeakPageFileUsage", Value::UInt32(rng.below(300_000) as u32))
            .v("PeakVirtualSize", Value::UInt64(2_199_023_255_552 + rng.below(500_000_000)))
            .v("PeakWorkingSetSize", Value::UInt32(rng.below(400_000) as u32))
            .v("Priority", Value::UInt32(if kernel { 0 } else { 8 }))
            .v("PrivatePageCount", Value::UInt64(rng.below(200_000_000)))
            .v("ProcessId", Value::UInt32(pid))
            .v("QuotaNonPagedPoolUsage", Value::UInt32(rng.below(100) as u32))
            .v("QuotaPagedPoolUsage", Value::UInt32(rng.below(1000) as u32))
            .v("QuotaPeakNonPagedPoolUsage", Value::UInt32(rng.below(200) as u32))
            .v("QuotaPeakPagedPoolUsage", Value::UInt32(rng.below(2000) as u32))
            .v("ReadOperationCount", Value::UInt64(rng.below(1_000_000)))
            .v("ReadTransferCount", Value::UInt64(rng.below(1_000_000_000)))
            .v("SessionId", Value::UInt32(u32::from(name == "explorer.exe" || name == "csrss.exe")))
            .v("ThreadCount", Value::UInt32(1 + rng.below(60) as u32))
            .v("UserModeTime", Value::UInt64(rng.below(10_000_000_000)))
            .v("VirtualSize", Value::UInt64(2_199_023_255_552 + rng.below(400_000_000)))
            .s("WindowsVersion", self.os.1)
            .v("WorkingSetSize", Value::UInt64(rng.below(400_000_000)))
            .v("WriteOperationCount", Value::UInt64(rng.below(100_000)))
            .v("WriteTransferCount", Value::UInt64(rng.below(100_000_000)))
            .null(&["ExecutionState", "InstallDate", "Status", "TerminationDate"]);
        let p = match path {
            Some(path) => p
                .s("CommandLine", path.clone())
                .v("CreationDate", dt_micros(boot + pid as i64 / 40, rng.below(1_000_000) as u32))
                .s("ExecutablePath", path),
            None => p
                .null(&["CommandLine", "ExecutablePath"])
                .v("CreationDate", if pid == 0 { Value::Null } else { dt_micros(boot, 0) }),
        };
        p.done()
    }
}

/// `M/D/YYYY`, as Win32_QuickFixEngineering.InstalledOn reads.
fn us_date(secs: i64) -> String {
    let d = DateTime::from_unix(secs, 0);
    format!("{}/{}/{}", d.month, d.day, d.year)
}

/// `Name|DisplayName|kind` of the services every Windows Server has; `kind` picks the image path and
/// account (`own` process, `local`/`net`/`sys` svchost groups, `vendor` software).
const SERVICES: &str = "AJRouter|AllJoyn Router Service|local
ALG|Application Layer Gateway Service|own
AppIDSvc|Application Identity|local
Appinfo|Application Information|sys
AppMgmt|Application Management|sys
AppReadiness|App Readiness|sys
AppVClient|Microsoft App-V Client|own
AppXSvc|AppX Deployment Service (AppXSVC)|sys
AudioEndpointBuilder|Windows Audio Endpoint Builder|sys
Audiosrv|Windows Audio|local
AxInstSV|ActiveX Installer (AxInstSV)|sys
BFE|Base Filtering Engine|local
BITS|Background Intelligent Transfer Service|sys
BrokerInfrastructure|Background Tasks Infrastructure Service|sys
BTAGService|Bluetooth Audio Gateway Service|local
BthAvctpSvc|AVCTP service|local
bthserv|Bluetooth Support Service|local
camsvc|Capability Access Manager Service|sys
CDPSvc|Connected Devices Platform Service|local
CertPropSvc|Certificate Propagation|sys
ClipSVC|Client License Service (ClipSVC)|sys
COMSysApp|COM+ System Application|own
CoreMessagingRegistrar|CoreMessaging|local
CryptSvc|Cryptographic Services|net
CscService|Offline Files|sys
DcomLaunch|DCOM Server Process Launcher|sys
defragsvc|Optimize drives|sys
DeviceAssociationService|Device Association Service|sys
DeviceInstall|Device Install Service|sys
DevQueryBroker|DevQuery Background Discovery Broker|sys
Dhcp|DHCP Client|local
diagnosticshub.standardcollector.service|Microsoft (R) Diagnostics Hub Standard Collector Service|own
DiagTrack|Connected User Experiences and Telemetry|sys
DmEnrollmentSvc|Device Management Enrollment Service|sys
dmwappushservice|Device Management Wireless Application Protocol (WAP) Push message Routing Service|sys
Dnscache|DNS Client|net
DoSvc|Delivery Optimization|net
dot3svc|Wired AutoConfig|sys
DPS|Diagnostic Policy Service|local
DsmSvc|Device Setup Manager|sys
DsSvc|Data Sharing Service|sys
Eaphost|Extensible Authentication Protocol|sys
EFS|Encrypting File System (EFS)|own
embeddedmode|Embedded Mode|sys
EntAppSvc|Enterprise App Management Service|sys
EventLog|Windows Event Log|local
EventSystem|COM+ Event System|local
fdPHost|Function Discovery Provider Host|local
FDResPub|Function Discovery Resource Publication|local
FontCache|Windows Font Cache Service|local
FrameServer|Windows Camera Frame Server|sys
gpsvc|Group Policy Client|sys
GraphicsPerfSvc|GraphicsPerfSvc|sys
hidserv|Human Interface Device Service|sys
HvHost|HV Host Service|sys
IKEEXT|IKE and AuthIP IPsec Keying Modules|sys
InstallService|Microsoft Store Install Service|sys
iphlpsvc|IP Helper|sys
KeyIso|CNG Key Isolation|own
KPSSVC|KDC Proxy Server service (KPS)|net
KtmRm|KtmRm for Distributed Transaction Coordinator|net
LanmanServer|Server|sys
LanmanWorkstation|Workstation|net
lfsvc|Geolocation Service|sys
LicenseManager|Windows License Manager Service|local
lltdsvc|Link-Layer Topology Discovery Mapper|local
lmhosts|TCP/IP NetBIOS Helper|local
LSM|Local Session Manager|sys
MapsBroker|Downloaded Maps Manager|net
mpssvc|Windows Defender Firewall|local
MSDTC|Distributed Transaction Coordinator|own
MSiSCSI|Microsoft iSCSI Initiator Service|sys
msiserver|Windows Installer|own
NcaSvc|Network Connectivity Assistant|sys
NcbService|Network Connection Broker|sys
Netlogon|Netlogon|own
Netman|Network Connections|sys
netprofm|Network List Service|local
NetSetupSvc|Network Setup Service|sys
NetTcpPortSharing|Net.Tcp Port Sharing Service|own
NgcCtnrSvc|Microsoft Passport Container|local
NgcSvc|Microsoft Passport|sys
NlaSvc|Network Location Awareness|net
nsi|Network Store Interface Service|local
PcaSvc|Program Compatibility Assistant Service|sys
PerfHost|Performance Counter DLL Host|own
pla|Performance Logs & Alerts|local
PlugPlay|Plug and Play|sys
PolicyAgent|IPsec Policy Agent|net
Power|Power|sys
PrintNotify|Printer Extensions and Notifications|sys
ProfSvc|User Profile Service|sys
QWAVE|Quality Windows Audio Video Experience|local
RasAuto|Remote Access Auto Connection Manager|sys
RasMan|Remote Access Connection Manager|sys
RemoteAccess|Routing and Remote Access|sys
RemoteRegistry|Remote Registry|local
RmSvc|Radio Management Service|local
RpcEptMapper|RPC Endpoint Mapper|net
RpcLocator|Remote Procedure Call (RPC) Locator|own
RpcSs|Remote Procedure Call (RPC)|net
RSoPProv|Resultant Set of Policy Provider|sys
sacsvr|Special Administration Console Helper|sys
SamSs|Security Accounts Manager|own
SCardSvr|Smart Card|local
ScDeviceEnum|Smart Card Device Enumeration Service|local
Schedule|Task Scheduler|sys
SCPolicySvc|Smart Card Removal Policy|sys
seclogon|Secondary Logon|sys
SENS|System Event Notification Service|sys
SensorDataService|Sensor Data Service|own
SensorService|Sensor Service|sys
SensrSvc|Sensor Monitoring Service|local
SessionEnv|Remote Desktop Configuration|sys
SgrmBroker|System Guard Runtime Monitor Broker|own
SharedAccess|Internet Connection Sharing (ICS)|sys
ShellHWDetection|Shell Hardware Detection|sys
smphost|Microsoft Storage Spaces SMP|net
SNMPTRAP|SNMP Trap|own
Spooler|Print Spooler|own
sppsvc|Software Protection|own
SSDPSRV|SSDP Discovery|local
SstpSvc|Secure Socket Tunneling Protocol Service|local
StateRepository|State Repository Service|sys
stisvc|Windows Image Acquisition (WIA)|local
StorSvc|Storage Service|sys
svsvc|Spot Verifier|sys
swprv|Microsoft Software Shadow Copy Provider|own
SysMain|SysMain|sys
SystemEventsBroker|System Events Broker|sys
TabletInputService|Touch Keyboard and Handwriting Panel Service|sys
tapisrv|Telephony|net
TermService|Remote Desktop Services|net
Themes|Themes|sys
TieringEngineService|Storage Tiers Management|own
TimeBrokerSvc|Time Broker|local
TokenBroker|Web Account Manager|sys
TrkWks|Distributed Link Tracking Client|sys
TrustedInstaller|Windows Modules Installer|own
tzautoupdate|Auto Time Zone Updater|local
UALSVC|User Access Logging Service|sys
UmRdpService|Remote Desktop Services UserMode Port Redirector|sys
UsoSvc|Update Orchestrator Service|sys
VaultSvc|Credential Manager|own
vds|Virtual Disk|own
VMTools|VMware Tools|vendor
W32Time|Windows Time|local
W3SVC|World Wide Web Publishing Service|sys
WAS|Windows Process Activation Service|sys
WdiServiceHost|Diagnostic Service Host|local
WdiSystemHost|Diagnostic System Host|sys
WdNisSvc|Windows Defender Antivirus Network Inspection Service|own
WinDefend|Windows Defender Antivirus Service|own
WinHttpAutoProxySvc|WinHTTP Web Proxy Auto-Discovery Service|local
Winmgmt|Windows Management Instrumentation|sys
WinRM|Windows Remote Management (WS-Management)|net
wisvc|Windows Insider Service|sys
wlidsvc|Microsoft Account Sign-in Assistant|sys
wmiApSrv|WMI Performance Adapter|own
WPDBusEnum|Portable Device Enumerator Service|sys
WpnService|Windows Push Notifications System Service|sys
wuauserv|Windows Update|sys";

/// Role and vendor services that only some hosts have, in the format of [`SERVICES`].
const ROLE_SERVICES: &str = "MSSQLSERVER|SQL Server (MSSQLSERVER)|vendor
SQLSERVERAGENT|SQL Server Agent (MSSQLSERVER)|vendor
SQLBrowser|SQL Server Browser|vendor
SQLWriter|SQL Server VSS Writer|vendor
NTDS|Active Directory Domain Services|sys
DNS|DNS Server|own
DFSR|DFS Replication|own
Kdc|Kerberos Key Distribution Center|own
IsmServ|Intersite Messaging|own
ADWS|Active Directory Web Services|own
CcmExec|SMS Agent Host|vendor
HealthService|Microsoft Monitoring Agent|vendor
Sense|Windows Defender Advanced Threat Protection Service|own";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_seeded() {
        let a = Host::generate("web01.corp.example", 7);
        assert_eq!(a, Host::generate("web01.corp.example", 7));
        assert_eq!(a, Host::generate("WEB01.corp.example", 7));
        assert_ne!(a, Host::generate("web01.corp.example", 8));
        assert_ne!(a, Host::generate("web02.corp.example", 7));
        assert_eq!(a.name, "WEB01");
    }

    #[test]
    fn counts_are_in_the_documented_ranges() {
        for i in 0..40 {
            let h = Host::generate(&format!("host{i}"), 1);
            let n = |c: &str| h.class(c).map_or(0, <[Instance]>::len);
            assert!((1..=2).contains(&n("Win32_Processor")), "{i}");
            assert!((1..=4).contains(&n("Win32_LogicalDisk")), "{i}");
            assert!((140..=175).contains(&n("Win32_Service")), "{i}: {}", n("Win32_Service"));
            assert_eq!(n("Win32_OperatingSystem"), 1);
            assert!(n("Win32_QuickFixEngineering") >= 5);
            assert!(n("Win32_Process") >= 30);
            assert_eq!(h.classes().count(), CLASSES.len());
        }
    }

    #[test]
    fn every_instance_has_unique_keys_and_sorted_properties() {
        let h = Host::generate("db7.example.org", 3);
        for (class, instances) in h.classes() {
            let keys = key_properties(class);
            assert!(!keys.is_empty(), "{class}");
            let mut seen = std::collections::HashSet::new();
            for inst in instances {
                assert_eq!(inst.class_name, class);
                let names: Vec<String> = inst.properties.iter().map(|p| p.name.to_ascii_lowercase()).collect();
                let mut sorted = names.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(names, sorted, "{class} properties sorted and unique");
                let key: Vec<String> =
                    keys.iter().map(|k| inst.get(k).map(|v| v.to_string()).unwrap_or_default()).collect();
                assert!(keys.iter().all(|k| inst.get(k).is_some_and(|v| !v.is_null())), "{class} key missing");
                assert!(seen.insert(key.clone()), "{class} duplicate key {key:?}");
            }
        }
    }

    /// The dataset's names, CIM types and array shapes agree with the built-in class table
    /// (written from the Windows MOF), so clients type what they receive the same way.
    #[test]
    fn properties_match_the_class_table() {
        use crate::cim::schema::{self, CimType};
        let mut problems = Vec::new();
        for i in 0..5 {
            let h = Host::generate(&format!("schema{i}.corp"), i);
            for (class, instances) in h.classes() {
                let Some(schema) = schema::class(class) else {
                    problems.push(format!("{class}: not in the class table"));
                    continue;
                };
                for inst in instances {
                    for p in &inst.properties {
                        let Some(ps) = schema.property(&p.name) else {
                            problems.push(format!("{class}.{}: not in the class table", p.name));
                            continue;
                        };
                        let (is_array, sample) = match &p.value {
                            Value::Array(items) => (true, items.first()),
                            v => (false, Some(v)),
                        };
                        if is_array != ps.is_array && !p.value.is_null() {
                            problems.push(format!("{class}.{}: array {is_array}, table says {}", p.name, ps.is_array));
                        }
                        let Some(v) = sample.filter(|v| !v.is_null()) else { continue };
                        let ty = match ps.cim_type {
                            CimType::DateTime => "datetime",
                            other => match other.parse_text("0").or_else(|| other.parse_text("x")) {
                                Some(parsed) => parsed.type_name(),
                                None => "?",
                            },
                        };
                        if v.type_name() != ty {
                            problems.push(format!(
                                "{class}.{}: {} but the table says {:?}",
                                p.name,
                                v.type_name(),
                                ps.cim_type
                            ));
                        }
                    }
                }
            }
        }
        problems.sort();
        problems.dedup();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn classes_generated_alone_equal_the_whole_host() {
        let h = Host::generate("solo3.corp", 9);
        for (class, instances) in h.classes() {
            assert_eq!(generate_class("SOLO3.corp", 9, &class.to_ascii_lowercase()).as_deref(), Some(instances));
        }
        assert_eq!(generate_class("solo3.corp", 9, "Win32_Nope"), None);
    }

    #[test]
    fn classes_agree_on_the_machine() {
        for i in 0..10 {
            let h = Host::generate(&format!("m{i}"), 2);
            let one = |c: &str, p: &str| h.class(c).and_then(|i| i.first()).and_then(|i| i.get(p)).cloned();
            let cpus = h.class("Win32_Processor").unwrap();
            assert_eq!(one("Win32_ComputerSystem", "NumberOfProcessors"), Some(Value::UInt32(cpus.len() as u32)));
            assert!(cpus.iter().all(|c| c.get("Name") == cpus[0].get("Name")), "one processor model per machine");
            assert_eq!(one("Win32_ComputerSystem", "Manufacturer"), one("Win32_ComputerSystemProduct", "Vendor"));
            assert_eq!(one("Win32_ComputerSystem", "Model"), one("Win32_ComputerSystemProduct", "Name"));
        }
    }

    #[test]
    fn processes_agree_with_the_operating_system() {
        let h = Host::generate("ts9", 4);
        let os = &h.class("Win32_OperatingSystem").unwrap()[0];
        for p in h.class("Win32_Process").unwrap() {
            assert_eq!(p.get("WindowsVersion"), os.get("Version"));
            assert_eq!(p.get("OSName"), os.get("Name"));
            assert_eq!(p.get("CSName"), os.get("CSName"));
        }
    }

    #[test]
    fn network_arrays_have_one_and_several_elements() {
        let mut one = false;
        let mut several = false;
        for i in 0..20 {
            let h = Host::generate(&format!("n{i}.corp"), 0);
            for nic in h.class("Win32_NetworkAdapterConfiguration").unwrap_or_default() {
                if let Some(Value::Array(ips)) = nic.get("IPAddress") {
                    one |= ips.len() == 1;
                    several |= ips.len() > 1;
                    assert!(matches!(nic.get("IPSubnet"), Some(Value::Array(m)) if m.len() == ips.len()));
                }
            }
        }
        assert!(one && several);
    }
}
