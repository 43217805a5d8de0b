//! The server's trust anchors, published by operators from the files the
//! maintainers signed offline and kept in the database so agents can fetch
//! them:
//!
//! - the **keyring** (`nird_proto::keyring`): which keys may sign profiles
//!   and indexes. The first one is trusted on first use (its key ids are
//!   printed for the operator to check); each later one must be the next
//!   version and be signed by the threshold of the previous one. Publishing
//!   a keyring without a key revokes it: every release no key of the new
//!   keyring verifies is no longer served nor assigned.
//! - the **catalogue index** (`nird_proto::index`): which release of each
//!   profile is current. Check-ins assign exactly the versions it pins.
//!
//! The server verifies with the same `nird_proto` code the agents run, so
//! it refuses what every agent would refuse; but agents never rely on that.

use std::path::Path;

use anyhow::{Context as _, bail};
use nird_proto::index::verify_index;
use nird_proto::keyring::{Keyring, verify_keyring};
use nird_proto::signature::TrustedKeys;

use crate::signing::minisig_path;
use crate::store::{NewIndex, NewKeyring, Store};

/// The newest published keyring (verified when it was published).
pub async fn current_keyring(store: &dyn Store) -> anyhow::Result<Option<Keyring>> {
    let Some(doc) = store.latest_keyring().await? else {
        return Ok(None);
    };
    let keyring = Keyring::parse(&doc.bytes)
        .with_context(|| format!("trousseau version {} stocké illisible", doc.version))?;
    Ok(Some(keyring))
}

/// The keys releases and indexes must be signed with: those of the newest
/// keyring. None published yet is an error that says what to do.
pub async fn trusted_keys(store: &dyn Store) -> anyhow::Result<(Keyring, TrustedKeys)> {
    match current_keyring(store).await? {
        Some(k) => {
            let keys = k.trusted_keys();
            Ok((k, keys))
        }
        None => bail!(
            "aucun trousseau de clés publié sur ce serveur : publiez celui des mainteneurs avec \
             « nird-server keyring publish --data-dir DOSSIER keyring.toml » \
             (voir profiles/README.md)"
        ),
    }
}

/// The key id in a label made by [`Keyring::trusted_keys`] (`ID (name)`).
pub fn key_id_of_label(label: &str) -> String {
    label.split_whitespace().next().unwrap_or(label).to_owned()
}

/// Reads `file` and its signature file `file.minisig`.
fn read_signed(file: &Path, what: &str, max: usize) -> anyhow::Result<(Vec<u8>, String)> {
    let meta = std::fs::metadata(file)
        .with_context(|| format!("impossible de lire {}", file.display()))?;
    if meta.len() > max as u64 {
        bail!("{} est trop gros pour {what}", file.display());
    }
    let bytes =
        std::fs::read(file).with_context(|| format!("impossible de lire {}", file.display()))?;
    let sig_path = minisig_path(file);
    let signature = match std::fs::read_to_string(&sig_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{what} non signé : {} introuvable (signez-le avec « nird-server profile keyring sign » \
             ou « nird-server profile index »)",
            sig_path.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("impossible de lire {}", sig_path.display()));
        }
    };
    Ok((bytes, signature))
}

/// `keyring publish FILE`: verifies the keyring against the current one
/// (first use: self-signed only), stores it and revokes the releases its
/// keys no longer verify. Returns the text to print.
pub async fn publish_keyring(
    store: &dyn Store,
    actor: &str,
    file: &Path,
    now: time::OffsetDateTime,
) -> anyhow::Result<String> {
    let (bytes, signatures) =
        read_signed(file, "le trousseau", nird_proto::keyring::MAX_KEYRING_BYTES)?;
    let current = current_keyring(store).await?;
    // The same keyring again (a script run twice): say so, change nothing.
    if let (Some(held), Ok(candidate)) = (&current, Keyring::parse(&bytes))
        && candidate.version == held.version
        && store
            .keyring(held.version)
            .await?
            .is_some_and(|doc| doc.bytes == bytes)
    {
        return Ok(format!(
            "Trousseau version {} déjà publié à l'identique : rien n'a changé \
             (« nird-server keyring show » le montre).",
            held.version
        ));
    }
    let keyring = verify_keyring(current.as_ref(), &bytes, &signatures)
        .map_err(|e| anyhow::anyhow!("publication refusée : {e}"))?;
    let today = now.to_offset(time::UtcOffset::UTC).date();
    if keyring.is_expired_on(today) {
        bail!(
            "publication refusée : ce trousseau a expiré le {}",
            keyring.expires
        );
    }
    // Releases none of the new keys verifies are revoked.
    let keys = keyring.trusted_keys();
    let mut revoke = Vec::new();
    for release in store.live_releases().await? {
        if keys.verify(&release.bytes, &release.minisig).is_err() {
            revoke.push(nird_proto::api::ProfileRef {
                name: release.name,
                version: release.version,
            });
        }
    }
    store
        .publish_keyring(
            actor,
            NewKeyring {
                version: keyring.version,
                bytes,
                signatures,
                key_ids: keyring.keys.iter().map(|k| k.id.clone()).collect(),
                expires: keyring.expires.to_string(),
                revoke: revoke.clone(),
            },
        )
        .await?;
    let mut out = format!(
        "Trousseau version {} publié (valable jusqu'au {}, seuil {} pour le suivant).\n",
        keyring.version, keyring.expires, keyring.threshold
    );
    if current.is_none() {
        out.push_str(
            "Premier trousseau : vérifiez que ces identifiants de clés sont bien ceux des \
             mainteneurs (confiance à la première utilisation).\n",
        );
    }
    for k in &keyring.keys {
        out.push_str(&format!("  clé {}  {}\n", k.id, k.name));
    }
    for f in &keyring.floors {
        out.push_str(&format!(
            "  plancher anti-retour de « {} » ramené à la version {} sur les postes\n",
            f.profile, f.version
        ));
    }
    if revoke.is_empty() {
        out.push_str("Aucune version publiée n'est révoquée.");
    } else {
        out.push_str(&format!(
            "{} version(s) signée(s) par une clé retirée ne sont plus distribuées :",
            revoke.len()
        ));
        for r in &revoke {
            out.push_str(&format!(" {} v{}", r.name, r.version));
        }
        out.push_str(
            "\nPubliez un nouvel index du catalogue (« nird-server index publish ») signé avec une clé du trousseau.",
        );
    }
    Ok(out)
}

/// `index publish FILE`: verifies a catalogue index against the keyring and
/// stores it; check-ins then assign exactly the versions it pins.
pub async fn publish_index(
    store: &dyn Store,
    actor: &str,
    file: &Path,
    now: time::OffsetDateTime,
) -> anyhow::Result<String> {
    let (bytes, signature) = read_signed(
        file,
        "l'index du catalogue",
        nird_proto::index::MAX_INDEX_BYTES,
    )?;
    let (_, keys) = trusted_keys(store).await?;
    let latest = store.catalogue_index(None).await?.map(|d| d.version);
    let (index, signed_by) = verify_index(&keys, &bytes, &signature, latest, now)
        .map_err(|e| anyhow::anyhow!("publication refusée ({}) : {e}", e.code()))?;
    if latest == Some(index.version) {
        bail!(
            "l'index version {} est déjà publié : signez un index de version plus grande",
            index.version
        );
    }
    let entries: Vec<(String, u64, String)> = index
        .profiles
        .iter()
        .map(|(name, e)| (name.clone(), e.version, e.sha256.clone()))
        .collect();
    store
        .publish_index(
            actor,
            NewIndex {
                version: index.version,
                bytes,
                signature,
                expires: index.expires.to_string(),
                entries,
            },
        )
        .await?;
    let mut out = format!(
        "Index du catalogue version {} publié (signé par {}, valable jusqu'au {}) :",
        index.version, signed_by.key_label, index.expires
    );
    for (name, e) in &index.profiles {
        out.push_str(&format!("\n  {name} v{}", e.version));
    }
    Ok(out)
}
