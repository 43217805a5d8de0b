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
use crate::audit::co2::YEAR_SECS;
use crate::audit::facts::{AuditFacts, RAM_UPGRADE_BELOW};

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
    /// Unit (`machines`, `écrans`, `secondes`).
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
        "w11_cpu_liste",
        "En service : processeur jugé d'après la liste Microsoft",
    ),
    c(
        "w11_cpu_estimation",
        "En service : processeur absent de la liste Microsoft, jugé par estimation",
    ),
    Counter {
        key: "ecrans",
        label: "Écrans externes en service, réemployés avec les machines",
        unit: "écrans",
    },
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

/// One machine as the figures read it: the columns of `machines` and
/// `audit_facts` a backend selects (see [`FIGURE_COLUMNS`]), borrowed from
/// its row so counting 100,000 machines allocates nothing per machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct FigureRow<'a> {
    /// `machines.school_id`.
    pub school_id: i64,
    /// `pending`, `active`, `retired`.
    pub status: &'a str,
    /// Enrolment time, Unix.
    pub enrolled_at: i64,
    /// Last check-in, Unix.
    pub last_seen: Option<i64>,
    /// `audit_facts` columns of the same names (`None`: no facts, or the
    /// inventory could not tell).
    pub class: Option<&'a str>,
    pub win11: Option<&'a str>,
    pub blocker_tpm: bool,
    pub blocker_cpu: bool,
    pub blocker_uefi: bool,
    pub blocker_secure_boot: bool,
    pub blocker_ram: bool,
    pub blocker_disk: bool,
    pub windows_oem_licence: Option<bool>,
    pub build_year: Option<i64>,
    pub ram_bytes: Option<i64>,
    pub ram_free_slots: Option<i64>,
    pub ram_replaceable: Option<bool>,
    pub disk_kind: Option<&'a str>,
    pub disk_bytes: Option<i64>,
    pub smart: Option<&'a str>,
    pub has_battery: Option<bool>,
    pub battery_wear: Option<i64>,
    pub cpu_generation: Option<&'a str>,
    pub cpu_year: Option<i64>,
    pub cpu_basis: Option<&'a str>,
    pub screens: Option<i64>,
}

/// The `machines m` / `audit_facts f` columns of a [`FigureRow`], in its
/// field order; plain SQL both backends read.
pub const FIGURE_COLUMNS: &str = "m.school_id, m.status, m.enrolled_at, m.last_seen, f.class,
    f.win11, f.blocker_tpm, f.blocker_cpu, f.blocker_uefi, f.blocker_secure_boot, f.blocker_ram,
    f.blocker_disk, f.windows_oem_licence, f.build_year, f.ram_bytes, f.ram_free_slots,
    f.ram_replaceable, f.disk_kind, f.disk_bytes, f.smart, f.has_battery, f.battery_wear,
    f.cpu_generation, f.cpu_year, f.cpu_basis, f.screens";

const GIB: i64 = 1024 * 1024 * 1024;

/// Counts machines into [`AuditFigures`]: the definition of every figure,
/// in one place, whatever the backend. A backend adds the territory's
/// schools ([`Self::school`]), then each machine enrolled by the end of the
/// period ([`Self::machine`]), in any order.
#[derive(Debug)]
pub struct FigureCounter<'f> {
    filter: &'f AuditFilter,
    life_years: u32,
    figures: AuditFigures,
    index: std::collections::HashMap<i64, usize>,
    generations: std::collections::HashMap<String, (Option<i64>, i64)>,
    combos: std::collections::HashMap<[bool; 5], i64>,
}

impl<'f> FigureCounter<'f> {
    /// A counter for `filter`, with machines past `life_years` after their
    /// build year counted as "extended life".
    pub fn new(filter: &'f AuditFilter, life_years: u32) -> Self {
        FigureCounter {
            filter,
            life_years,
            figures: AuditFigures::default(),
            index: std::collections::HashMap::new(),
            generations: std::collections::HashMap::new(),
            combos: std::collections::HashMap::new(),
        }
    }

    /// Adds a school of the territory (`id`: `schools.id`); its counts
    /// start at zero.
    pub fn school(
        &mut self,
        id: i64,
        uai: Uai,
        name: String,
        commune: String,
        departement: String,
        kind: SchoolKind,
    ) {
        self.index.insert(id, self.figures.schools.len());
        self.figures.schools.push(SchoolFigures {
            uai,
            name,
            commune,
            departement,
            kind,
            counts: vec![0; COUNTERS.len()],
        });
    }

    /// Counts one machine (ignored when its school was not added).
    #[allow(clippy::too_many_lines)]
    pub fn machine(&mut self, r: &FigureRow<'_>) {
        let Some(&at) = self.index.get(&r.school_id) else {
            return;
        };
        let filter = self.filter;
        let c = &mut self.figures.schools[at].counts;
        let contact = r.last_seen.unwrap_or(r.enrolled_at);
        let retired = r.status == "retired";
        let mut i = 0usize;
        let mut add = |c: &mut [i64], n: i64| {
            c[i] += n;
            i += 1;
        };
        let one = i64::from;
        // Every machine enrolled by the end of the period.
        add(c, one(!retired));
        add(c, one(r.enrolled_at >= filter.from));
        add(c, one(retired));
        let in_use = !retired && contact >= filter.in_use_since();
        let extended = match r.build_year {
            None => 0,
            Some(y) => {
                let life_end = (y + i64::from(self.life_years) - 1970) * YEAR_SECS;
                (contact.min(filter.judged_at()) - r.enrolled_at.max(filter.from).max(life_end))
                    .max(0)
            }
        };
        if !in_use {
            // In-use counters stay zero; the last two count every machine.
            let n = c.len();
            c[n - 2] += one(extended > 0);
            c[n - 1] += extended;
            return;
        }
        let class = r.class.unwrap_or("other");
        let win11 = r.win11.unwrap_or("unknown");
        let oem = r.windows_oem_licence == Some(true);
        let age = r.build_year.map(|y| filter.end_year() - y);
        let (ram, disk, disk_kind) = (r.ram_bytes, r.disk_bytes, r.disk_kind);
        let upgradable = r.ram_free_slots.unwrap_or(0) > 0 || r.ram_replaceable == Some(true);
        let below8 = ram.is_some_and(|r| r < RAM_UPGRADE_BELOW);
        let ineligible = win11 == "ineligible";
        let firmware = r.blocker_uefi || r.blocker_secure_boot;
        add(c, 1);
        add(c, one(class == "laptop"));
        add(c, one(class == "desktop"));
        add(c, one(class == "other"));
        add(c, one(ineligible));
        add(c, one(win11 == "eligible"));
        add(c, one(win11 == "unknown"));
        add(c, one(r.blocker_tpm));
        add(c, one(r.blocker_cpu));
        add(c, one(firmware));
        add(c, one(r.blocker_ram));
        add(c, one(r.blocker_disk));
        add(c, one(oem));
        add(c, one(oem && ineligible));
        add(c, one(age.is_some_and(|a| a < 5)));
        add(c, one(age.is_some_and(|a| (5..=7).contains(&a))));
        add(c, one(age.is_some_and(|a| (8..=10).contains(&a))));
        add(c, one(age.is_some_and(|a| (11..=14).contains(&a))));
        add(c, one(age.is_some_and(|a| a >= 15)));
        add(c, one(age.is_none()));
        add(c, one(ram.is_some_and(|r| r < 2 * GIB)));
        add(c, one(ram.is_some_and(|r| (2 * GIB..4 * GIB).contains(&r))));
        add(c, one(ram.is_some_and(|r| (4 * GIB..8 * GIB).contains(&r))));
        add(
            c,
            one(ram.is_some_and(|r| (8 * GIB..16 * GIB).contains(&r))),
        );
        add(c, one(ram.is_some_and(|r| r >= 16 * GIB)));
        add(c, one(ram.is_none()));
        add(c, one(disk_kind == Some("hdd")));
        add(c, one(disk_kind == Some("ssd")));
        add(c, one(disk_kind == Some("nvme")));
        add(c, one(disk_kind == Some("other")));
        add(c, one(disk_kind.is_none()));
        add(c, one(disk.is_some_and(|d| d < 128_000_000_000)));
        add(
            c,
            one(disk.is_some_and(|d| (128_000_000_000..256_000_000_000).contains(&d))),
        );
        add(
            c,
            one(disk.is_some_and(|d| (256_000_000_000..512_000_000_000).contains(&d))),
        );
        add(c, one(disk.is_some_and(|d| d >= 512_000_000_000)));
        add(c, one(r.smart == Some("failing")));
        add(c, one(r.has_battery == Some(true)));
        add(c, one(r.battery_wear.is_some_and(|w| w > 50)));
        add(c, one(disk_kind == Some("hdd")));
        add(c, one(below8 && upgradable));
        add(
            c,
            one(below8 && r.ram_free_slots == Some(0) && r.ram_replaceable == Some(false)),
        );
        add(c, one(r.cpu_basis == Some("list")));
        add(c, one(r.cpu_basis == Some("estimate")));
        add(c, r.screens.unwrap_or(0).max(0));
        add(c, one(extended > 0));
        c[i] += extended;
        debug_assert_eq!(i + 1, COUNTERS.len());

        let generation = r.cpu_generation.unwrap_or("");
        match self.generations.get_mut(generation) {
            Some(g) => g.1 += 1,
            None => {
                self.generations
                    .insert(generation.to_owned(), (r.cpu_year, 1));
            }
        }
        if ineligible {
            let blockers = [
                r.blocker_tpm,
                r.blocker_cpu,
                firmware,
                r.blocker_ram,
                r.blocker_disk,
            ];
            *self.combos.entry(blockers).or_default() += 1;
        }
    }

    /// The figures, generations oldest first, combinations most frequent
    /// first.
    pub fn finish(self) -> AuditFigures {
        let mut figures = self.figures;
        let mut generations: Vec<(String, Option<i64>, i64)> = self
            .generations
            .into_iter()
            .map(|(g, (y, n))| (g, y, n))
            .collect();
        generations.sort_by(|a, b| (a.1.is_none(), a.1, &a.0).cmp(&(b.1.is_none(), b.1, &b.0)));
        let names = ["tpm", "processeur", "micrologiciel", "memoire", "disque"];
        let mut combinations: Vec<(String, i64)> = self
            .combos
            .into_iter()
            .map(|(bits, n)| {
                let parts: Vec<&str> = names
                    .iter()
                    .zip(bits)
                    .filter(|(_, b)| *b)
                    .map(|(n, _)| *n)
                    .collect();
                (parts.join("+"), n)
            })
            .collect();
        combinations.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        figures.cpu_generations = generations;
        figures.combinations = combinations;
        figures
    }
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
