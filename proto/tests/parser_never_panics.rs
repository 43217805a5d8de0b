//! Property tests: whatever bytes arrive (a corrupted download, a hostile
//! server), parsing returns a value or an error — it never panics — and an
//! error always points inside the text.

use nird_proto::profile::parse;
use proptest::prelude::*;

const VALID: &str = r#"[profile]
name = "demo"
version = 3
expires = 2030-01-31
description = "Profil"
audience = "lycée"
includes = ["nird-base"]

[packages]
install = ["gimp", "inkscape"]

[[file]]
path = "/etc/ecole/motd"
content = "Bonjour\n"
mode = "0644"

[[unit]]
name = "ssh.service"
enablement = "disabled"

[[user]]
name = "eleve"
groups = ["eleves"]
"#;

fn check_locations(text: &str, bytes: &[u8]) {
    if let Err(e) = parse("fuzz.toml", bytes) {
        let lines = text.lines().count().max(1) + 1;
        for p in &e.problems {
            if let Some(l) = p.location {
                assert!(l.line >= 1 && l.line <= lines, "line {} of {lines}", l.line);
                assert!(l.column >= 1);
            }
            assert!(!p.message.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse("fuzz.toml", &bytes);
    }

    #[test]
    fn arbitrary_text(text in "\\PC{0,600}") {
        check_locations(&text, text.as_bytes());
    }

    #[test]
    fn mutated_valid_profile(pos in 0usize..VALID.len(), len in 0usize..40, insert in "[\\[\\]=\"a-z0-9/.{}\\n #-]{0,12}") {
        let mut bytes = VALID.as_bytes().to_vec();
        let end = (pos + len).min(bytes.len());
        bytes.splice(pos..end, insert.bytes());
        let text = String::from_utf8_lossy(&bytes).into_owned();
        check_locations(&text, &bytes);
    }

    #[test]
    fn toml_shaped_noise(keys in proptest::collection::vec("[a-z_]{1,10}", 1..8), vals in proptest::collection::vec("(\"[^\"\\\\]{0,10}\"|-?[0-9]{1,20}|\\[\\]|true|2030-01-01|\\{\\})", 1..8)) {
        let mut text = String::from("[profile]\n");
        for (k, v) in keys.iter().zip(vals.iter()) {
            text.push_str(&format!("{k} = {v}\n"));
        }
        check_locations(&text, text.as_bytes());
    }
}

#[test]
fn the_seed_profile_is_valid() {
    parse("seed.toml", VALID.as_bytes()).unwrap();
}
