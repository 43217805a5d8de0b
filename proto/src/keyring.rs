//! The keyring: which keys may sign profiles, and how that list changes
//! (TUF's root role, on our scale).
//!
//! A keyring is a small TOML document, versioned and expiring, signed with
//! detached minisign signatures kept together in `FILE.minisig` (one
//! signature block after another; `nird-server profile keyring sign` appends
//! one):
//!
//! ```toml
//! [keyring]
//! version = 2                 # each new keyring is exactly the next version
//! expires = 2028-08-31        # last valid day (UTC)
//! threshold = 2               # signatures of THESE keys needed on the next keyring
//! description = "Clés des mainteneurs NIRD, rentrée 2027"
//!
//! [[key]]
//! id = "8D1F6A2B3C4D5E6F"     # minisign key id, as `minisign -G` prints it
//! public_key = "RWSP..."      # the base64 line of the .pub file
//! name = "Académie de Lille, poste hors ligne A"
//!
//! [[floor]]                   # optional: lower an anti-rollback floor
//! profile = "primtux"
//! version = 3
//! ```
//!
//! Rules ([`verify_keyring`]):
//! - a keyring is always signed by at least `threshold` of its **own** keys
//!   (proof that the new keys are held by the maintainers);
//! - a keyring that replaces version `n` must be version `n + 1` and also be
//!   signed by at least the threshold of keyring `n`'s keys — so a stolen key
//!   below the threshold cannot rotate anything, and an agent that missed two
//!   rotations walks the chain one version at a time;
//! - the first keyring an agent holds is trusted on first use (given at
//!   enrolment, its key ids shown to the operator);
//! - profiles and catalogue indexes are signed by any one key of the current
//!   keyring; revoking a key is publishing a keyring without it;
//! - `[[floor]]` entries lower a profile's anti-rollback floor on every agent
//!   that accepts the keyring (recovery from a release published with an
//!   absurd version): the floor becomes at most the given version.
//!
//! Expiry is checked by the caller on the keyring it ends up with
//! ([`Keyring::is_expired_on`]): intermediate keyrings of a chain may have
//! expired while an agent was offline, as in TUF.

use std::collections::BTreeSet;

use minisign_verify::{Error as MinisignError, PublicKey, Signature};
use serde::Deserialize;

use crate::signature::TrustedKeys;

/// Largest keyring document accepted, in bytes.
pub const MAX_KEYRING_BYTES: usize = 64 * 1024;
/// Largest signature bundle accepted, in bytes (about 100 signatures).
pub const MAX_KEYRING_SIGNATURES_BYTES: usize = 64 * 1024;
/// Most keys in one keyring.
pub const MAX_KEYS: usize = 32;
/// Longest a keyring may be valid, counted from the day it is signed, in
/// days (`nird-server profile keyring` refuses more).
pub const MAX_KEYRING_HORIZON_DAYS: i64 = 3 * 366;

/// One signing key of a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringKey {
    /// minisign key id, 16 uppercase hex digits.
    pub id: String,
    /// The key's base64 line, as in a minisign `.pub` file.
    pub public_key: String,
    /// Who holds it, for people.
    pub name: String,
}

/// A signed order to lower a profile's anti-rollback floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorReset {
    /// Profile name.
    pub profile: String,
    /// The floor becomes at most this version.
    pub version: u64,
}

/// A validated keyring document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    /// Monotonic version, from 1.
    pub version: u64,
    /// Last valid day (UTC).
    pub expires: time::Date,
    /// Signatures from these keys needed on the next keyring.
    pub threshold: u32,
    /// For people.
    pub description: String,
    /// The keys that may sign profiles and indexes.
    pub keys: Vec<KeyringKey>,
    /// Anti-rollback floors lowered by this keyring.
    pub floors: Vec<FloorReset>,
}

/// Why a keyring is refused. French messages: operators read them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("trousseau de clés illisible : {0}")]
    Parse(String),
    #[error("trousseau de clés invalide : {0}")]
    Invalid(String),
    #[error(
        "trousseau de clés version {offered} refusé : la version suivante de la version {current} est attendue"
    )]
    NotNext { current: u64, offered: u64 },
    #[error(
        "trousseau de clés version {version} signé par {found} de ses propres clés, {needed} attendues"
    )]
    SelfThreshold {
        version: u64,
        found: usize,
        needed: u32,
    },
    #[error(
        "trousseau de clés version {version} signé par {found} clé(s) du trousseau précédent, {needed} attendue(s)"
    )]
    ChainThreshold {
        version: u64,
        found: usize,
        needed: u32,
    },
    #[error("signatures du trousseau illisibles : {0}")]
    Signatures(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyring {
    keyring: RawHeader,
    #[serde(default)]
    key: Vec<RawKey>,
    #[serde(default)]
    floor: Vec<RawFloor>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    version: u64,
    expires: toml::value::Datetime,
    threshold: u32,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: String,
    public_key: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFloor {
    profile: String,
    version: u64,
}

/// Converts a TOML date (no time, no offset) into a [`time::Date`].
pub(crate) fn toml_date(value: &toml::value::Datetime, what: &str) -> Result<time::Date, String> {
    match (value.date, value.time, value.offset) {
        (Some(d), None, None) => {
            let month =
                time::Month::try_from(d.month).map_err(|_| format!("{what} : mois invalide"))?;
            time::Date::from_calendar_date(i32::from(d.year), month, d.day)
                .map_err(|_| format!("{what} : date invalide"))
        }
        _ => Err(format!(
            "{what} : une date seule est attendue, sans guillemets ni heure (ex. 2027-08-31)"
        )),
    }
}

/// The minisign key id of a public key's base64 line, as minisign prints
/// it (16 uppercase hex digits), or `None` if the line is not a key.
pub fn key_id(public_key_base64: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(public_key_base64.trim())
        .ok()?;
    if bytes.len() != 42 || &bytes[..2] != b"Ed" {
        return None;
    }
    let mut keynum = [0u8; 8];
    keynum.copy_from_slice(&bytes[2..10]);
    Some(format!("{:016X}", u64::from_le_bytes(keynum)))
}

/// The base64 line of a minisign public key file's text (or of the line
/// alone).
pub fn public_key_line(text: &str) -> Option<String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))?;
    key_id(line).map(|_| line.to_owned())
}

impl Keyring {
    /// Parses and validates a keyring document (signatures not checked: see
    /// [`verify_keyring`]).
    pub fn parse(bytes: &[u8]) -> Result<Keyring, KeyringError> {
        if bytes.len() > MAX_KEYRING_BYTES {
            return Err(KeyringError::Invalid(format!(
                "plus de {MAX_KEYRING_BYTES} octets"
            )));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| KeyringError::Parse("le fichier n'est pas en UTF-8".into()))?;
        let raw: RawKeyring = toml::from_str(text)
            .map_err(|e| KeyringError::Parse(crate::toml_fr::french(e.message())))?;
        let invalid = |m: String| KeyringError::Invalid(m);
        if raw.keyring.version == 0 {
            return Err(invalid("la version doit être au moins 1".into()));
        }
        let expires = toml_date(&raw.keyring.expires, "expires").map_err(invalid)?;
        if raw.key.is_empty() || raw.key.len() > MAX_KEYS {
            return Err(invalid(format!("entre 1 et {MAX_KEYS} clés attendues")));
        }
        let mut ids = BTreeSet::new();
        let mut keys = Vec::new();
        for k in raw.key {
            let actual = key_id(&k.public_key).ok_or_else(|| {
                invalid(format!(
                    "clé « {} » : public_key n'est pas une clé publique minisign",
                    k.id
                ))
            })?;
            if actual != k.id.to_ascii_uppercase() {
                return Err(invalid(format!(
                    "clé « {} » : l'identifiant ne correspond pas à la clé (identifiant réel {actual})",
                    k.id
                )));
            }
            if !ids.insert(actual.clone()) {
                return Err(invalid(format!("clé {actual} présente deux fois")));
            }
            if k.name.len() > 200 || k.name.chars().any(char::is_control) {
                return Err(invalid(format!("clé {actual} : nom trop long ou invalide")));
            }
            keys.push(KeyringKey {
                id: actual,
                public_key: k.public_key.trim().to_owned(),
                name: k.name,
            });
        }
        let threshold = raw.keyring.threshold;
        if threshold == 0 || threshold as usize > keys.len() {
            return Err(invalid(format!(
                "seuil {threshold} impossible avec {} clé(s) : entre 1 et le nombre de clés",
                keys.len()
            )));
        }
        let mut floors = Vec::new();
        let mut floor_names = BTreeSet::new();
        for f in raw.floor {
            if !crate::profile::is_slug(&f.profile) {
                return Err(invalid(format!(
                    "[[floor]] : « {} » n'est pas un nom de profil",
                    f.profile
                )));
            }
            if f.version == 0 {
                return Err(invalid(format!(
                    "[[floor]] {} : la version doit être au moins 1",
                    f.profile
                )));
            }
            if !floor_names.insert(f.profile.clone()) {
                return Err(invalid(format!(
                    "[[floor]] {} présent deux fois",
                    f.profile
                )));
            }
            floors.push(FloorReset {
                profile: f.profile,
                version: f.version,
            });
        }
        if raw.keyring.description.len() > 1000 {
            return Err(invalid("description trop longue".into()));
        }
        Ok(Keyring {
            version: raw.keyring.version,
            expires,
            threshold,
            description: raw.keyring.description,
            keys,
            floors,
        })
    }

    /// The keys profiles and indexes may be signed with. Labels are
    /// `ID (name)`.
    pub fn trusted_keys(&self) -> TrustedKeys {
        let mut trusted = TrustedKeys::new();
        for k in &self.keys {
            let label = if k.name.is_empty() {
                k.id.clone()
            } else {
                format!("{} ({})", k.id, k.name)
            };
            // Every key was checked to decode when the keyring was parsed,
            // so this cannot fail; a key that did would only verify nothing.
            let _ = trusted.add(&label, &k.public_key);
        }
        trusted
    }

    /// Whether the keyring may still be used on `today` (UTC).
    pub fn is_expired_on(&self, today: time::Date) -> bool {
        today > self.expires
    }

    /// Ids of the keys that signed `bytes` among `signatures` (a bundle of
    /// minisign signature blocks).
    fn signers(&self, bytes: &[u8], signatures: &[Signature]) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for k in &self.keys {
            let Ok(pk) = PublicKey::from_base64(&k.public_key) else {
                continue;
            };
            if signatures
                .iter()
                .any(|s| pk.verify(bytes, s, false).is_ok())
            {
                found.insert(k.id.clone());
            }
        }
        found
    }
}

/// Splits a bundle of concatenated minisign signature files into
/// signatures. Blocks that are not signatures are an error (a truncated
/// file must not silently count as fewer signatures).
pub fn parse_signature_bundle(text: &str) -> Result<Vec<Signature>, KeyringError> {
    if text.len() > MAX_KEYRING_SIGNATURES_BYTES {
        return Err(KeyringError::Signatures("fichier trop gros".into()));
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return Err(KeyringError::Signatures("aucune signature".into()));
    }
    if !lines.len().is_multiple_of(4) {
        return Err(KeyringError::Signatures(
            "chaque signature minisign fait 4 lignes".into(),
        ));
    }
    lines
        .chunks(4)
        .map(|block| {
            let text = block.join("\n");
            Signature::decode(&text).map_err(|e| match e {
                MinisignError::UnexpectedAlgorithm | MinisignError::UnsupportedAlgorithm => {
                    KeyringError::Signatures("signature d'un ancien format (non pré-hachée)".into())
                }
                _ => KeyringError::Signatures("bloc de signature illisible".into()),
            })
        })
        .collect()
}

/// Verifies a keyring document against the keyring currently trusted
/// (`None` on first use). Returns the new keyring; does not check its
/// expiry (see the module documentation).
pub fn verify_keyring(
    current: Option<&Keyring>,
    bytes: &[u8],
    signatures: &str,
) -> Result<Keyring, KeyringError> {
    let signatures = parse_signature_bundle(signatures)?;
    let new = Keyring::parse(bytes)?;
    let own = new.signers(bytes, &signatures);
    if own.len() < new.threshold as usize {
        return Err(KeyringError::SelfThreshold {
            version: new.version,
            found: own.len(),
            needed: new.threshold,
        });
    }
    if let Some(current) = current {
        if new.version != current.version.saturating_add(1) {
            return Err(KeyringError::NotNext {
                current: current.version,
                offered: new.version,
            });
        }
        let chained = current.signers(bytes, &signatures);
        if chained.len() < current.threshold as usize {
            return Err(KeyringError::ChainThreshold {
                version: new.version,
                found: chained.len(),
                needed: current.threshold,
            });
        }
    }
    Ok(new)
}

/// Writes a keyring document in the canonical layout (what
/// `nird-server profile keyring` produces and maintainers sign).
pub fn render(keyring: &Keyring) -> String {
    let mut out = String::new();
    out.push_str("[keyring]\n");
    out.push_str(&format!("version = {}\n", keyring.version));
    out.push_str(&format!("expires = {}\n", keyring.expires));
    out.push_str(&format!("threshold = {}\n", keyring.threshold));
    out.push_str(&format!(
        "description = {}\n",
        toml_string(&keyring.description)
    ));
    for k in &keyring.keys {
        out.push_str("\n[[key]]\n");
        out.push_str(&format!("id = \"{}\"\n", k.id));
        out.push_str(&format!("public_key = \"{}\"\n", k.public_key));
        out.push_str(&format!("name = {}\n", toml_string(&k.name)));
    }
    for f in &keyring.floors {
        out.push_str("\n[[floor]]\n");
        out.push_str(&format!("profile = \"{}\"\n", f.profile));
        out.push_str(&format!("version = {}\n", f.version));
    }
    out
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_match_minisign_output() {
        // minisign writes the key id in the .pub file's comment.
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let text = kp.pk.to_box().unwrap().to_string();
        let line = public_key_line(&text).unwrap();
        let id = key_id(&line).unwrap();
        assert!(text.contains(&id), "{id} not in {text}");
        assert_eq!(key_id("not base64"), None);
        assert_eq!(key_id("AAAA"), None);
    }

    #[test]
    fn bundle_needs_whole_blocks() {
        assert!(parse_signature_bundle("").is_err());
        assert!(parse_signature_bundle("untrusted comment: x\nabc\n").is_err());
    }
}
