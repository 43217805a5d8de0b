//! Would Windows 11 accept this machine? The fact a collectivité audits: how
//! many machines were kept alive that Windows would have scrapped.
//!
//! Microsoft's minimum requirements checked here: TPM 2.0, a supported CPU
//! (Intel 8th generation / AMD Zen+ or later), 4 GB RAM, 64 GB storage, UEFI
//! firmware with Secure Boot capability. A requirement that cannot be judged
//! from the inventory is listed as unknown, never guessed.

use serde::{Deserialize, Serialize};

use super::{BootMode, Inventory, Reading, SecureBoot};

/// The verdict and its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows11Verdict {
    /// Overall answer.
    pub status: Windows11Status,
    /// Requirements this machine fails (non-empty iff `ineligible`).
    pub blockers: Vec<Windows11Requirement>,
    /// Requirements the inventory could not judge.
    pub unknown: Vec<Windows11Requirement>,
}

/// Overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Windows11Status {
    /// Every requirement is met.
    Eligible,
    /// At least one requirement fails: Windows 11 would refuse the machine.
    Ineligible,
    /// No requirement fails but some could not be judged.
    Unknown,
}

/// One Windows 11 minimum requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Windows11Requirement {
    /// A TPM 2.0 visible to the OS.
    Tpm2,
    /// Intel 8th generation (Coffee Lake) / AMD Zen+ or later.
    SupportedCpu,
    /// At least 4 GB of RAM.
    Ram4Gb,
    /// A disk of at least 64 GB.
    Storage64Gb,
    /// UEFI firmware.
    Uefi,
    /// Secure Boot capable firmware.
    SecureBoot,
}

/// Smallest disk Windows 11 accepts, in bytes. "64 GB" drives (eMMC
/// especially) hold a little less than 64 × 10⁹ bytes, hence the margin.
pub const MIN_DISK_BYTES: u64 = 60_000_000_000;

const GIB: u64 = 1024 * 1024 * 1024;

/// Judges `inv` (its `windows11` field is ignored).
pub fn verdict(inv: &Inventory) -> Windows11Verdict {
    use Windows11Requirement as R;
    let mut blockers = Vec::new();
    let mut unknown = Vec::new();
    let mut judge = |req: R, ok: Option<bool>| match ok {
        Some(true) => {}
        Some(false) => blockers.push(req),
        None => unknown.push(req),
    };

    judge(R::Tpm2, tpm2_ok(&inv.firmware.tpm));
    let cpu = &inv.cpu;
    judge(
        R::SupportedCpu,
        cpu_supported(
            cpu.vendor.value().map(String::as_str),
            cpu.family.value().copied(),
            cpu.model.value().copied(),
            cpu.stepping.value().copied(),
            cpu.model_name.value().map(String::as_str),
        ),
    );
    judge(R::Ram4Gb, ram_ok(inv));
    judge(R::Storage64Gb, storage_ok(inv));
    let uefi = uefi_ok(inv);
    judge(R::Uefi, uefi);
    judge(R::SecureBoot, secure_boot_ok(inv, uefi));

    let status = if !blockers.is_empty() {
        Windows11Status::Ineligible
    } else if !unknown.is_empty() {
        Windows11Status::Unknown
    } else {
        Windows11Status::Eligible
    };
    Windows11Verdict {
        status,
        blockers,
        unknown,
    }
}

fn tpm2_ok(tpm: &Reading<super::Tpm>) -> Option<bool> {
    let tpm = tpm.value()?;
    if !tpm.present {
        return Some(false);
    }
    match tpm.version.as_deref()? {
        "2.0" => Some(true),
        _ => Some(false),
    }
}

fn ram_ok(inv: &Inventory) -> Option<bool> {
    // Installed modules are the truth; MemTotal is lower than installed RAM
    // (firmware and integrated graphics reserve some), so it only decides
    // clear cases.
    if let Some(modules) = inv.memory.modules.value()
        && !modules.is_empty()
    {
        let installed: u64 = modules.iter().map(|m| m.size_bytes).sum();
        return Some(installed >= 4 * GIB);
    }
    let total = *inv.memory.total_bytes.value()?;
    if total >= 13 * GIB / 4 {
        Some(true)
    } else if total < 3 * GIB {
        Some(false)
    } else {
        None
    }
}

fn storage_ok(inv: &Inventory) -> Option<bool> {
    let disks = inv.storage.disks.value()?;
    let largest = disks
        .iter()
        .filter(|d| !d.removable)
        .map(|d| d.size_bytes)
        .max()?;
    Some(largest >= MIN_DISK_BYTES)
}

fn uefi_ok(inv: &Inventory) -> Option<bool> {
    let fw = &inv.firmware;
    match fw.boot_mode.value() {
        Some(BootMode::Uefi) => Some(true),
        // Booted legacy: the firmware may still offer UEFI (CSM enabled).
        _ => fw.uefi_capable.value().copied(),
    }
}

fn secure_boot_ok(inv: &Inventory, uefi: Option<bool>) -> Option<bool> {
    match inv.firmware.secure_boot.value() {
        Some(SecureBoot::Enabled | SecureBoot::Disabled) => Some(true),
        Some(SecureBoot::Unsupported) => Some(false),
        // No UEFI at all means no Secure Boot either.
        None if uefi == Some(false) => Some(false),
        None => None,
    }
}

/// Is this CPU on Microsoft's supported list? A heuristic on CPUID family /
/// model and the model name: Intel Core from the 8th generation on, Intel
/// Atom / Pentium Silver from Gemini Lake on, AMD from Zen+ on. `None` when
/// the CPU is unknown to the heuristic.
pub fn cpu_supported(
    vendor: Option<&str>,
    family: Option<u32>,
    model: Option<u32>,
    stepping: Option<u32>,
    model_name: Option<&str>,
) -> Option<bool> {
    match vendor? {
        "GenuineIntel" => {
            if let Some(generation) = model_name.and_then(intel_core_generation) {
                return Some(generation >= 8);
            }
            intel_by_model(family?, model?, stepping)
        }
        "AuthenticAMD" | "HygonGenuine" => amd_by_family(family?, model?),
        _ => None,
    }
}

/// Generation of an Intel Core i3/i5/i7/i9 from its model name ("i5-3320M"
/// → 3, "i7-10510U" → 10, "i5-1135G7" → 11); Core Ultra and the 2023 "Core 5 120U" naming count
/// as generation 14.
fn intel_core_generation(name: &str) -> Option<u32> {
    if name.contains("Core(TM) Ultra") || name.contains("Core Ultra") {
        return Some(14);
    }
    for prefix in ["i3-", "i5-", "i7-", "i9-"] {
        if let Some(pos) = name.find(prefix) {
            let digits: String = name[pos + 3..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            return match digits.len() {
                // Ice Lake and later mobile parts: i5-1035G1, i5-1135G7,
                // i5-1235U (generations 10 to 13 on four digits).
                4 if digits.starts_with('1') => digits[..2].parse().ok(),
                4 => digits[..1].parse().ok(),
                5 => digits[..2].parse().ok(),
                // Very first Core i (i5-520M, 2010): first generation.
                3 => Some(1),
                _ => None,
            };
        }
    }
    None
}

/// Intel by CPUID family 6 model (and stepping where Kaby and Coffee Lake
/// share a model number).
fn intel_by_model(family: u32, model: u32, stepping: Option<u32>) -> Option<bool> {
    if family == 15 {
        // Pentium 4 / NetBurst.
        return Some(false);
    }
    if family != 6 {
        return None;
    }
    match model {
        // Core 2, Nehalem, Westmere, Sandy / Ivy Bridge, Haswell, Broadwell,
        // Skylake, old Atoms (Bonnell to Apollo Lake).
        0x0f | 0x17 | 0x1d | 0x1a | 0x1e | 0x1f | 0x2e | 0x25 | 0x2c | 0x2f | 0x2a | 0x2d
        | 0x3a | 0x3e | 0x3c | 0x3f | 0x45 | 0x46 | 0x3d | 0x47 | 0x4f | 0x56 | 0x4e | 0x5e
        | 0x55 | 0x1c | 0x26 | 0x27 | 0x35 | 0x36 | 0x37 | 0x4a | 0x4c | 0x4d | 0x5a | 0x5c
        | 0x5f => Some(false),
        // Kaby Lake (stepping ≤ 9) and Coffee / Whiskey / Amber Lake (≥ 10).
        0x8e | 0x9e => stepping.map(|s| s >= 10),
        // Cannon, Ice, Comet, Tiger, Rocket, Alder, Raptor, Meteor, Arrow,
        // Lunar Lake; Gemini, Jasper, Elkhart Lake and Alder Lake-N Atoms.
        0x66 | 0x6a | 0x6c | 0x7d | 0x7e | 0xa5 | 0xa6 | 0x8c | 0x8d | 0xa7 | 0x97 | 0x9a
        | 0xb7 | 0xba | 0xbf | 0xaa | 0xac | 0xc5 | 0xc6 | 0xbd | 0x7a | 0x9c | 0x96 | 0xbe
        | 0x8f | 0xcf => Some(true),
        _ => None,
    }
}

/// AMD by CPUID family / model: family 0x17 models 0x00-0x07 and 0x10-0x17
/// are first-generation Zen; everything in 0x17 after that is Zen+ / Zen 2;
/// 0x19 and later are Zen 3+; before 0x17 (Bulldozer, Jaguar, K10) is too old.
fn amd_by_family(family: u32, model: u32) -> Option<bool> {
    match family {
        0..=0x16 => Some(false),
        0x17 => Some(!matches!(model, 0x00..=0x07 | 0x10..=0x17)),
        _ => Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intel(name: &str, model: u32, stepping: u32) -> Option<bool> {
        cpu_supported(
            Some("GenuineIntel"),
            Some(6),
            Some(model),
            Some(stepping),
            Some(name),
        )
    }

    #[test]
    fn intel_generations() {
        assert_eq!(
            intel("Intel(R) Core(TM) i5-3320M CPU @ 2.60GHz", 0x3a, 9),
            Some(false)
        );
        assert_eq!(
            intel("Intel(R) Core(TM) i7-7500U CPU @ 2.70GHz", 0x8e, 9),
            Some(false)
        );
        assert_eq!(
            intel("Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz", 0x8e, 10),
            Some(true)
        );
        assert_eq!(
            intel("11th Gen Intel(R) Core(TM) i5-1135G7 @ 2.40GHz", 0x8c, 1),
            Some(true)
        );
        assert_eq!(
            intel("Intel(R) Core(TM) i5 CPU M 520 @ 2.40GHz", 0x25, 5),
            Some(false)
        );
        assert_eq!(intel("Intel(R) Core(TM) Ultra 5 125U", 0xaa, 4), Some(true));
        // No generation in the name: decided by model number.
        assert_eq!(
            intel("Intel(R) Celeron(R) CPU N3350 @ 1.10GHz", 0x5c, 9),
            Some(false)
        );
        assert_eq!(
            intel("Intel(R) Pentium(R) Silver N5000 CPU @ 1.10GHz", 0x7a, 1),
            Some(true)
        );
        assert_eq!(
            intel("Intel(R) Pentium(R) CPU G4560 @ 3.50GHz", 0x9e, 9),
            Some(false)
        );
        assert_eq!(
            intel("Intel(R) Xeon(R) CPU E3-1230 v3 @ 3.30GHz", 0x3c, 3),
            Some(false)
        );
        assert_eq!(intel("Some future Intel", 0xff, 0), None);
    }

    #[test]
    fn amd_generations() {
        let amd = |family, model| {
            cpu_supported(
                Some("AuthenticAMD"),
                Some(family),
                Some(model),
                Some(0),
                None,
            )
        };
        assert_eq!(amd(0x15, 0x30), Some(false)); // A8-7600, Bulldozer family
        assert_eq!(amd(0x17, 0x01), Some(false)); // Ryzen 7 1700, Zen
        assert_eq!(amd(0x17, 0x11), Some(false)); // Ryzen 5 2500U, Zen APU
        assert_eq!(amd(0x17, 0x08), Some(true)); // Ryzen 5 2600, Zen+
        assert_eq!(amd(0x17, 0x60), Some(true)); // Ryzen 5 4500U, Zen 2
        assert_eq!(amd(0x19, 0x11), Some(true)); // EPYC Zen 4
        assert_eq!(cpu_supported(None, Some(6), Some(0x3a), None, None), None);
    }
}
