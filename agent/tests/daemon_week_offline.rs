//! The daemon loop against a real server over real TLS, with a simulated
//! clock: a week with the server stopped (and an agent restart in the
//! middle) loses nothing, and every report arrives afterwards in order,
//! exactly once — even when a reply is lost after the server stored it.

mod daemon_common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use daemon_common::*;
use nird_agent::config::AgentConfig;
use nird_agent::daemon::{
    Agent, Clock, Control, CycleResult, DaemonOptions, NoHooks, RunMode, SimulatedClock, run,
};
use nird_agent::enroll::{CaPin, EnrollOptions, enroll};
use nird_agent::paths::AgentPaths;
use nird_proto::api::{ApplyOutcome, ApplyReport, MAX_REPORTS_PER_CHECKIN};

const HOUR: Duration = Duration::from_secs(3600);

fn report(i: usize) -> ApplyReport {
    let t = time::OffsetDateTime::now_utc();
    ApplyReport {
        seq: 0,
        profile: format!("p{i:03}"),
        version: 1,
        outcome: ApplyOutcome::Applied,
        reason: None,
        message: None,
        resources: vec![],
        started_at: t,
        finished_at: t,
    }
}

fn enrolled(sd: &ServerData, server: &Server) -> (tempfile::TempDir, AgentPaths, AgentConfig) {
    let (tmp, paths) = agent_root();
    let inv = TestInventory::new(inventory_doc(4096)).snapshot();
    enroll(
        &paths,
        &EnrollOptions {
            server: server.url(),
            token: sd.token(1),
            ca: CaPin::Fingerprint(sd.fingerprint.clone()),
            force: false,
            keyring: None,
            replace_keyring: false,
        },
        &inv,
        &time::OffsetDateTime::now_utc,
    )
    .unwrap();
    let config = AgentConfig::load(&paths).unwrap();
    (tmp, paths, config)
}

/// An agent talking straight to the server (no faulty link), with a fixed
/// inventory and the default options.
fn direct_agent(paths: &AgentPaths, config: &AgentConfig) -> Agent {
    let https = Arc::new(nird_agent::daemon::service::transport_for(paths, config).unwrap());
    Agent::new(
        paths.clone(),
        config.clone(),
        https,
        Box::new(TestInventory::new(inventory_doc(4096))),
        DaemonOptions::default(),
    )
    .unwrap()
}

/// Runs the real daemon loop until the simulated clock has moved `d`.
async fn run_for(agent: Agent, clock: Arc<SimulatedClock>, d: Duration) -> Agent {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let deadline = clock.now() + d;
    let waiter = clock.clone();
    let stopper = tokio::spawn(async move {
        waiter.until(deadline).await;
        let _ = tx.send(Control::Stop);
    });
    let agent = run(agent, clock, rx, Arc::new(NoHooks), RunMode::Forever).await;
    stopper.abort();
    agent
}

#[test]
fn a_week_offline_loses_nothing_and_delivers_in_order_exactly_once() {
    let sd = ServerData::new();
    let server = Server::start(&sd.data, 0, Duration::from_secs(900));
    let port = server.addr.port();
    let (_tmp, paths, config) = enrolled(&sd, &server);
    let https = Arc::new(nird_agent::daemon::service::transport_for(&paths, &config).unwrap());
    let link = FaultyLink::new(https);
    let inventory = TestInventory::new(inventory_doc(4096));
    let clock = Arc::new(SimulatedClock::new(time::OffsetDateTime::now_utc()));
    let new_agent = || {
        Agent::new(
            paths.clone(),
            config.clone(),
            link.clone(),
            Box::new(inventory.clone()),
            DaemonOptions::default(),
        )
        .unwrap()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Online: a plain heartbeat.
    let mut agent = new_agent();
    assert!(matches!(
        agent.cycle(clock.now()),
        CycleResult::Delivered { .. }
    ));

    // The server stops for a week.
    server.stop();
    let before = link.attempts.load(Ordering::SeqCst);
    for i in 0..150 {
        agent.spool().push_report(report(i)).unwrap();
    }
    inventory.set(inventory_doc(8192)); // RAM upgraded meanwhile
    let agent = rt.block_on(run_for(agent, clock.clone(), 84 * HOUR));
    assert_eq!(
        agent.status().consecutive_failures as usize,
        link.attempts.load(Ordering::SeqCst) - before
    );

    // The agent crashes and restarts half-way: the spool is on disk.
    drop(agent);
    let mut agent = new_agent();
    assert_eq!(agent.spool().report_count(), 150);
    for i in 150..250 {
        agent.spool().push_report(report(i)).unwrap();
    }
    inventory.set(inventory_doc(16384)); // and again
    let agent = rt.block_on(run_for(agent, clock.clone(), 84 * HOUR));
    let offline_attempts = link.attempts.load(Ordering::SeqCst) - before;
    // Kept trying, but with capped backoff: between one and two attempts an
    // hour (the cap is 1 h, jittered down to 30 min), plus the ramp-up.
    assert!(
        (7 * 24..=7 * 24 * 2 + 20).contains(&offline_attempts),
        "{offline_attempts} attempts in a week"
    );
    assert!(
        agent
            .status()
            .last_error
            .as_deref()
            .unwrap()
            .contains("injoignable")
    );

    // The server comes back on the same address; the first reply is lost
    // after the server stored the first batch.
    let server = Server::start(&sd.data, port, Duration::from_secs(900));
    link.lose_next_reply.store(true, Ordering::SeqCst);
    let mut agent = rt.block_on(run_for(agent, clock.clone(), 3 * HOUR));
    assert_eq!(agent.spool().len(), 0, "spool not drained");
    // At least 3 check-ins for 250 reports, plus the one whose reply was lost.
    assert!(
        link.delivered.load(Ordering::SeqCst) > 1 + 250_usize.div_ceil(MAX_REPORTS_PER_CHECKIN)
    );

    let machine = config.machine_id.clone();
    let stored = sd.reports(&machine);
    assert_eq!(stored.len(), 250, "every report exactly once");
    let names: Vec<String> = stored.iter().map(|r| r.profile.clone()).collect();
    let expected: Vec<String> = (0..250).map(|i| format!("p{i:03}")).collect();
    assert_eq!(names, expected, "in order");
    assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq));
    // Enrolment inventory + both upgrades, each once, in order.
    assert_eq!(sd.inventory_versions(&machine), 3);
    assert_eq!(
        agent.status().server_inventory_hash,
        Some(inventory.snapshot().hash)
    );
    assert_eq!(agent.status().acked_seq, stored.last().unwrap().seq);

    // Nothing changed any more: the heartbeat is small.
    link.heartbeat_sizes.lock().unwrap().clear();
    assert!(matches!(
        agent.cycle(clock.now()),
        CycleResult::Delivered { .. }
    ));
    let sizes = link.heartbeat_sizes.lock().unwrap().clone();
    assert_eq!(sizes.len(), 1);
    assert!(sizes[0] <= 512, "heartbeat of {} bytes", sizes[0]);
    drop(server);
}

#[test]
fn obeys_the_server_interval_and_the_configured_floor() {
    let sd = ServerData::new();
    let server = Server::start(&sd.data, 0, Duration::from_secs(600));
    let (_tmp, paths, mut config) = enrolled(&sd, &server);
    let now = time::OffsetDateTime::now_utc();
    let mut agent = direct_agent(&paths, &config);
    assert_eq!(
        agent.cycle(now),
        CycleResult::Delivered {
            next: Duration::from_secs(600)
        }
    );
    // A longer configured interval wins over the server's.
    config.interval_secs = Some(1200);
    config.save(&paths).unwrap();
    agent.reload_config().unwrap();
    assert_eq!(
        agent.cycle(now),
        CycleResult::Delivered {
            next: Duration::from_secs(1200)
        }
    );
    // An invalid config on reload is refused and the old one kept.
    std::fs::write(paths.config_file(), "server = 3").unwrap();
    assert!(agent.reload_config().is_err());
    assert_eq!(agent.config().interval_secs, Some(1200));
    drop(server);
}

#[test]
fn backoff_grows_to_its_cap_while_the_server_is_down() {
    let sd = ServerData::new();
    let server = Server::start(&sd.data, 0, Duration::from_secs(900));
    let (_tmp, paths, config) = enrolled(&sd, &server);
    server.stop();
    let https = Arc::new(nird_agent::daemon::service::transport_for(&paths, &config).unwrap());
    let mut agent = Agent::new(
        paths,
        config,
        https,
        Box::new(TestInventory::new(inventory_doc(1))),
        DaemonOptions {
            backoff_base: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(300),
            ..Default::default()
        },
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let waits: Vec<Duration> = (0..12)
        .map(|_| match agent.cycle(now) {
            CycleResult::Failed { retry, error } => {
                assert!(error.contains("injoignable"), "{error}");
                retry
            }
            other => panic!("server is down, got {other:?}"),
        })
        .collect();
    // Equal jitter: each wait in [nominal/2, nominal], nominal doubling to the cap.
    let mut nominal = Duration::from_secs(10);
    for w in &waits {
        assert!(*w >= nominal / 2 && *w <= nominal, "{w:?} vs {nominal:?}");
        nominal = (nominal * 2).min(Duration::from_secs(300));
    }
    assert!(waits[11] >= Duration::from_secs(150));
}

#[test]
fn the_inventory_is_resent_at_once_when_the_server_asks_for_it() {
    let sd = ServerData::new();
    let server = Server::start(&sd.data, 0, Duration::from_secs(900));
    let (_tmp, paths, config) = enrolled(&sd, &server);
    let https = Arc::new(nird_agent::daemon::service::transport_for(&paths, &config).unwrap());
    let link = FaultyLink::new(https);
    // The agent believes the server has inventory B; the server only has A
    // (its database was restored from an older backup, say).
    let inventory = TestInventory::new(inventory_doc(16384));
    let mut status = nird_agent::status::DaemonStatus::load(&paths);
    status.server_inventory_hash = Some(inventory.snapshot().hash);
    status.save(&paths).unwrap();
    let mut agent = Agent::new(
        paths,
        config.clone(),
        link.clone(),
        Box::new(inventory),
        DaemonOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        agent.cycle(time::OffsetDateTime::now_utc()),
        CycleResult::Delivered { .. }
    ));
    // A heartbeat, the server's request, the inventory: in the same cycle.
    assert_eq!(link.delivered.load(Ordering::SeqCst), 2);
    assert_eq!(sd.inventory_versions(&config.machine_id), 2);
    drop(server);
}

#[test]
fn an_overloaded_server_is_left_alone_for_a_full_interval() {
    let sd = ServerData::new();
    let server = Server::start(&sd.data, 0, Duration::from_secs(600));
    let (_tmp, paths, config) = enrolled(&sd, &server);
    let https = Arc::new(nird_agent::daemon::service::transport_for(&paths, &config).unwrap());
    let link = FaultyLink::new(https);
    let mut agent = Agent::new(
        paths,
        config,
        link.clone(),
        Box::new(TestInventory::new(inventory_doc(4096))),
        DaemonOptions::default(),
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert!(matches!(agent.cycle(now), CycleResult::Delivered { .. }));
    link.overloaded.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        match agent.cycle(now) {
            // 600 s from the server, ± 60 s of jitter; never a 30 s backoff.
            CycleResult::Failed { retry, .. } => assert!(
                retry >= Duration::from_secs(540) && retry <= Duration::from_secs(660),
                "{retry:?}"
            ),
            other => panic!("{other:?}"),
        }
    }
    drop(server);
}

#[test]
fn an_absurd_server_interval_is_capped_at_a_day() {
    // A server misconfigured with an interval of ~31 700 years: the date of
    // the next check-in must not overflow (it panicked the daemon).
    let sd = ServerData::new();
    let server = Server::start(&sd.data, 0, Duration::from_secs(1_000_000_000_000));
    let (_tmp, paths, config) = enrolled(&sd, &server);
    let mut agent = direct_agent(&paths, &config);
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(
        agent.cycle(now),
        CycleResult::Delivered {
            next: Duration::from_secs(nird_agent::config::MAX_INTERVAL_SECS)
        }
    );
    assert_eq!(
        agent.status().next_checkin_at,
        Some(now + Duration::from_secs(nird_agent::config::MAX_INTERVAL_SECS))
    );
    drop(server);
}

#[test]
fn a_spooled_entry_the_server_refuses_is_set_aside_and_the_rest_delivered() {
    let sd = ServerData::new();
    let server = Server::start(&sd.data, 0, Duration::from_secs(600));
    let (_tmp, paths, config) = enrolled(&sd, &server);
    let machine = config.machine_id.clone();
    let mut agent = direct_agent(&paths, &config);
    // Beyond the server's limit on a message: every check-in carrying it
    // is refused (400), which blocked the machine for good.
    let mut too_long = report(1);
    too_long.message = Some("x".repeat(100_000));
    agent.spool().push_report(report(0)).unwrap();
    let bad = agent.spool().push_report(too_long).unwrap();
    agent.spool().push_report(report(2)).unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert!(matches!(agent.cycle(now), CycleResult::Delivered { .. }));
    let delivered: Vec<String> = sd
        .reports(&machine)
        .into_iter()
        .map(|r| r.profile)
        .collect();
    assert_eq!(delivered, ["p000", "p002"]);
    assert_eq!(agent.spool().report_count(), 0);
    assert!(agent.status().last_error.is_none());
    let rejected = paths.spool_dir().join(format!("{bad:020}.report.rejected"));
    assert!(
        rejected.exists(),
        "{} kept for inspection",
        rejected.display()
    );
    // Nothing is left to block the next check-ins.
    assert!(matches!(agent.cycle(now), CycleResult::Delivered { .. }));
    drop(server);
}
