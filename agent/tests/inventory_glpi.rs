//! `--format glpi` validates against GLPI's own inventory schema, for every
//! fixture machine and for the machine running the tests. The schema is the
//! project's reference copy in `../shared/reference/glpi-inventory-format/`
//! when the checkout sits beside it (it is replaced whole when GLPI updates
//! it), else the identical copy kept in `tests/glpi-schema/`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_nird-agent");

fn validator() -> jsonschema::Validator {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let reference =
        manifest.join("../../shared/reference/glpi-inventory-format/inventory.schema.json");
    let path = if reference.is_file() {
        reference
    } else {
        manifest.join("tests/glpi-schema/inventory.schema.json")
    };
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&schema)
        .expect("GLPI schema compiles")
}

fn glpi_of(root: &str) -> Value {
    let out = Command::new(AGENT)
        .args([
            "--root",
            root,
            "inventory",
            "--format",
            "glpi",
            "--package",
            "firefox",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{what}: GLPI schema errors: {errors:#?}");
}

#[test]
fn fixture_machines_validate_against_the_glpi_schema() {
    let v = validator();
    for machine in [
        "laptop-t430",
        "desktop-optiplex390",
        "laptop-latitude5400",
        "vm-qemu",
    ] {
        let root = format!("{}/tests/fixtures/{machine}", env!("CARGO_MANIFEST_DIR"));
        let doc = glpi_of(&root);
        assert_valid(&v, &doc, machine);
        assert_eq!(doc["itemtype"], "Computer");
        assert!(
            doc["content"]["cpus"][0]["name"].is_string(),
            "{machine}: CPU name"
        );
    }
}

/// The real dpkg database of a Debian 12 school desktop (a root holding
/// only it and an os-release): every installed package in `softwares`, the
/// document valid, no hardware made up.
#[test]
fn glpi_of_the_real_dpkg_database_validates_with_every_package() {
    let root = format!(
        "{}/tests/fixtures/desktop-debian12-ecole",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc = glpi_of(&root);
    assert_valid(&validator(), &doc, "desktop-debian12-ecole");
    assert_eq!(doc["itemtype"], "Computer");
    let softwares = doc["content"]["softwares"].as_array().unwrap();
    assert_eq!(softwares.len(), 2172);
    let gcompris = softwares
        .iter()
        .find(|s| s["name"] == "gcompris-qt")
        .unwrap();
    assert_eq!(gcompris["version"], "3.1-2");
}

#[test]
fn glpi_carries_the_fixture_values() {
    let root = format!("{}/tests/fixtures/laptop-t430", env!("CARGO_MANIFEST_DIR"));
    let doc = glpi_of(&root);
    let c = &doc["content"];
    assert_eq!(c["bios"]["bdate"], "2013-05-14");
    assert_eq!(c["bios"]["ssn"], "PB4H7KL");
    assert_eq!(c["bios"]["secure_boot"], "unsupported");
    assert_eq!(c["hardware"]["chassis_type"], "Notebook");
    assert_eq!(c["cpus"][0]["core"], 2);
    assert_eq!(c["cpus"][0]["thread"], 4);
    assert_eq!(c["memories"][0]["capacity"], 4096);
    assert_eq!(c["memories"][0]["type"], "DDR3");
    assert_eq!(c["storages"][0]["model"], "Samsung SSD 850 EVO 250GB");
    assert_eq!(c["storages"][0]["disksize"], 250_059);
    assert_eq!(c["batteries"][0]["capacity"], 57_700);
    assert_eq!(c["batteries"][0]["real_capacity"], 31_700);
    assert_eq!(c["networks"][1]["type"], "wifi");
    let firefox = c["softwares"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "firefox")
        .expect("firefox listed");
    assert_eq!(firefox["version"], "131.0+linuxmint1+wilma");
    assert_eq!(firefox["from"], "deb");
    // Every installed package, the removed one (config files only) not.
    assert_eq!(c["softwares"].as_array().unwrap().len(), 4);
    assert_eq!(c["monitors"][0]["name"], "LTN156AT16L01");
    assert_eq!(c["monitors"][0]["manufacturer"], "LEN");
    assert_eq!(c["monitors"][0]["description"], "2010");
    assert_eq!(c["monitors"][0]["port"], "LVDS-1");
}

#[test]
fn live_machine_validates_and_a_broken_document_does_not() {
    let v = validator();
    let mut doc = glpi_of("/");
    assert_valid(&v, &doc, "this machine");
    // The check can fail: a value outside the schema's enumeration is caught.
    doc["content"]["bios"]["secure_boot"] = Value::from("maybe");
    assert!(!v.is_valid(&doc));
}

#[test]
fn live_software_list_equals_dpkg_query() {
    let doc = glpi_of("/");
    let ours: std::collections::BTreeSet<(String, String, String)> = doc["content"]["softwares"]
        .as_array()
        .expect("softwares")
        .iter()
        .filter(|s| s["from"] == "deb")
        .map(|s| {
            let field = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (field("name"), field("arch"), field("version"))
        })
        .collect();
    let out = Command::new("dpkg-query")
        .args([
            "-W",
            "-f",
            "${db:Status-Status}\t${Package}\t${Architecture}\t${Version}\n",
        ])
        .output()
        .expect("dpkg-query runs");
    assert!(out.status.success());
    let theirs: std::collections::BTreeSet<(String, String, String)> =
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                (f.next()? == "installed").then(|| {
                    let mut next = || f.next().unwrap_or_default().to_owned();
                    (next(), next(), next())
                })
            })
            .collect();
    assert!(!theirs.is_empty(), "dpkg-query lists installed packages");
    assert_eq!(ours, theirs);
}

/// The sections FusionInventory 2.6 (Debian 12's `fusioninventory-agent`)
/// fills on a Debian 12 VM, as recorded when this test was written; used
/// when the agent is not installed.
const FUSIONINVENTORY_SECTIONS: [&str; 17] = [
    "accesslog",
    "bios",
    "controllers",
    "cpus",
    "drives",
    "envs",
    "firewalls",
    "hardware",
    "local_groups",
    "local_users",
    "networks",
    "operatingsystem",
    "processes",
    "softwares",
    "storages",
    "versionclient",
    "versionprovider",
];

/// Left out on purpose: volatile (processes, environment) or personal data
/// (local accounts, and the groups that list them).
const LEFT_OUT: [&str; 4] = ["processes", "envs", "local_users", "local_groups"];

/// Top-level section names of a FusionInventory XML inventory (children of
/// `<CONTENT>`), lowercased and named as in GLPI's JSON format.
fn fusioninventory_sections(xml: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let Some(start) = xml.find("<CONTENT>") else {
        return out;
    };
    let mut depth = 0i32;
    let mut rest = &xml[start + "<CONTENT>".len()..];
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let tag = &rest[open + 1..open + close];
        rest = &rest[open + close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            if name == "CONTENT" && depth == 0 {
                break;
            }
            depth -= 1;
        } else if tag.ends_with('/') {
            if depth == 0 {
                out.insert(tag.trim_end_matches('/').to_lowercase());
            }
        } else {
            if depth == 0 {
                out.insert(tag.to_lowercase());
            }
            depth += 1;
        }
    }
    // GLPI's JSON renamed this one.
    if out.remove("firewall") {
        out.insert("firewalls".into());
    }
    out
}

#[test]
fn glpi_export_has_every_section_fusioninventory_fills_here() {
    let ours = glpi_of("/");
    let ours: std::collections::BTreeSet<&str> = ours["content"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let theirs: Vec<String> = match Command::new("fusioninventory-inventory").output() {
        Ok(out) if out.status.success() => {
            let sections = fusioninventory_sections(&String::from_utf8_lossy(&out.stdout));
            assert!(sections.contains("softwares"), "{sections:?}");
            sections.into_iter().collect()
        }
        // Not installed (scripts/install-deps.sh installs it): the list
        // recorded on Debian 12.
        _ => FUSIONINVENTORY_SECTIONS
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let missing: Vec<&String> = theirs
        .iter()
        .filter(|s| !LEFT_OUT.contains(&s.as_str()) && !ours.contains(s.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "sections FusionInventory fills and we do not: {missing:?}"
    );
}

#[test]
fn fusioninventory_section_scanner() {
    let xml = "<?xml?>\n<REQUEST><CONTENT><BIOS><SSN>1</SSN></BIOS><FIREWALL><STATUS>off</STATUS></FIREWALL>\
               <SOFTWARES><NAME>a</NAME></SOFTWARES><SOFTWARES/></CONTENT><DEVICEID>x</DEVICEID></REQUEST>";
    let s: Vec<String> = fusioninventory_sections(xml).into_iter().collect();
    assert_eq!(s, ["bios", "firewalls", "softwares"]);
}
