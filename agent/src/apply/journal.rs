//! The apply journal: crash safety of an apply in progress.
//!
//! Every change the engine makes is idempotent and converges (files are
//! replaced by rename, accounts files are rewritten whole, apt and systemd
//! are told the desired state), so recovering from a power cut is "run the
//! apply again". The journal records what is needed to do that well:
//! that an apply was running (so the next one knows it was interrupted),
//! the resource being changed, and whether dpkg may have been interrupted
//! (so `dpkg --configure -a` runs before apt is used again). It is written
//! with fsync before each change and removed when the apply ends.

use std::path::{Path, PathBuf};

use nird_proto::api::ProfileRef;
use serde::{Deserialize, Serialize};

use super::files::write_atomic;

/// The journal's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// When the interrupted apply started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    /// The releases it was applying.
    pub releases: Vec<ProfileRef>,
    /// The resource it was changing when last written, if any.
    #[serde(default)]
    pub current: Option<String>,
    /// True while apt-get or dpkg runs: an interruption then leaves dpkg's
    /// database half-configured.
    #[serde(default)]
    pub dpkg_running: bool,
}

/// An open journal file.
#[derive(Debug)]
pub struct JournalFile {
    /// Where it lives (`paths.journal_file()`).
    path: PathBuf,
    /// What it says now.
    pub journal: Journal,
}

impl JournalFile {
    /// Reads the journal left by an interrupted apply, if any. An unreadable
    /// journal still means an apply was interrupted.
    pub fn interrupted(path: &Path) -> Option<Journal> {
        let bytes = std::fs::read(path).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap_or(Journal {
            started_at: time::OffsetDateTime::UNIX_EPOCH,
            releases: Vec::new(),
            current: None,
            dpkg_running: true,
        }))
    }

    /// Starts a journal for a new apply (written and synced at once).
    pub fn begin(path: &Path, journal: Journal) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = JournalFile {
            path: path.to_owned(),
            journal,
        };
        file.write()?;
        Ok(file)
    }

    /// Records the resource about to change.
    pub fn step(&mut self, current: &str, dpkg_running: bool) -> std::io::Result<()> {
        self.journal.current = Some(current.to_owned());
        self.journal.dpkg_running = dpkg_running;
        self.write()
    }

    /// Ends the apply: the journal disappears.
    pub fn finish(self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn write(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.journal).map_err(std::io::Error::other)?;
        write_atomic(&self.path, &bytes, 0o600, None)
    }
}
