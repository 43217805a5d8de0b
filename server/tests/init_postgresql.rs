//! `nird-server init --database postgres://…`: a server on PostgreSQL from
//! its first command, without a SQLite file; the `admin` account lives in
//! the database and logs in on `serve`.

mod common;

use common::serve::ServeProcess;
use common::*;
use nird_server::data_dir::DataDir;

/// The line after `marker` in `out`, or the rest of its line.
fn value_after<'o>(out: &'o str, marker: &str) -> &'o str {
    out.lines()
        .find_map(|l| l.split_once(marker).map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("no « {marker} » in:\n{out}"))
}

/// Logs in on the dashboard as `admin`; the status (303 when accepted).
fn login(server: &ServeProcess, data: &DataDir, password: &str) -> u16 {
    Client::new(&data.ca_cert())
        .post_form(
            &server.url("/connexion"),
            &[("login", "admin"), ("password", password)],
        )
        .status
}

/// `init --database url` in a new directory: the temporary directory, the
/// data directory in it, and what `init` printed.
fn init_in_new_directory(url: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let out = cli(&[
        "init",
        "--data-dir",
        root.to_str().unwrap(),
        "--database",
        url,
    ]);
    (tmp, root, out)
}

#[test]
fn init_makes_a_server_on_postgresql() {
    let Some(cluster) = common::pg::shared() else {
        return;
    };
    let url = cluster.database();
    let (tmp, root, out) = init_in_new_directory(&url);
    let dir = root.to_str().unwrap();
    assert!(out.contains("base postgres://nird@127.0.0.1"), "{out}");
    let password = value_after(&out, "une seule fois) : ").to_owned();
    let fingerprint = out.lines().last().unwrap().trim().to_owned();
    let data = DataDir::new(&root);
    assert_eq!(
        nird_server::tls::fingerprint(&data.ca_cert()).unwrap(),
        fingerprint
    );
    assert!(data.postgresql_marker().is_file());
    assert!(!data.database().exists(), "no SQLite file");
    assert!(data.is_initialised());
    // Without --database, the commands refuse rather than create an empty
    // SQLite database beside the marker.
    let err = cli_fails(&["user", "list", "--data-dir", dir]);
    assert!(err.contains("sert une base PostgreSQL"), "{err}");
    assert!(!data.database().exists(), "no SQLite file");
    // The account is in PostgreSQL.
    let users = cli(&["user", "list", "--data-dir", dir, "--database", &url]);
    assert!(users.contains("admin"), "{users}");
    assert_eq!(
        cluster
            .psql(
                url.rsplit('/').next().unwrap(),
                "SELECT COUNT(*) FROM users WHERE login = 'admin'"
            )
            .trim(),
        "1"
    );

    // Again: nothing changes, no new password.
    let again = cli(&["init", "--data-dir", dir, "--database", &url]);
    assert!(again.contains("déjà initialisé"), "{again}");
    assert!(!again.contains("une seule fois"), "{again}");
    assert_eq!(again.lines().last().unwrap().trim(), fingerprint);

    // `serve` runs on it, and the password shown logs in.
    let f = Fixture { tmp, data };
    let server = ServeProcess::start_with(&f, &["--database", &url]);
    assert_eq!(login(&server, &f.data, &password), 303);
    assert_eq!(login(&server, &f.data, "pas-le-bon"), 401);
    drop(server);

    // Another directory on the same database: refused, nothing written
    // (its own CA would not be the one agents trust), whether it has no
    // certificates or certificates of its own.
    let other = tempfile::tempdir().unwrap();
    let other_dir = other.path().join("data");
    let err = cli_fails(&[
        "init",
        "--data-dir",
        other_dir.to_str().unwrap(),
        "--database",
        &url,
    ]);
    assert!(err.contains("copiez le répertoire de données"), "{err}");
    assert!(!other_dir.exists());
    let own_ca = Fixture::new();
    std::fs::remove_file(own_ca.data.database()).unwrap();
    let err = cli_fails(&["init", "--data-dir", own_ca.dir(), "--database", &url]);
    assert!(err.contains("copiez le répertoire de données"), "{err}");
    assert!(!own_ca.data.postgresql_marker().exists());

    // A directory already initialised on SQLite: its fleet is in that file,
    // `db copy` moves it; init refuses and says so, creating nothing.
    let g = Fixture::new();
    let fresh = cluster.database();
    let err = cli_fails(&["init", "--data-dir", g.dir(), "--database", &fresh]);
    assert!(err.contains("db copy --from sqlite:"), "{err}");
    assert!(!g.data.postgresql_marker().exists());
    assert_eq!(
        cluster
            .psql(
                fresh.rsplit('/').next().unwrap(),
                "SELECT to_regclass('users') IS NULL"
            )
            .trim(),
        "t",
        "nothing created in the database"
    );

    // Not a PostgreSQL address: refused, nothing written.
    let bad = tempfile::tempdir().unwrap();
    let bad_dir = bad.path().join("data");
    let err = cli_fails(&[
        "init",
        "--data-dir",
        bad_dir.to_str().unwrap(),
        "--database",
        "mysql://root@localhost/nird",
    ]);
    assert!(err.contains("n'est pas une adresse PostgreSQL"), "{err}");
    assert!(!bad_dir.exists());
}

/// An `init --database` stopped after it created `admin` but before its
/// marker (the state it leaves: the pending file with the password, no
/// marker) is finished by the next `init`, which shows the same password;
/// a pending password that is not the account's is another directory's
/// account, and stays refused.
#[test]
fn an_interrupted_init_is_finished_by_the_next() {
    let Some(cluster) = common::pg::shared() else {
        return;
    };
    let url = cluster.database();
    let (tmp, root, out) = init_in_new_directory(&url);
    let dir = root.to_str().unwrap();
    let data = DataDir::new(&root);
    let password = value_after(&out, "une seule fois) : ").to_owned();
    let fingerprint = out.lines().last().unwrap().trim().to_owned();
    assert!(
        !data.postgresql_init_pending().exists(),
        "removed at the end"
    );

    // Stopped between the account and the marker.
    std::fs::remove_file(data.postgresql_marker()).unwrap();
    std::fs::write(data.postgresql_init_pending(), format!("{password}\n")).unwrap();
    let again = cli(&["init", "--data-dir", dir, "--database", &url]);
    assert_eq!(
        value_after(&again, "une seule fois) : "),
        password,
        "{again}"
    );
    assert_eq!(again.lines().last().unwrap().trim(), fingerprint);
    assert!(data.postgresql_marker().is_file());
    assert!(!data.postgresql_init_pending().exists());

    // Stopped after the marker: already initialised, the stale password
    // file goes.
    std::fs::write(data.postgresql_init_pending(), format!("{password}\n")).unwrap();
    let done = cli(&["init", "--data-dir", dir, "--database", &url]);
    assert!(done.contains("déjà initialisé"), "{done}");
    assert!(!data.postgresql_init_pending().exists());

    // A pending password the account does not have: not this directory's
    // account, refused as before, nothing written.
    std::fs::remove_file(data.postgresql_marker()).unwrap();
    std::fs::write(data.postgresql_init_pending(), "pas-le-bon\n").unwrap();
    let err = cli_fails(&["init", "--data-dir", dir, "--database", &url]);
    assert!(err.contains("copiez le répertoire de données"), "{err}");
    assert!(!data.postgresql_marker().exists());

    // The account logs in with the password shown.
    std::fs::write(data.postgresql_marker(), "").unwrap();
    let f = Fixture { tmp, data };
    let server = ServeProcess::start_with(&f, &["--database", &url]);
    assert_eq!(login(&server, &f.data, &password), 303);
}
