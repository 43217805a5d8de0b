//! A frozen server is noticed: the trust report every check-in carries (and
//! `nird-agent status` shows) names an expired catalogue index and an
//! applied release past its expiry with nothing newer, on a real root.

mod apply_support;

use apply_support::*;
use nird_agent::paths::AgentPaths;
use nird_agent::trust;

fn at(date: time::Date) -> time::OffsetDateTime {
    date.with_hms(10, 0, 0).unwrap().assume_utc()
}

#[test]
fn an_expired_index_and_a_stale_applied_release_are_reported() {
    let signer = Signer::new();
    let root = test_root(&signer);
    let paths = AgentPaths::new(root.path());
    let today = time::macros::date!(2026 - 11 - 23);

    // No index yet: said so.
    let r = trust::report(&paths, at(today));
    assert_eq!(r.keyring_version, Some(1));
    assert_eq!(r.problems, ["no_index"]);

    // A signed index valid until 2027-01-31, as the server hands it out.
    let releases = Releases::new();
    releases.publish(
        &signer,
        "charte",
        "[profile]\nname = \"charte\"\nversion = 1\nexpires = 2027-01-15\ndescription = \"Charte\"\naudience = \"all\"\n\n[[file]]\npath = \"/etc/ecole/charte.txt\"\ncontent = \"v1\\n\"\n",
    );
    let index = std::fs::read(releases.dir.path().join("index.toml")).unwrap();
    let sig = std::fs::read_to_string(releases.dir.path().join("index.toml.minisig")).unwrap();
    let keyring = trust::load_keyring(&paths).unwrap().unwrap();
    trust::accept_index(&paths, &keyring, &index, &sig, at(today)).unwrap();
    let r = trust::report(&paths, at(today));
    assert_eq!(r.index_version, Some(1));
    assert!(r.problems.is_empty(), "{:?}", r.problems);

    // The release is applied; the daemon keeps its signed bytes in the cache.
    let reports = apply(&options(root.path()), &releases, &["charte"]);
    assert_eq!(reports[0].outcome, nird_proto::api::ApplyOutcome::Applied);
    std::fs::create_dir_all(paths.cache_dir()).unwrap();
    std::fs::copy(
        releases.dir.path().join("charte.toml"),
        paths.cache_dir().join("charte.toml"),
    )
    .unwrap();

    // Weeks later, nothing new arrived: the applied release has expired,
    // then the index too. The server froze, and the machine says so.
    let r = trust::report(&paths, at(time::macros::date!(2027 - 01 - 20)));
    assert_eq!(r.problems, ["applied_expired:charte"]);
    let r = trust::report(&paths, at(time::macros::date!(2027 - 02 - 02)));
    assert_eq!(r.problems, ["index_expired", "applied_expired:charte"]);
    // An expired index refuses every release, even one still valid itself,
    // with its own reason (the index this directory carries is expired too).
    releases.publish(
        &signer,
        "affiche",
        "[profile]\nname = \"affiche\"\nversion = 1\nexpires = 2027-06-01\ndescription = \"Affiche\"\naudience = \"all\"\n",
    );
    let mut late = options(root.path());
    late.now = at(time::macros::date!(2027 - 02 - 02));
    let before = snapshot(root.path());
    let reports = apply(&late, &releases, &["affiche"]);
    assert_eq!(snapshot(root.path()), before);
    assert_eq!(
        reports[0].reason,
        Some(nird_proto::api::RefusalReason::IndexExpired)
    );
    // In French for people.
    assert!(trust::problem_fr("index_expired").contains("serveur semble figé"));
}

#[test]
fn an_older_index_is_never_taken_back() {
    let signer = Signer::new();
    let root = test_root(&signer);
    let paths = AgentPaths::new(root.path());
    let now = at(time::macros::date!(2026 - 11 - 23));
    let releases = Releases::new();
    let profile = |v: u64| {
        format!(
            "[profile]\nname = \"charte\"\nversion = {v}\nexpires = 2027-01-15\ndescription = \"Charte\"\naudience = \"all\"\n"
        )
    };
    releases.publish(&signer, "charte", &profile(1));
    let old = (
        std::fs::read(releases.dir.path().join("index.toml")).unwrap(),
        std::fs::read_to_string(releases.dir.path().join("index.toml.minisig")).unwrap(),
    );
    releases.publish(&signer, "charte", &profile(2));
    let new = (
        std::fs::read(releases.dir.path().join("index.toml")).unwrap(),
        std::fs::read_to_string(releases.dir.path().join("index.toml.minisig")).unwrap(),
    );
    let keyring = trust::load_keyring(&paths).unwrap().unwrap();
    trust::accept_index(&paths, &keyring, &new.0, &new.1, now).unwrap();
    let err = trust::accept_index(&paths, &keyring, &old.0, &old.1, now).unwrap_err();
    assert!(err.to_string().contains("plus ancien"), "{err}");
    assert_eq!(trust::report(&paths, now).index_version, Some(2));
    // An index signed by a key outside the keyring is refused too.
    let stranger = Signer::new();
    let forged = stranger.sign(&new.0);
    assert!(trust::accept_index(&paths, &keyring, &new.0, &forged, now).is_err());
}
