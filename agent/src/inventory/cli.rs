//! `nird-agent inventory`: arguments and output.

use std::io::Write;
use std::path::Path;

use super::os::is_valid_package_name;
use super::{CollectOptions, collect};

/// Output formats of `nird-agent inventory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Readable summary in French.
    Summary,
    /// The nird-fleet inventory document (JSON, versioned).
    Json,
    /// The GLPI inventory format (JSON), for import into GLPI.
    Glpi,
}

/// Arguments of `nird-agent inventory`.
#[derive(Debug, Clone, clap::Args)]
pub struct InventoryArgs {
    /// Affiche le document d'inventaire JSON (identique à --format json).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Format de sortie.
    #[arg(long, value_enum, default_value_t = Format::Summary)]
    pub format: Format,
    /// N'interroge pas UDisks2 / UPower sur D-Bus.
    #[arg(long)]
    pub no_dbus: bool,
    /// Adresse D-Bus à utiliser à la place du bus système.
    #[arg(long, value_name = "ADRESSE")]
    pub dbus_address: Option<String>,
    /// Paquet dont la version installée doit figurer dans l'inventaire
    /// (répétable).
    #[arg(long = "package", value_name = "PAQUET")]
    pub packages: Vec<String>,
}

/// A bad argument, with a sentence for people.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("nom de paquet invalide : {0:?} (lettres minuscules, chiffres et « +-. » seulement)")]
    BadPackageName(String),
    #[error("le dossier racine {0} n'existe pas")]
    NoRoot(String),
    #[error("écriture de la sortie impossible")]
    Output(#[from] std::io::Error),
}

/// Runs `nird-agent inventory` on the system under `root`, writing to `out`.
pub fn run(root: &Path, args: &InventoryArgs, out: &mut dyn Write) -> Result<(), InventoryError> {
    if let Some(bad) = args.packages.iter().find(|p| !is_valid_package_name(p)) {
        return Err(InventoryError::BadPackageName(bad.clone()));
    }
    if !root.is_dir() {
        return Err(InventoryError::NoRoot(root.display().to_string()));
    }
    let options = CollectOptions {
        root: root.to_path_buf(),
        use_dbus: !args.no_dbus,
        packages_of_interest: args.packages.clone(),
        dbus_address: args.dbus_address.clone(),
    };
    let inventory = collect(&options);
    let format = if args.json { Format::Json } else { args.format };
    match write(&inventory, format, out) {
        // The reader went away (`| head`): nothing left to tell it.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn write(
    inventory: &nird_proto::inventory::Inventory,
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, inventory).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Format::Glpi => {
            let mut doc = nird_proto::glpi::to_glpi(inventory);
            let format =
                time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
            if let Ok(now) = time::OffsetDateTime::now_utc().format(&format) {
                nird_proto::glpi::set_logdate(&mut doc, &now);
            }
            serde_json::to_writer_pretty(&mut *out, &doc).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Format::Summary => {
            let today = time::OffsetDateTime::now_utc().date();
            out.write_all(super::summary::render(inventory, today).as_bytes())?;
        }
    }
    out.flush()
}
