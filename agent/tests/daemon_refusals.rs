//! The daemon against a server that refuses or never acknowledges what it
//! sends (found by review): the refused inventory was spooled again and set
//! aside again at every cycle (a 250 KB copy each time, outside the spool's
//! bounds), and an unacknowledged report kept the agent checking in every
//! second, overriding the server's interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nird_agent::config::AgentConfig;
use nird_agent::daemon::{Agent, CycleResult, DaemonOptions, InventorySnapshot, InventorySource};
use nird_agent::paths::AgentPaths;
use nird_agent::spool::MAX_SET_ASIDE;
use nird_agent::transport::{Transport, TransportError};
use nird_proto::api::{
    ApiError, ApplyOutcome, ApplyReport, CheckinRequest, CheckinResponse, MachineStatus,
};

/// The same document, or a new one at each collection.
struct Inventory {
    changing: bool,
    n: usize,
}

impl InventorySource for Inventory {
    fn collect(&mut self) -> Result<InventorySnapshot, String> {
        if self.changing {
            self.n += 1;
        }
        let software: Vec<_> = (0..2_500)
            .map(|i| serde_json::json!({"name": format!("paquet-{i}"), "version": "1.0-1", "arch": "amd64"}))
            .collect();
        InventorySnapshot::new(
            serde_json::json!({"schema_version": 2, "n": self.n, "software": software}),
        )
        .map_err(|e| e.to_string())
    }
}

/// Accepts heartbeats; refuses (400) every check-in carrying something, or
/// accepts it and acknowledges nothing.
struct Server {
    calls: AtomicUsize,
    refuse: bool,
}

impl Transport for Server {
    fn checkin(&self, r: &CheckinRequest) -> Result<CheckinResponse, TransportError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let carries = r.inventory.is_some() || r.inventory_delta.is_some() || !r.reports.is_empty();
        if self.refuse && carries {
            return Err(TransportError::Api {
                status: 400,
                error: ApiError {
                    error: "bad_request".into(),
                    message: "non".into(),
                },
            });
        }
        Ok(CheckinResponse {
            status: MachineStatus::Active,
            send_inventory: false,
            acked_seq: 0,
            assigned: vec![],
            next_checkin_secs: 900,
            keyring_version: None,
            index_version: None,
            server_time: time::OffsetDateTime::now_utc(),
        })
    }

    fn fetch(&self, _: &str, _: u64) -> Result<Vec<u8>, TransportError> {
        Err(TransportError::Protocol("rien".into()))
    }
}

fn agent(paths: &AgentPaths, server: Arc<Server>, changing: bool) -> Agent {
    let config = AgentConfig::new("https://127.0.0.1:1", "m-1", paths.root.join("ca.pem"));
    Agent::new(
        paths.clone(),
        config,
        server,
        Box::new(Inventory { changing, n: 0 }),
        DaemonOptions::default(),
    )
    .unwrap()
}

fn set_aside(paths: &AgentPaths) -> usize {
    std::fs::read_dir(paths.spool_dir())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.ends_with(".rejected") || name.ends_with(".corrupt")
        })
        .count()
}

#[test]
fn a_refused_inventory_is_set_aside_once_and_set_aside_files_stay_few() {
    // The same inventory every cycle: refused once, never spooled again.
    let tmp = tempfile::tempdir().unwrap();
    let paths = AgentPaths::new(tmp.path());
    let server = Arc::new(Server {
        calls: AtomicUsize::new(0),
        refuse: true,
    });
    let mut a = agent(&paths, server, false);
    let mut now = time::OffsetDateTime::now_utc();
    for _ in 0..30 {
        a.cycle(now);
        now += time::Duration::minutes(15);
    }
    assert_eq!(set_aside(&paths), 1);
    assert!(a.spool().is_empty());

    // A machine that changes every cycle, refused every time: only the
    // newest few copies are kept.
    let tmp = tempfile::tempdir().unwrap();
    let paths = AgentPaths::new(tmp.path());
    let server = Arc::new(Server {
        calls: AtomicUsize::new(0),
        refuse: true,
    });
    let mut a = agent(&paths, server, true);
    for _ in 0..(MAX_SET_ASIDE + 15) {
        a.cycle(now);
        now += time::Duration::minutes(15);
    }
    assert_eq!(set_aside(&paths), MAX_SET_ASIDE);
}

#[test]
fn a_server_that_acknowledges_nothing_gets_its_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = AgentPaths::new(tmp.path());
    let server = Arc::new(Server {
        calls: AtomicUsize::new(0),
        refuse: false,
    });
    let mut a = agent(&paths, server.clone(), false);
    let at = time::OffsetDateTime::UNIX_EPOCH;
    a.spool()
        .push_report(ApplyReport {
            seq: 0,
            profile: "p".into(),
            version: 1,
            outcome: ApplyOutcome::Applied,
            reason: None,
            message: None,
            resources: vec![],
            started_at: at,
            finished_at: at,
        })
        .unwrap();
    let mut now = time::OffsetDateTime::now_utc();
    for cycle in 0..5 {
        let r = a.cycle(now);
        assert!(matches!(r, CycleResult::Delivered { .. }));
        // The first check-in delivers the inventory (progress: the report
        // follows at once); after that nothing is ever acknowledged.
        if cycle > 0 {
            assert!(
                r.wait() >= Duration::from_secs(900),
                "cycle {cycle}: the server asked for 900 s; the agent waits {:?}",
                r.wait()
            );
        }
        now += time::Duration::seconds(900);
    }
    // Still spooled: nothing is lost, it goes with the next check-ins.
    assert_eq!(a.spool().report_count(), 1);
}
