//! The apply engine on temporary roots: files, directories, users and
//! groups applied and converged; refused releases (tampered, rolled back,
//! expired, blob mismatch, unknown key, wrong name, missing include) leave
//! the root byte for byte unchanged; an interrupted apply converges; a
//! symbolic link anywhere on a managed path (parent or last component, into
//! the root, out of it, dangling; planted before the plan or after it) is
//! refused with its reason and nothing is written through it.

mod apply_support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use apply_support::*;
use nird_agent::apply::journal::{Journal, JournalFile};
use nird_agent::apply::{DirectorySource, ProgressEvent, Verdict, apply_assigned, plan_assigned};
use nird_proto::api::{ApplyOutcome, ProfileRef, RefusalReason, ResourceStatus};

const WALLPAPER: &[u8] = b"\x89PNG not really, but binary \x00\x01\x02 bytes";

fn classe_profile(version: u64, expires: &str, wallpaper_sha: &str) -> String {
    format!(
        r#"[profile]
name = "classe"
version = {version}
expires = {expires}
description = "Poste de classe"
audience = "école"
includes = ["socle"]

[[group]]
name = "eleves"

[[user]]
name = "eleve"
full_name = "Élève"
groups = ["eleves"]
password = "empty"

[[directory]]
path = "/srv/classe"
mode = "0750"
owner = "eleve"
group = "eleves"

[[file]]
path = "/usr/share/nird/fond.png"
blob = {{ sha256 = "{wallpaper_sha}", size = {size} }}
mode = "0640"
group = "eleves"
"#,
        size = WALLPAPER.len()
    )
}

fn socle_profile(version: u64) -> String {
    format!(
        r#"[profile]
name = "socle"
version = {version}
expires = 2027-08-31
description = "Socle commun"
audience = "all"

[[file]]
path = "/etc/ecole/motd"
content = "Bienvenue sur un PC NIRD\n"
"#
    )
}

fn setup() -> (Signer, Releases, tempfile::TempDir) {
    let signer = Signer::new();
    let releases = Releases::new();
    let sha = releases.blob(WALLPAPER);
    releases.publish(&signer, "classe", &classe_profile(3, "2027-08-31", &sha));
    releases.publish(&signer, "socle", &socle_profile(1));
    let root = test_root(&signer);
    (signer, releases, root)
}

#[test]
fn files_directories_users_and_groups_apply_then_stay_unchanged() {
    let (_signer, releases, root) = setup();
    let r = root.path();
    let opts = options(r);
    let assigned = [
        ProfileRef {
            name: "classe".into(),
            version: 3,
        },
        ProfileRef {
            name: "socle".into(),
            version: 1,
        },
    ];

    let shadow_gid = std::fs::metadata(r.join("etc/shadow")).unwrap().gid();
    // Plan: everything to create, nothing written.
    let before = snapshot(r);
    let outcome = plan_assigned(&opts, &assigned, &releases.source()).unwrap();
    assert_eq!(snapshot(r), before, "plan must not write");
    let changed: Vec<&str> = outcome.plan.changes().map(|c| c.id.as_str()).collect();
    assert_eq!(
        changed,
        [
            "group:eleves",
            "user:eleve",
            "directory:/srv/classe",
            "file:/etc/ecole/motd",
            "file:/usr/share/nird/fond.png"
        ]
    );
    assert!(!outcome.plan.is_disruptive());

    let reports = apply(&opts, &releases, &["classe", "socle"]);
    assert_eq!(reports.len(), 2);
    for rep in &reports {
        assert_eq!(rep.outcome, ApplyOutcome::Applied, "{rep:?}");
        assert_eq!(rep.seq, 0);
    }
    // classe includes socle: its report covers socle's file too.
    let classe = &reports[0];
    assert_eq!(classe.version, 3);
    assert_eq!(classe.resources.len(), 5);
    assert!(
        classe
            .resources
            .iter()
            .all(|x| x.status == ResourceStatus::Changed)
    );
    assert_eq!(reports[1].resources.len(), 1);

    // Accounts.
    let group = account_line(r, "etc/group", "eleves").unwrap();
    let gid: u32 = group.split(':').nth(2).unwrap().parse().unwrap();
    assert!(gid >= 1000, "{group}");
    assert!(group.ends_with(":eleve"), "member added: {group}");
    let user = account_line(r, "etc/passwd", "eleve").unwrap();
    let fields: Vec<&str> = user.split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    let user_gid: u32 = fields[3].parse().unwrap();
    assert_eq!(&fields[4..], ["Élève", "/home/eleve", "/bin/bash"]);
    let private = account_line(r, "etc/group", "eleve").unwrap();
    assert_eq!(private.split(':').nth(2).unwrap(), user_gid.to_string());
    let shadow = account_line(r, "etc/shadow", "eleve").unwrap();
    assert!(shadow.starts_with("eleve::"), "empty password: {shadow}");
    assert!(
        account_line(r, "etc/gshadow", "eleves")
            .unwrap()
            .ends_with(":eleve")
    );
    assert_eq!(
        std::fs::metadata(r.join("etc/shadow")).unwrap().mode() & 0o7777,
        0o640
    );
    // The rewritten shadow kept its owner (the helper gives it group shadow).
    assert_eq!(
        std::fs::metadata(r.join("etc/shadow")).unwrap().gid(),
        shadow_gid
    );
    let home = std::fs::metadata(r.join("home/eleve")).unwrap();
    assert_eq!(
        (home.mode() & 0o7777, home.uid(), home.gid()),
        (0o700, uid, user_gid)
    );
    assert_eq!(
        std::fs::read(r.join("home/eleve/.bashrc")).unwrap(),
        b"# skel\n"
    );

    // Files and directories with their metadata.
    let dir = std::fs::metadata(r.join("srv/classe")).unwrap();
    assert!(dir.is_dir());
    assert_eq!(
        (dir.mode() & 0o7777, dir.uid(), dir.gid()),
        (0o750, uid, gid)
    );
    let fond = std::fs::metadata(r.join("usr/share/nird/fond.png")).unwrap();
    assert_eq!(
        (fond.mode() & 0o7777, fond.uid(), fond.gid()),
        (0o640, 0, gid)
    );
    assert_eq!(
        std::fs::read(r.join("usr/share/nird/fond.png")).unwrap(),
        WALLPAPER
    );
    assert_eq!(
        std::fs::read_to_string(r.join("etc/ecole/motd")).unwrap(),
        "Bienvenue sur un PC NIRD\n"
    );

    // Floors recorded.
    let state = nird_agent::apply::state::AppliedState::load(&opts.paths.applied_file()).unwrap();
    assert_eq!(state.floor("classe"), Some(3));
    assert_eq!(state.floor("socle"), Some(1));
    assert_eq!(state.applied().len(), 2);
    assert!(!opts.paths.journal_file().exists());

    // Second run: nothing to change; the root's managed content is identical.
    let after_first = snapshot(r);
    let reports = apply(&opts, &releases, &["classe", "socle"]);
    assert!(reports.iter().all(|x| x.outcome == ApplyOutcome::Applied));
    assert!(
        reports
            .iter()
            .flat_map(|x| &x.resources)
            .all(|x| x.status == ResourceStatus::Unchanged),
        "{reports:?}"
    );
    let mut after_second = snapshot(r);
    let mut after_first = after_first;
    // Only the agent's own record of when it last ran differs.
    let applied = std::path::PathBuf::from("var/lib/nird-agent/applied.json");
    after_first.remove(&applied);
    after_second.remove(&applied);
    assert_eq!(after_second, after_first);

    // Drift is corrected: a file edited by hand and a chmod.
    std::fs::write(r.join("etc/ecole/motd"), "modifié\n").unwrap();
    std::fs::set_permissions(
        r.join("srv/classe"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let outcome = plan_assigned(&opts, &assigned, &releases.source()).unwrap();
    let summaries: Vec<String> = outcome
        .plan
        .changes()
        .map(|c| match &c.verdict {
            Verdict::Change { summary, .. } => format!("{}: {summary}", c.id),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        summaries,
        [
            "directory:/srv/classe: mode 0777 → 0750",
            "file:/etc/ecole/motd: contenu"
        ]
    );
    apply(&opts, &releases, &["classe", "socle"]);
    assert_eq!(
        std::fs::read_to_string(r.join("etc/ecole/motd")).unwrap(),
        "Bienvenue sur un PC NIRD\n"
    );
    assert!(
        plan_assigned(&opts, &assigned, &releases.source())
            .unwrap()
            .plan
            .changes()
            .next()
            .is_none()
    );
}

/// Applies a good release once (so the root looks like a managed machine,
/// with the agent's state), then runs `bad` and checks the root did not
/// change at all and the report says why.
fn assert_refused_changes_nothing(
    bad: impl FnOnce(&Signer, &Releases),
    opts_for: impl FnOnce(&std::path::Path) -> nird_agent::apply::ApplyOptions,
    reason: RefusalReason,
    message_part: &str,
) {
    let (signer, releases, root) = setup();
    let r = root.path();
    let first = apply(&options(r), &releases, &["classe", "socle"]);
    assert!(
        first.iter().all(|x| x.outcome == ApplyOutcome::Applied),
        "{first:?}"
    );
    // Drift that a successful apply would fix: proves nothing is applied.
    std::fs::write(r.join("etc/ecole/motd"), "modifié à la main\n").unwrap();
    std::fs::remove_dir(r.join("srv/classe")).unwrap();

    bad(&signer, &releases);
    let before = snapshot(r);
    let reports = apply(&opts_for(r), &releases, &["classe"]);
    assert_eq!(snapshot(r), before, "a refused release changed the root");
    assert_eq!(reports.len(), 1);
    let rep = &reports[0];
    assert_eq!(rep.outcome, ApplyOutcome::Refused, "{rep:?}");
    assert_eq!(rep.reason, Some(reason));
    let message = rep.message.as_deref().unwrap_or("");
    assert!(message.contains(message_part), "{message}");
    assert!(rep.resources.is_empty());
}

#[test]
fn tampered_release_changes_nothing() {
    assert_refused_changes_nothing(
        |_, releases| {
            let path = releases.dir.path().join("classe.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            // One byte: the directory mode.
            std::fs::write(&path, text.replace("0750", "0777")).unwrap();
        },
        options,
        RefusalReason::BadSignature,
        "modifié après sa signature",
    );
}

#[test]
fn rolled_back_release_changes_nothing() {
    assert_refused_changes_nothing(
        |signer, releases| {
            let sha = nird_proto::hash::sha256_hex(WALLPAPER);
            releases.publish(signer, "classe", &classe_profile(2, "2027-08-31", &sha));
        },
        options,
        RefusalReason::Rollback,
        "version 2 proposée, version 3 déjà appliquée",
    );
}

#[test]
fn expired_release_changes_nothing() {
    assert_refused_changes_nothing(
        |_, _| {},
        |r| {
            let mut o = options(r);
            o.now = time::macros::datetime!(2027-09-01 08:00 UTC);
            o
        },
        RefusalReason::Expired,
        "expiré depuis le 2027-08-31",
    );
}

#[test]
fn blob_mismatch_changes_nothing() {
    assert_refused_changes_nothing(
        |_, releases| {
            let sha = nird_proto::hash::sha256_hex(WALLPAPER);
            std::fs::write(
                releases.dir.path().join("blobs").join(&sha),
                b"\x89PNG forged bytes of another size",
            )
            .unwrap();
        },
        options,
        RefusalReason::BlobMismatch,
        "octets",
    );
}

#[test]
fn unknown_key_and_wrong_name_change_nothing() {
    assert_refused_changes_nothing(
        |_, releases| {
            let stranger = Signer::new();
            let sha = nird_proto::hash::sha256_hex(WALLPAPER);
            releases.publish(&stranger, "classe", &classe_profile(4, "2027-08-31", &sha));
        },
        options,
        RefusalReason::UnknownKey,
        "clé inconnue",
    );
    assert_refused_changes_nothing(
        |signer, releases| {
            // A validly signed profile, but not the one asked for.
            let text = socle_profile(9);
            releases.write("classe", text.as_bytes(), &signer.sign(text.as_bytes()));
        },
        options,
        RefusalReason::WrongName,
        "« socle » reçu à la place de « classe »",
    );
}

#[test]
fn a_refused_include_refuses_its_includer_and_spares_the_others() {
    let (_signer, releases, root) = setup();
    let r = root.path();
    // socle is tampered: classe (which includes it) cannot be resolved.
    let path = releases.dir.path().join("socle.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("Bienvenue", "Bienvenüe")).unwrap();
    let before = snapshot(r);
    let reports = apply(&options(r), &releases, &["classe", "socle"]);
    assert_eq!(snapshot(r), before);
    assert_eq!(reports[0].outcome, ApplyOutcome::Refused);
    assert_eq!(reports[0].reason, Some(RefusalReason::ResolveError));
    assert!(
        reports[0]
            .message
            .as_deref()
            .unwrap()
            .contains("inclut « socle », introuvable"),
        "{:?}",
        reports[0].message
    );
    assert_eq!(reports[1].reason, Some(RefusalReason::BadSignature));

    // Assigned alone without its include: refused with a clear message.
    let reports = apply(&options(r), &releases, &["classe"]);
    assert_eq!(reports[0].outcome, ApplyOutcome::Refused);
    assert_eq!(snapshot(r), before);
}

#[test]
fn an_interrupted_apply_converges_on_the_next_run() {
    let (_signer, releases, root) = setup();
    let r = root.path();
    let opts = options(r);
    apply(&opts, &releases, &["classe", "socle"]);
    // A power cut in the middle of rewriting the motd: the journal says an
    // apply was running, the temporary file is there, the old content too.
    std::fs::write(r.join("etc/ecole/motd"), "ancien\n").unwrap();
    std::fs::write(r.join("etc/ecole/.motd.nird-tmp"), "Bienv").unwrap();
    JournalFile::begin(
        &opts.paths.journal_file(),
        Journal {
            started_at: time::OffsetDateTime::now_utc(),
            releases: vec![ProfileRef {
                name: "socle".into(),
                version: 1,
            }],
            current: Some("file:/etc/ecole/motd".into()),
            dpkg_running: false,
        },
    )
    .unwrap();
    let mut events = Vec::new();
    let reports = nird_agent::apply::apply_assigned(
        &opts,
        &[ProfileRef {
            name: "socle".into(),
            version: 1,
        }],
        &DirectorySource::new(releases.dir.path()),
        &mut |e| events.push(e),
    );
    assert_eq!(events[0], nird_agent::apply::ProgressEvent::Recovering);
    assert_eq!(reports[0].outcome, ApplyOutcome::Applied);
    assert_eq!(
        std::fs::read_to_string(r.join("etc/ecole/motd")).unwrap(),
        "Bienvenue sur un PC NIRD\n"
    );
    assert!(!r.join("etc/ecole/.motd.nird-tmp").exists());
    assert!(!opts.paths.journal_file().exists());
}

#[test]
fn dry_run_writes_nothing_and_says_what_would_change() {
    let (_signer, releases, root) = setup();
    let r = root.path();
    let mut opts = options(r);
    opts.dry_run = true;
    let before = snapshot(r);
    let reports = apply(&opts, &releases, &["classe", "socle"]);
    assert_eq!(snapshot(r), before);
    assert!(
        reports[0]
            .message
            .as_deref()
            .unwrap()
            .contains("simulation")
    );
    assert!(
        reports[0]
            .resources
            .iter()
            .all(|x| x.status == ResourceStatus::Changed)
    );
}

#[test]
fn a_symlink_leading_out_of_the_root_is_not_followed() {
    let (_signer, releases, root) = setup();
    let r = root.path();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(r.join("usr/share")).unwrap();
    std::os::unix::fs::symlink(outside.path(), r.join("usr/share/nird")).unwrap();
    let reports = apply(&options(r), &releases, &["classe", "socle"]);
    assert_eq!(reports[0].outcome, ApplyOutcome::Failed);
    let fond = reports[0]
        .resources
        .iter()
        .find(|x| x.id == "file:/usr/share/nird/fond.png")
        .unwrap();
    assert_eq!(fond.status, ResourceStatus::Failed);
    assert_eq!(
        fond.message.as_deref(),
        Some("lien symbolique refusé : /usr/share/nird est un lien")
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    // The rest of the profile applied.
    assert!(r.join("etc/ecole/motd").exists());
}

/// A file, a directory and a user's home, each one level below a directory
/// a pupil could own (`/srv/classe`).
const LINKED_FILE: &str = "/srv/classe/notes/charte.txt";
const LINKED_DIRECTORY: &str = "/srv/classe/partage/commun";
const LINKED_HOME: &str = "/srv/classe/maison/invite";

fn liens_profile() -> String {
    format!(
        r#"[profile]
name = "liens"
version = 1
expires = 2027-08-31
description = "Chemins sous un dossier d'élève"
audience = "all"

[[file]]
path = "{LINKED_FILE}"
content = "Charte de la classe\n"
mode = "0666"
owner = "daemon"
group = "daemon"

[[directory]]
path = "{LINKED_DIRECTORY}"
mode = "1777"
owner = "daemon"
group = "daemon"

[[user]]
name = "invite"
home = "{LINKED_HOME}"
"#
    )
}

/// Where the links of one case point.
#[derive(Debug, Clone, Copy)]
enum Points {
    /// To a directory (or file) outside the root.
    Outside,
    /// To a directory of the root itself (`/etc`, `/root`, `/var`), by
    /// absolute and relative links.
    InsideRoot,
    /// Nowhere (a name outside the root that does not exist).
    Dangling,
}

/// Plants, for each of the three resources, a link at its parent directory
/// (`parent`) or at its last component (otherwise), pointing as `points`
/// says. Returns the managed paths of the links.
fn plant(root: &Path, outside: &Path, parent: bool, points: Points) -> [String; 3] {
    let managed = [LINKED_FILE, LINKED_DIRECTORY, LINKED_HOME];
    let inside = [
        // Absolute (host path), relative, and relative to the parent.
        root.join("etc"),
        root.join("root"),
        PathBuf::from(if parent { "../../var" } else { "../../../var" }),
    ];
    let mut links = [String::new(), String::new(), String::new()];
    for (i, path) in managed.iter().enumerate() {
        let link = if parent {
            path.rsplit_once('/').unwrap().0
        } else {
            path
        };
        let host = root.join(&link[1..]);
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        let target = match points {
            Points::Outside => {
                // Outside, a file for the file's own link, directories
                // otherwise, each with a witness file.
                let target = outside.join(format!("cible-{i}"));
                if !parent && i == 0 {
                    std::fs::write(&target, "à ne pas écraser\n").unwrap();
                } else {
                    std::fs::create_dir(&target).unwrap();
                    std::fs::write(target.join("temoin"), "témoin\n").unwrap();
                }
                target
            }
            Points::InsideRoot => inside[i].clone(),
            Points::Dangling => outside.join(format!("absent-{i}")),
        };
        std::os::unix::fs::symlink(&target, &host).unwrap();
        links[i] = link.to_owned();
    }
    links
}

/// The root's entries, without the agent's own state (the apply records
/// its results in `/var/lib/nird-agent`, creating `/var/lib`).
fn system_snapshot(root: &Path) -> impl PartialEq + std::fmt::Debug {
    let mut all = snapshot(root);
    all.retain(|path, _| !path.starts_with("var/lib/nird-agent") && path != Path::new("var/lib"));
    all
}

#[test]
fn a_symlink_anywhere_on_a_managed_path_is_refused_at_plan_and_apply() {
    let cases = [
        (true, Points::Outside),
        (true, Points::InsideRoot),
        (true, Points::Dangling),
        (false, Points::Outside),
        (false, Points::InsideRoot),
        (false, Points::Dangling),
    ];
    for (parent, points) in cases {
        let case = format!(
            "link at the {}, {points:?}",
            if parent { "parent" } else { "last component" }
        );
        let signer = Signer::new();
        let releases = Releases::new();
        releases.publish(&signer, "liens", &liens_profile());
        let root = test_root(&signer);
        let r = root.path();
        std::fs::create_dir_all(r.join("root")).unwrap();
        std::fs::create_dir_all(r.join("var")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        let links = plant(r, outside.path(), parent, points);
        let expected = [
            (format!("file:{LINKED_FILE}"), &links[0]),
            (format!("directory:{LINKED_DIRECTORY}"), &links[1]),
            ("user:invite".to_owned(), &links[2]),
        ];
        let before = (system_snapshot(r), snapshot(outside.path()));
        let opts = options(r);

        // The plan already sees every refusal, with its reason.
        let assigned = [ProfileRef {
            name: "liens".into(),
            version: 1,
        }];
        let plan = plan_assigned(&opts, &assigned, &releases.source()).unwrap();
        for (id, link) in &expected {
            let planned = plan.plan.resources.iter().find(|x| &x.id == id).unwrap();
            assert_eq!(
                planned.verdict,
                Verdict::Blocked {
                    reason: format!("lien symbolique refusé : {link} est un lien")
                },
                "{case}: {id}"
            );
        }

        let reports = apply(&opts, &releases, &["liens"]);
        assert_eq!(reports[0].outcome, ApplyOutcome::Failed, "{case}");
        for (id, link) in &expected {
            let result = reports[0].resources.iter().find(|x| &x.id == id).unwrap();
            assert_eq!(result.status, ResourceStatus::Failed, "{case}: {id}");
            assert_eq!(
                result.message,
                Some(format!("lien symbolique refusé : {link} est un lien")),
                "{case}: {id}"
            );
        }
        // Nothing changed, inside the root or outside: contents, modes,
        // owners, link targets; no account created.
        assert_eq!(
            (system_snapshot(r), snapshot(outside.path())),
            before,
            "{case}"
        );
        assert!(account_line(r, "etc/passwd", "invite").is_none(), "{case}");
    }
}

#[test]
fn a_symlink_planted_between_plan_and_apply_is_refused() {
    let signer = Signer::new();
    let releases = Releases::new();
    releases.publish(&signer, "liens", &liens_profile());
    let root = test_root(&signer);
    let r = root.path().to_owned();
    // At plan time the way is clear: the file's directory exists, the rest
    // is to be created.
    std::fs::create_dir_all(r.join("srv/classe/notes")).unwrap();
    std::fs::create_dir_all(r.join("srv/classe/partage")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("maison")).unwrap();
    let before_outside = snapshot(outside.path());
    let before_etc = std::fs::symlink_metadata(r.join("etc")).unwrap();

    // Once planned, before the first change, a pupil plants links: the
    // file itself → a name outside (which an O_CREAT that follows would
    // create), the directory → the root's /etc (which a chown that follows
    // would give to daemon, mode 1777), the home's parent → outside.
    let mut planted = false;
    let mut progress = |event: ProgressEvent| {
        if let ProgressEvent::Planned { changes } = event {
            assert_eq!(changes, 3, "all three were clear at plan time");
            std::os::unix::fs::symlink(
                outside.path().join("cree"),
                r.join("srv/classe/notes/charte.txt"),
            )
            .unwrap();
            std::os::unix::fs::symlink(r.join("etc"), r.join("srv/classe/partage/commun")).unwrap();
            std::os::unix::fs::symlink(outside.path().join("maison"), r.join("srv/classe/maison"))
                .unwrap();
            planted = true;
        }
    };
    let assigned = [ProfileRef {
        name: "liens".into(),
        version: 1,
    }];
    let reports = apply_assigned(&options(&r), &assigned, &releases.source(), &mut progress);
    assert!(planted);
    let messages: Vec<(&str, ResourceStatus, Option<&str>)> = reports[0]
        .resources
        .iter()
        .map(|x| (x.id.as_str(), x.status, x.message.as_deref()))
        .collect();
    assert_eq!(
        messages,
        [
            (
                "user:invite",
                ResourceStatus::Failed,
                Some("lien symbolique refusé : /srv/classe/maison est un lien")
            ),
            (
                "directory:/srv/classe/partage/commun",
                ResourceStatus::Failed,
                Some("lien symbolique refusé : /srv/classe/partage/commun est un lien")
            ),
            (
                "file:/srv/classe/notes/charte.txt",
                ResourceStatus::Failed,
                Some("lien symbolique refusé : /srv/classe/notes/charte.txt est un lien")
            ),
        ]
    );
    assert_eq!(snapshot(outside.path()), before_outside);
    assert!(!outside.path().join("cree").exists());
    let etc = std::fs::symlink_metadata(r.join("etc")).unwrap();
    assert_eq!(
        (etc.mode(), etc.uid(), etc.gid()),
        (before_etc.mode(), before_etc.uid(), before_etc.gid())
    );
    // The account was refused before any accounts file was written.
    assert!(account_line(&r, "etc/passwd", "invite").is_none());
    assert!(account_line(&r, "etc/group", "invite").is_none());
}

#[test]
fn command_line_plan_and_apply() {
    let (_signer, releases, root) = setup();
    // An enrolled école machine (the school is recorded at enrolment).
    std::fs::create_dir_all(root.path().join("etc/nird")).unwrap();
    std::fs::write(
        root.path().join("etc/nird/agent.toml"),
        "server = \"https://nird.example.org:8443\"\nmachine_id = \"m-test\"\n\
         ca_file = \"/var/lib/nird-agent/server-ca.pem\"\n\n\
         [school]\nuai = \"0620056Z\"\nkind = \"ecole\"\nacademie = \"Lille\"\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_nird-agent");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .arg("--root")
            .arg(root.path())
            .args(args)
            .arg("--from")
            .arg(releases.dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["plan"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("✓ classe version 3 (signé par ") && out.contains(" (mainteneur))"),
        "{out}"
    );
    assert!(out.contains("À changer (5) :"), "{out}");
    assert!(out.contains("~ file:/etc/ecole/motd : à créer"), "{out}");
    let (code, out, err) = run(&["apply"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("classe version 3 : appliqué"), "{out}");
    assert!(out.contains("modifié user:eleve"), "{out}");
    let (code, out, _) = run(&["plan"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Rien à changer."), "{out}");
    assert!(out.contains("Déjà conformes : 5"), "{out}");
    // A tampered release: exit status 1 and the reason in French.
    let path = releases.dir.path().join("socle.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("NIRD", "N1RD")).unwrap();
    let (code, out, _) = run(&["apply", "socle"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("socle : refusé — signature invalide"), "{out}");
}

/// `password = "empty"` on an account the machine already has in `sudo`
/// (PrimTux's and Mint's installer account): the validator judges only the
/// groups the profile lists, so without the signed opt-in the engine must
/// refuse it (found by review: it made a passwordless sudoer).
#[test]
fn an_empty_password_never_makes_an_existing_sudoer_passwordless() {
    let signer = Signer::new();
    let releases = Releases::new();
    let root = test_root(&signer);
    let r = root.path();
    let append = |rel: &str, line: &str| {
        let mut text = std::fs::read_to_string(r.join(rel)).unwrap();
        text.push_str(line);
        std::fs::write(r.join(rel), text).unwrap();
    };
    append(
        "etc/passwd",
        "administrateur:x:1000:1000:Admin:/home/administrateur:/bin/bash\n",
    );
    append(
        "etc/group",
        "sudo:x:27:administrateur\nadministrateur:x:1000:\n",
    );
    append(
        "etc/shadow",
        "administrateur:$y$j9T$secret:19000:0:99999:7:::\n",
    );
    append(
        "etc/gshadow",
        "sudo:*::administrateur\nadministrateur:!::\n",
    );
    std::fs::create_dir_all(r.join("home/administrateur")).unwrap();
    releases.publish(
        &signer,
        "classe",
        r#"[profile]
name = "classe"
version = 1
expires = 2027-08-31
description = "Poste de classe"
audience = "all"

[[user]]
name = "administrateur"
home = "/home/administrateur"
password = "empty"
"#,
    );
    let reports = apply(&options(r), &releases, &["classe"]);
    assert_ne!(reports[0].outcome, ApplyOutcome::Applied, "{reports:?}");
    let why = reports[0].resources[0].message.clone().unwrap_or_default();
    assert!(why.contains("groupe « sudo »"), "{why}");
    let shadow = account_line(r, "etc/shadow", "administrateur").unwrap();
    assert!(shadow.contains("$y$j9T$secret"), "password kept: {shadow}");
}

#[test]
fn existing_accounts_are_corrected_not_recreated() {
    let signer = Signer::new();
    let releases = Releases::new();
    releases.publish(
        &signer,
        "comptes",
        r#"[profile]
name = "comptes"
version = 1
expires = 2027-08-31
description = "Comptes"
audience = "all"

[[group]]
name = "eleves"

[[user]]
name = "prof"
groups = ["eleves"]
shell = "/bin/bash"
password = "locked"

[[user]]
name = "daemon"
system = true
shell = "/usr/sbin/nologin"
home = "/usr/sbin"
password = "unmanaged"
"#,
    );
    let root = test_root(&signer);
    let r = root.path();
    // `prof` exists with another shell, a GECOS the profile does not
    // manage, a password hash, and belongs to `users`.
    let append = |file: &str, line: &str| {
        let mut text = std::fs::read_to_string(r.join(file)).unwrap();
        text.push_str(line);
        std::fs::write(r.join(file), text).unwrap();
    };
    append(
        "etc/passwd",
        "prof:x:1000:1000:M. Prof,,,:/home/prof:/bin/sh\n",
    );
    append("etc/group", "prof:x:1000:\n");
    append("etc/shadow", "prof:$6$sel$hash:19000:0:99999:7:::\n");
    std::fs::write(
        r.join("etc/group"),
        std::fs::read_to_string(r.join("etc/group"))
            .unwrap()
            .replace("users:x:100:", "users:x:100:prof"),
    )
    .unwrap();

    let reports = apply(&options(r), &releases, &["comptes"]);
    assert_eq!(
        reports[0].outcome,
        ApplyOutcome::Applied,
        "{:?}",
        reports[0]
    );
    let status: Vec<(&str, ResourceStatus)> = reports[0]
        .resources
        .iter()
        .map(|x| (x.id.as_str(), x.status))
        .collect();
    assert_eq!(
        status,
        [
            ("group:eleves", ResourceStatus::Changed),
            ("user:daemon", ResourceStatus::Unchanged),
            ("user:prof", ResourceStatus::Changed),
        ]
    );
    assert_eq!(
        account_line(r, "etc/passwd", "prof").unwrap(),
        "prof:x:1000:1000:M. Prof,,,:/home/prof:/bin/bash"
    );
    let shadow = account_line(r, "etc/shadow", "prof").unwrap();
    assert!(
        shadow.starts_with("prof:!$6$sel$hash:"),
        "locked, hash kept: {shadow}"
    );
    assert!(
        account_line(r, "etc/group", "users")
            .unwrap()
            .ends_with(":prof")
    );
    assert!(
        account_line(r, "etc/group", "eleves")
            .unwrap()
            .ends_with(":prof")
    );
    // Existing accounts get no home directory created.
    assert!(!r.join("home/prof").exists());
    // Converged.
    let reports = apply(&options(r), &releases, &["comptes"]);
    assert!(
        reports[0]
            .resources
            .iter()
            .all(|x| x.status == ResourceStatus::Unchanged)
    );

    // A pinned uid that disagrees with the machine is reported, not forced.
    let text = std::fs::read_to_string(releases.dir.path().join("comptes.toml"))
        .unwrap()
        .replace("version = 1", "version = 2")
        .replace("name = \"prof\"", "name = \"prof\"\nuid = 1500");
    releases.publish(&signer, "comptes", &text);
    let reports = apply(&options(r), &releases, &["comptes"]);
    let prof = reports[0]
        .resources
        .iter()
        .find(|x| x.id == "user:prof")
        .unwrap();
    assert_eq!(prof.status, ResourceStatus::Failed);
    assert!(
        prof.message
            .as_deref()
            .unwrap()
            .contains("uid 1000 au lieu de 1500"),
        "{prof:?}"
    );
    assert!(
        account_line(r, "etc/passwd", "prof")
            .unwrap()
            .contains(":1000:1000:")
    );
}

#[test]
fn two_releases_that_disagree_refuse_the_later_and_apply_the_other() {
    let (signer, releases, root) = setup();
    let r = root.path();
    // `autre` declares the motd of `socle` differently.
    releases.publish(
        &signer,
        "autre",
        "[profile]\nname = \"autre\"\nversion = 1\nexpires = 2027-08-31\ndescription = \"Autre\"\naudience = \"all\"\n\n[[file]]\npath = \"/etc/ecole/motd\"\ncontent = \"Autre chose\\n\"\n",
    );
    let reports = apply(&options(r), &releases, &["socle", "autre"]);
    assert_eq!(reports[0].outcome, ApplyOutcome::Applied);
    assert_eq!(reports[1].outcome, ApplyOutcome::Refused);
    let message = reports[1].message.as_deref().unwrap();
    assert!(
        message.contains("conflit avec le profil « socle » sur file:/etc/ecole/motd"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("etc/ecole/motd")).unwrap(),
        "Bienvenue sur un PC NIRD\n"
    );
}

#[test]
fn an_unreadable_applied_state_stops_everything() {
    let (_signer, releases, root) = setup();
    let r = root.path();
    let opts = options(r);
    std::fs::create_dir_all(opts.paths.state_dir()).unwrap();
    std::fs::write(opts.paths.applied_file(), "{ corrompu").unwrap();
    let before = snapshot(r);
    let reports = apply(&opts, &releases, &["classe", "socle"]);
    assert_eq!(snapshot(r), before, "no floor known: nothing may change");
    for rep in &reports {
        assert_eq!(rep.outcome, ApplyOutcome::Failed);
        assert!(
            rep.message.as_deref().unwrap().contains("applied.json"),
            "{rep:?}"
        );
    }
    assert!(plan_assigned(&opts, &[], &releases.source()).is_err());
}

#[test]
fn without_a_keyring_every_release_is_refused() {
    let (_signer, releases, root) = setup();
    let r = root.path();
    std::fs::remove_file(r.join("var/lib/nird-agent/keyring.json")).unwrap();
    let before = snapshot(r);
    let reports = apply(&options(r), &releases, &["socle"]);
    assert_eq!(snapshot(r), before);
    assert_eq!(reports[0].reason, Some(RefusalReason::NoKeyring));
    assert!(
        reports[0]
            .message
            .as_deref()
            .unwrap()
            .contains("aucun trousseau de clés"),
        "{:?}",
        reports[0].message
    );
}

#[test]
fn a_fifo_at_a_managed_path_is_replaced_without_being_read() {
    let signer = Signer::new();
    let releases = Releases::new();
    releases.publish(
        &signer,
        "vide",
        "[profile]\nname = \"vide\"\nversion = 1\nexpires = 2027-08-31\ndescription = \"Vide\"\naudience = \"all\"\n\n[[file]]\npath = \"/etc/ecole/vide\"\ncontent = \"\"\n",
    );
    let root = test_root(&signer);
    let r = root.path().to_owned();
    std::fs::create_dir_all(r.join("etc/ecole")).unwrap();
    let fifo = r.join("etc/ecole/vide");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Opening a FIFO for reading blocks until a writer comes: the plan and
    // the apply run on a thread so that a regression fails instead of hanging.
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let opts = options(&r);
        let assigned = [ProfileRef {
            name: "vide".into(),
            version: 0,
        }];
        let plan = plan_assigned(&opts, &assigned, &releases.source()).unwrap();
        let verdicts: Vec<(String, Verdict)> = plan
            .plan
            .resources
            .iter()
            .map(|x| (x.id.clone(), x.verdict.clone()))
            .collect();
        let reports = apply(&opts, &releases, &["vide"]);
        let _ = done.send((verdicts, reports));
    });
    let (verdicts, reports) = wait
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("plan and apply must not read the FIFO");
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(verdicts[0].0, "file:/etc/ecole/vide");
    assert!(
        matches!(&verdicts[0].1, Verdict::Change { summary, .. } if summary.contains("contenu")),
        "{verdicts:?}"
    );
    assert_eq!(
        reports[0].outcome,
        ApplyOutcome::Applied,
        "{:?}",
        reports[0]
    );
    let meta = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.len(), 0);
}
