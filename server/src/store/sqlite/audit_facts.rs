//! SQLite side of [`AuditStore`] and the ingestion hook: [`record`] runs
//! inside the check-in (and enrolment) transaction, so a machine's audit
//! facts commit with the inventory they come from.
//!
//! The SQL is plain (`ON CONFLICT … DO UPDATE`, scalar `MIN` / `MAX`, which
//! PostgreSQL spells `LEAST` / `GREATEST`), so it ports to a second backend.

use nird_proto::api::ProfileRef;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Row, params, params_from_iter};

use super::{SqliteStore, now};
use crate::audit::facts::{self, AuditFacts};
use crate::store::audit::{
    AuditFigures, AuditFilter, AuditMachineRow, AuditStore, FIGURE_COLUMNS, FigureCounter,
    FigureRow,
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
             blocker_secure_boot, os_name, os_version, windows_oem_licence, cpu_basis, screens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35,
             ?36, ?37, ?38, ?39, ?40)
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
             os_version = excluded.os_version, windows_oem_licence = excluded.windows_oem_licence,
             cpu_basis = excluded.cpu_basis, screens = excluded.screens";

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
        f.cpu_basis,
        f.screens,
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

fn kind_of(s: &str) -> Result<SchoolKind, StoreError> {
    SchoolKind::parse(s).ok_or_else(|| StoreError::Backend(format!("unknown kind {s}")))
}

/// A [`FigureRow`] borrowed from a row of [`FIGURE_COLUMNS`].
fn figure_row<'r>(r: &'r Row<'_>) -> rusqlite::Result<FigureRow<'r>> {
    let text = |k: usize| -> rusqlite::Result<Option<&'r str>> {
        match r.get_ref(k)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map(Some)
                .map_err(rusqlite::Error::Utf8Error),
            other => Err(rusqlite::Error::InvalidColumnType(
                k,
                "text".into(),
                other.data_type(),
            )),
        }
    };
    let flag = |k: usize| -> rusqlite::Result<Option<bool>> {
        Ok(r.get::<_, Option<i64>>(k)?.map(|v| v != 0))
    };
    Ok(FigureRow {
        school_id: r.get(0)?,
        status: text(1)?.unwrap_or(""),
        enrolled_at: r.get(2)?,
        last_seen: r.get(3)?,
        class: text(4)?,
        win11: text(5)?,
        blocker_tpm: flag(6)? == Some(true),
        blocker_cpu: flag(7)? == Some(true),
        blocker_uefi: flag(8)? == Some(true),
        blocker_secure_boot: flag(9)? == Some(true),
        blocker_ram: flag(10)? == Some(true),
        blocker_disk: flag(11)? == Some(true),
        windows_oem_licence: flag(12)?,
        build_year: r.get(13)?,
        ram_bytes: r.get(14)?,
        ram_free_slots: r.get(15)?,
        ram_replaceable: flag(16)?,
        disk_kind: text(17)?,
        disk_bytes: r.get(18)?,
        smart: text(19)?,
        has_battery: flag(20)?,
        battery_wear: r.get(21)?,
        cpu_generation: text(22)?,
        cpu_year: r.get(23)?,
        cpu_basis: text(24)?,
        screens: r.get(25)?,
    })
}

/// The figures: one pass over the territory's machines enrolled by the
/// end of the period, counted by [`FigureCounter`].
fn figures(
    conn: &Connection,
    scope: &Scope,
    filter: &AuditFilter,
    life: u32,
) -> Result<AuditFigures, StoreError> {
    let (where_sql, params) = territory(scope, filter);
    let end = filter.to;
    let mut counter = FigureCounter::new(filter, life);
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT s.id, s.uai, s.name, s.commune, s.departement, s.kind FROM schools s
             WHERE {where_sql} ORDER BY s.uai"
        ))?;
        let mut rows = stmt.query(params_from_iter(params.iter()))?;
        while let Some(r) = rows.next()? {
            counter.school(
                r.get(0)?,
                super::stored_uai(r.get(1)?)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                kind_of(&r.get::<_, String>(5)?)?,
            );
        }
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FIGURE_COLUMNS} FROM machines m JOIN schools s ON s.id = m.school_id
         LEFT JOIN audit_facts f ON f.machine_id = m.id
         WHERE {where_sql} AND m.enrolled_at <= {end}"
    ))?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        counter.machine(&figure_row(r)?);
    }
    Ok(counter.finish())
}

pub(crate) const ROW_COLUMNS: &str =
    "m.id, m.hostname, m.status, m.enrolled_at, m.last_seen, s.uai, s.name,
    s.commune, s.departement, s.academie, s.kind, COALESCE(f.profiles, ''), f.computed_by,
    f.readable, f.class, f.chassis, f.vendor, f.model, f.serial, f.cpu_model, f.cpu_generation,
    f.cpu_year, f.bios_year, f.build_year, f.age_basis, f.ram_bytes, f.ram_modules, f.ram_slots,
    f.ram_free_slots, f.ram_replaceable, f.disk_kind, f.disk_bytes, f.smart, f.battery_wear,
    f.has_battery, f.uefi, f.secure_boot, f.tpm, f.win11, f.blocker_tpm, f.blocker_cpu,
    f.blocker_ram, f.blocker_disk, f.blocker_uefi, f.blocker_secure_boot, f.os_name,
    f.os_version, f.windows_oem_licence, f.cpu_basis, f.screens";

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
            cpu_basis: r.get(48)?,
            screens: r.get(49)?,
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
            let mut stmt = conn.prepare_cached(&format!(
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
            let mut stmt = conn.prepare_cached(&format!(
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
