//! The first hour of a new user, with the real binaries: the traps found
//! by following the README literally, each now answered by the product in
//! French (issue « Packaging and enrolment at scale », first-hour list).

use std::process::{Command, Stdio};

use nird_tests::*;

fn server_fails(args: &[&str]) -> String {
    let out = run_raw(&bin("nird-server"), args);
    assert!(!out.status.success(), "{args:?} succeeded");
    stderr(&out)
}

fn profile(name: &str, includes: &str) -> String {
    format!(
        "[profile]\nname = \"{name}\"\nversion = 1\nexpires = {}\n\
         description = \"Profil de test\"\naudience = \"all\"\nincludes = [{includes}]\n\n\
         [[directory]]\npath = \"/srv/{name}\"\nmode = \"0755\"\n",
        in_a_year()
    )
}

#[test]
fn keygen_without_a_terminal_says_what_to_do_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("cles");
    // `setsid`: a new session without a controlling terminal, as in a
    // script or a cron job.
    let out = Command::new("setsid")
        .arg(bin("nird-server"))
        .args(["profile", "keygen", "--out", s(&keys)])
        .env_remove("NIRD_KEY_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("setsid");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("pas de terminal"), "{err}");
    assert!(err.contains("--no-password"), "{err}");
    assert!(!err.contains("os error"), "{err}");
    assert!(!keys.exists(), "an empty key directory was left");
}

#[test]
fn usage_and_value_errors_are_one_french_sentence() {
    let data = ServerData::new();
    // clap's usage errors.
    let out = run_raw(
        &bin("nird-agent"),
        &["enroll", "--kit", "k.toml", "--server", "https://x"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("ne peut pas être donné avec"), "{err}");
    assert!(err.contains("Utilisation : "), "{err}");
    assert!(!err.contains("error:"), "{err}");
    let err = server_fails(&["token", "create", "--school", UAI, "--uses", "0"]);
    assert!(err.contains("il faut un nombre entre 1 et"), "{err}");
    let err = server_fails(&["machin"]);
    assert!(err.contains("commande inconnue « machin »"), "{err}");
    // `--expires 3x`: said once, without the parser's English.
    let err = server_fails(&[
        "token",
        "create",
        "--school",
        UAI,
        "--expires",
        "3x",
        "--data-dir",
        s(&data.data),
    ]);
    assert_eq!(err.matches("invalide").count(), 1, "{err}");
    assert!(!err.contains("component"), "{err}");
    // A quoted date in a profile: remove the quotes.
    let file = data.tmp.path().join("p.toml");
    std::fs::write(
        &file,
        profile("p", "").replace(
            &format!("expires = {}", in_a_year()),
            &format!("expires = \"{}\"", in_a_year()),
        ),
    )
    .unwrap();
    let out = run_raw(&bin("nird-server"), &["profile", "lint", s(&file)]);
    assert!(!out.status.success());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(text.contains("enlevez les guillemets"), "{text}");
}

#[test]
fn publish_refuses_missing_includes_and_assign_warns_replaces_and_caps() {
    let data = ServerData::new();
    // `primtux` includes `nird-base`, signed next to it but not published
    // on this server: refused, nothing stored.
    let dir = data.tmp.path().join("catalogue");
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("nird-base.toml");
    let primtux = dir.join("primtux.toml");
    std::fs::write(&base, profile("nird-base", "")).unwrap();
    std::fs::write(&primtux, profile("primtux", "\"nird-base\"")).unwrap();
    for file in [&base, &primtux] {
        run_ok(
            &bin("nird-server"),
            &[
                "profile",
                "sign",
                "--key",
                s(&data.keys.join("nird.key")),
                s(file),
            ],
        );
    }
    let err = server_fails(&[
        "profile",
        "publish",
        s(&primtux),
        "--data-dir",
        s(&data.data),
    ]);
    assert!(err.contains("« nird-base »"), "{err}");
    assert!(err.contains("publiez d'abord"), "{err}");
    assert!(!data.cli(&["profile", "list"]).contains("primtux"));
    // In the right order, both are accepted.
    data.cli(&["profile", "publish", s(&base)]);
    data.cli(&["profile", "publish", s(&primtux)]);

    // Assigning what is not published: allowed, loudly.
    let said = data.cli(&["assign", "--school", UAI, "primtux", "linux-nird"]);
    assert!(
        said.contains("ATTENTION : « linux-nird » pas publié"),
        "{said}"
    );
    // The whole list is replaced, and it says so.
    let said = data.cli(&["assign", "--school", UAI, "primtux"]);
    assert!(said.contains("remplacée : primtux"), "{said}");
    assert!(
        said.contains("avant : primtux, linux-nird")
            || said.contains("avant : linux-nird, primtux"),
        "{said}"
    );
    // More than agents accept: refused (agents refuse over MAX_ASSIGNED).
    let names: Vec<String> = (0..nird_proto::api::MAX_ASSIGNED)
        .map(|i| format!("profil-{i}"))
        .collect();
    let mut args = vec!["assign", "--school", UAI, "--data-dir", s(&data.data)];
    args.extend(names.iter().map(String::as_str));
    args.push("primtux");
    let err = server_fails(&args);
    assert!(
        err.contains(&format!("plus que les {}", nird_proto::api::MAX_ASSIGNED)),
        "{err}"
    );
    let kept = data.cli(&["assign", "--school", UAI, "primtux"]);
    assert!(kept.contains("avant : primtux)"), "{kept}");
}

#[test]
fn logs_carry_no_colour_codes_and_a_test_root_is_not_told_to_use_systemctl() {
    let data = ServerData::new();
    let server = ServerProcess::start(&data, free_port());
    let agent = AgentRoot::new(&data);
    let said = agent.enroll(&server, &data, &data.token());
    assert!(!said.contains("systemctl"), "{said}");
    assert!(said.contains("nird-agent --root"), "{said}");
    let out = agent.run_with_env(&["run", "--once"], &[("NIRD_LOG", "debug")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(!log.is_empty(), "debug logging wrote nothing");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI codes in the agent's log: {log:?}"
    );
    let log = server.log_text();
    assert!(log.contains("machine enrolled"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI codes in the server's log: {log:?}"
    );
    server.stop();
}

#[test]
fn publishing_the_same_keyring_twice_says_it_is_already_there() {
    let data = ServerData::new();
    // `ServerData::new` published keys/keyring.toml once.
    let keyring = data.keys.join("keyring.toml");
    assert!(keyring.is_file(), "no keyring at {}", keyring.display());
    let again = data.cli(&["keyring", "publish", s(&keyring)]);
    assert!(again.contains("déjà publié à l'identique"), "{again}");
    let shown = data.cli(&["keyring", "show"]);
    assert!(shown.contains("Trousseau version 1"), "{shown}");
}
