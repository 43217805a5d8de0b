//! The trust model end to end, with the real binaries: key rotation and
//! revocation across several agents (one of them offline during two
//! rotations), a signed reset of a fast-forwarded anti-rollback floor, and
//! what a compromised server can no longer do — push a profile signed for
//! other schools, hand a machine an older release than the signed index,
//! or serve a release signed by a revoked key. Each refusal leaves the
//! machine unchanged and is reported to the server with its reason.

use std::path::{Path, PathBuf};

use nird_tests::*;

const NAME: &str = "e2e-charte";

/// A profile managing one file, for `audience`.
fn profile(version: u64, text: &str, audience: &str) -> String {
    format!(
        r#"[profile]
name = "{NAME}"
version = {version}
expires = {expires}
description = "Charte (test de la chaîne de confiance)"
audience = "{audience}"

[[file]]
path = "/etc/ecole/charte.txt"
content = "{text}\n"
mode = "0644"
"#,
        expires = in_a_year()
    )
}

fn server_cli(args: &[&str]) -> String {
    run_ok(&bin("nird-server"), args)
}

/// A maintainer's key pair in `dir` (`nird.pub`, `nird.key`).
fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    server_cli(&["profile", "keygen", "--out", s(dir), "--no-password"]);
    (dir.join("nird.pub"), dir.join("nird.key"))
}

/// The next keyring after `from`, with `extra` arguments
/// (`--add-key`, `--remove-key`, `--reset-floor`), signed by `signers`.
fn next_keyring(from: &Path, out: &Path, extra: &[&str], signers: &[&Path]) {
    let mut args = vec![
        "profile",
        "keyring",
        "next",
        "--from",
        s(from),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    server_cli(&args);
    for key in signers {
        server_cli(&["profile", "keyring", "sign", "--key", s(key), s(out)]);
    }
}

/// The key id `nird-server profile keyring` shows for a public key file.
fn key_id(public: &Path) -> String {
    let text = std::fs::read_to_string(public).unwrap();
    let line = nird_proto::keyring::public_key_line(&text).unwrap();
    nird_proto::keyring::key_id(&line).unwrap()
}

/// Signs a profile with `key`, publishes it, and signs + publishes the
/// catalogue index of the profiles directory with `key`.
fn publish_with(data: &ServerData, key: &Path, toml: &str) {
    let dir = data.tmp.path().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{NAME}.toml"));
    std::fs::write(&file, toml).unwrap();
    server_cli(&["profile", "sign", "--key", s(key), s(&file)]);
    data.cli(&["profile", "publish", s(&file)]);
    let index = dir.join("index.toml");
    server_cli(&[
        "profile",
        "index",
        "--catalogue",
        s(&dir),
        "--key",
        s(key),
        "--out",
        s(&index),
    ]);
    data.cli(&["index", "publish", s(&index)]);
}

fn charte(agent: &AgentRoot) -> Option<String> {
    std::fs::read_to_string(agent.root().join("etc/ecole/charte.txt")).ok()
}

fn last_report(data: &ServerData, machine: &str) -> serde_json::Value {
    data.reports(machine).pop().expect("a report")
}

#[test]
fn keys_rotate_and_are_revoked_across_agents_even_one_offline_during_two_rotations() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let key_a = (data.keys.join("nird.pub"), data.keys.join("nird.key"));
    let agents: Vec<AgentRoot> = (0..3).map(|_| AgentRoot::new(&data)).collect();
    for a in &agents {
        let out = a.enroll(&server, &data, &data.token());
        // Trust on first use: the operator is shown the key ids.
        assert!(out.contains(&key_id(&key_a.0)), "{out}");
    }
    publish_with(&data, &key_a.1, &profile(1, "v1 signée par A", "all"));
    data.assign(&[NAME]);
    for a in &agents {
        a.run_once();
        assert_eq!(charte(a).as_deref(), Some("v1 signée par A\n"));
        assert_eq!(a.status()["trust"]["keyring_version"], 1);
    }

    // Rotation 1: key B joins (signed by A: the threshold of keyring 1).
    let key_b = keygen(&data.tmp.path().join("keys-b"));
    let k1 = data.keys.join("keyring.toml");
    let k2 = data.tmp.path().join("keyring-2.toml");
    next_keyring(&k1, &k2, &["--add-key", s(&key_b.0)], &[&key_a.1]);
    data.cli(&["keyring", "publish", s(&k2)]);
    let (online, offline) = agents.split_at(2);
    for a in online {
        a.run_once();
        assert_eq!(a.status()["trust"]["keyring_version"], 2);
    }

    // A keyring signed by a key the current keyring does not hold is
    // refused by the server (and would be by every agent).
    let key_c = keygen(&data.tmp.path().join("keys-c"));
    let rogue = data.tmp.path().join("keyring-rogue.toml");
    next_keyring(&k2, &rogue, &["--add-key", s(&key_c.0)], &[&key_c.1]);
    let out = run_raw(
        &bin("nird-server"),
        &["keyring", "publish", "--data-dir", s(&data.data), s(&rogue)],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("signé par 0 clé(s) du trousseau précédent"),
        "{}",
        stderr(&out)
    );

    // Rotation 2: A is revoked (keyring 3 holds B only, signed by B, which
    // keyring 2 trusts). Releases signed only by A stop being served.
    let k3 = data.tmp.path().join("keyring-3.toml");
    next_keyring(&k2, &k3, &["--remove-key", &key_id(&key_a.0)], &[&key_b.1]);
    let out = data.cli(&["keyring", "publish", s(&k3)]);
    assert!(
        out.contains("ne sont plus distribuées : e2e-charte v1"),
        "{out}"
    );
    // Profiles signed with A are now refused at publication.
    let (bytes, _) = data.sign(NAME, &profile(2, "v2 signée par A", "all"));
    assert!(!bytes.is_empty());
    let file = data
        .tmp
        .path()
        .join("signed-only")
        .join(format!("{NAME}.toml"));
    let out = run_raw(
        &bin("nird-server"),
        &["profile", "publish", "--data-dir", s(&data.data), s(&file)],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown_key"), "{}", stderr(&out));

    // B signs v2 and a new index.
    publish_with(&data, &key_b.1, &profile(2, "v2 signée par B", "all"));
    for a in &agents {
        // The offline agent walks keyrings 2 then 3 in one check-in.
        a.run_once();
        assert_eq!(a.status()["trust"]["keyring_version"], 3, "{}", a.status());
        assert_eq!(charte(a).as_deref(), Some("v2 signée par B\n"));
    }
    assert_eq!(offline.len(), 1);

    // A compromised server serves a release signed by the revoked key A:
    // every agent refuses it and stays on v2.
    let (bytes, sig) = data.sign(NAME, &profile(3, "v3 signée par A révoquée", "all"));
    data.attacker_insert_release(NAME, 3, &bytes, &sig);
    for a in &agents {
        let before = a.managed_tree();
        a.run_once();
        assert_eq!(a.managed_tree(), before);
        let r = last_report(&data, &a.machine_id());
        assert_eq!(r["version"], 3);
        assert_eq!(r["reason"], "unknown_key", "{r}");
    }
    server.stop();
}

#[test]
fn a_signed_keyring_resets_a_fast_forwarded_floor() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);
    agent.enroll(&server, &data, &data.token());
    let key = data.keys.join("nird.key");
    // A typo: version 50 instead of 5. Applied, it sets the floor at 50.
    publish_with(&data, &key, &profile(50, "v50 (coquille)", "all"));
    data.assign(&[NAME]);
    agent.run_once();
    assert_eq!(charte(&agent).as_deref(), Some("v50 (coquille)\n"));

    // The maintainers lower the floor with a signed keyring, then publish
    // version 6. (A server can never lower it: only the keyring's signers.)
    let k1 = data.keys.join("keyring.toml");
    let k2 = data.tmp.path().join("keyring-2.toml");
    next_keyring(&k1, &k2, &["--reset-floor", &format!("{NAME}=5")], &[&key]);
    let out = data.cli(&["keyring", "publish", s(&k2)]);
    assert!(out.contains("plancher anti-retour"), "{out}");
    // The server's own anti-rollback still refuses 6 < 50 at publication;
    // the release is put there as maintainers would after a reset.
    let (bytes, sig) = data.sign(NAME, &profile(6, "v6 après remise à zéro", "all"));
    data.attacker_insert_release(NAME, 6, &bytes, &sig);
    let dir = data.tmp.path().join("signed-only");
    let index = dir.join("index.toml");
    server_cli(&[
        "profile",
        "index",
        "--catalogue",
        s(&dir),
        "--key",
        s(&key),
        "--out",
        s(&index),
        "--version",
        "100",
    ]);
    data.cli(&["index", "publish", s(&index)]);
    agent.run_once();
    assert_eq!(agent.status()["trust"]["keyring_version"], 2);
    assert_eq!(charte(&agent).as_deref(), Some("v6 après remise à zéro\n"));
    server.stop();
}

#[test]
fn a_compromised_server_cannot_choose_what_runs() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);
    agent.enroll(&server, &data, &data.token());
    let machine = agent.machine_id();
    let key = data.keys.join("nird.key");

    // 1. A collège profile assigned to an école machine: refused whatever
    //    the server says, the machine unchanged.
    let college = "e2e-college";
    let dir = data.tmp.path().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    let text = profile(1, "réservé aux collèges", "collège").replace(NAME, college);
    std::fs::write(dir.join(format!("{college}.toml")), &text).unwrap();
    server_cli(&[
        "profile",
        "sign",
        "--key",
        s(&key),
        s(&dir.join(format!("{college}.toml"))),
    ]);
    data.cli(&[
        "profile",
        "publish",
        s(&dir.join(format!("{college}.toml"))),
    ]);
    data.publish_index();
    data.attacker_assign(college);
    let before = agent.managed_tree();
    agent.run_once();
    assert_eq!(agent.managed_tree(), before);
    let r = last_report(&data, &machine);
    assert_eq!(
        (r["profile"].as_str(), r["reason"].as_str()),
        (Some(college), Some("not_targeted")),
        "{r}"
    );
    assert!(r["message"].as_str().unwrap().contains("0620056Z"), "{r}");

    // 2. First-contact rollback: v1 and v2 are signed, the index says v2;
    //    a server handing this machine (which never saw v2) v1 is refused.
    publish_with(&data, &key, &profile(1, "v1", "école"));
    publish_with(&data, &key, &profile(2, "v2", "école"));
    data.db_exec(&format!(
        "UPDATE index_entries SET version = 1 WHERE name = '{NAME}'"
    ));
    data.cli(&["assign", "--school", UAI, NAME]);
    let before = agent.managed_tree();
    agent.run_once();
    assert_eq!(agent.managed_tree(), before);
    let r = last_report(&data, &machine);
    assert_eq!(
        (r["version"].as_u64(), r["reason"].as_str()),
        (Some(1), Some("stale")),
        "{r}"
    );

    // 3. What the machine reports of its trust anchors shows on the server.
    let list = data.cli(&["machine", "list"]);
    assert!(list.contains("trousseau v1 index v"), "{list}");
    server.stop();
}

#[test]
fn an_agent_without_a_keyring_says_so_and_applies_nothing() {
    // A server without any keyring: the agent enrols (with a warning) but
    // refuses every release with `no_keyring`, and the server shows it.
    let data = ServerData::without_keyring();
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);
    let out = agent.enroll(&server, &data, &data.token());
    assert!(out.contains("aucun trousseau de clés"), "{out}");
    // `run --once` reaches the server but does not call that success.
    let once = agent.run(&["run", "--once"]);
    assert!(!once.status.success());
    let err = stderr(&once);
    assert!(err.contains("aucun trousseau de clés"), "{err}");
    assert!(err.contains("--kit"), "{err}");
    let list = data.cli(&["machine", "list"]);
    assert!(list.contains("ALERTE no_keyring"), "{list}");
    assert!(list.contains("kit create"), "{list}");
    let status = agent.run(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("aucun trousseau de clés"), "{text}");
    server.stop();
}
