//! The trust anchors never go back (found by review):
//! - a re-enrolment (`enroll --force`, an old kit, the server's first
//!   keyring by trust on first use) replaced the keyring held by an older
//!   one, trusting again keys a later keyring had revoked;
//! - the index floor, and how revoking a stolen key recovers from an index
//!   it fast-forwarded.

mod apply_support;
mod daemon_common;

use std::path::Path;
use std::time::Duration;

use apply_support::Signer;
use daemon_common::*;
use nird_agent::enroll::{CaPin, EnrollError, EnrollOptions, KeyringSource, enroll};
use nird_agent::paths::AgentPaths;
use nird_agent::trust::{self, EnrolmentKeyring};
use nird_proto::index::{CatalogueIndex, IndexEntry};
use nird_proto::keyring::{Keyring, KeyringKey, key_id, public_key_line, render};

fn key(s: &Signer, name: &str) -> KeyringKey {
    let line = public_key_line(&s.public_text()).unwrap();
    KeyringKey {
        id: key_id(&line).unwrap(),
        public_key: line,
        name: name.into(),
    }
}

/// Keyring `version` holding `keys`, threshold 1, signed by `by`.
fn keyring(version: u64, keys: &[(&Signer, &str)], by: &Signer) -> (String, String) {
    let text = render(&Keyring {
        version,
        expires: time::macros::date!(2028 - 12 - 31),
        threshold: 1,
        description: format!("v{version}"),
        keys: keys.iter().map(|(s, n)| key(s, n)).collect(),
        floors: vec![],
    });
    let sig = by.sign(text.as_bytes());
    (text, sig)
}

fn index(version: u64, charte: u64) -> String {
    let mut profiles = std::collections::BTreeMap::new();
    profiles.insert(
        "charte".to_owned(),
        IndexEntry {
            version: charte,
            sha256: "a".repeat(64),
        },
    );
    CatalogueIndex {
        version,
        expires: time::macros::date!(2027 - 01 - 31),
        profiles,
    }
    .render()
}

/// While its signer is trusted, the index held is the floor; once a
/// keyring revokes the signer, it no longer counts (TUF's rule): a stolen
/// key that signed an index at an absurd version cannot keep the fleet from
/// every later index. (A review had proposed keeping its version as the
/// floor; a second review showed that fast-forward would then be
/// unrecoverable.)
#[test]
fn revoking_a_stolen_key_recovers_from_its_fast_forwarded_index() {
    let (a, b) = (Signer::new(), Signer::new());
    let root = tempfile::tempdir().unwrap();
    let paths = AgentPaths::new(root.path());
    let now = time::macros::datetime!(2026-11-23 10:00 UTC);
    let (k1, k1_sig) = keyring(1, &[(&a, "A"), (&b, "B")], &a);
    let held = trust::install_first_keyring(&paths, k1.as_bytes(), &k1_sig).unwrap();

    // B's index v5 is held; an older one is a rollback.
    let v5 = index(5, 2);
    trust::accept_index(&paths, &held, v5.as_bytes(), &b.sign(v5.as_bytes()), now).unwrap();
    let v4 = index(4, 1);
    assert!(
        trust::accept_index(&paths, &held, v4.as_bytes(), &b.sign(v4.as_bytes()), now).is_err()
    );
    // A is stolen: an index at an absurd version is taken (it verifies).
    let forward = index(1 << 62, 2);
    trust::accept_index(
        &paths,
        &held,
        forward.as_bytes(),
        &a.sign(forward.as_bytes()),
        now,
    )
    .unwrap();
    let v6 = index(6, 3);
    assert!(
        trust::accept_index(&paths, &held, v6.as_bytes(), &b.sign(v6.as_bytes()), now).is_err()
    );

    // Keyring v2 revokes A: the forwarded index no longer counts, and the
    // maintainers' next index is taken.
    let (k2, k2_sig) = keyring(2, &[(&b, "B")], &b);
    let fetch = |_v: u64| Ok((k2.as_bytes().to_vec(), k2_sig.clone()));
    let held = trust::advance_keyring(&paths, held, 2, &fetch).unwrap();
    assert_eq!(
        trust::load_index(&paths, Some(&held), now),
        trust::IndexState::Missing
    );
    trust::accept_index(&paths, &held, v6.as_bytes(), &b.sign(v6.as_bytes()), now).unwrap();
    assert_eq!(trust::report(&paths, now).index_version, Some(6));
    // From there the floor holds again.
    assert!(
        trust::accept_index(&paths, &held, v5.as_bytes(), &b.sign(v5.as_bytes()), now).is_err()
    );
}

#[test]
fn an_enrolment_keyring_never_replaces_the_one_held_by_an_older_one() {
    let (a, b, c) = (Signer::new(), Signer::new(), Signer::new());
    let root = tempfile::tempdir().unwrap();
    let paths = AgentPaths::new(root.path());
    let (k1, k1_sig) = keyring(1, &[(&a, "A"), (&b, "B")], &a);
    let (k2, k2_sig) = keyring(2, &[(&b, "B")], &b);
    let (k3, k3_sig) = keyring(3, &[(&b, "B"), (&c, "C")], &b);
    let held_version = || trust::load_keyring(&paths).unwrap().unwrap().version;

    // None held: installed.
    let done = trust::install_enrolment_keyring(&paths, k1.as_bytes(), &k1_sig, false).unwrap();
    assert!(matches!(done, EnrolmentKeyring::Installed(k) if k.version == 1));
    // The successor: installed. The first-use installer refuses now.
    trust::install_enrolment_keyring(&paths, k2.as_bytes(), &k2_sig, false).unwrap();
    assert_eq!(held_version(), 2);
    let err = trust::install_first_keyring(&paths, k1.as_bytes(), &k1_sig).unwrap_err();
    assert!(err.to_string().contains("déjà détenu"), "{err}");
    // The older one (A, revoked, trusted again): kept v2. The same: kept.
    for (text, sig, offered) in [(&k1, &k1_sig, 1), (&k2, &k2_sig, 2)] {
        let done = trust::install_enrolment_keyring(&paths, text.as_bytes(), sig, false).unwrap();
        assert!(
            matches!(&done, EnrolmentKeyring::Kept { held, offered: o, identical } if held.version == 2 && *o == offered && *identical == (offered == 2)),
            "{done:?}"
        );
        assert_eq!(held_version(), 2);
    }
    // Another chain's keyring at the held version: kept, and not called
    // the same one.
    let (twin, twin_sig) = keyring(2, &[(&c, "C")], &c);
    let done = trust::install_enrolment_keyring(&paths, twin.as_bytes(), &twin_sig, false).unwrap();
    assert!(
        matches!(
            &done,
            EnrolmentKeyring::Kept {
                identical: false,
                offered: 2,
                ..
            }
        ),
        "{done:?}"
    );
    // Another chain's keyring (C alone, version 9): kept unless replaced.
    let (other, other_sig) = keyring(9, &[(&c, "C")], &c);
    trust::install_enrolment_keyring(&paths, other.as_bytes(), &other_sig, false).unwrap();
    assert_eq!(held_version(), 2);
    let done = trust::install_enrolment_keyring(&paths, k3.as_bytes(), &k3_sig, false).unwrap();
    assert!(matches!(done, EnrolmentKeyring::Installed(k) if k.version == 3));
    let done =
        trust::install_enrolment_keyring(&paths, other.as_bytes(), &other_sig, true).unwrap();
    assert!(matches!(
        done,
        EnrolmentKeyring::Replaced { previous: 3, .. }
    ));
    assert_eq!(held_version(), 9);
}

/// Writes a keyring and its signature as `dir/NAME` and `dir/NAME.minisig`.
fn keyring_file(dir: &Path, name: &str, (text, sig): &(String, String)) -> std::path::PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    std::fs::write(dir.join(format!("{name}.minisig")), sig).unwrap();
    file
}

#[test]
fn re_enrolling_keeps_the_newer_keyring_against_a_real_server() {
    let sd = ServerData::new();
    let (a, b) = (Signer::new(), Signer::new());
    let files = tempfile::tempdir().unwrap();
    let v1 = keyring_file(
        files.path(),
        "v1.toml",
        &keyring(1, &[(&a, "A"), (&b, "B")], &a),
    );
    let v2 = keyring(2, &[(&b, "B")], &b);
    let v2_file = keyring_file(files.path(), "v2.toml", &v2);
    let publish = |file: std::path::PathBuf| {
        sd.with_store(|s| async move {
            nird_server::trust::publish_keyring(
                s.as_ref(),
                "test",
                &file,
                time::OffsetDateTime::now_utc(),
            )
            .await
            .unwrap()
        })
    };
    publish(v1.clone());
    let server = Server::start(&sd.data, 0, Duration::from_secs(900));
    let (_tmp, paths) = agent_root();
    let inv = TestInventory::new(inventory_doc(4096)).snapshot();
    let now = time::OffsetDateTime::now_utc;
    let options =
        |token: String, keyring: Option<std::path::PathBuf>, replace: bool| EnrollOptions {
            server: server.url(),
            token,
            ca: CaPin::Fingerprint(sd.fingerprint.clone()),
            force: true,
            keyring,
            replace_keyring: replace,
        };

    // First enrolment: the server's first keyring, by trust on first use.
    let done = enroll(&paths, &options(sd.token(1), None, false), &inv, &now).unwrap();
    assert_eq!(done.keyring_source, KeyringSource::Server);
    assert_eq!(done.keyring.as_ref().map(|k| k.0), Some(1));
    // The maintainers rotate (A revoked); check-ins walk the chain.
    publish(v2_file.clone());
    let held = trust::load_keyring(&paths).unwrap().unwrap();
    let fetch = |_v: u64| Ok((v2.0.as_bytes().to_vec(), v2.1.clone()));
    trust::advance_keyring(&paths, held, 2, &fetch).unwrap();

    // Re-enrolment without a keyring: nothing taken from the server.
    let again = enroll(&paths, &options(sd.token(1), None, false), &inv, &now).unwrap();
    assert_eq!(
        again.keyring_source,
        KeyringSource::Kept {
            offered: None,
            identical: false
        }
    );
    assert_eq!(again.keyring.as_ref().map(|k| k.0), Some(2));
    // With the old keyring file (an old kit): kept, and said so.
    let old = enroll(
        &paths,
        &options(sd.token(1), Some(v1.clone()), false),
        &inv,
        &now,
    )
    .unwrap();
    assert_eq!(
        old.keyring_source,
        KeyringSource::Kept {
            offered: Some(1),
            identical: false
        }
    );
    assert!(
        old.summary(false).contains("n'en est pas la suite"),
        "{}",
        old.summary(false)
    );
    assert_eq!(trust::load_keyring(&paths).unwrap().unwrap().version, 2);
    // --replace-keyring needs a keyring; with one, the operator's choice wins.
    // An index of the current chain is held…
    let held = trust::load_keyring(&paths).unwrap().unwrap();
    let idx = index(3, 1);
    trust::accept_index(
        &paths,
        &held,
        idx.as_bytes(),
        &b.sign(idx.as_bytes()),
        now(),
    )
    .unwrap();
    assert!(paths.index_file().exists());
    let err = enroll(&paths, &options(sd.token(1), None, true), &inv, &now).unwrap_err();
    assert!(matches!(err, EnrollError::ReplaceWithoutKeyring), "{err}");
    let replaced = enroll(&paths, &options(sd.token(1), Some(v1), true), &inv, &now).unwrap();
    assert_eq!(
        replaced.keyring_source,
        KeyringSource::Replaced { previous: 2 }
    );
    assert_eq!(trust::load_keyring(&paths).unwrap().unwrap().version, 1);
    // …and goes with the chain it belonged to.
    assert!(!paths.index_file().exists());
    server.stop();
}
