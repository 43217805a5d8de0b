//! The agent's configuration file, `/etc/nird/agent.toml`.
//!
//! Written by `nird-agent enroll`, read by every other command, reloaded by
//! the daemon on SIGHUP. Parsed strictly: an unknown key is an error (a typo
//! must not silently fall back to a default), and every value is validated
//! into [`AgentConfig`] before use. Errors are French sentences naming the
//! file and the key.
//!
//! ```toml
//! server = "https://nird.example.org:8443"
//! machine_id = "m-3f2a..."
//! ca_file = "/var/lib/nird-agent/server-ca.pem"
//! # interval_secs = 900     # optional floor on the server's interval
//! jitter_secs = 60
//! log_level = "info"
//!
//! [maintenance]
//! windows = ["mon-fri 12:00-13:30"]
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::paths::AgentPaths;
use crate::spool::write_atomic;

/// Default random spread added to every check-in interval, in seconds.
pub const DEFAULT_JITTER_SECS: u64 = 60;

/// Shortest interval override accepted (protects the server from a typo).
pub const MIN_INTERVAL_SECS: u64 = 10;

/// Longest interval override accepted: one day. Also the longest interval
/// the daemon accepts from the server.
pub const MAX_INTERVAL_SECS: u64 = 86_400;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Base URL of the server, `https://HOST[:PORT]`, without a path.
    pub server: String,
    /// This machine's identifier, given by the server at enrolment.
    pub machine_id: String,
    /// The pinned server CA certificate (PEM), as a system path (mapped under
    /// `--root` when read).
    pub ca_file: PathBuf,
    /// Optional lower bound on the check-in interval, in seconds. The server's
    /// interval wins when it is longer (it raises it under load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u64>,
    /// Random spread (±) added to each interval, in seconds, so a school's
    /// machines switched on at 8:00 do not all check in together.
    #[serde(default = "default_jitter")]
    pub jitter_secs: u64,
    /// Log verbosity: `error`, `warn`, `info`, `debug` or `trace`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// When disruptive changes may be applied while someone is logged in.
    #[serde(default, skip_serializing_if = "Maintenance::is_unset")]
    pub maintenance: Maintenance,
    /// The school the machine was enrolled into (`[school]`: uai, kind,
    /// academie), as the server said at enrolment: the agent refuses
    /// releases whose signed targeting excludes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school: Option<nird_proto::api::EnrolledSchool>,
}

/// The `[maintenance]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    /// Windows such as `"mon-fri 12:00-13:30"` (see
    /// [`crate::apply::MaintenanceWindows`]); absent: the engine's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Vec<String>>,
}

impl Maintenance {
    /// True when nothing is set (the engine's default windows apply).
    pub fn is_unset(&self) -> bool {
        self.windows.is_none()
    }

    /// The parsed windows (the engine's defaults when unset).
    pub fn parsed(&self) -> Result<crate::apply::MaintenanceWindows, crate::apply::WindowError> {
        match &self.windows {
            Some(list) => crate::apply::MaintenanceWindows::parse_list(list),
            None => Ok(crate::apply::MaintenanceWindows::default()),
        }
    }
}

fn default_jitter() -> u64 {
    DEFAULT_JITTER_SECS
}

fn default_log_level() -> String {
    "info".to_owned()
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No config file: the machine has not been enrolled.
    #[error(
        "cette machine n'est pas enrôlée ({path} est absent) : lancez d'abord « nird-agent enroll »"
    )]
    NotEnrolled {
        /// The missing file.
        path: String,
    },
    /// The file exists but cannot be read.
    #[error("impossible de lire {path} : {cause}")]
    Read {
        /// The file.
        path: String,
        /// The system error (in the message, not a `source()`, so the
        /// error chain does not print it twice).
        cause: std::io::Error,
    },
    /// The file is not valid TOML or has unknown / mistyped keys.
    #[error("{path} est invalide : {message}")]
    Syntax {
        /// The file.
        path: String,
        /// What the TOML parser said (line, column, key).
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{path} : la valeur de « {key} » est invalide : {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// The offending key.
        key: &'static str,
        /// Why, in French.
        reason: String,
    },
    /// The file could not be written.
    #[error("impossible d'écrire {path} : {cause}")]
    Write {
        /// The file.
        path: String,
        /// The system error (in the message, not a `source()`, so the
        /// error chain does not print it twice).
        cause: std::io::Error,
    },
}

impl AgentConfig {
    /// A fresh configuration as enrolment writes it.
    pub fn new(server: &str, machine_id: &str, ca_file: PathBuf) -> Self {
        AgentConfig {
            server: server.trim_end_matches('/').to_owned(),
            machine_id: machine_id.to_owned(),
            ca_file,
            interval_secs: None,
            jitter_secs: DEFAULT_JITTER_SECS,
            log_level: default_log_level(),
            maintenance: Maintenance::default(),
            school: None,
        }
    }

    /// Reads and validates the configuration of the agent at `paths`.
    pub fn load(paths: &AgentPaths) -> Result<Self, ConfigError> {
        Self::load_file(&paths.config_file())
    }

    /// Reads and validates one configuration file.
    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::NotEnrolled { path: shown });
            }
            Err(cause) => {
                return Err(ConfigError::Read { path: shown, cause });
            }
        };
        Self::parse(&text, &shown)
    }

    /// Parses and validates configuration text; `shown` names it in errors.
    /// (Called by `load`.)
    pub fn parse(text: &str, shown: &str) -> Result<Self, ConfigError> {
        let config: AgentConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: shown.to_owned(),
            message: toml_error_fr(text, &e),
        })?;
        config.validate(shown)?;
        Ok(config)
    }

    /// Checks every value; `shown` names the file in errors.
    pub fn validate(&self, shown: &str) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| ConfigError::Invalid {
            path: shown.to_owned(),
            key,
            reason,
        };
        ServerUrl::parse(&self.server).map_err(|e| invalid("server", e.to_string()))?;
        if !is_machine_id(&self.machine_id) {
            return Err(invalid(
                "machine_id",
                "attendu 1 à 64 caractères parmi a-z, A-Z, 0-9, « - » et « _ »".into(),
            ));
        }
        if !self.ca_file.is_absolute() {
            return Err(invalid("ca_file", "attendu un chemin absolu".into()));
        }
        if let Some(i) = self.interval_secs
            && !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&i)
        {
            return Err(invalid(
                "interval_secs",
                format!("attendu entre {MIN_INTERVAL_SECS} et {MAX_INTERVAL_SECS} secondes"),
            ));
        }
        if self.jitter_secs > 3_600 {
            return Err(invalid(
                "jitter_secs",
                "attendu au plus 3600 secondes".into(),
            ));
        }
        if !matches!(
            self.log_level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(invalid(
                "log_level",
                "attendu error, warn, info, debug ou trace".into(),
            ));
        }
        self.maintenance
            .parsed()
            .map_err(|e| invalid("maintenance.windows", e.to_string()))?;
        Ok(())
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> String {
        // Serialising plain strings, integers and a table cannot fail.
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!(
            "# nird-agent configuration, written by « nird-agent enroll ».\n\
             # Reload with: systemctl reload nird-agent\n{body}"
        )
    }

    /// Writes the configuration atomically (mode 0644).
    pub fn save(&self, paths: &AgentPaths) -> Result<(), ConfigError> {
        let path = paths.config_file();
        write_atomic(&path, self.to_toml().as_bytes(), 0o644).map_err(|cause| ConfigError::Write {
            path: path.display().to_string(),
            cause,
        })
    }

    /// The pinned CA file under the agent's root.
    pub fn ca_path(&self, paths: &AgentPaths) -> PathBuf {
        paths.system(&self.ca_file)
    }
}

/// True for identifiers the server hands out (and nothing that could break
/// out of a header or a path).
pub fn is_machine_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A validated server base URL: `https://HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// `https://host:port` without a trailing slash.
    pub base: String,
    /// Host name or IP address (without brackets), for TLS verification.
    pub host: String,
    /// TCP port (443 when not given).
    pub port: u16,
}

/// A server URL the agent cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("adresse de serveur « {url} » invalide : {reason}")]
pub struct UrlError {
    /// What was given.
    pub url: String,
    /// Why it is refused.
    pub reason: &'static str,
}

impl ServerUrl {
    /// Parses `https://HOST[:PORT][/]`. Plain `http` is refused: the agent
    /// only talks TLS.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let err = |reason| UrlError {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| err("elle doit commencer par https://"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(err("nom d'hôte manquant"));
        }
        if rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(err("attendu https://HÔTE:PORT, sans chemin"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| err("crochet non fermé"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(err("attendu https://[IPv6]:PORT")),
            };
            (h.to_owned(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (rest.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(err("nom d'hôte manquant"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| err("numéro de port invalide"))?,
            None => 443,
        };
        Ok(ServerUrl {
            base: rest_base(&host, port),
            host,
            port,
        })
    }
}

fn rest_base(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// `ligne N : <French sentence>` for a TOML error in `text`.
pub fn toml_error_fr(text: &str, e: &toml::de::Error) -> String {
    let line = e.span().map(|s| {
        text.as_bytes()[..s.start.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    });
    let sentence = nird_proto::toml_fr::french(e.message());
    match line {
        Some(l) => format!("ligne {l} : {sentence}"),
        None => sentence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_err(text: &str, needle: &str) {
        let err = AgentConfig::parse(text, "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(needle),
            "« {err} » should contain « {needle} »"
        );
    }

    const MINIMAL: &str = r#"
server = "https://127.0.0.1:8443"
machine_id = "m-1"
ca_file = "/var/lib/nird-agent/server-ca.pem"
"#;

    #[test]
    fn minimal_config_gets_defaults_and_roundtrips() {
        let c = AgentConfig::parse(MINIMAL, "agent.toml").unwrap();
        assert_eq!(c.jitter_secs, DEFAULT_JITTER_SECS);
        assert_eq!(c.log_level, "info");
        assert!(c.maintenance.is_unset());
        assert!(!c.to_toml().contains("[maintenance]"));
        let mut c2 = c.clone();
        c2.maintenance.windows = Some(vec!["mon-fri 12:00-13:30".into()]);
        c2.interval_secs = Some(300);
        let back = AgentConfig::parse(&c2.to_toml(), "agent.toml").unwrap();
        assert_eq!(back, c2);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_in_french() {
        check_err(&format!("{MINIMAL}intervall = 3"), "intervall");
        check_err(&format!("{MINIMAL}[maintenance]\nwindow = []"), "window");
        check_err(&format!("{MINIMAL}interval_secs = 1"), "interval_secs");
        check_err(&format!("{MINIMAL}log_level = \"loud\""), "log_level");
        check_err(
            &format!("{MINIMAL}[maintenance]\nwindows = [\"lundi midi\"]"),
            "maintenance.windows",
        );
        check_err(&MINIMAL.replace("https", "http"), "https://");
        check_err(&MINIMAL.replace("m-1", "m 1"), "machine_id");
        check_err(&MINIMAL.replace("/var/lib", "var/lib"), "ca_file");
        check_err("server = ", "invalide");
        // The parser's English stays out; the line is given.
        check_err(
            &format!("{MINIMAL}intervall = 3"),
            "clé inconnue « intervall »",
        );
        check_err(
            &format!("\n{MINIMAL}interval_secs = \"60\""),
            "il faut un nombre entier",
        );
        let err = AgentConfig::parse(&format!("{MINIMAL}x = [1 2]"), "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ligne ") && !err.contains("expected"), "{err}");
    }

    #[test]
    fn the_packaged_example_is_valid() {
        let text = include_str!("../../packaging/agent.toml.example");
        let c = AgentConfig::parse(text, "agent.toml.example").unwrap();
        assert_eq!(c.jitter_secs, 60);
        // Every commented-out key is valid too.
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|l| l.contains(" = ") || l.starts_with('['))
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c = AgentConfig::parse(&uncommented, "agent.toml.example").unwrap();
        assert_eq!(c.interval_secs, Some(1800));
        assert_eq!(c.maintenance.windows.map(|w| w.len()), Some(3));
    }

    #[test]
    fn server_urls() {
        let u = ServerUrl::parse("https://nird.example.org").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("nird.example.org", 443));
        let u = ServerUrl::parse("https://127.0.0.1:8443/").unwrap();
        assert_eq!(u.base, "https://127.0.0.1:8443");
        let u = ServerUrl::parse("https://[::1]:9000").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9000));
        assert_eq!(u.base, "https://[::1]:9000");
        for bad in [
            "http://x",
            "https://",
            "https://x:0",
            "https://x:99999",
            "https://x/api",
            "https://u@x",
            "https://[::1",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_file_means_not_enrolled() {
        let dir = tempfile::tempdir().unwrap();
        let paths = AgentPaths::new(dir.path());
        let err = AgentConfig::load(&paths).unwrap_err();
        assert!(matches!(err, ConfigError::NotEnrolled { .. }));
        assert!(err.to_string().contains("nird-agent enroll"));
        let c = AgentConfig::parse(MINIMAL, "x").unwrap();
        c.save(&paths).unwrap();
        assert_eq!(AgentConfig::load(&paths).unwrap(), c);
    }
}
