//! Helpers for the end-to-end tests in `tests/tests/`: locating the built
//! binaries, a server data directory driven by `nird-server`'s command line,
//! the server process on a free `127.0.0.1` port, and agent roots driven by
//! `nird-agent --root`.
//!
//! The binaries are the ones `cargo build --workspace --bins` leaves in the
//! target directory (`scripts/test.sh` builds them before the tests).
//! Everything goes through command lines, files and ports. The one
//! exception is [`ServerData::reports`] and the `attacker_*` methods, which
//! open the server's SQLite file: the first reads what the dashboard will
//! show (the server has no command to list reports yet), the others play an
//! attacker who controls the server's storage — exactly the threat signed
//! profiles defend against.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The school every test uses.
pub const UAI: &str = "0620056Z";

/// The target directory of this workspace.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("target"))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Path of a built binary (`nird-server`, `nird-agent`), debug profile.
pub fn bin(name: &str) -> PathBuf {
    let path = target_dir().join("debug").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` before the end-to-end tests \
         (scripts/test.sh does)",
        path.display()
    );
    path
}

/// Runs `program args`, whatever the outcome.
pub fn run_raw(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("USER", "e2e")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// Runs `program args`; panics with its output unless it succeeds; stdout.
pub fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = run_raw(program, args);
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A server data directory set up with the real `nird-server` commands:
/// `init`, one school, a maintainer key pair trusted by the server.
pub struct ServerData {
    /// Keeps the directory alive.
    pub tmp: tempfile::TempDir,
    /// `--data-dir`.
    pub data: PathBuf,
    /// The CA fingerprint `init` printed.
    pub fingerprint: String,
    /// The maintainer's keys (`nird.pub`, `nird.key`).
    pub keys: PathBuf,
}

impl ServerData {
    /// `init`, `school add`, `profile keygen`, `trust add`.
    pub fn new() -> Self {
        Self::with_school_flags(&[])
    }

    /// [`ServerData::new`] with extra `school add` flags
    /// (`--require-approval`).
    pub fn with_school_flags(flags: &[&str]) -> Self {
        Self::build(flags, true)
    }

    /// A server whose maintainers have published no keyring yet.
    pub fn without_keyring() -> Self {
        Self::build(&[], false)
    }

    fn build(flags: &[&str], keyring: bool) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let keys = tmp.path().join("keys");
        let server = bin("nird-server");
        let out = run_ok(&server, &["init", "--data-dir", s(&data)]);
        let fingerprint = out
            .lines()
            .map(str::trim)
            .find(|l| nird_proto::hash::is_sha256_hex(l))
            .unwrap_or_else(|| panic!("no fingerprint in init's output:\n{out}"))
            .to_owned();
        let mut school = vec![
            "school",
            "add",
            "--data-dir",
            s(&data),
            "--uai",
            UAI,
            "--name",
            "École Jean Jaurès",
            "--commune",
            "Calais",
            "--academie",
            "Lille",
            "--kind",
            "ecole",
        ];
        school.extend_from_slice(flags);
        run_ok(&server, &school);
        run_ok(
            &server,
            &["profile", "keygen", "--out", s(&keys), "--no-password"],
        );
        if keyring {
            publish_first_keyring(&server, &data, &keys);
        }
        ServerData {
            tmp,
            data,
            fingerprint,
            keys,
        }
    }

    /// Runs `nird-server` with `args` followed by `--data-dir`.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--data-dir", s(&self.data)]);
        run_ok(&bin("nird-server"), &all)
    }

    /// A single-use enrolment token (`token create`).
    pub fn token(&self) -> String {
        self.cli(&["token", "create", "--school", UAI])
            .trim()
            .to_owned()
    }

    /// Writes a profile, signs it with the maintainer key (`profile sign`)
    /// and publishes it (`profile publish`).
    pub fn publish(&self, name: &str, toml: &str) {
        let dir = self.tmp.path().join("profiles");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, toml).expect("write profile");
        run_ok(
            &bin("nird-server"),
            &[
                "profile",
                "sign",
                "--key",
                s(&self.keys.join("nird.key")),
                s(&file),
            ],
        );
        self.cli(&["profile", "publish", s(&file)]);
        self.publish_index();
    }

    /// Signs the catalogue index of every profile published so far
    /// (`profile index`) and publishes it (`index publish`), as maintainers
    /// do with each publication.
    pub fn publish_index(&self) {
        let dir = self.tmp.path().join("profiles");
        let index = dir.join("index.toml");
        run_ok(
            &bin("nird-server"),
            &[
                "profile",
                "index",
                "--catalogue",
                s(&dir),
                "--key",
                s(&self.keys.join("nird.key")),
                "--out",
                s(&index),
            ],
        );
        self.cli(&["index", "publish", s(&index)]);
    }

    /// Writes and signs a profile with the maintainer key (`profile sign`),
    /// without publishing; returns the profile bytes and the signature text.
    pub fn sign(&self, name: &str, toml: &str) -> (Vec<u8>, String) {
        let dir = self.tmp.path().join("signed-only");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, toml).expect("write profile");
        run_ok(
            &bin("nird-server"),
            &[
                "profile",
                "sign",
                "--key",
                s(&self.keys.join("nird.key")),
                s(&file),
            ],
        );
        let sig =
            std::fs::read_to_string(dir.join(format!("{name}.toml.minisig"))).expect("signature");
        (toml.as_bytes().to_vec(), sig)
    }

    /// Assigns profiles to the school (`assign --school`).
    pub fn assign(&self, profiles: &[&str]) {
        let mut args = vec!["assign", "--school", UAI];
        args.extend_from_slice(profiles);
        self.cli(&args);
    }

    fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.data.join("nird.db")).expect("open db");
        c.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        c
    }

    /// The apply reports the server stored for `machine`, by seq, as
    /// `nird-server machine reports --json` shows them.
    pub fn reports(&self, machine: &str) -> Vec<Value> {
        let out = self.cli(&["machine", "reports", "--json", machine]);
        serde_json::from_str(&out).expect("reports JSON")
    }

    /// Number of inventory versions the server holds for `machine`.
    pub fn inventory_versions(&self, machine: &str) -> i64 {
        self.db()
            .query_row(
                "SELECT count(*) FROM inventory_history WHERE machine_id = ?1",
                [machine],
                |r| r.get(0),
            )
            .expect("count")
    }

    /// The attacker rewrites a published release's bytes on the server
    /// (the signature no longer matches).
    pub fn attacker_tamper(&self, name: &str, version: u64, from: &str, to: &str) {
        let db = self.db();
        let bytes: Vec<u8> = db
            .query_row(
                "SELECT bytes FROM profile_releases WHERE name = ?1 AND version = ?2",
                rusqlite::params![name, version as i64],
                |r| r.get(0),
            )
            .expect("release to tamper");
        let text = String::from_utf8(bytes).expect("utf-8 profile");
        assert!(text.contains(from), "nothing to tamper");
        let changed = db
            .execute(
                "UPDATE profile_releases SET bytes = ?3 WHERE name = ?1 AND version = ?2",
                rusqlite::params![name, version as i64, text.replace(from, to).into_bytes()],
            )
            .expect("tamper");
        assert_eq!(changed, 1);
    }

    /// Moves a token's expiry into the past (what a week of waiting does;
    /// `token create` refuses past dates).
    pub fn expire_token(&self, token: &str) {
        let n = self
            .db()
            .execute(
                "UPDATE enrollment_tokens SET expires_at = 1 WHERE token_hash = ?1",
                [nird_proto::hash::sha256_hex(token.as_bytes())],
            )
            .expect("expire token");
        assert_eq!(n, 1, "unknown token");
    }

    /// The attacker (or a server frozen in the past) serves a validly signed
    /// release that `publish` would refuse today, e.g. an expired one.
    pub fn attacker_insert_release(&self, name: &str, version: u64, bytes: &[u8], sig: &str) {
        self.db()
            .execute(
                "INSERT INTO profile_releases \
                 (name, version, bytes, sha256, minisig, published_by, published_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'attacker', 0)",
                rusqlite::params![
                    name,
                    version as i64,
                    bytes,
                    nird_proto::hash::sha256_hex(bytes),
                    sig
                ],
            )
            .expect("insert release");
        // The compromised server also stops pinning the current version, so
        // that check-ins hand out the inserted one.
        self.db()
            .execute("DELETE FROM index_entries WHERE name = ?1", [name])
            .expect("unpin");
    }

    /// The attacker deletes every release of `name` above `keep`, so the
    /// server offers an older, validly signed one (a rollback).
    pub fn attacker_roll_back(&self, name: &str, keep: u64) {
        let db = self.db();
        db.execute(
            "DELETE FROM release_blobs WHERE release_id IN \
             (SELECT id FROM profile_releases WHERE name = ?1 AND version > ?2)",
            rusqlite::params![name, keep as i64],
        )
        .expect("delete blobs links");
        let n = db
            .execute(
                "DELETE FROM profile_releases WHERE name = ?1 AND version > ?2",
                rusqlite::params![name, keep as i64],
            )
            .expect("delete releases");
        assert!(n > 0, "nothing rolled back");
        db.execute("DELETE FROM index_entries WHERE name = ?1", [name])
            .expect("unpin");
    }

    /// The attacker makes the server assign `profile` to the school,
    /// whatever the school's assignments say.
    pub fn attacker_assign(&self, profile: &str) {
        self.db()
            .execute(
                "INSERT OR IGNORE INTO school_assignments (school_id, profile_name) \
                 SELECT id, ?1 FROM schools",
                [profile],
            )
            .expect("assign");
    }

    /// Runs SQL on the server's database (the attacker who controls the
    /// server's storage).
    pub fn db_exec(&self, sql: &str) {
        self.db().execute_batch(sql).expect("attacker SQL");
    }
}

/// Makes the maintainers' first keyring (`KEYS/keyring.toml`: their one
/// key, signed) and publishes it on the server.
fn publish_first_keyring(server: &Path, data: &Path, keys: &Path) {
    // The maintainers' first keyring: their one key, published on the
    // server (agents take it at enrolment, trust on first use).
    let keyring = keys.join("keyring.toml");
    let expires = (time::OffsetDateTime::now_utc().date() + time::Duration::days(365)).to_string();
    run_ok(
        server,
        &[
            "profile",
            "keyring",
            "new",
            "--key",
            s(&keys.join("nird.pub")),
            "--expires",
            &expires,
            "--out",
            s(&keyring),
        ],
    );
    run_ok(
        server,
        &[
            "profile",
            "keyring",
            "sign",
            "--key",
            s(&keys.join("nird.key")),
            s(&keyring),
        ],
    );
    run_ok(
        server,
        &["keyring", "publish", "--data-dir", s(data), s(&keyring)],
    );
}

impl Default for ServerData {
    fn default() -> Self {
        Self::new()
    }
}

/// `nird-server serve` running as a child process.
pub struct ServerProcess {
    /// The child (killed on drop).
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stderr, for failure messages.
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `serve` on `127.0.0.1:port` and waits until it accepts
    /// connections.
    pub fn start(data: &ServerData, port: u16) -> Self {
        let log = data.tmp.path().join(format!("serve-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(bin("nird-server"))
            .args([
                "serve",
                "--data-dir",
                s(&data.data),
                "--listen",
                &addr.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn nird-server serve");
        let mut server = ServerProcess { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "nird-server serve exited ({status}):\n{}",
                    server.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server not listening:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// What the server logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Graceful stop (SIGTERM, as systemd does), then waits for the exit.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// An agent with its own `--root`.
pub struct AgentRoot {
    /// Keeps the root alive.
    pub tmp: tempfile::TempDir,
}

impl AgentRoot {
    /// A fresh root; the agent takes the server's keyring at enrolment.
    pub fn new(_data: &ServerData) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        AgentRoot { tmp }
    }

    /// The root.
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// `nird-agent ARGS --root ROOT`, whatever the outcome.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--root", s(self.root())]);
        run_raw(&bin("nird-agent"), &all)
    }

    /// `nird-agent ARGS --root ROOT` with extra environment variables.
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--root", s(self.root())]);
        Command::new(bin("nird-agent"))
            .args(&all)
            .envs(env.iter().copied())
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .output()
            .expect("run nird-agent")
    }

    /// `enroll` with the CA fingerprint; panics unless it succeeds.
    pub fn enroll(&self, server: &ServerProcess, data: &ServerData, token: &str) -> String {
        let out = self.run(&[
            "enroll",
            "--server",
            &server.url(),
            "--token",
            token,
            "--ca-fingerprint",
            &data.fingerprint,
        ]);
        assert!(out.status.success(), "enroll failed: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `run --once`; panics unless it succeeds.
    pub fn run_once(&self) {
        let out = self.run(&["run", "--once"]);
        assert!(out.status.success(), "run --once failed: {}", stderr(&out));
    }

    /// `status --json`.
    pub fn status(&self) -> Value {
        let out = self.run(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// The machine id from `status`.
    pub fn machine_id(&self) -> String {
        self.status()["machine_id"]
            .as_str()
            .expect("enrolled")
            .to_owned()
    }

    /// Every file and directory of the managed system (outside the agent's
    /// own state) with its content, to check that nothing changed.
    pub fn managed_tree(&self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        walk(self.root(), self.root(), &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Option<Vec<u8>>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if rel.starts_with("var/lib/nird-agent") {
            continue;
        }
        if path.is_dir() {
            out.push((rel, None));
            walk(root, &path, out);
        } else {
            out.push((rel, std::fs::read(&path).ok()));
        }
    }
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A profile expiry date one year from today (`YYYY-MM-DD`): within the
/// horizon agents accept, whatever day the tests run.
pub fn in_a_year() -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(365)).to_string()
}
