//! The store's behaviours, run unchanged against both backends: SQLite (a
//! file in a temporary directory) and PostgreSQL (a real server started by
//! the test harness, `common/pg.rs`; one cluster for this binary, one
//! database per test). PostgreSQL is skipped, with a message, only where
//! it cannot start.

mod common;

use nird_proto::hash::CanonicalObject;
use std::future::Future;
use std::sync::Arc;

use nird_proto::api::{ApplyOutcome, MachineStatus, ProfileRef};
use nird_proto::uai::Uai;
use nird_server::store::audit::{AuditFilter, idx};
use nird_server::store::web::{
    AuditQuery, LoginFailures, MachineQuery, NewSession, ProfileState, Scope, ScopeNode,
};
use nird_server::store::{
    Checkin, NewIndex, NewKeyring, NewMachine, NewRelease, NewToken, NewUser, PgStore,
    PublishOutcome, Role, School, SchoolKind, SqliteStore, Store, StoreError, TokenProblem,
};
use serde_json::json;

/// Where a test's store lives.
enum Backend {
    /// A SQLite file (its directory is kept alive by [`on_both`]).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database URL.
    Pg(String),
}

impl Backend {
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(path) => Arc::new(SqliteStore::open(path).unwrap()),
            Backend::Pg(url) => Arc::new(PgStore::connect(url).await.unwrap()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Pg(_) => "postgresql",
        }
    }

    /// Runs SQL on a connection of the database's own, outside the store:
    /// what an operator with a SQL shell could do.
    async fn raw(&self, sql: &str) -> Result<(), String> {
        match self {
            Backend::Sqlite(path) => rusqlite::Connection::open(path)
                .and_then(|c| c.execute_batch(sql))
                .map_err(|e| e.to_string()),
            Backend::Pg(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client.batch_execute(sql).await.map_err(|e| {
                    e.as_db_error()
                        .map_or(e.to_string(), |d| d.message().into())
                })
            }
        }
    }
}

impl Backend {
    /// Answers a `SELECT COUNT(*) ...` on a connection of the test's own.
    async fn count(&self, sql: &str) -> i64 {
        match self {
            Backend::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Backend::Pg(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client
                    .query_one(sql, &[])
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .get(0)
            }
        }
    }
}

/// Runs `test` on a fresh SQLite store, then on a fresh PostgreSQL one.
fn on_both<F, Fut>(test: F)
where
    F: Fn(Arc<dyn Store>, Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut backends = vec![Backend::Sqlite(dir.path().join("db"))];
    match common::pg::shared() {
        Some(cluster) => backends.push(Backend::Pg(cluster.database())),
        None => eprintln!("store_suite: PostgreSQL unavailable, only SQLite tested"),
    }
    for backend in backends {
        eprintln!("backend: {}", backend.name());
        rt.block_on(async {
            let store = backend.open().await;
            test(store.clone(), backend).await;
            store.close().await.unwrap();
        });
    }
}

const UAI: &str = "0620056Z";

fn uai() -> Uai {
    Uai::parse(UAI).unwrap()
}

fn school(uai: &str, require_approval: bool) -> School {
    School {
        uai: Uai::parse(uai).unwrap(),
        name: "École Jean Jaurès".into(),
        commune: "Calais".into(),
        departement: "062".into(),
        academie: "Lille".into(),
        kind: SchoolKind::Ecole,
        require_approval,
    }
}

/// A canonical inventory document (with a package list and the fields the
/// dashboard precomputes) and its hash.
fn inventory(host: &str, packages: usize, failing_disk: bool) -> (CanonicalObject, String) {
    let list: Vec<_> = (0..packages)
        .map(|i| json!({"name": format!("paquet-{i}"), "version": "1.0", "arch": "amd64"}))
        .collect();
    let doc = json!({
        "schema_version": 2,
        "agent_version": "0.2.0",
        "identity": {"hostname": {"value": host}, "serial": {"value": format!("SN-{host}")},
                     "vendor": {"value": "Dell"}, "product": {"value": "Latitude E6410"}},
        "windows11": {"status": "ineligible"},
        "storage": {"disks": {"value": [{"smart": {"value": {"health":
            if failing_disk { "failing" } else { "passed" }}}}]}},
        "batteries": {"value": [{"wear_percent": {"value": 61}}]},
        "software": {"value": {"packages": list}},
    });
    let text = String::from_utf8(nird_proto::hash::canonical_json(&doc).unwrap()).unwrap();
    let hash = nird_proto::hash::sha256_hex(text.as_bytes());
    (CanonicalObject::from_text(text).unwrap(), hash)
}

/// The machines whose SMART alert is raised (the dashboard's filter).
async fn smart_alerts(store: &Arc<dyn Store>, now: i64) -> nird_server::store::web::MachinePage {
    store
        .machines_in(
            &Scope::All,
            &MachineQuery {
                alert: Some(nird_server::store::web::alert::SMART),
                limit: Some(50),
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap()
}

/// Adds the school and a token of `uses` uses; returns the token's hash.
async fn school_and_token(store: &Arc<dyn Store>, uses: u32, approval: bool) -> String {
    store
        .add_school("test", school(UAI, approval))
        .await
        .unwrap();
    let hash = nird_server::secrets::hash_secret("jeton");
    store
        .create_token(
            "test",
            NewToken {
                school: uai(),
                token_hash: hash.clone(),
                expires_at: None,
                max_uses: uses,
            },
        )
        .await
        .unwrap();
    hash
}

/// Enrols machine `id` with `token_hash`; its secret's hash is `s-{id}`.
async fn enroll(
    store: &Arc<dyn Store>,
    token_hash: &str,
    id: &str,
) -> Result<MachineStatus, StoreError> {
    let (text, hash) = inventory(id, 50, false);
    store
        .enroll(NewMachine {
            token_hash: token_hash.into(),
            machine_id: id.into(),
            secret_hash: format!("s-{id}"),
            hostname: format!("pc-{id}"),
            inventory: text,
            inventory_hash: hash,
        })
        .await
        .map(|e| e.status)
}

fn heartbeat(id: &str, inventory_hash: &str) -> Checkin {
    Checkin {
        machine_id: id.into(),
        secret_hash: format!("s-{id}"),
        inventory_hash: inventory_hash.into(),
        inventory: None,
        applied: vec![],
        reports: vec![],
        trust: None,
        max_inventory_changes_per_day: 24,
    }
}

fn report(seq: u64, outcome: ApplyOutcome) -> nird_proto::api::ApplyReport {
    let t = time::OffsetDateTime::now_utc();
    nird_proto::api::ApplyReport {
        seq,
        profile: "primtux".into(),
        version: 1,
        outcome,
        reason: None,
        message: None,
        resources: vec![],
        started_at: t,
        finished_at: t,
    }
}

#[test]
fn enrolment_authentication_and_check_ins() {
    on_both(|store, _| async move {
        let token = school_and_token(&store, 2, false).await;
        assert_eq!(
            enroll(&store, &token, "m1").await.unwrap(),
            MachineStatus::Active
        );
        enroll(&store, &token, "m2").await.unwrap();
        assert!(matches!(
            enroll(&store, &token, "m3").await,
            Err(StoreError::Token(TokenProblem::Exhausted))
        ));
        assert!(matches!(
            enroll(&store, "inconnu", "m4").await,
            Err(StoreError::Token(TokenProblem::Unknown))
        ));
        // Same id twice: refused, token use not consumed.
        assert!(store.authenticate("m1", "s-m1").await.is_ok());
        assert!(matches!(
            store.authenticate("m1", "s-m2").await,
            Err(StoreError::BadCredential)
        ));
        assert!(matches!(
            store.authenticate("nobody", "x").await,
            Err(StoreError::BadCredential)
        ));
        let (text, hash) = inventory("m1", 50, false);
        assert_eq!(
            store.latest_inventory("m1").await.unwrap(),
            Some(text.into_string())
        );
        // Heartbeat with the stored hash: nothing to send; with another
        // hash and no document: the server asks for it.
        let out = store.checkin(heartbeat("m1", &hash)).await.unwrap();
        assert!(!out.send_inventory);
        assert_eq!(out.status, MachineStatus::Active);
        let out = store.checkin(heartbeat("m1", "autre")).await.unwrap();
        assert!(out.send_inventory);
        // Reports are stored once per seq; the ack is the highest seq.
        let mut c = heartbeat("m1", &hash);
        c.reports = vec![
            report(1, ApplyOutcome::Applied),
            report(2, ApplyOutcome::Failed),
        ];
        assert_eq!(store.checkin(c.clone()).await.unwrap().acked_seq, 2);
        assert_eq!(store.checkin(c).await.unwrap().acked_seq, 2);
        assert_eq!(store.reports("m1").await.unwrap().len(), 2);
        // A bad secret changes nothing.
        let mut bad = heartbeat("m1", &hash);
        bad.secret_hash = "faux".into();
        bad.reports = vec![report(3, ApplyOutcome::Applied)];
        assert!(matches!(
            store.checkin(bad).await,
            Err(StoreError::BadCredential)
        ));
        assert_eq!(store.reports("m1").await.unwrap().len(), 2);
        // A new inventory: history grows, the document comes back exact.
        let (text2, hash2) = inventory("m1", 60, true);
        let mut c = heartbeat("m1", &hash2);
        c.inventory = Some(text2.clone());
        store.checkin(c).await.unwrap();
        assert_eq!(
            store.latest_inventory("m1").await.unwrap(),
            Some(text2.into_string())
        );
        assert_eq!(store.inventory_history_len("m1").await.unwrap(), 2);
        let machines = store.list_machines(None).await.unwrap();
        assert_eq!(machines.len(), 2);
        let m1 = machines.iter().find(|m| m.id == "m1").unwrap();
        assert_eq!((m1.checkins, m1.acked_seq), (5, 2));
        assert_eq!(m1.inventory_hash, hash2);
        // Retired machines are refused.
        store
            .set_machine_status("test", "m2", MachineStatus::Retired)
            .await
            .unwrap();
        assert!(matches!(
            store.authenticate("m2", "s-m2").await,
            Err(StoreError::Retired)
        ));
        assert!(matches!(
            store.checkin(heartbeat("m2", "x")).await,
            Err(StoreError::Retired)
        ));
        assert!(matches!(
            store
                .set_machine_status("test", "m2", MachineStatus::Active)
                .await,
            Err(StoreError::Conflict(_))
        ));
        let counts = store.count_machines().await.unwrap();
        assert_eq!(
            counts,
            vec![
                (MachineStatus::Pending, 0),
                (MachineStatus::Active, 1),
                (MachineStatus::Retired, 1)
            ]
        );
    });
}

#[test]
fn releases_assignments_overrides_and_downloads() {
    on_both(|store, _| async move {
        let token = school_and_token(&store, 5, true).await;
        assert_eq!(
            enroll(&store, &token, "m1").await.unwrap(),
            MachineStatus::Pending
        );
        let blob = vec![7u8; 300_000];
        let blob_sha = nird_proto::hash::sha256_hex(&blob);
        let release = |name: &str, version: u64, includes: Vec<String>| NewRelease {
            name: name.into(),
            version,
            bytes: format!("[profile]\nname = \"{name}\"\nversion = {version}\n").into_bytes(),
            minisig: "untrusted comment: test\n".into(),
            blobs: vec![(blob_sha.clone(), blob.clone())],
            includes,
            signed_by: "cle".into(),
        };
        assert_eq!(
            store
                .publish_release("test", release("nird-base", 1, vec![]))
                .await
                .unwrap(),
            PublishOutcome::Published
        );
        assert_eq!(
            store
                .publish_release("test", release("nird-base", 1, vec![]))
                .await
                .unwrap(),
            PublishOutcome::AlreadyPublished
        );
        store
            .publish_release("test", release("primtux", 2, vec!["nird-base".into()]))
            .await
            .unwrap();
        assert!(matches!(
            store
                .publish_release("test", release("primtux", 1, vec![]))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.latest_version("primtux").await.unwrap(), Some(2));
        store
            .assign_school("test", &uai(), vec!["primtux".into()])
            .await
            .unwrap();
        let (_, hash) = inventory("m1", 50, false);
        // Pending: nothing assigned, nothing downloadable.
        assert!(
            store
                .checkin(heartbeat("m1", &hash))
                .await
                .unwrap()
                .assigned
                .is_empty()
        );
        assert!(
            store
                .assigned_release("m1", "s-m1", "primtux", 2)
                .await
                .unwrap()
                .is_none()
        );
        store
            .set_machine_status("test", "m1", MachineStatus::Active)
            .await
            .unwrap();
        let both = vec![
            ProfileRef {
                name: "nird-base".into(),
                version: 1,
            },
            ProfileRef {
                name: "primtux".into(),
                version: 2,
            },
        ];
        assert_eq!(
            store
                .checkin(heartbeat("m1", &hash))
                .await
                .unwrap()
                .assigned,
            both
        );
        assert_eq!(store.assigned_closure("m1").await.unwrap(), both);
        let got = store
            .assigned_release("m1", "s-m1", "primtux", 2)
            .await
            .unwrap()
            .unwrap();
        assert!(got.bytes.starts_with(b"[profile]"));
        assert_eq!(
            store
                .assigned_blob_size("m1", "s-m1", &blob_sha)
                .await
                .unwrap(),
            Some(300_000)
        );
        // Chunks: exact bytes from any offset, none past the end.
        let chunks = store
            .blob_chunks(&blob_sha, 299_000, 512, 4)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [512, 488]);
        assert!(
            store
                .blob_chunks(&blob_sha, 400_000, 512, 4)
                .await
                .unwrap()
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .blob_chunks("0000", 0, 512, 4)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.blob(&blob_sha).await.unwrap(), Some(blob.clone()));
        // Excluding primtux for this machine leaves nothing.
        store
            .override_machine("test", "m1", "primtux", false)
            .await
            .unwrap();
        assert!(
            store
                .checkin(heartbeat("m1", &hash))
                .await
                .unwrap()
                .assigned
                .is_empty()
        );
        assert!(
            store
                .assigned_blob_size("m1", "s-m1", &blob_sha)
                .await
                .unwrap()
                .is_none()
        );
        // Including nird-base alone brings it back.
        store
            .override_machine("test", "m1", "nird-base", true)
            .await
            .unwrap();
        assert_eq!(
            store
                .checkin(heartbeat("m1", &hash))
                .await
                .unwrap()
                .assigned,
            both[..1]
        );
        assert!(matches!(
            store.override_machine("test", "absent", "x", true).await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store.list_releases().await.unwrap().len(), 2);
        assert_eq!(store.live_releases().await.unwrap().len(), 2);
    });
}

#[test]
fn users_sessions_and_api_tokens() {
    on_both(|store, _| async move {
        store.add_school("test", school(UAI, false)).await.unwrap();
        let lille = ScopeNode::parse("academie:Lille").unwrap();
        store
            .add_user_scoped(
                "test",
                NewUser {
                    login: "alice".into(),
                    password_hash: "$argon2id$x".into(),
                    role: Role::Auditor,
                    schools: vec![],
                    territory: None,
                },
                vec![lille.clone()],
            )
            .await
            .unwrap();
        assert!(matches!(
            store
                .add_user(
                    "test",
                    NewUser {
                        login: "alice".into(),
                        password_hash: "x".into(),
                        role: Role::Admin,
                        schools: vec![],
                        territory: None,
                    }
                )
                .await,
            Err(StoreError::AlreadyExists(_))
        ));
        let (user, hash) = store.user_auth("alice").await.unwrap().unwrap();
        assert_eq!(hash, "$argon2id$x");
        assert_eq!(user.nodes, vec![lille]);
        assert!(store.user_exists("alice").await.unwrap());
        store
            .create_session(
                &user,
                NewSession {
                    id_hash: "sess".into(),
                    csrf: "csrf".into(),
                    ip: "192.0.2.1".into(),
                },
            )
            .await
            .unwrap();
        let s = store.session("sess").await.unwrap().unwrap();
        assert_eq!((s.user.login.as_str(), s.csrf.as_str()), ("alice", "csrf"));
        assert!(s.revoked_at.is_none());
        store.touch_session("sess").await.unwrap();
        store
            .record_login_failure("alice", "192.0.2.9")
            .await
            .unwrap();
        store
            .record_login_failure("bob", "192.0.2.9")
            .await
            .unwrap();
        store
            .record_login_failure("alice", "192.0.2.8")
            .await
            .unwrap();
        let failures = |ip: &'static str, known_since: i64| {
            let store = store.clone();
            async move {
                store
                    .login_failures("alice", ip, 0, known_since)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            failures("192.0.2.9", 0).await,
            LoginFailures {
                by_login: 2,
                by_address: 2,
                by_pair: 1,
                known_address: false,
            }
        );
        // The address alice opened a session from is known, while recent.
        let known = failures("192.0.2.1", 0).await;
        assert!(known.known_address && known.by_pair == 0, "{known:?}");
        assert!(!failures("192.0.2.1", s.created_at + 1).await.known_address);
        let id = store
            .create_api_token("test", "alice", "tok".into(), "script".into())
            .await
            .unwrap();
        assert_eq!(
            store.api_token_user("tok").await.unwrap().unwrap().login,
            "alice"
        );
        assert_eq!(store.list_api_tokens("alice").await.unwrap().len(), 1);
        // Disabling revokes sessions and tokens.
        store
            .set_user_disabled("test", "alice", true)
            .await
            .unwrap();
        assert!(
            store
                .session("sess")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
        assert!(store.api_token_user("tok").await.unwrap().is_none());
        assert!(matches!(
            store.revoke_api_token("test", "alice", id + 100).await,
            Err(StoreError::NotFound(_))
        ));
        store
            .set_user_role(
                "test",
                "alice",
                Role::School,
                vec![ScopeNode::parse(&format!("uai:{UAI}")).unwrap()],
            )
            .await
            .unwrap();
        let users = store.list_users().await.unwrap();
        assert_eq!(users[0].role, Role::School);
        assert!(matches!(
            store
                .set_user_role(
                    "test",
                    "alice",
                    Role::School,
                    vec![ScopeNode::parse("uai:0750001U").unwrap()]
                )
                .await,
            Err(StoreError::NotFound(_))
        ));
    });
}

#[test]
fn the_audit_log_is_append_only_in_the_database() {
    on_both(|store, backend| async move {
        store.add_school("test", school(UAI, false)).await.unwrap();
        let log = store.audit_log().await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].action, "school.add");
        // Even with a SQL shell on the database, the log cannot be changed.
        for sql in [
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log",
        ] {
            let err = backend.raw(sql).await.unwrap_err();
            assert!(err.contains("append-only"), "{sql}: {err}");
        }
        if let Backend::Pg(_) = backend {
            let err = backend.raw("TRUNCATE audit_log").await.unwrap_err();
            assert!(err.contains("append-only"), "{err}");
        }
        assert_eq!(store.audit_log().await.unwrap(), log);
        // The journal page reads it, scoped.
        let entries = store
            .audit_in(
                &Scope::All,
                &AuditQuery {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(entries.len(), 1);
        let paris = Scope::Nodes(vec![ScopeNode::parse("academie:Paris").unwrap()]);
        // Entries naming a school (here a token's creation) are shown
        // only within that school's territory.
        store
            .create_token(
                "test",
                NewToken {
                    school: uai(),
                    token_hash: "h".into(),
                    expires_at: None,
                    max_uses: 1,
                },
            )
            .await
            .unwrap();
        let q = AuditQuery {
            limit: 10,
            action: Some("token".into()),
            ..Default::default()
        };
        assert!(store.audit_in(&paris, &q).await.unwrap().is_empty());
        let lille = Scope::Nodes(vec![ScopeNode::parse("academie:Lille").unwrap()]);
        assert_eq!(store.audit_in(&lille, &q).await.unwrap().len(), 1);
    });
}

#[test]
fn dashboard_and_audit_figures() {
    on_both(|store, _| async move {
        let token = school_and_token(&store, 10, false).await;
        for id in ["m1", "m2", "m3"] {
            enroll(&store, &token, id).await.unwrap();
        }
        let (text, hash) = inventory("m1", 50, true);
        let mut c = heartbeat("m1", &hash);
        c.inventory = Some(text);
        c.reports = vec![report(1, ApplyOutcome::Refused)];
        store.checkin(c).await.unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let overview = store.overview(&Scope::All, now).await.unwrap();
        assert_eq!(overview.len(), 1);
        assert_eq!(overview[0].states[0], 3, "three active machines");
        // Nothing assigned: no machine waits for anything, m1's refused
        // report notwithstanding (found by review: all read « en attente »).
        assert_eq!(overview[0].profiles, [0, 0, 0, 3]);
        let by_profile = |p: ProfileState| {
            let store = store.clone();
            async move {
                let q = MachineQuery {
                    profile: Some(p),
                    limit: Some(50),
                    ..Default::default()
                };
                let page = store.machines_in(&Scope::All, &q, now).await.unwrap();
                assert!(page.rows.iter().all(|r| r.profile == p), "{p:?}");
                page.rows.into_iter().map(|r| r.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            by_profile(ProfileState::Unassigned).await,
            ["m1", "m2", "m3"]
        );
        store
            .assign_school("test", &uai(), vec!["primtux".into()])
            .await
            .unwrap();
        // Assigned but never published: nothing can be given, so nothing
        // is awaited (found by review: it read « en attente » for ever).
        let overview = store.overview(&Scope::All, now).await.unwrap();
        assert_eq!(overview[0].profiles, [0, 0, 0, 3]);
        let none = by_profile(ProfileState::Unassigned).await;
        assert_eq!(none, ["m1", "m2", "m3"]);
        let release = |name: &str| NewRelease {
            name: name.into(),
            version: 1,
            bytes: format!("[profile]\nname = \"{name}\"\nversion = 1\n").into_bytes(),
            minisig: "untrusted comment: test\n".into(),
            blobs: vec![],
            includes: vec![],
            signed_by: "cle".into(),
        };
        for name in ["primtux", "nird-base"] {
            store.publish_release("test", release(name)).await.unwrap();
        }
        store
            .override_machine("test", "m3", "primtux", false)
            .await
            .unwrap();
        let overview = store.overview(&Scope::All, now).await.unwrap();
        assert_eq!(
            overview[0].profiles,
            [0, 1, 1, 1],
            "applied, pending, failed, none"
        );
        assert_eq!(by_profile(ProfileState::Failed).await, ["m1"]);
        assert_eq!(by_profile(ProfileState::Pending).await, ["m2"]);
        assert_eq!(by_profile(ProfileState::Unassigned).await, ["m3"]);
        assert!(by_profile(ProfileState::Applied).await.is_empty());
        // A machine's own inclusion counts as assigned.
        store
            .override_machine("test", "m3", "nird-base", true)
            .await
            .unwrap();
        assert_eq!(by_profile(ProfileState::Pending).await, ["m2", "m3"]);
        let m3 = store
            .machine_in(&Scope::All, "m3", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m3.row.profile, ProfileState::Pending);
        let overview = store.overview(&Scope::All, now).await.unwrap();
        assert_eq!(overview[0].profiles, [0, 2, 1, 0]);
        // m1's SMART alert and refused release, precomputed by the triggers.
        let page = smart_alerts(&store, now).await;
        assert_eq!(page.total, 1);
        let row = &page.rows[0];
        assert_eq!(row.id, "m1");
        assert_eq!(row.serial, "SN-m1");
        assert_eq!(row.model, "Dell Latitude E6410");
        assert_eq!(row.win11, "ineligible");
        assert_eq!(row.alerts & 11, 11);
        assert_eq!(row.refused_reason.as_deref(), Some("primtux v1 : ?"));
        let text_search = MachineQuery {
            text: Some("SN-m2".into()),
            limit: Some(50),
            ..Default::default()
        };
        let found = store
            .machines_in(&Scope::All, &text_search, now)
            .await
            .unwrap();
        assert_eq!(found.total, 1);
        let detail = store
            .machine_in(&Scope::All, "m1", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(detail.history.len(), 2);
        let paris = Scope::Nodes(vec![ScopeNode::parse("academie:Paris").unwrap()]);
        assert!(store.machine_in(&paris, "m1", now).await.unwrap().is_none());
        assert!(store.schools_in(&paris).await.unwrap().is_empty());
        assert_eq!(store.schools_in(&Scope::All).await.unwrap().len(), 1);
        assert_eq!(store.tokens_in(&Scope::All, &uai()).await.unwrap().len(), 1);
        // The audit: every machine enrolled and in use.
        let filter = AuditFilter {
            node: None,
            from: 0,
            to: now + 60,
            now,
        };
        let figures = store.audit_figures(&Scope::All, &filter, 5).await.unwrap();
        let totals = figures.totals();
        assert_eq!(totals[idx("inscrites")], 3);
        assert_eq!(totals[idx("en_service")], 3);
        let rows = store
            .audit_machines(&Scope::All, &filter, None, 2)
            .await
            .unwrap();
        assert_eq!(
            rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["m1", "m2"]
        );
        let rest = store
            .audit_machines(&Scope::All, &filter, Some("m2".into()), 2)
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        let m1 = store
            .audit_machine(&Scope::All, "m1")
            .await
            .unwrap()
            .unwrap();
        assert!(m1.facts.is_some());
        assert!(store.audit_machine(&paris, "m1").await.unwrap().is_none());
        assert!(
            store
                .audit_facts_stale(&nird_server::audit::facts_version(), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let paris_figures = store.audit_figures(&paris, &filter, 5).await.unwrap();
        assert!(paris_figures.schools.is_empty());
    });
}

#[test]
fn retention_prunes_old_history_but_keeps_the_latest_and_the_log() {
    on_both(|store, _| async move {
        let token = school_and_token(&store, 1, false).await;
        enroll(&store, &token, "m1").await.unwrap();
        for n in 0..3 {
            let (text, hash) = inventory("m1", 40 + n, false);
            let mut c = heartbeat("m1", &hash);
            c.inventory = Some(text);
            c.reports = vec![report(n as u64 + 1, ApplyOutcome::Applied)];
            store.checkin(c).await.unwrap();
        }
        assert_eq!(store.inventory_history_len("m1").await.unwrap(), 4);
        let log = store.audit_log().await.unwrap().len();
        let latest = store.latest_inventory("m1").await.unwrap();
        let future = time::OffsetDateTime::now_utc().unix_timestamp() + 10;
        let out = store.prune_history(future).await.unwrap();
        assert_eq!((out.inventory_rows, out.reports), (3, 3));
        assert_eq!(store.inventory_history_len("m1").await.unwrap(), 1);
        assert_eq!(store.latest_inventory("m1").await.unwrap(), latest);
        assert_eq!(store.audit_log().await.unwrap().len(), log);
        // The daily budget: past it, the day's newest row is replaced.
        for n in 0..5 {
            let (text, hash) = inventory("m1", 100 + n, n == 4);
            let mut c = heartbeat("m1", &hash);
            c.inventory = Some(text);
            c.max_inventory_changes_per_day = 2;
            store.checkin(c).await.unwrap();
        }
        assert_eq!(store.inventory_history_len("m1").await.unwrap(), 2);
        assert_eq!(
            store.latest_inventory("m1").await.unwrap(),
            Some(inventory("m1", 104, true).0.into_string())
        );
        // The replacing row's document reached the dashboard's columns too:
        // its disk is failing.
        assert_eq!(smart_alerts(&store, future).await.total, 1);
    });
}

/// An inventory whose 400-package list is upgraded `rounds` times, 10
/// packages a round (names and versions varied like a real list's), or
/// with other packages altogether when `other`.
fn upgraded(host: &str, rounds: usize, other: bool) -> (CanonicalObject, String) {
    let list: Vec<_> = (0..400usize)
        .map(|i| {
            let name = match other {
                false => format!(
                    "lib{}-{}",
                    ["gtk", "kde", "x11", "qt"][i % 4],
                    i * 7919 % 10007
                ),
                true => format!("autre-{i}"),
            };
            let upgrades = (1..=rounds).filter(|r| i % 40 == r % 40).count();
            json!({"name": name, "arch": "amd64", "section": "libs",
                   "version": format!("{}.{}-{}+deb12u{upgrades}", i % 13, i % 7, i % 3)})
        })
        .collect();
    let doc = json!({
        "schema_version": 2,
        "agent_version": "0.2.0",
        "identity": {"hostname": {"value": host}},
        "software": {"value": {"packages": list}},
    });
    let text = String::from_utf8(nird_proto::hash::canonical_json(&doc).unwrap()).unwrap();
    let hash = nird_proto::hash::sha256_hex(text.as_bytes());
    (CanonicalObject::from_text(text).unwrap(), hash)
}

#[test]
fn package_lists_are_stored_as_deltas_of_a_base_kept_while_needed() {
    on_both(|store, backend| async move {
        let token = school_and_token(&store, 2, false).await;
        enroll(&store, &token, "m1").await.unwrap();
        enroll(&store, &token, "m2").await.unwrap();
        let send = |id: &'static str, (text, hash): (CanonicalObject, String)| {
            let store = store.clone();
            async move {
                let mut c = heartbeat(id, &hash);
                c.inventory = Some(text.clone());
                store.checkin(c).await.unwrap();
                assert_eq!(
                    store.latest_inventory(id).await.unwrap(),
                    Some(text.into_string()),
                    "{id}: the exact document back"
                );
            }
        };
        let lists = || backend.count("SELECT COUNT(*) FROM software_lists");
        let deltas = || backend.count("SELECT COUNT(*) FROM software_lists WHERE base IS NOT NULL");
        // Both machines share the enrolment's list.
        assert_eq!((lists().await, deltas().await), (1, 0));
        // Nothing in common with the enrolment's list: stored whole, and
        // the shared list stays (m2 has it).
        send("m1", upgraded("m1", 0, false)).await;
        assert_eq!((lists().await, deltas().await), (2, 0));
        // An upgrade: a delta of the list m1 had, which stays as its base
        // though no machine has it.
        send("m1", upgraded("m1", 1, false)).await;
        assert_eq!((lists().await, deltas().await), (3, 1));
        let delta_bytes = backend
            .count("SELECT CAST(MAX(LENGTH(body)) AS BIGINT) FROM software_lists WHERE base IS NOT NULL")
            .await;
        let whole_bytes = backend
            .count(
                "SELECT CAST(MAX(LENGTH(body)) AS BIGINT) FROM software_lists WHERE base IS NULL",
            )
            .await;
        assert!(
            delta_bytes * 10 < whole_bytes,
            "{delta_bytes} / {whole_bytes}"
        );
        // The next upgrade is a delta of the same base; the previous delta
        // goes.
        send("m1", upgraded("m1", 2, false)).await;
        assert_eq!((lists().await, deltas().await), (3, 1));
        // m2 takes the same list: shared, and the enrolment's list goes.
        send("m2", upgraded("m1", 2, false)).await;
        assert_eq!((lists().await, deltas().await), (2, 1));
        // Another list altogether for m1: whole. m2 keeps the delta, so
        // its base stays.
        send("m1", upgraded("m1", 0, true)).await;
        assert_eq!((lists().await, deltas().await), (3, 1));
        // m2 follows: the delta goes, then its base.
        send("m2", upgraded("m1", 0, true)).await;
        assert_eq!((lists().await, deltas().await), (1, 0));
        // Many upgrades since the base: a delta would not pay, the list is
        // stored whole and becomes the next base.
        send("m1", upgraded("m1", 1, true)).await;
        assert_eq!((lists().await, deltas().await), (2, 1));
        send("m1", upgraded("m1", 40, true)).await;
        assert_eq!(
            backend
                .count("SELECT COUNT(*) FROM software_lists l JOIN machine_software m ON m.hash = l.hash WHERE m.machine_id = 'm1' AND l.base IS NULL")
                .await,
            1,
            "m1's list whole"
        );
        // m2 still has its list: the exact document back.
        assert_eq!(
            store.latest_inventory("m2").await.unwrap(),
            Some(upgraded("m1", 0, true).0.into_string())
        );
    });
}

#[test]
fn concurrent_moves_between_shared_lists_lose_no_list_and_keep_none_unused() {
    // Machines moving at once between lists they share (a room upgrading
    // together, some machines going back): every machine's list stays
    // readable, and no list is kept that nothing uses. On PostgreSQL the
    // check-ins run in concurrent transactions: one checking a list exists
    // while another deletes it as unused must not leave a machine pointing
    // at nothing, nor two machines leaving a list both keep it.
    on_both(|store, backend| async move {
        const MACHINES: usize = 8;
        let token = school_and_token(&store, MACHINES as u32, false).await;
        let ids: Vec<String> = (0..MACHINES).map(|i| format!("c{i}")).collect();
        for id in &ids {
            enroll(&store, &token, id).await.unwrap();
        }
        // Three lists: A, C an upgrade of A (a delta of it when a machine
        // on A takes it first), B unrelated.
        let lists = [(0, false), (1, false), (0, true)];
        let mut seed = 7u64;
        let mut last = vec![None; MACHINES];
        for _ in 0..30 {
            let mut tasks = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (rounds, other) = lists[(seed >> 33) as usize % lists.len()];
                let (text, hash) = upgraded(id, rounds, other);
                last[i] = Some(text.clone().into_string());
                let (store, id) = (store.clone(), id.clone());
                tasks.push(tokio::spawn(async move {
                    let mut c = heartbeat(&id, &hash);
                    c.inventory = Some(text);
                    store.checkin(c).await
                }));
            }
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        }
        assert_eq!(
            backend
                .count(
                    "SELECT COUNT(*) FROM machine_software m
                     WHERE NOT EXISTS (SELECT 1 FROM software_lists l WHERE l.hash = m.hash)"
                )
                .await,
            0,
            "machines pointing at a deleted list"
        );
        assert_eq!(
            backend
                .count(
                    "SELECT COUNT(*) FROM software_lists l
                     WHERE NOT EXISTS (SELECT 1 FROM machine_software m WHERE m.hash = l.hash)
                       AND NOT EXISTS (SELECT 1 FROM software_lists d WHERE d.base = l.hash)"
                )
                .await,
            0,
            "lists kept that nothing uses"
        );
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(
                store.latest_inventory(id).await.unwrap(),
                last[i],
                "{id}: its last document back"
            );
        }
    });
}

#[test]
fn a_closed_store_refuses_calls() {
    on_both(|store, _| async move {
        store.add_school("test", school(UAI, false)).await.unwrap();
        store.close().await.unwrap();
        assert!(matches!(
            store.list_schools().await,
            Err(StoreError::Closed)
        ));
    });
}

#[test]
fn concurrent_enrolments_take_exactly_the_token_uses() {
    on_both(|store, _| async move {
        let token = school_and_token(&store, 30, false).await;
        // 41 enrolments at once for 30 uses, one of them reusing another's
        // id: batched together (PostgreSQL), each gets its own answer; a
        // failed one takes no use and leaves nothing behind.
        let mut tasks = Vec::new();
        for n in 0..41 {
            let store = store.clone();
            let token = token.clone();
            let id = if n == 40 {
                "c0".to_owned()
            } else {
                format!("c{n}")
            };
            tasks.push(tokio::spawn(async move {
                (id.clone(), enroll(&store, &token, &id).await)
            }));
        }
        let mut enrolled = Vec::new();
        let mut exhausted = 0;
        for t in tasks {
            match t.await.unwrap() {
                (id, Ok(status)) => {
                    assert_eq!(status, MachineStatus::Active);
                    enrolled.push(id);
                }
                (_, Err(StoreError::Token(TokenProblem::Exhausted))) => exhausted += 1,
                (id, Err(e)) => assert_eq!(id, "c0", "{e}"),
            }
        }
        assert_eq!(enrolled.len(), 30, "{enrolled:?}");
        assert!(exhausted >= 10, "{exhausted}");
        let tokens = store.list_tokens().await.unwrap();
        assert_eq!(tokens[0].uses, 30);
        let machines = store.list_machines(None).await.unwrap();
        assert_eq!(machines.len(), 30);
        for id in &enrolled {
            assert!(store.authenticate(id, &format!("s-{id}")).await.is_ok());
            let (text, _) = inventory(id, 50, false);
            assert_eq!(
                store.latest_inventory(id).await.unwrap(),
                Some(text.into_string())
            );
            assert_eq!(store.inventory_history_len(id).await.unwrap(), 1);
        }
    });
}

#[test]
fn concurrent_check_ins_are_each_answered_after_their_commit() {
    on_both(|store, _| async move {
        let token = school_and_token(&store, 5, false).await;
        let ids = ["m1", "m2", "m3", "m4", "m5"];
        for id in ids {
            enroll(&store, &token, id).await.unwrap();
        }
        // 300 check-ins at once: group commit (SQLite) and batches
        // (PostgreSQL) mix machines, reports and bad credentials; each
        // caller gets its own answer, a bad one fails alone.
        let mut tasks = Vec::new();
        for n in 0..300u64 {
            let store = store.clone();
            let id = ids[(n % 5) as usize];
            tasks.push(tokio::spawn(async move {
                let (_, hash) = inventory(id, 50, false);
                let mut c = heartbeat(id, &hash);
                if n % 7 == 0 {
                    c.secret_hash = "faux".into();
                }
                c.reports = vec![report(n + 1, ApplyOutcome::Applied)];
                (n, store.checkin(c).await)
            }));
        }
        let mut ok = [0u64; 5];
        for t in tasks {
            let (n, result) = t.await.unwrap();
            match result {
                Ok(out) => {
                    assert_ne!(n % 7, 0);
                    assert!(out.acked_seq > n, "{n}: acked {}", out.acked_seq);
                    ok[(n % 5) as usize] += 1;
                }
                Err(StoreError::BadCredential) => assert_eq!(n % 7, 0),
                Err(e) => panic!("{n}: {e}"),
            }
        }
        for (i, id) in ids.iter().enumerate() {
            let m = store
                .list_machines(None)
                .await
                .unwrap()
                .into_iter()
                .find(|m| m.id == *id)
                .unwrap();
            assert_eq!(m.checkins, ok[i], "{id}");
            assert_eq!(store.reports(id).await.unwrap().len() as u64, ok[i]);
        }
    });
}

/// A release the newest index pins, then revoked by a keyring: its profile
/// is no longer given, nor are the profiles only it included (found by
/// review: the closure followed the revoked release's includes), and the
/// dashboard reads « aucun profil », as the closure says.
#[test]
fn a_revoked_pinned_release_gives_nothing_not_even_its_includes() {
    on_both(|store, _| async move {
        let token = school_and_token(&store, 10, false).await;
        enroll(&store, &token, "m1").await.unwrap();
        let release = |name: &str, includes: Vec<String>| NewRelease {
            name: name.into(),
            version: 1,
            bytes: format!("[profile]\nname = \"{name}\"\nversion = 1\n").into_bytes(),
            minisig: "untrusted comment: test\n".into(),
            blobs: vec![],
            includes,
            signed_by: "cle".into(),
        };
        let (a, b) = (
            release("salle", vec!["base".into()]),
            release("base", vec![]),
        );
        let entries = [&a, &b]
            .iter()
            .map(|r| (r.name.clone(), 1, nird_proto::hash::sha256_hex(&r.bytes)))
            .collect();
        for r in [b.clone(), a.clone()] {
            store.publish_release("test", r).await.unwrap();
        }
        store
            .publish_index(
                "test",
                NewIndex {
                    version: 1,
                    bytes: b"index".to_vec(),
                    signature: "s".into(),
                    expires: "2099-01-01".into(),
                    entries,
                },
            )
            .await
            .unwrap();
        store
            .assign_school("test", &uai(), vec!["salle".into()])
            .await
            .unwrap();
        let names = |c: Vec<ProfileRef>| c.into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(
            names(store.assigned_closure("m1").await.unwrap()),
            ["base", "salle"]
        );
        store
            .publish_keyring(
                "test",
                NewKeyring {
                    version: 1,
                    bytes: b"keyring".to_vec(),
                    signatures: "s".into(),
                    key_ids: vec![],
                    expires: "2099-01-01".into(),
                    revoke: vec![ProfileRef {
                        name: "salle".into(),
                        version: 1,
                    }],
                },
            )
            .await
            .unwrap();
        assert!(store.assigned_closure("m1").await.unwrap().is_empty());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let m1 = store
            .machine_in(&Scope::All, "m1", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m1.row.profile, ProfileState::Unassigned);
    });
}
