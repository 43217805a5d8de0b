//! The processor (`/proc/cpuinfo`, cpufreq) and RAM (`/proc/meminfo`,
//! SMBIOS modules).

use std::collections::BTreeSet;

use nird_proto::inventory::{Cpu, Memory, Reading};

use super::smbios::SmbiosFacts;
use super::source::{Reason, Source};

/// Reads the CPU section.
pub fn collect(source: &Source) -> Cpu {
    let cpuinfo = match source.read_text("/proc/cpuinfo") {
        Ok(text) => text,
        Err(e) => return unavailable_cpu(&e),
    };
    let info = parse_cpuinfo(&cpuinfo);
    let field = |key: &str| -> Reading<String> {
        info.first
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| Reading::Value(v.clone()))
            .unwrap_or_else(|| Reading::unavailable(format!("no {key:?} in /proc/cpuinfo")))
    };
    let number = |key: &str| -> Reading<u32> {
        field(key).and_then(|v| v.parse().map_err(|_| format!("{key}: not a number: {v:?}")))
    };
    let virtualized = info
        .first
        .iter()
        .any(|(k, v)| k == "flags" && v.split_whitespace().any(|f| f == "hypervisor"));
    Cpu {
        vendor: field("vendor_id"),
        model_name: field("model name"),
        family: number("cpu family"),
        model: number("model"),
        stepping: number("stepping"),
        cores: info.cores(),
        threads: Reading::Value(info.processors),
        max_frequency_mhz: max_frequency_mhz(source).into(),
        virtualized,
    }
}

fn unavailable_cpu(reason: &str) -> Cpu {
    Cpu {
        vendor: Reading::unavailable(reason),
        model_name: Reading::unavailable(reason),
        family: Reading::unavailable(reason),
        model: Reading::unavailable(reason),
        stepping: Reading::unavailable(reason),
        cores: Reading::unavailable(reason),
        threads: Reading::unavailable(reason),
        max_frequency_mhz: Reading::unavailable(reason),
        virtualized: false,
    }
}

/// What `/proc/cpuinfo` says, reduced to what we use.
struct CpuInfo {
    /// Key / value pairs of the first processor block.
    first: Vec<(String, String)>,
    /// Number of processor blocks (logical CPUs).
    processors: u32,
    /// Distinct (physical id, core id) pairs.
    core_ids: BTreeSet<(String, String)>,
    /// "cpu cores" per package and distinct physical ids, the fallback when
    /// core ids are missing.
    cores_per_package: Option<u32>,
    packages: BTreeSet<String>,
}

impl CpuInfo {
    fn cores(&self) -> Reading<u32> {
        if !self.core_ids.is_empty() {
            return u32::try_from(self.core_ids.len())
                .map_err(|_| "/proc/cpuinfo lists too many cores".to_string())
                .into();
        }
        let Some(n) = self.cores_per_package else {
            return Reading::unavailable("/proc/cpuinfo has no core topology");
        };
        u32::try_from(self.packages.len().max(1))
            .ok()
            .and_then(|packages| n.checked_mul(packages))
            .ok_or_else(|| format!("cpu cores out of range: {n}"))
            .into()
    }
}

fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo {
        first: Vec::new(),
        processors: 0,
        core_ids: BTreeSet::new(),
        cores_per_package: None,
        packages: BTreeSet::new(),
    };
    for block in text.split("\n\n").filter(|b| b.contains("processor")) {
        info.processors += 1;
        let (mut physical, mut core) = (None, None);
        for line in block.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            match k {
                "physical id" => physical = Some(v.to_string()),
                "core id" => core = Some(v.to_string()),
                "cpu cores" => info.cores_per_package = v.parse().ok(),
                _ => {}
            }
            if info.processors == 1 {
                info.first.push((k.to_string(), v.to_string()));
            }
        }
        if let Some(p) = &physical {
            info.packages.insert(p.clone());
        }
        if let Some(c) = core {
            info.core_ids.insert((physical.unwrap_or_default(), c));
        }
    }
    info
}

/// Highest `cpuinfo_max_freq` over all CPUs (hybrid CPUs differ per core).
fn max_frequency_mhz(source: &Source) -> Result<u32, Reason> {
    let cpus = source.list_dir("/sys/devices/system/cpu")?;
    let max_khz = cpus
        .iter()
        .filter(|c| c.starts_with("cpu") && c[3..].bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|c| {
            source
                .read_u64(&format!(
                    "/sys/devices/system/cpu/{c}/cpufreq/cpuinfo_max_freq"
                ))
                .ok()
        })
        .max();
    match max_khz {
        Some(khz) => u32::try_from(khz / 1000)
            .map_err(|_| format!("cpuinfo_max_freq out of range: {khz} kHz")),
        None => Err("no cpufreq driver (virtual machine or driver not loaded)".to_string()),
    }
}

/// Reads the memory section.
pub fn memory(source: &Source, smbios: &Result<SmbiosFacts, Reason>) -> Memory {
    Memory {
        total_bytes: mem_total(source).into(),
        modules: match smbios {
            Ok(facts) => Reading::Value(facts.modules.clone()),
            Err(e) => Reading::unavailable(e.clone()),
        },
        slots: match smbios {
            Ok(facts) if facts.slots > 0 => Reading::Value(facts.slots),
            Ok(_) => Reading::unavailable("SMBIOS table lists no memory device"),
            Err(e) => Reading::unavailable(e.clone()),
        },
    }
}

fn mem_total(source: &Source) -> Result<u64, Reason> {
    let meminfo = source.read_text("/proc/meminfo")?;
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .ok_or("no MemTotal in /proc/meminfo")?;
    let kib: u64 = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|_| format!("unparsable MemTotal {line:?}"))?;
    kib.checked_mul(1024)
        .ok_or_else(|| format!("MemTotal out of range: {line:?}"))
}
