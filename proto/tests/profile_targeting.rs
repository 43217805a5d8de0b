//! Signed targeting (issue 8, hole 2): a profile says which machines it is
//! for; `Profile::admits` is what the agent asks before applying a release,
//! whatever the server assigned.

use nird_proto::profile::{Audience, Profile, TargetingError, parse};
use nird_proto::school::{Place, SchoolKind};
use nird_proto::uai::Uai;
use proptest::prelude::*;

fn profile(audience: &str, scope: &str) -> Profile {
    let text = format!(
        "[profile]\nname = \"demo\"\nversion = 1\nexpires = 2027-08-31\ndescription = \"Démo\"\naudience = {audience}\n{scope}\n"
    );
    parse("demo.toml", text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn place(uai: &str, kind: SchoolKind, academie: &str) -> Place {
    Place {
        uai: Uai::parse(uai).unwrap(),
        kind,
        academie: academie.into(),
    }
}

/// École Jean Jaurès, Calais (Pas-de-Calais, académie de Lille).
fn calais_ecole() -> Place {
    place("0620056Z", SchoolKind::Ecole, "Lille")
}

#[test]
fn a_college_profile_is_refused_on_an_ecole_pc() {
    let p = profile(r#"["collège", "lycée"]"#, "");
    let err = p.admits(&calais_ecole()).unwrap_err();
    assert!(matches!(err, TargetingError::Audience { .. }));
    assert_eq!(
        err.to_string(),
        "profil destiné aux collèges et aux lycées ; cette machine est dans une école (0620056Z)"
    );
    let p = profile(r#""collège""#, "");
    assert_eq!(
        p.admits(&calais_ecole()).unwrap_err().to_string(),
        "profil destiné aux collèges ; cette machine est dans une école (0620056Z)"
    );
    assert!(
        p.admits(&place("0620056Z", SchoolKind::College, "Lille"))
            .is_ok()
    );
    assert!(profile(r#""all""#, "").admits(&calais_ecole()).is_ok());
    assert!(profile(r#""école""#, "").admits(&calais_ecole()).is_ok());
}

#[test]
fn scope_admits_any_listed_node() {
    // Académie only, spelt differently from the school record.
    let p = profile(r#""all""#, r#"academies = ["aix marseille", "Lille"]"#);
    assert_eq!(p.scope.academies, ["Aix-Marseille", "Lille"]);
    assert!(p.admits(&calais_ecole()).is_ok());
    assert!(
        p.admits(&place("0620056Z", SchoolKind::Ecole, "Académie de LILLE"))
            .is_ok()
    );
    // Département, written without its leading zero.
    let p = profile(r#""all""#, r#"departements = ["62"]"#);
    assert_eq!(p.scope.departements, ["062"]);
    assert!(p.admits(&calais_ecole()).is_ok());
    // UAI.
    let p = profile(r#""all""#, r#"uais = ["0620056z"]"#);
    assert!(p.admits(&calais_ecole()).is_ok());
    // Out of every listed node: refused, saying where it is.
    let p = profile(
        r#""all""#,
        "academies = [\"Aix-Marseille\"]\ndepartements = [\"59\", \"2A\"]\nuais = [\"0750001U\"]",
    );
    let err = p.admits(&calais_ecole()).unwrap_err();
    assert!(matches!(err, TargetingError::OutOfScope { .. }));
    assert_eq!(
        err.to_string(),
        "profil réservé à l'académie d'Aix-Marseille, aux départements 059, 620 ou à l'établissement 0750001U ; cette machine est dans l'établissement 0620056Z (département 062, académie de Lille)"
    );
}

#[test]
fn audience_and_scope_must_both_admit() {
    // Right département, wrong kind of school: refused for the kind.
    let p = profile(r#""lycée""#, r#"departements = ["062"]"#);
    assert!(matches!(
        p.admits(&calais_ecole()),
        Err(TargetingError::Audience { .. })
    ));
}

#[test]
fn scope_entries_are_validated() {
    for (scope, needle) in [
        (r#"academies = ["Lile"]"#, "académie « Lile » inconnue"),
        (r#"academies = ["Lille", "lille"]"#, "répétée"),
        (r#"departements = ["99"]"#, "département « 99 » invalide"),
        (r#"departements = ["62", "062"]"#, "répété"),
        (r#"uais = ["0620056A"]"#, "lettre de contrôle"),
        (r#"uais = ["0620056Z", "0620056z"]"#, "répété"),
    ] {
        let text = format!(
            "[profile]\nname = \"demo\"\nversion = 1\nexpires = 2027-08-31\ndescription = \"Démo\"\naudience = \"all\"\n{scope}\n"
        );
        let err = parse("demo.toml", text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(needle), "{scope}: {err}");
        // Located on the offending line.
        assert!(err.starts_with("demo.toml:7:"), "{scope}: {err}");
    }
}

fn kind_strategy() -> impl Strategy<Value = SchoolKind> {
    prop::sample::select(SchoolKind::ALL.to_vec())
}

/// Valid UAIs: 7 digits of a known département and the right letter.
fn uai_strategy() -> impl Strategy<Value = Uai> {
    (
        prop::sample::select(vec!["062", "059", "075", "013", "620", "971"]),
        0u32..10_000,
    )
        .prop_map(|(dep, n)| {
            let digits = format!("{dep}{n:04}");
            let value: u32 = digits.parse().unwrap();
            let letter = b"ABCDEFGHJKLMNPRSTUVWXYZ"[(value % 23) as usize] as char;
            Uai::parse(&format!("{digits}{letter}")).unwrap()
        })
}

proptest! {
    /// The decision is exactly "kind in audience, and (no scope, or one
    /// listed node matches)", whatever the profile and the machine.
    #[test]
    fn admits_is_audience_and_any_scope_node(
        audience in prop::sample::subsequence(vec!["école", "collège", "lycée", "all"], 1..=4),
        academies in prop::sample::subsequence(vec!["Lille", "Aix-Marseille", "Paris"], 0..=3),
        departements in prop::sample::subsequence(vec!["062", "59", "75"], 0..=3),
        uais in prop::collection::vec(uai_strategy(), 0..3),
        machine_uai in uai_strategy(),
        kind in kind_strategy(),
        academie in prop::sample::select(vec!["Lille", "aix marseille", "Paris", "Créteil", ""]),
    ) {
        let quote = |v: &[&str]| v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
        let mut uai_list: Vec<String> = uais.iter().map(|u| u.to_string()).collect();
        uai_list.dedup();
        uai_list.sort();
        uai_list.dedup();
        let uai_refs: Vec<&str> = uai_list.iter().map(String::as_str).collect();
        let p = profile(
            &format!("[{}]", quote(&audience)),
            &format!(
                "academies = [{}]\ndepartements = [{}]\nuais = [{}]",
                quote(&academies), quote(&departements), quote(&uai_refs)
            ),
        );
        let machine = Place { uai: machine_uai.clone(), kind, academie: academie.to_owned() };
        let kind_ok = p.audience.iter().any(|a| *a == Audience::All || a.includes(kind));
        let norm = |s: &str| s.to_lowercase().replace('-', " ");
        let scope_empty = academies.is_empty() && departements.is_empty() && uais.is_empty();
        let in_scope = academies.iter().any(|a| !academie.is_empty() && norm(a) == norm(academie))
            || departements.iter().any(|d| format!("{d:0>3}") == machine_uai.departement())
            || uais.contains(&machine_uai);
        let expected = kind_ok && (scope_empty || in_scope);
        let got = p.admits(&machine);
        prop_assert_eq!(got.is_ok(), expected, "{:?}", got);
        if let Err(e) = got {
            // Every refusal names the machine's school.
            prop_assert!(e.to_string().contains(machine_uai.as_str()));
        }
    }
}
