//! The agent's trust anchors: its keyring and its newest signed catalogue
//! index, kept in the agent's state directory (`/var/lib/nird-agent`), which
//! no profile may touch (`nird_proto` refuses such paths).
//!
//! - The first keyring arrives at enrolment (`--keyring FILE`, the kit, or
//!   by trust on first use from the pinned server) and its key ids are shown
//!   to the operator. Later ones come with check-ins: the agent fetches each
//!   next version from the server and accepts it only when it is signed by
//!   the threshold of the keyring it holds ([`advance_keyring`]); an agent
//!   offline during several rotations walks the whole chain. A keyring's
//!   `[[floor]]` entries lower anti-rollback floors, once, when accepted.
//! - The index is accepted when a key of the keyring signed it, its version
//!   does not go down and it has not expired ([`accept_index`]). Releases are
//!   applied only if they are exactly what the newest index pins.
//! - [`report`] tells the server what the agent holds and what is wrong
//!   (no keyring, expired keyring or index, applied release expired): a
//!   frozen server is noticed within the index's lifetime.

use std::path::Path;

use nird_proto::api::TrustReport;
use nird_proto::index::{CatalogueIndex, IndexError, verify_index};
use nird_proto::keyring::{Keyring, KeyringError, verify_keyring};

use crate::apply::state::AppliedState;
use crate::paths::AgentPaths;
use crate::spool::write_atomic;

/// Why the trust anchors could not be read or updated.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path} illisible : {detail}")]
    Read { path: String, detail: String },
    #[error("écriture de {path} impossible : {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("trousseau refusé : {0}")]
    Keyring(#[from] KeyringError),
    #[error(
        "un trousseau est déjà détenu (version {held}) : le trousseau version {offered} ne le remplace pas"
    )]
    AlreadyHeld { held: u64, offered: u64 },
    #[error("index refusé : {0}")]
    Index(#[from] IndexError),
    #[error("téléchargement de {what} impossible : {detail}")]
    Fetch { what: String, detail: String },
    #[error(transparent)]
    State(#[from] crate::apply::state::StateError),
}

/// A signed document and its signature(s), kept together in one file so
/// that replacing it is one atomic rename (a crash never leaves a document
/// with another document's signature).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedFile {
    /// The signed document, exactly as signed.
    document: String,
    /// Its minisign signature text (several blocks for a keyring).
    signature: String,
}

fn read_pair(path: &Path) -> Result<Option<(Vec<u8>, String)>, TrustError> {
    let err = |e: String| TrustError::Read {
        path: path.display().to_string(),
        detail: e,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let file: SignedFile = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
    Ok(Some((file.document.into_bytes(), file.signature)))
}

fn write_pair(path: &Path, bytes: &[u8], sig: &str) -> Result<(), TrustError> {
    let write = |source| TrustError::Write {
        path: path.display().to_string(),
        source,
    };
    let document =
        String::from_utf8(bytes.to_vec()).map_err(|e| write(std::io::Error::other(e)))?;
    let body = serde_json::to_vec_pretty(&SignedFile {
        document,
        signature: sig.to_owned(),
    })
    .map_err(|e| write(e.into()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    write_atomic(path, &body, 0o644).map_err(write)
}

/// The keyring the agent holds, if any. Its self-signatures are checked
/// again on every load (a corrupted file must not become "no key").
pub fn load_keyring(paths: &AgentPaths) -> Result<Option<Keyring>, TrustError> {
    let path = paths.keyring_file();
    let Some((bytes, sig)) = read_pair(&path)? else {
        return Ok(None);
    };
    Ok(Some(verify_keyring(None, &bytes, &sig)?))
}

/// Installs a first keyring (trust on first use): verified to be signed by
/// the threshold of its own keys. Refuses when a keyring is held already:
/// only its chained successors replace it ([`advance_keyring`],
/// [`install_enrolment_keyring`]).
pub fn install_first_keyring(
    paths: &AgentPaths,
    bytes: &[u8],
    sig: &str,
) -> Result<Keyring, TrustError> {
    let keyring = verify_keyring(None, bytes, sig)?;
    if let Ok(Some(held)) = load_keyring(paths) {
        return Err(TrustError::AlreadyHeld {
            held: held.version,
            offered: keyring.version,
        });
    }
    write_pair(&paths.keyring_file(), bytes, sig)?;
    Ok(keyring)
}

/// What enrolment did with the keyring it was offered (the operator's
/// file, the kit's, or the server's first one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolmentKeyring {
    /// Installed: none was held (or the one held was unreadable), or it is
    /// the chained successor of the one held (its floors lowered).
    Installed(Keyring),
    /// The keyring held is kept: the one offered is the same version, or
    /// is not its successor (an older keyring, from an old kit or a server
    /// handing out its first one again, would trust keys a later keyring
    /// revoked). Later keyrings come with check-ins, verified link by link.
    Kept {
        /// The keyring held, unchanged.
        held: Keyring,
        /// The version offered.
        offered: u64,
        /// The keyring offered is the very one held (same document).
        identical: bool,
    },
    /// The operator asked for it (`--replace-keyring`): the one held is
    /// replaced by the one offered, whatever their versions.
    Replaced {
        /// The version held before.
        previous: u64,
        /// The keyring installed.
        keyring: Keyring,
    },
}

/// Installs the keyring an enrolment brings, without ever going back: when
/// a keyring is held, only its chained successor replaces it, unless
/// `replace` (the operator's explicit choice, for a machine moving to
/// another maintainers' chain).
pub fn install_enrolment_keyring(
    paths: &AgentPaths,
    bytes: &[u8],
    sig: &str,
    replace: bool,
) -> Result<EnrolmentKeyring, TrustError> {
    let offered = verify_keyring(None, bytes, sig)?;
    let held = match load_keyring(paths) {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!("keyring held unreadable, replaced by the enrolment's: {e}");
            None
        }
    };
    let Some(held) = held else {
        write_pair(&paths.keyring_file(), bytes, sig)?;
        return Ok(EnrolmentKeyring::Installed(offered));
    };
    if replace {
        write_pair(&paths.keyring_file(), bytes, sig)?;
        // The old maintainers' index means nothing to the new chain.
        match std::fs::remove_file(paths.index_file()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(TrustError::Write {
                    path: paths.index_file().display().to_string(),
                    source: e,
                });
            }
            _ => {}
        }
        tracing::warn!(
            from = held.version,
            to = offered.version,
            "keyring replaced at the operator's request"
        );
        return Ok(EnrolmentKeyring::Replaced {
            previous: held.version,
            keyring: offered,
        });
    }
    match verify_keyring(Some(&held), bytes, sig) {
        Ok(next) => {
            if !next.floors.is_empty() {
                lower_floors(paths, &next)?;
            }
            write_pair(&paths.keyring_file(), bytes, sig)?;
            Ok(EnrolmentKeyring::Installed(next))
        }
        Err(e) => {
            let identical = read_pair(&paths.keyring_file())
                .ok()
                .flatten()
                .is_some_and(|(held_bytes, _)| held_bytes == bytes);
            if !identical {
                tracing::warn!(
                    held = held.version,
                    offered = offered.version,
                    "enrolment keyring not the successor of the one held: kept the one held ({e})"
                );
            }
            Ok(EnrolmentKeyring::Kept {
                offered: offered.version,
                identical,
                held,
            })
        }
    }
}

/// Fetches a signed document: (bytes, signature text).
pub type FetchSigned<'a> = dyn Fn(u64) -> Result<(Vec<u8>, String), TrustError> + 'a;

/// Walks the keyring chain from the version held up to `target`, verifying
/// each step against the one before; lowers the floors each accepted
/// keyring resets. Returns the keyring held afterwards (the last accepted).
pub fn advance_keyring(
    paths: &AgentPaths,
    current: Keyring,
    target: u64,
    fetch: &FetchSigned<'_>,
) -> Result<Keyring, TrustError> {
    let mut held = current;
    // Never more steps than a sane number of rotations per check-in.
    while held.version < target && target - held.version <= 1000 {
        let (bytes, sig) = fetch(held.version + 1)?;
        let next = verify_keyring(Some(&held), &bytes, &sig)?;
        if !next.floors.is_empty() {
            lower_floors(paths, &next)?;
        }
        write_pair(&paths.keyring_file(), &bytes, &sig)?;
        tracing::info!(
            version = next.version,
            keys = next.keys.len(),
            "accepted a new keyring"
        );
        held = next;
    }
    Ok(held)
}

/// Applies a keyring's `[[floor]]` entries to `applied.json`.
fn lower_floors(paths: &AgentPaths, keyring: &Keyring) -> Result<(), TrustError> {
    let file = paths.applied_file();
    let mut state = AppliedState::load(&file)?;
    let mut changed = false;
    for f in &keyring.floors {
        if let Some(p) = state.profiles.get_mut(&f.profile)
            && p.version > f.version
        {
            tracing::warn!(
                profile = %f.profile,
                from = p.version,
                to = f.version,
                keyring = keyring.version,
                "anti-rollback floor lowered by a signed keyring"
            );
            p.version = f.version;
            changed = true;
        }
    }
    if changed {
        state.save(&file)?;
    }
    Ok(())
}

/// What the agent knows of the catalogue index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexState {
    /// None received.
    Missing,
    /// The newest one held, valid.
    Valid(CatalogueIndex),
    /// The newest one held has expired (frozen server?).
    Expired(CatalogueIndex),
}

/// Reads the index held, checking its signature against `keyring` again.
pub fn load_index(
    paths: &AgentPaths,
    keyring: Option<&Keyring>,
    now: time::OffsetDateTime,
) -> IndexState {
    let Some(keyring) = keyring else {
        return IndexState::Missing;
    };
    let Ok(Some((bytes, sig))) = read_pair(&paths.index_file()) else {
        return IndexState::Missing;
    };
    let keys = keyring.trusted_keys();
    if keys.verify(&bytes, &sig).is_err() {
        // Signed by a key since revoked: as good as none.
        return IndexState::Missing;
    }
    match CatalogueIndex::parse(&bytes) {
        Ok(index) if index.is_expired_on(utc_date(now)) => IndexState::Expired(index),
        Ok(index) => IndexState::Valid(index),
        Err(_) => IndexState::Missing,
    }
}

impl IndexState {
    /// The version of the index held and verified, if any.
    pub fn version(&self) -> Option<u64> {
        match self {
            IndexState::Valid(i) | IndexState::Expired(i) => Some(i.version),
            IndexState::Missing => None,
        }
    }
}

/// The lowest index version the agent may accept: the version of the index
/// it holds and can still verify. An index whose signer a later keyring no
/// longer trusts does not count (TUF's rule for a rotated key): a key
/// stolen and used to sign an index at version 2⁶³ must stop counting once
/// the maintainers revoke it, or no later index could ever be accepted and
/// the whole fleet would stay without profiles. The price: right after a
/// rotation, an older index signed by a key still trusted can be taken
/// (until it expires); releases already applied keep their own floors in
/// `applied.json`.
pub fn index_floor(held: &IndexState) -> Option<u64> {
    held.version()
}

/// The UTC date of `now`.
pub fn utc_date(now: time::OffsetDateTime) -> time::Date {
    now.to_offset(time::UtcOffset::UTC).date()
}

/// Verifies an index offered by the server (or a USB stick) and keeps it
/// when it is newer than the one held.
pub fn accept_index(
    paths: &AgentPaths,
    keyring: &Keyring,
    bytes: &[u8],
    sig: &str,
    now: time::OffsetDateTime,
) -> Result<CatalogueIndex, TrustError> {
    let held = load_index(paths, Some(keyring), now);
    let (index, _) = verify_index(&keyring.trusted_keys(), bytes, sig, index_floor(&held), now)?;
    if held.version() != Some(index.version) {
        write_pair(&paths.index_file(), bytes, sig)?;
        tracing::info!(version = index.version, "accepted a new catalogue index");
    }
    Ok(index)
}

/// The trust report sent with check-ins.
pub fn report(paths: &AgentPaths, now: time::OffsetDateTime) -> TrustReport {
    let mut problems = Vec::new();
    let keyring = match load_keyring(paths) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!("keyring unreadable: {e}");
            None
        }
    };
    let today = utc_date(now);
    match &keyring {
        None => problems.push("no_keyring".to_owned()),
        Some(k) if k.is_expired_on(today) => problems.push("keyring_expired".to_owned()),
        Some(_) => {}
    }
    let index = load_index(paths, keyring.as_ref(), now);
    let index_version = match &index {
        IndexState::Missing => {
            problems.push("no_index".to_owned());
            None
        }
        IndexState::Expired(i) => {
            problems.push("index_expired".to_owned());
            Some(i.version)
        }
        IndexState::Valid(i) => Some(i.version),
    };
    // An applied release past its expiry, with nothing newer: the server
    // stopped giving this machine fresh signed releases.
    for (name, expires) in applied_expiries(paths) {
        if today > expires {
            problems.push(format!("applied_expired:{name}"));
        }
    }
    problems.truncate(nird_proto::api::MAX_TRUST_PROBLEMS);
    TrustReport {
        keyring_version: keyring.map(|k| k.version),
        index_version,
        problems,
    }
}

/// (profile, expires) of each applied release whose signed bytes are in the
/// cache (the daemon keeps what it fetched there).
fn applied_expiries(paths: &AgentPaths) -> Vec<(String, time::Date)> {
    let Ok(state) = AppliedState::load(&paths.applied_file()) else {
        return Vec::new();
    };
    let cache = paths.cache_dir();
    state
        .profiles
        .iter()
        .filter_map(|(name, applied)| {
            let bytes = std::fs::read(cache.join(format!("{name}.toml"))).ok()?;
            let p = nird_proto::profile::parse(&format!("{name}.toml"), &bytes).ok()?;
            (p.version == applied.version).then_some((name.clone(), p.expires))
        })
        .collect()
}

/// French sentence for a problem code of [`report`].
pub fn problem_fr(code: &str) -> String {
    match code.split_once(':') {
        Some(("applied_expired", name)) => format!(
            "le profil appliqué « {name} » a expiré et aucune version plus récente n'est arrivée (serveur figé ?)"
        ),
        _ => match code {
            "no_keyring" => "aucun trousseau de clés : ré-enrôlez avec « nird-agent enroll --keyring FICHIER » ou le kit".into(),
            "keyring_expired" => "le trousseau de clés a expiré : les mainteneurs doivent en publier un nouveau".into(),
            "no_index" => "aucun index signé du catalogue reçu : rien ne sera appliqué".into(),
            "index_expired" => "l'index signé du catalogue a expiré : le serveur semble figé, rien n'est appliqué".into(),
            other => other.to_owned(),
        },
    }
}
