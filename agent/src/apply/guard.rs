//! No disruption during lessons: a disruptive plan (packages, services
//! started or stopped) waits while a graphical session is open, unless the
//! local time is inside a maintenance window.
//!
//! Sessions come from logind over D-Bus: `org.freedesktop.login1.Manager.
//! ListSessions`, then the `Type`, `Class` and `Active` properties of each
//! `org.freedesktop.login1.Session`. A session counts when its class is
//! `user`, its type `x11`, `wayland` or `mir`, and it is active.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{PrimitiveDateTime, Weekday};
use zbus::zvariant::OwnedObjectPath;

use super::systemd::{self, Bus};
use crate::paths::AgentPaths;

/// One window: some days of the week, a time range in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit `n` set = day `n` (Monday = 0) included.
    days: u8,
    /// Start, minutes after midnight.
    start: u16,
    /// End (exclusive), minutes after midnight; 1440 = midnight at the end.
    end: u16,
}

/// When disruptive changes may be made while someone is logged in. Parsed
/// from strings such as `"mon-fri 12:00-13:30"`, `"sat,sun"` (all day),
/// `"daily 18:00-24:00"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct MaintenanceWindows {
    /// The windows; any one of them open means maintenance is allowed.
    pub windows: Vec<Window>,
}

impl Default for MaintenanceWindows {
    /// Lunch break and evening on weekdays, all weekend.
    fn default() -> Self {
        Self::parse_list(&["mon-fri 12:00-13:30", "mon-fri 18:00-24:00", "sat-sun"]).unwrap_or(
            MaintenanceWindows {
                windows: Vec::new(),
            },
        )
    }
}

/// A window string that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "fenêtre de maintenance « {text} » invalide : {why} (exemples : \"mon-fri 12:00-13:30\", \"sat,sun\", \"daily 18:00-24:00\")"
)]
pub struct WindowError {
    pub text: String,
    pub why: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(s: &str) -> Option<usize> {
    DAYS.iter().position(|d| *d == s)
}

fn parse_days(s: &str) -> Result<u8, String> {
    if s == "daily" || s == "*" {
        return Ok(0x7f);
    }
    let mut mask = 0u8;
    for part in s.split(',') {
        let unknown = |d: &str| format!("jour « {d} » inconnu (mon, tue, wed, thu, fri, sat, sun)");
        match part.split_once('-') {
            Some((a, b)) => {
                let a = day_index(a).ok_or_else(|| unknown(a))?;
                let b = day_index(b).ok_or_else(|| unknown(b))?;
                // A range may wrap: "sat-mon".
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask |= 1 << day_index(part).ok_or_else(|| unknown(part))?,
        }
    }
    Ok(mask)
}

fn parse_clock(s: &str) -> Result<u16, String> {
    let bad = || format!("heure « {s} » invalide (HH:MM)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) || s.len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl FromStr for Window {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why: String| WindowError {
            text: text.to_owned(),
            why,
        };
        let mut words = text.split_whitespace();
        let days = parse_days(
            &words
                .next()
                .ok_or_else(|| err("vide".into()))?
                .to_lowercase(),
        )
        .map_err(err)?;
        let (start, end) = match words.next() {
            None => (0, 1440),
            Some(range) => {
                let (a, b) = range
                    .split_once('-')
                    .ok_or_else(|| err("plage horaire attendue HH:MM-HH:MM".into()))?;
                (parse_clock(a).map_err(err)?, parse_clock(b).map_err(err)?)
            }
        };
        if words.next().is_some() {
            return Err(err("texte en trop".into()));
        }
        if start >= end {
            return Err(err("la fin doit suivre le début".into()));
        }
        Ok(Window { days, start, end })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = (0..7)
            .filter(|d| self.days & (1 << d) != 0)
            .map(|d| DAYS[d])
            .collect();
        write!(
            f,
            "{} {:02}:{:02}-{:02}:{:02}",
            days.join(","),
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

impl Window {
    fn contains(&self, local: PrimitiveDateTime) -> bool {
        let day = local.weekday().number_days_from_monday();
        let minute = u16::from(local.hour()) * 60 + u16::from(local.minute());
        self.days & (1 << day) != 0 && minute >= self.start && minute < self.end
    }
}

impl MaintenanceWindows {
    /// Parses a list of window strings (the `[maintenance] windows` of
    /// `agent.toml`); an empty list means the default windows.
    pub fn parse_list<S: AsRef<str>>(list: &[S]) -> Result<Self, WindowError> {
        if list.is_empty() {
            return Ok(Self::default());
        }
        let windows = list
            .iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(MaintenanceWindows { windows })
    }

    /// Whether `local` (local wall-clock time) falls inside a window.
    pub fn contains(&self, local: PrimitiveDateTime) -> bool {
        self.windows.iter().any(|w| w.contains(local))
    }

    /// When maintenance is next allowed: `local` itself inside a window,
    /// else the earliest window start after it (within a week).
    pub fn next_opening(&self, local: PrimitiveDateTime) -> Option<PrimitiveDateTime> {
        if self.contains(local) {
            return Some(local);
        }
        let mut best: Option<PrimitiveDateTime> = None;
        for offset in 0..8 {
            let date = local.date() + time::Duration::days(offset);
            let day = date.weekday().number_days_from_monday();
            for w in self.windows.iter().filter(|w| w.days & (1 << day) != 0) {
                let start = PrimitiveDateTime::new(date, time::Time::MIDNIGHT)
                    + time::Duration::minutes(i64::from(w.start));
                if start > local && best.is_none_or(|b| start < b) {
                    best = Some(start);
                }
            }
        }
        best
    }

    /// How long from `now` until the next window opens, in the machine's
    /// local time (`offset`): `None` when one is open now or none comes
    /// within a week.
    pub fn until_next_opening(
        &self,
        offset: time::UtcOffset,
        now: time::OffsetDateTime,
    ) -> Option<std::time::Duration> {
        let local = now.to_offset(offset);
        let local = PrimitiveDateTime::new(local.date(), local.time());
        if self.contains(local) {
            return None;
        }
        let opening = self.next_opening(local)?.assume_offset(offset);
        std::time::Duration::try_from(opening - now).ok()
    }
}

impl TryFrom<Vec<String>> for MaintenanceWindows {
    type Error = WindowError;
    fn try_from(list: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse_list(&list)
    }
}

impl From<MaintenanceWindows> for Vec<String> {
    fn from(w: MaintenanceWindows) -> Self {
        w.windows.iter().map(Window::to_string).collect()
    }
}

/// The managed system's UTC offset at `at`, from its `/etc/localtime`
/// (read under the root, following the symlink inside the root), or UTC
/// when it has none.
///
/// Why not `time::UtcOffset::current_local_offset`: it refuses to answer in
/// a multi-threaded process (the daemon), and it reads the host's zone, not
/// the managed root's. The zone file also carries the DST rule, so the offset
/// is right on both sides of a change.
pub fn local_offset(paths: &AgentPaths, at: time::OffsetDateTime) -> time::UtcOffset {
    let mut file = paths.system("/etc/localtime");
    for _ in 0..8 {
        match std::fs::read_link(&file) {
            Ok(target) if target.is_absolute() => file = paths.system(target),
            Ok(target) => {
                file = file.parent().map(|d| d.join(&target)).unwrap_or(target);
            }
            Err(_) => break,
        }
    }
    let offset = std::fs::read(&file).ok().and_then(|bytes| {
        let zone = tz::TimeZone::from_tz_data(&bytes).ok()?;
        let kind = zone.find_local_time_type(at.unix_timestamp()).ok()?;
        time::UtcOffset::from_whole_seconds(kind.ut_offset()).ok()
    });
    offset.unwrap_or_else(|| {
        tracing::debug!(file = %file.display(), "no usable time zone file: local time is UTC");
        time::UtcOffset::UTC
    })
}

/// French day name for messages.
pub fn jour(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "lundi",
        Weekday::Tuesday => "mardi",
        Weekday::Wednesday => "mercredi",
        Weekday::Thursday => "jeudi",
        Weekday::Friday => "vendredi",
        Weekday::Saturday => "samedi",
        Weekday::Sunday => "dimanche",
    }
}

type SessionRow = (String, u32, String, String, OwnedObjectPath);

#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1",
    gen_async = false,
    blocking_name = "LoginManagerProxy"
)]
trait LoginManager {
    fn list_sessions(&self) -> zbus::Result<Vec<SessionRow>>;
}

#[zbus::proxy(
    interface = "org.freedesktop.login1.Session",
    default_service = "org.freedesktop.login1",
    gen_async = false,
    blocking_name = "SessionProxy"
)]
trait Session {
    #[zbus(property, name = "Type")]
    fn kind(&self) -> zbus::Result<String>;
    #[zbus(property, name = "Class")]
    fn class(&self) -> zbus::Result<String>;
    #[zbus(property, name = "Active")]
    fn active(&self) -> zbus::Result<bool>;
}

/// A graphical session someone is using.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    /// logind's session id.
    pub id: String,
    /// Who is logged in.
    pub user: String,
}

/// Why the sessions could not be listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionsError {
    /// No system bus to connect to: a machine without one runs no
    /// graphical session (a chroot, a container, a system being installed).
    NoBus(String),
    /// The bus is there but logind did not answer, or answered an error:
    /// someone may be in a lesson.
    Unknown(String),
}

/// The active graphical user sessions, from logind on `bus`.
pub fn graphical_sessions(bus: &Bus) -> Result<Vec<OpenSession>, SessionsError> {
    // Only a bus whose socket does not exist is « no bus »: one restarting,
    // full or refusing us may serve a desktop (found by review).
    let conn = systemd::connect_or_absent(bus).map_err(|e| match e {
        None => SessionsError::NoBus("aucun bus D-Bus pour cette racine".to_owned()),
        Some(e) if systemd::bus_absent(&e) => SessionsError::NoBus(e.to_string()),
        Some(e) => SessionsError::Unknown(format!("bus D-Bus injoignable : {e}")),
    })?;
    let err = |e: zbus::Error| SessionsError::Unknown(format!("logind : {e}"));
    let manager = LoginManagerProxy::new(&conn).map_err(err)?;
    let mut open = Vec::new();
    for (id, _uid, user, _seat, path) in manager.list_sessions().map_err(err)? {
        let read = || -> zbus::Result<bool> {
            let session = SessionProxy::builder(&conn)
                .path(path.clone())?
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()?;
            let graphical = matches!(session.kind()?.as_str(), "x11" | "wayland" | "mir");
            Ok(graphical && session.class()? == "user" && session.active()?)
        };
        match read() {
            Ok(true) => open.push(OpenSession { id, user }),
            Ok(false) => {}
            // A session that ends between the list and its properties (a
            // pupil logging out) is gone: skipped, not a reason to call the
            // whole list unknown (found by review).
            Err(e) if session_gone(&e) => {
                tracing::debug!(session = %id, "session gone while listed: {e}");
            }
            // Any other error leaves this session unknown, so the list too
            // (found by review: every read failing read as « nobody »).
            Err(e) => return Err(err(e)),
        }
    }
    Ok(open)
}

/// Whether a session's property read failed because the session is gone.
fn session_gone(e: &zbus::Error) -> bool {
    const GONE: [&str; 2] = [
        "org.freedesktop.DBus.Error.UnknownObject",
        "org.freedesktop.login1.NoSuchSession",
    ];
    match e {
        zbus::Error::MethodError(name, _, _) => GONE.contains(&name.as_str()),
        zbus::Error::FDO(e) => matches!(**e, zbus::fdo::Error::UnknownObject(_)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_wait_until_the_next_window_is_in_local_time() {
        let w = MaintenanceWindows::default();
        let paris = time::UtcOffset::from_hms(1, 0, 0).unwrap();
        // Monday 10:00 in Paris (09:00 UTC): lunch opens in 2 hours.
        let now = datetime!(2026-11-23 09:00 UTC);
        assert_eq!(
            w.until_next_opening(paris, now),
            Some(std::time::Duration::from_secs(2 * 3600))
        );
        // Inside the window, nothing to wait for.
        assert_eq!(
            w.until_next_opening(paris, datetime!(2026-11-23 11:15 UTC)),
            None
        );
        // Friday 14:00: the evening window at 18:00.
        assert_eq!(
            w.until_next_opening(paris, datetime!(2026-11-27 13:00 UTC)),
            Some(std::time::Duration::from_secs(4 * 3600))
        );
    }

    #[test]
    fn default_windows_cover_lunch_evening_and_weekend() {
        let w = MaintenanceWindows::default();
        // 2026-11-23 is a Monday.
        assert!(!w.contains(datetime!(2026-11-23 10:00)));
        assert!(w.contains(datetime!(2026-11-23 12:00)));
        assert!(w.contains(datetime!(2026-11-23 13:29)));
        assert!(!w.contains(datetime!(2026-11-23 13:30)));
        assert!(!w.contains(datetime!(2026-11-23 17:59)));
        assert!(w.contains(datetime!(2026-11-23 18:00)));
        assert!(w.contains(datetime!(2026-11-23 23:59)));
        assert!(!w.contains(datetime!(2026-11-24 07:00)));
        assert!(w.contains(datetime!(2026-11-28 09:00)), "Saturday");
        assert!(w.contains(datetime!(2026-11-29 03:00)), "Sunday");
        assert_eq!(
            w.next_opening(datetime!(2026-11-23 08:10)),
            Some(datetime!(2026-11-23 12:00))
        );
        assert_eq!(
            w.next_opening(datetime!(2026-11-23 14:00)),
            Some(datetime!(2026-11-23 18:00))
        );
        assert_eq!(
            w.next_opening(datetime!(2026-11-28 09:00)),
            Some(datetime!(2026-11-28 09:00))
        );
    }

    #[test]
    fn local_offset_follows_the_roots_zone_and_its_dst_rule() {
        let zone = std::path::Path::new("/usr/share/zoneinfo/Europe/Paris");
        if !zone.exists() {
            eprintln!("SKIPPED: no tzdata on this machine (/usr/share/zoneinfo/Europe/Paris)");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let paths = AgentPaths::new(root.path());
        assert_eq!(
            local_offset(&paths, datetime!(2027-01-15 12:00 UTC)),
            time::UtcOffset::UTC
        );
        std::fs::create_dir_all(root.path().join("usr/share/zoneinfo/Europe")).unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::copy(zone, root.path().join("usr/share/zoneinfo/Europe/Paris")).unwrap();
        // An absolute symlink, as on Debian: resolved inside the root.
        std::os::unix::fs::symlink(
            "/usr/share/zoneinfo/Europe/Paris",
            root.path().join("etc/localtime"),
        )
        .unwrap();
        let hours = |at| local_offset(&paths, at).whole_hours();
        assert_eq!(hours(datetime!(2027-01-15 12:00 UTC)), 1);
        assert_eq!(hours(datetime!(2027-07-15 12:00 UTC)), 2);
        // Far past the file's last transition: its POSIX rule still applies.
        assert_eq!(hours(datetime!(2045-07-15 12:00 UTC)), 2);
    }

    #[test]
    fn window_strings_parse_strictly() {
        let w: Window = "sat-mon 08:00-09:15".parse().unwrap();
        assert_eq!(w.to_string(), "mon,sat,sun 08:00-09:15");
        assert!("Mon,WED".parse::<Window>().is_ok());
        for bad in [
            "",
            "lundi",
            "mon 12:00",
            "mon 13:00-12:00",
            "mon 25:00-26:00",
            "mon 12:60-13:00",
            "mon 1:00-2:00",
            "mon 12:00-13:00 x",
        ] {
            let e = bad.parse::<Window>().unwrap_err();
            assert!(
                e.to_string().contains("fenêtre de maintenance"),
                "{bad}: {e}"
            );
        }
        let from_toml: MaintenanceWindows =
            serde_json::from_str(r#"["daily 18:00-24:00"]"#).unwrap();
        assert!(from_toml.contains(datetime!(2026-11-25 19:00)));
        assert!(!from_toml.contains(datetime!(2026-11-25 12:00)));
        assert!(serde_json::from_str::<MaintenanceWindows>(r#"["never"]"#).is_err());
        assert_eq!(
            serde_json::from_str::<MaintenanceWindows>("[]").unwrap(),
            MaintenanceWindows::default()
        );
    }
}
