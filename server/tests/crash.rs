//! Durability: the real server process is killed with SIGKILL in the middle
//! of a check-in burst; after a restart, every check-in it acknowledged is
//! in the database (its report stored, its count recorded).

mod common;

use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::serve::{ServeProcess, enroll_on};
use common::*;
use nird_proto::api::CheckinRequest;
use nird_server::store::{SqliteStore, Store};

/// What each machine's worker saw acknowledged: (highest seq, check-ins).
type Acked = Vec<(u64, u64)>;

/// Runs a check-in burst from one thread per machine until `interrupt`
/// (called once 300 check-ins were acknowledged) has stopped the server.
fn burst(
    server: &mut ServeProcess,
    f: &Fixture,
    machines: &[Machine],
    interrupt: impl FnOnce(&mut Child),
) -> Acked {
    let acked_total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = machines
        .iter()
        .map(|m| {
            let client = f.client();
            let url = server.api("/checkin");
            let (auth, hash) = (m.auth.clone(), m.inventory_hash.clone());
            let (acked_total, stop) = (acked_total.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut acked_seq, mut acked_checkins) = (0u64, 0u64);
                for seq in 1.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let req = CheckinRequest {
                        inventory_hash: hash.clone(),
                        inventory: None,
                        inventory_delta: None,
                        applied: vec![],
                        reports: vec![report(seq)],
                        trust: None,
                    };
                    let body = serde_json::to_vec(&req).unwrap();
                    // The server goes away mid-burst: a failed request is
                    // simply not acknowledged.
                    let Ok(reply) = client.try_post(&url, Some(&auth), &body) else {
                        break;
                    };
                    if reply.status != 200 {
                        break;
                    }
                    let server_acked = reply.json()["acked_seq"].as_u64().unwrap();
                    assert_eq!(server_acked, seq, "the server acknowledged another seq");
                    acked_seq = server_acked;
                    acked_checkins += 1;
                    acked_total.fetch_add(1, Ordering::Relaxed);
                }
                (acked_seq, acked_checkins)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_total.load(Ordering::Relaxed) < 300 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    interrupt(&mut server.child);
    stop.store(true, Ordering::Relaxed);
    let acked: Acked = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let total: u64 = acked.iter().map(|(_, n)| n).sum();
    assert!(
        total >= 300,
        "the burst was too short to mean anything ({total})"
    );
    eprintln!("acknowledged before the interruption: {total} check-ins");
    acked
}

/// Restarts the server and checks every acknowledged check-in is there,
/// through the API (acked_seq) and in the database (reports, counts).
fn check_nothing_acknowledged_was_lost(f: &Fixture, machines: &[Machine], acked: &Acked) {
    let server = ServeProcess::start(f);
    let client = f.client();
    for (m, (acked_seq, _)) in machines.iter().zip(acked) {
        let r = client.post(
            &server.api("/checkin"),
            Some(&m.auth),
            &serde_json::to_vec(&heartbeat(&m.inventory_hash)).unwrap(),
        );
        assert_eq!(r.status, 200);
        let stored = r.json()["acked_seq"].as_u64().unwrap();
        assert!(
            stored >= *acked_seq,
            "acknowledged seq {acked_seq} lost: server has {stored}"
        );
    }
    drop(server);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = SqliteStore::open(&f.data.database()).unwrap();
    let listed = rt.block_on(store.list_machines(None)).unwrap();
    for (m, (acked_seq, acked_checkins)) in machines.iter().zip(acked) {
        let seqs: Vec<u64> = rt
            .block_on(store.reports(&m.id))
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        let expected: Vec<u64> = (1..=*acked_seq).collect();
        assert_eq!(
            &seqs[..*acked_seq as usize],
            &expected[..],
            "reports of {} lost",
            m.id
        );
        let summary = listed.iter().find(|s| s.id == m.id).unwrap();
        // The heartbeat after the restart counts too.
        assert!(
            summary.checkins > *acked_checkins,
            "check-ins of {} lost",
            m.id
        );
    }
    rt.block_on(store.close()).unwrap();
}

fn enrolled(f: &Fixture, server: &ServeProcess, n: usize) -> Vec<Machine> {
    let token = f.token(&["--uses", "100"]);
    (0..n)
        .map(|i| enroll_on(&f.client(), server, &token, &format!("pc-{i:02}")))
        .collect()
}

#[test]
fn kill_9_during_a_checkin_burst_loses_no_acknowledged_checkin() {
    let f = Fixture::new();
    let mut server = ServeProcess::start(&f);
    let machines = enrolled(&f, &server, 8);
    let acked = burst(&mut server, &f, &machines, |child| {
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    });
    drop(server);
    check_nothing_acknowledged_was_lost(&f, &machines, &acked);
}

#[test]
fn sigterm_during_a_burst_finishes_in_flight_requests_and_exits_cleanly() {
    let f = Fixture::new();
    let mut server = ServeProcess::start(&f);
    let machines = enrolled(&f, &server, 8);
    let acked = burst(&mut server, &f, &machines, |child| {
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = child.wait().unwrap();
        assert!(status.success(), "graceful shutdown failed: {status}");
    });
    drop(server);
    // Closed cleanly: the WAL was folded back into the database and removed.
    assert!(!f.data.root().join("nird.db-wal").exists());
    check_nothing_acknowledged_was_lost(&f, &machines, &acked);
}
