//! What has been applied: the highest version of each profile (the
//! anti-rollback floor) and the outcome of its last apply, in
//! `paths.applied_file()`.
//!
//! The floor only ever rises, and it rises *before* the first change of an
//! apply is made: a release that has started to change the system can never
//! be rolled back to, even if the power is cut in the middle. A missing file
//! means "nothing applied yet"; an unreadable one is an error, never an
//! empty state, because an empty state would silently lift every floor.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nird_proto::api::{ApplyOutcome, ProfileRef};
use serde::{Deserialize, Serialize};

use super::files::write_atomic;

/// One profile's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedProfile {
    /// Highest version whose apply has started: the anti-rollback floor.
    pub version: u64,
    /// Outcome of the last apply of this profile.
    pub outcome: ApplyOutcome,
    /// When that apply finished (or started, while `outcome` is not final).
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

/// The content of `applied.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedState {
    /// Profile name → its entry.
    pub profiles: BTreeMap<String, AppliedProfile>,
}

/// `applied.json` could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("état des profils appliqués {path} illisible : {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("écriture de l'état des profils appliqués {path} impossible : {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl AppliedState {
    /// Reads the state; a missing file is the empty state.
    pub fn load(path: &std::path::Path) -> Result<Self, StateError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Read {
                path: path.to_owned(),
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(StateError::Read {
                path: path.to_owned(),
                detail: e.to_string(),
            }),
        }
    }

    /// Writes the state atomically (mode 0600).
    pub fn save(&self, path: &std::path::Path) -> Result<(), StateError> {
        let write = |source| StateError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| write(e.into()))?;
        write_atomic(path, &bytes, 0o600, None).map_err(write)
    }

    /// The anti-rollback floor of `name`.
    pub fn floor(&self, name: &str) -> Option<u64> {
        self.profiles.get(name).map(|p| p.version)
    }

    /// Records that `version` of `name` reached `outcome`; the floor never
    /// goes down.
    pub fn record(
        &mut self,
        name: &str,
        version: u64,
        outcome: ApplyOutcome,
        at: time::OffsetDateTime,
    ) {
        let entry = self
            .profiles
            .entry(name.to_owned())
            .or_insert(AppliedProfile {
                version,
                outcome,
                at,
            });
        entry.version = entry.version.max(version);
        entry.outcome = outcome;
        entry.at = at;
    }

    /// The releases fully applied, for the check-in's `applied` field.
    pub fn applied(&self) -> Vec<ProfileRef> {
        self.profiles
            .iter()
            .filter(|(_, p)| p.outcome == ApplyOutcome::Applied)
            .map(|(name, p)| ProfileRef {
                name: name.clone(),
                version: p.version,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_never_goes_down_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/applied.json");
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let mut s = AppliedState::load(&path).unwrap();
        assert_eq!(s.floor("primtux"), None);
        s.record("primtux", 5, ApplyOutcome::Applied, now);
        s.record("primtux", 3, ApplyOutcome::Failed, now);
        s.save(&path).unwrap();
        let s = AppliedState::load(&path).unwrap();
        assert_eq!(s.floor("primtux"), Some(5));
        assert!(s.applied().is_empty(), "last outcome was a failure");
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(
            AppliedState::load(&path).is_err(),
            "corrupt state must not lift floors"
        );
    }
}
