//! Hardware and OS inventory: collectors that read a system (the live one or
//! a fixture tree) into the [`Inventory`] document of `nird_proto`, and its
//! renderings (French summary, GLPI format).
//!
//! Collection never fails as a whole: each value that cannot be read carries
//! its reason ([`nird_proto::inventory::Reading`]). Every file is read under
//! [`CollectOptions::root`]; values that only exist on the running system
//! (statvfs, IP addresses, D-Bus services) are read only when the root is
//! `/`, unless a bus address is given explicitly.

mod battery;
pub mod cli;
mod cpu;
mod dbus;
mod devices;
mod firmware;
mod identity;
mod os;
mod peripherals;
pub mod screens;
pub mod smbios;
mod software;
mod source;
mod storage;
pub mod summary;

use std::path::PathBuf;

use nird_proto::inventory::{Inventory, Peripherals, SCHEMA_VERSION, Storage, reason, windows11};

/// How to collect.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Root of the system to inventory: `/` for the live system, a fixture
    /// tree in tests.
    pub root: PathBuf,
    /// Ask UDisks2 (SMART) and UPower (batteries) over D-Bus.
    pub use_dbus: bool,
    /// Packages whose installed versions the document reports (those the
    /// applied profiles name).
    pub packages_of_interest: Vec<String>,
    /// D-Bus address to use instead of the system bus (tests run a private
    /// bus). When `None`, the system bus is asked only if `root` is `/`.
    pub dbus_address: Option<String>,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            root: PathBuf::from("/"),
            use_dbus: true,
            packages_of_interest: Vec::new(),
            dbus_address: None,
        }
    }
}

/// Collects the whole inventory. Never fails: unreadable values carry their
/// reason. Blocks (file reads, and D-Bus calls on a private runtime): from
/// async code, call it inside `tokio::task::spawn_blocking`.
pub fn collect(options: &CollectOptions) -> Inventory {
    let source = source::Source::new(&options.root);

    let dbus = if !options.use_dbus {
        dbus::DbusFacts::unavailable(reason::DBUS_DISABLED)
    } else if options.dbus_address.is_none() && !source.is_live() {
        dbus::DbusFacts::unavailable(reason::NOT_LIVE_SYSTEM)
    } else {
        dbus::read(options.dbus_address.as_deref())
    };

    let smbios = smbios::read(&source);
    let pci_names = devices::PciNames::load(&source);
    let ipv4 = devices::ipv4_addresses(&source);
    let (os, packages) = os::collect(&source, &options.packages_of_interest);

    let mut inventory = Inventory {
        schema_version: SCHEMA_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        identity: identity::collect(&source),
        firmware: firmware::collect(&source, &smbios),
        cpu: cpu::collect(&source),
        memory: cpu::memory(&source, &smbios),
        storage: Storage {
            disks: storage::disks(&source, &dbus.smart).into(),
            filesystems: storage::filesystems(&source).into(),
        },
        batteries: battery::collect(&source, &dbus.upower).into(),
        graphics: devices::graphics(&source, &pci_names).into(),
        network: devices::network(&source, &pci_names, &ipv4).into(),
        os,
        // Placeholder until judged below from the collected facts.
        windows11: windows11::Windows11Verdict {
            status: windows11::Windows11Status::Unknown,
            blockers: Vec::new(),
            unknown: Vec::new(),
            cpu_basis: windows11::CpuBasis::Unknown,
        },
        software: software::collect(&source, packages),
        monitors: screens::collect(&source).into(),
        peripherals: Peripherals {
            pci: devices::all_pci(&source, &pci_names).into(),
            usb: peripherals::usb(&source).into(),
            sound: peripherals::sound(&source).into(),
            input: peripherals::input(&source).into(),
            printers: peripherals::printers(&source).into(),
        },
    };
    inventory.windows11 = windows11::verdict(&inventory);
    inventory
}
