//! `nird-agent generate-docs DIR` and `nird-server generate-docs DIR`
//! (hidden): man pages and shell completions generated from the real clap
//! definitions, for the Debian packages (`packaging/build-debs`). Writes
//! `DIR/man/*.1`, `DIR/completions/` `BIN.bash`, `_BIN` (zsh) and
//! `BIN.fish`. One file compiled into both binaries (`#[path]` in each
//! crate's `lib.rs`), since neither crate depends on the other.

use std::path::Path;

use anyhow::Context as _;
use clap_complete::Shell;

/// Writes the man pages (one per command and subcommand) and the bash, zsh
/// and fish completions of `cmd` under `dir`.
pub fn generate(cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    // No page for clap's `help` subcommands: `--help` and the pages say it.
    let mut cmd = without_help_subcommands(cmd);
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d)
            .with_context(|| format!("impossible de créer {}", d.display()))?;
    }
    cmd.build();
    clap_mangen::generate_to(cmd.clone(), &man).with_context(|| {
        format!(
            "impossible d'écrire les pages de manuel dans {}",
            man.display()
        )
    })?;
    let name = cmd.get_name().to_owned();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, &name, &completions).with_context(|| {
            format!(
                "impossible d'écrire les complétions dans {}",
                completions.display()
            )
        })?;
    }
    Ok(())
}

fn without_help_subcommands(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true)
        .mut_subcommands(without_help_subcommands)
}
