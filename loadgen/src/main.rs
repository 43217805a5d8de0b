//! `nird-loadgen`: measures nird-server's check-in throughput, latency and
//! memory on this machine.
//!
//! It makes a fresh data directory (init, a school, a token, one assigned
//! profile release), starts the server **as a separate process** (this same
//! binary re-executed in server mode, running exactly `nird-server serve`'s
//! code) so its RSS can be read from `/proc`, enrols N simulated machines,
//! then drives check-ins from C keep-alive TLS connections for D seconds
//! (closed loop: each connection sends its next request as soon as the
//! previous reply arrives). It prints check-ins/s, p50/p99 latency and the
//! server's RSS.
//!
//! ```text
//! cargo run --release -p nird-loadgen -- --machines 100000 --connections 64 --duration 30
//! ```

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use nird_proto::api::{
    ApplyOutcome, ApplyReport, CheckinRequest, EnrollRequest, ProfileRef, machine_authorization,
};
use nird_server::data_dir::DataDir;
use nird_server::store::{NewRelease, NewToken, School, SchoolKind};
use tokio_rustls::TlsConnector;

/// Environment variable that turns this binary into the server child.
const CHILD_ENV: &str = "NIRD_LOADGEN_SERVER_CHILD";

/// Load generator for nird-server.
#[derive(Debug, Parser)]
#[command(name = "nird-loadgen", version, about)]
struct Args {
    /// Simulated machines to enrol.
    #[arg(long, default_value_t = 100_000)]
    machines: usize,
    /// Keep-alive TLS connections driving check-ins.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured duration, seconds (after a warm-up).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Warm-up before measuring, seconds.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// One check-in in this many carries an apply report.
    #[arg(long, default_value_t = 20)]
    report_every: u64,
    /// Changed-inventory mode: every check-in carries a new full inventory
    /// document holding this many packages (at least 21, from a real
    /// school desktop's list), 20 of them upgraded since the machine's
    /// previous one (a weekly upgrade). 0: heartbeats only.
    #[arg(long, default_value_t = 0)]
    inventory_packages: usize,
    /// Changed-inventory mode: bodies gzip-compressed, as agents send
    /// them.
    #[arg(long)]
    gzip: bool,
    /// Changed-inventory mode: machines installed from one image and
    /// upgraded alike, so sharing their package lists (a school's room of
    /// PCs). 1: no two machines share a list, the server's worst case
    /// (every list is new: hashed, compressed and stored).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    machines_per_image: u32,
    /// PostgreSQL database (postgres://…, empty) instead of the data
    /// directory's SQLite file.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Server processes sharing the database (with --database); the
    /// connections are spread over them round-robin, as a TCP balancer would.
    #[arg(long, default_value_t = 1)]
    servers: usize,
    /// PID of the database's postmaster, when PostgreSQL runs on this
    /// machine: the CPU it and its children (backends, WAL writer,
    /// checkpointer, autovacuum) use per check-in is printed too.
    #[arg(long, value_name = "PID")]
    postgres_pid: Option<u32>,
}

/// A real machine's hardware sections (a ThinkPad T430: the agent's test
/// fixture), what a changed-inventory document carries besides its package
/// list: ≈ 5 KB that the server parses for the audit and the dashboard and
/// compresses into the history row.
const HARDWARE_FIXTURE: &str = include_str!("../../agent/tests/fixtures/laptop-t430.json");

/// The dpkg database of a real Debian 12 school desktop (Xfce, French,
/// the educational software PrimTux ships: GCompris, TuxPaint, the KDE
/// Edu suite...), the agent's test fixture: package lists with the
/// entropy of real names, versions and sections. A synthetic list
/// (`paquet-00001`, `1.1.0-1`...) compresses 12:1 at 1 GB/s where a real
/// one compresses 5:1 at 200–400 MB/s, which hid the cost of storing it.
const DPKG_FIXTURE: &str =
    include_str!("../../agent/tests/fixtures/desktop-debian12-ecole/var/lib/dpkg/status");

/// One package of the fixture: name, architecture and section as JSON
/// text (quoted, escaped), the version as dpkg wrote it (each round
/// appends to it before it is quoted).
struct FixturePackage {
    name: String,
    version: String,
    arch: String,
    section: Option<String>,
    size_kib: Option<u64>,
}

/// What every changed-inventory document is made from, read once.
struct Fixture {
    /// [`HARDWARE_FIXTURE`]'s sections.
    hardware: serde_json::Map<String, serde_json::Value>,
    /// [`package_list`].
    packages: Vec<FixturePackage>,
}

impl Fixture {
    fn new(packages: usize) -> anyhow::Result<Self> {
        Ok(Fixture {
            hardware: serde_json::from_str(HARDWARE_FIXTURE)?,
            packages: package_list(packages)?,
        })
    }
}

/// `count` packages from the fixture's installed ones (past their number,
/// the same packages again, `-2`, `-3`... appended to their names), sorted
/// by name and architecture as the agent sends them.
fn package_list(count: usize) -> anyhow::Result<Vec<FixturePackage>> {
    let mut installed = Vec::new();
    for stanza in DPKG_FIXTURE.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(": "))
                    .map(str::trim)
            })
        };
        let is_installed = field("Status").is_some_and(|s| {
            s.ends_with(" ok installed") && (s.starts_with("install ") || s.starts_with("hold "))
        });
        if let (Some(name), Some(version), Some(arch), true) = (
            field("Package"),
            field("Version"),
            field("Architecture"),
            is_installed,
        ) {
            installed.push((
                name,
                version,
                arch,
                field("Section"),
                field("Installed-Size"),
            ));
        }
    }
    anyhow::ensure!(
        !installed.is_empty(),
        "no installed package in the dpkg fixture"
    );
    let mut list = (0..count)
        .map(|i| {
            let (name, version, arch, section, size) = installed[i % installed.len()];
            let copy = i / installed.len();
            let name = match copy {
                0 => name.to_owned(),
                _ => format!("{name}-{}", copy + 1),
            };
            Ok(FixturePackage {
                name: serde_json::to_string(&name)?,
                version: version.to_owned(),
                arch: serde_json::to_string(arch)?,
                section: section.map(serde_json::to_string).transpose()?,
                size_kib: size.and_then(|s| s.parse().ok()),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    list.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    Ok(list)
}

/// The canonical JSON text of a machine's inventory: the T430's hardware
/// sections, with the machine's own hostname, serial and machine id, and
/// the fixture's packages ([`package_list`]). Going from one
/// `round` to the next is a 20-package upgrade (20 packages spread over
/// the list gain `+nirdROUND` in their version); one more package carries
/// the machine's `image` in its version (with one machine per image, no
/// two machines share a package list: the server stores and compresses
/// every list, its worst case). The package list is written as text, keys
/// in order, instead of built as a `serde_json::Value` and encoded: the
/// test below checks the whole is the canonical encoding.
fn changed_inventory_text(
    fixture: &Fixture,
    machine: usize,
    image: usize,
    round: u64,
) -> anyhow::Result<String> {
    let list = &fixture.packages;
    let mut doc = fixture.hardware.clone();
    if let Some(identity) = doc
        .get_mut("identity")
        .and_then(serde_json::Value::as_object_mut)
    {
        for (field, value) in [
            ("hostname", format!("pc-{machine:06}")),
            ("serial", format!("PB{machine:06}")),
            ("machine_id", format!("{machine:032x}")),
        ] {
            identity.insert(field.into(), serde_json::json!({ "value": value }));
        }
    }
    doc.insert("software".into(), serde_json::Value::Null);
    // Which list entries are upgraded each round, and which names the image.
    let step = (list.len() / 21).max(1);
    let mut text = String::with_capacity(8192 + list.len() * 110);
    text.push('{');
    // A `Map` iterates in key order: the canonical order.
    for (key, value) in &doc {
        if text.len() > 1 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(key)?);
        text.push(':');
        if key != "software" {
            text.push_str(std::str::from_utf8(&nird_proto::hash::canonical_json(
                value,
            )?)?);
            continue;
        }
        text.push_str(r#"{"value":{"packages":["#);
        for (i, p) in list.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(r#"{"arch":"#);
            text.push_str(&p.arch);
            text.push_str(r#","name":"#);
            text.push_str(&p.name);
            if let Some(section) = &p.section {
                text.push_str(r#","section":"#);
                text.push_str(section);
            }
            if let Some(size) = p.size_kib {
                text.push_str(&format!(r#","size_kib":{size}"#));
            }
            let mut version = p.version.clone();
            if i % step == 0 && i / step < 20 {
                version.push_str(&format!("+nird{round}"));
            } else if i == 20 * step {
                version.push_str(&format!("+image{image}"));
            }
            text.push_str(r#","version":"#);
            text.push_str(&serde_json::to_string(&version)?);
            text.push('}');
        }
        text.push_str("]}}");
    }
    text.push('}');
    Ok(text)
}

/// The two check-in bodies a machine alternates between in the
/// changed-inventory mode (each a 20-package upgrade of the other), built
/// before the measure so that the load generator's own work stays out of
/// it: the body without its closing brace (a report, when one is due, is
/// appended) and the inventory's hash.
struct PrebuiltCheckin {
    /// `{"applied":…,"inventory":…,"inventory_hash":…` (no closing brace).
    open_body: Bytes,
    /// The same body closed and, with `--gzip`, compressed: what is sent
    /// when no report is due.
    body: Bytes,
    /// The inventory's content hash.
    inventory_hash: String,
}

impl PrebuiltCheckin {
    fn new(
        fixture: &Fixture,
        machine: usize,
        image: usize,
        round: u64,
        gzip: bool,
    ) -> anyhow::Result<Self> {
        let inventory = changed_inventory_text(fixture, machine, image, round)?;
        let inventory_hash = nird_proto::hash::sha256_hex(inventory.as_bytes());
        let open_body = format!(
            r#"{{"applied":[{{"name":"primtux","version":1}}],"inventory":{inventory},"inventory_hash":"{inventory_hash}""#
        );
        let body = encode_body(format!("{open_body}}}").into_bytes(), gzip)?;
        Ok(PrebuiltCheckin {
            open_body: Bytes::from(open_body),
            body,
            inventory_hash,
        })
    }
}

/// `body`, gzip-compressed like agents send bodies over a few KB when
/// `gzip` (level 6, the agent's).
fn encode_body(body: Vec<u8>, gzip: bool) -> anyhow::Result<Bytes> {
    if !gzip {
        return Ok(Bytes::from(body));
    }
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::new(6),
    );
    encoder.write_all(&body)?;
    Ok(Bytes::from(encoder.finish()?))
}

/// Builds every machine's two pre-built check-ins on all cores.
fn prebuild(
    machines: usize,
    per_image: usize,
    packages: usize,
    gzip: bool,
) -> anyhow::Result<Vec<[PrebuiltCheckin; 2]>> {
    let fixture = Fixture::new(packages)?;
    let fixture = &fixture;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = machines.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t * per..((t + 1) * per).min(machines))
                        .map(|m| {
                            let image = m / per_image;
                            Ok([
                                PrebuiltCheckin::new(fixture, m, image, 1, gzip)?,
                                PrebuiltCheckin::new(fixture, m, image, 2, gzip)?,
                            ])
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(machines);
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("prebuild thread panicked"))??,
            );
        }
        Ok(all)
    })
}

/// One simulated machine.
struct SimMachine {
    /// Its number (`pc-NNNNNN`), which of the pre-built check-ins are its.
    index: usize,
    /// `Authorization` header value.
    auth: String,
    /// Its inventory hash.
    inventory_hash: String,
    /// Next apply report seq.
    next_seq: u64,
    /// Check-ins sent.
    checkins: u64,
}

fn main() -> anyhow::Result<()> {
    if std::env::var_os(CHILD_ENV).is_some() {
        // Server mode: exactly the nird-server binary's code path.
        let args = std::env::args().skip(1);
        let cli = <nird_server::cli::Cli as Parser>::parse_from(
            std::iter::once("nird-server".to_owned()).chain(args),
        );
        return nird_server::cli::run(cli);
    }
    let args = Args::parse();
    if args.machines == 0 || args.connections == 0 || args.duration == 0 {
        bail!("--machines, --connections and --duration must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// Makes the data directory: init, school, token, one assigned release.
async fn prepare(dir: &DataDir, machines: usize, database: Option<&str>) -> anyhow::Result<String> {
    nird_server::init::init(&nird_server::init::InitOptions {
        data_dir: dir.clone(),
        hostnames: vec!["127.0.0.1".into()],
        keyring: None,
        database: None,
    })
    .await?;
    let store = nird_server::store::open(&dir.database(), database).await?;
    let uai = nird_proto::uai::Uai::parse("0620056Z")?;
    store
        .add_school(
            "loadgen",
            School {
                uai: uai.clone(),
                name: "École de charge".into(),
                commune: "Calais".into(),
                departement: "062".into(),
                academie: "Lille".into(),
                kind: SchoolKind::Ecole,
                require_approval: false,
            },
        )
        .await?;
    let token = nird_server::secrets::new_secret();
    store
        .create_token(
            "loadgen",
            NewToken {
                school: uai.clone(),
                token_hash: nird_server::secrets::hash_secret(&token),
                expires_at: None,
                max_uses: u32::try_from(machines)?,
            },
        )
        .await?;
    // A release so every check-in computes a real assignment. The server
    // only stores and serves bytes; agents verify them.
    store
        .publish_release(
            "loadgen",
            NewRelease {
                name: "primtux".into(),
                version: 1,
                bytes: b"[profile]\nname = \"primtux\"\n".to_vec(),
                minisig: "untrusted comment: loadgen\n".into(),
                blobs: vec![],
                includes: vec![],
                signed_by: "loadgen".into(),
            },
        )
        .await?;
    store
        .assign_school("loadgen", &uai, vec!["primtux".into()])
        .await?;
    store.close().await?;
    Ok(token)
}

/// Starts the server child; returns it and its address.
fn start_server(dir: &Path, database: Option<&str>) -> anyhow::Result<(Child, SocketAddr)> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command
        .env(CHILD_ENV, "1")
        .env("RUST_LOG", "warn")
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"]);
    if let Some(url) = database {
        command.args(["--database", url]);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the server process")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .context("the server exited before listening")??;
        if let Some(url) = line.strip_prefix("nird-server : en écoute sur https://") {
            break url.trim().parse::<SocketAddr>()?;
        }
        eprintln!("server: {line}");
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("server: {line}");
        }
    });
    Ok((child, addr))
}

/// Resident and peak memory of a process, in KiB, from `/proc`.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) a process has used, in clock ticks of 10 ms
/// (`CLK_TCK` is 100 on Linux), from `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from the 3rd:
    // utime and stime are the 14th and 15th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// CPU ticks of process `pid` and of its children (a postmaster's
/// backends and helpers); a child that ended meanwhile is not counted.
fn tree_cpu_ticks(pid: u32) -> u64 {
    let parent_of = |child: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // The 4th field, the first after the state that follows the name.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok())
    };
    let children: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .map(cpu_ticks)
        .sum();
    cpu_ticks(pid) + children
}

/// One keep-alive HTTP/1.1 connection over TLS.
async fn connect(addr: SocketAddr, tls: &TlsConnector) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let stream = tls.connect(name, tcp).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one POST; returns status and body.
async fn post(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &str,
    auth: Option<&str>,
    body: impl Into<Bytes>,
    gzip: bool,
) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let mut req = hyper::Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    let resp = sender
        .send_request(req.body(Full::new(body.into()))?)
        .await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Reads a counter from the servers' `/metrics`: the sum over every
/// process's scrape.
fn metric_sum(text: &str, name: &str) -> Option<u64> {
    let values: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Fetches `/metrics` with its bearer token (`DATA/metrics-token`).
async fn scrape(addr: SocketAddr, tls: &TlsConnector, token: &str) -> anyhow::Result<String> {
    let mut sender = connect(addr, tls).await?;
    sender.ready().await?;
    let req = hyper::Request::get("/metrics")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    anyhow::ensure!(status.is_success(), "/metrics answered {status}");
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Enrols `count` machines on one connection.
async fn enroll_many(
    addr: SocketAddr,
    tls: TlsConnector,
    token: Arc<String>,
    first: usize,
    count: usize,
) -> anyhow::Result<Vec<SimMachine>> {
    let mut sender = connect(addr, &tls).await?;
    let mut machines = Vec::with_capacity(count);
    for i in first..first + count {
        let hostname = format!("pc-{i:06}");
        let inventory = serde_json::json!({
            "schema": 1,
            "hostname": hostname,
            "cpu": {"model": "Intel(R) Core(TM) i5-3470 CPU @ 3.20GHz", "cores": 4},
            "memory_mb": 4096 + (i % 4) * 2048,
            "disks": [{"model": "ST500DM002", "size_gb": 500}],
            "bios_date": "2013-05-02",
            "windows11": {"eligible": false, "reasons": ["cpu_generation", "tpm"]},
        });
        let inventory_hash = nird_proto::hash::content_hash(&inventory)?;
        let body = serde_json::to_vec(&EnrollRequest {
            token: token.to_string(),
            hostname,
            inventory,
            inventory_hash: inventory_hash.clone(),
        })?;
        let (status, reply) = post(&mut sender, "/api/v1/enroll", None, body, false).await?;
        if status != 200 {
            bail!(
                "enrol refused ({status}): {}",
                String::from_utf8_lossy(&reply)
            );
        }
        let reply: serde_json::Value = serde_json::from_slice(&reply)?;
        let id = reply["machine_id"].as_str().context("machine_id")?;
        let secret = reply["secret"].as_str().context("secret")?;
        machines.push(SimMachine {
            index: i,
            auth: machine_authorization(id, secret),
            inventory_hash,
            next_seq: 1,
            checkins: 0,
        });
    }
    Ok(machines)
}

/// What one connection measured.
#[derive(Default)]
struct Measured {
    /// Latency of each measured check-in, microseconds.
    latencies_us: Vec<u32>,
    /// Failed check-ins (non-200 or transport error).
    errors: u64,
}

/// Drives check-ins for this connection's machines, round-robin, until
/// `end`; measures those after `measure_from`.
async fn drive(
    addr: SocketAddr,
    tls: TlsConnector,
    mut machines: Vec<SimMachine>,
    report_every: u64,
    inventories: Option<(Arc<Vec<[PrebuiltCheckin; 2]>>, bool)>,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<Measured> {
    let mut sender = connect(addr, &tls).await?;
    let mut measured = Measured::default();
    let mut i = 0;
    let n = machines.len();
    while Instant::now() < end {
        let m = &mut machines[i % n];
        i += 1;
        m.checkins += 1;
        let mut reports = Vec::new();
        if m.checkins.is_multiple_of(report_every.max(1)) {
            let now = time::OffsetDateTime::now_utc();
            reports.push(ApplyReport {
                seq: m.next_seq,
                profile: "primtux".into(),
                version: 1,
                outcome: ApplyOutcome::Applied,
                reason: None,
                message: None,
                resources: vec![],
                started_at: now,
                finished_at: now,
            });
            m.next_seq += 1;
        }
        let (body, gzip) = match &inventories {
            // Changed-inventory mode: the machine's other document.
            Some((prebuilt, gzip)) => {
                let checkin = &prebuilt[m.index][usize::from(m.checkins % 2 == 1)];
                m.inventory_hash.clone_from(&checkin.inventory_hash);
                let body = if reports.is_empty() {
                    checkin.body.clone()
                } else {
                    let mut body = checkin.open_body.to_vec();
                    body.extend_from_slice(br#","reports":"#);
                    serde_json::to_writer(&mut body, &reports)?;
                    body.push(b'}');
                    encode_body(body, *gzip)?
                };
                (body, *gzip)
            }
            None => {
                let body = serde_json::to_vec(&CheckinRequest {
                    inventory_hash: m.inventory_hash.clone(),
                    inventory: None,
                    inventory_delta: None,
                    applied: vec![ProfileRef {
                        name: "primtux".into(),
                        version: 1,
                    }],
                    reports,
                    trust: None,
                })?;
                (Bytes::from(body), false)
            }
        };
        let start = Instant::now();
        let result = post(&mut sender, "/api/v1/checkin", Some(&m.auth), body, gzip).await;
        let elapsed = start.elapsed();
        let ok = matches!(result, Ok((200, _)));
        if start >= measure_from {
            if ok {
                measured
                    .latencies_us
                    .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
            } else {
                measured.errors += 1;
            }
        }
        if result.is_err() {
            sender = connect(addr, &tls).await?;
        }
    }
    Ok(measured)
}

async fn run(args: Args) -> anyhow::Result<()> {
    // 20 upgraded packages and one naming the image: fewer would make the
    // rounds smaller upgrades and let every machine share one list.
    if (1..21).contains(&args.inventory_packages) {
        bail!("--inventory-packages: 0 (heartbeats only) or at least 21");
    }
    let tmp = tempfile::tempdir()?;
    let dir = DataDir::new(tmp.path().join("data"));
    println!(
        "nird-loadgen: {} machines, {} connections, {} s measured after {} s warm-up",
        args.machines, args.connections, args.duration, args.warmup
    );
    if args.servers == 0 || (args.servers > 1 && args.database.is_none()) {
        bail!("--servers must be 1, or more with --database (SQLite has one writer process)");
    }
    let inventories = if args.inventory_packages > 0 {
        // Two documents of ≈ 100 B per package for each machine, kept in
        // memory for the whole run.
        let bytes =
            args.machines * 2 * args.inventory_packages * 100 / if args.gzip { 8 } else { 1 };
        if bytes > 4 << 30 {
            bail!(
                "the changed-inventory mode would pre-build {} MiB of documents: fewer --machines",
                bytes >> 20
            );
        }
        let start = Instant::now();
        let per_image = usize::try_from(args.machines_per_image)?;
        let prebuilt = prebuild(args.machines, per_image, args.inventory_packages, args.gzip)?;
        println!(
            "pre-built: 2 check-ins of {} B ({} B sent) per machine in {:.1} s",
            prebuilt.first().map_or(0, |p| p[0].open_body.len() + 1),
            prebuilt.first().map_or(0, |p| p[0].body.len()),
            start.elapsed().as_secs_f64()
        );
        Some((Arc::new(prebuilt), args.gzip))
    } else {
        None
    };
    let token = Arc::new(prepare(&dir, args.machines, args.database.as_deref()).await?);
    let metrics_token = nird_server::init::read_metrics_token(&dir)?;
    let mut children = Vec::new();
    for _ in 0..args.servers {
        children.push(start_server(dir.root(), args.database.as_deref())?);
    }
    let addrs: Vec<SocketAddr> = children.iter().map(|(_, a)| *a).collect();
    let pids: Vec<u32> = children.iter().map(|(c, _)| c.id()).collect();
    let rss_all = || {
        pids.iter()
            .map(|p| rss_kib(*p))
            .fold((0, 0), |(r, h), (a, b)| (r + a, h + b))
    };
    let tls = TlsConnector::from(nird_server::tls::client_config(&dir.ca_cert())?);

    let result = async {
        // Enrolment, spread over the connections.
        let start = Instant::now();
        let per = args.machines.div_ceil(args.connections);
        let mut tasks = Vec::new();
        for c in 0..args.connections {
            let first = c * per;
            let count = per.min(args.machines.saturating_sub(first));
            if count == 0 {
                break;
            }
            tasks.push(tokio::spawn(enroll_many(
                addrs[c % addrs.len()],
                tls.clone(),
                token.clone(),
                first,
                count,
            )));
        }
        let mut groups = Vec::new();
        for t in tasks {
            groups.push(t.await??);
        }
        let enrol_secs = start.elapsed().as_secs_f64();
        println!(
            "enrolment: {} machines in {enrol_secs:.1} s ({:.0}/s)",
            args.machines,
            args.machines as f64 / enrol_secs
        );
        let (rss_after_enrol, _) = rss_all();

        // Check-ins.
        let measure_from = Instant::now() + Duration::from_secs(args.warmup);
        let end = measure_from + Duration::from_secs(args.duration);
        // CPU the server and this process use while measured, whatever the
        // other load on the machine.
        let server_pids = pids.clone();
        let postgres_pid = args.postgres_pid;
        let cpu_at_start = tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            (
                server_pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>(),
                cpu_ticks(std::process::id()),
                postgres_pid.map(tree_cpu_ticks),
            )
        });
        let tasks: Vec<_> = groups
            .into_iter()
            .enumerate()
            .map(|(c, machines)| {
                tokio::spawn(drive(
                    addrs[c % addrs.len()],
                    tls.clone(),
                    machines,
                    args.report_every,
                    inventories.clone(),
                    measure_from,
                    end,
                ))
            })
            .collect();
        let mut latencies = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let m = t.await??;
            latencies.extend(m.latencies_us);
            errors += m.errors;
        }
        let (server_ticks, own_ticks, postgres_ticks) = cpu_at_start.await?;
        let postgres_ticks = args
            .postgres_pid
            .zip(postgres_ticks)
            .map(|(pid, start)| tree_cpu_ticks(pid).saturating_sub(start));
        let server_ticks = pids
            .iter()
            .map(|p| cpu_ticks(*p))
            .sum::<u64>()
            .saturating_sub(server_ticks);
        let own_ticks = cpu_ticks(std::process::id()).saturating_sub(own_ticks);
        let (rss, peak) = rss_all();
        let mut metrics = String::new();
        for addr in &addrs {
            metrics.push_str(&scrape(*addr, &tls, &metrics_token).await?);
        }
        latencies.sort_unstable();
        let pct = |p: f64| {
            let idx = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
            latencies.get(idx).copied().unwrap_or(0) as f64 / 1000.0
        };
        println!(
            "check-ins: {} in {} s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {errors}",
            latencies.len(),
            args.duration,
            latencies.len() as f64 / args.duration as f64,
            pct(0.50),
            pct(0.99),
            latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
        );
        let per_checkin = |ticks: u64| ticks as f64 * 10.0 / latencies.len().max(1) as f64;
        let postgres = postgres_ticks
            .map(|t| format!(", PostgreSQL {:.2} ms", per_checkin(t)))
            .unwrap_or_default();
        println!(
            "CPU per check-in: server {:.2} ms{postgres}, load generator {:.2} ms (on this machine's cores)",
            per_checkin(server_ticks),
            per_checkin(own_ticks)
        );
        println!(
            "server RSS: {} MiB after enrolment, {} MiB after check-ins (peak {} MiB)",
            rss_after_enrol / 1024,
            rss / 1024,
            peak / 1024
        );
        if let (Some(commits), Some(writes)) = (
            metric_sum(&metrics, "nird_db_commits_total"),
            metric_sum(&metrics, "nird_db_writes_total"),
        ) {
            println!(
                "group commit: {writes} writes in {commits} fsync'ed transactions ({:.1} writes per commit)",
                writes as f64 / commits.max(1) as f64
            );
        }
        let db_bytes: u64 = ["nird.db", "nird.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.root().join(f)).ok())
            .map(|m| m.len())
            .sum();
        if args.database.is_none() {
            println!("database: {} MiB", db_bytes / (1024 * 1024));
        }
        anyhow::Ok(())
    }
    .await;

    // SIGTERM: graceful shutdown, so the database closes cleanly.
    for (mut child, _) in children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_inventories_are_canonical_and_differ_by_machine_and_round() {
        let fixture = Fixture::new(30).unwrap();
        let doc =
            |machine, round| changed_inventory_text(&fixture, machine, machine, round).unwrap();
        let value: serde_json::Value = serde_json::from_str(&doc(7, 1)).unwrap();
        assert_eq!(
            nird_proto::hash::canonical_json(&value).unwrap(),
            doc(7, 1).as_bytes()
        );
        let packages = value["software"]["value"]["packages"].as_array().unwrap();
        assert_eq!(packages.len(), 30);
        // Real packages of the school desktop, sorted as the agent sends
        // them; the 21st names the image.
        assert!(
            packages
                .windows(2)
                .all(|w| w[0]["name"].as_str() < w[1]["name"].as_str())
        );
        assert!(
            packages[20]["version"]
                .as_str()
                .unwrap()
                .ends_with("+image7")
        );
        assert!(packages[0]["version"].as_str().unwrap().ends_with("+nird1"));
        assert!(
            packages
                .iter()
                .all(|p| p["section"].is_string() && p["size_kib"].is_u64())
        );
        // A real machine's hardware, named after the simulated one.
        assert_eq!(value["identity"]["hostname"]["value"], "pc-000007");
        assert_eq!(
            value["identity"]["product_family"]["value"],
            "ThinkPad T430"
        );
        assert!(value["storage"].is_object() && value["monitors"].is_object());
        // A round is a 20-package upgrade; machines never share a list.
        let list = |machine, round| {
            let v: serde_json::Value = serde_json::from_str(&doc(machine, round)).unwrap();
            v["software"]["value"]["packages"]
                .as_array()
                .unwrap()
                .clone()
        };
        let changed = list(7, 1)
            .iter()
            .zip(list(7, 2).iter())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(changed, 20);
        assert_ne!(list(7, 1), list(8, 1));
        // Machines of one image share their lists, not their documents.
        let shared = |machine| changed_inventory_text(&fixture, machine, 3, 1).unwrap();
        let lists: Vec<serde_json::Value> = [7, 8]
            .iter()
            .map(|m| serde_json::from_str::<serde_json::Value>(&shared(*m)).unwrap())
            .collect();
        assert_eq!(lists[0]["software"], lists[1]["software"]);
        assert_ne!(shared(7), shared(8));
        // The pre-built body is the check-in request the server reads.
        let pre = PrebuiltCheckin::new(&fixture, 7, 7, 2, false).unwrap();
        let body: CheckinRequest = serde_json::from_slice(&pre.body).unwrap();
        assert_eq!(
            body.inventory_hash,
            nird_proto::hash::content_hash(body.inventory.as_ref().unwrap()).unwrap()
        );
        assert_eq!(body.inventory_hash, pre.inventory_hash);
        // Past the fixture's 2,172 packages, copies with unique names.
        let long = package_list(5000).unwrap();
        let keys: std::collections::BTreeSet<_> = long.iter().map(|p| (&p.name, &p.arch)).collect();
        assert_eq!(keys.len(), 5000);
        assert!(long.iter().any(|p| p.name == r#""gcompris-qt-2""#));
    }

    #[test]
    fn reads_counters_from_prometheus_text() {
        let text = "# HELP x\nnird_db_commits_total 12\nnird_db_commits_total_other 3\nnird_db_writes_total 345\n";
        assert_eq!(metric_sum(text, "nird_db_commits_total"), Some(12));
        assert_eq!(metric_sum(text, "nird_db_writes_total"), Some(345));
        assert_eq!(metric_sum(text, "missing"), None);
        let two = format!("{text}{text}");
        assert_eq!(metric_sum(&two, "nird_db_writes_total"), Some(690));
    }

    #[test]
    fn rss_of_this_process_is_read_from_proc() {
        let (rss, peak) = rss_kib(std::process::id());
        assert!(rss > 0 && peak >= rss);
    }
}
