//! The Debian packages, as an administrator installs them: both are built by
//! `packaging/build-debs` (with `NIRD_DEB_PROFILE=dev` and the debug
//! binaries `cargo build --workspace --bins` left: the release builds take
//! far longer than this test should, and the packages hold the same files)
//! and installed with `apt-get install ./….deb` into the throwaway Debian
//! chroot the agent's apply tests use (`agent/tests/support/chroot.rs`,
//! shared through `#[path]`; built once with debootstrap, locked while in
//! use). Checked there: files, owners, modes, conffiles, the units
//! (`systemd-analyze verify` where it runs), `nird-server init` as the
//! `nird` user, `nird-agent --version`; remove keeps /var/lib/nird-server,
//! reinstall over it works, purge deletes it and the user. Skipped with a
//! clear message without root, debootstrap, a mirror or cargo-deb.

#[path = "../../agent/tests/support/chroot.rs"]
mod chroot;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// `sh -c SCRIPT` inside the chroot, no service starts, no prompts.
fn in_root(root: &Path, script: &str) -> Output {
    Command::new("chroot")
        .arg(root)
        .args(["sh", "-c", script])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap()
}

fn in_root_ok(root: &Path, script: &str) -> String {
    let out = in_root(root, script);
    assert!(
        out.status.success(),
        "in chroot: {script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds both packages once; `None` (and why) when cargo-deb is missing.
fn build_debs() -> Result<(PathBuf, PathBuf), String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nird-debs");
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = Command::new(repo.join("packaging/build-debs"))
        .arg(&out_dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("NIRD_DEB_PROFILE", "dev")
        .env("NIRD_DEB_NO_BUILD", "1")
        .output()
        .map_err(|e| format!("cannot run packaging/build-debs: {e}"))?;
    if out.status.code() == Some(77) {
        return Err(format!(
            "cargo-deb is missing and cannot be installed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    assert!(
        out.status.success(),
        "packaging/build-debs failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines().rev();
    let agent = PathBuf::from(lines.next().unwrap_or_default());
    let server = PathBuf::from(lines.next().unwrap_or_default());
    assert!(
        server.is_file() && agent.is_file(),
        "build-debs printed:\n{stdout}"
    );
    Ok((server, agent))
}

fn mode_owner(root: &Path, path: &str) -> (u32, String, String) {
    let meta = std::fs::metadata(root.join(path.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let user = in_root_ok(root, &format!("stat -c %U {path}"));
    let group = in_root_ok(root, &format!("stat -c %G {path}"));
    (
        meta.mode() & 0o7777,
        user.trim().to_owned(),
        group.trim().to_owned(),
    )
}

#[test]
fn both_packages_install_remove_and_purge_in_a_debian_chroot() {
    let (root, _lock) = match chroot::debian_chroot() {
        Ok(r) => r,
        Err(why) => {
            eprintln!("SKIPPED: packaging chroot test: {why}");
            return;
        }
    };
    let (server_deb, agent_deb) = match build_debs() {
        Ok(debs) => debs,
        Err(why) => {
            eprintln!("SKIPPED: packaging chroot test: {why}");
            return;
        }
    };
    // lintian: no error (warnings are printed). Where lintian is missing,
    // say so and go on with the rest.
    match Command::new("lintian")
        .args(["--fail-on", "error", "--tag-display-limit", "0"])
        .arg(&server_deb)
        .arg(&agent_deb)
        .output()
    {
        Err(e) => eprintln!("lintian unavailable ({e}): scripts/install-deps.sh installs it"),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            eprintln!("lintian:\n{text}");
            assert!(
                out.status.success() && !text.lines().any(|l| l.starts_with("E: ")),
                "lintian errors:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // A clean start on the reused chroot.
    let _ = in_root(&root, "dpkg --purge nird-server nird-agent");
    let debs = root.join("tmp/nird-debs");
    let _ = std::fs::remove_dir_all(&debs);
    std::fs::create_dir_all(&debs).unwrap();
    for deb in [&server_deb, &agent_deb] {
        std::fs::copy(deb, debs.join(deb.file_name().unwrap())).unwrap();
    }
    let server_name = server_deb
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let agent_name = agent_deb
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let install = format!(
        "cd /tmp/nird-debs && apt-get update -qq && \
         apt-get install -y -qq --no-install-recommends ./{server_name} ./{agent_name}"
    );
    in_root_ok(&root, &install);

    // Files, owners and modes.
    for (path, mode) in [
        ("/usr/bin/nird-server", 0o755),
        ("/usr/bin/nird-agent", 0o755),
        ("/etc/nird-server/server.toml", 0o644),
        ("/usr/share/man/man1/nird-server.1.gz", 0o644),
        ("/usr/share/man/man1/nird-server-serve.1.gz", 0o644),
        ("/usr/share/man/man1/nird-agent.1.gz", 0o644),
        ("/usr/share/bash-completion/completions/nird-server", 0o644),
        ("/usr/share/bash-completion/completions/nird-agent", 0o644),
        ("/usr/share/zsh/vendor-completions/_nird-server", 0o644),
        (
            "/usr/share/fish/vendor_completions.d/nird-agent.fish",
            0o644,
        ),
        ("/usr/share/doc/nird-server/copyright", 0o644),
        ("/usr/share/doc/nird-agent/changelog.Debian.gz", 0o644),
        ("/usr/lib/systemd/system/nird-server.service", 0o644),
        ("/usr/lib/systemd/system/nird-agent.service", 0o644),
    ] {
        let (m, user, group) = mode_owner(&root, path);
        assert_eq!(
            (m, user.as_str(), group.as_str()),
            (mode, "root", "root"),
            "{path}"
        );
    }
    assert_eq!(
        mode_owner(&root, "/var/lib/nird-server"),
        (0o750, "nird".to_owned(), "nird".to_owned())
    );
    // The man page is the clap definition's, in French.
    let page = in_root_ok(&root, "zcat /usr/share/man/man1/nird-server-serve.1.gz");
    assert!(page.contains("server.toml"), "{page}");
    // The system user: no login, its home is the data directory.
    let passwd = in_root_ok(&root, "getent passwd nird");
    assert!(passwd.contains(":/var/lib/nird-server:"), "{passwd}");
    assert!(passwd.trim_end().ends_with("nologin"), "{passwd}");
    // Conffiles.
    let conffiles = in_root_ok(&root, "dpkg-query -W -f='${Conffiles}' nird-server");
    assert!(
        conffiles.contains("/etc/nird-server/server.toml"),
        "{conffiles}"
    );
    // The installed units, checked by the host's systemd-analyze (a minbase
    // chroot has no systemd). The binaries they start and their man pages
    // are in the chroot, not on the host: only those complaints are expected.
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(root.join("usr/lib/systemd/system/nird-server.service"))
        .arg(root.join("usr/lib/systemd/system/nird-agent.service"))
        .output()
    {
        Err(e) => eprintln!("systemd-analyze unavailable ({e}): units not verified"),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stderr);
            let problems: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("nird-"))
                .filter(|l| !l.contains("is not executable") && !l.contains("Command 'man "))
                .collect();
            assert!(problems.is_empty(), "systemd-analyze verify:\n{text}");
        }
    }
    // The shipped configuration is read (all defaults) by the real binary.
    let help = in_root_ok(&root, "nird-server serve --help");
    assert!(help.contains("--config"), "{help}");

    // `init` as nird, in the packaged data directory.
    // No --data-dir: the one server.toml gives (its default).
    let init = in_root_ok(
        &root,
        "runuser -u nird -- nird-server init --hostname nird.example.org",
    );
    assert!(
        init.contains("Serveur initialisé dans /var/lib/nird-server"),
        "{init}"
    );
    // root initialising nird's data would leave root-owned files there.
    let as_root = in_root(&root, "nird-server init");
    assert!(!as_root.status.success());
    let err = String::from_utf8_lossy(&as_root.stderr);
    assert!(err.contains("runuser -u nird --"), "{err}");
    // Other commands may run as root, without --data-dir.
    let schools = in_root(&root, "nird-server school list");
    assert!(
        schools.status.success(),
        "{}",
        String::from_utf8_lossy(&schools.stderr)
    );
    // ...and leave nothing nird cannot use.
    in_root_ok(&root, "runuser -u nird -- nird-server school list");
    let root_owned = in_root_ok(&root, "find /var/lib/nird-server -user root");
    assert!(root_owned.trim().is_empty(), "root-owned: {root_owned}");
    let (_, db_user, _) = mode_owner(&root, "/var/lib/nird-server/nird.db");
    assert_eq!(db_user, "nird");
    let version = in_root_ok(&root, "nird-agent --version");
    assert!(version.starts_with("nird-agent "), "{version}");

    // Remove keeps the data, the user and the conffile.
    in_root_ok(&root, "apt-get remove -y -qq nird-server nird-agent");
    assert!(root.join("var/lib/nird-server/nird.db").is_file());
    assert!(root.join("etc/nird-server/server.toml").is_file());
    assert!(!root.join("usr/bin/nird-server").exists());
    in_root_ok(&root, "getent passwd nird");

    // Reinstall over the existing data: init finds it.
    in_root_ok(&root, &install);
    let again = in_root_ok(
        &root,
        "runuser -u nird -- nird-server init --data-dir /var/lib/nird-server",
    );
    assert!(again.contains("déjà initialisé"), "{again}");

    // Purge deletes the data and the user.
    in_root_ok(&root, "apt-get purge -y -qq nird-server nird-agent");
    assert!(!root.join("var/lib/nird-server").exists());
    assert!(!root.join("etc/nird-server").exists());
    assert!(!in_root(&root, "getent passwd nird").status.success());
    assert!(!in_root(&root, "getent group nird").status.success());
    let _ = std::fs::remove_dir_all(&debs);
}
