use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// nird-agent : inventaire, enrôlement et profils signés pour les PC reconditionnés.
#[derive(Parser)]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nird-agent : {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Inventory(args) => {
            let stdout = std::io::stdout();
            nird_agent::inventory::cli::run(&cli.root, &args, &mut stdout.lock())?;
        }
    }
    Ok(())
}
