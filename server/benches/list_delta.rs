//! What storing a new package list costs the check-in that brings it:
//! `cargo bench -p nird-server --bench list_delta --profile bench-fast`.
//!
//! The lists are the agent's text of the real Debian 12 school desktop's
//! dpkg database (`agent/tests/fixtures/desktop-debian12-ecole`), taken to
//! 2,500 packages as `nird-loadgen --inventory-packages 2500` does (past
//! the fixture's 2,172, the same packages again, `-2` appended to their
//! names), and the weekly upgrades are loadgen's: upgrade `r` changes the
//! versions of one of 124 interleaved groups of 20 packages.
//!
//! For a list `r` upgrades after its base, it times what the server does
//! while the check-in waits ([`NewList::of`]: reading the stored base
//! back, the delta script, its check and its LZ4 block, or the whole list
//! when the delta does not pay) against LZ4 of the whole list (a list
//! without a base), and the encoder alone ([`list_delta::encode`], no
//! limit); then an install of 40 packages, a removal of 40, and a list
//! unrelated to its base (the encoder gives up). Prints the median and
//! 95th percentile of each over many runs, and the bytes stored.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use nird_server::store::list_delta;
use nird_server::store::sqlite::{NewList, pack_list};

const DPKG_STATUS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../agent/tests/fixtures/desktop-debian12-ecole/var/lib/dpkg/status"
));
const PACKAGES: usize = 2_500;
const UPGRADE: usize = 20;
const RUNS: usize = 400;

/// One package's JSON entry, its version as a function of the upgrade
/// marker it carries.
struct Package {
    head: String,
    version: String,
}

fn packages() -> Vec<Package> {
    // Each installed package: its name, version, and the fields after
    // its name as JSON text.
    let mut installed = Vec::new();
    for stanza in DPKG_STATUS.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        };
        let Some(arch) = field("Architecture") else {
            continue;
        };
        let mut rest = String::new();
        if let Some(section) = field("Section") {
            let _ = write!(rest, r#","section":"{section}""#);
        }
        if let Some(size) = field("Installed-Size") {
            let _ = write!(rest, r#","size_kib":{size}"#);
        }
        if field("Status").is_some_and(|s| s.ends_with(" ok installed"))
            && let (Some(name), Some(version)) = (field("Package"), field("Version"))
        {
            installed.push((name, version, arch, rest));
        }
    }
    assert!(!installed.is_empty(), "no installed package in the fixture");
    let mut list: Vec<_> = (0..PACKAGES)
        .map(|i| {
            let (name, version, arch, rest) = &installed[i % installed.len()];
            let copy = match i / installed.len() {
                0 => String::new(),
                copy => format!("-{}", copy + 1),
            };
            Package {
                head: format!(r#"{{"arch":"{arch}","name":"{name}{copy}"{rest},"version":"#),
                version: (*version).to_owned(),
            }
        })
        .collect();
    // By name, then architecture, as the agent sends them.
    list.sort_by_cached_key(|p| {
        let (arch, name) = p.head.split_once(r#","name":"#).unwrap_or_default();
        (name.to_owned(), arch.to_owned())
    });
    list
}

/// The list's text after `rounds` weekly upgrades (upgrade `r` changes
/// group `r - 1` of `groups` interleaved ones), without the packages
/// `removed` and with `added` new ones after the 1,001st.
fn text(list: &[Package], rounds: usize, removed: std::ops::Range<usize>, added: usize) -> Vec<u8> {
    let groups = (list.len() - 1) / UPGRADE;
    let mut t = String::from(r#"{"value":{"packages":["#);
    let mut first = true;
    let mut entry = |head: &str, version: &str| {
        if !first {
            t.push(',');
        }
        first = false;
        let _ = write!(t, r#"{head}"{version}"}}"#);
    };
    for (i, p) in list.iter().enumerate() {
        if removed.contains(&i) {
            continue;
        }
        let group = i % groups;
        let version = if i < UPGRADE * groups && group < rounds {
            format!("{}+nird{}", p.version, group + 1)
        } else {
            p.version.clone()
        };
        entry(&p.head, &version);
        if i == 1_000 {
            for a in 0..added {
                entry(
                    &format!(
                        r#"{{"arch":"amd64","name":"gcompris-qt-data-{a:02}","section":"games","size_kib":{},"version":"#,
                        1000 + a
                    ),
                    "4.1-1",
                );
            }
        }
    }
    t.push_str("]}}");
    t.into_bytes()
}

/// Median and 95th percentile of `f`'s time over [`RUNS`] runs.
fn time<T>(mut f: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut times = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = std::hint::black_box(f());
        times.push(start.elapsed());
        last = Some(out);
    }
    times.sort();
    let last = last.expect("RUNS > 0");
    (times[RUNS / 2], times[RUNS * 95 / 100], last)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let list = packages();
    let base = text(&list, 0, 0..0, 0);
    let (whole_med, whole_p95, stored) = time(|| pack_list(&base));
    println!(
        "{} packages, {} B of JSON; stored whole (LZ4): {} B, median {}, p95 {}",
        PACKAGES,
        base.len(),
        stored.len(),
        ms(whole_med),
        ms(whole_p95)
    );
    let unrelated = {
        let mut other: Vec<Package> = packages();
        for p in &mut other {
            p.head = p.head.replacen(r#""name":""#, r#""name":"z"#, 1);
            p.version = format!("9:{}", p.version);
        }
        other.reverse();
        text(&other, 0, 0..0, 0)
    };
    let cases: Vec<(String, Vec<u8>)> = [1, 15, 30, 40, 60]
        .into_iter()
        .map(|r| {
            (
                format!("{r} upgrade(s) of {UPGRADE}"),
                text(&list, r, 0..0, 0),
            )
        })
        .chain([
            ("40 packages installed".to_owned(), text(&list, 0, 0..0, 40)),
            (
                "40 packages removed".to_owned(),
                text(&list, 0, 1000..1040, 0),
            ),
            ("unrelated list".to_owned(), unrelated),
        ])
        .collect();
    println!(
        "{:<26} {:>9} {:>11} {:>11} {:>9} {:>11} {:>11}",
        "new list", "script", "encode", "encode p95", "stored", "stored as", "server"
    );
    let base_row = ("base".to_owned(), stored);
    for (name, new) in &cases {
        let new_text = std::str::from_utf8(new).expect("JSON text");
        let (enc_med, enc_p95, script) = time(|| list_delta::encode(&base, new, usize::MAX));
        let (store_med, _, row) = time(|| NewList::of(new_text, Some(base_row.clone())));
        println!(
            "{name:<26} {:>9} {:>11} {:>11} {:>7} B {:>11} {:>11}",
            script.map_or("gave up".to_owned(), |s| format!("{} B", s.len())),
            ms(enc_med),
            ms(enc_p95),
            row.body.len(),
            if row.base.is_some() { "delta" } else { "whole" },
            ms(store_med),
        );
    }
}
