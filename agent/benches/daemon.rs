//! Daemon benchmark: the release binary's size, the idle `nird-agent run`
//! (resident memory and CPU time between check-ins), and the heartbeat body
//! when nothing changed.
//!
//! ```text
//! cargo bench -p nird-agent --bench daemon
//! NIRD_BENCH_IDLE_SECS=120 cargo bench -p nird-agent --bench daemon
//! cargo build --profile release-small -p nird-agent --bin nird-agent && \
//!   NIRD_BENCH_AGENT=target/release-small/nird-agent cargo bench -p nird-agent --bench daemon
//! ```
//!
//! The server is the real one (library, in-process, real TLS on 127.0.0.1);
//! the agent is the built binary, enrolled with `enroll` and run with
//! `run --root R`. `R` links `/proc`, `/sys`, `/etc/os-release` and dpkg's
//! status to the live system, so the inventory the daemon collects is this
//! machine's (D-Bus facts aside: they are only asked for when the root is
//! `/`, which a benchmark must not write to).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nird_proto::api::{CheckinRequest, ProfileRef};

/// The binary measured: the bench profile's, or `NIRD_BENCH_AGENT` (e.g.
/// `target/release-small/nird-agent`, the size-tuned build packages use).
fn agent() -> String {
    std::env::var("NIRD_BENCH_AGENT").unwrap_or_else(|_| env!("CARGO_BIN_EXE_nird-agent").into())
}

/// `key:   123 kB` from `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses).
    let after = &text[text.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn threads(pid: u32) -> u64 {
    status_kib(pid, "Threads:")
}

fn live_root(root: &Path) {
    let link = |target: &str, at: &str| {
        let at = root.join(at);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        if Path::new(target).exists() {
            std::os::unix::fs::symlink(target, at).unwrap();
        }
    };
    link("/proc", "proc");
    link("/sys", "sys");
    link("/etc/os-release", "etc/os-release");
    link("/usr/lib/os-release", "usr/lib/os-release");
    link("/var/lib/dpkg/status", "var/lib/dpkg/status");
    link("/etc/machine-id", "etc/machine-id");
}

fn main() {
    let idle = Duration::from_secs(
        std::env::var("NIRD_BENCH_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );

    let agent = agent();
    let agent = agent.as_str();
    // Binary size.
    let size = std::fs::metadata(agent).unwrap().len();
    println!(
        "binary: {agent}: {size} bytes ({:.1} MiB)",
        size as f64 / 1048576.0
    );

    // Heartbeat body with nothing to report: hash + three applied profiles
    // and the trust report every check-in carries (keyring and index held).
    let heartbeat = CheckinRequest {
        inventory_hash: nird_proto::hash::sha256_hex(b"inventory"),
        inventory: None,
        inventory_delta: None,
        applied: ["linux-nird", "nird-base", "primtux"]
            .iter()
            .map(|n| ProfileRef {
                name: (*n).into(),
                version: 12_345,
            })
            .collect(),
        reports: vec![],
        trust: Some(nird_proto::api::TrustReport {
            keyring_version: Some(3),
            index_version: Some(128),
            problems: vec![],
        }),
    };
    println!(
        "heartbeat body, nothing changed, 3 applied profiles: {} bytes",
        serde_json::to_vec(&heartbeat).unwrap().len()
    );

    // A real server.
    let tmp = tempfile::tempdir().unwrap();
    let data = nird_server::data_dir::DataDir::new(tmp.path().join("data"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fingerprint = match rt
        .block_on(nird_server::init::init(&nird_server::init::InitOptions {
            data_dir: data.clone(),
            hostnames: vec![],
            keyring: None,
            database: None,
        }))
        .unwrap()
    {
        nird_server::init::InitOutcome::Created { ca_fingerprint, .. } => ca_fingerprint,
        _ => unreachable!("fresh directory"),
    };
    let token = rt.block_on(async {
        let store = nird_server::store::SqliteStore::open(&data.database()).unwrap();
        let school = nird_server::admin::school_from_args(
            "0620056Z", "École", "Calais", None, "Lille", "ecole", false,
        )
        .unwrap();
        nird_server::admin::school_add(&store, "bench", school)
            .await
            .unwrap();
        let token = nird_server::admin::token_create(&store, "bench", "0620056Z", 1, None)
            .await
            .unwrap();
        nird_server::store::Store::close(&store).await.unwrap();
        token
    });
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_data = data.clone();
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addr_tx.send(listener.local_addr().unwrap()).unwrap();
        let config =
            nird_server::http::ServeConfig::from_data_dir(&server_data, None, None).unwrap();
        nird_server::http::run(listener, config, async {
            let _ = stop_rx.await;
        })
        .await
        .unwrap();
    });
    let addr = addr_rx.recv().unwrap();

    // The agent: enrol, then the daemon.
    let root = tempfile::tempdir().unwrap();
    live_root(root.path());
    let root_arg = root.path().to_str().unwrap();
    let out = Command::new(agent)
        .args(["enroll", "--root", root_arg, "--token", &token])
        .args(["--server", &format!("https://{addr}")])
        .args(["--ca-fingerprint", &fingerprint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(agent)
        .args(["run", "--root", root_arg])
        .env("NIRD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let status_file = root.path().join("var/lib/nird-agent/status.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["last_checkin_at"].is_string());
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "no check-in");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the first cycle's allocations settle, then watch it idle.
    std::thread::sleep(Duration::from_secs(2));
    let ticks_before = cpu_ticks(pid);
    let rss_before = status_kib(pid, "VmRSS:");
    std::thread::sleep(idle);
    let ticks_after = cpu_ticks(pid);
    println!(
        "idle daemon: VmRSS {} KiB after first check-in, {} KiB after {} s idle, peak (VmHWM) {} KiB, {} threads",
        rss_before,
        status_kib(pid, "VmRSS:"),
        idle.as_secs(),
        status_kib(pid, "VmHWM:"),
        threads(pid)
    );
    println!(
        "  of which anonymous (heap, stacks) {} KiB, file-backed (binary and libraries) {} KiB",
        status_kib(pid, "RssAnon:"),
        status_kib(pid, "RssFile:")
    );
    println!(
        "idle daemon CPU over {} s between check-ins: {} clock ticks (1 tick = 10 ms)",
        idle.as_secs(),
        ticks_after - ticks_before
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = child.wait().unwrap();
    println!("SIGTERM: exit {exit}");
    let _ = stop_tx.send(());
}
