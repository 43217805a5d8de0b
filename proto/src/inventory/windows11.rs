//! Would Windows 11 accept this machine? The fact a collectivité audits: how
//! many machines were kept alive that Windows would have scrapped.
//!
//! Microsoft's minimum requirements checked here: TPM 2.0, a supported CPU,
//! 4 GB RAM, 64 GB storage, UEFI firmware with Secure Boot capability. A
//! requirement that cannot be judged from the inventory is listed as
//! unknown, never guessed.
//!
//! The CPU is judged first by its model name against an embedded copy of
//! Microsoft's lists of supported Intel, AMD and Qualcomm processors
//! (`proto/data/windows11-cpus.tsv`: the union of the lists for Windows 11
//! 21H2 to 25H2, with its source and retrieval date in its header;
//! `scripts/refresh-windows11-cpus` regenerates it). Names are compared as
//! exact model tokens after normalisation ([`normalize_cpu_name`]: trademark
//! signs, vendor words, "CPU @ 2.90GHz", "with Radeon Graphics", AMD's
//! "Six-Core Processor", "11th Gen" go; "i7-7820HQ" must equal "i7-7820HQ",
//! never a prefix). Microsoft lists only supported processors, so a listed
//! name settles the requirement; a name the list lacks (older parts, parts
//! newer than the copy, names the list spells differently) falls back to
//! the family / model rule of [`cpu_supported`], and
//! [`Windows11Verdict::cpu_basis`] says which one decided. The Ryzen 5 1600
//! "AF" is a case in point: it reports the same name as the original 1600
//! ("AMD Ryzen 5 1600 Six-Core Processor"), which Microsoft does not list,
//! but runs on Zen+ silicon (family 23 model 8), so the fallback rule judges
//! it supported, marked as an estimate.

use std::collections::HashMap;
use std::sync::LazyLock;

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
    /// What decided the CPU requirement. Absent from documents written
    /// before it existed: [`CpuBasis::Unknown`].
    #[serde(default)]
    pub cpu_basis: CpuBasis,
}

/// Which source decided the [`Windows11Requirement::SupportedCpu`] answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum CpuBasis {
    /// The model name is on Microsoft's list of supported processors.
    MicrosoftList {
        /// When the embedded copy was read from Microsoft's pages,
        /// `YYYY-MM-DD`.
        retrieved: String,
    },
    /// The name is not on the list: the family / model rule decided.
    Estimate,
    /// Neither could judge (or the document predates this field).
    #[default]
    Unknown,
}

impl CpuBasis {
    /// French wording for people: « d'après la liste Microsoft du
    /// 06/10/2025 », « estimation », « source inconnue ».
    pub fn label_fr(&self) -> String {
        match self {
            CpuBasis::MicrosoftList { retrieved } => {
                format!("d'après la liste Microsoft du {}", date_fr(retrieved))
            }
            CpuBasis::Estimate => "estimation".to_string(),
            CpuBasis::Unknown => "source inconnue".to_string(),
        }
    }
}

/// "2025-10-06" → "06/10/2025"; anything else is returned as is.
fn date_fr(iso: &str) -> String {
    let parts: Vec<&str> = iso.split('-').collect();
    match parts.as_slice() {
        [y, m, d]
            if y.len() == 4
                && m.len() == 2
                && d.len() == 2
                && iso.bytes().all(|b| b.is_ascii_digit() || b == b'-') =>
        {
            format!("{d}/{m}/{y}")
        }
        _ => iso.to_string(),
    }
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
    let (cpu_ok, cpu_basis) = cpu_requirement(
        cpu.vendor.value().map(String::as_str),
        cpu.family.value().copied(),
        cpu.model.value().copied(),
        cpu.stepping.value().copied(),
        cpu.model_name.value().map(String::as_str),
    );
    judge(R::SupportedCpu, cpu_ok);
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
        cpu_basis,
    }
}

/// The CPU requirement and what decided it: Microsoft's list when the model
/// name is on it, else the family / model rule ([`cpu_supported`]).
pub fn cpu_requirement(
    vendor: Option<&str>,
    family: Option<u32>,
    model: Option<u32>,
    stepping: Option<u32>,
    model_name: Option<&str>,
) -> (Option<bool>, CpuBasis) {
    let list = microsoft_cpu_list();
    if let Some(name) = model_name
        && list.contains(vendor, name)
    {
        return (
            Some(true),
            CpuBasis::MicrosoftList {
                retrieved: list.retrieved().to_string(),
            },
        );
    }
    match cpu_supported(vendor, family, model, stepping, model_name) {
        Some(ok) => (Some(ok), CpuBasis::Estimate),
        None => (None, CpuBasis::Unknown),
    }
}

/// The embedded data file (see the module docs).
const CPU_LIST_TSV: &str = include_str!("../../data/windows11-cpus.tsv");

static CPU_LIST: LazyLock<CpuList> = LazyLock::new(|| {
    // The file is compiled in and checked by the tests below; should it
    // ever fail to parse, every CPU falls back to the estimate.
    CpuList::parse(CPU_LIST_TSV).unwrap_or_default()
});

/// Microsoft's lists as embedded in this build, parsed at first use.
pub fn microsoft_cpu_list() -> &'static CpuList {
    &CPU_LIST
}

/// Whose list a processor is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuListVendor {
    /// Intel.
    Intel,
    /// AMD.
    Amd,
    /// Qualcomm (and Microsoft's SQ parts).
    Qualcomm,
}

/// A parsed copy of Microsoft's lists: normalised names → vendor.
#[derive(Debug, Clone, Default)]
pub struct CpuList {
    retrieved: String,
    windows: String,
    entries: HashMap<String, CpuListVendor>,
}

/// A malformed CPU list file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuListError {
    /// A data line is not `vendor<TAB>name`, or names an unknown vendor.
    #[error("line {line}: expected \"intel|amd|qualcomm<TAB>name\", got {text:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
    /// No `#@ retrieved<TAB>YYYY-MM-DD` metadata line.
    #[error("missing or malformed \"#@ retrieved\" date (YYYY-MM-DD)")]
    NoDate,
    /// No processor at all.
    #[error("no processor listed")]
    Empty,
}

impl CpuList {
    /// Parses the data file format described in its header.
    pub fn parse(text: &str) -> Result<CpuList, CpuListError> {
        let mut list = CpuList::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if let Some(meta) = line.strip_prefix("#@") {
                let (key, value) = meta.trim_start().split_once('\t').unwrap_or((meta, ""));
                match key.trim() {
                    "retrieved" => list.retrieved = value.trim().to_string(),
                    "windows" => list.windows = value.trim().to_string(),
                    _ => {}
                }
                continue;
            }
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || CpuListError::BadLine {
                line: i + 1,
                text: line.chars().take(80).collect(),
            };
            let (vendor, name) = line.split_once('\t').ok_or_else(bad)?;
            let vendor = match vendor {
                "intel" => CpuListVendor::Intel,
                "amd" => CpuListVendor::Amd,
                "qualcomm" => CpuListVendor::Qualcomm,
                _ => return Err(bad()),
            };
            let key = normalize_cpu_name(name);
            if key.is_empty() {
                return Err(bad());
            }
            list.entries.insert(key, vendor);
        }
        let d = list.retrieved.as_bytes();
        let date_ok = d.len() == 10
            && d.iter().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    *b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !date_ok {
            return Err(CpuListError::NoDate);
        }
        if list.entries.is_empty() {
            return Err(CpuListError::Empty);
        }
        Ok(list)
    }

    /// When the copy was read from Microsoft's pages, `YYYY-MM-DD`.
    pub fn retrieved(&self) -> &str {
        &self.retrieved
    }

    /// Which Windows 11 versions' lists the copy unites ("21H2 22H2 …").
    pub fn windows_versions(&self) -> &str {
        &self.windows
    }

    /// Number of distinct processors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Is the processor called `model_name` (as `/proc/cpuinfo` or Windows
    /// writes it) on the list? `vendor` is the CPUID vendor string when
    /// known: an Intel name is only looked up among Intel's entries, an AMD
    /// one among AMD's.
    pub fn contains(&self, vendor: Option<&str>, model_name: &str) -> bool {
        let key = normalize_cpu_name(model_name);
        match self.entries.get(&key) {
            None => false,
            Some(listed) => match vendor {
                Some("GenuineIntel") => *listed == CpuListVendor::Intel,
                Some("AuthenticAMD") => *listed == CpuListVendor::Amd,
                _ => true,
            },
        }
    }
}

/// The comparison key of a processor name, for Microsoft's spelling
/// ("Core(TM) i7-7820HQ", "Ryzen 5 2600", "Pentium(R) Gold 4417U") and the
/// CPU's own brand string ("Intel(R) Core(TM) i7-7820HQ CPU @ 2.90GHz",
/// "AMD Ryzen 5 2600 Six-Core Processor", "Intel(R) Pentium(R) CPU 4417U @
/// 2.30GHz") alike: lower case; "®", "™", "(R)", "(TM)" removed; cut at "@"
/// (the frequency) and at "with Radeon …" / "w/ Radeon …"; hyphens as
/// spaces; the words intel, amd, qualcomm, cpu, processor and apu dropped,
/// as are a core count ("Six-Core", "32-Cores"), a generation prefix
/// ("11th Gen"), "Gold" / "Silver" after "Pentium" (Intel renamed the
/// Pentiums; the processor number is the identity) and "… Series" in AMD's
/// embedded names. Suffix letters stay: "8250u" is not "8250".
pub fn normalize_cpu_name(name: &str) -> String {
    let mut s = name.to_lowercase();
    for sign in ["®", "™", "(r)", "(tm)"] {
        s = s.replace(sign, " ");
    }
    if let Some(at) = s.find('@') {
        s.truncate(at);
    }
    let s = s.replace('-', " ");
    let mut out: Vec<&str> = Vec::new();
    for word in s.split_whitespace() {
        match word {
            "radeon" if matches!(out.last(), Some(&"with" | &"w/")) => {
                out.pop();
                break;
            }
            "intel" | "amd" | "qualcomm" | "cpu" | "processor" | "apu" => {}
            "core" | "cores" if out.last().is_some_and(|w| is_core_count(w)) => {
                out.pop();
            }
            "gen" if out.last().is_some_and(|w| is_ordinal(w)) => {
                out.pop();
            }
            "gold" | "silver" if out.last() == Some(&"pentium") => {}
            "series" => {
                out.pop();
            }
            _ => out.push(word),
        }
    }
    out.join(" ")
}

/// "6", "32", "six", "dual", "quad"… before "core(s)".
fn is_core_count(word: &str) -> bool {
    word.bytes().all(|b| b.is_ascii_digit())
        || matches!(
            word,
            "dual" | "triple" | "quad" | "six" | "eight" | "twelve" | "sixteen"
        )
}

/// "8th", "11th", "1st", "2nd", "3rd".
fn is_ordinal(word: &str) -> bool {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && matches!(&word[digits..], "st" | "nd" | "rd" | "th")
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

/// The fallback rule, for names Microsoft's list lacks: a heuristic on CPUID
/// family / model and the model name: Intel Core from the 8th generation on,
/// Intel Atom / Pentium Silver from Gemini Lake on, AMD from Zen+ on. `None`
/// when the CPU is unknown to the heuristic. It disagrees with the list on
/// some listed parts (the i7-7820HQ, the m3-8100Y, Xeon Scalable and
/// Core-X parts sharing a model number with unlisted ones): see
/// BENCHMARKS.md for its agreement on real processors.
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
    fn embedded_list_parses_with_its_date() {
        let list = CpuList::parse(CPU_LIST_TSV).unwrap();
        assert!(list.len() > 1000, "{} processors", list.len());
        assert_eq!(list.retrieved(), "2025-10-06");
        assert!(list.windows_versions().contains("24H2"));
        assert_eq!(microsoft_cpu_list().len(), list.len());
    }

    #[test]
    fn list_file_errors_are_reported() {
        let date = "#@ retrieved\t2025-10-06\n";
        assert_eq!(
            CpuList::parse("intel\tCore(TM) i5-8250U\n").unwrap_err(),
            CpuListError::NoDate
        );
        assert_eq!(
            CpuList::parse("#@ retrieved\t06/10/2025\nintel\tX\n").unwrap_err(),
            CpuListError::NoDate
        );
        assert_eq!(CpuList::parse(date).unwrap_err(), CpuListError::Empty);
        assert!(matches!(
            CpuList::parse(&format!("{date}via\tC7\n")),
            Err(CpuListError::BadLine { line: 2, .. })
        ));
        assert!(matches!(
            CpuList::parse(&format!("{date}# comment\n\nintel Core i5\n")),
            Err(CpuListError::BadLine { line: 4, .. })
        ));
        let list = CpuList::parse(&format!("{date}intel\tCore(TM) i5-8250U\r\n")).unwrap();
        assert!(list.contains(
            Some("GenuineIntel"),
            "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz"
        ));
    }

    #[test]
    fn names_normalise_to_exact_model_tokens() {
        let n = normalize_cpu_name;
        assert_eq!(
            n("Intel(R) Core(TM) i7-7820HQ CPU @ 2.90GHz"),
            "core i7 7820hq"
        );
        assert_eq!(n("Core(TM) i7-7820HQ"), "core i7 7820hq");
        assert_eq!(n("AMD Ryzen 5 1600 Six-Core Processor"), "ryzen 5 1600");
        assert_eq!(
            n("AMD Ryzen 5 3500U with Radeon Vega Mobile Gfx"),
            "ryzen 5 3500u"
        );
        assert_eq!(
            n("AMD Ryzen Threadripper PRO 3975WX 32-Cores"),
            "ryzen threadripper pro 3975wx"
        );
        assert_eq!(n("AMD EPYC 7302P 16-Core Processor"), "epyc 7302p");
        assert_eq!(
            n("Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"),
            "xeon gold 6130"
        );
        assert_eq!(
            n("11th Gen Intel(R) Core(TM) i5-1135G7 @ 2.40GHz"),
            "core i5 1135g7"
        );
        assert_eq!(
            n("Intel(R) Pentium(R) CPU 4417U @ 2.30GHz"),
            n("Pentium(R) Gold 4417U")
        );
        assert_eq!(
            n("Intel(R) Pentium(R) Silver N5000 CPU @ 1.10GHz"),
            "pentium n5000"
        );
        assert_eq!(
            n("Intel(R) Core(TM) Ultra 5 125U"),
            n("Core(TM) Ultra 5-125U")
        );
        assert_eq!(n("Intel(R) N100"), n("Processor N100"));
        assert_eq!(
            n("Ryzen Embedded R2000 Series R2312"),
            "ryzen embedded r2312"
        );
        assert_eq!(n("Snapdragon (TM) 8cx Gen 3"), "snapdragon 8cx gen 3");
        assert_eq!(n("Intel® Core™ i5-8250U"), "core i5 8250u");
        // Suffixes are part of the model: never a prefix match.
        assert_ne!(n("Intel(R) Core(TM) i5-8250 CPU"), n("Core(TM) i5-8250U"));
        assert_ne!(n("Intel(R) Core(TM) i9-9900KF CPU"), n("Core(TM) i9-9900K"));
    }

    #[test]
    fn listed_names_decide_and_say_so() {
        let listed = |vendor, family, model, stepping, name| {
            cpu_requirement(
                Some(vendor),
                Some(family),
                Some(model),
                Some(stepping),
                Some(name),
            )
        };
        let ms = CpuBasis::MicrosoftList {
            retrieved: "2025-10-06".into(),
        };
        // Listed although the family / model rule says no.
        assert_eq!(
            listed(
                "GenuineIntel",
                6,
                158,
                9,
                "Intel(R) Core(TM) i7-7820HQ CPU @ 2.90GHz"
            ),
            (Some(true), ms.clone())
        );
        assert_eq!(
            listed(
                "GenuineIntel",
                6,
                142,
                9,
                "Intel(R) Core(TM) m3-8100Y CPU @ 1.10GHz"
            ),
            (Some(true), ms.clone())
        );
        assert_eq!(
            listed(
                "GenuineIntel",
                6,
                85,
                4,
                "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"
            ),
            (Some(true), ms.clone())
        );
        assert_eq!(
            listed(
                "AuthenticAMD",
                23,
                8,
                2,
                "AMD Ryzen 5 2600 Six-Core Processor"
            ),
            (Some(true), ms.clone())
        );
        // Same family / model as a listed part, name not listed: estimate.
        assert_eq!(
            listed(
                "GenuineIntel",
                6,
                158,
                9,
                "Intel(R) Core(TM) i7-7700HQ CPU @ 2.80GHz"
            ),
            (Some(false), CpuBasis::Estimate)
        );
        // Ryzen 5 1600: not on the list under either silicon; the "AF"
        // (Zen+, model 8) passes the rule, the original (Zen, model 1) not.
        assert_eq!(
            listed(
                "AuthenticAMD",
                23,
                8,
                2,
                "AMD Ryzen 5 1600 Six-Core Processor"
            ),
            (Some(true), CpuBasis::Estimate)
        );
        assert_eq!(
            listed(
                "AuthenticAMD",
                23,
                1,
                1,
                "AMD Ryzen 5 1600 Six-Core Processor"
            ),
            (Some(false), CpuBasis::Estimate)
        );
        // An Intel name under an AMD vendor id is not looked up among Intel's.
        assert_eq!(
            cpu_requirement(
                Some("AuthenticAMD"),
                None,
                None,
                None,
                Some("Core(TM) i5-8250U")
            )
            .1,
            CpuBasis::Unknown
        );
        assert_eq!(
            cpu_requirement(None, None, None, None, None),
            (None, CpuBasis::Unknown)
        );
    }

    #[test]
    fn basis_in_french_and_old_documents() {
        let ms = CpuBasis::MicrosoftList {
            retrieved: "2025-10-06".into(),
        };
        assert_eq!(ms.label_fr(), "d'après la liste Microsoft du 06/10/2025");
        assert_eq!(CpuBasis::Estimate.label_fr(), "estimation");
        assert_eq!(CpuBasis::Unknown.label_fr(), "source inconnue");
        let odd = CpuBasis::MicrosoftList {
            retrieved: "mars 2025".into(),
        };
        assert_eq!(odd.label_fr(), "d'après la liste Microsoft du mars 2025");
        let json = serde_json::to_value(&ms).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"source": "microsoft_list", "retrieved": "2025-10-06"})
        );
        let old: Windows11Verdict =
            serde_json::from_str(r#"{"status":"ineligible","blockers":["tpm2"],"unknown":[]}"#)
                .unwrap();
        assert_eq!(old.cpu_basis, CpuBasis::Unknown);
    }

    proptest::proptest! {
        #[test]
        fn any_name_is_judged_without_panic(name in "\\PC{0,80}", family: u32, model: u32) {
            let key = normalize_cpu_name(&name);
            proptest::prop_assert_eq!(normalize_cpu_name(&key), key.clone());
            for vendor in [Some("GenuineIntel"), Some("AuthenticAMD"), None] {
                let (ok, basis) =
                    cpu_requirement(vendor, Some(family), Some(model), None, Some(&name));
                if matches!(basis, CpuBasis::MicrosoftList { .. }) {
                    proptest::prop_assert_eq!(ok, Some(true));
                }
            }
        }
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
