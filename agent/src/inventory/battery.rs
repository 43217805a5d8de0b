//! Batteries from `/sys/class/power_supply`, completed by UPower.

use nird_proto::inventory::{Battery, Reading, battery_wear_percent};

use super::dbus::UpowerBattery;
use super::source::{Reason, Source, is_placeholder};

/// Reads the system batteries (peripheral batteries such as a wireless
/// mouse's, `scope=Device`, are left out), then fills what sysfs lacks from
/// UPower's view of the same battery.
pub fn collect(source: &Source, upower: &[UpowerBattery]) -> Result<Vec<Battery>, Reason> {
    let mut out = Vec::new();
    for name in source.list_dir("/sys/class/power_supply")? {
        let base = format!("/sys/class/power_supply/{name}");
        if source.read_attr(&format!("{base}/type")).as_deref() != Ok("Battery")
            || source.read_attr(&format!("{base}/scope")).as_deref() == Ok("Device")
            || source.read_u64(&format!("{base}/present")) == Ok(0)
        {
            continue;
        }
        let mut battery = from_sysfs(source, &name, &base);
        if let Some(up) = upower.iter().find(|u| u.native_path == name) {
            complete_from_upower(&mut battery, up);
        }
        out.push(battery);
    }
    Ok(out)
}

fn from_sysfs(source: &Source, name: &str, base: &str) -> Battery {
    let text = |attr: &str| {
        source
            .read_attr(&format!("{base}/{attr}"))
            .ok()
            .filter(|v| !is_placeholder(v))
    };
    let num = |attr: &str| source.read_u64(&format!("{base}/{attr}"));

    // Capacities are in µWh (energy_*) or, on some laptops, µAh (charge_*);
    // the latter become Wh with the design minimum voltage (µV).
    let energy = |what: &str| -> Result<f64, Reason> {
        match num(&format!("energy_{what}")) {
            Ok(uwh) => Ok(uwh as f64 / 1e6),
            Err(energy_err) => {
                let uah = num(&format!("charge_{what}")).map_err(|_| energy_err)?;
                let uv = num("voltage_min_design")
                    .map_err(|_| "capacity given in µAh without design voltage".to_string())?;
                Ok(uah as f64 * uv as f64 / 1e12)
            }
        }
    };
    let design = energy("full_design");
    let full = energy("full");
    let wear = match (&design, &full) {
        (Ok(d), Ok(f)) => battery_wear_percent(*f, *d)
            .ok_or_else(|| "battery reports a zero design capacity".to_string()),
        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
    };
    let cycle_count = match num("cycle_count") {
        // Firmware that does not count cycles reports 0.
        Ok(0) => Err("battery reports 0 cycles (counter not supported)".to_string()),
        Ok(n) => u32::try_from(n).map_err(|_| format!("cycle count out of range: {n}")),
        Err(e) => Err(e),
    };
    Battery {
        name: name.to_string(),
        manufacturer: text("manufacturer"),
        model: text("model_name"),
        technology: text("technology"),
        design_capacity_wh: design.map(round_tenth).into(),
        full_capacity_wh: full.map(round_tenth).into(),
        wear_percent: wear.into(),
        cycle_count: cycle_count.into(),
    }
}

fn round_tenth(wh: f64) -> f64 {
    (wh * 10.0).round() / 10.0
}

/// Fills unavailable values from UPower (which also reads sysfs, but knows
/// quirks of some batteries).
fn complete_from_upower(battery: &mut Battery, up: &UpowerBattery) {
    if battery.design_capacity_wh.value().is_none() && up.energy_full_design_wh > 0.0 {
        battery.design_capacity_wh = Reading::Value(round_tenth(up.energy_full_design_wh));
    }
    if battery.full_capacity_wh.value().is_none() && up.energy_full_wh > 0.0 {
        battery.full_capacity_wh = Reading::Value(round_tenth(up.energy_full_wh));
    }
    if battery.wear_percent.value().is_none()
        && let Some(w) = battery_wear_percent(up.energy_full_wh, up.energy_full_design_wh)
    {
        battery.wear_percent = Reading::Value(w);
    }
    if battery.cycle_count.value().is_none()
        && let Ok(n) = u32::try_from(up.charge_cycles)
        && n > 0
    {
        battery.cycle_count = Reading::Value(n);
    }
    if battery.manufacturer.is_none() && !up.vendor.is_empty() {
        battery.manufacturer = Some(up.vendor.clone());
    }
    if battery.model.is_none() && !up.model.is_empty() {
        battery.model = Some(up.model.clone());
    }
}
