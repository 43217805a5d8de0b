//! The profile parser, data-driven: each case is a TOML text and either the
//! expected profile facts or the expected problem (line:column: message part).

use nird_proto::profile::{
    Audience, Enablement, FileContent, PasswordPolicy, Profile, RunState, parse,
};

const HEADER: &str = r#"[profile]
name = "demo"
version = 2
expires = 2030-01-31
description = "Profil de démonstration"
audience = "école"
"#;

fn ok(body: &str) -> Profile {
    let text = format!("{HEADER}{body}");
    match parse("demo.toml", text.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("expected a valid profile, got:\n{e}"),
    }
}

/// Asserts parsing fails with a problem at `line:column` whose message
/// contains `needle`. Lines count from the start of the whole text.
fn fails(text: &str, line: usize, column: usize, needle: &str) {
    let err = parse("demo.toml", text.as_bytes()).expect_err("expected an error");
    let shown = err.to_string();
    let hit = err.problems.iter().any(|p| {
        p.location
            .is_some_and(|l| l.line == line && l.column == column)
            && p.message.contains(needle)
    });
    assert!(
        hit,
        "no problem at {line}:{column} containing {needle:?}; got:\n{shown}"
    );
    assert!(
        shown.starts_with("demo.toml:"),
        "message must name the file: {shown}"
    );
}

fn fails_body(body: &str, line_in_body: usize, column: usize, needle: &str) {
    fails(
        &format!("{HEADER}{body}"),
        HEADER.lines().count() + line_in_body,
        column,
        needle,
    );
}

#[test]
fn full_profile_parses_with_defaults() {
    let p = ok(r#"includes = ["nird-base"]

[packages]
install = ["gcompris-qt", "tuxpaint"]
remove = ["thunderbird"]

[[repository]]
name = "primtux"
uris = ["https://depot.primtux.fr/repo/debs"]
suites = ["bookworm"]
components = ["main"]
key = { sha256 = "AB00000000000000000000000000000000000000000000000000000000000001", size = 1699, source = "keys/primtux.asc" }

[[file]]
path = "/etc/ecole/motd"
content = "Bienvenue\n"

[[file]]
path = "/usr/share/backgrounds/nird.png"
blob = { sha256 = "0000000000000000000000000000000000000000000000000000000000000002", size = 1024 }
mode = "0640"
owner = "root"
group = "eleves"

[[directory]]
path = "/srv/partage"
mode = "2775"
group = "eleves"

[[unit]]
name = "ssh.service"
enablement = "disabled"
state = "stopped"

[[unit]]
name = "apt-daily-upgrade.timer"
enablement = "masked"

[[group]]
name = "eleves"
gid = 2000

[[user]]
name = "01-mini"
full_name = "Élève cycle 1"
groups = ["eleves"]
password = "empty"
"#);
    assert_eq!(p.name, "demo");
    assert_eq!(p.version, 2);
    assert_eq!(p.expires.to_string(), "2030-01-31");
    assert_eq!(p.audience, [Audience::Ecole]);
    assert_eq!(p.includes, ["nird-base"]);
    assert_eq!(p.packages_install, ["gcompris-qt", "tuxpaint"]);
    assert_eq!(p.packages_remove, ["thunderbird"]);
    assert_eq!(
        p.repositories[0].key.sha256,
        format!("ab{}1", "0".repeat(61))
    );
    assert_eq!(p.files[0].ownership.mode, 0o644);
    assert_eq!(p.files[0].ownership.owner, "root");
    assert_eq!(
        p.files[0].content,
        FileContent::Inline("Bienvenue\n".into())
    );
    assert_eq!(p.files[1].ownership.mode, 0o640);
    assert_eq!(p.directories[0].ownership.mode, 0o2775);
    assert_eq!(p.directories[0].ownership.owner, "root");
    assert_eq!(p.units[0].enablement, Some(Enablement::Disabled));
    assert_eq!(p.units[0].state, Some(RunState::Stopped));
    assert_eq!(p.units[1].state, None);
    assert_eq!(p.groups[0].gid, Some(2000));
    let u = &p.users[0];
    assert_eq!(u.home, "/home/01-mini");
    assert_eq!(u.shell, "/bin/bash");
    assert_eq!(u.password, PasswordPolicy::Empty);
    // Both the file blob and the repository key are pinned blobs.
    assert_eq!(p.blobs().len(), 2);
    assert!(!p.is_expired_on(time::macros::date!(2030 - 01 - 31)));
    assert!(p.is_expired_on(time::macros::date!(2030 - 02 - 01)));
}

#[test]
fn audience_spellings() {
    for (word, audience) in [
        ("ecole", Audience::Ecole),
        ("collège", Audience::College),
        ("lycee", Audience::Lycee),
        ("all", Audience::All),
    ] {
        let text = HEADER.replace("\"école\"", &format!("\"{word}\""));
        assert_eq!(
            parse("demo.toml", text.as_bytes()).unwrap().audience,
            [audience]
        );
    }
    let both = HEADER.replace("\"école\"", "[\"collège\", \"lycée\"]");
    assert_eq!(
        parse("demo.toml", both.as_bytes()).unwrap().audience,
        [Audience::College, Audience::Lycee]
    );
    fails(&HEADER.replace("\"école\"", "[]"), 6, 12, "public vide");
    fails(
        &HEADER.replace("\"école\"", "[\"lycée\", \"lycee\"]"),
        6,
        12,
        "répété",
    );
    fails(
        &HEADER.replace("\"école\"", "\"fac\""),
        6,
        12,
        "public « fac » inconnu",
    );
}

#[test]
fn unknown_keys_are_errors_with_location() {
    fails_body("colour = \"bleu\"\n", 1, 1, "clé inconnue");
    fails_body(
        "[[file]]\npath = \"/etc/x\"\ncontent = \"\"\nmod = \"0644\"\n",
        4,
        1,
        "clé inconnue",
    );
    fails(
        "[profile]\nname = \"demo\"\n",
        1,
        1,
        "clé obligatoire manquante",
    );
}

#[test]
fn header_rules() {
    fails(
        &HEADER.replace("\"demo\"", "\"Demo_1\""),
        2,
        8,
        "nom de profil « Demo_1 » invalide",
    );
    fails(
        &HEADER.replace("version = 2", "version = 0"),
        3,
        11,
        "version 0 invalide",
    );
    fails(
        &HEADER.replace("version = 2", "version = -4"),
        3,
        11,
        "version -4 invalide",
    );
    fails(
        &HEADER.replace("2030-01-31", "\"2030-01-31\""),
        4,
        11,
        "enlevez les guillemets autour de 2030-01-31",
    );
    fails(
        &HEADER.replace("2030-01-31", "2030-01-31T10:00:00Z"),
        4,
        11,
        "date d'expiration",
    );
    fails(
        &HEADER.replace("\"Profil de démonstration\"", "\"  \""),
        5,
        15,
        "description vide",
    );
    fails_body("includes = [\"demo\"]\n", 1, 13, "s'inclure lui-même");
    fails_body("includes = [\"a\", \"a\"]\n", 1, 18, "inclus deux fois");
}

#[test]
fn package_rules() {
    fails_body(
        "[packages]\ninstall = [\"\"]\n",
        2,
        12,
        "nom de paquet vide",
    );
    fails_body(
        "[packages]\ninstall = [\"GIMP\"]\n",
        2,
        12,
        "nom de paquet « GIMP » invalide",
    );
    fails_body(
        "[packages]\ninstall = [\"gimp\", \"gimp\"]\n",
        2,
        20,
        "paquet « gimp » déclaré deux fois",
    );
    fails_body(
        "[packages]\ninstall = [\"gimp\"]\nremove = [\"gimp\"]\n",
        3,
        11,
        "à la fois à installer et à retirer",
    );
}

#[test]
fn path_rules() {
    for (path, needle) in [
        ("etc/motd", "absolu"),
        ("/etc/../shadow", "« .. »"),
        ("/etc//motd", "« // »"),
        ("/etc/motd/", "/ final"),
        ("/", "racine"),
        ("/proc/sys/kernel/x", "virtuel du noyau"),
        ("/etc/./nird/agent.toml", "« . »"),
    ] {
        fails_body(
            &format!("[[file]]\npath = \"{path}\"\ncontent = \"\"\n"),
            2,
            8,
            needle,
        );
    }
    fails_body(
        "[[file]]\npath = \"/etc/a\"\ncontent = \"\"\n[[directory]]\npath = \"/etc/a\"\n",
        5,
        8,
        "chemin « /etc/a » déclaré deux fois",
    );
}

#[test]
fn mode_owner_and_content_rules() {
    fails_body(
        "[[file]]\npath = \"/etc/a\"\ncontent = \"\"\nmode = \"0999\"\n",
        4,
        8,
        "mode « 0999 » invalide",
    );
    fails_body(
        "[[file]]\npath = \"/etc/a\"\ncontent = \"\"\nmode = \"17777\"\n",
        4,
        8,
        "mode « 17777 » invalide",
    );
    fails_body(
        "[[file]]\npath = \"/etc/a\"\ncontent = \"\"\nmode = 644\n",
        4,
        8,
        "il faut une chaîne, pas un nombre entier (644)",
    );
    fails_body(
        "[[file]]\npath = \"/etc/a\"\ncontent = \"\"\nowner = \"Root\"\n",
        4,
        9,
        "propriétaire « Root » invalide",
    );
    fails_body(
        "[[file]]\npath = \"/etc/a\"\n",
        1,
        1,
        "fichier sans contenu",
    );
    fails_body(
        "[[file]]\npath = \"/etc/a\"\ncontent = \"x\"\nblob = { sha256 = \"00\", size = 1 }\n",
        1,
        1,
        "pas les deux",
    );
    fails_body(
        "[[file]]\npath = \"/etc/a\"\nblob = { sha256 = \"00\", size = 1 }\n",
        3,
        19,
        "sha256 invalide",
    );
    fails_body(
        &format!(
            "[[file]]\npath = \"/etc/a\"\nblob = {{ sha256 = \"{}\", size = -1 }}\n",
            "a".repeat(64)
        ),
        3,
        94,
        "taille -1 invalide",
    );
    fails_body(
        &format!(
            "[[file]]\npath = \"/etc/a\"\nblob = {{ sha256 = \"{}\", size = 1, source = \"../x\" }}\n",
            "a".repeat(64)
        ),
        3,
        106,
        "source « ../x » invalide",
    );
    let big = "x".repeat(64 * 1024 + 1);
    fails_body(
        &format!("[[file]]\npath = \"/etc/a\"\ncontent = \"{big}\"\n"),
        3,
        11,
        "utilisez `blob`",
    );
}

#[test]
fn unit_user_group_rules() {
    fails_body(
        "[[unit]]\nname = \"ssh\"\nstate = \"running\"\n",
        2,
        8,
        "unité « ssh » invalide",
    );
    fails_body(
        "[[unit]]\nname = \"ssh.service\"\nenablement = \"on\"\n",
        3,
        14,
        "enablement « on » inconnu",
    );
    fails_body(
        "[[unit]]\nname = \"ssh.service\"\n",
        1,
        1,
        "unité sans effet",
    );
    fails_body(
        "[[unit]]\nname = \"ssh.service\"\nenablement = \"masked\"\nstate = \"running\"\n",
        1,
        1,
        "masquée",
    );
    fails_body(
        "[[user]]\nname = \"1234\"\n",
        2,
        8,
        "compte « 1234 » invalide",
    );
    fails_body(
        "[[user]]\nname = \"eve\"\npassword = \"secret\"\n",
        3,
        12,
        "jamais de mot de passe en clair",
    );
    fails_body(
        "[[user]]\nname = \"eve\"\nuid = 70000\n",
        3,
        7,
        "uid 70000 invalide",
    );
    fails_body(
        "[[user]]\nname = \"eve\"\n[[user]]\nname = \"eve\"\n",
        4,
        8,
        "compte « eve » déclaré deux fois",
    );
    fails_body(
        "[[group]]\nname = \"g\"\n[[group]]\nname = \"g\"\n",
        4,
        8,
        "groupe « g » déclaré deux fois",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = parse(
        "demo.toml",
        format!("{HEADER}[packages]\ninstall = [\"A\", \"\"]\n[[file]]\npath = \"rel\"\ncontent = \"\"\n").as_bytes(),
    )
    .unwrap_err();
    assert_eq!(err.problems.len(), 3, "{err}");
}

#[test]
fn not_utf8_and_too_big() {
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"# caf\xe9\n");
    let err = parse("demo.toml", &bytes).unwrap_err();
    assert!(
        err.to_string()
            .contains("demo.toml:7:6: le fichier n'est pas en UTF-8"),
        "{err}"
    );
    let huge = vec![b'#'; nird_proto::profile::MAX_PROFILE_BYTES + 1];
    assert!(
        parse("demo.toml", &huge)
            .unwrap_err()
            .to_string()
            .contains("découpez le profil")
    );
}

#[test]
fn a_package_to_install_may_pin_its_version() {
    let p = ok("[packages]\ninstall = [\"nird-agent=0.2.0-1\", \"hello\"]\n");
    assert_eq!(p.packages_install, ["nird-agent=0.2.0-1", "hello"]);
    fails_body(
        "[packages]\ninstall = [\"nird-agent=v2\"]\n",
        2,
        12,
        "commence par un chiffre",
    );
    fails_body(
        "[packages]\nremove = [\"hello=1.0\"]\n",
        2,
        11,
        "qu'à un paquet à installer",
    );
}
