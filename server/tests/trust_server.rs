//! The server's side of the trust model (issue 8), each hole attacked and
//! shown refused:
//! - downloads only for the assigned closure: another school's release, an
//!   unassigned one, an old version, a blob no assigned release pins, and
//!   anything for a pending machine are a 404 identical to an unknown one;
//! - blob downloads stay within the memory budget whatever the readers do,
//!   and a client that stops reading is cut (real `nird-server serve`
//!   process, its VmHWM read from /proc);
//! - inventory changes are capped per machine and day, and the retention
//!   policy prunes old history at startup but never a machine's latest
//!   inventory nor the audit log;
//! - `/metrics` requires its bearer token.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nird_proto::api::{CheckinRequest, ProfileRef};
use nird_server::store::{NewRelease, SqliteStore, Store};

/// A synchronous handle on the store of a data dir, standing for the
/// publication side (releases stored as `profile publish` would) and for
/// checks the API does not expose.
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

    /// Publishes `name` `version` pinning `blobs` and including `includes`.
    fn publish(&self, name: &str, version: u64, blobs: &[&[u8]], includes: &[&str]) {
        self.run(
            self.store.publish_release(
                "test",
                NewRelease {
                    name: name.into(),
                    version,
                    bytes: format!("{name} v{version}\n").into_bytes(),
                    minisig: format!("signature of {name} v{version}"),
                    blobs: blobs
                        .iter()
                        .map(|b| (nird_proto::hash::sha256_hex(b), b.to_vec()))
                        .collect(),
                    includes: includes.iter().map(|s| s.to_string()).collect(),
                    signed_by: "test".into(),
                },
            ),
        )
        .unwrap();
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.store.close());
    }
}

fn sha(bytes: &[u8]) -> String {
    nird_proto::hash::sha256_hex(bytes)
}

/// Adds a second school through the CLI.
fn add_school(f: &Fixture, uai: &str, kind: &str, flags: &[&str]) {
    let mut args = vec![
        "school",
        "add",
        "--data-dir",
        f.dir(),
        "--uai",
        uai,
        "--name",
        "Collège Jean Macé",
        "--commune",
        "Lille",
        "--academie",
        "Lille",
        "--kind",
        kind,
    ];
    args.extend_from_slice(flags);
    cli(&args);
}

fn profile_url(server: &Server, name: &str, file: &str) -> String {
    server.api(&format!("/profiles/{name}/{file}"))
}

fn blob_url(server: &Server, bytes: &[u8]) -> String {
    server.api(&format!("/blobs/{}", sha(bytes)))
}

/// The `assigned` list of a check-in.
fn assigned(client: &Client, server: &Server, m: &Machine) -> Vec<ProfileRef> {
    let r = m.check_in(client, server);
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_value(r.json()["assigned"].clone()).unwrap()
}

#[test]
fn machines_download_only_their_assigned_closure() {
    let f = Fixture::new();
    // A collège whose machines wait for approval.
    const COLLEGE: &str = "0590001F";
    add_school(&f, COLLEGE, "college", &["--require-approval"]);
    let server = Server::start(&f.data);
    let client = f.client();

    let (x, y, z, w, s) = (
        b"primtux v1 wallpaper".as_slice(),
        b"primtux v2 wallpaper".as_slice(),
        b"nird-base motd".as_slice(),
        b"linux-nird college settings".as_slice(),
        b"wpa_passphrase=secret-of-another-school".as_slice(),
    );
    let db = Db::open(&f);
    db.publish("primtux", 1, &[x], &["nird-base"]);
    db.publish("primtux", 2, &[y], &["nird-base"]);
    db.publish("nird-base", 3, &[z], &[]);
    db.publish("linux-nird", 1, &[w], &["nird-base"]);
    cli(&["assign", "--data-dir", f.dir(), "--school", UAI, "primtux"]);
    cli(&[
        "assign",
        "--data-dir",
        f.dir(),
        "--school",
        COLLEGE,
        "linux-nird",
    ]);

    let ecole = enroll(&client, &server, &f.token(&[]), "ecole-01");
    let token = cli(&[
        "token",
        "create",
        "--data-dir",
        f.dir(),
        "--school",
        COLLEGE,
    ]);
    let pending = enroll(&client, &server, token.trim(), "college-01");
    let auth = |m: &Machine| Some(m.auth.clone());

    // The école machine: its check-in lists the closure, and exactly that
    // is served, byte for byte.
    let closure = assigned(&client, &server, &ecole);
    let refs = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(n, v)| ProfileRef {
                name: n.to_string(),
                version: *v,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(closure, refs(&[("nird-base", 3), ("primtux", 2)]));
    assert_eq!(
        db.run(db.store.assigned_closure(&ecole.id)).unwrap(),
        closure,
        "the check-in and the download checks share one closure"
    );
    let get = |url: &str, m: &Machine| client.get(url, auth(m).as_deref());
    let r = get(&profile_url(&server, "primtux", "2"), &ecole);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"primtux v2\n".as_slice())
    );
    let r = get(&profile_url(&server, "primtux", "2.minisig"), &ecole);
    assert_eq!(r.text(), "signature of primtux v2");
    // Included, not assigned directly: still part of the closure.
    assert_eq!(
        get(&profile_url(&server, "nird-base", "3"), &ecole).status,
        200
    );
    for blob in [y, z] {
        let r = get(&blob_url(&server, blob), &ecole);
        assert_eq!((r.status, r.body.as_slice()), (200, blob));
    }

    // The attacks: another school's release and its blob, an older release
    // and the blob only it pins, a malformed name.
    for (name, file) in [
        ("linux-nird", "1"),
        ("linux-nird", "1.minisig"),
        ("primtux", "1"),
        ("primtux", "1.minisig"),
        ("primtux", "x"),
    ] {
        let r = get(&profile_url(&server, name, file), &ecole);
        assert_eq!(r.status, 404, "{name}/{file}: {}", r.text());
        assert_eq!(r.json()["error"], "not_found");
    }
    for blob in [x, w] {
        assert_eq!(get(&blob_url(&server, blob), &ecole).status, 404);
    }

    // No oracle: a release nobody is assigned answers exactly like one that
    // does not exist — the same reply before and after it is published.
    let secret_url = profile_url(&server, "wifi-secret", "1");
    let secret_blob = blob_url(&server, s);
    let before = (get(&secret_url, &ecole), get(&secret_blob, &ecole));
    db.publish("wifi-secret", 1, &[s], &[]);
    let after = (get(&secret_url, &ecole), get(&secret_blob, &ecole));
    assert_eq!((before.0.status, before.1.status), (404, 404));
    assert_eq!(before.0.body, after.0.body);
    assert_eq!(before.0.status, after.0.status);
    assert_eq!(before.1.body, after.1.body);
    assert_eq!(before.1.status, after.1.status);

    // A pending machine fetches nothing, not even what its school is
    // assigned; once approved, exactly its closure.
    assert!(assigned(&client, &server, &pending).is_empty());
    for url in [
        profile_url(&server, "linux-nird", "1"),
        profile_url(&server, "nird-base", "3"),
        blob_url(&server, w),
    ] {
        assert_eq!(get(&url, &pending).status, 404, "{url}");
    }
    cli(&["machine", "approve", "--data-dir", f.dir(), &pending.id]);
    assert_eq!(
        assigned(&client, &server, &pending),
        refs(&[("linux-nird", 1), ("nird-base", 3)])
    );
    assert_eq!(get(&blob_url(&server, w), &pending).status, 200);
    // ... and still not the école's.
    assert_eq!(
        get(&profile_url(&server, "primtux", "2"), &pending).status,
        404
    );
    assert_eq!(get(&blob_url(&server, y), &pending).status, 404);

    // Excluding the profile for one machine takes its downloads away too,
    // includes and blobs with it.
    cli(&[
        "assign",
        "--data-dir",
        f.dir(),
        "--machine",
        &ecole.id,
        "--exclude",
        "primtux",
    ]);
    assert!(assigned(&client, &server, &ecole).is_empty());
    for url in [
        profile_url(&server, "primtux", "2"),
        profile_url(&server, "nird-base", "3"),
        blob_url(&server, y),
        blob_url(&server, z),
    ] {
        assert_eq!(get(&url, &ecole).status, 404, "{url}");
    }

    // Credentials are checked first: 401 without, 403 once retired.
    assert_eq!(
        client
            .get(&profile_url(&server, "linux-nird", "1"), None)
            .status,
        401
    );
    assert_eq!(client.get(&blob_url(&server, w), None).status, 401);
    cli(&["machine", "retire", "--data-dir", f.dir(), &pending.id]);
    assert_eq!(
        get(&profile_url(&server, "linux-nird", "1"), &pending).status,
        403
    );
    assert_eq!(get(&blob_url(&server, w), &pending).status, 403);
}

/// A log line without its terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A `nird-server serve` process on an ephemeral port; its stderr lines
/// are kept.
struct ServeProcess {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    fn start(f: &Fixture, extra: &[&str]) -> Self {
        let mut args = vec!["serve", "--data-dir", f.dir(), "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = Command::new(BIN)
            .args(&args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut line = String::new();
        let port = loop {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "server exited");
            log.lock().unwrap().push(strip_ansi(&line));
            if let Some(addr) = line
                .trim()
                .strip_prefix("nird-server : en écoute sur https://")
            {
                break addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        };
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(strip_ansi(&line));
            }
        });
        ServeProcess { child, port, log }
    }

    fn api(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/api/v1{path}", self.port)
    }

    /// (VmRSS, VmHWM) of the server process, KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn log_contains(&self, needle: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ureq agent trusting the fixture's CA, with no overall timeout.
fn raw_agent(f: &Fixture) -> ureq::Agent {
    let pem = std::fs::read(f.data.ca_cert()).unwrap();
    let cert = ureq::tls::Certificate::from_pem(&pem).unwrap();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn blob_downloads_stay_within_the_memory_budget_and_stalled_readers_are_cut() {
    const SIZE: usize = 60 * 1024 * 1024;
    const BUDGET_KIB: u64 = 128 * 1024;
    const STALLED: usize = 8;
    const IDLE_SECS: u64 = 3;
    let f = Fixture::new();
    // 60 MiB that no compression or deduplication could shrink.
    let mut big = vec![0u8; SIZE];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in big.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let big_sha = sha(&big);
    {
        let db = Db::open(&f);
        db.publish("big", 1, &[&big], &[]);
    }
    cli(&["assign", "--data-dir", f.dir(), "--school", UAI, "big"]);
    let server = ServeProcess::start(&f, &["--write-idle-timeout", &IDLE_SECS.to_string()]);
    let agent = raw_agent(&f);
    let reply = agent
        .post(&server.api("/enroll"))
        .header("content-type", "application/json")
        .send(
            serde_json::to_vec(&{
                let (inv, hash) = inventory("pc-01", 4096);
                nird_proto::api::EnrollRequest {
                    token: f.token(&[]),
                    hostname: "pc-01".into(),
                    inventory: inv,
                    inventory_hash: hash,
                }
            })
            .unwrap(),
        )
        .unwrap()
        .body_mut()
        .read_json::<serde_json::Value>()
        .unwrap();
    let auth = nird_proto::api::machine_authorization(
        reply["machine_id"].as_str().unwrap(),
        reply["secret"].as_str().unwrap(),
    );
    let url = server.api(&format!("/blobs/{big_sha}"));
    let (baseline, _) = server.memory_kib();

    // Several clients start 60 MiB downloads and do not read.
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        // A fresh agent each: one connection per download.
        let resp = raw_agent(&f)
            .get(&url)
            .header("authorization", &auth)
            .call()
            .unwrap();
        assert_eq!(resp.status(), 200);
        stalled.push(resp);
    }
    // Meanwhile a client that reads gets every byte, exactly.
    let mut resp = agent
        .get(&url)
        .header("authorization", &auth)
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = resp
        .body_mut()
        .with_config()
        .limit(SIZE as u64 + 1)
        .read_to_vec()
        .unwrap();
    assert_eq!(got.len(), SIZE);
    assert_eq!(sha(&got), big_sha);
    drop(got);

    // The stalled readers stop reading for well over the idle timeout:
    // the server drops them, so what is left to read is short of 60 MiB.
    std::thread::sleep(Duration::from_secs(IDLE_SECS * 4));
    let (rss, peak) = server.memory_kib();
    eprintln!(
        "server memory: baseline {} MiB, peak {} MiB with {STALLED} stalled 60 MiB downloads \
         and one full one, {} MiB after",
        baseline / 1024,
        peak / 1024,
        rss / 1024
    );
    assert!(
        peak < baseline + BUDGET_KIB,
        "peak {peak} KiB above baseline {baseline} KiB + budget"
    );
    for mut resp in stalled {
        let mut body = resp
            .body_mut()
            .with_config()
            .limit(SIZE as u64 + 1)
            .reader();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        let outcome = loop {
            match body.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => total += n,
                Err(e) => break Err(e),
            }
        };
        assert!(
            outcome.is_err() && total < SIZE,
            "a stalled download went on: {total} bytes, {outcome:?}"
        );
    }
    // The server still serves after all that.
    let mut resp = agent
        .get(&url)
        .header("authorization", &auth)
        .call()
        .unwrap();
    let got = resp
        .body_mut()
        .with_config()
        .limit(SIZE as u64 + 1)
        .read_to_vec()
        .unwrap();
    assert_eq!(sha(&got), big_sha);
}

/// A check-in carrying a new inventory (`ram_mb` makes it differ).
fn changed_inventory(hostname: &str, ram_mb: u64) -> (CheckinRequest, String) {
    let (inv, hash) = inventory(hostname, ram_mb);
    (
        CheckinRequest {
            inventory_hash: hash.clone(),
            inventory: Some(inv),
            inventory_delta: None,
            applied: vec![],
            reports: vec![],
            trust: None,
        },
        hash,
    )
}

fn utc_day() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() / 86_400
}

#[test]
fn inventory_changes_are_capped_per_machine_and_day() {
    let f = Fixture::new();
    let server = Server::start(&f.data);
    let client = f.client();
    let token = f.token(&["--uses", "2"]);
    let noisy = enroll(&client, &server, &token, "pc-bruyant");
    let quiet = enroll(&client, &server, &token, "pc-calme");
    let day = utc_day();

    // One machine sends 200 different inventories in a day: every
    // check-in is accepted...
    let mut last = String::new();
    for i in 0..200 {
        let (req, hash) = changed_inventory("pc-bruyant", 8192 + i);
        let r = checkin(&client, &server, &noisy.auth, &req);
        assert_eq!(r.status, 200, "{}", r.text());
        last = hash;
    }
    let (req, _) = changed_inventory("pc-calme", 2048);
    assert_eq!(checkin(&client, &server, &quiet.auth, &req).status, 200);

    // ... but its history holds at most the day's budget (24 by default,
    // twice that if the test straddled midnight UTC), its latest state
    // included; the other machine is unaffected.
    let days = (utc_day() - day + 1) as u64;
    let db = Db::open(&f);
    let rows = db.run(db.store.inventory_history_len(&noisy.id)).unwrap();
    assert!(rows <= 24 * days, "{rows} rows kept");
    assert!(rows >= 2, "{rows} rows kept");
    let latest: serde_json::Value = serde_json::from_str(
        &db.run(db.store.latest_inventory(&noisy.id))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(latest["memory_mb"], 8192 + 199);
    assert_eq!(
        db.run(db.store.inventory_history_len(&quiet.id)).unwrap(),
        2
    );
    drop(db);
    // The server knows the latest hash: a heartbeat with it is up to date.
    let r = checkin(&client, &server, &noisy.auth, &heartbeat(&last));
    assert_eq!(r.json()["send_inventory"], false);
}

/// Moves every history row and report of `machine` `days` into the past
/// (playing the calendar, through the database file).
fn age(f: &Fixture, machine: &str, days: i64, only_oldest: bool) {
    let conn = rusqlite::Connection::open(f.data.database()).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let shift = days * 86_400;
    if only_oldest {
        conn.execute(
            "UPDATE inventory_history SET recorded_at = recorded_at - ?2
             WHERE id = (SELECT MIN(id) FROM inventory_history WHERE machine_id = ?1)",
            rusqlite::params![machine, shift],
        )
        .unwrap();
    } else {
        conn.execute(
            "UPDATE inventory_history SET recorded_at = recorded_at - ?2 WHERE machine_id = ?1",
            rusqlite::params![machine, shift],
        )
        .unwrap();
        conn.execute(
            "UPDATE apply_reports SET received_at = received_at - ?2 WHERE machine_id = ?1",
            rusqlite::params![machine, shift],
        )
        .unwrap();
    }
}

fn count(f: &Fixture, sql: &str, machine: &str) -> i64 {
    let conn = rusqlite::Connection::open(f.data.database()).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row(sql, [machine], |r| r.get(0)).unwrap()
}

#[test]
fn retention_prunes_old_history_at_startup_but_never_the_latest_inventory() {
    let f = Fixture::new();
    let token = f.token(&["--uses", "3"]);
    let (old, mixed, young);
    {
        let server = Server::start(&f.data);
        let client = f.client();
        old = enroll(&client, &server, &token, "pc-ancien");
        mixed = enroll(&client, &server, &token, "pc-mixte");
        young = enroll(&client, &server, &token, "pc-jeune");
        for (m, host) in [
            (&old, "pc-ancien"),
            (&mixed, "pc-mixte"),
            (&young, "pc-jeune"),
        ] {
            for i in 0..3 {
                let (mut req, _) = changed_inventory(host, 1024 + i);
                req.reports = vec![report(i + 1)];
                assert_eq!(checkin(&client, &server, &m.auth, &req).status, 200);
            }
        }
        server.stop().unwrap();
    }
    // 4 inventory rows and 3 reports each. `old` went silent 40 days ago;
    // `mixed` only has its enrolment inventory that old; `young` has
    // history 20 days old only.
    age(&f, &old.id, 40, false);
    age(&f, &mixed.id, 40, true);
    age(&f, &young.id, 20, false);
    let audit_before = count(&f, "SELECT COUNT(*) FROM audit_log WHERE ?1 = ?1", "");
    let latest_before = cli(&["machine", "list", "--data-dir", f.dir()]);

    let server = ServeProcess::start(&f, &["--history-retention-days", "30"]);
    let inv = "SELECT COUNT(*) FROM inventory_history WHERE machine_id = ?1";
    let reports = "SELECT COUNT(*) FROM apply_reports WHERE machine_id = ?1";
    let start = Instant::now();
    while server.log_contains("history pruned").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no pruning at startup"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let line = server.log_contains("history pruned").unwrap();
    assert!(line.contains("inventory_rows=4"), "{line}");
    assert!(line.contains("reports=3"), "{line}");
    // The silent machine keeps its latest inventory, however old.
    assert_eq!(count(&f, inv, &old.id), 1);
    assert_eq!(count(&f, reports, &old.id), 0);
    assert_eq!(count(&f, inv, &mixed.id), 3);
    assert_eq!(count(&f, reports, &mixed.id), 3);
    assert_eq!(count(&f, inv, &young.id), 4);
    assert_eq!(count(&f, reports, &young.id), 3);
    let newest: String = {
        let conn = rusqlite::Connection::open(f.data.database()).unwrap();
        let (text, packed): (String, Option<Vec<u8>>) = conn
            .query_row(
                "SELECT inventory, packed FROM inventory_history WHERE machine_id = ?1",
                [&old.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        // Rows are stored deflate-compressed in `packed` (inventory storage).
        match packed {
            Some(bytes) => {
                use std::io::Read as _;
                let mut out = String::new();
                flate2::read::DeflateDecoder::new(&bytes[..])
                    .read_to_string(&mut out)
                    .unwrap();
                out
            }
            None => text,
        }
    };
    let newest: serde_json::Value = serde_json::from_str(&newest).unwrap();
    assert_eq!(newest["memory_mb"], 1024 + 2);
    // The audit log is never pruned; machines keep their state.
    assert_eq!(
        count(&f, "SELECT COUNT(*) FROM audit_log WHERE ?1 = ?1", ""),
        audit_before
    );
    drop(server);
    assert_eq!(
        cli(&["machine", "list", "--data-dir", f.dir()]),
        latest_before
    );
}

#[test]
fn metrics_require_the_bearer_token() {
    let f = Fixture::new();
    // `init` made the token, owner-only; `metrics-token` prints it.
    let path = f.data.metrics_token();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = cli(&["metrics-token", "--data-dir", f.dir()]);
    let token = token.trim();
    assert_eq!(token, std::fs::read_to_string(&path).unwrap().trim());
    assert!(token.len() >= 40);

    let server = Server::start(&f.data);
    let client = f.client();
    enroll(&client, &server, &f.token(&[]), "pc-01");
    let url = server.url("/metrics");
    let wrong = format!("Bearer {}x", token);
    let truncated = format!("Bearer {}", &token[..token.len() - 1]);
    let machine_credential = {
        let m = enroll(&client, &server, &f.token(&[]), "pc-02");
        m.auth
    };
    for auth in [
        None,
        Some("Bearer "),
        Some(wrong.as_str()),
        Some(truncated.as_str()),
        Some(token),
        Some(machine_credential.as_str()),
    ] {
        let r = client.get(&url, auth);
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(!r.text().contains("nird_"), "{}", r.text());
    }
    let good = client.get(&url, Some(&format!("Bearer {token}")));
    assert_eq!(good.status, 200);
    assert!(good.text().contains("nird_machines{status=\"active\"} 2"));
    server.stop().unwrap();

    // A data directory made before the token existed gets one at `serve`.
    std::fs::remove_file(&path).unwrap();
    let server = Server::start(&f.data);
    // Once it answers, it has read (and so created) its token.
    assert_eq!(client.get(&url_of(&server), None).status, 401);
    let fresh = std::fs::read_to_string(&path).unwrap();
    let fresh = fresh.trim();
    assert_ne!(fresh, token);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        client
            .get(&url_of(&server), Some(&format!("Bearer {token}")))
            .status,
        401
    );
    assert_eq!(
        client
            .get(&url_of(&server), Some(&format!("Bearer {fresh}")))
            .status,
        200
    );

    // Not initialised: a clear refusal.
    let empty = tmp_path(&f, "vide");
    let out = cli_raw(&["metrics-token", "--data-dir", empty.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("n'est pas initialisé"));
}

fn url_of(server: &Server) -> String {
    server.url("/metrics")
}
