//! What the dashboard benches share: the server of a data directory served
//! on 127.0.0.1:0 over TLS in-process, an admin logged in from a client on
//! loopback, and timed page downloads.
#![allow(dead_code)] // each bench uses a subset

use std::time::{Duration, Instant};

use nird_server::data_dir::DataDir;
use nird_server::http::{ServeConfig, run};

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
    /// Downloads `path` with the admin's session: time taken and body
    /// (an error unless 200).
    pub fn get(&self, path: &str) -> anyhow::Result<(Duration, String)> {
        let t = Instant::now();
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .call()?;
        let body = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()?;
        let elapsed = t.elapsed();
        anyhow::ensure!(r.status() == 200, "{path}: {}", r.status());
        Ok((elapsed, body))
    }

    /// Stops the server and waits for it.
    pub fn stop(self, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        rt.block_on(self.server)?
    }
}
