//! The PostgreSQL implementation of [`Store`], for deployments that run
//! several server processes on one database (a région, the ministry).
//!
//! Same schema as SQLite (its own positional migrations, [`migrations`]),
//! same invariants:
//! - every method is one transaction, and a write answers only after its
//!   `COMMIT` returned (PostgreSQL's default `synchronous_commit = on`: the
//!   commit record is flushed to the WAL before that);
//! - the audit log is append-only in the database itself (a trigger refuses
//!   `UPDATE`, `DELETE` and `TRUNCATE`);
//! - secrets arrive hashed (SHA-256, by the same callers as for SQLite).
//!
//! Concurrency: any number of processes may share the database. Writes
//! that SQLite serialises with its single writer are made safe here by row
//! locks (the enrolment token's, the machine's) and, for
//! administrators' publications whose checks read the latest version, by a
//! transaction-scoped advisory lock ([`ADMIN_LOCK`]).
//!
//! Throughput: check-ins without inventory (nearly all of them) are
//! **batched**: they queue for [`BATCHERS`] tasks, each taking every
//! check-in waiting (up to [`MAX_BATCH`]) and running them in one call of
//! the SQL function `nird_checkins`, one round trip and one commit
//! (group commit, as SQLite's writer thread does); each caller is answered
//! after that commit. At rest a batch holds one check-in and commits at
//! once. A check-in carrying a new inventory runs alone, the inventory
//! statements in the same transaction as its `nird_checkins` call. Enrolments are
//! batched the same way: each is one call of `nird_enroll`, a batch's
//! calls pipelined in one transaction (they all wait for their token's
//! row lock, so one commit per enrolment would serialise them on fsync).
//!
//! Transport: no TLS. The connection goes over a Unix socket or the
//! loopback/private link to a database on the same host or network segment
//! (the usual setup beside a pgbouncer or a local replica); see
//! ARCHITECTURE.md. A URL asking for TLS (`sslmode=require`) is refused
//! rather than silently downgraded.

pub(crate) mod audit;
pub(crate) mod inventory;
pub mod migrations;
mod web;

use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use nird_proto::api::{ApplyReport, MachineStatus, ProfileRef};
use nird_proto::uai::Uai;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{
    AuditEntry, Checkin, CheckinOutcome, Enrolment, MachineAuth, MachineSummary, NewIndex,
    NewKeyring, NewMachine, NewRelease, NewToken, NewUser, PruneOutcome, PublishOutcome, Release,
    ReleaseInfo, School, SchoolKind, SignedDocument, Store, StoreError, StoreFuture, StoredRelease,
    TokenInfo, TokenProblem,
};
use crate::secrets::constant_time_eq;
use crate::store::sqlite::{now, status_of, stored_uai, to_i64, to_u64};

/// Connections per server process. Check-ins hold one for a single round
/// trip, so a few dozen carry thousands per second; `max_connections` of
/// the database must cover every process's pool.
pub const POOL_SIZE: usize = 32;

/// Key of the advisory lock that serialises publications (releases,
/// keyrings, indexes) across processes, as SQLite's single writer does.
const ADMIN_LOCK: i64 = 0x6e69_7264; // "nird"

/// Rows deleted per transaction while pruning.
const PRUNE_BATCH: i64 = 5_000;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => StoreError::Backend(db.message().to_owned()),
            None => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Closed => StoreError::Closed,
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// A `postgres://` URL with its password replaced by `***`, for logs and
/// messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return redact_password_param(url);
    };
    let user = userinfo.split(':').next().unwrap_or("");
    let userinfo = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        user.to_owned()
    };
    redact_password_param(&format!("{scheme}://{userinfo}@{host}{tail}"))
}

/// Hides a `password=` query parameter.
fn redact_password_param(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k == "password" => format!("{k}=***"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// True if `s` names a PostgreSQL database (`postgres://` or
/// `postgresql://`).
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// Counters of [`Store::pending_writes`] and [`Store::commit_stats`].
#[derive(Default)]
struct Stats {
    /// Writes running.
    pending: AtomicUsize,
    /// Transactions committed.
    commits: AtomicU64,
    /// Writes those transactions carried.
    writes: AtomicU64,
}

/// The PostgreSQL store. Cheap to share (`Arc<PgStore>`).
pub struct PgStore {
    /// Connection pool.
    pool: Pool,
    /// Set by [`Store::close`]: later calls fail with `Closed`.
    closed: AtomicBool,
    /// Load and commit counters.
    stats: std::sync::Arc<Stats>,
    /// The assigned closures this process keeps (see `nird_checkins`).
    closures: Closures,
    /// Check-ins without inventory, run together (see [`run_batch`]).
    checkins: Batches<Checkin, CheckinOutcome>,
    /// Enrolments, run together (see [`run_enrolments`]).
    enrolments: Batches<EnrolCall, Enrolment>,
}

/// A request waiting for a batcher, and where its caller waits.
type Queued<T, O> = (T, tokio::sync::oneshot::Sender<Result<O, StoreError>>);

/// Requests of one kind that [`BATCHERS`] tasks take from one queue and
/// run together (each taking every request waiting, up to [`MAX_BATCH`]):
/// one transaction, one commit, each caller answered after it.
struct Batches<T, O> {
    /// The queue; `None` once closed.
    queue: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Queued<T, O>>>>,
    /// The batchers, waited for at close.
    batchers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl<T: Send + 'static, O: Send + 'static> Batches<T, O> {
    /// Starts the batchers; `run` runs one batch and answers its callers.
    fn start<F, Fut>(pool: &Pool, stats: &std::sync::Arc<Stats>, run: F) -> Self
    where
        F: Fn(Pool, Vec<Queued<T, O>>, std::sync::Arc<Stats>) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let batchers = (0..BATCHERS)
            .map(|_| {
                tokio::spawn(batcher(
                    pool.clone(),
                    rx.clone(),
                    stats.clone(),
                    run.clone(),
                ))
            })
            .collect();
        Batches {
            queue: std::sync::Mutex::new(Some(tx)),
            batchers: std::sync::Mutex::new(batchers),
        }
    }

    /// Queues `request` and waits for its committed outcome.
    async fn submit(&self, stats: &Stats, request: T) -> Result<O, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        {
            let queue = self.queue.lock().map_err(|_| StoreError::Closed)?;
            let sender = queue.as_ref().ok_or(StoreError::Closed)?;
            stats.pending.fetch_add(1, Ordering::Relaxed);
            if sender.send((request, reply)).is_err() {
                stats.pending.fetch_sub(1, Ordering::Relaxed);
                return Err(StoreError::Closed);
            }
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Closes the queue and waits for the batchers, which end once it is
    /// empty: every request queued is committed and answered first.
    async fn close(&self) -> Result<(), StoreError> {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        let batchers: Vec<_> = self
            .batchers
            .lock()
            .map(|mut b| b.drain(..).collect())
            .unwrap_or_default();
        for b in batchers {
            b.await
                .map_err(|e| StoreError::Backend(format!("batcher: {e}")))?;
        }
        Ok(())
    }
}

/// Decrements the pending-writes counter when a write ends, however it ends.
struct Pending<'a>(&'a Stats);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Maps a unique-constraint violation to `AlreadyExists(what)`.
fn unique_as_exists(e: tokio_postgres::Error, what: impl FnOnce() -> String) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StoreError::AlreadyExists(what())
    } else {
        e.into()
    }
}

/// SQLite placeholders (`?NNN` and `?`) rewritten as PostgreSQL's `$NNN`:
/// a bare `?` takes the number after the largest seen so far, as SQLite
/// numbers it. Lets both backends share SQL text (scope clauses, the audit
/// facts' upsert). The shared texts hold no `?` inside string literals.
pub(crate) fn dollar(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut highest = 0u32;
    while let Some(c) = chars.next() {
        if c != '?' {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
            digits.push(d);
            chars.next();
        }
        let n = digits.parse().unwrap_or(highest + 1);
        highest = highest.max(n);
        out.push('$');
        out.push_str(&n.to_string());
    }
    out
}

/// Parameters of a query built at run time (scope clauses, filters).
#[derive(Default)]
pub(crate) struct Params(Vec<Box<dyn ToSql + Sync + Send>>);

impl Params {
    /// The scope's clause over `schools s` and its parameters, placeholders
    /// still SQLite's `?` (the whole query goes through [`dollar`]).
    fn scope(scope: &super::web::Scope) -> (String, Self) {
        let (sql, values) = scope.sql();
        let mut params = Params::default();
        for v in values {
            params.push(v);
        }
        (sql, params)
    }

    /// Appends a parameter.
    fn push(&mut self, v: impl ToSql + Sync + Send + 'static) {
        self.0.push(Box::new(v));
    }

    /// As the slice the client takes.
    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// Rows of a query built at run time (`?` placeholders), prepared through
/// the cache like the others: the texts vary with the filters used, a
/// handful per page.
async fn query<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &Params,
) -> Result<Vec<Row>, StoreError> {
    rows(c, &dollar(sql), &params.refs()).await
}

/// Runs a statement through the connection's statement cache.
async fn exec<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.execute(&stmt, params).await?)
}

/// Rows of a cached statement.
async fn rows<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query(&stmt, params).await?)
}

/// At most one row of a cached statement.
async fn row<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&stmt, params).await?)
}

/// Appends one line to the audit log (inside the caller's transaction).
async fn audit<C: GenericClient>(
    c: &C,
    actor: &str,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, $2, $3, $4)",
        &[&now(), &actor, &action, &detail.to_string()],
    )
    .await?;
    Ok(())
}

/// The database id of a school, or `NotFound`.
async fn school_id<C: GenericClient>(c: &C, uai: &Uai) -> Result<i64, StoreError> {
    row(c, "SELECT id FROM schools WHERE uai = $1", &[&uai.as_str()])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("l'établissement {uai}")))
}

/// Takes the publications' advisory lock until the transaction ends.
async fn lock_admin<C: GenericClient>(c: &C) -> Result<(), StoreError> {
    exec(c, "SELECT pg_advisory_xact_lock($1)", &[&ADMIN_LOCK]).await?;
    Ok(())
}

/// Brings the schema up to date and (re)creates the server's functions, in
/// one transaction, under an advisory lock so that processes starting
/// together migrate once.
async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7);
         CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL);",
    )
    .await?;
    let current: Option<i64> = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let current = match current {
        Some(v) => usize::try_from(v).unwrap_or(0),
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    let known = migrations::MIGRATIONS.len();
    if current > known {
        return Err(StoreError::Backend(format!(
            "database schema version {current} is newer than this server ({known}); upgrade nird-server"
        )));
    }
    for (i, sql) in migrations::MIGRATIONS.iter().enumerate().skip(current) {
        tx.batch_execute(sql).await?;
        let v = i64::try_from(i + 1).unwrap_or(i64::MAX);
        tx.execute("UPDATE schema_version SET version = $1", &[&v])
            .await?;
    }
    tx.batch_execute(migrations::FUNCTIONS).await?;
    tx.batch_execute(&migrations::enroll_function()).await?;
    tx.commit().await?;
    Ok(())
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://…`), migrates it and
    /// keeps a pool of [`POOL_SIZE`] connections.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, POOL_SIZE).await
    }

    /// [`PgStore::connect`] with another pool size.
    pub async fn connect_with(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::Backend(format!(
                "adresse PostgreSQL {} invalide : {e}",
                redact_url(url)
            ))
        })?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(StoreError::Backend(
                "sslmode=require : ce serveur se connecte à PostgreSQL sans TLS \
                 (socket Unix ou lien local) ; voir ARCHITECTURE.md"
                    .into(),
            ));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut client = pool.get().await.map_err(|e| {
            StoreError::Backend(format!(
                "connexion à PostgreSQL ({}) impossible : {}",
                redact_url(url),
                StoreError::from(e)
            ))
        })?;
        migrate(&mut client).await?;
        drop(client);
        let stats = std::sync::Arc::new(Stats::default());
        let closures = Closures::default();
        let cache = closures.clone();
        Ok(PgStore {
            checkins: Batches::start(&pool, &stats, move |pool, batch, stats| {
                run_batch(pool, batch, stats, cache.clone())
            }),
            closures,
            enrolments: Batches::start(&pool, &stats, run_enrolments),
            pool,
            closed: AtomicBool::new(false),
            stats,
        })
    }

    /// A pooled connection, unless the store is closed.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Closed);
        }
        Ok(self.pool.get().await?)
    }

    /// Counts a write as pending until the returned guard drops.
    fn pending(&self) -> Pending<'_> {
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        Pending(&self.stats)
    }

    /// Commits and counts the commit.
    async fn commit(&self, tx: deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
        tx.commit().await?;
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Reads a school row: uai, name, commune, departement, academie, kind,
/// require_approval from column `at`.
fn school_from_row(r: &Row, at: usize) -> Result<School, StoreError> {
    let kind: String = r.try_get(at + 5)?;
    Ok(School {
        uai: stored_uai(r.try_get(at)?)?,
        name: r.try_get(at + 1)?,
        commune: r.try_get(at + 2)?,
        departement: r.try_get(at + 3)?,
        academie: r.try_get(at + 4)?,
        kind: SchoolKind::parse(&kind)
            .ok_or_else(|| StoreError::Backend(format!("unknown kind {kind}")))?,
        require_approval: r.try_get::<_, i64>(at + 6)? != 0,
    })
}

/// Reads a token row: id, uai, created_at, expires_at, max_uses, uses,
/// revoked_at.
fn token_from_row(r: &Row) -> Result<TokenInfo, StoreError> {
    Ok(TokenInfo {
        id: r.try_get(0)?,
        school: stored_uai(r.try_get(1)?)?,
        created_at: r.try_get(2)?,
        expires_at: r.try_get(3)?,
        max_uses: u32::try_from(r.try_get::<_, i64>(4)?).unwrap_or(0),
        uses: u32::try_from(r.try_get::<_, i64>(5)?).unwrap_or(0),
        revoked_at: r.try_get(6)?,
    })
}

/// Reads a signed document row (version, bytes, signature, expires,
/// published_at).
fn signed_document(r: &Row) -> Result<SignedDocument, StoreError> {
    Ok(SignedDocument {
        version: to_u64(r.try_get(0)?),
        bytes: r.try_get(1)?,
        signature: r.try_get(2)?,
        expires: r.try_get(3)?,
        published_at: r.try_get(4)?,
    })
}

/// Reads an audit log row (at, actor, action, detail).
fn audit_entry(r: &Row) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        at: r.try_get(0)?,
        actor: r.try_get(1)?,
        action: r.try_get(2)?,
        detail: r.try_get(3)?,
    })
}

/// A machine's assigned closure (see `Store::assigned_closure`), the SQL
/// function `nird_closure`. Empty unless the machine is active.
async fn assigned_closure<C: GenericClient>(
    c: &C,
    status: MachineStatus,
    school: i64,
    machine_id: &str,
) -> Result<Vec<ProfileRef>, StoreError> {
    if status != MachineStatus::Active {
        return Ok(Vec::new());
    }
    rows(
        c,
        "SELECT name, version FROM nird_closure($1, $2)",
        &[&school, &machine_id],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(ProfileRef {
            name: r.try_get(0)?,
            version: to_u64(r.try_get(1)?),
        })
    })
    .collect()
}

/// Checks a machine credential: its status and school, or `BadCredential`
/// / `Retired`.
async fn authenticated_machine<C: GenericClient>(
    c: &C,
    machine_id: &str,
    secret_hash: &str,
) -> Result<(MachineStatus, i64), StoreError> {
    let Some(r) = row(
        c,
        "SELECT secret_hash, status, school_id FROM machines WHERE id = $1",
        &[&machine_id],
    )
    .await?
    else {
        return Err(StoreError::BadCredential);
    };
    let stored: String = r.try_get(0)?;
    if !constant_time_eq(&stored, secret_hash) {
        return Err(StoreError::BadCredential);
    }
    match status_of(r.try_get(1)?)? {
        MachineStatus::Retired => Err(StoreError::Retired),
        status => Ok((status, r.try_get(2)?)),
    }
}

/// The assigned closure of an authenticated machine.
async fn closure_of<C: GenericClient>(
    c: &C,
    machine_id: &str,
    secret_hash: &str,
) -> Result<Vec<ProfileRef>, StoreError> {
    let (status, school) = authenticated_machine(c, machine_id, secret_hash).await?;
    assigned_closure(c, status, school, machine_id).await
}

/// Check-ins in one call and one transaction (see `nird_checkins`).
const CHECKINS_SQL: &str = "SELECT o_ord, o_status, o_hash, o_acked, o_school, o_custom, \
     o_names, o_versions, o_generation, o_keyring, o_index \
     FROM nird_checkins($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// A school's closure and its generation, when the cache lacks it.
const SCHOOL_CLOSURE_SQL: &str =
    "SELECT o_generation, o_names, o_versions FROM nird_school_closure($1)";

/// The assigned closures of schools, as of one `closure_generation`, for
/// machines without overrides: what `nird_checkins` does not compute
/// again while the generation stays the same. Shared by the process's
/// check-ins; at most one entry per school.
#[derive(Default)]
struct ClosureCache {
    /// The generation the entries belong to; `None` before the first.
    generation: Option<i64>,
    /// School id → closure.
    schools: std::collections::HashMap<i64, Vec<ProfileRef>>,
}

impl ClosureCache {
    /// Keeps `closure`, computed at `generation`; a newer generation
    /// empties the cache first, an older one is not kept.
    fn learn(&mut self, generation: i64, school: i64, closure: &[ProfileRef]) {
        if self.generation.is_none_or(|g| g < generation) {
            self.generation = Some(generation);
            self.schools.clear();
        }
        if self.generation == Some(generation) {
            self.schools.insert(school, closure.to_vec());
        }
    }

    /// The closure of `school` at `generation`, if kept.
    fn get(&self, generation: i64, school: i64) -> Option<Vec<ProfileRef>> {
        if self.generation != Some(generation) {
            return None;
        }
        self.schools.get(&school).cloned()
    }
}

/// The process's closure cache, shared with the batchers.
type Closures = std::sync::Arc<std::sync::Mutex<ClosureCache>>;

/// Most check-ins one batch carries.
const MAX_BATCH: usize = 128;

/// Batches committing at once (each on its own connection): while one
/// waits for its WAL flush, the next is already running. Two are enough
/// to keep the database busy (up to [`MAX_BATCH`] check-ins each) and make
/// larger batches than more would: with 4, one process on 100,000
/// machines made batches of 10.6 check-ins at 0.09 ms of PostgreSQL CPU
/// each, with 2 batches of 17 at 0.08 ms (two processes: 5.7 at 0.15 ms,
/// 9.2 at 0.11 ms). Enrolments use as many (measured with 2: 1,265–1,680
/// a second, BENCHMARKS.md).
const BATCHERS: usize = 2;

/// What a check-in sends besides its credential.
struct CheckinArgs {
    /// `applied` as JSON text.
    applied: String,
    /// Applied profiles as the audit facts spell them.
    profiles: String,
    /// Reports: seq, profile, version, outcome, JSON text.
    seqs: Vec<i64>,
    names: Vec<String>,
    versions: Vec<i64>,
    outcomes: Vec<String>,
    texts: Vec<String>,
}

fn checkin_args(c: &Checkin) -> Result<CheckinArgs, StoreError> {
    let applied =
        serde_json::to_string(&c.applied).map_err(|e| StoreError::Backend(e.to_string()))?;
    let mut names: Vec<String> = c
        .applied
        .iter()
        .map(|p| format!("{} v{}", p.name, p.version))
        .collect();
    names.sort();
    let mut args = CheckinArgs {
        applied,
        profiles: names.join(", "),
        seqs: Vec::with_capacity(c.reports.len()),
        names: Vec::with_capacity(c.reports.len()),
        versions: Vec::with_capacity(c.reports.len()),
        outcomes: Vec::with_capacity(c.reports.len()),
        texts: Vec::with_capacity(c.reports.len()),
    };
    for report in &c.reports {
        args.seqs.push(to_i64(report.seq, "seq")?);
        args.names.push(report.profile.clone());
        args.versions.push(to_i64(report.version, "version")?);
        args.outcomes.push(report.outcome.as_str().to_owned());
        args.texts
            .push(serde_json::to_string(report).map_err(|e| StoreError::Backend(e.to_string()))?);
    }
    Ok(args)
}

/// Profiles from parallel name and version arrays.
fn profile_refs(names: Vec<String>, versions: Vec<i64>) -> Vec<ProfileRef> {
    names
        .into_iter()
        .zip(versions)
        .map(|(name, v)| ProfileRef {
            name,
            version: to_u64(v),
        })
        .collect()
}

/// What a row of `nird_checkins` says about the closure.
enum Closure {
    /// Not assigned anything: the machine is not active.
    None,
    /// Computed by the function; cacheable unless the machine has
    /// overrides.
    Computed {
        cacheable: bool,
        school: i64,
        generation: i64,
    },
    /// For the caller's cache: the machine's school at this generation.
    Cached { school: i64, generation: i64 },
}

/// Reads a row of `nird_checkins`: the outcome (with the closure when the
/// function computed it), the stored inventory hash, where the closure
/// comes from.
fn outcome_of(r: &Row, c: &Checkin) -> Result<(CheckinOutcome, String, Closure), StoreError> {
    let status: String = r.try_get(1)?;
    let status = match status.as_str() {
        "bad_credential" => return Err(StoreError::BadCredential),
        "retired" => return Err(StoreError::Retired),
        s => status_of(s)?,
    };
    let stored_hash: String = r.try_get(2)?;
    let school: i64 = r.try_get(4)?;
    let names: Option<Vec<String>> = r.try_get(6)?;
    let versions: Option<Vec<i64>> = r.try_get(7)?;
    let generation: i64 = r.try_get(8)?;
    let (assigned, closure) = match (status, names, versions) {
        (MachineStatus::Active, Some(names), Some(versions)) => (
            profile_refs(names, versions),
            Closure::Computed {
                cacheable: !r.try_get::<_, bool>(5)?,
                school,
                generation,
            },
        ),
        (MachineStatus::Active, _, _) => (Vec::new(), Closure::Cached { school, generation }),
        _ => (Vec::new(), Closure::None),
    };
    Ok((
        CheckinOutcome {
            status,
            send_inventory: c.inventory.is_none() && c.inventory_hash != stored_hash,
            acked_seq: to_u64(r.try_get(3)?),
            assigned,
            keyring_version: r.try_get::<_, Option<i64>>(9)?.map(to_u64),
            index_version: r.try_get::<_, Option<i64>>(10)?.map(to_u64),
        },
        stored_hash,
        closure,
    ))
}

/// A check-in's outcome and the stored inventory hash.
type Answer = Result<(CheckinOutcome, String), StoreError>;

/// Runs `nird_checkins` for `batch` (sorted by machine id) on `client`:
/// one statement, so one transaction unless the caller opened one. Each
/// check-in's outcome and stored inventory hash, in batch order; the
/// closures the function left to the cache are filled from it, or from
/// `nird_school_closure` for schools it lacks.
async fn checkins_call<C: GenericClient>(
    client: &C,
    batch: &[&Checkin],
    at: i64,
    closures: &Closures,
) -> Result<Vec<Answer>, StoreError> {
    let n = batch.len();
    let mut machines = Vec::with_capacity(n);
    let mut secrets = Vec::with_capacity(n);
    let mut applied = Vec::with_capacity(n);
    let mut profiles = Vec::with_capacity(n);
    let mut trusts = Vec::with_capacity(n);
    let (mut idx, mut seqs, mut names, mut versions, mut outcomes, mut texts) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (k, c) in batch.iter().enumerate() {
        let a = checkin_args(c)?;
        machines.push(c.machine_id.as_str());
        secrets.push(c.secret_hash.as_str());
        applied.push(a.applied);
        profiles.push(a.profiles);
        trusts.push(c.trust.clone());
        let ord = i32::try_from(k + 1).unwrap_or(i32::MAX);
        idx.extend(std::iter::repeat_n(ord, a.seqs.len()));
        seqs.extend(a.seqs);
        names.extend(a.names);
        versions.extend(a.versions);
        outcomes.extend(a.outcomes);
        texts.extend(a.texts);
    }
    let known = closures
        .lock()
        .map_err(|_| StoreError::Backend("closure cache poisoned".into()))?
        .generation;
    let rows = rows(
        client,
        CHECKINS_SQL,
        &[
            &machines, &secrets, &at, &applied, &profiles, &trusts, &idx, &seqs, &names, &versions,
            &outcomes, &texts, &known,
        ],
    )
    .await?;
    if rows.len() != n {
        return Err(StoreError::Backend(format!(
            "nird_checkins answered {} rows for {n} check-ins",
            rows.len()
        )));
    }
    // Rows come in batch order (ord 1..n).
    let mut answers = Vec::with_capacity(n);
    let mut missing = Vec::new();
    {
        let mut cache = closures
            .lock()
            .map_err(|_| StoreError::Backend("closure cache poisoned".into()))?;
        for (k, (c, r)) in batch.iter().zip(&rows).enumerate() {
            answers.push(outcome_of(r, c).map(|(mut outcome, hash, closure)| {
                match closure {
                    Closure::Computed {
                        cacheable: true,
                        school,
                        generation,
                    } => cache.learn(generation, school, &outcome.assigned),
                    Closure::Cached { school, generation } => match cache.get(generation, school) {
                        Some(assigned) => outcome.assigned = assigned,
                        None => missing.push((k, school)),
                    },
                    Closure::Computed { .. } | Closure::None => {}
                }
                (outcome, hash)
            }));
        }
    }
    for (k, school) in missing {
        let r = row(client, SCHOOL_CLOSURE_SQL, &[&school])
            .await?
            .ok_or_else(|| StoreError::Backend("nird_school_closure answered nothing".into()))?;
        let assigned = profile_refs(r.try_get(1)?, r.try_get(2)?);
        closures
            .lock()
            .map_err(|_| StoreError::Backend("closure cache poisoned".into()))?
            .learn(r.try_get(0)?, school, &assigned);
        if let Some(Ok((outcome, _))) = answers.get_mut(k) {
            outcome.assigned = assigned;
        }
    }
    Ok(answers)
}

/// One check-in (a batch of one), before the inventory part, which the
/// caller adds when there is one.
async fn checkin_call<C: GenericClient>(
    client: &C,
    c: &Checkin,
    at: i64,
    closures: &Closures,
) -> Answer {
    checkins_call(client, &[c], at, closures)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Backend("nird_checkins answered nothing".into()))?
}

/// One batcher: takes every request queued (up to [`MAX_BATCH`]) and
/// runs them with `run`. Ends when the queue is closed and empty.
async fn batcher<T, O, F, Fut>(
    pool: Pool,
    queue: std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Queued<T, O>>>>,
    stats: std::sync::Arc<Stats>,
    run: F,
) where
    F: Fn(Pool, Vec<Queued<T, O>>, std::sync::Arc<Stats>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = queue.lock().await;
            match rx.recv().await {
                Some(q) => batch.push(q),
                None => return,
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(q) => batch.push(q),
                    Err(_) => break,
                }
            }
        }
        let n = batch.len();
        run(pool.clone(), batch, stats.clone()).await;
        stats.pending.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Answers every caller of a batch with `e`.
fn fail_all<T, O>(batch: Vec<Queued<T, O>>, e: &StoreError) {
    for (_, reply) in batch {
        let _ = reply.send(Err(e.clone()));
    }
}

/// Counts a batch's commit and answers each caller with its outcome.
fn answer_committed<T, O>(
    batch: Vec<Queued<T, O>>,
    outcomes: Vec<Result<O, StoreError>>,
    stats: &Stats,
) {
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats
        .writes
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
}

/// Runs one batch of check-ins and answers its callers. Should the batch
/// fail as a whole (a deadlock with an administrator's transaction, a
/// lost connection), each check-in is retried alone, so one cannot fail
/// another.
async fn run_batch(
    pool: Pool,
    mut batch: Vec<Queued<Checkin, CheckinOutcome>>,
    stats: std::sync::Arc<Stats>,
    closures: Closures,
) {
    // One lock order for every batch: no deadlock between batches.
    batch.sort_by(|a, b| a.0.machine_id.cmp(&b.0.machine_id));
    let at = now();
    let client = match pool.get().await {
        Ok(c) => c,
        Err(e) => return fail_all(batch, &e.into()),
    };
    let checkins: Vec<&Checkin> = batch.iter().map(|(c, _)| c).collect();
    match checkins_call(&client, &checkins, at, &closures).await {
        Ok(answers) => {
            let outcomes = answers.into_iter().map(|a| a.map(|(o, _)| o)).collect();
            answer_committed(batch, outcomes, &stats);
        }
        Err(e) if batch.len() == 1 => fail_all(batch, &e),
        Err(e) => {
            tracing::warn!(error = %e, size = batch.len(), "check-in batch failed; retrying one by one");
            for (c, reply) in batch {
                let outcome = checkin_call(&client, &c, at, &closures)
                    .await
                    .map(|(o, _)| o);
                if outcome.is_ok() {
                    stats.commits.fetch_add(1, Ordering::Relaxed);
                    stats.writes.fetch_add(1, Ordering::Relaxed);
                }
                let _ = reply.send(outcome);
            }
        }
    }
}

/// An enrolment ready for `nird_enroll`.
struct EnrolCall {
    /// The token's hash: batches sort by it, so two lock tokens in one
    /// order.
    token_hash: String,
    /// The function's parameters (see [`migrations::enroll_function`]).
    params: Params,
}

/// The enrolment function call (one round trip); its 49 parameters.
static ENROLL_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let params: Vec<String> = (1..=49).map(|n| format!("${n}")).collect();
    format!(
        "SELECT o_problem, o_status, o_uai, o_kind, o_academie FROM nird_enroll({})",
        params.join(", ")
    )
});

/// `nird_enroll`'s parameters for `m`, at this time.
fn enrol_call(m: NewMachine) -> Result<EnrolCall, StoreError> {
    let first = inventory::FirstRecord::of(&m.inventory)?;
    let mut params = audit::facts_params(
        &m.machine_id,
        &crate::audit::facts_version(),
        // From the document without its package list, as on SQLite: the
        // facts describe hardware.
        crate::audit::facts::from_document(&first.hardware),
    );
    params.push(m.token_hash.clone());
    params.push(m.hostname);
    params.push(m.secret_hash);
    params.push(now());
    params.push(m.inventory_hash);
    params.push(first.core);
    params.push(first.packed);
    params.push(first.list_hash);
    params.push(first.list);
    Ok(EnrolCall {
        token_hash: m.token_hash,
        params,
    })
}

/// Reads `nird_enroll`'s answer.
fn enrolment_of(r: &Row) -> Result<Enrolment, StoreError> {
    if let Some(problem) = r.try_get::<_, Option<&str>>(0)? {
        return Err(StoreError::Token(match problem {
            "unknown" => TokenProblem::Unknown,
            "revoked" => TokenProblem::Revoked,
            "expired" => TokenProblem::Expired,
            "exhausted" => TokenProblem::Exhausted,
            other => {
                return Err(StoreError::Backend(format!(
                    "nird_enroll answered problem {other}"
                )));
            }
        }));
    }
    Ok(Enrolment {
        status: status_of(r.try_get(1)?)?,
        school: nird_proto::api::EnrolledSchool {
            uai: r.try_get(2)?,
            kind: r.try_get(3)?,
            academie: r.try_get(4)?,
        },
    })
}

/// One enrolment alone: the statement is its own transaction, so it has
/// committed when it answers.
async fn enrol_alone<C: GenericClient>(c: &C, call: &EnrolCall) -> Result<Enrolment, StoreError> {
    let r = row(c, &ENROLL_SQL, &call.params.refs())
        .await?
        .ok_or_else(|| StoreError::Backend("nird_enroll answered nothing".into()))?;
    enrolment_of(&r)
}

/// Several enrolments in one transaction, their calls pipelined (sent
/// together, one round trip): each one's outcome (a token problem is
/// that enrolment's alone), after the commit. Any other failure fails
/// the whole batch, which then takes nothing.
async fn enrol_together(
    client: &mut deadpool_postgres::Object,
    batch: &[Queued<EnrolCall, Enrolment>],
) -> Result<Vec<Result<Enrolment, StoreError>>, StoreError> {
    let tx = client.transaction().await?;
    let stmt = tx.prepare_cached(&ENROLL_SQL).await?;
    let params: Vec<_> = batch.iter().map(|(call, _)| call.params.refs()).collect();
    let rows = futures_util::future::join_all(params.iter().map(|p| tx.query_one(&stmt, p))).await;
    let mut outcomes = Vec::with_capacity(rows.len());
    for r in rows {
        outcomes.push(enrolment_of(&r?));
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Runs one batch of enrolments and answers its callers. As for
/// check-ins, a batch that fails as a whole (a deadlock, a duplicate
/// machine id, a lost connection) is retried one by one, so one cannot
/// fail another.
async fn run_enrolments(
    pool: Pool,
    mut batch: Vec<Queued<EnrolCall, Enrolment>>,
    stats: std::sync::Arc<Stats>,
) {
    // One lock order for every batch: no deadlock between batches.
    batch.sort_by(|a, b| a.0.token_hash.cmp(&b.0.token_hash));
    let mut client = match pool.get().await {
        Ok(c) => c,
        Err(e) => return fail_all(batch, &e.into()),
    };
    if batch.len() > 1 {
        match enrol_together(&mut client, &batch).await {
            Ok(outcomes) => return answer_committed(batch, outcomes, &stats),
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "enrolment batch failed; retrying one by one");
            }
        }
    }
    for (call, reply) in batch {
        let outcome = enrol_alone(&client, &call).await;
        if outcome.is_ok() {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.writes.fetch_add(1, Ordering::Relaxed);
        }
        let _ = reply.send(outcome);
    }
}

impl Store for PgStore {
    fn add_school<'a>(&'a self, actor: &'a str, school: School) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO schools (uai, name, commune, departement, academie, kind,
                                          require_approval, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .await?;
            tx.execute(
                &stmt,
                &[
                    &school.uai.as_str(),
                    &school.name,
                    &school.commune,
                    &school.departement,
                    &school.academie,
                    &school.kind.as_str(),
                    &i64::from(school.require_approval),
                    &now(),
                ],
            )
            .await
            .map_err(|e| unique_as_exists(e, || format!("l'établissement {}", school.uai)))?;
            audit(
                &tx,
                actor,
                "school.add",
                serde_json::json!({"uai": school.uai, "name": school.name}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn list_schools(&self) -> StoreFuture<'_, Vec<School>> {
        Box::pin(async move {
            let client = self.client().await?;
            rows(
                &client,
                "SELECT uai, name, commune, departement, academie, kind, require_approval
                 FROM schools ORDER BY uai",
                &[],
            )
            .await?
            .iter()
            .map(|r| school_from_row(r, 0))
            .collect()
        })
    }

    fn create_token<'a>(&'a self, actor: &'a str, token: NewToken) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let school = school_id(&tx, &token.school).await?;
            let id: i64 = row(
                &tx,
                "INSERT INTO enrollment_tokens
                 (token_hash, school_id, created_by, created_at, expires_at, max_uses)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &token.token_hash,
                    &school,
                    &actor,
                    &now(),
                    &token.expires_at,
                    &i64::from(token.max_uses),
                ],
            )
            .await?
            .ok_or_else(|| StoreError::Backend("no id returned".into()))?
            .try_get(0)?;
            audit(
                &tx,
                actor,
                "token.create",
                serde_json::json!({"id": id, "school": token.school,
                                   "max_uses": token.max_uses, "expires_at": token.expires_at}),
            )
            .await?;
            self.commit(tx).await?;
            Ok(id)
        })
    }

    fn list_tokens(&self) -> StoreFuture<'_, Vec<TokenInfo>> {
        Box::pin(async move {
            let client = self.client().await?;
            rows(
                &client,
                "SELECT t.id, s.uai, t.created_at, t.expires_at, t.max_uses, t.uses, t.revoked_at
                 FROM enrollment_tokens t JOIN schools s ON s.id = t.school_id
                 ORDER BY t.id DESC",
                &[],
            )
            .await?
            .iter()
            .map(token_from_row)
            .collect()
        })
    }

    fn revoke_token<'a>(&'a self, actor: &'a str, id: i64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let changed = exec(
                &tx,
                "UPDATE enrollment_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &now()],
            )
            .await?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("le jeton actif n° {id}")));
            }
            audit(&tx, actor, "token.revoke", serde_json::json!({"id": id})).await?;
            self.commit(tx).await
        })
    }

    fn enroll(&self, m: NewMachine) -> StoreFuture<'_, Enrolment> {
        Box::pin(async move {
            if self.closed.load(Ordering::Relaxed) {
                return Err(StoreError::Closed);
            }
            // Prepared here, on the caller's task (splitting, compression,
            // facts): the batcher only sends it.
            let call = enrol_call(m)?;
            self.enrolments.submit(&self.stats, call).await
        })
    }

    fn authenticate<'a>(
        &'a self,
        machine_id: &'a str,
        secret_hash: &'a str,
    ) -> StoreFuture<'a, MachineAuth> {
        Box::pin(async move {
            let client = self.client().await?;
            let (status, _) = authenticated_machine(&client, machine_id, secret_hash).await?;
            Ok(MachineAuth { status })
        })
    }

    fn checkin(&self, c: Checkin) -> StoreFuture<'_, CheckinOutcome> {
        Box::pin(async move {
            let Some(inventory) = c.inventory.as_ref() else {
                // The common case: batched with the others (group commit).
                return self.checkins.submit(&self.stats, c).await;
            };
            let _p = self.pending();
            let mut client = self.client().await?;
            let at = now();
            let tx = client.transaction().await?;
            let (outcome, stored_hash) = checkin_call(&tx, &c, at, &self.closures).await?;
            if c.inventory_hash != stored_hash {
                exec(
                    &tx,
                    "UPDATE machines SET inventory_hash = $2 WHERE id = $1",
                    &[&c.machine_id, &c.inventory_hash],
                )
                .await?;
                let hardware = inventory::record(
                    &tx,
                    &c.machine_id,
                    at,
                    &c.inventory_hash,
                    inventory,
                    c.max_inventory_changes_per_day,
                )
                .await?;
                // The audit facts read the document without its package
                // list (a tenth of the text), as on SQLite.
                audit::record(&tx, &c.machine_id, Some(&hardware), &c.applied).await?;
            }
            self.commit(tx).await?;
            Ok(outcome)
        })
    }

    fn list_machines<'a>(
        &'a self,
        school: Option<&'a Uai>,
    ) -> StoreFuture<'a, Vec<MachineSummary>> {
        Box::pin(async move {
            let client = self.client().await?;
            let school = school.map(|s| s.as_str().to_owned());
            rows(
                &client,
                "SELECT m.id, s.uai, m.hostname, m.status, m.last_seen, m.checkins,
                        m.inventory_hash, m.acked_seq
                 FROM machines m JOIN schools s ON s.id = m.school_id
                 WHERE $1::text IS NULL OR s.uai = $1
                 ORDER BY s.uai, m.hostname, m.id",
                &[&school],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(MachineSummary {
                    id: r.try_get(0)?,
                    school: stored_uai(r.try_get(1)?)?,
                    hostname: r.try_get(2)?,
                    status: status_of(r.try_get(3)?)?,
                    last_seen: r.try_get(4)?,
                    checkins: to_u64(r.try_get(5)?),
                    inventory_hash: r.try_get(6)?,
                    acked_seq: to_u64(r.try_get(7)?),
                })
            })
            .collect()
        })
    }

    fn set_machine_status<'a>(
        &'a self,
        actor: &'a str,
        machine_id: &'a str,
        status: MachineStatus,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let Some(r) = row(
                &tx,
                "SELECT status FROM machines WHERE id = $1 FOR UPDATE",
                &[&machine_id],
            )
            .await?
            else {
                return Err(StoreError::NotFound(format!("la machine {machine_id}")));
            };
            let current: String = r.try_get(0)?;
            if status_of(&current)? == MachineStatus::Retired && status != MachineStatus::Retired {
                return Err(StoreError::Conflict(format!(
                    "la machine {machine_id} est retirée : elle doit être réinscrite"
                )));
            }
            exec(
                &tx,
                "UPDATE machines SET status = $2 WHERE id = $1",
                &[&machine_id, &status.as_str()],
            )
            .await?;
            audit(
                &tx,
                actor,
                "machine.status",
                serde_json::json!({"machine": machine_id, "from": current, "to": status.as_str()}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn count_machines(&self) -> StoreFuture<'_, Vec<(MachineStatus, u64)>> {
        Box::pin(async move {
            let client = self.client().await?;
            let mut counts = vec![
                (MachineStatus::Pending, 0),
                (MachineStatus::Active, 0),
                (MachineStatus::Retired, 0),
            ];
            for r in rows(
                &client,
                "SELECT status, COUNT(*) FROM machines GROUP BY status",
                &[],
            )
            .await?
            {
                let status = status_of(r.try_get(0)?)?;
                let n: i64 = r.try_get(1)?;
                for (s, count) in counts.iter_mut() {
                    if *s == status {
                        *count = to_u64(n);
                    }
                }
            }
            Ok(counts)
        })
    }

    fn latest_version<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<u64>> {
        Box::pin(async move {
            let client = self.client().await?;
            let v: Option<i64> = row(
                &client,
                "SELECT MAX(version) FROM profile_releases WHERE name = $1",
                &[&name],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .flatten();
            Ok(v.map(to_u64))
        })
    }

    fn publish_release<'a>(
        &'a self,
        actor: &'a str,
        r: NewRelease,
    ) -> StoreFuture<'a, PublishOutcome> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_admin(&tx).await?;
            let sha = nird_proto::hash::sha256_hex(&r.bytes);
            let version = to_i64(r.version, "version")?;
            if let Some(existing) = row(
                &tx,
                "SELECT sha256 FROM profile_releases WHERE name = $1 AND version = $2",
                &[&r.name, &version],
            )
            .await?
            {
                let existing: String = existing.try_get(0)?;
                if existing == sha {
                    return Ok(PublishOutcome::AlreadyPublished);
                }
                return Err(StoreError::Conflict(format!(
                    "la version {} du profil « {} » est déjà publiée avec un contenu différent",
                    r.version, r.name
                )));
            }
            let latest: Option<i64> = row(
                &tx,
                "SELECT MAX(version) FROM profile_releases WHERE name = $1",
                &[&r.name],
            )
            .await?
            .map(|row| row.try_get(0))
            .transpose()?
            .flatten();
            if let Some(latest) = latest
                && latest >= version
            {
                return Err(StoreError::Conflict(format!(
                    "retour en arrière refusé : le profil « {} » est déjà publié en version {latest}, \
                     la version {} doit être plus grande",
                    r.name, r.version
                )));
            }
            let release_id: i64 = row(
                &tx,
                "INSERT INTO profile_releases
                   (name, version, bytes, sha256, minisig, published_by, published_at, signed_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &r.name,
                    &version,
                    &r.bytes,
                    &sha,
                    &r.minisig,
                    &actor,
                    &now(),
                    &r.signed_by,
                ],
            )
            .await?
            .ok_or_else(|| StoreError::Backend("no id returned".into()))?
            .try_get(0)?;
            for (blob_sha, bytes) in &r.blobs {
                let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
                exec(
                    &tx,
                    "INSERT INTO blobs (sha256, size, bytes) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[blob_sha, &size, bytes],
                )
                .await?;
                exec(
                    &tx,
                    "INSERT INTO release_blobs (release_id, sha256) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&release_id, blob_sha],
                )
                .await?;
            }
            for name in &r.includes {
                exec(
                    &tx,
                    "INSERT INTO release_includes (release_id, name) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&release_id, name],
                )
                .await?;
            }
            audit(
                &tx,
                actor,
                "profile.publish",
                serde_json::json!({"name": r.name, "version": r.version, "sha256": sha,
                                   "blobs": r.blobs.len()}),
            )
            .await?;
            self.commit(tx).await?;
            Ok(PublishOutcome::Published)
        })
    }

    fn list_releases(&self) -> StoreFuture<'_, Vec<ReleaseInfo>> {
        Box::pin(async move {
            let client = self.client().await?;
            rows(
                &client,
                "SELECT name, version, sha256, published_by, published_at, signed_by, revoked_at
                 FROM profile_releases ORDER BY name, version",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(ReleaseInfo {
                    name: r.try_get(0)?,
                    version: to_u64(r.try_get(1)?),
                    sha256: r.try_get(2)?,
                    published_by: r.try_get(3)?,
                    published_at: r.try_get(4)?,
                    signed_by: r.try_get(5)?,
                    revoked_at: r.try_get(6)?,
                })
            })
            .collect()
        })
    }

    fn release<'a>(&'a self, name: &'a str, version: u64) -> StoreFuture<'a, Option<Release>> {
        Box::pin(async move {
            let Ok(version) = i64::try_from(version) else {
                return Ok(None);
            };
            let client = self.client().await?;
            release_row(&client, name, version).await
        })
    }

    fn blob<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let client = self.client().await?;
            Ok(row(
                &client,
                "SELECT bytes FROM blobs WHERE sha256 = $1",
                &[&sha256],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
        })
    }

    fn blob_size<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, Option<u64>> {
        Box::pin(async move {
            let client = self.client().await?;
            blob_size(&client, sha256).await
        })
    }

    fn assign_school<'a>(
        &'a self,
        actor: &'a str,
        school: &'a Uai,
        profiles: Vec<String>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let id = school_id(&tx, school).await?;
            exec(
                &tx,
                "DELETE FROM school_assignments WHERE school_id = $1",
                &[&id],
            )
            .await?;
            for p in &profiles {
                exec(
                    &tx,
                    "INSERT INTO school_assignments (school_id, profile_name) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&id, p],
                )
                .await?;
            }
            audit(
                &tx,
                actor,
                "assign.school",
                serde_json::json!({"school": school, "profiles": profiles}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn override_machine<'a>(
        &'a self,
        actor: &'a str,
        machine_id: &'a str,
        profile: &'a str,
        include: bool,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            if row(&tx, "SELECT 1 FROM machines WHERE id = $1", &[&machine_id])
                .await?
                .is_none()
            {
                return Err(StoreError::NotFound(format!("la machine {machine_id}")));
            }
            exec(
                &tx,
                "INSERT INTO machine_overrides (machine_id, profile_name, include)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (machine_id, profile_name) DO UPDATE SET include = excluded.include",
                &[&machine_id, &profile, &i64::from(include)],
            )
            .await?;
            audit(
                &tx,
                actor,
                "assign.machine",
                serde_json::json!({"machine": machine_id, "profile": profile, "include": include}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn add_user<'a>(&'a self, actor: &'a str, user: NewUser) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO users (login, password_hash, role, territory, created_at)
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .await?;
            let user_id: i64 = tx
                .query_one(
                    &stmt,
                    &[
                        &user.login,
                        &user.password_hash,
                        &user.role.as_str(),
                        &user.territory,
                        &now(),
                    ],
                )
                .await
                .map_err(|e| unique_as_exists(e, || format!("l'utilisateur « {} »", user.login)))?
                .try_get(0)?;
            for uai in &user.schools {
                let school = school_id(&tx, uai).await?;
                exec(
                    &tx,
                    "INSERT INTO user_schools (user_id, school_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&user_id, &school],
                )
                .await?;
            }
            audit(
                &tx,
                actor,
                "user.add",
                serde_json::json!({"login": user.login, "role": user.role.as_str(),
                                   "schools": user.schools, "territory": user.territory}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn user_exists<'a>(&'a self, login: &'a str) -> StoreFuture<'a, bool> {
        let fut = self.password_hash(login);
        Box::pin(async move { Ok(fut.await?.is_some()) })
    }

    fn password_hash<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            Ok(row(
                &client,
                "SELECT password_hash FROM users WHERE login = $1",
                &[&login],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
        })
    }

    fn reports<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Vec<ApplyReport>> {
        Box::pin(async move {
            let client = self.client().await?;
            rows(
                &client,
                "SELECT report FROM apply_reports WHERE machine_id = $1 ORDER BY seq",
                &[&machine_id],
            )
            .await?
            .iter()
            .map(|r| {
                serde_json::from_str(r.try_get(0)?)
                    .map_err(|e| StoreError::Backend(format!("stored report: {e}")))
            })
            .collect()
        })
    }

    fn audit_log(&self) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let client = self.client().await?;
            rows(
                &client,
                "SELECT at, actor, action, detail FROM audit_log ORDER BY id",
                &[],
            )
            .await?
            .iter()
            .map(audit_entry)
            .collect()
        })
    }

    fn latest_inventory<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            inventory::latest(&client, machine_id).await
        })
    }

    fn latest_inventory_core<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            inventory::latest_core(&client, machine_id).await
        })
    }

    fn software_list<'a>(&'a self, hash: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            inventory::list(&client, hash).await
        })
    }

    fn inventory_history_len<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let client = self.client().await?;
            let n: i64 = row(
                &client,
                "SELECT COUNT(*) FROM inventory_history WHERE machine_id = $1",
                &[&machine_id],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);
            Ok(to_u64(n))
        })
    }

    fn publish_keyring<'a>(&'a self, actor: &'a str, k: NewKeyring) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_admin(&tx).await?;
            let latest: Option<i64> = row(&tx, "SELECT MAX(version) FROM keyrings", &[])
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .flatten();
            let version = to_i64(k.version, "version")?;
            let expected = latest.map_or(1, |v| v + 1);
            if version != expected {
                return Err(StoreError::Conflict(format!(
                    "trousseau version {} refusé : la version {expected} est attendue",
                    k.version
                )));
            }
            let key_ids = serde_json::to_string(&k.key_ids)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let at = now();
            exec(
                &tx,
                "INSERT INTO keyrings (version, bytes, signatures, key_ids, expires, published_by,
                                       published_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &version,
                    &k.bytes,
                    &k.signatures,
                    &key_ids,
                    &k.expires,
                    &actor,
                    &at,
                ],
            )
            .await?;
            for r in &k.revoke {
                exec(
                    &tx,
                    "UPDATE profile_releases SET revoked_at = $3
                     WHERE name = $1 AND version = $2 AND revoked_at IS NULL",
                    &[&r.name, &to_i64(r.version, "version")?, &at],
                )
                .await?;
            }
            audit(
                &tx,
                actor,
                "keyring.publish",
                serde_json::json!({"version": k.version, "keys": k.key_ids, "expires": k.expires,
                                   "revoked_releases": k.revoke}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn latest_keyring(&self) -> StoreFuture<'_, Option<SignedDocument>> {
        Box::pin(async move {
            let client = self.client().await?;
            row(
                &client,
                "SELECT version, bytes, signatures, expires, published_at FROM keyrings
                 ORDER BY version DESC LIMIT 1",
                &[],
            )
            .await?
            .as_ref()
            .map(signed_document)
            .transpose()
        })
    }

    fn keyring(&self, version: u64) -> StoreFuture<'_, Option<SignedDocument>> {
        Box::pin(async move {
            let Ok(version) = i64::try_from(version) else {
                return Ok(None);
            };
            let client = self.client().await?;
            row(
                &client,
                "SELECT version, bytes, signatures, expires, published_at FROM keyrings
                 WHERE version = $1",
                &[&version],
            )
            .await?
            .as_ref()
            .map(signed_document)
            .transpose()
        })
    }

    fn publish_index<'a>(&'a self, actor: &'a str, i: NewIndex) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_admin(&tx).await?;
            let latest: Option<i64> = row(&tx, "SELECT MAX(version) FROM catalogue_indexes", &[])
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .flatten();
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
                let found = row(
                    &tx,
                    "SELECT sha256, revoked_at FROM profile_releases WHERE name = $1 AND version = $2",
                    &[name, &to_i64(*v, "version")?],
                )
                .await?;
                let Some(found) = found else {
                    return Err(StoreError::Conflict(format!(
                        "l'index donne « {name} » version {v}, qui n'est pas publiée : publiez-la d'abord"
                    )));
                };
                let stored: String = found.try_get(0)?;
                let revoked: Option<i64> = found.try_get(1)?;
                if &stored != sha {
                    return Err(StoreError::Conflict(format!(
                        "l'index épingle « {name} » version {v} avec un autre contenu que celui publié"
                    )));
                }
                if revoked.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "« {name} » version {v} est signée par une clé révoquée : elle ne peut pas être dans l'index"
                    )));
                }
            }
            exec(
                &tx,
                "INSERT INTO catalogue_indexes (version, bytes, signature, expires, published_by,
                                                published_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&version, &i.bytes, &i.signature, &i.expires, &actor, &now()],
            )
            .await?;
            for (name, v, sha) in &i.entries {
                exec(
                    &tx,
                    "INSERT INTO index_entries (index_version, name, version, sha256)
                     VALUES ($1, $2, $3, $4)",
                    &[&version, name, &to_i64(*v, "version")?, sha],
                )
                .await?;
            }
            audit(
                &tx,
                actor,
                "index.publish",
                serde_json::json!({"version": i.version, "expires": i.expires,
                                   "profiles": i.entries.len()}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn catalogue_index(&self, version: Option<u64>) -> StoreFuture<'_, Option<SignedDocument>> {
        Box::pin(async move {
            let version = match version.map(i64::try_from) {
                Some(Ok(v)) => Some(v),
                Some(Err(_)) => return Ok(None),
                None => None,
            };
            let client = self.client().await?;
            row(
                &client,
                "SELECT version, bytes, signature, expires, published_at FROM catalogue_indexes
                 WHERE $1::bigint IS NULL OR version = $1 ORDER BY version DESC LIMIT 1",
                &[&version],
            )
            .await?
            .as_ref()
            .map(signed_document)
            .transpose()
        })
    }

    fn live_releases(&self) -> StoreFuture<'_, Vec<StoredRelease>> {
        Box::pin(async move {
            let client = self.client().await?;
            rows(
                &client,
                "SELECT name, version, bytes, minisig FROM profile_releases
                 WHERE revoked_at IS NULL ORDER BY name, version",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(StoredRelease {
                    name: r.try_get(0)?,
                    version: to_u64(r.try_get(1)?),
                    bytes: r.try_get(2)?,
                    minisig: r.try_get(3)?,
                })
            })
            .collect()
        })
    }

    fn trust_reports(&self) -> StoreFuture<'_, Vec<(String, String)>> {
        Box::pin(async move {
            let client = self.client().await?;
            rows(
                &client,
                "SELECT id, trust_report FROM machines WHERE trust_report IS NOT NULL ORDER BY id",
                &[],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
        })
    }

    fn assigned_closure<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Vec<ProfileRef>> {
        Box::pin(async move {
            let client = self.client().await?;
            let Some(r) = row(
                &client,
                "SELECT status, school_id FROM machines WHERE id = $1",
                &[&machine_id],
            )
            .await?
            else {
                return Err(StoreError::NotFound(format!("la machine {machine_id}")));
            };
            assigned_closure(
                &client,
                status_of(r.try_get(0)?)?,
                r.try_get(1)?,
                machine_id,
            )
            .await
        })
    }

    fn assigned_release<'a>(
        &'a self,
        machine_id: &'a str,
        secret_hash: &'a str,
        name: &'a str,
        version: u64,
    ) -> StoreFuture<'a, Option<Release>> {
        Box::pin(async move {
            let client = self.client().await?;
            let closure = closure_of(&client, machine_id, secret_hash).await?;
            if !closure
                .iter()
                .any(|r| r.name == name && r.version == version)
            {
                return Ok(None);
            }
            let Ok(version) = i64::try_from(version) else {
                return Ok(None);
            };
            release_row(&client, name, version).await
        })
    }

    fn assigned_blob_size<'a>(
        &'a self,
        machine_id: &'a str,
        secret_hash: &'a str,
        sha256: &'a str,
    ) -> StoreFuture<'a, Option<u64>> {
        Box::pin(async move {
            let client = self.client().await?;
            let closure = closure_of(&client, machine_id, secret_hash).await?;
            let mut found = false;
            for release in &closure {
                let version = to_i64(release.version, "version")?;
                if row(
                    &client,
                    "SELECT 1 FROM profile_releases r
                     JOIN release_blobs b ON b.release_id = r.id AND b.sha256 = $3
                     WHERE r.name = $1 AND r.version = $2",
                    &[&release.name, &version, &sha256],
                )
                .await?
                .is_some()
                {
                    found = true;
                    break;
                }
            }
            if !found {
                return Ok(None);
            }
            blob_size(&client, sha256).await
        })
    }

    fn blob_chunks<'a>(
        &'a self,
        sha256: &'a str,
        offset: u64,
        chunk: usize,
        count: usize,
    ) -> StoreFuture<'a, Option<Vec<Vec<u8>>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let Some(size) = blob_size(&client, sha256).await? else {
                return Ok(None);
            };
            // substring() on a BYTEA reads only the TOAST chunks that hold
            // the range (blobs are stored uncompressed for this, see
            // ARCHITECTURE.md), never the whole file.
            let chunk = chunk.max(1);
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(size);
            let len = chunk.saturating_mul(count).min(size - start);
            if len == 0 {
                return Ok(Some(Vec::new()));
            }
            let from = i64::try_from(start + 1).unwrap_or(i64::MAX);
            let n = i64::try_from(len).unwrap_or(i64::MAX);
            let bytes: Vec<u8> = row(
                &client,
                "SELECT substring(bytes FROM ($2::bigint)::int FOR ($3::bigint)::int)
                 FROM blobs WHERE sha256 = $1",
                &[&sha256, &from, &n],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or_default();
            Ok(Some(bytes.chunks(chunk).map(<[u8]>::to_vec).collect()))
        })
    }

    fn prune_history(&self, before: i64) -> StoreFuture<'_, PruneOutcome> {
        Box::pin(async move {
            let mut outcome = PruneOutcome::default();
            let client = self.client().await?;
            loop {
                // The newest row of each machine is its current inventory:
                // never pruned, however old.
                let n = exec(
                    &client,
                    "DELETE FROM inventory_history WHERE id IN (
                       SELECT h.id FROM inventory_history h
                       WHERE h.recorded_at < $1
                         AND h.id < (SELECT MAX(id) FROM inventory_history
                                     WHERE machine_id = h.machine_id)
                       LIMIT $2)",
                    &[&before, &PRUNE_BATCH],
                )
                .await?;
                outcome.inventory_rows += n;
                if n < PRUNE_BATCH as u64 {
                    break;
                }
            }
            loop {
                let n = exec(
                    &client,
                    "DELETE FROM apply_reports WHERE (machine_id, seq) IN (
                       SELECT machine_id, seq FROM apply_reports
                       WHERE received_at < $1 LIMIT $2)",
                    &[&before, &PRUNE_BATCH],
                )
                .await?;
                outcome.reports += n;
                if n < PRUNE_BATCH as u64 {
                    break;
                }
            }
            Ok(outcome)
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.closed.store(true, Ordering::Relaxed);
            self.checkins.close().await?;
            self.enrolments.close().await?;
            self.pool.close();
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

/// One release's bytes and signature.
async fn release_row<C: GenericClient>(
    c: &C,
    name: &str,
    version: i64,
) -> Result<Option<Release>, StoreError> {
    row(
        c,
        "SELECT bytes, minisig FROM profile_releases WHERE name = $1 AND version = $2",
        &[&name, &version],
    )
    .await?
    .map(|r| {
        Ok(Release {
            bytes: r.try_get(0)?,
            minisig: r.try_get(1)?,
        })
    })
    .transpose()
}

/// A blob's size.
async fn blob_size<C: GenericClient>(c: &C, sha256: &str) -> Result<Option<u64>, StoreError> {
    Ok(
        row(c, "SELECT size FROM blobs WHERE sha256 = $1", &[&sha256])
            .await?
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()?
            .map(to_u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_placeholders_become_numbered() {
        assert_eq!(
            dollar("a = ?1 AND b = ? AND c = ?2"),
            "a = $1 AND b = $2 AND c = $2"
        );
        assert_eq!(
            dollar("(x = ? OR y = ?) AND z = ?"),
            "(x = $1 OR y = $2) AND z = $3"
        );
        assert_eq!(dollar("no placeholders"), "no placeholders");
    }

    #[test]
    fn urls_are_redacted_before_they_are_shown() {
        assert_eq!(
            redact_url("postgres://nird:s3cret@db.example:5432/nird"),
            "postgres://nird:***@db.example:5432/nird"
        );
        assert_eq!(
            redact_url("postgresql://nird@db/nird?password=s3cret&sslmode=disable"),
            "postgresql://nird@db/nird?password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres:///nird?host=/run/postgresql"),
            "postgres:///nird?host=/run/postgresql"
        );
        assert!(is_postgres_url("postgresql://x") && !is_postgres_url("/var/lib/x"));
    }
}
