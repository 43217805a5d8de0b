//! The maintainer's offline tools: `nird-server profile keygen | sign |
//! verify | lint`.
//!
//! Keys and signatures are minisign's formats (Ed25519, prehashed), so the
//! standard `minisign` CLI verifies our signatures and we verify its. The
//! signed bytes are the profile file exactly as published: nothing is
//! normalised before signing.
//!
//! These commands never touch a server data directory: a maintainer runs them
//! on an offline machine that holds the secret key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use nird_proto::profile::{self, Profile};
use nird_proto::signature::{TrustedKeys, check_blob};

/// Environment variable holding the secret key password, for scripts. When
/// unset, the password is asked on the terminal.
pub const PASSWORD_ENV: &str = "NIRD_KEY_PASSWORD";

/// Profile signing commands (offline, no data directory needed).
#[derive(Debug, Subcommand)]
pub enum SigningCommand {
    /// Crée une paire de clés de signature (nird.pub, nird.key).
    Keygen {
        /// Dossier où écrire nird.pub et nird.key.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Clé secrète sans mot de passe (à réserver aux tests et à
        /// l'intégration continue).
        #[arg(long)]
        no_password: bool,
    },
    /// Signe un fichier : écrit FICHIER.minisig à côté.
    Sign {
        /// Clé secrète (nird.key).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Commentaire signé (par défaut : horodatage et nom du fichier).
        #[arg(long, value_name = "TEXT")]
        trusted_comment: Option<String>,
        /// Fichier à signer (un profil .toml est vérifié avant signature).
        file: PathBuf,
    },
    /// Vérifie la signature FICHIER.minisig d'un fichier (code 0 si valide).
    Verify {
        /// Clé publique (nird.pub) ; peut être répétée.
        #[arg(long, value_name = "FILE", required = true)]
        pubkey: Vec<PathBuf>,
        /// Signature à utiliser, par défaut FICHIER.minisig.
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
        /// Fichier signé.
        file: PathBuf,
    },
    /// Trousseau des clés de signature : création, succession, signatures.
    #[command(subcommand)]
    Keyring(crate::keyring_tool::KeyringToolCommand),
    /// Écrit et signe l'index du catalogue (version courante de chaque profil
    /// signé du dossier), à publier avec « nird-server index publish ».
    Index {
        /// Dossier des profils signés.
        #[arg(long, value_name = "DIR")]
        catalogue: PathBuf,
        /// Clé secrète (nird.key).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Fichier à écrire (par défaut DIR/index.toml).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Version (par défaut : celle de l'index existant + 1).
        #[arg(long)]
        version: Option<u64>,
        /// Durée de validité en jours (au plus 90).
        #[arg(long, default_value_t = crate::keyring_tool::DEFAULT_EXPIRES_DAYS)]
        expires_days: i64,
    },
    /// Vérifie des profils : syntaxe, règles, inclusions, fichiers épinglés.
    Lint {
        /// Profils .toml à vérifier.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs one signing command; prints what it did on stdout.
pub fn run(cmd: SigningCommand) -> Result<()> {
    match cmd {
        SigningCommand::Keygen { out, no_password } => {
            let protection = if no_password {
                KeyProtection::None
            } else {
                KeyProtection::Password(password_from_env()?)
            };
            let (public, secret) = keygen(&out, protection)?;
            println!("Clé publique : {}", public.display());
            println!(
                "Clé secrète  : {} (mode 0600, à garder hors ligne)",
                secret.display()
            );
            Ok(())
        }
        SigningCommand::Sign {
            key,
            trusted_comment,
            file,
        } => {
            let sig = sign(
                &key,
                &file,
                trusted_comment.as_deref(),
                password_from_env()?,
            )?;
            println!("Signature écrite : {}", sig.display());
            Ok(())
        }
        SigningCommand::Verify {
            pubkey,
            signature,
            file,
        } => {
            let signature = signature.unwrap_or_else(|| minisig_path(&file));
            let who = verify(&pubkey, &file, &signature)?;
            println!("Signature valide ({who})");
            Ok(())
        }
        SigningCommand::Keyring(cmd) => {
            println!("{}", crate::keyring_tool::run(cmd)?);
            Ok(())
        }
        SigningCommand::Index {
            catalogue,
            key,
            out,
            version,
            expires_days,
        } => {
            let out = out.unwrap_or_else(|| catalogue.join("index.toml"));
            println!(
                "{}",
                crate::keyring_tool::write_index(&catalogue, &key, &out, version, expires_days)?
            );
            Ok(())
        }
        SigningCommand::Lint { files } => {
            let reports = lint(&files);
            let mut failed = 0;
            for r in &reports {
                for w in &r.warnings {
                    eprintln!("{} : {w}", r.file.display());
                }
                match &r.result {
                    Ok(summary) => println!("{} : ok — {summary}", r.file.display()),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{e}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} profil(s) sur {} invalide(s)", reports.len());
            }
            Ok(())
        }
    }
}

/// `FILE.minisig`.
pub fn minisig_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".minisig");
    PathBuf::from(s)
}

/// How a new secret key is stored.
#[derive(Debug, Clone)]
pub enum KeyProtection {
    /// Unencrypted (tests, CI): anyone who reads the file can sign.
    None,
    /// Encrypted with a password (scrypt, minisign's format); `None` asks on
    /// the terminal.
    Password(Option<String>),
}

/// Writes `DIR/nird.pub` and `DIR/nird.key` (0600). Refuses to overwrite an
/// existing key: losing a signing key means re-keying every machine.
pub fn keygen(out: &Path, protection: KeyProtection) -> Result<(PathBuf, PathBuf)> {
    let public = out.join("nird.pub");
    let secret = out.join("nird.key");
    for p in [&public, &secret] {
        if p.exists() {
            bail!(
                "{} existe déjà : une clé existante n'est jamais écrasée (déplacez-la ou choisissez un autre dossier)",
                p.display()
            );
        }
    }
    // The password is asked (in French) before anything is created: no
    // terminal, or two different answers, leave nothing behind.
    let pair = match protection {
        KeyProtection::Password(pw) => {
            let pw = match pw {
                Some(pw) => pw,
                None => ask_new_password()?,
            };
            minisign::KeyPair::generate_encrypted_keypair(Some(pw))
        }
        KeyProtection::None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| anyhow!("génération de la clé impossible : {e}"))?;
    fs::create_dir_all(out)
        .with_context(|| format!("impossible de créer le dossier {}", out.display()))?;
    let pk_box = pair
        .pk
        .to_box()
        .map_err(|e| anyhow!("encodage de la clé publique impossible : {e}"))?;
    let sk_box = pair
        .sk
        .to_box(None)
        .map_err(|e| anyhow!("encodage de la clé secrète impossible : {e}"))?;
    write_new_file(&secret, sk_box.to_string().as_bytes(), 0o600)?;
    write_new_file(&public, pk_box.to_string().as_bytes(), 0o644)?;
    Ok((public, secret))
}

/// Signs `file` with the secret key at `key_path`, writing `FILE.minisig`.
/// A `.toml` file must lint cleanly first: signing a broken profile would
/// only get it refused by every machine. `password` is asked only if the key
/// is encrypted (`None`: asked on the terminal).
pub fn sign(
    key_path: &Path,
    file: &Path,
    trusted_comment: Option<&str>,
    password: Option<String>,
) -> Result<PathBuf> {
    let bytes =
        fs::read(file).with_context(|| format!("lecture de {} impossible", file.display()))?;
    if file.extension().is_some_and(|e| e == "toml") {
        let dir = file.parent().unwrap_or(Path::new("."));
        let report = lint_one(file, &bytes, &load_catalogue(dir));
        for w in &report.warnings {
            eprintln!("{} : {w}", file.display());
        }
        report
            .result
            .map_err(|e| anyhow!("{e}\nprofil non signé : corrigez-le d'abord"))?;
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sig = sign_bytes(key_path, &bytes, &name, trusted_comment, password)?;
    let sig_path = minisig_path(file);
    write_replace(&sig_path, sig.as_bytes())?;
    Ok(sig_path)
}

/// Signs `bytes` with the secret key at `key_path`; returns the minisign
/// signature text. `name` goes in the default trusted comment.
pub fn sign_bytes(
    key_path: &Path,
    bytes: &[u8],
    name: &str,
    trusted_comment: Option<&str>,
    password: Option<String>,
) -> Result<String> {
    let key_text = fs::read_to_string(key_path).with_context(|| {
        format!(
            "lecture de la clé secrète {} impossible",
            key_path.display()
        )
    })?;
    let sk_box = minisign::SecretKeyBox::from_string(&key_text).map_err(|e| {
        anyhow!(
            "{} n'est pas une clé secrète minisign : {e}",
            key_path.display()
        )
    })?;
    let sk = match sk_box.clone().into_unencrypted_secret_key() {
        Ok(sk) if !sk.is_encrypted() => sk,
        _ => {
            let password = match password {
                Some(p) => p,
                None => ask_password(&format!("Mot de passe de la clé {} : ", key_path.display()))?,
            };
            sk_box
                .into_secret_key(Some(password))
                .map_err(|_| anyhow!("mot de passe incorrect pour la clé {}", key_path.display()))?
        }
    };
    let default_comment = format!(
        "timestamp:{}\tfile:{name}\thashed",
        time::OffsetDateTime::now_utc().unix_timestamp()
    );
    let comment = trusted_comment.unwrap_or(&default_comment);
    if comment.contains('\n') {
        bail!("le commentaire signé doit tenir sur une ligne");
    }
    let sig = minisign::sign(
        None,
        &sk,
        bytes,
        Some(comment),
        Some("signature from nird-server"),
    )
    .map_err(|e| anyhow!("signature impossible : {e}"))?;
    Ok(sig.to_string())
}

/// Verifies `signature` over `file` against any of `pubkeys`; returns a short
/// description of who signed.
pub fn verify(pubkeys: &[PathBuf], file: &Path, signature: &Path) -> Result<String> {
    let mut trusted = TrustedKeys::new();
    for p in pubkeys {
        let text = fs::read_to_string(p)
            .with_context(|| format!("lecture de la clé publique {} impossible", p.display()))?;
        trusted.add(&p.display().to_string(), &text)?;
    }
    let bytes =
        fs::read(file).with_context(|| format!("lecture de {} impossible", file.display()))?;
    let sig = fs::read_to_string(signature)
        .with_context(|| format!("signature {} introuvable ou illisible", signature.display()))?;
    let by = trusted
        .verify(&bytes, &sig)
        .map_err(|e| anyhow!("{} : {e}", file.display()))?;
    Ok(format!(
        "clé {}, commentaire signé « {} »",
        by.key_label, by.trusted_comment
    ))
}

/// Lint result of one file.
#[derive(Debug)]
pub struct LintReport {
    /// The file checked.
    pub file: PathBuf,
    /// A one-line summary, or every problem found (French, file:line:col).
    pub result: Result<String, String>,
    /// Policy rules the profile lifts with its signed `allow` list (French),
    /// printed whether or not it is valid otherwise.
    pub warnings: Vec<String>,
}

/// Lints profile files: parse and validate each, check pinned blobs whose
/// `source` is given, and resolve `includes` among the given files and the
/// other `.toml` files of their directories (the catalogue).
pub fn lint(files: &[PathBuf]) -> Vec<LintReport> {
    // Each directory's catalogue is read once, however many of its files
    // are linted.
    let mut catalogues: std::collections::HashMap<PathBuf, Vec<Profile>> = Default::default();
    files
        .iter()
        .map(|f| match fs::read(f) {
            Ok(bytes) => {
                let dir = f.parent().unwrap_or(Path::new(".")).to_path_buf();
                let catalogue = catalogues
                    .entry(dir)
                    .or_insert_with_key(|dir| load_catalogue(dir));
                lint_one(f, &bytes, catalogue)
            }
            Err(e) => LintReport {
                file: f.clone(),
                result: Err(format!("{} : lecture impossible ({e})", f.display())),
                warnings: Vec::new(),
            },
        })
        .collect()
}

/// Lints one file's `bytes`; `catalogue` holds the valid profiles of its
/// directory, where its includes are looked up (the file itself is taken
/// from `bytes`, not from the catalogue's copy).
fn lint_one(file: &Path, bytes: &[u8], catalogue: &[Profile]) -> LintReport {
    let mut warnings = Vec::new();
    let result = (|| {
        let profile =
            profile::parse(&file.display().to_string(), bytes).map_err(|e| e.to_string())?;
        warnings = profile.policy_warnings();
        profile::check_expiry_horizon(&profile, time::OffsetDateTime::now_utc().date())
            .map_err(|e| format!("{} : {e}", file.display()))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        check_blob_sources(file, dir, &profile)?;
        let lookup = |name: &str| {
            if name == profile.name {
                Some(&profile)
            } else {
                catalogue.iter().find(|p| p.name == name)
            }
        };
        let state =
            profile::resolve(&profile, lookup).map_err(|e| format!("{} : {e}", file.display()))?;
        let layers: Vec<_> = state.layers.iter().map(|l| l.name.as_str()).collect();
        Ok(format!(
            "{} v{} (expire le {}), {} ressources via {}",
            profile.name,
            profile.version,
            profile.expires,
            state.resource_count(),
            layers.join(" + ")
        ))
    })();
    LintReport {
        file: file.to_path_buf(),
        result,
        warnings,
    }
}

/// Checks every blob whose `source` is given against its pinned size and
/// sha256, so a maintainer learns of a stale digest before publishing.
fn check_blob_sources(file: &Path, dir: &Path, profile: &Profile) -> Result<(), String> {
    let mut problems = Vec::new();
    for blob in profile.blobs() {
        let Some(source) = &blob.source else { continue };
        let path = dir.join(source);
        match fs::read(&path) {
            Ok(bytes) => {
                if let Err(e) = check_blob(blob, &bytes) {
                    problems.push(format!("{} : {} : {e}", file.display(), path.display()));
                }
            }
            Err(e) => problems.push(format!(
                "{} : source {} illisible ({e})",
                file.display(),
                path.display()
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Every valid profile in `dir` (invalid ones are reported when they are
/// linted themselves).
fn load_catalogue(dir: &Path) -> Vec<Profile> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        if let Ok(bytes) = fs::read(&path)
            && let Ok(p) = profile::parse(&path.display().to_string(), &bytes)
        {
            out.push(p);
        }
    }
    out
}

fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("création de {} impossible", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("écriture de {} impossible", path.display()))
}

/// Writes through a temporary file and a rename, so a signature file is
/// never half-written.
pub fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fs_util::write_atomic(path, bytes, 0o644)
        .with_context(|| format!("écriture de {} impossible", path.display()))
}

/// Asks a password on the terminal (`/dev/tty`, not echoed), in French.
/// Without a terminal (a script, a pipe), says how to give it instead.
pub fn ask_password(prompt: &str) -> Result<String> {
    let pw = rpassword::prompt_password(prompt).map_err(|_| {
        anyhow!(
            "pas de terminal pour demander le mot de passe : donnez-le dans la variable \
             d'environnement {PASSWORD_ENV}, ou utilisez --no-password pour une clé de test"
        )
    })?;
    if pw.is_empty() {
        bail!("mot de passe vide : rien n'a été fait");
    }
    Ok(pw)
}

/// Asks a new key's password twice.
fn ask_new_password() -> Result<String> {
    let first = ask_password("Mot de passe de la nouvelle clé : ")?;
    let second = ask_password("Le même mot de passe, pour confirmer : ")?;
    if first != second {
        bail!("les deux mots de passe diffèrent : aucune clé n'a été créée");
    }
    Ok(first)
}

/// Password for a key, from [`PASSWORD_ENV`]; `None`: asked on the
/// terminal in French ([`ask_password`]; twice for a new key).
pub fn password_from_env() -> Result<Option<String>> {
    match std::env::var(PASSWORD_ENV) {
        Ok(pw) if pw.is_empty() => bail!(
            "{PASSWORD_ENV} est vide : choisissez un mot de passe, ou --no-password pour une clé de test"
        ),
        Ok(pw) => Ok(Some(pw)),
        Err(_) => Ok(None),
    }
}
