//! The facts the audit aggregates, derived from one inventory when it
//! arrives: a pure function of the document, stored as plain columns
//! (`audit_facts`) so that audit pages count with SQL and never parse JSON
//! at read time.
//!
//! The Windows 11 verdict is recomputed here with
//! [`nird_proto::inventory::windows11::verdict`] (the agent's own verdict in
//! the document is ignored): a server upgrade with a newer processor list
//! refreshes every machine (see [`super::backfill`]).

use nird_proto::inventory::windows11::{self, CpuBasis, Windows11Requirement, Windows11Status};
use nird_proto::inventory::{ChassisKind, DiskKind, Inventory, SecureBoot, SmartHealth};

use super::cpu;

const GIB: u64 = 1024 * 1024 * 1024;

/// Machine class, for the manufacture footprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineClass {
    /// Laptop (SMBIOS chassis portable, laptop, notebook, sub-notebook,
    /// convertible, detachable).
    Laptop,
    /// Desktop, all-in-one or mini PC.
    Desktop,
    /// Tablet, server, other or unknown chassis: no footprint counted.
    Other,
}

impl MachineClass {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineClass::Laptop => "laptop",
            MachineClass::Desktop => "desktop",
            MachineClass::Other => "other",
        }
    }

    /// French label.
    pub fn label(s: &str) -> &'static str {
        match s {
            "laptop" => "portable",
            "desktop" => "fixe",
            _ => "autre ou inconnu",
        }
    }
}

/// Everything the audit needs about one machine. `None` means the
/// inventory could not tell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFacts {
    /// False when the stored document is not an inventory this server reads
    /// (every other field is then unknown).
    pub readable: bool,
    /// `laptop`, `desktop` or `other` ([`MachineClass`]).
    pub class: String,
    /// SMBIOS chassis kind (`laptop`, `desktop`, `all_in_one`...).
    pub chassis: Option<String>,
    /// Manufacturer.
    pub vendor: Option<String>,
    /// Model (product family when known, e.g. "ThinkPad T430", else product).
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Processor model name.
    pub cpu_model: Option<String>,
    /// Processor microarchitecture ([`cpu::generation`]).
    pub cpu_generation: Option<String>,
    /// Year that microarchitecture was launched.
    pub cpu_year: Option<i64>,
    /// Year of the BIOS release date.
    pub bios_year: Option<i64>,
    /// Estimated year the machine was built: the BIOS year, but never more
    /// than one year after the processor's launch (a BIOS update makes a
    /// machine look younger; machines are sold within about a year of their
    /// processor).
    pub build_year: Option<i64>,
    /// What `build_year` rests on: `bios`, `cpu`, `bios+cpu`.
    pub age_basis: Option<String>,
    /// Installed RAM, bytes (sum of the modules, else what the OS sees).
    pub ram_bytes: Option<i64>,
    /// Installed modules.
    pub ram_modules: Option<i64>,
    /// Memory slots (filled or empty).
    pub ram_slots: Option<i64>,
    /// Empty slots.
    pub ram_free_slots: Option<i64>,
    /// True when at least one module sits in a socket (can be swapped for a
    /// bigger one), false when all are soldered.
    pub ram_replaceable: Option<bool>,
    /// Technology of the system disk (the largest fixed one): `hdd`, `ssd`,
    /// `nvme`, `other`.
    pub disk_kind: Option<String>,
    /// Its size, bytes.
    pub disk_bytes: Option<i64>,
    /// `failing` if any fixed disk's SMART says so, `passed` if every disk
    /// with SMART data passes.
    pub smart: Option<String>,
    /// Highest battery wear, percent (`None`: no battery or unknown).
    pub battery_wear: Option<i64>,
    /// The machine has at least one battery.
    pub has_battery: Option<bool>,
    /// Firmware can boot UEFI.
    pub uefi: Option<bool>,
    /// `enabled`, `disabled` or `unsupported`.
    pub secure_boot: Option<String>,
    /// `none`, `1.2` or `2.0`.
    pub tpm: Option<String>,
    /// `eligible`, `ineligible` or `unknown`.
    pub win11: String,
    /// Windows 11 blockers, each its own column.
    pub blocker_tpm: bool,
    /// Processor not on the supported list.
    pub blocker_cpu: bool,
    /// Less than 4 GB RAM.
    pub blocker_ram: bool,
    /// No disk of 64 GB.
    pub blocker_disk: bool,
    /// No UEFI firmware.
    pub blocker_uefi: bool,
    /// No Secure Boot capability.
    pub blocker_secure_boot: bool,
    /// Operating system (os-release `PRETTY_NAME`).
    pub os_name: Option<String>,
    /// os-release `VERSION_ID`.
    pub os_version: Option<String>,
    /// The firmware carries a Windows OEM licence (ACPI MSDM table).
    pub windows_oem_licence: Option<bool>,
    /// What judged the processor for Windows 11: `list` (its name is on
    /// Microsoft's list) or `estimate` (the family / model rule); `None`
    /// when neither could.
    pub cpu_basis: Option<String>,
    /// External screens connected (EDID; a laptop's own panel is not
    /// counted): reused equipment too. `None` when the agent did not
    /// report screens.
    pub screens: Option<i64>,
}

fn text(s: Option<&String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn year_of(date: &str) -> Option<i64> {
    nird_proto::inventory::parse_iso_date(date).map(|d| i64::from(d.year()))
}

/// The class of a chassis kind.
pub fn class_of(kind: Option<ChassisKind>) -> MachineClass {
    match kind {
        Some(ChassisKind::Laptop) => MachineClass::Laptop,
        Some(ChassisKind::Desktop | ChassisKind::AllInOne | ChassisKind::MiniPc) => {
            MachineClass::Desktop
        }
        _ => MachineClass::Other,
    }
}

/// Estimated build year from the BIOS year and the processor launch year
/// (see [`AuditFacts::build_year`]).
pub fn build_year(bios: Option<i64>, cpu: Option<i64>) -> (Option<i64>, Option<&'static str>) {
    match (bios, cpu) {
        (Some(b), Some(c)) => (Some(b.min(c + 1).max(c)), Some("bios+cpu")),
        (Some(b), None) => (Some(b), Some("bios")),
        (None, Some(c)) => (Some(c), Some("cpu")),
        (None, None) => (None, None),
    }
}

/// The facts of an inventory.
pub fn facts(inv: &Inventory) -> AuditFacts {
    let id = &inv.identity;
    let chassis = id.chassis.value();
    let class = class_of(chassis.map(|c| c.kind));
    let chassis_name = chassis.and_then(|c| {
        serde_json::to_value(c.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
    });
    let cpu = &inv.cpu;
    let generation = cpu::generation(
        cpu.vendor.value().map(String::as_str),
        cpu.family.value().copied(),
        cpu.model.value().copied(),
        cpu.stepping.value().copied(),
    );
    let cpu_year = generation.map(|g| i64::from(g.year));
    let bios_year = inv.firmware.bios_date.value().and_then(|d| year_of(d));
    let (build, basis) = build_year(bios_year, cpu_year);

    let modules = inv.memory.modules.value();
    let installed: Option<u64> = modules
        .filter(|m| !m.is_empty())
        .map(|m| m.iter().map(|m| m.size_bytes).sum())
        .or_else(|| inv.memory.total_bytes.value().copied());
    let replaceable = modules.and_then(|m| {
        let known: Vec<bool> = m.iter().filter_map(|m| m.replaceable()).collect();
        if known.is_empty() {
            None
        } else {
            Some(known.iter().any(|r| *r))
        }
    });

    let disks: Vec<_> = inv
        .storage
        .disks
        .value()
        .map(|d| d.iter().filter(|d| !d.removable).collect())
        .unwrap_or_default();
    let system = disks.iter().max_by_key(|d| d.size_bytes);
    let smart = if disks.iter().any(|d| {
        d.smart
            .value()
            .is_some_and(|s| s.health == SmartHealth::Failing)
    }) {
        Some("failing".to_owned())
    } else if !disks.is_empty() && disks.iter().all(|d| d.smart.value().is_some()) {
        Some("passed".to_owned())
    } else {
        None
    };

    let batteries = inv.batteries.value();
    let battery_wear = batteries.and_then(|b| {
        b.iter()
            .filter_map(|b| b.wear_percent.value().copied())
            .max()
            .map(i64::from)
    });

    let fw = &inv.firmware;
    let uefi = match fw.boot_mode.value() {
        Some(nird_proto::inventory::BootMode::Uefi) => Some(true),
        _ => fw.uefi_capable.value().copied(),
    };
    let tpm = fw.tpm.value().map(|t| {
        if !t.present {
            "none".to_owned()
        } else {
            t.version.clone().unwrap_or_else(|| "inconnue".to_owned())
        }
    });

    let verdict = windows11::verdict(inv);
    let blocked = |r: Windows11Requirement| verdict.blockers.contains(&r);
    AuditFacts {
        readable: true,
        class: class.as_str().to_owned(),
        chassis: chassis_name,
        vendor: text(id.vendor.value()),
        model: text(id.product_family.value()).or_else(|| text(id.product.value())),
        serial: text(id.serial.value()),
        cpu_model: text(cpu.model_name.value()),
        cpu_generation: generation.map(|g| g.name.to_owned()),
        cpu_year,
        bios_year,
        build_year: build,
        age_basis: basis.map(str::to_owned),
        ram_bytes: installed.and_then(|b| i64::try_from(b).ok()),
        ram_modules: modules.and_then(|m| i64::try_from(m.len()).ok()),
        ram_slots: inv.memory.slots.value().map(|s| i64::from(*s)),
        ram_free_slots: inv.memory.free_slots().map(i64::from),
        ram_replaceable: replaceable,
        disk_kind: system.map(|d| {
            match d.kind {
                DiskKind::Hdd => "hdd",
                DiskKind::Ssd => "ssd",
                DiskKind::Nvme => "nvme",
                DiskKind::Virtual | DiskKind::Usb => "other",
            }
            .to_owned()
        }),
        disk_bytes: system.and_then(|d| i64::try_from(d.size_bytes).ok()),
        smart,
        battery_wear,
        has_battery: batteries.map(|b| !b.is_empty()),
        uefi,
        secure_boot: fw.secure_boot.value().map(|s| {
            match s {
                SecureBoot::Enabled => "enabled",
                SecureBoot::Disabled => "disabled",
                SecureBoot::Unsupported => "unsupported",
            }
            .to_owned()
        }),
        tpm,
        win11: match verdict.status {
            Windows11Status::Eligible => "eligible",
            Windows11Status::Ineligible => "ineligible",
            Windows11Status::Unknown => "unknown",
        }
        .to_owned(),
        blocker_tpm: blocked(Windows11Requirement::Tpm2),
        blocker_cpu: blocked(Windows11Requirement::SupportedCpu),
        blocker_ram: blocked(Windows11Requirement::Ram4Gb),
        blocker_disk: blocked(Windows11Requirement::Storage64Gb),
        blocker_uefi: blocked(Windows11Requirement::Uefi),
        blocker_secure_boot: blocked(Windows11Requirement::SecureBoot),
        os_name: text(inv.os.pretty_name.value()),
        os_version: text(inv.os.version_id.value()),
        windows_oem_licence: fw.windows_oem_licence.value().copied(),
        cpu_basis: match verdict.cpu_basis {
            CpuBasis::MicrosoftList { .. } => Some("list".to_owned()),
            CpuBasis::Estimate => Some("estimate".to_owned()),
            CpuBasis::Unknown => None,
        },
        screens: inv
            .monitors
            .value()
            .and_then(|m| i64::try_from(m.iter().filter(|m| !m.builtin).count()).ok()),
    }
}

/// The facts of a stored document: an inventory this server cannot read
/// (an older or foreign layout) gives a row of unknowns, counted as such.
pub fn from_document(text: &str) -> AuditFacts {
    match serde_json::from_str::<Inventory>(text) {
        Ok(inv) => facts(&inv),
        Err(e) => {
            tracing::debug!(error = %e, "inventory not readable for the audit");
            AuditFacts {
                readable: false,
                class: MachineClass::Other.as_str().to_owned(),
                win11: "unknown".to_owned(),
                ..AuditFacts::default()
            }
        }
    }
}

/// Installed RAM of at most this is "4 GB or less" for upgrade planning.
pub const RAM_UPGRADE_BELOW: i64 = (8 * GIB) as i64;

#[cfg(test)]
mod tests {
    use super::*;

    fn t430() -> Inventory {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../agent/tests/fixtures/laptop-t430.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn a_thinkpad_t430_gives_its_facts() {
        let f = facts(&t430());
        assert!(f.readable);
        assert_eq!(f.class, "laptop");
        assert_eq!(f.vendor.as_deref(), Some("LENOVO"));
        assert_eq!(f.model.as_deref(), Some("ThinkPad T430"));
        assert_eq!(f.cpu_generation.as_deref(), Some("Ivy Bridge"));
        assert_eq!(f.cpu_year, Some(2012));
        // BIOS of 2013, processor of 2012: built in 2013.
        assert_eq!(f.build_year, Some(2013));
        assert_eq!(f.ram_bytes, Some(8 * GIB as i64));
        assert_eq!(
            (f.ram_modules, f.ram_slots, f.ram_free_slots),
            (Some(2), Some(2), Some(0))
        );
        assert_eq!(f.ram_replaceable, Some(true));
        assert_eq!(f.win11, "ineligible");
        assert!(f.blocker_tpm && f.blocker_cpu && f.blocker_secure_boot);
        assert!(!f.blocker_ram && !f.blocker_uefi);
        assert_eq!(f.battery_wear, Some(45));
        assert_eq!(f.tpm.as_deref(), Some("none"));
    }

    #[test]
    fn the_verdict_is_recomputed_not_read_from_the_document() {
        let mut inv = t430();
        inv.windows11.status = Windows11Status::Eligible;
        inv.windows11.blockers.clear();
        assert_eq!(facts(&inv).win11, "ineligible");
    }

    #[test]
    fn a_bios_update_does_not_make_a_machine_younger_than_its_processor() {
        assert_eq!(
            build_year(Some(2019), Some(2012)),
            (Some(2013), Some("bios+cpu"))
        );
        assert_eq!(
            build_year(Some(2012), Some(2012)),
            (Some(2012), Some("bios+cpu"))
        );
        // A BIOS older than the processor's launch is a wrong date.
        assert_eq!(
            build_year(Some(2009), Some(2012)),
            (Some(2012), Some("bios+cpu"))
        );
        assert_eq!(build_year(None, None), (None, None));
    }

    #[test]
    fn an_unreadable_document_gives_unknowns() {
        let f = from_document("{\"schema\": 1, \"hostname\": \"x\"}");
        assert!(!f.readable);
        assert_eq!(f.win11, "unknown");
        assert_eq!(f.class, "other");
        assert_eq!(f.build_year, None);
    }
}
