//! Our signatures and minisign's are the same thing: the reference `minisign`
//! CLI (Debian package `minisign`, installed by scripts/install-deps.sh)
//! verifies what `nird-server profile sign` writes, and our verifier accepts
//! what `minisign -S` writes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nird_server::signing::{KeyProtection, keygen, lint, minisig_path, sign, verify};

/// A year from now at most: `profile lint` and `sign` refuse an `expires`
/// further than `MAX_EXPIRY_HORIZON_DAYS` ahead.
const EXPIRES: &str = "2099-12-31";

fn profile_text() -> String {
    let expires = (time::OffsetDateTime::now_utc().date() + time::Duration::days(300)).to_string();
    PROFILE.replace(EXPIRES, &expires)
}

const PROFILE: &str = r#"[profile]
name = "demo"
version = 1
expires = 2099-12-31
description = "Profil de test"
audience = "all"

[packages]
install = ["hello"]
"#;

fn minisign() -> Command {
    let found = Command::new("minisign").arg("-v").output().is_ok();
    assert!(
        found,
        "the minisign CLI is missing: run scripts/install-deps.sh (apt-get install minisign)"
    );
    Command::new("minisign")
}

fn write_profile(dir: &Path) -> PathBuf {
    let file = dir.join("demo.toml");
    std::fs::write(&file, profile_text()).unwrap();
    file
}

#[test]
fn minisign_cli_verifies_our_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let (public, secret) = keygen(&dir.path().join("keys"), KeyProtection::None).unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "secret key must be private");
    let file = write_profile(dir.path());
    let sig = sign(&secret, &file, None, None).unwrap();
    assert_eq!(sig, minisig_path(&file));

    let out = minisign()
        .arg("-V")
        .arg("-p")
        .arg(&public)
        .arg("-m")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "minisign -V refused our signature: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And our own verifier agrees.
    assert!(verify(std::slice::from_ref(&public), &file, &sig).is_ok());

    // One changed byte: both refuse.
    std::fs::write(&file, profile_text().replace("hello", "hellp")).unwrap();
    let out = minisign()
        .arg("-V")
        .arg("-p")
        .arg(&public)
        .arg("-m")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = verify(&[public], &file, &sig).unwrap_err().to_string();
    assert!(err.contains("signature invalide"), "{err}");
}

#[test]
fn we_verify_minisign_cli_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("cli.pub");
    let secret = dir.path().join("cli.key");
    let out = minisign()
        .args(["-G", "-W", "-p"])
        .arg(&public)
        .arg("-s")
        .arg(&secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "minisign -G failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = write_profile(dir.path());
    let out = minisign()
        .arg("-S")
        .arg("-s")
        .arg(&secret)
        .arg("-m")
        .arg(&file)
        .args(["-t", "publié par l'académie"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "minisign -S failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let who = verify(std::slice::from_ref(&public), &file, &minisig_path(&file)).unwrap();
    assert!(who.contains("publié par l'académie"), "{who}");

    // The release verifier of proto (what agents run) accepts it too.
    let mut keys = nird_proto::signature::TrustedKeys::new();
    keys.add("cli", &std::fs::read_to_string(&public).unwrap())
        .unwrap();
    let sig = std::fs::read_to_string(minisig_path(&file)).unwrap();
    let release = nird_proto::signature::verify_release(
        &keys,
        "demo",
        profile_text().as_bytes(),
        &sig,
        None,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(release.profile.packages_install, ["hello"]);

    // A key made by us does not verify the CLI's signature: unknown key.
    let (ours, _) = keygen(&dir.path().join("ours"), KeyProtection::None).unwrap();
    let err = verify(&[ours], &file, &minisig_path(&file))
        .unwrap_err()
        .to_string();
    assert!(err.contains("clé inconnue"), "{err}");
}

#[test]
fn password_protected_keys_sign_and_minisign_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let (public, secret) = keygen(
        &dir.path().join("keys"),
        KeyProtection::Password(Some("correct horse".into())),
    )
    .unwrap();
    let file = write_profile(dir.path());
    assert!(sign(&secret, &file, None, Some("wrong".into())).is_err());
    let sig = sign(&secret, &file, Some("v1"), Some("correct horse".into())).unwrap();
    assert!(
        verify(std::slice::from_ref(&public), &file, &sig)
            .unwrap()
            .contains("« v1 »")
    );
    // The reference CLI decrypts our encrypted key with the same password.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, profile_text()).unwrap();
    let mut child = minisign()
        .arg("-S")
        .arg("-s")
        .arg(&secret)
        .arg("-m")
        .arg(&other)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "minisign -S with our encrypted key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(verify(&[public], &other, &minisig_path(&other)).is_ok());
}

#[test]
fn keygen_never_overwrites_and_sign_refuses_broken_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let (_, secret) = keygen(&keys, KeyProtection::None).unwrap();
    let before = std::fs::read(&secret).unwrap();
    let err = keygen(&keys, KeyProtection::None).unwrap_err().to_string();
    assert!(err.contains("existe déjà"), "{err}");
    assert_eq!(std::fs::read(&secret).unwrap(), before);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, profile_text().replace("\"hello\"", "\"Hello World\"")).unwrap();
    let err = sign(&secret, &bad, None, None).unwrap_err().to_string();
    assert!(
        err.contains("bad.toml:9:12") && err.contains("non signé"),
        "{err}"
    );
    assert!(!minisig_path(&bad).exists());
}

#[test]
fn lint_checks_includes_and_pinned_sources() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.toml");
    std::fs::write(&base, profile_text().replace("\"demo\"", "\"base\"")).unwrap();
    std::fs::create_dir(dir.path().join("blobs")).unwrap();
    std::fs::write(dir.path().join("blobs/motd"), b"Bonjour\n").unwrap();
    let digest = nird_proto::hash::sha256_hex(b"Bonjour\n");
    let top = dir.path().join("top.toml");
    let header = profile_text()
        .replace("\"demo\"", "\"top\"")
        .replace("[packages]\ninstall = [\"hello\"]\n", "");
    let top_text = format!(
        "{header}includes = [\"base\"]\n[[file]]\npath = \"/etc/motd\"\nblob = {{ sha256 = \"{digest}\", size = 8, source = \"blobs/motd\" }}\n"
    );
    std::fs::write(&top, &top_text).unwrap();
    let reports = lint(&[base.clone(), top.clone()]);
    for r in &reports {
        assert!(r.result.is_ok(), "{:?}", r.result);
    }
    assert!(
        reports[1]
            .result
            .as_ref()
            .unwrap()
            .contains("via base + top"),
        "{:?}",
        reports[1].result
    );

    // A stale digest, then a missing include.
    std::fs::write(dir.path().join("blobs/motd"), b"Bonsoir\n").unwrap();
    let err = lint(std::slice::from_ref(&top))
        .remove(0)
        .result
        .unwrap_err();
    assert!(err.contains("empreinte sha256"), "{err}");
    std::fs::remove_file(&base).unwrap();
    std::fs::write(dir.path().join("blobs/motd"), b"Bonjour\n").unwrap();
    let err = lint(&[top]).remove(0).result.unwrap_err();
    assert!(err.contains("inclut « base », introuvable"), "{err}");
}

/// The same tools through the `nird-server profile ...` command line: exit
/// codes and sentences are what maintainers and scripts see.
#[test]
fn command_line_keygen_sign_verify_lint() {
    let bin = env!("CARGO_BIN_EXE_nird-server");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let run = |args: &[&std::ffi::OsStr]| Command::new(bin).args(args).output().unwrap();
    let os = |s: &str| std::ffi::OsString::from(s);

    let out = run(&[
        &os("profile"),
        &os("keygen"),
        &os("--no-password"),
        &os("--out"),
        keys.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = write_profile(dir.path());
    let out = run(&[
        &os("profile"),
        &os("sign"),
        &os("--key"),
        keys.join("nird.key").as_os_str(),
        file.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signature écrite"));

    let verify_cmd = || {
        run(&[
            &os("profile"),
            &os("verify"),
            &os("--pubkey"),
            keys.join("nird.pub").as_os_str(),
            file.as_os_str(),
        ])
    };
    let out = verify_cmd();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signature valide"));

    // Tampered: exit code ≠ 0 and a sentence saying why.
    std::fs::write(&file, profile_text().replace("version = 1", "version = 2")).unwrap();
    let out = verify_cmd();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature invalide"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Lint: ok for the file, ≠ 0 with file:line:column for a broken one.
    let out = run(&[&os("profile"), &os("lint"), file.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        profile_text()
            .replace("path", "x")
            .replace("version = 1", "version = 0"),
    )
    .unwrap();
    let out = run(&[
        &os("profile"),
        &os("lint"),
        file.as_os_str(),
        bad.as_os_str(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:3:11: version 0 invalide"),
        "{stderr}"
    );
    assert!(stderr.contains("1 profil(s) sur 2 invalide(s)"), "{stderr}");
}

/// Issue 8, holes 6 and 12: `lint` and `sign` refuse an `expires` beyond
/// the horizon (a release valid forever), and `lint` reports every policy
/// rule a profile lifts with its signed `allow` list.
#[test]
fn lint_and_sign_refuse_a_far_expiry_and_report_opt_ins() {
    let dir = tempfile::tempdir().unwrap();
    let (_, secret) = keygen(&dir.path().join("keys"), KeyProtection::None).unwrap();
    let forever = dir.path().join("forever.toml");
    std::fs::write(&forever, PROFILE).unwrap();
    let reports = lint(std::slice::from_ref(&forever));
    let err = reports[0].result.as_ref().unwrap_err();
    assert!(err.contains("expire le 2099-12-31"), "{err}");
    let err = sign(&secret, &forever, None, None).unwrap_err();
    assert!(format!("{err:#}").contains("profil non signé"), "{err:#}");
    assert!(!minisig_path(&forever).exists());

    let opted = dir.path().join("opted.toml");
    std::fs::write(
        &opted,
        profile_text().replace(
            "audience = \"all\"\n",
            "audience = \"all\"\nallow = [\"setuid\"]\n",
        ) + "[[file]]\npath = \"/usr/local/bin/outil\"\ncontent = \"x\"\nmode = \"4755\"\n",
    )
    .unwrap();
    let reports = lint(std::slice::from_ref(&opted));
    assert!(reports[0].result.is_ok(), "{:?}", reports[0].result);
    assert_eq!(reports[0].warnings.len(), 1);
    assert!(
        reports[0].warnings[0].contains("file:/usr/local/bin/outil"),
        "{:?}",
        reports[0].warnings
    );
    // Without the flag the same profile is refused.
    std::fs::write(
        &opted,
        profile_text()
            + "[[file]]\npath = \"/usr/local/bin/outil\"\ncontent = \"x\"\nmode = \"4755\"\n",
    )
    .unwrap();
    let reports = lint(std::slice::from_ref(&opted));
    assert!(reports[0].warnings.is_empty());
    assert!(
        reports[0]
            .result
            .as_ref()
            .unwrap_err()
            .contains("allow = [\"setuid\"]")
    );
}
