//! Shared test fixtures: a real data directory made by the real binary, the
//! server started in-process on `127.0.0.1:0` over real TLS, and a `ureq`
//! client that trusts only that server's generated CA.

#![allow(dead_code)] // each test file uses a subset

pub mod pg;
pub mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nird_proto::api::{
    ApplyOutcome, ApplyReport, CheckinRequest, EnrollRequest, ResourceResult, ResourceStatus,
};
use nird_server::data_dir::DataDir;
use nird_server::http::{ServeConfig, run};
use serde_json::{Value, json};

/// The built `nird-server` binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_nird-server");

/// Runs the binary with `args`; panics with its output if it fails.
pub fn cli(args: &[&str]) -> String {
    let out = cli_raw(args);
    assert!(
        out.status.success(),
        "nird-server {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the binary with `args`, which must fail; returns its stderr (the
/// message for people).
pub fn cli_fails(args: &[&str]) -> String {
    let out = cli_raw(args);
    assert!(
        !out.status.success(),
        "nird-server {args:?} succeeded:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the binary with `args`, whatever the outcome.
pub fn cli_raw(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("USER", "testeur")
        .output()
        .expect("run nird-server")
}

/// A data directory initialised by `nird-server init`, with one school.
pub struct Fixture {
    /// Keeps the temporary directory alive.
    pub tmp: tempfile::TempDir,
    /// The data directory.
    pub data: DataDir,
}

/// The demo school's UAI.
pub const UAI: &str = "0620056Z";

impl Fixture {
    pub fn new() -> Self {
        Self::with_school_flags(&[])
    }

    /// Initialised dir plus the school `UAI`, with extra `school add` flags.
    pub fn with_school_flags(flags: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        cli(&["init", "--data-dir", root.to_str().unwrap()]);
        let fixture = Fixture {
            tmp,
            data: DataDir::new(root),
        };
        let mut args = vec![
            "school",
            "add",
            "--data-dir",
            fixture.dir(),
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
        args.extend_from_slice(flags);
        cli(&args);
        fixture
    }

    /// The data directory as a string argument.
    pub fn dir(&self) -> &str {
        self.data.root().to_str().unwrap()
    }

    /// A fresh enrolment token for the school (`token create`).
    pub fn token(&self, extra: &[&str]) -> String {
        let mut args = vec!["token", "create", "--data-dir", self.dir(), "--school", UAI];
        args.extend_from_slice(extra);
        let out = cli(&args);
        out.trim().to_owned()
    }

    /// A personal API token of a new administrator `login`
    /// (`user add`, `user token create`).
    pub fn admin_api_token(&self, login: &str) -> String {
        cli(&[
            "user",
            "add",
            "--data-dir",
            self.dir(),
            login,
            "--role",
            "admin",
        ]);
        cli(&["user", "token", "create", "--data-dir", self.dir(), login])
            .trim()
            .to_owned()
    }

    /// A client trusting this data dir's CA only.
    pub fn client(&self) -> Client {
        Client::new(&self.data.ca_cert())
    }
}

/// The server running in-process on `127.0.0.1:0`.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Triggers graceful shutdown.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The thread running its runtime; yields `run`'s result.
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Starts `run` on a data directory.
    pub fn start(data: &DataDir) -> Self {
        Self::start_with_cert(data, None)
    }

    /// Starts `run` with an operator-supplied (certificate, key) pair.
    pub fn start_with_cert(data: &DataDir, cert: Option<(PathBuf, PathBuf)>) -> Self {
        let data = data.clone();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                addr_tx.send(listener.local_addr()?)?;
                let (cert, key) = cert.unzip();
                let config = ServeConfig::from_data_dir(&data, cert, key)?;
                run(listener, config, async {
                    let _ = stop_rx.await;
                })
                .await
            })
        });
        let addr = addr_rx.recv().expect("server did not start");
        Server {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:PORT/api/v1{path}`.
    pub fn api(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/api/v1{path}", self.addr.port())
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// Graceful shutdown; returns `run`'s result.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().expect("server thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// A reply: status and body.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A blocking HTTPS client pinned to one CA (ureq + rustls/ring).
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    pub fn new(ca: &Path) -> Self {
        let pem = std::fs::read(ca).unwrap();
        let cert = ureq::tls::Certificate::from_pem(&pem).unwrap();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .build()
            .into();
        Client { agent }
    }

    /// True if a TLS connection to `url` succeeds.
    pub fn handshake_ok(&self, url: &str) -> bool {
        self.agent.get(url).call().is_ok()
    }

    fn finish(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut resp = resp.expect("request failed");
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap();
        Reply { status, body }
    }

    /// POST raw bytes, with an optional bearer credential.
    pub fn post(&self, url: &str, auth: Option<&str>, body: &[u8]) -> Reply {
        self.try_post(url, auth, body).expect("request failed")
    }

    /// POST that reports transport errors (connection refused or cut)
    /// instead of panicking.
    pub fn try_post(
        &self,
        url: &str,
        auth: Option<&str>,
        body: &[u8],
    ) -> Result<Reply, ureq::Error> {
        let mut req = self
            .agent
            .post(url)
            .header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let mut resp = req.send(body)?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_vec()?;
        Ok(Reply { status, body })
    }

    /// POST a form, as a browser submits it, without following a redirect
    /// (a dashboard login answers 303 when accepted).
    pub fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let req = self
            .agent
            .post(url)
            .config()
            .max_redirects(0)
            .build()
            .header("content-type", "application/x-www-form-urlencoded");
        Self::finish(req.send(body.as_bytes()))
    }

    /// POST bytes with a `Content-Encoding` header and a bearer credential.
    pub fn post_encoded(&self, url: &str, auth: &str, encoding: &str, body: &[u8]) -> Reply {
        let req = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .header("authorization", auth);
        Self::finish(req.send(body))
    }

    /// GET, with an optional bearer credential.
    pub fn get(&self, url: &str, auth: Option<&str>) -> Reply {
        let mut req = self.agent.get(url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        Self::finish(req.call())
    }
}

/// A sample inventory and its content hash.
pub fn inventory(hostname: &str, ram_mb: u64) -> (Value, String) {
    let inv = json!({
        "schema": 1,
        "hostname": hostname,
        "cpu": {"model": "Intel(R) Core(TM) i5-3470 CPU @ 3.20GHz", "cores": 4},
        "memory_mb": ram_mb,
        "bios_date": "2013-05-02",
    });
    let hash = nird_proto::hash::content_hash(&inv).unwrap();
    (inv, hash)
}

/// An enrolled machine's credential.
pub struct Machine {
    pub id: String,
    pub auth: String,
    pub inventory_hash: String,
}

impl Machine {
    /// Sends a heartbeat (same inventory, no reports); returns the raw reply.
    pub fn check_in(&self, client: &Client, server: &Server) -> Reply {
        checkin(client, server, &self.auth, &heartbeat(&self.inventory_hash))
    }
}

/// Enrols a machine with `token`; returns the raw reply.
pub fn enroll_raw(client: &Client, server: &Server, token: &str, hostname: &str) -> Reply {
    let (inv, hash) = inventory(hostname, 4096);
    let req = EnrollRequest {
        token: token.into(),
        hostname: hostname.into(),
        inventory: inv,
        inventory_hash: hash,
    };
    client.post(
        &server.api("/enroll"),
        None,
        &serde_json::to_vec(&req).unwrap(),
    )
}

/// Enrols a machine; panics unless it succeeds.
pub fn enroll(client: &Client, server: &Server, token: &str, hostname: &str) -> Machine {
    let reply = enroll_raw(client, server, token, hostname);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    let id = body["machine_id"].as_str().unwrap().to_owned();
    let secret = body["secret"].as_str().unwrap();
    Machine {
        auth: nird_proto::api::machine_authorization(&id, secret),
        id,
        inventory_hash: inventory(hostname, 4096).1,
    }
}

/// Sends a check-in; returns the raw reply.
pub fn checkin(client: &Client, server: &Server, auth: &str, req: &CheckinRequest) -> Reply {
    client.post(
        &server.api("/checkin"),
        Some(auth),
        &serde_json::to_vec(req).unwrap(),
    )
}

/// A heartbeat with no inventory and no reports.
pub fn heartbeat(hash: &str) -> CheckinRequest {
    CheckinRequest {
        inventory_hash: hash.into(),
        inventory: None,
        inventory_delta: None,
        applied: vec![],
        reports: vec![],
        trust: None,
    }
}

/// An applied report of `nird-base` v1 with one changed resource
/// (`package:vlc`).
pub fn report(seq: u64) -> ApplyReport {
    let t = time::OffsetDateTime::now_utc();
    ApplyReport {
        seq,
        profile: "nird-base".into(),
        version: 1,
        outcome: ApplyOutcome::Applied,
        reason: None,
        message: None,
        resources: vec![ResourceResult {
            id: "package:vlc".into(),
            status: ResourceStatus::Changed,
            message: None,
        }],
        started_at: t,
        finished_at: t,
    }
}

/// Path of a file inside the fixture's temp dir.
pub fn tmp_path(f: &Fixture, name: &str) -> PathBuf {
    f.tmp.path().join(name)
}
