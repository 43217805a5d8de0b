//! Firmware: BIOS identity and date, boot mode, Secure Boot, TPM.

use nird_proto::inventory::{BootMode, Firmware, Reading, SecureBoot, Tpm, reason};

use super::smbios::SmbiosFacts;
use super::source::{Reason, Source, dmi_string};

/// EFI global variable GUID (the `SecureBoot` variable lives under it).
const EFI_GLOBAL_GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// Reads the firmware section. `smbios` is the parsed SMBIOS table (or why
/// it could not be read), for the "UEFI capable" flag.
pub fn collect(source: &Source, smbios: &Result<SmbiosFacts, Reason>) -> Firmware {
    // Absence of /sys/firmware/efi means legacy boot only when sysfs is
    // there at all (an empty root proves nothing).
    let boot_mode = if !source.exists("/sys/firmware") {
        Err(SYSFS_MISSING.to_string())
    } else if source.exists("/sys/firmware/efi") {
        Ok(BootMode::Uefi)
    } else {
        Ok(BootMode::Legacy)
    };
    let uefi_capable = match (&boot_mode, smbios) {
        (Ok(BootMode::Uefi), _) => Reading::Value(true),
        (_, Ok(facts)) => match facts.uefi_capable {
            Some(capable) => Reading::Value(capable),
            None => Reading::unavailable("SMBIOS table does not say (older than 2.7)"),
        },
        (_, Err(e)) => Reading::unavailable(e.clone()),
    };
    Firmware {
        bios_vendor: dmi_string(source, "bios_vendor").into(),
        bios_version: dmi_string(source, "bios_version").into(),
        bios_date: dmi_string(source, "bios_date").and_then(dmi_date).into(),
        secure_boot: boot_mode
            .clone()
            .and_then(|mode| secure_boot(source, mode))
            .into(),
        boot_mode: boot_mode.into(),
        uefi_capable,
        tpm: tpm(source).into(),
        windows_oem_licence: windows_oem_licence(source).into(),
    }
}

/// Whether an ACPI `MSDM` table (Windows OEM licence) is present. Only the
/// directory entry is looked at: the table itself holds the product key and
/// is never opened.
fn windows_oem_licence(source: &Source) -> Result<bool, Reason> {
    if !source.exists("/sys/firmware/acpi/tables") {
        return Err("no ACPI tables exposed by the kernel".to_string());
    }
    Ok(source.exists("/sys/firmware/acpi/tables/MSDM"))
}

const SYSFS_MISSING: &str = "sysfs is not mounted under the inventory root";

/// DMI dates are `MM/DD/YYYY` (or `MM/DD/YY` before SMBIOS 2.3, years
/// 19YY): returns `YYYY-MM-DD`.
pub fn dmi_date(raw: String) -> Result<String, Reason> {
    let bad = || format!("unrecognised BIOS date {raw:?}");
    let mut parts = raw.trim().split('/');
    let (Some(m), Some(d), Some(y), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (m, d): (u8, u8) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    let y: u16 = match y.len() {
        4 => y.parse().map_err(|_| bad())?,
        2 => 1900 + y.parse::<u16>().map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1980 {
        return Err(bad());
    }
    Ok(format!("{y:04}-{m:02}-{d:02}"))
}

fn secure_boot(source: &Source, boot_mode: BootMode) -> Result<SecureBoot, Reason> {
    if boot_mode == BootMode::Legacy {
        return Err(reason::LEGACY_BOOT.to_string());
    }
    let vars = "/sys/firmware/efi/efivars";
    if source.list_dir(vars)?.is_empty() {
        return Err("efivarfs is not mounted".to_string());
    }
    match source.read_bytes(&format!("{vars}/SecureBoot-{EFI_GLOBAL_GUID}")) {
        // 4 bytes of attributes, then the 1-byte value.
        Ok(bytes) => match bytes.get(4) {
            Some(1) => Ok(SecureBoot::Enabled),
            Some(0) => Ok(SecureBoot::Disabled),
            _ => Err(format!("unexpected SecureBoot variable {bytes:?}")),
        },
        Err(e) if e == reason::NOT_EXPOSED => Ok(SecureBoot::Unsupported),
        Err(e) => Err(e),
    }
}

fn tpm(source: &Source) -> Result<Tpm, Reason> {
    if !source.exists("/sys/class") {
        return Err(SYSFS_MISSING.to_string());
    }
    let devices = source.list_dir("/sys/class/tpm")?;
    let Some(dev) = devices.iter().find(|d| d.starts_with("tpm")) else {
        return Ok(Tpm {
            present: false,
            version: None,
        });
    };
    let base = format!("/sys/class/tpm/{dev}");
    let version = match source.read_u64(&format!("{base}/tpm_version_major")) {
        Ok(2) => Some("2.0".to_string()),
        Ok(1) => Some("1.2".to_string()),
        _ => {
            // Kernels before 5.6 lack tpm_version_major: TPM 1.2 devices
            // expose `caps`, only TPM 2.0 gets a resource manager (tpmrm).
            let caps = source.read_text(&format!("{base}/device/caps"));
            if caps.is_ok_and(|c| c.contains("TCG version: 1.2")) {
                Some("1.2".to_string())
            } else if !source.list_dir("/sys/class/tpmrm")?.is_empty() {
                Some("2.0".to_string())
            } else {
                None
            }
        }
    };
    Ok(Tpm {
        present: true,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmi_dates() {
        assert_eq!(dmi_date("05/14/2013".into()).unwrap(), "2013-05-14");
        assert_eq!(dmi_date("12/01/99".into()).unwrap(), "1999-12-01");
        assert!(dmi_date("2013-05-14".into()).is_err());
        assert!(dmi_date("13/01/2013".into()).is_err());
    }
}
