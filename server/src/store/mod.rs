//! Where the server keeps its data: the [`Store`] interface and its two
//! implementations, SQLite ([`sqlite`], the embedded default) and
//! PostgreSQL ([`pg`], for several server processes on one database);
//! [`open`] picks one, [`copy`] moves a deployment from the first to the
//! second.
//!
//! Handlers and the admin CLI only see [`Store`]. Every method is one
//! atomic unit: it fully happens or changes nothing, and a write method
//! returns only once its change is durable on disk.
//!
//! Who gets what: a machine's **assigned closure** ([`Store::assigned_closure`],
//! one query shared by the check-in reply and the download checks) is the
//! only set of releases it may download, and a blob is served only when a
//! release of that closure pins it; anything else answers exactly like an
//! unknown release or blob. Pending machines have an empty closure.
//!
//! Budgets per machine: a machine keeps at most
//! [`Checkin::max_inventory_changes_per_day`] inventory history rows per UTC
//! day (past it the day's newest row is replaced), and
//! [`Store::prune_history`] applies the retention policy (old inventory
//! rows except each machine's latest, old apply reports; never the audit log).

pub mod audit;
pub mod copy;
pub mod list_delta;
mod migrations;
pub mod pg;
pub mod sqlite;
pub mod web;

use std::future::Future;
use std::pin::Pin;

use nird_proto::api::{ApplyReport, MachineStatus, ProfileRef};
use nird_proto::hash::CanonicalObject;
use nird_proto::uai::Uai;

pub use pg::PgStore;
pub use sqlite::SqliteStore;

/// Opens the store a command works on: the PostgreSQL database at
/// `database` (`postgres://…`) when given, else the SQLite file `sqlite`.
pub async fn open(
    sqlite: &std::path::Path,
    database: Option<&str>,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match database {
        Some(url) if pg::is_postgres_url(url) => {
            Ok(std::sync::Arc::new(PgStore::connect(url).await?))
        }
        Some(other) => Err(StoreError::Backend(format!(
            "« {} » n'est pas une adresse PostgreSQL (postgres://…)",
            pg::redact_url(other)
        ))),
        None => Ok(std::sync::Arc::new(SqliteStore::open(sqlite)?)),
    }
}

/// The future every [`Store`] method returns (boxed so that the trait stays
/// object-safe: handlers hold an `Arc<dyn Store>`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a storage operation did not happen. Messages are French: the admin
/// CLI prints them as they are.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The thing named does not exist.
    #[error("{0} est introuvable")]
    NotFound(String),
    /// The thing already exists (unique key).
    #[error("{0} existe déjà")]
    AlreadyExists(String),
    /// The request contradicts the stored state (e.g. a rolled-back version).
    #[error("{0}")]
    Conflict(String),
    /// The enrolment token cannot be used, and why.
    #[error("jeton d'inscription refusé : {0}")]
    Token(TokenProblem),
    /// Unknown machine or wrong secret.
    #[error("identifiants de machine invalides")]
    BadCredential,
    /// The machine was retired: it may not talk to the server any more.
    #[error("cette machine a été retirée de la flotte")]
    Retired,
    /// The database itself failed (disk full, corruption, I/O error).
    #[error("erreur de la base de données : {0}")]
    Backend(String),
    /// The store is closed (the server is shutting down).
    #[error("la base de données est fermée")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Why an enrolment token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// No such token.
    Unknown,
    /// Its expiry date has passed.
    Expired,
    /// It was used as many times as allowed.
    Exhausted,
    /// An administrator revoked it.
    Revoked,
}

impl std::fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenProblem::Unknown => "jeton inconnu",
            TokenProblem::Expired => "jeton expiré",
            TokenProblem::Exhausted => "jeton épuisé (nombre d'utilisations atteint)",
            TokenProblem::Revoked => "jeton révoqué",
        })
    }
}

/// The kind of school, which decides the default distribution (PrimTux for
/// écoles, Linux NIRD for collèges and lycées).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchoolKind {
    /// Primary school.
    Ecole,
    /// Lower secondary school.
    College,
    /// Upper secondary school.
    Lycee,
}

impl SchoolKind {
    /// Storage / CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            SchoolKind::Ecole => "ecole",
            SchoolKind::College => "college",
            SchoolKind::Lycee => "lycee",
        }
    }

    /// The French word, e.g. « collège ».
    pub fn label(self) -> &'static str {
        match self {
            SchoolKind::Ecole => "école",
            SchoolKind::College => "collège",
            SchoolKind::Lycee => "lycée",
        }
    }

    /// Parses a CLI or stored name (accents accepted).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_lowercase().as_str() {
            "ecole" | "école" => Some(SchoolKind::Ecole),
            "college" | "collège" => Some(SchoolKind::College),
            "lycee" | "lycée" => Some(SchoolKind::Lycee),
            _ => None,
        }
    }
}

/// A school, identified by its UAI code.
#[derive(Debug, Clone, PartialEq)]
pub struct School {
    /// National identifier, validated.
    pub uai: Uai,
    /// Display name.
    pub name: String,
    /// Town.
    pub commune: String,
    /// Département (name or number, as the operator writes it).
    pub departement: String,
    /// Académie.
    pub academie: String,
    /// École, collège or lycée.
    pub kind: SchoolKind,
    /// True if machines enrolled here wait for approval before getting
    /// profiles.
    pub require_approval: bool,
}

/// A new enrolment token, as stored (the clear token is never stored).
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The school machines enrolled with it join.
    pub school: Uai,
    /// SHA-256 of the clear token.
    pub token_hash: String,
    /// Unix time after which it is refused, if any.
    pub expires_at: Option<i64>,
    /// How many enrolments it allows.
    pub max_uses: u32,
}

/// An enrolment token as listed for administrators.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    /// Database identifier (used to revoke).
    pub id: i64,
    /// School.
    pub school: Uai,
    /// Unix creation time.
    pub created_at: i64,
    /// Unix expiry time, if any.
    pub expires_at: Option<i64>,
    /// Allowed uses.
    pub max_uses: u32,
    /// Uses so far.
    pub uses: u32,
    /// Unix revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

/// Everything `enroll` stores about a new machine.
#[derive(Debug, Clone)]
pub struct NewMachine {
    /// SHA-256 of the enrolment token presented.
    pub token_hash: String,
    /// Fresh machine identifier.
    pub machine_id: String,
    /// SHA-256 of the fresh machine secret.
    pub secret_hash: String,
    /// Hostname reported by the agent.
    pub hostname: String,
    /// The inventory document, canonical, its members found.
    pub inventory: CanonicalObject,
    /// Its content hash.
    pub inventory_hash: String,
}

/// What `enroll` answers: the new machine's status and its school.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// `pending` or `active`.
    pub status: MachineStatus,
    /// The school the token belongs to.
    pub school: nird_proto::api::EnrolledSchool,
}
/// Default of [`Checkin::max_inventory_changes_per_day`].
pub const DEFAULT_INVENTORY_CHANGES_PER_DAY: u32 = 24;

/// Default history retention, in days (see [`Store::prune_history`]).
pub const DEFAULT_HISTORY_RETENTION_DAYS: u32 = 365;

/// One check-in, as the store records it.
#[derive(Debug, Clone)]
pub struct Checkin {
    /// Machine identifier from the credential.
    pub machine_id: String,
    /// SHA-256 of the secret from the credential.
    pub secret_hash: String,
    /// Hash of the machine's current inventory.
    pub inventory_hash: String,
    /// The inventory (canonical, its members found), when the agent sent
    /// it; its hash was checked against `inventory_hash` already.
    pub inventory: Option<CanonicalObject>,
    /// Profile releases applied on the machine.
    pub applied: Vec<ProfileRef>,
    /// Apply reports to store (idempotently by seq).
    pub reports: Vec<ApplyReport>,
    /// The agent's trust report (JSON text), when it sent one.
    pub trust: Option<String>,
    /// Most inventory changes kept per machine and UTC day: past it, the
    /// newest history row of the day is replaced instead of a row appended.
    pub max_inventory_changes_per_day: u32,
}

/// What the store answers to a check-in.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckinOutcome {
    /// The machine's status.
    pub status: MachineStatus,
    /// True if the stored inventory hash differs and no inventory came.
    pub send_inventory: bool,
    /// Highest report seq stored for the machine.
    pub acked_seq: u64,
    /// The machine's assigned closure (see [`Store::assigned_closure`]).
    pub assigned: Vec<ProfileRef>,
    /// Newest keyring version published (read in the check-in's own
    /// transaction: no second round trip per check-in).
    pub keyring_version: Option<u64>,
    /// Newest catalogue index version published.
    pub index_version: Option<u64>,
}

/// A machine as listed for administrators.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineSummary {
    /// Identifier.
    pub id: String,
    /// School UAI.
    pub school: Uai,
    /// Hostname.
    pub hostname: String,
    /// Status.
    pub status: MachineStatus,
    /// Unix time of the last check-in, if any.
    pub last_seen: Option<i64>,
    /// Number of check-ins recorded.
    pub checkins: u64,
    /// Hash of the latest inventory.
    pub inventory_hash: String,
    /// Highest apply report seq stored.
    pub acked_seq: u64,
}

/// A signed profile release to publish.
#[derive(Debug, Clone)]
pub struct NewRelease {
    /// Profile name (from the signed file).
    pub name: String,
    /// Version (from the signed file).
    pub version: u64,
    /// The exact signed bytes.
    pub bytes: Vec<u8>,
    /// The detached minisign signature, as text.
    pub minisig: String,
    /// Files the profile pins: (sha256, bytes), already checked.
    pub blobs: Vec<(String, Vec<u8>)>,
    /// Names of the profiles this release includes: machines assigned this
    /// profile are assigned those too, so the agent can resolve it.
    pub includes: Vec<String>,
    /// Key id of the keyring key that signed it.
    pub signed_by: String,
}

/// A keyring to store: already verified against the current one.
#[derive(Debug, Clone)]
pub struct NewKeyring {
    /// Its version (the next one).
    pub version: u64,
    /// The exact signed document.
    pub bytes: Vec<u8>,
    /// Its signature bundle.
    pub signatures: String,
    /// Ids of its keys.
    pub key_ids: Vec<String>,
    /// Last valid day, `YYYY-MM-DD`.
    pub expires: String,
    /// Releases no key of this keyring signs any more: stop serving them.
    pub revoke: Vec<ProfileRef>,
}

/// A stored keyring or index: the signed bytes and their signature(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDocument {
    /// Version.
    pub version: u64,
    /// The exact signed bytes.
    pub bytes: Vec<u8>,
    /// The minisign signature text (a bundle for keyrings).
    pub signature: String,
    /// Last valid day, `YYYY-MM-DD`.
    pub expires: String,
    /// Unix publication time.
    pub published_at: i64,
}

/// A catalogue index to store: already verified.
#[derive(Debug, Clone)]
pub struct NewIndex {
    /// Its version.
    pub version: u64,
    /// The exact signed document.
    pub bytes: Vec<u8>,
    /// Its signature.
    pub signature: String,
    /// Last valid day, `YYYY-MM-DD`.
    pub expires: String,
    /// (name, version, sha256) of each current release; each must be
    /// published, with those bytes, and not revoked.
    pub entries: Vec<(String, u64, String)>,
}

/// What `publish_release` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Stored as a new release.
    Published,
    /// The same name, version and bytes were already published: nothing
    /// changed.
    AlreadyPublished,
}

/// A release as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The exact signed bytes.
    pub bytes: Vec<u8>,
    /// The detached signature text.
    pub minisig: String,
}

/// A release as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// SHA-256 of the bytes.
    pub sha256: String,
    /// Who published it.
    pub published_by: String,
    /// Unix publication time.
    pub published_at: i64,
    /// Key id that signed it (absent for releases published before keyrings).
    pub signed_by: Option<String>,
    /// Unix time a keyring revoked its key: no longer served.
    pub revoked_at: Option<i64>,
}

/// A published release as kept for re-verification when keys change.
#[derive(Debug, Clone)]
pub struct StoredRelease {
    /// Name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// The exact signed bytes.
    pub bytes: Vec<u8>,
    /// Its signature.
    pub minisig: String,
}

/// What [`Store::prune_history`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Inventory history rows deleted.
    pub inventory_rows: u64,
    /// Apply reports deleted.
    pub reports: u64,
}

/// A person's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// IT staff of some schools.
    School,
    /// Read-only, scoped to a territory.
    Auditor,
}

impl Role {
    /// Storage / CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::School => "school",
            Role::Auditor => "auditor",
        }
    }
}

/// A new user account.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name.
    pub login: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Schools a `school` user manages.
    pub schools: Vec<Uai>,
    /// Territory an auditor sees (académie, département...).
    pub territory: Option<String>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Unix time.
    pub at: i64,
    /// Who did it (`cli:<user>` or a login).
    pub actor: String,
    /// What kind of action (`school.add`, `token.create`...).
    pub action: String,
    /// Details (JSON text).
    pub detail: String,
}

/// A machine's credential, as checked on every authenticated agent call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineAuth {
    /// Its status (never `Retired`: that is an error).
    pub status: MachineStatus,
}

/// The storage interface. Admin methods take the acting person (`actor`)
/// and append to the audit log in the same transaction as their change.
pub trait Store: web::WebStore + audit::AuditStore + Send + Sync + 'static {
    /// Adds a school.
    fn add_school<'a>(&'a self, actor: &'a str, school: School) -> StoreFuture<'a, ()>;
    /// All schools, by UAI.
    fn list_schools(&self) -> StoreFuture<'_, Vec<School>>;
    /// Stores a new enrolment token; returns its id.
    fn create_token<'a>(&'a self, actor: &'a str, token: NewToken) -> StoreFuture<'a, i64>;
    /// Enrolment tokens, newest first.
    fn list_tokens(&self) -> StoreFuture<'_, Vec<TokenInfo>>;
    /// Revokes a token by id.
    fn revoke_token<'a>(&'a self, actor: &'a str, id: i64) -> StoreFuture<'a, ()>;
    /// Consumes one use of a token and creates the machine, atomically.
    fn enroll(&self, machine: NewMachine) -> StoreFuture<'_, Enrolment>;
    /// Checks a machine credential (401 / 403 errors).
    fn authenticate<'a>(
        &'a self,
        machine_id: &'a str,
        secret_hash: &'a str,
    ) -> StoreFuture<'a, MachineAuth>;
    /// Records a check-in (last seen, inventory, reports) and answers it.
    fn checkin(&self, checkin: Checkin) -> StoreFuture<'_, CheckinOutcome>;
    /// Machines, optionally of one school.
    fn list_machines<'a>(&'a self, school: Option<&'a Uai>)
    -> StoreFuture<'a, Vec<MachineSummary>>;
    /// Changes a machine's status (approve: active, retire: retired).
    fn set_machine_status<'a>(
        &'a self,
        actor: &'a str,
        machine_id: &'a str,
        status: MachineStatus,
    ) -> StoreFuture<'a, ()>;
    /// Number of machines per status.
    fn count_machines(&self) -> StoreFuture<'_, Vec<(MachineStatus, u64)>>;
    /// Highest published version of a profile, if any.
    fn latest_version<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<u64>>;
    /// Publishes a release with its blobs (refuses versions not above the
    /// latest, except the identical release).
    fn publish_release<'a>(
        &'a self,
        actor: &'a str,
        release: NewRelease,
    ) -> StoreFuture<'a, PublishOutcome>;
    /// Published releases, by name then version.
    fn list_releases(&self) -> StoreFuture<'_, Vec<ReleaseInfo>>;
    /// One release's bytes and signature.
    fn release<'a>(&'a self, name: &'a str, version: u64) -> StoreFuture<'a, Option<Release>>;
    /// A pinned file's bytes by sha256.
    fn blob<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// A pinned file's size, without reading it.
    fn blob_size<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, Option<u64>>;
    /// Replaces the profiles assigned to a school.
    fn assign_school<'a>(
        &'a self,
        actor: &'a str,
        school: &'a Uai,
        profiles: Vec<String>,
    ) -> StoreFuture<'a, ()>;
    /// Adds (`include = true`) or excludes a profile for one machine, on
    /// top of its school's assignment.
    fn override_machine<'a>(
        &'a self,
        actor: &'a str,
        machine_id: &'a str,
        profile: &'a str,
        include: bool,
    ) -> StoreFuture<'a, ()>;
    /// Creates a user account.
    fn add_user<'a>(&'a self, actor: &'a str, user: NewUser) -> StoreFuture<'a, ()>;
    /// True if a user with this login exists.
    fn user_exists<'a>(&'a self, login: &'a str) -> StoreFuture<'a, bool>;
    /// The argon2 hash of a user's password, if the user exists.
    fn password_hash<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Option<String>>;
    /// Stored apply reports of a machine, by seq.
    fn reports<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Vec<ApplyReport>>;
    /// The audit log, oldest first.
    fn audit_log(&self) -> StoreFuture<'_, Vec<AuditEntry>>;
    /// A machine's latest inventory (canonical JSON text), if it exists.
    fn latest_inventory<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Option<String>>;
    /// A machine's latest inventory as stored: its package list, when it
    /// holds one, replaced by `{"part": HASH}`
    /// ([`sqlite::inventory::software_reference`] reads it); the pages that
    /// need the list only read it by hash ([`Store::software_list`]), once
    /// for all the machines that share it.
    fn latest_inventory_core<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Option<String>>;
    /// Package list `hash`: the canonical text of an inventory's `software`
    /// member (`{"value": …}`), if stored.
    fn software_list<'a>(&'a self, hash: &'a str) -> StoreFuture<'a, Option<String>>;
    /// Number of inventory versions recorded for a machine.
    fn inventory_history_len<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, u64>;
    /// Stores a verified keyring (its version must be the next one) and
    /// marks the releases it revokes, in one transaction.
    fn publish_keyring<'a>(&'a self, actor: &'a str, keyring: NewKeyring) -> StoreFuture<'a, ()>;
    /// The newest keyring, if any.
    fn latest_keyring(&self) -> StoreFuture<'_, Option<SignedDocument>>;
    /// Keyring `version`.
    fn keyring(&self, version: u64) -> StoreFuture<'_, Option<SignedDocument>>;
    /// Stores a verified catalogue index (version above the newest; every
    /// entry published with its bytes and not revoked), in one transaction.
    fn publish_index<'a>(&'a self, actor: &'a str, index: NewIndex) -> StoreFuture<'a, ()>;
    /// Catalogue index `version` (`None` for the newest).
    fn catalogue_index(&self, version: Option<u64>) -> StoreFuture<'_, Option<SignedDocument>>;
    /// Every published release that is not revoked, with its bytes.
    fn live_releases(&self) -> StoreFuture<'_, Vec<StoredRelease>>;
    /// The trust report each machine sent last (machine id → JSON text).
    fn trust_reports(&self) -> StoreFuture<'_, Vec<(String, String)>>;
    /// The releases a machine is assigned now, and must be able to
    /// download: the current release (pinned by the newest catalogue index,
    /// else the latest not revoked) of each profile assigned to its school
    /// and its own inclusions (minus its exclusions), plus, transitively,
    /// every profile those releases include. Empty unless the machine is
    /// active. This is the one definition of "assigned": the check-in's
    /// `assigned` list and the download checks both use it.
    fn assigned_closure<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Vec<ProfileRef>>;
    /// A release's bytes and signature, for a machine, only if it is in the
    /// machine's assigned closure (`None` otherwise, exactly as for an
    /// unknown release). Checks the credential first (401 / 403 errors).
    fn assigned_release<'a>(
        &'a self,
        machine_id: &'a str,
        secret_hash: &'a str,
        name: &'a str,
        version: u64,
    ) -> StoreFuture<'a, Option<Release>>;
    /// A pinned file's size, for a machine, only if a release of its
    /// assigned closure pins it (`None` otherwise, as for an unknown blob).
    /// Checks the credential first (401 / 403 errors).
    fn assigned_blob_size<'a>(
        &'a self,
        machine_id: &'a str,
        secret_hash: &'a str,
        sha256: &'a str,
    ) -> StoreFuture<'a, Option<u64>>;
    /// Up to `count` consecutive chunks of `chunk` bytes of a pinned file,
    /// from `offset` (the last one shorter at the file's end, none past
    /// it), read without loading the rest of the file: downloads are
    /// streamed chunk by chunk. `None` if there is no such file. Each call
    /// finds its offset from the start of the file (SQLite walks the
    /// overflow pages), so callers read several chunks per call.
    fn blob_chunks<'a>(
        &'a self,
        sha256: &'a str,
        offset: u64,
        chunk: usize,
        count: usize,
    ) -> StoreFuture<'a, Option<Vec<Vec<u8>>>>;
    /// Retention: deletes inventory history rows recorded before `before`
    /// (Unix time) except each machine's latest inventory, and apply
    /// reports received before `before`. The audit log is never pruned.
    /// Works in small batches so check-ins keep flowing meanwhile.
    fn prune_history(&self, before: i64) -> StoreFuture<'_, PruneOutcome>;
    /// Flushes pending writes and closes the database. Later calls fail with
    /// [`StoreError::Closed`].
    fn close(&self) -> StoreFuture<'_, ()>;
    /// Write operations waiting to be committed (a load signal).
    fn pending_writes(&self) -> usize;
    /// (transactions committed, writes they carried) since opening: their
    /// ratio is the group-commit batch size.
    fn commit_stats(&self) -> (u64, u64);
}
