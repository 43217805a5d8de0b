//! PostgreSQL side of [`AuditStore`] and the ingestion hook (see
//! `store/sqlite/audit_facts.rs`, whose SQL and counting this shares: the
//! facts' upsert, the figure columns and [`count`](crate::store::sqlite::audit_facts::count)).

use deadpool_postgres::GenericClient;
use nird_proto::api::ProfileRef;
use tokio_postgres::Row;

use super::{Params, PgStore, dollar, exec, now, query, row, stored_uai};
use crate::audit::facts::{self, AuditFacts};
use crate::store::audit::{
    AuditFigures, AuditFilter, AuditMachineRow, AuditStore, FIGURE_COLUMNS, FigureCounter,
    FigureRow,
};
use crate::store::sqlite::audit_facts::{ROW_COLUMNS, UPSERT_FACTS};
use crate::store::web::Scope;
use crate::store::{SchoolKind, StoreError, StoreFuture};

/// A [`FigureRow`] borrowed from a row of [`FIGURE_COLUMNS`].
fn figure_row(r: &Row) -> Result<FigureRow<'_>, StoreError> {
    let int = |k: usize| -> Result<Option<i64>, StoreError> { Ok(r.try_get(k)?) };
    let text = |k: usize| -> Result<Option<&str>, StoreError> { Ok(r.try_get(k)?) };
    let flag = |k: usize| -> Result<Option<bool>, StoreError> { Ok(int(k)?.map(|v| v != 0)) };
    Ok(FigureRow {
        school_id: r.try_get(0)?,
        status: text(1)?.unwrap_or(""),
        enrolled_at: r.try_get(2)?,
        last_seen: int(3)?,
        class: text(4)?,
        win11: text(5)?,
        blocker_tpm: flag(6)? == Some(true),
        blocker_cpu: flag(7)? == Some(true),
        blocker_uefi: flag(8)? == Some(true),
        blocker_secure_boot: flag(9)? == Some(true),
        blocker_ram: flag(10)? == Some(true),
        blocker_disk: flag(11)? == Some(true),
        windows_oem_licence: flag(12)?,
        build_year: int(13)?,
        ram_bytes: int(14)?,
        ram_free_slots: int(15)?,
        ram_replaceable: flag(16)?,
        disk_kind: text(17)?,
        disk_bytes: int(18)?,
        smart: text(19)?,
        has_battery: flag(20)?,
        battery_wear: int(21)?,
        cpu_generation: text(22)?,
        cpu_year: int(23)?,
        cpu_basis: text(24)?,
        screens: int(25)?,
    })
}

/// The ingestion hook, in the check-in and enrolment transactions: facts
/// from a new inventory, and the applied profiles when they changed.
pub(super) async fn record<C: GenericClient>(
    c: &C,
    machine_id: &str,
    inventory: Option<&str>,
    applied: &[ProfileRef],
) -> Result<(), StoreError> {
    if let Some(text) = inventory {
        upsert(
            c,
            machine_id,
            &crate::audit::facts_version(),
            facts::from_document(text),
        )
        .await?;
    }
    let mut names: Vec<String> = applied
        .iter()
        .map(|p| format!("{} v{}", p.name, p.version))
        .collect();
    names.sort();
    exec(
        c,
        "INSERT INTO audit_facts (machine_id, profiles) VALUES ($1, $2)
         ON CONFLICT (machine_id) DO UPDATE SET profiles = excluded.profiles
         WHERE audit_facts.profiles IS DISTINCT FROM excluded.profiles",
        &[&machine_id, &names.join(", ")],
    )
    .await?;
    Ok(())
}

fn opt_bool(b: Option<bool>) -> Option<i64> {
    b.map(i64::from)
}

/// Writes a machine's facts (its profiles column is left alone).
async fn upsert<C: GenericClient>(
    c: &C,
    machine_id: &str,
    version: &str,
    f: AuditFacts,
) -> Result<(), StoreError> {
    exec(
        c,
        &dollar(UPSERT_FACTS),
        &facts_params(machine_id, version, f).refs(),
    )
    .await?;
    Ok(())
}

/// The parameters of the facts' upsert (`UPSERT_FACTS`), in its order;
/// also the first forty of `nird_enroll`.
pub(super) fn facts_params(machine_id: &str, version: &str, f: AuditFacts) -> Params {
    let mut p = Params::default();
    p.push(machine_id.to_owned());
    p.push(version.to_owned());
    p.push(now());
    p.push(i64::from(f.readable));
    p.push(f.class);
    p.push(f.chassis);
    p.push(f.vendor);
    p.push(f.model);
    p.push(f.serial);
    p.push(f.cpu_model);
    p.push(f.cpu_generation);
    p.push(f.cpu_year);
    p.push(f.bios_year);
    p.push(f.build_year);
    p.push(f.age_basis);
    p.push(f.ram_bytes);
    p.push(f.ram_modules);
    p.push(f.ram_slots);
    p.push(f.ram_free_slots);
    p.push(opt_bool(f.ram_replaceable));
    p.push(f.disk_kind);
    p.push(f.disk_bytes);
    p.push(f.smart);
    p.push(f.battery_wear);
    p.push(opt_bool(f.has_battery));
    p.push(opt_bool(f.uefi));
    p.push(f.secure_boot);
    p.push(f.tpm);
    p.push(f.win11);
    p.push(i64::from(f.blocker_tpm));
    p.push(i64::from(f.blocker_cpu));
    p.push(i64::from(f.blocker_ram));
    p.push(i64::from(f.blocker_disk));
    p.push(i64::from(f.blocker_uefi));
    p.push(i64::from(f.blocker_secure_boot));
    p.push(f.os_name);
    p.push(f.os_version);
    p.push(opt_bool(f.windows_oem_licence));
    p.push(f.cpu_basis);
    p.push(f.screens);
    p
}

/// The scope and the filter's node as one `WHERE` over `schools s`.
fn territory(scope: &Scope, filter: &AuditFilter) -> (String, Params) {
    let (mut sql, mut params) = Params::scope(scope);
    if let Some(node) = &filter.node {
        let (node_sql, node_params) = Scope::Nodes(vec![node.clone()]).sql();
        sql = format!("{sql} AND {node_sql}");
        for p in node_params {
            params.push(p);
        }
    }
    (sql, params)
}

fn kind_of(s: &str) -> Result<SchoolKind, StoreError> {
    SchoolKind::parse(s).ok_or_else(|| StoreError::Backend(format!("unknown kind {s}")))
}

fn flag(r: &Row, i: usize) -> Result<bool, StoreError> {
    Ok(r.try_get::<_, i64>(i)? != 0)
}

fn opt_flag(r: &Row, i: usize) -> Result<Option<bool>, StoreError> {
    Ok(r.try_get::<_, Option<i64>>(i)?.map(|v| v != 0))
}

/// A row of [`ROW_COLUMNS`].
fn row_of(r: &Row) -> Result<AuditMachineRow, StoreError> {
    let computed: Option<String> = r.try_get(12)?;
    let facts = match computed.filter(|c| !c.is_empty()) {
        None => None,
        Some(_) => Some(AuditFacts {
            readable: flag(r, 13)?,
            class: r.try_get(14)?,
            chassis: r.try_get(15)?,
            vendor: r.try_get(16)?,
            model: r.try_get(17)?,
            serial: r.try_get(18)?,
            cpu_model: r.try_get(19)?,
            cpu_generation: r.try_get(20)?,
            cpu_year: r.try_get(21)?,
            bios_year: r.try_get(22)?,
            build_year: r.try_get(23)?,
            age_basis: r.try_get(24)?,
            ram_bytes: r.try_get(25)?,
            ram_modules: r.try_get(26)?,
            ram_slots: r.try_get(27)?,
            ram_free_slots: r.try_get(28)?,
            ram_replaceable: opt_flag(r, 29)?,
            disk_kind: r.try_get(30)?,
            disk_bytes: r.try_get(31)?,
            smart: r.try_get(32)?,
            battery_wear: r.try_get(33)?,
            has_battery: opt_flag(r, 34)?,
            uefi: opt_flag(r, 35)?,
            secure_boot: r.try_get(36)?,
            tpm: r.try_get(37)?,
            win11: r.try_get(38)?,
            blocker_tpm: flag(r, 39)?,
            blocker_cpu: flag(r, 40)?,
            blocker_ram: flag(r, 41)?,
            blocker_disk: flag(r, 42)?,
            blocker_uefi: flag(r, 43)?,
            blocker_secure_boot: flag(r, 44)?,
            os_name: r.try_get(45)?,
            os_version: r.try_get(46)?,
            windows_oem_licence: opt_flag(r, 47)?,
            cpu_basis: r.try_get(48)?,
            screens: r.try_get(49)?,
        }),
    };
    Ok(AuditMachineRow {
        id: r.try_get(0)?,
        hostname: r.try_get(1)?,
        status: r.try_get(2)?,
        enrolled_at: r.try_get(3)?,
        last_seen: r.try_get(4)?,
        uai: r.try_get(5)?,
        school_name: r.try_get(6)?,
        commune: r.try_get(7)?,
        departement: r.try_get(8)?,
        academie: r.try_get(9)?,
        school_kind: r.try_get(10)?,
        profiles: r.try_get(11)?,
        facts,
    })
}

impl AuditStore for PgStore {
    fn audit_figures<'a>(
        &'a self,
        scope: &'a Scope,
        filter: &'a AuditFilter,
        standard_life_years: u32,
    ) -> StoreFuture<'a, AuditFigures> {
        Box::pin(async move {
            let client = self.client().await?;
            let (where_sql, params) = territory(scope, filter);
            let end = filter.to;
            let mut counter = FigureCounter::new(filter, standard_life_years);
            for r in query(
                &client,
                &format!(
                    "SELECT s.id, s.uai, s.name, s.commune, s.departement, s.kind FROM schools s
                     WHERE {where_sql} ORDER BY s.uai"
                ),
                &params,
            )
            .await?
            {
                counter.school(
                    r.try_get(0)?,
                    stored_uai(r.try_get(1)?)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    kind_of(r.try_get(5)?)?,
                );
            }
            for r in query(
                &client,
                &format!(
                    "SELECT {FIGURE_COLUMNS} FROM machines m JOIN schools s ON s.id = m.school_id
                     LEFT JOIN audit_facts f ON f.machine_id = m.id
                     WHERE {where_sql} AND m.enrolled_at <= {end}"
                ),
                &params,
            )
            .await?
            {
                counter.machine(&figure_row(&r)?);
            }
            Ok(counter.finish())
        })
    }

    fn audit_machines<'a>(
        &'a self,
        scope: &'a Scope,
        filter: &'a AuditFilter,
        after: Option<String>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<AuditMachineRow>> {
        Box::pin(async move {
            let client = self.client().await?;
            let (where_sql, mut params) = territory(scope, filter);
            let end = filter.to;
            params.push(after.unwrap_or_default());
            params.push(i64::from(limit));
            query(
                &client,
                &format!(
                    "SELECT {ROW_COLUMNS} FROM machines m JOIN schools s ON s.id = m.school_id
                     LEFT JOIN audit_facts f ON f.machine_id = m.id
                     WHERE {where_sql} AND m.enrolled_at <= {end} AND m.id > ?
                     ORDER BY m.id LIMIT ?"
                ),
                &params,
            )
            .await?
            .iter()
            .map(row_of)
            .collect()
        })
    }

    fn audit_machine<'a>(
        &'a self,
        scope: &'a Scope,
        id: &'a str,
    ) -> StoreFuture<'a, Option<AuditMachineRow>> {
        Box::pin(async move {
            let client = self.client().await?;
            let (where_sql, mut params) = Params::scope(scope);
            params.push(id.to_owned());
            query(
                &client,
                &format!(
                    "SELECT {ROW_COLUMNS} FROM machines m JOIN schools s ON s.id = m.school_id
                     LEFT JOIN audit_facts f ON f.machine_id = m.id
                     WHERE {where_sql} AND m.id = ?"
                ),
                &params,
            )
            .await?
            .first()
            .map(row_of)
            .transpose()
        })
    }

    fn audit_facts_stale<'a>(
        &'a self,
        version: &'a str,
        limit: u32,
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            super::rows(
                &client,
                "SELECT m.id FROM machines m LEFT JOIN audit_facts f ON f.machine_id = m.id
                 WHERE f.machine_id IS NULL OR f.computed_by <> $1 ORDER BY m.id LIMIT $2",
                &[&version, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
        })
    }

    fn record_audit_facts(
        &self,
        version: String,
        batch: Vec<(String, AuditFacts)>,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let _p = self.pending();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            for (id, f) in batch {
                let id = &id;
                // Facts already computed by this version (a check-in
                // meanwhile) are newer: keep them.
                let current: Option<String> = row(
                    &tx,
                    "SELECT computed_by FROM audit_facts WHERE machine_id = $1 FOR UPDATE",
                    &[id],
                )
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
                if current.as_deref() == Some(version.as_str()) {
                    continue;
                }
                upsert(&tx, id, &version, f).await?;
                let applied: Option<String> =
                    row(&tx, "SELECT applied FROM machines WHERE id = $1", &[id])
                        .await?
                        .map(|r| r.try_get(0))
                        .transpose()?;
                let applied: Vec<ProfileRef> = applied
                    .and_then(|a| serde_json::from_str(&a).ok())
                    .unwrap_or_default();
                record(&tx, id, None, &applied).await?;
            }
            self.commit(tx).await
        })
    }
}
