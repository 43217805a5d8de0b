use clap::Parser;

/// nird-agent : inventaire, enrôlement et profils signés pour les PC reconditionnés.
#[derive(Parser)]
#[command(name = "nird-agent", version, about)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    std::process::ExitCode::SUCCESS
}
