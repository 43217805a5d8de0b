//! The profile policy (issue 8, holes 5, 6 and 12): what a validly shaped,
//! signed profile may still not do to a machine. Each case is an attack a
//! maintainer's key could carry (stolen, or a mistake), shown refused with
//! the sentence lint prints; the opt-in cases show the signed `allow` flag
//! lifting exactly its rule and lint's warning naming what uses it.

use nird_proto::profile::{
    MAX_EXPIRY_HORIZON_DAYS, PolicyOptIn, Profile, check_expiry_horizon, parse,
    policy::PRIVILEGED_GROUPS,
};
use time::macros::date;

fn header(extra: &str) -> String {
    format!(
        "[profile]\nname = \"demo\"\nversion = 1\nexpires = 2027-08-31\ndescription = \"Démo\"\naudience = \"all\"\n{extra}\n"
    )
}

fn parse_with(extra_header: &str, body: &str) -> Result<Profile, String> {
    parse(
        "demo.toml",
        format!("{}{body}", header(extra_header)).as_bytes(),
    )
    .map_err(|e| e.to_string())
}

/// `body` is refused with a message containing `needle`.
fn refused(extra_header: &str, body: &str, needle: &str) {
    match parse_with(extra_header, body) {
        Ok(_) => panic!("accepted:\n{body}"),
        Err(e) => assert!(e.contains(needle), "no {needle:?} in:\n{e}\nfor:\n{body}"),
    }
}

fn accepted(extra_header: &str, body: &str) -> Profile {
    parse_with(extra_header, body).unwrap_or_else(|e| panic!("refused:\n{e}\nfor:\n{body}"))
}

fn file(path: &str) -> String {
    format!("[[file]]\npath = \"{path}\"\ncontent = \"x\"\n")
}

fn directory(path: &str, mode: &str) -> String {
    format!("[[directory]]\npath = \"{path}\"\nmode = \"{mode}\"\n")
}

#[test]
fn the_agents_own_files_can_never_be_managed() {
    for path in [
        // Plant a key that survives the revocation of the one that signed.
        "/etc/nird/trusted-keys/evil.pub",
        "/etc/nird/agent.toml",
        "/etc/nird",
        "/var/lib/nird-agent/keyring.json",
        "/var/lib/nird-agent/applied.json",
        "/var/lib/nird-agent/cache/blobs/x",
        "/var/lib/nird-agent",
        "/usr/bin/nird-agent",
        // The same files through Debian's merged-/usr links.
        "/bin/nird-agent",
        "/sbin/nird-agent",
        "/lib/nird-agent/helper",
        "/usr/sbin/nird-agent",
        // Its unit, a drop-in overriding ExecStart, its enablement link.
        "/etc/systemd/system/nird-agent.service",
        "/etc/systemd/system/nird-agent.service.d/override.conf",
        "/lib/systemd/system/nird-agent.service",
        "/usr/lib/systemd/system/nird-agent.service",
        "/etc/systemd/system/multi-user.target.wants/nird-agent.service",
    ] {
        // Not even with every opt-in.
        refused(
            r#"allow = ["setuid", "empty-admin-password", "runtime-paths"]"#,
            &file(path),
            "nird-agent",
        );
        refused("", &directory(path, "0755"), "nird-agent");
    }
    // Runtime drop-ins are refused even where /run is opted in.
    refused(
        r#"allow = ["runtime-paths"]"#,
        &file("/run/systemd/system/nird-agent.service.d/x.conf"),
        "unité systemd nird-agent",
    );
    // Neighbours with a similar name are fine.
    for path in [
        "/etc/nird-ecole/charte.txt",
        "/etc/nirdx",
        "/var/lib/nird-agentx/a",
        "/usr/bin/nird-agent-outil",
        "/etc/systemd/system/ssh.service.d/x.conf",
    ] {
        accepted("", &file(path));
    }
}

#[test]
fn a_path_that_is_not_normalised_cannot_reach_the_agents_files() {
    for path in [
        "/etc/./nird/agent.toml",
        "/etc/../etc/nird/agent.toml",
        "/etc//nird/agent.toml",
        "/etc/nird/",
        "/var/lib/./nird-agent",
    ] {
        refused("", &file(path), "refusé");
    }
}

#[test]
fn ancestors_of_the_agents_files_stay_roots_alone() {
    // Whoever owns /var/lib could rename nird-agent's state away.
    refused(
        "",
        "[[directory]]\npath = \"/var/lib\"\nowner = \"eleve\"\n",
        "root:root",
    );
    refused("", &directory("/etc", "0777"), "root:root");
    refused("", &directory("/etc/systemd/system", "0775"), "root:root");
    refused(
        "",
        "[[directory]]\npath = \"/usr/bin\"\ngroup = \"eleves\"\n",
        "root:root",
    );
    // As root:root 0755 it changes nothing that matters: allowed.
    accepted("", &directory("/etc", "0755"));
    // A file where the directory is would replace it.
    refused("", &file("/var/lib"), "pas un fichier");
    refused("", &file("/etc/systemd"), "pas un fichier");
    // An existing ancestor as a home is never handed over (only a missing
    // home is created): Debian's own `daemon` account lives in /usr/sbin.
    accepted("", "[[user]]\nname = \"daemon\"\nhome = \"/usr/sbin\"\n");
    refused(
        "",
        "[[user]]\nname = \"pirate\"\nhome = \"/var/lib/nird-agent\"\n",
        "nird-agent",
    );
}

#[test]
fn the_agents_unit_package_and_root_account_are_off_limits() {
    refused(
        "",
        "[[unit]]\nname = \"nird-agent.service\"\nstate = \"stopped\"\n",
        "service de nird-agent",
    );
    refused(
        "",
        "[[unit]]\nname = \"nird-agent.service\"\nenablement = \"masked\"\n",
        "service de nird-agent",
    );
    refused(
        "",
        "[packages]\nremove = [\"nird-agent\"]\n",
        "jamais le retirer",
    );
    // apt-get reads a final « - » as « remove » (review: `install =
    // ["nird-agent-"]` removed the agent) and, in a removal, a final « + »
    // as « install ». The agent also never hands apt-get a name it does not
    // know exactly (regular expressions: agent/tests/apply_apt.rs).
    refused(
        "",
        "[packages]\ninstall = [\"nird-agent-\"]\n",
        "comme « désinstaller »",
    );
    refused(
        "",
        "[packages]\ninstall = [\"nird.agent-\"]\n",
        "comme « désinstaller »",
    );
    refused(
        "",
        "[packages]\nremove = [\"gcompris+\"]\n",
        "comme « installer »",
    );
    accepted("", "[packages]\ninstall = [\"g++\"]\n");
    // A path whose report the server could not take (ids ≤ 1,024).
    let long = format!("/srv/{}", "a".repeat(996));
    refused(
        "",
        &format!("[[file]]\npath = \"{long}\"\ncontent = \"\"\n"),
        "trop long",
    );
    accepted(
        "",
        &format!("[[file]]\npath = \"{}\"\ncontent = \"\"\n", &long[..1000]),
    );
    for unit in ["reboot.target", "sysinit.target", "graphical.target"] {
        refused(
            "",
            &format!("[[unit]]\nname = \"{unit}\"\nstate = \"running\"\n"),
            "l'état de toute la machine",
        );
    }
    accepted(
        "",
        "[[unit]]\nname = \"cups.service\"\nstate = \"running\"\n",
    );
    // Drop-ins systemd also applies to nird-agent.service: the prefix
    // ones and the top-level ones (found by review).
    for path in [
        "/etc/systemd/system/nird-.service.d/override.conf",
        "/etc/systemd/system/service.d/override.conf",
        "/usr/lib/systemd/system/nird-.service.d/x.conf",
    ] {
        refused(
            "",
            &format!("[[file]]\npath = \"{path}\"\ncontent = \"[Service]\\nExecStart=\\n\"\n"),
            "unité systemd nird-agent",
        );
    }
    accepted(
        "",
        "[[file]]\npath = \"/etc/systemd/system/cups.service.d/x.conf\"\ncontent = \"\"\n",
    );
    accepted(
        "",
        "[[file]]\npath = \"/etc/systemd/system/nird-agent-helper-.service.d/x.conf\"\ncontent = \"\"\n",
    );
    // Installing it is how the agent updates itself.
    let p = accepted("", "[packages]\ninstall = [\"nird-agent\"]\n");
    assert_eq!(p.packages_install, ["nird-agent"]);
    accepted(
        "",
        "[[unit]]\nname = \"nird-agent-helper.service\"\nstate = \"running\"\n",
    );
    refused("", "[[user]]\nname = \"root\"\n", "compte root");
    refused("", "[[group]]\nname = \"root\"\n", "groupe root");
    refused("", "[[user]]\nname = \"toor\"\nuid = 0\n", "uid 0");
    refused("", "[[group]]\nname = \"wheel2\"\ngid = 0\n", "gid 0");
}

#[test]
fn setuid_and_setgid_need_the_signed_flag() {
    for mode in ["4755", "2755", "6755", "4711"] {
        refused(
            "",
            &format!("[[file]]\npath = \"/usr/local/bin/x\"\ncontent = \"x\"\nmode = \"{mode}\"\n"),
            "allow = [\"setuid\"]",
        );
    }
    refused("", &directory("/srv/x", "4755"), "setuid sur un dossier");
    // Setgid on a directory is group inheritance: allowed as is.
    let p = accepted("", &directory("/srv/classe", "2775"));
    assert!(p.allow.is_empty());
    assert!(p.policy_warnings().is_empty());
    // Sticky bit: fine.
    accepted("", &directory("/srv/depot", "1777"));

    let p = accepted(
        r#"allow = ["setuid"]"#,
        "[[file]]\npath = \"/usr/local/bin/x\"\ncontent = \"x\"\nmode = \"4755\"\n",
    );
    assert_eq!(p.allow, [PolicyOptIn::Setuid]);
    let warnings = p.policy_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("setuid"), "{warnings:?}");
    assert!(
        warnings[0].contains("file:/usr/local/bin/x"),
        "{warnings:?}"
    );
}

#[test]
fn empty_passwords_for_administrators_need_the_signed_flag() {
    for group in PRIVILEGED_GROUPS {
        refused(
            "",
            &format!(
                "[[user]]\nname = \"prof\"\ngroups = [\"eleves\", \"{group}\"]\npassword = \"empty\"\n"
            ),
            &format!("groupe privilégié « {group} »"),
        );
    }
    // The pupils' click-to-log-in accounts stay allowed.
    accepted(
        "",
        "[[user]]\nname = \"01-mini\"\ngroups = [\"eleves\", \"audio\"]\npassword = \"empty\"\n",
    );
    // An administrator with an unmanaged or locked password is fine.
    accepted(
        "",
        "[[user]]\nname = \"administrateur\"\ngroups = [\"sudo\"]\npassword = \"unmanaged\"\n",
    );
    let p = accepted(
        r#"allow = ["empty-admin-password"]"#,
        "[[user]]\nname = \"kiosque\"\ngroups = [\"sudo\"]\npassword = \"empty\"\n",
    );
    let warnings = p.policy_warnings();
    assert!(warnings[0].contains("user:kiosque"), "{warnings:?}");
}

#[test]
fn runtime_paths_are_checked_in_their_canonical_form() {
    for (path, canonical) in [
        ("/run/x", None),
        ("/var/run/x", Some("/run/x")),
        ("/var/lock/x", Some("/run/lock/x")),
        ("/run", None),
    ] {
        let needle = match canonical {
            Some(c) => format!("c'est-à-dire « {c} »"),
            None => "runtime-paths".to_owned(),
        };
        refused("", &file(path), &needle);
        refused("", &file(path), "allow = [\"runtime-paths\"]");
    }
    let p = accepted(r#"allow = ["runtime-paths"]"#, &file("/var/run/x"));
    assert!(p.policy_warnings()[0].contains("file:/var/run/x"));
    // Kernel filesystems stay refused whatever the flags.
    for path in ["/proc/sys/kernel/x", "/sys/class/x", "/dev/sda"] {
        refused(
            r#"allow = ["runtime-paths"]"#,
            &file(path),
            "virtuel du noyau",
        );
    }
    // Look-alikes are ordinary paths.
    accepted("", &file("/var/running/x"));
    accepted("", &file("/runner"));
}

#[test]
fn allow_lists_are_strict_and_unused_flags_are_reported() {
    refused(r#"allow = ["everything"]"#, "", "inconnu dans allow");
    refused(r#"allow = ["setuid", "setuid"]"#, "", "répété");
    let p = accepted(r#"allow = ["runtime-paths", "setuid"]"#, "");
    assert_eq!(p.allow, [PolicyOptIn::Setuid, PolicyOptIn::RuntimePaths]);
    let w = p.policy_warnings();
    assert_eq!(w.len(), 2);
    assert!(w.iter().all(|l| l.contains("inutilisé")), "{w:?}");
}

#[test]
fn expiry_has_a_horizon() {
    let today = date!(2026 - 12 - 02);
    let at = |expires: &str| {
        let text = format!(
            "[profile]\nname = \"demo\"\nversion = 1\nexpires = {expires}\ndescription = \"Démo\"\naudience = \"all\"\n"
        );
        let p = parse("demo.toml", text.as_bytes()).unwrap();
        check_expiry_horizon(&p, today)
    };
    assert!(at("2027-08-31").is_ok());
    // Exactly the horizon: 400 days later.
    let latest = today + time::Duration::days(MAX_EXPIRY_HORIZON_DAYS);
    assert_eq!(latest, date!(2028 - 01 - 06));
    assert!(at("2028-01-06").is_ok());
    let err = at("2028-01-07").unwrap_err();
    assert_eq!(err.latest, latest);
    let err = at("9999-12-31").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("9999-12-31"), "{msg}");
    assert!(msg.contains("2028-01-06"), "{msg}");
    // Already expired is not a horizon problem (the expiry check says it).
    assert!(at("2020-01-01").is_ok());
    // Near the end of the calendar, no overflow.
    let p = parse("d.toml", header("").as_bytes()).unwrap();
    assert!(check_expiry_horizon(&p, time::Date::MAX).is_ok());
}
