//! Enrolment kits (`nird-server kit create`): one file per school holding
//! the server's address, its CA certificate, a fresh enrolment token and
//! the current keyring (format: [`nird_proto::kit`]). The token is an
//! ordinary one: listed by `token list`, revoked by `token revoke`.
//!
//! The dashboard offers the same file as a download: it creates the token
//! its own way, then calls [`assemble`] and [`render`].

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use nird_proto::kit::{EnrolmentKit, KIT_FORMAT, KitKeyring};
use nird_proto::uai::Uai;

use crate::data_dir::DataDir;
use crate::store::{NewToken, Store};
use crate::{admin, secrets};

/// The file `init --hostname` leaves in the data directory: the first name
/// given, from which kits build the server's address.
pub const SERVER_NAME_FILE: &str = "server-name";

/// What `kit create` was asked for.
#[derive(Debug, Clone)]
pub struct KitRequest {
    /// The school (UAI text, validated here).
    pub school: String,
    /// Machines the kit may enrol.
    pub uses: u32,
    /// `--expires` text (`7d`, `AAAA-MM-JJ`), none: never.
    pub expires: Option<String>,
    /// Where to write the kit (must not exist).
    pub out: PathBuf,
    /// `--server URL`; none: from the data directory and server.toml.
    pub server: Option<String>,
    /// The listen port `serve` uses (from server.toml), to build the
    /// default address.
    pub listen_port: u16,
}

/// The kit for a token already created: the server's CA certificate from
/// `data`, the newest keyring from `store`. `expires_at` is Unix seconds.
#[allow(clippy::too_many_arguments)]
pub async fn assemble(
    store: &dyn Store,
    data: &DataDir,
    server_url: &str,
    school: &Uai,
    token: &str,
    max_uses: u32,
    expires_at: Option<i64>,
    now: time::OffsetDateTime,
) -> anyhow::Result<EnrolmentKit> {
    let ca_certificate = std::fs::read_to_string(data.ca_cert())
        .with_context(|| format!("impossible de lire {}", data.ca_cert().display()))?;
    let keyring = store.latest_keyring().await?.map(|doc| KitKeyring {
        document: String::from_utf8_lossy(&doc.bytes).into_owned(),
        signature: doc.signature,
    });
    let expires = expires_at
        .map(time::OffsetDateTime::from_unix_timestamp)
        .transpose()
        .context("date d'expiration hors limites")?;
    let kit = EnrolmentKit {
        format: KIT_FORMAT,
        server: server_url.trim_end_matches('/').to_owned(),
        school: school.as_str().to_owned(),
        token: token.to_owned(),
        max_uses,
        expires,
        created: now,
        ca_certificate,
        keyring,
    };
    kit.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(kit)
}

/// The kit file's text (French warning first). The dashboard serves it as
/// a download named `nird-inscription-UAI.toml`.
pub fn render(kit: &EnrolmentKit) -> String {
    kit.render()
}

/// The address agents use: `--server`, else `https://NAME:PORT` from the
/// name `init --hostname` recorded and the port `serve` listens on.
pub fn server_url(data: &DataDir, explicit: Option<&str>, port: u16) -> anyhow::Result<String> {
    if let Some(url) = explicit {
        let u = url.trim().trim_end_matches('/');
        let host = u.strip_prefix("https://").unwrap_or("");
        if host.is_empty() || host.contains('/') || u.chars().any(char::is_whitespace) {
            bail!("adresse « {url} » invalide : attendu https://NOM:PORT (sans chemin)");
        }
        return Ok(u.to_owned());
    }
    let file = data.root().join(SERVER_NAME_FILE);
    let name = std::fs::read_to_string(&file)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let Some(name) = name else {
        bail!(
            "adresse du serveur inconnue (initialisé sans --hostname) : ajoutez \
             --server https://NOM:{port}, le nom par lequel les PC joignent ce serveur"
        );
    };
    let host = if name.contains(':') {
        format!("[{name}]")
    } else {
        name
    };
    Ok(if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    })
}

/// `kit create`: checks everything, creates the token, writes the kit
/// (mode 0600, never over an existing file). Returns the text to print.
pub async fn create(
    store: &dyn Store,
    data: &DataDir,
    actor: &str,
    req: &KitRequest,
) -> anyhow::Result<String> {
    let now = time::OffsetDateTime::now_utc();
    let school = Uai::parse(&req.school)?;
    if req.uses == 0 {
        bail!("le nombre d'utilisations doit être au moins 1");
    }
    let expires_at = req
        .expires
        .as_deref()
        .map(|e| admin::parse_expiry(e, now))
        .transpose()?;
    let url = server_url(data, req.server.as_deref(), req.listen_port)?;
    check_out_path(&req.out)?;
    // The kit is assembled before the token is stored: a problem (CA
    // unreadable...) leaves no token behind.
    let token = secrets::new_secret();
    let kit = assemble(
        store, data, &url, &school, &token, req.uses, expires_at, now,
    )
    .await?;
    let id = store
        .create_token(
            actor,
            NewToken {
                school: school.clone(),
                token_hash: secrets::hash_secret(&token),
                expires_at,
                max_uses: req.uses,
            },
        )
        .await?;
    if let Err(e) = write_new_private(&req.out, render(&kit).as_bytes()) {
        // No kit, no live token.
        let _ = store.revoke_token(actor, id).await;
        return Err(e).with_context(|| format!("impossible d'écrire {}", req.out.display()));
    }
    let mut out = format!(
        "Kit d'inscription écrit dans {} (lisible par vous seul) : établissement {school}, \
         {} machine(s), expire : {}.\n",
        req.out.display(),
        req.uses,
        admin::format_time(expires_at)
    );
    out.push_str(&format!(
        "Serveur : {url}. Jeton n° {id} : révocable avec « nird-server token revoke {id} ».\n"
    ));
    if kit.keyring.is_none() {
        out.push_str(
            "ATTENTION : aucun trousseau de clés publié ; le kit n'en contient pas et les PC \
             n'appliqueront aucun profil tant que « nird-server keyring publish » n'est pas fait.\n",
        );
    }
    if url.contains("localhost") || url.contains("127.0.0.1") || url.contains("[::1]") {
        out.push_str(&format!(
            "ATTENTION : l'adresse {url} ne sert que sur ce serveur lui-même ; pour des PC du \
             réseau, refaites le kit avec --server https://NOM:PORT.\n"
        ));
    }
    out.push_str(
        "C'est un secret tant qu'il est valable : sur chaque PC, « nird-agent enroll --kit FICHIER », \
         puis effacez-le.",
    );
    Ok(out)
}

/// Refuses an existing output file or a missing directory before anything
/// is created.
fn check_out_path(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        bail!(
            "{} existe déjà : choisissez un autre nom ou supprimez-le d'abord",
            out.display()
        );
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "le dossier {} n'existe pas (la clé USB est-elle montée ?)",
            dir.display()
        );
    }
    Ok(())
}

/// Writes a new file readable by its owner only.
fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_comes_from_the_flag_or_the_recorded_name() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        assert!(server_url(&data, None, 8443).is_err());
        std::fs::write(dir.path().join(SERVER_NAME_FILE), "nird.example.org\n").unwrap();
        assert_eq!(
            server_url(&data, None, 8443).unwrap(),
            "https://nird.example.org:8443"
        );
        assert_eq!(
            server_url(&data, None, 443).unwrap(),
            "https://nird.example.org"
        );
        assert_eq!(
            server_url(&data, Some("https://10.0.0.2:9000/"), 8443).unwrap(),
            "https://10.0.0.2:9000"
        );
        assert!(server_url(&data, Some("http://x"), 8443).is_err());
        assert!(server_url(&data, Some("https://x/api"), 8443).is_err());
        std::fs::write(dir.path().join(SERVER_NAME_FILE), "::1\n").unwrap();
        assert_eq!(server_url(&data, None, 8443).unwrap(), "https://[::1]:8443");
    }

    #[test]
    fn an_existing_file_or_a_missing_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kit.toml");
        std::fs::write(&f, "x").unwrap();
        assert!(check_out_path(&f).is_err());
        assert!(check_out_path(&dir.path().join("nope/kit.toml")).is_err());
        assert!(check_out_path(&dir.path().join("new.toml")).is_ok());
    }
}
