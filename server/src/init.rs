//! `nird-server init`: makes a data directory a working server.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::data_dir::DataDir;
use crate::fs_util::{create_private_dir, write_atomic};
use crate::store::{NewUser, Role, SqliteStore, Store};
use crate::{secrets, tls, trust};

/// What `init` was asked to do.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The directory to initialise (created if missing).
    pub data_dir: DataDir,
    /// Names (DNS or IP) the server certificate is valid for; empty means
    /// `localhost`, `127.0.0.1` and `::1`.
    pub hostnames: Vec<String>,
    /// A signed keyring (`keyring.toml` + `.minisig`) to publish at once.
    pub keyring: Option<PathBuf>,
    /// A PostgreSQL database (`postgres://…`) to hold the server's data
    /// instead of the directory's SQLite file.
    pub database: Option<String>,
}

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// A new server was made.
    Created {
        /// The `admin` account's password, shown once.
        admin_password: String,
        /// SHA-256 of the CA certificate, for agents to pin.
        ca_fingerprint: String,
    },
    /// The directory was initialised already: nothing changed.
    AlreadyInitialised {
        /// SHA-256 of the CA certificate in place.
        ca_fingerprint: Option<String>,
    },
}

/// Login of the account `init` creates.
pub const ADMIN_LOGIN: &str = "admin";

/// Initialises `opts.data_dir`, or does nothing if it already is.
///
/// The database is created under a temporary name and renamed last, so an
/// interrupted `init` leaves a directory that `init` simply redoes.
pub async fn init(opts: &InitOptions) -> anyhow::Result<InitOutcome> {
    if let Some(url) = &opts.database {
        return init_postgresql(opts, url).await;
    }
    let dir = &opts.data_dir;
    if dir.is_initialised() {
        return Ok(InitOutcome::AlreadyInitialised {
            ca_fingerprint: tls::fingerprint(&dir.ca_cert()).ok(),
        });
    }
    check_keyring(opts)?;
    let ca_fingerprint = write_pki(opts)?;

    let staging = dir.root().join("nird.db.init");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", staging.display()));
        if p.exists() {
            std::fs::remove_file(&p)?;
        }
    }
    let store = SqliteStore::open(&staging)?;
    let admin_password = secrets::new_password();
    add_admin(&store, &admin_password).await?;
    publish_keyring(&store, opts).await?;
    store.close().await?;
    // The database holds credential hashes and the audit log: owner only.
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&staging, dir.database())?;
    Ok(InitOutcome::Created {
        admin_password,
        ca_fingerprint,
    })
}

/// `init --database postgres://…`: the directory gets its certificates and
/// keys as with SQLite (kept when it has them), the database its `admin`
/// account, and the directory its marker last. Refused, with nothing
/// written:
/// - a directory that holds a SQLite database: its fleet is there, and
///   `db copy` is how it moves (an `admin` made in PostgreSQL would leave
///   it behind, and `db copy` wants an empty target);
/// - a database that has an `admin` already, from a directory without the
///   marker (one more server process on it): that directory's
///   certificates would not be the other processes', which agents trust.
///   A directory with the marker is this database's: already initialised.
///
/// An `init` stopped between the account and the marker (a crash, Ctrl-C)
/// is finished by the next one: the directory keeps the new password in a
/// pending file (0600) until the marker is written, and an `admin` whose
/// hash verifies it is this directory's own.
async fn init_postgresql(opts: &InitOptions, url: &str) -> anyhow::Result<InitOutcome> {
    let dir = &opts.data_dir;
    let shown = crate::store::pg::redact_url(url);
    if dir.database().exists() {
        anyhow::bail!(
            "{root} a déjà une base SQLite ({db}) : pour passer ce serveur à PostgreSQL, \
             copiez-la avec « nird-server db copy --from sqlite:{db} --to {shown} », puis \
             lancez « nird-server serve --data-dir {root} --database {shown} ». \
             Rien n'a été modifié.",
            root = dir.root().display(),
            db = dir.database().display(),
        );
    }
    check_keyring(opts)?;
    let store = crate::store::open(&dir.database(), Some(url))
        .await
        .with_context(|| format!("impossible d'ouvrir {shown}"))?;
    let has_admin = store.user_exists(ADMIN_LOGIN).await?;
    let has_pki =
        dir.ca_cert().is_file() && dir.server_cert().is_file() && dir.server_key().is_file();
    let pending = dir.postgresql_init_pending();
    if has_admin {
        let resumed = if has_pki && !dir.postgresql_marker().is_file() {
            interrupted_init_password(store.as_ref(), dir).await?
        } else {
            None
        };
        let Some(admin_password) = resumed else {
            store.close().await?;
            if !(has_pki && dir.postgresql_marker().is_file()) {
                anyhow::bail!(
                    "la base {shown} est déjà initialisée (le compte « {ADMIN_LOGIN} » existe) \
                     par un autre répertoire de données que {} : pour un serveur de plus sur \
                     cette base, copiez le répertoire de données d'un serveur qui la sert \
                     (tls/, metrics-token, postgresql-initialised) au lieu de lancer init, afin \
                     que les agents reconnaissent son autorité de certification. \
                     Rien n'a été modifié.",
                    dir.root().display()
                );
            }
            // Stopped after its marker: the password is no longer needed.
            remove_if_exists(&pending)?;
            return Ok(InitOutcome::AlreadyInitialised {
                ca_fingerprint: tls::fingerprint(&dir.ca_cert()).ok(),
            });
        };
        // This directory's own `init`, stopped after it made the account:
        // finish it (the keyring, the marker) and show the same password.
        tracing::info!("resuming an interrupted init --database");
        publish_keyring(store.as_ref(), opts).await?;
        store.close().await?;
        write_atomic(&dir.postgresql_marker(), b"", 0o644)?;
        remove_if_exists(&pending)?;
        return Ok(InitOutcome::Created {
            admin_password,
            ca_fingerprint: tls::fingerprint(&dir.ca_cert())?,
        });
    }
    let ca_fingerprint = if has_pki {
        tls::fingerprint(&dir.ca_cert())?
    } else {
        write_pki(opts)?
    };
    // The password is kept (owner only) until the marker is written, so an
    // `init` interrupted between the account and the marker can finish.
    let admin_password = secrets::new_password();
    write_atomic(&pending, format!("{admin_password}\n").as_bytes(), 0o600)?;
    add_admin(store.as_ref(), &admin_password).await?;
    publish_keyring(store.as_ref(), opts).await?;
    store.close().await?;
    write_atomic(&dir.postgresql_marker(), b"", 0o644)?;
    remove_if_exists(&pending)?;
    Ok(InitOutcome::Created {
        admin_password,
        ca_fingerprint,
    })
}

fn remove_if_exists(path: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("impossible de supprimer {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The password an interrupted `init --database` of this directory gave
/// the `admin` account, if the account is that one: the pending file holds
/// a password the account's hash verifies. `None` when there is no such
/// file or the account is another's (made from another directory).
async fn interrupted_init_password(
    store: &dyn Store,
    dir: &DataDir,
) -> anyhow::Result<Option<String>> {
    let path = dir.postgresql_init_pending();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("impossible de lire {}", path.display()));
        }
    };
    let password = text.trim();
    let Some(hash) = store.password_hash(ADMIN_LOGIN).await? else {
        return Ok(None);
    };
    Ok(
        (!password.is_empty() && secrets::verify_password(password, &hash))
            .then(|| password.to_owned()),
    )
}

/// Checks the keyring to publish, if any, before anything is written.
fn check_keyring(opts: &InitOptions) -> anyhow::Result<()> {
    if let Some(file) = &opts.keyring {
        let bytes = std::fs::read(file)
            .with_context(|| format!("impossible de lire {}", file.display()))?;
        let sigs = std::fs::read_to_string(crate::signing::minisig_path(file))
            .with_context(|| format!("impossible de lire la signature de {}", file.display()))?;
        nird_proto::keyring::verify_keyring(None, &bytes, &sigs)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    Ok(())
}

/// Creates the directory, its CA, server certificate and key, the metrics
/// token and the server's name; returns the CA's fingerprint.
fn write_pki(opts: &InitOptions) -> anyhow::Result<String> {
    let dir = &opts.data_dir;
    let names = if opts.hostnames.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    } else {
        opts.hostnames.clone()
    };
    let pki = tls::generate(&names)?;

    create_private_dir(dir.root())
        .with_context(|| format!("impossible de créer {}", dir.root().display()))?;
    create_private_dir(&dir.tls_dir())?;
    write_atomic(&dir.ca_key(), pki.ca_key_pem.as_bytes(), 0o600)?;
    write_atomic(&dir.ca_cert(), pki.ca_cert_pem.as_bytes(), 0o644)?;
    write_atomic(&dir.server_key(), pki.server_key_pem.as_bytes(), 0o600)?;
    write_atomic(&dir.server_cert(), pki.server_chain_pem.as_bytes(), 0o644)?;
    ensure_metrics_token(dir)?;
    if let Some(name) = opts.hostnames.first() {
        // Enrolment kits build the server's address from it.
        write_atomic(
            &dir.root().join(crate::kit::SERVER_NAME_FILE),
            format!("{name}\n").as_bytes(),
            0o644,
        )?;
    }
    Ok(pki.ca_fingerprint)
}

/// Adds the `admin` account to `store`, with `password`.
async fn add_admin(store: &dyn Store, password: &str) -> anyhow::Result<()> {
    store
        .add_user(
            "init",
            NewUser {
                login: ADMIN_LOGIN.into(),
                password_hash: secrets::hash_password(password)
                    .map_err(|e| anyhow::anyhow!("argon2: {e}"))?,
                role: Role::Admin,
                schools: Vec::new(),
                territory: None,
            },
        )
        .await?;
    Ok(())
}

/// Publishes the keyring `init` was given, if any (the same keyring again
/// changes nothing: an interrupted `init` may have published it).
async fn publish_keyring(store: &dyn Store, opts: &InitOptions) -> anyhow::Result<()> {
    if let Some(file) = &opts.keyring {
        let text =
            trust::publish_keyring(store, "init", file, time::OffsetDateTime::now_utc()).await?;
        tracing::info!("{text}");
    }
    Ok(())
}

/// The bearer token `/metrics` requires, read from `DATA/metrics-token`,
/// which is created (0600, a fresh random token) if it does not exist: by
/// `init`, and by the first `serve` of a data directory made before it.
pub fn ensure_metrics_token(dir: &DataDir) -> anyhow::Result<String> {
    let path = dir.metrics_token();
    if !path.exists() {
        write_atomic(
            &path,
            format!("{}\n", secrets::new_secret()).as_bytes(),
            0o600,
        )
        .with_context(|| format!("impossible d'écrire {}", path.display()))?;
        tracing::info!(path = %path.display(), "metrics token created");
    }
    read_metrics_token(dir)
}

/// Reads `DATA/metrics-token`, refusing an empty or unreadable one.
pub fn read_metrics_token(dir: &DataDir) -> anyhow::Result<String> {
    let path = dir.metrics_token();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("impossible de lire {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.len() > 256 || token.chars().any(char::is_whitespace) {
        anyhow::bail!(
            "{} : jeton des métriques vide ou mal formé (supprimez le fichier : « serve » en recrée un)",
            path.display()
        );
    }
    Ok(token.to_owned())
}
