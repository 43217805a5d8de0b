//! The readable French summary of an inventory (`nird-agent inventory`).
//! What school IT staff read first: the machine, its age, its health, and
//! whether Windows 11 would have refused it.

use std::fmt::Write;

use nird_proto::inventory::{
    BootMode, ChassisKind, DiskKind, InputKind, Inventory, NetworkKind, Reading, SecureBoot,
    SmartHealth, Windows11Requirement, Windows11Status, reason,
};

/// Renders `inv` in French; `today` gives the hardware age.
pub fn render(inv: &Inventory, today: time::Date) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_summary(&mut s, inv, today);
    s
}

fn write_summary(s: &mut String, inv: &Inventory, today: time::Date) -> std::fmt::Result {
    let id = &inv.identity;
    writeln!(s, "Inventaire de {}", text(&id.hostname))?;
    let chassis = id
        .chassis
        .value()
        .map(|c| chassis_fr(c.kind))
        .unwrap_or("type de boîtier inconnu");
    writeln!(s, "  Machine      : {}, {chassis}", machine_name(inv))?;
    writeln!(
        s,
        "  N° de série  : {} ; UUID : {}",
        text(&id.serial),
        text(&id.uuid)
    )?;
    writeln!(s, "  machine-id   : {}", text(&id.machine_id))?;

    let fw = &inv.firmware;
    let age = match inv.hardware_age_years(today) {
        Some(y) => format!(" (environ {y} an{})", if y > 1 { "s" } else { "" }),
        None => String::new(),
    };
    let date = match fw.bios_date.value() {
        Some(d) => french_date(d),
        None => text(&fw.bios_date),
    };
    if fw.bios_vendor.value().is_none()
        && fw.bios_version.value().is_none()
        && fw.bios_date.value().is_none()
    {
        writeln!(s, "  Firmware     : inconnu {}", why(&fw.bios_vendor))?;
    } else {
        writeln!(
            s,
            "  Firmware     : {} {}, du {}{}",
            text(&fw.bios_vendor),
            text(&fw.bios_version),
            date,
            age
        )?;
    }
    let boot = match fw.boot_mode.value() {
        Some(BootMode::Uefi) => "UEFI".to_string(),
        Some(BootMode::Legacy) => match fw.uefi_capable.value() {
            Some(true) => "BIOS hérité (UEFI possible)".to_string(),
            Some(false) => "BIOS hérité (pas d'UEFI)".to_string(),
            None => "BIOS hérité".to_string(),
        },
        None => why(&fw.boot_mode),
    };
    let secure_boot = match fw.secure_boot.value() {
        Some(SecureBoot::Enabled) => "activé".to_string(),
        Some(SecureBoot::Disabled) => "désactivé".to_string(),
        Some(SecureBoot::Unsupported) => "non pris en charge".to_string(),
        None => why(&fw.secure_boot),
    };
    let tpm = match fw.tpm.value() {
        Some(t) if t.present => format!(
            "TPM {}",
            t.version.as_deref().unwrap_or("de version inconnue")
        ),
        Some(_) => "aucun TPM visible".to_string(),
        None => format!("TPM : {}", why(&fw.tpm)),
    };
    writeln!(
        s,
        "  Démarrage    : {boot} ; Secure Boot : {secure_boot} ; {tpm}"
    )?;

    let cpu = &inv.cpu;
    let freq = cpu
        .max_frequency_mhz
        .value()
        .map(|m| format!(", {} GHz max", decimal(f64::from(*m) / 1000.0, 1)))
        .unwrap_or_default();
    writeln!(
        s,
        "  Processeur   : {} — {} cœurs, {} threads{}{}",
        text(&cpu.model_name),
        text(&cpu.cores),
        text(&cpu.threads),
        freq,
        if cpu.virtualized {
            " (machine virtuelle)"
        } else {
            ""
        }
    )?;

    let mem = &inv.memory;
    let total = mem
        .total_bytes
        .value()
        .map(|b| format!("{} Gio utilisables", decimal(*b as f64 / GIB, 1)))
        .unwrap_or_else(|| text(&mem.total_bytes));
    let modules = match &mem.modules {
        Reading::Value(m) if m.is_empty() => "aucune barrette décrite par le SMBIOS".to_string(),
        Reading::Value(m) => m
            .iter()
            .map(|m| {
                let mut d = format!("{} Gio", decimal(m.size_bytes as f64 / GIB, 0));
                if let Some(k) = &m.kind {
                    d.push(' ');
                    d.push_str(k);
                }
                if let Some(sp) = m.speed_mts {
                    let _ = write!(d, " {sp} MT/s");
                }
                d
            })
            .collect::<Vec<_>>()
            .join(" + "),
        Reading::Unavailable(r) => format!("barrettes : {}", reason_fr(r)),
    };
    let free = match mem.free_slots() {
        Some(0) => " ; aucun emplacement libre".to_string(),
        Some(1) => " ; 1 emplacement libre".to_string(),
        Some(n) => format!(" ; {n} emplacements libres"),
        None => String::new(),
    };
    writeln!(s, "  Mémoire      : {total} ; {modules}{free}")?;

    match &inv.storage.disks {
        Reading::Value(disks) if disks.is_empty() => writeln!(s, "  Disques      : aucun")?,
        Reading::Value(disks) => {
            writeln!(s, "  Disques      :")?;
            for d in disks {
                let kind = match d.kind {
                    DiskKind::Hdd => "disque dur",
                    DiskKind::Ssd => "SSD",
                    DiskKind::Nvme => "SSD NVMe",
                    DiskKind::Virtual => "disque virtuel",
                    DiskKind::Usb => "disque USB",
                };
                let smart = match &d.smart {
                    Reading::Value(sm) => {
                        let mut t = match sm.health {
                            SmartHealth::Passed => "SMART bon".to_string(),
                            SmartHealth::Failing => "SMART : DÉFAILLANT, à remplacer".to_string(),
                        };
                        if let Some(h) = sm.power_on_hours {
                            let _ = write!(t, ", {} h de fonctionnement", thousands(h));
                        }
                        if let Some(b) = sm.bad_sectors {
                            let _ = write!(t, ", {b} secteur(s) défectueux");
                        }
                        if let Some(p) = sm.percent_used {
                            let _ = write!(t, ", {p} % d'usure");
                        }
                        t
                    }
                    Reading::Unavailable(r) => format!("SMART : {}", reason_fr(r)),
                };
                writeln!(
                    s,
                    "    - {} : {}, {}, {} Go{} ; {}",
                    d.name,
                    text(&d.model),
                    kind,
                    decimal(d.size_bytes as f64 / 1e9, 1),
                    if d.removable { ", amovible" } else { "" },
                    smart
                )?;
            }
        }
        Reading::Unavailable(r) => writeln!(s, "  Disques      : {}", reason_fr(r))?,
    }
    if let Reading::Value(fss) = &inv.storage.filesystems {
        for fs in fss {
            let usage = match &fs.usage {
                Reading::Value(u) => format!(
                    "{} Go, utilisé à {} %",
                    decimal(u.size_bytes as f64 / 1e9, 1),
                    u.used_percent
                ),
                Reading::Unavailable(r) => reason_fr(r),
            };
            writeln!(
                s,
                "    {} ({}, {}) : {}",
                fs.mount_point, fs.fs_type, fs.device, usage
            )?;
        }
    }

    match &inv.batteries {
        Reading::Value(bats) if bats.is_empty() => {}
        Reading::Value(bats) => {
            for b in bats {
                let wear = match b.wear_percent.value() {
                    Some(w) => format!("usure {w} %"),
                    None => format!("usure : {}", text(&b.wear_percent)),
                };
                let capacity = match (b.full_capacity_wh.value(), b.design_capacity_wh.value()) {
                    (Some(f), Some(d)) => {
                        format!(
                            " ({} Wh sur {} Wh d'origine)",
                            decimal(*f, 1),
                            decimal(*d, 1)
                        )
                    }
                    _ => String::new(),
                };
                let cycles = match b.cycle_count.value() {
                    Some(c) => format!(", {c} cycles"),
                    None => String::new(),
                };
                writeln!(s, "  Batterie     : {} : {wear}{capacity}{cycles}", b.name)?;
            }
        }
        Reading::Unavailable(r) => writeln!(s, "  Batterie     : {}", reason_fr(r))?,
    }

    if let Reading::Value(gpus) = &inv.graphics {
        for g in gpus {
            writeln!(
                s,
                "  Graphique    : {} [{}:{}]{}",
                pci_name(g.vendor_name.as_deref(), g.device_name.as_deref()),
                g.vendor_id,
                g.device_id,
                g.driver
                    .as_deref()
                    .map(|d| format!(", pilote {d}"))
                    .unwrap_or_default()
            )?;
        }
    }
    match &inv.network {
        Reading::Value(nics) => {
            for n in nics {
                let kind = match n.kind {
                    NetworkKind::Wired => "filaire",
                    NetworkKind::Wireless => "sans fil",
                };
                let addrs = match n.ipv4.value() {
                    Some(a) if !a.is_empty() => format!(", {}", a.join(" ")),
                    _ => String::new(),
                };
                writeln!(
                    s,
                    "  Réseau       : {} ({kind}, {}{}{addrs})",
                    n.interface,
                    text(&n.mac),
                    n.driver
                        .as_deref()
                        .map(|d| format!(", pilote {d}"))
                        .unwrap_or_default()
                )?;
            }
        }
        Reading::Unavailable(r) => writeln!(s, "  Réseau       : {}", reason_fr(r))?,
    }

    let os = &inv.os;
    let packages = match &os.packages {
        Reading::Value(p) => {
            let mut t = format!(
                "{} paquets installés",
                thousands(u64::from(p.installed_count))
            );
            for (name, version) in &p.of_interest {
                let _ = write!(
                    t,
                    " ; {name} {}",
                    version.as_deref().unwrap_or("non installé")
                );
            }
            t
        }
        Reading::Unavailable(r) => format!("paquets : {}", reason_fr(r)),
    };
    let flatpaks = match inv.software.value() {
        Some(sw) if !sw.flatpaks.is_empty() => {
            format!(" ; {} applications Flatpak", sw.flatpaks.len())
        }
        _ => String::new(),
    };
    let firewall = match os.firewall.value() {
        Some(f) => match (&f.tool, f.enabled) {
            (Some(tool), true) => format!(" ; pare-feu {tool} actif"),
            (Some(tool), false) => format!(" ; pare-feu {tool} inactif"),
            (None, _) => " ; pas de pare-feu (ufw, firewalld)".to_string(),
        },
        None => String::new(),
    };
    writeln!(
        s,
        "  Système      : {}, noyau {} ; {packages}{flatpaks}{firewall}",
        text(&os.pretty_name),
        text(&os.kernel)
    )?;
    write_peripherals(s, inv)?;

    let w = &inv.windows11;
    let list = |reqs: &[Windows11Requirement], f: fn(Windows11Requirement) -> &'static str| {
        reqs.iter().map(|r| f(*r)).collect::<Vec<_>>().join(", ")
    };
    let mut verdict = match w.status {
        Windows11Status::Eligible => "accepterait cette machine".to_string(),
        Windows11Status::Ineligible => format!(
            "REFUSERAIT cette machine : {}",
            list(&w.blockers, requirement_fr)
        ),
        Windows11Status::Unknown => "verdict incertain".to_string(),
    };
    if !w.unknown.is_empty() {
        let _ = write!(
            verdict,
            " (non vérifiable ici : {})",
            list(&w.unknown, requirement_name_fr)
        );
    }
    let cpu_basis = w.cpu_basis.label_fr();
    writeln!(s, "  Windows 11   : {verdict} (processeur : {cpu_basis})")?;
    writeln!(s, "  Empreinte    : {}", inv.content_hash())?;
    Ok(())
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Screens, USB devices, sound, keyboards / mice and printers, one line
/// each, only when there is something to say.
fn write_peripherals(s: &mut String, inv: &Inventory) -> std::fmt::Result {
    if let Some(screens) = inv.monitors.value().filter(|m| !m.is_empty()) {
        let list: Vec<String> = screens
            .iter()
            .map(|m| {
                let mut d = format!(
                    "{} {}",
                    m.connector,
                    m.model.as_deref().unwrap_or("modèle inconnu")
                );
                let mut facts = vec![m.manufacturer.clone().unwrap_or(m.manufacturer_id.clone())];
                if let Some(inches) = m.diagonal_inches() {
                    facts.push(format!("{} pouces", decimal(inches, 1)));
                }
                if let Some(y) = m.year {
                    facts.push(y.to_string());
                }
                if m.builtin {
                    facts.push("intégré".into());
                }
                let _ = write!(d, " ({})", facts.join(", "));
                d
            })
            .collect();
        writeln!(s, "  Écrans       : {}", list.join(" ; "))?;
    }
    let p = &inv.peripherals;
    let mut parts = Vec::new();
    if let Some(usb) = p.usb.value().filter(|u| !u.is_empty()) {
        let names: Vec<String> = usb
            .iter()
            .map(|d| {
                d.product_name
                    .clone()
                    .unwrap_or_else(|| format!("[{}:{}]", d.vendor_id, d.product_id))
            })
            .collect();
        parts.push(format!("USB : {}", names.join(", ")));
    }
    if let Some(input) = p.input.value().filter(|i| !i.is_empty()) {
        let keyboards = input
            .iter()
            .filter(|d| d.kind == InputKind::Keyboard)
            .count();
        let pointing = input.len() - keyboards;
        parts.push(format!(
            "{keyboards} clavier(s), {pointing} souris ou pavé(s)"
        ));
    }
    if let Some(sound) = p.sound.value().filter(|c| !c.is_empty()) {
        let names: Vec<&str> = sound.iter().map(|c| c.name.as_str()).collect();
        parts.push(format!("son : {}", names.join(", ")));
    }
    if !parts.is_empty() {
        writeln!(s, "  Périphériques: {}", parts.join(" ; "))?;
    }
    if let Some(printers) = p.printers.value().filter(|q| !q.is_empty()) {
        let list: Vec<String> = printers
            .iter()
            .map(|q| match &q.driver {
                Some(d) => format!("{} ({d})", q.name),
                None => q.name.clone(),
            })
            .collect();
        writeln!(s, "  Imprimantes  : {}", list.join(" ; "))?;
    }
    Ok(())
}

/// "LENOVO ThinkPad T430 (2349ABG)", "Dell Inc. OptiPlex 390": the family
/// only when the product name does not already say it.
fn machine_name(inv: &Inventory) -> String {
    let id = &inv.identity;
    let vendor = text(&id.vendor);
    match (id.product.value(), id.product_family.value()) {
        (Some(p), Some(f)) if !p.contains(f.as_str()) => format!("{vendor} {f} ({p})"),
        (Some(p), _) => format!("{vendor} {p}"),
        (None, Some(f)) => format!("{vendor} {f}"),
        (None, None) if id.vendor.value().is_none() => {
            format!("modèle inconnu {}", why(&id.product))
        }
        (None, None) => format!("{vendor}, modèle {}", text(&id.product)),
    }
}

/// A reading as text: its value, or its reason in French.
fn text<T: std::fmt::Display>(r: &Reading<T>) -> String {
    match r {
        Reading::Value(v) => v.to_string(),
        Reading::Unavailable(why) => format!("({})", reason_fr(why)),
    }
}

/// The French reason of an unavailable reading (empty for a value).
fn why<T>(r: &Reading<T>) -> String {
    r.reason()
        .map(|w| format!("({})", reason_fr(w)))
        .unwrap_or_default()
}

/// [`reason::french`], with « indisponible » before a technical detail.
fn reason_fr(why: &str) -> String {
    let text = reason::french(why);
    if text.starts_with("détail technique") {
        format!("indisponible, {text}")
    } else {
        text
    }
}

fn requirement_fr(r: Windows11Requirement) -> &'static str {
    match r {
        Windows11Requirement::Tpm2 => "pas de TPM 2.0 (absent ou désactivé dans le firmware)",
        Windows11Requirement::SupportedCpu => {
            "processeur trop ancien (avant Intel 8e génération / AMD Zen+)"
        }
        Windows11Requirement::Ram4Gb => "moins de 4 Go de mémoire",
        Windows11Requirement::Storage64Gb => "disque de moins de 64 Go",
        Windows11Requirement::Uefi => "pas de firmware UEFI",
        Windows11Requirement::SecureBoot => "pas de Secure Boot",
    }
}

/// Neutral name of a requirement, for those that could not be checked.
fn requirement_name_fr(r: Windows11Requirement) -> &'static str {
    match r {
        Windows11Requirement::Tpm2 => "TPM 2.0",
        Windows11Requirement::SupportedCpu => "processeur",
        Windows11Requirement::Ram4Gb => "4 Go de mémoire",
        Windows11Requirement::Storage64Gb => "disque de 64 Go",
        Windows11Requirement::Uefi => "UEFI",
        Windows11Requirement::SecureBoot => "Secure Boot",
    }
}

fn chassis_fr(kind: ChassisKind) -> &'static str {
    match kind {
        ChassisKind::Desktop => "ordinateur de bureau",
        ChassisKind::Laptop => "portable",
        ChassisKind::AllInOne => "tout-en-un",
        ChassisKind::MiniPc => "mini-PC",
        ChassisKind::Tablet => "tablette",
        ChassisKind::Server => "serveur",
        ChassisKind::Other => "autre boîtier",
        ChassisKind::Unknown => "type de boîtier inconnu",
    }
}

fn pci_name(vendor: Option<&str>, device: Option<&str>) -> String {
    match (vendor, device) {
        (Some(v), Some(d)) => format!("{v} {d}"),
        (Some(v), None) => v.to_string(),
        _ => "périphérique PCI".to_string(),
    }
}

/// `2013-05-14` → `14/05/2013`.
fn french_date(iso: &str) -> String {
    let parts: Vec<&str> = iso.split('-').collect();
    match parts.as_slice() {
        [y, m, d] => format!("{d}/{m}/{y}"),
        _ => iso.to_string(),
    }
}

/// A number with a decimal comma.
fn decimal(v: f64, places: usize) -> String {
    format!("{v:.places$}").replace('.', ",")
}

/// Thousands separated by a narrow no-break space, French style.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_numbers() {
        assert_eq!(thousands(1234567), "1\u{202f}234\u{202f}567");
        assert_eq!(thousands(999), "999");
        assert_eq!(decimal(7.66, 1), "7,7");
        assert_eq!(french_date("2013-05-14"), "14/05/2013");
    }

    #[test]
    fn reasons_in_french() {
        assert_eq!(
            reason_fr(reason::NEEDS_ROOT),
            "lisible seulement en administrateur : relancer avec sudo"
        );
        assert_eq!(
            reason_fr("cannot connect to the system bus: No such file"),
            "bus système D-Bus injoignable (service dbus arrêté ?)"
        );
        assert_eq!(
            reason_fr("empty value"),
            "indisponible, détail technique : empty value"
        );
        let mut r: Reading<String> = Reading::unavailable(reason::NOT_EXPOSED);
        assert_eq!(text(&r), "(cette machine ne l'indique pas)");
        r = Reading::Value("x".into());
        assert_eq!(why(&r), "");
    }
}
