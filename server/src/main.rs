use clap::Parser;

/// nird-server : serveur central de la flotte NIRD.
#[derive(Parser)]
#[command(name = "nird-server", version, about)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    std::process::ExitCode::SUCCESS
}
