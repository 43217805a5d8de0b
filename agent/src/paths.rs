//! Where the agent keeps everything, relative to a root directory.
//!
//! Every command takes `--root DIR` (default `/`): every path the agent reads
//! or writes — its config, credential, spool, journal and the system it
//! manages — lies under that root, so a mounted system, a chroot or a test
//! root can be managed, and several agents can share one machine.

use std::path::{Path, PathBuf};

/// The agent's file layout under one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPaths {
    /// The managed system's root (`/` in production).
    pub root: PathBuf,
}

impl AgentPaths {
    /// Layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        AgentPaths { root: root.into() }
    }

    /// Maps an absolute system path (`/etc/passwd`) to its place under the
    /// root. Relative paths are taken as relative to the root too.
    pub fn system(&self, absolute: impl AsRef<Path>) -> PathBuf {
        let p = absolute.as_ref();
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }

    /// `/etc/nird`: configuration written at enrolment.
    pub fn config_dir(&self) -> PathBuf {
        self.system("/etc/nird")
    }

    /// `/etc/nird/agent.toml`: the agent's configuration.
    pub fn config_file(&self) -> PathBuf {
        self.system("/etc/nird/agent.toml")
    }

    /// `/var/lib/nird-agent`: the agent's state (mode 0700).
    pub fn state_dir(&self) -> PathBuf {
        self.system("/var/lib/nird-agent")
    }

    /// The per-machine credential (mode 0600).
    pub fn credential_file(&self) -> PathBuf {
        self.state_dir().join("credential")
    }

    /// The server CA certificate pinned at enrolment (PEM).
    pub fn server_ca_file(&self) -> PathBuf {
        self.state_dir().join("server-ca.pem")
    }

    /// The on-disk spool of reports and inventory changes awaiting delivery.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir().join("spool")
    }

    /// The apply journal (crash safety of an apply in progress).
    pub fn journal_file(&self) -> PathBuf {
        self.state_dir().join("apply-journal.json")
    }

    /// What has been applied: versions per profile (anti-rollback floor),
    /// results of the last apply.
    pub fn applied_file(&self) -> PathBuf {
        self.state_dir().join("applied.json")
    }

    /// Downloaded releases and blobs, verified before use.
    pub fn cache_dir(&self) -> PathBuf {
        self.state_dir().join("cache")
    }

    /// The keyring: which keys may sign profiles (the signed document and
    /// its signature bundle in one JSON file, replaced atomically).
    pub fn keyring_file(&self) -> PathBuf {
        self.state_dir().join("keyring.json")
    }

    /// The newest signed catalogue index (document + signature, one file).
    pub fn index_file(&self) -> PathBuf {
        self.state_dir().join("index.json")
    }

    /// Status of the daemon for `nird-agent status` (last check-in...).
    pub fn status_file(&self) -> PathBuf {
        self.state_dir().join("status.json")
    }

    /// The inventory document the server acknowledged last: the base of
    /// the next inventory delta.
    pub fn server_inventory_file(&self) -> PathBuf {
        self.state_dir().join("server-inventory.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_lies_under_the_root() {
        let p = AgentPaths::new("/mnt/pc42");
        assert_eq!(
            p.config_file(),
            PathBuf::from("/mnt/pc42/etc/nird/agent.toml")
        );
        assert_eq!(
            p.system("/etc/passwd"),
            PathBuf::from("/mnt/pc42/etc/passwd")
        );
        assert_eq!(
            p.system("etc/passwd"),
            PathBuf::from("/mnt/pc42/etc/passwd")
        );
        assert!(
            p.credential_file()
                .starts_with("/mnt/pc42/var/lib/nird-agent")
        );
        assert_eq!(
            AgentPaths::new("/").system("/etc/x"),
            PathBuf::from("/etc/x")
        );
    }
}
