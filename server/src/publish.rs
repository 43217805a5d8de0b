//! `nird-server profile publish FILE`: puts a signed release on the server.
//!
//! The server does not trust the operator's file any more than an agent
//! would: the release must verify against the keys of the newest published
//! keyring (`crate::trust`) with the same `nird_proto::signature` code
//! agents run, must not go back in version, and every file it pins is read
//! from its source path and checked against its sha256 and size before
//! anything is stored. Then release and blobs are stored in one transaction.

use std::path::Path;

use anyhow::{Context as _, bail};
use nird_proto::signature::{ReleaseError, check_blob, verify_release};

use crate::signing::minisig_path;
use crate::store::{NewRelease, PublishOutcome, Store};
use crate::trust;

/// What `publish` did, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Profile name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// New release, or the identical one was there already.
    pub outcome: PublishOutcome,
    /// Number of pinned files stored with it.
    pub blobs: usize,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.outcome {
            PublishOutcome::Published => write!(
                f,
                "Profil « {} » version {} publié ({} fichier(s) épinglé(s)).",
                self.name, self.version, self.blobs
            ),
            PublishOutcome::AlreadyPublished => write!(
                f,
                "Profil « {} » version {} déjà publié à l'identique : rien n'a changé.",
                self.name, self.version
            ),
        }
    }
}

/// A refusal, with the stable reason code in front of the French message.
fn refused(e: ReleaseError) -> anyhow::Error {
    anyhow::anyhow!("publication refusée ({}) : {e}", e.code())
}

/// Verifies and stores the release `file` + `file.minisig`.
pub async fn publish(
    store: &dyn Store,
    actor: &str,
    file: &Path,
    now: time::OffsetDateTime,
) -> anyhow::Result<Published> {
    let meta = std::fs::metadata(file)
        .with_context(|| format!("impossible de lire le profil {}", file.display()))?;
    if meta.len() > nird_proto::profile::MAX_PROFILE_BYTES as u64 {
        bail!("{} est trop gros pour un profil", file.display());
    }
    let bytes = std::fs::read(file)
        .with_context(|| format!("impossible de lire le profil {}", file.display()))?;
    let sig_path = minisig_path(file);
    let signature = match std::fs::read_to_string(&sig_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "publication refusée (unsigned) : profil non signé, {} introuvable \
             (signez-le avec « nird-server profile sign »)",
            sig_path.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("impossible de lire {}", sig_path.display()));
        }
    };
    let (_, trusted) = trust::trusted_keys(store).await?;
    // The signature first: nothing of the bytes is parsed before it passes.
    trusted.verify(&bytes, &signature).map_err(refused)?;
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "profil.toml".into());
    let profile = nird_proto::profile::parse(&file_name, &bytes)
        .map_err(|e| refused(ReleaseError::Parse(e)))?;
    let latest = store.latest_version(&profile.name).await?;
    let verified = verify_release(&trusted, &profile.name, &bytes, &signature, latest, now)
        .map_err(refused)?;
    let verified_by = verified.signed_by.key_label;
    let profile = verified.profile;
    // Every agent refuses a profile whose includes it cannot fetch: say so
    // now rather than let a whole school's machines fail.
    let mut missing = Vec::new();
    for include in &profile.includes {
        if include != &profile.name && store.latest_version(include).await?.is_none() {
            missing.push(include.as_str());
        }
    }
    if !missing.is_empty() {
        bail!(
            "publication refusée (missing_include) : « {} » inclut {} non publié(s) sur ce \
             serveur ; publiez d'abord {} (nird-server profile publish …), sinon chaque \
             machine le refuserait",
            profile.name,
            missing
                .iter()
                .map(|m| format!("« {m} »"))
                .collect::<Vec<_>>()
                .join(", "),
            missing.join(", ")
        );
    }

    let base = file.parent().unwrap_or_else(|| Path::new("."));
    let mut blobs = Vec::new();
    for blob in profile.blobs() {
        if blobs
            .iter()
            .any(|(sha, _): &(String, Vec<u8>)| *sha == blob.sha256)
        {
            continue;
        }
        let Some(source) = &blob.source else {
            if store.blob_size(&blob.sha256).await?.is_some() {
                continue;
            }
            bail!(
                "le fichier épinglé {} n'a pas de source dans le profil et n'est pas encore \
                 sur le serveur",
                blob.sha256
            );
        };
        let path = base.join(source);
        let content = std::fs::read(&path)
            .with_context(|| format!("impossible de lire le fichier épinglé {}", path.display()))?;
        check_blob(blob, &content).map_err(|e| {
            anyhow::anyhow!(
                "publication refusée ({}) : {} : {e}",
                e.code(),
                path.display()
            )
        })?;
        blobs.push((blob.sha256.clone(), content));
    }
    let count = blobs.len();
    let outcome = store
        .publish_release(
            actor,
            NewRelease {
                name: profile.name.clone(),
                version: profile.version,
                bytes,
                minisig: signature,
                blobs,
                includes: profile.includes.clone(),
                signed_by: trust::key_id_of_label(&verified_by),
            },
        )
        .await?;
    Ok(Published {
        name: profile.name,
        version: profile.version,
        outcome,
        blobs: count,
    })
}
