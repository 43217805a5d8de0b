//! systemd units over D-Bus (`org.freedesktop.systemd1.Manager`), with
//! zbus' blocking API.
//!
//! Methods used — the contract the test's private systemd implements too:
//! `GetUnitFileState`, `ListUnitsByNames`, `EnableUnitFiles`,
//! `DisableUnitFiles`, `MaskUnitFiles`, `UnmaskUnitFiles`, `StartUnit`,
//! `StopUnit`, `Reload` (daemon-reload). Start and stop are jobs: the engine
//! polls `ListUnitsByNames` until the unit has no job left and reads its
//! active state, so a unit that fails to start is reported failed.
//!
//! The blocking API runs zbus on its own internal runtime: call these from
//! a plain thread (`tokio::task::spawn_blocking` inside async code).

use std::time::{Duration, Instant};

use nird_proto::profile::{Enablement, RunState, UnitResource};
use zbus::zvariant::OwnedObjectPath;

use super::plan::Check;

/// How long a start or stop job may take before the unit is reported failed.
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// Which bus to reach systemd and logind on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    /// The system bus (production, root `/`).
    System,
    /// A bus at this address (tests, or a container's bus).
    Address(String),
    /// No bus: units fail with a clear message, no lesson guard (a root that
    /// is not running has nobody logged in).
    None,
}

/// Connects to `bus`.
pub fn connect(bus: &Bus) -> Result<zbus::blocking::Connection, String> {
    connect_or_absent(bus).map_err(|e| match e {
        Some(e) => format!("bus D-Bus injoignable : {e}"),
        None => "aucun bus D-Bus pour cette racine (systemd injoignable)".to_owned(),
    })
}

/// Connects to `bus`; the error is `None` for [`Bus::None`].
pub fn connect_or_absent(bus: &Bus) -> Result<zbus::blocking::Connection, Option<zbus::Error>> {
    match bus {
        Bus::System => zbus::blocking::Connection::system().map_err(Some),
        Bus::Address(addr) => zbus::blocking::connection::Builder::address(addr.as_str())
            .and_then(|b| b.method_timeout(Duration::from_secs(60)).build())
            .map_err(Some),
        Bus::None => Err(None),
    }
}

/// Whether a connection error says there is no bus at all (its socket does
/// not exist), rather than a bus that failed to answer.
pub fn bus_absent(e: &zbus::Error) -> bool {
    let io = match e {
        zbus::Error::Connection(io, _) | zbus::Error::InputOutput(io) => io,
        _ => return false,
    };
    io.kind() == std::io::ErrorKind::NotFound
}

/// The `a(sss)` list of symlink changes unit-file methods return.
type FileChanges = Vec<(String, String, String)>;

/// One row of `ListUnitsByNames`.
type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_async = false,
    blocking_name = "ManagerProxy"
)]
trait Manager {
    fn get_unit_file_state(&self, file: &str) -> zbus::Result<String>;
    fn list_units_by_names(&self, names: &[&str]) -> zbus::Result<Vec<UnitRow>>;
    fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<(bool, FileChanges)>;
    fn disable_unit_files(&self, files: &[&str], runtime: bool) -> zbus::Result<FileChanges>;
    fn mask_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<FileChanges>;
    fn unmask_unit_files(&self, files: &[&str], runtime: bool) -> zbus::Result<FileChanges>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload(&self) -> zbus::Result<()>;
}

/// A connection to systemd's manager.
pub struct Systemd {
    manager: ManagerProxy<'static>,
}

/// A unit as systemd sees it.
struct UnitStatus {
    file_state: String,
    load_state: String,
    active_state: String,
    job_id: u32,
}

fn dbus_error(e: zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(msg), _) => format!("{msg} ({name})"),
        other => other.to_string(),
    }
}

impl Systemd {
    /// Connects to systemd on `bus`.
    pub fn connect(bus: &Bus) -> Result<Self, String> {
        let conn = connect(bus)?;
        let manager = ManagerProxy::new(&conn).map_err(dbus_error)?;
        Ok(Systemd { manager })
    }

    fn status(&self, name: &str) -> Result<UnitStatus, String> {
        let rows = self
            .manager
            .list_units_by_names(&[name])
            .map_err(dbus_error)?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| format!("systemd ne connaît pas {name}"))?;
        if row.2 == "not-found" {
            return Err(format!("unité {name} introuvable"));
        }
        let file_state = self.manager.get_unit_file_state(name).map_err(dbus_error)?;
        Ok(UnitStatus {
            file_state,
            load_state: row.2,
            active_state: row.3,
            job_id: row.7,
        })
    }

    /// Compares a unit with systemd; the flag says whether the change
    /// starts or stops something (disruptive).
    pub fn check_unit(&self, unit: &UnitResource) -> (Check, bool) {
        let status = match self.status(&unit.name) {
            Ok(s) => s,
            Err(e) => return (Check::Blocked(e), false),
        };
        let mut differences = Vec::new();
        if let Some(want) = unit.enablement
            && let Some(change) = enablement_change(&status.file_state, want)
        {
            if let Err(e) = change {
                return (Check::Blocked(e), false);
            }
            differences.push(format!("{} → {}", status.file_state, enablement_name(want)));
        }
        let mut disruptive = false;
        if let Some(want) = unit.state
            && !run_state_matches(&status.active_state, want)
        {
            disruptive = true;
            differences.push(match want {
                RunState::Running => "démarrer".to_owned(),
                RunState::Stopped => "arrêter".to_owned(),
            });
        }
        let _ = status.load_state;
        (Check::from_differences(differences), disruptive)
    }

    /// Sets a unit's enablement. Returns whether something changed (then a
    /// daemon-reload is due).
    pub fn apply_enablement(&self, unit: &UnitResource) -> Result<bool, String> {
        let Some(want) = unit.enablement else {
            return Ok(false);
        };
        let status = self.status(&unit.name)?;
        if enablement_change(&status.file_state, want)
            .transpose()?
            .is_none()
        {
            return Ok(false);
        }
        let names = [unit.name.as_str()];
        if status.file_state.starts_with("masked") && want != Enablement::Masked {
            self.manager
                .unmask_unit_files(&names, false)
                .map_err(dbus_error)?;
        }
        match want {
            Enablement::Enabled => {
                self.manager
                    .enable_unit_files(&names, false, false)
                    .map_err(dbus_error)?;
            }
            Enablement::Disabled => {
                self.manager
                    .disable_unit_files(&names, false)
                    .map_err(dbus_error)?;
            }
            Enablement::Masked => {
                self.manager
                    .mask_unit_files(&names, false, true)
                    .map_err(dbus_error)?;
            }
        }
        Ok(true)
    }

    /// `systemctl daemon-reload`.
    pub fn reload(&self) -> Result<(), String> {
        self.manager.reload().map_err(dbus_error)
    }

    /// Starts or stops a unit and waits for the job to end. Returns whether
    /// something changed.
    pub fn apply_run_state(&self, unit: &UnitResource) -> Result<bool, String> {
        let Some(want) = unit.state else {
            return Ok(false);
        };
        let status = self.status(&unit.name)?;
        if run_state_matches(&status.active_state, want) && status.job_id == 0 {
            return Ok(false);
        }
        match want {
            RunState::Running => self.manager.start_unit(&unit.name, "replace"),
            RunState::Stopped => self.manager.stop_unit(&unit.name, "replace"),
        }
        .map_err(dbus_error)?;
        let deadline = Instant::now() + JOB_TIMEOUT;
        loop {
            let status = self.status(&unit.name)?;
            if status.job_id == 0 {
                return if run_state_matches(&status.active_state, want) {
                    Ok(true)
                } else {
                    Err(format!(
                        "l'unité est « {} » après le job",
                        status.active_state
                    ))
                };
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "job toujours en cours après {} s",
                    JOB_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn enablement_name(e: Enablement) -> &'static str {
    match e {
        Enablement::Enabled => "enabled",
        Enablement::Disabled => "disabled",
        Enablement::Masked => "masked",
    }
}

/// `None` when `file_state` already satisfies `want`, `Some(Err)` when it
/// cannot be changed, `Some(Ok)` when a change is due.
fn enablement_change(file_state: &str, want: Enablement) -> Option<Result<(), String>> {
    let masked = file_state.starts_with("masked");
    let enabled = matches!(file_state, "enabled" | "enabled-runtime" | "alias");
    match want {
        Enablement::Masked if masked => None,
        Enablement::Masked => Some(Ok(())),
        Enablement::Enabled if enabled => None,
        Enablement::Enabled
            if matches!(
                file_state,
                "static" | "indirect" | "generated" | "transient"
            ) =>
        {
            Some(Err(format!(
                "unité « {file_state} » : elle ne peut pas être activée"
            )))
        }
        Enablement::Enabled => Some(Ok(())),
        Enablement::Disabled if enabled || masked => Some(Ok(())),
        Enablement::Disabled => None,
    }
}

fn run_state_matches(active_state: &str, want: RunState) -> bool {
    match want {
        RunState::Running => matches!(active_state, "active" | "reloading"),
        RunState::Stopped => matches!(active_state, "inactive" | "failed"),
    }
}
