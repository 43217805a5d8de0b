//! `/etc/nird-server/server.toml`: the settings of `nird-server serve`.
//!
//! Every key is optional; command-line flags override the file, the file
//! overrides the built-in defaults ([`ServeSettings::resolve`]). Unknown
//! keys, wrong types and out-of-range values are refused with their line
//! number, in French (the reader is the school's IT staff). The Debian
//! package ships the file with every key commented out at its default
//! (`packaging/server/server.toml`).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

/// Where `serve` looks for its file when `--config` is not given (read only
/// when it exists).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/nird-server/server.toml";
/// Data directory when neither `--data-dir`, `NIRD_DATA_DIR` nor the file
/// names one.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/nird-server";
/// Listen address by default (no capability needed below 1024).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8443";

/// Accepted ranges, shared with the command-line flags.
pub const CHECKIN_INTERVAL_SECS: RangeInclusive<u64> = 10..=86_400;
/// See [`CHECKIN_INTERVAL_SECS`].
pub const TARGET_CHECKIN_RATE: RangeInclusive<u64> = 1..=1_000_000;
/// See [`CHECKIN_INTERVAL_SECS`].
pub const INVENTORY_CHANGES_PER_DAY: RangeInclusive<u64> = 1..=10_000;
/// See [`CHECKIN_INTERVAL_SECS`].
pub const HISTORY_RETENTION_DAYS: RangeInclusive<u64> = 1..=36_500;
/// See [`CHECKIN_INTERVAL_SECS`].
pub const WRITE_IDLE_TIMEOUT_SECS: RangeInclusive<u64> = 1..=3600;
/// See [`CHECKIN_INTERVAL_SECS`].
pub const DOWNLOAD_TIME_LIMIT_SECS: RangeInclusive<u64> = 10..=86_400;

/// A refused configuration file: the message is for people (French).
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("impossible de lire {path} : {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid, at this line.
    #[error("{path}, ligne {line} : {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, in French.
        message: String,
    },
}

/// The file as written: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    database: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    checkin_interval_secs: Option<Spanned<i64>>,
    target_checkin_rate: Option<Spanned<i64>>,
    inventory_changes_per_day: Option<Spanned<i64>>,
    history_retention_days: Option<Spanned<i64>>,
    write_idle_timeout_secs: Option<Spanned<i64>>,
    download_time_limit_secs: Option<Spanned<i64>>,
    audit: Option<RawAudit>,
}

/// The `[audit]` table: CO2e factors of the collectivités' audit
/// (crate::audit::co2), kgCO2e as decimals.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    laptop_manufacture_kgco2e: Option<Spanned<f64>>,
    desktop_manufacture_kgco2e: Option<Spanned<f64>>,
    screen_manufacture_kgco2e: Option<Spanned<f64>>,
    reuse_year_kgco2e: Option<Spanned<f64>>,
    standard_life_years: Option<Spanned<i64>>,
}

/// Keys of the `[audit]` table.
pub const AUDIT_KEYS: &[&str] = &[
    "laptop_manufacture_kgco2e",
    "desktop_manufacture_kgco2e",
    "screen_manufacture_kgco2e",
    "reuse_year_kgco2e",
    "standard_life_years",
];

/// Accepted range of the `[audit]` CO2e factors, kgCO2e.
pub const AUDIT_KGCO2E: RangeInclusive<f64> = 0.0..=100_000.0;
/// Accepted range of `[audit] standard_life_years`.
pub const AUDIT_STANDARD_LIFE_YEARS: RangeInclusive<u64> = 1..=30;

/// The keys the file accepts, in the order of the shipped file.
pub const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database",
    "cert",
    "key",
    "checkin_interval_secs",
    "target_checkin_rate",
    "inventory_changes_per_day",
    "history_retention_days",
    "write_idle_timeout_secs",
    "download_time_limit_secs",
    "audit",
];

/// The settings a configuration file gives (each `None` when absent).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// `listen`.
    pub listen: Option<SocketAddr>,
    /// `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `database`: a PostgreSQL URL (`postgres://…`) instead of the data
    /// directory's SQLite file.
    pub database: Option<String>,
    /// `cert`.
    pub cert: Option<PathBuf>,
    /// `key`.
    pub key: Option<PathBuf>,
    /// `checkin_interval_secs`.
    pub checkin_interval_secs: Option<u64>,
    /// `target_checkin_rate`.
    pub target_checkin_rate: Option<u64>,
    /// `inventory_changes_per_day`.
    pub inventory_changes_per_day: Option<u32>,
    /// `history_retention_days`.
    pub history_retention_days: Option<u32>,
    /// `write_idle_timeout_secs`.
    pub write_idle_timeout_secs: Option<u64>,
    /// `download_time_limit_secs`.
    pub download_time_limit_secs: Option<u64>,
    /// `[audit] laptop_manufacture_kgco2e`, in grams.
    pub audit_laptop_manufacture_g: Option<u64>,
    /// `[audit] desktop_manufacture_kgco2e`, in grams.
    pub audit_desktop_manufacture_g: Option<u64>,
    /// `[audit] screen_manufacture_kgco2e`, in grams.
    pub audit_screen_manufacture_g: Option<u64>,
    /// `[audit] reuse_year_kgco2e`, in grams.
    pub audit_reuse_year_g: Option<u64>,
    /// `[audit] standard_life_years`.
    pub audit_standard_life_years: Option<u32>,
}

/// 1-based line of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The French sentence for a TOML or serde error message.
fn french(message: &str) -> String {
    if let Some(rest) = message.split("unknown field `").nth(1) {
        let name = rest.split('`').next().unwrap_or(rest);
        return format!(
            "clé inconnue « {name} » (clés permises : {})",
            KEYS.join(", ")
        );
    }
    if let Some(rest) = message.split("duplicate key").nth(1) {
        let name = rest.trim().trim_matches('`');
        return format!("la clé « {name} » est donnée deux fois");
    }
    if message.contains("invalid type") {
        let expected = if message.contains("expected i64") || message.contains("integer") {
            "un nombre entier sans guillemets"
        } else {
            "une chaîne entre guillemets"
        };
        return format!("valeur du mauvais type : il faut {expected}");
    }
    "ce n'est pas du TOML valide (une clé = valeur par ligne, les chaînes entre guillemets)"
        .to_owned()
}

impl ConfigFile {
    /// Parses the text of a file (`path` only names it in messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigFileError> {
        let shown = path.display().to_string();
        let invalid = |offset: usize, message: String| ConfigFileError::Invalid {
            path: shown.clone(),
            line: line_of(text, offset),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            invalid(offset, french(e.message()))
        })?;
        let number = |v: &Option<Spanned<i64>>,
                      name: &str,
                      range: RangeInclusive<u64>|
         -> Result<Option<u64>, ConfigFileError> {
            let Some(v) = v else { return Ok(None) };
            match u64::try_from(*v.get_ref()) {
                Ok(n) if range.contains(&n) => Ok(Some(n)),
                _ => Err(invalid(
                    v.span().start,
                    format!(
                        "« {name} » doit être compris entre {} et {} (lu : {})",
                        range.start(),
                        range.end(),
                        v.get_ref()
                    ),
                )),
            }
        };
        let path_of =
            |v: &Option<Spanned<String>>, name: &str| -> Result<Option<PathBuf>, ConfigFileError> {
                let Some(v) = v else { return Ok(None) };
                let p = PathBuf::from(v.get_ref());
                if !p.is_absolute() {
                    return Err(invalid(
                        v.span().start,
                        format!(
                            "« {name} » doit être un chemin absolu (commençant par /), lu : « {} »",
                            v.get_ref()
                        ),
                    ));
                }
                Ok(Some(p))
            };
        let listen = match &raw.listen {
            None => None,
            Some(v) => Some(v.get_ref().parse::<SocketAddr>().map_err(|_| {
                invalid(
                    v.span().start,
                    format!(
                        "« listen » doit être une adresse et un port, par exemple « {DEFAULT_LISTEN} » ou « [::]:8443 » (lu : « {} »)",
                        v.get_ref()
                    ),
                )
            })?),
        };
        let cert = path_of(&raw.cert, "cert")?;
        let key = path_of(&raw.key, "key")?;
        if cert.is_some() != key.is_some() {
            let at = raw
                .cert
                .as_ref()
                .or(raw.key.as_ref())
                .map(|v| v.span().start)
                .unwrap_or(0);
            return Err(invalid(
                at,
                "« cert » et « key » vont ensemble : donnez les deux ou aucun".to_owned(),
            ));
        }
        let narrow = |n: Option<u64>| n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        let audit = raw.audit.unwrap_or_default();
        let grams = |v: &Option<Spanned<f64>>,
                     name: &str|
         -> Result<Option<u64>, ConfigFileError> {
            let Some(v) = v else { return Ok(None) };
            let kg = *v.get_ref();
            if !kg.is_finite() || !AUDIT_KGCO2E.contains(&kg) {
                return Err(invalid(
                    v.span().start,
                    format!(
                        "« [audit] {name} » doit être un nombre de kgCO2e entre {} et {} (lu : {kg})",
                        AUDIT_KGCO2E.start(),
                        AUDIT_KGCO2E.end()
                    ),
                ));
            }
            Ok(Some((kg * 1000.0).round() as u64))
        };
        Ok(ConfigFile {
            listen,
            data_dir: path_of(&raw.data_dir, "data_dir")?,
            database: match &raw.database {
                None => None,
                Some(v) if crate::store::pg::is_postgres_url(v.get_ref()) => {
                    Some(v.get_ref().clone())
                }
                Some(v) => {
                    return Err(invalid(
                        v.span().start,
                        "« database » doit être une adresse PostgreSQL postgres://… \
                         (sans cette clé, la base SQLite du répertoire de données)"
                            .to_owned(),
                    ));
                }
            },
            cert,
            key,
            checkin_interval_secs: number(
                &raw.checkin_interval_secs,
                "checkin_interval_secs",
                CHECKIN_INTERVAL_SECS,
            )?,
            target_checkin_rate: number(
                &raw.target_checkin_rate,
                "target_checkin_rate",
                TARGET_CHECKIN_RATE,
            )?,
            inventory_changes_per_day: narrow(number(
                &raw.inventory_changes_per_day,
                "inventory_changes_per_day",
                INVENTORY_CHANGES_PER_DAY,
            )?),
            history_retention_days: narrow(number(
                &raw.history_retention_days,
                "history_retention_days",
                HISTORY_RETENTION_DAYS,
            )?),
            write_idle_timeout_secs: number(
                &raw.write_idle_timeout_secs,
                "write_idle_timeout_secs",
                WRITE_IDLE_TIMEOUT_SECS,
            )?,
            download_time_limit_secs: number(
                &raw.download_time_limit_secs,
                "download_time_limit_secs",
                DOWNLOAD_TIME_LIMIT_SECS,
            )?,
            audit_laptop_manufacture_g: grams(
                &audit.laptop_manufacture_kgco2e,
                "laptop_manufacture_kgco2e",
            )?,
            audit_desktop_manufacture_g: grams(
                &audit.desktop_manufacture_kgco2e,
                "desktop_manufacture_kgco2e",
            )?,
            audit_screen_manufacture_g: grams(
                &audit.screen_manufacture_kgco2e,
                "screen_manufacture_kgco2e",
            )?,
            audit_reuse_year_g: grams(&audit.reuse_year_kgco2e, "reuse_year_kgco2e")?,
            audit_standard_life_years: narrow(number(
                &audit.standard_life_years,
                "standard_life_years",
                AUDIT_STANDARD_LIFE_YEARS,
            )?),
        })
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// The file `serve` uses: `explicit` (which must exist), else
    /// [`DEFAULT_CONFIG_PATH`] when it exists, else none (all defaults).
    pub fn for_serve(explicit: Option<&Path>) -> Result<Self, ConfigFileError> {
        match explicit {
            Some(p) => Self::load(p),
            None => {
                let default = Path::new(DEFAULT_CONFIG_PATH);
                if default.exists() {
                    Self::load(default)
                } else {
                    Ok(Self::default())
                }
            }
        }
    }
}

/// The data directory commands use when `--data-dir` (or `NIRD_DATA_DIR`)
/// is not given: the `data_dir` of [`DEFAULT_CONFIG_PATH`] when it exists
/// and says one, else [`DEFAULT_DATA_DIR`] — so on a packaged server
/// `nird-server init`, `kit create`... need no flag.
pub fn default_data_dir() -> PathBuf {
    ConfigFile::for_serve(None)
        .ok()
        .and_then(|f| f.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// The PostgreSQL database commands use when `--database` (or
/// `NIRD_DATABASE`) is not given: the `database` of
/// [`DEFAULT_CONFIG_PATH`], if any (else the data directory's SQLite file).
/// A configuration file that cannot be read is an error, not "no
/// database": commands would otherwise open the SQLite file of a server
/// that runs on PostgreSQL.
pub fn default_database() -> Result<Option<String>, ConfigFileError> {
    Ok(ConfigFile::for_serve(None)?.database)
}

/// What `serve` was given on its command line (each `None` when absent).
#[derive(Debug, Default, Clone)]
pub struct ServeFlags {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir` or `NIRD_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database` or `NIRD_DATABASE`.
    pub database: Option<String>,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--checkin-interval`.
    pub checkin_interval: Option<u64>,
    /// `--target-checkin-rate`.
    pub target_checkin_rate: Option<u64>,
    /// `--inventory-changes-per-day`.
    pub inventory_changes_per_day: Option<u32>,
    /// `--history-retention-days`.
    pub history_retention_days: Option<u32>,
    /// `--write-idle-timeout`.
    pub write_idle_timeout: Option<u64>,
    /// `--download-time-limit`.
    pub download_time_limit: Option<u64>,
}

/// The settings `serve` runs with: flag, else file, else default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// PostgreSQL URL; `None`: the data directory's SQLite file.
    pub database: Option<String>,
    /// Operator-supplied certificate and key (both or neither).
    pub cert_key: Option<(PathBuf, PathBuf)>,
    /// Normal check-in interval.
    pub checkin_interval: Duration,
    /// Check-ins per second aimed at.
    pub target_checkin_rate: u64,
    /// Inventory changes kept per machine and day.
    pub inventory_changes_per_day: u32,
    /// History retention, days.
    pub history_retention_days: u32,
    /// Write idle timeout.
    pub write_idle_timeout: Duration,
    /// Longest download.
    pub download_time_limit: Duration,
    /// The audit's CO2e factors (`[audit]`; no flags).
    pub co2: crate::audit::co2::Co2Factors,
}

impl ServeSettings {
    /// Flags override the file, the file overrides the defaults. `--cert`
    /// and `--key` replace the file's pair as a whole.
    pub fn resolve(flags: ServeFlags, file: ConfigFile) -> Self {
        let cert_key = match (flags.cert, flags.key) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => file.cert.zip(file.key),
        };
        let default_listen = SocketAddr::from(([0, 0, 0, 0], 8443));
        ServeSettings {
            listen: flags.listen.or(file.listen).unwrap_or(default_listen),
            data_dir: flags
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            database: flags.database.or(file.database),
            cert_key,
            checkin_interval: Duration::from_secs(
                flags
                    .checkin_interval
                    .or(file.checkin_interval_secs)
                    .unwrap_or(900),
            ),
            target_checkin_rate: flags
                .target_checkin_rate
                .or(file.target_checkin_rate)
                .unwrap_or(2000),
            inventory_changes_per_day: flags
                .inventory_changes_per_day
                .or(file.inventory_changes_per_day)
                .unwrap_or(crate::store::DEFAULT_INVENTORY_CHANGES_PER_DAY),
            history_retention_days: flags
                .history_retention_days
                .or(file.history_retention_days)
                .unwrap_or(crate::store::DEFAULT_HISTORY_RETENTION_DAYS),
            write_idle_timeout: Duration::from_secs(
                flags
                    .write_idle_timeout
                    .or(file.write_idle_timeout_secs)
                    .unwrap_or(30),
            ),
            download_time_limit: Duration::from_secs(
                flags
                    .download_time_limit
                    .or(file.download_time_limit_secs)
                    .unwrap_or(1800),
            ),
            co2: {
                let d = crate::audit::co2::Co2Factors::default();
                crate::audit::co2::Co2Factors {
                    laptop_manufacture_g: file
                        .audit_laptop_manufacture_g
                        .unwrap_or(d.laptop_manufacture_g),
                    desktop_manufacture_g: file
                        .audit_desktop_manufacture_g
                        .unwrap_or(d.desktop_manufacture_g),
                    screen_manufacture_g: file
                        .audit_screen_manufacture_g
                        .unwrap_or(d.screen_manufacture_g),
                    reuse_year_g: file.audit_reuse_year_g.unwrap_or(d.reuse_year_g),
                    standard_life_years: file
                        .audit_standard_life_years
                        .unwrap_or(d.standard_life_years),
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ConfigFileError> {
        ConfigFile::parse(Path::new("server.toml"), text)
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_shipped_file_is_all_defaults_and_uncommented_it_parses() {
        let shipped = include_str!("../../packaging/server/server.toml");
        assert_eq!(parse(shipped).unwrap(), ConfigFile::default());
        let uncommented: String = shipped
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| KEYS.iter().any(|k| l.starts_with(&format!("{k} = "))))
            .map(|l| format!("{l}\n"))
            .collect();
        let audit: String = shipped
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| AUDIT_KEYS.iter().any(|k| l.starts_with(&format!("{k} = "))))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            shipped.contains("\n# [audit]\n"),
            "the [audit] table is shipped"
        );
        assert_eq!(audit.lines().count(), AUDIT_KEYS.len(), "{audit}");
        let uncommented = format!("{uncommented}[audit]\n{audit}");
        let file = parse(&uncommented).unwrap();
        // Every key is in the shipped file, and its value is the default.
        let all = ServeSettings::resolve(ServeFlags::default(), file.clone());
        let none = ServeSettings::resolve(ServeFlags::default(), ConfigFile::default());
        assert_eq!(
            all.cert_key.as_ref().map(|(c, _)| c.clone()),
            Some("/etc/nird-server/server.crt".into())
        );
        assert_eq!(
            ServeSettings {
                cert_key: None,
                ..all
            },
            none
        );
        assert!(file.listen.is_some() && file.data_dir.is_some());
        assert!(file.download_time_limit_secs.is_some() && file.target_checkin_rate.is_some());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let m = message("listen = \"127.0.0.1:9000\"\n\ncheckin_intervall = 60\n");
        assert!(m.contains("ligne 3"), "{m}");
        assert!(m.contains("clé inconnue « checkin_intervall »"), "{m}");
    }

    #[test]
    fn wrong_types_and_ranges_are_refused_in_french_with_their_line() {
        let m = message("# a\ncheckin_interval_secs = \"900\"\n");
        assert!(m.contains("ligne 2") && m.contains("nombre entier"), "{m}");
        let m = message("\n\nhistory_retention_days = 0\n");
        assert!(
            m.contains("ligne 3") && m.contains("entre 1 et 36500"),
            "{m}"
        );
        let m = message("listen = \"0.0.0.0\"\n");
        assert!(
            m.contains("ligne 1") && m.contains("adresse et un port"),
            "{m}"
        );
        let m = message("data_dir = \"var/lib\"\n");
        assert!(m.contains("chemin absolu"), "{m}");
        let m = message("\ncert = \"/etc/c.pem\"\n");
        assert!(m.contains("ligne 2") && m.contains("« key »"), "{m}");
        let m = message("listen = [\n");
        assert!(m.contains("TOML"), "{m}");
    }

    #[test]
    fn the_audit_table_sets_the_co2_factors_and_refuses_bad_ones() {
        let none = ServeSettings::resolve(ServeFlags::default(), ConfigFile::default());
        assert_eq!(none.co2, crate::audit::co2::Co2Factors::default());
        assert_eq!(none.co2.laptop_manufacture_g, 182_600);
        let file = parse(
            "listen = \"127.0.0.1:9000\"\n[audit]\nlaptop_manufacture_kgco2e = 150.5\nreuse_year_kgco2e = 30\nstandard_life_years = 6\n",
        )
        .unwrap();
        let s = ServeSettings::resolve(ServeFlags::default(), file);
        assert_eq!(s.co2.laptop_manufacture_g, 150_500);
        assert_eq!(s.co2.desktop_manufacture_g, 204_400);
        assert_eq!(s.co2.reuse_year_g, 30_000);
        assert_eq!(s.co2.standard_life_years, 6);
        let m = message("[audit]\n\nreuse_year_kgco2e = -1.0\n");
        assert!(m.contains("ligne 3") && m.contains("kgCO2e"), "{m}");
        let m = message("[audit]\nstandard_life_years = 0\n");
        assert!(m.contains("ligne 2") && m.contains("entre 1 et 30"), "{m}");
        let m = message("[audit]\nlaptop = 1.0\n");
        assert!(m.contains("clé inconnue « laptop »"), "{m}");
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let file = parse("listen = \"127.0.0.1:9000\"\ncheckin_interval_secs = 60\nwrite_idle_timeout_secs = 5\n").unwrap();
        let flags = ServeFlags {
            checkin_interval: Some(120),
            ..ServeFlags::default()
        };
        let s = ServeSettings::resolve(flags, file);
        assert_eq!(s.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(s.checkin_interval, Duration::from_secs(120));
        assert_eq!(s.write_idle_timeout, Duration::from_secs(5));
        assert_eq!(s.download_time_limit, Duration::from_secs(1800));
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }
}
