//! Which machine this is: machine-id, hostname, DMI system identity, chassis.

use nird_proto::inventory::{Chassis, ChassisKind, Identity, Reading};

use super::source::{Source, dmi_string};

/// Reads the identity section.
pub fn collect(source: &Source) -> Identity {
    Identity {
        machine_id: machine_id(source).into(),
        hostname: source.read_attr("/proc/sys/kernel/hostname").into(),
        vendor: dmi_string(source, "sys_vendor").into(),
        product: dmi_string(source, "product_name").into(),
        product_family: product_family(source).into(),
        serial: dmi_string(source, "product_serial").into(),
        uuid: dmi_string(source, "product_uuid")
            .map(|u| u.to_ascii_lowercase())
            .into(),
        chassis: chassis(source),
    }
}

/// `/etc/machine-id`: 32 lowercase hex digits.
fn machine_id(source: &Source) -> Result<String, String> {
    let id = source.read_attr("/etc/machine-id")?;
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(format!("malformed machine-id {id:?}"))
    }
}

/// The human model name: `product_family` ("ThinkPad T430"), else
/// `product_version` when it reads like a name rather than "1.0"
/// (`dmi_string` already refuses placeholders).
fn product_family(source: &Source) -> Result<String, String> {
    let family = dmi_string(source, "product_family");
    if family.is_ok() {
        return family;
    }
    match dmi_string(source, "product_version") {
        Ok(v) if v.chars().any(|c| c.is_ascii_alphabetic()) => Ok(v),
        Ok(_) => family,
        Err(e) => Err(e),
    }
}

fn chassis(source: &Source) -> Reading<Chassis> {
    match source.read_u64("/sys/class/dmi/id/chassis_type") {
        Ok(code) => match u8::try_from(code) {
            Ok(code) => Reading::Value(Chassis {
                kind: ChassisKind::from_smbios_code(code),
                smbios_code: code,
            }),
            Err(_) => Reading::unavailable(format!("chassis type out of range: {code}")),
        },
        Err(e) => Reading::unavailable(e),
    }
}
