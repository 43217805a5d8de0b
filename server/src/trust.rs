//! The minisign public keys profiles must be signed with, kept as files in
//! `DATA/trusted-keys/*.pub` (the format `nird-server profile keygen` and
//! `minisign -G` write, the same the agents keep in `/etc/nird/trusted-keys/`).

use std::path::Path;

use anyhow::{Context as _, bail};
use nird_proto::signature::TrustedKeys;

use crate::data_dir::DataDir;
use crate::fs_util::write_atomic;

/// A public key file's text, checked to parse.
#[derive(Debug, Clone)]
pub struct PublicKeyFile {
    /// The file's text, as read.
    pub text: String,
    /// The file name it is installed under (`*.pub`).
    pub file_name: String,
}

/// Reads and checks a minisign public key file.
pub fn read_public_key(path: &Path) -> anyhow::Result<PublicKeyFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("impossible de lire la clé publique {}", path.display()))?;
    let label = path.display().to_string();
    TrustedKeys::new().add(&label, &text)?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("key");
    Ok(PublicKeyFile {
        text,
        file_name: format!("{stem}.pub"),
    })
}

/// Copies a checked key into the data directory. Installing the same key
/// again changes nothing; a different key under the same name is refused.
pub fn install(dir: &DataDir, key: &PublicKeyFile) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.trusted_keys_dir())
        .with_context(|| format!("impossible de créer {}", dir.trusted_keys_dir().display()))?;
    let dest = dir.trusted_keys_dir().join(&key.file_name);
    if let Ok(existing) = std::fs::read_to_string(&dest) {
        if existing.trim() == key.text.trim() {
            return Ok(());
        }
        bail!(
            "une autre clé porte déjà le nom {} : renommez le fichier de la nouvelle clé",
            dest.display()
        );
    }
    write_atomic(&dest, key.text.as_bytes(), 0o644)
        .with_context(|| format!("impossible d'écrire {}", dest.display()))
}

/// Every trusted key of the data directory.
pub fn trusted_keys(dir: &DataDir) -> anyhow::Result<TrustedKeys> {
    let mut keys = TrustedKeys::new();
    let entries = match std::fs::read_dir(dir.trusted_keys_dir()) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "impossible de lire les clés de confiance dans {}",
                    dir.trusted_keys_dir().display()
                )
            });
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pub"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("impossible de lire {}", path.display()))?;
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        keys.add(&label, &text)?;
    }
    Ok(keys)
}
