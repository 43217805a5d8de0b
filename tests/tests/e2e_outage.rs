//! The server stopped with the real binaries: each `run --once` fails with
//! a French sentence, what the agent has to say waits in its on-disk spool
//! across processes, and is delivered exactly once when the server returns
//! on the same address. (The week-long outage with hundreds of reports is
//! simulated with a fake clock in `agent/tests/daemon_week_offline.rs`.)

use nird_tests::*;

#[test]
fn what_happens_while_the_server_is_down_is_delivered_afterwards() {
    let data = ServerData::new();
    let port = free_port();
    let server = ServerProcess::start(&data, port);
    let agent = AgentRoot::new(&data);
    agent.enroll(&server, &data, &data.token());
    let machine = agent.machine_id();
    agent.run_once();
    assert_eq!(data.inventory_versions(&machine), 1);

    server.stop();
    // The machine changes while the server is away (renamed).
    let hostname = agent.root().join("proc/sys/kernel/hostname");
    std::fs::create_dir_all(hostname.parent().unwrap()).unwrap();
    std::fs::write(&hostname, "pc-renomme\n").unwrap();
    for _ in 0..3 {
        let out = agent.run(&["run", "--once"]);
        assert!(!out.status.success(), "server is down");
        assert!(stderr(&out).contains("injoignable"), "{}", stderr(&out));
    }
    let status = agent.status();
    assert_eq!(status["spool_entries"], 1, "{status}");
    assert!(
        status["daemon"]["last_error"]
            .as_str()
            .unwrap()
            .contains("injoignable")
    );
    assert_eq!(status["daemon"]["consecutive_failures"], 3);

    let server = ServerProcess::start(&data, port);
    agent.run_once();
    let status = agent.status();
    assert_eq!(status["spool_entries"], 0, "{status}");
    assert!(status["daemon"]["last_error"].is_null());
    assert_eq!(
        data.inventory_versions(&machine),
        2,
        "the change arrives once"
    );
    agent.run_once();
    assert_eq!(data.inventory_versions(&machine), 2);
    server.stop();
}
