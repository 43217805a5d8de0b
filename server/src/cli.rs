//! The command line: flag definitions (clap) and dispatch. `main` only
//! calls [`run`] and prints the error chain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use nird_proto::api::MachineStatus;

use crate::data_dir::DataDir;
use crate::http::{ServeConfig, run as serve_https, shutdown_signal};
use crate::init::{InitOptions, InitOutcome, init};
use crate::signing::SigningCommand;
use crate::store::{Role, Store};
use crate::{admin, publish};

/// nird-server : serveur central de la flotte NIRD.
#[derive(Debug, Parser)]
#[command(
    name = "nird-server",
    version,
    about = "nird-server : serveur central de la flotte NIRD (inscription, check-ins, profils signés)"
)]
pub struct Cli {
    /// La commande.
    #[command(subcommand)]
    pub command: Command,
}

/// `--data-dir`, shared by every command that works on a server.
#[derive(Debug, Args)]
pub struct DataDirArg {
    /// Répertoire de données du serveur (base, certificats, clés) ; par défaut celui de
    /// /etc/nird-server/server.toml, sinon /var/lib/nird-server.
    #[arg(long, value_name = "DIR", env = "NIRD_DATA_DIR",
          default_value_os_t = crate::config_file::default_data_dir())]
    pub data_dir: PathBuf,
    /// Base PostgreSQL (postgres://…) à la place de la base SQLite du répertoire de
    /// données ; par défaut la clé « database » de /etc/nird-server/server.toml.
    #[arg(long, value_name = "URL", env = "NIRD_DATABASE")]
    pub database: Option<String>,
}

impl DataDirArg {
    /// The PostgreSQL database to use: `--database`, else the `database`
    /// of /etc/nird-server/server.toml; `None` for the SQLite file.
    fn database(&self) -> anyhow::Result<Option<String>> {
        match &self.database {
            Some(url) => Ok(Some(url.clone())),
            None => Ok(crate::config_file::default_database()?),
        }
    }
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Crée la base, l'autorité de certification, le certificat et le compte admin.
    Init {
        #[command(flatten)]
        dir: DataDirArg,
        /// Nom DNS ou adresse IP du serveur (répétable) ; par défaut localhost.
        #[arg(long = "hostname", value_name = "NAME")]
        hostnames: Vec<String>,
        /// Trousseau signé des mainteneurs (keyring.toml, avec keyring.toml.minisig)
        /// à publier dès l'initialisation.
        #[arg(long, value_name = "FILE")]
        keyring: Option<PathBuf>,
    },
    /// Sert l'API des agents en HTTPS. Lit /etc/nird-server/server.toml s'il existe
    /// (ou le fichier de --config) ; les options données ici l'emportent sur lui.
    Serve {
        /// Fichier de configuration (par défaut /etc/nird-server/server.toml s'il existe).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Répertoire de données du serveur (base, certificats, clés) ;
        /// par défaut /var/lib/nird-server.
        #[arg(long, value_name = "DIR", env = "NIRD_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Base PostgreSQL (postgres://…) à la place de la base SQLite du répertoire
        /// de données ; plusieurs serveurs peuvent la partager.
        #[arg(long, value_name = "URL", env = "NIRD_DATABASE")]
        database: Option<String>,
        /// Adresse d'écoute (par défaut 0.0.0.0:8443).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Certificat du serveur (PEM, chaîne complète) à la place du certificat généré.
        #[arg(long, value_name = "FILE", requires = "key")]
        cert: Option<PathBuf>,
        /// Clé privée (PEM) du certificat donné par --cert.
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<PathBuf>,
        /// Intervalle normal entre deux check-ins, en secondes (par défaut 900).
        #[arg(long, value_name = "SECS",
              value_parser = clap::value_parser!(u64).range(crate::config_file::CHECKIN_INTERVAL_SECS))]
        checkin_interval: Option<u64>,
        /// Check-ins par seconde à ne pas dépasser : au-delà, les agents sont priés
        /// d'attendre plus longtemps (par défaut 2000).
        #[arg(long, value_name = "N",
              value_parser = clap::value_parser!(u64).range(crate::config_file::TARGET_CHECKIN_RATE))]
        target_checkin_rate: Option<u64>,
        /// Nombre maximal de changements d'inventaire gardés par machine et par jour
        /// (au-delà, seul le plus récent du jour est gardé ; par défaut 24).
        #[arg(long, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=10_000))]
        inventory_changes_per_day: Option<u32>,
        /// Durée de conservation de l'historique (inventaires et rapports), en jours ;
        /// le dernier inventaire de chaque machine et le journal d'audit sont toujours
        /// gardés (par défaut 365).
        #[arg(long, value_name = "DAYS",
              value_parser = clap::value_parser!(u32).range(1..=36_500))]
        history_retention_days: Option<u32>,
        /// Coupe la connexion d'un client qui ne lit plus la réponse depuis ce nombre
        /// de secondes (par défaut 30).
        #[arg(long, value_name = "SECS",
              value_parser = clap::value_parser!(u64).range(crate::config_file::WRITE_IDLE_TIMEOUT_SECS))]
        write_idle_timeout: Option<u64>,
        /// Durée maximale d'un téléchargement de fichier, en secondes (par défaut 1800).
        #[arg(long, value_name = "SECS",
              value_parser = clap::value_parser!(u64).range(crate::config_file::DOWNLOAD_TIME_LIMIT_SECS))]
        download_time_limit: Option<u64>,
    },
    /// Affiche le jeton d'accès à /metrics (à donner au collecteur Prometheus).
    MetricsToken {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Affiche l'empreinte SHA-256 de l'autorité de certification (pour les agents).
    Fingerprint {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Établissements.
    #[command(subcommand)]
    School(SchoolCommand),
    /// Jetons d'inscription des machines.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Kits d'inscription : un fichier (clé USB) qui inscrit les PC d'un établissement.
    #[command(subcommand)]
    Kit(KitCommand),
    /// Machines.
    #[command(subcommand)]
    Machine(MachineCommand),
    /// Profils : outils de signature hors ligne et publication.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Affecte des profils à un établissement, ou ajoute/exclut pour une machine.
    Assign {
        #[command(flatten)]
        dir: DataDirArg,
        /// Établissement (code UAI) : remplace la liste de ses profils.
        #[arg(
            long,
            value_name = "UAI",
            conflicts_with = "machine",
            required_unless_present = "machine"
        )]
        school: Option<String>,
        /// Machine : ajoute (ou exclut avec --exclude) ces profils pour elle seule.
        #[arg(long, value_name = "ID")]
        machine: Option<String>,
        /// Avec --machine : exclut les profils au lieu de les ajouter.
        #[arg(long, requires = "machine")]
        exclude: bool,
        /// Noms des profils.
        #[arg(value_name = "PROFILE")]
        profiles: Vec<String>,
    },
    /// Comptes des personnes.
    #[command(subcommand)]
    User(UserCommand),
    /// Trousseau des clés de signature des profils (publié par les mainteneurs).
    #[command(subcommand)]
    Keyring(KeyringCommand),
    /// Index signé du catalogue : la version courante de chaque profil.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Base de données : copie d'une base SQLite vers PostgreSQL.
    #[command(subcommand)]
    Db(DbCommand),
    /// Affiche le journal d'audit (toutes les actions d'administration).
    Audit {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Écrit les pages de manuel et les complétions (paquet Debian).
    #[command(hide = true)]
    GenerateDocs {
        /// Répertoire de sortie.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// `db ...`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copie toute une base SQLite (tables, historique, journal d'audit) dans une base
    /// PostgreSQL vide, puis vérifie le nombre de lignes et l'empreinte de chaque table.
    Copy {
        /// La base source : sqlite:CHEMIN (par exemple sqlite:/var/lib/nird-server/nird.db).
        #[arg(long, value_name = "sqlite:CHEMIN")]
        from: String,
        /// La base cible, vide : postgres://….
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

/// `school ...`
#[derive(Debug, Subcommand)]
pub enum SchoolCommand {
    /// Ajoute un établissement.
    Add {
        #[command(flatten)]
        dir: DataDirArg,
        /// Code UAI (7 chiffres et une lettre de contrôle).
        #[arg(long)]
        uai: String,
        /// Nom de l'établissement.
        #[arg(long)]
        name: String,
        /// Commune.
        #[arg(long)]
        commune: String,
        /// Département (par défaut : celui du code UAI).
        #[arg(long)]
        departement: Option<String>,
        /// Académie.
        #[arg(long)]
        academie: String,
        /// Type : ecole, college ou lycee.
        #[arg(long)]
        kind: String,
        /// Les machines inscrites attendent une approbation avant de recevoir des profils.
        #[arg(long)]
        require_approval: bool,
    },
    /// Liste les établissements.
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// `token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Crée un jeton d'inscription ; seul le jeton est écrit sur la sortie standard.
    Create {
        #[command(flatten)]
        dir: DataDirArg,
        /// Établissement (code UAI).
        #[arg(long)]
        school: String,
        /// Nombre d'inscriptions permises.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        uses: u32,
        /// Expiration : date AAAA-MM-JJ ou durée (30m, 12h, 7d) ; par défaut 7d (un jeton
        /// d'inscription expire toujours).
        #[arg(long, default_value = "7d")]
        expires: String,
    },
    /// Liste les jetons.
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Révoque un jeton (par son numéro, voir « token list »).
    Revoke {
        #[command(flatten)]
        dir: DataDirArg,
        /// Numéro du jeton.
        id: i64,
    },
}

/// `kit ...`
#[derive(Debug, Subcommand)]
pub enum KitCommand {
    /// Écrit un kit d'inscription (adresse du serveur, son certificat, un jeton et le
    /// trousseau des mainteneurs) ; sur chaque PC : « nird-agent enroll --kit FICHIER ».
    /// Le fichier est secret tant que son jeton est valable.
    Create {
        #[command(flatten)]
        dir: DataDirArg,
        /// Établissement (code UAI).
        #[arg(long, value_name = "UAI")]
        school: String,
        /// Nombre de machines que le kit peut inscrire.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        uses: u32,
        /// Expiration : date AAAA-MM-JJ ou durée (30m, 12h, 7d) ; par défaut 7d.
        #[arg(long, default_value = "7d")]
        expires: String,
        /// Fichier à écrire (il ne doit pas exister), par exemple /media/cle/nird-inscription.toml.
        #[arg(long, value_name = "FICHIER")]
        out: PathBuf,
        /// Adresse du serveur pour les PC, https://NOM:PORT ; par défaut le nom donné à
        /// « init --hostname » et le port d'écoute de server.toml.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
}

/// `machine ...`
#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// Liste les machines.
    List {
        #[command(flatten)]
        dir: DataDirArg,
        /// Seulement celles de cet établissement.
        #[arg(long)]
        school: Option<String>,
    },
    /// Approuve une machine en attente.
    Approve {
        #[command(flatten)]
        dir: DataDirArg,
        /// Identifiant de la machine.
        id: String,
    },
    /// Retire une machine de la flotte (ses appels seront refusés).
    Retire {
        #[command(flatten)]
        dir: DataDirArg,
        /// Identifiant de la machine.
        id: String,
    },
    /// Rapports d'application de profils envoyés par une machine, du plus ancien au plus récent.
    Reports {
        #[command(flatten)]
        dir: DataDirArg,
        /// Identifiant de la machine.
        id: String,
        /// Sortie JSON (les rapports tels que l'agent les a envoyés).
        #[arg(long)]
        json: bool,
    },
}

/// `profile ...`: the maintainer's offline tools plus publication.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Outils de signature (hors ligne).
    #[command(flatten)]
    Tool(SigningCommand),
    /// Publie un profil signé (FICHIER et FICHIER.minisig) sur ce serveur.
    Publish {
        #[command(flatten)]
        dir: DataDirArg,
        /// Le profil (.toml) ; sa signature FICHIER.minisig doit être à côté.
        file: PathBuf,
    },
    /// Liste les versions publiées.
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// A person's role on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Tout.
    Admin,
    /// Équipe informatique de certains établissements.
    School,
    /// Lecture seule sur un territoire.
    Auditor,
}

/// `user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Crée un compte ; son mot de passe est affiché une seule fois.
    Add {
        #[command(flatten)]
        dir: DataDirArg,
        /// Identifiant de connexion.
        login: String,
        /// Rôle.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Établissement géré (rôle school ; répétable).
        #[arg(long = "school", value_name = "UAI")]
        schools: Vec<String>,
        /// Territoire vu (rôle auditor) : une académie.
        #[arg(long)]
        territory: Option<String>,
        /// Périmètre (répétable) : academie:Lille, departement:062,
        /// commune:062/Calais ou uai:0620056Z ; chacun couvre tout ce qui
        /// est en dessous.
        #[arg(long = "scope", value_name = "NIVEAU:VALEUR")]
        scopes: Vec<String>,
    },
    /// Donne un nouveau mot de passe (affiché une seule fois), ferme les
    /// sessions ouvertes du compte et révoque ses jetons d'API.
    ResetPassword {
        #[command(flatten)]
        dir: DataDirArg,
        /// Identifiant de connexion.
        login: String,
    },
    /// Désactive un compte : ses sessions et jetons d'API sont révoqués.
    Disable {
        #[command(flatten)]
        dir: DataDirArg,
        /// Identifiant de connexion.
        login: String,
    },
    /// Réactive un compte désactivé.
    Enable {
        #[command(flatten)]
        dir: DataDirArg,
        /// Identifiant de connexion.
        login: String,
    },
    /// Liste les comptes.
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Jetons d'API personnels.
    #[command(subcommand)]
    Token(UserTokenCommand),
}

/// `user token ...`
#[derive(Debug, Subcommand)]
pub enum UserTokenCommand {
    /// Crée un jeton d'API personnel et n'affiche que lui.
    Create {
        #[command(flatten)]
        dir: DataDirArg,
        /// Identifiant du compte.
        login: String,
        /// Libellé du jeton.
        #[arg(long, default_value = "ligne de commande")]
        label: String,
    },
    /// Révoque un jeton d'API personnel.
    Revoke {
        #[command(flatten)]
        dir: DataDirArg,
        /// Identifiant du compte.
        login: String,
        /// Numéro du jeton.
        id: i64,
    },
}

/// `keyring ...`
#[derive(Debug, Subcommand)]
pub enum KeyringCommand {
    /// Publie un trousseau signé (FICHIER + FICHIER.minisig) : le premier est
    /// accepté tel quel (vérifiez ses identifiants de clés), les suivants
    /// doivent être signés par le seuil du précédent.
    Publish {
        #[command(flatten)]
        dir: DataDirArg,
        /// keyring.toml (sa signature est lue dans keyring.toml.minisig).
        file: PathBuf,
    },
    /// Affiche le trousseau en vigueur : version, expiration, clés.
    Show {
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// `index ...`
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Publie un index du catalogue signé (FICHIER + FICHIER.minisig) ;
    /// chaque version qu'il donne doit déjà être publiée.
    Publish {
        #[command(flatten)]
        dir: DataDirArg,
        /// index.toml (sa signature est lue dans index.toml.minisig).
        file: PathBuf,
    },
    /// Affiche l'index en vigueur.
    Show {
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// Refuses to `init` as root a data directory another user owns (the
/// packaged server's, owned by `nird`): the files it creates would belong
/// to root and the service could not open them. (Other commands may run as
/// root: they only write to the database, and SQLite gives the files it
/// creates as root to the database's owner.)
fn refuse_root_on_foreign_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let root = rustix::process::geteuid().is_root();
    let Ok(meta) = std::fs::metadata(dir) else {
        return Ok(());
    };
    if !root || meta.uid() == 0 {
        return Ok(());
    }
    let owner = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let uid = f.nth(1)?.parse::<u32>().ok()?;
                (uid == meta.uid()).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| meta.uid().to_string());
    anyhow::bail!(
        "{} appartient à « {owner} » : lancez la commande en tant que ce compte, \
         par exemple « runuser -u {owner} -- nird-server … » (en root, les fichiers créés \
         empêcheraient le service de lire sa base)",
        dir.display()
    )
}

/// Refuses to open SQLite in a directory `init --database` made for
/// PostgreSQL (a forgotten `--database` would otherwise create an empty
/// SQLite database there and show an empty fleet).
fn refuse_sqlite_on_postgresql_dir(data: &DataDir, database: Option<&str>) -> anyhow::Result<()> {
    if database.is_none() && !data.database().is_file() && data.postgresql_marker().is_file() {
        anyhow::bail!(
            "{} sert une base PostgreSQL : donnez-la avec --database postgres://… \
             (ou NIRD_DATABASE, ou « database = » dans {})",
            data.root().display(),
            crate::config_file::DEFAULT_CONFIG_PATH
        );
    }
    Ok(())
}

/// Opens the store of an initialised data directory.
async fn open_store(dir: &DataDirArg) -> anyhow::Result<(DataDir, Arc<dyn Store>)> {
    let data = DataDir::new(&dir.data_dir);
    if !data.is_initialised() {
        anyhow::bail!(
            "{} n'est pas initialisé : lancez d'abord « nird-server init --data-dir {} »",
            data.root().display(),
            data.root().display()
        );
    }
    let database = dir.database()?;
    refuse_sqlite_on_postgresql_dir(&data, database.as_deref())?;
    let store = crate::store::open(&data.database(), database.as_deref())
        .await
        .with_context(|| match &database {
            Some(url) => format!("impossible d'ouvrir {}", crate::store::pg::redact_url(url)),
            None => format!("impossible d'ouvrir {}", data.database().display()),
        })?;
    Ok((data, store))
}

/// Runs an admin command on a store, closing it cleanly afterwards, and
/// prints its output.
async fn with_store<F, Fut>(dir: &DataDirArg, f: F) -> anyhow::Result<()>
where
    F: FnOnce(DataDir, Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let (data, store) = open_store(dir).await?;
    let result = f(data, store.clone()).await;
    store.close().await?;
    let out = result?;
    if !out.is_empty() {
        if out.ends_with('\n') {
            print!("{out}");
        } else {
            println!("{out}");
        }
    }
    Ok(())
}

/// Sets up logging: English, to stderr, `RUST_LOG` overrides `default`.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // No colour codes unless a person watches (journald, files, pipes).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let serving = matches!(cli.command, Command::Serve { .. });
    init_logging(if serving { "info" } else { "warn" });
    if let Command::Profile(ProfileCommand::Tool(cmd)) = cli.command {
        return crate::signing::run(cmd);
    }
    if let Command::GenerateDocs { dir } = &cli.command {
        return crate::docs::generate(<Cli as clap::CommandFactory>::command(), dir);
    }
    let runtime = if serving {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build()
    .context("cannot start the tokio runtime")?;
    runtime.block_on(run_async(cli.command))
}

async fn run_async(command: Command) -> anyhow::Result<()> {
    let actor = admin::cli_actor();
    let actor = actor.as_str();
    match command {
        // Handled by `run` before the runtime starts.
        Command::GenerateDocs { dir } => {
            crate::docs::generate(<Cli as clap::CommandFactory>::command(), &dir)
        }
        Command::Init {
            dir,
            hostnames,
            keyring,
        } => {
            refuse_root_on_foreign_dir(&dir.data_dir)?;
            let data_dir = DataDir::new(&dir.data_dir);
            let root = data_dir.root().display().to_string();
            let database = dir.database()?;
            let shown = database.as_deref().map(crate::store::pg::redact_url);
            match init(&InitOptions {
                data_dir,
                hostnames,
                keyring,
                database,
            })
            .await?
            {
                InitOutcome::Created {
                    admin_password,
                    ca_fingerprint,
                } => {
                    match &shown {
                        Some(url) => println!("Serveur initialisé dans {root}, base {url}."),
                        None => println!("Serveur initialisé dans {root}."),
                    }
                    println!("Compte administrateur : {}", crate::init::ADMIN_LOGIN);
                    println!("Mot de passe (affiché une seule fois) : {admin_password}");
                    // The fingerprint stays the last line: scripts read it.
                    println!(
                        "Jeton d'accès à /metrics (en-tête « Authorization: Bearer … ») : {}",
                        crate::data_dir::DataDir::new(&root)
                            .metrics_token()
                            .display()
                    );
                    println!(
                        "Empreinte SHA-256 de l'autorité de certification, à donner aux agents :"
                    );
                    println!("{ca_fingerprint}");
                }
                InitOutcome::AlreadyInitialised { ca_fingerprint } => {
                    println!("{root} est déjà initialisé : rien n'a été modifié.");
                    if let Some(fp) = ca_fingerprint {
                        println!("Empreinte SHA-256 de l'autorité de certification :");
                        println!("{fp}");
                    }
                }
            }
            Ok(())
        }
        Command::Serve {
            config,
            data_dir,
            database,
            listen,
            cert,
            key,
            checkin_interval,
            target_checkin_rate,
            inventory_changes_per_day,
            history_retention_days,
            write_idle_timeout,
            download_time_limit,
        } => {
            use crate::config_file::{ConfigFile, ServeFlags, ServeSettings};
            let file = ConfigFile::for_serve(config.as_deref())?;
            let settings = ServeSettings::resolve(
                ServeFlags {
                    listen,
                    data_dir,
                    database,
                    cert,
                    key,
                    checkin_interval,
                    target_checkin_rate,
                    inventory_changes_per_day,
                    history_retention_days,
                    write_idle_timeout,
                    download_time_limit,
                },
                file,
            );
            let data = DataDir::new(&settings.data_dir);
            let (cert, key) = settings.cert_key.clone().unzip();
            ServeConfig::check_initialised(&data)?;
            refuse_sqlite_on_postgresql_dir(&data, settings.database.as_deref())?;
            let store = match &settings.database {
                Some(url) => {
                    eprintln!(
                        "nird-server : base PostgreSQL {}",
                        crate::store::pg::redact_url(url)
                    );
                    crate::store::open(&data.database(), Some(url))
                        .await
                        .with_context(|| {
                            format!("impossible d'ouvrir {}", crate::store::pg::redact_url(url))
                        })?
                }
                None => crate::store::open(&data.database(), None).await?,
            };
            let mut config = ServeConfig::with_store(&data, cert, key, store)?;
            config.checkin_interval = settings.checkin_interval;
            config.target_checkin_rate = settings.target_checkin_rate;
            config.inventory_changes_per_day = settings.inventory_changes_per_day;
            config.history_retention = Some(Duration::from_secs(
                u64::from(settings.history_retention_days) * 86_400,
            ));
            config.write_idle_timeout = settings.write_idle_timeout;
            config.body_time_limit = settings.download_time_limit;
            config.co2 = settings.co2;
            let listen = settings.listen;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("impossible d'écouter sur {listen}"))?;
            eprintln!(
                "nird-server : en écoute sur https://{}",
                listener.local_addr()?
            );
            crate::systemd::ready_and_watchdog();
            let shutdown = async {
                shutdown_signal().await;
                crate::systemd::stopping();
            };
            serve_https(listener, config, shutdown).await
        }
        Command::Db(DbCommand::Copy { from, to }) => {
            let Some(path) = from.strip_prefix("sqlite:") else {
                anyhow::bail!("--from doit être sqlite:CHEMIN (lu : « {from} »)");
            };
            if !crate::store::pg::is_postgres_url(&to) {
                anyhow::bail!(
                    "--to doit être une adresse PostgreSQL postgres://… (lu : « {} »)",
                    crate::store::pg::redact_url(&to)
                );
            }
            let report = crate::store::copy::copy(std::path::Path::new(path), &to).await?;
            let mut rows = 0;
            for (table, n, hash) in &report {
                println!("{table:<20} {n:>10} lignes  sha256 {hash}");
                rows += n;
            }
            println!(
                "Copie vérifiée : {rows} lignes dans {} tables, mêmes nombres et mêmes empreintes \
                 des deux côtés ({}).",
                report.len(),
                crate::store::pg::redact_url(&to)
            );
            Ok(())
        }
        Command::MetricsToken { dir } => {
            let data = DataDir::new(&dir.data_dir);
            if !data.is_initialised() {
                anyhow::bail!(
                    "{} n'est pas initialisé : lancez d'abord « nird-server init --data-dir {} »",
                    data.root().display(),
                    data.root().display()
                );
            }
            println!("{}", crate::init::ensure_metrics_token(&data)?);
            Ok(())
        }
        Command::Fingerprint { dir } => {
            let data = DataDir::new(&dir.data_dir);
            println!("{}", crate::tls::fingerprint(&data.ca_cert())?);
            Ok(())
        }
        Command::School(SchoolCommand::Add {
            dir,
            uai,
            name,
            commune,
            departement,
            academie,
            kind,
            require_approval,
        }) => {
            let school = admin::school_from_args(
                &uai,
                &name,
                &commune,
                departement.as_deref(),
                &academie,
                &kind,
                require_approval,
            )?;
            with_store(&dir, |_, s| async move {
                admin::school_add(s.as_ref(), actor, school).await
            })
            .await
        }
        Command::School(SchoolCommand::List { dir }) => {
            with_store(
                &dir,
                |_, s| async move { admin::school_list(s.as_ref()).await },
            )
            .await
        }
        Command::Token(TokenCommand::Create {
            dir,
            school,
            uses,
            expires,
        }) => {
            with_store(&dir, |_, s| async move {
                admin::token_create(s.as_ref(), actor, &school, uses, Some(&expires)).await
            })
            .await
        }
        Command::Token(TokenCommand::List { dir }) => {
            with_store(
                &dir,
                |_, s| async move { admin::token_list(s.as_ref()).await },
            )
            .await
        }
        Command::Token(TokenCommand::Revoke { dir, id }) => {
            with_store(&dir, |_, s| async move {
                s.revoke_token(actor, id).await?;
                Ok(format!("Jeton n° {id} révoqué."))
            })
            .await
        }
        Command::Kit(KitCommand::Create {
            dir,
            school,
            uses,
            expires,
            out,
            server,
        }) => {
            let listen_port = crate::config_file::ConfigFile::for_serve(None)?
                .listen
                .map_or(8443, |a| a.port());
            let request = crate::kit::KitRequest {
                school,
                uses,
                expires: Some(expires),
                out,
                server,
                listen_port,
            };
            with_store(&dir, |data, s| async move {
                crate::kit::create(s.as_ref(), &data, actor, &request).await
            })
            .await
        }
        Command::Machine(MachineCommand::List { dir, school }) => {
            with_store(&dir, |_, s| async move {
                admin::machine_list(s.as_ref(), school.as_deref()).await
            })
            .await
        }
        Command::Machine(MachineCommand::Approve { dir, id }) => {
            with_store(&dir, |_, s| async move {
                admin::machine_set_status(s.as_ref(), actor, &id, MachineStatus::Active).await
            })
            .await
        }
        Command::Machine(MachineCommand::Retire { dir, id }) => {
            with_store(&dir, |_, s| async move {
                admin::machine_set_status(s.as_ref(), actor, &id, MachineStatus::Retired).await
            })
            .await
        }
        Command::Machine(MachineCommand::Reports { dir, id, json }) => {
            with_store(&dir, |_, s| async move {
                admin::machine_reports(s.as_ref(), &id, json).await
            })
            .await
        }
        // Normally run before a runtime is built (see `run`); harmless here.
        Command::Profile(ProfileCommand::Tool(cmd)) => crate::signing::run(cmd),
        Command::Profile(ProfileCommand::Publish { dir, file }) => {
            with_store(&dir, |_, s| async move {
                let published =
                    publish::publish(s.as_ref(), actor, &file, time::OffsetDateTime::now_utc())
                        .await?;
                Ok(published.to_string())
            })
            .await
        }
        Command::Profile(ProfileCommand::List { dir }) => {
            with_store(&dir, |_, s| async move {
                let mut out = String::new();
                for r in s.list_releases().await? {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}\n",
                        r.name,
                        r.version,
                        r.sha256,
                        r.published_by,
                        admin::format_time(Some(r.published_at))
                    ));
                }
                Ok(out)
            })
            .await
        }
        Command::Assign {
            dir,
            school,
            machine,
            exclude,
            profiles,
        } => {
            with_store(&dir, |_, s| async move {
                match (school, machine) {
                    (Some(school), _) => {
                        admin::assign_school(s.as_ref(), actor, &school, &profiles).await
                    }
                    (None, Some(machine)) => {
                        admin::assign_machine(s.as_ref(), actor, &machine, &profiles, exclude).await
                    }
                    (None, None) => anyhow::bail!("indiquez --school ou --machine"),
                }
            })
            .await
        }
        Command::User(UserCommand::Add {
            dir,
            login,
            role,
            schools,
            territory,
            scopes,
        }) => {
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::School => Role::School,
                RoleArg::Auditor => Role::Auditor,
            };
            with_store(&dir, |_, s| async move {
                admin::user_add(
                    s.as_ref(),
                    actor,
                    &login,
                    role,
                    &schools,
                    territory.as_deref(),
                    &scopes,
                )
                .await
            })
            .await
        }
        Command::User(UserCommand::ResetPassword { dir, login }) => {
            with_store(&dir, |_, s| async move {
                admin::user_reset_password(s.as_ref(), actor, &login).await
            })
            .await
        }
        Command::User(UserCommand::Disable { dir, login }) => {
            with_store(&dir, |_, s| async move {
                s.set_user_disabled(actor, &login, true).await?;
                Ok(format!(
                    "Compte « {login} » désactivé ; ses sessions sont fermées."
                ))
            })
            .await
        }
        Command::User(UserCommand::Enable { dir, login }) => {
            with_store(&dir, |_, s| async move {
                s.set_user_disabled(actor, &login, false).await?;
                Ok(format!("Compte « {login} » réactivé."))
            })
            .await
        }
        Command::User(UserCommand::List { dir }) => {
            with_store(
                &dir,
                |_, s| async move { admin::user_list(s.as_ref()).await },
            )
            .await
        }
        Command::User(UserCommand::Token(UserTokenCommand::Create { dir, login, label })) => {
            with_store(&dir, |_, s| async move {
                admin::user_token_create(s.as_ref(), actor, &login, &label).await
            })
            .await
        }
        Command::User(UserCommand::Token(UserTokenCommand::Revoke { dir, login, id })) => {
            with_store(&dir, |_, s| async move {
                s.revoke_api_token(actor, &login, id).await?;
                Ok(format!("Jeton d'API n° {id} révoqué."))
            })
            .await
        }
        Command::Audit { dir } => {
            with_store(&dir, |_, s| async move {
                let mut out = String::new();
                for e in s.audit_log().await? {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\n",
                        admin::format_time(Some(e.at)),
                        e.actor,
                        e.action,
                        e.detail
                    ));
                }
                Ok(out)
            })
            .await
        }
        Command::Keyring(KeyringCommand::Publish { dir, file }) => {
            with_store(&dir, |_, s| async move {
                crate::trust::publish_keyring(
                    s.as_ref(),
                    actor,
                    &file,
                    time::OffsetDateTime::now_utc(),
                )
                .await
            })
            .await
        }
        Command::Keyring(KeyringCommand::Show { dir }) => {
            with_store(
                &dir,
                |_, s| async move { admin::keyring_show(s.as_ref()).await },
            )
            .await
        }
        Command::Index(IndexCommand::Publish { dir, file }) => {
            with_store(&dir, |_, s| async move {
                crate::trust::publish_index(
                    s.as_ref(),
                    actor,
                    &file,
                    time::OffsetDateTime::now_utc(),
                )
                .await
            })
            .await
        }
        Command::Index(IndexCommand::Show { dir }) => {
            with_store(
                &dir,
                |_, s| async move { admin::index_show(s.as_ref()).await },
            )
            .await
        }
    }
}
