//! The on-disk spool: apply reports and inventory changes waiting for the
//! server.
//!
//! Everything the agent must tell the server goes here first and leaves only
//! when the server has acknowledged it, so a week without network, a crash or
//! a power cut loses nothing.
//!
//! # Durability invariants
//! - Every entry is one file, `{seq:020}.report.json` or
//!   `{seq:020}.inventory.json`, written atomically: temporary file, `fsync`,
//!   `rename`, `fsync` of the directory. After a crash an entry is either
//!   complete or absent; leftover temporary files are removed at open.
//! - `seq` is strictly increasing and never reused: the last allocated value
//!   is persisted (same atomic write) *before* the entry that uses it, and at
//!   open the counter is the maximum of that file and of the entries present.
//!   The daemon ignores a server's `acked_seq` above this counter (it
//!   neither drops reports for it nor raises the counter), so a server
//!   cannot make the agent skip to the end of `u64` or drop what it never
//!   received. [`Spool::raise_seq_floor`] exists for explicit recovery and
//!   stops at [`MAX_SEQ_FLOOR`]. The counter never wraps: past `u64::MAX`
//!   the spool refuses to number new entries ([`SpoolError::SeqExhausted`])
//!   rather than reuse 0.
//! - A report is deleted only once the server's `acked_seq` covers it; the
//!   server stores reports idempotently by `(machine, seq)`, so a report sent
//!   twice (reply lost) is stored once: delivery is exactly once, in order.
//! - One writer: [`Spool::open`] takes an exclusive `flock` on `spool/lock`
//!   for the spool's lifetime, so `run --once` next to a running daemon is
//!   refused instead of racing on sequence numbers; `status` only reads
//!   ([`Spool::inspect`]).
//! - The spool is bounded in entries and bytes. When full, the oldest
//!   *inventory* entries go first (a newer inventory supersedes them); reports
//!   are dropped only when no inventory entry is left, with an error in the
//!   logs.
//! - An entry that cannot be read is renamed `*.corrupt`; one the server
//!   refuses (400) is renamed `*.rejected` by the daemon. Either is logged
//!   and kept for inspection, and neither blocks the entries after it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nird_proto::api::ApplyReport;
use serde::{Deserialize, Serialize};

/// Default bound on the number of entries (a report per apply: years of them).
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// Default bound on the spool's size on disk.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Highest value the server's `acked_seq` may raise the counter to: 2^53
/// (exact in every JSON reader). A larger claim is ignored; whatever a
/// server says, 2^64 − 2^53 numbers are left, never exhausted.
pub const MAX_SEQ_FLOOR: u64 = 1 << 53;

/// Name of the file holding the last allocated sequence number.
const SEQ_FILE: &str = "seq";

/// Name of the lock file (exclusive `flock` while a spool is open).
const LOCK_FILE: &str = "lock";

/// Spool entries set aside (`*.rejected`, `*.corrupt`) kept for inspection;
/// older ones are deleted.
pub const MAX_SET_ASIDE: usize = 20;

/// Writes `bytes` to `path` atomically and durably: a temporary file in the
/// same directory, `fsync`, `rename` over `path`, `fsync` of the directory.
/// Creates missing parent directories. `mode` is the file's permission bits.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` is masked by the umask at creation: set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `fsync` of a directory, so a rename or unlink inside it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Bounds of the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Most entries kept.
    pub max_entries: usize,
    /// Most bytes kept (sum of entry file sizes).
    pub max_bytes: u64,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// What one spool entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// An apply report.
    Report,
    /// A changed inventory document.
    Inventory,
}

impl EntryKind {
    fn suffix(self) -> &'static str {
        match self {
            EntryKind::Report => ".report.json",
            EntryKind::Inventory => ".inventory.json",
        }
    }
}

/// An inventory change as spooled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpooledInventory {
    /// Its `content_hash`.
    pub hash: String,
    /// The document itself.
    pub inventory: serde_json::Value,
}

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed (disk full, permissions...).
    #[error("file d'attente {path} : {cause}")]
    Io {
        /// The file or directory.
        path: String,
        /// The system error (in the message, not a `source()`).
        cause: std::io::Error,
    },
    /// Another process has the spool open.
    #[error(
        "la file d'attente {path} est utilisée par un autre nird-agent (le service tourne-t-il déjà ? « systemctl status nird-agent »)"
    )]
    Busy {
        /// The spool directory.
        path: String,
    },
    /// Every sequence number has been used: numbering goes on only by
    /// reusing one, which would lose a report.
    #[error(
        "plus aucun numéro de rapport disponible (dernier : {last}) : la file d'attente refuse de réutiliser un numéro ; réinstallez l'agent (« nird-agent enroll --force »)"
    )]
    SeqExhausted {
        /// The last number allocated.
        last: u64,
    },
    /// One entry is larger than the whole spool may be.
    #[error("entrée de {size} octets trop grande pour la file d'attente ({max} octets au plus)")]
    TooLarge {
        /// The entry's size.
        size: u64,
        /// The spool's byte bound.
        max: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |cause| SpoolError::Io {
        path: path.display().to_string(),
        cause,
    }
}

/// Index entry: what is on disk for one seq.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Report or inventory.
    kind: EntryKind,
    /// File size, for the byte bound.
    bytes: u64,
}

/// The spool directory and its in-memory index.
#[derive(Debug)]
pub struct Spool {
    /// The directory (`/var/lib/nird-agent/spool`).
    dir: PathBuf,
    /// Last allocated seq (persisted in `seq`).
    last_seq: u64,
    /// Entries on disk by seq (oldest first).
    entries: BTreeMap<u64, Entry>,
    /// Sum of the entries' sizes.
    bytes: u64,
    /// Bounds.
    limits: SpoolLimits,
    /// The open lock file; its `flock` is released when the spool is dropped.
    _lock: File,
}

/// What [`Spool::inspect`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolSummary {
    /// Reports waiting.
    pub reports: usize,
    /// All entries (reports and inventory changes).
    pub entries: usize,
    /// Their size on disk.
    pub bytes: u64,
}

impl Spool {
    /// Opens (creating if needed, mode 0700) the spool at `dir`, removes
    /// leftover temporary files and indexes the entries present.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Self, SpoolError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |e| {
                if e == rustix::io::Errno::WOULDBLOCK {
                    SpoolError::Busy {
                        path: dir.display().to_string(),
                    }
                } else {
                    io_err(&lock_path)(e.into())
                }
            },
        )?;
        let mut entries = BTreeMap::new();
        let mut bytes = 0;
        for item in fs::read_dir(dir).map_err(io_err(dir))? {
            let item = item.map_err(io_err(dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                // An interrupted write: the entry never existed.
                let _ = fs::remove_file(item.path());
                continue;
            }
            let Some((seq, kind)) = parse_entry_name(&name) else {
                continue;
            };
            let size = item.metadata().map_err(io_err(&item.path()))?.len();
            bytes += size;
            entries.insert(seq, Entry { kind, bytes: size });
        }
        let seq_path = dir.join(SEQ_FILE);
        let persisted = match fs::read_to_string(&seq_path) {
            Ok(s) => s.trim().parse::<u64>().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(&seq_path)(e)),
        };
        let last_seq = persisted.max(entries.keys().next_back().copied().unwrap_or(0));
        Ok(Spool {
            dir: dir.to_owned(),
            last_seq,
            entries,
            bytes,
            limits,
            _lock: lock,
        })
    }

    /// Counts what waits in the spool at `dir` without opening it: no lock,
    /// no write (for `status`, while the daemon runs). A missing directory is
    /// an empty spool.
    pub fn inspect(dir: &Path) -> Result<SpoolSummary, SpoolError> {
        let mut summary = SpoolSummary::default();
        let items = match fs::read_dir(dir) {
            Ok(items) => items,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(summary),
            Err(e) => return Err(io_err(dir)(e)),
        };
        for item in items {
            let item = item.map_err(io_err(dir))?;
            let Some((_, kind)) = parse_entry_name(&item.file_name().to_string_lossy()) else {
                continue;
            };
            // An entry deleted meanwhile by the daemon is simply not counted.
            let Ok(meta) = item.metadata() else { continue };
            summary.entries += 1;
            summary.bytes += meta.len();
            if kind == EntryKind::Report {
                summary.reports += 1;
            }
        }
        Ok(summary)
    }

    /// Spools a report, giving it the next seq (overwriting `report.seq`).
    /// Returns that seq. The report is on disk when this returns.
    pub fn push_report(&mut self, mut report: ApplyReport) -> Result<u64, SpoolError> {
        let seq = self.allocate_seq()?;
        report.seq = seq;
        let body = serde_json::to_vec(&report).unwrap_or_default();
        self.store(seq, EntryKind::Report, &body)?;
        Ok(seq)
    }

    /// Spools a changed inventory. Returns its seq.
    pub fn push_inventory(
        &mut self,
        inventory: &serde_json::Value,
        hash: &str,
    ) -> Result<u64, SpoolError> {
        let seq = self.allocate_seq()?;
        let body = serde_json::to_vec(&SpooledInventory {
            hash: hash.to_owned(),
            inventory: inventory.clone(),
        })
        .unwrap_or_default();
        self.store(seq, EntryKind::Inventory, &body)?;
        Ok(seq)
    }

    /// The oldest `max` reports, oldest first, each with the seq of its
    /// entry. An unreadable entry (disk damage) is renamed `*.corrupt`,
    /// logged and skipped.
    pub fn pending_reports(&mut self, max: usize) -> Result<Vec<ApplyReport>, SpoolError> {
        let seqs: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::Report)
            .map(|(s, _)| *s)
            .take(max)
            .collect();
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(report) = self.report(seq)? {
                out.push(report);
            }
        }
        Ok(out)
    }

    /// The newest spooled inventory and its seq, if any.
    pub fn latest_inventory(&mut self) -> Result<Option<(u64, SpooledInventory)>, SpoolError> {
        self.inventory_at(true)
    }

    /// The oldest spooled inventory and its seq, if any: the next one to
    /// deliver (changes reach the server's history in order).
    pub fn oldest_inventory(&mut self) -> Result<Option<(u64, SpooledInventory)>, SpoolError> {
        self.inventory_at(false)
    }

    /// Number of inventory changes waiting.
    pub fn inventory_count(&self) -> usize {
        self.entries.len() - self.report_count()
    }

    fn inventory_at(
        &mut self,
        newest: bool,
    ) -> Result<Option<(u64, SpooledInventory)>, SpoolError> {
        loop {
            let mut inventories = self
                .entries
                .iter()
                .filter(|(_, e)| e.kind == EntryKind::Inventory)
                .map(|(s, _)| *s);
            let next = if newest {
                inventories.next_back()
            } else {
                inventories.next()
            };
            let Some(seq) = next else { return Ok(None) };
            // An unreadable entry is set aside by `read_entry`: try the next.
            if let Some(inv) = self.read_entry(seq, EntryKind::Inventory)? {
                return Ok(Some((seq, inv)));
            }
        }
    }

    /// The report spooled at `seq`, if there is one and it is readable.
    /// Its `seq` is the entry's (the file name is the truth: a damaged
    /// number inside would never be acknowledged).
    pub fn report(&mut self, seq: u64) -> Result<Option<ApplyReport>, SpoolError> {
        match self.entries.get(&seq) {
            Some(e) if e.kind == EntryKind::Report => Ok(self
                .read_entry::<ApplyReport>(seq, EntryKind::Report)?
                .map(|report| ApplyReport { seq, ..report })),
            _ => Ok(None),
        }
    }

    /// The inventory change spooled at `seq`, if there is one and it is
    /// readable.
    pub fn inventory(&mut self, seq: u64) -> Result<Option<SpooledInventory>, SpoolError> {
        match self.entries.get(&seq) {
            Some(e) if e.kind == EntryKind::Inventory => self.read_entry(seq, EntryKind::Inventory),
            _ => Ok(None),
        }
    }

    /// Takes the entry at `seq` out of the spool, keeping its file renamed
    /// `*.rejected` for inspection: the server refuses it, and resending it
    /// would block every later check-in.
    pub fn set_aside_rejected(&mut self, seq: u64) {
        if let Some(kind) = self.entries.get(&seq).map(|e| e.kind) {
            self.set_aside(seq, kind, "rejected");
        }
    }

    /// Deletes every report with `seq <= acked_seq`. Returns how many.
    pub fn ack_reports(&mut self, acked_seq: u64) -> Result<usize, SpoolError> {
        self.remove_where(|seq, kind| kind == EntryKind::Report && seq <= acked_seq)
    }

    /// Deletes every inventory entry with `seq <= upto` (the server has the
    /// one at `upto`, which supersedes older ones). Returns how many.
    pub fn ack_inventory(&mut self, upto: u64) -> Result<usize, SpoolError> {
        self.remove_where(|seq, kind| kind == EntryKind::Inventory && seq <= upto)
    }

    /// Makes sure the next seq is above `seq` (the server's `acked_seq`),
    /// unless `seq` is beyond [`MAX_SEQ_FLOOR`] (ignored, logged).
    pub fn raise_seq_floor(&mut self, seq: u64) -> Result<(), SpoolError> {
        if seq > MAX_SEQ_FLOOR {
            tracing::warn!(
                server_acked = seq,
                local_last = self.last_seq,
                "absurd acknowledged seq from the server ignored"
            );
            return Ok(());
        }
        if seq > self.last_seq {
            tracing::warn!(
                server_acked = seq,
                local_last = self.last_seq,
                "server knows higher report numbers than the spool; skipping ahead"
            );
            self.last_seq = seq;
            self.persist_seq()?;
        }
        Ok(())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of reports waiting.
    pub fn report_count(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.kind == EntryKind::Report)
            .count()
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Last allocated seq.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    fn allocate_seq(&mut self) -> Result<u64, SpoolError> {
        let next = self
            .last_seq
            .checked_add(1)
            .ok_or(SpoolError::SeqExhausted {
                last: self.last_seq,
            })?;
        let previous = std::mem::replace(&mut self.last_seq, next);
        // Persist before use: a crash after this never reuses the number.
        if let Err(e) = self.persist_seq() {
            self.last_seq = previous;
            return Err(e);
        }
        Ok(next)
    }

    fn persist_seq(&self) -> Result<(), SpoolError> {
        let path = self.dir.join(SEQ_FILE);
        write_atomic(&path, format!("{}\n", self.last_seq).as_bytes(), 0o600).map_err(io_err(&path))
    }

    fn entry_path(&self, seq: u64, kind: EntryKind) -> PathBuf {
        self.dir.join(format!("{seq:020}{}", kind.suffix()))
    }

    fn store(&mut self, seq: u64, kind: EntryKind, body: &[u8]) -> Result<(), SpoolError> {
        let size = body.len() as u64;
        if size > self.limits.max_bytes {
            return Err(SpoolError::TooLarge {
                size,
                max: self.limits.max_bytes,
            });
        }
        self.make_room(size)?;
        let path = self.entry_path(seq, kind);
        write_atomic(&path, body, 0o600).map_err(io_err(&path))?;
        self.entries.insert(seq, Entry { kind, bytes: size });
        self.bytes += size;
        Ok(())
    }

    /// Drops the oldest inventory entries, then the oldest reports, until an
    /// entry of `size` bytes fits.
    fn make_room(&mut self, size: u64) -> Result<(), SpoolError> {
        let full = |s: &Self| {
            s.entries.len() + 1 > s.limits.max_entries || s.bytes + size > s.limits.max_bytes
        };
        while full(self) {
            let victim = self
                .entries
                .iter()
                .find(|(_, e)| e.kind == EntryKind::Inventory)
                .or_else(|| self.entries.iter().next())
                .map(|(s, e)| (*s, e.kind));
            let Some((seq, kind)) = victim else { break };
            match kind {
                EntryKind::Inventory => tracing::warn!(
                    seq,
                    "spool full: dropping the oldest inventory change (a newer one supersedes it)"
                ),
                EntryKind::Report => tracing::error!(
                    seq,
                    "spool full of reports: dropping the oldest report, the server will never see it"
                ),
            }
            self.remove(seq, kind)?;
        }
        Ok(())
    }

    fn remove_where(&mut self, pred: impl Fn(u64, EntryKind) -> bool) -> Result<usize, SpoolError> {
        let victims: Vec<(u64, EntryKind)> = self
            .entries
            .iter()
            .filter(|(s, e)| pred(**s, e.kind))
            .map(|(s, e)| (*s, e.kind))
            .collect();
        for (seq, kind) in &victims {
            self.remove(*seq, *kind)?;
        }
        if !victims.is_empty() {
            sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        }
        Ok(victims.len())
    }

    fn remove(&mut self, seq: u64, kind: EntryKind) -> Result<(), SpoolError> {
        let path = self.entry_path(seq, kind);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        if let Some(e) = self.entries.remove(&seq) {
            self.bytes -= e.bytes;
        }
        Ok(())
    }

    fn read_entry<T: serde::de::DeserializeOwned>(
        &mut self,
        seq: u64,
        kind: EntryKind,
    ) -> Result<Option<T>, SpoolError> {
        let path = self.entry_path(seq, kind);
        let parsed = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<T>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(v) => Ok(Some(v)),
            Err(reason) => {
                tracing::error!(path = %path.display(), %reason, "unreadable spool entry set aside");
                self.set_aside(seq, kind, "corrupt");
                Ok(None)
            }
        }
    }

    /// Renames the entry's file `*.{extension}` (no longer an entry) and
    /// forgets it.
    fn set_aside(&mut self, seq: u64, kind: EntryKind, extension: &str) {
        let path = self.entry_path(seq, kind);
        if let Err(e) = fs::rename(&path, path.with_extension(extension)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot rename a spool entry set aside");
        }
        if let Some(e) = self.entries.remove(&seq) {
            self.bytes -= e.bytes;
        }
        self.prune_set_aside();
    }

    /// Keeps the newest [`MAX_SET_ASIDE`] files set aside (`*.rejected`,
    /// `*.corrupt`): they are out of the spool's accounting, and a server
    /// refusing every entry must not fill the disk with copies.
    fn prune_set_aside(&self) {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut aside: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "rejected" || x == "corrupt")
            })
            .collect();
        if aside.len() <= MAX_SET_ASIDE {
            return;
        }
        // Names start with the 20-digit sequence number: name order is age.
        aside.sort();
        for old in &aside[..aside.len() - MAX_SET_ASIDE] {
            if let Err(e) = fs::remove_file(old) {
                tracing::warn!(path = %old.display(), error = %e, "cannot remove an old set-aside entry");
            }
        }
    }
}

fn parse_entry_name(name: &str) -> Option<(u64, EntryKind)> {
    let (digits, kind) = if let Some(d) = name.strip_suffix(EntryKind::Report.suffix()) {
        (d, EntryKind::Report)
    } else {
        (
            name.strip_suffix(EntryKind::Inventory.suffix())?,
            EntryKind::Inventory,
        )
    };
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nird_proto::api::ApplyOutcome;

    pub(crate) fn report(profile: &str) -> ApplyReport {
        let t = time::OffsetDateTime::UNIX_EPOCH;
        ApplyReport {
            seq: 0,
            profile: profile.into(),
            version: 1,
            outcome: ApplyOutcome::Applied,
            reason: None,
            message: None,
            resources: vec![],
            started_at: t,
            finished_at: t,
        }
    }

    #[test]
    fn seq_is_strictly_increasing_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(s.push_report(report("a")).unwrap(), 1);
        assert_eq!(
            s.push_inventory(&serde_json::json!({"x":1}), "h").unwrap(),
            2
        );
        assert_eq!(s.push_report(report("b")).unwrap(), 3);
        s.ack_reports(3).unwrap();
        s.ack_inventory(2).unwrap();
        assert!(s.is_empty());
        drop(s);
        // Everything acked and deleted: the counter still does not go back.
        let mut s = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(s.push_report(report("c")).unwrap(), 4);
        s.raise_seq_floor(10).unwrap();
        assert_eq!(s.push_report(report("d")).unwrap(), 11);
        let got: Vec<u64> = s
            .pending_reports(10)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(got, vec![4, 11]);
    }

    #[test]
    fn seq_never_wraps_and_absurd_floors_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        s.push_report(report("a")).unwrap();
        // A server's 2^64−1 does not move the counter.
        s.raise_seq_floor(u64::MAX).unwrap();
        s.raise_seq_floor(MAX_SEQ_FLOOR + 1).unwrap();
        assert_eq!(s.push_report(report("b")).unwrap(), 2);
        drop(s);
        // A counter at the end of u64 (a damaged or forged seq file): the
        // spool refuses to number, never reuses 0, and stores nothing.
        fs::write(dir.path().join(SEQ_FILE), format!("{}\n", u64::MAX)).unwrap();
        let mut s = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        let err = s.push_report(report("c")).unwrap_err();
        assert!(
            matches!(err, SpoolError::SeqExhausted { last: u64::MAX }),
            "{err}"
        );
        assert!(err.to_string().contains("réutiliser"), "{err}");
        assert!(matches!(
            s.push_inventory(&serde_json::json!({}), "h"),
            Err(SpoolError::SeqExhausted { .. })
        ));
        assert_eq!(s.len(), 2);
        assert_eq!(s.last_seq(), u64::MAX);
        let seqs: Vec<u64> = s
            .pending_reports(10)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn leftover_temp_files_and_corrupt_entries_are_handled() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        s.push_report(report("a")).unwrap();
        s.push_report(report("b")).unwrap();
        drop(s);
        fs::write(
            dir.path().join(".00000000000000000003.report.json.tmp-1"),
            b"{",
        )
        .unwrap();
        fs::write(
            dir.path().join("00000000000000000001.report.json"),
            b"garbage",
        )
        .unwrap();
        let mut s = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert!(
            !dir.path()
                .join(".00000000000000000003.report.json.tmp-1")
                .exists()
        );
        let got = s.pending_reports(10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].profile, "b");
        assert_eq!(s.report_count(), 1);
        assert!(
            dir.path()
                .join("00000000000000000001.report.corrupt")
                .exists()
        );
    }

    #[test]
    fn when_full_inventory_goes_before_reports() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SpoolLimits {
            max_entries: 3,
            max_bytes: 1 << 20,
        };
        let mut s = Spool::open(dir.path(), limits).unwrap();
        s.push_inventory(&serde_json::json!({"v":1}), "h1").unwrap();
        s.push_report(report("a")).unwrap();
        s.push_inventory(&serde_json::json!({"v":2}), "h2").unwrap();
        // Full: the oldest inventory (seq 1) goes, not report seq 2.
        s.push_report(report("b")).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.report_count(), 2);
        assert_eq!(s.latest_inventory().unwrap().unwrap().1.hash, "h2");
        assert_eq!(s.oldest_inventory().unwrap().unwrap().1.hash, "h2");
        assert_eq!(s.inventory_count(), 1);
        // Again: the remaining inventory goes.
        s.push_report(report("c")).unwrap();
        assert_eq!(s.report_count(), 3);
        assert!(s.latest_inventory().unwrap().is_none());
        // Only reports left: the oldest report goes.
        s.push_report(report("d")).unwrap();
        let names: Vec<String> = s
            .pending_reports(10)
            .unwrap()
            .into_iter()
            .map(|r| r.profile)
            .collect();
        assert_eq!(names, vec!["b", "c", "d"]);
    }

    #[test]
    fn byte_bound_is_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SpoolLimits {
            max_entries: 100,
            max_bytes: 600,
        };
        let mut s = Spool::open(dir.path(), limits).unwrap();
        for i in 0..10 {
            s.push_report(report(&format!("p{i}"))).unwrap();
            assert!(s.bytes() <= 600);
        }
        let big = serde_json::json!({ "x": "y".repeat(1000) });
        assert!(matches!(
            s.push_inventory(&big, "h"),
            Err(SpoolError::TooLarge { .. })
        ));
        // The index agrees with the disk after reopen.
        let bytes = s.bytes();
        drop(s);
        let s2 = Spool::open(dir.path(), limits).unwrap();
        assert_eq!(s2.bytes(), bytes);
    }

    #[test]
    fn one_writer_at_a_time_and_inspect_only_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        s.push_report(report("a")).unwrap();
        s.push_inventory(&serde_json::json!({}), "h").unwrap();
        let err = Spool::open(dir.path(), SpoolLimits::default()).unwrap_err();
        assert!(matches!(err, SpoolError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("autre nird-agent"), "{err}");
        // A temporary file of a write in progress is left alone by inspect.
        let tmp = dir.path().join(".00000000000000000003.report.json.tmp-9");
        fs::write(&tmp, b"{").unwrap();
        let summary = Spool::inspect(dir.path()).unwrap();
        assert_eq!(
            summary,
            SpoolSummary {
                reports: 1,
                entries: 2,
                bytes: s.bytes()
            }
        );
        assert!(tmp.exists());
        drop(s);
        assert!(Spool::open(dir.path(), SpoolLimits::default()).is_ok());
        assert_eq!(
            Spool::inspect(&dir.path().join("nope")).unwrap(),
            SpoolSummary::default()
        );
    }

    #[test]
    fn write_atomic_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/secret");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
