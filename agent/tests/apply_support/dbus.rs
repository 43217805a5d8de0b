//! A private D-Bus bus with the parts of systemd and logind the agent uses,
//! served by real zbus services that record every call and keep state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use zbus::zvariant::OwnedObjectPath;

pub use super::support::private_bus::PrivateBus;

/// A unit as the fake systemd keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUnit {
    /// `enabled`, `disabled`, `masked`, `static`...
    pub file_state: String,
    /// `active`, `inactive`, `failed`.
    pub active_state: String,
    /// Starting it fails (the unit ends `failed`).
    pub broken: bool,
}

impl FakeUnit {
    pub fn new(file_state: &str, active_state: &str) -> Self {
        FakeUnit {
            file_state: file_state.into(),
            active_state: active_state.into(),
            broken: false,
        }
    }
}

/// What the fake systemd knows and what it was asked.
#[derive(Debug, Default)]
pub struct SystemdState {
    pub units: BTreeMap<String, FakeUnit>,
    /// Every call, e.g. `StartUnit ssh.service replace`.
    pub calls: Vec<String>,
}

type Row = (
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
type Changes = Vec<(String, String, String)>;

struct FakeSystemd {
    state: Arc<Mutex<SystemdState>>,
}

fn no_such_unit(name: &str) -> zbus::fdo::Error {
    zbus::fdo::Error::FileNotFound(format!("No such file or directory: {name}"))
}

impl FakeSystemd {
    fn set_file_state(&self, call: &str, files: &[String], to: &str) -> zbus::fdo::Result<Changes> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(format!("{call} {}", files.join(",")));
        let mut changes = Vec::new();
        for f in files {
            let unit = s.units.get_mut(f).ok_or_else(|| no_such_unit(f))?;
            unit.file_state = to.to_owned();
            changes.push((
                "symlink".into(),
                format!("/etc/systemd/system/{f}"),
                "/lib/systemd".into(),
            ));
        }
        Ok(changes)
    }

    fn job(
        &self,
        call: &str,
        name: &str,
        mode: &str,
        start: bool,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(format!("{call} {name} {mode}"));
        let unit = s.units.get_mut(name).ok_or_else(|| no_such_unit(name))?;
        if unit.file_state == "masked" && start {
            return Err(zbus::fdo::Error::Failed(format!("Unit {name} is masked.")));
        }
        unit.active_state = match (start, unit.broken) {
            (true, false) => "active",
            (true, true) => "failed",
            (false, _) => "inactive",
        }
        .into();
        Ok(OwnedObjectPath::try_from("/org/freedesktop/systemd1/job/1").unwrap())
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl FakeSystemd {
    fn get_unit_file_state(&self, file: String) -> zbus::fdo::Result<String> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(format!("GetUnitFileState {file}"));
        s.units
            .get(&file)
            .map(|u| u.file_state.clone())
            .ok_or_else(|| no_such_unit(&file))
    }

    fn list_units_by_names(&self, names: Vec<String>) -> Vec<Row> {
        let mut s = self.state.lock().unwrap();
        s.calls
            .push(format!("ListUnitsByNames {}", names.join(",")));
        let path = |p: &str| OwnedObjectPath::try_from(p).unwrap();
        names
            .iter()
            .map(|n| {
                let (load, active) = match s.units.get(n) {
                    Some(u) if u.file_state == "masked" => ("masked", u.active_state.clone()),
                    Some(u) => ("loaded", u.active_state.clone()),
                    None => ("not-found", "inactive".to_owned()),
                };
                (
                    n.clone(),
                    String::new(),
                    load.to_owned(),
                    active,
                    "dead".to_owned(),
                    String::new(),
                    path("/org/freedesktop/systemd1/unit/x"),
                    0,
                    String::new(),
                    path("/"),
                )
            })
            .collect()
    }

    fn enable_unit_files(
        &self,
        files: Vec<String>,
        _runtime: bool,
        _force: bool,
    ) -> zbus::fdo::Result<(bool, Changes)> {
        Ok((
            true,
            self.set_file_state("EnableUnitFiles", &files, "enabled")?,
        ))
    }

    fn disable_unit_files(&self, files: Vec<String>, _runtime: bool) -> zbus::fdo::Result<Changes> {
        self.set_file_state("DisableUnitFiles", &files, "disabled")
    }

    fn mask_unit_files(
        &self,
        files: Vec<String>,
        _runtime: bool,
        _force: bool,
    ) -> zbus::fdo::Result<Changes> {
        self.set_file_state("MaskUnitFiles", &files, "masked")
    }

    fn unmask_unit_files(&self, files: Vec<String>, _runtime: bool) -> zbus::fdo::Result<Changes> {
        self.set_file_state("UnmaskUnitFiles", &files, "disabled")
    }

    fn start_unit(&self, name: String, mode: String) -> zbus::fdo::Result<OwnedObjectPath> {
        self.job("StartUnit", &name, &mode, true)
    }

    fn stop_unit(&self, name: String, mode: String) -> zbus::fdo::Result<OwnedObjectPath> {
        self.job("StopUnit", &name, &mode, false)
    }

    fn reload(&self) {
        self.state.lock().unwrap().calls.push("Reload".into());
    }
}

/// The fake systemd, serving `org.freedesktop.systemd1` on a bus.
pub struct Systemd {
    pub state: Arc<Mutex<SystemdState>>,
    _conn: zbus::blocking::Connection,
}

impl Systemd {
    pub fn serve(bus: &PrivateBus, units: &[(&str, FakeUnit)]) -> Self {
        let state = Arc::new(Mutex::new(SystemdState {
            units: units
                .iter()
                .map(|(n, u)| (n.to_string(), u.clone()))
                .collect(),
            calls: Vec::new(),
        }));
        let conn = bus
            .builder()
            .name("org.freedesktop.systemd1")
            .unwrap()
            .serve_at(
                "/org/freedesktop/systemd1",
                FakeSystemd {
                    state: state.clone(),
                },
            )
            .unwrap()
            .build()
            .unwrap();
        Systemd { state, _conn: conn }
    }

    /// Calls that change something (not the reads).
    pub fn changing_calls(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| !c.starts_with("GetUnitFileState") && !c.starts_with("ListUnitsByNames"))
            .cloned()
            .collect()
    }

    pub fn unit(&self, name: &str) -> FakeUnit {
        self.state.lock().unwrap().units[name].clone()
    }
}

/// A logind session.
#[derive(Debug, Clone)]
pub struct FakeSession {
    pub id: String,
    pub user: String,
    /// `x11`, `wayland`, `tty`...
    pub kind: String,
    /// `user`, `greeter`...
    pub class: String,
    pub active: bool,
}

struct SessionObject {
    session: FakeSession,
}

#[zbus::interface(name = "org.freedesktop.login1.Session")]
impl SessionObject {
    /// A session of class "refused" cannot be read (as when the bus's
    /// policy denies it).
    #[zbus(property, name = "Type")]
    fn kind(&self) -> zbus::fdo::Result<String> {
        if self.session.class == "refused" {
            return Err(zbus::fdo::Error::AccessDenied("refusé".into()));
        }
        Ok(self.session.kind.clone())
    }
    #[zbus(property, name = "Class")]
    fn class(&self) -> String {
        self.session.class.clone()
    }
    #[zbus(property, name = "Active")]
    fn active(&self) -> bool {
        self.session.active
    }
}

struct LoginManager {
    sessions: Vec<FakeSession>,
    calls: Arc<Mutex<Vec<String>>>,
}

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl LoginManager {
    fn list_sessions(&self) -> Vec<(String, u32, String, String, OwnedObjectPath)> {
        self.calls.lock().unwrap().push("ListSessions".into());
        self.sessions
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    1000,
                    s.user.clone(),
                    "seat0".to_owned(),
                    session_path(&s.id),
                )
            })
            .collect()
    }
}

fn session_path(id: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("/org/freedesktop/login1/session/_{id}")).unwrap()
}

/// The fake logind, serving `org.freedesktop.login1` on a bus.
pub struct Logind {
    pub calls: Arc<Mutex<Vec<String>>>,
    _conn: zbus::blocking::Connection,
}

impl Logind {
    pub fn serve(bus: &PrivateBus, sessions: &[FakeSession]) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut builder = bus
            .builder()
            .name("org.freedesktop.login1")
            .unwrap()
            .serve_at(
                "/org/freedesktop/login1",
                LoginManager {
                    sessions: sessions.to_vec(),
                    calls: calls.clone(),
                },
            )
            .unwrap();
        // A session of class "gone" is listed but has no object: it ended
        // between ListSessions and the reading of its properties.
        for s in sessions.iter().filter(|s| s.class != "gone") {
            builder = builder
                .serve_at(session_path(&s.id), SessionObject { session: s.clone() })
                .unwrap();
        }
        Logind {
            calls,
            _conn: builder.build().unwrap(),
        }
    }
}
