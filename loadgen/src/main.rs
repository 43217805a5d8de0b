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
//! With `--inventory-packages N` every check-in carries a whole inventory
//! document (a real machine's hardware sections and N packages of a real
//! school desktop's dpkg list) that moves forward as a real machine's
//! does: check-in k of a machine carries round k of its list, 20 packages
//! upgraded since round k − 1 ([`Rounds`]), so the server is never sent
//! a list it was sent before. Each body is written at send time from
//! canonical text prepared before the measure, into a reused buffer; the
//! inventory hashes (and `--gzip` bodies) of every round the run can reach
//! are computed before the measure too ([`ChangedInventories`]), so that
//! the load generator's own work stays small beside the server's.
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
    /// school desktop's list). Check-in k of a machine carries round k of
    /// its list: 20 packages upgraded since its previous one (a weekly
    /// upgrade), a different 20 each round until the whole list has been
    /// upgraded, so a machine never sends a list it sent before. 0:
    /// heartbeats only.
    #[arg(long, default_value_t = 0)]
    inventory_packages: usize,
    /// Changed-inventory mode: bodies gzip-compressed, as agents send
    /// them, before the measure for as many rounds as 1 GiB holds (past
    /// them, and with a report appended, at send time: counted).
    #[arg(long)]
    gzip: bool,
    /// Changed-inventory mode: machines installed from one image and
    /// upgraded alike, so sharing their package lists round by round (a
    /// school's room of PCs). 1: no two machines share a list, the
    /// server's worst case (every list is new: hashed, compressed and
    /// stored).
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

/// Packages one round upgrades: a school desktop's weekly upgrade.
const UPGRADE: usize = 20;

/// How a machine's package list moves forward, as weekly upgrades move a
/// real machine's: check-in k of a machine carries round k (k = 1, 2, 3…),
/// so no machine ever sends a list it sent before.
///
/// The list's first `UPGRADE × groups` packages form `groups` interleaved
/// groups of 20 spread over the whole list (group g: the packages whose
/// index i satisfies i % groups == g), with groups = (packages − 1) / 20.
/// Round r upgrades group (r − 1) % groups: each of its packages gets
/// `+nird{r}` after its fixture version, in place of the marker an earlier
/// round gave it. Round r therefore differs from round r − 1 in exactly
/// 20 packages and from round 0 (fixture versions) in min(r, groups) × 20:
/// a list drifts away from an old one until every group has been upgraded
/// (124 rounds for 2,500 packages). The last package is in no group: it
/// carries `+image{image}` in every round, so machines of one image share
/// their lists round by round and machines of two images never do.
#[derive(Clone, Copy, Debug)]
struct Rounds {
    /// Number of groups of `UPGRADE` packages.
    groups: usize,
    /// The package naming the image: the last one.
    image_index: usize,
}

impl Rounds {
    /// The rounds of a list of `packages` (at least `UPGRADE + 1`).
    fn new(packages: usize) -> Self {
        Rounds {
            groups: (packages.saturating_sub(1) / UPGRADE).max(1),
            image_index: packages.saturating_sub(1),
        }
    }

    /// The group package `index` belongs to, if any.
    fn group_of(self, index: usize) -> Option<usize> {
        (index < UPGRADE * self.groups).then(|| index % self.groups)
    }

    /// The last round, up to `round`, that upgraded `group` (none before
    /// its first upgrade, round `group + 1`).
    fn upgraded_in(self, group: usize, round: u64) -> Option<u64> {
        let group = group as u64;
        (round > group).then(|| round - (round - 1 - group) % self.groups as u64)
    }
}

/// One package of the fixture: name, architecture and section as JSON
/// text (quoted, escaped), the version as dpkg wrote it (rounds append
/// their marker to it before it is quoted).
struct FixturePackage {
    name: String,
    version: String,
    arch: String,
    section: Option<String>,
    size_kib: Option<u64>,
}

impl FixturePackage {
    /// Appends the package's JSON object up to its version's value:
    /// `{"arch":…,"name":…,"section":…,"size_kib":…,"version":` (keys in
    /// canonical order).
    fn write_head(&self, text: &mut String) {
        use std::fmt::Write as _;
        text.push_str(r#"{"arch":"#);
        text.push_str(&self.arch);
        text.push_str(r#","name":"#);
        text.push_str(&self.name);
        if let Some(section) = &self.section {
            text.push_str(r#","section":"#);
            text.push_str(section);
        }
        if let Some(size) = self.size_kib {
            let _ = write!(text, r#","size_kib":{size}"#);
        }
        text.push_str(r#","version":"#);
    }
}

/// What every changed-inventory document is made from, read once.
struct Fixture {
    /// [`HARDWARE_FIXTURE`]'s sections.
    hardware: serde_json::Map<String, serde_json::Value>,
    /// [`package_list`].
    packages: Vec<FixturePackage>,
    /// How the list moves forward.
    rounds: Rounds,
}

impl Fixture {
    fn new(packages: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(
            packages > UPGRADE,
            "a changed inventory holds at least {} packages",
            UPGRADE + 1
        );
        Ok(Fixture {
            hardware: serde_json::from_str(HARDWARE_FIXTURE)?,
            packages: package_list(packages)?,
            rounds: Rounds::new(packages),
        })
    }

    /// The hardware sections with `identity`'s values in place of the
    /// T430's.
    fn hardware_of(
        &self,
        identity: [(&str, String); 3],
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut doc = self.hardware.clone();
        if let Some(section) = doc
            .get_mut("identity")
            .and_then(serde_json::Value::as_object_mut)
        {
            for (field, value) in identity {
                section.insert(field.into(), serde_json::json!({ "value": value }));
            }
        }
        doc
    }
}

/// A simulated machine's own identity values: hostname, serial and
/// machine id, made of ASCII letters, digits and `-` (JSON strings that
/// need no escaping).
fn identity(machine: usize) -> [(&'static str, String); 3] {
    [
        ("hostname", format!("pc-{machine:06}")),
        ("serial", format!("PB{machine:06}")),
        ("machine_id", format!("{machine:032x}")),
    ]
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

/// The canonical JSON text of a machine's inventory at `round` (see
/// [`Rounds`]; round 0 has the fixture's versions): the T430's hardware
/// sections with the machine's own hostname, serial and machine id
/// ([`identity`]), and the fixture's packages, each version followed by
/// the marker of the round that last upgraded it or, for the last
/// package, by `+image{image}`. With one machine per image no two
/// machines share a package list: the server stores every list, its
/// worst case.
///
/// This is the reference: the load generator writes the same bytes from
/// pieces ([`InventoryTemplate`]) and the tests check both are equal and
/// canonical. The package list is written as text, keys in order, instead
/// of built as a `serde_json::Value` and encoded.
fn changed_inventory_text(
    fixture: &Fixture,
    machine: usize,
    image: usize,
    round: u64,
) -> anyhow::Result<String> {
    let list = &fixture.packages;
    let rounds = fixture.rounds;
    let mut doc = fixture.hardware_of(identity(machine));
    doc.insert("software".into(), serde_json::Value::Null);
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
            p.write_head(&mut text);
            let mut version = p.version.clone();
            if let Some(upgrade) = rounds
                .group_of(i)
                .and_then(|group| rounds.upgraded_in(group, round))
            {
                version.push_str(&format!("+nird{upgrade}"));
            } else if i == rounds.image_index {
                version.push_str(&format!("+image{image}"));
            }
            text.push_str(&serde_json::to_string(&version)?);
            text.push('}');
        }
        text.push_str("]}}");
    }
    text.push('}');
    Ok(text)
}

/// What varies in a changed inventory's text besides the versions' markers.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// The value of [`identity`]'s field of this index, quoted.
    Identity(usize),
    /// The `software` section: the package list.
    Packages,
}

/// [`changed_inventory_text`]'s bytes cut, once, into canonical text that
/// every machine and round share, so that writing a document at send time
/// is a memcpy-level pass (no JSON encoding): the hardware sections cut
/// around the identity values and the package list, and the package list
/// cut after each version, where a round's or the image's marker goes.
struct InventoryTemplate {
    /// The hardware sections' text, each piece followed by what goes
    /// after it (the last piece by nothing).
    pieces: Vec<(String, Option<Slot>)>,
    /// `{"value":{"packages":[…]}}` with the fixture's versions.
    packages: String,
    /// Where each package's version ends in `packages` (at its closing
    /// quote).
    version_ends: Vec<usize>,
    /// How the list moves forward.
    rounds: Rounds,
}

impl InventoryTemplate {
    fn new(fixture: &Fixture) -> anyhow::Result<Self> {
        // Placeholders the canonical encoding writes as they are, found
        // back in its text.
        let placeholder = |slot: &str| format!("@nird-loadgen:{slot}@");
        let identity_fields = identity(0).map(|(field, _)| field);
        let mut doc = fixture.hardware_of(identity_fields.map(|f| (f, placeholder(f))));
        doc.insert(
            "software".into(),
            serde_json::Value::String(placeholder("software")),
        );
        let text = String::from_utf8(nird_proto::hash::canonical_json(&doc)?)?;
        let mut cuts = Vec::new();
        let slots = identity_fields
            .iter()
            .enumerate()
            .map(|(i, f)| (*f, Slot::Identity(i)))
            .chain([("software", Slot::Packages)]);
        for (name, slot) in slots {
            let quoted = serde_json::to_string(&placeholder(name))?;
            let mut found = text.match_indices(&quoted);
            match (found.next(), found.next()) {
                (Some((at, _)), None) => cuts.push((at, at + quoted.len(), slot)),
                _ => bail!("the hardware fixture's {name} cannot be found once in its text"),
            }
        }
        cuts.sort_by_key(|(at, _, _)| *at);
        let mut pieces = Vec::new();
        let mut from = 0;
        for (at, end, slot) in cuts {
            pieces.push((text[from..at].to_owned(), Some(slot)));
            from = end;
        }
        pieces.push((text[from..].to_owned(), None));

        let mut packages = String::from(r#"{"value":{"packages":["#);
        let mut version_ends = Vec::with_capacity(fixture.packages.len());
        for (i, p) in fixture.packages.iter().enumerate() {
            if i > 0 {
                packages.push(',');
            }
            p.write_head(&mut packages);
            let version = serde_json::to_string(&p.version)?;
            packages.push_str(&version[..version.len() - 1]);
            version_ends.push(packages.len());
            packages.push_str(r#""}"#);
        }
        packages.push_str("]}}");
        Ok(InventoryTemplate {
            pieces,
            packages,
            version_ends,
            rounds: fixture.rounds,
        })
    }

    /// Appends [`changed_inventory_text`]`(machine, image, round)` to `out`.
    fn write(
        &self,
        out: &mut Vec<u8>,
        machine: usize,
        image: usize,
        round: u64,
        markers: &mut Markers,
    ) {
        use std::io::Write as _;
        let identity = identity(machine);
        // Each group's marker, then the image's, written once.
        markers.text.clear();
        markers.ends.clear();
        for group in 0..self.rounds.groups {
            if let Some(upgrade) = self.rounds.upgraded_in(group, round) {
                let _ = write!(markers.text, "+nird{upgrade}");
            }
            markers.ends.push(markers.text.len());
        }
        let image_from = markers.text.len();
        let _ = write!(markers.text, "+image{image}");
        for (text, slot) in &self.pieces {
            out.extend_from_slice(text.as_bytes());
            match slot {
                Some(Slot::Identity(i)) => {
                    out.push(b'"');
                    out.extend_from_slice(identity[*i].1.as_bytes());
                    out.push(b'"');
                }
                Some(Slot::Packages) => self.write_packages(out, markers, image_from),
                None => {}
            }
        }
    }

    /// Appends the package list, each version followed by its marker.
    fn write_packages(&self, out: &mut Vec<u8>, markers: &Markers, image_from: usize) {
        let packages = self.packages.as_bytes();
        let mut from = 0;
        for (i, &end) in self.version_ends.iter().enumerate() {
            let marker = if i == self.rounds.image_index {
                &markers.text[image_from..]
            } else if let Some(group) = self.rounds.group_of(i) {
                let start = group.checked_sub(1).map_or(0, |g| markers.ends[g]);
                &markers.text[start..markers.ends[group]]
            } else {
                continue;
            };
            if !marker.is_empty() {
                out.extend_from_slice(&packages[from..end]);
                out.extend_from_slice(marker);
                from = end;
            }
        }
        out.extend_from_slice(&packages[from..]);
    }
}

/// Scratch space for one document's version markers, reused from one
/// document to the next.
#[derive(Default)]
struct Markers {
    /// Each group's marker (empty before its first upgrade), then the
    /// image's.
    text: Vec<u8>,
    /// Where each group's marker ends in `text`.
    ends: Vec<usize>,
}

/// A changed-inventory check-in body up to its inventory.
const BODY_HEAD: &str = r#"{"applied":[{"name":"primtux","version":1}],"inventory":"#;

/// The check-in rate bound used to size what is computed before the
/// measure: 4,000 check-ins/s, 2.5 to 4 times what the server ingested
/// on this machine (1,070/s with unique lists, 1,630/s with 30 machines
/// per image), for servers to come. Hashes cost 64 B each and ≈ 0.17
/// ms of a core (document written and hashed): 91 rounds of 1,000
/// machines (an 18 s run) took 7.6 s on 2 cores.
const RATE_BOUND: u64 = 4_000;

/// Memory the `--gzip` mode's pre-compressed bodies may take: 29 rounds of
/// 1,000 machines at 2,500 packages (≈ 36 KB each), ≈ 2.2 ms of a core
/// each to compress. A 15 s measure after 3 s of warm-up reached round 21
/// at 1,020/s; 29 rounds hold up to ≈ 1,350/s.
const GZIP_BUDGET: usize = 1 << 30;

/// The rounds a run of `seconds` (warm-up included) can reach for each of
/// `machines` at [`RATE_BOUND`], plus a quarter and one more: closed-loop
/// connections do not all go at the same pace.
fn reachable_rounds(machines: usize, seconds: u64) -> u64 {
    let expected = (seconds * RATE_BOUND).div_ceil(machines.max(1) as u64);
    expected + expected / 4 + 1
}

/// Every machine's changed-inventory check-ins, round after round, made
/// at send time from [`InventoryTemplate`]'s pieces into a reused buffer
/// (≈ 250 KB of memcpy for 2,500 packages). What would cost more than
/// that is computed before the measure, on all cores: the inventory hash
/// of every (machine, round) the run can reach ([`reachable_rounds`]),
/// and with `--gzip` the compressed bodies.
///
/// `--gzip` bodies are compressed before the measure because compressing
/// one at send time (deflate level 6, the agent's, of ≈ 250 KB: ≈ 2.2 ms
/// of a core) costs the client more CPU than the server spends ingesting
/// it (≈ 1.7 ms), on the same two cores: the load generator would measure
/// itself. Pre-compressed bodies take ≈ 36 KB
/// each, machines × rounds of them: as many rounds as [`GZIP_BUDGET`]
/// holds are pre-compressed; past them, and for a check-in carrying an
/// apply report (appended to the body), the body is compressed at send
/// time, and those are counted and printed.
struct ChangedInventories {
    /// The documents' pieces.
    template: InventoryTemplate,
    /// Machines sharing an image (`--machines-per-image`).
    per_image: usize,
    /// Rounds whose inventory hashes are in `hashes`: 1 to `rounds`.
    rounds: u64,
    /// Hex SHA-256 of each machine's inventory at each round, machine
    /// after machine.
    hashes: Vec<[u8; 64]>,
    /// `--gzip`.
    gzip: bool,
    /// Rounds whose compressed bodies are in `gzip_bodies`: 1 to
    /// `gzip_rounds`.
    gzip_rounds: u64,
    /// Each machine's body at each of those rounds, without report,
    /// gzip-compressed, machine after machine.
    gzip_bodies: Vec<Bytes>,
}

impl ChangedInventories {
    /// Makes the documents' pieces and computes, on all cores, the hashes
    /// of rounds 1 to `rounds` of `machines` machines and, when `gzip` is
    /// `Some(budget)`, as many rounds of compressed bodies as `budget`
    /// bytes hold (at most `rounds`).
    fn precompute(
        packages: usize,
        machines: usize,
        per_image: usize,
        rounds: u64,
        gzip: Option<usize>,
    ) -> anyhow::Result<Self> {
        let fixture = Fixture::new(packages)?;
        let template = InventoryTemplate::new(&fixture)?;
        // The pieces make the reference's bytes (the tests check it for
        // more machines and rounds).
        let mut first = Vec::new();
        template.write(&mut first, 0, 0, 1, &mut Markers::default());
        anyhow::ensure!(
            first == changed_inventory_text(&fixture, 0, 0, 1)?.as_bytes(),
            "the documents written from pieces differ from the reference text"
        );
        let mut inventories = ChangedInventories {
            template,
            per_image: per_image.max(1),
            rounds: 0,
            hashes: Vec::new(),
            gzip: gzip.is_some(),
            gzip_rounds: 0,
            gzip_bodies: Vec::new(),
        };
        if let Some(budget) = gzip {
            // One body's size, to see how many rounds fit.
            let mut body = Vec::new();
            inventories.write_open_body(&mut body, 0, 1, &mut Markers::default());
            body.push(b'}');
            let per_round = machines.max(1) * gzip_body(&body)?.len();
            inventories.gzip_rounds = rounds.min((budget / per_round) as u64);
        }
        let this = &inventories;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = machines.div_ceil(threads).max(1);
        let (hashes, bodies) = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    scope
                        .spawn(move || this.compute(t * per..((t + 1) * per).min(machines), rounds))
                })
                .collect();
            let mut hashes = Vec::with_capacity(machines * rounds as usize);
            let mut bodies = Vec::new();
            for h in handles {
                let (h, b) = h
                    .join()
                    .map_err(|_| anyhow::anyhow!("a pre-computing thread panicked"))??;
                hashes.extend(h);
                bodies.extend(b);
            }
            anyhow::Ok((hashes, bodies))
        })?;
        inventories.rounds = rounds;
        inventories.hashes = hashes;
        inventories.gzip_bodies = bodies;
        Ok(inventories)
    }

    /// Hashes of rounds 1 to `rounds` and bodies of rounds 1 to
    /// `gzip_rounds` of `machines`, machine after machine.
    fn compute(
        &self,
        machines: std::ops::Range<usize>,
        rounds: u64,
    ) -> anyhow::Result<(Vec<[u8; 64]>, Vec<Bytes>)> {
        let mut hashes = Vec::with_capacity(machines.len() * rounds as usize);
        let mut bodies = Vec::new();
        let mut body = Vec::new();
        let mut markers = Markers::default();
        for machine in machines {
            for round in 1..=rounds {
                body.clear();
                self.write_open_body(&mut body, machine, round, &mut markers);
                // The body ends with the hash and its closing quote.
                let hash = body
                    .len()
                    .checked_sub(65)
                    .and_then(|at| body.get(at..at + 64))
                    .and_then(|h| <[u8; 64]>::try_from(h).ok())
                    .context("a body without its hash")?;
                hashes.push(hash);
                if round <= self.gzip_rounds {
                    body.push(b'}');
                    bodies.push(gzip_body(&body)?);
                }
            }
        }
        Ok((hashes, bodies))
    }

    /// Appends `machine`'s check-in body of `round` without its closing
    /// brace (a report, when one is due, goes there):
    /// `{"applied":…,"inventory":…,"inventory_hash":"…"`. Returns true when
    /// the hash was not pre-computed and had to be computed now.
    fn write_open_body(
        &self,
        out: &mut Vec<u8>,
        machine: usize,
        round: u64,
        markers: &mut Markers,
    ) -> bool {
        out.extend_from_slice(BODY_HEAD.as_bytes());
        let start = out.len();
        self.template
            .write(out, machine, machine / self.per_image, round, markers);
        let end = out.len();
        out.extend_from_slice(br#","inventory_hash":""#);
        let computed = match self.hash(machine, round) {
            Some(hash) => {
                out.extend_from_slice(hash);
                false
            }
            None => {
                let hash = nird_proto::hash::sha256_hex(&out[start..end]);
                out.extend_from_slice(hash.as_bytes());
                true
            }
        };
        out.push(b'"');
        computed
    }

    /// The pre-computed hash of `machine`'s inventory at `round`.
    fn hash(&self, machine: usize, round: u64) -> Option<&[u8; 64]> {
        let rounds = self.rounds as usize;
        let round = usize::try_from(round).ok()?.checked_sub(1)?;
        (round < rounds)
            .then(|| self.hashes.get(machine * rounds + round))
            .flatten()
    }

    /// The pre-compressed body (without report) of `machine` at `round`.
    fn gzip_body(&self, machine: usize, round: u64) -> Option<&Bytes> {
        let rounds = self.gzip_rounds as usize;
        let round = usize::try_from(round).ok()?.checked_sub(1)?;
        (round < rounds)
            .then(|| self.gzip_bodies.get(machine * rounds + round))
            .flatten()
    }
}

/// `body` gzip-compressed like agents send bodies over a few KB (level
/// 6, the agent's).
fn gzip_body(body: &[u8]) -> anyhow::Result<Bytes> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 6),
        flate2::Compression::new(6),
    );
    encoder.write_all(body)?;
    // No spare capacity: pre-compressed bodies are kept by the thousand.
    Ok(Bytes::from(encoder.finish()?.into_boxed_slice()))
}

/// One simulated machine.
struct SimMachine {
    /// Its number (`pc-NNNNNN`), which of the changed inventories are its.
    index: usize,
    /// `Authorization` header value.
    auth: String,
    /// Its inventory hash (the enrolment's: heartbeats send it).
    inventory_hash: String,
    /// Next apply report seq.
    next_seq: u64,
    /// Check-ins sent; with changed inventories, the round of the last
    /// one.
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
    /// Changed-inventory check-ins (warm-up included) whose inventory
    /// hash was computed at send time, past the pre-computed rounds.
    hashed_at_send: u64,
    /// `--gzip` check-ins (warm-up included) whose body was compressed at
    /// send time: past the pre-compressed rounds, or carrying a report.
    compressed_at_send: u64,
    /// Highest round sent.
    last_round: u64,
}

/// Drives check-ins for this connection's machines, round-robin, until
/// `end`; measures those after `measure_from`.
async fn drive(
    addr: SocketAddr,
    tls: TlsConnector,
    mut machines: Vec<SimMachine>,
    report_every: u64,
    inventories: Option<Arc<ChangedInventories>>,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<Measured> {
    let mut sender = connect(addr, &tls).await?;
    let mut measured = Measured::default();
    // Uncompressed changed-inventory bodies are written here; the buffer
    // comes back from hyper once the reply is in.
    let mut buffer = Vec::new();
    let mut markers = Markers::default();
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
        let mut reusable = false;
        let (body, gzip) = match &inventories {
            // Changed-inventory mode: check-in k carries round k.
            Some(inventories) => {
                let round = m.checkins;
                measured.last_round = measured.last_round.max(round);
                let gzip = inventories.gzip;
                let prebuilt = inventories
                    .gzip_body(m.index, round)
                    .filter(|_| reports.is_empty());
                if let Some(body) = prebuilt {
                    (body.clone(), gzip)
                } else {
                    buffer.clear();
                    if inventories.write_open_body(&mut buffer, m.index, round, &mut markers) {
                        measured.hashed_at_send += 1;
                    }
                    if !reports.is_empty() {
                        buffer.extend_from_slice(br#","reports":"#);
                        serde_json::to_writer(&mut buffer, &reports)?;
                    }
                    buffer.push(b'}');
                    if gzip {
                        measured.compressed_at_send += 1;
                        (gzip_body(&buffer)?, gzip)
                    } else {
                        reusable = true;
                        (Bytes::from(std::mem::take(&mut buffer)), gzip)
                    }
                }
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
        let result = post(
            &mut sender,
            "/api/v1/checkin",
            Some(&m.auth),
            body.clone(),
            gzip,
        )
        .await;
        let elapsed = start.elapsed();
        if reusable && let Ok(body) = body.try_into_mut() {
            buffer = body.into();
        }
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
    if (1..=UPGRADE).contains(&args.inventory_packages) {
        bail!(
            "--inventory-packages: 0 (heartbeats only) or at least {}",
            UPGRADE + 1
        );
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
        let start = Instant::now();
        let per_image = usize::try_from(args.machines_per_image)?;
        let rounds = reachable_rounds(args.machines, args.warmup + args.duration);
        println!(
            "pre-computing the inventory hashes of {rounds} rounds of {} machines{}…",
            args.machines,
            if args.gzip {
                format!(" and their gzip bodies within {} MiB", GZIP_BUDGET >> 20)
            } else {
                String::new()
            }
        );
        let inventories = ChangedInventories::precompute(
            args.inventory_packages,
            args.machines,
            per_image,
            rounds,
            args.gzip.then_some(GZIP_BUDGET),
        )?;
        let mut document = Vec::new();
        inventories.write_open_body(&mut document, 0, 1, &mut Markers::default());
        println!(
            "pre-computed: {} inventory hashes ({rounds} rounds of {} machines, {} B check-in bodies){} in {:.1} s",
            inventories.hashes.len(),
            args.machines,
            document.len() + 1,
            if args.gzip {
                format!(
                    ", {} gzip bodies ({} rounds, {} B sent for the first, {} MiB in all)",
                    inventories.gzip_bodies.len(),
                    inventories.gzip_rounds,
                    inventories.gzip_bodies.first().map_or(0, Bytes::len),
                    inventories
                        .gzip_bodies
                        .iter()
                        .map(Bytes::len)
                        .sum::<usize>()
                        >> 20
                )
            } else {
                String::new()
            },
            start.elapsed().as_secs_f64()
        );
        Some(Arc::new(inventories))
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
        let (mut hashed_at_send, mut compressed_at_send, mut last_round) = (0, 0, 0);
        for t in tasks {
            let m = t.await??;
            latencies.extend(m.latencies_us);
            errors += m.errors;
            hashed_at_send += m.hashed_at_send;
            compressed_at_send += m.compressed_at_send;
            last_round = last_round.max(m.last_round);
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
        if let Some(inventories) = &inventories {
            let (own_rss, own_peak) = rss_kib(std::process::id());
            println!(
                "changed inventories: last round sent {last_round} (pre-computed: {}); \
                 made at send time, warm-up included: {hashed_at_send} inventory hashes{}; \
                 load generator RSS {} MiB (peak {} MiB)",
                inventories.rounds,
                if inventories.gzip {
                    format!(
                        ", {compressed_at_send} gzip bodies (reports appended, or past the {} pre-compressed rounds)",
                        inventories.gzip_rounds
                    )
                } else {
                    String::new()
                },
                own_rss / 1024,
                own_peak / 1024
            );
        }
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

    /// The package list of a document.
    fn list(text: &str) -> Vec<serde_json::Value> {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        value["software"]["value"]["packages"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// How many packages two lists of the same names differ in.
    fn changed(a: &[serde_json::Value], b: &[serde_json::Value]) -> usize {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).filter(|(a, b)| a != b).count()
    }

    #[test]
    fn changed_inventories_are_canonical_and_differ_by_machine_and_round() {
        // 70 packages: 3 groups of 20 (indices 0–59), 60–68 never
        // upgraded, 69 names the image.
        let fixture = Fixture::new(70).unwrap();
        assert_eq!(fixture.rounds.groups, 3);
        let doc =
            |machine, round| changed_inventory_text(&fixture, machine, machine, round).unwrap();
        for round in [1, 5] {
            let value: serde_json::Value = serde_json::from_str(&doc(7, round)).unwrap();
            assert_eq!(
                nird_proto::hash::canonical_json(&value).unwrap(),
                doc(7, round).as_bytes()
            );
        }
        let value: serde_json::Value = serde_json::from_str(&doc(7, 1)).unwrap();
        let packages = list(&doc(7, 1));
        assert_eq!(packages.len(), 70);
        // Real packages of the school desktop, sorted as the agent sends
        // them; the last one names the image; round 1 upgraded group 0.
        assert!(
            packages
                .windows(2)
                .all(|w| w[0]["name"].as_str() < w[1]["name"].as_str())
        );
        let version = |p: &serde_json::Value| p["version"].as_str().unwrap().to_owned();
        assert!(version(&packages[69]).ends_with("+image7"));
        for (i, p) in packages.iter().enumerate() {
            assert_eq!(version(p).ends_with("+nird1"), i < 60 && i % 3 == 0, "{i}");
        }
        assert!(
            packages
                .iter()
                .all(|p| p["section"].is_string() && p["size_kib"].is_u64())
        );
        // A real machine's hardware, named after the simulated one.
        assert_eq!(value["identity"]["hostname"]["value"], "pc-000007");
        assert_eq!(value["identity"]["serial"]["value"], "PB000007");
        assert_eq!(
            value["identity"]["product_family"]["value"],
            "ThinkPad T430"
        );
        assert!(value["storage"].is_object() && value["monitors"].is_object());

        // Rounds move forward: each is a 20-package upgrade of the one
        // before, drifting from round 0 until every group is upgraded,
        // and a machine never sends the same list twice.
        let rounds: Vec<_> = (0..=8).map(|r| list(&doc(7, r))).collect();
        for r in 1..rounds.len() {
            assert_eq!(changed(&rounds[r - 1], &rounds[r]), 20, "round {r}");
            assert_eq!(changed(&rounds[0], &rounds[r]), 20 * r.min(3), "round {r}");
            let group = (r - 1) % 3;
            for (i, p) in rounds[r].iter().enumerate() {
                let upgraded = i < 60 && i % 3 == group;
                assert_eq!(version(p).ends_with(&format!("+nird{r}")), upgraded);
                // A round's marker replaces the earlier one.
                assert!(version(p).matches("+nird").count() <= 1);
            }
            assert!(version(&rounds[r][69]).ends_with("+image7"));
            for earlier in &rounds[..r] {
                assert_ne!(earlier, &rounds[r]);
            }
        }
        // The fixture's versions at round 0, but for the image.
        let fixture_versions = package_list(70).unwrap();
        for (p, f) in rounds[0][..69].iter().zip(&fixture_versions) {
            assert_eq!(version(p), f.version);
        }
        // Machines never share a list.
        assert_ne!(list(&doc(7, 1)), list(&doc(8, 1)));
        // Machines of one image share their lists round by round, not
        // their documents.
        let shared = |machine, image, round| {
            changed_inventory_text(&fixture, machine, image, round).unwrap()
        };
        for round in [1, 4] {
            assert_eq!(list(&shared(7, 3, round)), list(&shared(8, 3, round)));
            assert_ne!(shared(7, 3, round), shared(8, 3, round));
            assert_eq!(
                changed(&list(&shared(7, 3, round)), &list(&shared(8, 4, round))),
                1
            );
        }
        // Past the fixture's 2,172 packages, copies with unique names.
        let long = package_list(5000).unwrap();
        let keys: std::collections::BTreeSet<_> = long.iter().map(|p| (&p.name, &p.arch)).collect();
        assert_eq!(keys.len(), 5000);
        assert!(long.iter().any(|p| p.name == r#""gcompris-qt-2""#));
        // Too short a list for a round and an image is refused.
        assert!(Fixture::new(20).is_err());
    }

    #[test]
    fn documents_written_from_pieces_are_the_reference_text() {
        for packages in [70, 2500] {
            let fixture = Fixture::new(packages).unwrap();
            let template = InventoryTemplate::new(&fixture).unwrap();
            let groups = fixture.rounds.groups as u64;
            let mut markers = Markers::default();
            for (machine, image) in [(0, 0), (7, 7), (8, 3), (123_456, 4_115)] {
                for round in [0, 1, 2, groups, groups + 1, 2 * groups + 5] {
                    let mut text = Vec::new();
                    template.write(&mut text, machine, image, round, &mut markers);
                    assert_eq!(
                        String::from_utf8(text).unwrap(),
                        changed_inventory_text(&fixture, machine, image, round).unwrap(),
                        "{packages} packages, machine {machine}, round {round}"
                    );
                }
            }
        }
    }

    #[test]
    fn check_in_bodies_carry_each_round_and_its_hash() {
        let fixture = Fixture::new(70).unwrap();
        let gunzip = |body: &[u8]| {
            use std::io::Read as _;
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut text)
                .unwrap();
            text
        };
        // 5 machines, 2 per image; hashes of rounds 1–4 pre-computed.
        for budget in [usize::MAX, 0] {
            let inventories = ChangedInventories::precompute(70, 5, 2, 4, Some(budget)).unwrap();
            assert_eq!(inventories.hashes.len(), 20);
            let gzip_rounds = if budget == 0 { 0 } else { 4 };
            assert_eq!(inventories.gzip_rounds, gzip_rounds);
            assert_eq!(inventories.gzip_bodies.len(), 5 * gzip_rounds as usize);
            let mut markers = Markers::default();
            for machine in 0..5 {
                for round in 1..=6 {
                    let mut body = Vec::new();
                    let computed =
                        inventories.write_open_body(&mut body, machine, round, &mut markers);
                    assert_eq!(computed, round > 4);
                    body.push(b'}');
                    let inventory =
                        changed_inventory_text(&fixture, machine, machine / 2, round).unwrap();
                    let hash = nird_proto::hash::sha256_hex(inventory.as_bytes());
                    assert_eq!(
                        String::from_utf8(body.clone()).unwrap(),
                        format!(r#"{BODY_HEAD}{inventory},"inventory_hash":"{hash}"}}"#)
                    );
                    // The check-in request the server reads.
                    let request: CheckinRequest = serde_json::from_slice(&body).unwrap();
                    assert_eq!(
                        request.inventory_hash,
                        nird_proto::hash::content_hash(request.inventory.as_ref().unwrap())
                            .unwrap()
                    );
                    assert_eq!(request.inventory_hash, hash);
                    match inventories.gzip_body(machine, round) {
                        Some(gzip) => assert_eq!(gunzip(gzip), body),
                        None => assert!(round > gzip_rounds),
                    }
                }
            }
        }
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
