//! What the dashboard asks of the store: people's accounts and their scope,
//! sessions, failed logins, personal API tokens, and the scoped listings the
//! pages show.
//!
//! **Scope is enforced here.** Every listing or lookup takes a [`Scope`] and
//! turns it into a SQL `WHERE` clause ([`Scope::sql`]), so an object outside
//! a person's territory is never read, counted or exported: a handler cannot
//! forget to filter, it can only get `None` (and answer 404).

use nird_proto::api::{ApplyReport, MachineStatus};
use nird_proto::uai::Uai;
use std::collections::HashMap;

use super::{AuditEntry, NewUser, ReleaseInfo, Role, School, StoreFuture, TokenInfo};

/// A level of the territory tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeLevel {
    /// Académie (e.g. `Lille`).
    Academie,
    /// Département, as written on schools (e.g. `062`).
    Departement,
    /// Commune, written `département/commune` (e.g. `062/Calais`): names of
    /// communes are not unique across départements.
    Commune,
    /// One school, by UAI.
    Uai,
}

impl ScopeLevel {
    /// Storage / CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeLevel::Academie => "academie",
            ScopeLevel::Departement => "departement",
            ScopeLevel::Commune => "commune",
            ScopeLevel::Uai => "uai",
        }
    }

    /// French label.
    pub fn label(self) -> &'static str {
        match self {
            ScopeLevel::Academie => "académie",
            ScopeLevel::Departement => "département",
            ScopeLevel::Commune => "commune",
            ScopeLevel::Uai => "établissement",
        }
    }

    /// Inverse of [`ScopeLevel::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "academie" => Some(ScopeLevel::Academie),
            "departement" => Some(ScopeLevel::Departement),
            "commune" => Some(ScopeLevel::Commune),
            "uai" => Some(ScopeLevel::Uai),
            _ => None,
        }
    }

    /// The SQL expression on `schools s` this level compares with.
    fn column(self) -> &'static str {
        match self {
            ScopeLevel::Academie => "s.academie",
            ScopeLevel::Departement => "s.departement",
            ScopeLevel::Commune => "(s.departement || '/' || s.commune)",
            ScopeLevel::Uai => "s.uai",
        }
    }
}

/// One node of the territory tree; covers every school below it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopeNode {
    /// Its level.
    pub level: ScopeLevel,
    /// Its value at that level (see [`ScopeLevel`]).
    pub value: String,
}

impl ScopeNode {
    /// Parses `level:value` (CLI and forms), e.g. `academie:Lille`,
    /// `commune:062/Calais`, `uai:0620056Z`. French message on error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let shown = |t: &str| crate::echo::quoted(t, 64);
        let (level, value) = text.trim().split_once(':').ok_or_else(|| {
            format!(
                "périmètre « {} » invalide : attendu niveau:valeur \
                 (academie:Lille, departement:062, commune:062/Calais, uai:0620056Z)",
                shown(text)
            )
        })?;
        let level = ScopeLevel::parse(level.trim()).ok_or_else(|| {
            format!(
                "niveau « {} » inconnu : academie, departement, commune ou uai",
                shown(level)
            )
        })?;
        let value = value.trim();
        if value.is_empty() || value.chars().any(char::is_control) || value.len() > 200 {
            return Err(format!("valeur de périmètre « {} » invalide", shown(value)));
        }
        let value = match level {
            ScopeLevel::Uai => Uai::parse(value)
                .map_err(|e| e.to_string())?
                .as_str()
                .to_owned(),
            ScopeLevel::Commune if !value.contains('/') => {
                return Err(format!(
                    "commune « {value} » : écrivez département/commune, par exemple 062/Calais"
                ));
            }
            _ => value.to_owned(),
        };
        Ok(ScopeNode { level, value })
    }

    /// True if this node covers `school`.
    pub fn covers(&self, school: &School) -> bool {
        match self.level {
            ScopeLevel::Academie => school.academie == self.value,
            ScopeLevel::Departement => school.departement == self.value,
            ScopeLevel::Commune => {
                format!("{}/{}", school.departement, school.commune) == self.value
            }
            ScopeLevel::Uai => school.uai.as_str() == self.value,
        }
    }
}

impl std::fmt::Display for ScopeNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.value)
    }
}

/// What a person may see: everything (administrators) or the schools
/// under some nodes of the territory tree. An empty list sees nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every school.
    All,
    /// The schools under these nodes.
    Nodes(Vec<ScopeNode>),
}

impl Scope {
    /// A SQL boolean expression over the table alias `s` (schools) that is
    /// true exactly for the schools in scope, and its parameters.
    pub fn sql(&self) -> (String, Vec<String>) {
        match self {
            // `1 = 1` rather than `1`: a boolean in every SQL dialect.
            Scope::All => ("(1 = 1)".into(), Vec::new()),
            Scope::Nodes(nodes) if nodes.is_empty() => ("(1 = 0)".into(), Vec::new()),
            Scope::Nodes(nodes) => {
                let clauses: Vec<String> = nodes
                    .iter()
                    .map(|n| format!("{} = ?", n.level.column()))
                    .collect();
                (
                    format!("({})", clauses.join(" OR ")),
                    nodes.iter().map(|n| n.value.clone()).collect(),
                )
            }
        }
    }

    /// True if `school` is in scope.
    pub fn covers(&self, school: &School) -> bool {
        match self {
            Scope::All => true,
            Scope::Nodes(nodes) => nodes.iter().any(|n| n.covers(school)),
        }
    }
}

/// A person's account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Login name.
    pub login: String,
    /// Role.
    pub role: Role,
    /// Their territory nodes (ignored for administrators, who see all).
    pub nodes: Vec<ScopeNode>,
    /// Unix time the account was disabled, if it is.
    pub disabled_at: Option<i64>,
    /// Unix creation time.
    pub created_at: i64,
}

impl User {
    /// What this person may see.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Admin => Scope::All,
            Role::School | Role::Auditor => Scope::Nodes(self.nodes.clone()),
        }
    }
}

/// A session as looked up by the hash of its cookie.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The person (disabled accounts are still returned: the caller refuses).
    pub user: User,
    /// The session's CSRF token.
    pub csrf: String,
    /// Unix creation time (absolute expiry counts from it).
    pub created_at: i64,
    /// Unix time of the last request (idle expiry counts from it).
    pub last_seen: i64,
    /// Unix time it was revoked (logout, password change, disabled account).
    pub revoked_at: Option<i64>,
}

/// A new session, stored at a successful login.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 of the cookie value.
    pub id_hash: String,
    /// CSRF token for its forms.
    pub csrf: String,
    /// Client address.
    pub ip: String,
}

/// A personal API token as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiTokenInfo {
    /// Id (to revoke).
    pub id: i64,
    /// The owner's label.
    pub label: String,
    /// Unix creation time.
    pub created_at: i64,
    /// Unix time of the last use.
    pub last_used: Option<i64>,
    /// Unix revocation time.
    pub revoked_at: Option<i64>,
}

/// Machine state as shown on the pages, derived from the status and the
/// last check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    /// Approved and seen in the last 7 days.
    Active,
    /// Waiting for approval.
    Pending,
    /// Approved, last seen 7 to 30 days ago.
    Stale,
    /// Approved, not seen for 30 days (or never).
    Missing,
    /// Retired.
    Retired,
}

impl MachineState {
    /// All states, in display order.
    pub const ALL: [MachineState; 5] = [
        MachineState::Active,
        MachineState::Pending,
        MachineState::Stale,
        MachineState::Missing,
        MachineState::Retired,
    ];

    /// URL / export name.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Active => "active",
            MachineState::Pending => "pending",
            MachineState::Stale => "stale",
            MachineState::Missing => "missing",
            MachineState::Retired => "retired",
        }
    }

    /// Inverse of [`MachineState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// French label.
    pub fn label(self) -> &'static str {
        match self {
            MachineState::Active => "active",
            MachineState::Pending => "en attente d'approbation",
            MachineState::Stale => "non vue depuis 7 jours",
            MachineState::Missing => "disparue (30 jours)",
            MachineState::Retired => "retirée",
        }
    }

    /// The state of a machine with this status and last contact (its last
    /// check-in, else its enrolment).
    pub fn of(status: MachineStatus, last_seen: Option<i64>, now: i64) -> Self {
        match status {
            MachineStatus::Pending => MachineState::Pending,
            MachineStatus::Retired => MachineState::Retired,
            MachineStatus::Active => match last_seen {
                Some(t) if t >= now - STALE_SECS => MachineState::Active,
                Some(t) if t >= now - MISSING_SECS => MachineState::Stale,
                _ => MachineState::Missing,
            },
        }
    }

    /// SQL condition on `machines m` at time `now` (a number the server
    /// computed, not outside input).
    pub(crate) fn sql(self, now: i64) -> String {
        let week = now - STALE_SECS;
        let month = now - MISSING_SECS;
        // The last contact: the last check-in, else the enrolment.
        let seen = "COALESCE(m.last_seen, m.enrolled_at)";
        match self {
            MachineState::Active => format!("(m.status = 'active' AND {seen} >= {week})"),
            MachineState::Pending => "m.status = 'pending'".into(),
            MachineState::Stale => {
                format!("(m.status = 'active' AND {seen} < {week} AND {seen} >= {month})")
            }
            MachineState::Missing => {
                format!("(m.status = 'active' AND {seen} < {month})")
            }
            MachineState::Retired => "m.status = 'retired'".into(),
        }
    }
}

/// 7 days.
pub const STALE_SECS: i64 = 7 * 86_400;
/// 30 days.
pub const MISSING_SECS: i64 = 30 * 86_400;

/// Alert flags precomputed on the machine row (bit values).
pub mod alert {
    /// A disk's SMART health is failing.
    pub const SMART: i64 = 1;
    /// A battery lost more than half its design capacity.
    pub const BATTERY: i64 = 2;
    /// A filesystem is more than 90 % full.
    pub const DISK_FULL: i64 = 4;
    /// The latest release handled was refused.
    pub const REFUSED: i64 = 8;
    /// The agent is older than the newest agent in the fleet (computed at
    /// read time against the fleet, never stored).
    pub const AGENT_BEHIND: i64 = 16;
    /// Every flag, with its URL name and French label.
    pub const ALL: [(i64, &str, &str); 5] = [
        (SMART, "smart", "SMART en échec"),
        (BATTERY, "batterie", "batterie usée (> 50 %)"),
        (DISK_FULL, "disque", "disque plein (> 90 %)"),
        (REFUSED, "refus", "version de profil refusée"),
        (AGENT_BEHIND, "agent", "agent pas à jour"),
    ];
}

/// What the login rate limit looks at ([`WebStore::login_failures`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginFailures {
    /// Failures for the login, from any address.
    pub by_login: u64,
    /// Failures from the address, for any login.
    pub by_address: u64,
    /// Failures for the login from the address.
    pub by_pair: u64,
    /// The login opened a session from the address recently.
    pub known_address: bool,
}

impl LoginFailures {
    /// The query, SQLite placeholders (`?1` login, `?2` address, `?3`
    /// since, `?4` known since); PostgreSQL's is derived from it.
    pub(crate) const SQL: &str = "SELECT \
        (SELECT COUNT(*) FROM login_failures WHERE login = ?1 AND at >= ?3), \
        (SELECT COUNT(*) FROM login_failures WHERE ip = ?2 AND at >= ?3), \
        (SELECT COUNT(*) FROM login_failures WHERE login = ?1 AND ip = ?2 AND at >= ?3), \
        EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id \
                WHERE u.login = ?1 AND s.ip = ?2 AND s.created_at >= ?4)";
}

/// The profiles a machine can be given now: those with a current release
/// (the version the newest catalogue index pins, else the latest) that is
/// not revoked — the rule of the assigned closure (`Store::assigned_closure`).
macro_rules! deliverable_sql {
    () => {
        "SELECT r.name FROM profile_releases r WHERE r.revoked_at IS NULL \
         AND r.version = COALESCE((SELECT e.version FROM index_entries e \
         WHERE e.index_version = (SELECT MAX(ci.version) FROM catalogue_indexes ci) \
         AND e.name = r.name), r.version)"
    };
}

/// Whether a machine has something assigned: a profile assigned to its
/// school that the machine does not exclude, or one it includes itself,
/// with a release it can be given ([`deliverable_sql`]) — the roots of its
/// assigned closure (`Store::assigned_closure`), without walking the
/// includes (found by review: a profile assigned but never published, or
/// whose releases were all revoked, read « en attente » for ever). SQL over
/// `machines m`, the same text for both backends (an integer 0/1 in
/// SQLite, a boolean in PostgreSQL: both read as `bool`). A macro so that
/// column lists can `concat!` it.
macro_rules! has_assigned_sql {
    () => {
        concat!(
            "(EXISTS (SELECT 1 FROM school_assignments a \
             WHERE a.school_id = m.school_id AND a.profile_name IN (",
            $crate::store::web::deliverable_sql!(),
            ") AND NOT EXISTS (SELECT 1 FROM machine_overrides o \
             WHERE o.machine_id = m.id AND o.profile_name = a.profile_name AND o.include = 0)) \
             OR EXISTS (SELECT 1 FROM machine_overrides o WHERE o.machine_id = m.id \
             AND o.include = 1 AND o.profile_name IN (",
            $crate::store::web::deliverable_sql!(),
            ")))"
        )
    };
}
pub(crate) use {deliverable_sql, has_assigned_sql};

/// See [`has_assigned_sql`].
pub(crate) const HAS_ASSIGNED: &str = has_assigned_sql!();

/// [`HAS_ASSIGNED`] for many machines at once: the assignment tables (a
/// few rows per school, and the rare machine exceptions) read once, so that
/// the Accueil's scan over the whole fleet stays one narrow scan of
/// `machines` (the correlated SQL per row tripled its time: 61 → 196 ms
/// for 100,000 machines). `store_suite` checks that both agree.
#[derive(Debug, Default)]
pub(crate) struct Assignments {
    /// School id → profiles assigned to it.
    schools: HashMap<i64, Vec<String>>,
    /// Machine id → its exceptions (profile, include).
    overrides: HashMap<String, Vec<(String, bool)>>,
    /// Profiles with a release machines can be given.
    deliverable: std::collections::HashSet<String>,
}

impl Assignments {
    /// The query of the schools' assignments: (school id, profile).
    pub(crate) const SCHOOLS_SQL: &str = "SELECT school_id, profile_name FROM school_assignments";
    /// The query of the machines' exceptions: (machine id, profile, include 0/1).
    pub(crate) const OVERRIDES_SQL: &str =
        "SELECT machine_id, profile_name, include FROM machine_overrides";
    /// The query of the profiles that can be given ([`deliverable_sql`]).
    pub(crate) const DELIVERABLE_SQL: &str = deliverable_sql!();

    /// Adds a row of [`Self::DELIVERABLE_SQL`].
    pub(crate) fn deliverable(&mut self, profile: String) {
        self.deliverable.insert(profile);
    }

    /// Adds a row of [`Self::SCHOOLS_SQL`].
    pub(crate) fn school(&mut self, school: i64, profile: String) {
        self.schools.entry(school).or_default().push(profile);
    }

    /// Adds a row of [`Self::OVERRIDES_SQL`].
    pub(crate) fn exception(&mut self, machine: String, profile: String, include: i64) {
        self.overrides
            .entry(machine)
            .or_default()
            .push((profile, include != 0));
    }

    /// Whether the machine has something assigned: one of its school's
    /// profiles it does not exclude, or one it includes, that can be given.
    pub(crate) fn has_assigned(&self, school: i64, machine: &str) -> bool {
        let own: &[(String, bool)] = self.overrides.get(machine).map_or(&[], Vec::as_slice);
        let given = |p: &String| self.deliverable.contains(p);
        own.iter().any(|(p, include)| *include && given(p))
            || self.schools.get(&school).is_some_and(|profiles| {
                profiles
                    .iter()
                    .any(|p| given(p) && !own.iter().any(|(n, include)| !include && n == p))
            })
    }
}

/// Profile compliance of a machine: whether it has profiles to apply, then
/// its latest apply report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileState {
    /// The latest release handled is applied.
    Applied,
    /// No final outcome yet (no report, or deferred).
    Pending,
    /// The latest release failed or was refused.
    Failed,
    /// Nothing is assigned to the machine: there is nothing to wait for
    /// (found by review: such machines read « en attente » forever, and a
    /// machine whose profiles were all withdrawn kept its last outcome).
    Unassigned,
}

impl ProfileState {
    /// Every state, in the order the pages list them.
    pub const ALL: [ProfileState; 4] = [
        ProfileState::Applied,
        ProfileState::Pending,
        ProfileState::Failed,
        ProfileState::Unassigned,
    ];

    /// URL / export name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileState::Applied => "applied",
            ProfileState::Pending => "pending",
            ProfileState::Failed => "failed",
            ProfileState::Unassigned => "none",
        }
    }

    /// Inverse of [`ProfileState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// French label.
    pub fn label(self) -> &'static str {
        match self {
            ProfileState::Applied => "appliqué",
            ProfileState::Pending => "en attente",
            ProfileState::Failed => "en échec",
            ProfileState::Unassigned => "aucun profil",
        }
    }

    /// Column heading of the Accueil's « Profils » group.
    pub fn column(self) -> &'static str {
        match self {
            ProfileState::Applied => "appliqués",
            ProfileState::Pending => "en attente",
            ProfileState::Failed => "en échec",
            ProfileState::Unassigned => "aucun profil",
        }
    }

    /// From whether the machine has something assigned ([`HAS_ASSIGNED`])
    /// and its stored last outcome.
    pub fn of(assigned: bool, outcome: Option<&str>) -> Self {
        match outcome {
            _ if !assigned => ProfileState::Unassigned,
            Some("applied") => ProfileState::Applied,
            Some("failed") | Some("refused") => ProfileState::Failed,
            _ => ProfileState::Pending,
        }
    }

    /// Position in [`ProfileState::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The machine-table filter (over `machines m`).
    pub(crate) fn sql(self) -> String {
        let outcome = match self {
            ProfileState::Applied => "m.last_outcome = 'applied'",
            ProfileState::Failed => "m.last_outcome IN ('failed', 'refused')",
            ProfileState::Pending => {
                "(m.last_outcome IS NULL OR m.last_outcome NOT IN ('applied', 'failed', 'refused'))"
            }
            ProfileState::Unassigned => return format!("NOT {HAS_ASSIGNED}"),
        };
        format!("{HAS_ASSIGNED} AND {outcome}")
    }
}

/// Sort keys of the machine table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MachineSort {
    /// Hostname (default).
    #[default]
    Hostname,
    /// School UAI.
    School,
    /// Serial number.
    Serial,
    /// Model.
    Model,
    /// Status.
    Status,
    /// Last check-in.
    LastSeen,
    /// Windows 11 verdict.
    Win11,
}

impl MachineSort {
    /// All keys with their URL names.
    pub const ALL: [(MachineSort, &str); 7] = [
        (MachineSort::Hostname, "nom"),
        (MachineSort::School, "etablissement"),
        (MachineSort::Serial, "serie"),
        (MachineSort::Model, "modele"),
        (MachineSort::Status, "statut"),
        (MachineSort::LastSeen, "vu"),
        (MachineSort::Win11, "win11"),
    ];

    /// URL name.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, n)| *n)
            .unwrap_or("nom")
    }

    /// Inverse of [`MachineSort::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(k, _)| *k)
    }

    pub(crate) fn column(self) -> &'static str {
        match self {
            MachineSort::Hostname => "m.hostname",
            MachineSort::School => "s.uai",
            MachineSort::Serial => "m.serial",
            MachineSort::Model => "m.model",
            MachineSort::Status => "m.status",
            MachineSort::LastSeen => "m.last_seen",
            MachineSort::Win11 => "m.win11",
        }
    }
}

/// Filters, sort and page of the machine table (page, exports, JSON API).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineQuery {
    /// One school only.
    pub school: Option<Uai>,
    /// State.
    pub state: Option<MachineState>,
    /// Windows 11 verdict (`eligible`, `ineligible`, `unknown`).
    pub win11: Option<String>,
    /// Profile compliance.
    pub profile: Option<ProfileState>,
    /// Alert flag (one of [`alert`]).
    pub alert: Option<i64>,
    /// Free text on hostname, serial and model.
    pub text: Option<String>,
    /// Sort key.
    pub sort: MachineSort,
    /// Descending.
    pub desc: bool,
    /// Rows to skip.
    pub offset: u64,
    /// Most rows (`None`: all, for exports).
    pub limit: Option<u64>,
}

/// One row of the machine table.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineRow {
    /// Identifier.
    pub id: String,
    /// School.
    pub school: Uai,
    /// School name.
    pub school_name: String,
    /// Hostname.
    pub hostname: String,
    /// Serial number ('' if unknown).
    pub serial: String,
    /// Vendor and product ('' if unknown).
    pub model: String,
    /// Stored status.
    pub status: MachineStatus,
    /// Derived state.
    pub state: MachineState,
    /// Unix time of the last check-in.
    pub last_seen: Option<i64>,
    /// Unix enrolment time.
    pub enrolled_at: i64,
    /// Windows 11 verdict.
    pub win11: String,
    /// Profile compliance.
    pub profile: ProfileState,
    /// Alert flags ([`alert`]).
    pub alerts: i64,
    /// Agent version.
    pub agent_version: String,
    /// Why the latest refused release was refused.
    pub refused_reason: Option<String>,
}

/// A page of the machine table.
#[derive(Debug, Clone, PartialEq)]
pub struct MachinePage {
    /// The rows.
    pub rows: Vec<MachineRow>,
    /// Rows matching the filters, all pages.
    pub total: u64,
}

/// One school's counters on the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct SchoolOverview {
    /// The school.
    pub school: School,
    /// Machines per state, in [`MachineState::ALL`] order.
    pub states: [u64; 5],
    /// Non-retired machines per profile state, in [`ProfileState::ALL`]
    /// order.
    pub profiles: [u64; 4],
    /// Non-retired machines per alert, in [`alert::ALL`] order.
    pub alerts: [u64; 5],
}

/// The columns of a machine the overview counts.
pub(crate) struct OverviewMachine<'a> {
    /// Stored status.
    pub status: MachineStatus,
    /// Last contact: last check-in, else enrolment.
    pub contact: i64,
    /// Alert flags.
    pub flags: i64,
    /// Whether something is assigned to it ([`HAS_ASSIGNED`]).
    pub assigned: bool,
    /// Last apply outcome.
    pub outcome: Option<&'a str>,
    /// Agent version.
    pub version: &'a str,
}

impl SchoolOverview {
    /// Counts one machine of the school; `newest` is the fleet's newest
    /// agent version. Both backends read the same columns and count with
    /// this.
    pub(crate) fn count(&mut self, m: OverviewMachine<'_>, newest: &str, now: i64) {
        let OverviewMachine {
            status,
            contact,
            flags,
            assigned,
            outcome,
            version,
        } = m;
        let state = MachineState::of(status, Some(contact), now);
        if let Some(i) = MachineState::ALL.iter().position(|s| *s == state) {
            self.states[i] += 1;
        }
        if state == MachineState::Retired {
            return;
        }
        self.profiles[ProfileState::of(assigned, outcome).index()] += 1;
        for (i, (flag, _, _)) in alert::ALL.iter().enumerate() {
            let on = if *flag == alert::AGENT_BEHIND {
                // The same rule as the machine table's filter.
                !version.is_empty() && version != newest
            } else {
                flags & flag != 0
            };
            if on {
                self.alerts[i] += 1;
            }
        }
    }
}

/// Everything the machine page shows.
#[derive(Debug, Clone)]
pub struct MachineDetail {
    /// The table row.
    pub row: MachineRow,
    /// Check-ins recorded.
    pub checkins: u64,
    /// Releases the agent reports applied (JSON text of `ProfileRef`s).
    pub applied: String,
    /// Inventory versions, newest first: (id, Unix time, document).
    /// At most [`HISTORY_SHOWN`].
    pub history: Vec<(i64, i64, String)>,
    /// The latest apply reports, newest first (at most 50).
    pub reports: Vec<ApplyReport>,
    /// Profile overrides: (profile, include).
    pub overrides: Vec<(String, bool)>,
    /// The school's assigned profiles.
    pub assigned: Vec<String>,
}

/// Inventory versions shown on the machine page.
pub const HISTORY_SHOWN: usize = 5;

/// A release on the Profils page.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseOverview {
    /// Name, version, hash, publisher, date.
    pub info: ReleaseInfo,
    /// The detached signature text (key id and trusted comment are read
    /// from it).
    pub minisig: String,
    /// Schools in scope the profile is assigned to.
    pub assigned_to: Vec<Uai>,
    /// Machines in scope whose latest report for this release is `applied`.
    pub applied: u64,
}

/// Filters of the Journal page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Exact actor.
    pub actor: Option<String>,
    /// Action prefix (`login`, `machine.`...).
    pub action: Option<String>,
    /// School (entries naming it, or one of its machines).
    pub school: Option<Uai>,
    /// From this Unix time.
    pub since: Option<i64>,
    /// Before this Unix time.
    pub until: Option<i64>,
    /// Most entries (newest first).
    pub limit: u64,
}

/// The dashboard's storage needs. Part of [`super::Store`].
pub trait WebStore {
    /// A user and their password hash, by login.
    fn user_auth<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Option<(User, String)>>;
    /// Failed logins since `since` for this login, from this address, and
    /// for this login from this address; whether this login opened a
    /// session from this address since `known_since`.
    fn login_failures<'a>(
        &'a self,
        login: &'a str,
        ip: &'a str,
        since: i64,
        known_since: i64,
    ) -> StoreFuture<'a, LoginFailures>;
    /// Records a failed login (and its audit line).
    fn record_login_failure<'a>(&'a self, login: &'a str, ip: &'a str) -> StoreFuture<'a, ()>;
    /// Stores a new session for a successful login (and its audit line).
    fn create_session<'a>(&'a self, user: &'a User, session: NewSession) -> StoreFuture<'a, ()>;
    /// A session by the hash of its cookie.
    fn session<'a>(&'a self, id_hash: &'a str) -> StoreFuture<'a, Option<SessionRecord>>;
    /// Updates a session's last request time.
    fn touch_session<'a>(&'a self, id_hash: &'a str) -> StoreFuture<'a, ()>;
    /// Revokes a session (logout).
    fn revoke_session<'a>(&'a self, actor: &'a str, id_hash: &'a str) -> StoreFuture<'a, ()>;
    /// Sets a password and revokes every session of the user except
    /// `keep` (the session that changed it, if any). Without `keep` (a
    /// reset by an admin), the user's API tokens are revoked too.
    fn set_password<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        password_hash: String,
        keep: Option<&'a str>,
    ) -> StoreFuture<'a, ()>;
    /// Disables (or re-enables) an account; disabling revokes its sessions
    /// and API tokens.
    fn set_user_disabled<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        disabled: bool,
    ) -> StoreFuture<'a, ()>;
    /// Changes a user's role and scope.
    fn set_user_role<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        role: Role,
        nodes: Vec<ScopeNode>,
    ) -> StoreFuture<'a, ()>;
    /// Creates an account with its scope nodes, in one transaction.
    fn add_user_scoped<'a>(
        &'a self,
        actor: &'a str,
        user: NewUser,
        nodes: Vec<ScopeNode>,
    ) -> StoreFuture<'a, ()>;
    /// Every account, by login.
    fn list_users(&self) -> StoreFuture<'_, Vec<User>>;
    /// Stores a personal API token (hash); returns its id.
    fn create_api_token<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        token_hash: String,
        label: String,
    ) -> StoreFuture<'a, i64>;
    /// A user's API tokens.
    fn list_api_tokens<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Vec<ApiTokenInfo>>;
    /// Revokes one of `login`'s API tokens (NotFound if not theirs).
    fn revoke_api_token<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        id: i64,
    ) -> StoreFuture<'a, ()>;
    /// The active user owning a live API token (and marks it used).
    fn api_token_user<'a>(&'a self, token_hash: &'a str) -> StoreFuture<'a, Option<User>>;
    /// Schools in scope, by UAI.
    fn schools_in<'a>(&'a self, scope: &'a Scope) -> StoreFuture<'a, Vec<School>>;
    /// One school, if in scope.
    fn school_in<'a>(&'a self, scope: &'a Scope, uai: &'a Uai) -> StoreFuture<'a, Option<School>>;
    /// Per-school counters of the overview, for the schools in scope.
    fn overview<'a>(&'a self, scope: &'a Scope, now: i64) -> StoreFuture<'a, Vec<SchoolOverview>>;
    /// The machine table, in scope.
    fn machines_in<'a>(
        &'a self,
        scope: &'a Scope,
        query: &'a MachineQuery,
        now: i64,
    ) -> StoreFuture<'a, MachinePage>;
    /// One machine, if in scope.
    fn machine_in<'a>(
        &'a self,
        scope: &'a Scope,
        id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Option<MachineDetail>>;
    /// A school's enrolment tokens, if the school is in scope.
    fn tokens_in<'a>(&'a self, scope: &'a Scope, uai: &'a Uai) -> StoreFuture<'a, Vec<TokenInfo>>;
    /// The profiles assigned to a school.
    fn school_assignments<'a>(&'a self, uai: &'a Uai) -> StoreFuture<'a, Vec<String>>;
    /// Releases with where they are assigned and applied, within scope.
    fn releases_in<'a>(&'a self, scope: &'a Scope) -> StoreFuture<'a, Vec<ReleaseOverview>>;
    /// The audit log, newest first. Out of [`Scope::All`], only entries
    /// naming a school in scope or one of its machines.
    fn audit_in<'a>(
        &'a self,
        scope: &'a Scope,
        query: &'a AuditQuery,
    ) -> StoreFuture<'a, Vec<AuditEntry>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SchoolKind;

    fn school(uai: &str, academie: &str, departement: &str, commune: &str) -> School {
        School {
            uai: Uai::parse(uai).unwrap(),
            name: "x".into(),
            commune: commune.into(),
            departement: departement.into(),
            academie: academie.into(),
            kind: SchoolKind::Ecole,
            require_approval: false,
        }
    }

    #[test]
    fn scope_nodes_parse_and_cover_what_is_below_them() {
        let calais = school("0620056Z", "Lille", "062", "Calais");
        let paris = school("0750001U", "Paris", "075", "Paris");
        for (text, covers_calais) in [
            ("academie:Lille", true),
            ("departement:062", true),
            ("commune:062/Calais", true),
            ("uai:0620056z", true),
            ("commune:075/Calais", false),
            ("academie:Paris", false),
        ] {
            let node = ScopeNode::parse(text).unwrap();
            assert_eq!(node.covers(&calais), covers_calais, "{text}");
        }
        assert!(ScopeNode::parse("commune:Calais").is_err());
        assert!(ScopeNode::parse("region:Hauts-de-France").is_err());
        assert!(ScopeNode::parse("uai:0620056A").is_err());
        assert!(ScopeNode::parse("Lille").is_err());
        let scope = Scope::Nodes(vec![ScopeNode::parse("academie:Lille").unwrap()]);
        assert!(scope.covers(&calais) && !scope.covers(&paris));
        assert!(!Scope::Nodes(vec![]).covers(&calais));
        assert!(Scope::All.covers(&paris));
    }

    #[test]
    fn scope_sql_has_one_parameter_per_node_and_empty_means_nothing() {
        let scope = Scope::Nodes(vec![
            ScopeNode::parse("academie:Lille").unwrap(),
            ScopeNode::parse("commune:062/Calais").unwrap(),
        ]);
        let (sql, params) = scope.sql();
        assert_eq!(sql.matches('?').count(), 2);
        assert_eq!(params, vec!["Lille".to_owned(), "062/Calais".to_owned()]);
        assert_eq!(Scope::Nodes(vec![]).sql().0, "(1 = 0)");
        assert_eq!(Scope::All.sql().0, "(1 = 1)");
    }

    #[test]
    fn machine_state_follows_status_and_last_check_in() {
        let now = 100 * 86_400;
        let active = MachineStatus::Active;
        assert_eq!(
            MachineState::of(active, Some(now - 86_400), now),
            MachineState::Active
        );
        assert_eq!(
            MachineState::of(active, Some(now - 8 * 86_400), now),
            MachineState::Stale
        );
        assert_eq!(
            MachineState::of(active, Some(now - 31 * 86_400), now),
            MachineState::Missing
        );
        assert_eq!(MachineState::of(active, None, now), MachineState::Missing);
        assert_eq!(
            MachineState::of(MachineStatus::Pending, None, now),
            MachineState::Pending
        );
        assert_eq!(
            MachineState::of(MachineStatus::Retired, Some(now), now),
            MachineState::Retired
        );
    }
}
