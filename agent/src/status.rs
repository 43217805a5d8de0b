//! What the daemon last knew, persisted in `/var/lib/nird-agent/status.json`
//! after every check-in, and `nird-agent status`, which shows it.
//!
//! The daemon is the only writer (atomic replace); `status` only reads, so it
//! works while the daemon runs and needs no IPC.

use std::collections::BTreeMap;

use nird_proto::api::{ApplyOutcome, MachineStatus, ProfileRef, RefusalReason};
use serde::{Deserialize, Serialize};

use crate::config::{AgentConfig, ConfigError};
use crate::paths::AgentPaths;
use crate::spool::{Spool, write_atomic};

/// The daemon's persisted view of its conversation with the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// When the machine was enrolled.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub enrolled_at: Option<time::OffsetDateTime>,
    /// Last check-in attempt, successful or not.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<time::OffsetDateTime>,
    /// Last successful check-in.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_checkin_at: Option<time::OffsetDateTime>,
    /// Error of the last attempt, if it failed (French sentence).
    #[serde(default)]
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The machine's status as the server last said.
    #[serde(default)]
    pub machine_status: Option<MachineStatus>,
    /// Profiles the server last assigned.
    #[serde(default)]
    pub assigned: Vec<ProfileRef>,
    /// Highest report seq the server has stored.
    #[serde(default)]
    pub acked_seq: u64,
    /// Inventory hash the server last received from us.
    #[serde(default)]
    pub server_inventory_hash: Option<String>,
    /// Hash of the last inventory the server refused (400, set aside): not
    /// spooled again while the machine stays as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_inventory_hash: Option<String>,
    /// When the next check-in is planned.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_checkin_at: Option<time::OffsetDateTime>,
    /// What the last apply attempt was about and what it said, so a refused
    /// release is reported once, not at every check-in of every run.
    #[serde(default)]
    pub last_apply: ApplyMemo,
}

/// The last apply attempt, as the daemon remembers it across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyMemo {
    /// The assignment it handled.
    #[serde(default)]
    pub assigned: Option<Vec<ProfileRef>>,
    /// Per profile name: the version handled and its outcome.
    #[serde(default)]
    pub outcomes: BTreeMap<String, AttemptOutcome>,
}

/// One profile's outcome in the last attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptOutcome {
    /// Version handled.
    pub version: u64,
    /// Its outcome.
    pub outcome: ApplyOutcome,
    /// Why it was refused, if it was.
    #[serde(default)]
    pub reason: Option<RefusalReason>,
    /// What went wrong, as reported to the server (failures, refusals).
    #[serde(default)]
    pub message: Option<String>,
}

impl AttemptOutcome {
    /// Same version, outcome and reason (the message may differ in detail).
    pub fn same_as(&self, other: &AttemptOutcome) -> bool {
        (self.version, self.outcome, self.reason) == (other.version, other.outcome, other.reason)
    }
}

/// What to tell a person about a refusal reason (French).
pub fn refusal_fr(reason: RefusalReason) -> &'static str {
    match reason {
        RefusalReason::BadSignature => {
            "signature invalide : le profil a été modifié après sa signature"
        }
        RefusalReason::UnknownKey => {
            "signé par une clé absente du trousseau de cette machine : vérifiez le trousseau (« nird-agent status ») ou ré-enrôlez avec le kit"
        }
        RefusalReason::MalformedSignature => "signature illisible",
        RefusalReason::WrongName => "le profil reçu n'est pas celui qui est affecté",
        RefusalReason::Rollback => {
            "version plus ancienne que celle déjà appliquée (retour en arrière refusé)"
        }
        RefusalReason::Expired => {
            "profil expiré : les mainteneurs doivent en signer une nouvelle version"
        }
        RefusalReason::ParseError => "profil illisible",
        RefusalReason::BlobMismatch => "un fichier épinglé ne correspond pas à son empreinte",
        RefusalReason::ResolveError => {
            "un profil inclus manque ou deux profils se contredisent : publiez les profils inclus"
        }
        RefusalReason::ExpiryTooFar => "date d'expiration trop lointaine",
        RefusalReason::NotInIndex => "version absente de l'index signé du catalogue",
        RefusalReason::Stale => "version plus ancienne que celle de l'index signé du catalogue",
        RefusalReason::IndexExpired => "l'index signé du catalogue a expiré (serveur figé ?)",
        RefusalReason::NoIndex => "aucun index signé du catalogue reçu",
        RefusalReason::NotTargeted => "le profil ne vise pas l'établissement de cette machine",
        RefusalReason::NoKeyring => {
            "aucun trousseau de clés sur cette machine : ré-enrôlez-la avec le kit (« nird-agent enroll --kit FICHIER --force »)"
        }
        RefusalReason::KeyringExpired => "le trousseau de clés a expiré",
    }
}

impl DaemonStatus {
    /// Reads the status file; a missing or unreadable one is an empty status
    /// (it is only a cache of what the server says).
    pub fn load(paths: &AgentPaths) -> Self {
        std::fs::read(paths.status_file())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes the status file atomically.
    pub fn save(&self, paths: &AgentPaths) -> std::io::Result<()> {
        let body = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(&paths.status_file(), &body, 0o644)
    }
}

/// Everything `nird-agent status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// True when a valid config exists.
    pub enrolled: bool,
    /// Server URL.
    pub server: Option<String>,
    /// Machine id.
    pub machine_id: Option<String>,
    /// Why the config is unusable, if it is.
    pub config_error: Option<String>,
    /// The daemon's persisted status.
    pub daemon: DaemonStatus,
    /// Profiles applied on this machine (name, version).
    pub applied: Vec<ProfileRef>,
    /// Reports waiting in the spool.
    pub pending_reports: usize,
    /// All spool entries (reports + inventory changes).
    pub spool_entries: usize,
    /// Spool size on disk.
    pub spool_bytes: u64,
    /// Keyring and index held, and what is wrong with them.
    pub trust: nird_proto::api::TrustReport,
}

/// Gathers the status of the agent at `paths`.
pub fn gather(paths: &AgentPaths) -> StatusReport {
    let (enrolled, server, machine_id, config_error) = match AgentConfig::load(paths) {
        Ok(c) => (true, Some(c.server), Some(c.machine_id), None),
        Err(ConfigError::NotEnrolled { .. }) => (false, None, None, None),
        Err(e) => (false, None, None, Some(e.to_string())),
    };
    let spool = Spool::inspect(&paths.spool_dir()).unwrap_or_default();
    StatusReport {
        enrolled,
        server,
        machine_id,
        config_error,
        daemon: DaemonStatus::load(paths),
        applied: crate::daemon::applied_profiles(paths),
        pending_reports: spool.reports,
        spool_entries: spool.entries,
        spool_bytes: spool.bytes,
        trust: crate::trust::report(paths, time::OffsetDateTime::now_utc()),
    }
}

/// `t` for people, in UTC (`2026-11-23 11:03:52 UTC`), or with its own
/// offset when it is out of range in UTC (a date from disk or the network
/// near the year 9999): never a panic.
pub(crate) fn date_text(t: time::OffsetDateTime) -> String {
    match t.checked_to_offset(time::UtcOffset::UTC) {
        Some(utc) => utc.format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        )),
        None => t.format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour]:[offset_minute]"
        )),
    }
    .unwrap_or_default()
}

fn show_time(t: Option<time::OffsetDateTime>, now: time::OffsetDateTime) -> String {
    let Some(t) = t else {
        return "jamais".to_owned();
    };
    let abs = date_text(t);
    let ago = (now - t).whole_seconds();
    let rel = match ago {
        s if s < 0 => format!("dans {}", human(-s)),
        s => format!("il y a {}", human(s)),
    };
    format!("{abs} ({rel})")
}

fn human(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3_600),
        s => format!("{} jours", s / 86_400),
    }
}

impl StatusReport {
    /// The report as French text for people.
    pub fn render(&self, now: time::OffsetDateTime) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<22}{v}\n"));
        match (&self.server, &self.machine_id, &self.config_error) {
            (Some(s), Some(m), _) => {
                line("Enrôlement", format!("enrôlée auprès de {s} (machine {m})"))
            }
            (_, _, Some(e)) => line("Enrôlement", format!("configuration invalide : {e}")),
            _ => line("Enrôlement", "non enrôlée (nird-agent enroll)".into()),
        }
        let d = &self.daemon;
        line(
            "Statut serveur",
            match d.machine_status {
                Some(MachineStatus::Active) => "active".into(),
                Some(MachineStatus::Pending) => "en attente d'approbation".into(),
                Some(MachineStatus::Retired) => "retirée du parc".into(),
                None => "inconnu".into(),
            },
        );
        line("Dernier contact", show_time(d.last_checkin_at, now));
        if let Some(e) = &d.last_error {
            line(
                "Dernière erreur",
                format!("{e} ({} échec(s) de suite)", d.consecutive_failures),
            );
        }
        if self.enrolled {
            line("Prochain contact", show_time(d.next_checkin_at, now));
        }
        let refs = |v: &[ProfileRef]| {
            if v.is_empty() {
                "aucun".to_owned()
            } else {
                v.iter()
                    .map(|p| format!("{} v{}", p.name, p.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        line(
            "Trousseau de clés",
            match self.trust.keyring_version {
                Some(v) => format!("version {v}"),
                None => "aucun".into(),
            },
        );
        line(
            "Index du catalogue",
            match self.trust.index_version {
                Some(v) => format!("version {v}"),
                None => "aucun".into(),
            },
        );
        for p in &self.trust.problems {
            line("Alerte confiance", crate::trust::problem_fr(p));
        }
        line("Profils assignés", refs(&d.assigned));
        line("Profils appliqués", refs(&self.applied));
        if !d.last_apply.outcomes.is_empty() {
            let last = d
                .last_apply
                .outcomes
                .iter()
                .map(|(name, o)| {
                    let what = match o.outcome {
                        ApplyOutcome::Applied => "appliqué".to_owned(),
                        ApplyOutcome::Deferred => "reporté à une fenêtre de maintenance".to_owned(),
                        ApplyOutcome::Failed => match &o.message {
                            Some(m) => format!("échec ({m})"),
                            None => "échec".to_owned(),
                        },
                        ApplyOutcome::Refused => match o.reason {
                            Some(r) => format!("refusé ({}) : {}", r.as_str(), refusal_fr(r)),
                            None => "refusé".to_owned(),
                        },
                    };
                    format!("{name} v{} : {what}", o.version)
                })
                .collect::<Vec<_>>()
                .join(", ");
            line("Dernière application", last);
        }
        line(
            "Rapports en attente",
            format!(
                "{} ({} entrée(s), {} octets en file d'attente)",
                self.pending_reports, self.spool_entries, self.spool_bytes
            ),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unenrolled_status_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let r = gather(&AgentPaths::new(dir.path()));
        assert!(!r.enrolled);
        let text = r.render(time::OffsetDateTime::now_utc());
        assert!(text.contains("non enrôlée"), "{text}");
        assert!(text.contains("jamais"), "{text}");
    }

    #[test]
    fn status_roundtrips_and_renders() {
        let dir = tempfile::tempdir().unwrap();
        let paths = AgentPaths::new(dir.path());
        let now = time::OffsetDateTime::now_utc();
        let s = DaemonStatus {
            last_checkin_at: Some(now - time::Duration::minutes(3)),
            machine_status: Some(MachineStatus::Active),
            assigned: vec![ProfileRef {
                name: "primtux-base".into(),
                version: 3,
            }],
            ..Default::default()
        };
        s.save(&paths).unwrap();
        let back = DaemonStatus::load(&paths);
        assert_eq!(back.assigned, s.assigned);
        let text = gather(&paths).render(now);
        assert!(text.contains("primtux-base v3"), "{text}");
        assert!(!text.contains("Dernière application"), "{text}");
        let mut s = back;
        s.last_apply.outcomes.insert(
            "primtux-base".into(),
            AttemptOutcome {
                version: 4,
                outcome: ApplyOutcome::Refused,
                reason: Some(RefusalReason::Rollback),
                message: None,
            },
        );
        s.save(&paths).unwrap();
        let text = gather(&paths).render(now);
        assert!(
            text.contains("primtux-base v4 : refusé (rollback) : version plus ancienne"),
            "{text}"
        );
        // A failure shows its reason, as `machine reports` does.
        s.last_apply.outcomes.insert(
            "nird-base".into(),
            AttemptOutcome {
                version: 2,
                outcome: ApplyOutcome::Failed,
                reason: None,
                message: Some("package:vlc : apt-get install : E: Unable to locate package".into()),
            },
        );
        s.save(&paths).unwrap();
        let text = gather(&paths).render(now);
        assert!(
            text.contains("nird-base v2 : échec (package:vlc : apt-get install"),
            "{text}"
        );
        assert!(text.contains("il y a 3 min"), "{text}");
    }

    #[test]
    fn a_date_at_the_edge_of_the_calendar_does_not_panic_status() {
        // Hand-edited: in UTC this is the year 10000, beyond `time`'s range.
        let dir = tempfile::tempdir().unwrap();
        let paths = AgentPaths::new(dir.path());
        let file = paths.status_file();
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, r#"{"next_checkin_at":"9999-12-31T23:30:00-01:00"}"#).unwrap();
        let status = DaemonStatus::load(&paths);
        assert!(status.next_checkin_at.is_some(), "the file was read");
        let text = show_time(status.next_checkin_at, time::OffsetDateTime::now_utc());
        assert!(
            text.starts_with("9999-12-31 23:30:00 -01:00 (dans "),
            "{text}"
        );
    }
}
