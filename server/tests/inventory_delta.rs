//! Inventories with full package lists over real TLS: gzip-compressed
//! bodies (bounded once inflated, other encodings refused), inventory deltas
//! rebuilt into the exact document the agent holds, and deltas the server
//! cannot apply (unknown base, wrong result) storing nothing and asking for
//! the full document.

mod common;

use common::*;
use nird_proto::api::CheckinRequest;
use nird_proto::inventory::delta::{self, InventoryDelta};
use nird_server::store::{SqliteStore, Store};
use serde_json::{Value, json};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A schema-2-like document with `n` packages, the first `upgraded` of them
/// at version 2.
fn document(hostname: &str, n: usize, upgraded: usize) -> (Value, String) {
    let packages: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "name": format!("paquet-{i:05}"),
                "version": if i < upgraded { "2.0-1" } else { "1.0-1" },
                "arch": "amd64",
                "section": "misc",
                "size_kib": 100 + i,
            })
        })
        .collect();
    let doc = json!({
        "schema_version": 2,
        "identity": {"hostname": {"value": hostname}},
        "software": {"value": {"packages": packages}},
    });
    let hash = nird_proto::hash::content_hash(&doc).unwrap();
    (doc, hash)
}

fn stored(f: &Fixture, machine: &str) -> (Option<Value>, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = SqliteStore::open(&f.data.database()).unwrap();
    let latest = rt.block_on(store.latest_inventory(machine)).unwrap();
    let rows = rt.block_on(store.inventory_history_len(machine)).unwrap();
    rt.block_on(store.close()).unwrap();
    (latest.map(|t| serde_json::from_str(&t).unwrap()), rows)
}

#[test]
fn full_lists_travel_compressed_and_changes_as_deltas() {
    let f = Fixture::new();
    let server = Server::start(&f.data);
    let client = f.client();
    let m = enroll(&client, &server, &f.token(&[]), "pc-01");
    let url = server.api("/checkin");

    // The full document, gzip-compressed.
    let (base, base_hash) = document("pc-01", 2500, 0);
    let full = serde_json::to_vec(&CheckinRequest {
        inventory: Some(base.clone()),
        ..heartbeat(&base_hash)
    })
    .unwrap();
    let r = client.post_encoded(&url, &m.auth, "gzip", &gzip(&full));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["send_inventory"], false);
    assert_eq!(stored(&f, &m.id), (Some(base.clone()), 2));

    // A 20-package upgrade as a delta: rebuilt into the very document.
    let (new, new_hash) = document("pc-01", 2500, 20);
    let d = delta::diff(&base, &new, &base_hash).unwrap();
    assert_eq!(d.software.as_ref().unwrap().upserted.len(), 20);
    let body = serde_json::to_vec(&CheckinRequest {
        inventory_delta: Some(d.clone()),
        ..heartbeat(&new_hash)
    })
    .unwrap();
    let compressed = gzip(&body);
    assert!(
        compressed.len() * 10 < gzip(&full).len(),
        "delta {} B vs full {} B",
        compressed.len(),
        gzip(&full).len()
    );
    let r = client.post_encoded(&url, &m.auth, "gzip", &compressed);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["send_inventory"], false);
    assert_eq!(stored(&f, &m.id), (Some(new.clone()), 3));

    // The same delta again: its base is no longer the server's → nothing
    // stored, full document asked.
    let (newer, newer_hash) = document("pc-01", 2500, 40);
    let stale = InventoryDelta {
        base_hash: base_hash.clone(),
        ..delta::diff(&base, &newer, &base_hash).unwrap()
    };
    let r = checkin(
        &client,
        &server,
        &m.auth,
        &CheckinRequest {
            inventory_delta: Some(stale),
            ..heartbeat(&newer_hash)
        },
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["send_inventory"], true);
    assert_eq!(stored(&f, &m.id), (Some(new.clone()), 3));

    // A delta whose result does not hash to the announced hash: the same.
    let wrong = delta::diff(&new, &newer, &new_hash).unwrap();
    let r = checkin(
        &client,
        &server,
        &m.auth,
        &CheckinRequest {
            inventory_delta: Some(wrong.clone()),
            ..heartbeat(&base_hash)
        },
    );
    assert_eq!(r.json()["send_inventory"], true);
    assert_eq!(stored(&f, &m.id), (Some(new.clone()), 3));

    // Both a document and a delta: the whole document wins.
    let r = checkin(
        &client,
        &server,
        &m.auth,
        &CheckinRequest {
            inventory: Some(newer.clone()),
            inventory_delta: Some(wrong),
            ..heartbeat(&newer_hash)
        },
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(stored(&f, &m.id).0, Some(newer.clone()));

    // The admin API shows the installed software, not the reference its
    // history rows keep in place of the list.
    let token = f.admin_api_token("chef");
    let r = client.get(
        &server.api(&format!("/admin/machines/{}", m.id)),
        Some(&format!("Bearer {token}")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let machine = r.json();
    assert_eq!(machine["inventory"], newer);
    assert_eq!(
        machine["inventory"]["software"]["value"]["packages"]
            .as_array()
            .map(Vec::len),
        Some(2500)
    );
}

/// An inventory is checked against the hash of its canonical encoding
/// whatever its spelling (key order, spaces, a member repeated), and stored
/// canonical; a canonical text with another hash is refused.
#[test]
fn inventories_in_any_spelling_are_stored_canonical() {
    let f = Fixture::new();
    let server = Server::start(&f.data);
    let client = f.client();
    let m = enroll(&client, &server, &f.token(&[]), "pc-02");
    let url = server.api("/checkin");
    let (doc, hash) = document("pc-02", 3, 1);
    let canonical = String::from_utf8(nird_proto::hash::canonical_json(&doc).unwrap()).unwrap();

    // Canonical, but announced with another document's hash: refused.
    let (_, other_hash) = document("pc-02", 3, 2);
    let body = format!(r#"{{"inventory_hash":"{other_hash}","inventory":{canonical}}}"#);
    let r = client.post(&url, Some(&m.auth), body.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("inventory_hash"), "{}", r.text());
    assert_eq!(stored(&f, &m.id).1, 1);

    // Pretty-printed, keys in another order: the same document.
    let spaced = serde_json::to_string_pretty(&doc).unwrap();
    let reordered = format!(
        r#"{{"software": {}, {}"#,
        serde_json::to_string(&doc["software"]).unwrap(),
        spaced.trim_start_matches('{')
    );
    for spelling in [spaced, reordered] {
        assert_ne!(spelling, canonical);
        let body = format!(r#"{{"inventory": {spelling}, "inventory_hash": "{hash}"}}"#);
        let r = client.post(&url, Some(&m.auth), body.as_bytes());
        assert_eq!(r.status, 200, "{spelling}: {}", r.text());
    }
    assert_eq!(stored(&f, &m.id), (Some(doc), 2));

    // Keys that JSON writes with escapes are split and rebuilt as well.
    let odd = json!({"a\u{1}b": [1], "software": {"value": {"packages": []}}, "z\"": 2});
    let odd_hash = nird_proto::hash::content_hash(&odd).unwrap();
    let r = checkin(
        &client,
        &server,
        &m.auth,
        &CheckinRequest {
            inventory: Some(odd.clone()),
            ..heartbeat(&odd_hash)
        },
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(stored(&f, &m.id), (Some(odd), 3));
}

#[test]
fn compressed_bodies_are_bounded_once_inflated() {
    let f = Fixture::new();
    let server = Server::start(&f.data);
    let client = f.client();
    let m = enroll(&client, &server, &f.token(&[]), "pc-01");
    let url = server.api("/checkin");

    // 4 MiB of spaces after valid JSON start: ≈ 4 KB compressed.
    let mut bomb = br#"{"inventory_hash":""#.to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 4 << 20));
    let r = client.post_encoded(&url, &m.auth, "gzip", &gzip(&bomb));
    assert_eq!(r.status, 413, "{}", r.text());

    let r = client.post_encoded(&url, &m.auth, "br", b"{}");
    assert_eq!(r.status, 415, "{}", r.text());
    assert!(r.text().contains("br"));

    let r = client.post_encoded(&url, &m.auth, "gzip", b"not gzip");
    assert_eq!(r.status, 400, "{}", r.text());

    // A plain heartbeat still works, and a compressed one too.
    assert_eq!(m.check_in(&client, &server).status, 200);
    let hb = serde_json::to_vec(&heartbeat(&m.inventory_hash)).unwrap();
    let r = client.post_encoded(&url, &m.auth, "gzip", &gzip(&hb));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["send_inventory"], false);
}

/// A document like a Debian desktop's (the t430 fixture's hardware, 2,500
/// packages with realistic names, versions and sections); after `round`
/// weekly upgrades the first 20 × round packages carry a new version.
fn realistic_document(
    base: &Value,
    machine: usize,
    packages: usize,
    round: usize,
) -> (Value, String) {
    const SECTIONS: [&str; 8] = [
        "libs", "admin", "utils", "x11", "games", "python", "fonts", "net",
    ];
    let mut list: Vec<Value> = (0..packages)
        .map(|i| {
            // Each round upgrades the next 20 packages.
            let upgraded = i < 20 * round;
            json!({
                "name": format!("{}{}-{}", ["lib", "python3-", "gir1.2-", ""][i % 4], ["gtk", "xfce4", "qt", "gnome", "kde", "mate"][i % 6], i),
                "version": format!("{}.{}.{}-{}{}", i % 7 + 1, i % 13, i % 5, i % 3 + 1,
                    if upgraded { "+deb12u1" } else { "" }),
                "arch": if i % 9 == 0 { "all" } else { "amd64" },
                "section": SECTIONS[i % SECTIONS.len()],
                "size_kib": 50 + (i * 37) % 20_000,
            })
        })
        .collect();
    // One package only this machine has: no two machines share a list
    // (the worst case for the content-addressed store).
    list.push(json!({"name": format!("zz-machine-{machine:05}"), "version": "1", "arch": "all"}));
    list.sort_by(|a, b| {
        (a["name"].as_str(), a["arch"].as_str()).cmp(&(b["name"].as_str(), b["arch"].as_str()))
    });
    let mut doc = base.clone();
    doc["identity"]["hostname"] = json!({"value": format!("pc-{machine:05}")});
    doc["software"] = json!({"value": {"packages": list}});
    let hash = nird_proto::hash::content_hash(&doc).unwrap();
    (doc, hash)
}

/// Measures (run by hand, numbers in BENCHMARKS.md):
/// `cargo test -p nird-server --test inventory_delta -- --ignored --nocapture`
/// MACHINES machines with 2,500 packages each send WEEKS weekly 20-package
/// upgrades as deltas (gzip), as the agent does; prints the bytes on the
/// wire per upgrade and the database bytes per table, and checks the
/// history grows by at most 4 KB per change.
#[test]
#[ignore = "measurement; run by hand"]
fn storage_of_weekly_upgrades() {
    let machines: usize = std::env::var("MACHINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let weeks: usize = std::env::var("WEEKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let base: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../agent/tests/fixtures/laptop-t430.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let f = Fixture::new();
    let server = Server::start(&f.data);
    let client = f.client();
    let token = f.token(&["--uses", "100000"]);
    let url = server.api("/checkin");
    let (mut wire_full, mut wire_delta, mut deltas) = (0usize, 0usize, 0usize);
    let mut ms = Vec::new();
    for m in 0..machines {
        let machine = enroll(&client, &server, &token, &format!("pc-{m:05}"));
        let (doc, hash) = realistic_document(&base, m, 2500, 0);
        let body = gzip(
            &serde_json::to_vec(&CheckinRequest {
                inventory: Some(doc.clone()),
                ..heartbeat(&hash)
            })
            .unwrap(),
        );
        wire_full += body.len();
        let r = client.post_encoded(&url, &machine.auth, "gzip", &body);
        assert_eq!(r.json()["send_inventory"], false, "{}", r.text());
        ms.push((machine, doc, hash));
    }
    let db = f.data.database();
    let size = |what: &str| {
        let out = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg(format!("PRAGMA wal_checkpoint(TRUNCATE); SELECT name, SUM(pgsize) FROM dbstat WHERE name IN ({what}) GROUP BY name;"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.rsplit_once('|').and_then(|(_, n)| n.parse::<u64>().ok()))
            .sum::<u64>()
    };
    let history_tables = "'inventory_history','inventory_history_by_machine','inventory_history_by_machine_time','inventory_history_by_time'";
    let list_tables = "'software_lists','sqlite_autoindex_software_lists_1','machine_software','sqlite_autoindex_machine_software_1','machine_software_by_hash'";
    let (history0, lists0) = (size(history_tables), size(list_tables));
    for week in 1..=weeks {
        for (m, (machine, doc, hash)) in ms.iter_mut().enumerate() {
            let (new, new_hash) = realistic_document(&base, m, 2500, week);
            let d = delta::diff(doc, &new, hash).unwrap();
            let body = gzip(
                &serde_json::to_vec(&CheckinRequest {
                    inventory_delta: Some(d),
                    ..heartbeat(&new_hash)
                })
                .unwrap(),
            );
            wire_delta += body.len();
            deltas += 1;
            let r = client.post_encoded(&url, &machine.auth, "gzip", &body);
            assert_eq!(r.json()["send_inventory"], false, "{}", r.text());
            (*doc, *hash) = (new, new_hash);
        }
    }
    let (history1, lists1) = (size(history_tables), size(list_tables));
    let total = std::fs::metadata(&db).unwrap().len();
    let per_change = (history1 - history0) as f64 / deltas as f64;
    println!("machines {machines}, weeks {weeks}, changes {deltas}");
    println!(
        "wire: full document {} B gzip per machine, 20-package upgrade {} B gzip (delta)",
        wire_full / machines,
        wire_delta / deltas
    );
    println!(
        "database: history {history0} -> {history1} B ({per_change:.0} B per change), package lists {lists0} -> {lists1} B ({} B per machine), file {total} B",
        lists1 / machines as u64
    );
    let year = 100_000.0
        * (52.0 * per_change + lists1 as f64 / machines as f64 + history0 as f64 / machines as f64);
    println!(
        "extrapolated, 100,000 machines after 52 weekly upgrades: {:.1} GB",
        year / 1e9
    );
    assert!(
        per_change <= 4096.0,
        "history grows {per_change:.0} B per change"
    );
}

/// `sqlite3 DB SQL` (read-only), its output trimmed.
fn sql(f: &Fixture, query: &str) -> String {
    let out = std::process::Command::new("sqlite3")
        .arg("-readonly")
        .arg(f.data.database())
        .arg(query)
        .output()
        .expect("sqlite3 (scripts/install-deps.sh)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn package_lists_are_stored_once_and_history_compressed() {
    let f = Fixture::new();
    let server = Server::start(&f.data);
    let client = f.client();
    let token = f.token(&["--uses", "3"]);
    let url = server.api("/checkin");
    let send = |m: &Machine, doc: &Value, hash: &str| {
        let body = serde_json::to_vec(&CheckinRequest {
            inventory: Some(doc.clone()),
            ..heartbeat(hash)
        })
        .unwrap();
        let r = client.post_encoded(&url, &m.auth, "gzip", &gzip(&body));
        assert_eq!(r.json()["send_inventory"], false, "{}", r.text());
    };
    // Two machines with the same packages (same image): one stored list.
    let a = enroll(&client, &server, &token, "pc-a");
    let b = enroll(&client, &server, &token, "pc-b");
    let (a1, a1_hash) = document("pc-a", 300, 0);
    let (b1, b1_hash) = document("pc-b", 300, 0);
    send(&a, &a1, &a1_hash);
    send(&b, &b1, &b1_hash);
    assert_eq!(sql(&f, "SELECT COUNT(*) FROM software_lists"), "1");
    // History rows are stored compressed (4: two enrolments, two changes),
    // the packages only in the list, by reference: a row is small.
    assert_eq!(
        sql(
            &f,
            "SELECT COUNT(*) FROM inventory_history WHERE packed IS NOT NULL AND inventory = ''"
        ),
        "4"
    );
    let largest = sql(&f, "SELECT MAX(LENGTH(packed)) FROM inventory_history");
    assert!(largest.parse::<u64>().unwrap() < 1_000, "{largest} B");
    // One machine upgrades: a second list, stored as a delta of the
    // first, which the other machine still has.
    let (a2, a2_hash) = document("pc-a", 300, 20);
    send(&a, &a2, &a2_hash);
    assert_eq!(
        sql(&f, "SELECT COUNT(*), COUNT(base) FROM software_lists"),
        "2|1"
    );
    // The second one too: the two machines share the new list again; the
    // first, had by nobody, stays as its base.
    let (b2, b2_hash) = document("pc-b", 300, 20);
    send(&b, &b2, &b2_hash);
    assert_eq!(
        sql(&f, "SELECT COUNT(*), COUNT(base) FROM software_lists"),
        "2|1"
    );
    let delta = sql(
        &f,
        "SELECT LENGTH(body) FROM software_lists WHERE base IS NOT NULL",
    );
    assert!(delta.parse::<u64>().unwrap() < 1_000, "{delta} B");
    // Documents come back exactly (hash included).
    assert_eq!(stored(&f, &a.id), (Some(a2), 3));
    assert_eq!(stored(&f, &b.id).0, Some(b2));
}
