//! The catalogue index: which release of every profile is current (TUF's
//! snapshot role).
//!
//! Maintainers sign it offline with every publication (`nird-server profile
//! index`), with a short expiry. It pins each current release by version
//! and by the sha256 of its exact bytes:
//!
//! ```toml
//! [index]
//! version = 12              # grows with every publication
//! expires = 2027-01-15      # last valid day (UTC), at most 90 days ahead
//!
//! [[profile]]
//! name = "primtux"
//! version = 3
//! sha256 = "9f2c…"          # of primtux.toml as signed
//! ```
//!
//! What it protects against, on the agent ([`CatalogueIndex::check`]):
//! - **first-contact rollback**: a machine that never saw `primtux` v3 is
//!   refused v2 (`stale`), whatever the server says;
//! - **mix-and-match**: the bytes must be the ones the index pins
//!   (`not_in_index`);
//! - **freeze**: an index past its expiry is noticed (`index_expired`) —
//!   a server that stops publishing, or keeps serving an old index, cannot
//!   hide it for more than the index's lifetime.
//!
//! The index is signed like a profile (one detached minisign signature by a
//! key of the current keyring) and only ever goes up in version.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::hash::is_sha256_hex;
use crate::keyring::toml_date;
use crate::signature::{ReleaseError, SignedBy, TrustedKeys};

/// Largest index accepted, in bytes.
pub const MAX_INDEX_BYTES: usize = 256 * 1024;
/// Most profiles one index may list.
pub const MAX_INDEX_PROFILES: usize = 1000;
/// Default lifetime of an index, in days.
pub const DEFAULT_INDEX_EXPIRY_DAYS: i64 = 30;
/// Longest lifetime of an index, in days: agents refuse one that expires
/// further ahead (a signed index must not be usable to freeze machines for
/// years).
pub const MAX_INDEX_HORIZON_DAYS: i64 = 90;

/// One current release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Current version.
    pub version: u64,
    /// sha256 of the release's exact signed bytes.
    pub sha256: String,
}

/// A validated, signature-checked catalogue index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueIndex {
    /// Monotonic version.
    pub version: u64,
    /// Last valid day (UTC).
    pub expires: time::Date,
    /// Profile name → its current release.
    pub profiles: BTreeMap<String, IndexEntry>,
}

/// Why an index is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("index du catalogue : {0}")]
    Signature(ReleaseError),
    #[error("index du catalogue illisible : {0}")]
    Parse(String),
    #[error("index du catalogue version {offered} plus ancien que la version {current} déjà reçue")]
    Rollback { current: u64, offered: u64 },
    #[error(
        "index du catalogue expiré depuis le {expires} : le serveur ne reçoit plus de publications signées (serveur figé ?)"
    )]
    Expired { expires: time::Date },
    #[error(
        "index du catalogue valable jusqu'au {expires}, plus de {MAX_INDEX_HORIZON_DAYS} jours à l'avance : refusé"
    )]
    TooFar { expires: time::Date },
}

impl IndexError {
    /// Stable code for reports.
    pub fn code(&self) -> &'static str {
        match self {
            IndexError::Signature(e) => e.code(),
            IndexError::Parse(_) => "parse_error",
            IndexError::Rollback { .. } => "rollback",
            IndexError::Expired { .. } => "index_expired",
            IndexError::TooFar { .. } => "expiry_too_far",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    index: RawHeader,
    #[serde(default)]
    profile: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    version: u64,
    expires: toml::value::Datetime,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    version: u64,
    sha256: String,
}

impl CatalogueIndex {
    /// Parses and validates an index document (signature not checked).
    pub fn parse(bytes: &[u8]) -> Result<CatalogueIndex, IndexError> {
        if bytes.len() > MAX_INDEX_BYTES {
            return Err(IndexError::Parse(format!(
                "plus de {MAX_INDEX_BYTES} octets"
            )));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| IndexError::Parse("le fichier n'est pas en UTF-8".into()))?;
        let raw: RawIndex = toml::from_str(text)
            .map_err(|e| IndexError::Parse(crate::toml_fr::french(e.message())))?;
        if raw.index.version == 0 {
            return Err(IndexError::Parse("la version doit être au moins 1".into()));
        }
        let expires = toml_date(&raw.index.expires, "expires").map_err(IndexError::Parse)?;
        if raw.profile.len() > MAX_INDEX_PROFILES {
            return Err(IndexError::Parse(format!(
                "plus de {MAX_INDEX_PROFILES} profils"
            )));
        }
        let mut profiles = BTreeMap::new();
        for e in raw.profile {
            if !crate::profile::is_slug(&e.name) {
                return Err(IndexError::Parse(format!(
                    "« {} » n'est pas un nom de profil",
                    e.name
                )));
            }
            if e.version == 0 || !is_sha256_hex(&e.sha256) {
                return Err(IndexError::Parse(format!(
                    "profil {} : version ≥ 1 et sha256 (64 chiffres hexadécimaux en minuscules) attendus",
                    e.name
                )));
            }
            let entry = IndexEntry {
                version: e.version,
                sha256: e.sha256,
            };
            if profiles.insert(e.name.clone(), entry).is_some() {
                return Err(IndexError::Parse(format!(
                    "profil {} listé deux fois",
                    e.name
                )));
            }
        }
        Ok(CatalogueIndex {
            version: raw.index.version,
            expires,
            profiles,
        })
    }

    /// Whether the index is past its last valid day.
    pub fn is_expired_on(&self, today: time::Date) -> bool {
        today > self.expires
    }

    /// Checks a release against the index: it must be the current one, with
    /// the exact bytes pinned.
    pub fn check(&self, name: &str, version: u64, sha256: &str) -> Result<(), ReleaseError> {
        let Some(entry) = self.profiles.get(name) else {
            return Err(ReleaseError::NotInIndex {
                detail: format!(
                    "le profil « {name} » n'est pas dans l'index signé du catalogue (version {})",
                    self.version
                ),
            });
        };
        if version < entry.version {
            return Err(ReleaseError::Stale {
                offered: version,
                current: entry.version,
            });
        }
        if version > entry.version {
            return Err(ReleaseError::NotInIndex {
                detail: format!(
                    "version {version} de « {name} » absente de l'index signé (qui donne la version {})",
                    entry.version
                ),
            });
        }
        if sha256 != entry.sha256 {
            return Err(ReleaseError::NotInIndex {
                detail: format!(
                    "le contenu de « {name} » version {version} n'est pas celui que l'index signé épingle"
                ),
            });
        }
        Ok(())
    }

    /// Writes an index in the canonical layout.
    pub fn render(&self) -> String {
        let mut out = format!(
            "[index]\nversion = {}\nexpires = {}\n",
            self.version, self.expires
        );
        for (name, e) in &self.profiles {
            out.push_str(&format!(
                "\n[[profile]]\nname = \"{name}\"\nversion = {}\nsha256 = \"{}\"\n",
                e.version, e.sha256
            ));
        }
        out
    }
}

/// Verifies an index: signature by a trusted key, then parse, then policy —
/// not older than `last_version` (equal is the same index), not expired on
/// `now`, not expiring more than [`MAX_INDEX_HORIZON_DAYS`] ahead.
pub fn verify_index(
    trusted: &TrustedKeys,
    bytes: &[u8],
    signature_text: &str,
    last_version: Option<u64>,
    now: time::OffsetDateTime,
) -> Result<(CatalogueIndex, SignedBy), IndexError> {
    let signed_by = trusted
        .verify(bytes, signature_text)
        .map_err(IndexError::Signature)?;
    let index = CatalogueIndex::parse(bytes)?;
    if let Some(last) = last_version
        && index.version < last
    {
        return Err(IndexError::Rollback {
            current: last,
            offered: index.version,
        });
    }
    let today = now.to_offset(time::UtcOffset::UTC).date();
    if index.is_expired_on(today) {
        return Err(IndexError::Expired {
            expires: index.expires,
        });
    }
    if (index.expires - today).whole_days() > MAX_INDEX_HORIZON_DAYS {
        return Err(IndexError::TooFar {
            expires: index.expires,
        });
    }
    Ok((index, signed_by))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> CatalogueIndex {
        CatalogueIndex::parse(
            format!(
                "[index]\nversion = 4\nexpires = 2027-01-10\n\n[[profile]]\nname = \"primtux\"\nversion = 3\nsha256 = \"{}\"\n",
                "a".repeat(64)
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn roundtrips_through_render() {
        let i = index();
        assert_eq!(CatalogueIndex::parse(i.render().as_bytes()).unwrap(), i);
    }

    #[test]
    fn first_contact_rollback_and_mix_and_match_are_refused() {
        let i = index();
        let sha = "a".repeat(64);
        assert!(i.check("primtux", 3, &sha).is_ok());
        assert_eq!(i.check("primtux", 2, &sha).unwrap_err().code(), "stale");
        assert_eq!(
            i.check("primtux", 4, &sha).unwrap_err().code(),
            "not_in_index"
        );
        assert_eq!(
            i.check("primtux", 3, &"b".repeat(64)).unwrap_err().code(),
            "not_in_index"
        );
        assert_eq!(
            i.check("autre", 1, &sha).unwrap_err().code(),
            "not_in_index"
        );
    }

    #[test]
    fn strict_parsing() {
        for bad in [
            "[index]\nversion = 0\nexpires = 2027-01-10\n",
            "[index]\nversion = 1\nexpires = \"2027-01-10\"\n",
            "[index]\nversion = 1\nexpires = 2027-01-10\nextra = 1\n",
            "[index]\nversion = 1\nexpires = 2027-01-10\n[[profile]]\nname = \"A b\"\nversion = 1\nsha256 = \"x\"\n",
        ] {
            assert!(CatalogueIndex::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
