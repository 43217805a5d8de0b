//! The production wiring of the daemon: real clock, HTTPS transport with the
//! pinned CA, the inventory collector, systemd notifications (`READY=1`,
//! `WATCHDOG=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=`), SIGTERM / SIGINT to
//! stop and SIGHUP to reload.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

use super::releases::EngineApplier;
use super::{Agent, Control, DaemonOptions, InventorySnapshot, InventorySource, RunMode};
use crate::config::{AgentConfig, ConfigError, ServerUrl};
use crate::enroll::{Credential, CredentialError};
use crate::paths::AgentPaths;
use crate::transport::{HttpsTransport, TransportError};

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Not enrolled or bad config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Credential missing or unreadable.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The pinned CA cannot be read.
    #[error("impossible de lire le certificat d'autorité épinglé {path} : {reason}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The transport cannot be built.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Spool or state.
    #[error(transparent)]
    Daemon(#[from] super::DaemonError),
    /// Signal handlers.
    #[error("impossible d'installer les gestionnaires de signaux : {0}")]
    Signals(std::io::Error),
    /// The last cycle of `--once` failed.
    #[error("le contact avec le serveur a échoué : {0}")]
    CycleFailed(String),
    /// The upgraded binary could not be executed.
    #[error("impossible de lancer l'agent mis à jour {0} : {1}")]
    Reexec(String, std::io::Error),
    /// `--once` reached the server, but the machine trusts no key: it will
    /// never apply a profile until it gets a keyring.
    #[error(
        "contact réussi, mais cette machine n'a aucun trousseau de clés : elle n'appliquera aucun profil ; ré-enrôlez-la avec le kit d'inscription (« nird-agent enroll --kit FICHIER --force ») ou avec --keyring FICHIER"
    )]
    NoKeyring,
}

/// systemd notifications over `$NOTIFY_SOCKET` (no-ops without it).
#[derive(Debug)]
pub struct SystemdHooks {
    /// Half the `WatchdogSec` systemd asked for, if it did.
    watchdog: Option<Duration>,
}

impl SystemdHooks {
    /// Reads `$WATCHDOG_USEC`, as libsystemd's `sd_watchdog_enabled` does:
    /// it applies to this process unless `$WATCHDOG_PID` names another one.
    pub fn from_env() -> Self {
        let usec = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = usec
            .filter(|_| for_us)
            .map(|u| Duration::from_micros(u / 2))
            .filter(|d| !d.is_zero());
        SystemdHooks { watchdog }
    }

    fn notify(&self, state: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(false, state) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }
}

impl super::ServiceHooks for SystemdHooks {
    fn ready(&self) {
        self.notify(&[NotifyState::Ready]);
    }
    fn watchdog(&self) {
        self.notify(&[NotifyState::Watchdog]);
    }
    fn reloading(&self) {
        self.notify(&[NotifyState::Reloading]);
    }
    fn stopping(&self) {
        self.notify(&[NotifyState::Stopping]);
    }
    fn status(&self, line: &str) {
        self.notify(&[NotifyState::Status(line)]);
    }
    fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// The real inventory collector, under the agent's root.
pub struct CollectedInventory {
    /// Collection options (root, D-Bus).
    options: crate::inventory::CollectOptions,
}

impl CollectedInventory {
    /// Collects the system under `paths.root` (D-Bus only for the live
    /// system).
    pub fn new(paths: &AgentPaths) -> Self {
        CollectedInventory {
            options: crate::inventory::CollectOptions {
                root: paths.root.clone(),
                use_dbus: paths.root == std::path::Path::new("/"),
                ..Default::default()
            },
        }
    }
}

/// The packages named by the applied profiles (their cached copies), whose
/// installed versions the inventory reports. Best effort: a missing or
/// unreadable copy only shortens the list. The cache holds the last release
/// *fetched*, which may be a newer one not applied (deferred, refused): a
/// copy of another version than the applied one is not used.
fn packages_named_by_applied_profiles(paths: &AgentPaths) -> Vec<String> {
    let Ok(state) = crate::apply::state::AppliedState::load(&paths.applied_file()) else {
        return Vec::new();
    };
    let mut names = std::collections::BTreeSet::new();
    for applied in state.applied() {
        let file = paths.cache_dir().join(format!("{}.toml", applied.name));
        if let Ok(bytes) = std::fs::read(&file)
            && let Ok(profile) = nird_proto::profile::parse(&applied.name, &bytes)
            && profile.version == applied.version
        {
            names.extend(profile.packages_install);
            names.extend(profile.packages_remove);
        }
    }
    names.into_iter().collect()
}

impl InventorySource for CollectedInventory {
    fn collect(&mut self) -> Result<InventorySnapshot, String> {
        self.options.packages_of_interest =
            packages_named_by_applied_profiles(&AgentPaths::new(&self.options.root));
        let inventory = crate::inventory::collect(&self.options);
        let document = serde_json::to_value(&inventory).map_err(|e| e.to_string())?;
        InventorySnapshot::new(document).map_err(|e| e.to_string())
    }
}

/// The HTTPS transport of the enrolled agent at `paths`.
pub fn transport_for(
    paths: &AgentPaths,
    config: &AgentConfig,
) -> Result<HttpsTransport, ServiceError> {
    let credential = Credential::load(paths)?;
    let ca_path = config.ca_path(paths);
    let ca_pem = std::fs::read(&ca_path).map_err(|e| ServiceError::Ca {
        path: ca_path.display().to_string(),
        reason: e.to_string(),
    })?;
    let url = ServerUrl::parse(&config.server).map_err(|e| ConfigError::Invalid {
        path: paths.config_file().display().to_string(),
        key: "server",
        reason: e.to_string(),
    })?;
    Ok(HttpsTransport::new(
        &url,
        &ca_pem,
        Some(credential.authorization()),
    )?)
}

/// `nird-agent run [--once]` for the agent at `paths`: builds everything and
/// runs the loop on a single-threaded runtime (the daemon is idle almost
/// always; one thread keeps its memory small).
pub fn run_service(paths: AgentPaths, mode: RunMode) -> Result<(), ServiceError> {
    let config = AgentConfig::load(&paths)?;
    let trust_paths = paths.clone();
    let transport = Arc::new(transport_for(&paths, &config)?);
    let inventory = Box::new(CollectedInventory::new(&paths));
    let applier = Box::new(EngineApplier::new(paths.clone()));
    let agent = Agent::new(
        paths,
        config,
        transport,
        inventory,
        DaemonOptions::default(),
    )?
    .with_applier(applier);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
        .map_err(ServiceError::Signals)?;
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        spawn_signal_forwarding(tx)?;
        let hooks = Arc::new(SystemdHooks::from_env());
        let clock = Arc::new(super::SystemClock);
        let mut agent = super::run(agent, clock, rx, hooks, mode).await;
        if let Some(binary) = agent.take_reexec() {
            let e = crate::self_update::reexec(&binary);
            // Still here: the old binary carries on after a restart by
            // systemd (Restart=on-failure).
            return Err(ServiceError::Reexec(binary.display().to_string(), e));
        }
        match (&agent.status().last_error, mode) {
            (Some(e), RunMode::Once) => Err(ServiceError::CycleFailed(e.clone())),
            // A scripted `run --once` must not take "no trusted key" for
            // success (the daemon keeps running and reporting it).
            (None, RunMode::Once)
                if matches!(crate::trust::load_keyring(&trust_paths), Ok(None)) =>
            {
                Err(ServiceError::NoKeyring)
            }
            _ => Ok(()),
        }
    })
}

/// SIGTERM / SIGINT → [`Control::Stop`], SIGHUP → [`Control::Reload`].
fn spawn_signal_forwarding(
    tx: tokio::sync::mpsc::UnboundedSender<Control>,
) -> Result<(), ServiceError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(ServiceError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServiceError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServiceError::Signals)?;
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = term.recv() => Control::Stop,
                _ = int.recv() => Control::Stop,
                _ = hup.recv() => Control::Reload,
            };
            tracing::info!(?msg, "signal received");
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::state::AppliedState;
    use nird_proto::api::ApplyOutcome;

    fn profile(version: u64, package: &str) -> String {
        format!(
            "[profile]\nname = \"salle\"\nversion = {version}\nexpires = 2030-01-31\n\
             description = \"Salle\"\naudience = \"école\"\n\n\
             [packages]\ninstall = [\"{package}\"]\n"
        )
    }

    #[test]
    fn only_the_cached_copy_of_the_applied_version_names_packages() {
        let dir = tempfile::tempdir().unwrap();
        let paths = AgentPaths::new(dir.path());
        let mut state = AppliedState::default();
        state.record(
            "salle",
            2,
            ApplyOutcome::Applied,
            time::OffsetDateTime::now_utc(),
        );
        state.save(&paths.applied_file()).unwrap();
        let cached = paths.cache_dir().join("salle.toml");
        crate::spool::write_atomic(&cached, profile(2, "gcompris-qt").as_bytes(), 0o644).unwrap();
        assert_eq!(packages_named_by_applied_profiles(&paths), ["gcompris-qt"]);
        // v3 fetched, deferred to the maintenance window: v2 is still what
        // the machine has.
        crate::spool::write_atomic(&cached, profile(3, "tuxpaint").as_bytes(), 0o644).unwrap();
        assert!(packages_named_by_applied_profiles(&paths).is_empty());
    }
}
