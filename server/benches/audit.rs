//! The collectivités' audit on a large fleet: `cargo bench -p nird-server
//! --bench audit --profile bench-fast`.
//!
//! Builds a real data directory (`init`), fills its database with 2,000
//! schools and 100,000 machines with their audit facts (varied classes,
//! Windows 11 blockers, ages, memory, disks), serves it on 127.0.0.1:0
//! over TLS in-process, logs in as the admin and times, from a client on
//! loopback: the audit page over the whole fleet, the printable report, a
//! machine passport and the per-machine CSV export of all 100,000 machines
//! (rows per second, and the growth of this process's RSS — the server's,
//! the client discards what it reads — sampled every 5 ms during the
//! export). Prints the median and 95th percentile of each page.

mod common;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nird_proto::uai::Uai;

const SCHOOLS: usize = 2_000;
const MACHINES: usize = 100_000;
const RUNS: usize = 20;
const GIB: i64 = 1024 * 1024 * 1024;

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

fn populate(db: &std::path::Path) -> anyhow::Result<String> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let academies = [
        "Lille", "Amiens", "Paris", "Lyon", "Nantes", "Rennes", "Bordeaux", "Toulouse",
    ];
    let kinds = ["ecole", "college", "lycee"];
    for s in 0..SCHOOLS {
        tx.execute(
            "INSERT INTO schools (uai, name, commune, departement, academie, kind, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                uai(s),
                format!("École {s}"),
                format!("Commune {}", s / 4),
                format!("{:03}", s % 95),
                academies[s % academies.len()],
                kinds[s % 3],
                now
            ],
        )?;
    }
    let version = nird_server::audit::facts_version();
    let per_school = MACHINES / SCHOOLS;
    let mut first = String::new();
    let gens = [
        ("Core 2", 2008, 2009),
        ("Sandy Bridge", 2011, 2011),
        ("Ivy Bridge", 2012, 2013),
        ("Haswell", 2013, 2014),
        ("Skylake", 2015, 2016),
        ("Kaby Lake R", 2017, 2018),
    ];
    for i in 0..MACHINES {
        let school = 1 + (i / per_school).min(SCHOOLS - 1) as i64;
        let id = format!("{:032x}", i + 1);
        if i == 0 {
            first = id.clone();
        }
        let status = match i % 50 {
            0 => "retired",
            1 => "pending",
            _ => "active",
        };
        tx.execute(
            "INSERT INTO machines (id, school_id, hostname, secret_hash, status, enrolled_at,
                                   last_seen, checkins, inventory_hash, serial, model, win11)
             VALUES (?1, ?2, ?3, 'x', ?4, ?5, ?6, 100, 'h', ?7, 'Dell Inc. OptiPlex 7010', 'ineligible')",
            rusqlite::params![
                id,
                school,
                format!("pc-{i:06}"),
                status,
                now - 86_400 * (30 + (i as i64 % 700)),
                now - (i as i64 % 45) * 86_400,
                format!("SN{i:08}"),
            ],
        )?;
        let (gen_name, cpu_year, build_year) = gens[i % gens.len()];
        let ram = [2 * GIB, 4 * GIB, 8 * GIB, 16 * GIB][i % 4];
        tx.execute(
            "INSERT INTO audit_facts (machine_id, computed_by, computed_at, readable, class, chassis,
                 vendor, model, serial, cpu_model, cpu_generation, cpu_year, bios_year, build_year,
                 age_basis, ram_bytes, ram_modules, ram_slots, ram_free_slots, ram_replaceable,
                 disk_kind, disk_bytes, smart, battery_wear, has_battery, uefi, secure_boot, tpm,
                 win11, blocker_tpm, blocker_cpu, blocker_ram, blocker_disk, blocker_uefi,
                 blocker_secure_boot, os_name, os_version, windows_oem_licence, profiles, cpu_basis,
                 screens)
             VALUES (?1, ?2, ?3, 1, ?4, ?5, 'Dell Inc.', 'OptiPlex 7010', ?6,
                 'Intel(R) Core(TM) i5-3470 CPU @ 3.20GHz', ?7, ?8, ?9, ?9, 'bios+cpu', ?10, 2, 2,
                 ?11, 1, ?12, ?13, ?14, ?15, ?16, 1, ?17, ?18, ?19, ?20, ?21, ?22, ?23, 0, ?24,
                 'Linux Mint 22 Xfce', '22', ?25, 'linux-nird v4, nird-base v7', ?26, ?27)",
            rusqlite::params![
                id,
                version,
                now,
                if i % 2 == 0 { "laptop" } else { "desktop" },
                if i % 2 == 0 { "laptop" } else { "desktop" },
                format!("SN{i:08}"),
                gen_name,
                cpu_year,
                build_year,
                ram,
                (i % 3 == 0) as i64,
                ["hdd", "ssd", "nvme"][i % 3],
                [120_000_000_000i64, 250_000_000_000, 500_000_000_000][i % 3],
                if i % 40 == 0 { "failing" } else { "passed" },
                if i % 2 == 0 { Some((i % 90) as i64) } else { None },
                (i % 2 == 0) as i64,
                if i % 4 == 0 { "enabled" } else { "unsupported" },
                if i % 5 == 0 { "2.0" } else { "none" },
                if cpu_year >= 2017 && i % 5 == 0 && i % 4 == 0 && ram >= 4 * GIB { "eligible" } else { "ineligible" },
                (i % 5 != 0) as i64,
                (cpu_year < 2017) as i64,
                (ram < 4 * GIB) as i64,
                (i % 17 == 0) as i64,
                (i % 4 != 0) as i64,
                (i % 3 == 1) as i64,
                if cpu_year >= 2017 { "list" } else { "estimate" },
                (i % 3) as i64,
            ],
        )?;
    }
    tx.commit()?;
    conn.execute_batch("ANALYZE")?;
    Ok(first)
}

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[samples.len() / 2]);
    let p95 = ms(samples[(samples.len() * 95 / 100).min(samples.len() - 1)]);
    println!(
        "{name}: median {median:.1} ms, p95 {p95:.1} ms ({} runs)",
        samples.len()
    );
}

/// CPU time this process (server and client threads) has used, from
/// `/proc/self/stat` (user + system, clock ticks of 10 ms): summed over a
/// page's runs it gives the CPU each page costs, which the other builds
/// sharing the machine do not inflate the way they inflate wall time.
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks * 10.0)
        })
        .unwrap_or(0.0)
}

/// This process's resident set, KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let common::Fresh {
        tmp: _tmp,
        dir,
        admin_password,
        rt,
    } = common::fresh()?;
    let t = Instant::now();
    let machine_id = populate(&dir.database())?;
    println!(
        "populated {SCHOOLS} schools, {MACHINES} machines with audit facts in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let dashboard = common::serve_logged_in(&rt, &dir, &admin_password)?;
    let get = |path: &str| dashboard.stream(path);
    let year = time::OffsetDateTime::now_utc().year();
    for (name, path) in [
        (
            format!("audit page, {MACHINES} machines in {SCHOOLS} schools"),
            format!("/audit?du={year}-01-01&au={year}-12-31"),
        ),
        (
            "audit page, one académie (250 schools)".to_owned(),
            "/audit?noeud=academie:Lille".to_owned(),
        ),
        (
            "printable report, whole fleet".to_owned(),
            "/audit/rapport".to_owned(),
        ),
        (
            "machine passport".to_owned(),
            format!("/machines/{machine_id}/fiche"),
        ),
        (
            "API figures (JSON), whole fleet".to_owned(),
            "/audit/chiffres.json".to_owned(),
        ),
    ] {
        let (_, bytes, _) = get(&path)?; // warm-up
        let cpu = cpu_ms();
        let samples = (0..RUNS)
            .map(|_| get(&path).map(|(d, _, _)| d))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let cpu = (cpu_ms() - cpu) / RUNS as f64;
        stats(&name, samples);
        println!("    CPU (server and client) {cpu:.0} ms per page, {bytes} bytes");
    }

    // The per-machine CSV of the whole fleet, with the RSS sampled.
    get("/audit/machines.csv?noeud=academie:Lille")?; // warm-up (code paths, pools)
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let before = rss_kib();
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let (elapsed, bytes, lines) = get("/audit/machines.csv")?;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let rows = lines.saturating_sub(1);
    println!(
        "CSV export: {rows} rows, {} MB in {:.2} s = {:.0} rows/s; RSS {} MB before, peak growth {:.1} MB",
        bytes / 1_000_000,
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        before / 1024,
        peak.load(Ordering::Relaxed).saturating_sub(before) as f64 / 1024.0
    );
    dashboard.stop(&rt)
}
