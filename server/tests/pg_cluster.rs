//! Several `nird-server serve` processes on one PostgreSQL database (same
//! data directory: same CA, certificate and keys), as behind a TCP load
//! balancer: they serve one fleet, and whatever one acknowledged survives
//! it being killed and PostgreSQL itself crashing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::serve::{ServeProcess, enroll_on};
use common::*;
use nird_proto::api::CheckinRequest;
use nird_proto::uai::Uai;
use nird_server::store::{NewRelease, PgStore, Store};

/// An initialised data directory whose fleet lives in `url`, with the
/// school `UAI` (approval required) and an admin account; returns it with
/// the admin's password.
fn pg_fixture(url: &str) -> (Fixture, String) {
    let f = Fixture::with_school_flags(&["--database", url, "--require-approval"]);
    let out = cli(&[
        "user",
        "add",
        "chef",
        "--role",
        "admin",
        "--data-dir",
        f.dir(),
        "--database",
        url,
    ]);
    let password = out
        .lines()
        .find_map(|l| {
            l.split_once("une seule fois) : ")
                .map(|(_, p)| p.trim().to_owned())
        })
        .expect("password line");
    (f, password)
}

/// An enrolment token made with the CLI on the PostgreSQL database.
fn pg_token(f: &Fixture, url: &str, uses: &str) -> String {
    cli(&[
        "token",
        "create",
        "--data-dir",
        f.dir(),
        "--database",
        url,
        "--school",
        UAI,
        "--uses",
        uses,
    ])
    .trim()
    .to_owned()
}

/// A browser's view of the dashboard: cookies by hand, no redirects.
struct Browser {
    agent: ureq::Agent,
}

impl Browser {
    fn new(f: &Fixture) -> Self {
        let pem = std::fs::read(f.data.ca_cert()).unwrap();
        let cert = ureq::tls::Certificate::from_pem(&pem).unwrap();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
            .build();
        Browser {
            agent: ureq::Agent::config_builder()
                .tls_config(tls)
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into(),
        }
    }

    /// POSTs a form; returns (status, set-cookie values, body).
    fn post(
        &self,
        url: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
    ) -> (u16, Vec<String>, String) {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            s.append_pair(k, v);
        }
        let mut req = self
            .agent
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header("cookie", format!("__Host-nird_session={c}"));
        }
        let mut resp = req.send(s.finish()).unwrap();
        let cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        (resp.status().as_u16(), cookies, body)
    }

    fn get(&self, url: &str, cookie: &str) -> (u16, String) {
        let mut resp = self
            .agent
            .get(url)
            .header("cookie", format!("__Host-nird_session={cookie}"))
            .call()
            .unwrap();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        (resp.status().as_u16(), body)
    }
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("a form with a CSRF field") + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

fn checkin_reply(client: &Client, server: &ServeProcess, m: &Machine) -> serde_json::Value {
    let r = client.post(
        &server.api("/checkin"),
        Some(&m.auth),
        &serde_json::to_vec(&heartbeat(&m.inventory_hash)).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn checkin_status(client: &Client, server: &ServeProcess, m: &Machine) -> String {
    checkin_reply(client, server, m)["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The profiles a check-in through `server` assigns, as `name vN`.
fn assigned(client: &Client, server: &ServeProcess, m: &Machine) -> Vec<String> {
    checkin_reply(client, server, m)["assigned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} v{}", p["name"].as_str().unwrap(), p["version"]))
        .collect()
}

/// A release of `name` (bytes only: the server does not read them).
fn release(name: &str, version: u64) -> NewRelease {
    NewRelease {
        name: name.into(),
        version,
        bytes: format!("[profile]\nname = \"{name}\"\n").into_bytes(),
        minisig: "untrusted comment: test\n".into(),
        blobs: vec![],
        includes: vec![],
        signed_by: "test".into(),
    }
}

#[test]
fn two_processes_on_one_database_serve_one_fleet() {
    let Some(cluster) = common::pg::shared() else {
        return;
    };
    let url = cluster.database();
    let (f, password) = pg_fixture(&url);
    let token = pg_token(&f, &url, "5");
    let a = ServeProcess::start_with(&f, &["--database", &url]);
    let b = ServeProcess::start_with(&f, &["--database", &url]);
    let client = f.client();

    // Enrolled through A, checks in through B.
    let m = enroll_on(&client, &a, &token, "pc-a");
    assert_eq!(checkin_status(&client, &b, &m), "pending");

    // Logged in on A; the session is good on B (sessions live in the
    // database), and an approval made through B is seen by A.
    let browser = Browser::new(&f);
    let (status, cookies, body) = browser.post(
        &a.url("/connexion"),
        None,
        &[("login", "chef"), ("password", &password)],
    );
    assert_eq!(status, 303, "{body}");
    let cookie = cookies
        .iter()
        .find_map(|c| c.strip_prefix("__Host-nird_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_owned();
    let (status, page) = browser.get(&b.url("/compte"), &cookie);
    assert_eq!(status, 200);
    let csrf = csrf_of(&page);
    let (status, _, body) = browser.post(
        &b.url(&format!("/machines/{}/actions", m.id)),
        Some(&cookie),
        &[("csrf", &csrf), ("action", "approve")],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Machine approuvée"), "{body}");
    assert_eq!(checkin_status(&client, &a, &m), "active");

    // Each process keeps the schools' assigned closures: a change made
    // elsewhere (here a third client of the database) is seen by both at
    // their next check-in, and so is the next one.
    assert!(assigned(&client, &a, &m).is_empty());
    assert!(assigned(&client, &b, &m).is_empty());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(PgStore::connect(&url)).unwrap();
    let uai = Uai::parse(UAI).unwrap();
    rt.block_on(store.publish_release("test", release("primtux", 1)))
        .unwrap();
    rt.block_on(store.assign_school("test", &uai, vec!["primtux".into()]))
        .unwrap();
    assert_eq!(assigned(&client, &a, &m), ["primtux v1"]);
    assert_eq!(assigned(&client, &b, &m), ["primtux v1"]);
    rt.block_on(store.publish_release("test", release("primtux", 2)))
        .unwrap();
    assert_eq!(assigned(&client, &b, &m), ["primtux v2"]);
    assert_eq!(assigned(&client, &a, &m), ["primtux v2"]);
    rt.block_on(store.close()).unwrap();

    // The admin CLI on the same database sees it too, and the audit log
    // has the approval by the person who made it.
    let list = cli(&["machine", "list", "--data-dir", f.dir(), "--database", &url]);
    assert!(list.contains(&m.id) && list.contains("active"), "{list}");
    let audit = cli(&["audit", "--data-dir", f.dir(), "--database", &url]);
    assert!(
        audit.contains("machine.status") && audit.contains("chef"),
        "{audit}"
    );
    // Logging out through A ends the session on B.
    let (status, _, _) = browser.post(&a.url("/deconnexion"), Some(&cookie), &[("csrf", &csrf)]);
    assert_eq!(status, 303);
    let (status, _) = browser.get(&b.url("/compte"), &cookie);
    assert_ne!(status, 200);
}

/// Every acknowledged seq of each machine, in order.
type Acked = Vec<Vec<u64>>;

#[test]
fn acknowledged_check_ins_survive_a_killed_process_and_a_postgresql_crash() {
    let cluster = match PgCluster::start() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("PostgreSQL tests skipped: {e}");
            return;
        }
    };
    let url = cluster.database();
    let (f, _) = pg_fixture(&url);
    let token = pg_token(&f, &url, "20");
    let mut a = ServeProcess::start_with(&f, &["--database", &url]);
    let b = ServeProcess::start_with(&f, &["--database", &url]);
    let client = f.client();
    let machines: Vec<Machine> = (0..12)
        .map(|i| {
            enroll_on(
                &client,
                if i % 2 == 0 { &a } else { &b },
                &token,
                &format!("pc-{i}"),
            )
        })
        .collect();

    // One worker per machine, alternating between the two processes like
    // a round-robin balancer. A report is retried (same seq) until a
    // process acknowledges it, as the agent does.
    let acked_total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let urls = [a.api("/checkin"), b.api("/checkin")];
    let workers: Vec<_> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let client = f.client();
            let urls = urls.clone();
            let (auth, hash) = (m.auth.clone(), m.inventory_hash.clone());
            let (acked_total, stop) = (acked_total.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut seq = 1;
                let mut attempt = i;
                while !stop.load(Ordering::Relaxed) {
                    attempt += 1;
                    let req = CheckinRequest {
                        reports: vec![report(seq)],
                        ..heartbeat(&hash)
                    };
                    let body = serde_json::to_vec(&req).unwrap();
                    let ok = client
                        .try_post(&urls[attempt % 2], Some(&auth), &body)
                        .is_ok_and(|r| {
                            r.status == 200 && r.json()["acked_seq"].as_u64() == Some(seq)
                        });
                    if ok {
                        acked.push(seq);
                        seq += 1;
                        acked_total.fetch_add(1, Ordering::Relaxed);
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                acked
            })
        })
        .collect();
    let wait_for = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked_total.load(Ordering::Relaxed) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            acked_total.load(Ordering::Relaxed) >= n,
            "the burst stalled at {}",
            acked_total.load(Ordering::Relaxed)
        );
    };
    wait_for(300);
    // SIGKILL one process mid-burst: the other carries on.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let after_kill = acked_total.load(Ordering::Relaxed);
    wait_for(after_kill + 300);
    // PostgreSQL crashes (immediate shutdown) mid-burst and comes back.
    cluster.crash();
    let at_crash = acked_total.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    cluster.restart();
    // The surviving process reconnects and acknowledges again.
    wait_for(at_crash + 300);
    stop.store(true, Ordering::Relaxed);
    let acked: Acked = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let total: usize = acked.iter().map(Vec::len).sum();
    eprintln!("acknowledged: {total} check-ins (kill at {after_kill}, crash at {at_crash})");
    drop(b);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(PgStore::connect(&url)).unwrap();
    let listed = rt.block_on(store.list_machines(None)).unwrap();
    for (m, seqs) in machines.iter().zip(&acked) {
        let stored: Vec<u64> = rt
            .block_on(store.reports(&m.id))
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        for seq in seqs {
            assert!(
                stored.contains(seq),
                "{}: acknowledged seq {seq} lost",
                m.id
            );
        }
        let summary = listed.iter().find(|s| s.id == m.id).unwrap();
        assert!(
            summary.checkins >= seqs.len() as u64,
            "check-ins of {} lost",
            m.id
        );
        let last = seqs.last().copied().unwrap_or(0);
        assert!(summary.acked_seq >= last, "{}: ack {last} lost", m.id);
    }
    rt.block_on(store.close()).unwrap();
}
