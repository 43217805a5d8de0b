//! Signed targeting: which machines a profile is for.
//!
//! A profile's `audience` names the kinds of school it is for (or `all`);
//! its optional scope lists académies, départements and UAIs. A machine is
//! admitted when its kind is in the audience **and**, if any scope list is
//! non-empty, it matches at least one listed node (its académie, its
//! département or its UAI). Both are in the signed bytes, so a server
//! assigning a collège profile to an école PC gets it refused by the agent.

use std::fmt;

use super::{Audience, Profile};
use crate::school::{Place, SchoolKind, normalize_academie};
use crate::uai::Uai;

/// The optional geographic scope of a profile (`[profile]` keys
/// `academies`, `departements`, `uais`). Empty: every machine of the
/// audience.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Académies, in their canonical spelling
    /// ([`crate::school::ACADEMIES`]).
    pub academies: Vec<String>,
    /// Départements as UAI codes write them (`062`, `620` for Corse-du-Sud).
    pub departements: Vec<String>,
    /// Schools.
    pub uais: Vec<Uai>,
}

impl Scope {
    /// True when the profile names no académie, département or UAI.
    pub fn is_empty(&self) -> bool {
        self.academies.is_empty() && self.departements.is_empty() && self.uais.is_empty()
    }

    /// True when `place` is in one of the listed nodes (ignores emptiness:
    /// an empty scope matches nothing here).
    pub fn contains(&self, place: &Place) -> bool {
        let academie = normalize_academie(&place.academie);
        self.uais.contains(&place.uai)
            || self.departements.iter().any(|d| d == place.departement())
            || (!academie.is_empty()
                && self
                    .academies
                    .iter()
                    .any(|a| normalize_academie(a) == academie))
    }

    /// « à l'académie de Lille, au département 062 ou à l'établissement
    /// 0620056Z ».
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.academies.as_slice() {
            [] => {}
            [one] => parts.push(format!("à l'académie {}", de(one))),
            many => parts.push(format!("aux académies {}", list(many, |a| de(a)))),
        }
        match self.departements.as_slice() {
            [] => {}
            [one] => parts.push(format!("au département {one}")),
            many => parts.push(format!("aux départements {}", many.join(", "))),
        }
        match self.uais.as_slice() {
            [] => {}
            [one] => parts.push(format!("à l'établissement {one}")),
            many => parts.push(format!(
                "aux établissements {}",
                many.iter().map(Uai::as_str).collect::<Vec<_>>().join(", ")
            )),
        }
        list(&parts, |s| s.clone())
    }
}

/// « de Lille », « d'Aix-Marseille ».
fn de(name: &str) -> String {
    let elide = name
        .chars()
        .next()
        .is_some_and(|c| "AEIOUYÉÈÊaeiouyéèê".contains(c));
    if elide {
        format!("d'{name}")
    } else {
        format!("de {name}")
    }
}

/// « a, b ou c ».
fn list<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    let shown: Vec<String> = items.iter().map(show).collect();
    match shown.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} ou {last}", rest.join(", ")),
    }
}

/// Why a profile's signed targeting excludes a machine. The `Display` text
/// is the French reason the agent reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetingError {
    /// The machine's kind of school is not in the profile's audience.
    #[error(
        "profil destiné {} ; cette machine est dans {} ({})",
        audience_words(.audience),
        .place.kind.with_article(),
        .place.uai
    )]
    Audience {
        /// The profile's audience.
        audience: Vec<Audience>,
        /// Where the machine is.
        place: Place,
    },
    /// The profile lists académies / départements / UAIs, and the machine
    /// is in none of them.
    #[error(
        "profil réservé {} ; cette machine est dans l'établissement {} (département {}, académie {})",
        .scope.describe(),
        .place.uai,
        .place.departement(),
        de(&.place.academie)
    )]
    OutOfScope {
        /// The profile's scope (boxed: keeps the error small).
        scope: Box<Scope>,
        /// Where the machine is.
        place: Place,
    },
}

/// « aux collèges et aux lycées ».
fn audience_words(audience: &[Audience]) -> String {
    let words: Vec<&str> = audience
        .iter()
        .map(|a| match a {
            Audience::Ecole => SchoolKind::Ecole.plural_to(),
            Audience::College => SchoolKind::College.plural_to(),
            Audience::Lycee => SchoolKind::Lycee.plural_to(),
            Audience::All => "à tous les établissements",
        })
        .collect();
    match words.split_last() {
        None => "à personne".to_owned(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} et {last}", rest.join(", ")),
    }
}

impl Audience {
    /// True if a machine in a school of `kind` is in this audience.
    pub fn includes(self, kind: SchoolKind) -> bool {
        matches!(
            (self, kind),
            (Audience::All, _)
                | (Audience::Ecole, SchoolKind::Ecole)
                | (Audience::College, SchoolKind::College)
                | (Audience::Lycee, SchoolKind::Lycee)
        )
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Audience::Ecole => "école",
            Audience::College => "collège",
            Audience::Lycee => "lycée",
            Audience::All => "all",
        })
    }
}

impl Profile {
    /// Whether this profile's signed targeting admits a machine at `place`:
    /// its kind of school is in `audience`, and if the profile lists
    /// académies, départements or UAIs, the machine is in one of them.
    pub fn admits(&self, place: &Place) -> Result<(), TargetingError> {
        if !self.audience.iter().any(|a| a.includes(place.kind)) {
            return Err(TargetingError::Audience {
                audience: self.audience.clone(),
                place: place.clone(),
            });
        }
        if !self.scope.is_empty() && !self.scope.contains(place) {
            return Err(TargetingError::OutOfScope {
                scope: Box::new(self.scope.clone()),
                place: place.clone(),
            });
        }
        Ok(())
    }
}
