//! The shipped catalogue (`profiles/*.toml`): every profile lints (schema,
//! includes, pinned file digests), and every package it names exists in
//! Debian 12 according to `apt-cache`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use nird_proto::profile::{self, Profile};

fn catalogue_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../profiles")
}

fn catalogue() -> Vec<(PathBuf, Profile)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(catalogue_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let bytes = std::fs::read(&path).unwrap();
            let p = profile::parse(&path.display().to_string(), &bytes)
                .unwrap_or_else(|e| panic!("{e}"));
            out.push((path, p));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_catalogue_profile_lints() {
    let files: Vec<PathBuf> = catalogue().into_iter().map(|(p, _)| p).collect();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["linux-nird.toml", "nird-base.toml", "primtux.toml"] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} missing from profiles/"
        );
    }
    for report in nird_server::signing::lint(&files) {
        assert!(
            report.result.is_ok(),
            "{}: {:?}",
            report.file.display(),
            report.result
        );
    }
}

#[test]
fn catalogue_profiles_are_named_after_their_file() {
    for (path, p) in catalogue() {
        assert_eq!(
            path.file_stem().unwrap().to_string_lossy(),
            p.name,
            "{}",
            path.display()
        );
    }
}

#[test]
fn primtux_has_its_four_accounts() {
    let cat = catalogue();
    let primtux = &cat.iter().find(|(_, p)| p.name == "primtux").unwrap().1;
    let users: Vec<&str> = primtux.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(users, ["01-mini", "02-super", "03-maxi", "administrateur"]);
}

/// Asks apt-cache which of `names` have an installation candidate. `None`
/// when apt has no package lists (a machine that never ran `apt-get update`).
fn apt_candidates(names: &BTreeSet<String>) -> Option<BTreeSet<String>> {
    let out = Command::new("apt-cache")
        .arg("policy")
        .args(names)
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            current = Some(line.trim_end_matches(':').to_owned());
        } else if let Some(name) = &current
            && let Some(candidate) = line.trim().strip_prefix("Candidate:")
            && candidate.trim() != "(none)"
        {
            found.insert(name.clone());
        }
    }
    // A package every Debian system knows: if even it has no candidate, apt
    // has no lists here and the check cannot say anything.
    let probe = Command::new("apt-cache")
        .args(["policy", "base-files"])
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    let has_lists = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .any(|l| l.trim().starts_with("Candidate:") && !l.contains("(none)"));
    has_lists.then_some(found)
}

#[test]
fn every_package_exists_in_debian_12() {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    if !release.contains("VERSION_CODENAME=bookworm") {
        eprintln!(
            "SKIPPED every_package_exists_in_debian_12: this machine is not Debian 12, apt-cache would answer for another release"
        );
        return;
    }
    let mut names = BTreeSet::new();
    for (_, p) in catalogue() {
        names.extend(p.packages_install.iter().cloned());
        names.extend(p.packages_remove.iter().cloned());
    }
    let Some(found) = apt_candidates(&names) else {
        eprintln!(
            "SKIPPED every_package_exists_in_debian_12: apt has no package lists here (run `apt-get update`)"
        );
        return;
    };
    let missing: Vec<&String> = names.difference(&found).collect();
    assert!(
        missing.is_empty(),
        "packages unknown to Debian 12: {missing:?}"
    );
}
