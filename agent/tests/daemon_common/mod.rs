//! Shared by the `daemon_*` tests: a real `nird-server` (library) data
//! directory and HTTPS server on `127.0.0.1`, an agent root enrolled against
//! it, and transport wrappers that inject faults around the real HTTPS
//! transport (server unreachable, reply lost after the server stored).

#![allow(dead_code)] // each test file uses a subset

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use nird_agent::daemon::{InventorySnapshot, InventorySource};
use nird_agent::paths::AgentPaths;
use nird_agent::transport::{Transport, TransportError};
use nird_proto::api::{ApplyReport, CheckinRequest, CheckinResponse};
use nird_server::data_dir::DataDir;
use nird_server::http::{ServeConfig, run};
use nird_server::store::{SqliteStore, Store};

/// The test school's UAI.
pub const UAI: &str = "0620056Z";

/// A current-thread runtime for the test's own async calls.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An initialised server data directory with one school.
pub struct ServerData {
    pub tmp: tempfile::TempDir,
    pub data: DataDir,
    pub fingerprint: String,
}

impl ServerData {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::new(tmp.path().join("data"));
        let rt = rt();
        let outcome = rt
            .block_on(nird_server::init::init(&nird_server::init::InitOptions {
                data_dir: data.clone(),
                hostnames: vec![],
                keyring: None,
                database: None,
            }))
            .unwrap();
        let fingerprint = match outcome {
            nird_server::init::InitOutcome::Created { ca_fingerprint, .. } => ca_fingerprint,
            _ => panic!("fresh dir already initialised"),
        };
        let sd = ServerData {
            tmp,
            data,
            fingerprint,
        };
        sd.with_store(|s| async move {
            let school = nird_server::admin::school_from_args(
                UAI,
                "École Jean Jaurès",
                "Calais",
                None,
                "Lille",
                "ecole",
                false,
            )
            .unwrap();
            nird_server::admin::school_add(s.as_ref(), "test", school)
                .await
                .unwrap();
        });
        sd
    }

    /// Runs `f` on a freshly opened store, then closes it.
    pub fn with_store<T, F, Fut>(&self, f: F) -> T
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let rt = rt();
        rt.block_on(async {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&self.data.database()).unwrap());
            let out = f(store.clone()).await;
            store.close().await.unwrap();
            out
        })
    }

    /// A new enrolment token with `uses` uses.
    pub fn token(&self, uses: u32) -> String {
        self.with_store(|s| async move {
            nird_server::admin::token_create(s.as_ref(), "test", UAI, uses, Some("1d"))
                .await
                .unwrap()
        })
    }

    /// The reports the server stored for `machine`, by seq.
    pub fn reports(&self, machine: &str) -> Vec<ApplyReport> {
        let m = machine.to_owned();
        self.with_store(|s| async move { s.reports(&m).await.unwrap() })
    }

    /// Number of inventory versions the server stored for `machine`.
    pub fn inventory_versions(&self, machine: &str) -> u64 {
        let m = machine.to_owned();
        self.with_store(|s| async move { s.inventory_history_len(&m).await.unwrap() })
    }

    /// The pinned CA file.
    pub fn ca_file(&self) -> PathBuf {
        self.data.ca_cert()
    }
}

/// The server running in-process.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Starts on `127.0.0.1:port` (0: any free port), check-in interval
    /// `interval`.
    pub fn start(data: &DataDir, port: u16, interval: Duration) -> Self {
        let data = data.clone();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
                addr_tx.send(listener.local_addr()?)?;
                let mut config = ServeConfig::from_data_dir(&data, None, None)?;
                config.checkin_interval = interval;
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

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// Graceful shutdown.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread panicked").unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An inventory the test can change (a RAM upgrade, a new disk...).
#[derive(Clone)]
pub struct TestInventory(pub Arc<Mutex<serde_json::Value>>);

impl TestInventory {
    pub fn new(doc: serde_json::Value) -> Self {
        TestInventory(Arc::new(Mutex::new(doc)))
    }
    pub fn set(&self, doc: serde_json::Value) {
        *self.0.lock().unwrap() = doc;
    }
    pub fn snapshot(&self) -> InventorySnapshot {
        InventorySnapshot::new(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl InventorySource for TestInventory {
    fn collect(&mut self) -> Result<InventorySnapshot, String> {
        Ok(self.snapshot())
    }
}

/// Wraps the real transport: counts calls, can "unplug the cable" and can
/// lose the next reply after the server has processed the request.
pub struct FaultyLink {
    pub inner: Arc<dyn Transport>,
    pub down: AtomicBool,
    pub lose_next_reply: AtomicBool,
    /// Answer 503 like a server shedding load.
    pub overloaded: AtomicBool,
    pub attempts: AtomicUsize,
    pub delivered: AtomicUsize,
    /// Body sizes of check-ins that carried nothing but a heartbeat.
    pub heartbeat_sizes: Mutex<Vec<usize>>,
}

impl FaultyLink {
    pub fn new(inner: Arc<dyn Transport>) -> Arc<Self> {
        Arc::new(FaultyLink {
            inner,
            down: AtomicBool::new(false),
            lose_next_reply: AtomicBool::new(false),
            overloaded: AtomicBool::new(false),
            attempts: AtomicUsize::new(0),
            delivered: AtomicUsize::new(0),
            heartbeat_sizes: Mutex::new(Vec::new()),
        })
    }
}

impl Transport for FaultyLink {
    fn checkin(&self, request: &CheckinRequest) -> Result<CheckinResponse, TransportError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(TransportError::Unreachable {
                server: "test".into(),
                detail: "cable unplugged".into(),
            });
        }
        if self.overloaded.load(Ordering::SeqCst) {
            return Err(TransportError::Api {
                status: 503,
                error: nird_proto::api::ApiError {
                    error: "overloaded".into(),
                    message: "serveur surchargé".into(),
                },
            });
        }
        if request.reports.is_empty() && request.inventory.is_none() {
            let size = serde_json::to_vec(request).unwrap().len();
            self.heartbeat_sizes.lock().unwrap().push(size);
        }
        let reply = self.inner.checkin(request)?;
        self.delivered.fetch_add(1, Ordering::SeqCst);
        if self.lose_next_reply.swap(false, Ordering::SeqCst) {
            return Err(TransportError::Unreachable {
                server: "test".into(),
                detail: "connection reset after the request was sent".into(),
            });
        }
        Ok(reply)
    }

    fn fetch(&self, path: &str, max_bytes: u64) -> Result<Vec<u8>, TransportError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(TransportError::Unreachable {
                server: "test".into(),
                detail: "cable unplugged".into(),
            });
        }
        self.inner.fetch(path, max_bytes)
    }
}

/// A fresh agent root.
pub fn agent_root() -> (tempfile::TempDir, AgentPaths) {
    let tmp = tempfile::tempdir().unwrap();
    let paths = AgentPaths::new(tmp.path());
    (tmp, paths)
}

/// A small inventory document.
pub fn inventory_doc(ram_mib: u64) -> serde_json::Value {
    serde_json::json!({ "schema": 1, "memory": { "total_mib": ram_mib }, "hostname": "pc-01" })
}
