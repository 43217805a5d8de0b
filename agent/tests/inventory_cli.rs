//! `nird-agent inventory` refuses bad arguments with a French sentence and a
//! non-zero exit, and prints nothing on stdout then.

use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_nird-agent");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(AGENT).args(args).output().unwrap()
}

#[test]
fn bad_package_name_is_refused() {
    let out = run(&["inventory", "--json", "--package", "firefox;rm"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nom de paquet invalide"), "{err}");
}

#[test]
fn missing_root_is_refused() {
    let out = run(&["--root", "/nonexistent/nird", "inventory"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("le dossier racine /nonexistent/nird n'existe pas"),
        "{err}"
    );
}

#[test]
fn json_and_format_conflict() {
    let out = run(&["inventory", "--json", "--format", "glpi"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn json_output_is_the_document_with_schema_version_first() {
    let root = format!("{}/tests/fixtures/vm-qemu", env!("CARGO_MANIFEST_DIR"));
    let out = run(&["--root", &root, "inventory", "--json"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("{\n  \"schema_version\": 2,"), "{text}");
    let inv: nird_proto::inventory::Inventory = serde_json::from_str(&text).unwrap();
    assert_eq!(
        inv.identity.hostname.value().map(String::as_str),
        Some("debian-vm")
    );
}
