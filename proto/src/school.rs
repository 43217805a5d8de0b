//! Where a machine is: its school's UAI, the kind of school and its
//! académie. The agent records its [`Place`] at enrolment and checks every
//! release's signed targeting against it (`Profile::admits`), so a server
//! cannot push a collège profile onto an école PC.
//!
//! Académie names are compared through [`normalize_academie`]: case,
//! accents, hyphens and spaces do not matter ("Aix-Marseille" is
//! "aix marseille"), and a leading "académie de" is ignored.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::uai::Uai;

/// The kind of school a machine is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchoolKind {
    /// École primaire (PrimTux).
    Ecole,
    /// Collège (Linux NIRD).
    College,
    /// Lycée (Linux NIRD).
    Lycee,
}

impl SchoolKind {
    /// Every kind, in school order.
    pub const ALL: [SchoolKind; 3] = [SchoolKind::Ecole, SchoolKind::College, SchoolKind::Lycee];

    /// Accepts the French words, with or without accents, any case.
    pub fn parse(s: &str) -> Option<Self> {
        match fold(s.trim()).as_str() {
            "ecole" => Some(SchoolKind::Ecole),
            "college" => Some(SchoolKind::College),
            "lycee" => Some(SchoolKind::Lycee),
            _ => None,
        }
    }

    /// The wire form (`ecole`, `college`, `lycee`).
    pub fn as_str(self) -> &'static str {
        match self {
            SchoolKind::Ecole => "ecole",
            SchoolKind::College => "college",
            SchoolKind::Lycee => "lycee",
        }
    }

    /// The French word, e.g. « collège ».
    pub fn label(self) -> &'static str {
        match self {
            SchoolKind::Ecole => "école",
            SchoolKind::College => "collège",
            SchoolKind::Lycee => "lycée",
        }
    }

    /// With its indefinite article, e.g. « un collège ».
    pub fn with_article(self) -> &'static str {
        match self {
            SchoolKind::Ecole => "une école",
            SchoolKind::College => "un collège",
            SchoolKind::Lycee => "un lycée",
        }
    }

    /// Plural with « aux », e.g. « aux collèges ».
    pub fn plural_to(self) -> &'static str {
        match self {
            SchoolKind::Ecole => "aux écoles",
            SchoolKind::College => "aux collèges",
            SchoolKind::Lycee => "aux lycées",
        }
    }
}

impl fmt::Display for SchoolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Where a machine is, as recorded by the agent at enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// The school's UAI code.
    pub uai: Uai,
    /// École, collège or lycée.
    pub kind: SchoolKind,
    /// The académie's name as the server's school record spells it;
    /// compared through [`normalize_academie`].
    pub academie: String,
}

impl Place {
    /// The département as written in UAI codes (`062`; Corsica is `620` /
    /// `720`).
    pub fn departement(&self) -> &str {
        self.uai.departement()
    }
}

/// The 30 académies (since the 2020 merger of Caen and Rouen into
/// Normandie), in their usual spelling. Profiles may only name these, so a
/// typo in a signed scope is caught by lint rather than silently excluding
/// every machine.
pub const ACADEMIES: [&str; 30] = [
    "Aix-Marseille",
    "Amiens",
    "Besançon",
    "Bordeaux",
    "Clermont-Ferrand",
    "Corse",
    "Créteil",
    "Dijon",
    "Grenoble",
    "Guadeloupe",
    "Guyane",
    "La Réunion",
    "Lille",
    "Limoges",
    "Lyon",
    "Martinique",
    "Mayotte",
    "Montpellier",
    "Nancy-Metz",
    "Nantes",
    "Nice",
    "Normandie",
    "Orléans-Tours",
    "Paris",
    "Poitiers",
    "Reims",
    "Rennes",
    "Strasbourg",
    "Toulouse",
    "Versailles",
];

/// The comparison key of an académie name: lowercase, without accents,
/// hyphens / apostrophes / underscores / runs of blanks as one space, no
/// leading "académie de" / "académie d'" / "académie", and "réunion" for
/// "la réunion". `normalize_academie("Aix-Marseille") == "aix marseille"`.
pub fn normalize_academie(name: &str) -> String {
    let folded = fold(name);
    let spaced: String = folded
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c
            } else {
                // Hyphens, apostrophes, underscores, blanks, dots.
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = spaced.split_whitespace().collect();
    let mut rest: &[&str] = &words;
    if rest.first() == Some(&"academie") {
        rest = &rest[1..];
        if matches!(rest.first(), Some(&"de") | Some(&"d")) {
            rest = &rest[1..];
        }
    }
    if rest == ["la", "reunion"] {
        rest = &rest[1..];
    }
    rest.join(" ")
}

/// The canonical spelling (from [`ACADEMIES`]) of an académie name, if it
/// names one.
pub fn known_academie(name: &str) -> Option<&'static str> {
    let key = normalize_academie(name);
    ACADEMIES
        .iter()
        .copied()
        .find(|a| normalize_academie(a) == key)
}

/// The département code as UAI codes write it (3 digits), from what people
/// type: `62` and `062` are `062`; `2A` / `2B` (Corsica) are `620` / `720`;
/// `971`… are kept. `None` if it is not a French département.
pub fn normalize_departement(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_uppercase();
    let canonical = match code.as_str() {
        "2A" | "02A" => "620".to_owned(),
        "2B" | "02B" => "720".to_owned(),
        c if (1..=3).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{:0>3}", c)
        }
        _ => return None,
    };
    // Checked as a number: `062` is 62.
    let n: u16 = canonical.parse().ok()?;
    let known = matches!(n, 1..=19 | 21..=95 | 620 | 720 | 971..=978 | 984..=989);
    known.then_some(canonical)
}

/// Lowercase and strip the accents French uses.
fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'â' | 'ä' | 'á' | 'ã' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' | 'í' => 'i',
            'ô' | 'ö' | 'ó' => 'o',
            'ù' | 'û' | 'ü' | 'ú' => 'u',
            'ÿ' => 'y',
            'ç' => 'c',
            // Typographic apostrophe.
            '\u{2019}' => '\'',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_with_or_without_accents_and_serialise_snake_case() {
        for (word, kind) in [
            ("école", SchoolKind::Ecole),
            ("ecole", SchoolKind::Ecole),
            ("École", SchoolKind::Ecole),
            ("collège", SchoolKind::College),
            ("COLLEGE", SchoolKind::College),
            ("lycée", SchoolKind::Lycee),
            (" lycee ", SchoolKind::Lycee),
        ] {
            assert_eq!(SchoolKind::parse(word), Some(kind), "{word}");
        }
        assert_eq!(SchoolKind::parse("université"), None);
        assert_eq!(SchoolKind::parse("all"), None);
        for k in SchoolKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<SchoolKind>(&json).unwrap(), k);
            assert_eq!(SchoolKind::parse(k.as_str()), Some(k));
            assert_eq!(SchoolKind::parse(k.label()), Some(k));
        }
        assert_eq!(SchoolKind::College.label(), "collège");
    }

    #[test]
    fn academie_names_compare_without_case_accents_or_hyphens() {
        assert_eq!(normalize_academie("Aix-Marseille"), "aix marseille");
        assert_eq!(
            normalize_academie("aix marseille"),
            normalize_academie("AIX–MARSEILLE".replace('–', "-").as_str())
        );
        assert_eq!(normalize_academie("  Créteil "), "creteil");
        assert_eq!(normalize_academie("Académie de Lille"), "lille");
        assert_eq!(
            normalize_academie("académie d'Orléans-Tours"),
            "orleans tours"
        );
        assert_eq!(normalize_academie("académie d’Amiens"), "amiens");
        assert_eq!(normalize_academie("La Réunion"), "reunion");
        assert_eq!(normalize_academie("Réunion"), "reunion");
        assert_eq!(known_academie("nancy metz"), Some("Nancy-Metz"));
        assert_eq!(known_academie("besancon"), Some("Besançon"));
        assert_eq!(known_academie("Lile"), None);
        assert_eq!(known_academie(""), None);
        // Every listed académie is its own canonical spelling.
        for a in ACADEMIES {
            assert_eq!(known_academie(a), Some(a));
        }
    }

    #[test]
    fn departements_are_uai_codes() {
        assert_eq!(normalize_departement("62").as_deref(), Some("062"));
        assert_eq!(normalize_departement("062").as_deref(), Some("062"));
        assert_eq!(normalize_departement("6").as_deref(), Some("006"));
        assert_eq!(normalize_departement("2a").as_deref(), Some("620"));
        assert_eq!(normalize_departement("2B").as_deref(), Some("720"));
        assert_eq!(normalize_departement("971").as_deref(), Some("971"));
        for bad in ["", "0", "20", "96", "099", "0062", "6a", "x", "979", "-62"] {
            assert_eq!(normalize_departement(bad), None, "{bad}");
        }
        let place = Place {
            uai: Uai::parse("0620056Z").unwrap(),
            kind: SchoolKind::Ecole,
            academie: "Lille".into(),
        };
        assert_eq!(place.departement(), "062");
        let json = serde_json::to_string(&place).unwrap();
        assert_eq!(
            json,
            r#"{"uai":"0620056Z","kind":"ecole","academie":"Lille"}"#
        );
        assert_eq!(serde_json::from_str::<Place>(&json).unwrap(), place);
    }
}
