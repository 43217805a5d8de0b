//! What the collectivités' audit asks of the store: per-machine audit facts
//! (written at ingestion, see [`crate::audit`]), the territory's figures
//! and the per-machine audit table, always through a [`Scope`].
//!
//! Scope is enforced here as in [`super::web`]: every query's `WHERE` is
//! [`Scope::sql`] over `schools s`, and the optional territory node the
//! reader picked narrows it further (never widens it).

use nird_proto::uai::Uai;

use super::web::{Scope, ScopeNode};
use super::{SchoolKind, StoreFuture};
use crate::audit::facts::AuditFacts;

/// What to count: a territory node inside the reader's scope and a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Narrow the scope to this node (`None`: the whole scope).
    pub node: Option<ScopeNode>,
    /// Start of the period, Unix time (inclusive).
    pub from: i64,
    /// End of the period, Unix time (inclusive).
    pub to: i64,
    /// Now, Unix time ("in use" is judged at `min(to, now)`).
    pub now: i64,
}

impl AuditFilter {
    /// The moment "in use" is judged at.
    pub fn judged_at(&self) -> i64 {
        self.to.min(self.now)
    }

    /// Seen on or after this is "in use".
    pub fn in_use_since(&self) -> i64 {
        self.judged_at() - IN_USE_DAYS * 86_400
    }

    /// Calendar year of the end of the period (ages are counted at it).
    pub fn end_year(&self) -> i64 {
        time::OffsetDateTime::from_unix_timestamp(self.judged_at())
            .map(|d| i64::from(d.year()))
            .unwrap_or(1970)
    }
}

/// A machine seen within this many days of the period's end is in use.
pub const IN_USE_DAYS: i64 = 30;

/// One counted figure: its key (JSON, CSV), French label and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Stable key.
    pub key: &'static str,
    /// French label.
    pub label: &'static str,
    /// Unit (`machines`, `secondes`).
    pub unit: &'static str,
}

const fn c(key: &'static str, label: &'static str) -> Counter {
    Counter {
        key,
        label,
        unit: "machines",
    }
}

/// Every per-school counter, in [`SchoolFigures::counts`] order.
pub const COUNTERS: &[Counter] = &[
    c(
        "inscrites",
        "Machines inscrites, non retirées, à la fin de la période",
    ),
    c(
        "inscrites_periode",
        "Machines prises en réemploi (inscrites) pendant la période",
    ),
    c("retirees", "Machines retirées"),
    c(
        "en_service",
        "Machines reconditionnées en service (vues dans les 30 jours)",
    ),
    c("portables", "En service : portables"),
    c("fixes", "En service : fixes (dont tout-en-un, mini-PC)"),
    c("autres_classes", "En service : autre classe ou inconnue"),
    c("w11_incompatibles", "En service : refusées par Windows 11"),
    c("w11_compatibles", "En service : acceptées par Windows 11"),
    c(
        "w11_indetermines",
        "En service : verdict Windows 11 indéterminé",
    ),
    c("bloquant_tpm", "Bloquant Windows 11 : pas de TPM 2.0"),
    c(
        "bloquant_processeur",
        "Bloquant Windows 11 : processeur non pris en charge",
    ),
    c(
        "bloquant_micrologiciel",
        "Bloquant Windows 11 : pas d'UEFI ou de Secure Boot",
    ),
    c(
        "bloquant_memoire",
        "Bloquant Windows 11 : moins de 4 Go de mémoire",
    ),
    c(
        "bloquant_disque",
        "Bloquant Windows 11 : disque de moins de 64 Go",
    ),
    c(
        "licence_oem",
        "En service : licence Windows OEM dans le micrologiciel (ex-Windows)",
    ),
    c(
        "licence_oem_incompatibles",
        "Ex-Windows refusées par Windows 11",
    ),
    c("age_0_4", "Âge estimé : moins de 5 ans"),
    c("age_5_7", "Âge estimé : 5 à 7 ans"),
    c("age_8_10", "Âge estimé : 8 à 10 ans"),
    c("age_11_14", "Âge estimé : 11 à 14 ans"),
    c("age_15_plus", "Âge estimé : 15 ans et plus"),
    c("age_inconnu", "Âge inconnu"),
    c("memoire_moins_2", "Mémoire : moins de 2 Go"),
    c("memoire_2_4", "Mémoire : 2 à moins de 4 Go"),
    c("memoire_4_8", "Mémoire : 4 à moins de 8 Go"),
    c("memoire_8_16", "Mémoire : 8 à moins de 16 Go"),
    c("memoire_16_plus", "Mémoire : 16 Go et plus"),
    c("memoire_inconnue", "Mémoire inconnue"),
    c("disque_hdd", "Disque système : disque dur (HDD)"),
    c("disque_ssd", "Disque système : SSD SATA"),
    c("disque_nvme", "Disque système : SSD NVMe"),
    c("disque_autre", "Disque système : autre (virtuel, USB)"),
    c("disque_inconnu", "Disque système inconnu"),
    c("disque_moins_128", "Disque système : moins de 128 Go"),
    c("disque_128_256", "Disque système : 128 à moins de 256 Go"),
    c("disque_256_512", "Disque système : 256 à moins de 512 Go"),
    c("disque_512_plus", "Disque système : 512 Go et plus"),
    c(
        "smart_defaillant",
        "Santé : disque signalé défaillant par SMART",
    ),
    c("avec_batterie", "Machines avec batterie"),
    c("batterie_usee", "Santé : batterie usée à plus de 50 %"),
    c(
        "evolution_ssd",
        "Évolution conseillée : remplacer le disque dur par un SSD",
    ),
    c(
        "evolution_memoire",
        "Évolution conseillée : passer à 8 Go (emplacement libre ou barrette remplaçable)",
    ),
    c(
        "memoire_non_extensible",
        "Moins de 8 Go sans évolution possible (mémoire soudée, aucun emplacement libre)",
    ),
    c(
        "machines_vie_prolongee",
        "Machines dont la vie a été prolongée pendant la période",
    ),
    Counter {
        key: "vie_prolongee_secondes",
        label: "Vie prolongée pendant la période, cumulée",
        unit: "secondes",
    },
];

/// Index of a counter by key (panics on a typo: keys are constants).
pub fn idx(key: &str) -> usize {
    COUNTERS
        .iter()
        .position(|c| c.key == key)
        .unwrap_or_else(|| panic!("unknown audit counter {key}"))
}

/// One school's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct SchoolFigures {
    /// UAI.
    pub uai: Uai,
    /// Name.
    pub name: String,
    /// Commune.
    pub commune: String,
    /// Département.
    pub departement: String,
    /// Kind.
    pub kind: SchoolKind,
    /// Counters, in [`COUNTERS`] order.
    pub counts: Vec<i64>,
}

/// The figures of a territory and a period.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditFigures {
    /// Per school in scope (and in the node), by UAI; schools without
    /// machines included (all zero).
    pub schools: Vec<SchoolFigures>,
    /// In-use machines per processor generation: (generation or "",
    /// launch year, machines), oldest first.
    pub cpu_generations: Vec<(String, Option<i64>, i64)>,
    /// In-use machines refused by Windows 11 per combination of blockers:
    /// (blocker keys joined by "+", machines), most frequent first.
    pub combinations: Vec<(String, i64)>,
}

impl AuditFigures {
    /// The territory's totals: the sum over its schools.
    pub fn totals(&self) -> Vec<i64> {
        let mut t = vec![0i64; COUNTERS.len()];
        for s in &self.schools {
            for (a, b) in t.iter_mut().zip(&s.counts) {
                *a += b;
            }
        }
        t
    }
}

/// One machine of the audit table (and its passport).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditMachineRow {
    /// Machine id.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// `pending`, `active`, `retired`.
    pub status: String,
    /// Unix enrolment time: when it was taken into reuse.
    pub enrolled_at: i64,
    /// Unix time of its last check-in.
    pub last_seen: Option<i64>,
    /// School UAI.
    pub uai: String,
    /// School name.
    pub school_name: String,
    /// Commune.
    pub commune: String,
    /// Département.
    pub departement: String,
    /// Académie.
    pub academie: String,
    /// `ecole`, `college`, `lycee`.
    pub school_kind: String,
    /// Applied profiles, "name vN, …" (from the latest check-in).
    pub profiles: String,
    /// The facts (`None` until computed).
    pub facts: Option<AuditFacts>,
}

/// The audit's storage needs. Part of [`super::Store`].
pub trait AuditStore {
    /// Figures of `filter` within `scope`.
    fn audit_figures<'a>(
        &'a self,
        scope: &'a Scope,
        filter: &'a AuditFilter,
        standard_life_years: u32,
    ) -> StoreFuture<'a, AuditFigures>;
    /// Machines in `scope` (and the filter's node) enrolled by the end of
    /// the period, every status, ordered by id, after `after`, at most
    /// `limit`: keyset pages, so exports stream in constant memory.
    fn audit_machines<'a>(
        &'a self,
        scope: &'a Scope,
        filter: &'a AuditFilter,
        after: Option<String>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<AuditMachineRow>>;
    /// One machine, if in scope.
    fn audit_machine<'a>(
        &'a self,
        scope: &'a Scope,
        id: &'a str,
    ) -> StoreFuture<'a, Option<AuditMachineRow>>;
    /// Up to `limit` machines with no facts, or facts of another
    /// computation than `version`.
    fn audit_facts_stale<'a>(
        &'a self,
        version: &'a str,
        limit: u32,
    ) -> StoreFuture<'a, Vec<String>>;
    /// Writes facts computed outside a check-in (backfill), in one
    /// transaction.
    fn record_audit_facts(
        &self,
        version: String,
        facts: Vec<(String, AuditFacts)>,
    ) -> StoreFuture<'_, ()>;
}
