//! Shared pieces of the apply engine's tests: a signer, a release
//! directory, a minimal test root, and a snapshot of a root to prove that
//! nothing changed.
#![allow(dead_code)]

pub mod dbus;
#[path = "../support/mod.rs"]
pub mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use minisign::KeyPair;
use nird_agent::apply::{ApplyOptions, DirectorySource, ProgressEvent, apply_assigned};
use nird_agent::paths::AgentPaths;
use nird_proto::api::{ApplyReport, ProfileRef};

/// A maintainer's key.
#[derive(Clone)]
pub struct Signer {
    pair: KeyPair,
}

impl Signer {
    pub fn new() -> Self {
        Signer {
            pair: KeyPair::generate_unencrypted_keypair().unwrap(),
        }
    }
    pub fn public_text(&self) -> String {
        self.pair.pk.to_box().unwrap().to_string()
    }
    /// The first keyring a machine holds: this key alone, threshold 1.
    pub fn keyring(&self) -> (String, String) {
        let line = nird_proto::keyring::public_key_line(&self.public_text()).unwrap();
        let keyring = nird_proto::keyring::Keyring {
            version: 1,
            expires: time::macros::date!(2028 - 12 - 31),
            threshold: 1,
            description: "test".into(),
            keys: vec![nird_proto::keyring::KeyringKey {
                id: nird_proto::keyring::key_id(&line).unwrap(),
                public_key: line,
                name: "mainteneur".into(),
            }],
            floors: vec![],
        };
        let text = nird_proto::keyring::render(&keyring);
        let sig = self.sign(text.as_bytes());
        (text, sig)
    }
    pub fn sign(&self, bytes: &[u8]) -> String {
        minisign::sign(
            Some(&self.pair.pk),
            &self.pair.sk,
            bytes,
            Some("test"),
            None,
        )
        .unwrap()
        .to_string()
    }
}

/// A directory of releases (`--from DIR`), with the signed catalogue index
/// of what it holds (`index.toml`), as maintainers publish it: signed by
/// the first signer that published here, rewritten at every change.
pub struct Releases {
    pub dir: tempfile::TempDir,
    /// Who signs the index.
    index_signer: std::cell::RefCell<Option<Signer>>,
    /// The index's version, bumped at every change.
    index_version: std::cell::Cell<u64>,
    /// The index's last valid day.
    pub index_expires: std::cell::Cell<time::Date>,
}

impl Releases {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        Releases {
            dir,
            index_signer: Default::default(),
            index_version: std::cell::Cell::new(0),
            // Valid at the tests' fixed clock (2026-11-23), within 90 days.
            index_expires: std::cell::Cell::new(time::macros::date!(2027 - 01 - 31)),
        }
    }
    /// A directory whose index is valid for the real clock (tests that run
    /// the binary, which reads the system time).
    pub fn for_real_clock() -> Self {
        let r = Self::new();
        r.index_expires
            .set(time::OffsetDateTime::now_utc().date() + time::Duration::days(30));
        r
    }
    /// Writes `NAME.toml` and its signature by `signer`.
    pub fn publish(&self, signer: &Signer, name: &str, toml: &str) {
        if self.index_signer.borrow().is_none() {
            *self.index_signer.borrow_mut() = Some(signer.clone());
        }
        self.write(name, toml.as_bytes(), &signer.sign(toml.as_bytes()));
    }
    /// Writes exactly these bytes and signature.
    pub fn write(&self, name: &str, bytes: &[u8], minisig: &str) {
        std::fs::write(self.dir.path().join(format!("{name}.toml")), bytes).unwrap();
        std::fs::write(
            self.dir.path().join(format!("{name}.toml.minisig")),
            minisig,
        )
        .unwrap();
        self.write_index();
    }
    /// Rewrites the signed index of every profile in the directory (the
    /// version each file carries, its exact bytes).
    pub fn write_index(&self) {
        let Some(signer) = self.index_signer.borrow().clone() else {
            return;
        };
        let mut profiles = BTreeMap::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".toml") || name == "index.toml" {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            if let Ok(p) = nird_proto::profile::parse(&name, &bytes) {
                profiles.insert(
                    name.trim_end_matches(".toml").to_owned(),
                    nird_proto::index::IndexEntry {
                        version: p.version,
                        sha256: nird_proto::hash::sha256_hex(&bytes),
                    },
                );
            }
        }
        self.index_version.set(self.index_version.get() + 1);
        let index = nird_proto::index::CatalogueIndex {
            version: self.index_version.get(),
            expires: self.index_expires.get(),
            profiles,
        };
        let text = index.render();
        std::fs::write(self.dir.path().join("index.toml"), &text).unwrap();
        std::fs::write(
            self.dir.path().join("index.toml.minisig"),
            signer.sign(text.as_bytes()),
        )
        .unwrap();
    }
    /// Stores a blob under its sha256; returns the digest.
    pub fn blob(&self, bytes: &[u8]) -> String {
        let sha = nird_proto::hash::sha256_hex(bytes);
        std::fs::write(self.dir.path().join("blobs").join(&sha), bytes).unwrap();
        sha
    }
    pub fn source(&self) -> DirectorySource {
        DirectorySource::new(self.dir.path())
    }
}

/// A minimal Debian-like root: accounts files, /etc/skel, trusted key.
pub fn test_root(signer: &Signer) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let p = root.path();
    let write = |rel: &str, text: &str, mode: u32| {
        let path = p.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
        0o644,
    );
    write(
        "etc/group",
        "root:x:0:\ndaemon:x:1:\nshadow:x:42:\nusers:x:100:\n",
        0o644,
    );
    write(
        "etc/shadow",
        "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
        0o640,
    );
    // Group shadow, as on Debian (works when the tests run as root).
    let _ = std::os::unix::fs::chown(p.join("etc/shadow"), Some(0), Some(42));
    write(
        "etc/gshadow",
        "root:*::\ndaemon:*::\nshadow:*::\nusers:*::\n",
        0o640,
    );
    write("etc/skel/.bashrc", "# skel\n", 0o644);
    install_keyring(p, signer);
    root
}

/// Gives the machine at `root` a first keyring holding `signer`'s key.
pub fn install_keyring(root: &Path, signer: &Signer) {
    let (text, sig) = signer.keyring();
    nird_agent::trust::install_first_keyring(&AgentPaths::new(root), text.as_bytes(), &sig)
        .unwrap();
}

/// The school test machines are enrolled into (an école).
pub fn school() -> nird_proto::api::EnrolledSchool {
    nird_proto::api::EnrolledSchool {
        uai: "0620056Z".into(),
        kind: "ecole".into(),
        academie: "Lille".into(),
    }
}

/// Options for a test root at a fixed date (2026-11-23, a Monday, 10:00 UTC).
pub fn options(root: &Path) -> ApplyOptions {
    let mut opts = ApplyOptions::new(
        AgentPaths::new(root),
        time::macros::datetime!(2026-11-23 10:00 UTC),
    );
    opts.school = Some(school());
    opts
}

/// Applies every release of the directory.
pub fn apply(opts: &ApplyOptions, releases: &Releases, names: &[&str]) -> Vec<ApplyReport> {
    let assigned: Vec<ProfileRef> = names
        .iter()
        .map(|n| ProfileRef {
            name: n.to_string(),
            version: 0,
        })
        .collect();
    apply_assigned(
        opts,
        &assigned,
        &releases.source(),
        &mut |_: ProgressEvent| {},
    )
}

/// Every entry under `root`: path → (kind, content or link target, mode,
/// uid, gid).
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (char, Vec<u8>, u32, u32, u32)> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (char, Vec<u8>, u32, u32, u32)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap().to_owned();
        let (kind, content) = if meta.file_type().is_symlink() {
            (
                'l',
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else if meta.is_dir() {
            walk(root, &path, out);
            ('d', Vec::new())
        } else {
            ('f', std::fs::read(&path).unwrap())
        };
        out.insert(rel, (kind, content, meta.mode(), meta.uid(), meta.gid()));
    }
}

/// The line of `name` in an accounts file of the root.
pub fn account_line(root: &Path, file: &str, name: &str) -> Option<String> {
    std::fs::read_to_string(root.join(file))
        .unwrap()
        .lines()
        .find(|l| l.split(':').next() == Some(name))
        .map(str::to_owned)
}
