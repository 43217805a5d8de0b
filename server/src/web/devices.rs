//! The machine page's screens and peripherals: what GLPI shows as
//! `monitors`, `controllers`, `usbdevices`, sound cards, input devices and
//! printers, read from the inventory's `monitors` and `peripherals`
//! members. A member an older agent does not send reads « non renseigné »;
//! a member the agent could not read gives its reason.

use maud::{Markup, html};
use nird_proto::inventory::{
    InputDevice, InputKind, Monitor, PciDevice, Printer, Reading, SoundCard, UsbDevice, reason,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The member at `pointer` as a `Reading<Vec<T>>`: `None` when the
/// document does not have it (an agent before schema 2) or it does not
/// read as one.
fn member<T: DeserializeOwned>(doc: &Value, pointer: &str) -> Option<Reading<Vec<T>>> {
    serde_json::from_value(doc.pointer(pointer)?.clone()).ok()
}

/// A `Reading<Vec<T>>` section: its table when read and not empty, else a
/// sentence saying there is none, that the agent could not read it, or
/// that it does not report it.
fn section<T>(
    what: &str,
    none: &str,
    reading: Option<Reading<Vec<T>>>,
    table: impl FnOnce(&[T]) -> Markup,
) -> Markup {
    html! {
        @match reading {
            None => p { (what) " : non renseigné par l'agent." },
            Some(Reading::Unavailable(why)) => p { (what) " : indisponible (" (reason::french(&why)) ")." },
            Some(Reading::Value(items)) if items.is_empty() => p { (what) " : " (none) "." },
            Some(Reading::Value(items)) => (table(&items)),
        }
    }
}

fn or_dash(text: Option<&str>) -> &str {
    text.filter(|t| !t.trim().is_empty()).unwrap_or("—")
}

/// « semaine 12 de 2014 », « 2014 », or a dash.
fn made(m: &Monitor) -> String {
    match (m.week, m.year) {
        (Some(w), Some(y)) if (1..=53).contains(&w) => format!("semaine {w} de {y}"),
        (_, Some(y)) => y.to_string(),
        _ => "—".into(),
    }
}

/// « 24 pouces (53 × 30 cm) », or a dash.
fn size(m: &Monitor) -> String {
    match (m.diagonal_inches(), m.width_cm, m.height_cm) {
        (Some(d), Some(w), Some(h)) => {
            format!("{} pouces ({w} × {h} cm)", d.to_string().replace('.', ","))
        }
        _ => "—".into(),
    }
}

/// French name of a PCI base class (the first two of its four digits).
fn pci_class(class: Option<&str>) -> String {
    let Some(c) = class else {
        return "—".into();
    };
    let name = match c.get(..2) {
        Some("01") => "contrôleur de stockage",
        Some("02") => "contrôleur réseau",
        Some("03") => "contrôleur graphique",
        Some("04") => "multimédia (son, vidéo)",
        Some("05") => "contrôleur mémoire",
        Some("06") => "pont",
        Some("07") => "communication",
        Some("08") => "périphérique système",
        Some("09") => "périphérique d'entrée",
        Some("0c") if c.get(2..) == Some("03") => "contrôleur USB",
        Some("0c") => "bus série",
        Some("0d") => "sans fil",
        Some("10") => "chiffrement",
        Some("11") => "acquisition de signal",
        _ => return format!("classe {c}"),
    };
    format!("{name} ({c})")
}

/// French name of a USB class (two hex digits).
fn usb_class(class: Option<&str>) -> String {
    let Some(c) = class else {
        return "—".into();
    };
    let name = match c {
        "01" => "audio",
        "02" => "communication",
        "03" => "saisie",
        "06" => "image",
        "07" => "imprimante",
        "0e" => "vidéo (webcam)",
        "e0" => "sans fil (Bluetooth)",
        "ef" => "divers",
        "ff" => "propre au fabricant",
        _ => return format!("classe {c}"),
    };
    format!("{name} ({c})")
}

/// The « Écrans » and « Périphériques » sections of the machine page.
pub fn sections(doc: &Value) -> Markup {
    html! {
        h2 id="ecrans" { "Écrans" }
        (section("Écrans", "aucun écran détecté", member::<Monitor>(doc, "/monitors"), |screens| html! {
            table {
                caption { "Écrans (" (screens.len()) "), lus dans leur EDID" }
                thead { tr {
                    th scope="col" { "Branchement" } th scope="col" { "Fabricant" }
                    th scope="col" { "Modèle" } th scope="col" { "N° de série" }
                    th scope="col" { "Fabrication" } th scope="col" { "Taille" }
                } }
                tbody {
                    @for m in screens {
                        tr {
                            th scope="row" { (m.connector) @if m.builtin { " (écran intégré)" } }
                            td { (m.manufacturer.as_deref().unwrap_or(&m.manufacturer_id)) }
                            td { (or_dash(m.model.as_deref())) }
                            td { (or_dash(m.serial.as_deref())) }
                            td { (made(m)) }
                            td { (size(m)) }
                        }
                    }
                }
            }
        }))

        h2 id="peripheriques" { "Périphériques" }
        (section("Périphériques USB", "aucun (hors concentrateurs et clés)", member::<UsbDevice>(doc, "/peripherals/usb"), |devices| html! {
            table {
                caption { "Périphériques USB (" (devices.len()) ", hors concentrateurs et stockage amovible)" }
                thead { tr {
                    th scope="col" { "Produit" } th scope="col" { "Fabricant" }
                    th scope="col" { "Type" } th scope="col" { "Identifiant" }
                    th scope="col" { "N° de série" }
                } }
                tbody {
                    @for d in devices {
                        tr {
                            th scope="row" { (or_dash(d.product_name.as_deref())) }
                            td { (or_dash(d.vendor_name.as_deref())) }
                            td { (usb_class(d.class.as_deref())) }
                            td { code { (d.vendor_id) ":" (d.product_id) } }
                            td { (or_dash(d.serial.as_deref())) }
                        }
                    }
                }
            }
        }))
        (section("Clavier et pointage", "aucun", member::<InputDevice>(doc, "/peripherals/input"), |devices| html! {
            table {
                caption { "Clavier et pointage (" (devices.len()) ")" }
                thead { tr { th scope="col" { "Nom" } th scope="col" { "Type" } th scope="col" { "Bus" } } }
                tbody {
                    @for d in devices {
                        tr {
                            th scope="row" { (d.name) }
                            td { @match d.kind { InputKind::Keyboard => "clavier", InputKind::Pointing => "souris ou pavé tactile" } }
                            td { (d.bus) }
                        }
                    }
                }
            }
        }))
        (section("Cartes son", "aucune", member::<SoundCard>(doc, "/peripherals/sound"), |cards| html! {
            table {
                caption { "Cartes son (" (cards.len()) ")" }
                thead { tr { th scope="col" { "Nom" } th scope="col" { "Pilote" } } }
                tbody {
                    @for c in cards {
                        tr { th scope="row" { (c.name) } td { (c.driver) } }
                    }
                }
            }
        }))
        (section("Imprimantes", "aucune connue de CUPS", member::<Printer>(doc, "/peripherals/printers"), |printers| html! {
            table {
                caption { "Imprimantes connues de CUPS (" (printers.len()) ")" }
                thead { tr {
                    th scope="col" { "File d'impression" } th scope="col" { "Description" }
                    th scope="col" { "Pilote" } th scope="col" { "Raccordement" }
                } }
                tbody {
                    @for p in printers {
                        tr {
                            th scope="row" { (p.name) }
                            td { (or_dash(p.description.as_deref())) }
                            td { (or_dash(p.driver.as_deref())) }
                            td { @if p.network { "réseau" } @else { "locale" }
                                 @if let Some(b) = &p.backend { " (" (b) ")" } }
                        }
                    }
                }
            }
        }))
        (section("Contrôleurs PCI", "aucun", member::<PciDevice>(doc, "/peripherals/pci"), |devices| html! {
            details {
                summary { "Contrôleurs PCI (" (devices.len()) ")" }
                table {
                    caption { "Contrôleurs PCI (" (devices.len()) ")" }
                    thead { tr {
                        th scope="col" { "Adresse" } th scope="col" { "Type" }
                        th scope="col" { "Fabricant" } th scope="col" { "Modèle" }
                        th scope="col" { "Pilote" }
                    } }
                    tbody {
                        @for d in devices {
                            tr {
                                th scope="row" { code { (d.address) } }
                                td { (pci_class(d.class.as_deref())) }
                                td { (d.vendor_name.as_deref().unwrap_or(&d.vendor_id)) }
                                td { (d.device_name.as_deref().unwrap_or(&d.device_id)) }
                                td { (or_dash(d.driver.as_deref())) }
                            }
                        }
                    }
                }
            }
        }))
    }
}

/// The « Licence Windows d'origine » fact: the ACPI MSDM table's presence
/// (never the key, which the agent does not read).
pub fn windows_licence(doc: &Value) -> String {
    match doc
        .pointer("/firmware/windows_oem_licence")
        .and_then(|v| serde_json::from_value::<Reading<bool>>(v.clone()).ok())
    {
        None => "non renseigné".into(),
        Some(Reading::Value(true)) => {
            "oui : le micrologiciel porte une licence Windows OEM (table ACPI MSDM), \
             c'est un ancien poste Windows"
                .into()
        }
        Some(Reading::Value(false)) => "non (pas de table ACPI MSDM)".into(),
        Some(Reading::Unavailable(why)) => format!("indisponible ({})", reason::french(&why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classes_read_in_french() {
        assert_eq!(pci_class(Some("0300")), "contrôleur graphique (0300)");
        assert_eq!(pci_class(Some("0c03")), "contrôleur USB (0c03)");
        assert_eq!(pci_class(Some("ff00")), "classe ff00");
        assert_eq!(pci_class(None), "—");
        assert_eq!(usb_class(Some("03")), "saisie (03)");
        assert_eq!(usb_class(Some("42")), "classe 42");
    }

    #[test]
    fn each_section_says_why_it_is_empty() {
        let doc = json!({
            "monitors": {"value": [{"connector": "HDMI-A-1", "builtin": false,
                "manufacturer_id": "DEL", "manufacturer": "Dell Inc.", "product_code": 41_200,
                "model": "DELL P2419H", "serial": "CFV9N99", "year": 2019, "week": 12,
                "width_cm": 53, "height_cm": 30, "digital": true}]},
            "peripherals": {
                "usb": {"value": []},
                "printers": {"unavailable": "cups not installed"},
            },
            "firmware": {"windows_oem_licence": {"value": true}},
        });
        let html = sections(&doc).into_string();
        assert!(html.contains("DELL P2419H") && html.contains("semaine 12 de 2019"));
        assert!(html.contains("24 pouces (53 × 30 cm)"), "{html}");
        assert!(html.contains("Périphériques USB : aucun"));
        assert!(
            html.contains("Imprimantes : indisponible (détail technique : cups not installed)")
        );
        assert!(html.contains("Cartes son : non renseigné"));
        assert!(windows_licence(&doc).starts_with("oui"));
        assert_eq!(windows_licence(&json!({})), "non renseigné");
    }
}
