//! The whole chain with the real binaries: server init → school → token →
//! enrol → publish a signed profile → assign → `nird-agent run --once`
//! applies it to a test root → the server holds the report. Then what a
//! compromised server can try — a tampered release, a rollback to an older
//! signed release, an expired release served by a frozen server — the agent
//! changes nothing on the root and the server is told why.

use nird_tests::*;

const NAME: &str = "e2e-classe";

/// A profile touching only files and directories (runs anywhere).
fn profile(version: u64, charte: &str, expires: &str) -> String {
    format!(
        r#"[profile]
name = "{NAME}"
version = {version}
expires = {expires}
description = "Charte et dossier de classe (test de bout en bout)"
audience = "all"

[[file]]
path = "/etc/ecole/charte.txt"
content = "{charte}\n"
mode = "0644"

[[directory]]
path = "/srv/classe"
mode = "0755"
"#
    )
}

fn last_report(data: &ServerData, machine: &str) -> serde_json::Value {
    data.reports(machine).pop().expect("a report")
}

#[test]
fn signed_profiles_are_applied_and_bad_releases_change_nothing() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);

    let out = agent.enroll(&server, &data, &data.token());
    assert!(out.contains("Machine enrôlée"), "{out}");
    let machine = agent.machine_id();
    let status = agent.status();
    assert_eq!(status["enrolled"], true);

    // 1. A signed profile, assigned to the school, applied to the root.
    data.publish(NAME, &profile(1, "Charte v1", &in_a_year()));
    data.assign(&[NAME]);
    agent.run_once();
    let charte = agent.root().join("etc/ecole/charte.txt");
    assert_eq!(std::fs::read_to_string(&charte).unwrap(), "Charte v1\n");
    assert!(agent.root().join("srv/classe").is_dir());
    let r = last_report(&data, &machine);
    assert_eq!(
        (r["outcome"].as_str(), r["version"].as_u64()),
        (Some("applied"), Some(1))
    );
    let status = agent.status();
    assert_eq!(status["applied"][0]["version"], 1);
    assert_eq!(status["pending_reports"], 0);
    assert!(status["daemon"]["last_error"].is_null());

    // Nothing new: a second run applies nothing and reports nothing.
    agent.run_once();
    assert_eq!(data.reports(&machine).len(), 1);

    // The fetched release is kept in the agent's cache: `plan` works
    // offline, verifies it again, and sees nothing left to change.
    let plan = agent.run(&["plan"]);
    assert!(plan.status.success(), "plan failed: {}", stderr(&plan));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains(NAME), "{text}");
    let plan = agent.run(&["plan", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    let resources = json["plan"]["resources"].as_array().expect("resources");
    assert_eq!(resources.len(), 2, "{json}");
    assert!(
        resources.iter().all(|r| r["verdict"] == "unchanged"),
        "{json}"
    );

    // 2. Tampered on the server: refused, nothing changes.
    data.publish(NAME, &profile(2, "Charte v2", &in_a_year()));
    data.attacker_tamper(NAME, 2, "Charte v2", "Charte pirate");
    let before = agent.managed_tree();
    agent.run_once();
    assert_eq!(
        agent.managed_tree(),
        before,
        "a tampered release changed the root"
    );
    let r = last_report(&data, &machine);
    assert_eq!(r["outcome"], "refused");
    assert_eq!(r["reason"], "bad_signature");
    assert_eq!(r["version"], 2);
    // Refused once, not at every check-in.
    agent.run_once();
    assert_eq!(data.reports(&machine).len(), 2);
    // What a person reads on the server.
    let text = data.cli(&["machine", "reports", &machine]);
    assert!(text.contains(&format!("{NAME} v1\tappliqué")), "{text}");
    assert!(
        text.contains("\tmodifié\tfile:/etc/ecole/charte.txt"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{NAME} v2\trefusé (bad_signature) : ")),
        "{text}"
    );
    let unknown = run_raw(
        &bin("nird-server"),
        &[
            "machine",
            "reports",
            &"0".repeat(32),
            "--data-dir",
            s(&data.data),
        ],
    );
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("inconnue"),
        "{}",
        stderr(&unknown)
    );

    // 3. A good v3, then the server rolls back to v1: refused.
    data.publish(NAME, &profile(3, "Charte v3", &in_a_year()));
    agent.run_once();
    assert_eq!(std::fs::read_to_string(&charte).unwrap(), "Charte v3\n");
    assert_eq!(last_report(&data, &machine)["outcome"], "applied");
    data.attacker_roll_back(NAME, 1);
    let before = agent.managed_tree();
    agent.run_once();
    assert_eq!(agent.managed_tree(), before, "a rollback changed the root");
    let r = last_report(&data, &machine);
    assert_eq!(
        (r["outcome"].as_str(), r["reason"].as_str()),
        (Some("refused"), Some("rollback"))
    );
    assert_eq!(r["version"], 1);

    // 4. An expired release, validly signed long ago, served by a server
    //    frozen in the past (`publish` refuses it today): refused.
    let (bytes, sig) = data.sign(NAME, &profile(4, "Charte v4", "2020-01-01"));
    data.attacker_insert_release(NAME, 4, &bytes, &sig);
    let before = agent.managed_tree();
    agent.run_once();
    assert_eq!(
        agent.managed_tree(),
        before,
        "an expired release changed the root"
    );
    let r = last_report(&data, &machine);
    assert_eq!(
        (r["outcome"].as_str(), r["reason"].as_str()),
        (Some("refused"), Some("expired"))
    );
    assert_eq!(std::fs::read_to_string(&charte).unwrap(), "Charte v3\n");

    // The server holds every report once, in the agent's order.
    let reports = data.reports(&machine);
    let summary: Vec<(String, u64)> = reports
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap().to_owned(),
                r["version"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("applied", 1),
        ("refused", 2),
        ("applied", 3),
        ("refused", 1),
        ("refused", 4),
    ];
    assert_eq!(summary, expected.map(|(o, v)| (o.to_owned(), v)).to_vec());
    let seqs: Vec<u64> = reports.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    server.stop();
}

#[test]
fn a_machine_waiting_for_approval_gets_its_profiles_once_approved() {
    let data = ServerData::with_school_flags(&["--require-approval"]);
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);
    let out = agent.enroll(&server, &data, &data.token());
    assert!(out.contains("approbation"), "{out}");
    data.publish(NAME, &profile(1, "Charte v1", &in_a_year()));
    data.assign(&[NAME]);

    let before = agent.managed_tree();
    agent.run_once();
    assert_eq!(
        agent.managed_tree(),
        before,
        "a pending machine applied a profile"
    );
    let status = agent.status();
    assert_eq!(status["daemon"]["machine_status"], "pending");
    let text = String::from_utf8_lossy(&agent.run(&["status"]).stdout).into_owned();
    assert!(text.contains("en attente d'approbation"), "{text}");

    let machine = agent.machine_id();
    data.cli(&["machine", "approve", &machine]);
    agent.run_once();
    let charte = agent.root().join("etc/ecole/charte.txt");
    assert_eq!(std::fs::read_to_string(charte).unwrap(), "Charte v1\n");
    assert_eq!(last_report(&data, &machine)["outcome"], "applied");
    server.stop();
}

#[test]
fn a_failing_apply_is_retried_reported_once_and_converges_when_fixed() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);
    agent.enroll(&server, &data, &data.token());
    let machine = agent.machine_id();
    // `/srv` is a file on this machine: the directory /srv/classe cannot be made.
    std::fs::write(agent.root().join("srv"), "pas un dossier").unwrap();
    data.publish(NAME, &profile(1, "Charte v1", &in_a_year()));
    data.assign(&[NAME]);

    agent.run_once();
    let r = last_report(&data, &machine);
    assert_eq!(r["outcome"], "failed", "{r}");
    // Retried at the next check-in, failing the same way: not re-reported.
    agent.run_once();
    assert_eq!(data.reports(&machine).len(), 1);

    // Fixed on the machine: the next check-in converges and says so.
    std::fs::remove_file(agent.root().join("srv")).unwrap();
    agent.run_once();
    assert_eq!(last_report(&data, &machine)["outcome"], "applied");
    assert!(agent.root().join("srv/classe").is_dir());
    assert_eq!(data.reports(&machine).len(), 2);
    server.stop();
}
