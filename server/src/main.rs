fn main() -> std::process::ExitCode {
    let cli: nird_server::cli::Cli = nird_server::clap_fr::parse_or_exit();
    match nird_server::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nird-server : erreur : {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
