//! The agent sends its package list whole once, then only what changed:
//! `nird-agent run --once` on a root holding a real dpkg database (this
//! machine's own `/var/lib/dpkg/status`, copied), against `nird-server
//! serve` over TLS. After an upgrade, a removal and an installation, the
//! check-in carries an `inventory_delta` (the server counts the forms it
//! received in `/metrics`), and the package list the server then holds
//! (read through the admin API) is exactly what `dpkg-query -W` lists from
//! the changed database.

use std::path::Path;
use std::process::Command;

use nird_tests::*;
use serde_json::Value;

/// `curl` GET over TLS trusting the server's CA, with a bearer token.
fn get(server: &ServerProcess, data: &ServerData, path: &str, bearer: &str) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--cacert"])
        .arg(data.data.join("tls/ca.crt"))
        .arg("--header")
        .arg(format!("Authorization: Bearer {bearer}"))
        .arg(format!("{}{path}", server.url()))
        .output()
        .expect("run curl (scripts/install-deps.sh installs it)");
    assert!(out.status.success(), "GET {path}: {}", stderr(&out));
    String::from_utf8(out.stdout).expect("UTF-8 reply")
}

/// `nird_checkin_inventories_total{form="FORM"}` from `/metrics`.
fn inventories_received(server: &ServerProcess, data: &ServerData, form: &str) -> u64 {
    let token = std::fs::read_to_string(data.data.join("metrics-token")).unwrap();
    let text = get(server, data, "/metrics", token.trim());
    let name = format!("nird_checkin_inventories_total{{form=\"{form}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&name))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// `(name, version, arch)` of every installed package of the database
/// under `admin_dir`, as `dpkg-query -W` lists them, sorted.
fn dpkg_query(admin_dir: &Path) -> Vec<(String, String, String)> {
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}", admin_dir.display()))
        .args([
            "-W",
            "-f",
            "${db:Status-Status} ${Package} ${Version} ${Architecture}\\n",
        ])
        .output()
        .expect("run dpkg-query");
    assert!(out.status.success(), "dpkg-query: {}", stderr(&out));
    let mut packages: Vec<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            (f.next()? == "installed")
                .then(|| Some((f.next()?.into(), f.next()?.into(), f.next()?.into())))?
        })
        .collect();
    packages.sort();
    packages
}

/// Rewrites stanzas of a dpkg `status` file: `edit` gets each stanza and
/// returns its replacement (`None` removes it).
fn edit_stanzas(status: &str, mut edit: impl FnMut(&str) -> Option<String>) -> String {
    status
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .filter_map(|s| edit(s.trim_end_matches('\n')))
        .map(|s| s + "\n")
        .collect::<Vec<_>>()
        .join("\n")
}

fn field<'a>(stanza: &'a str, name: &str) -> Option<&'a str> {
    stanza
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn package_changes_travel_as_a_delta_and_the_server_holds_the_new_list() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);
    let admin_dir = agent.root().join("var/lib/dpkg");
    std::fs::create_dir_all(&admin_dir).unwrap();
    let status =
        std::fs::read_to_string("/var/lib/dpkg/status").expect("this machine's dpkg database");
    std::fs::write(admin_dir.join("status"), &status).unwrap();
    let before = dpkg_query(&admin_dir);
    assert!(before.len() > 100, "{} packages", before.len());

    // Enrolment carries the whole document; nothing changed since.
    agent.enroll(&server, &data, &data.token());
    let machine = agent.machine_id();
    agent.run_once();
    assert_eq!(inventories_received(&server, &data, "delta"), 0);

    // An upgrade of two packages, a removal, an installation.
    let installed: Vec<&str> = status
        .split("\n\n")
        .filter(|s| field(s, "Status") == Some("install ok installed"))
        .filter_map(|s| field(s, "Package"))
        .collect();
    let (upgraded, removed) = (&installed[..2], installed[2]);
    let mut new_stanza = None;
    let changed = edit_stanzas(&status, |stanza| {
        let name = field(stanza, "Package")?;
        if name == removed {
            // Installed in its place, under a new name.
            new_stanza = Some(stanza.replacen(
                &format!("Package: {name}\n"),
                "Package: gcompris-qt-nird-test\n",
                1,
            ));
            return None;
        }
        if upgraded.contains(&name) {
            let version = field(stanza, "Version")?;
            return Some(stanza.replacen(
                &format!("Version: {version}\n"),
                &format!("Version: {version}+nird1\n"),
                1,
            ));
        }
        Some(stanza.to_owned())
    });
    let changed = format!(
        "{changed}\n{}\n",
        new_stanza.expect("removed package found")
    );
    std::fs::write(admin_dir.join("status"), changed).unwrap();
    let after = dpkg_query(&admin_dir);
    assert_eq!(after.len(), before.len());
    assert_ne!(after, before);

    agent.run_once();
    assert_eq!(inventories_received(&server, &data, "delta"), 1);
    assert_eq!(inventories_received(&server, &data, "delta_refused"), 0);
    assert_eq!(inventories_received(&server, &data, "document"), 0);
    assert_eq!(data.inventory_versions(&machine), 2);

    // What the server holds now is the changed database, package for
    // package.
    data.cli(&["user", "add", "chef", "--role", "admin"]);
    let token = data.cli(&["user", "token", "create", "chef"]);
    let reply = get(
        &server,
        &data,
        &format!("/api/v1/admin/machines/{machine}"),
        token.trim(),
    );
    let machine: Value = serde_json::from_str(&reply).unwrap();
    let mut held: Vec<(String, String, String)> =
        machine["inventory"]["software"]["value"]["packages"]
            .as_array()
            .expect("packages in the stored inventory")
            .iter()
            .map(|p| {
                let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
                (s("name"), s("version"), s("arch"))
            })
            .collect();
    held.sort();
    assert_eq!(held, after);
    server.stop();
}
