//! Dashboard latency on a large fleet: `cargo bench -p nird-server --bench
//! dashboard`.
//!
//! Builds a real data directory (`init`), fills its database with 2,000
//! schools and 100,000 machines (one school holding 500, with inventories
//! in the real document's shape, reports and check-ins), serves it on
//! 127.0.0.1:0 over TLS in-process, logs in as the admin and times, from a
//! client on loopback: the school page of the 500-machine school, a machine
//! page, and the admin's Accueil over the whole fleet. Prints the median and
//! the 95th percentile of each, and the school page's size raw and
//! gzip-compressed (as the server sends it to browsers). Every school is
//! assigned two profiles, one machine in a hundred has an exception.

mod common;
use std::io::Write as _;
use std::time::{Duration, Instant};

use nird_proto::uai::Uai;

const SCHOOLS: usize = 2_000;
const MACHINES: usize = 100_000;
const BIG: usize = 500;
const RUNS: usize = 30;

fn uai(n: usize) -> String {
    let digits = format!("{:07}", 620_000 + n);
    for c in "ABCDEFGHJKLMNPRSTUVWXYZ".chars() {
        let s = format!("{digits}{c}");
        if Uai::parse(&s).is_ok() {
            return s;
        }
    }
    unreachable!("every 7-digit number has a check letter")
}

fn inventory(i: usize) -> String {
    serde_json::json!({
        "schema_version": 1,
        "agent_version": if i.is_multiple_of(10) { "0.1.0" } else { "0.2.0" },
        "identity": {"hostname": {"value": format!("pc-{i:06}")}, "serial": {"value": format!("SN{i:08}")},
                     "vendor": {"value": "Dell Inc."}, "product": {"value": "OptiPlex 7010"}},
        "cpu": {"model_name": {"value": "Intel(R) Core(TM) i5-3470 CPU @ 3.20GHz"}, "cores": {"value": 4}, "threads": {"value": 4}},
        "memory": {"total_bytes": {"value": 8_589_934_592u64}, "modules": {"value": [
            {"locator": "DIMM1", "size_bytes": 4_294_967_296u64, "kind": "DDR3", "speed_mts": 1600},
            {"locator": "DIMM2", "size_bytes": 4_294_967_296u64, "kind": "DDR3", "speed_mts": 1600}]}},
        "storage": {"disks": {"value": [{"name": "sda", "model": {"value": "ST500DM002"}, "size_bytes": 500_107_862_016u64,
            "smart": {"value": {"health": if i.is_multiple_of(50) { "failing" } else { "passed" }, "power_on_hours": 20000 + i}}}]},
            "filesystems": {"value": [{"mount_point": "/", "device": "/dev/sda1", "fs_type": "ext4",
                "usage": {"value": {"size_bytes": 490_000_000_000u64, "used_percent": (i % 20) * 5}}}]}},
        "batteries": {"value": []},
        "os": {"pretty_name": {"value": "Debian GNU/Linux 12 (bookworm)"}, "kernel": {"value": "6.1.0-18-amd64"}},
        "windows11": {"status": "ineligible", "blockers": ["tpm2", "supported_cpu"], "unknown": []},
    })
    .to_string()
}

fn populate(db: &std::path::Path) -> anyhow::Result<(String, String)> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let academies = [
        "Lille", "Amiens", "Paris", "Lyon", "Nantes", "Rennes", "Bordeaux", "Toulouse",
    ];
    for s in 0..SCHOOLS {
        tx.execute(
            "INSERT INTO schools (uai, name, commune, departement, academie, kind, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'ecole', ?6)",
            rusqlite::params![
                uai(s),
                format!("École {s}"),
                format!("Commune {}", s / 4),
                format!("{:03}", s % 95),
                academies[s % academies.len()],
                now
            ],
        )?;
    }
    // Every school is assigned two profiles, as a deployment is: the
    // compliance columns then depend on the assignment (`HAS_ASSIGNED`).
    tx.execute_batch(
        "INSERT INTO school_assignments (school_id, profile_name)
             SELECT id, 'nird-base' FROM schools UNION ALL SELECT id, 'primtux' FROM schools;
         INSERT INTO profile_releases (name, version, bytes, sha256, minisig, published_by,
                                       published_at)
             VALUES ('nird-base', 1, x'00', 'h1', 's', 'bench', 0),
                    ('primtux', 1, x'00', 'h2', 's', 'bench', 0);",
    )?;
    let big_school = 1i64; // rowid of school 0
    let per_other = (MACHINES - BIG) / (SCHOOLS - 1);
    let mut first_big = String::new();
    for i in 0..MACHINES {
        let school = if i < BIG {
            big_school
        } else {
            2 + ((i - BIG) / per_other).min(SCHOOLS - 2) as i64
        };
        let id = format!("{:032x}", i + 1);
        if i == 0 {
            first_big = id.clone();
        }
        let status = if i.is_multiple_of(40) {
            "pending"
        } else {
            "active"
        };
        let last_seen = now - (i as i64 % 45) * 86_400 / 3;
        tx.execute(
            "INSERT INTO machines (id, school_id, hostname, secret_hash, status, enrolled_at,
                                   last_seen, checkins, inventory_hash, serial, model, win11,
                                   agent_version, alerts, last_outcome)
             VALUES (?1, ?2, ?3, 'x', ?4, ?5, ?6, 100, 'h', ?7, 'Dell Inc. OptiPlex 7010',
                     'ineligible', ?8, ?9, ?10)",
            rusqlite::params![
                id,
                school,
                format!("pc-{i:06}"),
                status,
                now - 86_400 * 90,
                last_seen,
                format!("SN{i:08}"),
                if i.is_multiple_of(10) {
                    "0.1.0"
                } else {
                    "0.2.0"
                },
                if i.is_multiple_of(50) { 1 } else { 0 },
                if i.is_multiple_of(7) {
                    "failed"
                } else {
                    "applied"
                }
            ],
        )?;
        if i.is_multiple_of(100) {
            // One machine in a hundred has its own exception.
            tx.execute(
                "INSERT INTO machine_overrides (machine_id, profile_name, include)
                 VALUES (?1, 'primtux', 0)",
                [&id],
            )?;
        }
        if i < BIG {
            // Inventory history (3 versions) and reports for the big school:
            // the machine page reads them; the triggers compute the columns.
            for v in 0..3 {
                tx.execute(
                    "INSERT INTO inventory_history (machine_id, recorded_at, inventory_hash, inventory)
                     VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![id, now - 86_400 * (3 - v), format!("h{v}"), inventory(i + v as usize)],
                )?;
            }
            for seq in 1..=20i64 {
                let report = serde_json::json!({"seq": seq, "profile": "nird-base", "version": seq,
                    "outcome": "applied", "resources": [{"id": "package:vlc", "status": "changed"}],
                    "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:01:00Z"});
                tx.execute(
                    "INSERT INTO apply_reports (machine_id, seq, profile, version, outcome, report, received_at)
                     VALUES (?1, ?2, 'nird-base', ?2, 'applied', ?3, ?4)",
                    rusqlite::params![id, seq, report.to_string(), now],
                )?;
            }
        }
    }
    tx.commit()?;
    conn.execute_batch("ANALYZE")?;
    Ok((uai(0), first_big))
}

fn stats(name: &str, mut samples: Vec<Duration>, out: &mut String) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[samples.len() / 2]);
    let p95 = ms(samples[(samples.len() * 95 / 100).min(samples.len() - 1)]);
    let line = format!(
        "{name}: median {median:.1} ms, p95 {p95:.1} ms ({} runs)\n",
        samples.len()
    );
    print!("{line}");
    out.push_str(&line);
}

fn main() -> anyhow::Result<()> {
    let common::Fresh {
        tmp: _tmp,
        dir,
        admin_password,
        rt,
    } = common::fresh()?;
    let t = Instant::now();
    let (big_uai, machine_id) = populate(&dir.database())?;
    println!(
        "populated {SCHOOLS} schools, {MACHINES} machines in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let dashboard = common::serve_logged_in(&rt, &dir, &admin_password)?;
    let get = |path: &str| dashboard.get(path);
    let mut report = String::new();
    for (name, path) in [
        (
            format!("school page, {BIG} machines (50 shown)"),
            format!("/etablissements/{big_uai}"),
        ),
        (
            "school page sorted by last check-in, filtered on alerts".to_owned(),
            format!("/etablissements/{big_uai}?alerte=smart&tri=vu&ordre=desc"),
        ),
        (
            "school page filtered on a profile state".to_owned(),
            format!("/etablissements/{big_uai}?profil=failed"),
        ),
        (
            "machine page (3 inventory versions, 20 reports)".to_owned(),
            format!("/machines/{machine_id}"),
        ),
        (
            format!("admin Accueil, {MACHINES} machines in {SCHOOLS} schools"),
            "/".to_owned(),
        ),
    ] {
        get(&path)?; // warm-up
        let samples = (0..RUNS)
            .map(|_| get(&path).map(|(d, _)| d))
            .collect::<anyhow::Result<Vec<_>>>()?;
        stats(&name, samples, &mut report);
    }
    let (_, body) = get(&format!("/etablissements/{big_uai}"))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes())?;
    let compressed = gz.finish()?.len();
    let line = format!(
        "school page weight: {} KB raw, {} KB gzip\n",
        body.len() / 1024,
        compressed / 1024
    );
    print!("{line}");
    report.push_str(&line);
    // The whole fleet's CSV (every row reads its profile state, with the
    // per-machine assignment test in SQL).
    dashboard.stream("/machines.csv")?; // warm-up
    let runs = (0..5)
        .map(|_| dashboard.stream("/machines.csv"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rows = runs[0].2.saturating_sub(1);
    stats(
        &format!("admin CSV export, {rows} machines"),
        runs.into_iter().map(|(d, _, _)| d).collect(),
        &mut report,
    );
    dashboard.stop(&rt)
}
