//! Physical disks (`/sys/block`, the udev database) and mounted
//! filesystems (`/proc/mounts`, statvfs on the live system).

use std::collections::{BTreeSet, HashMap};

use nird_proto::inventory::{
    Disk, DiskKind, Filesystem, FilesystemUsage, Reading, Smart, reason, round_used_percent,
};

use super::source::{Reason, Source, is_placeholder};

/// Reads the physical disks. `smart` maps kernel disk names to their SMART
/// reading (from UDisks2), or says why there is none.
pub fn disks(
    source: &Source,
    smart: &Result<HashMap<String, Reading<Smart>>, Reason>,
) -> Result<Vec<Disk>, Reason> {
    if !source.exists("/sys/block") {
        // Every Linux system has /sys/block: sysfs is not there.
        return Err(reason::NOT_EXPOSED.to_string());
    }
    let mut disks = Vec::new();
    for name in source.list_dir("/sys/block")? {
        if !is_physical_disk_name(&name) || !source.exists(&format!("/sys/block/{name}/device")) {
            continue;
        }
        let base = format!("/sys/block/{name}");
        // `size` is always in 512-byte sectors, whatever the logical block size.
        let Ok(sectors) = source.read_u64(&format!("{base}/size")) else {
            continue;
        };
        // Zero: empty card reader slot or ejected medium. Out of range: a
        // value no disk has, as unusable as an unreadable one.
        let Some(size_bytes) = sectors.checked_mul(512).filter(|b| *b > 0) else {
            continue;
        };
        let udev = udev_properties(source, &base);
        // udev's model comes first: the SCSI `model` attribute is cut at 16
        // characters ("Samsung SSD 850 " for a "Samsung SSD 850 EVO 250GB").
        let udev_model = udev
            .get("ID_MODEL_ENC")
            .map(|m| decode_udev(m))
            .or_else(|| udev.get("ID_MODEL").map(|m| m.replace('_', " ")))
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .ok_or_else(|| reason::NOT_EXPOSED.to_string());
        let model = first_ok([
            udev_model,
            source.read_attr(&format!("{base}/device/model")),
            source.read_attr(&format!("{base}/device/name")),
        ]);
        let serial = first_ok([
            source.read_attr(&format!("{base}/device/serial")),
            source.read_attr(&format!("{base}/serial")),
            udev.get("ID_SERIAL_SHORT")
                .cloned()
                .ok_or_else(|| reason::NOT_EXPOSED.to_string()),
        ])
        .and_then(|s| {
            if is_placeholder(&s) {
                Err(reason::PLACEHOLDER.to_string())
            } else {
                Ok(s)
            }
        });
        let usb = udev.get("ID_BUS").is_some_and(|b| b == "usb");
        let kind = disk_kind(source, &name, model.as_deref().ok(), usb);
        let smart = match smart {
            Ok(map) => match map.get(&name) {
                Some(s) => s.clone(),
                None => Reading::unavailable("UDisks2 has no SMART data for this disk"),
            },
            Err(e) => Reading::unavailable(e.clone()),
        };
        disks.push(Disk {
            name: name.clone(),
            model: model.into(),
            serial: serial.into(),
            size_bytes,
            kind,
            removable: source.read_u64(&format!("{base}/removable")) == Ok(1),
            smart,
        });
    }
    Ok(disks)
}

/// Block devices that are never physical disks: loop, RAM and compressed
/// RAM disks, device-mapper and md arrays, optical and floppy drives,
/// network block devices, eMMC boot and RPMB areas.
fn is_physical_disk_name(name: &str) -> bool {
    const VIRTUAL: &[&str] = &["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"];
    let not_a_disk = VIRTUAL.iter().any(|p| name.starts_with(p))
        || name.ends_with("rpmb")
        || (name.starts_with("mmcblk") && name.contains("boot"));
    !not_a_disk
}

fn first_ok<const N: usize>(candidates: [Result<String, Reason>; N]) -> Result<String, Reason> {
    let mut first_err = None;
    for c in candidates {
        match c {
            Ok(v) => return Ok(v),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| reason::NOT_EXPOSED.to_string()))
}

fn disk_kind(source: &Source, name: &str, model: Option<&str>, usb: bool) -> DiskKind {
    let virtual_model = model.is_some_and(|m| {
        ["QEMU", "VBOX", "VMware", "Virtual disk"]
            .iter()
            .any(|v| m.contains(v))
    });
    if name.starts_with("vd") || name.starts_with("xvd") || virtual_model {
        DiskKind::Virtual
    } else if name.starts_with("nvme") {
        DiskKind::Nvme
    } else if usb {
        // USB bridges report "rotational" for flash sticks too.
        DiskKind::Usb
    } else if source.read_u64(&format!("/sys/block/{name}/queue/rotational")) == Ok(1) {
        DiskKind::Hdd
    } else {
        DiskKind::Ssd
    }
}

/// Undoes udev's `\xNN` escaping (`ID_MODEL_ENC`).
fn decode_udev(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i..i + 4)
            .filter(|b| b.starts_with(b"\\x"))
            .and_then(|b| std::str::from_utf8(&b[2..]).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `E:KEY=value` lines of the udev database entry of a block device
/// (`/run/udev/data/b<major>:<minor>`), readable without root.
fn udev_properties(source: &Source, base: &str) -> HashMap<String, String> {
    let Ok(dev) = source.read_attr(&format!("{base}/dev")) else {
        return HashMap::new();
    };
    let Ok(text) = source.read_text(&format!("/run/udev/data/b{dev}")) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Filesystems stored on disks (not tmpfs, proc, overlays of containers...).
const DISK_FILESYSTEMS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "exfat", "ntfs", "ntfs3", "fuseblk", "f2fs",
    "jfs", "reiserfs", "zfs", "bcachefs",
];

/// Reads the mounted disk filesystems, one per device (bind mounts and
/// btrfs subvolumes of an already listed device are left out).
pub fn filesystems(source: &Source) -> Result<Vec<Filesystem>, Reason> {
    let mounts = source.read_text("/proc/mounts")?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(device), Some(mount_point), Some(fs_type)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !DISK_FILESYSTEMS.contains(&fs_type) || !seen.insert(device.to_string()) {
            continue;
        }
        let mount_point = unescape_mount(mount_point);
        let usage = if source.is_live() {
            usage(&mount_point).into()
        } else {
            Reading::unavailable(reason::NOT_LIVE_SYSTEM)
        };
        out.push(Filesystem {
            mount_point,
            device: unescape_mount(device),
            fs_type: fs_type.to_string(),
            usage,
        });
    }
    Ok(out)
}

/// `/proc/mounts` writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| {
                let v = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                u8::try_from(v).ok()
            });
        if let Some(v) = octal {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn usage(mount_point: &str) -> Result<FilesystemUsage, Reason> {
    let st = rustix::fs::statvfs(mount_point).map_err(|e| format!("statvfs failed: {e}"))?;
    let size = st.f_blocks.saturating_mul(st.f_frsize);
    let used = st
        .f_blocks
        .saturating_sub(st.f_bfree)
        .saturating_mul(st.f_frsize);
    Ok(FilesystemUsage {
        size_bytes: size,
        used_percent: round_used_percent(used, size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_escapes() {
        assert_eq!(unescape_mount("/media/USB\\040KEY"), "/media/USB KEY");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/end\\04"), "/end\\04");
    }

    #[test]
    fn udev_escapes() {
        assert_eq!(decode_udev("Samsung\\x20SSD\\x20850"), "Samsung SSD 850");
        assert_eq!(decode_udev("plain\\x2"), "plain\\x2");
    }

    #[test]
    fn disk_names() {
        assert!(is_physical_disk_name("sda"));
        assert!(is_physical_disk_name("nvme0n1"));
        assert!(is_physical_disk_name("mmcblk0"));
        assert!(!is_physical_disk_name("mmcblk0boot0"));
        assert!(!is_physical_disk_name("zram0"));
        assert!(!is_physical_disk_name("loop3"));
        assert!(!is_physical_disk_name("sr0"));
    }
}
