//! Controllers and peripherals: USB devices (sysfs, names from usb.ids),
//! ALSA sound cards, keyboards and pointing devices, CUPS print queues.
//! Only what the system shows; a missing name stays missing.

use std::collections::{BTreeSet, HashMap};

use nird_proto::inventory::{InputDevice, InputKind, Printer, SoundCard, UsbDevice};

use super::source::{Reason, Source};

const USB: &str = "/sys/bus/usb/devices";

/// USB devices, sorted by bus path; root hubs, hubs (class 09) and mass
/// storage (class 08: sticks come and go) left out.
pub fn usb(source: &Source) -> Result<Vec<UsbDevice>, Reason> {
    let mut entries = source.list_dir(USB)?;
    entries.sort();
    let mut found = Vec::new();
    for entry in &entries {
        // Devices are `B-P[.P...]`; `usbN` are root hubs, `B-P:C.I`
        // interfaces.
        if entry.starts_with("usb") || entry.contains(':') {
            continue;
        }
        let base = format!("{USB}/{entry}");
        let attr = |name: &str| source.read_attr(&format!("{base}/{name}")).ok();
        let (Some(vendor_id), Some(product_id)) = (attr("idVendor"), attr("idProduct")) else {
            continue;
        };
        let device_class = attr("bDeviceClass");
        // Class 00: "see the interfaces"; the first one says what it is.
        let class = match device_class.as_deref() {
            Some("00") | None => source
                .read_attr(&format!("{USB}/{entry}:1.0/bInterfaceClass"))
                .ok(),
            other => other.map(str::to_owned),
        };
        let interfaces_storage = entries.iter().any(|i| {
            i.starts_with(&format!("{entry}:"))
                && source
                    .read_attr(&format!("{USB}/{i}/bInterfaceClass"))
                    .ok()
                    .as_deref()
                    == Some("08")
        });
        if matches!(class.as_deref(), Some("09") | Some("08")) || interfaces_storage {
            continue;
        }
        found.push((
            UsbDevice {
                vendor_id: vendor_id.to_ascii_lowercase(),
                product_id: product_id.to_ascii_lowercase(),
                class,
                vendor_name: None,
                product_name: None,
                serial: attr("serial"),
            },
            attr("manufacturer"),
            attr("product"),
        ));
    }
    let names = UsbNames::load(source, found.iter().map(|(d, _, _)| d));
    Ok(found
        .into_iter()
        .map(|(mut d, manufacturer, product)| {
            let (vendor, name) = names.lookup(&d.vendor_id, &d.product_id);
            d.vendor_name = vendor.or(manufacturer);
            d.product_name = name.or(product);
            d
        })
        .collect())
}

/// Vendor and product names of the USB ids present, from usb.ids.
#[derive(Default)]
struct UsbNames {
    vendors: HashMap<String, String>,
    products: HashMap<(String, String), String>,
}

impl UsbNames {
    fn load<'a>(source: &Source, devices: impl Iterator<Item = &'a UsbDevice>) -> UsbNames {
        let wanted: BTreeSet<(String, String)> = devices
            .map(|d| (d.vendor_id.clone(), d.product_id.clone()))
            .collect();
        let mut names = UsbNames::default();
        if wanted.is_empty() {
            return names;
        }
        let file = ["/usr/share/misc/usb.ids", "/usr/share/hwdata/usb.ids"]
            .iter()
            .find_map(|p| source.open(p).ok());
        let Some(file) = file else {
            return names;
        };
        let mut vendor: Option<String> = None;
        for line in std::io::BufRead::lines(std::io::BufReader::new(file)) {
            let Ok(line) = line else { break };
            if line.starts_with('#') || line.is_empty() || line.starts_with("\t\t") {
                continue;
            }
            if let Some(rest) = line.strip_prefix('\t') {
                let (Some(v), Some((id, name))) = (&vendor, rest.split_once("  ")) else {
                    continue;
                };
                if wanted.contains(&(v.clone(), id.to_owned())) {
                    names
                        .products
                        .insert((v.clone(), id.to_owned()), name.trim().to_owned());
                }
            } else if line.starts_with("C ") {
                // Device classes: no more vendors.
                break;
            } else if let Some((id, name)) = line.split_once("  ") {
                vendor = wanted.iter().any(|(v, _)| v == id).then(|| id.to_owned());
                if vendor.is_some() {
                    names.vendors.insert(id.to_owned(), name.trim().to_owned());
                }
            }
        }
        names
    }

    fn lookup(&self, vendor: &str, product: &str) -> (Option<String>, Option<String>) {
        (
            self.vendors.get(vendor).cloned(),
            self.products
                .get(&(vendor.to_owned(), product.to_owned()))
                .cloned(),
        )
    }
}

/// ALSA cards: ` N [ID    ]: DRIVER - NAME` lines of `/proc/asound/cards`
/// (the continuation line, with addresses and IRQs, is left out).
pub fn sound(source: &Source) -> Result<Vec<SoundCard>, Reason> {
    let text = source.read_text("/proc/asound/cards")?;
    Ok(text.lines().filter_map(parse_card_line).collect())
}

fn parse_card_line(line: &str) -> Option<SoundCard> {
    let (index, rest) = line.trim_start().split_once(' ')?;
    index.parse::<u32>().ok()?;
    let rest = rest.trim_start().strip_prefix('[')?;
    let (id, rest) = rest.split_once(']')?;
    let rest = rest.trim_start().strip_prefix(':')?;
    let (driver, name) = rest.split_once(" - ")?;
    Some(SoundCard {
        id: id.trim().to_owned(),
        driver: driver.trim().to_owned(),
        name: name.trim().to_owned(),
    })
}

/// Keyboards (`kbd` handler with letter keys, not power buttons) and
/// pointing devices (`mouse` handler) from `/proc/bus/input/devices`, one
/// entry per name and kind (a USB keyboard shows several).
pub fn input(source: &Source) -> Result<Vec<InputDevice>, Reason> {
    let text = source.read_text("/proc/bus/input/devices")?;
    let mut out = BTreeSet::new();
    for block in text.split("\n\n") {
        let (mut name, mut bus, mut handlers, mut keys) = ("", "", "", "");
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("N: Name=") {
                name = v.trim().trim_matches('"');
            } else if let Some(v) = line.strip_prefix("I: Bus=") {
                bus = v.split_whitespace().next().unwrap_or("");
            } else if let Some(v) = line.strip_prefix("H: Handlers=") {
                handlers = v;
            } else if let Some(v) = line.strip_prefix("B: KEY=") {
                keys = v;
            }
        }
        let handler = |h: &str| handlers.split_whitespace().any(|x| x.starts_with(h));
        let kind = if handler("mouse") {
            InputKind::Pointing
        } else if handler("kbd") && has_letter_keys(keys) {
            InputKind::Keyboard
        } else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let bus = match bus {
            "0003" => "usb",
            "0011" => "ps2",
            "0018" => "i2c",
            "0005" => "bluetooth",
            "0019" => "host",
            other => other,
        };
        out.insert((name.to_owned(), kind, bus.to_owned()));
    }
    Ok(out
        .into_iter()
        .map(|(name, kind, bus)| InputDevice { name, kind, bus })
        .collect())
}

/// The `KEY=` bitmap (hex words, most significant first) has KEY_Q..KEY_P
/// (codes 16-25): a real keyboard, not a power button or a lid switch.
fn has_letter_keys(bitmap: &str) -> bool {
    let low = bitmap.split_whitespace().last().unwrap_or("0");
    u64::from_str_radix(low, 16).is_ok_and(|w| w & (0x3ff << 16) == 0x3ff << 16)
}

/// CUPS queues from `printers.conf` (root-only: 0600), with the driver from
/// each queue's PPD. No CUPS: an empty list.
pub fn printers(source: &Source) -> Result<Vec<Printer>, Reason> {
    const CONF: &str = "/etc/cups/printers.conf";
    if !source.exists(CONF) {
        return Ok(Vec::new());
    }
    let text = source.read_text(CONF)?;
    let mut out = Vec::new();
    let mut current: Option<Printer> = None;
    let mut make_model: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line
            .strip_prefix("<Printer ")
            .or_else(|| line.strip_prefix("<DefaultPrinter "))
        {
            current = Some(Printer {
                name: rest.trim_end_matches('>').trim().to_owned(),
                description: None,
                driver: None,
                backend: None,
                network: false,
            });
            make_model = None;
        } else if line == "</Printer>" || line == "</DefaultPrinter>" {
            if let Some(mut p) = current.take() {
                p.driver = ppd_nickname(source, &p.name).or(make_model.take());
                out.push(p);
            }
        } else if let Some(p) = current.as_mut() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let value = value.trim();
            match key {
                "Info" if !value.is_empty() => p.description = Some(value.to_owned()),
                "MakeModel" if !value.is_empty() => make_model = Some(value.to_owned()),
                "DeviceURI" => {
                    let backend = value.split(':').next().unwrap_or("").to_owned();
                    p.network = matches!(
                        backend.as_str(),
                        "ipp" | "ipps" | "http" | "https" | "socket" | "lpd" | "smb" | "dnssd"
                    ) || (backend == "hp" && value.starts_with("hp:/net/"));
                    p.backend = (!backend.is_empty()).then_some(backend);
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// `*NickName: "..."` of `/etc/cups/ppd/NAME.ppd`.
fn ppd_nickname(source: &Source, queue: &str) -> Option<String> {
    if queue.contains('/') || queue.starts_with('.') {
        return None;
    }
    let file = source.open(&format!("/etc/cups/ppd/{queue}.ppd")).ok()?;
    std::io::BufRead::lines(std::io::BufReader::new(file))
        .take(2000)
        .map_while(Result::ok)
        .find_map(|l| {
            let v = l
                .strip_prefix("*NickName:")?
                .trim()
                .trim_matches('"')
                .trim();
            (!v.is_empty()).then(|| v.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_lines() {
        let c = parse_card_line(" 0 [PCH            ]: HDA-Intel - HDA Intel PCH").unwrap();
        assert_eq!(
            (c.id.as_str(), c.driver.as_str(), c.name.as_str()),
            ("PCH", "HDA-Intel", "HDA Intel PCH")
        );
        assert!(
            parse_card_line("                      HDA Intel PCH at 0xf2530000 irq 30").is_none()
        );
    }

    #[test]
    fn letter_keys() {
        // AT keyboard (real bitmap) vs power button.
        assert!(has_letter_keys(
            "402000000 3803078f800d001 feffffdfffefffff fffffffffffffffe"
        ));
        assert!(!has_letter_keys("10000000000000 0"));
    }
}
