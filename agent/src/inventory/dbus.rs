//! D-Bus readers: SMART health from UDisks2, batteries from UPower (zbus).
//!
//! Both services are optional: when one does not own its name on the bus,
//! its readings are unavailable with a reason and nothing is started (we ask
//! the bus whether the name has an owner before calling, so no D-Bus
//! activation happens). The whole exchange is bounded by [`DBUS_TIMEOUT`].

use std::collections::HashMap;
use std::time::Duration;

use nird_proto::inventory::{Reading, Smart, SmartHealth, reason};
use zbus::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use super::source::Reason;

/// Longest time the D-Bus part of a collection may take.
pub const DBUS_TIMEOUT: Duration = Duration::from_secs(3);

const UDISKS: &str = "org.freedesktop.UDisks2";
const UPOWER: &str = "org.freedesktop.UPower";

/// What the D-Bus services said.
#[derive(Debug, Clone, PartialEq)]
pub struct DbusFacts {
    /// SMART reading per kernel disk name ("sda", "nvme0n1"), or why UDisks2
    /// could not be asked.
    pub smart: Result<HashMap<String, Reading<Smart>>, Reason>,
    /// Batteries UPower knows (empty when UPower does not run).
    pub upower: Vec<UpowerBattery>,
}

impl DbusFacts {
    /// Facts when the bus is not asked at all.
    pub fn unavailable(reason: &str) -> DbusFacts {
        DbusFacts {
            smart: Err(reason.to_string()),
            upower: Vec::new(),
        }
    }
}

/// One battery as UPower sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpowerBattery {
    /// Kernel name ("BAT0"), to match the sysfs battery.
    pub native_path: String,
    pub vendor: String,
    pub model: String,
    /// Wh.
    pub energy_full_design_wh: f64,
    pub energy_full_wh: f64,
    /// Charge cycles, -1 when unknown (UPower ≥ 0.99.14).
    pub charge_cycles: i64,
}

/// Asks UDisks2 and UPower on the system bus, or on `address` when given
/// (tests run a private bus). Blocks the calling thread on a private
/// single-threaded Tokio runtime; call it from a blocking thread, never from
/// inside an async task.
pub fn read(address: Option<&str>) -> DbusFacts {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return DbusFacts::unavailable(&format!("cannot start D-Bus client: {e}")),
    };
    runtime.block_on(async {
        match tokio::time::timeout(DBUS_TIMEOUT, read_async(address)).await {
            Ok(facts) => facts,
            Err(_) => DbusFacts::unavailable("D-Bus services did not answer in time"),
        }
    })
}

async fn read_async(address: Option<&str>) -> DbusFacts {
    let conn = match connect(address).await {
        Ok(c) => c,
        Err(e) => {
            return DbusFacts::unavailable(&format!("cannot connect to the system bus: {e}"));
        }
    };
    let smart = match has_owner(&conn, UDISKS).await {
        Ok(true) => udisks_smart(&conn)
            .await
            .map_err(|e| format!("UDisks2 query failed: {e}")),
        Ok(false) => Err(reason::UDISKS2_NOT_RUNNING.to_string()),
        Err(e) => Err(format!("D-Bus query failed: {e}")),
    };
    let upower = match has_owner(&conn, UPOWER).await {
        Ok(true) => match upower_batteries(&conn).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("UPower query failed: {e}");
                Vec::new()
            }
        },
        _ => Vec::new(),
    };
    DbusFacts { smart, upower }
}

async fn connect(address: Option<&str>) -> zbus::Result<Connection> {
    match address {
        Some(a) => zbus::connection::Builder::address(a)?.build().await,
        None => Connection::system().await,
    }
}

async fn has_owner(conn: &Connection, name: &str) -> zbus::Result<bool> {
    let reply = conn
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "NameHasOwner",
            &(name,),
        )
        .await?;
    reply.body().deserialize()
}

type Properties = HashMap<String, OwnedValue>;
type ManagedObjects = HashMap<OwnedObjectPath, HashMap<String, Properties>>;

/// SMART per disk: UDisks2's object manager lists block devices (with their
/// drive) and drives (with their ATA or NVMe SMART properties).
async fn udisks_smart(conn: &Connection) -> zbus::Result<HashMap<String, Reading<Smart>>> {
    let reply = conn
        .call_method(
            Some(UDISKS),
            "/org/freedesktop/UDisks2",
            Some("org.freedesktop.DBus.ObjectManager"),
            "GetManagedObjects",
            &(),
        )
        .await?;
    let objects: ManagedObjects = reply.body().deserialize()?;
    let mut out = HashMap::new();
    for interfaces in objects.values() {
        let Some(block) = interfaces.get("org.freedesktop.UDisks2.Block") else {
            continue;
        };
        if interfaces.contains_key("org.freedesktop.UDisks2.Partition") {
            continue;
        }
        let (Some(device), Some(drive)) = (
            block.get("Device").and_then(byte_string),
            block.get("Drive").and_then(object_path),
        ) else {
            continue;
        };
        let Some(name) = device.strip_prefix("/dev/") else {
            continue;
        };
        let Some(drive_ifaces) = objects
            .iter()
            .find(|(p, _)| p.as_str() == drive)
            .map(|(_, i)| i)
        else {
            continue;
        };
        let smart = if let Some(ata) = drive_ifaces.get("org.freedesktop.UDisks2.Drive.Ata") {
            ata_smart(ata)
        } else if let Some(nvme) = drive_ifaces.get("org.freedesktop.UDisks2.NVMe.Controller") {
            nvme_smart(conn, &drive, nvme).await
        } else {
            Reading::unavailable("drive has no SMART interface (USB bridge or virtual disk)")
        };
        out.insert(name.to_string(), smart);
    }
    Ok(out)
}

fn ata_smart(p: &Properties) -> Reading<Smart> {
    if get::<bool>(p, "SmartSupported") != Some(true) {
        return Reading::unavailable("drive does not support SMART");
    }
    if get::<bool>(p, "SmartEnabled") != Some(true) {
        return Reading::unavailable("SMART is disabled on this drive");
    }
    if get::<u64>(p, "SmartUpdated").unwrap_or(0) == 0 {
        return Reading::unavailable("UDisks2 has not read SMART data yet");
    }
    let health = if get::<bool>(p, "SmartFailing") == Some(true) {
        SmartHealth::Failing
    } else {
        SmartHealth::Passed
    };
    Reading::Value(Smart {
        health,
        power_on_hours: get::<u64>(p, "SmartPowerOnSeconds").map(|s| floor_hours(s / 3600)),
        bad_sectors: get::<i64>(p, "SmartNumBadSectors").and_then(|n| u64::try_from(n).ok()),
        percent_used: None,
    })
}

async fn nvme_smart(conn: &Connection, drive: &str, p: &Properties) -> Reading<Smart> {
    if get::<u64>(p, "SmartUpdated").unwrap_or(0) == 0 {
        return Reading::unavailable("UDisks2 has not read SMART data yet");
    }
    // Any critical warning (spare, temperature, reliability, read-only,
    // volatile memory backup) means the drive is not healthy.
    let warnings: Vec<String> = p
        .get("SmartCriticalWarning")
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| Vec::<String>::try_from(v).ok())
        .unwrap_or_default();
    let health = if warnings.is_empty() {
        SmartHealth::Passed
    } else {
        SmartHealth::Failing
    };
    let percent_used = async {
        let options: HashMap<&str, Value<'_>> = HashMap::new();
        let reply = conn
            .call_method(
                Some(UDISKS),
                drive,
                Some("org.freedesktop.UDisks2.NVMe.Controller"),
                "SmartGetAttributes",
                &(options,),
            )
            .await
            .ok()?;
        let attrs: Properties = reply.body().deserialize().ok()?;
        get::<u8>(&attrs, "percent_used")
    }
    .await;
    Reading::Value(Smart {
        health,
        power_on_hours: get::<u64>(p, "SmartPowerOnHours").map(floor_hours),
        bad_sectors: None,
        percent_used,
    })
}

/// Power-on hours floored to a multiple of 100 (see the document's hash
/// rules).
fn floor_hours(h: u64) -> u64 {
    h / 100 * 100
}

async fn upower_batteries(conn: &Connection) -> zbus::Result<Vec<UpowerBattery>> {
    let reply = conn
        .call_method(
            Some(UPOWER),
            "/org/freedesktop/UPower",
            Some(UPOWER),
            "EnumerateDevices",
            &(),
        )
        .await?;
    let paths: Vec<OwnedObjectPath> = reply.body().deserialize()?;
    let mut out = Vec::new();
    for path in paths {
        let reply = conn
            .call_method(
                Some(UPOWER),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "GetAll",
                &("org.freedesktop.UPower.Device",),
            )
            .await?;
        let p: Properties = reply.body().deserialize()?;
        // Type 2 is a battery; PowerSupply false means a peripheral's.
        if get::<u32>(&p, "Type") != Some(2) || get::<bool>(&p, "PowerSupply") != Some(true) {
            continue;
        }
        out.push(UpowerBattery {
            native_path: get_string(&p, "NativePath"),
            vendor: get_string(&p, "Vendor"),
            model: get_string(&p, "Model"),
            energy_full_design_wh: get::<f64>(&p, "EnergyFullDesign").unwrap_or(0.0),
            energy_full_wh: get::<f64>(&p, "EnergyFull").unwrap_or(0.0),
            charge_cycles: get::<i32>(&p, "ChargeCycles").map_or(-1, i64::from),
        });
    }
    Ok(out)
}

/// A property of a plain type, `None` when missing or of another type.
fn get<T>(p: &Properties, key: &str) -> Option<T>
where
    T: TryFrom<OwnedValue>,
{
    let value = p.get(key)?.try_clone().ok()?;
    T::try_from(value).ok()
}

fn get_string(p: &Properties, key: &str) -> String {
    get::<String>(p, key).unwrap_or_default().trim().to_string()
}

/// UDisks2 byte strings (`ay`, NUL-terminated) as text.
fn byte_string(v: &OwnedValue) -> Option<String> {
    let bytes = Vec::<u8>::try_from(v.try_clone().ok()?).ok()?;
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

fn object_path(v: &OwnedValue) -> Option<String> {
    let p = OwnedObjectPath::try_from(v.try_clone().ok()?).ok()?;
    Some(p.as_str().to_string())
}
