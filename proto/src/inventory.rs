//! The inventory document: everything a machine says about its hardware and
//! operating system, as the agent collects it and the server stores it.
//!
//! # Versioning
//! [`Inventory::schema_version`] is the first field of the document and
//! equals [`SCHEMA_VERSION`]. New fields are added with `#[serde(default)]`
//! and never renamed or re-typed within one schema version; an incompatible
//! change bumps the version.
//!
//! # Unreadable values
//! Every value the agent may fail to read is a [`Reading`]: either
//! `{"value": ...}` or `{"unavailable": "<reason in English>"}`. A reading is
//! never guessed: a placeholder string left by the manufacturer ("To Be
//! Filled By O.E.M.") is unavailable, not a value. Common reasons are the
//! constants of [`reason`], which the agent's French summary translates.
//!
//! # Content hash and volatile values
//! The agent sends the full document only when [`Inventory::content_hash`]
//! changed, and the server recomputes that hash over the JSON it receives
//! ([`crate::hash::content_hash`]). So the document holds **no volatile
//! value**: nothing that changes while the hardware and software stay the
//! same. Concretely:
//! - left out entirely: uptime, collection time, current temperatures, battery
//!   charge level, CPU current frequency, free memory, IPv6 addresses (privacy
//!   addresses rotate daily);
//! - rounded: filesystem use (whole multiples of 5 %), SMART power-on hours
//!   (floored to a multiple of 100 h), battery capacities (0.1 Wh);
//! - derived but stable: the Windows 11 verdict. The hardware age depends on
//!   today's date, so it is a function ([`Inventory::hardware_age_years`]),
//!   not a field.
//!
//! Values that change by the nature of the hardware (battery full capacity
//! and cycle count drift with each charge cycle) are kept: the document of a
//! laptop in daily use changes about once a day, which is what an auditor of
//! battery wear wants.

pub mod delta;
pub mod windows11;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use windows11::{Windows11Requirement, Windows11Status, Windows11Verdict};

/// Version of the inventory document layout.
///
/// - 1: hardware, OS, the packages the profiles name;
/// - 2: adds [`Inventory::software`] (every dpkg package and Flatpak app),
///   screens, controllers and peripherals, read as "not reported" from
///   version-1 documents (the server accepts both).
pub const SCHEMA_VERSION: u32 = 2;

/// Reasons for an unavailable reading that occur on many fields. The agent's
/// French summary translates these; other reasons are shown as they are.
pub mod reason {
    /// The file exists but only root may read it (DMI serial and UUID,
    /// SMBIOS tables).
    pub const NEEDS_ROOT: &str = "permission denied (needs root)";
    /// The kernel does not expose this value on this machine (no such file).
    pub const NOT_EXPOSED: &str = "not exposed by the kernel on this machine";
    /// The manufacturer left a placeholder ("To Be Filled By O.E.M.", "Default
    /// string", "0123456789", ...) instead of a real value.
    pub const PLACEHOLDER: &str = "placeholder value left by the manufacturer";
    /// Values that only exist on the live system (IP addresses, filesystem
    /// use) are not read when collecting from another root (fixture tree).
    pub const NOT_LIVE_SYSTEM: &str = "not collected: inventory root is not the live system";
    /// The D-Bus readers were turned off by the caller.
    pub const DBUS_DISABLED: &str = "D-Bus readers disabled";
    /// UDisks2 does not run on the system bus (SMART data comes from it).
    pub const UDISKS2_NOT_RUNNING: &str = "UDisks2 is not running";
    /// The firmware booted in legacy BIOS mode, so it exposes no UEFI
    /// variables (Secure Boot state).
    pub const LEGACY_BOOT: &str = "booted in legacy BIOS mode";
    /// The field did not exist in the agent version that wrote the document.
    pub const NOT_REPORTED: &str = "not reported by this agent version";

    /// French for the common reasons, saying what to do where something
    /// can be done (the agent's summary and the dashboard show it); any
    /// other reason is a technical detail, given as it is for whoever helps.
    pub fn french(why: &str) -> String {
        match why {
            NEEDS_ROOT => "lisible seulement en administrateur : relancer avec sudo".into(),
            NOT_EXPOSED => "cette machine ne l'indique pas".into(),
            PLACEHOLDER => "non renseigné par le fabricant".into(),
            NOT_LIVE_SYSTEM => "non lu hors du système en marche".into(),
            DBUS_DISABLED => "D-Bus désactivé".into(),
            UDISKS2_NOT_RUNNING => {
                "service UDisks2 arrêté (installer ou démarrer le paquet udisks2)".into()
            }
            LEGACY_BOOT => "démarrage en mode BIOS hérité".into(),
            NOT_REPORTED => "pas transmis par cette version de l'agent".into(),
            other if other.starts_with("cannot connect to the system bus") => {
                "bus système D-Bus injoignable (service dbus arrêté ?)".into()
            }
            other => format!("détail technique : {other}"),
        }
    }
}

/// A value the agent tried to read: the value, or why it could not.
///
/// Serialised as `{"value": v}` or `{"unavailable": "reason"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading<T> {
    /// The value as read from the machine.
    Value(T),
    /// The value could not be read; the reason is English prose, often one
    /// of the [`reason`] constants.
    Unavailable(String),
}

/// The value of a field this agent version does not report (documents from
/// older agents, read with `#[serde(default = "not_reported")]`).
pub fn not_reported<T>() -> Reading<T> {
    Reading::unavailable(reason::NOT_REPORTED)
}

impl<T> Reading<T> {
    /// An unavailable reading with `reason`.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Reading::Unavailable(reason.into())
    }

    /// The value, if it was read.
    pub fn value(&self) -> Option<&T> {
        match self {
            Reading::Value(v) => Some(v),
            Reading::Unavailable(_) => None,
        }
    }

    /// Owned value, if it was read.
    pub fn into_value(self) -> Option<T> {
        match self {
            Reading::Value(v) => Some(v),
            Reading::Unavailable(_) => None,
        }
    }

    /// The reason, if the value could not be read.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Reading::Value(_) => None,
            Reading::Unavailable(r) => Some(r),
        }
    }

    /// Applies `f` to the value, keeping the reason.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Reading<U> {
        match self {
            Reading::Value(v) => Reading::Value(f(v)),
            Reading::Unavailable(r) => Reading::Unavailable(r),
        }
    }

    /// Applies a fallible `f` to the value; `Err(reason)` makes the reading
    /// unavailable.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Result<U, String>) -> Reading<U> {
        match self {
            Reading::Value(v) => f(v).into(),
            Reading::Unavailable(r) => Reading::Unavailable(r),
        }
    }

    /// Borrowing view of the reading.
    pub fn as_ref(&self) -> Reading<&T> {
        match self {
            Reading::Value(v) => Reading::Value(v),
            Reading::Unavailable(r) => Reading::Unavailable(r.clone()),
        }
    }
}

impl<T> From<Result<T, String>> for Reading<T> {
    fn from(r: Result<T, String>) -> Self {
        match r {
            Ok(v) => Reading::Value(v),
            Err(reason) => Reading::Unavailable(reason),
        }
    }
}

/// The whole inventory of one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Layout version of this document, [`SCHEMA_VERSION`] when written by
    /// this code.
    pub schema_version: u32,
    /// Version of the `nird-agent` that collected it (a new agent may read
    /// more fields).
    pub agent_version: String,
    /// Which machine this is.
    pub identity: Identity,
    /// BIOS / UEFI, Secure Boot, TPM.
    pub firmware: Firmware,
    /// The processor.
    pub cpu: Cpu,
    /// RAM total and modules.
    pub memory: Memory,
    /// Physical disks and mounted filesystems.
    pub storage: Storage,
    /// Batteries (empty list on a desktop).
    pub batteries: Reading<Vec<Battery>>,
    /// Display controllers (PCI class 03).
    pub graphics: Reading<Vec<PciDevice>>,
    /// Physical network interfaces (virtual ones such as bridges are left out).
    pub network: Reading<Vec<NetworkAdapter>>,
    /// Operating system, kernel, packages.
    pub os: Os,
    /// Would Windows 11 accept this machine? Derived from the fields above
    /// with [`windows11::verdict`].
    pub windows11: Windows11Verdict,
    /// Every installed package (dpkg) and Flatpak application. The largest
    /// part of the document by far (≈ 200 KB for 2,500 packages), so it is
    /// a top-level member: check-ins send it as a delta
    /// ([`delta`]) and the server stores it content-addressed.
    #[serde(default = "not_reported")]
    pub software: Reading<Software>,
    /// Connected screens, from their EDID (built-in panels included).
    #[serde(default = "not_reported")]
    pub monitors: Reading<Vec<Monitor>>,
    /// Controllers and peripherals: PCI and USB devices, sound cards,
    /// keyboards and pointing devices, printers known to CUPS.
    #[serde(default)]
    pub peripherals: Peripherals,
}

impl Inventory {
    /// Lowercase hex SHA-256 of the canonical JSON of the document
    /// ([`crate::hash::content_hash`]). Equal documents give equal hashes;
    /// the document holds no volatile value (see the module docs), so the hash
    /// only changes when the machine did.
    pub fn content_hash(&self) -> String {
        // Serialising these types cannot fail: every map has string keys and
        // no Serialize impl here returns an error.
        crate::hash::content_hash(self).expect("inventory types always serialise to JSON")
    }

    /// Estimated age of the hardware in whole years on `today`, from the
    /// BIOS release date (a firmware update makes a machine look younger; it
    /// is an estimate). `None` when the BIOS date is unavailable or in the
    /// future.
    pub fn hardware_age_years(&self, today: time::Date) -> Option<u32> {
        let date = self.firmware.bios_date.value()?;
        let date = parse_iso_date(date)?;
        age_in_years(date, today)
    }
}

/// Parses a `YYYY-MM-DD` date.
pub fn parse_iso_date(s: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format).ok()
}

/// Whole years between `from` and `today`; `None` if `from` is after `today`.
pub fn age_in_years(from: time::Date, today: time::Date) -> Option<u32> {
    if from > today {
        return None;
    }
    let mut years = today.year() - from.year();
    if (today.month() as u8, today.day()) < (from.month() as u8, from.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

/// Which machine this is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// `/etc/machine-id`: stable per installation (changes on reinstall).
    pub machine_id: Reading<String>,
    /// The kernel hostname.
    pub hostname: Reading<String>,
    /// DMI system manufacturer (`sys_vendor`), e.g. "LENOVO".
    pub vendor: Reading<String>,
    /// DMI product name, e.g. "20AQ0069FR"; for Lenovo the marketing name is
    /// in `product_version`, kept in `product_family` below when present.
    pub product: Reading<String>,
    /// DMI product version or family (Lenovo: "ThinkPad T440s").
    pub product_family: Reading<String>,
    /// DMI system serial number (root only).
    pub serial: Reading<String>,
    /// DMI system UUID (root only).
    pub uuid: Reading<String>,
    /// Enclosure kind from the SMBIOS chassis type.
    pub chassis: Reading<Chassis>,
}

/// Enclosure kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chassis {
    /// Coarse kind, for counting.
    pub kind: ChassisKind,
    /// The SMBIOS chassis type code (DMTF DSP0134, table 17), for detail.
    pub smbios_code: u8,
}

/// Coarse enclosure kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChassisKind {
    Desktop,
    Laptop,
    AllInOne,
    MiniPc,
    Tablet,
    Server,
    Other,
    Unknown,
}

impl ChassisKind {
    /// Kind of an SMBIOS chassis type code (DSP0134 7.4.1).
    pub fn from_smbios_code(code: u8) -> ChassisKind {
        match code & 0x7f {
            3 | 4 | 5 | 6 | 7 | 15 | 16 | 24 => ChassisKind::Desktop,
            8 | 9 | 10 | 14 | 31 | 32 => ChassisKind::Laptop,
            13 => ChassisKind::AllInOne,
            35 | 36 => ChassisKind::MiniPc,
            11 | 30 => ChassisKind::Tablet,
            17 | 23 | 25 | 28 | 29 => ChassisKind::Server,
            2 => ChassisKind::Unknown,
            _ => ChassisKind::Other,
        }
    }
}

/// Firmware facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firmware {
    /// BIOS vendor, e.g. "LENOVO", "American Megatrends Inc.".
    pub bios_vendor: Reading<String>,
    /// BIOS version string.
    pub bios_version: Reading<String>,
    /// BIOS release date, `YYYY-MM-DD` (DMI gives `MM/DD/YYYY`).
    pub bios_date: Reading<String>,
    /// How this boot was started.
    pub boot_mode: Reading<BootMode>,
    /// Whether the firmware can boot in UEFI mode (SMBIOS BIOS
    /// characteristics), which matters when it booted in legacy mode.
    pub uefi_capable: Reading<bool>,
    /// Secure Boot state (UEFI variable `SecureBoot`).
    pub secure_boot: Reading<SecureBoot>,
    /// The TPM the kernel sees.
    pub tpm: Reading<Tpm>,
    /// Whether the firmware carries a Windows OEM licence (an ACPI `MSDM`
    /// table is present): the machine was sold with Windows. Presence only:
    /// the table (which holds the product key) is never read.
    #[serde(default = "not_reported")]
    pub windows_oem_licence: Reading<bool>,
}

/// Boot mode of the running system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootMode {
    Uefi,
    Legacy,
}

/// Secure Boot state as the firmware reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecureBoot {
    Enabled,
    /// Supported by the firmware but turned off.
    Disabled,
    /// UEFI firmware without Secure Boot support (no `SecureBoot` variable).
    Unsupported,
}

/// TPM presence and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tpm {
    /// False when the kernel sees no TPM (absent, or disabled in firmware
    /// setup: many 2017-2019 PCs ship with fTPM / PTT off).
    pub present: bool,
    /// "2.0" or "1.2" when present and known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    /// `vendor_id`: "GenuineIntel", "AuthenticAMD", ...
    pub vendor: Reading<String>,
    /// Model name, e.g. "Intel(R) Core(TM) i5-3320M CPU @ 2.60GHz".
    pub model_name: Reading<String>,
    /// CPUID family, model, stepping.
    pub family: Reading<u32>,
    pub model: Reading<u32>,
    pub stepping: Reading<u32>,
    /// Physical cores (all sockets).
    pub cores: Reading<u32>,
    /// Hardware threads (logical CPUs).
    pub threads: Reading<u32>,
    /// Highest frequency the cores may reach (cpufreq), MHz.
    pub max_frequency_mhz: Reading<u32>,
    /// True when running under a hypervisor (the `hypervisor` CPU flag).
    pub virtualized: bool,
}

/// RAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// `MemTotal` of `/proc/meminfo`, bytes (what the OS can use: a bit less
    /// than the installed modules).
    pub total_bytes: Reading<u64>,
    /// Installed modules from SMBIOS (type 17), empty slots left out.
    pub modules: Reading<Vec<MemoryModule>>,
    /// Memory device slots the SMBIOS table describes (type 17 entries,
    /// filled or empty); `slots - modules.len()` are free.
    #[serde(default = "not_reported")]
    pub slots: Reading<u32>,
}

impl Memory {
    /// Empty memory slots, when both the slot count and the modules are known.
    pub fn free_slots(&self) -> Option<u32> {
        let modules = u32::try_from(self.modules.value()?.len()).ok()?;
        self.slots.value()?.checked_sub(modules)
    }
}

/// One installed memory module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryModule {
    /// Slot label, e.g. "ChannelA-DIMM0".
    pub locator: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Memory type, e.g. "DDR3", "DDR4", "LPDDR4".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Speed in MT/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mts: Option<u32>,
    /// Module manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Module part number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_number: Option<String>,
    /// SMBIOS form factor, e.g. "SODIMM", "DIMM" (replaceable) or
    /// "ROW_OF_CHIPS" (soldered to the board).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_factor: Option<String>,
}

impl MemoryModule {
    /// True for a module in a socket (DIMM, SODIMM, ...), false for soldered
    /// memory, `None` when the form factor is unknown.
    pub fn replaceable(&self) -> Option<bool> {
        match self.form_factor.as_deref()? {
            "DIMM" | "SODIMM" | "SIMM" | "RIMM" | "SRIMM" | "FB_DIMM" | "CAMM" | "CUDIMM"
            | "CSODIMM" => Some(true),
            "ROW_OF_CHIPS" | "CHIP" | "TSOP" | "DIE" => Some(false),
            _ => None,
        }
    }
}

/// Disks and filesystems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    /// Physical disks (loop, zram, device-mapper and optical drives left out).
    pub disks: Reading<Vec<Disk>>,
    /// Mounted local filesystems.
    pub filesystems: Reading<Vec<Filesystem>>,
}

/// A physical disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    /// Kernel name, e.g. "sda", "nvme0n1".
    pub name: String,
    /// Model string.
    pub model: Reading<String>,
    /// Serial number.
    pub serial: Reading<String>,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Technology.
    pub kind: DiskKind,
    /// True for removable media (USB sticks, card readers).
    pub removable: bool,
    /// SMART health from UDisks2.
    pub smart: Reading<Smart>,
}

/// Disk technology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskKind {
    Hdd,
    Ssd,
    Nvme,
    /// A virtual disk of a VM (virtio, Xen): its technology is unknowable.
    Virtual,
    /// A disk behind a USB bridge (stick, external drive): the bridge hides
    /// the technology.
    Usb,
}

/// SMART summary of one disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Smart {
    /// The drive's own verdict.
    pub health: SmartHealth,
    /// Power-on hours, floored to a multiple of 100 (keeps the hash stable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_on_hours: Option<u64>,
    /// Reallocated plus pending / bad sectors (ATA), the first sign of a dying
    /// HDD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_sectors: Option<u64>,
    /// NVMe "percentage used" of rated endurance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_used: Option<u8>,
}

/// SMART verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmartHealth {
    Passed,
    Failing,
}

/// A mounted filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filesystem {
    /// Where it is mounted.
    pub mount_point: String,
    /// The mounted device, e.g. "/dev/sda2".
    pub device: String,
    /// Filesystem type, e.g. "ext4".
    pub fs_type: String,
    /// Size and use (statvfs), unavailable on a fixture root.
    pub usage: Reading<FilesystemUsage>,
}

/// Size and use of a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesystemUsage {
    /// Total size in bytes.
    pub size_bytes: u64,
    /// Used share, rounded to a multiple of 5 % (exact use changes all the
    /// time and would change the hash).
    pub used_percent: u8,
}

/// Rounds a used share to the nearest multiple of 5 %.
pub fn round_used_percent(used: u64, size: u64) -> u8 {
    if size == 0 {
        return 0;
    }
    let percent = (used as f64 * 100.0 / size as f64).clamp(0.0, 100.0);
    ((percent / 5.0).round() * 5.0) as u8
}

/// A battery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Battery {
    /// Kernel name, e.g. "BAT0".
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Chemistry, e.g. "Li-ion".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technology: Option<String>,
    /// Capacity when new, Wh (0.1 precision).
    pub design_capacity_wh: Reading<f64>,
    /// Capacity when fully charged today, Wh (0.1 precision).
    pub full_capacity_wh: Reading<f64>,
    /// Lost capacity: 100 − full / design × 100, whole percent (0 when the
    /// battery reports more than its design).
    pub wear_percent: Reading<u8>,
    /// Charge cycles counted by the battery.
    pub cycle_count: Reading<u32>,
}

/// Wear of a battery in whole percent from its full and design capacities
/// (any unit, the same for both).
pub fn battery_wear_percent(full: f64, design: f64) -> Option<u8> {
    if !design.is_finite() || design <= 0.0 || !full.is_finite() || full < 0.0 {
        return None;
    }
    let wear = 100.0 - full * 100.0 / design;
    Some(wear.clamp(0.0, 100.0).round() as u8)
}

/// A PCI device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDevice {
    /// Bus address, e.g. "0000:00:02.0".
    pub address: String,
    /// Vendor and device ids, lowercase hex without `0x`, e.g. "8086", "0166".
    pub vendor_id: String,
    pub device_id: String,
    /// Subsystem ids ("17aa:21f3"), identifies the board maker's variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem: Option<String>,
    /// Names from the pci.ids database when installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Bound kernel driver, e.g. "i915"; `None` when no driver is bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// PCI class and subclass, 4 hex digits, e.g. "0300" (VGA controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// A physical network interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkAdapter {
    /// Interface name, e.g. "enp0s25", "wlp3s0".
    pub interface: String,
    /// Wired or wireless.
    pub kind: NetworkKind,
    /// Permanent-looking MAC address as the kernel shows it.
    pub mac: Reading<String>,
    /// Bound kernel driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// The PCI device behind the interface, when it is on PCI (not USB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciDevice>,
    /// IPv4 addresses with prefix, e.g. "192.168.1.20/24" (IPv6 left out:
    /// privacy addresses rotate and would change the hash).
    pub ipv4: Reading<Vec<String>>,
}

/// Interface kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkKind {
    Wired,
    Wireless,
}

/// Operating system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Os {
    /// `PRETTY_NAME` of os-release, e.g. "Linux Mint 22 Xfce".
    pub pretty_name: Reading<String>,
    /// `ID` and `VERSION_ID` of os-release.
    pub id: Reading<String>,
    pub version_id: Reading<String>,
    /// Running kernel release.
    pub kernel: Reading<String>,
    /// Machine architecture, e.g. "x86_64".
    pub architecture: Reading<String>,
    /// Debian packages (dpkg status database).
    pub packages: Reading<Packages>,
    /// The host firewall front-end and whether it is turned on.
    #[serde(default = "not_reported")]
    pub firewall: Reading<Firewall>,
}

/// The host firewall as its front-end's configuration says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firewall {
    /// "ufw" or "firewalld"; `None` when neither is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Turned on at boot (ufw `ENABLED=yes`, firewalld's unit enabled).
    pub enabled: bool,
}

/// What dpkg says is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packages {
    /// Packages in state "install ok installed".
    pub installed_count: u32,
    /// Version of each package named by the applied profiles; `null` when
    /// not installed.
    pub of_interest: BTreeMap<String, Option<String>>,
}

/// Controllers and peripherals. Removable storage is left out (USB sticks
/// come and go; they are in [`Storage::disks`] while plugged in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peripherals {
    /// Every PCI function (controllers, bridges, audio, USB hosts...).
    #[serde(default = "not_reported")]
    pub pci: Reading<Vec<PciDevice>>,
    /// USB devices, hubs and mass storage left out.
    #[serde(default = "not_reported")]
    pub usb: Reading<Vec<UsbDevice>>,
    /// ALSA sound cards.
    #[serde(default = "not_reported")]
    pub sound: Reading<Vec<SoundCard>>,
    /// Keyboards and pointing devices (one entry per device name and kind).
    #[serde(default = "not_reported")]
    pub input: Reading<Vec<InputDevice>>,
    /// Print queues CUPS knows.
    #[serde(default = "not_reported")]
    pub printers: Reading<Vec<Printer>>,
}

impl Default for Peripherals {
    /// All not reported (a document from an agent before schema 2).
    fn default() -> Self {
        Peripherals {
            pci: not_reported(),
            usb: not_reported(),
            sound: not_reported(),
            input: not_reported(),
            printers: not_reported(),
        }
    }
}

/// A USB device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsbDevice {
    /// Vendor and product ids, lowercase hex, e.g. "046d", "c52b".
    pub vendor_id: String,
    pub product_id: String,
    /// USB class of the device (or of its first interface when the device
    /// says "per interface"), 2 hex digits, e.g. "03" (HID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Names from usb.ids when installed, else the device's own strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// The device's serial number string, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// An ALSA sound card (`/proc/asound/cards`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoundCard {
    /// Card id, e.g. "PCH".
    pub id: String,
    /// Driver, e.g. "HDA-Intel".
    pub driver: String,
    /// Name, e.g. "HDA Intel PCH".
    pub name: String,
}

/// A keyboard or pointing device (`/proc/bus/input/devices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDevice {
    /// Name the device gives, e.g. "Logitech Wireless Mouse".
    pub name: String,
    /// Keyboard or pointing device.
    pub kind: InputKind,
    /// Bus: "usb", "ps2", "i2c", "bluetooth", ...
    pub bus: String,
}

/// Kind of input device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Keyboard,
    Pointing,
}

/// A print queue CUPS knows (`/etc/cups/printers.conf` and its PPD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Printer {
    /// Queue name.
    pub name: String,
    /// Description given by the administrator (`Info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Driver: the PPD's `NickName`, else `MakeModel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Backend of the device URI ("usb", "ipp", "socket", "smb"...): the
    /// URI itself may hold credentials and is never kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// True when the printer is reached over the network.
    pub network: bool,
}

/// A connected screen, as its EDID describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    /// DRM connector, e.g. "HDMI-A-1", "eDP-1".
    pub connector: String,
    /// True for a laptop's own panel (eDP, LVDS, DSI connectors).
    pub builtin: bool,
    /// PNP manufacturer id from the EDID, e.g. "DEL", "SAM".
    pub manufacturer_id: String,
    /// Manufacturer name from the hwdata pnp.ids database, when installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// EDID product code.
    pub product_code: u16,
    /// Display product name ("DELL P2419H"), else the panel's part number
    /// (alphanumeric descriptor, laptop panels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Serial number descriptor, else the EDID's numeric serial when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Year of manufacture (or model year when the week says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<u16>,
    /// Week of manufacture, 1–54, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub week: Option<u8>,
    /// Visible image size in cm, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width_cm: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height_cm: Option<u8>,
    /// Digital input (DVI, HDMI, DisplayPort, eDP) rather than analog VGA.
    pub digital: bool,
}

impl Monitor {
    /// Diagonal in inches (0.1 precision) from the image size.
    pub fn diagonal_inches(&self) -> Option<f64> {
        let (w, h) = (f64::from(self.width_cm?), f64::from(self.height_cm?));
        (w > 0.0 && h > 0.0).then(|| ((w * w + h * h).sqrt() / 2.54 * 10.0).round() / 10.0)
    }
}

/// Installed software.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Software {
    /// Installed dpkg packages (status `installed`, whatever the selection:
    /// `install` or `hold`), sorted by name then architecture — the order
    /// [`delta::apply`] restores, so both sides hash the same bytes.
    pub packages: Vec<Package>,
    /// System-wide Flatpak applications (`/var/lib/flatpak/app`), sorted by
    /// id then branch; empty when Flatpak is not installed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flatpaks: Vec<FlatpakApp>,
}

/// One installed Debian package. Short keys: the list repeats them 2,500
/// times.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    /// Package name, e.g. "gcompris-qt".
    pub name: String,
    /// Debian version, e.g. "3.1-2".
    pub version: String,
    /// Debian architecture: "amd64", "i386", "all".
    pub arch: String,
    /// Archive section, e.g. "games", "libs" (absent for some local
    /// packages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// `Installed-Size` in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_kib: Option<u64>,
}

impl Package {
    /// The identity of a package in a list: dpkg allows one version per
    /// name and architecture (`libc6:amd64` and `libc6:i386` coexist).
    pub fn key(&self) -> (&str, &str) {
        (&self.name, &self.arch)
    }
}

/// One Flatpak application installed system-wide.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlatpakApp {
    /// Application id, e.g. "org.kde.gcompris".
    pub id: String,
    /// Branch, usually "stable".
    pub branch: String,
    /// Flatpak architecture, e.g. "x86_64".
    pub arch: String,
    /// Newest release listed in the application's AppStream metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn reading_serialises_as_value_or_reason() {
        let r: Reading<u32> = Reading::Value(4);
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"value":4}"#);
        let r: Reading<u32> = Reading::unavailable(reason::NEEDS_ROOT);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"unavailable":"permission denied (needs root)"}"#
        );
        let back: Reading<u32> = serde_json::from_str(r#"{"value":7}"#).unwrap();
        assert_eq!(back.value(), Some(&7));
    }

    #[test]
    fn age_counts_whole_years() {
        assert_eq!(
            age_in_years(date!(2013 - 05 - 14), date!(2026 - 05 - 13)),
            Some(12)
        );
        assert_eq!(
            age_in_years(date!(2013 - 05 - 14), date!(2026 - 05 - 14)),
            Some(13)
        );
        assert_eq!(
            age_in_years(date!(2027 - 01 - 01), date!(2026 - 05 - 14)),
            None
        );
        assert_eq!(parse_iso_date("2013-05-14"), Some(date!(2013 - 05 - 14)));
        assert_eq!(parse_iso_date("05/14/2013"), None);
    }

    #[test]
    fn used_percent_rounds_to_five() {
        assert_eq!(round_used_percent(0, 100), 0);
        assert_eq!(round_used_percent(42, 100), 40);
        assert_eq!(round_used_percent(43, 100), 45);
        assert_eq!(round_used_percent(100, 100), 100);
        assert_eq!(round_used_percent(5, 0), 0);
    }

    #[test]
    fn battery_wear() {
        assert_eq!(battery_wear_percent(31.2, 57.0), Some(45));
        assert_eq!(battery_wear_percent(60.0, 57.0), Some(0));
        assert_eq!(battery_wear_percent(10.0, 0.0), None);
        assert_eq!(battery_wear_percent(f64::NAN, 50.0), None);
    }

    proptest::proptest! {
        #[test]
        fn used_percent_is_a_multiple_of_five_within_range(used: u64, size: u64) {
            let p = round_used_percent(used, size);
            proptest::prop_assert!(p <= 100 && p.is_multiple_of(5));
        }

        #[test]
        fn wear_is_a_percentage(full in 0.0f64..1e6, design in 0.0f64..1e6) {
            if let Some(w) = battery_wear_percent(full, design) {
                proptest::prop_assert!(w <= 100);
            }
        }

        #[test]
        fn cpu_heuristic_never_panics(name in ".{0,60}", family: u32, model: u32, stepping: u32) {
            for vendor in ["GenuineIntel", "AuthenticAMD", "CentaurHauls"] {
                let _ = windows11::cpu_supported(
                    Some(vendor), Some(family), Some(model), Some(stepping), Some(&name),
                );
            }
        }
    }

    #[test]
    fn fields_added_later_read_as_not_reported_in_old_documents() {
        let memory: Memory =
            serde_json::from_str(r#"{"total_bytes":{"value":1},"modules":{"value":[]}}"#).unwrap();
        assert_eq!(memory.slots.reason(), Some(reason::NOT_REPORTED));
        assert_eq!(memory.free_slots(), None);
        let module = MemoryModule {
            locator: "DIMM1".into(),
            size_bytes: 4 << 30,
            kind: None,
            speed_mts: None,
            manufacturer: None,
            part_number: None,
            form_factor: Some("ROW_OF_CHIPS".into()),
        };
        assert_eq!(module.replaceable(), Some(false));
        let memory = Memory {
            total_bytes: Reading::Value(4 << 30),
            modules: Reading::Value(vec![module]),
            slots: Reading::Value(2),
        };
        assert_eq!(memory.free_slots(), Some(1));
    }

    #[test]
    fn chassis_codes() {
        assert_eq!(ChassisKind::from_smbios_code(10), ChassisKind::Laptop);
        assert_eq!(ChassisKind::from_smbios_code(3), ChassisKind::Desktop);
        assert_eq!(ChassisKind::from_smbios_code(0x83), ChassisKind::Desktop);
        assert_eq!(ChassisKind::from_smbios_code(1), ChassisKind::Other);
    }
}
