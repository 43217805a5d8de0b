//! The attack of issue 8 (hole 1) for real: as root, on a real `/` (inside a
//! throwaway Debian chroot), a pupil who owns a directory above managed
//! paths replaces them by links to `/etc` and `/root`; the real
//! `nird-agent apply --root / --now` refuses each of them, says why, and
//! writes nothing through them.
//!
//! Shares the chroot of `apply_apt` (`support::chroot`, built once with
//! debootstrap). Needs root, `debootstrap` and the mirror; without them it
//! prints why and skips.

mod apply_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use apply_support::support::chroot::debian_chroot;
use apply_support::*;
use nird_proto::api::{ApplyOutcome, ApplyReport, ResourceStatus};

/// The pupil: owns `/srv/classe`, nothing else.
const PUPIL: &str = "eleve-malin";
/// Where the releases are given to the agent, inside the chroot.
const RELEASES: &str = "/tmp/nird-liens";

fn in_chroot(root: &Path, args: &[&str]) -> Output {
    Command::new("chroot")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn checked(root: &Path, args: &[&str]) -> String {
    let out = in_chroot(root, args);
    assert!(
        out.status.success(),
        "chroot {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `args` inside the chroot as the pupil (uid and gid only, as a
/// logged-in pupil would).
fn as_pupil(root: &Path, ids: &str, args: &[&str]) -> Output {
    Command::new("chroot")
        .arg(format!("--userspec={ids}"))
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

/// The profile: a file and a directory under `/srv/classe` (the pupil's),
/// a user whose home is there too, and one file elsewhere that must apply.
fn profile() -> String {
    // The command line runs at the real clock: a near expiry.
    let expires = time::OffsetDateTime::now_utc().date() + time::Duration::days(60);
    format!(
        r#"[profile]
name = "liens"
version = 1
expires = {expires}
description = "Documents de la classe"
audience = "all"

[[file]]
path = "/srv/classe/notes/charte.txt"
content = "Charte de la classe\n"
mode = "0666"

[[directory]]
path = "/srv/classe/partage"
mode = "1777"

[[user]]
name = "invite"
home = "/srv/classe/maison/invite"

[[file]]
path = "/srv/nird-temoin.txt"
content = "appliqué\n"
"#
    )
}

/// Copies the files of `from` (and of its subdirectories) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Leaves the chroot as `apply_apt` expects it (and as this test starts).
fn clean(root: &Path) {
    let _ = in_chroot(root, &["userdel", PUPIL]);
    let _ = in_chroot(root, &["userdel", "invite"]);
    // (`root/invite`, `etc/charte.txt`: what an agent that follows links
    // would have left.)
    for dir in [
        "srv/classe",
        "var/lib/nird-agent",
        "etc/nird",
        "root/invite",
        &RELEASES[1..],
    ] {
        let _ = std::fs::remove_dir_all(root.join(dir));
    }
    for file in ["nird-agent", "srv/nird-temoin.txt", "etc/charte.txt"] {
        let _ = std::fs::remove_file(root.join(file));
    }
}

#[test]
fn a_pupils_links_on_the_real_root_are_refused() {
    let (root, _lock) = match debian_chroot() {
        Ok(r) => r,
        Err(why) => {
            eprintln!("SKIPPED: symlink chroot test: {why}");
            return;
        }
    };
    clean(&root);

    // The real agent, inside the chroot (host and chroot are the same
    // Debian release: the same libc).
    std::fs::copy(env!("CARGO_BIN_EXE_nird-agent"), root.join("nird-agent")).unwrap();
    std::fs::set_permissions(
        root.join("nird-agent"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let version = checked(&root, &["/nird-agent", "--version"]);
    assert!(version.starts_with("nird-agent"), "{version}");

    // The pupil, owner of /srv/classe.
    checked(&root, &["useradd", "--no-create-home", PUPIL]);
    let uid: u32 = checked(&root, &["id", "-u", PUPIL]).parse().unwrap();
    let gid: u32 = checked(&root, &["id", "-g", PUPIL]).parse().unwrap();
    assert_ne!(uid, 0);
    let ids = format!("{uid}:{gid}");
    std::fs::create_dir_all(root.join("srv/classe")).unwrap();
    std::os::unix::fs::chown(root.join("srv/classe"), Some(uid), Some(gid)).unwrap();
    // The pupil cannot write /etc or /root themselves...
    assert!(
        !as_pupil(&root, &ids, &["touch", "/etc/charte.txt"])
            .status
            .success()
    );
    assert!(!as_pupil(&root, &ids, &["ls", "/root"]).status.success());
    // ...but can plant links in their own directory, where the profile
    // writes as root.
    for (target, link) in [
        ("/etc", "/srv/classe/notes"),
        ("/root", "/srv/classe/partage"),
        ("/root", "/srv/classe/maison"),
    ] {
        let out = as_pupil(&root, &ids, &["ln", "-s", target, link]);
        assert!(out.status.success(), "{out:?}");
        let meta = std::fs::symlink_metadata(root.join(&link[1..])).unwrap();
        assert!(meta.file_type().is_symlink() && meta.uid() == uid);
    }

    // Signed releases (and their signed index) given on a "USB key" inside
    // the chroot; the machine trusts their signer.
    let signer = Signer::new();
    install_keyring(&root, &signer);
    let releases = Releases::for_real_clock();
    releases.publish(&signer, "liens", &profile());
    copy_dir(releases.dir.path(), &root.join(&RELEASES[1..]));

    let before = (
        snapshot(&root.join("etc")),
        snapshot(&root.join("root")),
        std::fs::metadata(root.join("etc")).unwrap().mode(),
        std::fs::metadata(root.join("root")).unwrap().mode(),
        std::fs::metadata(root.join("root")).unwrap().uid(),
    );

    // The plan already sees the links.
    let plan = in_chroot(
        &root,
        &["/nird-agent", "--root", "/", "plan", "--from", RELEASES],
    );
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    for link in [
        "/srv/classe/notes",
        "/srv/classe/partage",
        "/srv/classe/maison",
    ] {
        assert!(
            plan_text.contains(&format!("lien symbolique refusé : {link} est un lien")),
            "{plan_text}{}",
            String::from_utf8_lossy(&plan.stderr)
        );
    }

    let out = in_chroot(
        &root,
        &[
            "/nird-agent",
            "--root",
            "/",
            "apply",
            "--from",
            RELEASES,
            "--now",
            "--json",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<ApplyReport> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome, ApplyOutcome::Failed);
    let results: Vec<(&str, ResourceStatus, Option<&str>)> = reports[0]
        .resources
        .iter()
        .map(|r| (r.id.as_str(), r.status, r.message.as_deref()))
        .collect();
    assert_eq!(
        results,
        [
            (
                "user:invite",
                ResourceStatus::Failed,
                Some("lien symbolique refusé : /srv/classe/maison est un lien")
            ),
            (
                "directory:/srv/classe/partage",
                ResourceStatus::Failed,
                Some("lien symbolique refusé : /srv/classe/partage est un lien")
            ),
            (
                "file:/srv/classe/notes/charte.txt",
                ResourceStatus::Failed,
                Some("lien symbolique refusé : /srv/classe/notes est un lien")
            ),
            ("file:/srv/nird-temoin.txt", ResourceStatus::Changed, None),
        ]
    );

    // Nothing went through the links: no /etc/charte.txt, /etc and /root
    // as they were (entries, contents, modes, owners), no account.
    assert!(!root.join("etc/charte.txt").exists());
    assert!(!root.join("root/invite").exists());
    let after = (
        snapshot(&root.join("etc")),
        snapshot(&root.join("root")),
        std::fs::metadata(root.join("etc")).unwrap().mode(),
        std::fs::metadata(root.join("root")).unwrap().mode(),
        std::fs::metadata(root.join("root")).unwrap().uid(),
    );
    assert!(after == before, "/etc or /root changed");
    // The rest of the profile was applied, on the real root.
    assert_eq!(
        std::fs::read_to_string(root.join("srv/nird-temoin.txt")).unwrap(),
        "appliqué\n"
    );

    clean(&root);
}
