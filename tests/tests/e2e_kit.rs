//! Enrolment kits with the real binaries: `nird-server kit create` writes
//! one private file (0600, a French warning that it is a secret) holding the
//! server's address, its CA, a token and the keyring; `nird-agent enroll
//! --kit FILE` enrols with nothing else and installs the kit's keyring (not
//! the server's by trust on first use). Bad, expired, revoked and used-up
//! kits each give one French sentence, a non-zero exit, and leave the
//! agent's root untouched.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use nird_tests::*;

fn kit(data: &ServerData, server: &ServerProcess, name: &str, extra: &[&str]) -> PathBuf {
    let out = data.tmp.path().join(format!("{name}.toml"));
    let url = server.url();
    let mut args = vec![
        "kit",
        "create",
        "--school",
        UAI,
        "--server",
        &url,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let said = data.cli(&args);
    assert!(said.contains("Kit d'inscription écrit"), "{said}");
    out
}

fn enrol_kit(agent: &AgentRoot, kit: &Path) -> std::process::Output {
    agent.run(&["enroll", "--kit", kit.to_str().unwrap()])
}

fn refused(data: &ServerData, kit: &Path, needle: &str) {
    let agent = AgentRoot::new(data);
    let out = enrol_kit(&agent, kit);
    let err = stderr(&out);
    assert!(!out.status.success(), "{} enrolled", kit.display());
    assert!(err.contains(needle), "« {err} » lacks « {needle} »");
    assert_eq!(err.trim().lines().count(), 1, "not one sentence: {err}");
    assert!(!agent.root().join("etc/nird/agent.toml").exists());
    assert!(!agent.root().join("var/lib/nird-agent/credential").exists());
}

fn token_id(data: &ServerData) -> String {
    // `token list`: newest first, "ID\tUAI\t...".
    let list = data.cli(&["token", "list"]);
    list.lines()
        .next()
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("no token in {list}"))
        .to_owned()
}

#[test]
fn a_kit_enrols_with_nothing_else_and_carries_the_keyring() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let file = kit(&data, &server, "kit", &["--uses", "2", "--expires", "7d"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# KIT D'INSCRIPTION"), "{text}");
    assert!(text.contains("SECRET"), "{text}");
    assert!(text.contains("Machines permises : 2"), "{text}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Never written over.
    let again = run_raw(
        &bin("nird-server"),
        &[
            "kit",
            "create",
            "--school",
            UAI,
            "--server",
            &server.url(),
            "--out",
            file.to_str().unwrap(),
            "--data-dir",
            data.data.to_str().unwrap(),
        ],
    );
    assert!(!again.status.success());
    assert!(stderr(&again).contains("existe déjà"), "{}", stderr(&again));
    // Without --server and without `init --hostname`, it says what to add.
    let no_url = run_raw(
        &bin("nird-server"),
        &[
            "kit",
            "create",
            "--school",
            UAI,
            "--out",
            data.tmp.path().join("x.toml").to_str().unwrap(),
            "--data-dir",
            data.data.to_str().unwrap(),
        ],
    );
    assert!(!no_url.status.success());
    assert!(stderr(&no_url).contains("--server"), "{}", stderr(&no_url));
    assert!(!data.tmp.path().join("x.toml").exists());

    let agent = AgentRoot::new(&data);
    let out = enrol_kit(&agent, &file);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Machine enrôlée"), "{said}");
    // The keyring came with the kit: no trust on first use.
    assert!(!said.contains("première utilisation"), "{said}");
    assert!(said.contains("Trousseau de clés version 1"), "{said}");
    let held =
        std::fs::read_to_string(agent.root().join("var/lib/nird-agent/keyring.json")).unwrap();
    let held: serde_json::Value = serde_json::from_str(&held).unwrap();
    let document = held["document"].as_str().unwrap();
    assert!(
        text.contains(document.lines().next().unwrap()),
        "{document}"
    );
    agent.run_once();
    let status = agent.status();
    assert_eq!(status["enrolled"], true);
    assert_eq!(status["trust"]["keyring_version"], 1);
    let machines = data.cli(&["machine", "list"]);
    assert!(machines.contains(&agent.machine_id()), "{machines}");
}

#[test]
fn bad_expired_revoked_and_used_up_kits_each_say_why_in_french() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());

    // Bad: missing, damaged, or a token the server does not know.
    refused(
        &data,
        &data.tmp.path().join("absent.toml"),
        "fichier introuvable",
    );
    let good = kit(&data, &server, "good", &["--uses", "1"]);
    let text = std::fs::read_to_string(&good).unwrap();
    let damaged = data.tmp.path().join("damaged.toml");
    std::fs::write(&damaged, &text[..text.len() / 2]).unwrap();
    refused(&data, &damaged, "kit d'inscription");
    let token_line = text
        .lines()
        .find(|l| l.starts_with("token = "))
        .unwrap()
        .to_owned();
    let foreign = data.tmp.path().join("foreign.toml");
    std::fs::write(
        &foreign,
        text.replace(&token_line, "token = \"jeton-d-un-autre-serveur\""),
    )
    .unwrap();
    refused(&data, &foreign, "ne connaît pas ce kit");

    // Expired: by the date written in the kit (nothing sent), or by the
    // server (the token's expiry moved).
    let expires_line = text
        .lines()
        .find(|l| l.starts_with("expires = "))
        .unwrap()
        .to_owned();
    let stale = data.tmp.path().join("stale.toml");
    std::fs::write(
        &stale,
        text.replace(&expires_line, "expires = \"2020-01-01T00:00:00Z\""),
    )
    .unwrap();
    refused(&data, &stale, "a expiré le 2020-01-01");
    let expired = kit(&data, &server, "expired", &[]);
    let expired_token = std::fs::read_to_string(&expired)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("token = \"")
                .map(|t| t.trim_end_matches('"').to_owned())
        })
        .unwrap();
    data.expire_token(&expired_token);
    refused(&data, &expired, "a expiré");

    // Revoked like any token.
    let revoked = kit(&data, &server, "revoked", &[]);
    let id = token_id(&data);
    data.cli(&["token", "revoke", &id]);
    refused(&data, &revoked, "révoqué");

    // Used up: the one-machine kit enrols one machine, then says so.
    let first = AgentRoot::new(&data);
    let out = enrol_kit(&first, &good);
    assert!(out.status.success(), "{}", stderr(&out));
    refused(&data, &good, "déjà inscrit 1 machine(s)");
}
