//! The SQLite implementation of [`Store`].
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, so a
//! committed transaction has been fsync'ed to the WAL before `COMMIT`
//! returns. A write method answers only after the commit that holds its
//! change, so whatever the server acknowledged survives `kill -9` or a power
//! cut.
//!
//! Throughput: one fsync per check-in would cap the server at the disk's
//! fsync rate. All writes therefore go through one writer thread that does
//! **group commit**: it takes every write waiting in its queue (up to
//! [`MAX_BATCH`]), runs each inside its own `SAVEPOINT` within one
//! transaction (a failing write rolls back alone, nothing half-written),
//! commits once, then answers all of them. Under load the batch grows and
//! the fsync cost per write shrinks; at rest a write commits alone at once.
//!
//! Reads run on a small pool of read-only connections on the blocking
//! thread pool; WAL lets them proceed while the writer commits.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use nird_proto::api::{ApplyReport, MachineStatus, ProfileRef};
use nird_proto::uai::Uai;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

pub(crate) mod audit_facts;
pub(crate) mod inventory;
pub(crate) mod web;

pub use inventory::{NewList, pack_list};

use super::migrations::MIGRATIONS;
use super::{
    AuditEntry, Checkin, CheckinOutcome, Enrolment, MachineAuth, MachineSummary, NewIndex,
    NewKeyring, NewMachine, NewRelease, NewToken, NewUser, PruneOutcome, PublishOutcome, Release,
    ReleaseInfo, School, SchoolKind, SignedDocument, Store, StoreError, StoreFuture, StoredRelease,
    TokenInfo, TokenProblem,
};
use crate::secrets::constant_time_eq;

/// Most writes committed together in one transaction.
const MAX_BATCH: usize = 512;

/// How long a connection waits for another process's lock (the admin CLI
/// and the server share the database file).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Most reads running at once (and so read connections open): a burst of
/// profile downloads queues here instead of opening a connection each.
const MAX_READERS: usize = 8;

/// A write waiting for the writer thread.
trait Job: Send {
    /// Runs the write on the writer's connection, inside a savepoint;
    /// returns false if it failed (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Delivers the result once the transaction is committed (or failed).
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

/// A [`Job`] made of a closure and the channel its caller waits on.
struct WriteJob<T, F> {
    /// The write itself; taken when run.
    work: Option<F>,
    /// Its result, kept until the commit.
    result: Option<Result<T, StoreError>>,
    /// Where the caller waits.
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for WriteJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = match self.work.take() {
            Some(work) => work(conn),
            None => Err(StoreError::Backend("write run twice".into())),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = match (commit, self.result) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(StoreError::Backend("write never ran".into())),
        };
        // The caller may have gone away (request cancelled): nothing to do.
        let _ = self.reply.send(result);
    }
}

/// Idle read connections.
struct ReaderPool {
    /// Database file.
    path: PathBuf,
    /// Connections not in use.
    idle: Mutex<Vec<Connection>>,
    /// Set at close: connections coming back are closed, not kept.
    closed: std::sync::atomic::AtomicBool,
}

impl ReaderPool {
    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        match idle {
            Some(c) => Ok(c),
            None => open_connection(&self.path, true),
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && !self.closed.load(Ordering::Relaxed)
            && idle.len() < MAX_READERS
        {
            idle.push(conn);
        }
    }
}

/// Counters of the writer thread.
#[derive(Default)]
struct WriterStats {
    /// Writes queued or running (load signal).
    pending: AtomicUsize,
    /// Transactions committed (each one fsync of the WAL).
    commits: AtomicU64,
    /// Writes those transactions carried.
    writes: AtomicU64,
}

/// The SQLite store. Cheap to share (`Arc<SqliteStore>`).
pub struct SqliteStore {
    /// Queue of the writer thread; `None` once closed.
    writer: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    /// The writer thread, joined on close.
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// Read connections.
    readers: Arc<ReaderPool>,
    /// Bounds the reads running at once to [`MAX_READERS`].
    read_permits: Arc<tokio::sync::Semaphore>,
    /// Queue length and group-commit counters.
    stats: Arc<WriterStats>,
}

/// Opens one connection with the pragmas every connection needs.
fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if !read_only {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "cannot switch the database to WAL mode (got {mode})"
            )));
        }
        // FULL: every commit fsyncs the WAL, so an acknowledged write
        // survives a crash (NORMAL would only protect against corruption).
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Brings the schema up to date, in one transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "database schema version {current} is newer than this server ({}); upgrade nird-server",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The writer thread: group commit of everything queued.
fn writer_loop(conn: Connection, queue: mpsc::Receiver<Box<dyn Job>>, stats: Arc<WriterStats>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let n = batch.len();
        commit_batch(&conn, batch);
        stats.pending.fetch_sub(n, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.writes.fetch_add(n as u64, Ordering::Relaxed);
    }
    // Every sender is gone: the store is closing. When this is the last
    // connection to the file, SQLite folds the WAL back into the database
    // and removes it; an admin command closing while the server runs leaves
    // the WAL to the server instead of waiting for it.
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the database failed");
    }
}

/// Runs a batch of writes in one transaction and answers them.
fn commit_batch(conn: &Connection, mut batch: Vec<Box<dyn Job>>) {
    let outcome = (|| -> Result<(), StoreError> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for job in batch.iter_mut() {
            conn.execute_batch("SAVEPOINT job")?;
            if job.run(conn) {
                conn.execute_batch("RELEASE job")?;
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            }
        }
        conn.execute_batch("COMMIT")?;
        Ok(())
    })();
    if let Err(e) = &outcome {
        tracing::error!(error = %e, writes = batch.len(), "database transaction failed");
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    for job in batch {
        job.finish(outcome.clone());
    }
}

/// Current Unix time in seconds.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// u64 (wire) → i64 (SQLite), refusing values SQLite cannot hold.
pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Conflict(format!("{what} trop grand : {v}")))
}

/// i64 (SQLite) → u64, treating negatives (never written) as 0.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Appends one line to the audit log (inside the caller's transaction).
fn audit(
    conn: &Connection,
    actor: &str,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![now(), actor, action, detail.to_string()])?;
    Ok(())
}

/// The database id of a school, or `NotFound`.
fn school_id(conn: &Connection, uai: &Uai) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT id FROM schools WHERE uai = ?1")?
        .query_row([uai.as_str()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("l'établissement {uai}")))
}

/// Reads a status column.
pub(crate) fn status_of(s: &str) -> Result<MachineStatus, StoreError> {
    MachineStatus::parse(s).ok_or_else(|| StoreError::Backend(format!("unknown status {s}")))
}

/// Parses a stored UAI (validated when written).
pub(crate) fn stored_uai(s: String) -> Result<Uai, StoreError> {
    Uai::parse(&s).map_err(|e| StoreError::Backend(e.to_string()))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = open_connection(path, false)?;
        migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let stats = Arc::new(WriterStats::default());
        let writer_stats = stats.clone();
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, writer_stats))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(handle)),
            readers: Arc::new(ReaderPool {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
            read_permits: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
            stats,
        })
    }

    /// Queues a write and waits until it is committed.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(WriteJob {
            work: Some(work),
            result: None,
            reply,
        });
        {
            let writer = self.writer.lock().map_err(|_| StoreError::Closed)?;
            let sender = writer.as_ref().ok_or(StoreError::Closed)?;
            self.stats.pending.fetch_add(1, Ordering::Relaxed);
            if sender.send(job).is_err() {
                self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                return Err(StoreError::Closed);
            }
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a read on a pooled connection, off the async threads.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.writer.lock().map(|w| w.is_none()).unwrap_or(true) {
            return Err(StoreError::Closed);
        }
        let permit = self
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool.take()?;
            let result = work(&conn);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

/// The check-in transaction body.
fn record_checkin(
    conn: &Connection,
    c: Checkin,
    inventory: Option<inventory::Prepared>,
) -> Result<CheckinOutcome, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT secret_hash, status, inventory_hash, school_id, acked_seq
             FROM machines WHERE id = ?1",
        )?
        .query_row([&c.machine_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((secret_hash, status, stored_hash, school, acked)) = row else {
        return Err(StoreError::BadCredential);
    };
    if !constant_time_eq(&secret_hash, &c.secret_hash) {
        return Err(StoreError::BadCredential);
    }
    let status = status_of(&status)?;
    if status == MachineStatus::Retired {
        return Err(StoreError::Retired);
    }
    let at = now();
    let mut send_inventory = false;
    let sent = inventory.is_some();
    let changed = inventory.filter(|_| c.inventory_hash != stored_hash);
    match &changed {
        Some(inventory) => {
            conn.prepare_cached("UPDATE machines SET inventory_hash = ?2 WHERE id = ?1")?
                .execute(params![c.machine_id, c.inventory_hash])?;
            record_inventory(
                conn,
                &c.machine_id,
                at,
                &c.inventory_hash,
                inventory,
                c.max_inventory_changes_per_day,
            )?;
        }
        None => send_inventory = !sent && c.inventory_hash != stored_hash,
    }
    let mut acked_seq = acked;
    if !c.reports.is_empty() {
        let mut insert = conn.prepare_cached(
            "INSERT OR IGNORE INTO apply_reports
             (machine_id, seq, profile, version, outcome, report, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for report in &c.reports {
            let seq = to_i64(report.seq, "seq")?;
            let json =
                serde_json::to_string(report).map_err(|e| StoreError::Backend(e.to_string()))?;
            insert.execute(params![
                c.machine_id,
                seq,
                report.profile,
                to_i64(report.version, "version")?,
                report.outcome.as_str(),
                json,
                at
            ])?;
            acked_seq = acked_seq.max(seq);
        }
    }
    let applied =
        serde_json::to_string(&c.applied).map_err(|e| StoreError::Backend(e.to_string()))?;
    conn.prepare_cached(
        "UPDATE machines SET last_seen = ?2, checkins = checkins + 1, applied = ?3, acked_seq = ?4
         WHERE id = ?1",
    )?
    .execute(params![c.machine_id, at, applied, acked_seq])?;
    audit_facts::record(
        conn,
        &c.machine_id,
        changed.as_ref().map(|p| p.hardware.as_str()),
        &c.applied,
    )?;
    if let Some(trust) = &c.trust {
        conn.prepare_cached(
            "UPDATE machines SET trust_report = ?2 WHERE id = ?1 AND trust_report IS NOT ?2",
        )?
        .execute(params![c.machine_id, trust])?;
    }
    let assigned = assigned_closure(conn, status, school, &c.machine_id)?;
    let (keyring_version, index_version) = trust_versions(conn)?;
    Ok(CheckinOutcome {
        status,
        send_inventory,
        acked_seq: to_u64(acked_seq),
        assigned,
        keyring_version,
        index_version,
    })
}

/// Appends a changed inventory to a machine's history, within its daily
/// budget: once the machine has `per_day` rows recorded since midnight UTC,
/// the newest of them is replaced instead (the history keeps the day's
/// first changes and its latest state), so one machine cannot grow the
/// database faster than `per_day` rows a day. The package list is stored
/// once and the superseded row compressed ([`inventory::record`]).
fn record_inventory(
    conn: &Connection,
    machine_id: &str,
    at: i64,
    hash: &str,
    inventory: &inventory::Prepared,
    per_day: u32,
) -> Result<(), StoreError> {
    inventory::record(conn, machine_id, at, hash, inventory, per_day)
}

/// A machine's **assigned closure**: the current release of each profile
/// assigned to it (the version the newest signed catalogue index pins, else
/// the latest not revoked) (school assignment plus the machine's own inclusions,
/// minus its exclusions), and of every profile those releases include,
/// transitively — the agent needs them all to resolve `includes`. An
/// excluded profile still comes back when another assigned one includes it.
/// Empty unless the machine is active.
///
/// This is the single definition of what a machine is assigned: the
/// check-in reply lists exactly this, and a machine may download exactly
/// these releases and the blobs they pin. How the version of each profile
/// is chosen is decided here, for both at once.
fn assigned_closure(
    conn: &Connection,
    status: MachineStatus,
    school: i64,
    machine_id: &str,
) -> Result<Vec<ProfileRef>, StoreError> {
    if status != MachineStatus::Active {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(
        // The version of each wanted name is the one the newest signed
        // catalogue index pins; without an index (or for a name it does not
        // list), the latest release not revoked. Both are looked up through
        // indexes: a check-in costs the size of the machine's closure, not
        // of the whole release history.
        "WITH RECURSIVE
           current_index(v) AS (SELECT MAX(version) FROM catalogue_indexes),
           wanted(name) AS (
             SELECT profile_name FROM school_assignments WHERE school_id = ?1
               AND profile_name NOT IN (
                 SELECT profile_name FROM machine_overrides WHERE machine_id = ?2 AND include = 0)
             UNION SELECT profile_name FROM machine_overrides WHERE machine_id = ?2 AND include = 1
             UNION SELECT i.name FROM wanted w
               JOIN release_includes i ON i.release_id = (
                 SELECT id FROM profile_releases WHERE name = w.name AND revoked_at IS NULL
                   AND version = COALESCE(
                   (SELECT e.version FROM index_entries e, current_index c
                    WHERE e.index_version = c.v AND e.name = w.name),
                   (SELECT MAX(version) FROM profile_releases
                    WHERE name = w.name AND revoked_at IS NULL)))),
           chosen(name, version) AS (
             SELECT w.name, COALESCE(
               (SELECT e.version FROM index_entries e, current_index c
                WHERE e.index_version = c.v AND e.name = w.name),
               (SELECT MAX(version) FROM profile_releases
                WHERE name = w.name AND revoked_at IS NULL))
             FROM wanted w)
         SELECT c.name, c.version FROM chosen c
         WHERE c.version IS NOT NULL AND EXISTS (
           SELECT 1 FROM profile_releases r
           WHERE r.name = c.name AND r.version = c.version AND r.revoked_at IS NULL)
         ORDER BY c.name",
    )?;
    let rows = stmt.query_map(params![school, machine_id], |r| {
        Ok(ProfileRef {
            name: r.get(0)?,
            version: to_u64(r.get(1)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Checks a machine credential on a read connection: its status and
/// school, or `BadCredential` / `Retired`.
fn authenticated_machine(
    conn: &Connection,
    machine_id: &str,
    secret_hash: &str,
) -> Result<(MachineStatus, i64), StoreError> {
    let row = conn
        .prepare_cached("SELECT secret_hash, status, school_id FROM machines WHERE id = ?1")?
        .query_row([machine_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    let Some((stored, status, school)) = row else {
        return Err(StoreError::BadCredential);
    };
    if !constant_time_eq(&stored, secret_hash) {
        return Err(StoreError::BadCredential);
    }
    match status_of(&status)? {
        MachineStatus::Retired => Err(StoreError::Retired),
        status => Ok((status, school)),
    }
}

/// The assigned closure of an authenticated machine.
fn closure_of(
    conn: &Connection,
    machine_id: &str,
    secret_hash: &str,
) -> Result<Vec<ProfileRef>, StoreError> {
    let (status, school) = authenticated_machine(conn, machine_id, secret_hash)?;
    assigned_closure(conn, status, school, machine_id)
}

/// Rows deleted per write transaction while pruning: small enough that
/// check-ins queued behind a batch wait milliseconds, not seconds.
const PRUNE_BATCH: i64 = 5_000;

/// The enrolment transaction body.
fn record_enrollment(
    conn: &Connection,
    m: NewMachine,
    inventory: &inventory::Prepared,
) -> Result<Enrolment, StoreError> {
    let token = conn
        .prepare_cached(
            "SELECT t.id, t.school_id, t.expires_at, t.max_uses, t.uses, t.revoked_at,
                    s.require_approval, s.uai, s.kind, s.academie
             FROM enrollment_tokens t JOIN schools s ON s.id = t.school_id
             WHERE t.token_hash = ?1",
        )?
        .query_row([&m.token_hash], |r| {
            Ok((
                (
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, bool>(6)?,
                ),
                nird_proto::api::EnrolledSchool {
                    uai: r.get(7)?,
                    kind: r.get(8)?,
                    academie: r.get(9)?,
                },
            ))
        })
        .optional()?;
    let Some((
        (token_id, school, expires_at, max_uses, uses, revoked_at, require_approval),
        enrolled_school,
    )) = token
    else {
        return Err(StoreError::Token(TokenProblem::Unknown));
    };
    let at = now();
    if revoked_at.is_some() {
        return Err(StoreError::Token(TokenProblem::Revoked));
    }
    if expires_at.is_some_and(|e| e <= at) {
        return Err(StoreError::Token(TokenProblem::Expired));
    }
    if uses >= max_uses {
        return Err(StoreError::Token(TokenProblem::Exhausted));
    }
    conn.prepare_cached("UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ?1")?
        .execute([token_id])?;
    let status = if require_approval {
        MachineStatus::Pending
    } else {
        MachineStatus::Active
    };
    conn.prepare_cached(
        "INSERT INTO machines (id, school_id, token_id, hostname, secret_hash, status,
                               enrolled_at, inventory_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        m.machine_id,
        school,
        token_id,
        m.hostname,
        m.secret_hash,
        status.as_str(),
        at,
        m.inventory_hash
    ])?;
    inventory::record(conn, &m.machine_id, at, &m.inventory_hash, inventory, 1)?;
    audit_facts::record(conn, &m.machine_id, Some(&inventory.hardware), &[])?;
    Ok(Enrolment {
        status,
        school: enrolled_school,
    })
}

/// The publication transaction body.
fn record_release(
    conn: &Connection,
    actor: &str,
    r: NewRelease,
) -> Result<PublishOutcome, StoreError> {
    let sha = nird_proto::hash::sha256_hex(&r.bytes);
    let version = to_i64(r.version, "version")?;
    let existing: Option<String> = conn
        .prepare_cached("SELECT sha256 FROM profile_releases WHERE name = ?1 AND version = ?2")?
        .query_row(params![r.name, version], |row| row.get(0))
        .optional()?;
    if let Some(existing) = existing {
        if existing == sha {
            return Ok(PublishOutcome::AlreadyPublished);
        }
        return Err(StoreError::Conflict(format!(
            "la version {} du profil « {} » est déjà publiée avec un contenu différent",
            r.version, r.name
        )));
    }
    let latest: Option<i64> = conn
        .prepare_cached("SELECT MAX(version) FROM profile_releases WHERE name = ?1")?
        .query_row([&r.name], |row| row.get(0))?;
    if let Some(latest) = latest
        && latest >= version
    {
        return Err(StoreError::Conflict(format!(
            "retour en arrière refusé : le profil « {} » est déjà publié en version {latest}, \
             la version {} doit être plus grande",
            r.name, r.version
        )));
    }
    conn.prepare_cached(
        "INSERT INTO profile_releases
           (name, version, bytes, sha256, minisig, published_by, published_at, signed_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        r.name,
        version,
        r.bytes,
        sha,
        r.minisig,
        actor,
        now(),
        r.signed_by
    ])?;
    let release_id = conn.last_insert_rowid();
    for (blob_sha, bytes) in &r.blobs {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO blobs (sha256, size, bytes) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![blob_sha, bytes.len() as i64, bytes])?;
        conn.prepare_cached(
            "INSERT OR IGNORE INTO release_blobs (release_id, sha256) VALUES (?1, ?2)",
        )?
        .execute(params![release_id, blob_sha])?;
    }
    for name in &r.includes {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO release_includes (release_id, name) VALUES (?1, ?2)",
        )?
        .execute(params![release_id, name])?;
    }
    audit(
        conn,
        actor,
        "profile.publish",
        serde_json::json!({"name": r.name, "version": r.version, "sha256": sha,
                           "blobs": r.blobs.len()}),
    )?;
    Ok(PublishOutcome::Published)
}

/// Newest keyring and catalogue index versions (two `MAX` over primary
/// keys).
fn trust_versions(conn: &Connection) -> Result<(Option<u64>, Option<u64>), StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT (SELECT MAX(version) FROM keyrings),
                    (SELECT MAX(version) FROM catalogue_indexes)",
        )?
        .query_row([], |r| {
            Ok((
                r.get::<_, Option<i64>>(0)?.map(to_u64),
                r.get::<_, Option<i64>>(1)?.map(to_u64),
            ))
        })?)
}

/// The keyring publication transaction body.
fn record_keyring(conn: &Connection, actor: &str, k: NewKeyring) -> Result<(), StoreError> {
    let latest: Option<i64> = conn
        .prepare_cached("SELECT MAX(version) FROM keyrings")?
        .query_row([], |r| r.get(0))?;
    let version = to_i64(k.version, "version")?;
    let expected = latest.map_or(1, |v| v + 1);
    if version != expected {
        return Err(StoreError::Conflict(format!(
            "trousseau version {} refusé : la version {expected} est attendue",
            k.version
        )));
    }
    let key_ids =
        serde_json::to_string(&k.key_ids).map_err(|e| StoreError::Backend(e.to_string()))?;
    let at = now();
    conn.prepare_cached(
        "INSERT INTO keyrings (version, bytes, signatures, key_ids, expires, published_by, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![version, k.bytes, k.signatures, key_ids, k.expires, actor, at])?;
    let mut revoke = conn.prepare_cached(
        "UPDATE profile_releases SET revoked_at = ?3
         WHERE name = ?1 AND version = ?2 AND revoked_at IS NULL",
    )?;
    for r in &k.revoke {
        revoke.execute(params![r.name, to_i64(r.version, "version")?, at])?;
    }
    audit(
        conn,
        actor,
        "keyring.publish",
        serde_json::json!({"version": k.version, "keys": k.key_ids, "expires": k.expires,
                           "revoked_releases": k.revoke}),
    )
}

/// The index publication transaction body.
fn record_index(conn: &Connection, actor: &str, i: NewIndex) -> Result<(), StoreError> {
    let latest: Option<i64> = conn
        .prepare_cached("SELECT MAX(version) FROM catalogue_indexes")?
        .query_row([], |r| r.get(0))?;
    let version = to_i64(i.version, "version")?;
    if let Some(latest) = latest
        && version <= latest
    {
        return Err(StoreError::Conflict(format!(
            "index version {} refusé : la version {latest} est déjà publiée, la nouvelle doit être plus grande",
            i.version
        )));
    }
    for (name, v, sha) in &i.entries {
        let row: Option<(String, Option<i64>)> = conn
            .prepare_cached(
                "SELECT sha256, revoked_at FROM profile_releases WHERE name = ?1 AND version = ?2",
            )?
            .query_row(params![name, to_i64(*v, "version")?], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        match row {
            None => {
                return Err(StoreError::Conflict(format!(
                    "l'index donne « {name} » version {v}, qui n'est pas publiée : publiez-la d'abord"
                )));
            }
            Some((stored, _)) if &stored != sha => {
                return Err(StoreError::Conflict(format!(
                    "l'index épingle « {name} » version {v} avec un autre contenu que celui publié"
                )));
            }
            Some((_, Some(_))) => {
                return Err(StoreError::Conflict(format!(
                    "« {name} » version {v} est signée par une clé révoquée : elle ne peut pas être dans l'index"
                )));
            }
            Some(_) => {}
        }
    }
    conn.prepare_cached(
        "INSERT INTO catalogue_indexes (version, bytes, signature, expires, published_by, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![version, i.bytes, i.signature, i.expires, actor, now()])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO index_entries (index_version, name, version, sha256) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (name, v, sha) in &i.entries {
        insert.execute(params![version, name, to_i64(*v, "version")?, sha])?;
    }
    audit(
        conn,
        actor,
        "index.publish",
        serde_json::json!({"version": i.version, "expires": i.expires,
                           "profiles": i.entries.len()}),
    )
}

/// Reads one signed document row (version, bytes, signature, expires,
/// published_at).
fn signed_document(r: &rusqlite::Row<'_>) -> rusqlite::Result<SignedDocument> {
    Ok(SignedDocument {
        version: to_u64(r.get(0)?),
        bytes: r.get(1)?,
        signature: r.get(2)?,
        expires: r.get(3)?,
        published_at: r.get(4)?,
    })
}

/// Maps a unique-constraint violation to `AlreadyExists(what)`.
fn unique_as_exists(e: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(err, _)
            if err.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::AlreadyExists(what())
        }
        other => other.into(),
    }
}

impl Store for SqliteStore {
    fn add_school<'a>(&'a self, actor: &'a str, school: School) -> StoreFuture<'a, ()> {
        let actor = actor.to_owned();
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO schools (uai, name, commune, departement, academie, kind,
                                      require_approval, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                school.uai.as_str(),
                school.name,
                school.commune,
                school.departement,
                school.academie,
                school.kind.as_str(),
                school.require_approval,
                now()
            ])
            .map_err(|e| unique_as_exists(e, || format!("l'établissement {}", school.uai)))?;
            audit(
                conn,
                &actor,
                "school.add",
                serde_json::json!({"uai": school.uai, "name": school.name}),
            )
        }))
    }

    fn list_schools(&self) -> StoreFuture<'_, Vec<School>> {
        Box::pin(self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT uai, name, commune, departement, academie, kind, require_approval
                 FROM schools ORDER BY uai",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, bool>(6)?,
                ))
            })?;
            let mut schools = Vec::new();
            for row in rows {
                let (uai, name, commune, departement, academie, kind, require_approval) = row?;
                schools.push(School {
                    uai: stored_uai(uai)?,
                    name,
                    commune,
                    departement,
                    academie,
                    kind: SchoolKind::parse(&kind)
                        .ok_or_else(|| StoreError::Backend(format!("unknown kind {kind}")))?,
                    require_approval,
                });
            }
            Ok(schools)
        }))
    }

    fn create_token<'a>(&'a self, actor: &'a str, token: NewToken) -> StoreFuture<'a, i64> {
        let actor = actor.to_owned();
        Box::pin(self.write(move |conn| {
            let school = school_id(conn, &token.school)?;
            let at = now();
            conn.prepare_cached(
                "INSERT INTO enrollment_tokens
                 (token_hash, school_id, created_by, created_at, expires_at, max_uses)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                token.token_hash,
                school,
                actor,
                at,
                token.expires_at,
                token.max_uses
            ])?;
            let id = conn.last_insert_rowid();
            audit(
                conn,
                &actor,
                "token.create",
                serde_json::json!({"id": id, "school": token.school,
                                   "max_uses": token.max_uses, "expires_at": token.expires_at}),
            )?;
            Ok(id)
        }))
    }

    fn list_tokens(&self) -> StoreFuture<'_, Vec<TokenInfo>> {
        Box::pin(self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT t.id, s.uai, t.created_at, t.expires_at, t.max_uses, t.uses, t.revoked_at
                 FROM enrollment_tokens t JOIN schools s ON s.id = t.school_id
                 ORDER BY t.id DESC",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, u32>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            })?;
            let mut tokens = Vec::new();
            for row in rows {
                let (id, uai, created_at, expires_at, max_uses, uses, revoked_at) = row?;
                tokens.push(TokenInfo {
                    id,
                    school: stored_uai(uai)?,
                    created_at,
                    expires_at,
                    max_uses,
                    uses,
                    revoked_at,
                });
            }
            Ok(tokens)
        }))
    }

    fn revoke_token<'a>(&'a self, actor: &'a str, id: i64) -> StoreFuture<'a, ()> {
        let actor = actor.to_owned();
        Box::pin(self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE enrollment_tokens SET revoked_at = ?2
                     WHERE id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![id, now()])?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("le jeton actif n° {id}")));
            }
            audit(conn, &actor, "token.revoke", serde_json::json!({"id": id}))
        }))
    }

    fn enroll(&self, mut machine: NewMachine) -> StoreFuture<'_, Enrolment> {
        Box::pin(async move {
            // Split, hashed and compressed off the writer thread.
            let document = std::mem::take(&mut machine.inventory);
            let id = machine.machine_id.clone();
            let prepared = self
                .read(move |conn| inventory::prepare(conn, &id, &document))
                .await?;
            self.write(move |conn| record_enrollment(conn, machine, &prepared))
                .await
        })
    }

    fn authenticate<'a>(
        &'a self,
        machine_id: &'a str,
        secret_hash: &'a str,
    ) -> StoreFuture<'a, MachineAuth> {
        let machine_id = machine_id.to_owned();
        let secret_hash = secret_hash.to_owned();
        Box::pin(self.read(move |conn| {
            let (status, _) = authenticated_machine(conn, &machine_id, &secret_hash)?;
            Ok(MachineAuth { status })
        }))
    }

    fn checkin(&self, mut checkin: Checkin) -> StoreFuture<'_, CheckinOutcome> {
        Box::pin(async move {
            let prepared = match checkin.inventory.take() {
                Some(document) => {
                    // Checked first so that no unknown client makes the
                    // server compress its documents; checked again in
                    // the write.
                    let (id, secret) = (checkin.machine_id.clone(), checkin.secret_hash.clone());
                    Some(
                        self.read(move |conn| {
                            authenticated_machine(conn, &id, &secret)?;
                            inventory::prepare(conn, &id, &document)
                        })
                        .await?,
                    )
                }
                None => None,
            };
            self.write(move |conn| record_checkin(conn, checkin, prepared))
                .await
        })
    }

    fn list_machines<'a>(
        &'a self,
        school: Option<&'a Uai>,
    ) -> StoreFuture<'a, Vec<MachineSummary>> {
        let school = school.map(|s| s.as_str().to_owned());
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT m.id, s.uai, m.hostname, m.status, m.last_seen, m.checkins,
                        m.inventory_hash, m.acked_seq
                 FROM machines m JOIN schools s ON s.id = m.school_id
                 WHERE ?1 IS NULL OR s.uai = ?1
                 ORDER BY s.uai, m.hostname, m.id",
            )?;
            let rows = stmt.query_map([&school], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })?;
            let mut machines = Vec::new();
            for row in rows {
                let (id, uai, hostname, status, last_seen, checkins, inventory_hash, acked) = row?;
                machines.push(MachineSummary {
                    id,
                    school: stored_uai(uai)?,
                    hostname,
                    status: status_of(&status)?,
                    last_seen,
                    checkins: to_u64(checkins),
                    inventory_hash,
                    acked_seq: to_u64(acked),
                });
            }
            Ok(machines)
        }))
    }

    fn set_machine_status<'a>(
        &'a self,
        actor: &'a str,
        machine_id: &'a str,
        status: MachineStatus,
    ) -> StoreFuture<'a, ()> {
        let actor = actor.to_owned();
        let machine_id = machine_id.to_owned();
        Box::pin(self.write(move |conn| {
            let current: Option<String> = conn
                .prepare_cached("SELECT status FROM machines WHERE id = ?1")?
                .query_row([&machine_id], |r| r.get(0))
                .optional()?;
            let Some(current) = current else {
                return Err(StoreError::NotFound(format!("la machine {machine_id}")));
            };
            if status_of(&current)? == MachineStatus::Retired && status != MachineStatus::Retired {
                return Err(StoreError::Conflict(format!(
                    "la machine {machine_id} est retirée : elle doit être réinscrite"
                )));
            }
            conn.prepare_cached("UPDATE machines SET status = ?2 WHERE id = ?1")?
                .execute(params![machine_id, status.as_str()])?;
            audit(
                conn,
                &actor,
                "machine.status",
                serde_json::json!({"machine": machine_id, "from": current, "to": status.as_str()}),
            )
        }))
    }

    fn count_machines(&self) -> StoreFuture<'_, Vec<(MachineStatus, u64)>> {
        Box::pin(self.read(|conn| {
            let mut counts = vec![
                (MachineStatus::Pending, 0),
                (MachineStatus::Active, 0),
                (MachineStatus::Retired, 0),
            ];
            let mut stmt =
                conn.prepare_cached("SELECT status, COUNT(*) FROM machines GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (status, n) = row?;
                let status = status_of(&status)?;
                for (s, count) in counts.iter_mut() {
                    if *s == status {
                        *count = to_u64(n);
                    }
                }
            }
            Ok(counts)
        }))
    }

    fn latest_version<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<u64>> {
        let name = name.to_owned();
        Box::pin(self.read(move |conn| {
            let v: Option<i64> = conn
                .prepare_cached("SELECT MAX(version) FROM profile_releases WHERE name = ?1")?
                .query_row([&name], |r| r.get(0))?;
            Ok(v.map(to_u64))
        }))
    }

    fn publish_release<'a>(
        &'a self,
        actor: &'a str,
        release: NewRelease,
    ) -> StoreFuture<'a, PublishOutcome> {
        let actor = actor.to_owned();
        Box::pin(self.write(move |conn| record_release(conn, &actor, release)))
    }

    fn list_releases(&self) -> StoreFuture<'_, Vec<ReleaseInfo>> {
        Box::pin(self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, version, sha256, published_by, published_at, signed_by, revoked_at
                 FROM profile_releases ORDER BY name, version",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ReleaseInfo {
                    name: r.get(0)?,
                    version: to_u64(r.get(1)?),
                    sha256: r.get(2)?,
                    published_by: r.get(3)?,
                    published_at: r.get(4)?,
                    signed_by: r.get(5)?,
                    revoked_at: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        }))
    }

    fn release<'a>(&'a self, name: &'a str, version: u64) -> StoreFuture<'a, Option<Release>> {
        let name = name.to_owned();
        Box::pin(self.read(move |conn| {
            let Ok(version) = i64::try_from(version) else {
                return Ok(None);
            };
            Ok(conn
                .prepare_cached(
                    "SELECT bytes, minisig FROM profile_releases WHERE name = ?1 AND version = ?2",
                )?
                .query_row(params![name, version], |r| {
                    Ok(Release {
                        bytes: r.get(0)?,
                        minisig: r.get(1)?,
                    })
                })
                .optional()?)
        }))
    }

    fn blob<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let sha256 = sha256.to_owned();
        Box::pin(self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT bytes FROM blobs WHERE sha256 = ?1")?
                .query_row([&sha256], |r| r.get(0))
                .optional()?)
        }))
    }

    fn blob_size<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, Option<u64>> {
        let sha256 = sha256.to_owned();
        Box::pin(self.read(move |conn| {
            let size: Option<i64> = conn
                .prepare_cached("SELECT size FROM blobs WHERE sha256 = ?1")?
                .query_row([&sha256], |r| r.get(0))
                .optional()?;
            Ok(size.map(to_u64))
        }))
    }

    fn assign_school<'a>(
        &'a self,
        actor: &'a str,
        school: &'a Uai,
        profiles: Vec<String>,
    ) -> StoreFuture<'a, ()> {
        let actor = actor.to_owned();
        let school = school.clone();
        Box::pin(self.write(move |conn| {
            let id = school_id(conn, &school)?;
            conn.prepare_cached("DELETE FROM school_assignments WHERE school_id = ?1")?
                .execute([id])?;
            for p in &profiles {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO school_assignments (school_id, profile_name)
                     VALUES (?1, ?2)",
                )?
                .execute(params![id, p])?;
            }
            audit(
                conn,
                &actor,
                "assign.school",
                serde_json::json!({"school": school, "profiles": profiles}),
            )
        }))
    }

    fn override_machine<'a>(
        &'a self,
        actor: &'a str,
        machine_id: &'a str,
        profile: &'a str,
        include: bool,
    ) -> StoreFuture<'a, ()> {
        let actor = actor.to_owned();
        let machine_id = machine_id.to_owned();
        let profile = profile.to_owned();
        Box::pin(self.write(move |conn| {
            let exists: Option<i64> = conn
                .prepare_cached("SELECT 1 FROM machines WHERE id = ?1")?
                .query_row([&machine_id], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("la machine {machine_id}")));
            }
            conn.prepare_cached(
                "INSERT INTO machine_overrides (machine_id, profile_name, include)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (machine_id, profile_name) DO UPDATE SET include = excluded.include",
            )?
            .execute(params![machine_id, profile, include])?;
            audit(
                conn,
                &actor,
                "assign.machine",
                serde_json::json!({"machine": machine_id, "profile": profile, "include": include}),
            )
        }))
    }

    fn add_user<'a>(&'a self, actor: &'a str, user: NewUser) -> StoreFuture<'a, ()> {
        let actor = actor.to_owned();
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO users (login, password_hash, role, territory, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                user.login,
                user.password_hash,
                user.role.as_str(),
                user.territory,
                now()
            ])
            .map_err(|e| unique_as_exists(e, || format!("l'utilisateur « {} »", user.login)))?;
            let user_id = conn.last_insert_rowid();
            for uai in &user.schools {
                let school = school_id(conn, uai)?;
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO user_schools (user_id, school_id) VALUES (?1, ?2)",
                )?
                .execute(params![user_id, school])?;
            }
            audit(
                conn,
                &actor,
                "user.add",
                serde_json::json!({"login": user.login, "role": user.role.as_str(),
                                   "schools": user.schools, "territory": user.territory}),
            )
        }))
    }

    fn user_exists<'a>(&'a self, login: &'a str) -> StoreFuture<'a, bool> {
        let fut = self.password_hash(login);
        Box::pin(async move { Ok(fut.await?.is_some()) })
    }

    fn password_hash<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Option<String>> {
        let login = login.to_owned();
        Box::pin(self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT password_hash FROM users WHERE login = ?1")?
                .query_row([&login], |r| r.get(0))
                .optional()?)
        }))
    }

    fn reports<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Vec<ApplyReport>> {
        let machine_id = machine_id.to_owned();
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT report FROM apply_reports WHERE machine_id = ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map([&machine_id], |r| r.get::<_, String>(0))?;
            let mut reports = Vec::new();
            for row in rows {
                reports.push(
                    serde_json::from_str(&row?)
                        .map_err(|e| StoreError::Backend(format!("stored report: {e}")))?,
                );
            }
            Ok(reports)
        }))
    }

    fn audit_log(&self) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT at, actor, action, detail FROM audit_log ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok(AuditEntry {
                    at: r.get(0)?,
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    detail: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        }))
    }

    fn latest_inventory<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Option<String>> {
        let machine_id = machine_id.to_owned();
        Box::pin(self.read(move |conn| inventory::latest(conn, &machine_id)))
    }

    fn latest_inventory_core<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Option<String>> {
        let machine_id = machine_id.to_owned();
        Box::pin(self.read(move |conn| inventory::latest_core(conn, &machine_id)))
    }

    fn software_list<'a>(&'a self, hash: &'a str) -> StoreFuture<'a, Option<String>> {
        let hash = hash.to_owned();
        Box::pin(self.read(move |conn| inventory::list(conn, &hash)))
    }

    fn inventory_history_len<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, u64> {
        let machine_id = machine_id.to_owned();
        Box::pin(self.read(move |conn| {
            let n: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM inventory_history WHERE machine_id = ?1")?
                .query_row([&machine_id], |r| r.get(0))?;
            Ok(to_u64(n))
        }))
    }

    fn publish_keyring<'a>(&'a self, actor: &'a str, keyring: NewKeyring) -> StoreFuture<'a, ()> {
        let actor = actor.to_owned();
        Box::pin(self.write(move |conn| record_keyring(conn, &actor, keyring)))
    }

    fn latest_keyring(&self) -> StoreFuture<'_, Option<SignedDocument>> {
        Box::pin(self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT version, bytes, signatures, expires, published_at FROM keyrings
                     ORDER BY version DESC LIMIT 1",
                )?
                .query_row([], signed_document)
                .optional()?)
        }))
    }

    fn keyring(&self, version: u64) -> StoreFuture<'_, Option<SignedDocument>> {
        Box::pin(self.read(move |conn| {
            let Ok(version) = i64::try_from(version) else {
                return Ok(None);
            };
            Ok(conn
                .prepare_cached(
                    "SELECT version, bytes, signatures, expires, published_at FROM keyrings
                     WHERE version = ?1",
                )?
                .query_row([version], signed_document)
                .optional()?)
        }))
    }

    fn publish_index<'a>(&'a self, actor: &'a str, index: NewIndex) -> StoreFuture<'a, ()> {
        let actor = actor.to_owned();
        Box::pin(self.write(move |conn| record_index(conn, &actor, index)))
    }

    fn catalogue_index(&self, version: Option<u64>) -> StoreFuture<'_, Option<SignedDocument>> {
        Box::pin(self.read(move |conn| {
            let version = match version.map(i64::try_from) {
                Some(Ok(v)) => Some(v),
                Some(Err(_)) => return Ok(None),
                None => None,
            };
            Ok(conn
                .prepare_cached(
                    "SELECT version, bytes, signature, expires, published_at FROM catalogue_indexes
                     WHERE ?1 IS NULL OR version = ?1 ORDER BY version DESC LIMIT 1",
                )?
                .query_row([version], signed_document)
                .optional()?)
        }))
    }

    fn live_releases(&self) -> StoreFuture<'_, Vec<StoredRelease>> {
        Box::pin(self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, version, bytes, minisig FROM profile_releases
                 WHERE revoked_at IS NULL ORDER BY name, version",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredRelease {
                    name: r.get(0)?,
                    version: to_u64(r.get(1)?),
                    bytes: r.get(2)?,
                    minisig: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        }))
    }

    fn trust_reports(&self) -> StoreFuture<'_, Vec<(String, String)>> {
        Box::pin(self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, trust_report FROM machines WHERE trust_report IS NOT NULL ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        }))
    }

    fn assigned_closure<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Vec<ProfileRef>> {
        let machine_id = machine_id.to_owned();
        Box::pin(self.read(move |conn| {
            let row = conn
                .prepare_cached("SELECT status, school_id FROM machines WHERE id = ?1")?
                .query_row([&machine_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()?;
            let Some((status, school)) = row else {
                return Err(StoreError::NotFound(format!("la machine {machine_id}")));
            };
            assigned_closure(conn, status_of(&status)?, school, &machine_id)
        }))
    }

    fn assigned_release<'a>(
        &'a self,
        machine_id: &'a str,
        secret_hash: &'a str,
        name: &'a str,
        version: u64,
    ) -> StoreFuture<'a, Option<Release>> {
        let (machine_id, secret_hash, name) = (
            machine_id.to_owned(),
            secret_hash.to_owned(),
            name.to_owned(),
        );
        Box::pin(self.read(move |conn| {
            let closure = closure_of(conn, &machine_id, &secret_hash)?;
            if !closure
                .iter()
                .any(|r| r.name == name && r.version == version)
            {
                return Ok(None);
            }
            let Ok(version) = i64::try_from(version) else {
                return Ok(None);
            };
            Ok(conn
                .prepare_cached(
                    "SELECT bytes, minisig FROM profile_releases WHERE name = ?1 AND version = ?2",
                )?
                .query_row(params![name, version], |r| {
                    Ok(Release {
                        bytes: r.get(0)?,
                        minisig: r.get(1)?,
                    })
                })
                .optional()?)
        }))
    }

    fn assigned_blob_size<'a>(
        &'a self,
        machine_id: &'a str,
        secret_hash: &'a str,
        sha256: &'a str,
    ) -> StoreFuture<'a, Option<u64>> {
        let (machine_id, secret_hash, sha256) = (
            machine_id.to_owned(),
            secret_hash.to_owned(),
            sha256.to_owned(),
        );
        Box::pin(self.read(move |conn| {
            let closure = closure_of(conn, &machine_id, &secret_hash)?;
            // One lookup per release of the closure, each through the
            // (name, version) and (release_id, sha256) unique indexes.
            let mut pinned = conn.prepare_cached(
                "SELECT 1 FROM profile_releases r
                 JOIN release_blobs b ON b.release_id = r.id AND b.sha256 = ?3
                 WHERE r.name = ?1 AND r.version = ?2",
            )?;
            let mut found = false;
            for release in &closure {
                let version = to_i64(release.version, "version")?;
                if pinned.exists(params![release.name, version, sha256])? {
                    found = true;
                    break;
                }
            }
            if !found {
                return Ok(None);
            }
            let size: Option<i64> = conn
                .prepare_cached("SELECT size FROM blobs WHERE sha256 = ?1")?
                .query_row([&sha256], |r| r.get(0))
                .optional()?;
            Ok(size.map(to_u64))
        }))
    }

    fn blob_chunks<'a>(
        &'a self,
        sha256: &'a str,
        offset: u64,
        chunk: usize,
        count: usize,
    ) -> StoreFuture<'a, Option<Vec<Vec<u8>>>> {
        let sha256 = sha256.to_owned();
        Box::pin(self.read(move |conn| {
            let rowid: Option<i64> = conn
                .prepare_cached("SELECT rowid FROM blobs WHERE sha256 = ?1")?
                .query_row([&sha256], |r| r.get(0))
                .optional()?;
            let Some(rowid) = rowid else {
                return Ok(None);
            };
            // Incremental BLOB I/O: only the pages holding these chunks are
            // read, never the whole file; one open handle remembers where
            // it is in the page chain, so consecutive reads are cheap.
            let blob = conn.blob_open("main", "blobs", "bytes", rowid, true)?;
            let size = blob.len();
            let mut at = usize::try_from(offset).unwrap_or(usize::MAX).min(size);
            let mut chunks = Vec::new();
            while chunks.len() < count && at < size {
                let n = chunk.max(1).min(size - at);
                let mut buf = vec![0; n];
                blob.read_at_exact(&mut buf, at)?;
                chunks.push(buf);
                at += n;
            }
            Ok(Some(chunks))
        }))
    }

    fn prune_history(&self, before: i64) -> StoreFuture<'_, PruneOutcome> {
        Box::pin(async move {
            let mut outcome = PruneOutcome::default();
            loop {
                let n = self
                    .write(move |conn| {
                        // The newest row of each machine is its current
                        // inventory: never pruned, however old.
                        Ok(conn
                            .prepare_cached(
                                "DELETE FROM inventory_history WHERE id IN (
                                   SELECT h.id FROM inventory_history h
                                   WHERE h.recorded_at < ?1
                                     AND h.id < (SELECT MAX(id) FROM inventory_history
                                                 WHERE machine_id = h.machine_id)
                                   LIMIT ?2)",
                            )?
                            .execute(params![before, PRUNE_BATCH])?)
                    })
                    .await?;
                outcome.inventory_rows += n as u64;
                if (n as i64) < PRUNE_BATCH {
                    break;
                }
            }
            loop {
                let n = self
                    .write(move |conn| {
                        Ok(conn
                            .prepare_cached(
                                "DELETE FROM apply_reports WHERE (machine_id, seq) IN (
                                   SELECT machine_id, seq FROM apply_reports
                                   WHERE received_at < ?1 LIMIT ?2)",
                            )?
                            .execute(params![before, PRUNE_BATCH])?)
                    })
                    .await?;
                outcome.reports += n as u64;
                if (n as i64) < PRUNE_BATCH {
                    break;
                }
            }
            Ok(outcome)
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            // Readers go first, so the writer's connection is the last one
            // and SQLite removes the WAL and shared-memory files when it closes.
            if let Ok(mut idle) = self.readers.idle.lock() {
                self.readers.closed.store(true, Ordering::Relaxed);
                idle.clear();
            }
            // Dropping the sender ends the writer loop once its queue is empty.
            if let Ok(mut writer) = self.writer.lock() {
                writer.take();
            }
            let handle = self.writer_thread.lock().ok().and_then(|mut h| h.take());
            if let Some(handle) = handle {
                tokio::task::spawn_blocking(move || handle.join())
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))?
                    .map_err(|_| StoreError::Backend("the writer thread panicked".into()))?;
            }
            Ok(())
        })
    }

    fn pending_writes(&self) -> usize {
        self.stats.pending.load(Ordering::Relaxed)
    }

    fn commit_stats(&self) -> (u64, u64) {
        (
            self.stats.commits.load(Ordering::Relaxed),
            self.stats.writes.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn school(uai: &str) -> School {
        School {
            uai: Uai::parse(uai).unwrap(),
            name: "École".into(),
            commune: "Calais".into(),
            departement: "062".into(),
            academie: "Lille".into(),
            kind: SchoolKind::Ecole,
            require_approval: false,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_failing_write_rolls_back_alone_inside_a_group_commit() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        rt.block_on(async {
            // Three schools, each added 50 times, all queued at once so
            // successes and unique-key failures share transactions.
            let uais = ["0620056Z", "0750001U", "0670001M"];
            let mut tasks = Vec::new();
            for i in 0..150 {
                let store = store.clone();
                let uai = uais[i % 3];
                tasks.push(tokio::spawn(async move {
                    store.add_school("test", school(uai)).await
                }));
            }
            let mut ok = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(()) => ok += 1,
                    Err(StoreError::AlreadyExists(_)) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            assert_eq!(ok, 3);
            assert_eq!(store.list_schools().await.unwrap().len(), 3);
            // Only the successful writes left an audit line.
            assert_eq!(store.audit_log().await.unwrap().len(), 3);
            let (commits, writes) = store.commit_stats();
            assert_eq!(writes, 150);
            assert!(commits <= writes);
            store.close().await.unwrap();
            assert!(matches!(
                store.list_schools().await,
                Err(StoreError::Closed)
            ));
        });
    }

    /// A machine's precomputed dashboard columns: serial, model, win11,
    /// agent version, alerts, last outcome, last report time, refusal.
    #[allow(clippy::type_complexity)]
    fn dashboard_columns(
        conn: &Connection,
        id: &str,
    ) -> (
        String,
        String,
        String,
        String,
        i64,
        Option<String>,
        Option<i64>,
        Option<String>,
    ) {
        conn.query_row(
            "SELECT serial, model, win11, agent_version, alerts, last_outcome, \
             last_report_at, refused_reason FROM machines WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            },
        )
        .unwrap()
    }

    /// The statement `inventory::record` runs for the dashboard's columns
    /// gives what the trigger gives for the same text, alerts' bit 8 kept.
    #[test]
    fn dashboard_columns_from_the_statement_equal_the_trigger_s() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO schools (uai, name, commune, departement, academie, kind, created_at)
                 VALUES ('0620056Z', 'x', 'Calais', '062', 'Lille', 'ecole', 0);
             INSERT INTO machines (id, school_id, hostname, secret_hash, status, enrolled_at,
                                   inventory_hash, alerts)
                 VALUES ('trigger', 1, 'a', 'x', 'active', 0, 'h', 8),
                        ('statement', 1, 'b', 'x', 'active', 0, 'h', 8);",
        )
        .unwrap();
        let t430 = include_str!("../../../agent/tests/fixtures/laptop-t430.json");
        let docs = [
            t430,
            r#"{"agent_version":"0.2.0","identity":{"serial":{"value":"SN1"},
                "vendor":{"value":"Dell"},"product":{"value":"OptiPlex 390"}},
                "windows11":{"status":"ineligible"},
                "storage":{"disks":{"value":[{"smart":{"value":{"health":"failing"}}}]},
                           "filesystems":{"value":[{"usage":{"value":{"used_percent":95}}}]}},
                "batteries":{"value":[{"wear_percent":{"value":61}}]}}"#,
            r#"{"identity":{"serial":{"reason":"not exposed"},"product":{"value":"VM"}},
                "storage":{"disks":{"reason":"x"}},"batteries":{"value":[]}}"#,
            "{}",
            "not json",
        ];
        let columns = |id: &str| dashboard_columns(&conn, id);
        let mut seen = std::collections::BTreeSet::new();
        for doc in docs {
            conn.execute(
                "INSERT INTO inventory_history (machine_id, recorded_at, inventory_hash, inventory)
                 VALUES ('trigger', 1, 'h', ?1)",
                [doc],
            )
            .unwrap();
            conn.execute(inventory::PRECOMPUTE_INVENTORY, ["statement", doc])
                .unwrap();
            assert_eq!(columns("trigger"), columns("statement"), "{doc}");
            seen.insert(columns("statement"));
        }
        // The documents gave different columns (the test compares something).
        assert!(seen.len() >= 3, "{seen:?}");
        assert!(seen.iter().any(|c| c.4 == 8 | 1 | 2 | 4));
    }

    /// A database last opened before the dashboard's precomputed columns
    /// existed (schema 4) gets them filled from each machine's newest
    /// inventory and report when it is upgraded.
    #[test]
    fn upgrading_fills_the_dashboard_columns_of_existing_machines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute_batch(
            r#"
            INSERT INTO schools (uai, name, commune, departement, academie, kind, created_at)
                VALUES ('0620056Z', 'x', 'Calais', '062', 'Lille', 'ecole', 0);
            INSERT INTO machines (id, school_id, hostname, secret_hash, status, enrolled_at,
                                  inventory_hash)
                VALUES ('m1', 1, 'pc', 'x', 'active', 0, 'h2'), ('m2', 1, 'pc2', 'x', 'active', 0, 'h3');
            INSERT INTO inventory_history (machine_id, recorded_at, inventory_hash, inventory) VALUES
                ('m1', 1, 'h1', '{"agent_version":"0.1.0","identity":{"serial":{"value":"OLD"}}}'),
                ('m1', 2, 'h2', '{"agent_version":"0.2.0","identity":{"serial":{"value":"SN1"},
                    "vendor":{"value":"Dell"},"product":{"value":"OptiPlex 390"}},
                    "windows11":{"status":"ineligible"},
                    "storage":{"disks":{"value":[{"smart":{"value":{"health":"failing"}}}]}},
                    "batteries":{"value":[{"wear_percent":{"value":61}}]}}'),
                ('m2', 3, 'h3', 'not json');
            INSERT INTO apply_reports (machine_id, seq, profile, version, outcome, report, received_at)
                VALUES ('m1', 1, 'nird-base', 1, 'applied', '{}', 10),
                       ('m1', 2, 'primtux', 3, 'refused', '{"reason":"unknown_key"}', 20);
            "#,
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let row = |id: &str| dashboard_columns(&conn, id);
        assert_eq!(
            row("m1"),
            (
                "SN1".into(),
                "Dell OptiPlex 390".into(),
                "ineligible".into(),
                "0.2.0".into(),
                1 | 2 | 8,
                Some("refused".into()),
                Some(20),
                Some("primtux v3 : unknown_key".into()),
            )
        );
        // An unreadable document leaves the defaults.
        assert_eq!(
            row("m2"),
            (
                String::new(),
                String::new(),
                "unknown".into(),
                String::new(),
                0,
                None,
                None,
                None
            )
        );
    }

    #[test]
    fn audit_log_is_append_only_and_schema_is_versioned() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = SqliteStore::open(&path).unwrap();
        rt.block_on(store.add_school("test", school("0620056Z")))
            .unwrap();
        rt.block_on(store.close()).unwrap();
        let conn = Connection::open(&path).unwrap();
        let update = conn.execute("UPDATE audit_log SET actor = 'someone else'", []);
        assert!(update.unwrap_err().to_string().contains("append-only"));
        let delete = conn.execute("DELETE FROM audit_log", []);
        assert!(delete.unwrap_err().to_string().contains("append-only"));
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        // Reopening migrates nothing and keeps the data.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(rt.block_on(store.list_schools()).unwrap().len(), 1);
        rt.block_on(store.close()).unwrap();
    }
}
