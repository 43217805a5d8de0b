//! Benchmark: a no-change `plan` of the catalogue's PrimTux profile (with
//! its include, nird-base) on a machine already in the desired state.
//!
//! The machine is a temporary root with a 2,500-package dpkg database
//! (≈ 4 MB, the size of a PrimTux install), the accounts and files the
//! profiles declare, and systemd served on a private `dbus-daemon` by the
//! tests' recording systemd. The profiles are signed here with a generated
//! key. Prints min / median / max of the library call and of the whole
//! `nird-agent plan` command.
//!
//! Run: `cargo bench -p nird-agent --bench plan`

#[path = "../tests/apply_support/mod.rs"]
mod apply_support;

use std::path::Path;
use std::time::{Duration, Instant};

use apply_support::dbus::{FakeUnit, PrivateBus, Systemd};
use apply_support::*;
use nird_agent::apply::{ApplyOptions, Bus, plan_assigned};
use nird_proto::api::{ApplyOutcome, ProfileRef};

const RUNS: usize = 30;

fn catalogue() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../profiles"))
}

/// A dpkg status database of `count` packages, including `installed`.
fn dpkg_status(installed: &[String], count: usize) -> String {
    let description = "Paquet de démonstration pour le banc d'essai du plan.\n".to_owned()
        + &" Une longue description sur plusieurs lignes, comme celles de Debian.\n".repeat(12);
    let mut names: Vec<String> = installed.to_vec();
    names.extend((0..count.saturating_sub(installed.len())).map(|i| format!("lib-bench-{i}")));
    let mut out = String::new();
    for name in names {
        out.push_str(&format!(
            "Package: {name}\nStatus: install ok installed\nPriority: optional\nSection: misc\n\
             Installed-Size: 1234\nMaintainer: Debian <debian@example.org>\nArchitecture: amd64\n\
             Version: 1.0-1\nDepends: libc6 (>= 2.36)\nDescription: {description}\n"
        ));
    }
    out
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let Some(bus) = PrivateBus::start() else {
        eprintln!("plan bench needs dbus-daemon");
        return;
    };
    // Kept alive for the whole run: it serves the unit's state.
    let _systemd = Systemd::serve(
        &bus,
        &[(
            "apt-daily-upgrade.timer",
            FakeUnit::new("disabled", "inactive"),
        )],
    );
    let signer = Signer::new();
    let releases = Releases::new();
    for name in ["primtux", "nird-base"] {
        let text = std::fs::read_to_string(catalogue().join(format!("{name}.toml"))).unwrap();
        releases.publish(&signer, name, &text);
        let profile = nird_proto::profile::parse(name, text.as_bytes()).unwrap();
        for blob in profile.blobs() {
            let source = blob.source.as_deref().unwrap();
            releases.blob(&std::fs::read(catalogue().join(source)).unwrap());
        }
    }
    let root = test_root(&signer);
    let r = root.path();
    // The groups a Debian desktop has and the profiles rely on.
    let mut group = std::fs::read_to_string(r.join("etc/group")).unwrap();
    group.push_str("sudo:x:27:\n");
    std::fs::write(r.join("etc/group"), group).unwrap();
    let mut packages = Vec::new();
    for name in ["primtux", "nird-base"] {
        let text = std::fs::read(catalogue().join(format!("{name}.toml"))).unwrap();
        packages.extend(
            nird_proto::profile::parse(name, &text)
                .unwrap()
                .packages_install,
        );
    }
    std::fs::create_dir_all(r.join("var/lib/dpkg")).unwrap();
    let status = dpkg_status(&packages, 2500);
    std::fs::write(r.join("var/lib/dpkg/status"), &status).unwrap();

    let mut opts: ApplyOptions = options(r);
    opts.bus = Bus::Address(bus.address.clone());
    opts.ignore_lesson_guard = true;
    let assigned = [
        ProfileRef {
            name: "primtux".into(),
            version: 1,
        },
        ProfileRef {
            name: "nird-base".into(),
            version: 1,
        },
    ];
    // Bring the machine to the desired state once.
    let reports = apply(&opts, &releases, &["primtux", "nird-base"]);
    for rep in &reports {
        assert_eq!(rep.outcome, ApplyOutcome::Applied, "{rep:?}");
    }
    let outcome = plan_assigned(&opts, &assigned, &releases.source()).unwrap();
    assert_eq!(
        outcome.plan.changes().count(),
        0,
        "the machine must be converged"
    );
    let resources = outcome.plan.resources.len();

    let mut library = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let outcome = plan_assigned(&opts, &assigned, &releases.source()).unwrap();
        library.push(t.elapsed());
        assert_eq!(outcome.plan.changes().count(), 0);
    }
    let bin = env!("CARGO_BIN_EXE_nird-agent");
    let mut command = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = std::process::Command::new(bin)
            .arg("--root")
            .arg(r)
            .args(["plan", "--bus", &bus.address, "--from"])
            .arg(releases.dir.path())
            .output()
            .unwrap();
        command.push(t.elapsed());
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Rien à changer."));
    }

    println!(
        "no-change plan of primtux + nird-base: {resources} resources, dpkg status {} packages ({:.1} MB), {RUNS} runs",
        2500,
        status.len() as f64 / 1e6
    );
    let (min, med, max) = median(library);
    println!(
        "  plan_assigned (verify 2 releases + blob, resolve, plan): min {} / median {} / max {}",
        ms(min),
        ms(med),
        ms(max)
    );
    let (min, med, max) = median(command);
    println!(
        "  `nird-agent plan` process, end to end:                  min {} / median {} / max {}",
        ms(min),
        ms(med),
        ms(max)
    );
}
