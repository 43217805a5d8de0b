//! SQLite side of [`AuditStore`] and the ingestion hook: [`record`] runs
//! inside the check-in (and enrolment) transaction, so a machine's audit
//! facts commit with the inventory they come from.
//!
//! The SQL is plain (`ON CONFLICT … DO UPDATE`, scalar `MIN` / `MAX`, which
//! PostgreSQL spells `LEAST` / `GREATEST`), so it ports to a second backend.

use std::collections::HashMap;

use nird_proto::api::ProfileRef;
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params, params_from_iter};

use super::{SqliteStore, now};
use crate::audit::co2::YEAR_SECS;
use crate::audit::facts::{self, AuditFacts, RAM_UPGRADE_BELOW};
use crate::store::audit::{
    AuditFigures, AuditFilter, AuditMachineRow, AuditStore, COUNTERS, SchoolFigures,
};
use crate::store::web::Scope;
use crate::store::{SchoolKind, StoreError, StoreFuture};

/// The ingestion hook, called in the check-in and enrolment transactions:
/// when `inventory` is a new document, (re)computes the machine's facts
/// from it; records the applied profiles when they changed (no write when
/// they did not).
pub(super) fn record(
    conn: &Connection,
    machine_id: &str,
    inventory: Option<&str>,
    applied: &[ProfileRef],
) -> Result<(), StoreError> {
    if let Some(text) = inventory {
        upsert(
            conn,
            machine_id,
            &crate::audit::facts_version(),
            &facts::from_document(text),
        )?;
    }
    let mut names: Vec<String> = applied
        .iter()
        .map(|p| format!("{} v{}", p.name, p.version))
        .collect();
    names.sort();
    conn.prepare_cached(
        "INSERT INTO audit_facts (machine_id, profiles) VALUES (?1, ?2)
         ON CONFLICT (machine_id) DO UPDATE SET profiles = excluded.profiles
         WHERE audit_facts.profiles IS NOT excluded.profiles",
    )?
    .execute(params![machine_id, names.join(", ")])?;
    Ok(())
}

fn opt_bool(b: Option<bool>) -> Option<i64> {
    b.map(i64::from)
}

/// Writes a machine's facts (its profiles column is left alone): plain SQL
/// shared with PostgreSQL.
pub(crate) const UPSERT_FACTS: &str =
    "INSERT INTO audit_facts (machine_id, computed_by, computed_at, readable, class, chassis,
             vendor, model, serial, cpu_model, cpu_generation, cpu_year, bios_year, build_year,
             age_basis, ram_bytes, ram_modules, ram_slots, ram_free_slots, ram_replaceable,
             disk_kind, disk_bytes, smart, battery_wear, has_battery, uefi, secure_boot, tpm,
             win11, blocker_tpm, blocker_cpu, blocker_ram, blocker_disk, blocker_uefi,
             blocker_secure_boot, os_name, os_version, windows_oem_licence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35,
             ?36, ?37, ?38)
         ON CONFLICT (machine_id) DO UPDATE SET computed_by = excluded.computed_by,
             computed_at = excluded.computed_at, readable = excluded.readable,
             class = excluded.class, chassis = excluded.chassis, vendor = excluded.vendor,
             model = excluded.model, serial = excluded.serial, cpu_model = excluded.cpu_model,
             cpu_generation = excluded.cpu_generation, cpu_year = excluded.cpu_year,
             bios_year = excluded.bios_year, build_year = excluded.build_year,
             age_basis = excluded.age_basis, ram_bytes = excluded.ram_bytes,
             ram_modules = excluded.ram_modules, ram_slots = excluded.ram_slots,
             ram_free_slots = excluded.ram_free_slots, ram_replaceable = excluded.ram_replaceable,
             disk_kind = excluded.disk_kind, disk_bytes = excluded.disk_bytes,
             smart = excluded.smart, battery_wear = excluded.battery_wear,
             has_battery = excluded.has_battery, uefi = excluded.uefi,
             secure_boot = excluded.secure_boot, tpm = excluded.tpm, win11 = excluded.win11,
             blocker_tpm = excluded.blocker_tpm, blocker_cpu = excluded.blocker_cpu,
             blocker_ram = excluded.blocker_ram, blocker_disk = excluded.blocker_disk,
             blocker_uefi = excluded.blocker_uefi,
             blocker_secure_boot = excluded.blocker_secure_boot, os_name = excluded.os_name,
             os_version = excluded.os_version, windows_oem_licence = excluded.windows_oem_licence";

/// Writes a machine's facts (its profiles column is left alone).
fn upsert(
    conn: &Connection,
    machine_id: &str,
    version: &str,
    f: &AuditFacts,
) -> Result<(), StoreError> {
    conn.prepare_cached(UPSERT_FACTS)?.execute(params![
        machine_id,
        version,
        now(),
        f.readable,
        f.class,
        f.chassis,
        f.vendor,
        f.model,
        f.serial,
        f.cpu_model,
        f.cpu_generation,
        f.cpu_year,
        f.bios_year,
        f.build_year,
        f.age_basis,
        f.ram_bytes,
        f.ram_modules,
        f.ram_slots,
        f.ram_free_slots,
        opt_bool(f.ram_replaceable),
        f.disk_kind,
        f.disk_bytes,
        f.smart,
        f.battery_wear,
        opt_bool(f.has_battery),
        opt_bool(f.uefi),
        f.secure_boot,
        f.tpm,
        f.win11,
        f.blocker_tpm,
        f.blocker_cpu,
        f.blocker_ram,
        f.blocker_disk,
        f.blocker_uefi,
        f.blocker_secure_boot,
        f.os_name,
        f.os_version,
        opt_bool(f.windows_oem_licence),
    ])?;
    Ok(())
}

/// The scope and the filter's node as one `WHERE` over `schools s`.
fn territory(scope: &Scope, filter: &AuditFilter) -> (String, Vec<Value>) {
    let (mut sql, params) = scope.sql();
    let mut all: Vec<Value> = params.into_iter().map(Value::Text).collect();
    if let Some(node) = &filter.node {
        let (node_sql, node_params) = Scope::Nodes(vec![node.clone()]).sql();
        sql = format!("{sql} AND {node_sql}");
        all.extend(node_params.into_iter().map(Value::Text));
    }
    (sql, all)
}

const GIB: i64 = 1024 * 1024 * 1024;

fn kind_of(s: &str) -> Result<SchoolKind, StoreError> {
    SchoolKind::parse(s).ok_or_else(|| StoreError::Backend(format!("unknown kind {s}")))
}

/// The columns one pass over the machines reads (see [`figures`]).
pub(crate) const FIGURE_COLUMNS: &str =
    "m.school_id, m.status, m.enrolled_at, m.last_seen, f.class,
    f.win11, f.blocker_tpm, f.blocker_cpu, f.blocker_uefi, f.blocker_secure_boot, f.blocker_ram,
    f.blocker_disk, f.windows_oem_licence, f.build_year, f.ram_bytes, f.ram_free_slots,
    f.ram_replaceable, f.disk_kind, f.disk_bytes, f.smart, f.has_battery, f.battery_wear,
    f.cpu_generation, f.cpu_year";

/// Column access to a row of [`FIGURE_COLUMNS`], whichever backend read
/// it: [`count`] is shared by SQLite and PostgreSQL.
pub(crate) trait FigureRow {
    /// An integer column (`None` for NULL).
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    /// A text column (`None` for NULL).
    fn text(&self, i: usize) -> Result<Option<String>, StoreError>;
}

impl FigureRow for Row<'_> {
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(i)?)
    }
}

/// Counts one machine into `c` (in [`COUNTERS`] order): the definitions
/// of every figure, in one place.
#[allow(clippy::too_many_lines)]
pub(crate) fn count(
    r: &impl FigureRow,
    filter: &AuditFilter,
    life_years: u32,
    c: &mut [i64],
) -> Result<Option<(bool, [bool; 5])>, StoreError> {
    let status: String = r.text(1)?.unwrap_or_default();
    let enrolled: i64 = r.int(2)?.unwrap_or(0);
    let last_seen: Option<i64> = r.int(3)?;
    let contact = last_seen.unwrap_or(enrolled);
    let retired = status == "retired";
    let build_year: Option<i64> = r.int(13)?;
    let mut i = 0usize;
    let mut add = |c: &mut [i64], yes: bool| {
        if yes {
            c[i] += 1;
        }
        i += 1;
    };
    // Every machine enrolled by the end of the period.
    add(c, !retired);
    add(c, enrolled >= filter.from);
    add(c, retired);
    let in_use = !retired && contact >= filter.in_use_since();
    let extended = match build_year {
        None => 0,
        Some(y) => {
            let life_end = (y + i64::from(life_years) - 1970) * YEAR_SECS;
            (contact.min(filter.judged_at()) - enrolled.max(filter.from).max(life_end)).max(0)
        }
    };
    if !in_use {
        // In-use counters stay zero; the last two count every machine.
        let n = c.len();
        c[n - 2] += i64::from(extended > 0);
        c[n - 1] += extended;
        return Ok(None);
    }
    let class: Option<String> = r.text(4)?;
    let win11: Option<String> = r.text(5)?;
    let flag = |k: usize| -> Result<bool, StoreError> { Ok(r.int(k)?.unwrap_or(0) != 0) };
    let (b_tpm, b_cpu, b_uefi, b_sb, b_ram, b_disk) =
        (flag(6)?, flag(7)?, flag(8)?, flag(9)?, flag(10)?, flag(11)?);
    let oem: Option<i64> = r.int(12)?;
    let ram: Option<i64> = r.int(14)?;
    let free_slots: Option<i64> = r.int(15)?;
    let replaceable: Option<i64> = r.int(16)?;
    let disk_kind: Option<String> = r.text(17)?;
    let disk: Option<i64> = r.int(18)?;
    let smart: Option<String> = r.text(19)?;
    let has_battery: Option<i64> = r.int(20)?;
    let wear: Option<i64> = r.int(21)?;
    let class = class.as_deref().unwrap_or("other");
    let win11 = win11.as_deref().unwrap_or("unknown");
    let age = build_year.map(|y| filter.end_year() - y);
    let disk_kind = disk_kind.as_deref();
    let upgradable = free_slots.unwrap_or(0) > 0 || replaceable == Some(1);
    let below8 = ram.is_some_and(|r| r < RAM_UPGRADE_BELOW);
    add(c, true);
    add(c, class == "laptop");
    add(c, class == "desktop");
    add(c, class == "other");
    add(c, win11 == "ineligible");
    add(c, win11 == "eligible");
    add(c, win11 == "unknown");
    add(c, b_tpm);
    add(c, b_cpu);
    add(c, b_uefi || b_sb);
    add(c, b_ram);
    add(c, b_disk);
    add(c, oem == Some(1));
    add(c, oem == Some(1) && win11 == "ineligible");
    add(c, age.is_some_and(|a| a < 5));
    add(c, age.is_some_and(|a| (5..=7).contains(&a)));
    add(c, age.is_some_and(|a| (8..=10).contains(&a)));
    add(c, age.is_some_and(|a| (11..=14).contains(&a)));
    add(c, age.is_some_and(|a| a >= 15));
    add(c, age.is_none());
    add(c, ram.is_some_and(|r| r < 2 * GIB));
    add(c, ram.is_some_and(|r| (2 * GIB..4 * GIB).contains(&r)));
    add(c, ram.is_some_and(|r| (4 * GIB..8 * GIB).contains(&r)));
    add(c, ram.is_some_and(|r| (8 * GIB..16 * GIB).contains(&r)));
    add(c, ram.is_some_and(|r| r >= 16 * GIB));
    add(c, ram.is_none());
    add(c, disk_kind == Some("hdd"));
    add(c, disk_kind == Some("ssd"));
    add(c, disk_kind == Some("nvme"));
    add(c, disk_kind == Some("other"));
    add(c, disk_kind.is_none());
    add(c, disk.is_some_and(|d| d < 128_000_000_000));
    add(
        c,
        disk.is_some_and(|d| (128_000_000_000..256_000_000_000).contains(&d)),
    );
    add(
        c,
        disk.is_some_and(|d| (256_000_000_000..512_000_000_000).contains(&d)),
    );
    add(c, disk.is_some_and(|d| d >= 512_000_000_000));
    add(c, smart.as_deref() == Some("failing"));
    add(c, has_battery == Some(1));
    add(c, wear.is_some_and(|w| w > 50));
    add(c, disk_kind == Some("hdd"));
    add(c, below8 && upgradable);
    add(c, below8 && free_slots == Some(0) && replaceable == Some(0));
    add(c, extended > 0);
    c[i] += extended;
    debug_assert_eq!(i + 1, COUNTERS.len());
    Ok(Some((
        win11 == "ineligible",
        [b_tpm, b_cpu, b_uefi || b_sb, b_ram, b_disk],
    )))
}

/// The figures: one pass over the territory's machines enrolled by the
/// end of the period, counted in Rust (one scan instead of one per figure).
fn figures(
    conn: &Connection,
    scope: &Scope,
    filter: &AuditFilter,
    life: u32,
) -> Result<AuditFigures, StoreError> {
    let (where_sql, params) = territory(scope, filter);
    let end = filter.to;
    let mut schools = Vec::new();
    let mut index = HashMap::new();
    {
        let mut stmt = conn.prepare(&format!(
            "SELECT s.id, s.uai, s.name, s.commune, s.departement, s.kind FROM schools s
             WHERE {where_sql} ORDER BY s.uai"
        ))?;
        let mut rows = stmt.query(params_from_iter(params.iter()))?;
        while let Some(r) = rows.next()? {
            index.insert(r.get::<_, i64>(0)?, schools.len());
            schools.push(SchoolFigures {
                uai: super::stored_uai(r.get(1)?)?,
                name: r.get(2)?,
                commune: r.get(3)?,
                departement: r.get(4)?,
                kind: kind_of(&r.get::<_, String>(5)?)?,
                counts: vec![0; COUNTERS.len()],
            });
        }
    }
    let mut tally = Tally::default();
    {
        let mut stmt = conn.prepare(&format!(
            "SELECT {FIGURE_COLUMNS} FROM machines m JOIN schools s ON s.id = m.school_id
             LEFT JOIN audit_facts f ON f.machine_id = m.id
             WHERE {where_sql} AND m.enrolled_at <= {end}"
        ))?;
        let mut rows = stmt.query(params_from_iter(params.iter()))?;
        while let Some(r) = rows.next()? {
            let Some(&at) = index.get(&r.get::<_, i64>(0)?) else {
                continue;
            };
            tally.add(r, filter, life, &mut schools[at].counts)?;
        }
    }
    Ok(tally.finish(schools))
}

/// What one pass over the machines accumulates besides the per-school
/// counters: processor generations and Windows 11 blocker combinations.
#[derive(Default)]
pub(crate) struct Tally {
    /// Generation → (launch year, in-use machines).
    generations: HashMap<String, (Option<i64>, i64)>,
    /// Blockers of ineligible in-use machines → machines.
    combos: HashMap<[bool; 5], i64>,
}

impl Tally {
    /// Counts one row of [`FIGURE_COLUMNS`] into its school's `counts`.
    pub(crate) fn add(
        &mut self,
        r: &impl FigureRow,
        filter: &AuditFilter,
        life: u32,
        counts: &mut [i64],
    ) -> Result<(), StoreError> {
        let Some((ineligible, blockers)) = count(r, filter, life, counts)? else {
            return Ok(());
        };
        let generation = r.text(22)?.unwrap_or_default();
        match self.generations.get_mut(&generation) {
            Some(g) => g.1 += 1,
            None => {
                let year = r.int(23)?;
                self.generations.insert(generation, (year, 1));
            }
        }
        if ineligible {
            *self.combos.entry(blockers).or_default() += 1;
        }
        Ok(())
    }

    /// The figures, sorted for display.
    pub(crate) fn finish(self, schools: Vec<SchoolFigures>) -> AuditFigures {
        let (generations, combos) = (self.generations, self.combos);
        let mut cpu_generations: Vec<(String, Option<i64>, i64)> = generations
            .into_iter()
            .map(|(g, (y, n))| (g, y, n))
            .collect();
        cpu_generations.sort_by(|a, b| (a.1.is_none(), a.1, &a.0).cmp(&(b.1.is_none(), b.1, &b.0)));
        let names = ["tpm", "processeur", "micrologiciel", "memoire", "disque"];
        let mut combinations: Vec<(String, i64)> = combos
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
        AuditFigures {
            schools,
            cpu_generations,
            combinations,
        }
    }
}

pub(crate) const ROW_COLUMNS: &str =
    "m.id, m.hostname, m.status, m.enrolled_at, m.last_seen, s.uai, s.name,
    s.commune, s.departement, s.academie, s.kind, COALESCE(f.profiles, ''), f.computed_by,
    f.readable, f.class, f.chassis, f.vendor, f.model, f.serial, f.cpu_model, f.cpu_generation,
    f.cpu_year, f.bios_year, f.build_year, f.age_basis, f.ram_bytes, f.ram_modules, f.ram_slots,
    f.ram_free_slots, f.ram_replaceable, f.disk_kind, f.disk_bytes, f.smart, f.battery_wear,
    f.has_battery, f.uefi, f.secure_boot, f.tpm, f.win11, f.blocker_tpm, f.blocker_cpu,
    f.blocker_ram, f.blocker_disk, f.blocker_uefi, f.blocker_secure_boot, f.os_name,
    f.os_version, f.windows_oem_licence";

fn row_of(r: &Row<'_>) -> rusqlite::Result<AuditMachineRow> {
    let computed: Option<String> = r.get(12)?;
    let facts = match computed.filter(|c| !c.is_empty()) {
        None => None,
        Some(_) => Some(AuditFacts {
            readable: r.get(13)?,
            class: r.get(14)?,
            chassis: r.get(15)?,
            vendor: r.get(16)?,
            model: r.get(17)?,
            serial: r.get(18)?,
            cpu_model: r.get(19)?,
            cpu_generation: r.get(20)?,
            cpu_year: r.get(21)?,
            bios_year: r.get(22)?,
            build_year: r.get(23)?,
            age_basis: r.get(24)?,
            ram_bytes: r.get(25)?,
            ram_modules: r.get(26)?,
            ram_slots: r.get(27)?,
            ram_free_slots: r.get(28)?,
            ram_replaceable: r.get(29)?,
            disk_kind: r.get(30)?,
            disk_bytes: r.get(31)?,
            smart: r.get(32)?,
            battery_wear: r.get(33)?,
            has_battery: r.get(34)?,
            uefi: r.get(35)?,
            secure_boot: r.get(36)?,
            tpm: r.get(37)?,
            win11: r.get(38)?,
            blocker_tpm: r.get(39)?,
            blocker_cpu: r.get(40)?,
            blocker_ram: r.get(41)?,
            blocker_disk: r.get(42)?,
            blocker_uefi: r.get(43)?,
            blocker_secure_boot: r.get(44)?,
            os_name: r.get(45)?,
            os_version: r.get(46)?,
            windows_oem_licence: r.get(47)?,
        }),
    };
    Ok(AuditMachineRow {
        id: r.get(0)?,
        hostname: r.get(1)?,
        status: r.get(2)?,
        enrolled_at: r.get(3)?,
        last_seen: r.get(4)?,
        uai: r.get(5)?,
        school_name: r.get(6)?,
        commune: r.get(7)?,
        departement: r.get(8)?,
        academie: r.get(9)?,
        school_kind: r.get(10)?,
        profiles: r.get(11)?,
        facts,
    })
}

impl AuditStore for SqliteStore {
    fn audit_figures<'a>(
        &'a self,
        scope: &'a Scope,
        filter: &'a AuditFilter,
        standard_life_years: u32,
    ) -> StoreFuture<'a, AuditFigures> {
        let (scope, filter) = (scope.clone(), filter.clone());
        Box::pin(self.read(move |conn| figures(conn, &scope, &filter, standard_life_years)))
    }

    fn audit_machines<'a>(
        &'a self,
        scope: &'a Scope,
        filter: &'a AuditFilter,
        after: Option<String>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<AuditMachineRow>> {
        let (where_sql, mut params) = territory(scope, filter);
        let end = filter.to;
        params.push(Value::Text(after.unwrap_or_default()));
        params.push(Value::Integer(i64::from(limit)));
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {ROW_COLUMNS} FROM machines m JOIN schools s ON s.id = m.school_id
                 LEFT JOIN audit_facts f ON f.machine_id = m.id
                 WHERE {where_sql} AND m.enrolled_at <= {end} AND m.id > ?
                 ORDER BY m.id LIMIT ?"
            ))?;
            let rows = stmt
                .query_map(params_from_iter(params.iter()), row_of)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        }))
    }

    fn audit_machine<'a>(
        &'a self,
        scope: &'a Scope,
        id: &'a str,
    ) -> StoreFuture<'a, Option<AuditMachineRow>> {
        let (where_sql, params) = scope.sql();
        let mut params: Vec<Value> = params.into_iter().map(Value::Text).collect();
        params.push(Value::Text(id.to_owned()));
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {ROW_COLUMNS} FROM machines m JOIN schools s ON s.id = m.school_id
                 LEFT JOIN audit_facts f ON f.machine_id = m.id
                 WHERE {where_sql} AND m.id = ?"
            ))?;
            let mut rows = stmt.query_map(params_from_iter(params.iter()), row_of)?;
            Ok(rows.next().transpose()?)
        }))
    }

    fn audit_facts_stale<'a>(
        &'a self,
        version: &'a str,
        limit: u32,
    ) -> StoreFuture<'a, Vec<String>> {
        let version = version.to_owned();
        Box::pin(self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT m.id FROM machines m LEFT JOIN audit_facts f ON f.machine_id = m.id
                 WHERE f.machine_id IS NULL OR f.computed_by <> ?1 ORDER BY m.id LIMIT ?2",
            )?;
            let ids = stmt
                .query_map(params![version, i64::from(limit)], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        }))
    }

    fn record_audit_facts(
        &self,
        version: String,
        batch: Vec<(String, AuditFacts)>,
    ) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            for (id, f) in &batch {
                // The machine may have been checked in meanwhile: facts
                // already computed by this version are newer, keep them.
                let current: Option<String> = conn
                    .prepare_cached("SELECT computed_by FROM audit_facts WHERE machine_id = ?1")?
                    .query_row([id], |r| r.get(0))
                    .ok();
                if current.as_deref() == Some(version.as_str()) {
                    continue;
                }
                upsert(conn, id, &version, f)?;
                // Profiles of machines that have not checked in since.
                let applied: Option<String> = conn
                    .prepare_cached("SELECT applied FROM machines WHERE id = ?1")?
                    .query_row([id], |r| r.get(0))
                    .ok();
                let applied: Vec<ProfileRef> = applied
                    .and_then(|a| serde_json::from_str(&a).ok())
                    .unwrap_or_default();
                record(conn, id, None, &applied)?;
            }
            Ok(())
        }))
    }
}
