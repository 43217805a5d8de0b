//! Enrolment against a real server over real TLS: pinning by fingerprint
//! (any spelling) or by file, refusals (wrong pin, bad token, clock skew,
//! already enrolled) that change nothing and spend no token use.

mod daemon_common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use daemon_common::*;
use nird_agent::config::AgentConfig;
use nird_agent::enroll::{CaPin, EnrollError, EnrollOptions, enroll};

fn colon_upper(fp: &str) -> String {
    fp.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

fn options(server: &Server, token: &str, ca: CaPin) -> EnrollOptions {
    EnrollOptions {
        server: server.url(),
        token: token.into(),
        ca,
        force: false,
        keyring: None,
        replace_keyring: false,
    }
}

fn files_under(root: &std::path::Path) -> usize {
    walk(root)
}

fn walk(p: &std::path::Path) -> usize {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn enrolment_pins_the_ca_and_refusals_change_nothing() {
    let sd = ServerData::new();
    let server = Server::start(&sd.data, 0, Duration::from_secs(900));
    let inv = TestInventory::new(inventory_doc(4096)).snapshot();
    let now = time::OffsetDateTime::now_utc;
    let (_tmp, paths) = agent_root();

    // A single-use token: every refusal below must leave it unused.
    let token = sd.token(1);

    // Wrong fingerprint: refused before anything is sent.
    let wrong = CaPin::Fingerprint("00".repeat(32));
    let err = enroll(&paths, &options(&server, &token, wrong), &inv, &now).unwrap_err();
    assert!(matches!(err, EnrollError::Pin(_)), "{err}");
    assert!(err.to_string().contains("empreinte"), "{err}");

    // Clock an hour ahead: refused before the token is sent.
    let ahead = || time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let pin = CaPin::Fingerprint(colon_upper(&sd.fingerprint));
    let err = enroll(&paths, &options(&server, &token, pin.clone()), &inv, &ahead).unwrap_err();
    assert!(matches!(err, EnrollError::ClockSkew { .. }), "{err}");
    assert!(err.to_string().contains("horloge"), "{err}");

    // Unknown token: the server's reason, in French.
    let err = enroll(
        &paths,
        &options(&server, "pas-un-jeton", pin.clone()),
        &inv,
        &now,
    )
    .unwrap_err();
    assert!(matches!(err, EnrollError::TokenRefused(_)), "{err}");
    assert_eq!(files_under(&paths.root), 0, "refusals wrote files");

    // The real thing, fingerprint with colons and upper case.
    let done = enroll(&paths, &options(&server, &token, pin.clone()), &inv, &now).unwrap();
    assert_eq!(done.ca_fingerprint, sd.fingerprint);
    let config = AgentConfig::load(&paths).unwrap();
    assert_eq!(config.machine_id, done.machine_id);
    assert_eq!(config.server, server.url());
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(paths.credential_file()), 0o600);
    assert_eq!(mode(paths.state_dir()), 0o700);
    assert_eq!(
        std::fs::read(config.ca_path(&paths)).unwrap(),
        std::fs::read(paths.server_ca_file()).unwrap()
    );
    assert_eq!(sd.inventory_versions(&done.machine_id), 1);

    // Again: asks for --force and changes nothing.
    let token2 = sd.token(1);
    let err = enroll(&paths, &options(&server, &token2, pin), &inv, &now).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(AgentConfig::load(&paths).unwrap(), config);

    // --force with --ca-file: a new identity.
    let mut o = options(&server, &token2, CaPin::File(sd.ca_file()));
    o.force = true;
    let again = enroll(&paths, &o, &inv, &now).unwrap();
    assert_ne!(again.machine_id, done.machine_id);
    assert_eq!(
        AgentConfig::load(&paths).unwrap().machine_id,
        again.machine_id
    );
}

#[test]
fn a_server_not_signed_by_the_pinned_ca_is_refused() {
    let sd = ServerData::new();
    let other = ServerData::new();
    let server = Server::start(&sd.data, 0, Duration::from_secs(900));
    let inv = TestInventory::new(inventory_doc(4096)).snapshot();
    let (_tmp, paths) = agent_root();
    let token = sd.token(1);
    let now = time::OffsetDateTime::now_utc;
    // The other server's CA, by file and by fingerprint.
    let err = enroll(
        &paths,
        &options(&server, &token, CaPin::File(other.ca_file())),
        &inv,
        &now,
    )
    .unwrap_err();
    assert!(err.to_string().contains("autorité"), "{err}");
    let err = enroll(
        &paths,
        &options(
            &server,
            &token,
            CaPin::Fingerprint(other.fingerprint.clone()),
        ),
        &inv,
        &now,
    )
    .unwrap_err();
    assert!(err.to_string().contains("empreinte"), "{err}");
    assert_eq!(files_under(&paths.root), 0);
    // Server stopped: unreachable, in French.
    let o = options(&server, &token, CaPin::File(sd.ca_file()));
    server.stop();
    let err = enroll(&paths, &o, &inv, &now).unwrap_err();
    assert!(err.to_string().contains("injoignable"), "{err}");
    assert_eq!(files_under(&paths.root), 0);
}
