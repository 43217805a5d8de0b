//! The maintainers' offline side of the trust model: `nird-server profile
//! keyring new | next | sign | show` and `nird-server profile index`.
//!
//! Like the rest of `profile`, these never touch a server data directory:
//! they run on the offline machine that holds the secret keys, and produce
//! files the operator then publishes (`nird-server keyring publish`,
//! `nird-server index publish`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Subcommand;
use nird_proto::hash::sha256_hex;
use nird_proto::index::{
    CatalogueIndex, DEFAULT_INDEX_EXPIRY_DAYS, IndexEntry, MAX_INDEX_HORIZON_DAYS,
};
use nird_proto::keyring::{
    FloorReset, Keyring, KeyringKey, MAX_KEYRING_HORIZON_DAYS, key_id, parse_signature_bundle,
    public_key_line, render, verify_keyring,
};

use crate::signing::{minisig_path, password_from_env, sign_bytes, write_replace};

/// `profile keyring ...`
#[derive(Debug, Subcommand)]
pub enum KeyringToolCommand {
    /// Crée le premier trousseau (version 1) à partir de clés publiques.
    New {
        /// Clé publique d'un mainteneur (nird.pub) ; répétable.
        #[arg(long = "key", value_name = "FILE", required = true)]
        keys: Vec<PathBuf>,
        /// Nombre de signatures de ces clés exigées sur le trousseau suivant.
        #[arg(long, default_value_t = 1)]
        threshold: u32,
        /// Dernier jour de validité (AAAA-MM-JJ).
        #[arg(long, value_name = "DATE")]
        expires: String,
        /// Description pour les personnes.
        #[arg(long, default_value = "")]
        description: String,
        /// Fichier à écrire (keyring.toml).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Prépare le trousseau suivant : ajoute ou retire des clés (révocation),
    /// change le seuil, abaisse un plancher anti-retour.
    Next {
        /// Trousseau en vigueur.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Clé publique à ajouter ; répétable.
        #[arg(long = "add-key", value_name = "FILE")]
        add: Vec<PathBuf>,
        /// Identifiant de la clé à retirer (révoquer) ; répétable.
        #[arg(long = "remove-key", value_name = "ID")]
        remove: Vec<String>,
        /// Nouveau seuil (par défaut : inchangé, borné au nombre de clés).
        #[arg(long)]
        threshold: Option<u32>,
        /// Dernier jour de validité (AAAA-MM-JJ) ; par défaut : inchangé.
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
        /// Abaisse le plancher anti-retour d'un profil : NOM=VERSION ; répétable.
        #[arg(long = "reset-floor", value_name = "NOM=VERSION")]
        floors: Vec<String>,
        /// Fichier à écrire.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Ajoute une signature au trousseau (FICHIER.minisig garde toutes les signatures).
    Sign {
        /// Clé secrète (nird.key).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// keyring.toml.
        file: PathBuf,
    },
    /// Vérifie un trousseau (et, avec --previous, qu'il succède bien au précédent).
    Verify {
        /// Trousseau précédent (keyring.toml + .minisig).
        #[arg(long, value_name = "FILE")]
        previous: Option<PathBuf>,
        /// keyring.toml.
        file: PathBuf,
    },
}

/// Runs one keyring tool command; returns the text to print.
pub fn run(cmd: KeyringToolCommand) -> Result<String> {
    let today = time::OffsetDateTime::now_utc().date();
    match cmd {
        KeyringToolCommand::New {
            keys,
            threshold,
            expires,
            description,
            out,
        } => {
            let keys = keys
                .iter()
                .map(|p| read_key(p))
                .collect::<Result<Vec<_>>>()?;
            let keyring = Keyring {
                version: 1,
                expires: parse_expiry(&expires, today)?,
                threshold,
                description,
                keys,
                floors: Vec::new(),
            };
            write_keyring(&keyring, &out)
        }
        KeyringToolCommand::Next {
            from,
            add,
            remove,
            threshold,
            expires,
            floors,
            out,
        } => {
            let bytes = fs::read(&from)
                .with_context(|| format!("lecture de {} impossible", from.display()))?;
            let mut k = Keyring::parse(&bytes).map_err(|e| anyhow!("{}: {e}", from.display()))?;
            k.version += 1;
            for id in &remove {
                let before = k.keys.len();
                k.keys.retain(|key| !key.id.eq_ignore_ascii_case(id));
                if k.keys.len() == before {
                    bail!("aucune clé d'identifiant {id} dans {}", from.display());
                }
            }
            for p in &add {
                let key = read_key(p)?;
                if k.keys.iter().any(|x| x.id == key.id) {
                    bail!("la clé {} est déjà dans le trousseau", key.id);
                }
                k.keys.push(key);
            }
            k.threshold = threshold.unwrap_or(k.threshold).min(k.keys.len() as u32);
            if let Some(e) = expires {
                k.expires = parse_expiry(&e, today)?;
            }
            k.floors = floors
                .iter()
                .map(|f| parse_floor(f))
                .collect::<Result<Vec<_>>>()?;
            write_keyring(&k, &out)
        }
        KeyringToolCommand::Sign { key, file } => {
            let bytes = fs::read(&file)
                .with_context(|| format!("lecture de {} impossible", file.display()))?;
            let keyring = Keyring::parse(&bytes).map_err(|e| anyhow!("{}: {e}", file.display()))?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let sig = sign_bytes(&key, &bytes, &name, None, password_from_env()?)?;
            let sig_path = minisig_path(&file);
            let mut bundle = match fs::read_to_string(&sig_path) {
                Ok(existing) => {
                    parse_signature_bundle(&existing)
                        .map_err(|e| anyhow!("{}: {e}", sig_path.display()))?;
                    existing
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("lecture de {} impossible", sig_path.display()));
                }
            };
            if !bundle.is_empty() && !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            bundle.push_str(&sig);
            write_replace(&sig_path, bundle.as_bytes())?;
            let count = parse_signature_bundle(&bundle)
                .map(|s| s.len())
                .unwrap_or_default();
            Ok(format!(
                "Signature ajoutée à {} ({count} signature(s) ; trousseau version {}, seuil {}).",
                sig_path.display(),
                keyring.version,
                keyring.threshold
            ))
        }
        KeyringToolCommand::Verify { previous, file } => {
            let previous = previous
                .map(|p| -> Result<Keyring> {
                    let bytes = fs::read(&p)
                        .with_context(|| format!("lecture de {} impossible", p.display()))?;
                    let sigs = fs::read_to_string(minisig_path(&p)).with_context(|| {
                        format!("lecture de la signature de {} impossible", p.display())
                    })?;
                    verify_keyring(None, &bytes, &sigs).map_err(|e| anyhow!("{}: {e}", p.display()))
                })
                .transpose()?;
            let bytes = fs::read(&file)
                .with_context(|| format!("lecture de {} impossible", file.display()))?;
            let sigs = fs::read_to_string(minisig_path(&file)).with_context(|| {
                format!("lecture de la signature de {} impossible", file.display())
            })?;
            let k = verify_keyring(previous.as_ref(), &bytes, &sigs)
                .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            Ok(format!(
                "Trousseau version {} valide ({} clé(s), seuil {}, jusqu'au {}).",
                k.version,
                k.keys.len(),
                k.threshold,
                k.expires
            ))
        }
    }
}

/// `profile index --catalogue DIR --key KEY`: the signed catalogue index of
/// every signed profile in `DIR`.
pub fn write_index(
    catalogue: &Path,
    key: &Path,
    out: &Path,
    version: Option<u64>,
    expires_days: i64,
) -> Result<String> {
    if !(1..=MAX_INDEX_HORIZON_DAYS).contains(&expires_days) {
        bail!("--expires-days doit être entre 1 et {MAX_INDEX_HORIZON_DAYS}");
    }
    let mut profiles = BTreeMap::new();
    let entries = fs::read_dir(catalogue)
        .with_context(|| format!("lecture de {} impossible", catalogue.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p != out)
        .filter(|p| minisig_path(p).is_file())
        .collect();
    files.sort();
    for file in files {
        let bytes =
            fs::read(&file).with_context(|| format!("lecture de {} impossible", file.display()))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Keyrings and older indexes sit next to profiles: only profiles count.
        let Ok(profile) = nird_proto::profile::parse(&name, &bytes) else {
            continue;
        };
        let entry = IndexEntry {
            version: profile.version,
            sha256: sha256_hex(&bytes),
        };
        if profiles.insert(profile.name.clone(), entry).is_some() {
            bail!(
                "deux fichiers de {} portent le profil « {} »",
                catalogue.display(),
                profile.name
            );
        }
    }
    if profiles.is_empty() {
        bail!(
            "aucun profil signé (FICHIER.toml + FICHIER.toml.minisig) dans {}",
            catalogue.display()
        );
    }
    let previous = fs::read(out)
        .ok()
        .and_then(|b| CatalogueIndex::parse(&b).ok())
        .map(|i| i.version);
    let version = match (version, previous) {
        (Some(v), Some(p)) if v <= p => {
            bail!("--version {v} : l'index existant est déjà en version {p}")
        }
        (Some(v), _) => v,
        (None, Some(p)) => p + 1,
        (None, None) => 1,
    };
    let today = time::OffsetDateTime::now_utc().date();
    let index = CatalogueIndex {
        version,
        expires: today + time::Duration::days(expires_days),
        profiles,
    };
    let text = index.render();
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sig = sign_bytes(key, text.as_bytes(), &name, None, password_from_env()?)?;
    write_replace(out, text.as_bytes())?;
    write_replace(&minisig_path(out), sig.as_bytes())?;
    let mut msg = format!(
        "Index du catalogue version {version} écrit dans {} (valable jusqu'au {}) :",
        out.display(),
        index.expires
    );
    for (n, e) in &index.profiles {
        msg.push_str(&format!("\n  {n} v{}", e.version));
    }
    Ok(msg)
}

/// Default lifetime for `profile index`.
pub const DEFAULT_EXPIRES_DAYS: i64 = DEFAULT_INDEX_EXPIRY_DAYS;

fn read_key(path: &Path) -> Result<KeyringKey> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("lecture de la clé publique {} impossible", path.display()))?;
    let line = public_key_line(&text)
        .ok_or_else(|| anyhow!("{} n'est pas une clé publique minisign", path.display()))?;
    let id = key_id(&line).ok_or_else(|| anyhow!("{} : clé illisible", path.display()))?;
    let name = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(KeyringKey {
        id,
        public_key: line,
        name,
    })
}

fn parse_expiry(text: &str, today: time::Date) -> Result<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text.trim(), &format)
        .map_err(|_| anyhow!("date « {text} » invalide : attendu AAAA-MM-JJ"))?;
    if date <= today {
        bail!("la date d'expiration {date} est déjà passée");
    }
    if (date - today).whole_days() > MAX_KEYRING_HORIZON_DAYS {
        bail!("un trousseau ne peut pas être valable plus de {MAX_KEYRING_HORIZON_DAYS} jours");
    }
    Ok(date)
}

fn parse_floor(text: &str) -> Result<FloorReset> {
    let (name, version) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("« {text} » : attendu NOM=VERSION, par ex. primtux=3"))?;
    let version: u64 = version
        .trim()
        .parse()
        .map_err(|_| anyhow!("« {text} » : la version doit être un entier"))?;
    Ok(FloorReset {
        profile: name.trim().to_owned(),
        version,
    })
}

/// Writes a keyring after checking it parses back to itself.
fn write_keyring(keyring: &Keyring, out: &Path) -> Result<String> {
    let text = render(keyring);
    let back = Keyring::parse(text.as_bytes()).map_err(|e| anyhow!("{e}"))?;
    if &back != keyring {
        bail!("trousseau incohérent après écriture");
    }
    if out.exists() {
        bail!(
            "{} existe déjà : choisissez un autre fichier",
            out.display()
        );
    }
    write_replace(out, text.as_bytes())?;
    let mut msg = format!(
        "Trousseau version {} écrit dans {} : faites-le signer par {} clé(s) {}avec « nird-server profile keyring sign ».",
        keyring.version,
        out.display(),
        keyring.threshold,
        if keyring.version > 1 {
            "du trousseau précédent et du nouveau "
        } else {
            ""
        }
    );
    for k in &keyring.keys {
        msg.push_str(&format!("\n  clé {}  {}", k.id, k.name));
    }
    Ok(msg)
}
