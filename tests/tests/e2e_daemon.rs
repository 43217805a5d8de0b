//! `nird-agent run` as systemd runs it: `READY=1` once its loop runs,
//! `STATUS=` after each check-in,
//! `WATCHDOG=1` keep-alives at half `WATCHDOG_USEC`, SIGHUP reloads the
//! configuration (an invalid one is refused and the daemon keeps going),
//! SIGTERM stops it cleanly with `STOPPING=1` and exit code 0. The
//! notification socket is a datagram socket the test binds.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nird_tests::*;

/// Waits for a notification with a line starting with `line` (other ones
/// are skipped).
fn expect(sock: &UnixDatagram, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.lines().any(|l| l.starts_with(line)) {
                return;
            }
            seen.push(msg);
        }
    }
    panic!("no {line} notification; got {seen:?}");
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn daemon_notifies_systemd_reloads_on_sighup_and_stops_on_sigterm() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);
    agent.enroll(&server, &data, &data.token());

    let sock_path = agent.root().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let log = agent.root().join("agent.log");
    let mut child = Command::new(bin("nird-agent"))
        .args(["run", "--root", s(agent.root())])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn nird-agent run");
    let pid = child.id();

    expect(&sock, "READY=1");
    expect(&sock, "STATUS=dernier contact réussi");
    expect(&sock, "WATCHDOG=1");
    assert!(agent.status()["daemon"]["last_checkin_at"].is_string());
    // One writer: a second agent on the same root is refused.
    let out = agent.run(&["run", "--once"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("autre nird-agent"),
        "{}",
        stderr(&out)
    );

    // Reload with a new interval.
    let config_file = agent.root().join("etc/nird/agent.toml");
    let config = std::fs::read_to_string(&config_file).unwrap();
    std::fs::write(&config_file, format!("interval_secs = 1200\n{config}")).unwrap();
    signal(pid, "-HUP");
    expect(&sock, "RELOADING=1");
    expect(&sock, "READY=1");

    // An invalid config: refused, the daemon keeps running on the old one.
    std::fs::write(&config_file, "server = 42\n").unwrap();
    signal(pid, "-HUP");
    expect(&sock, "RELOADING=1");
    expect(&sock, "WATCHDOG=1");
    assert!(
        child.try_wait().unwrap().is_none(),
        "daemon died on a bad config"
    );

    signal(pid, "-TERM");
    expect(&sock, "STOPPING=1");
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "exit {status}: {text}");
    assert!(text.contains("configuration reloaded"), "{text}");
    assert!(text.contains("configuration reload refused"), "{text}");
    server.stop();
}
