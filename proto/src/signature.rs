//! Authentication of profile releases.
//!
//! A release is the profile file's exact bytes plus its detached minisign
//! signature (`FILE.minisig`, Ed25519, prehashed). [`verify_release`] checks,
//! in this order and stopping at the first refusal:
//!
//! 1. the signature, against any key of the trusted set — nothing of the
//!    bytes is even parsed before this passes;
//! 2. the profile parses and validates;
//! 3. policy: the name is the one asked for (no substitution of another
//!    signed profile), the version is not below the last applied one
//!    (anti-rollback; equal means "no change"), and the profile has not
//!    expired for the caller's clock nor expires further than
//!    [`MAX_RELEASE_HORIZON_DAYS`] ahead (anti-freeze).
//!
//! Agents then check the release against the signed catalogue index
//! ([`crate::index`]) and its signed targeting; those refusals are variants
//! of [`ReleaseError`] too, so every refusal has one code.
//!
//! Each refusal is its own [`ReleaseError`] variant with a stable
//! [`ReleaseError::code`] that reports and the server's dashboard use.

use minisign_verify::{Error as MinisignError, PublicKey, Signature};

use crate::hash::sha256_hex;
use crate::profile::{self, BlobRef, Profile, ProfileError};

/// Longest a release may be valid, counted from the verifier's clock, in
/// days: `expires = 9999-12-31` would let one signed release freeze
/// machines forever. The same horizon `profile lint` and `sign` enforce.
pub const MAX_RELEASE_HORIZON_DAYS: i64 = crate::profile::MAX_EXPIRY_HORIZON_DAYS;

/// The public keys an agent or a server accepts profile signatures from.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    /// (label for messages, key) pairs; the label is usually the key file name.
    keys: Vec<(String, PublicKey)>,
}

/// A public key file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "clé publique « {label} » illisible : attendu le format minisign (fichier .pub de deux lignes, ou la ligne base64 seule)"
)]
pub struct KeyError {
    pub label: String,
}

impl TrustedKeys {
    /// An empty set: verifies nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a minisign public key: the whole `.pub` file (comment line +
    /// base64 line) or the base64 line alone.
    pub fn add(&mut self, label: &str, text: &str) -> Result<(), KeyError> {
        let key = parse_public_key(text).ok_or_else(|| KeyError {
            label: label.to_owned(),
        })?;
        self.keys.push((label.to_owned(), key));
        Ok(())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if no key is trusted (every release will be refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `signature_text` over `bytes`; returns the label of the key
    /// that signed and the signature's trusted comment.
    pub fn verify(&self, bytes: &[u8], signature_text: &str) -> Result<SignedBy, ReleaseError> {
        let sig =
            Signature::decode(signature_text).map_err(|_| ReleaseError::MalformedSignature)?;
        for (label, key) in &self.keys {
            match key.verify(bytes, &sig, false) {
                Ok(()) => {
                    return Ok(SignedBy {
                        key_label: label.clone(),
                        trusted_comment: sig.trusted_comment().to_owned(),
                    });
                }
                // Another key: keep looking.
                Err(MinisignError::UnexpectedKeyId) => continue,
                // Legacy (non-prehashed) signatures are refused: minisign has
                // made prehashed ones by default since 0.8.
                Err(MinisignError::UnexpectedAlgorithm | MinisignError::UnsupportedAlgorithm) => {
                    return Err(ReleaseError::MalformedSignature);
                }
                Err(_) => return Err(ReleaseError::BadSignature),
            }
        }
        Err(ReleaseError::UnknownKey)
    }
}

/// Parses a minisign public key from a `.pub` file's text or a bare base64
/// line.
fn parse_public_key(text: &str) -> Option<PublicKey> {
    let text = text.trim();
    if text.starts_with("untrusted comment:") {
        PublicKey::decode(text).ok()
    } else if !text.contains('\n') {
        PublicKey::from_base64(text).ok()
    } else {
        None
    }
}

/// Who signed a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBy {
    /// Label of the trusted key that verified.
    pub key_label: String,
    /// The signature's trusted (signed) comment.
    pub trusted_comment: String,
}

/// A release that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRelease {
    /// The validated profile.
    pub profile: Profile,
    /// Who signed it.
    pub signed_by: SignedBy,
    /// True when its version equals the last applied one: nothing new.
    pub unchanged: bool,
}

/// Why a release was refused. French messages for people; [`Self::code`]
/// for machines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("signature absente ou illisible (fichier .minisig attendu, format minisign)")]
    MalformedSignature,
    #[error("signée par une clé inconnue : la clé n'est pas dans les clés de confiance")]
    UnknownKey,
    #[error(
        "signature invalide : le profil a été modifié après sa signature, ou la signature est corrompue"
    )]
    BadSignature,
    #[error("profil signé mais invalide : {0}")]
    Parse(ProfileError),
    #[error("profil « {found} » reçu à la place de « {expected} »")]
    WrongName { expected: String, found: String },
    #[error(
        "retour en arrière refusé : version {offered} proposée, version {last_applied} déjà appliquée"
    )]
    Rollback { last_applied: u64, offered: u64 },
    #[error(
        "profil expiré depuis le {expires} : le mainteneur doit en publier une nouvelle version"
    )]
    Expired { expires: time::Date },
    #[error(
        "profil valable jusqu'au {expires}, plus de {MAX_RELEASE_HORIZON_DAYS} jours à l'avance : une date aussi lointaine permettrait de figer les postes"
    )]
    ExpiresTooFar { expires: time::Date },
    #[error("{detail}")]
    NotInIndex { detail: String },
    #[error(
        "version {offered} périmée : l'index signé du catalogue donne la version {current} (retour en arrière refusé)"
    )]
    Stale { offered: u64, current: u64 },
    #[error(
        "aucun index signé du catalogue valide sur ce poste (expiré le {expires}) : le serveur semble figé, rien n'est appliqué"
    )]
    IndexExpired { expires: time::Date },
    #[error(
        "aucun index signé du catalogue n'a encore été reçu : rien n'est appliqué tant que le serveur n'en publie pas"
    )]
    NoIndex,
    #[error("profil non destiné à cette machine : {detail}")]
    NotTargeted { detail: String },
    #[error(
        "aucun trousseau de clés de confiance sur ce poste : ré-enrôlez-le avec « nird-agent enroll --keyring FICHIER » ou le kit d'enrôlement"
    )]
    NoKeyring,
    #[error(
        "le trousseau de clés de confiance a expiré le {expires} : les mainteneurs doivent en publier un nouveau"
    )]
    KeyringExpired { expires: time::Date },
}

impl ReleaseError {
    /// Stable reason code for reports, APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ReleaseError::MalformedSignature => "malformed_signature",
            ReleaseError::UnknownKey => "unknown_key",
            ReleaseError::BadSignature => "bad_signature",
            ReleaseError::Parse(_) => "parse_error",
            ReleaseError::WrongName { .. } => "wrong_name",
            ReleaseError::Rollback { .. } => "rollback",
            ReleaseError::Expired { .. } => "expired",
            ReleaseError::ExpiresTooFar { .. } => "expiry_too_far",
            ReleaseError::NotInIndex { .. } => "not_in_index",
            ReleaseError::Stale { .. } => "stale",
            ReleaseError::IndexExpired { .. } => "index_expired",
            ReleaseError::NoIndex => "no_index",
            ReleaseError::NotTargeted { .. } => "not_targeted",
            ReleaseError::NoKeyring => "no_keyring",
            ReleaseError::KeyringExpired { .. } => "keyring_expired",
        }
    }
}

/// Verifies a release: signature, then parse, then policy (see the module
/// documentation). `last_applied` is the highest version of this profile the
/// caller has applied (or published), `now` the caller's clock.
pub fn verify_release(
    trusted: &TrustedKeys,
    expected_name: &str,
    profile_bytes: &[u8],
    signature_text: &str,
    last_applied: Option<u64>,
    now: time::OffsetDateTime,
) -> Result<VerifiedRelease, ReleaseError> {
    let signed_by = trusted.verify(profile_bytes, signature_text)?;
    let file_name = format!("{expected_name}.toml");
    let profile = profile::parse(&file_name, profile_bytes).map_err(ReleaseError::Parse)?;
    if profile.name != expected_name {
        return Err(ReleaseError::WrongName {
            expected: expected_name.to_owned(),
            found: profile.name,
        });
    }
    if let Some(last) = last_applied
        && profile.version < last
    {
        return Err(ReleaseError::Rollback {
            last_applied: last,
            offered: profile.version,
        });
    }
    let today = now.to_offset(time::UtcOffset::UTC).date();
    if profile.is_expired_on(today) {
        return Err(ReleaseError::Expired {
            expires: profile.expires,
        });
    }
    if (profile.expires - today).whole_days() > MAX_RELEASE_HORIZON_DAYS {
        return Err(ReleaseError::ExpiresTooFar {
            expires: profile.expires,
        });
    }
    Ok(VerifiedRelease {
        unchanged: last_applied == Some(profile.version),
        profile,
        signed_by,
    })
}

/// Bytes that do not match the blob a profile pinned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("contenu de {actual} octets au lieu des {expected} octets attendus par le profil")]
    Size { expected: u64, actual: u64 },
    #[error("empreinte sha256 {actual} au lieu de {expected} attendue par le profil")]
    Digest { expected: String, actual: String },
}

impl BlobError {
    /// Stable reason code, like [`ReleaseError::code`].
    pub fn code(&self) -> &'static str {
        "blob_mismatch"
    }
}

/// Checks fetched bytes against the size and sha256 a signed profile pinned.
pub fn check_blob(blob: &BlobRef, bytes: &[u8]) -> Result<(), BlobError> {
    let actual = bytes.len() as u64;
    if actual != blob.size {
        return Err(BlobError::Size {
            expected: blob.size,
            actual,
        });
    }
    let digest = sha256_hex(bytes);
    if digest != blob.sha256 {
        return Err(BlobError::Digest {
            expected: blob.sha256.clone(),
            actual: digest,
        });
    }
    Ok(())
}
