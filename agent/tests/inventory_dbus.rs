//! The D-Bus readers against a private `dbus-daemon` on which this test
//! serves a small UDisks2 and UPower (zbus), exposing the objects and
//! properties the real services expose for the fixture machines' disks and
//! battery.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nird_agent::inventory::{CollectOptions, collect};
use nird_proto::inventory::{Inventory, Reading, SmartHealth, reason};
use support::private_bus::PrivateBus;
use zbus::interface;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

// --- UDisks2 -----------------------------------------------------------------

struct Block {
    device: String,
    drive: OwnedObjectPath,
}

#[interface(name = "org.freedesktop.UDisks2.Block")]
impl Block {
    #[zbus(property)]
    fn device(&self) -> Vec<u8> {
        let mut b = self.device.as_bytes().to_vec();
        b.push(0);
        b
    }
    #[zbus(property)]
    fn drive(&self) -> OwnedObjectPath {
        self.drive.clone()
    }
}

struct Partition;

#[interface(name = "org.freedesktop.UDisks2.Partition")]
impl Partition {
    #[zbus(property)]
    fn number(&self) -> u32 {
        1
    }
}

struct Drive {
    model: String,
    serial: String,
}

#[interface(name = "org.freedesktop.UDisks2.Drive")]
impl Drive {
    #[zbus(property)]
    fn model(&self) -> String {
        self.model.clone()
    }
    #[zbus(property)]
    fn serial(&self) -> String {
        self.serial.clone()
    }
}

struct Ata {
    failing: bool,
    power_on_seconds: u64,
    bad_sectors: i64,
}

#[interface(name = "org.freedesktop.UDisks2.Drive.Ata")]
impl Ata {
    #[zbus(property)]
    fn smart_supported(&self) -> bool {
        true
    }
    #[zbus(property)]
    fn smart_enabled(&self) -> bool {
        true
    }
    #[zbus(property)]
    fn smart_updated(&self) -> u64 {
        1_763_888_000
    }
    #[zbus(property)]
    fn smart_failing(&self) -> bool {
        self.failing
    }
    #[zbus(property)]
    fn smart_power_on_seconds(&self) -> u64 {
        self.power_on_seconds
    }
    #[zbus(property)]
    fn smart_num_bad_sectors(&self) -> i64 {
        self.bad_sectors
    }
    #[zbus(property)]
    fn smart_temperature(&self) -> f64 {
        311.15
    }
}

struct NvmeController;

#[interface(name = "org.freedesktop.UDisks2.NVMe.Controller")]
impl NvmeController {
    #[zbus(property)]
    fn smart_updated(&self) -> u64 {
        1_763_888_000
    }
    #[zbus(property)]
    fn smart_critical_warning(&self) -> Vec<String> {
        Vec::new()
    }
    #[zbus(property)]
    fn smart_power_on_hours(&self) -> u64 {
        5_321
    }
    #[zbus(property)]
    fn smart_temperature(&self) -> u16 {
        309
    }
    fn smart_get_attributes(
        &self,
        _options: HashMap<String, OwnedValue>,
    ) -> HashMap<String, OwnedValue> {
        HashMap::from([
            ("percent_used".to_string(), OwnedValue::from(7u8)),
            ("avail_spare".to_string(), OwnedValue::from(100u8)),
        ])
    }
}

// --- UPower ------------------------------------------------------------------

struct UPower {
    devices: Vec<OwnedObjectPath>,
}

#[interface(name = "org.freedesktop.UPower")]
impl UPower {
    fn enumerate_devices(&self) -> Vec<OwnedObjectPath> {
        self.devices.clone()
    }
}

struct PowerDevice {
    kind: u32,
    power_supply: bool,
    native_path: String,
    energy_full_design: f64,
    energy_full: f64,
    charge_cycles: i32,
}

#[interface(name = "org.freedesktop.UPower.Device")]
impl PowerDevice {
    #[zbus(property, name = "Type")]
    fn kind(&self) -> u32 {
        self.kind
    }
    #[zbus(property)]
    fn power_supply(&self) -> bool {
        self.power_supply
    }
    #[zbus(property)]
    fn native_path(&self) -> String {
        self.native_path.clone()
    }
    #[zbus(property)]
    fn vendor(&self) -> String {
        "SMP".into()
    }
    #[zbus(property)]
    fn model(&self) -> String {
        "DELL 3VC9Y95".into()
    }
    #[zbus(property)]
    fn energy_full_design(&self) -> f64 {
        self.energy_full_design
    }
    #[zbus(property)]
    fn energy_full(&self) -> f64 {
        self.energy_full
    }
    #[zbus(property)]
    fn charge_cycles(&self) -> i32 {
        self.charge_cycles
    }
}

fn path(p: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(p).unwrap()
}

/// Serves UDisks2 and UPower on `address` from a thread with its own Tokio
/// runtime, until the returned sender is dropped.
fn serve(address: String, with_upower: bool) -> std::sync::mpsc::Sender<()> {
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let ssd =
                path("/org/freedesktop/UDisks2/drives/Samsung_SSD_850_EVO_250GB_S2R5NX0H612345A");
            let stick = path("/org/freedesktop/UDisks2/drives/Kingston_DataTraveler_3_0");
            let nvme =
                path("/org/freedesktop/UDisks2/drives/PC401_NVMe_SK_hynix_256GB_NS93N0812345678");
            let udisks = zbus::connection::Builder::address(address.as_str())
                .unwrap()
                .name("org.freedesktop.UDisks2")
                .unwrap()
                .serve_at("/org/freedesktop/UDisks2", zbus::fdo::ObjectManager)
                .unwrap()
                // A dying SATA SSD...
                .serve_at(
                    &ssd,
                    Drive {
                        model: "Samsung SSD 850 EVO 250GB".into(),
                        serial: "S2R5NX0H612345A".into(),
                    },
                )
                .unwrap()
                .serve_at(
                    &ssd,
                    Ata {
                        failing: true,
                        power_on_seconds: 12_345 * 3600 + 59,
                        bad_sectors: 24,
                    },
                )
                .unwrap()
                .serve_at(
                    "/org/freedesktop/UDisks2/block_devices/sda",
                    Block {
                        device: "/dev/sda".into(),
                        drive: ssd.clone(),
                    },
                )
                .unwrap()
                // ... whose partition must not be taken for a disk,
                .serve_at(
                    "/org/freedesktop/UDisks2/block_devices/sda1",
                    Block {
                        device: "/dev/sda1".into(),
                        drive: ssd.clone(),
                    },
                )
                .unwrap()
                .serve_at("/org/freedesktop/UDisks2/block_devices/sda1", Partition)
                .unwrap()
                // a USB stick without SMART,
                .serve_at(
                    &stick,
                    Drive {
                        model: "DataTraveler 3.0".into(),
                        serial: "E0D55EA574B1F3B0A9CD0123".into(),
                    },
                )
                .unwrap()
                .serve_at(
                    "/org/freedesktop/UDisks2/block_devices/sdb",
                    Block {
                        device: "/dev/sdb".into(),
                        drive: stick.clone(),
                    },
                )
                .unwrap()
                // and a healthy NVMe drive.
                .serve_at(
                    &nvme,
                    Drive {
                        model: "PC401 NVMe SK hynix 256GB".into(),
                        serial: "NS93N0812345678".into(),
                    },
                )
                .unwrap()
                .serve_at(&nvme, NvmeController)
                .unwrap()
                .serve_at(
                    "/org/freedesktop/UDisks2/block_devices/nvme0n1",
                    Block {
                        device: "/dev/nvme0n1".into(),
                        drive: nvme.clone(),
                    },
                )
                .unwrap()
                .build()
                .await
                .unwrap();
            let mut upower = None;
            if with_upower {
                let bat = path("/org/freedesktop/UPower/devices/battery_BAT0");
                let mouse = path("/org/freedesktop/UPower/devices/mouse_hidpp_battery_0");
                let ac = path("/org/freedesktop/UPower/devices/line_power_AC");
                upower = Some(
                    zbus::connection::Builder::address(address.as_str())
                        .unwrap()
                        .name("org.freedesktop.UPower")
                        .unwrap()
                        .serve_at(
                            "/org/freedesktop/UPower",
                            UPower {
                                devices: vec![ac.clone(), bat.clone(), mouse.clone()],
                            },
                        )
                        .unwrap()
                        .serve_at(
                            &bat,
                            PowerDevice {
                                kind: 2,
                                power_supply: true,
                                native_path: "BAT0".into(),
                                energy_full_design: 60.8,
                                energy_full: 53.96,
                                charge_cycles: 214,
                            },
                        )
                        .unwrap()
                        .serve_at(
                            &mouse,
                            PowerDevice {
                                kind: 5,
                                power_supply: false,
                                native_path: "hidpp_battery_0".into(),
                                energy_full_design: 0.0,
                                energy_full: 0.0,
                                charge_cycles: -1,
                            },
                        )
                        .unwrap()
                        .serve_at(
                            &ac,
                            PowerDevice {
                                kind: 1,
                                power_supply: true,
                                native_path: "AC".into(),
                                energy_full_design: 0.0,
                                energy_full: 0.0,
                                charge_cycles: -1,
                            },
                        )
                        .unwrap()
                        .build()
                        .await
                        .unwrap(),
                );
            }
            ready_tx.send(()).unwrap();
            // Serve until the test is done.
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
            drop((udisks, upower));
        });
    });
    ready_rx.recv().expect("services started");
    stop_tx
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn collect_with_bus(root: PathBuf, address: &str) -> Inventory {
    collect(&CollectOptions {
        root,
        use_dbus: true,
        packages_of_interest: Vec::new(),
        dbus_address: Some(address.to_string()),
    })
}

#[test]
fn smart_and_battery_come_from_udisks2_and_upower() {
    // PrivateBus::start prints why it is skipped.
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let _services = serve(bus.address.clone(), true);

    let inv = collect_with_bus(fixture("laptop-t430"), &bus.address);
    let disks = inv.storage.disks.value().expect("disks");
    let sda = &disks[0];
    let smart = sda.smart.value().expect("SMART for sda");
    assert_eq!(smart.health, SmartHealth::Failing);
    assert_eq!(smart.power_on_hours, Some(12_300), "floored to 100 h");
    assert_eq!(smart.bad_sectors, Some(24));
    assert_eq!(smart.percent_used, None);
    assert_eq!(
        disks[1].smart.reason(),
        Some("drive has no SMART interface (USB bridge or virtual disk)")
    );

    let inv = collect_with_bus(fixture("laptop-latitude5400"), &bus.address);
    let nvme = &inv.storage.disks.value().unwrap()[0];
    let smart = nvme.smart.value().expect("SMART for nvme0n1");
    assert_eq!(smart.health, SmartHealth::Passed);
    assert_eq!(smart.power_on_hours, Some(5_300));
    assert_eq!(smart.percent_used, Some(7));
    // sysfs says 0 cycles (not counted): UPower's count fills the gap, the
    // capacities stay those read from sysfs.
    let bat = &inv.batteries.value().unwrap()[0];
    assert_eq!(bat.cycle_count, Reading::Value(214));
    assert_eq!(bat.full_capacity_wh, Reading::Value(54.0));
}

#[test]
fn services_not_running_are_reported_not_started() {
    // PrivateBus::start prints why it is skipped.
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let inv = collect_with_bus(fixture("laptop-t430"), &bus.address);
    let sda = &inv.storage.disks.value().unwrap()[0];
    assert_eq!(sda.smart.reason(), Some(reason::UDISKS2_NOT_RUNNING));
    // Without UPower the sysfs battery is still there.
    assert_eq!(
        inv.batteries.value().unwrap()[0].cycle_count,
        Reading::Value(812)
    );

    // An unreachable bus is a reason too, not a failure.
    let inv = collect_with_bus(fixture("laptop-t430"), "unix:path=/nonexistent/bus");
    let reason = inv.storage.disks.value().unwrap()[0]
        .smart
        .reason()
        .unwrap()
        .to_string();
    assert!(
        reason.starts_with("cannot connect to the system bus"),
        "{reason}"
    );
}

#[test]
fn dbus_disabled_by_option() {
    let inv = collect(&CollectOptions {
        root: fixture("laptop-t430"),
        use_dbus: false,
        packages_of_interest: Vec::new(),
        dbus_address: Some("unix:path=/nonexistent/bus".into()),
    });
    let sda = &inv.storage.disks.value().unwrap()[0];
    assert_eq!(sda.smart.reason(), Some(reason::DBUS_DISABLED));
}

/// The daemon collects from `spawn_blocking` inside its Tokio runtime: the
/// D-Bus readers' private runtime must work there.
#[test]
fn collect_works_from_a_tokio_blocking_thread() {
    // PrivateBus::start prints why it is skipped.
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let _services = serve(bus.address.clone(), false);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let address = bus.address.clone();
    let inv = rt.block_on(async move {
        tokio::task::spawn_blocking(move || {
            collect_with_bus(fixture("laptop-latitude5400"), &address)
        })
        .await
        .unwrap()
    });
    let nvme = &inv.storage.disks.value().unwrap()[0];
    assert_eq!(nvme.smart.value().unwrap().health, SmartHealth::Passed);
}
