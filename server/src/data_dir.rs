//! The layout of a server's data directory. Everything the server keeps
//! lives under one directory given by `--data-dir`:
//!
//! ```text
//! DATA/nird.db              SQLite database (WAL: nird.db-wal, nird.db-shm)
//! DATA/tls/ca.crt           self-signed CA that agents pin (its sha256)
//! DATA/tls/ca.key           the CA's private key (0600)
//! DATA/tls/server.crt       server certificate chain (replaceable by the operator's)
//! DATA/tls/server.key       its private key (0600)
//! DATA/trusted-keys/*.pub   minisign public keys profiles must be signed with
//! DATA/metrics-token        bearer token /metrics requires (0600)
//! DATA/server-name          first `init --hostname`: the address kits give agents
//! ```

use std::path::{Path, PathBuf};

/// A server data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The directory itself.
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root` (nothing is checked or created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite database file.
    pub fn database(&self) -> PathBuf {
        self.root.join("nird.db")
    }

    /// Directory of certificates and keys.
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// The CA certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.tls_dir().join("ca.crt")
    }

    /// The CA private key (PEM).
    pub fn ca_key(&self) -> PathBuf {
        self.tls_dir().join("ca.key")
    }

    /// The server certificate chain (PEM).
    pub fn server_cert(&self) -> PathBuf {
        self.tls_dir().join("server.crt")
    }

    /// The server private key (PEM).
    pub fn server_key(&self) -> PathBuf {
        self.tls_dir().join("server.key")
    }

    /// Directory of trusted minisign public keys.
    pub fn trusted_keys_dir(&self) -> PathBuf {
        self.root.join("trusted-keys")
    }

    /// The bearer token `/metrics` requires.
    pub fn metrics_token(&self) -> PathBuf {
        self.root.join("metrics-token")
    }

    /// Written last by `init --database` (a server on PostgreSQL has no
    /// SQLite file): empty, the database's address is not kept here.
    pub fn postgresql_marker(&self) -> PathBuf {
        self.root.join("postgresql-initialised")
    }

    /// Exists only while `init --database` runs (0600): the password of the
    /// `admin` account it is creating, so that an `init` interrupted after
    /// the account was made can recognise the account as its own, finish,
    /// and show that password.
    pub fn postgresql_init_pending(&self) -> PathBuf {
        self.root.join("postgresql-init-pending")
    }

    /// True once `init` has completed (the SQLite database, or with
    /// PostgreSQL the marker, is created last).
    pub fn is_initialised(&self) -> bool {
        self.database().is_file() || self.postgresql_marker().is_file()
    }
}
