//! PostgreSQL side of [`WebStore`]: accounts, sessions, API tokens and the
//! scoped listings of the dashboard. The listings' SQL (scope clauses,
//! machine filters, columns) is SQLite's, placeholders renumbered by
//! [`dollar`](super::dollar); what differs is spelled here (JSON access in
//! the journal, no `INDEXED BY`).

use deadpool_postgres::GenericClient;
use nird_proto::uai::Uai;
use tokio_postgres::Row;

use super::{
    Params, PgStore, audit, audit_entry, exec, now, query, row, rows, school_from_row, status_of,
    stored_uai, to_u64, token_from_row, unique_as_exists,
};
use crate::store::sqlite::web::{
    MACHINE_COLUMNS, SCHOOL_COLUMNS, USER_COLUMNS, agent_behind, machine_where, role_of,
    version_key,
};
use crate::store::web::{
    ApiTokenInfo, Assignments, AuditQuery, HISTORY_SHOWN, LoginFailures, MachineDetail,
    MachinePage, MachineQuery, MachineRow, MachineState, NewSession, OverviewMachine, ProfileState,
    ReleaseOverview, SchoolOverview, Scope, ScopeLevel, ScopeNode, SessionRecord, User, WebStore,
    alert,
};
use crate::store::{
    AuditEntry, NewUser, ReleaseInfo, Role, School, StoreError, StoreFuture, TokenInfo,
};

/// The scope nodes of a user.
async fn nodes_of<C: GenericClient>(c: &C, user_id: i64) -> Result<Vec<ScopeNode>, StoreError> {
    rows(
        c,
        "SELECT level, value FROM user_scopes WHERE user_id = $1 ORDER BY level, value",
        &[&user_id],
    )
    .await?
    .iter()
    .map(|r| {
        let level: String = r.try_get(0)?;
        let level = ScopeLevel::parse(&level)
            .ok_or_else(|| StoreError::Backend(format!("unknown scope level {level}")))?;
        Ok(ScopeNode {
            level,
            value: r.try_get(1)?,
        })
    })
    .collect()
}

/// A user from a row of [`USER_COLUMNS`].
async fn user_from_row<C: GenericClient>(c: &C, r: &Row) -> Result<User, StoreError> {
    let id: i64 = r.try_get(0)?;
    Ok(User {
        id,
        login: r.try_get(1)?,
        role: role_of(r.try_get(2)?)?,
        nodes: nodes_of(c, id).await?,
        disabled_at: r.try_get(3)?,
        created_at: r.try_get(4)?,
    })
}

async fn user_id<C: GenericClient>(c: &C, login: &str) -> Result<i64, StoreError> {
    row(c, "SELECT id FROM users WHERE login = $1", &[&login])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("l'utilisateur « {login} »")))
}

async fn write_nodes<C: GenericClient>(
    c: &C,
    user: i64,
    nodes: &[ScopeNode],
) -> Result<(), StoreError> {
    exec(c, "DELETE FROM user_scopes WHERE user_id = $1", &[&user]).await?;
    exec(c, "DELETE FROM user_schools WHERE user_id = $1", &[&user]).await?;
    for n in nodes {
        if n.level == ScopeLevel::Uai {
            // The school must exist: a typo would silently grant nothing.
            let uai = stored_uai(n.value.clone())?;
            super::school_id(c, &uai).await?;
        }
        exec(
            c,
            "INSERT INTO user_scopes (user_id, level, value) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&user, &n.level.as_str(), &n.value],
        )
        .await?;
    }
    Ok(())
}

fn machine_from_row(r: &Row, now: i64, newest_agent: &str) -> Result<MachineRow, StoreError> {
    let status = status_of(r.try_get(6)?)?;
    let last_seen: Option<i64> = r.try_get(7)?;
    let enrolled_at: i64 = r.try_get(8)?;
    let outcome: Option<String> = r.try_get(10)?;
    let agent_version: String = r.try_get(12)?;
    let mut alerts: i64 = r.try_get(11)?;
    if agent_behind(&agent_version, newest_agent) {
        alerts |= alert::AGENT_BEHIND;
    }
    Ok(MachineRow {
        id: r.try_get(0)?,
        school: stored_uai(r.try_get(1)?)?,
        school_name: r.try_get(2)?,
        hostname: r.try_get(3)?,
        serial: r.try_get(4)?,
        model: r.try_get(5)?,
        status,
        state: MachineState::of(status, last_seen.or(Some(enrolled_at)), now),
        last_seen,
        enrolled_at,
        win11: r.try_get(9)?,
        profile: ProfileState::of(r.try_get(14)?, outcome.as_deref()),
        alerts,
        agent_version,
        refused_reason: r.try_get(13)?,
    })
}

/// The newest agent version in the whole fleet (a handful of distinct
/// values, read from the index).
async fn newest_agent<C: GenericClient>(c: &C) -> Result<String, StoreError> {
    let mut best: Option<(Vec<u64>, String)> = None;
    for r in rows(
        c,
        "SELECT DISTINCT agent_version FROM machines WHERE agent_version <> ''",
        &[],
    )
    .await?
    {
        let v: String = r.try_get(0)?;
        if let Some(k) = version_key(&v)
            && best.as_ref().is_none_or(|(b, _)| k > *b)
        {
            best = Some((k, v));
        }
    }
    Ok(best.map(|(_, v)| v).unwrap_or_default())
}

/// SQLite's values as PostgreSQL parameters.
fn params_of(values: Vec<rusqlite::types::Value>) -> Result<Params, StoreError> {
    let mut params = Params::default();
    for v in values {
        match v {
            rusqlite::types::Value::Text(t) => params.push(t),
            rusqlite::types::Value::Integer(i) => params.push(i),
            other => {
                return Err(StoreError::Backend(format!(
                    "unexpected parameter {other:?}"
                )));
            }
        }
    }
    Ok(params)
}

async fn machines_query<C: GenericClient>(
    c: &C,
    scope: &Scope,
    q: &MachineQuery,
    now: i64,
) -> Result<MachinePage, StoreError> {
    let newest = newest_agent(c).await?;
    let (where_sql, values) = machine_where(scope, q, now, &newest);
    let params = params_of(values)?;
    let total: i64 = query(
        c,
        &format!(
            "SELECT COUNT(*) FROM machines m JOIN schools s ON s.id = m.school_id WHERE {where_sql}"
        ),
        &params,
    )
    .await?
    .first()
    .map(|r| r.try_get(0))
    .transpose()?
    .unwrap_or(0);
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
    let rows = query(
        c,
        &format!(
            "SELECT {MACHINE_COLUMNS} FROM machines m JOIN schools s ON s.id = m.school_id \
             WHERE {where_sql} ORDER BY {order}{limit}"
        ),
        &params,
    )
    .await?;
    Ok(MachinePage {
        rows: rows
            .iter()
            .map(|r| machine_from_row(r, now, &newest))
            .collect::<Result<_, _>>()?,
        total: to_u64(total),
    })
}

async fn assignments<C: GenericClient>(c: &C, uai: &Uai) -> Result<Vec<String>, StoreError> {
    rows(
        c,
        "SELECT a.profile_name FROM school_assignments a JOIN schools s ON s.id = a.school_id
         WHERE s.uai = $1 ORDER BY a.profile_name",
        &[&uai.as_str()],
    )
    .await?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}

/// Revokes every open session of a user (and, with `tokens`, API tokens).
async fn revoke_all<C: GenericClient>(
    c: &C,
    user: i64,
    at: i64,
    tokens: bool,
) -> Result<(), StoreError> {
    exec(
        c,
        "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        &[&user, &at],
    )
    .await?;
    if tokens {
        exec(
            c,
            "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            &[&user, &at],
        )
        .await?;
    }
    Ok(())
}

impl WebStore for PgStore {
    fn user_auth<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Option<(User, String)>> {
        Box::pin(async move {
            let client = self.client().await?;
            let Some(r) = row(
                &client,
                &format!("SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.login = $1"),
                &[&login],
            )
            .await?
            else {
                return Ok(None);
            };
            Ok(Some((user_from_row(&client, &r).await?, r.try_get(5)?)))
        })
    }

    fn login_failures<'a>(
        &'a self,
        login: &'a str,
        ip: &'a str,
        since: i64,
        known_since: i64,
    ) -> StoreFuture<'a, LoginFailures> {
        Box::pin(async move {
            let client = self.client().await?;
            let r = row(
                &client,
                &super::dollar(LoginFailures::SQL),
                &[&login, &ip, &since, &known_since],
            )
            .await?
            .ok_or_else(|| StoreError::Backend("COUNT answered nothing".into()))?;
            Ok(LoginFailures {
                by_login: to_u64(r.try_get(0)?),
                by_address: to_u64(r.try_get(1)?),
                by_pair: to_u64(r.try_get(2)?),
                known_address: r.try_get(3)?,
            })
        })
    }

    fn record_login_failure<'a>(&'a self, login: &'a str, ip: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let at = now();
            exec(
                &tx,
                "INSERT INTO login_failures (at, login, ip) VALUES ($1, $2, $3)",
                &[&at, &login, &ip],
            )
            .await?;
            // Old failures no longer count: keep the table small.
            exec(
                &tx,
                "DELETE FROM login_failures WHERE at < $1",
                &[&(at - 86_400)],
            )
            .await?;
            audit(
                &tx,
                login,
                "login.failed",
                serde_json::json!({"login": login, "ip": ip}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn create_session<'a>(&'a self, user: &'a User, session: NewSession) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let at = now();
            exec(
                &tx,
                "INSERT INTO sessions (id_hash, user_id, csrf, created_at, last_seen, ip)
                 VALUES ($1, $2, $3, $4, $4, $5)",
                &[&session.id_hash, &user.id, &session.csrf, &at, &session.ip],
            )
            .await?;
            audit(
                &tx,
                &user.login,
                "login",
                serde_json::json!({"ip": session.ip}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn session<'a>(&'a self, id_hash: &'a str) -> StoreFuture<'a, Option<SessionRecord>> {
        Box::pin(async move {
            let client = self.client().await?;
            let Some(r) = row(
                &client,
                &format!(
                    "SELECT {USER_COLUMNS}, x.csrf, x.created_at, x.last_seen, x.revoked_at
                     FROM sessions x JOIN users u ON u.id = x.user_id WHERE x.id_hash = $1"
                ),
                &[&id_hash],
            )
            .await?
            else {
                return Ok(None);
            };
            Ok(Some(SessionRecord {
                user: user_from_row(&client, &r).await?,
                csrf: r.try_get(5)?,
                created_at: r.try_get(6)?,
                last_seen: r.try_get(7)?,
                revoked_at: r.try_get(8)?,
            }))
        })
    }

    fn touch_session<'a>(&'a self, id_hash: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let client = self.client().await?;
            exec(
                &client,
                "UPDATE sessions SET last_seen = $2 WHERE id_hash = $1",
                &[&id_hash, &now()],
            )
            .await?;
            Ok(())
        })
    }

    fn revoke_session<'a>(&'a self, actor: &'a str, id_hash: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            exec(
                &tx,
                "UPDATE sessions SET revoked_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL",
                &[&id_hash, &now()],
            )
            .await?;
            audit(&tx, actor, "logout", serde_json::json!({})).await?;
            self.commit(tx).await
        })
    }

    fn set_password<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        password_hash: String,
        keep: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let id = user_id(&tx, login).await?;
            exec(
                &tx,
                "UPDATE users SET password_hash = $2 WHERE id = $1",
                &[&id, &password_hash],
            )
            .await?;
            exec(
                &tx,
                "UPDATE sessions SET revoked_at = $3
                 WHERE user_id = $1 AND id_hash <> $2 AND revoked_at IS NULL",
                &[&id, &keep.unwrap_or_default(), &now()],
            )
            .await?;
            // A reset by an admin (no session kept): the account may be in
            // the wrong hands, so its API tokens go too.
            if keep.is_none() {
                exec(
                    &tx,
                    "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
                    &[&id, &now()],
                )
                .await?;
            }
            audit(
                &tx,
                actor,
                "user.password",
                serde_json::json!({"login": login}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn set_user_disabled<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        disabled: bool,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let id = user_id(&tx, login).await?;
            let at = now();
            if disabled {
                exec(
                    &tx,
                    "UPDATE users SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL",
                    &[&id, &at],
                )
                .await?;
                revoke_all(&tx, id, at, true).await?;
            } else {
                exec(
                    &tx,
                    "UPDATE users SET disabled_at = NULL WHERE id = $1",
                    &[&id],
                )
                .await?;
            }
            audit(
                &tx,
                actor,
                if disabled {
                    "user.disable"
                } else {
                    "user.enable"
                },
                serde_json::json!({"login": login}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn set_user_role<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        role: Role,
        nodes: Vec<ScopeNode>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let id = user_id(&tx, login).await?;
            exec(
                &tx,
                "UPDATE users SET role = $2 WHERE id = $1",
                &[&id, &role.as_str()],
            )
            .await?;
            write_nodes(&tx, id, &nodes).await?;
            // A narrower scope must not live on in open sessions.
            revoke_all(&tx, id, now(), false).await?;
            let scope: Vec<String> = nodes.iter().map(ToString::to_string).collect();
            audit(
                &tx,
                actor,
                "user.role",
                serde_json::json!({"login": login, "role": role.as_str(), "scope": scope}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn add_user_scoped<'a>(
        &'a self,
        actor: &'a str,
        user: NewUser,
        nodes: Vec<ScopeNode>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO users (login, password_hash, role, created_at)
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .await?;
            let id: i64 = tx
                .query_one(
                    &stmt,
                    &[
                        &user.login,
                        &user.password_hash,
                        &user.role.as_str(),
                        &now(),
                    ],
                )
                .await
                .map_err(|e| unique_as_exists(e, || format!("l'utilisateur « {} »", user.login)))?
                .try_get(0)?;
            write_nodes(&tx, id, &nodes).await?;
            let scope: Vec<String> = nodes.iter().map(ToString::to_string).collect();
            audit(
                &tx,
                actor,
                "user.add",
                serde_json::json!({"login": user.login, "role": user.role.as_str(), "scope": scope}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn list_users(&self) -> StoreFuture<'_, Vec<User>> {
        Box::pin(async move {
            let client = self.client().await?;
            let mut users = Vec::new();
            for r in rows(
                &client,
                &format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.login"),
                &[],
            )
            .await?
            {
                users.push(user_from_row(&client, &r).await?);
            }
            Ok(users)
        })
    }

    fn create_api_token<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        token_hash: String,
        label: String,
    ) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let user = user_id(&tx, login).await?;
            let id: i64 = row(
                &tx,
                "INSERT INTO api_tokens (user_id, token_hash, label, created_at)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&user, &token_hash, &label, &now()],
            )
            .await?
            .ok_or_else(|| StoreError::Backend("no id returned".into()))?
            .try_get(0)?;
            audit(
                &tx,
                actor,
                "apitoken.create",
                serde_json::json!({"login": login, "id": id, "label": label}),
            )
            .await?;
            self.commit(tx).await?;
            Ok(id)
        })
    }

    fn list_api_tokens<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Vec<ApiTokenInfo>> {
        Box::pin(async move {
            let client = self.client().await?;
            rows(
                &client,
                "SELECT t.id, t.label, t.created_at, t.last_used, t.revoked_at
                 FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE u.login = $1 ORDER BY t.id DESC",
                &[&login],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(ApiTokenInfo {
                    id: r.try_get(0)?,
                    label: r.try_get(1)?,
                    created_at: r.try_get(2)?,
                    last_used: r.try_get(3)?,
                    revoked_at: r.try_get(4)?,
                })
            })
            .collect()
        })
    }

    fn revoke_api_token<'a>(
        &'a self,
        actor: &'a str,
        login: &'a str,
        id: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let user = user_id(&tx, login).await?;
            let n = exec(
                &tx,
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $3)
                 WHERE id = $1 AND user_id = $2",
                &[&id, &user, &now()],
            )
            .await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("le jeton d'API n° {id}")));
            }
            audit(
                &tx,
                actor,
                "apitoken.revoke",
                serde_json::json!({"login": login, "id": id}),
            )
            .await?;
            self.commit(tx).await
        })
    }

    fn api_token_user<'a>(&'a self, token_hash: &'a str) -> StoreFuture<'a, Option<User>> {
        Box::pin(async move {
            let client = self.client().await?;
            let Some(r) = row(
                &client,
                &format!(
                    "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
                     WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.disabled_at IS NULL"
                ),
                &[&token_hash],
            )
            .await?
            else {
                return Ok(None);
            };
            let user = user_from_row(&client, &r).await?;
            let _p = self.pending();
            exec(
                &client,
                "UPDATE api_tokens SET last_used = $2::bigint WHERE token_hash = $1
                 AND (last_used IS NULL OR last_used < $2::bigint - 60)",
                &[&token_hash, &now()],
            )
            .await?;
            Ok(Some(user))
        })
    }

    fn schools_in<'a>(&'a self, scope: &'a Scope) -> StoreFuture<'a, Vec<School>> {
        Box::pin(async move {
            let client = self.client().await?;
            let (where_sql, params) = Params::scope(scope);
            query(
                &client,
                &format!("SELECT {SCHOOL_COLUMNS} FROM schools s WHERE {where_sql} ORDER BY s.uai"),
                &params,
            )
            .await?
            .iter()
            .map(|r| school_from_row(r, 0))
            .collect()
        })
    }

    fn school_in<'a>(&'a self, scope: &'a Scope, uai: &'a Uai) -> StoreFuture<'a, Option<School>> {
        Box::pin(async move {
            let client = self.client().await?;
            let (where_sql, mut params) = Params::scope(scope);
            params.push(uai.as_str().to_owned());
            query(
                &client,
                &format!("SELECT {SCHOOL_COLUMNS} FROM schools s WHERE {where_sql} AND s.uai = ?"),
                &params,
            )
            .await?
            .first()
            .map(|r| school_from_row(r, 0))
            .transpose()
        })
    }

    fn overview<'a>(&'a self, scope: &'a Scope, now: i64) -> StoreFuture<'a, Vec<SchoolOverview>> {
        Box::pin(async move {
            let client = self.client().await?;
            let newest = newest_agent(&client).await?;
            let (where_sql, params) = Params::scope(scope);
            let mut out = Vec::new();
            let mut slot_of = std::collections::HashMap::new();
            for r in query(
                &client,
                &format!(
                    "SELECT {SCHOOL_COLUMNS}, s.id FROM schools s WHERE {where_sql} ORDER BY s.uai"
                ),
                &params,
            )
            .await?
            {
                slot_of.insert(r.try_get::<_, i64>(7)?, out.len());
                out.push(SchoolOverview {
                    school: school_from_row(&r, 0)?,
                    states: [0; 5],
                    profiles: [0; 4],
                    alerts: [0; 5],
                });
            }
            if out.is_empty() {
                return Ok(out);
            }
            let mut assignments = Assignments::default();
            for r in rows(&client, Assignments::SCHOOLS_SQL, &[]).await? {
                assignments.school(r.try_get(0)?, r.try_get(1)?);
            }
            for r in rows(&client, Assignments::OVERRIDES_SQL, &[]).await? {
                assignments.exception(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            }
            for r in rows(&client, Assignments::DELIVERABLE_SQL, &[]).await? {
                assignments.deliverable(r.try_get(0)?);
            }
            for r in rows(
                &client,
                "SELECT school_id, status, COALESCE(last_seen, enrolled_at), alerts, \
                 last_outcome, agent_version, id FROM machines",
                &[],
            )
            .await?
            {
                let school: i64 = r.try_get(0)?;
                let Some(&slot) = slot_of.get(&school) else {
                    continue;
                };
                let outcome: Option<String> = r.try_get(4)?;
                let machine = OverviewMachine {
                    status: status_of(r.try_get(1)?)?,
                    contact: r.try_get(2)?,
                    flags: r.try_get(3)?,
                    assigned: assignments.has_assigned(school, r.try_get(6)?),
                    outcome: outcome.as_deref(),
                    version: r.try_get(5)?,
                };
                out[slot].count(machine, &newest, now);
            }
            Ok(out)
        })
    }

    fn machines_in<'a>(
        &'a self,
        scope: &'a Scope,
        query: &'a MachineQuery,
        now: i64,
    ) -> StoreFuture<'a, MachinePage> {
        Box::pin(async move {
            let client = self.client().await?;
            machines_query(&client, scope, query, now).await
        })
    }

    fn machine_in<'a>(
        &'a self,
        scope: &'a Scope,
        id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Option<MachineDetail>> {
        Box::pin(async move {
            let client = self.client().await?;
            let newest = newest_agent(&client).await?;
            let (where_sql, mut params) = Params::scope(scope);
            params.push(id.to_owned());
            let found = query(
                &client,
                &format!(
                    "SELECT {MACHINE_COLUMNS}, m.checkins, m.applied
                     FROM machines m JOIN schools s ON s.id = m.school_id
                     WHERE {where_sql} AND m.id = ?"
                ),
                &params,
            )
            .await?;
            let Some(r) = found.first() else {
                return Ok(None);
            };
            let row = machine_from_row(r, now, &newest)?;
            let checkins = to_u64(r.try_get(15)?);
            let applied: String = r.try_get(16)?;
            let mut history = Vec::new();
            for h in rows(
                &client,
                "SELECT id, recorded_at, inventory, packed FROM inventory_history
                 WHERE machine_id = $1 ORDER BY id DESC LIMIT $2",
                &[&row.id, &(HISTORY_SHOWN as i64)],
            )
            .await?
            {
                history.push((
                    h.try_get(0)?,
                    h.try_get(1)?,
                    crate::store::sqlite::inventory::row_text(h.try_get(2)?, h.try_get(3)?)?,
                ));
            }
            let mut reports = Vec::new();
            for r in rows(
                &client,
                "SELECT report FROM apply_reports WHERE machine_id = $1 ORDER BY seq DESC LIMIT 50",
                &[&row.id],
            )
            .await?
            {
                if let Ok(report) = serde_json::from_str(r.try_get(0)?) {
                    reports.push(report);
                }
            }
            let overrides = rows(
                &client,
                "SELECT profile_name, include FROM machine_overrides WHERE machine_id = $1
                 ORDER BY profile_name",
                &[&row.id],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)? != 0)))
            .collect::<Result<Vec<_>, StoreError>>()?;
            let assigned = assignments(&client, &row.school).await?;
            Ok(Some(MachineDetail {
                row,
                checkins,
                applied,
                history,
                reports,
                overrides,
                assigned,
            }))
        })
    }

    fn tokens_in<'a>(&'a self, scope: &'a Scope, uai: &'a Uai) -> StoreFuture<'a, Vec<TokenInfo>> {
        Box::pin(async move {
            let client = self.client().await?;
            let (where_sql, mut params) = Params::scope(scope);
            params.push(uai.as_str().to_owned());
            query(
                &client,
                &format!(
                    "SELECT t.id, s.uai, t.created_at, t.expires_at, t.max_uses, t.uses,
                            t.revoked_at
                     FROM enrollment_tokens t JOIN schools s ON s.id = t.school_id
                     WHERE {where_sql} AND s.uai = ? ORDER BY t.id DESC"
                ),
                &params,
            )
            .await?
            .iter()
            .map(token_from_row)
            .collect()
        })
    }

    fn school_assignments<'a>(&'a self, uai: &'a Uai) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            assignments(&client, uai).await
        })
    }

    fn releases_in<'a>(&'a self, scope: &'a Scope) -> StoreFuture<'a, Vec<ReleaseOverview>> {
        Box::pin(async move {
            let client = self.client().await?;
            let (where_sql, _) = Params::scope(scope);
            let releases = rows(
                &client,
                "SELECT name, version, sha256, published_by, published_at, minisig, signed_by,
                        revoked_at
                 FROM profile_releases ORDER BY name, version DESC",
                &[],
            )
            .await?;
            let mut out = Vec::new();
            for r in releases {
                let info = ReleaseInfo {
                    name: r.try_get(0)?,
                    version: to_u64(r.try_get(1)?),
                    sha256: r.try_get(2)?,
                    published_by: r.try_get(3)?,
                    published_at: r.try_get(4)?,
                    signed_by: r.try_get(6)?,
                    revoked_at: r.try_get(7)?,
                };
                let minisig: String = r.try_get(5)?;
                let (_, mut p) = Params::scope(scope);
                p.push(info.name.clone());
                let assigned_to = query(
                    &client,
                    &format!(
                        "SELECT s.uai FROM school_assignments a JOIN schools s ON s.id = a.school_id
                         WHERE {where_sql} AND a.profile_name = ? ORDER BY s.uai"
                    ),
                    &p,
                )
                .await?
                .iter()
                .map(|r| stored_uai(r.try_get(0)?))
                .collect::<Result<Vec<_>, _>>()?;
                p.push(i64::try_from(info.version).unwrap_or(i64::MAX));
                let applied: i64 = query(
                    &client,
                    &format!(
                        "SELECT COUNT(DISTINCT r.machine_id) FROM apply_reports r
                         JOIN machines m ON m.id = r.machine_id JOIN schools s ON s.id = m.school_id
                         WHERE {where_sql} AND r.profile = ? AND r.version = ?
                           AND r.outcome = 'applied'"
                    ),
                    &p,
                )
                .await?
                .first()
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0);
                out.push(ReleaseOverview {
                    info,
                    minisig,
                    assigned_to,
                    applied: to_u64(applied),
                });
            }
            Ok(out)
        })
    }

    fn audit_in<'a>(
        &'a self,
        scope: &'a Scope,
        q: &'a AuditQuery,
    ) -> StoreFuture<'a, Vec<AuditEntry>> {
        Box::pin(async move {
            let client = self.client().await?;
            let scoped = !matches!(scope, Scope::All);
            let mut clauses: Vec<String> = Vec::new();
            let mut params = Params::default();
            if scoped || q.school.is_some() {
                // Entries that name a school in scope, or one of its machines.
                for _ in 0..2 {
                    let (_, scope_params) = Params::scope(scope);
                    params.0.extend(scope_params.0);
                    if let Some(uai) = &q.school {
                        params.push(uai.as_str().to_owned());
                    }
                }
                let (mut inner, _) = Params::scope(scope);
                if q.school.is_some() {
                    inner = format!("{inner} AND s.uai = ?");
                }
                clauses.push(format!(
                    "(nird_json(a.detail) ->> 'school' IN (SELECT s.uai FROM schools s WHERE {inner})
                      OR nird_json(a.detail) ->> 'machine' IN
                         (SELECT m.id FROM machines m JOIN schools s ON s.id = m.school_id WHERE {inner}))"
                ));
            }
            if let Some(actor) = &q.actor {
                clauses.push("a.actor = ?".into());
                params.push(actor.clone());
            }
            if let Some(action) = &q.action {
                clauses.push("starts_with(a.action, ?)".into());
                params.push(action.clone());
            }
            if let Some(since) = q.since {
                clauses.push("a.at >= ?".into());
                params.push(since);
            }
            if let Some(until) = q.until {
                clauses.push("a.at < ?".into());
                params.push(until);
            }
            let where_sql = if clauses.is_empty() {
                "TRUE".to_owned()
            } else {
                clauses.join(" AND ")
            };
            query(
                &client,
                &format!(
                    "SELECT a.at, a.actor, a.action, a.detail FROM audit_log a
                     WHERE nird_json(a.detail) IS NOT NULL AND {where_sql}
                     ORDER BY a.id DESC LIMIT {}",
                    q.limit.clamp(1, 5_000)
                ),
                &params,
            )
            .await?
            .iter()
            .map(audit_entry)
            .collect()
        })
    }
}
