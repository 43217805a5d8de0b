//! Connected screens from the EDID the kernel exposes for each DRM
//! connector (`/sys/class/drm/cardN-CONNECTOR/edid`, empty when nothing is
//! plugged in), parsed by [`parse_edid`] (VESA E-EDID 1.3/1.4 base block).

use nird_proto::inventory::Monitor;

use super::source::{Reason, Source};

const DRM: &str = "/sys/class/drm";

/// Manufacturer names for PNP ids (hwdata), when installed.
const PNP_IDS: &str = "/usr/share/hwdata/pnp.ids";

/// Every connector with an EDID; an EDID that does not parse is left out
/// (logged), never guessed.
pub fn collect(source: &Source) -> Result<Vec<Monitor>, Reason> {
    let mut monitors = Vec::new();
    let mut names: Option<String> = None;
    for entry in source.list_dir(DRM)? {
        // Connectors are `cardN-NAME`; `cardN` and `renderD*` are devices.
        let Some((_, connector)) = entry.split_once('-') else {
            continue;
        };
        let Ok(bytes) = source.read_bytes(&format!("{DRM}/{entry}/edid")) else {
            continue;
        };
        if bytes.is_empty() {
            continue;
        }
        match parse_edid(&bytes, connector) {
            Some(mut m) => {
                let names =
                    names.get_or_insert_with(|| source.read_text(PNP_IDS).unwrap_or_default());
                m.manufacturer = pnp_name(names, &m.manufacturer_id);
                monitors.push(m);
            }
            None => tracing::info!(connector, "EDID unreadable; screen left out"),
        }
    }
    monitors.sort_by(|a, b| a.connector.cmp(&b.connector));
    Ok(monitors)
}

/// `ID<TAB>Name` lines of pnp.ids.
fn pnp_name(table: &str, id: &str) -> Option<String> {
    table.lines().find_map(|l| {
        let (k, v) = l.split_once('\t')?;
        (k == id)
            .then(|| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// Parses the base block of an EDID (128 bytes or more, extensions
/// ignored); `None` if the header or the checksum is wrong.
pub fn parse_edid(edid: &[u8], connector: &str) -> Option<Monitor> {
    let base = edid.get(..128)?;
    if base[..8] != [0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]
        || base.iter().fold(0u8, |s, b| s.wrapping_add(*b)) != 0
    {
        return None;
    }
    // Three 5-bit letters, 1 = 'A', big-endian.
    let id = u16::from_be_bytes([base[8], base[9]]);
    let manufacturer_id: String = [10u16, 5, 0]
        .iter()
        .map(|shift| (id >> shift) & 0x1f)
        .map(|c| (b'A' - 1 + c as u8) as char)
        .collect();
    if !manufacturer_id.chars().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let numeric_serial = u32::from_le_bytes([base[12], base[13], base[14], base[15]]);
    let (mut name, mut serial, mut text) = (None, None, None::<String>);
    for d in base[54..126].chunks_exact(18) {
        // A display descriptor has a zero pixel clock.
        if d[0] != 0 || d[1] != 0 {
            continue;
        }
        let value = descriptor_text(&d[5..18]);
        match d[3] {
            0xfc => name = name.or(value),
            0xff => serial = serial.or(value),
            // Laptop panels: maker, then part number; the last one wins.
            0xfe => text = value.or(text),
            _ => {}
        }
    }
    let week = base[16];
    let year = 1990 + u16::from(base[17]);
    let size = |b: u8| (b != 0).then_some(b);
    let builtin = ["eDP", "LVDS", "DSI"]
        .iter()
        .any(|p| connector.starts_with(p));
    Some(Monitor {
        connector: connector.to_owned(),
        builtin,
        manufacturer_id,
        manufacturer: None,
        product_code: u16::from_le_bytes([base[10], base[11]]),
        model: name.or(text),
        serial: serial.or_else(|| (numeric_serial != 0).then(|| numeric_serial.to_string())),
        year: Some(year),
        week: (1..=54).contains(&week).then_some(week),
        // Both zero: undefined; one zero: an aspect ratio, not a size.
        width_cm: size(base[21]).filter(|_| base[22] != 0),
        height_cm: size(base[22]).filter(|_| base[21] != 0),
        digital: base[20] & 0x80 != 0,
    })
}

/// A descriptor's text: up to 13 bytes, ended by a line feed, padded with
/// spaces; printable ASCII only.
fn descriptor_text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|b| *b == 0x0a).unwrap_or(bytes.len());
    let text: String = bytes[..end]
        .iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|b| *b as char)
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hex dumps kept in `tests/fixtures/edid/` (sources there).
    fn dump(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/edid/{name}.hex",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        text.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    #[test]
    fn dell_d1918h_external_hdmi() {
        let m = parse_edid(&dump("dell-d1918h"), "HDMI-A-1").unwrap();
        assert_eq!(m.manufacturer_id, "DEL");
        assert_eq!(m.product_code, 0x2005);
        assert_eq!(m.model.as_deref(), Some("D1918H"));
        assert_eq!(m.serial.as_deref(), Some("2C8FJ8255K5E"));
        assert_eq!((m.year, m.week), (Some(2018), Some(6)));
        assert_eq!((m.width_cm, m.height_cm), (Some(41), Some(23)));
        assert_eq!(m.diagonal_inches(), Some(18.5));
        assert!(m.digital && !m.builtin);
    }

    #[test]
    fn lenovo_panel_without_name_uses_its_part_number() {
        let m = parse_edid(&dump("lenovo-ltn156at16"), "eDP-1").unwrap();
        assert_eq!(m.manufacturer_id, "LEN");
        assert_eq!(m.product_code, 0x40b0);
        // No product name descriptor: the panel's part number, the last
        // alphanumeric string (the first is its maker).
        assert_eq!(m.model.as_deref(), Some("LTN156AT16L01"));
        assert_eq!(m.serial, None);
        assert_eq!((m.year, m.week), (Some(2010), None));
        assert_eq!((m.width_cm, m.height_cm), (Some(34), Some(19)));
        assert!(m.digital && m.builtin);
    }

    #[test]
    fn philips_150s_analog_vga() {
        let m = parse_edid(&dump("philips-150s"), "VGA-1").unwrap();
        assert_eq!(m.manufacturer_id, "PHL");
        assert_eq!(m.model.as_deref(), Some("Philips 150S"));
        assert_eq!(m.serial.as_deref(), Some("CX  572203"));
        assert_eq!((m.year, m.week), (Some(2003), Some(7)));
        assert_eq!(m.diagonal_inches(), Some(14.9));
        assert!(!m.digital);
    }

    #[test]
    fn damaged_edids_are_refused() {
        let mut bad = dump("philips-150s");
        bad[20] ^= 1;
        assert!(parse_edid(&bad, "VGA-1").is_none(), "checksum");
        assert!(parse_edid(&bad[..100], "VGA-1").is_none(), "short");
        let mut header = dump("philips-150s");
        header[0] = 1;
        header[127] = header[127].wrapping_sub(1);
        assert!(parse_edid(&header, "VGA-1").is_none(), "header");
        assert!(parse_edid(&[], "VGA-1").is_none());
    }

    #[test]
    fn pnp_names() {
        let table = "DEL\tDell Inc.\nPHL\tPhilips Consumer Electronics Company\n";
        assert_eq!(pnp_name(table, "DEL").as_deref(), Some("Dell Inc."));
        assert_eq!(pnp_name(table, "XXX"), None);
    }
}
