//! The operator's command line, run as the real binary.

mod common;

use common::*;

#[test]
fn init_is_idempotent_and_prints_what_agents_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let dir = dir.to_str().unwrap();
    let first = cli(&[
        "init",
        "--data-dir",
        dir,
        "--hostname",
        "nird.example.org",
        "--hostname",
        "127.0.0.1",
    ]);
    assert!(
        first.contains("Mot de passe (affiché une seule fois)"),
        "{first}"
    );
    let fingerprint = first.lines().last().unwrap().to_owned();
    assert!(nird_proto::hash::is_sha256_hex(&fingerprint), "{first}");
    assert_eq!(cli(&["fingerprint", "--data-dir", dir]).trim(), fingerprint);

    let ca_before = std::fs::read(tmp.path().join("data/tls/ca.crt")).unwrap();
    let db_before = std::fs::read(tmp.path().join("data/nird.db")).unwrap();
    let second = cli(&["init", "--data-dir", dir]);
    assert!(second.contains("déjà initialisé"), "{second}");
    assert!(!second.contains("Mot de passe"));
    assert!(second.contains(&fingerprint));
    assert_eq!(
        std::fs::read(tmp.path().join("data/tls/ca.crt")).unwrap(),
        ca_before
    );
    assert_eq!(
        std::fs::read(tmp.path().join("data/nird.db")).unwrap(),
        db_before
    );

    // Secrets are private.
    use std::os::unix::fs::PermissionsExt as _;
    let db_mode = std::fs::metadata(tmp.path().join("data/nird.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(db_mode & 0o077, 0, "database readable by others");
    for key in ["ca.key", "server.key"] {
        let mode = std::fs::metadata(tmp.path().join("data/tls").join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{key} readable by others");
    }
    // A bad host name is refused and creates nothing.
    let other = tmp.path().join("other");
    cli_fails(&[
        "init",
        "--data-dir",
        other.to_str().unwrap(),
        "--hostname",
        "pas un nom",
    ]);
    assert!(!other.exists());
}

#[test]
fn token_create_prints_the_token_alone_and_bad_input_changes_nothing() {
    let f = Fixture::new();
    let out = cli_raw(&[
        "token",
        "create",
        "--data-dir",
        f.dir(),
        "--school",
        UAI,
        "--uses",
        "3",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    assert_eq!(stdout.trim().len(), 43);

    // Wrong check letter, unknown school, past expiry, zero uses: refused
    // with a French sentence, non-zero exit, no token created.
    for args in [
        &["--school", "0620056A"][..],
        &["--school", "0750001U"][..],
        &["--school", UAI, "--expires", "2001-01-01"][..],
        &["--school", UAI, "--uses", "0"][..],
    ] {
        let mut all = vec!["token", "create", "--data-dir", f.dir()];
        all.extend_from_slice(args);
        let out = cli_raw(&all);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.is_empty());
    }
    let err = String::from_utf8(
        cli_raw(&[
            "token",
            "create",
            "--data-dir",
            f.dir(),
            "--school",
            "0620056A",
        ])
        .stderr,
    )
    .unwrap();
    assert!(err.contains("lettre de contrôle"), "{err}");
    let list = cli(&["token", "list", "--data-dir", f.dir()]);
    assert_eq!(list.lines().count(), 1);
    // Without --expires a token still expires (7 days), as enrolment
    // tokens always do.
    assert!(
        list.contains("actif") && !list.contains("expire : jamais"),
        "{list}"
    );

    // Schools: duplicate refused, list shows one.
    let dup = cli_raw(&[
        "school",
        "add",
        "--data-dir",
        f.dir(),
        "--uai",
        UAI,
        "--name",
        "X",
        "--commune",
        "Y",
        "--academie",
        "Z",
        "--kind",
        "lycee",
    ]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("existe déjà"));
    assert_eq!(
        cli(&["school", "list", "--data-dir", f.dir()])
            .lines()
            .count(),
        1
    );

    // Users: roles need their scope.
    assert!(
        !cli_raw(&[
            "user",
            "add",
            "--data-dir",
            f.dir(),
            "marie",
            "--role",
            "school"
        ])
        .status
        .success()
    );
    let out = cli(&[
        "user",
        "add",
        "--data-dir",
        f.dir(),
        "marie",
        "--role",
        "school",
        "--school",
        UAI,
    ]);
    assert!(out.contains("Mot de passe"));
    assert!(
        !cli_raw(&[
            "user",
            "add",
            "--data-dir",
            f.dir(),
            "marie",
            "--role",
            "admin"
        ])
        .status
        .success()
    );
    let out = cli(&[
        "user",
        "add",
        "--data-dir",
        f.dir(),
        "paul",
        "--role",
        "auditor",
        "--territory",
        "Académie de Lille",
    ]);
    assert!(out.contains("paul"));

    // Every change above is in the audit log, by the CLI user.
    let audit = cli(&["audit", "--data-dir", f.dir()]);
    let actions: Vec<&str> = audit
        .lines()
        .map(|l| l.split('\t').nth(2).unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user.add",
            "school.add",
            "token.create",
            "user.add",
            "user.add"
        ],
        "{audit}"
    );
    // The admin account is made by init; everything after by the CLI user.
    assert!(audit.lines().next().unwrap().contains("\tinit\t"));
    assert!(audit.lines().skip(1).all(|l| l.contains("cli:testeur")));

    // Commands on a directory that was never initialised say so.
    let out = cli_raw(&[
        "school",
        "list",
        "--data-dir",
        f.tmp.path().join("nowhere").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("init"));
}
