//! Release verification: each refusal has its own error, and the checks run
//! in the documented order (signature, then parse, then policy).

use minisign::KeyPair;
use nird_proto::profile::BlobRef;
use nird_proto::signature::{BlobError, ReleaseError, TrustedKeys, check_blob, verify_release};
use time::macros::datetime;

struct Signer {
    pair: KeyPair,
}

impl Signer {
    fn new() -> Self {
        Signer {
            pair: KeyPair::generate_unencrypted_keypair().unwrap(),
        }
    }
    fn public_text(&self) -> String {
        self.pair.pk.to_box().unwrap().to_string()
    }
    fn sign(&self, bytes: &[u8]) -> String {
        minisign::sign(
            Some(&self.pair.pk),
            &self.pair.sk,
            bytes,
            Some("file:primtux.toml"),
            None,
        )
        .unwrap()
        .to_string()
    }
}

fn profile(name: &str, version: u64, expires: &str) -> Vec<u8> {
    format!(
        "[profile]\nname = \"{name}\"\nversion = {version}\nexpires = {expires}\ndescription = \"d\"\naudience = \"école\"\n\n[packages]\ninstall = [\"tuxpaint\"]\n"
    )
    .into_bytes()
}

const NOW: time::OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

fn trusted(signers: &[&Signer]) -> TrustedKeys {
    let mut keys = TrustedKeys::new();
    for (i, s) in signers.iter().enumerate() {
        keys.add(&format!("key{i}.pub"), &s.public_text()).unwrap();
    }
    keys
}

#[test]
fn a_good_release_verifies_with_any_trusted_key() {
    let (a, b) = (Signer::new(), Signer::new());
    let keys = trusted(&[&a, &b]);
    let bytes = profile("primtux", 5, "2027-08-31");
    let r = verify_release(&keys, "primtux", &bytes, &b.sign(&bytes), Some(4), NOW).unwrap();
    assert_eq!(r.profile.version, 5);
    assert!(!r.unchanged);
    assert_eq!(r.signed_by.key_label, "key1.pub");
    assert_eq!(r.signed_by.trusted_comment, "file:primtux.toml");
    // Same version as applied: valid, and flagged as no change.
    let r = verify_release(&keys, "primtux", &bytes, &a.sign(&bytes), Some(5), NOW).unwrap();
    assert!(r.unchanged);
    // First application ever.
    assert!(verify_release(&keys, "primtux", &bytes, &a.sign(&bytes), None, NOW).is_ok());
}

#[test]
fn bare_base64_public_key_is_accepted() {
    let a = Signer::new();
    let mut keys = TrustedKeys::new();
    let line = a.public_text().lines().nth(1).unwrap().to_owned();
    keys.add("bare", &line).unwrap();
    let bytes = profile("primtux", 1, "2027-08-31");
    assert!(verify_release(&keys, "primtux", &bytes, &a.sign(&bytes), None, NOW).is_ok());
    assert!(keys.clone().add("junk", "not a key").is_err());
}

#[test]
fn each_refusal_has_its_own_error() {
    let signer = Signer::new();
    let stranger = Signer::new();
    let keys = trusted(&[&signer]);
    let good = profile("primtux", 5, "2027-08-31");
    let sig = signer.sign(&good);

    // A tampered byte.
    let mut tampered = good.clone();
    let pos = tampered.iter().position(|&b| b == b'5').unwrap();
    tampered[pos] = b'9';
    let err = verify_release(&keys, "primtux", &tampered, &sig, None, NOW).unwrap_err();
    assert_eq!(err, ReleaseError::BadSignature);
    assert_eq!(err.code(), "bad_signature");

    // A key nobody trusts.
    let err =
        verify_release(&keys, "primtux", &good, &stranger.sign(&good), None, NOW).unwrap_err();
    assert_eq!(err, ReleaseError::UnknownKey);
    assert_eq!(err.code(), "unknown_key");

    // No or garbage signature.
    for sig in ["", "untrusted comment: x\nAAAA\n", "not a signature"] {
        let err = verify_release(&keys, "primtux", &good, sig, None, NOW).unwrap_err();
        assert_eq!(err, ReleaseError::MalformedSignature, "{sig:?}");
    }

    // A validly signed but different profile offered under this name.
    let other = profile("linux-nird", 9, "2027-08-31");
    let err =
        verify_release(&keys, "primtux", &other, &signer.sign(&other), None, NOW).unwrap_err();
    assert_eq!(
        err,
        ReleaseError::WrongName {
            expected: "primtux".into(),
            found: "linux-nird".into()
        }
    );
    assert_eq!(err.code(), "wrong_name");

    // An older version than the one applied.
    let err = verify_release(&keys, "primtux", &good, &sig, Some(6), NOW).unwrap_err();
    assert_eq!(
        err,
        ReleaseError::Rollback {
            last_applied: 6,
            offered: 5
        }
    );
    assert_eq!(err.code(), "rollback");
    assert!(
        err.to_string()
            .contains("version 5 proposée, version 6 déjà appliquée")
    );

    // Expired yesterday; still valid on its last day.
    let old = profile("primtux", 5, "2026-11-22");
    let err = verify_release(&keys, "primtux", &old, &signer.sign(&old), None, NOW).unwrap_err();
    assert_eq!(
        err,
        ReleaseError::Expired {
            expires: time::macros::date!(2026 - 11 - 22)
        }
    );
    assert_eq!(err.code(), "expired");
    let last_day = profile("primtux", 5, "2026-11-23");
    assert!(
        verify_release(
            &keys,
            "primtux",
            &last_day,
            &signer.sign(&last_day),
            None,
            NOW
        )
        .is_ok()
    );

    // Signed nonsense.
    let junk = b"[profile]\nname = 3\n".to_vec();
    let err = verify_release(&keys, "primtux", &junk, &signer.sign(&junk), None, NOW).unwrap_err();
    assert!(matches!(err, ReleaseError::Parse(_)));
    assert_eq!(err.code(), "parse_error");
}

#[test]
fn signature_is_checked_before_anything_else() {
    let signer = Signer::new();
    let keys = trusted(&[&signer]);
    // Expired, rolled back, wrong name AND tampered: the signature speaks first.
    let bytes = profile("other", 1, "2020-01-01");
    let sig = signer.sign(&bytes);
    let mut tampered = bytes.clone();
    tampered.push(b'\n');
    assert_eq!(
        verify_release(&keys, "primtux", &tampered, &sig, Some(3), NOW).unwrap_err(),
        ReleaseError::BadSignature
    );
    // Untampered: the name is checked before the version and the expiry.
    assert!(matches!(
        verify_release(&keys, "primtux", &bytes, &sig, Some(3), NOW).unwrap_err(),
        ReleaseError::WrongName { .. }
    ));
    // An empty trust store refuses everything.
    assert_eq!(
        verify_release(&TrustedKeys::new(), "other", &bytes, &sig, None, NOW).unwrap_err(),
        ReleaseError::UnknownKey
    );
}

#[test]
fn blobs_are_checked_by_size_then_digest() {
    let bytes = b"fond d'ecran";
    let blob = BlobRef {
        sha256: nird_proto::hash::sha256_hex(bytes),
        size: bytes.len() as u64,
        source: None,
    };
    assert!(check_blob(&blob, bytes).is_ok());
    assert!(matches!(
        check_blob(&blob, b"short"),
        Err(BlobError::Size { .. })
    ));
    let same_len = b"fond d'ecrax";
    let err = check_blob(&blob, same_len).unwrap_err();
    assert!(matches!(err, BlobError::Digest { .. }));
    assert_eq!(err.code(), "blob_mismatch");
}
