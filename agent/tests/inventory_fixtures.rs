//! Inventory of the fixture trees in `tests/fixtures/` (written by
//! `generate.py` from the values of real machines): every reader runs
//! against them and the document must carry exactly those values.

use std::path::PathBuf;

use nird_agent::inventory::{CollectOptions, collect};
use nird_proto::inventory::{
    BootMode, ChassisKind, DiskKind, InputKind, Inventory, NetworkKind, Reading, SecureBoot, Tpm,
    Windows11Requirement as R, Windows11Status, reason,
};

fn fixture(name: &str) -> Inventory {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    assert!(root.is_dir(), "missing fixture {}", root.display());
    collect(&CollectOptions {
        root,
        use_dbus: true,
        packages_of_interest: vec!["firefox".into(), "gcompris-qt".into()],
        dbus_address: None,
    })
}

fn v<T: Clone + std::fmt::Debug>(r: &Reading<T>) -> T {
    r.value()
        .cloned()
        .unwrap_or_else(|| panic!("expected a value, got {r:?}"))
}

const GIB: u64 = 1024 * 1024 * 1024;

/// A real dpkg database: a Debian 12 school desktop (Xfce, French, the
/// educational software PrimTux ships: GCompris, TuxPaint, the KDE Edu
/// suite...) installed by apt in a chroot, kept with the fields the agent
/// reads (`Package`, `Status`, `Section`, `Installed-Size`,
/// `Architecture`, `Version`, as dpkg wrote them). Every installed package
/// is listed with dpkg's values, epochs and Debian revisions included.
#[test]
fn debian12_school_desktop_real_dpkg_database() {
    let inv = fixture("desktop-debian12-ecole");
    let os = &inv.os;
    assert_eq!(v(&os.pretty_name), "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(v(&os.id), "debian");
    let pkgs = v(&os.packages);
    assert_eq!(pkgs.installed_count, 2172);
    assert_eq!(pkgs.of_interest["gcompris-qt"].as_deref(), Some("3.1-2"));
    // Debian ships Firefox as firefox-esr.
    assert_eq!(pkgs.of_interest["firefox"], None);
    let list = v(&inv.software).packages;
    assert_eq!(list.len(), 2172);
    assert_eq!(list[0].name, "acl");
    assert_eq!(list[2171].name, "zstd");
    let find = |name: &str| {
        list.iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    let gcompris = find("gcompris-qt");
    assert_eq!(
        (gcompris.version.as_str(), gcompris.arch.as_str()),
        ("3.1-2", "amd64")
    );
    assert_eq!(gcompris.section.as_deref(), Some("education"));
    assert_eq!(gcompris.size_kib, Some(727));
    assert_eq!(find("tuxpaint").version, "1:0.9.28-sdl2-1");
    assert_eq!(find("libreoffice-writer").version, "4:7.4.7-1+deb12u14");
    assert_eq!(find("libreoffice-writer").size_kib, Some(38_207));
    assert_eq!(find("firefox-esr").version, "140.12.0esr-1~deb12u1");
    assert_eq!(find("task-french-desktop").arch, "all");
    assert_eq!(list.iter().filter(|p| p.arch == "all").count(), 536);
    assert!(list.iter().all(|p| p.section.is_some()));
    let total: u64 = list.iter().filter_map(|p| p.size_kib).sum();
    assert_eq!(total, 8_875_259);
    assert!(list.windows(2).all(|w| w[0].key() < w[1].key()));
}

#[test]
fn laptop_t430_worn_battery_no_tpm() {
    let inv = fixture("laptop-t430");
    assert_eq!(inv.schema_version, 2);
    let id = &inv.identity;
    assert_eq!(v(&id.machine_id), "0b6e2d8f4c1a4e7f9a3d5c2b1e0f9a8d");
    assert_eq!(v(&id.hostname), "cdi-salle12-pc07");
    assert_eq!(v(&id.vendor), "LENOVO");
    assert_eq!(v(&id.product), "2349ABG");
    assert_eq!(v(&id.product_family), "ThinkPad T430");
    assert_eq!(v(&id.serial), "PB4H7KL");
    assert_eq!(v(&id.uuid), "6f1c8a01-51ab-11cb-9a7d-c3c5e0b2a1f4");
    assert_eq!(v(&id.chassis).kind, ChassisKind::Laptop);
    assert_eq!(v(&id.chassis).smbios_code, 10);

    let fw = &inv.firmware;
    assert_eq!(v(&fw.bios_vendor), "LENOVO");
    assert_eq!(v(&fw.bios_version), "G1ET93WW (2.53 )");
    assert_eq!(v(&fw.bios_date), "2013-05-14");
    assert_eq!(
        inv.hardware_age_years(time::macros::date!(2026 - 11 - 23)),
        Some(13)
    );
    assert_eq!(v(&fw.boot_mode), BootMode::Uefi);
    assert!(v(&fw.uefi_capable));
    assert_eq!(v(&fw.secure_boot), SecureBoot::Unsupported);
    assert_eq!(
        v(&fw.tpm),
        Tpm {
            present: false,
            version: None
        }
    );

    let cpu = &inv.cpu;
    assert_eq!(v(&cpu.vendor), "GenuineIntel");
    assert_eq!(
        v(&cpu.model_name),
        "Intel(R) Core(TM) i5-3320M CPU @ 2.60GHz"
    );
    assert_eq!(
        (v(&cpu.family), v(&cpu.model), v(&cpu.stepping)),
        (6, 58, 9)
    );
    assert_eq!((v(&cpu.cores), v(&cpu.threads)), (2, 4));
    assert_eq!(v(&cpu.max_frequency_mhz), 3300);
    assert!(!cpu.virtualized);

    assert_eq!(v(&inv.memory.total_bytes), 7_869_876 * 1024);
    let modules = v(&inv.memory.modules);
    assert_eq!(modules.len(), 2);
    assert_eq!(modules[0].locator, "ChannelA-DIMM0");
    assert_eq!(modules[0].size_bytes, 4 * GIB);
    assert_eq!(modules[0].kind.as_deref(), Some("DDR3"));
    assert_eq!(modules[0].speed_mts, Some(1600));
    assert_eq!(modules[0].manufacturer.as_deref(), Some("Samsung"));
    assert_eq!(modules[0].part_number.as_deref(), Some("M471B5273DH0-CK0"));
    assert_eq!(modules[1].locator, "ChannelB-DIMM0");

    // sr0 (optical) and loop0 are not disks; the USB stick is, removable.
    let disks = v(&inv.storage.disks);
    let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["sda", "sdb"]);
    let sda = &disks[0];
    assert_eq!(v(&sda.model), "Samsung SSD 850 EVO 250GB");
    assert_eq!(v(&sda.serial), "S2R5NX0H612345A");
    assert_eq!(sda.size_bytes, 250_059_350_016);
    assert_eq!(sda.kind, DiskKind::Ssd);
    assert!(!sda.removable);
    assert_eq!(sda.smart.reason(), Some(reason::NOT_LIVE_SYSTEM));
    assert_eq!(disks[1].kind, DiskKind::Usb);
    assert!(disks[1].removable);
    assert_eq!(v(&disks[1].model), "DataTraveler 3.0");

    // One entry per device (the /var/snap bind mount of sda2 is left out),
    // escapes decoded, no usage outside the live system.
    let fss = v(&inv.storage.filesystems);
    let mounts: Vec<(&str, &str, &str)> = fss
        .iter()
        .map(|f| {
            (
                f.mount_point.as_str(),
                f.device.as_str(),
                f.fs_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("/", "/dev/sda2", "ext4"),
            ("/boot/efi", "/dev/sda1", "vfat"),
            ("/media/eleve/CLE USB", "/dev/sdb1", "vfat"),
        ]
    );
    assert_eq!(fss[0].usage.reason(), Some(reason::NOT_LIVE_SYSTEM));

    // The mouse battery (scope Device) and the AC adapter are left out.
    let bats = v(&inv.batteries);
    assert_eq!(bats.len(), 1);
    let bat = &bats[0];
    assert_eq!(bat.name, "BAT0");
    assert_eq!(bat.manufacturer.as_deref(), Some("SANYO"));
    assert_eq!(bat.model.as_deref(), Some("45N1001"));
    assert_eq!(bat.technology.as_deref(), Some("Li-ion"));
    assert_eq!(v(&bat.design_capacity_wh), 57.7);
    assert_eq!(v(&bat.full_capacity_wh), 31.7);
    assert_eq!(v(&bat.wear_percent), 45);
    assert_eq!(v(&bat.cycle_count), 812);

    let gpus = v(&inv.graphics);
    assert_eq!(gpus.len(), 1);
    assert_eq!(gpus[0].address, "0000:00:02.0");
    assert_eq!(
        (gpus[0].vendor_id.as_str(), gpus[0].device_id.as_str()),
        ("8086", "0166")
    );
    assert_eq!(gpus[0].subsystem.as_deref(), Some("17aa:21f3"));
    assert_eq!(gpus[0].driver.as_deref(), Some("i915"));
    assert_eq!(gpus[0].vendor_name.as_deref(), Some("Intel Corporation"));
    assert_eq!(
        gpus[0].device_name.as_deref(),
        Some("3rd Gen Core processor Graphics Controller")
    );

    // lo and docker0 have no device: only the two physical adapters.
    let nics = v(&inv.network);
    assert_eq!(nics.len(), 2);
    assert_eq!(nics[0].interface, "enp0s25");
    assert_eq!(nics[0].kind, NetworkKind::Wired);
    assert_eq!(v(&nics[0].mac), "3c:97:0e:4a:21:7b");
    assert_eq!(nics[0].driver.as_deref(), Some("e1000e"));
    let pci = nics[0].pci.as_ref().expect("PCI adapter");
    assert_eq!(
        (pci.address.as_str(), pci.device_id.as_str()),
        ("0000:00:19.0", "1502")
    );
    assert_eq!(nics[1].interface, "wlp3s0");
    assert_eq!(nics[1].kind, NetworkKind::Wireless);
    assert_eq!(nics[1].driver.as_deref(), Some("iwlwifi"));
    assert_eq!(
        nics[1].pci.as_ref().and_then(|p| p.device_name.as_deref()),
        Some("Centrino Advanced-N 6205 [Taylor Peak]")
    );
    assert_eq!(nics[0].ipv4.reason(), Some(reason::NOT_LIVE_SYSTEM));

    let os = &inv.os;
    assert_eq!(v(&os.pretty_name), "Linux Mint 22");
    assert_eq!(v(&os.id), "linuxmint");
    assert_eq!(v(&os.version_id), "22");
    assert_eq!(v(&os.kernel), "6.8.0-45-generic");
    assert_eq!(v(&os.architecture), "x86_64");
    let pkgs = v(&os.packages);
    assert_eq!(pkgs.installed_count, 4);
    assert_eq!(
        pkgs.of_interest["firefox"].as_deref(),
        Some("131.0+linuxmint1+wilma")
    );
    // gcompris-qt was removed, only its config files remain.
    assert_eq!(pkgs.of_interest["gcompris-qt"], None);
    let software = v(&inv.software);
    let names: Vec<&str> = software.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "base-files",
            "firefox",
            "libreoffice-writer",
            "xfce4-session"
        ]
    );
    assert_eq!(software.packages[1].arch, "amd64");
    assert!(software.flatpaks.is_empty());
    // The laptop's own panel (real EDID), two empty connectors.
    let screens = v(&inv.monitors);
    assert_eq!(screens.len(), 1);
    assert!(screens[0].builtin);
    assert_eq!(screens[0].model.as_deref(), Some("LTN156AT16L01"));
    // No CUPS: no printers; no /proc/bus/input: a reason, not "none".
    assert_eq!(v(&inv.peripherals.printers), []);
    assert_eq!(inv.peripherals.input.reason(), Some(reason::NOT_EXPOSED));

    assert_eq!(inv.windows11.status, Windows11Status::Ineligible);
    assert_eq!(
        inv.windows11.blockers,
        [R::Tpm2, R::SupportedCpu, R::SecureBoot]
    );
    assert!(inv.windows11.unknown.is_empty());
}

#[test]
fn desktop_optiplex390_legacy_bios_small_ram() {
    let inv = fixture("desktop-optiplex390");
    let id = &inv.identity;
    assert_eq!(v(&id.vendor), "Dell Inc.");
    assert_eq!(v(&id.product), "OptiPlex 390");
    // No product_family file, and product_version "01" is not a name.
    assert_eq!(id.product_family.reason(), Some(reason::NOT_EXPOSED));
    assert_eq!(v(&id.serial), "7XK2J5J");
    assert_eq!(v(&id.chassis).kind, ChassisKind::Desktop);
    let fw = &inv.firmware;
    assert_eq!(v(&fw.bios_date), "2012-12-11");
    assert_eq!(v(&fw.boot_mode), BootMode::Legacy);
    assert!(!v(&fw.uefi_capable));
    assert_eq!(fw.secure_boot.reason(), Some(reason::LEGACY_BOOT));
    assert!(!v(&fw.tpm).present);
    assert_eq!(
        v(&inv.cpu.model_name),
        "Intel(R) Core(TM) i3-2120 CPU @ 3.30GHz"
    );
    assert_eq!((v(&inv.cpu.cores), v(&inv.cpu.threads)), (2, 4));
    // The empty DIMM2 slot is not a module, but it is a free slot.
    let modules = v(&inv.memory.modules);
    assert_eq!(modules.len(), 1);
    assert_eq!(v(&inv.memory.slots), 2);
    assert_eq!(inv.memory.free_slots(), Some(1));
    assert_eq!(modules[0].locator, "DIMM1");
    assert_eq!(modules[0].form_factor.as_deref(), Some("DIMM"));
    // ACPI tables but no MSDM: not sold with an embedded Windows licence.
    assert!(!v(&fw.windows_oem_licence));
    assert_eq!(modules[0].size_bytes, 2 * GIB);
    assert_eq!(modules[0].speed_mts, Some(1333));
    let disks = v(&inv.storage.disks);
    assert_eq!(disks.len(), 1);
    assert_eq!(disks[0].kind, DiskKind::Hdd);
    assert_eq!(v(&disks[0].model), "WDC WD2500AAKX-753CA1");
    assert_eq!(v(&disks[0].serial), "WD-WCAYUJ123456");
    assert!(v(&inv.batteries).is_empty());
    let gpus = v(&inv.graphics);
    assert_eq!(gpus[0].device_id, "0102");
    // No pci.ids on this machine: no names, never guessed.
    assert_eq!(gpus[0].vendor_name, None);
    let nics = v(&inv.network);
    assert_eq!(nics.len(), 1);
    assert_eq!(nics[0].driver.as_deref(), Some("r8169"));
    assert_eq!(v(&inv.os.id), "primtux");
    let pkgs = v(&inv.os.packages);
    assert_eq!(pkgs.installed_count, 4);
    assert_eq!(pkgs.of_interest["gcompris-qt"].as_deref(), Some("3.1-1"));
    assert_eq!(pkgs.of_interest["firefox"], None);
    assert_eq!(inv.windows11.status, Windows11Status::Ineligible);
    assert_eq!(
        inv.windows11.blockers,
        [R::Tpm2, R::SupportedCpu, R::Ram4Gb, R::Uefi, R::SecureBoot]
    );
    // Two real EDIDs (tests/fixtures/edid/SOURCES.md); the empty HDMI
    // connector has nothing plugged in.
    let screens = v(&inv.monitors);
    assert_eq!(screens.len(), 2, "{screens:#?}");
    assert_eq!(screens[0].connector, "DP-1");
    assert_eq!(screens[0].manufacturer_id, "DEL");
    assert_eq!(screens[0].manufacturer, None, "no pnp.ids: no name");
    assert_eq!(screens[0].model.as_deref(), Some("D1918H"));
    assert_eq!(screens[0].serial.as_deref(), Some("2C8FJ8255K5E"));
    assert_eq!((screens[0].year, screens[0].week), (Some(2018), Some(6)));
    assert_eq!(screens[0].diagonal_inches(), Some(18.5));
    assert_eq!(screens[1].connector, "VGA-1");
    assert_eq!(screens[1].model.as_deref(), Some("Philips 150S"));
    assert_eq!((screens[1].year, screens[1].week), (Some(2003), Some(7)));
    assert!(!screens[1].digital && !screens[1].builtin);

    let p = &inv.peripherals;
    let pci = v(&p.pci);
    assert_eq!(pci.len(), 2);
    assert_eq!(pci[1].class.as_deref(), Some("0200"));
    // Keyboard and mouse receiver; the hubs and the USB stick left out.
    let usb = v(&p.usb);
    assert_eq!(usb.len(), 2, "{usb:#?}");
    assert_eq!(
        (usb[0].vendor_id.as_str(), usb[0].product_id.as_str()),
        ("413c", "2113")
    );
    assert_eq!(usb[0].class.as_deref(), Some("03"));
    // Names from usb.ids first, the device's own strings otherwise.
    assert_eq!(usb[0].product_name.as_deref(), Some("KB216 Wired Keyboard"));
    assert_eq!(usb[1].vendor_name.as_deref(), Some("Logitech, Inc."));
    assert_eq!(usb[1].product_name.as_deref(), Some("Unifying Receiver"));
    let sound = v(&p.sound);
    assert_eq!(sound.len(), 1);
    assert_eq!(
        (sound[0].driver.as_str(), sound[0].name.as_str()),
        ("HDA-Intel", "HDA Intel PCH")
    );
    // The power button and the keyboard's system-control device are not
    // keyboards.
    let input = v(&p.input);
    let kinds: Vec<(&str, InputKind)> = input.iter().map(|d| (d.name.as_str(), d.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("Dell KB216 Wired Keyboard", InputKind::Keyboard),
            ("Logitech Wireless Mouse", InputKind::Pointing)
        ]
    );
    let printers = v(&p.printers);
    assert_eq!(printers.len(), 2);
    assert_eq!(printers[0].name, "Brother_HL-L2350DW");
    assert_eq!(
        printers[0].driver.as_deref(),
        Some("Brother HL-L2350DW series, driverless, cups-filters 1.28.17")
    );
    assert!(printers[0].network);
    // No PPD: MakeModel; the URI's password is nowhere in the document.
    assert_eq!(printers[1].backend.as_deref(), Some("smb"));
    assert!(
        printers[1]
            .driver
            .as_deref()
            .unwrap()
            .starts_with("Generic PCL 6")
    );
    let json = serde_json::to_string(&inv).unwrap();
    assert!(!json.contains("motdepasse"));
}

#[test]
fn latitude5400_nvme_tpm2_is_windows11_eligible() {
    let inv = fixture("laptop-latitude5400");
    assert_eq!(v(&inv.identity.product), "Latitude 5400");
    assert_eq!(v(&inv.identity.product_family), "Latitude");
    let fw = &inv.firmware;
    assert_eq!(v(&fw.boot_mode), BootMode::Uefi);
    assert_eq!(v(&fw.secure_boot), SecureBoot::Enabled);
    assert_eq!(
        v(&fw.tpm),
        Tpm {
            present: true,
            version: Some("2.0".into())
        }
    );
    assert_eq!(v(&fw.bios_date), "2024-06-05");
    assert_eq!(
        (v(&inv.cpu.family), v(&inv.cpu.model), v(&inv.cpu.stepping)),
        (6, 142, 12)
    );
    assert_eq!((v(&inv.cpu.cores), v(&inv.cpu.threads)), (4, 8));
    assert_eq!(v(&inv.cpu.max_frequency_mhz), 4100);
    // Sold with Windows: the MSDM table is there (its content is never read).
    assert!(v(&fw.windows_oem_licence));
    let modules = v(&inv.memory.modules);
    assert_eq!(modules.len(), 1);
    assert_eq!(modules[0].kind.as_deref(), Some("DDR4"));
    assert_eq!(modules[0].replaceable(), Some(true));
    assert_eq!(modules[0].size_bytes, 8 * GIB);
    let disks = v(&inv.storage.disks);
    assert_eq!(disks.len(), 1);
    assert_eq!(disks[0].name, "nvme0n1");
    assert_eq!(disks[0].kind, DiskKind::Nvme);
    assert_eq!(v(&disks[0].model), "PC401 NVMe SK hynix 256GB");
    assert_eq!(v(&disks[0].serial), "NS93N0812345678");
    assert_eq!(disks[0].size_bytes, 256_060_514_304);
    // Capacities in µAh converted with the design voltage (7.6 V).
    let bat = &v(&inv.batteries)[0];
    assert_eq!(v(&bat.design_capacity_wh), 60.8);
    assert_eq!(v(&bat.full_capacity_wh), 54.0);
    assert_eq!(v(&bat.wear_percent), 11);
    assert!(bat.cycle_count.reason().unwrap().contains("0 cycles"));
    let nics = v(&inv.network);
    let kinds: Vec<(&str, NetworkKind)> = nics
        .iter()
        .map(|n| (n.interface.as_str(), n.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("enp0s31f6", NetworkKind::Wired),
            ("wlp0s20f3", NetworkKind::Wireless)
        ]
    );
    assert_eq!(inv.windows11.status, Windows11Status::Eligible);
    assert!(inv.windows11.blockers.is_empty());
    assert!(inv.windows11.unknown.is_empty());
}

#[test]
fn qemu_vm() {
    let inv = fixture("vm-qemu");
    assert_eq!(v(&inv.identity.vendor), "QEMU");
    assert_eq!(v(&inv.identity.product), "Standard PC (Q35 + ICH9, 2009)");
    // No product_serial file in this VM.
    assert_eq!(inv.identity.serial.reason(), Some(reason::NOT_EXPOSED));
    assert_eq!(v(&inv.identity.chassis).kind, ChassisKind::Other);
    assert_eq!(v(&inv.firmware.bios_vendor), "SeaBIOS");
    assert!(!v(&inv.firmware.uefi_capable));
    let cpu = &inv.cpu;
    assert!(cpu.virtualized);
    assert_eq!(v(&cpu.model_name), "QEMU Virtual CPU version 2.5+");
    // Two sockets of one core each.
    assert_eq!((v(&cpu.cores), v(&cpu.threads)), (2, 2));
    assert!(
        cpu.max_frequency_mhz
            .reason()
            .unwrap()
            .contains("no cpufreq")
    );
    let modules = v(&inv.memory.modules);
    assert_eq!(modules[0].locator, "DIMM 0");
    assert_eq!(modules[0].kind.as_deref(), Some("RAM"));
    assert_eq!(modules[0].speed_mts, None);
    assert_eq!(
        modules[0].part_number, None,
        "'Not Specified' is no part number"
    );
    let disks = v(&inv.storage.disks);
    assert_eq!(disks.len(), 1);
    assert_eq!(disks[0].kind, DiskKind::Virtual);
    assert_eq!(disks[0].size_bytes, 32 * GIB);
    assert_eq!(disks[0].model.reason(), Some(reason::NOT_EXPOSED));
    // virtio-net: the PCI device is the parent of the virtio device.
    let nic = &v(&inv.network)[0];
    assert_eq!(nic.driver.as_deref(), Some("virtio_net"));
    let pci = nic.pci.as_ref().expect("virtio-pci parent");
    assert_eq!(
        (
            pci.address.as_str(),
            pci.vendor_id.as_str(),
            pci.device_id.as_str()
        ),
        ("0000:01:00.0", "1af4", "1041")
    );
    assert_eq!(inv.windows11.status, Windows11Status::Ineligible);
    assert_eq!(
        inv.windows11.blockers,
        [
            R::Tpm2,
            R::SupportedCpu,
            R::Ram4Gb,
            R::Storage64Gb,
            R::Uefi,
            R::SecureBoot
        ]
    );
}

#[test]
fn hash_is_stable_and_follows_changes() {
    let a = fixture("laptop-t430");
    let b = fixture("laptop-t430");
    assert_eq!(a.content_hash(), b.content_hash());
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(
        nird_proto::hash::content_hash(&json).unwrap(),
        a.content_hash(),
        "the server recomputes the hash over the JSON it receives"
    );
    let back: Inventory = serde_json::from_value(json).unwrap();
    assert_eq!(back, a);
    let mut c = a.clone();
    c.os.kernel = Reading::Value("6.8.0-48-generic".into());
    assert_ne!(a.content_hash(), c.content_hash());
    assert_ne!(fixture("vm-qemu").content_hash(), a.content_hash());
}

#[test]
fn missing_root_gives_reasons_not_panics() {
    let empty = tempfile::tempdir().unwrap();
    let inv = collect(&CollectOptions {
        root: empty.path().to_path_buf(),
        ..CollectOptions::default()
    });
    assert_eq!(inv.identity.machine_id.reason(), Some(reason::NOT_EXPOSED));
    assert_eq!(inv.cpu.model_name.reason(), Some(reason::NOT_EXPOSED));
    assert_eq!(inv.memory.total_bytes.reason(), Some(reason::NOT_EXPOSED));
    assert_eq!(inv.storage.disks.reason(), Some(reason::NOT_EXPOSED));
    assert_eq!(inv.windows11.status, Windows11Status::Unknown);
}

/// The document's field names are a contract with the server and its
/// dashboard: the whole document of the T430 is compared with a reviewed
/// copy. Set `NIRD_UPDATE_GOLDEN=1` to rewrite it after an intended change.
#[test]
fn document_layout_matches_the_reviewed_copy() {
    let mut doc = serde_json::to_value(fixture("laptop-t430")).unwrap();
    doc["agent_version"] = "(version)".into();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/laptop-t430.json");
    if std::env::var_os("NIRD_UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        doc,
        expected,
        "inventory layout changed; see {}",
        path.display()
    );
}

#[test]
fn french_summary_of_the_t430() {
    let inv = fixture("laptop-t430");
    let text = nird_agent::inventory::summary::render(&inv, time::macros::date!(2026 - 11 - 23));
    for expected in [
        "Inventaire de cdi-salle12-pc07",
        "Machine      : LENOVO ThinkPad T430 (2349ABG), portable",
        "Firmware     : LENOVO G1ET93WW (2.53 ), du 14/05/2013 (environ 13 ans)",
        "Démarrage    : UEFI ; Secure Boot : non pris en charge ; aucun TPM visible",
        "2 cœurs, 4 threads, 3,3 GHz max",
        "4 Gio DDR3 1600 MT/s + 4 Gio DDR3 1600 MT/s",
        "sda : Samsung SSD 850 EVO 250GB, SSD, 250,1 Go ; SMART : non lu hors du système en marche",
        "/media/eleve/CLE USB (vfat, /dev/sdb1)",
        "Batterie     : BAT0 : usure 45 % (31,7 Wh sur 57,7 Wh d'origine), 812 cycles",
        "firefox 131.0+linuxmint1+wilma ; gcompris-qt non installé",
        "Windows 11   : REFUSERAIT cette machine : pas de TPM 2.0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.contains(&inv.content_hash()));
}

/// Numbers from /proc and /sys that do not fit (a corrupt or odd kernel
/// file) give reasons, not an overflow panic or a wrapped value.
#[test]
fn out_of_range_numbers_give_reasons_not_panics() {
    let root = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let file = root.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    };
    let max = u64::MAX;
    // Two packages of 2^32 - 1 cores each, no core ids.
    write(
        "proc/cpuinfo",
        "processor\t: 0\nphysical id\t: 0\ncpu cores\t: 4294967295\n\n\
         processor\t: 1\nphysical id\t: 1\ncpu cores\t: 4294967295\n",
    );
    write("proc/meminfo", &format!("MemTotal:       {max} kB\n"));
    write(
        "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",
        &format!("{max}\n"),
    );
    write("sys/block/sda/size", &format!("{max}\n"));
    std::fs::create_dir_all(root.path().join("sys/block/sda/device")).unwrap();
    write("sys/block/sdb/size", "1000215216\n");
    std::fs::create_dir_all(root.path().join("sys/block/sdb/device")).unwrap();

    let inv = collect(&CollectOptions {
        root: root.path().to_path_buf(),
        ..CollectOptions::default()
    });
    assert_eq!(
        inv.cpu.cores.reason(),
        Some("cpu cores out of range: 4294967295")
    );
    assert_eq!(v(&inv.cpu.threads), 2);
    assert!(
        inv.cpu
            .max_frequency_mhz
            .reason()
            .is_some_and(|r| r.starts_with("cpuinfo_max_freq out of range")),
        "{:?}",
        inv.cpu.max_frequency_mhz
    );
    assert!(
        inv.memory
            .total_bytes
            .reason()
            .is_some_and(|r| r.starts_with("MemTotal out of range")),
        "{:?}",
        inv.memory.total_bytes
    );
    // The disk with an impossible size is left out, the other one is read.
    let disks = v(&inv.storage.disks);
    let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["sdb"]);
    assert_eq!(disks[0].size_bytes, 1000215216 * 512);
}

/// SMBIOS tables come from the firmware and may be cut short or odd: every
/// prefix of the fixtures' tables, and each with one byte changed, parses
/// without panicking.
#[test]
fn truncated_or_altered_smbios_tables_do_not_panic() {
    use nird_agent::inventory::smbios;
    for name in [
        "laptop-t430",
        "desktop-optiplex390",
        "laptop-latitude5400",
        "vm-qemu",
    ] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
            .join("sys/firmware/dmi/tables/DMI");
        let table = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for len in 0..=table.len() {
            smbios::parse(table[..len].to_vec(), None);
        }
        for i in 0..table.len() {
            for byte in [0x00, 0x01, 0x7f, 0xff] {
                let mut odd = table.clone();
                odd[i] = byte;
                smbios::parse(odd, None);
            }
        }
    }
}
