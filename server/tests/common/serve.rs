//! `nird-server serve` as a separate process (the real binary), for tests
//! that kill it or run several at once.

#![allow(dead_code)] // each test file uses a subset

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use super::{BIN, Client, Fixture, Machine, inventory};

/// A `nird-server serve` process on an ephemeral port.
pub struct ServeProcess {
    /// The process (killed with SIGKILL when dropped).
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl ServeProcess {
    /// Serves the fixture's data directory (its SQLite database).
    pub fn start(f: &Fixture) -> Self {
        Self::start_with(f, &[])
    }

    /// Serves the fixture's data directory with extra `serve` arguments
    /// (`--database postgres://…`).
    pub fn start_with(f: &Fixture, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--data-dir", f.dir(), "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The binary announces its address on stderr.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let port = loop {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "server exited");
            if let Some(addr) = line
                .trim()
                .strip_prefix("nird-server : en écoute sur https://")
            {
                break addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in stderr.lines() {});
        ServeProcess { child, port }
    }

    /// `https://127.0.0.1:PORT/api/v1{path}`.
    pub fn api(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/api/v1{path}", self.port)
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Enrols through a process (the in-process helpers need a `Server`).
pub fn enroll_on(client: &Client, server: &ServeProcess, token: &str, host: &str) -> Machine {
    let (inv, hash) = inventory(host, 4096);
    let req = nird_proto::api::EnrollRequest {
        token: token.into(),
        hostname: host.into(),
        inventory: inv,
        inventory_hash: hash.clone(),
    };
    let r = client.post(
        &server.api("/enroll"),
        None,
        &serde_json::to_vec(&req).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let id = body["machine_id"].as_str().unwrap().to_owned();
    Machine {
        auth: nird_proto::api::machine_authorization(&id, body["secret"].as_str().unwrap()),
        id,
        inventory_hash: hash,
    }
}
