//! `nird-agent enroll` failures with the real binaries: each is one French
//! sentence, a non-zero exit, and nothing written under the root.

use nird_tests::*;

fn refused(agent: &AgentRoot, args: &[&str], needle: &str) {
    let out = agent.run(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = stderr(&out);
    assert!(err.contains(needle), "« {err} » lacks « {needle} »");
    assert_eq!(err.trim().lines().count(), 1, "not one sentence: {err}");
    let head: String = err.chars().skip(13).take(30).collect();
    assert_eq!(err.matches(&head).count(), 1, "said twice: {err}");
    assert!(!agent.root().join("etc/nird/agent.toml").exists());
}

#[test]
fn enrolment_failures_are_one_french_sentence() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);
    let url = server.url();
    let token = data.token();
    let fp = data.fingerprint.clone();
    let gone = format!("https://127.0.0.1:{}", free_port());
    let expired = data.token();
    data.expire_token(&expired);
    let wrong_fp = "ab".repeat(32);
    // (server URL, token, CA fingerprint, what the sentence must say)
    let cases: [(&str, &str, &str, &str); 6] = [
        (&url, "pas-un-jeton", &fp, "jeton d'enrôlement refusé"),
        // Tokens are random and may start with '-': still a token, not a flag.
        (&url, "-Zm9vYmFy", &fp, "jeton d'enrôlement refusé"),
        (&url, &token, &wrong_fp, "empreinte"),
        (&url, &token, "12:34", "invalide"),
        (&gone, &token, &fp, "injoignable"),
        (&url, &expired, &fp, "expiré"),
    ];
    for (server_url, enrol_token, pin, needle) in cases {
        refused(
            &agent,
            &[
                "enroll",
                "--server",
                server_url,
                "--token",
                enrol_token,
                "--ca-fingerprint",
                pin,
            ],
            needle,
        );
    }
    // The token was never spent: it still enrols.
    agent.enroll(&server, &data, &token);
    // Enrolled: asks for --force.
    let out = agent.run(&[
        "enroll",
        "--server",
        &url,
        "--token",
        &data.token(),
        "--ca-fingerprint",
        &fp,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    // Status in French.
    let out = agent.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("enrôlée auprès de"), "{text}");
}

#[test]
fn every_command_needs_enrolment_and_says_so() {
    let data = ServerData::new();
    let agent = AgentRoot::new(&data);
    let out = agent.run(&["run", "--once"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pas enrôlée"), "{}", stderr(&out));
    let out = agent.run(&["status"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("non enrôlée"));
}

#[test]
fn the_machine_secret_never_reaches_the_logs_even_at_trace_level() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);
    agent.enroll(&server, &data, &data.token());
    let credential: serde_json::Value = serde_json::from_slice(
        &std::fs::read(agent.root().join("var/lib/nird-agent/credential")).unwrap(),
    )
    .unwrap();
    let secret = credential["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 16);
    let out = agent.run_with_env(&["run", "--once"], &[("NIRD_LOG", "trace")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = stderr(&out);
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "not verbose: {logs}"
    );
    assert!(!logs.contains(&secret), "the secret was logged");
    server.stop();
}

#[test]
fn several_agents_share_one_machine_with_their_own_roots() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let agents: Vec<AgentRoot> = (0..3).map(|_| AgentRoot::new(&data)).collect();
    for a in &agents {
        a.enroll(&server, &data, &data.token());
    }
    // Their cycles at the same time.
    let children: Vec<_> = agents
        .iter()
        .map(|a| {
            std::process::Command::new(bin("nird-agent"))
                .args(["run", "--once", "--root", s(a.root())])
                .env_remove("NOTIFY_SOCKET")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let mut ids: Vec<String> = agents.iter().map(AgentRoot::machine_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each root is its own machine");
    let list = data.cli(&["machine", "list"]);
    for id in &ids {
        assert!(list.contains(id.as_str()), "{id} missing from:\n{list}");
    }
    for a in &agents {
        assert!(a.status()["daemon"]["last_checkin_at"].is_string());
    }
    server.stop();
}

#[test]
fn a_retired_machine_is_told_so() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);
    agent.enroll(&server, &data, &data.token());
    agent.run_once();
    data.cli(&["machine", "retire", &agent.machine_id()]);
    let out = agent.run(&["run", "--once"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("retirée du parc"), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&agent.run(&["status"]).stdout).into_owned();
    assert!(text.contains("retirée du parc"), "{text}");
    server.stop();
}
