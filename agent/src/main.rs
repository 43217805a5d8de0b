use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

/// nird-agent : inventaire, enrôlement et profils signés pour les PC reconditionnés.
#[derive(clap::Parser)]
#[command(name = "nird-agent", version, about)]
struct Cli {
    /// Racine du système géré (`/` en production ; un autre dossier pour un
    /// système monté ou des tests).
    #[arg(long, global = true, default_value = "/", value_name = "DOSSIER")]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// One variant per subcommand; each delegates to the library.
#[derive(Subcommand)]
enum Command {
    /// Inventaire matériel et logiciel de cette machine (résumé, JSON ou GLPI).
    Inventory(nird_agent::inventory::cli::InventoryArgs),
    /// Enrôle cette machine auprès d'un serveur nird-fleet.
    Enroll(EnrollArgs),
    /// Lance l'agent : contacts périodiques avec le serveur, application des profils.
    Run {
        /// Un seul contact (et l'application des profils qu'il demande), puis quitter.
        #[arg(long)]
        once: bool,
    },
    /// Ce que l'application des profils changerait sur cette machine (sans rien modifier).
    Plan(nird_agent::apply::cli::PlanArgs),
    /// Applique les profils signés maintenant, au premier plan.
    Apply(nird_agent::apply::cli::ApplyArgs),
    /// État de l'agent : enrôlement, dernier contact, profils, rapports en attente.
    Status {
        /// Sortie JSON (pour les scripts).
        #[arg(long)]
        json: bool,
    },
    /// Écrit les pages de manuel et les complétions (paquet Debian).
    #[command(hide = true)]
    GenerateDocs {
        /// Répertoire de sortie.
        #[arg(value_name = "DOSSIER")]
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("ca").args(["ca_fingerprint", "ca_file"])))]
struct EnrollArgs {
    /// Kit d'inscription donné par l'administrateur (« nird-server kit create ») :
    /// il contient tout le reste (serveur, certificat, jeton, trousseau).
    #[arg(long, value_name = "FICHIER",
          conflicts_with_all = ["server", "token", "ca_fingerprint", "ca_file", "keyring"])]
    kit: Option<PathBuf>,
    /// Adresse du serveur, https://HÔTE:PORT.
    #[arg(long, value_name = "URL", required_unless_present = "kit")]
    server: Option<String>,
    /// Jeton d'enrôlement donné par l'administrateur.
    // Tokens are random base64url and may start with '-'.
    #[arg(
        long,
        value_name = "JETON",
        allow_hyphen_values = true,
        required_unless_present = "kit"
    )]
    token: Option<String>,
    /// Empreinte SHA-256 du certificat d'autorité du serveur (affichée par « nird-server init »).
    #[arg(long, value_name = "SHA256")]
    ca_fingerprint: Option<String>,
    /// Le certificat d'autorité du serveur (PEM).
    #[arg(long, value_name = "FICHIER")]
    ca_file: Option<PathBuf>,
    /// Ré-enrôler une machine déjà enrôlée.
    #[arg(long)]
    force: bool,
    /// Trousseau de clés des mainteneurs (keyring.toml, avec keyring.toml.minisig à côté).
    /// Sans lui, le premier trousseau du serveur est pris (confiance à la première utilisation).
    #[arg(long, value_name = "FICHIER")]
    keyring: Option<PathBuf>,
    /// Remplacer le trousseau déjà détenu par celui de --keyring (ou du kit) même s'il n'en
    /// est pas la suite : seulement si la machine change de mainteneurs.
    #[arg(long)]
    replace_keyring: bool,
}

fn main() -> ExitCode {
    let cli: Cli = nird_agent::clap_fr::parse_or_exit();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nird-agent : {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to journald when started by systemd (`JOURNAL_STREAM` set), else to
/// stderr. `NIRD_LOG` (tracing filter syntax) overrides `default_level`.
/// ureq's TRACE level (the raw wire, credential included) is never let
/// through: secrets stay out of the logs whatever the level.
fn init_logging(default_level: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("NIRD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let no_wire = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with("ureq") && *meta.level() == tracing::Level::TRACE)
    });
    let registry = tracing_subscriber::registry().with(filter).with(no_wire);
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        registry.with(journald).init();
        return;
    }
    registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .init();
}

/// After an enrolment with a kit on a running system (`--root /` under
/// systemd): enables and starts the agent's service, so nothing else is to
/// be typed. False (and the summary says what to run) anywhere else.
fn start_service(paths: &nird_agent::paths::AgentPaths) -> bool {
    if paths.root != std::path::Path::new("/")
        || !std::path::Path::new("/run/systemd/system").is_dir()
    {
        return false;
    }
    match std::process::Command::new("systemctl")
        .args(["enable", "--now", "nird-agent.service"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => true,
        Ok(s) => {
            tracing::warn!(status = %s, "systemctl enable --now nird-agent failed");
            false
        }
        Err(e) => {
            tracing::warn!("cannot run systemctl: {e}");
            false
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let paths = nird_agent::paths::AgentPaths::new(&cli.root);
    let level = match &cli.command {
        Command::Run { .. } => nird_agent::config::AgentConfig::load(&paths)
            .map(|c| c.log_level)
            .unwrap_or_else(|_| "info".into()),
        _ => "warn".into(),
    };
    init_logging(&level);
    match cli.command {
        Command::GenerateDocs { dir } => {
            nird_agent::docs::generate(<Cli as clap::CommandFactory>::command(), &dir)?;
        }
        Command::Enroll(args) => {
            use nird_agent::enroll::{CaPin, EnrollOptions};
            let done = if let Some(kit) = &args.kit {
                nird_agent::enroll::enroll_kit_with_collected_inventory(
                    &paths,
                    kit,
                    args.force,
                    args.replace_keyring,
                )?
            } else {
                let ca = match (args.ca_fingerprint, args.ca_file) {
                    (Some(fp), _) => CaPin::Fingerprint(fp),
                    (None, Some(f)) => CaPin::File(f),
                    (None, None) => anyhow::bail!(
                        "indiquez --ca-fingerprint ou --ca-file (ou tout en un : --kit FICHIER)"
                    ),
                };
                let options = EnrollOptions {
                    server: args.server.unwrap_or_default(),
                    token: args.token.unwrap_or_default(),
                    ca,
                    force: args.force,
                    keyring: args.keyring,
                    replace_keyring: args.replace_keyring,
                };
                nird_agent::enroll::enroll_with_collected_inventory(&paths, &options)?
            };
            let started = args.kit.is_some() && start_service(&paths);
            println!("{}", done.summary(started));
        }
        Command::Run { once } => {
            let mode = if once {
                nird_agent::daemon::RunMode::Once
            } else {
                nird_agent::daemon::RunMode::Forever
            };
            nird_agent::daemon::service::run_service(paths, mode)?;
        }
        Command::Status { json } => {
            let report = nird_agent::status::gather(&paths);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render(time::OffsetDateTime::now_utc()));
            }
        }
        Command::Plan(args) => {
            let code = nird_agent::apply::cli::plan(&paths, &args)?;
            if code != 0 {
                std::process::exit(code.into());
            }
        }
        Command::Apply(args) => {
            let code = nird_agent::apply::cli::apply(&paths, &args)?;
            if code != 0 {
                std::process::exit(code.into());
            }
        }
        Command::Inventory(args) => {
            let stdout = std::io::stdout();
            nird_agent::inventory::cli::run(&cli.root, &args, &mut stdout.lock())?;
        }
    }
    Ok(())
}
