//! Where releases and their blobs come from.
//!
//! The daemon fetches them from the server over HTTPS; `nird-agent apply
//! --from DIR` reads them from a directory (an offline school's USB stick, or
//! the agent's own cache). Nothing a source returns is trusted: the engine
//! verifies every byte against the trusted keys and the pinned digests.

use std::io::Read;
use std::path::{Path, PathBuf};

use nird_proto::hash::is_sha256_hex;
use nird_proto::profile::{BlobRef, MAX_BLOB_BYTES, MAX_PROFILE_BYTES, is_slug};
use nird_proto::signature::check_blob;

/// Largest `.minisig` file accepted, in bytes (real ones are ~300 bytes).
pub const MAX_SIGNATURE_BYTES: u64 = 4096;

/// Why a source could not deliver something. Messages in French.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source does not have it (HTTP 404, missing file).
    #[error("{what} introuvable")]
    NotFound { what: String },
    /// The source could not be reached or read (network, I/O).
    #[error("{what} illisible : {detail}")]
    Unavailable { what: String, detail: String },
    /// The source answered with something unusable (too big, bad name).
    #[error("{what} refusé : {detail}")]
    Invalid { what: String, detail: String },
}

/// Where releases and blobs come from.
///
/// Implementations verify nothing about releases (the engine does). The
/// server source and the directory source must behave alike: `NotFound` for
/// an unknown name or digest, `Invalid` for answers larger than the limits
/// in [`nird_proto::profile`] or, for a blob, than its pinned size or with
/// another digest: a blob is read at most its pinned size (plus one byte, to
/// tell a longer one) and checked before it is returned (or kept anywhere).
pub trait ReleaseSource {
    /// The signed profile bytes of `name` at `version` and the text of its
    /// detached minisign signature.
    fn profile(&self, name: &str, version: u64) -> Result<(Vec<u8>, String), SourceError>;
    /// The bytes of the blob `blob` pins (sha256 and size), verified.
    fn blob(&self, blob: &BlobRef) -> Result<Vec<u8>, SourceError>;
    /// A signed catalogue index this source carries (bytes, signature), if
    /// any: a USB stick brings the index of its releases. The engine uses it
    /// only if it verifies and is newer than the one the machine holds.
    fn index(&self) -> Option<(Vec<u8>, String)> {
        None
    }
    /// True when the source stopped serving because the agent is stopping
    /// (SIGTERM between downloads): the engine then changes nothing.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Checks `bytes` against the digest and size `blob` pins.
pub fn verified_blob(blob: &BlobRef, bytes: Vec<u8>) -> Result<Vec<u8>, SourceError> {
    check_blob(blob, &bytes).map_err(|e| SourceError::Invalid {
        what: format!("le fichier {}", blob.sha256),
        detail: e.to_string(),
    })?;
    Ok(bytes)
}

/// A directory of releases: `NAME.toml`, `NAME.toml.minisig` and
/// `blobs/<sha256>`. Only the latest release of each profile fits in it, so
/// the requested version is not used to find the file; the engine reports
/// the version the signed file carries.
#[derive(Debug, Clone)]
pub struct DirectorySource {
    /// The directory.
    pub dir: PathBuf,
}

impl DirectorySource {
    /// A source reading `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirectorySource { dir: dir.into() }
    }

    /// Names of the profiles the directory holds (`*.toml` with a slug
    /// name, but not the catalogue index `index.toml` nor a keyring
    /// `keyring*.toml`), sorted.
    pub fn profile_names(&self) -> Result<Vec<String>, SourceError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| SourceError::Unavailable {
            what: format!("le dossier {}", self.dir.display()),
            detail: e.to_string(),
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                let name = file.strip_suffix(".toml")?;
                let trust_file = name == "index" || name.starts_with("keyring");
                (is_slug(name) && !trust_file).then(|| name.to_owned())
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

impl ReleaseSource for DirectorySource {
    fn profile(&self, name: &str, _version: u64) -> Result<(Vec<u8>, String), SourceError> {
        if !is_slug(name) {
            return Err(SourceError::Invalid {
                what: format!("le profil « {name} »"),
                detail: "nom de profil invalide".to_owned(),
            });
        }
        let toml = self.dir.join(format!("{name}.toml"));
        let sig = self.dir.join(format!("{name}.toml.minisig"));
        let bytes = read_limited(&toml, MAX_PROFILE_BYTES as u64)?;
        let sig_bytes = read_limited(&sig, MAX_SIGNATURE_BYTES)?;
        let sig_text = String::from_utf8(sig_bytes).map_err(|_| SourceError::Invalid {
            what: sig.display().to_string(),
            detail: "pas du texte UTF-8".to_owned(),
        })?;
        Ok((bytes, sig_text))
    }

    fn blob(&self, blob: &BlobRef) -> Result<Vec<u8>, SourceError> {
        let sha256 = &blob.sha256;
        if !is_sha256_hex(sha256) {
            return Err(SourceError::Invalid {
                what: format!("le fichier {sha256}"),
                detail: "empreinte sha256 invalide".to_owned(),
            });
        }
        let bytes = read_limited(
            &self.dir.join("blobs").join(sha256),
            blob.size.min(MAX_BLOB_BYTES),
        )?;
        verified_blob(blob, bytes)
    }

    fn index(&self) -> Option<(Vec<u8>, String)> {
        let path = self.dir.join("index.toml");
        let meta = std::fs::metadata(&path).ok()?;
        if meta.len() > nird_proto::index::MAX_INDEX_BYTES as u64 {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        let sig = std::fs::read_to_string(self.dir.join("index.toml.minisig")).ok()?;
        Some((bytes, sig))
    }
}

/// Reads at most `limit` bytes of `path`; a longer file is `Invalid`.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, SourceError> {
    let what = || path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SourceError::NotFound { what: what() },
        _ => SourceError::Unavailable {
            what: what(),
            detail: e.to_string(),
        },
    })?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SourceError::Unavailable {
            what: what(),
            detail: e.to_string(),
        })?;
    if bytes.len() as u64 > limit {
        return Err(SourceError::Invalid {
            what: what(),
            detail: format!("plus de {limit} octets"),
        });
    }
    Ok(bytes)
}
