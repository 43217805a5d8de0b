//! A real PostgreSQL for tests: Debian's `postgresql` package (installed by
//! scripts/install-deps.sh), a fresh cluster made by `initdb` in a
//! temporary directory and run by `postgres` as an unprivileged user
//! (`nobody` when the tests run as root, as in CI; the current user
//! otherwise), listening on 127.0.0.1 on a free port and on a socket in
//! that directory.
//!
//! The postmaster runs under a small shell supervisor whose standard input
//! is a pipe from the test process: when the test process exits (however
//! it exits) the pipe closes, and the supervisor stops PostgreSQL and
//! removes the directory. Through the same pipe a test can crash
//! PostgreSQL (immediate shutdown: no checkpoint, crash recovery at the
//! next start) and start it again.
//!
//! [`shared`] gives one cluster per test binary; each test takes its own
//! database in it ([`PgCluster::database`]).

#![allow(dead_code)] // each test file uses a subset

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running PostgreSQL cluster.
pub struct PgCluster {
    /// Where the binaries are (`/usr/lib/postgresql/N/bin`).
    bin: PathBuf,
    /// The cluster's directory (data, socket, log).
    dir: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The supervisor's input (commands; closing it stops everything).
    control: Mutex<Option<ChildStdin>>,
    /// The supervisor itself.
    supervisor: Mutex<Child>,
    /// Numbers the databases handed out.
    next_db: AtomicU32,
}

/// The highest installed PostgreSQL's binaries.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

/// True when the tests run as root (the cluster then runs as `nobody`).
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The command prefix that runs a program as the cluster's user.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The cluster of this test binary, started on first use; `None` (with the
/// reason printed) where PostgreSQL cannot start here.
pub fn shared() -> Option<&'static PgCluster> {
    static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| match PgCluster::start() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("PostgreSQL tests skipped: {e}");
                None
            }
        })
        .as_ref()
}

impl PgCluster {
    /// Makes and starts a new cluster (its own, not the shared one).
    pub fn start() -> Result<Self, String> {
        let bin = find_bin().ok_or(
            "no PostgreSQL under /usr/lib/postgresql (scripts/install-deps.sh installs it)",
        )?;
        let tmp = tempfile::Builder::new()
            .prefix("nird-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        // The supervisor removes the directory at the end, not TempDir.
        let dir = tmp.keep();
        if is_root() {
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).map_err(|e| e.to_string())?;
        }
        let data = dir.join("data");
        let out = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "nird", "--auth=trust", "-E", "UTF8", "--no-locale"])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = free_port().map_err(|e| e.to_string())?;
        let postgres = bin.join("postgres");
        let run_as = if is_root() {
            "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all"
        } else {
            ""
        };
        // $1 directory, $2 port, $3 postgres binary.
        let script = format!(
            r#"d=$1; port=$2; bin=$3
start() {{
  {run_as} "$bin" -D "$d/data" -k "$d" -p "$port" -c listen_addresses=127.0.0.1 \
    -c max_connections=300 -c shared_buffers=64MB >>"$d/log" 2>&1 &
  pid=$!
}}
start
while read -r cmd; do
  case "$cmd" in
    crash) kill -QUIT "$pid"; wait "$pid" ;;
    start) start ;;
  esac
done
kill -INT "$pid" 2>/dev/null; wait "$pid"; rm -rf "$d""#
        );
        let mut supervisor = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&dir)
            .arg(port.to_string())
            .arg(&postgres)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("sh: {e}"))?;
        let control = supervisor.stdin.take().ok_or("no stdin")?;
        let cluster = PgCluster {
            bin,
            dir,
            port,
            control: Mutex::new(Some(control)),
            supervisor: Mutex::new(supervisor),
            next_db: AtomicU32::new(0),
        };
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// Waits until the server accepts connections (30 s at most).
    pub fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "nird",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                return Err(format!("PostgreSQL did not start:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs SQL as the superuser on database `db` with `psql`; its output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "nird",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new empty database; its URL.
    pub fn database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// The URL of database `name` over TCP.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://nird@127.0.0.1:{}/{name}", self.port)
    }

    /// Crashes PostgreSQL (immediate shutdown, as a power cut would leave
    /// the files: recovery from the WAL at the next start).
    pub fn crash(&self) {
        self.send("crash");
    }

    /// Starts PostgreSQL again after [`PgCluster::crash`] and waits for it.
    pub fn restart(&self) {
        self.send("start");
        self.wait_ready().expect("PostgreSQL restarts");
    }

    fn send(&self, cmd: &str) {
        let mut control = self.control.lock().expect("control pipe");
        let control = control.as_mut().expect("cluster running");
        writeln!(control, "{cmd}").expect("supervisor alive");
        control.flush().expect("supervisor alive");
    }
}

impl Drop for PgCluster {
    /// A cluster owned by a test (not the shared one, which lives until the
    /// process exits) stops when dropped: closing the pipe stops PostgreSQL
    /// and removes the directory.
    fn drop(&mut self) {
        if let Ok(mut control) = self.control.lock() {
            control.take();
        }
        if let Ok(mut supervisor) = self.supervisor.lock() {
            let _ = supervisor.wait();
        }
    }
}
