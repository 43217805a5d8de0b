//! What the dashboard benches share: a fresh data directory (`init`) and a
//! runtime of 2 workers, the server of that directory served on
//! 127.0.0.1:0 over TLS in-process, an admin logged in from a client on
//! loopback, and timed page downloads.
#![allow(dead_code)] // each bench uses a subset

use std::io::Read as _;
use std::time::{Duration, Instant};

use nird_server::data_dir::DataDir;
use nird_server::http::{ServeConfig, run};
use nird_server::init::{InitOptions, InitOutcome, init};

/// A fresh data directory, made by `init` on SQLite.
pub struct Fresh {
    /// Keeps the directory alive.
    pub tmp: tempfile::TempDir,
    /// The data directory.
    pub dir: DataDir,
    /// The admin's generated password.
    pub admin_password: String,
    /// A runtime of 2 workers (the machine's cores).
    pub rt: tokio::runtime::Runtime,
}

/// Initialises a data directory in a temporary directory.
pub fn fresh() -> anyhow::Result<Fresh> {
    let tmp = tempfile::tempdir()?;
    let dir = DataDir::new(tmp.path().join("data"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let InitOutcome::Created { admin_password, .. } = rt.block_on(init(&InitOptions {
        data_dir: dir.clone(),
        hostnames: vec![],
        keyring: None,
        database: None,
    }))?
    else {
        anyhow::bail!("fresh directory expected");
    };
    Ok(Fresh {
        tmp,
        dir,
        admin_password,
        rt,
    })
}

/// A served data directory and an admin session on it.
pub struct Dashboard {
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// A client trusting the directory's CA, following no redirect.
    pub agent: ureq::Agent,
    /// The `Cookie` header value of the admin's session.
    pub cookie: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Serves `dir` on `rt` and logs in as `admin`.
pub fn serve_logged_in(
    rt: &tokio::runtime::Runtime,
    dir: &DataDir,
    admin_password: &str,
) -> anyhow::Result<Dashboard> {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let config = ServeConfig::from_data_dir(dir, None, None)?;
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        run(listener, config, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let pem = std::fs::read(dir.ca_cert())?;
    let cert = ureq::tls::Certificate::from_pem(&pem)?;
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let base = format!("https://127.0.0.1:{}", addr.port());
    let login = agent
        .post(format!("{base}/connexion"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("login=admin&password={admin_password}"))?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("login failed: {}", login.status()))?;
    Ok(Dashboard {
        base,
        agent,
        cookie,
        stop,
        server,
    })
}

impl Dashboard {
    /// A GET of `path` with the admin's session.
    fn call(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        self.agent
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .call()
    }

    /// Downloads `path` with the admin's session: time taken and body
    /// (an error unless 200).
    pub fn get(&self, path: &str) -> anyhow::Result<(Duration, String)> {
        let t = Instant::now();
        let mut r = self.call(path)?;
        let body = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()?;
        let elapsed = t.elapsed();
        anyhow::ensure!(r.status() == 200, "{path}: {}", r.status());
        Ok((elapsed, body))
    }

    /// Downloads `path` with the admin's session without keeping the body
    /// (an export may be hundreds of MB): time taken, bytes and lines.
    pub fn stream(&self, path: &str) -> anyhow::Result<(Duration, u64, u64)> {
        let t = Instant::now();
        let mut r = self.call(path)?;
        anyhow::ensure!(r.status() == 200, "{path}: {}", r.status());
        let mut reader = r.body_mut().with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; 64 * 1024];
        let (mut bytes, mut lines) = (0u64, 0u64);
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        }
        Ok((t.elapsed(), bytes, lines))
    }

    /// Stops the server and waits for it.
    pub fn stop(self, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        rt.block_on(self.server)?
    }
}
