//! SQLite side of [`WebStore`]: accounts, sessions, API tokens and the
//! scoped listings of the dashboard. Every listing builds its `WHERE` from
//! [`Scope::sql`] over the `schools s` alias.

use nird_proto::uai::Uai;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::{SqliteStore, audit, now, school_id, status_of, stored_uai, to_u64, unique_as_exists};
use crate::store::web::{
    ApiTokenInfo, Assignments, AuditQuery, HISTORY_SHOWN, LoginFailures, MachineDetail,
    MachinePage, MachineQuery, MachineRow, MachineState, NewSession, OverviewMachine, ProfileState,
    ReleaseOverview, SchoolOverview, Scope, ScopeLevel, ScopeNode, SessionRecord, User, WebStore,
    alert,
};
use crate::store::{
    AuditEntry, NewUser, ReleaseInfo, Role, School, SchoolKind, StoreError, StoreFuture, TokenInfo,
};

pub(crate) fn role_of(s: &str) -> Result<Role, StoreError> {
    match s {
        "admin" => Ok(Role::Admin),
        "school" => Ok(Role::School),
        "auditor" => Ok(Role::Auditor),
        other => Err(StoreError::Backend(format!("unknown role {other}"))),
    }
}

/// The scope nodes of a user.
fn nodes_of(conn: &Connection, user_id: i64) -> Result<Vec<ScopeNode>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT level, value FROM user_scopes WHERE user_id = ?1 ORDER BY level, value",
    )?;
    let rows = stmt.query_map([user_id], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
    let mut nodes = Vec::new();
    for row in rows {
        let (level, value) = row?;
        let level = ScopeLevel::parse(&level)
            .ok_or_else(|| StoreError::Backend(format!("unknown scope level {level}")))?;
        nodes.push(ScopeNode { level, value });
    }
    Ok(nodes)
}

pub(crate) const USER_COLUMNS: &str = "u.id, u.login, u.role, u.disabled_at, u.created_at";

fn user_from_row(conn: &Connection, r: &Row<'_>) -> Result<User, StoreError> {
    let id: i64 = r.get(0)?;
    let role: String = r.get(2)?;
    Ok(User {
        id,
        login: r.get(1)?,
        role: role_of(&role)?,
        nodes: nodes_of(conn, id)?,
        disabled_at: r.get(3)?,
        created_at: r.get(4)?,
    })
}

fn user_id(conn: &Connection, login: &str) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT id FROM users WHERE login = ?1")?
        .query_row([login], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("l'utilisateur « {login} »")))
}

fn write_nodes(conn: &Connection, user: i64, nodes: &[ScopeNode]) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM user_scopes WHERE user_id = ?1")?
        .execute([user])?;
    conn.prepare_cached("DELETE FROM user_schools WHERE user_id = ?1")?
        .execute([user])?;
    for n in nodes {
        if n.level == ScopeLevel::Uai {
            // The school must exist: a typo would silently grant nothing.
            let uai = stored_uai(n.value.clone())?;
            school_id(conn, &uai)?;
        }
        conn.prepare_cached(
            "INSERT OR IGNORE INTO user_scopes (user_id, level, value) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![user, n.level.as_str(), n.value])?;
    }
    Ok(())
}

fn school_from_row(r: &Row<'_>, at: usize) -> Result<School, StoreError> {
    let kind: String = r.get(at + 5)?;
    Ok(School {
        uai: stored_uai(r.get(at)?)?,
        name: r.get(at + 1)?,
        commune: r.get(at + 2)?,
        departement: r.get(at + 3)?,
        academie: r.get(at + 4)?,
        kind: SchoolKind::parse(&kind)
            .ok_or_else(|| StoreError::Backend(format!("unknown kind {kind}")))?,
        require_approval: r.get(at + 6)?,
    })
}

pub(crate) const SCHOOL_COLUMNS: &str =
    "s.uai, s.name, s.commune, s.departement, s.academie, s.kind, s.require_approval";

/// Columns of [`MachineRow`], in [`machine_from_row`] order.
pub(crate) const MACHINE_COLUMNS: &str = concat!(
    "m.id, s.uai, s.name, m.hostname, m.serial, m.model, m.status, \
     m.last_seen, m.enrolled_at, m.win11, m.last_outcome, m.alerts, m.agent_version, \
     m.refused_reason, ",
    crate::store::web::has_assigned_sql!()
);

fn machine_from_row(r: &Row<'_>, now: i64, newest_agent: &str) -> Result<MachineRow, StoreError> {
    let status = status_of(&r.get::<_, String>(6)?)?;
    let last_seen: Option<i64> = r.get(7)?;
    let outcome: Option<String> = r.get(10)?;
    let agent_version: String = r.get(12)?;
    let mut alerts: i64 = r.get(11)?;
    if agent_behind(&agent_version, newest_agent) {
        alerts |= alert::AGENT_BEHIND;
    }
    Ok(MachineRow {
        id: r.get(0)?,
        school: stored_uai(r.get(1)?)?,
        school_name: r.get(2)?,
        hostname: r.get(3)?,
        serial: r.get(4)?,
        model: r.get(5)?,
        status,
        // Enrolment is a contact: a machine enrolled today and not yet
        // checked in is not "missing".
        state: MachineState::of(status, last_seen.or(r.get::<_, Option<i64>>(8)?), now),
        last_seen,
        enrolled_at: r.get(8)?,
        win11: r.get(9)?,
        profile: ProfileState::of(r.get(14)?, outcome.as_deref()),
        alerts,
        agent_version,
        refused_reason: r.get(13)?,
    })
}

/// Parses `1.2.3` (anything after `-` or `+` ignored) for comparison.
pub(crate) fn version_key(v: &str) -> Option<Vec<u64>> {
    let core = v.split(['-', '+']).next()?;
    core.split('.').map(|p| p.parse().ok()).collect()
}

/// True if `version` is a parseable version older than `newest`.
pub(crate) fn agent_behind(version: &str, newest: &str) -> bool {
    match (version_key(version), version_key(newest)) {
        (Some(v), Some(n)) => v < n,
        _ => false,
    }
}

/// The newest agent version in the whole fleet (not only the scope: an
/// agent is behind if a newer one runs anywhere). Read from the index
/// alone: a handful of distinct values, whatever the fleet size.
fn newest_agent(conn: &Connection) -> Result<String, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT agent_version FROM machines INDEXED BY machines_by_agent_version \
         WHERE agent_version <> ''",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut best: Option<(Vec<u64>, String)> = None;
    for row in rows {
        let v = row?;
        if let Some(k) = version_key(&v)
            && best.as_ref().is_none_or(|(b, _)| k > *b)
        {
            best = Some((k, v));
        }
    }
    Ok(best.map(|(_, v)| v).unwrap_or_default())
}

/// `WHERE` clause and parameters of a machine query.
pub(crate) fn machine_where(
    scope: &Scope,
    q: &MachineQuery,
    now: i64,
    newest: &str,
) -> (String, Vec<Value>) {
    let (scope_sql, scope_params) = scope.sql();
    let mut clauses = vec![scope_sql];
    let mut params: Vec<Value> = scope_params.into_iter().map(Value::Text).collect();
    if let Some(uai) = &q.school {
        clauses.push("s.uai = ?".into());
        params.push(Value::Text(uai.as_str().to_owned()));
    }
    if let Some(state) = q.state {
        clauses.push(state.sql(now));
    }
    if let Some(w) = &q.win11 {
        clauses.push("m.win11 = ?".into());
        params.push(Value::Text(w.clone()));
    }
    if let Some(p) = q.profile {
        clauses.push(p.sql());
    }
    if let Some(a) = q.alert {
        if a == alert::AGENT_BEHIND {
            // Lexical order is not version order: compare candidates in
            // Rust would need a scan; the fleet's newest version is a
            // single value, so "not equal to it, and not empty" is exact
            // when versions only go up.
            clauses.push("m.agent_version <> '' AND m.agent_version <> ?".into());
            params.push(Value::Text(newest.to_owned()));
        } else {
            clauses.push("(m.alerts & ?) <> 0".into());
            params.push(Value::Integer(a));
        }
    }
    if let Some(text) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let pattern = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        clauses.push(
            "(m.hostname LIKE ? ESCAPE '\\' OR m.serial LIKE ? ESCAPE '\\' \
             OR m.model LIKE ? ESCAPE '\\')"
                .into(),
        );
        for _ in 0..3 {
            params.push(Value::Text(pattern.clone()));
        }
    }
    (clauses.join(" AND "), params)
}

fn machines_query(
    conn: &Connection,
    scope: &Scope,
    q: &MachineQuery,
    now: i64,
) -> Result<MachinePage, StoreError> {
    let newest = newest_agent(conn)?;
    let (where_sql, params) = machine_where(scope, q, now, &newest);
    let total: i64 = conn
        .prepare(&format!(
            "SELECT COUNT(*) FROM machines m JOIN schools s ON s.id = m.school_id WHERE {where_sql}"
        ))?
        .query_row(params_from_iter(params.iter()), |r| r.get(0))?;
    let order = format!(
        "{} {}, m.id",
        q.sort.column(),
        if q.desc { "DESC" } else { "ASC" }
    );
    let limit = q
        .limit
        .map(|l| {
            format!(
                " LIMIT {} OFFSET {}",
                l.min(10_000),
                q.offset.min(i64::MAX as u64)
            )
        })
        .unwrap_or_default();
    let mut stmt = conn.prepare(&format!(
        "SELECT {MACHINE_COLUMNS} FROM machines m JOIN schools s ON s.id = m.school_id \
         WHERE {where_sql} ORDER BY {order}{limit}"
    ))?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(machine_from_row(r, now, &newest)?);
    }
    Ok(MachinePage {
        rows: out,
        total: to_u64(total),
    })
}

impl WebStore for SqliteStore {
    fn user_auth<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Option<(User, String)>> {
        let login = login.to_owned();
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.login = ?1"
            ))?;
            let mut rows = stmt.query([&login])?;
            match rows.next()? {
                Some(r) => Ok(Some((user_from_row(conn, r)?, r.get(5)?))),
                None => Ok(None),
            }
        }))
    }

    fn login_failures<'a>(
        &'a self,
        login: &'a str,
        ip: &'a str,
        since: i64,
        known_since: i64,
    ) -> StoreFuture<'a, LoginFailures> {
        let (login, ip) = (login.to_owned(), ip.to_owned());
        Box::pin(self.read(move |conn| {
            Ok(conn.prepare_cached(LoginFailures::SQL)?.query_row(
                params![login, ip, since, known_since],
                |r| {
                    Ok(LoginFailures {
                        by_login: to_u64(r.get(0)?),
                        by_address: to_u64(r.get(1)?),
                        by_pair: to_u64(r.get(2)?),
                        known_address: r.get(3)?,
                    })
                },
            )?)
        }))
    }

    fn record_login_failure<'a>(&'a self, login: &'a str, ip: &'a str) -> StoreFuture<'a, ()> {
        let (login, ip) = (login.to_owned(), ip.to_owned());
        Box::pin(self.write(move |conn| {
            let at = now();
            conn.prepare_cached("INSERT INTO login_failures (at, login, ip) VALUES (?1, ?2, ?3)")?
                .execute(params![at, login, ip])?;
            // Old failures no longer count: keep the table small.
            conn.prepare_cached("DELETE FROM login_failures WHERE at < ?1")?
                .execute([at - 86_400])?;
            audit(
                conn,
                &login,
                "login.failed",
                serde_json::json!({"login": login, "ip": ip}),
            )
        }))
    }

    fn create_session<'a>(&'a self, user: &'a User, session: NewSession) -> StoreFuture<'a, ()> {
        let (user_id, login) = (user.id, user.login.clone());
        Box::pin(self.write(move |conn| {
            let at = now();
            conn.prepare_cached(
                "INSERT INTO sessions (id_hash, user_id, csrf, created_at, last_seen, ip)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
            )?
            .execute(params![
                session.id_hash,
                user_id,
                session.csrf,
                at,
                session.ip
            ])?;
            audit(conn, &login, "login", serde_json::json!({"ip": session.ip}))
        }))
    }

    fn session<'a>(&'a self, id_hash: &'a str) -> StoreFuture<'a, Option<SessionRecord>> {
        let id_hash = id_hash.to_owned();
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS}, x.csrf, x.created_at, x.last_seen, x.revoked_at
                 FROM sessions x JOIN users u ON u.id = x.user_id WHERE x.id_hash = ?1"
            ))?;
            let mut rows = stmt.query([&id_hash])?;
            match rows.next()? {
                Some(r) => Ok(Some(SessionRecord {
                    user: user_from_row(conn, r)?,
                    csrf: r.get(5)?,
                    created_at: r.get(6)?,
                    last_seen: r.get(7)?,
                    revoked_at: r.get(8)?,
                })),
                None => Ok(None),
            }
        }))
    }

    fn touch_session<'a>(&'a self, id_hash: &'a str) -> StoreFuture<'a, ()> {
        let id_hash = id_hash.to_owned();
        Box::pin(self.write(move |conn| {
            conn.prepare_cached("UPDATE sessions SET last_seen = ?2 WHERE id_hash = ?1")?
                .execute(params![id_hash, now()])?;
            Ok(())
        }))
    }

    fn revoke_session<'a>(&'a self, actor: &'a str, id_hash: &'a str) -> StoreFuture<'a, ()> {
        let (actor, id_hash) = (actor.to_owned(), id_hash.to_owned());
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE sessions SET revoked_at = ?2 WHERE id_hash = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![id_hash, now()])?;
            audit(conn, &actor, "logout", serde_json::json!({}))
        }))
    }

    fn set_password<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        password_hash: String,
        keep: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        let (actor, login) = (actor.to_owned(), login.to_owned());
        // A reset by an admin (no session kept): the account may be in the
        // wrong hands, so its API tokens go too.
        let reset = keep.is_none();
        let keep = keep.map(str::to_owned).unwrap_or_default();
        Box::pin(self.write(move |conn| {
            let id = user_id(conn, &login)?;
            conn.prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
                .execute(params![id, password_hash])?;
            conn.prepare_cached(
                "UPDATE sessions SET revoked_at = ?3
                 WHERE user_id = ?1 AND id_hash <> ?2 AND revoked_at IS NULL",
            )?
            .execute(params![id, keep, now()])?;
            if reset {
                conn.prepare_cached(
                    "UPDATE api_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![id, now()])?;
            }
            audit(
                conn,
                &actor,
                "user.password",
                serde_json::json!({"login": login}),
            )
        }))
    }

    fn set_user_disabled<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        disabled: bool,
    ) -> StoreFuture<'a, ()> {
        let (actor, login) = (actor.to_owned(), login.to_owned());
        Box::pin(self.write(move |conn| {
            let id = user_id(conn, &login)?;
            let at = now();
            if disabled {
                conn.prepare_cached(
                    "UPDATE users SET disabled_at = ?2 WHERE id = ?1 AND disabled_at IS NULL",
                )?
                .execute(params![id, at])?;
                conn.prepare_cached(
                    "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![id, at])?;
                conn.prepare_cached(
                    "UPDATE api_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![id, at])?;
            } else {
                conn.prepare_cached("UPDATE users SET disabled_at = NULL WHERE id = ?1")?
                    .execute([id])?;
            }
            audit(
                conn,
                &actor,
                if disabled { "user.disable" } else { "user.enable" },
                serde_json::json!({"login": login}),
            )
        }))
    }

    fn set_user_role<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        role: Role,
        nodes: Vec<ScopeNode>,
    ) -> StoreFuture<'a, ()> {
        let (actor, login) = (actor.to_owned(), login.to_owned());
        Box::pin(self.write(move |conn| {
            let id = user_id(conn, &login)?;
            conn.prepare_cached("UPDATE users SET role = ?2 WHERE id = ?1")?
                .execute(params![id, role.as_str()])?;
            write_nodes(conn, id, &nodes)?;
            // A narrower scope must not live on in open sessions.
            conn.prepare_cached(
                "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![id, now()])?;
            let scope: Vec<String> = nodes.iter().map(ToString::to_string).collect();
            audit(
                conn,
                &actor,
                "user.role",
                serde_json::json!({"login": login, "role": role.as_str(), "scope": scope}),
            )
        }))
    }

    fn add_user_scoped<'a>(
        &'a self,
        actor: &'a str,
        user: NewUser,
        nodes: Vec<ScopeNode>,
    ) -> StoreFuture<'a, ()> {
        let actor = actor.to_owned();
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO users (login, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![user.login, user.password_hash, user.role.as_str(), now()])
            .map_err(|e| unique_as_exists(e, || format!("l'utilisateur « {} »", user.login)))?;
            let id = conn.last_insert_rowid();
            write_nodes(conn, id, &nodes)?;
            let scope: Vec<String> = nodes.iter().map(ToString::to_string).collect();
            audit(
                conn,
                &actor,
                "user.add",
                serde_json::json!({"login": user.login, "role": user.role.as_str(), "scope": scope}),
            )
        }))
    }

    fn list_users(&self) -> StoreFuture<'_, Vec<User>> {
        Box::pin(self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users u ORDER BY u.login"
            ))?;
            let mut rows = stmt.query([])?;
            let mut users = Vec::new();
            while let Some(r) = rows.next()? {
                users.push(user_from_row(conn, r)?);
            }
            Ok(users)
        }))
    }

    fn create_api_token<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        token_hash: String,
        label: String,
    ) -> StoreFuture<'a, i64> {
        let (actor, login) = (actor.to_owned(), login.to_owned());
        Box::pin(self.write(move |conn| {
            let user = user_id(conn, &login)?;
            conn.prepare_cached(
                "INSERT INTO api_tokens (user_id, token_hash, label, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![user, token_hash, label, now()])?;
            let id = conn.last_insert_rowid();
            audit(
                conn,
                &actor,
                "apitoken.create",
                serde_json::json!({"login": login, "id": id, "label": label}),
            )?;
            Ok(id)
        }))
    }

    fn list_api_tokens<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Vec<ApiTokenInfo>> {
        let login = login.to_owned();
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT t.id, t.label, t.created_at, t.last_used, t.revoked_at
                 FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE u.login = ?1 ORDER BY t.id DESC",
            )?;
            let rows = stmt.query_map([&login], |r| {
                Ok(ApiTokenInfo {
                    id: r.get(0)?,
                    label: r.get(1)?,
                    created_at: r.get(2)?,
                    last_used: r.get(3)?,
                    revoked_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        }))
    }

    fn revoke_api_token<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        id: i64,
    ) -> StoreFuture<'a, ()> {
        let (actor, login) = (actor.to_owned(), login.to_owned());
        Box::pin(self.write(move |conn| {
            let user = user_id(conn, &login)?;
            let n = conn
                .prepare_cached(
                    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?3)
                     WHERE id = ?1 AND user_id = ?2",
                )?
                .execute(params![id, user, now()])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("le jeton d'API n° {id}")));
            }
            audit(
                conn,
                &actor,
                "apitoken.revoke",
                serde_json::json!({"login": login, "id": id}),
            )
        }))
    }

    fn api_token_user<'a>(&'a self, token_hash: &'a str) -> StoreFuture<'a, Option<User>> {
        let token_hash = token_hash.to_owned();
        Box::pin(async move {
            let hash = token_hash.clone();
            let user = self
                .read(move |conn| {
                    let mut stmt = conn.prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
                         WHERE t.token_hash = ?1 AND t.revoked_at IS NULL AND u.disabled_at IS NULL"
                    ))?;
                    let mut rows = stmt.query([&hash])?;
                    match rows.next()? {
                        Some(r) => Ok(Some(user_from_row(conn, r)?)),
                        None => Ok(None),
                    }
                })
                .await?;
            if user.is_some() {
                self.write(move |conn| {
                    conn.prepare_cached(
                        "UPDATE api_tokens SET last_used = ?2 WHERE token_hash = ?1
                         AND (last_used IS NULL OR last_used < ?2 - 60)",
                    )?
                    .execute(params![token_hash, now()])?;
                    Ok(())
                })
                .await?;
            }
            Ok(user)
        })
    }

    fn schools_in<'a>(&'a self, scope: &'a Scope) -> StoreFuture<'a, Vec<School>> {
        let (where_sql, params) = scope.sql();
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {SCHOOL_COLUMNS} FROM schools s WHERE {where_sql} ORDER BY s.uai"
            ))?;
            let mut rows = stmt.query(params_from_iter(params.iter()))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(school_from_row(r, 0)?);
            }
            Ok(out)
        }))
    }

    fn school_in<'a>(&'a self, scope: &'a Scope, uai: &'a Uai) -> StoreFuture<'a, Option<School>> {
        let (where_sql, mut params) = scope.sql();
        params.push(uai.as_str().to_owned());
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {SCHOOL_COLUMNS} FROM schools s WHERE {where_sql} AND s.uai = ?"
            ))?;
            let mut rows = stmt.query(params_from_iter(params.iter()))?;
            match rows.next()? {
                Some(r) => Ok(Some(school_from_row(r, 0)?)),
                None => Ok(None),
            }
        }))
    }

    fn overview<'a>(&'a self, scope: &'a Scope, now: i64) -> StoreFuture<'a, Vec<SchoolOverview>> {
        let (where_sql, params) = scope.sql();
        Box::pin(self.read(move |conn| {
            let newest = newest_agent(conn)?;
            // Schools in scope first (a few thousand at most), then one
            // narrow pass over the machines' precomputed columns, counted
            // here: 13 SQL `SUM(CASE ...)` per row cost more than the scan.
            let mut stmt = conn.prepare(&format!(
                "SELECT {SCHOOL_COLUMNS}, s.id FROM schools s WHERE {where_sql} ORDER BY s.uai"
            ))?;
            let mut rows = stmt.query(params_from_iter(params.iter()))?;
            let mut out = Vec::new();
            let mut slot_of = std::collections::HashMap::new();
            while let Some(r) = rows.next()? {
                let school = school_from_row(r, 0)?;
                slot_of.insert(r.get::<_, i64>(7)?, out.len());
                out.push(SchoolOverview {
                    school,
                    states: [0; 5],
                    profiles: [0; 4],
                    alerts: [0; 5],
                });
            }
            if out.is_empty() {
                return Ok(out);
            }
            let mut assignments = Assignments::default();
            let mut stmt = conn.prepare_cached(Assignments::SCHOOLS_SQL)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                assignments.school(r.get(0)?, r.get(1)?);
            }
            let mut stmt = conn.prepare_cached(Assignments::OVERRIDES_SQL)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                assignments.exception(r.get(0)?, r.get(1)?, r.get(2)?);
            }
            let mut stmt = conn.prepare_cached(Assignments::DELIVERABLE_SQL)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                assignments.deliverable(r.get(0)?);
            }
            let mut stmt = conn.prepare_cached(
                "SELECT school_id, status, COALESCE(last_seen, enrolled_at), alerts, \
                 last_outcome, agent_version, id FROM machines",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let school: i64 = r.get(0)?;
                let Some(&slot) = slot_of.get(&school) else {
                    continue;
                };
                let outcome: Option<String> = r.get(4)?;
                let version: String = r.get(5)?;
                let id = r.get_ref(6)?.as_str().map_err(rusqlite::Error::from)?;
                let machine = OverviewMachine {
                    status: status_of(&r.get::<_, String>(1)?)?,
                    contact: r.get(2)?,
                    flags: r.get(3)?,
                    assigned: assignments.has_assigned(school, id),
                    outcome: outcome.as_deref(),
                    version: &version,
                };
                out[slot].count(machine, &newest, now);
            }
            Ok(out)
        }))
    }

    fn machines_in<'a>(
        &'a self,
        scope: &'a Scope,
        query: &'a MachineQuery,
        now: i64,
    ) -> StoreFuture<'a, MachinePage> {
        let (scope, query) = (scope.clone(), query.clone());
        Box::pin(self.read(move |conn| machines_query(conn, &scope, &query, now)))
    }

    fn machine_in<'a>(
        &'a self,
        scope: &'a Scope,
        id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Option<MachineDetail>> {
        let (where_sql, mut params) = scope.sql();
        params.push(id.to_owned());
        Box::pin(self.read(move |conn| {
            let newest = newest_agent(conn)?;
            let mut stmt = conn.prepare(&format!(
                "SELECT {MACHINE_COLUMNS}, m.checkins, m.applied
                 FROM machines m JOIN schools s ON s.id = m.school_id
                 WHERE {where_sql} AND m.id = ?"
            ))?;
            let mut rows = stmt.query(params_from_iter(params.iter()))?;
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            let row = machine_from_row(r, now, &newest)?;
            let checkins = to_u64(r.get(15)?);
            let applied: String = r.get(16)?;
            drop(rows);
            let mut stmt = conn.prepare_cached(
                "SELECT id, recorded_at, inventory, packed FROM inventory_history
                 WHERE machine_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![row.id, HISTORY_SHOWN as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<Vec<(i64, i64, String, Option<Vec<u8>>)>, _>>()?;
            // Superseded rows are stored compressed (sqlite/inventory.rs).
            let mut history = Vec::with_capacity(rows.len());
            for (id, at, text, packed) in rows {
                history.push((id, at, super::inventory::row_text(text, packed)?));
            }
            let mut stmt = conn.prepare_cached(
                "SELECT report FROM apply_reports WHERE machine_id = ?1 ORDER BY seq DESC LIMIT 50",
            )?;
            let mut reports = Vec::new();
            for text in stmt.query_map([&row.id], |r| r.get::<_, String>(0))? {
                if let Ok(report) = serde_json::from_str(&text?) {
                    reports.push(report);
                }
            }
            let mut stmt = conn.prepare_cached(
                "SELECT profile_name, include FROM machine_overrides WHERE machine_id = ?1
                 ORDER BY profile_name",
            )?;
            let overrides = stmt
                .query_map([&row.id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let assigned = assignments(conn, &row.school)?;
            Ok(Some(MachineDetail {
                row,
                checkins,
                applied,
                history,
                reports,
                overrides,
                assigned,
            }))
        }))
    }

    fn tokens_in<'a>(&'a self, scope: &'a Scope, uai: &'a Uai) -> StoreFuture<'a, Vec<TokenInfo>> {
        let (where_sql, mut params) = scope.sql();
        params.push(uai.as_str().to_owned());
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT t.id, s.uai, t.created_at, t.expires_at, t.max_uses, t.uses, t.revoked_at
                 FROM enrollment_tokens t JOIN schools s ON s.id = t.school_id
                 WHERE {where_sql} AND s.uai = ? ORDER BY t.id DESC"
            ))?;
            let mut rows = stmt.query(params_from_iter(params.iter()))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(TokenInfo {
                    id: r.get(0)?,
                    school: stored_uai(r.get(1)?)?,
                    created_at: r.get(2)?,
                    expires_at: r.get(3)?,
                    max_uses: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                    uses: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                    revoked_at: r.get(6)?,
                });
            }
            Ok(out)
        }))
    }

    fn school_assignments<'a>(&'a self, uai: &'a Uai) -> StoreFuture<'a, Vec<String>> {
        let uai = uai.clone();
        Box::pin(self.read(move |conn| assignments(conn, &uai)))
    }

    fn releases_in<'a>(&'a self, scope: &'a Scope) -> StoreFuture<'a, Vec<ReleaseOverview>> {
        let (where_sql, params) = scope.sql();
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, version, sha256, published_by, published_at, minisig, signed_by,
                        revoked_at
                 FROM profile_releases ORDER BY name, version DESC",
            )?;
            let releases = stmt
                .query_map([], |r| {
                    Ok((
                        ReleaseInfo {
                            name: r.get(0)?,
                            version: to_u64(r.get(1)?),
                            sha256: r.get(2)?,
                            published_by: r.get(3)?,
                            published_at: r.get(4)?,
                            signed_by: r.get(6)?,
                            revoked_at: r.get(7)?,
                        },
                        r.get::<_, String>(5)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut assigned_stmt = conn.prepare(&format!(
                "SELECT s.uai FROM school_assignments a JOIN schools s ON s.id = a.school_id
                 WHERE {where_sql} AND a.profile_name = ? ORDER BY s.uai"
            ))?;
            let mut applied_stmt = conn.prepare(&format!(
                "SELECT COUNT(DISTINCT r.machine_id) FROM apply_reports r
                 JOIN machines m ON m.id = r.machine_id JOIN schools s ON s.id = m.school_id
                 WHERE {where_sql} AND r.profile = ? AND r.version = ? AND r.outcome = 'applied'"
            ))?;
            let mut out = Vec::new();
            for (info, minisig) in releases {
                let mut p: Vec<Value> = params.iter().cloned().map(Value::Text).collect();
                p.push(Value::Text(info.name.clone()));
                let assigned_to = assigned_stmt
                    .query_map(params_from_iter(p.iter()), |r| r.get::<_, String>(0))?
                    .map(|u| stored_uai(u?))
                    .collect::<Result<Vec<_>, _>>()?;
                p.push(Value::Integer(
                    i64::try_from(info.version).unwrap_or(i64::MAX),
                ));
                let applied: i64 =
                    applied_stmt.query_row(params_from_iter(p.iter()), |r| r.get(0))?;
                out.push(ReleaseOverview {
                    info,
                    minisig,
                    assigned_to,
                    applied: to_u64(applied),
                });
            }
            Ok(out)
        }))
    }

    fn audit_in<'a>(
        &'a self,
        scope: &'a Scope,
        query: &'a AuditQuery,
    ) -> StoreFuture<'a, Vec<AuditEntry>> {
        let (scope_sql, scope_params) = scope.sql();
        let q = query.clone();
        let scoped = !matches!(scope, Scope::All);
        Box::pin(self.read(move |conn| {
            let mut clauses: Vec<String> = Vec::new();
            let mut params: Vec<Value> = Vec::new();
            if scoped || q.school.is_some() {
                // Entries that name a school in scope, or one of its machines.
                let mut inner = scope_sql.clone();
                let mut inner_params: Vec<Value> =
                    scope_params.iter().cloned().map(Value::Text).collect();
                if let Some(uai) = &q.school {
                    inner = format!("{inner} AND s.uai = ?");
                    inner_params.push(Value::Text(uai.as_str().to_owned()));
                }
                clauses.push(format!(
                    "(json_extract(a.detail, '$.school') IN (SELECT s.uai FROM schools s WHERE {inner})
                      OR json_extract(a.detail, '$.machine') IN
                         (SELECT m.id FROM machines m JOIN schools s ON s.id = m.school_id WHERE {inner}))"
                ));
                params.extend(inner_params.iter().cloned());
                params.extend(inner_params);
            }
            if let Some(actor) = &q.actor {
                clauses.push("a.actor = ?".into());
                params.push(Value::Text(actor.clone()));
            }
            if let Some(action) = &q.action {
                clauses.push("substr(a.action, 1, length(?)) = ?".into());
                params.push(Value::Text(action.clone()));
                params.push(Value::Text(action.clone()));
            }
            if let Some(since) = q.since {
                clauses.push("a.at >= ?".into());
                params.push(Value::Integer(since));
            }
            if let Some(until) = q.until {
                clauses.push("a.at < ?".into());
                params.push(Value::Integer(until));
            }
            let where_sql = if clauses.is_empty() {
                "1".to_owned()
            } else {
                clauses.join(" AND ")
            };
            let mut stmt = conn.prepare(&format!(
                "SELECT a.at, a.actor, a.action, a.detail FROM audit_log a
                 WHERE json_valid(a.detail) AND {where_sql} ORDER BY a.id DESC LIMIT {}",
                q.limit.clamp(1, 5_000)
            ))?;
            let rows = stmt.query_map(params_from_iter(params.iter()), |r| {
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
}

fn assignments(conn: &Connection, uai: &Uai) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.profile_name FROM school_assignments a JOIN schools s ON s.id = a.school_id
         WHERE s.uai = ?1 ORDER BY a.profile_name",
    )?;
    Ok(stmt
        .query_map([uai.as_str()], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The overview's counters (computed in Rust over one scan) equal the
    /// totals of the machine table filtered the same way (SQL), for every
    /// state, profile state and alert, school by school, and the scope
    /// leaves other schools out.
    #[test]
    fn overview_counters_equal_the_filtered_machine_table() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = SqliteStore::open(&path).unwrap();
        let now = 1_800_000_000i64;
        let uais = ["0620056Z", "0750001U", "0670001M"];
        let conn = Connection::open(&path).unwrap();
        for (n, uai) in uais.iter().enumerate() {
            conn.execute(
                "INSERT INTO schools (uai, name, commune, departement, academie, kind, created_at)
                 VALUES (?1, 'x', 'c', ?2, ?3, 'ecole', 0)",
                params![
                    uai,
                    format!("0{}", 62 + n),
                    ["Lille", "Paris", "Strasbourg"][n]
                ],
            )
            .unwrap();
        }
        // Every combination of status, last contact, alerts, outcome and
        // agent version, spread over the schools.
        let mut i = 0;
        for status in ["pending", "active", "retired"] {
            for seen in [None, Some(1), Some(10), Some(40)] {
                for alerts in [0i64, 1, 2 | 8, 4] {
                    for outcome in [None, Some("applied"), Some("failed"), Some("refused")] {
                        for version in ["", "0.1.0", "0.2.0"] {
                            i += 1;
                            conn.execute(
                                "INSERT INTO machines (id, school_id, hostname, secret_hash,
                                     status, enrolled_at, last_seen, inventory_hash, alerts,
                                     last_outcome, agent_version)
                                 VALUES (?1, ?2, 'h', 'x', ?3, ?4, ?5, 'h', ?6, ?7, ?8)",
                                params![
                                    format!("{i:032x}"),
                                    1 + (i / 3) % 3,
                                    status,
                                    now - 20 * 86_400,
                                    seen.map(|d: i64| now - d * 86_400),
                                    alerts,
                                    outcome,
                                    version
                                ],
                            )
                            .unwrap();
                        }
                    }
                }
            }
        }
        rt.block_on(async {
            let scope = Scope::Nodes(vec![
                ScopeNode::parse("academie:Lille").unwrap(),
                ScopeNode::parse("academie:Strasbourg").unwrap(),
            ]);
            let overview = store.overview(&scope, now).await.unwrap();
            let shown: Vec<&str> = overview.iter().map(|o| o.school.uai.as_str()).collect();
            assert_eq!(shown, ["0620056Z", "0670001M"]);
            for o in &overview {
                let total = |q: MachineQuery| {
                    let store = &store;
                    let scope = &scope;
                    async move {
                        let q = MachineQuery {
                            school: Some(o.school.uai.clone()),
                            limit: Some(0),
                            ..q
                        };
                        store.machines_in(scope, &q, now).await.unwrap().total
                    }
                };
                for (k, state) in MachineState::ALL.into_iter().enumerate() {
                    let q = MachineQuery {
                        state: Some(state),
                        ..Default::default()
                    };
                    assert_eq!(o.states[k], total(q).await, "{state:?}");
                }
                let live: u64 = o.states.iter().sum::<u64>() - o.states[4];
                assert_eq!(o.profiles.iter().sum::<u64>(), live);
                for (k, (flag, _, _)) in alert::ALL.into_iter().enumerate() {
                    // The machine table's alert filter counts retired
                    // machines too; the overview only live ones.
                    let mut with = 0;
                    for state in MachineState::ALL {
                        if state == MachineState::Retired {
                            continue;
                        }
                        let q = MachineQuery {
                            alert: Some(flag),
                            state: Some(state),
                            ..Default::default()
                        };
                        with += total(q).await;
                    }
                    assert_eq!(o.alerts[k], with, "alert {flag}");
                    assert!(with > 0, "alert {flag} untested");
                }
            }
        });
    }
}
