//! The inventory in the GLPI inventory format (GLPI 10+, the JSON its own
//! agent sends), so a collectivité can import our machines into the GLPI it
//! already runs. Shared: the agent prints it (`nird-agent inventory --format
//! glpi`), the server exports it. Only what we know goes out: a value we could not read is
//! left out, never filled with a guess.
//!
//! Not representable in that format: the Windows 11 verdict, SMART health,
//! battery wear as such (GLPI derives it from `capacity` / `real_capacity`).
//! Software: every dpkg package and Flatpak application (schema 2); a
//! version-1 document lists only the packages the profiles name.

use serde_json::{Map, Value, json};

use crate::inventory::{DiskKind, Inventory, NetworkKind, Reading, SecureBoot};

/// Builds the GLPI inventory document of `inv`.
pub fn to_glpi(inv: &Inventory) -> Value {
    let hostname = inv.identity.hostname.value().cloned();
    let device_id = format!(
        "{}-{}",
        hostname.as_deref().unwrap_or("nird"),
        inv.identity
            .machine_id
            .value()
            .map(String::as_str)
            .unwrap_or("unknown")
    );
    let mut content = Map::new();
    content.insert(
        "versionclient".into(),
        json!(format!("nird-agent_v{}", inv.agent_version)),
    );
    content.insert(
        "versionprovider".into(),
        json!({"name": "nird-agent", "version": inv.agent_version}),
    );
    content.insert("hardware".into(), hardware(inv));
    content.insert("bios".into(), bios(inv));
    content.insert("cpus".into(), json!([cpu(inv)]));
    if let Some(modules) = inv.memory.modules.value() {
        content.insert(
            "memories".into(),
            memories(modules, inv.memory.free_slots()),
        );
    }
    if let Some(disks) = inv.storage.disks.value() {
        content.insert("storages".into(), storages(disks));
    }
    if let Some(fss) = inv.storage.filesystems.value() {
        content.insert("drives".into(), drives(fss));
    }
    if let Some(bats) = inv.batteries.value() {
        content.insert("batteries".into(), batteries(bats));
    }
    if let Some(gpus) = inv.graphics.value() {
        content.insert("videos".into(), videos(gpus));
    }
    if let Some(nics) = inv.network.value() {
        content.insert("networks".into(), networks(nics));
    }
    if let Some(screens) = inv.monitors.value() {
        content.insert("monitors".into(), monitors(screens));
    }
    peripherals(&inv.peripherals, &mut content);
    if let Some(fw) = inv.os.firewall.value() {
        let status = if fw.enabled { "on" } else { "off" };
        content.insert("firewalls".into(), json!([{"status": status}]));
    }
    content.insert("operatingsystem".into(), operating_system(inv));
    if let Some(software) = inv.software.value() {
        content.insert("softwares".into(), softwares(software));
    } else if let Some(pkgs) = inv.os.packages.value() {
        // A version-1 document: only the packages the profiles name.
        let softwares: Vec<Value> = pkgs
            .of_interest
            .iter()
            .filter_map(|(name, version)| {
                let version = version.as_ref()?;
                Some(json!({"name": name, "version": version, "from": "deb"}))
            })
            .collect();
        content.insert("softwares".into(), Value::Array(softwares));
    }
    json!({
        "deviceid": device_id,
        "itemtype": "Computer",
        "action": "inventory",
        "content": content,
    })
}

/// Adds the GLPI `accesslog` (when the inventory was taken, `YYYY-MM-DD
/// HH:MM:SS`): not part of our document, which holds no volatile value, so
/// the caller that knows the date (the agent printing it, the server
/// exporting the stored one) adds it.
pub fn set_logdate(glpi: &mut Value, logdate: &str) {
    if let Some(content) = glpi.get_mut("content").and_then(Value::as_object_mut) {
        content.insert("accesslog".into(), json!({"logdate": logdate}));
    }
}

/// Inserts `key` when the reading has a value.
fn put<T: serde::Serialize>(map: &mut Map<String, Value>, key: &str, r: &Reading<T>) {
    if let Some(v) = r.value() {
        map.insert(key.into(), json!(v));
    }
}

fn put_opt<T: serde::Serialize>(map: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        map.insert(key.into(), json!(v));
    }
}

const MIB: u64 = 1024 * 1024;

fn hardware(inv: &Inventory) -> Value {
    let mut m = Map::new();
    put(&mut m, "name", &inv.identity.hostname);
    put(&mut m, "uuid", &inv.identity.uuid);
    put_opt(
        &mut m,
        "memory",
        inv.memory.total_bytes.value().map(|b| b / MIB),
    );
    put_opt(
        &mut m,
        "chassis_type",
        inv.identity
            .chassis
            .value()
            .and_then(|c| chassis_name(c.smbios_code)),
    );
    let vm = if inv.cpu.virtualized {
        inv.identity.vendor.value().map(|v| match v.as_str() {
            "QEMU" => "QEMU".to_string(),
            "innotek GmbH" | "Oracle Corporation" => "VirtualBox".to_string(),
            "VMware, Inc." => "VMware".to_string(),
            "Microsoft Corporation" => "Hyper-V".to_string(),
            other => other.to_string(),
        })
    } else {
        Some("Physical".to_string())
    };
    put_opt(&mut m, "vmsystem", vm);
    Value::Object(m)
}

/// DMTF chassis type names (DSP0134 7.4.1), as the GLPI agent writes them.
fn chassis_name(code: u8) -> Option<&'static str> {
    const NAMES: [&str; 37] = [
        "",
        "Other",
        "Unknown",
        "Desktop",
        "Low Profile Desktop",
        "Pizza Box",
        "Mini Tower",
        "Tower",
        "Portable",
        "Laptop",
        "Notebook",
        "Hand Held",
        "Docking Station",
        "All in One",
        "Sub Notebook",
        "Space-saving",
        "Lunch Box",
        "Main Server Chassis",
        "Expansion Chassis",
        "SubChassis",
        "Bus Expansion Chassis",
        "Peripheral Chassis",
        "RAID Chassis",
        "Rack Mount Chassis",
        "Sealed-case PC",
        "Multi-system chassis",
        "Compact PCI",
        "Advanced TCA",
        "Blade",
        "Blade Enclosure",
        "Tablet",
        "Convertible",
        "Detachable",
        "IoT Gateway",
        "Embedded PC",
        "Mini PC",
        "Stick PC",
    ];
    NAMES
        .get(usize::from(code & 0x7f))
        .copied()
        .filter(|n| !n.is_empty())
}

fn bios(inv: &Inventory) -> Value {
    let mut m = Map::new();
    let fw = &inv.firmware;
    put(&mut m, "bdate", &fw.bios_date);
    put(&mut m, "bmanufacturer", &fw.bios_vendor);
    put(&mut m, "bversion", &fw.bios_version);
    put(&mut m, "smanufacturer", &inv.identity.vendor);
    put(&mut m, "smodel", &inv.identity.product);
    put(&mut m, "ssn", &inv.identity.serial);
    put_opt(
        &mut m,
        "secure_boot",
        fw.secure_boot.value().map(|s| match s {
            SecureBoot::Enabled => "enabled",
            SecureBoot::Disabled => "disabled",
            SecureBoot::Unsupported => "unsupported",
        }),
    );
    Value::Object(m)
}

fn cpu(inv: &Inventory) -> Value {
    let c = &inv.cpu;
    let mut m = Map::new();
    put(&mut m, "name", &c.model_name);
    put_opt(
        &mut m,
        "manufacturer",
        c.vendor.value().map(|v| match v.as_str() {
            "GenuineIntel" => "Intel".to_string(),
            "AuthenticAMD" => "AMD".to_string(),
            other => other.to_string(),
        }),
    );
    put(&mut m, "core", &c.cores);
    put(&mut m, "thread", &c.threads);
    put(&mut m, "speed", &c.max_frequency_mhz);
    put_opt(&mut m, "familynumber", c.family.value().map(u32::to_string));
    put_opt(&mut m, "model", c.model.value().map(u32::to_string));
    put(&mut m, "stepping", &c.stepping);
    // The schema accepts a fixed list of architectures.
    put_opt(
        &mut m,
        "arch",
        inv.os
            .architecture
            .value()
            .filter(|a| matches!(a.as_str(), "x86_64" | "i686" | "i586" | "i386" | "aarch64")),
    );
    Value::Object(m)
}

/// Installed modules, then one entry per empty slot (capacity 0, as the
/// GLPI agent writes them) so upgrade planning sees free slots.
fn memories(modules: &[crate::inventory::MemoryModule], free_slots: Option<u32>) -> Value {
    let mut out: Vec<Value> = modules
        .iter()
        .enumerate()
        .map(|(i, module)| {
            let mut m = Map::new();
            m.insert("capacity".into(), json!(module.size_bytes / MIB));
            m.insert("caption".into(), json!(module.locator));
            m.insert("numslots".into(), json!(i + 1));
            put_opt(&mut m, "type", module.kind.as_ref());
            put_opt(&mut m, "speed", module.speed_mts.map(|s| s.to_string()));
            put_opt(&mut m, "manufacturer", module.manufacturer.as_ref());
            put_opt(&mut m, "model", module.part_number.as_ref());
            put_opt(&mut m, "formfactor", module.form_factor.as_ref());
            put_opt(&mut m, "removable", module.replaceable());
            Value::Object(m)
        })
        .collect();
    for k in 0..free_slots.unwrap_or(0) {
        let slot = modules.len() + k as usize + 1;
        out.push(json!({
            "capacity": 0,
            "caption": format!("empty slot {slot}"),
            "description": "Empty slot",
            "numslots": slot,
        }));
    }
    Value::Array(out)
}

/// Screens as the GLPI agent writes them: the model as name and caption,
/// the maker's name (or its PNP id), the manufacture date as `week/year`.
fn monitors(screens: &[crate::inventory::Monitor]) -> Value {
    screens
        .iter()
        .map(|s| {
            let mut m = Map::new();
            put_opt(&mut m, "name", s.model.as_ref());
            put_opt(&mut m, "caption", s.model.as_ref());
            m.insert(
                "manufacturer".into(),
                json!(s.manufacturer.as_ref().unwrap_or(&s.manufacturer_id)),
            );
            put_opt(&mut m, "serial", s.serial.as_ref());
            let date = match (s.week, s.year) {
                (Some(w), Some(y)) => Some(format!("{w}/{y}")),
                (None, Some(y)) => Some(y.to_string()),
                _ => None,
            };
            put_opt(&mut m, "description", date);
            m.insert("port".into(), json!(s.connector));
            Value::Object(m)
        })
        .collect()
}

/// `controllers`, `usbdevices`, `sounds`, `inputs`, `printers`: each only
/// when its reading has a value.
fn peripherals(p: &crate::inventory::Peripherals, content: &mut Map<String, Value>) {
    if let Some(pci) = p.pci.value() {
        let list = pci.iter().map(|d| {
            let mut m = Map::new();
            put_opt(&mut m, "name", d.device_name.as_ref());
            put_opt(&mut m, "caption", d.device_name.as_ref());
            put_opt(&mut m, "manufacturer", d.vendor_name.as_ref());
            m.insert("vendorid".into(), json!(d.vendor_id));
            m.insert("productid".into(), json!(d.device_id));
            put_opt(&mut m, "pcisubsystemid", d.subsystem.as_ref());
            put_opt(&mut m, "pciclass", d.class.as_ref());
            m.insert("pcislot".into(), json!(d.address));
            put_opt(&mut m, "driver", d.driver.as_ref());
            Value::Object(m)
        });
        content.insert("controllers".into(), list.collect());
    }
    if let Some(usb) = p.usb.value() {
        let list = usb.iter().map(|d| {
            let mut m = Map::new();
            put_opt(&mut m, "name", d.product_name.as_ref());
            put_opt(&mut m, "caption", d.product_name.as_ref());
            put_opt(&mut m, "manufacturer", d.vendor_name.as_ref());
            m.insert("vendorid".into(), json!(d.vendor_id));
            m.insert("productid".into(), json!(d.product_id));
            put_opt(
                &mut m,
                "class",
                d.class
                    .as_ref()
                    .and_then(|c| u8::from_str_radix(c, 16).ok())
                    .map(|c| c.to_string()),
            );
            put_opt(&mut m, "serial", d.serial.as_ref());
            Value::Object(m)
        });
        content.insert("usbdevices".into(), list.collect());
    }
    if let Some(sound) = p.sound.value() {
        let list = sound
            .iter()
            .map(|c| json!({"name": c.name, "caption": c.name, "description": c.driver}));
        content.insert("sounds".into(), list.collect());
    }
    if let Some(input) = p.input.value() {
        let list = input.iter().map(|d| {
            let kind = match d.kind {
                crate::inventory::InputKind::Keyboard => "Keyboard",
                crate::inventory::InputKind::Pointing => "Pointing",
            };
            json!({"name": d.name, "caption": d.name, "description": d.name,
                   "type": kind, "interface": d.bus.to_uppercase()})
        });
        content.insert("inputs".into(), list.collect());
    }
    if let Some(printers) = p.printers.value() {
        let list = printers.iter().map(|q| {
            let mut m = Map::new();
            m.insert("name".into(), json!(q.name));
            put_opt(&mut m, "description", q.description.as_ref());
            put_opt(&mut m, "driver", q.driver.as_ref());
            put_opt(&mut m, "port", q.backend.as_ref());
            m.insert("network".into(), json!(q.network));
            Value::Object(m)
        });
        content.insert("printers".into(), list.collect());
    }
}

/// Every dpkg package (`from: deb`, size in bytes, section as category) and
/// Flatpak application (`from: flatpak`).
fn softwares(software: &crate::inventory::Software) -> Value {
    let debs = software.packages.iter().map(|p| {
        let mut m = Map::new();
        m.insert("name".into(), json!(p.name));
        m.insert("version".into(), json!(p.version));
        m.insert("arch".into(), json!(p.arch));
        m.insert("from".into(), json!("deb"));
        put_opt(&mut m, "system_category", p.section.as_ref());
        put_opt(
            &mut m,
            "filesize",
            p.size_kib.and_then(|k| k.checked_mul(1024)),
        );
        Value::Object(m)
    });
    let flatpaks = software.flatpaks.iter().map(|f| {
        let mut m = Map::new();
        m.insert("name".into(), json!(f.id));
        put_opt(&mut m, "version", f.version.as_ref());
        m.insert("arch".into(), json!(f.arch));
        m.insert("from".into(), json!("flatpak"));
        Value::Object(m)
    });
    debs.chain(flatpaks).collect()
}

fn storages(disks: &[crate::inventory::Disk]) -> Value {
    disks
        .iter()
        .map(|d| {
            let mut m = Map::new();
            m.insert("name".into(), json!(d.name));
            put(&mut m, "model", &d.model);
            put(&mut m, "serial", &d.serial);
            // GLPI sizes are in MB (10^6 bytes) for disks.
            m.insert("disksize".into(), json!(d.size_bytes / 1_000_000));
            m.insert(
                "type".into(),
                json!(if d.removable { "removable" } else { "disk" }),
            );
            let interface = match d.kind {
                DiskKind::Nvme => "NVMe",
                DiskKind::Usb => "USB",
                DiskKind::Virtual => "virtio",
                DiskKind::Hdd | DiskKind::Ssd => "SATA",
            };
            m.insert("interface".into(), json!(interface));
            let description = match d.kind {
                DiskKind::Hdd => "HDD",
                DiskKind::Ssd => "SSD",
                DiskKind::Nvme => "NVMe SSD",
                DiskKind::Usb => "USB disk",
                DiskKind::Virtual => "virtual disk",
            };
            m.insert("description".into(), json!(description));
            Value::Object(m)
        })
        .collect()
}

fn drives(fss: &[crate::inventory::Filesystem]) -> Value {
    fss.iter()
        .map(|f| {
            let mut m = Map::new();
            m.insert("volumn".into(), json!(f.device));
            m.insert("type".into(), json!(f.mount_point));
            m.insert("filesystem".into(), json!(f.fs_type));
            m.insert("systemdrive".into(), json!(f.mount_point == "/"));
            if let Some(u) = f.usage.value() {
                m.insert("total".into(), json!(u.size_bytes / MIB));
            }
            Value::Object(m)
        })
        .collect()
}

fn batteries(bats: &[crate::inventory::Battery]) -> Value {
    bats.iter()
        .map(|b| {
            let mut m = Map::new();
            m.insert(
                "name".into(),
                json!(b.model.clone().unwrap_or_else(|| b.name.clone())),
            );
            put_opt(&mut m, "manufacturer", b.manufacturer.as_ref());
            put_opt(&mut m, "chemistry", b.technology.as_ref());
            // GLPI capacities are in mWh.
            put_opt(
                &mut m,
                "capacity",
                b.design_capacity_wh
                    .value()
                    .map(|wh| (wh * 1000.0).round() as u64),
            );
            put_opt(
                &mut m,
                "real_capacity",
                b.full_capacity_wh
                    .value()
                    .map(|wh| (wh * 1000.0).round() as u64),
            );
            Value::Object(m)
        })
        .collect()
}

fn videos(gpus: &[crate::inventory::PciDevice]) -> Value {
    gpus.iter()
        .map(|g| {
            let name = match (&g.vendor_name, &g.device_name) {
                (Some(v), Some(d)) => format!("{v} {d}"),
                _ => format!("PCI {}:{}", g.vendor_id, g.device_id),
            };
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            put_opt(&mut m, "chipset", g.driver.as_ref());
            m.insert("pcislot".into(), json!(g.address));
            Value::Object(m)
        })
        .collect()
}

fn networks(nics: &[crate::inventory::NetworkAdapter]) -> Value {
    let mut out = Vec::new();
    for n in nics {
        let mut base = Map::new();
        base.insert("description".into(), json!(n.interface));
        put(&mut base, "mac", &n.mac);
        base.insert(
            "type".into(),
            json!(match n.kind {
                NetworkKind::Wired => "ethernet",
                NetworkKind::Wireless => "wifi",
            }),
        );
        base.insert("virtualdev".into(), json!(false));
        put_opt(&mut base, "driver", n.driver.as_ref());
        if let Some(pci) = &n.pci {
            let mut id = format!("{}:{}", pci.vendor_id, pci.device_id).to_uppercase();
            if let Some(sub) = &pci.subsystem {
                id.push(':');
                id.push_str(&sub.to_uppercase());
            }
            base.insert("pciid".into(), json!(id));
            base.insert("pcislot".into(), json!(pci.address));
        }
        // The GLPI agent writes one entry per address.
        let addresses = n.ipv4.value().cloned().unwrap_or_default();
        if addresses.is_empty() {
            out.push(Value::Object(base));
            continue;
        }
        for cidr in addresses {
            let mut entry = base.clone();
            let (addr, prefix) = cidr.split_once('/').unwrap_or((cidr.as_str(), "32"));
            entry.insert("ipaddress".into(), json!(addr));
            if let Ok(prefix) = prefix.parse::<u32>()
                && prefix <= 32
            {
                let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
                entry.insert(
                    "ipmask".into(),
                    json!(std::net::Ipv4Addr::from(mask).to_string()),
                );
            }
            out.push(Value::Object(entry));
        }
    }
    Value::Array(out)
}

fn operating_system(inv: &Inventory) -> Value {
    let os = &inv.os;
    let mut m = Map::new();
    put(&mut m, "full_name", &os.pretty_name);
    put(&mut m, "name", &os.id);
    put(&mut m, "version", &os.version_id);
    m.insert("kernel_name".into(), json!("linux"));
    put(&mut m, "kernel_version", &os.kernel);
    put(&mut m, "arch", &os.architecture);
    put(&mut m, "fqdn", &inv.identity.hostname);
    Value::Object(m)
}
