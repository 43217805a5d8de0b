//! `nird-server profile publish`: verified against the data dir's trusted
//! keys with the same code agents run; refuses tampered, unsigned, unknown
//! key, rolled-back and blob-mismatched releases, changing nothing; stores
//! pinned blobs, served byte for byte to agents.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use nird_server::signing::{KeyProtection, keygen, sign};

fn profile_text(version: u64, blob_sha: &str, blob_size: usize, package: &str) -> String {
    let expires = time::OffsetDateTime::now_utc().date() + time::Duration::days(365);
    format!(
        r#"[profile]
name = "demo"
version = {version}
expires = {expires}
description = "Profil de test"
audience = "all"

[packages]
install = ["{package}"]

[[file]]
path = "/etc/ecole/demo.txt"
mode = "0644"
blob = {{ sha256 = "{blob_sha}", size = {blob_size}, source = "files/demo.txt" }}
"#
    )
}

/// A maintainer's working directory: a key pair, a pinned file, profiles.
struct Workshop {
    dir: PathBuf,
    key: PathBuf,
    public: PathBuf,
    blob: Vec<u8>,
}

impl Workshop {
    fn new(root: &Path, name: &str) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("files")).unwrap();
        let (public, key) = keygen(&dir.join("keys"), KeyProtection::None).unwrap();
        let blob = b"Bienvenue sur un poste NIRD.\n".to_vec();
        std::fs::write(dir.join("files/demo.txt"), &blob).unwrap();
        Workshop {
            dir,
            key,
            public,
            blob,
        }
    }

    /// Writes `demo-vN.toml` (unsigned).
    fn write(&self, version: u64, package: &str) -> PathBuf {
        let sha = nird_proto::hash::sha256_hex(&self.blob);
        let path = self.dir.join(format!("demo-v{version}-{package}.toml"));
        std::fs::write(&path, profile_text(version, &sha, self.blob.len(), package)).unwrap();
        path
    }

    /// Writes and signs.
    fn signed(&self, version: u64, package: &str) -> PathBuf {
        let path = self.write(version, package);
        sign(&self.key, &path, None, None).unwrap();
        path
    }
}

fn publish(f: &Fixture, file: &Path) -> (bool, String) {
    let out = cli_raw(&[
        "profile",
        "publish",
        "--data-dir",
        f.dir(),
        file.to_str().unwrap(),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The workshop's first keyring (its one key), signed: `keyring.toml`.
fn keyring(ws: &Workshop) -> PathBuf {
    let file = ws.dir.join("keyring.toml");
    if !file.exists() {
        let expires =
            (time::OffsetDateTime::now_utc().date() + time::Duration::days(365)).to_string();
        cli(&[
            "profile",
            "keyring",
            "new",
            "--key",
            ws.public.to_str().unwrap(),
            "--expires",
            &expires,
            "--out",
            file.to_str().unwrap(),
        ]);
        cli(&[
            "profile",
            "keyring",
            "sign",
            "--key",
            ws.key.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
    }
    file
}

/// `keyring publish` of the workshop's keyring.
fn trust(f: &Fixture, ws: &Workshop) {
    cli(&[
        "keyring",
        "publish",
        "--data-dir",
        f.dir(),
        keyring(ws).to_str().unwrap(),
    ]);
}

fn releases(f: &Fixture) -> String {
    cli(&["profile", "list", "--data-dir", f.dir()])
}

#[test]
fn publish_verifies_refuses_and_serves_exact_bytes() {
    let f = Fixture::new();
    let ws = Workshop::new(f.tmp.path(), "maintainer");

    // No trusted key yet: refused, with the command to fix it.
    let v1 = ws.signed(1, "hello");
    let (ok, msg) = publish(&f, &v1);
    assert!(!ok);
    assert!(msg.contains("keyring publish"), "{msg}");

    trust(&f, &ws);
    let (ok, msg) = publish(&f, &v1);
    assert!(ok, "{msg}");
    assert!(msg.contains("version 1 publié"), "{msg}");
    // Same release again: nothing changes.
    let (ok, msg) = publish(&f, &v1);
    assert!(ok, "{msg}");
    assert!(msg.contains("déjà publié"), "{msg}");
    assert_eq!(releases(&f).lines().count(), 1);

    // Tampered after signing.
    let v2 = ws.signed(2, "hello");
    let text = std::fs::read_to_string(&v2)
        .unwrap()
        .replace("hello", "netcat");
    std::fs::write(&v2, text).unwrap();
    let (ok, msg) = publish(&f, &v2);
    assert!(!ok);
    assert!(msg.contains("bad_signature"), "{msg}");

    // Unsigned.
    let unsigned = ws.write(3, "cowsay");
    let (ok, msg) = publish(&f, &unsigned);
    assert!(!ok);
    assert!(
        msg.contains("unsigned") && msg.contains(".minisig"),
        "{msg}"
    );

    // Signed by a key the server does not trust.
    let stranger = Workshop::new(f.tmp.path(), "stranger");
    let (ok, msg) = publish(&f, &stranger.signed(5, "hello"));
    assert!(!ok);
    assert!(msg.contains("unknown_key"), "{msg}");

    // The pinned file does not match what the profile signed.
    let v4 = ws.signed(4, "hello");
    std::fs::write(ws.dir.join("files/demo.txt"), b"autre contenu").unwrap();
    let (ok, msg) = publish(&f, &v4);
    assert!(!ok);
    assert!(msg.contains("blob_mismatch"), "{msg}");
    std::fs::write(ws.dir.join("files/demo.txt"), &ws.blob).unwrap();

    // Version 6, then rolled back to 5, and 6 again with other bytes.
    let (ok, msg) = publish(&f, &ws.signed(6, "hello"));
    assert!(ok, "{msg}");
    let (ok, msg) = publish(&f, &ws.signed(5, "hello"));
    assert!(!ok);
    assert!(msg.contains("rollback"), "{msg}");
    let (ok, msg) = publish(&f, &ws.signed(6, "cowsay"));
    assert!(!ok);
    assert!(msg.contains("contenu différent"), "{msg}");

    // Only versions 1 and 6 were stored; the audit log saw both.
    let list = releases(&f);
    let versions: Vec<&str> = list
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(versions, ["1", "6"], "{list}");
    assert!(list.contains("cli:testeur"));

    // Agents get the exact bytes, the signature and the pinned blob.
    cli(&["assign", "--data-dir", f.dir(), "--school", UAI, "demo"]);
    let server = Server::start(&f.data);
    let client = f.client();
    let m = enroll(&client, &server, &f.token(&[]), "pc-01");
    let r = m.check_in(&client, &server).json();
    assert_eq!(
        r["assigned"],
        serde_json::json!([{"name": "demo", "version": 6}])
    );
    // The assigned (latest) release only: version 1 is no longer served.
    let v6 = ws.dir.join("demo-v6-hello.toml");
    let bytes = client.get(&server.api("/profiles/demo/6"), Some(&m.auth));
    assert_eq!(bytes.body, std::fs::read(&v6).unwrap());
    let sig = client.get(&server.api("/profiles/demo/6.minisig"), Some(&m.auth));
    assert_eq!(
        sig.body,
        std::fs::read(nird_server::signing::minisig_path(&v6)).unwrap()
    );
    let old = client.get(&server.api("/profiles/demo/1"), Some(&m.auth));
    assert_eq!(old.status, 404);
    let sha = nird_proto::hash::sha256_hex(&ws.blob);
    let blob = client.get(&server.api(&format!("/blobs/{sha}")), Some(&m.auth));
    assert_eq!(blob.status, 200);
    assert_eq!(blob.body, ws.blob);

    // What the agent will do: verify the served release with its own keys.
    let mut keys = nird_proto::signature::TrustedKeys::new();
    keys.add("nird.pub", &std::fs::read_to_string(&ws.public).unwrap())
        .unwrap();
    let verified = nird_proto::signature::verify_release(
        &keys,
        "demo",
        &bytes.body,
        &sig.text(),
        None,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(verified.profile.version, 6);
}

#[test]
fn a_pinned_file_without_source_must_already_be_on_the_server() {
    let f = Fixture::new();
    let ws = Workshop::new(f.tmp.path(), "maintainer");
    trust(&f, &ws);
    // The same profile, pinning the same file, without `source`.
    let without_source = |version: u64| {
        let path = ws.write(version, "hello");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(", source = \"files/demo.txt\"", "");
        std::fs::write(&path, text).unwrap();
        sign(&ws.key, &path, None, None).unwrap();
        path
    };

    let (ok, msg) = publish(&f, &without_source(1));
    assert!(!ok);
    assert!(msg.contains("pas encore sur le serveur"), "{msg}");
    assert_eq!(releases(&f).lines().count(), 0);

    let (ok, msg) = publish(&f, &ws.signed(2, "hello"));
    assert!(ok, "{msg}");
    let (ok, msg) = publish(&f, &without_source(3));
    assert!(ok, "{msg}");
    assert_eq!(releases(&f).lines().count(), 2);
}

#[test]
fn init_can_publish_the_keyring_at_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = Workshop::new(tmp.path(), "maintainer");
    let data = tmp.path().join("data");
    cli(&[
        "init",
        "--data-dir",
        data.to_str().unwrap(),
        "--keyring",
        keyring(&ws).to_str().unwrap(),
    ]);
    let shown = cli(&["keyring", "show", "--data-dir", data.to_str().unwrap()]);
    assert!(shown.contains("Trousseau version 1"), "{shown}");
    // A file that is not a signed keyring is refused before anything is created.
    let other = tmp.path().join("other");
    cli_fails(&[
        "init",
        "--data-dir",
        other.to_str().unwrap(),
        "--keyring",
        ws.key.to_str().unwrap(),
    ]);
    assert!(!other.exists());
}
