//! `nird-agent enroll`: joins the machine to the fleet.
//!
//! Order of operations, so that a failure at any step changes nothing on the
//! machine and spends no token use when it can be avoided:
//! 1. refuse if already enrolled (unless `--force`);
//! 2. validate the arguments (URL, token, fingerprint);
//! 3. pin the CA (file, or fingerprint checked against the presented chain);
//! 4. compare clocks using the `Date` of a first reply (before the token is
//!    sent: a refused skew must not consume a use of the token);
//! 5. send the token and the inventory;
//! 6. store, in this order: CA, credential (0600 in a 0700 directory), config.
//!    The config is the "enrolled" marker, so it is written last.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use nird_proto::api::{EnrollRequest, MachineStatus, machine_authorization};
use serde::{Deserialize, Serialize};

use crate::config::{AgentConfig, ConfigError, ServerUrl, is_machine_id};
use crate::paths::AgentPaths;
use crate::spool::write_atomic;
use crate::status::DaemonStatus;
use crate::transport::{self, HttpsTransport, PinError, TransportError};

/// Largest clock difference with the server accepted at enrolment.
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// The machine's credential, stored in `/var/lib/nird-agent/credential`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Identifier given by the server.
    pub machine_id: String,
    /// The secret; only its hash is on the server. Never logged.
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("machine_id", &self.machine_id)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// The credential file is missing or unusable.
#[derive(Debug, thiserror::Error)]
#[error(
    "identifiant de la machine illisible ({path}) : {reason} ; ré-enrôlez avec « nird-agent enroll --force »"
)]
pub struct CredentialError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

impl Credential {
    /// Reads the credential of the agent at `paths`.
    pub fn load(paths: &AgentPaths) -> Result<Self, CredentialError> {
        let path = paths.credential_file();
        let err = |reason: String| CredentialError {
            path: path.display().to_string(),
            reason,
        };
        let bytes = fs::read(&path).map_err(|e| err(e.to_string()))?;
        let c: Credential = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
        if !is_machine_id(&c.machine_id) || c.secret.is_empty() || !c.secret.is_ascii() {
            return Err(err("contenu invalide".into()));
        }
        Ok(c)
    }

    /// Writes it (mode 0600, state directory 0700).
    pub fn save(&self, paths: &AgentPaths) -> std::io::Result<()> {
        let dir = paths.state_dir();
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let body = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        write_atomic(&paths.credential_file(), &body, 0o600)
    }

    /// The `Authorization` header value.
    pub fn authorization(&self) -> String {
        machine_authorization(&self.machine_id, &self.secret)
    }
}

/// How the server's CA is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaPin {
    /// `--ca-fingerprint`: SHA-256 of the CA certificate's DER.
    Fingerprint(String),
    /// `--ca-file`: the CA certificate itself (PEM).
    File(PathBuf),
    /// The CA certificate given inline (PEM), from an enrolment kit.
    Pem(String),
}

/// What `enroll` needs.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// `--server`.
    pub server: String,
    /// `--token`.
    pub token: String,
    /// `--ca-fingerprint` or `--ca-file`.
    pub ca: CaPin,
    /// `--force`: replace an existing enrolment.
    pub force: bool,
    /// `--keyring FILE`: the maintainers' keyring (`FILE` + `FILE.minisig`).
    /// Without it, the agent takes the pinned server's first keyring (trust
    /// on first use) and shows its key ids.
    pub keyring: Option<PathBuf>,
    /// `--replace-keyring`: the keyring given replaces the one held even
    /// when it is not its successor (a machine moving to another
    /// maintainers' chain). Needs `keyring`.
    pub replace_keyring: bool,
}

/// The keyring an enrolment brings: the operator's file or the kit's
/// (`None`: the server's first one, unless one is held), and whether it
/// may replace one held off its chain (`--replace-keyring`).
struct OfferedKeyring {
    document: Option<(Vec<u8>, String)>,
    replace: bool,
}

/// Where the keyring an enrolment leaves came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringSource {
    /// The operator's file or the kit.
    Operator,
    /// The pinned server's first keyring (trust on first use).
    Server,
    /// The one held before, kept; `offered`: the version offered, if any.
    Kept {
        offered: Option<u64>,
        /// The keyring offered was the very one held.
        identical: bool,
    },
    /// The operator's, replacing (`--replace-keyring`) version `previous`.
    Replaced { previous: u64 },
}

/// A successful enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The machine's identifier.
    pub machine_id: String,
    /// `pending` (waits for approval) or `active`.
    pub status: MachineStatus,
    /// Fingerprint of the pinned CA.
    pub ca_fingerprint: String,
    /// The keyring installed: version and (key id, holder) pairs; `None`
    /// when neither `--keyring` nor the server provided one.
    pub keyring: Option<(u64, Vec<(String, String)>)>,
    /// Where the keyring came from.
    pub keyring_source: KeyringSource,
    /// The root managed (`/` in production): says how to start the agent.
    pub root: PathBuf,
}

/// Why enrolment failed. Every message is one French sentence.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Already enrolled and no `--force`.
    #[error(
        "cette machine est déjà enrôlée auprès de {server} (machine {machine_id}) : ajoutez --force pour la ré-enrôler"
    )]
    AlreadyEnrolled {
        /// Current server.
        server: String,
        /// Current machine id.
        machine_id: String,
    },
    /// The existing config cannot be read (and no `--force`).
    #[error("{0} ; ajoutez --force pour ré-enrôler la machine")]
    ExistingConfig(ConfigError),
    /// Bad `--server`.
    #[error(transparent)]
    Url(#[from] crate::config::UrlError),
    /// Bad `--token`.
    #[error("jeton d'enrôlement invalide : il doit faire 1 à 256 caractères, sans espace")]
    TokenFormat,
    /// `--replace-keyring` without a keyring to replace with.
    #[error(
        "--replace-keyring remplace le trousseau détenu par celui que vous donnez : indiquez-le avec --keyring FICHIER (ou un kit qui en contient un)"
    )]
    ReplaceWithoutKeyring,
    /// Bad `--ca-fingerprint`.
    #[error(
        "empreinte « {0} » invalide : attendu 64 chiffres hexadécimaux (SHA-256), avec ou sans « : »"
    )]
    FingerprintFormat(String),
    /// `--ca-file` unreadable or without a certificate.
    #[error("impossible de lire le certificat d'autorité {path} : {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Pinning by fingerprint failed.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The clocks differ too much.
    #[error(
        "l'horloge de cette machine ({local}) diffère de celle du serveur ({server}) de plus de 5 minutes : mettez-la à l'heure (timedatectl set-ntp true) puis recommencez"
    )]
    ClockSkew {
        /// Local time.
        local: String,
        /// Server time.
        server: String,
    },
    /// The token was refused.
    #[error(
        "jeton d'enrôlement refusé (inconnu, expiré, révoqué ou déjà utilisé autant de fois que permis) : demandez-en un nouveau à l'administrateur ({0})"
    )]
    TokenRefused(String),
    /// Any other server or network failure.
    #[error("{0}")]
    Transport(TransportError),
    /// The server's reply cannot be used.
    #[error("réponse d'enrôlement inutilisable : {0}")]
    BadReply(&'static str),
    /// `--keyring` unreadable or not a valid signed keyring.
    #[error("trousseau de clés {path} refusé : {reason}")]
    Keyring {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// `--kit FILE` unreadable or not a kit.
    #[error("kit d'inscription {path} refusé : {reason}")]
    KitFile {
        /// The file.
        path: String,
        /// Why (French).
        reason: String,
    },
    /// The kit's token expired (seen from the kit, or said by the server).
    #[error(
        "ce kit d'inscription a expiré{when} : demandez-en un nouveau à l'administrateur du serveur (« nird-server kit create »)"
    )]
    KitExpired {
        /// ` le DATE` when known.
        when: String,
    },
    /// The kit's token was revoked.
    #[error(
        "ce kit d'inscription a été révoqué par l'administrateur : demandez-en un nouveau (« nird-server kit create »)"
    )]
    KitRevoked,
    /// The kit's token was used as many times as allowed.
    #[error(
        "ce kit d'inscription a déjà inscrit {max_uses} machine(s), son maximum : demandez-en un nouveau (« nird-server kit create --uses N »)"
    )]
    KitUsedUp {
        /// Machines it allowed.
        max_uses: u32,
    },
    /// The server does not know the kit's token.
    #[error(
        "le serveur {server} ne connaît pas ce kit (il vient d'un autre serveur, ou le serveur a été réinitialisé) : demandez un nouveau kit"
    )]
    KitUnknown {
        /// The kit's server.
        server: String,
    },
    /// Writing the result failed.
    #[error("impossible d'enregistrer l'enrôlement dans {path} : {reason}")]
    Store {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl From<TransportError> for EnrollError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Api { status: 401, error } => EnrollError::TokenRefused(error.message),
            other => EnrollError::Transport(other),
        }
    }
}

/// Refuses a clock more than [`MAX_CLOCK_SKEW`] away from the server's.
pub fn check_clock_skew(
    local: time::OffsetDateTime,
    server: time::OffsetDateTime,
) -> Result<(), EnrollError> {
    if (local - server).abs() > MAX_CLOCK_SKEW {
        return Err(EnrollError::ClockSkew {
            local: crate::status::date_text(local),
            server: crate::status::date_text(server),
        });
    }
    Ok(())
}

/// The machine's hostname: `/etc/hostname` under the root, else the
/// kernel's when the root is `/`, else `machine`.
pub fn hostname(paths: &AgentPaths) -> String {
    let candidates = [
        Some(paths.system("/etc/hostname")),
        (paths.root == std::path::Path::new("/"))
            .then(|| PathBuf::from("/proc/sys/kernel/hostname")),
    ];
    candidates
        .into_iter()
        .flatten()
        .filter_map(|p| fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty() && s.len() <= 253)
        .unwrap_or_else(|| "machine".to_owned())
}

/// Enrols the machine at `paths`, sending `inventory` (its document and
/// `content_hash`). `now` is the local clock.
pub fn enroll(
    paths: &AgentPaths,
    options: &EnrollOptions,
    inventory: &crate::daemon::InventorySnapshot,
    now: &dyn Fn() -> time::OffsetDateTime,
) -> Result<Enrolled, EnrollError> {
    refuse_if_enrolled(paths, options.force)?;
    if options.replace_keyring && options.keyring.is_none() {
        return Err(EnrollError::ReplaceWithoutKeyring);
    }
    let url = ServerUrl::parse(&options.server)?;
    let token = options.token.trim();
    if token.is_empty() || token.len() > 256 || token.chars().any(char::is_whitespace) {
        return Err(EnrollError::TokenFormat);
    }

    // The keyring given by the operator is checked before anything is sent.
    let keyring_file = match &options.keyring {
        Some(path) => {
            let err = |reason: String| EnrollError::Keyring {
                path: path.display().to_string(),
                reason,
            };
            let bytes = fs::read(path).map_err(|e| err(io_fr(&e)))?;
            let sig = fs::read_to_string(crate::trust_sig_path(path)).map_err(|e| {
                err(format!(
                    "signature {} illisible : {}",
                    crate::trust_sig_path(path).display(),
                    io_fr(&e)
                ))
            })?;
            nird_proto::keyring::verify_keyring(None, &bytes, &sig)
                .map_err(|e| err(e.to_string()))?;
            Some((bytes, sig))
        }
        None => None,
    };
    enroll_pinned(
        paths,
        &url,
        token,
        &options.ca,
        OfferedKeyring {
            document: keyring_file,
            replace: options.replace_keyring,
        },
        inventory,
        now,
    )
}

/// Refuses to replace an enrolment unless `force`.
fn refuse_if_enrolled(paths: &AgentPaths, force: bool) -> Result<(), EnrollError> {
    if force {
        return Ok(());
    }
    match AgentConfig::load(paths) {
        Ok(c) => Err(EnrollError::AlreadyEnrolled {
            server: c.server,
            machine_id: c.machine_id,
        }),
        Err(ConfigError::NotEnrolled { .. }) => Ok(()),
        Err(e) => Err(EnrollError::ExistingConfig(e)),
    }
}

/// French text for an I/O error on a file the operator named.
pub fn io_fr(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "fichier introuvable".into(),
        std::io::ErrorKind::PermissionDenied => {
            "permission refusée (lancez la commande en root)".into()
        }
        std::io::ErrorKind::IsADirectory => "c'est un dossier, pas un fichier".into(),
        std::io::ErrorKind::InvalidData => "contenu illisible".into(),
        _ => format!("erreur de lecture ({e})"),
    }
}

/// Enrols with an enrolment kit (`nird-agent enroll --kit FILE`): the
/// kit's CA is pinned, its keyring installed (no trust on first use when
/// the kit carries one), its token sent. An expired kit is refused before
/// anything is sent; a token the server refuses is explained in terms of
/// the kit (expired, revoked, used up, unknown).
pub fn enroll_with_kit(
    paths: &AgentPaths,
    kit_file: &std::path::Path,
    force: bool,
    replace_keyring: bool,
    inventory: &crate::daemon::InventorySnapshot,
    now: &dyn Fn() -> time::OffsetDateTime,
) -> Result<Enrolled, EnrollError> {
    refuse_if_enrolled(paths, force)?;
    let file_err = |reason: String| EnrollError::KitFile {
        path: kit_file.display().to_string(),
        reason,
    };
    let meta = fs::metadata(kit_file).map_err(|e| file_err(io_fr(&e)))?;
    if meta.len() > nird_proto::kit::MAX_KIT_BYTES as u64 {
        return Err(file_err(nird_proto::kit::KitError::TooLarge.to_string()));
    }
    let bytes = fs::read(kit_file).map_err(|e| file_err(io_fr(&e)))?;
    let kit = nird_proto::kit::EnrolmentKit::parse(&bytes).map_err(|e| file_err(e.to_string()))?;
    let expired = |kit: &nird_proto::kit::EnrolmentKit| EnrollError::KitExpired {
        when: kit
            .expires
            .map(|t| format!(" le {}", crate::status::date_text(t)))
            .unwrap_or_default(),
    };
    if kit.is_expired_at(now()) {
        return Err(expired(&kit));
    }
    let url = ServerUrl::parse(&kit.server)?;
    let keyring = match &kit.keyring {
        Some(k) => {
            nird_proto::keyring::verify_keyring(None, k.document.as_bytes(), &k.signature)
                .map_err(|e| file_err(format!("trousseau de clés du kit refusé : {e}")))?;
            Some((k.document.clone().into_bytes(), k.signature.clone()))
        }
        None if replace_keyring => return Err(EnrollError::ReplaceWithoutKeyring),
        None => None,
    };
    enroll_pinned(
        paths,
        &url,
        &kit.token,
        &CaPin::Pem(kit.ca_certificate.clone()),
        OfferedKeyring {
            document: keyring,
            replace: replace_keyring,
        },
        inventory,
        now,
    )
    .map_err(|e| match e {
        // The server's sentence names the reason (store's TokenProblem).
        EnrollError::TokenRefused(message) => {
            if message.contains("révoqué") {
                EnrollError::KitRevoked
            } else if message.contains("expiré") {
                expired(&kit)
            } else if message.contains("épuisé") {
                EnrollError::KitUsedUp {
                    max_uses: kit.max_uses,
                }
            } else {
                EnrollError::KitUnknown {
                    server: kit.server.clone(),
                }
            }
        }
        other => other,
    })
}

/// Steps 3 to 6 of the module doc, once the arguments are checked.
fn enroll_pinned(
    paths: &AgentPaths,
    url: &ServerUrl,
    token: &str,
    ca: &CaPin,
    offered: OfferedKeyring,
    inventory: &crate::daemon::InventorySnapshot,
    now: &dyn Fn() -> time::OffsetDateTime,
) -> Result<Enrolled, EnrollError> {
    let url = url.clone();
    let ca_pem = match ca {
        CaPin::Fingerprint(fp) => {
            let fp = transport::normalize_fingerprint(fp)
                .ok_or_else(|| EnrollError::FingerprintFormat(fp.clone()))?;
            transport::fetch_pinned_ca(&url, &fp)?
        }
        CaPin::File(path) => {
            let err = |reason: String| EnrollError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let bytes = fs::read(path).map_err(|e| err(io_fr(&e)))?;
            let (cert, _) = transport::first_certificate(&bytes)
                .ok_or_else(|| err("aucun certificat PEM".into()))?;
            transport::to_pem(&cert)
        }
        CaPin::Pem(pem) => {
            let (cert, _) = transport::first_certificate(pem.as_bytes()).ok_or_else(|| {
                EnrollError::CaFile {
                    path: "(kit d'inscription)".into(),
                    reason: "aucun certificat PEM lisible".into(),
                }
            })?;
            transport::to_pem(&cert)
        }
    };
    let (_, ca_fingerprint) = transport::first_certificate(ca_pem.as_bytes())
        .ok_or(EnrollError::BadReply("certificat d'autorité illisible"))?;

    let https = HttpsTransport::new(&url, ca_pem.as_bytes(), None)?;
    let mut skew_checked = false;
    if let Some(server_now) = https.server_date()? {
        check_clock_skew(now(), server_now)?;
        skew_checked = true;
    }

    let reply = https.enroll(&EnrollRequest {
        token: token.to_owned(),
        hostname: hostname(paths),
        inventory: inventory.document.clone(),
        inventory_hash: inventory.hash.clone(),
    })?;
    if !skew_checked {
        check_clock_skew(now(), reply.server_time)?;
    } else if check_clock_skew(now(), reply.server_time).is_err() {
        tracing::warn!("server_time in the enrolment reply disagrees with the Date header");
    }
    if !is_machine_id(&reply.machine_id) || reply.secret.is_empty() || !reply.secret.is_ascii() {
        return Err(EnrollError::BadReply("identifiant de machine invalide"));
    }

    let store_err = |path: PathBuf| {
        move |e: std::io::Error| EnrollError::Store {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    };
    let credential = Credential {
        machine_id: reply.machine_id.clone(),
        secret: reply.secret,
    };
    credential
        .save(paths)
        .map_err(store_err(paths.credential_file()))?;
    write_atomic(&paths.server_ca_file(), ca_pem.as_bytes(), 0o644)
        .map_err(store_err(paths.server_ca_file()))?;
    // A new identity starts a new conversation with the server: reports
    // spooled for the old machine id are not this machine's any more.
    // (The spool's seq counter stays, so numbers are never reused.)
    clear_spool_entries(paths).map_err(store_err(paths.spool_dir()))?;
    let status = DaemonStatus {
        enrolled_at: Some(now()),
        machine_status: Some(reply.status),
        // The server stored this inventory with the enrolment.
        server_inventory_hash: Some(inventory.hash.clone()),
        ..DaemonStatus::default()
    };
    status.save(paths).map_err(store_err(paths.status_file()))?;
    crate::server_inventory::save(paths, &inventory.hash, &inventory.document);
    let ca_system_path = PathBuf::from("/").join(
        paths
            .server_ca_file()
            .strip_prefix(&paths.root)
            .unwrap_or(&paths.server_ca_file()),
    );
    // The keyring: the operator's, or the pinned server's first one (trust
    // on first use; its key ids are shown). Later ones are chained. A
    // keyring held already is never replaced by an older one, nor by one
    // off its chain, unless the operator says so (--replace-keyring): a
    // re-enrolment takes nothing from the server (its first keyring would
    // trust keys a later one revoked).
    let held = crate::trust::load_keyring(paths).ok().flatten();
    let replace_keyring = offered.replace;
    let (keyring_doc, keyring_from_server) = match offered.document {
        Some(pair) => (Some(pair), false),
        None if held.is_some() => (None, false),
        None => {
            let authed = HttpsTransport::new(
                &url,
                ca_pem.as_bytes(),
                Some(machine_authorization(&reply.machine_id, &credential.secret)),
            )?;
            use crate::transport::Transport as _;
            let fetched = authed
                .fetch("/keyrings/1", nird_proto::keyring::MAX_KEYRING_BYTES as u64)
                .and_then(|b| {
                    let s = authed.fetch(
                        "/keyrings/1.minisig",
                        nird_proto::keyring::MAX_KEYRING_SIGNATURES_BYTES as u64,
                    )?;
                    Ok((b, String::from_utf8_lossy(&s).into_owned()))
                });
            match fetched {
                Ok(pair) => (Some(pair), true),
                Err(TransportError::Api { status: 404, .. }) => {
                    tracing::warn!("the server has no keyring yet");
                    (None, true)
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    use crate::trust::EnrolmentKeyring;
    let (keyring, keyring_source) = match keyring_doc {
        Some((bytes, sig)) => {
            let done =
                crate::trust::install_enrolment_keyring(paths, &bytes, &sig, replace_keyring)
                    .map_err(|e| EnrollError::Keyring {
                        path: paths.keyring_file().display().to_string(),
                        reason: e.to_string(),
                    })?;
            match done {
                EnrolmentKeyring::Installed(k) if keyring_from_server => {
                    (Some(k), KeyringSource::Server)
                }
                EnrolmentKeyring::Installed(k) => (Some(k), KeyringSource::Operator),
                EnrolmentKeyring::Kept {
                    held,
                    offered,
                    identical,
                } => (
                    Some(held),
                    KeyringSource::Kept {
                        offered: Some(offered),
                        identical,
                    },
                ),
                EnrolmentKeyring::Replaced { previous, keyring } => {
                    (Some(keyring), KeyringSource::Replaced { previous })
                }
            }
        }
        None => (
            held,
            KeyringSource::Kept {
                offered: None,
                identical: false,
            },
        ),
    };
    let keyring = keyring.map(|k| {
        (
            k.version,
            k.keys
                .iter()
                .map(|k| (k.id.clone(), k.name.clone()))
                .collect(),
        )
    });
    let mut config = AgentConfig::new(&url.base, &reply.machine_id, ca_system_path);
    config.school = reply.school.clone();
    if let Ok(old) = AgentConfig::load(paths) {
        // Keep the operator's tuning across a re-enrolment.
        config.interval_secs = old.interval_secs;
        config.jitter_secs = old.jitter_secs;
        config.log_level = old.log_level;
        config.maintenance = old.maintenance;
    }
    config.save(paths).map_err(|e| EnrollError::Store {
        path: paths.config_file().display().to_string(),
        reason: e.to_string(),
    })?;
    tracing::info!(machine_id = %reply.machine_id, server = %url.base, "enrolled");
    Ok(Enrolled {
        machine_id: reply.machine_id,
        status: reply.status,
        ca_fingerprint,
        keyring,
        keyring_source,
        root: paths.root.clone(),
    })
}

/// [`enroll`] with the machine's real inventory and clock.
pub fn enroll_with_collected_inventory(
    paths: &AgentPaths,
    options: &EnrollOptions,
) -> Result<Enrolled, EnrollError> {
    use crate::daemon::InventorySource as _;
    let inventory = crate::daemon::service::CollectedInventory::new(paths)
        .collect()
        .map_err(|reason| EnrollError::Store {
            path: "inventaire".into(),
            reason,
        })?;
    enroll(paths, options, &inventory, &time::OffsetDateTime::now_utc)
}

/// [`enroll_with_kit`] with the machine's real inventory and clock.
pub fn enroll_kit_with_collected_inventory(
    paths: &AgentPaths,
    kit: &std::path::Path,
    force: bool,
    replace_keyring: bool,
) -> Result<Enrolled, EnrollError> {
    use crate::daemon::InventorySource as _;
    let inventory = crate::daemon::service::CollectedInventory::new(paths)
        .collect()
        .map_err(|reason| EnrollError::Store {
            path: "inventaire".into(),
            reason,
        })?;
    enroll_with_kit(
        paths,
        kit,
        force,
        replace_keyring,
        &inventory,
        &time::OffsetDateTime::now_utc,
    )
}

impl Enrolled {
    /// The French sentence `enroll` prints on success; `started` when the
    /// caller already started the service.
    pub fn summary(&self, started: bool) -> String {
        let next = match self.status {
            MachineStatus::Pending => {
                "elle attend l'approbation d'un administrateur avant de recevoir des profils"
            }
            _ => "elle recevra ses profils au prochain contact",
        };
        let start = if started {
            "L'agent est démarré (service nird-agent).".to_owned()
        } else if self.root == std::path::Path::new("/") {
            "Démarrez l'agent : systemctl enable --now nird-agent".to_owned()
        } else {
            // A mounted system or a test root: not this machine's service.
            format!(
                "Lancez l'agent de cette racine : nird-agent --root {} run",
                self.root.display()
            )
        };
        let mut out = format!(
            "Machine enrôlée (identifiant {}, autorité {}) : {next}. {start}",
            self.machine_id, self.ca_fingerprint
        );
        match &self.keyring {
            Some((version, keys)) => {
                let how = match &self.keyring_source {
                    KeyringSource::Operator => String::new(),
                    KeyringSource::Server => {
                        " reçu du serveur (confiance à la première utilisation)".into()
                    }
                    KeyringSource::Kept { offered: None, .. } => " déjà détenu, conservé".into(),
                    KeyringSource::Kept {
                        identical: true, ..
                    } => " déjà détenu".into(),
                    KeyringSource::Kept {
                        offered: Some(v), ..
                    } => format!(
                        " déjà détenu, conservé : le trousseau version {v} donné n'en est pas la \
                         suite (un trousseau plus ancien ferait de nouveau confiance à des clés \
                         révoquées ; --replace-keyring le remplace si la machine change de \
                         mainteneurs)"
                    ),
                    KeyringSource::Replaced { previous } => {
                        format!(" installé à la place de la version {previous} (--replace-keyring)")
                    }
                };
                out.push_str(&format!(
                    "\nTrousseau de clés version {version}{how} : vérifiez que ce sont bien les clés des mainteneurs :"
                ));
                for (id, name) in keys {
                    out.push_str(&format!("\n  clé {id}  {name}"));
                }
            }
            None => out.push_str(
                "\nAttention : aucun trousseau de clés (le serveur n'en publie pas encore) ; \
                 aucun profil ne sera appliqué tant qu'il n'y en a pas. \
                 Ré-enrôlez avec --keyring FICHIER, ou publiez-en un sur le serveur.",
            ),
        }
        out
    }
}

fn clear_spool_entries(paths: &AgentPaths) -> std::io::Result<()> {
    let dir = paths.spool_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        if e.file_name().to_string_lossy().ends_with(".json") {
            fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_beyond_five_minutes_is_refused() {
        let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        assert!(check_clock_skew(t, t + time::Duration::minutes(4)).is_ok());
        assert!(check_clock_skew(t, t - time::Duration::minutes(4)).is_ok());
        let err = check_clock_skew(t, t + time::Duration::minutes(6)).unwrap_err();
        assert!(err.to_string().contains("horloge"), "{err}");
        assert!(check_clock_skew(t, t - time::Duration::hours(3)).is_err());
        // A server_time from the network at the edge of the calendar (the
        // year 10000 in UTC) is refused, not a panic.
        let edge = time::macros::datetime!(9999-12-31 23:30 -01:00);
        let err = check_clock_skew(t, edge).unwrap_err();
        assert!(
            err.to_string().contains("9999-12-31 23:30:00 -01:00"),
            "{err}"
        );
    }

    #[test]
    fn credential_is_private_and_hidden_from_debug() {
        let dir = tempfile::tempdir().unwrap();
        let paths = AgentPaths::new(dir.path());
        let c = Credential {
            machine_id: "m-1".into(),
            secret: "s3cret".into(),
        };
        c.save(&paths).unwrap();
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(paths.credential_file()), 0o600);
        assert_eq!(mode(paths.state_dir()), 0o700);
        assert_eq!(Credential::load(&paths).unwrap(), c);
        assert!(!format!("{c:?}").contains("s3cret"));
        fs::write(paths.credential_file(), b"{}").unwrap();
        assert!(Credential::load(&paths).is_err());
    }

    #[test]
    fn bad_arguments_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let paths = AgentPaths::new(dir.path());
        let inv = crate::daemon::InventorySnapshot::new(serde_json::json!({})).unwrap();
        let now = time::OffsetDateTime::now_utc;
        let opts = |server: &str, token: &str, ca: CaPin| EnrollOptions {
            server: server.into(),
            token: token.into(),
            ca,
            force: false,
            keyring: None,
            replace_keyring: false,
        };
        let fp = CaPin::Fingerprint("ab".repeat(32));
        for (o, needle) in [
            (opts("http://x", "t", fp.clone()), "https://"),
            (opts("https://x", "a b", fp.clone()), "jeton"),
            (
                opts("https://x", "t", CaPin::Fingerprint("12:34".into())),
                "empreinte",
            ),
            (
                opts("https://x", "t", CaPin::File(dir.path().join("nope.pem"))),
                "nope.pem",
            ),
            // Nothing listens on port 1.
            (opts("https://127.0.0.1:1", "t", fp.clone()), "injoignable"),
        ] {
            let err = enroll(&paths, &o, &inv, &now).unwrap_err().to_string();
            assert!(err.contains(needle), "« {err} » lacks « {needle} »");
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
