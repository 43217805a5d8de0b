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

    // Both a document and a delta: refused.
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
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("inventory_delta"));
    assert_eq!(stored(&f, &m.id), (Some(new), 3));
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
