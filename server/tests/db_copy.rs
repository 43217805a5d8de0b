//! `nird-server db copy`: a populated SQLite deployment copied to a real
//! PostgreSQL gives the same answers to the admin commands and the same
//! inventories (package lists stored as deltas included); a non-empty
//! target is refused; the copy goes on working as a database.

mod common;

use common::*;
use nird_proto::api::CheckinRequest;
use nird_server::store::Store as _;
use serde_json::{Value, json};

/// pc-0's inventory with 1,000 packages: [`inventory`]'s, plus a list in
/// which `round` upgraded two packages (so that the server stores it as a
/// delta of the list before).
fn with_packages(ram_mb: u64, round: u64) -> (Value, String) {
    let (mut inv, _) = inventory("pc-0", ram_mb);
    let packages: Vec<Value> = (0..1000)
        .map(|i| {
            let upgrades = if i % 500 == 7 { round } else { 0 };
            json!({"arch": "amd64", "name": format!("paquet-{i:04}"), "section": "libs",
                   "size_kib": i * 13 % 977, "version": format!("{}.{}-{upgrades}", i % 11, i % 7)})
        })
        .collect();
    inv["software"] = json!({"value": {"packages": packages}});
    let hash = nird_proto::hash::content_hash(&inv).unwrap();
    (inv, hash)
}

/// The canonical text of an inventory, as the store gives it back.
fn text(inv: &Value) -> String {
    String::from_utf8(nird_proto::hash::canonical_json(inv).unwrap()).unwrap()
}

/// pc-0's latest inventory in the copied PostgreSQL database, and how
/// many of its package lists are deltas.
fn on_postgresql(url: &str, machine: &str) -> (Option<String>, i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = nird_server::store::pg::PgStore::connect(url).await.unwrap();
        let latest = store.latest_inventory(machine).await.unwrap();
        store.close().await.unwrap();
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let deltas: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM software_lists WHERE base IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (latest, deltas)
    })
}

/// The admin commands whose answers must not change, with their args.
fn answers(f: &Fixture, machine: &str, database: Option<&str>) -> Vec<String> {
    let commands: [&[&str]; 7] = [
        &["machine", "list"],
        &["machine", "reports", machine],
        &["machine", "reports", machine, "--json"],
        &["audit"],
        &["school", "list"],
        &["token", "list"],
        &["user", "list"],
    ];
    commands
        .iter()
        .map(|c| {
            let mut args = c.to_vec();
            args.extend(["--data-dir", f.dir()]);
            if let Some(url) = database {
                args.extend(["--database", url]);
            }
            cli(&args)
        })
        .collect()
}

#[test]
fn a_copied_deployment_answers_the_same_on_postgresql() {
    let Some(cluster) = common::pg::shared() else {
        return;
    };
    // A SQLite deployment with some life in it: machines enrolled and
    // checking in with reports and a new inventory, one retired, a token
    // revoked, accounts.
    let f = Fixture::new();
    let token = f.token(&["--uses", "5"]);
    let server = Server::start(&f.data);
    let client = f.client();
    let machines: Vec<Machine> = (0..3)
        .map(|i| enroll(&client, &server, &token, &format!("pc-{i}")))
        .collect();
    for (i, m) in machines.iter().enumerate() {
        for seq in 1..=(i as u64 + 2) {
            let (inv, hash) = match i {
                0 => with_packages(4096 + seq * 1024, seq),
                _ => inventory(&format!("pc-{i}"), 4096 + seq * 1024),
            };
            let req = CheckinRequest {
                inventory: Some(inv),
                reports: vec![report(seq)],
                ..heartbeat(&hash)
            };
            assert_eq!(checkin(&client, &server, &m.auth, &req).status, 200);
        }
    }
    server.stop().unwrap();
    cli(&["machine", "retire", &machines[2].id, "--data-dir", f.dir()]);
    cli(&["token", "revoke", "1", "--data-dir", f.dir()]);
    f.token(&[]);
    cli(&[
        "user",
        "add",
        "lea",
        "--role",
        "school",
        "--school",
        UAI,
        "--data-dir",
        f.dir(),
    ]);
    let before = answers(&f, &machines[0].id, None);
    assert!(before[0].contains(&machines[2].id) && before[0].contains("retired"));
    assert!(before[2].contains("\"seq\": 2"), "{}", before[2]);
    assert!(before[3].contains("token.revoke") && before[3].contains("machine.status"));

    let url = cluster.database();
    let from = format!("sqlite:{}", f.data.database().display());
    let out = cli(&["db", "copy", "--from", &from, "--to", &url]);
    assert!(out.contains("Copie vérifiée"), "{out}");
    assert!(out.contains("audit_log"), "{out}");
    assert_eq!(answers(&f, &machines[0].id, Some(&url)), before);
    // pc-0's second list was stored as a delta of its first: copied as
    // such, it still reads back as the exact document.
    let (latest, deltas) = on_postgresql(&url, &machines[0].id);
    assert_eq!(latest, Some(text(&with_packages(4096 + 2 * 1024, 2).0)));
    assert_eq!(deltas, 1);

    // A second copy into the now populated database is refused, and
    // changes nothing.
    let again = cli_raw(&["db", "copy", "--from", &from, "--to", &url]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("n'est pas vide"), "{err}");
    assert_eq!(answers(&f, &machines[0].id, Some(&url)), before);

    // The copy is a working database: ids continue after the copied ones,
    // the audit log is still append-only, check-ins go on.
    let token2 = cli(&[
        "token",
        "create",
        "--school",
        UAI,
        "--data-dir",
        f.dir(),
        "--database",
        &url,
    ]);
    assert!(!token2.trim().is_empty());
    let tokens = cli(&["token", "list", "--data-dir", f.dir(), "--database", &url]);
    assert_eq!(
        tokens.lines().filter(|l| l.contains(UAI)).count(),
        3,
        "{tokens}"
    );
    let db = url.rsplit('/').next().unwrap();
    let refused = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "/usr/lib/postgresql/*/bin/psql -h 127.0.0.1 -p {} -U nird -d {db} \
             -v ON_ERROR_STOP=1 -c 'DELETE FROM audit_log' 2>&1",
            cluster.port
        ))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stdout).contains("append-only"));
    let serve = common::serve::ServeProcess::start_with(&f, &["--database", &url]);
    let r = client.post(
        &serve.api("/checkin"),
        Some(&machines[0].auth),
        &serde_json::to_vec(&heartbeat(&with_packages(4096 + 2 * 1024, 2).1)).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["acked_seq"], 2);
    assert!(!r.json()["send_inventory"].as_bool().unwrap());
    // The next upgrade is a delta of the copied base.
    let (inv, hash) = with_packages(4096 + 2 * 1024, 3);
    let req = CheckinRequest {
        inventory: Some(inv.clone()),
        ..heartbeat(&hash)
    };
    let r = client.post(
        &serve.api("/checkin"),
        Some(&machines[0].auth),
        &serde_json::to_vec(&req).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    drop(serve);
    assert_eq!(
        on_postgresql(&url, &machines[0].id),
        (Some(text(&inv)), 1),
        "the new list a delta of the copied base, the previous delta gone"
    );
}

#[test]
fn db_copy_refuses_bad_arguments() {
    for (from, to, message) in [
        ("/tmp/x.db", "postgres://x@127.0.0.1/x", "sqlite:CHEMIN"),
        ("sqlite:/tmp/x.db", "/tmp/y", "postgres://"),
        (
            "sqlite:/nonexistent/nird.db",
            "postgres://u:secret@127.0.0.1:1/x",
            "introuvable",
        ),
    ] {
        let out = cli_raw(&["db", "copy", "--from", from, "--to", to]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
