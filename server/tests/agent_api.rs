//! The agent API over real TLS on 127.0.0.1:0: enrolment with every kind of
//! token, check-ins with and without inventory, idempotent reports, every
//! error code, profiles and blobs, and restarts keeping all data.

mod common;

use common::*;
use nird_proto::api::{CheckinRequest, ProfileRef};
use nird_proto::uai::Uai;
use nird_server::secrets::hash_secret;
use nird_server::store::{NewToken, SqliteStore, Store};

/// A synchronous handle on the store of a data dir (for checks the API does
/// not expose, and for tokens the CLI refuses to make, like expired ones).
struct Db {
    rt: tokio::runtime::Runtime,
    store: SqliteStore,
}

impl Db {
    fn open(f: &Fixture) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = SqliteStore::open(&f.data.database()).unwrap();
        Db { rt, store }
    }
    fn run<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(fut)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.store.close());
    }
}

/// `assign --machine M --exclude PROFILE` through the CLI.
fn exclude(f: &Fixture, m: &Machine, profile: &str) {
    cli(&[
        "assign",
        "--data-dir",
        f.dir(),
        "--machine",
        &m.id,
        "--exclude",
        profile,
    ]);
}

#[test]
fn enrolment_with_valid_expired_exhausted_and_revoked_tokens() {
    let f = Fixture::new();
    let server = Server::start(&f.data);
    let client = f.client();

    // Valid, two uses.
    let token = f.token(&["--uses", "2", "--expires", "7d"]);
    let a = enroll_raw(&client, &server, &token, "pc-01");
    assert_eq!(a.status, 200, "{}", a.text());
    let body = a.json();
    assert_eq!(body["status"], "active");
    assert_eq!(body["checkin_interval_secs"], 900);
    assert_eq!(body["machine_id"].as_str().unwrap().len(), 32);
    assert!(body["server_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(enroll_raw(&client, &server, &token, "pc-02").status, 200);

    // Exhausted.
    let third = enroll_raw(&client, &server, &token, "pc-03");
    assert_eq!(third.status, 401);
    assert_eq!(third.json()["error"], "unauthorized");
    assert!(third.json()["message"].as_str().unwrap().contains("épuisé"));

    // Unknown.
    let unknown = enroll_raw(&client, &server, "pas-un-jeton", "pc-04");
    assert_eq!(unknown.status, 401);
    assert!(
        unknown.json()["message"]
            .as_str()
            .unwrap()
            .contains("inconnu")
    );

    // Revoked.
    let revoked = f.token(&[]);
    let list = cli(&["token", "list", "--data-dir", f.dir()]);
    let newest_id = list
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    cli(&["token", "revoke", "--data-dir", f.dir(), &newest_id]);
    let r = enroll_raw(&client, &server, &revoked, "pc-05");
    assert_eq!(r.status, 401);
    assert!(r.json()["message"].as_str().unwrap().contains("révoqué"));

    // Expired: the CLI refuses past dates, so it is made through the store.
    let expired = "jeton-expire-pour-le-test";
    let db = Db::open(&f);
    db.run(db.store.create_token(
        "test",
        NewToken {
            school: Uai::parse(UAI).unwrap(),
            token_hash: hash_secret(expired),
            expires_at: Some(time::OffsetDateTime::now_utc().unix_timestamp() - 60),
            max_uses: 10,
        },
    ))
    .unwrap();
    let e = enroll_raw(&client, &server, expired, "pc-06");
    assert_eq!(e.status, 401);
    assert!(e.json()["message"].as_str().unwrap().contains("expiré"));

    // Refused enrolments created nothing.
    let machines = db.run(db.store.list_machines(None)).unwrap();
    assert_eq!(machines.len(), 2);
    let tokens = db.run(db.store.list_tokens()).unwrap();
    assert!(tokens.iter().all(|t| t.uses <= t.max_uses));
    let audit = db.run(db.store.audit_log()).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "token.revoke" && a.actor == "cli:testeur")
    );
}

#[test]
fn checkin_without_then_with_inventory_and_idempotent_reports() {
    let f = Fixture::new();
    let server = Server::start(&f.data);
    let client = f.client();
    let m = enroll(&client, &server, &f.token(&[]), "pc-01");

    // Same hash: heartbeat only, no inventory requested.
    let r = m.check_in(&client, &server);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["send_inventory"], false);
    assert_eq!(body["acked_seq"], 0);
    assert_eq!(body["status"], "active");
    assert_eq!(body["next_checkin_secs"], 900);

    // New hash without the inventory: the server asks for it and keeps the old one.
    let (inv2, hash2) = inventory("pc-01", 8192);
    let r = checkin(&client, &server, &m.auth, &heartbeat(&hash2));
    assert_eq!(r.json()["send_inventory"], true);

    // With it: stored, history grows, no more asking.
    let req = CheckinRequest {
        inventory_hash: hash2.clone(),
        inventory: Some(inv2),
        inventory_delta: None,
        applied: vec![ProfileRef {
            name: "nird-base".into(),
            version: 1,
        }],
        reports: vec![report(1), report(2)],
        trust: None,
    };
    let r = checkin(&client, &server, &m.auth, &req);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["send_inventory"], false);
    assert_eq!(r.json()["acked_seq"], 2);
    let r = checkin(&client, &server, &m.auth, &heartbeat(&hash2));
    assert_eq!(r.json()["send_inventory"], false);

    // A retry of the same reports (lost reply) stores nothing twice.
    let mut retry = req.clone();
    retry.inventory = None;
    retry.reports.push(report(3));
    let r = checkin(&client, &server, &m.auth, &retry);
    assert_eq!(r.json()["acked_seq"], 3);

    let db = Db::open(&f);
    let reports = db.run(db.store.reports(&m.id)).unwrap();
    assert_eq!(reports.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(reports[0].resources[0].id, "package:vlc");
    assert_eq!(db.run(db.store.inventory_history_len(&m.id)).unwrap(), 2);
    let latest: serde_json::Value =
        serde_json::from_str(&db.run(db.store.latest_inventory(&m.id)).unwrap().unwrap()).unwrap();
    assert_eq!(latest["memory_mb"], 8192);
    let machine = &db.run(db.store.list_machines(None)).unwrap()[0];
    assert_eq!(machine.inventory_hash, hash2);
    assert_eq!(machine.checkins, 5);
    assert!(machine.last_seen.is_some());
}

#[test]
fn every_error_code_and_nothing_half_written() {
    let f = Fixture::new();
    let server = Server::start(&f.data);
    let client = f.client();
    let m = enroll(&client, &server, &f.token(&["--uses", "2"]), "pc-01");
    let hb = serde_json::to_vec(&heartbeat(&m.inventory_hash)).unwrap();
    let url = server.api("/checkin");

    // 401: no credential, malformed, unknown machine, wrong secret.
    assert_eq!(client.post(&url, None, &hb).status, 401);
    assert_eq!(client.post(&url, Some("Basic abc"), &hb).status, 401);
    let unknown = nird_proto::api::machine_authorization(&"0".repeat(32), "secret");
    assert_eq!(client.post(&url, Some(&unknown), &hb).status, 401);
    let wrong = nird_proto::api::machine_authorization(&m.id, "not-the-secret");
    let r = client.post(&url, Some(&wrong), &hb);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorized");

    // 400 naming the field: wrong type deep inside, missing field, bad hash,
    // inventory not matching its hash, syntax error.
    let mut bad = serde_json::to_value(CheckinRequest {
        reports: vec![report(1)],
        trust: None,
        ..heartbeat(&m.inventory_hash)
    })
    .unwrap();
    bad["reports"][0]["seq"] = serde_json::json!("un");
    let r = client.post(&url, Some(&m.auth), &serde_json::to_vec(&bad).unwrap());
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("reports[0].seq"),
        "{}",
        r.text()
    );
    let r = client.post(&url, Some(&m.auth), br#"{"applied": []}"#);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("inventory_hash")
    );
    let r = client.post(&url, Some(&m.auth), br#"{"inventory_hash": "abc"}"#);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("inventory_hash")
    );
    let (_, other_hash) = inventory("autre", 1);
    let (inv, _) = inventory("pc-01", 4096);
    let mismatched = CheckinRequest {
        inventory: Some(inv),
        ..heartbeat(&other_hash)
    };
    assert_eq!(checkin(&client, &server, &m.auth, &mismatched).status, 400);
    let r = client.post(&url, Some(&m.auth), b"{not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "bad_request");
    // A report batch with one invalid report stores none of them.
    let mut half = CheckinRequest {
        reports: vec![report(1), report(0)],
        trust: None,
        ..heartbeat(&m.inventory_hash)
    };
    assert_eq!(checkin(&client, &server, &m.auth, &half).status, 400);
    half.reports.truncate(1);
    // A profile name no profile can have (trailing dash) is refused.
    let mut misnamed = report(1);
    misnamed.profile = "nird-base-".into();
    let r = checkin(
        &client,
        &server,
        &m.auth,
        &CheckinRequest {
            reports: vec![misnamed],
            trust: None,
            ..heartbeat(&m.inventory_hash)
        },
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("reports[0].profile"),
        "{}",
        r.text()
    );

    // 413: body over the limit.
    let big = vec![b' '; nird_proto::api::MAX_BODY_BYTES + 1];
    let r = client.post(&url, Some(&m.auth), &big);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "payload_too_large");

    // 404: unknown profile, unknown blob, unknown route.
    assert_eq!(
        client
            .get(&server.api("/profiles/nird-base/1"), Some(&m.auth))
            .status,
        404
    );
    assert_eq!(
        client
            .get(
                &server.api(&format!("/blobs/{}", "a".repeat(64))),
                Some(&m.auth)
            )
            .status,
        404
    );
    assert_eq!(client.get(&server.api("/nope"), None).status, 404);
    // ... but only for an authenticated machine.
    assert_eq!(
        client
            .get(&server.api("/profiles/nird-base/1"), None)
            .status,
        401
    );

    // None of the refused calls changed the machine.
    {
        let db = Db::open(&f);
        let machine = &db.run(db.store.list_machines(None)).unwrap()[0];
        assert_eq!(machine.checkins, 0);
        assert_eq!(machine.acked_seq, 0);
        assert!(db.run(db.store.reports(&m.id)).unwrap().is_empty());
    }
    assert_eq!(
        checkin(&client, &server, &m.auth, &half).json()["acked_seq"],
        1
    );

    // 403: retired machine, on every call.
    cli(&["machine", "retire", "--data-dir", f.dir(), &m.id]);
    let r = client.post(&url, Some(&m.auth), &hb);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "forbidden");
    assert_eq!(
        client
            .get(&server.api("/profiles/nird-base/1"), Some(&m.auth))
            .status,
        403
    );
    // A retired machine cannot be approved back.
    let out = cli_raw(&["machine", "approve", "--data-dir", f.dir(), &m.id]);
    assert!(!out.status.success());
}

#[test]
fn pending_machines_get_no_profiles_until_approved() {
    let f = Fixture::with_school_flags(&["--require-approval"]);
    let server = Server::start(&f.data);
    let client = f.client();
    let m = enroll(&client, &server, &f.token(&[]), "pc-01");

    // A release assigned to the school, published straight into the store
    // (publication itself is tested in publish.rs).
    let db = Db::open(&f);
    db.run(db.store.publish_release(
        "test",
        nird_server::store::NewRelease {
            name: "nird-base".into(),
            version: 4,
            bytes: b"exact bytes\n".to_vec(),
            minisig: "signature".into(),
            blobs: vec![],
            includes: vec![],
            signed_by: "test".into(),
        },
    ))
    .unwrap();
    drop(db);
    cli(&[
        "assign",
        "--data-dir",
        f.dir(),
        "--school",
        UAI,
        "nird-base",
        "primtux",
    ]);

    let r = m.check_in(&client, &server).json();
    assert_eq!(r["status"], "pending");
    assert_eq!(r["assigned"], serde_json::json!([]));

    cli(&["machine", "approve", "--data-dir", f.dir(), &m.id]);
    let r = m.check_in(&client, &server).json();
    assert_eq!(r["status"], "active");
    // primtux has no release yet: only nird-base is listed.
    assert_eq!(
        r["assigned"],
        serde_json::json!([{"name": "nird-base", "version": 4}])
    );

    let bytes = client.get(&server.api("/profiles/nird-base/4"), Some(&m.auth));
    assert_eq!(bytes.status, 200);
    assert_eq!(bytes.body, b"exact bytes\n");
    let sig = client.get(&server.api("/profiles/nird-base/4.minisig"), Some(&m.auth));
    assert_eq!(sig.text(), "signature");

    // Machine override: excluded here only, and no longer downloadable.
    exclude(&f, &m, "nird-base");
    let r = m.check_in(&client, &server).json();
    assert_eq!(r["assigned"], serde_json::json!([]));
    let bytes = client.get(&server.api("/profiles/nird-base/4"), Some(&m.auth));
    assert_eq!(bytes.status, 404);
}

#[test]
fn assigned_list_includes_what_assigned_profiles_include() {
    let f = Fixture::new();
    let server = Server::start(&f.data);
    let client = f.client();
    let m = enroll(&client, &server, &f.token(&[]), "pc-01");
    let db = Db::open(&f);
    let release = |name: &str, version: u64, includes: &[&str]| nird_server::store::NewRelease {
        name: name.into(),
        version,
        bytes: format!("{name} {version}\n").into_bytes(),
        minisig: "signature".into(),
        blobs: vec![],
        includes: includes.iter().map(|s| s.to_string()).collect(),
        signed_by: "test".into(),
    };
    // nird-base v1 then v2; primtux includes nird-base which includes fonts.
    for r in [
        release("fonts", 3, &[]),
        release("nird-base", 1, &[]),
        release("nird-base", 2, &["fonts"]),
        release("primtux", 7, &["nird-base"]),
        release("linux-nird", 1, &["nird-base"]),
    ] {
        db.run(db.store.publish_release("test", r)).unwrap();
    }
    drop(db);
    cli(&["assign", "--data-dir", f.dir(), "--school", UAI, "primtux"]);
    let r = m.check_in(&client, &server).json();
    assert_eq!(
        r["assigned"],
        serde_json::json!([
            {"name": "fonts", "version": 3},
            {"name": "nird-base", "version": 2},
            {"name": "primtux", "version": 7},
        ])
    );
    // Excluding an included profile on the machine cannot break primtux.
    exclude(&f, &m, "nird-base");
    let r = m.check_in(&client, &server).json();
    assert_eq!(r["assigned"].as_array().unwrap().len(), 3);
}

#[test]
fn restart_keeps_all_data() {
    let f = Fixture::new();
    let client = f.client();
    let (m, hash2) = {
        let server = Server::start(&f.data);
        let m = enroll(&client, &server, &f.token(&["--uses", "5"]), "pc-01");
        let (inv2, hash2) = inventory("pc-01", 16384);
        let req = CheckinRequest {
            inventory_hash: hash2.clone(),
            inventory: Some(inv2),
            inventory_delta: None,
            applied: vec![],
            reports: vec![report(1)],
            trust: None,
        };
        assert_eq!(checkin(&client, &server, &m.auth, &req).status, 200);
        server.stop().unwrap();
        (m, hash2)
    };
    let server = Server::start(&f.data);
    // Same credential, same inventory hash known, same acked seq.
    let r = checkin(&client, &server, &m.auth, &heartbeat(&hash2));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["send_inventory"], false);
    assert_eq!(r.json()["acked_seq"], 1);
    // The token's remaining uses survived too.
    enroll(&client, &server, &f.token(&[]), "pc-02");
    server.stop().unwrap();
    let list = cli(&["machine", "list", "--data-dir", f.dir()]);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(&m.id));
    let line = list.lines().find(|l| l.contains(&m.id)).unwrap();
    assert!(line.contains("\t2 check-ins\t"), "{line}");
}

#[test]
fn openapi_and_metrics() {
    let f = Fixture::new();
    let server = Server::start(&f.data);
    let client = f.client();
    let doc = client.get(&server.api("/openapi.json"), None);
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/enroll",
        "/api/v1/checkin",
        "/api/v1/profiles/{name}/{file}",
        "/api/v1/blobs/{sha256}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let m = enroll(&client, &server, &f.token(&[]), "pc-01");
    m.check_in(&client, &server);
    let token = std::fs::read_to_string(f.data.metrics_token()).unwrap();
    let metrics = client
        .get(
            &server.url("/metrics"),
            Some(&format!("Bearer {}", token.trim())),
        )
        .text();
    assert!(
        metrics.contains("nird_machines{status=\"active\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nird_http_requests_total{route=\"/api/v1/checkin\",status=\"200\"} 1")
    );
    assert!(
        metrics.contains("nird_http_request_duration_seconds_count{route=\"/api/v1/enroll\"} 1")
    );
}

#[test]
fn operator_supplied_certificate_replaces_the_generated_one() {
    let f = Fixture::new();
    let pki = nird_server::tls::generate(&["127.0.0.1".into()]).unwrap();
    let (cert, key, ca) = (
        tmp_path(&f, "operator.crt"),
        tmp_path(&f, "operator.key"),
        tmp_path(&f, "operator-ca.crt"),
    );
    std::fs::write(&cert, &pki.server_chain_pem).unwrap();
    std::fs::write(&key, &pki.server_key_pem).unwrap();
    std::fs::write(&ca, &pki.ca_cert_pem).unwrap();
    let server = Server::start_with_cert(&f.data, Some((cert, key)));
    let url = server.api("/openapi.json");
    // Clients pinned to the operator's CA get in; the generated CA no longer works.
    assert!(Client::new(&ca).handshake_ok(&url));
    assert!(!f.client().handshake_ok(&url));
}
