//! Facts only the raw SMBIOS table holds (the kernel's `/sys/class/dmi/id`
//! does not): memory modules (type 17) and whether the firmware can boot
//! UEFI (type 0, BIOS characteristics extension byte 2). Parsed with the
//! `smbios-lib` crate from `/sys/firmware/dmi/tables/DMI`, readable by root
//! only.

use nird_proto::inventory::MemoryModule;
use smbioslib::{
    MemoryDeviceType, MemoryFormFactor, MemorySize, MemorySizeExtended, MemorySpeed,
    MemorySpeedExtended, SMBiosData, SMBiosInformation, SMBiosMemoryDevice, SMBiosVersion,
};

use super::source::{Reason, Source, is_placeholder};

/// What the SMBIOS table says.
#[derive(Debug, Clone, PartialEq)]
pub struct SmbiosFacts {
    /// Installed memory modules (empty slots left out).
    pub modules: Vec<MemoryModule>,
    /// Memory device entries (type 17), filled or empty.
    pub slots: u32,
    /// BIOS characteristics: UEFI supported; `None` when the table predates
    /// the flag (SMBIOS < 2.7) or has no type 0.
    pub uefi_capable: Option<bool>,
}

/// Reads and parses the SMBIOS table under `source`.
pub fn read(source: &Source) -> Result<SmbiosFacts, Reason> {
    let table = source.read_bytes("/sys/firmware/dmi/tables/DMI")?;
    let version = source
        .read_bytes("/sys/firmware/dmi/tables/smbios_entry_point")
        .ok()
        .and_then(|ep| entry_point_version(&ep));
    Ok(parse(table, version))
}

/// SMBIOS version from an entry point structure ("_SM3_" 64-bit or "_SM_"
/// 32-bit).
fn entry_point_version(ep: &[u8]) -> Option<SMBiosVersion> {
    if ep.starts_with(b"_SM3_") && ep.len() >= 10 {
        Some(SMBiosVersion::new(ep[7], ep[8], ep[9]))
    } else if ep.starts_with(b"_SM_") && ep.len() >= 8 {
        Some(SMBiosVersion::new(ep[6], ep[7], 0))
    } else {
        None
    }
}

/// Parses raw table bytes.
pub fn parse(table: Vec<u8>, version: Option<SMBiosVersion>) -> SmbiosFacts {
    // The "UEFI supported" bit exists since SMBIOS 2.7; in older tables a
    // clear bit says nothing.
    let has_uefi_bit = version.is_none_or(|v| (v.major, v.minor) >= (2, 7));
    let data = SMBiosData::from_vec_and_version(table, version);
    let mut slots = 0u32;
    let modules = data
        .defined_struct_iter::<SMBiosMemoryDevice<'_>>()
        .inspect(|_| slots = slots.saturating_add(1))
        .filter_map(|dev| module(&dev))
        .collect();
    let uefi_capable = data
        .defined_struct_iter::<SMBiosInformation<'_>>()
        .next()
        .and_then(|bios| bios.characteristics_extension1())
        .map(|ext| ext.uefi_specification_is_supported())
        .filter(|supported| *supported || has_uefi_bit);
    SmbiosFacts {
        modules,
        slots,
        uefi_capable,
    }
}

fn module(dev: &SMBiosMemoryDevice<'_>) -> Option<MemoryModule> {
    let size_bytes = match dev.size()? {
        MemorySize::NotInstalled | MemorySize::Unknown => return None,
        MemorySize::Kilobytes(kb) => u64::from(kb) * 1024,
        MemorySize::Megabytes(mb) => u64::from(mb) * 1024 * 1024,
        MemorySize::SeeExtendedSize => match dev.extended_size()? {
            MemorySizeExtended::Megabytes(mb) => u64::from(mb) * 1024 * 1024,
            MemorySizeExtended::SeeSize => return None,
        },
    };
    if size_bytes == 0 {
        return None;
    }
    let kind = dev.memory_type().and_then(|t| match t.value {
        MemoryDeviceType::Other | MemoryDeviceType::Unknown | MemoryDeviceType::None => None,
        other => Some(format!("{other:?}").to_ascii_uppercase()),
    });
    let speed_mts = match dev.speed() {
        Some(MemorySpeed::MTs(s)) => Some(u32::from(s)),
        Some(MemorySpeed::SeeExtendedSpeed) => match dev.extended_speed() {
            Some(MemorySpeedExtended::MTs(s)) => Some(s),
            _ => None,
        },
        _ => None,
    };
    let text = |s: smbioslib::SMBiosString| {
        s.to_utf8_lossy()
            .map(|v| v.trim().to_string())
            .filter(|v| !is_placeholder(v))
    };
    Some(MemoryModule {
        locator: text(dev.device_locator()).unwrap_or_default(),
        size_bytes,
        kind,
        speed_mts,
        manufacturer: text(dev.manufacturer()),
        part_number: text(dev.part_number()),
        form_factor: dev.form_factor().and_then(|f| form_factor(f.value)),
    })
}

/// SMBIOS form factor names as the inventory writes them.
fn form_factor(f: MemoryFormFactor) -> Option<String> {
    let name = match f {
        MemoryFormFactor::Dimm => "DIMM",
        MemoryFormFactor::Sodimm => "SODIMM",
        MemoryFormFactor::Simm => "SIMM",
        MemoryFormFactor::Rimm => "RIMM",
        MemoryFormFactor::Srimm => "SRIMM",
        MemoryFormFactor::Fbdimm => "FB_DIMM",
        MemoryFormFactor::Camm => "CAMM",
        MemoryFormFactor::Cudimm => "CUDIMM",
        MemoryFormFactor::Csodimm => "CSODIMM",
        MemoryFormFactor::RowOfChips => "ROW_OF_CHIPS",
        MemoryFormFactor::Chip => "CHIP",
        MemoryFormFactor::Tsop => "TSOP",
        MemoryFormFactor::Die => "DIE",
        MemoryFormFactor::Sip => "SIP",
        MemoryFormFactor::Dip => "DIP",
        MemoryFormFactor::Zip => "ZIP",
        MemoryFormFactor::ProprietaryCard => "PROPRIETARY_CARD",
        MemoryFormFactor::Other | MemoryFormFactor::Unknown | MemoryFormFactor::None => {
            return None;
        }
    };
    Some(name.to_string())
}
