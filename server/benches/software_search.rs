//! What the dashboard's software pages cost: `cargo bench -p nird-server
//! --bench software_search --profile bench-fast`.
//!
//! A school of 300 machines enrolled through the store (its real storing
//! path: package lists content-addressed, shared, stored as deltas), each
//! with 2,500 packages (≈ 245 KB of list, the size of a real school
//! desktop's) from 10 installation images, each machine a few upgrades
//! away from its image. Served on 127.0.0.1:0 over TLS in-process; times,
//! from a client on loopback, the school's search for a package
//! (`/etablissements/{uai}/logiciels?q=…`: every machine's latest list
//! read) and one machine's whole list (`/machines/{id}/logiciels`). In
//! that school every machine's list differs (the search's worst case); a
//! second school has the same 300 machines upgraded with their image, as
//! unattended upgrades do, so they share 10 lists.

mod common;
use std::time::{Duration, Instant};

use nird_proto::hash::{CanonicalObject, canonical_json};
use nird_server::store::NewMachine;

const MACHINES: usize = 300;
const PACKAGES: usize = 2_500;
const IMAGES: usize = 10;
const RUNS: usize = 20;
const UAI: &str = "0620056Z";
/// The school whose machines share their image's list.
const SHARED_UAI: &str = "0620057A";

/// Package `p` of image `image`, upgraded `bumps` times on this machine
/// when it is one of the machine's upgraded packages.
fn package(p: usize, image: usize, bumps: usize) -> serde_json::Value {
    let name = match p {
        0 => "gcompris-qt".to_owned(),
        1 => "libreoffice-writer".to_owned(),
        _ => format!(
            "lib{}-{}-common{}",
            ["gtk", "qt5", "kde", "x11", "py"][p % 5],
            p,
            p % 7
        ),
    };
    let section = ["libs", "games", "education", "utils", "x11"][p % 5];
    serde_json::json!({
        "name": name,
        "version": format!("{}.{}.{}-{}+deb12u{}", p % 9, image, p % 31, 1 + p % 3, bumps),
        "arch": if p.is_multiple_of(11) { "all" } else { "amd64" },
        "section": section,
        "size_kib": 100 + (p * 37) % 9_000,
    })
}

/// Machine `i`'s inventory; `shared`: its packages upgraded with its
/// image's, else three of its own upgraded since its image.
fn inventory(i: usize, shared: bool) -> (CanonicalObject, String) {
    let image = i % IMAGES;
    let packages: Vec<_> = (0..PACKAGES)
        .map(|p| match shared {
            true => package(p, image, usize::from(p % 97 == image)),
            false => package(p, image, usize::from(p % 97 == i % 97) * (1 + i % 3)),
        })
        .collect();
    let doc = serde_json::json!({
        "schema_version": 2,
        "agent_version": "0.2.0",
        "identity": {"hostname": {"value": format!("pc-{i:03}")}, "serial": {"value": format!("SN{i:06}")}},
        "windows11": {"status": "ineligible", "blockers": ["tpm2"], "unknown": []},
        "software": {"value": {"packages": packages}},
    });
    let text = String::from_utf8(canonical_json(&doc).expect("JSON")).expect("UTF-8");
    let object = CanonicalObject::from_text(text).expect("an object");
    let hash = object.sha256_hex();
    (object, hash)
}

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: median {:.1} ms, p95 {:.1} ms ({} runs)",
        ms(samples[samples.len() / 2]),
        ms(samples[(samples.len() * 95 / 100).min(samples.len() - 1)]),
        samples.len()
    );
}

fn main() -> anyhow::Result<()> {
    let common::Fresh {
        tmp: _tmp,
        dir,
        admin_password,
        rt,
    } = common::fresh()?;
    let t = Instant::now();
    let first = rt.block_on(async {
        let store = nird_server::store::open(&dir.database(), None).await?;
        let mut first = String::new();
        for (n, uai, shared) in [(0, UAI, false), (1, SHARED_UAI, true)] {
            let school = nird_server::admin::school_from_args(
                uai,
                &format!("École {uai}"),
                "Calais",
                None,
                "Lille",
                "ecole",
                false,
            )?;
            nird_server::admin::school_add(store.as_ref(), "bench", school).await?;
            let token = nird_server::admin::token_create(
                store.as_ref(),
                "bench",
                uai,
                MACHINES as u32,
                Some("1d"),
            )
            .await?;
            let token_hash = nird_server::secrets::hash_secret(token.trim());
            for i in 0..MACHINES {
                let (inventory, inventory_hash) = inventory(i, shared);
                let id = format!("{:032x}", n * MACHINES + i + 1);
                if i == 0 && n == 0 {
                    first = id.clone();
                }
                store
                    .enroll(NewMachine {
                        token_hash: token_hash.clone(),
                        machine_id: id,
                        secret_hash: format!("s{n}-{i}"),
                        hostname: format!("pc-{i:03}"),
                        inventory,
                        inventory_hash,
                    })
                    .await?;
            }
        }
        store.close().await?;
        anyhow::Ok(first)
    })?;
    println!(
        "enrolled 2 × {MACHINES} machines with {PACKAGES} packages each in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let dashboard = common::serve_logged_in(&rt, &dir, &admin_password)?;
    let get = |path: &str| dashboard.get(path);
    for uai in [UAI, SHARED_UAI] {
        let (_, found) = get(&format!("/etablissements/{uai}/logiciels?q=gcompris"))?;
        anyhow::ensure!(
            found.contains(&format!("gcompris-qt : {MACHINES} installation(s)")),
            "every machine of {uai} has gcompris-qt"
        );
    }
    for (name, path) in [
        (
            format!("school search, {MACHINES} machines × {PACKAGES} packages"),
            format!("/etablissements/{UAI}/logiciels?q=gcompris"),
        ),
        (
            format!("school search, {MACHINES} machines sharing {IMAGES} lists"),
            format!("/etablissements/{SHARED_UAI}/logiciels?q=gcompris"),
        ),
        (
            format!("one machine's list, {PACKAGES} packages"),
            format!("/machines/{first}/logiciels"),
        ),
        (
            "machine page (with its software count)".to_owned(),
            format!("/machines/{first}"),
        ),
    ] {
        let samples = (0..RUNS)
            .map(|_| get(&path).map(|(d, _)| d))
            .collect::<anyhow::Result<Vec<_>>>()?;
        stats(&name, samples);
    }
    dashboard.stop(&rt)
}
