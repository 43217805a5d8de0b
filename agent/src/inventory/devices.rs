//! PCI devices (graphics controllers, every function for the controllers
//! list) and physical network interfaces, from sysfs;
//! vendor and device names from the pci.ids database when installed.

use std::collections::HashMap;

use nird_proto::inventory::{NetworkAdapter, NetworkKind, PciDevice, Reading, reason};

use super::source::{Reason, Source};

/// Display controllers (PCI class 0x03).
pub fn graphics(source: &Source, names: &PciNames) -> Result<Vec<PciDevice>, Reason> {
    let mut out = Vec::new();
    for address in source.list_dir("/sys/bus/pci/devices")? {
        let base = format!("/sys/bus/pci/devices/{address}");
        if source
            .read_u64(&format!("{base}/class"))
            .is_ok_and(|c| c >> 16 == 0x03)
        {
            out.push(pci_device(source, &base, &address, names));
        }
    }
    Ok(out)
}

fn pci_device(source: &Source, base: &str, address: &str, names: &PciNames) -> PciDevice {
    let id = |attr: &str| {
        source
            .read_u64(&format!("{base}/{attr}"))
            .map(|v| format!("{v:04x}"))
            .ok()
    };
    let vendor_id = id("vendor").unwrap_or_default();
    let device_id = id("device").unwrap_or_default();
    let subsystem = match (id("subsystem_vendor"), id("subsystem_device")) {
        (Some(v), Some(d)) => Some(format!("{v}:{d}")),
        _ => None,
    };
    let (vendor_name, device_name) = names.lookup(&vendor_id, &device_id);
    PciDevice {
        address: address.to_string(),
        vendor_id,
        device_id,
        subsystem,
        vendor_name,
        device_name,
        driver: source.link_name(&format!("{base}/driver")),
        class: source
            .read_u64(&format!("{base}/class"))
            .ok()
            .map(|c| format!("{:04x}", c >> 8)),
    }
}

/// Every PCI function, sorted by address.
pub fn all_pci(source: &Source, names: &PciNames) -> Result<Vec<PciDevice>, Reason> {
    let mut addresses = source.list_dir("/sys/bus/pci/devices")?;
    addresses.sort();
    Ok(addresses
        .iter()
        .map(|a| pci_device(source, &format!("/sys/bus/pci/devices/{a}"), a, names))
        .collect())
}

/// Physical network interfaces: those with a `device` link (bridges, VPN
/// tunnels, veth and loopback have none). `ipv4` maps interface names to
/// their addresses on the live system.
pub fn network(
    source: &Source,
    names: &PciNames,
    ipv4: &Result<HashMap<String, Vec<String>>, Reason>,
) -> Result<Vec<NetworkAdapter>, Reason> {
    let mut out = Vec::new();
    for iface in source.list_dir("/sys/class/net")? {
        let base = format!("/sys/class/net/{iface}");
        if !source.exists(&format!("{base}/device")) {
            continue;
        }
        let kind = if source.exists(&format!("{base}/wireless"))
            || source.exists(&format!("{base}/phy80211"))
        {
            NetworkKind::Wireless
        } else {
            NetworkKind::Wired
        };
        let pci = pci_behind(source, &format!("{base}/device"))
            .map(|(dir, address)| pci_device(source, &dir, &address, names));
        let ipv4 = match ipv4 {
            Ok(map) => Reading::Value(map.get(&iface).cloned().unwrap_or_default()),
            Err(e) => Reading::unavailable(e.clone()),
        };
        out.push(NetworkAdapter {
            interface: iface.clone(),
            kind,
            mac: source.read_attr(&format!("{base}/address")).into(),
            driver: source.link_name(&format!("{base}/device/driver")),
            pci,
            ipv4,
        });
    }
    Ok(out)
}

/// The PCI device of a network interface's `device` link: the device itself
/// when it is on PCI, its parent for virtio (virtio-net sits on a virtio-pci
/// device). USB adapters have none.
fn pci_behind(source: &Source, device_link: &str) -> Option<(String, String)> {
    let dir = source.resolve(device_link)?;
    let candidates = [dir.clone(), parent(&dir)?];
    candidates.into_iter().find_map(|d| {
        let name = d.rsplit('/').next()?.to_string();
        let is_pci = source.link_name(&format!("{d}/subsystem")).as_deref() == Some("pci")
            || (is_pci_address(&name) && source.exists(&format!("{d}/vendor")));
        is_pci.then_some((d, name))
    })
}

fn parent(path: &str) -> Option<String> {
    let (p, _) = path.rsplit_once('/')?;
    Some(p.to_string())
}

/// `dddd:bb:dd.f`
fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12 && b[4] == b':' && b[7] == b':' && b[10] == b'.'
}

/// Vendor and device names for the PCI ids present on this machine, read
/// once from pci.ids (only the needed lines are kept: a few dozen).
#[derive(Debug, Default)]
pub struct PciNames {
    /// vendor id → name.
    vendors: HashMap<String, String>,
    /// (vendor id, device id) → name.
    devices: HashMap<(String, String), String>,
}

impl PciNames {
    /// Loads names for the PCI devices under `source` from the first pci.ids
    /// found (`/usr/share/misc`, `/usr/share/hwdata`); empty when none.
    pub fn load(source: &Source) -> PciNames {
        let mut wanted: HashMap<String, Vec<String>> = HashMap::new();
        for address in source.list_dir("/sys/bus/pci/devices").unwrap_or_default() {
            let base = format!("/sys/bus/pci/devices/{address}");
            let vendor = source.read_u64(&format!("{base}/vendor"));
            let device = source.read_u64(&format!("{base}/device"));
            if let (Ok(v), Ok(d)) = (vendor, device) {
                wanted
                    .entry(format!("{v:04x}"))
                    .or_default()
                    .push(format!("{d:04x}"));
            }
        }
        let mut names = PciNames::default();
        if wanted.is_empty() {
            return names;
        }
        // Streamed: the database is over 1 MB.
        let file = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"]
            .iter()
            .find_map(|p| source.open(p).ok());
        let Some(file) = file else {
            return names;
        };
        let mut current: Option<String> = None;
        for line in std::io::BufRead::lines(std::io::BufReader::new(file)) {
            let Ok(line) = line else { break };
            if line.starts_with('#') || line.is_empty() || line.starts_with("\t\t") {
                continue;
            }
            if let Some(rest) = line.strip_prefix('\t') {
                let Some(vendor) = &current else { continue };
                let Some((id, name)) = rest.split_once("  ") else {
                    continue;
                };
                if wanted
                    .get(vendor)
                    .is_some_and(|ds| ds.iter().any(|d| d == id))
                {
                    names
                        .devices
                        .insert((vendor.clone(), id.to_string()), name.trim().to_string());
                }
            } else if line.starts_with('C') && line.as_bytes().get(1) == Some(&b' ') {
                // Device classes section: no more vendors after it.
                break;
            } else if let Some((id, name)) = line.split_once("  ") {
                current = wanted.contains_key(id).then(|| id.to_string());
                if current.is_some() {
                    names
                        .vendors
                        .insert(id.to_string(), name.trim().to_string());
                }
            }
        }
        names
    }

    fn lookup(&self, vendor: &str, device: &str) -> (Option<String>, Option<String>) {
        (
            self.vendors.get(vendor).cloned(),
            self.devices
                .get(&(vendor.to_string(), device.to_string()))
                .cloned(),
        )
    }
}

/// IPv4 addresses per interface on the live system (getifaddrs through
/// `sysinfo`); unavailable for another root.
pub fn ipv4_addresses(source: &Source) -> Result<HashMap<String, Vec<String>>, Reason> {
    if !source.is_live() {
        return Err(reason::NOT_LIVE_SYSTEM.to_string());
    }
    let networks = sysinfo::Networks::new_with_refreshed_list();
    Ok(networks
        .iter()
        .map(|(name, data)| {
            let mut addrs: Vec<String> = data
                .ip_networks()
                .iter()
                .filter(|n| n.addr.is_ipv4())
                .map(|n| format!("{}/{}", n.addr, n.prefix))
                .collect();
            addrs.sort();
            (name.clone(), addrs)
        })
        .collect())
}
