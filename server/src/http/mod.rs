//! The HTTPS server: axum routes served by hyper over rustls.
//!
//! Shaped like tokio's mini-redis: [`run`] takes its listener and its
//! shutdown future, so the binary passes a real socket and SIGTERM while
//! tests bind `127.0.0.1:0` and drive it in-process. Shutdown stops
//! accepting, lets in-flight requests finish (up to a grace period), then
//! closes the store, which commits every queued write first.

pub mod agent;
pub mod budget;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod watchdog;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use nird_proto::api::MAX_BODY_BYTES;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::data_dir::DataDir;
use crate::store::{
    DEFAULT_HISTORY_RETENTION_DAYS, DEFAULT_INVENTORY_CHANGES_PER_DAY, SqliteStore, Store,
};
use error::HttpError;
use metrics::Metrics;

/// Everything `run` needs: options live in one struct.
pub struct ServeConfig {
    /// The data store (closed by `run` when it returns).
    pub store: Arc<dyn Store>,
    /// TLS certificate and key, loaded.
    pub tls: Arc<rustls::ServerConfig>,
    /// Normal check-in interval given to agents.
    pub checkin_interval: Duration,
    /// Check-ins per second the server aims to stay under: with more
    /// machines than `interval × rate`, agents are told to wait longer.
    pub target_checkin_rate: u64,
    /// Most connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long in-flight requests get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// A response write blocked this long (the client stopped reading)
    /// drops the connection.
    pub write_idle_timeout: Duration,
    /// Longest a blob download may take, however steadily it is read.
    pub body_time_limit: Duration,
    /// Inventory changes kept per machine and UTC day (see
    /// [`crate::store::Checkin::max_inventory_changes_per_day`]).
    pub inventory_changes_per_day: u32,
    /// Inventory history and apply reports older than this are pruned (at
    /// startup, then hourly); `None` keeps everything.
    pub history_retention: Option<Duration>,
    /// The bearer token `/metrics` requires (`DATA/metrics-token`).
    pub metrics_token: String,
    /// SHA-256 of the CA certificate, shown with new enrolment tokens on
    /// the dashboard.
    pub ca_fingerprint: Option<String>,
    /// CO2e factors of the audit (`[audit]` of `server.toml`).
    pub co2: crate::audit::co2::Co2Factors,
}

impl ServeConfig {
    /// The configuration for a data directory: its database, and its
    /// certificate unless `cert`/`key` name operator-supplied files.
    pub fn from_data_dir(
        dir: &DataDir,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        Self::check_initialised(dir)?;
        let store = Arc::new(SqliteStore::open(&dir.database())?);
        Self::with_store(dir, cert, key, store)
    }

    /// Refuses a data directory `init` has not made.
    pub fn check_initialised(dir: &DataDir) -> anyhow::Result<()> {
        if !dir.is_initialised() {
            anyhow::bail!(
                "{} n'est pas initialisé : lancez d'abord « nird-server init --data-dir {} »",
                dir.root().display(),
                dir.root().display()
            );
        }
        Ok(())
    }

    /// The configuration for a data directory's certificates and keys, on
    /// `store` (SQLite or PostgreSQL).
    pub fn with_store(
        dir: &DataDir,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Self> {
        let cert = cert.unwrap_or_else(|| dir.server_cert());
        let key = key.unwrap_or_else(|| dir.server_key());
        let tls = crate::tls::server_config(&cert, &key)?;
        // Data directories made before /metrics needed a token get one now.
        let metrics_token = crate::init::ensure_metrics_token(dir)?;
        let ca_fingerprint = crate::tls::fingerprint(&dir.ca_cert()).ok();
        Ok(ServeConfig {
            store,
            tls,
            checkin_interval: Duration::from_secs(900),
            target_checkin_rate: 2000,
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(30),
            write_idle_timeout: Duration::from_secs(30),
            body_time_limit: Duration::from_secs(30 * 60),
            inventory_changes_per_day: DEFAULT_INVENTORY_CHANGES_PER_DAY,
            history_retention: Some(Duration::from_secs(
                u64::from(DEFAULT_HISTORY_RETENTION_DAYS) * 86_400,
            )),
            metrics_token,
            ca_fingerprint,
            co2: crate::audit::co2::Co2Factors::default(),
        })
    }
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    /// The data store.
    pub store: Arc<dyn Store>,
    /// Request counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Normal check-in interval, seconds.
    base_interval: u64,
    /// See [`ServeConfig::target_checkin_rate`].
    target_rate: u64,
    /// Machines known, refreshed in the background (load signal).
    machines: Arc<AtomicU64>,
    /// Bytes of blob downloads in flight, bounded.
    pub blob_budget: Arc<budget::ByteBudget>,
    /// See [`ServeConfig::body_time_limit`].
    pub body_time_limit: Duration,
    /// See [`ServeConfig::inventory_changes_per_day`].
    pub inventory_changes_per_day: u32,
    /// SHA-256 of the `/metrics` bearer token (compared in constant time).
    metrics_token_hash: Arc<str>,
    /// See [`ServeConfig::ca_fingerprint`].
    pub ca_fingerprint: Option<Arc<str>>,
    /// See [`ServeConfig::co2`].
    pub co2: crate::audit::co2::Co2Factors,
}

/// Most blob bytes held in memory for downloads at once.
const BLOB_BYTES_IN_FLIGHT: u64 = 128 * 1024 * 1024;

/// Longest a request may take, body upload included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes queued above which the server doubles the interval it hands out.
const WRITE_BACKLOG: usize = 2_000;

impl AppState {
    /// The interval to give an agent now: the normal one, stretched so that
    /// all machines together stay under the target rate, doubled while the
    /// database has a backlog.
    pub fn checkin_interval(&self) -> u64 {
        let machines = self.machines.load(Ordering::Relaxed);
        let spread = machines / self.target_rate.max(1);
        let interval = self.base_interval.max(spread);
        if self.store.pending_writes() > WRITE_BACKLOG {
            interval.saturating_mul(2)
        } else {
            interval
        }
    }
}

/// The routes, with metrics and the body limit.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/enroll", post(agent::enroll))
        .route("/api/v1/checkin", post(agent::checkin))
        .route("/api/v1/profiles/{name}/{file}", get(agent::profile))
        .route("/api/v1/blobs/{sha256}", get(agent::blob))
        .route("/api/v1/keyrings/{file}", get(agent::keyring))
        .route("/api/v1/index/{file}", get(agent::catalogue_index))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics_text))
        // The dashboard: pages under `/`, admin API under `/api/v1/admin`.
        .merge(crate::web::router(state.clone()))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // A client that trickles its body cannot hold a connection forever.
        // A write already queued still commits; the agent, not acknowledged,
        // retries, and reports are idempotent by seq.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            track_request,
        ))
        .with_state(state)
}

/// Counts each request and its latency under its route pattern.
async fn track_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    state
        .metrics
        .record(&route, response.status().as_u16(), start.elapsed());
    response
}

/// An unknown address: JSON for the APIs, the French error page for a
/// person's browser (a mistyped dashboard address showed raw JSON).
async fn not_found(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path == "/metrics" {
        HttpError::not_found("cette adresse n'existe pas").into_response()
    } else {
        crate::web::WebError::not_found().into_response()
    }
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document(),
    )
        .into_response()
}

/// `/metrics` requires `Authorization: Bearer <DATA/metrics-token>`.
fn check_metrics_token(state: &AppState, headers: &header::HeaderMap) -> Result<(), HttpError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256);
    match presented {
        Some(token)
            if crate::secrets::constant_time_eq(
                &crate::secrets::hash_secret(token),
                &state.metrics_token_hash,
            ) =>
        {
            Ok(())
        }
        _ => Err(HttpError::unauthorized(
            "jeton des métriques absent ou invalide (voir « nird-server metrics-token »)",
        )),
    }
}

async fn metrics_text(
    State(state): State<AppState>,
    headers: header::HeaderMap,
) -> Result<Response, HttpError> {
    check_metrics_token(&state, &headers)?;
    let counts = state.store.count_machines().await?;
    let named: Vec<(&str, u64)> = counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&named, state.store.commit_stats()),
    )
        .into_response())
}

/// Serves HTTPS on `listener` until `shutdown` completes, then drains
/// in-flight requests and closes the store.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let machines = Arc::new(AtomicU64::new(0));
    let state = AppState {
        store: config.store.clone(),
        metrics: Arc::new(Metrics::default()),
        base_interval: config.checkin_interval.as_secs().max(1),
        target_rate: config.target_checkin_rate,
        machines: machines.clone(),
        blob_budget: Arc::new(budget::ByteBudget::new(BLOB_BYTES_IN_FLIGHT)),
        body_time_limit: config.body_time_limit,
        inventory_changes_per_day: config.inventory_changes_per_day.max(1),
        metrics_token_hash: crate::secrets::hash_secret(config.metrics_token.trim()).into(),
        ca_fingerprint: config.ca_fingerprint.as_deref().map(Arc::from),
        co2: config.co2,
    };
    let refresher = tokio::spawn(refresh_machine_count(config.store.clone(), machines));
    let pruner = config
        .history_retention
        .map(|keep| tokio::spawn(prune_history(config.store.clone(), keep)));
    // Audit facts of machines enrolled before the audit existed, or
    // computed by another server version (crate::audit::backfill).
    let audit_backfill = tokio::spawn(crate::audit::backfill(config.store.clone()));
    let write_idle = config.write_idle_timeout;
    let app = router(state);
    let acceptor = TlsAcceptor::from(config.tls.clone());
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(60));
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    tracing::info!(addr = ?listener.local_addr().ok(), "serving HTTPS");

    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // Every write on this connection is watched (see `watchdog`);
            // its requests carry the deadline long bodies arm.
            let deadline = Arc::new(watchdog::ResponseDeadline::default());
            let app = tower::ServiceExt::map_request(app, {
                let deadline = deadline.clone();
                move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(deadline.clone());
                    req
                }
            });
            let _permit = permit;
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let io = watchdog::WatchedIo::new(tls, write_idle, deadline);
            // The dashboard needs the client address (rate limit, audit).
            let app = tower::ServiceExt::map_request(app, move |mut req: Request<_>| {
                req.extensions_mut().insert(crate::web::ClientAddr(peer));
                req
            });
            let conn = builder
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over: dropping the remaining connections");
    }
    refresher.abort();
    audit_backfill.abort();
    if let Some(pruner) = pruner {
        pruner.abort();
    }
    config.store.close().await?;
    tracing::info!("database closed");
    Ok(())
}

/// Keeps the machine count (the load signal) fresh.
async fn refresh_machine_count(store: Arc<dyn Store>, machines: Arc<AtomicU64>) {
    loop {
        if let Ok(counts) = store.count_machines().await {
            machines.store(counts.iter().map(|(_, n)| n).sum(), Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// How often the retention policy runs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Applies the retention policy now and then every hour: inventory history
/// and apply reports older than `keep` go (each machine's latest inventory
/// stays; the audit log is never pruned).
async fn prune_history(store: Arc<dyn Store>, keep: Duration) {
    loop {
        let keep_secs = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
        let before = time::OffsetDateTime::now_utc()
            .unix_timestamp()
            .saturating_sub(keep_secs);
        match store.prune_history(before).await {
            Ok(pruned) => tracing::info!(
                inventory_rows = pruned.inventory_rows,
                reports = pruned.reports,
                retention_days = keep.as_secs() / 86_400,
                "history pruned"
            ),
            Err(e) => tracing::warn!(error = %e, "pruning the history failed"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// Resolves on SIGTERM or Ctrl-C: the shutdown future the binary passes.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_stretches_with_the_fleet_size() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        let machines = Arc::new(AtomicU64::new(1_000));
        let state = AppState {
            store: store.clone(),
            metrics: Arc::new(Metrics::default()),
            base_interval: 900,
            target_rate: 100,
            machines: machines.clone(),
            blob_budget: Arc::new(budget::ByteBudget::new(1024)),
            body_time_limit: Duration::from_secs(60),
            inventory_changes_per_day: 24,
            metrics_token_hash: "".into(),
            ca_fingerprint: None,
            co2: crate::audit::co2::Co2Factors::default(),
        };
        // 1,000 machines at 100/s fit in 900 s: the normal interval.
        assert_eq!(state.checkin_interval(), 900);
        // 1,000,000 machines would need 10,000 s to stay under 100/s.
        machines.store(1_000_000, Ordering::Relaxed);
        assert_eq!(state.checkin_interval(), 10_000);
        rt.block_on(store.close()).unwrap();
    }
}
