//! Issue 8, holes 8 and 10, against a compromised server played for real
//! (a hand-written HTTPS server holding the server's certificate, see
//! `hostile/mod.rs`) and the agent's real transport, daemon and apply
//! engine: gzip-bombed replies stop at 1 MiB, blobs are read up to their
//! pinned size and verified before they are cached, an absurd assigned
//! list is refused, an `acked_seq` of 2^64−1 loses nothing, and a stop
//! between downloads applies nothing and ends the daemon.

mod daemon_common;
mod hostile;

#[path = "apply_support/mod.rs"]
#[allow(unused)]
mod apply_support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use daemon_common::{TestInventory, inventory_doc};
use hostile::{HostileServer, Request, Response, gzip_members};
use nird_agent::apply::{ReleaseSource, SourceError};
use nird_agent::config::AgentConfig;
use nird_agent::daemon::releases::{EngineApplier, ServerReleases};
use nird_agent::daemon::{Agent, Control, CycleResult, DaemonOptions, NoHooks, RunMode, run};
use nird_agent::paths::AgentPaths;
use nird_agent::transport::{Transport, TransportError};
use nird_proto::api::{
    ApplyOutcome, ApplyReport, CheckinRequest, CheckinResponse, EnrollRequest, MAX_ASSIGNED,
    MAX_REPLY_BYTES, MachineStatus, ProfileRef,
};
use nird_proto::profile::BlobRef;

fn checkin_response(acked_seq: u64, assigned: Vec<ProfileRef>) -> CheckinResponse {
    CheckinResponse {
        status: MachineStatus::Active,
        send_inventory: false,
        acked_seq,
        assigned,
        next_checkin_secs: 900,
        server_time: time::OffsetDateTime::now_utc(),
        keyring_version: None,
        index_version: None,
    }
}

fn heartbeat() -> CheckinRequest {
    CheckinRequest {
        inventory_hash: "0".repeat(64),
        inventory: None,
        inventory_delta: None,
        applied: vec![],
        reports: vec![],
        trust: None,
    }
}

fn is_limit_refusal(e: &TransportError) -> bool {
    matches!(e, TransportError::Protocol(m) if m.contains(&MAX_REPLY_BYTES.to_string()))
}

#[test]
fn a_gzip_bomb_reply_stops_at_one_mebibyte_after_decompression() {
    // 0: 900 KiB of JSON whitespace (valid, under the limit);
    // 1: 2 MiB (valid JSON, over the limit; the old 256 MiB bound took it);
    // 2: 300 MiB (the bomb of the issue).
    let mode = Arc::new(AtomicUsize::new(0));
    let json = serde_json::to_vec(&checkin_response(0, vec![])).unwrap();
    let bodies: Vec<Vec<u8>> = [(900, 1), (1024, 2), (1024, 300)]
        .iter()
        .map(|&(kib, members)| gzip_members(&json, b' ', kib * 1024, members))
        .collect();
    // Each download is tiny: only decompression makes it big.
    assert!(bodies.iter().all(|b| (b.len() as u64) < MAX_REPLY_BYTES));
    let served = {
        let mode = mode.clone();
        let bodies = bodies.clone();
        HostileServer::start(move |_req: &Request| {
            let mut r = Response::bytes(bodies[mode.load(Ordering::SeqCst)].clone());
            r.headers = vec![
                ("content-type".into(), "application/json".into()),
                ("content-encoding".into(), "gzip".into()),
            ];
            r
        })
    };
    let transport = served.transport();

    let ok = transport.checkin(&heartbeat()).unwrap();
    assert_eq!(ok.acked_seq, 0);

    mode.store(1, Ordering::SeqCst);
    let err = transport.checkin(&heartbeat()).unwrap_err();
    assert!(is_limit_refusal(&err), "{err}");
    assert!(
        !err.is_transient(),
        "a hostile reply is not retried at once"
    );

    mode.store(2, Ordering::SeqCst);
    let err = transport.checkin(&heartbeat()).unwrap_err();
    assert!(is_limit_refusal(&err), "{err}");
    // Enrolment replies are bounded the same way.
    let err = transport
        .enroll(&EnrollRequest {
            token: "t".into(),
            hostname: "pc".into(),
            inventory: serde_json::json!({}),
            inventory_hash: "0".repeat(64),
        })
        .unwrap_err();
    assert!(is_limit_refusal(&err), "{err}");
}

#[test]
fn a_blob_is_read_up_to_its_pinned_size_and_verified_before_it_is_cached() {
    let good = b"Bienvenue\n".to_vec();
    let blob = BlobRef {
        sha256: nird_proto::hash::sha256_hex(&good),
        size: good.len() as u64,
        source: None,
    };
    // 0: 10 MiB where 10 bytes are pinned; 1: right size, other bytes;
    // 2: a gzip body inflating past the pinned size; 3: the real bytes.
    let mode = Arc::new(AtomicUsize::new(0));
    let served = {
        let mode = mode.clone();
        let good = good.clone();
        HostileServer::start(move |req: &Request| {
            assert!(req.path.starts_with("/api/v1/blobs/"), "{}", req.path);
            match mode.load(Ordering::SeqCst) {
                0 => Response::bytes(vec![b'x'; 10 << 20]),
                1 => Response::bytes(b"Bienvenu!\n".to_vec()),
                2 => {
                    let mut r = Response::bytes(gzip_members(&good, 0, 1 << 20, 64));
                    r.headers = vec![("content-encoding".into(), "gzip".into())];
                    r
                }
                _ => Response::bytes(good.clone()),
            }
        })
    };
    let transport = served.transport();
    let cache = tempfile::tempdir().unwrap();
    let source = ServerReleases {
        transport: &transport,
        cache: Some(cache.path()),
        cancel: None,
    };
    let cached = cache.path().join("blobs").join(&blob.sha256);
    for m in 0..3 {
        mode.store(m, Ordering::SeqCst);
        let err = source.blob(&blob).unwrap_err();
        assert!(
            matches!(err, SourceError::Invalid { .. }),
            "mode {m}: {err}"
        );
        assert!(!cached.exists(), "mode {m}: unverified bytes were cached");
    }
    mode.store(3, Ordering::SeqCst);
    assert_eq!(source.blob(&blob).unwrap(), good);
    assert_eq!(std::fs::read(&cached).unwrap(), good);
}

/// An agent on a fresh root talking to `server` through its real transport.
fn agent_for(server: &HostileServer, paths: &AgentPaths) -> Agent {
    let config = AgentConfig {
        server: server.url.clone(),
        machine_id: "m".into(),
        ca_file: "/var/lib/nird-agent/server-ca.pem".into(),
        interval_secs: None,
        jitter_secs: 0,
        log_level: "info".into(),
        maintenance: Default::default(),
        school: Some(apply_support::school()),
    };
    Agent::new(
        paths.clone(),
        config,
        Arc::new(server.transport()),
        Box::new(TestInventory::new(inventory_doc(4096))),
        DaemonOptions::default(),
    )
    .unwrap()
}

fn report(profile: &str) -> ApplyReport {
    let t = time::OffsetDateTime::now_utc();
    ApplyReport {
        seq: 0,
        profile: profile.into(),
        version: 1,
        outcome: ApplyOutcome::Applied,
        reason: None,
        message: None,
        resources: vec![],
        started_at: t,
        finished_at: t,
    }
}

/// A server that stores reports (by seq, idempotently) and answers
/// `acked_seq = u64::MAX` while `lying`, the truth otherwise.
struct LyingServer {
    server: HostileServer,
    lying: Arc<AtomicBool>,
    stored: Arc<Mutex<std::collections::BTreeSet<u64>>>,
}

fn lying_server(assigned: usize) -> LyingServer {
    let lying = Arc::new(AtomicBool::new(true));
    let stored = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let server = {
        let lying = lying.clone();
        let stored = stored.clone();
        HostileServer::start(move |req: &Request| {
            let checkin: CheckinRequest = serde_json::from_slice(&req.body).unwrap();
            let mut stored = stored.lock().unwrap();
            stored.extend(checkin.reports.iter().map(|r| r.seq));
            let truth = stored.iter().next_back().copied().unwrap_or(0);
            let acked = if lying.load(Ordering::SeqCst) {
                u64::MAX
            } else {
                truth
            };
            let assigned = (0..assigned)
                .map(|i| ProfileRef {
                    name: format!("p{i}"),
                    version: 1,
                })
                .collect();
            Response::json(&checkin_response(acked, assigned))
        })
    };
    LyingServer {
        server,
        lying,
        stored,
    }
}

#[test]
fn an_acked_seq_of_two_to_the_64_minus_one_loses_nothing() {
    let s = lying_server(0);
    let (_tmp, paths) = daemon_common::agent_root();
    let mut agent = agent_for(&s.server, &paths);
    for p in ["a", "b", "c"] {
        agent.spool().push_report(report(p)).unwrap();
    }
    let now = time::OffsetDateTime::now_utc();
    for _ in 0..3 {
        assert!(matches!(agent.cycle(now), CycleResult::Delivered { .. }));
    }
    // The server got them, yet claimed 2^64−1: nothing dropped, and the
    // counter was not pushed to the end of u64 (seq 4 is the inventory).
    assert_eq!(agent.spool().report_count(), 3);
    assert_eq!(agent.spool().last_seq(), 4);
    // Numbering goes on, not from 0.
    assert_eq!(agent.spool().push_report(report("d")).unwrap(), 5);
    assert!(matches!(agent.cycle(now), CycleResult::Delivered { .. }));
    assert_eq!(agent.spool().report_count(), 4);

    // Once the server tells the truth, everything is delivered and dropped.
    s.lying.store(false, Ordering::SeqCst);
    assert!(matches!(agent.cycle(now), CycleResult::Delivered { .. }));
    assert_eq!(agent.spool().report_count(), 0);
    assert_eq!(
        s.stored.lock().unwrap().iter().copied().collect::<Vec<_>>(),
        [1, 2, 3, 5]
    );
    assert_eq!(agent.spool().push_report(report("e")).unwrap(), 6);
}

#[test]
fn an_assigned_list_beyond_the_cap_is_refused_and_acknowledges_nothing() {
    let s = lying_server(MAX_ASSIGNED + 1);
    s.lying.store(false, Ordering::SeqCst);
    let (_tmp, paths) = daemon_common::agent_root();
    let mut agent = agent_for(&s.server, &paths);
    agent.spool().push_report(report("a")).unwrap();
    let result = agent.cycle(time::OffsetDateTime::now_utc());
    match &result {
        CycleResult::Failed { error, .. } => {
            assert!(
                error.contains(&format!("limite de {MAX_ASSIGNED}")),
                "{error}"
            )
        }
        other => panic!("accepted: {other:?}"),
    }
    // The server stored the report and said so, but its reply was refused
    // whole: the report stays until an acceptable reply acknowledges it.
    assert_eq!(s.stored.lock().unwrap().len(), 1);
    assert_eq!(agent.spool().report_count(), 1);
    assert!(agent.status().last_error.is_some());

    // At the cap exactly, the reply is fine.
    let s = lying_server(MAX_ASSIGNED);
    s.lying.store(false, Ordering::SeqCst);
    let (_tmp2, paths) = daemon_common::agent_root();
    let mut agent = agent_for(&s.server, &paths);
    assert!(matches!(
        agent.cycle(time::OffsetDateTime::now_utc()),
        CycleResult::Delivered { .. }
    ));
}

/// Number of files the release pins (one blob each).
const FILES: usize = 12;
/// The stop arrives while the server answers this blob request (1-based).
const STOP_AT_BLOB: usize = 4;

#[test]
fn a_stop_between_downloads_applies_nothing_and_ends_the_daemon() {
    let signer = apply_support::Signer::new();
    let expires = time::OffsetDateTime::now_utc().date() + time::Duration::days(300);
    let mut toml = format!(
        "[profile]\nname = \"gros\"\nversion = 1\nexpires = {expires}\ndescription = \"Beaucoup de fichiers\"\naudience = \"all\"\n"
    );
    let mut blobs = std::collections::HashMap::new();
    for i in 0..FILES {
        let bytes = format!("fichier {i}\n").into_bytes();
        let sha = nird_proto::hash::sha256_hex(&bytes);
        toml.push_str(&format!(
            "\n[[file]]\npath = \"/srv/gros/f{i:02}\"\nblob = {{ sha256 = \"{sha}\", size = {} }}\n",
            bytes.len()
        ));
        blobs.insert(sha, bytes);
    }
    let minisig = signer.sign(toml.as_bytes());
    // The signed catalogue index pinning this release (TUF's snapshot).
    let index = nird_proto::index::CatalogueIndex {
        version: 1,
        expires: time::OffsetDateTime::now_utc().date() + time::Duration::days(30),
        profiles: [(
            "gros".to_owned(),
            nird_proto::index::IndexEntry {
                version: 1,
                sha256: nird_proto::hash::sha256_hex(toml.as_bytes()),
            },
        )]
        .into_iter()
        .collect(),
    }
    .render();
    let index_sig = signer.sign(index.as_bytes());

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Control>();
    let stop_sender = Arc::new(Mutex::new(Some(tx)));
    let blob_requests = Arc::new(AtomicUsize::new(0));
    // The cancellation flag of the agent, known once it is built.
    let flag: Arc<Mutex<Option<Arc<AtomicBool>>>> = Arc::new(Mutex::new(None));
    let stored_reports = Arc::new(AtomicU64::new(0));
    let server = {
        let blob_requests = blob_requests.clone();
        let stop_sender = stop_sender.clone();
        let flag = flag.clone();
        let stored_reports = stored_reports.clone();
        HostileServer::start(move |req: &Request| {
            let path = req.path.strip_prefix("/api/v1").unwrap_or(&req.path);
            if path == "/checkin" {
                let c: CheckinRequest = serde_json::from_slice(&req.body).unwrap();
                let acked = stored_reports.fetch_add(c.reports.len() as u64, Ordering::SeqCst)
                    + c.reports.len() as u64;
                let mut r = checkin_response(
                    acked,
                    vec![ProfileRef {
                        name: "gros".into(),
                        version: 1,
                    }],
                );
                r.index_version = Some(1);
                return Response::json(&r);
            }
            if path == "/index/1" {
                return Response::bytes(index.clone().into_bytes());
            }
            if path == "/index/1.minisig" {
                return Response::bytes(index_sig.clone().into_bytes());
            }
            if path == "/profiles/gros/1" {
                return Response::bytes(toml.clone().into_bytes());
            }
            if path == "/profiles/gros/1.minisig" {
                return Response::bytes(minisig.clone().into_bytes());
            }
            if let Some(sha) = path.strip_prefix("/blobs/") {
                let n = blob_requests.fetch_add(1, Ordering::SeqCst) + 1;
                if n == STOP_AT_BLOB
                    && let Some(tx) = stop_sender.lock().unwrap().take()
                {
                    // SIGTERM arrives mid-download; answer once the daemon
                    // has raised its flag, so the next download sees it.
                    tx.send(Control::Stop).unwrap();
                    let flag = flag.lock().unwrap().clone().unwrap();
                    for _ in 0..1000 {
                        if flag.load(Ordering::SeqCst) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                return match blobs.get(sha) {
                    Some(b) => Response::bytes(b.clone()),
                    None => Response::not_found(),
                };
            }
            Response::not_found()
        })
    };

    let (_tmp, paths) = daemon_common::agent_root();
    apply_support::install_keyring(&paths.root, &signer);
    let agent =
        agent_for(&server, &paths).with_applier(Box::new(EngineApplier::new(paths.clone())));
    *flag.lock().unwrap() = Some(agent.cancel_flag());
    let clock = Arc::new(nird_agent::daemon::SimulatedClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // RunMode::Forever: only the stop can end this loop (the timeout turns
    // a daemon that ignores it into a failure instead of a hang).
    let mut agent = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(120),
                run(
                    agent,
                    clock.clone(),
                    rx,
                    Arc::new(NoHooks),
                    RunMode::Forever,
                ),
            )
            .await
        })
        .expect("the daemon did not stop");

    // No download started after the stop, nothing applied, nothing to report.
    assert_eq!(blob_requests.load(Ordering::SeqCst), STOP_AT_BLOB);
    let managed = paths.system("/srv/gros");
    assert!(!managed.exists(), "a file was applied after the stop");
    assert!(!paths.applied_file().exists());
    assert_eq!(agent.spool().report_count(), 0);
    assert_eq!(stored_reports.load(Ordering::SeqCst), 0);

    // The next start fetches everything again and applies it.
    let (_tx2, rx2) = tokio::sync::mpsc::unbounded_channel::<Control>();
    let agent = rt.block_on(run(agent, clock, rx2, Arc::new(NoHooks), RunMode::Once));
    assert_eq!(blob_requests.load(Ordering::SeqCst), STOP_AT_BLOB + FILES);
    for i in 0..FILES {
        assert_eq!(
            std::fs::read_to_string(managed.join(format!("f{i:02}"))).unwrap(),
            format!("fichier {i}\n")
        );
    }
    assert!(paths.applied_file().exists());
    assert_eq!(stored_reports.load(Ordering::SeqCst), 1);
    drop(agent);
}
