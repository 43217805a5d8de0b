//! `nird-agent inventory --json` on the machine running the tests, as root
//! and as an unprivileged user, cross-checked against `/proc/cpuinfo`,
//! `/proc/meminfo` and `lsblk -b`, which are read here independently.

use std::collections::BTreeMap;
use std::process::Command;

use nird_proto::inventory::Inventory;

const AGENT: &str = env!("CARGO_BIN_EXE_nird-agent");

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `nird-agent inventory --json`, through `prefix` (e.g. setpriv) when
/// given, and parses the document.
fn run_inventory(prefix: &[&str]) -> Inventory {
    let mut cmd = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(AGENT);
            c
        }
        None => Command::new(AGENT),
    };
    let out = cmd
        .args(["inventory", "--json"])
        .output()
        .expect("run nird-agent");
    assert!(
        out.status.success(),
        "nird-agent inventory --json failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inventory --json is a valid document")
}

/// Model name, logical CPUs and physical cores, from /proc/cpuinfo.
fn cpuinfo() -> (String, u32, u32) {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let mut model = String::new();
    let mut threads = 0;
    let mut cores = std::collections::BTreeSet::new();
    let mut physical = String::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim() {
            "processor" => threads += 1,
            "model name" if model.is_empty() => model = v.trim().to_string(),
            "physical id" => physical = v.trim().to_string(),
            "core id" => {
                cores.insert((physical.clone(), v.trim().to_string()));
            }
            _ => {}
        }
    }
    (model, threads, cores.len() as u32)
}

fn mem_total_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Non-empty physical disks per `lsblk -b` (loop, zram and empty devices
/// left out, as the inventory does).
fn lsblk_disks() -> Option<BTreeMap<String, u64>> {
    let out = Command::new("lsblk")
        .args(["-b", "-J", "-d", "-o", "NAME,SIZE,TYPE"])
        .output()
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let mut disks = BTreeMap::new();
    for dev in json["blockdevices"].as_array()? {
        let name = dev["name"].as_str()?.to_string();
        let size = dev["size"]
            .as_u64()
            .or_else(|| dev["size"].as_str()?.parse().ok())?;
        if dev["type"] == "disk" && size > 0 && !name.starts_with("zram") {
            disks.insert(name, size);
        }
    }
    Some(disks)
}

fn check_against_system(inv: &Inventory, who: &str) {
    let (model, threads, cores) = cpuinfo();
    assert_eq!(inv.cpu.model_name.value(), Some(&model), "{who}: CPU model");
    assert_eq!(inv.cpu.threads.value(), Some(&threads), "{who}: threads");
    if cores > 0 {
        assert_eq!(inv.cpu.cores.value(), Some(&cores), "{who}: cores");
    }
    assert_eq!(
        inv.memory.total_bytes.value(),
        Some(&mem_total_bytes()),
        "{who}: RAM total"
    );
    match lsblk_disks() {
        Some(expected) => {
            let ours: BTreeMap<String, u64> = inv
                .storage
                .disks
                .value()
                .expect("disks readable")
                .iter()
                .map(|d| (d.name.clone(), d.size_bytes))
                .collect();
            assert_eq!(ours, expected, "{who}: disks and sizes agree with lsblk -b");
        }
        None => println!("SKIP disk cross-check: lsblk is not available"),
    }
    match Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}\\n"])
        .output()
    {
        Ok(out) if out.status.success() => {
            let installed = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| *l == "install ok installed")
                .count() as u32;
            let ours = inv.os.packages.value().expect("dpkg status readable");
            assert_eq!(ours.installed_count, installed, "{who}: dpkg-query count");
        }
        _ => println!("SKIP package cross-check: dpkg-query is not available"),
    }
    assert!(
        inv.identity.machine_id.value().is_some(),
        "{who}: machine-id"
    );
    assert_eq!(inv.content_hash().len(), 64);
}

#[test]
fn live_inventory_as_current_user_matches_proc_and_lsblk() {
    let inv = run_inventory(&[]);
    check_against_system(&inv, if is_root() { "root" } else { "user" });
    // Collecting twice gives the same document: nothing volatile in it.
    let again = run_inventory(&[]);
    assert_eq!(inv.content_hash(), again.content_hash());
}

#[test]
fn live_inventory_as_nobody_succeeds_and_says_what_needs_root() {
    if !is_root() {
        println!("SKIP: switching to the nobody user needs root");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        println!("SKIP: setpriv (util-linux) is not installed");
        return;
    }
    let prefix = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    let inv = run_inventory(&prefix);
    check_against_system(&inv, "nobody");
    // The SMBIOS table is root-only: without root the modules say so (when
    // the machine has one at all).
    if std::path::Path::new("/sys/firmware/dmi/tables/DMI").exists() {
        assert_eq!(
            inv.memory.modules.reason(),
            Some(nird_proto::inventory::reason::NEEDS_ROOT)
        );
    }
}
