//! PostgreSQL side of inventory storage: the same layout as SQLite's
//! (`store/sqlite/inventory.rs`, which documents it): package lists stored
//! once, content-addressed and compressed (new ones as deltas of a base
//! when that pays); history rows compressed into
//! `packed` in the transaction that inserts them. The splitting and
//! compression are SQLite's own functions; only the statements differ.

use deadpool_postgres::GenericClient;
use nird_proto::hash::CanonicalObject;

use super::{exec, row};
use crate::store::StoreError;
use crate::store::sqlite::inventory::{
    DELTA_BASE, DROP_UNUSED_LIST, LIST_BODY, NewList, Split, join, list_row_text, missing_list,
    pack_list, pack_row, row_text, software_reference, split,
};

/// Records a machine's new inventory within its daily budget (see the
/// SQLite version); returns the document without its package list, what
/// the audit facts read.
pub async fn record<C: GenericClient>(
    c: &C,
    machine_id: &str,
    at: i64,
    hash: &str,
    inventory: &CanonicalObject,
    per_day: u32,
) -> Result<String, StoreError> {
    let Split {
        core,
        software,
        hardware,
    } = split(inventory);
    if let Some((list_hash, list)) = &software {
        set_software(c, machine_id, list_hash, list).await?;
    }
    let day_start = at - at.rem_euclid(86_400);
    let r = row(
        c,
        "SELECT COUNT(*), MAX(id) FROM inventory_history
         WHERE machine_id = $1 AND recorded_at >= $2",
        &[&machine_id, &day_start],
    )
    .await?
    .ok_or_else(|| StoreError::Backend("COUNT answered nothing".into()))?;
    let today: i64 = r.try_get(0)?;
    let newest: Option<i64> = r.try_get(1)?;
    let packed = pack_row(core.as_bytes())?;
    match newest {
        Some(id) if today >= i64::from(per_day.max(1)) => {
            exec(
                c,
                "UPDATE inventory_history SET recorded_at = $2, inventory_hash = $3,
                        inventory = '', packed = $4
                 WHERE id = $1",
                &[&id, &at, &hash, &packed],
            )
            .await?;
        }
        _ => {
            // Compressed from the start: the dashboard's trigger skips a
            // row whose text is empty, its function runs below.
            exec(
                c,
                "INSERT INTO inventory_history (machine_id, recorded_at, inventory_hash, inventory, packed)
                 VALUES ($1, $2, $3, '', $4)",
                &[&machine_id, &at, &hash, &packed],
            )
            .await?;
        }
    }
    // The dashboard's columns, for both kinds of row (the trigger alone
    // missed the day's replaced rows). The text is the server's canonical
    // JSON: cast, not checked.
    exec(
        c,
        "SELECT nird_set_inventory_columns($1, $2::text::jsonb)",
        &[&machine_id, &core],
    )
    .await?;
    Ok(hardware)
}

/// A new machine's first history row and package list, ready for
/// `nird_enroll` (which writes them as [`record`] and `set_software` would
/// for a machine with no history and no list).
pub struct FirstRecord {
    /// The document with its package list replaced by a reference.
    pub core: String,
    /// `core` compressed, as history rows are kept.
    pub packed: Vec<u8>,
    /// The package list's hash, when the document holds one.
    pub list_hash: Option<String>,
    /// The package list compressed, stored once per distinct list.
    pub list: Option<Vec<u8>>,
    /// The document without its package list: what the audit facts read.
    pub hardware: String,
}

impl FirstRecord {
    /// Splits and compresses `inventory`.
    pub fn of(inventory: &CanonicalObject) -> Result<Self, StoreError> {
        let Split {
            core,
            software,
            hardware,
        } = split(inventory);
        let packed = pack_row(core.as_bytes())?;
        let (list_hash, list) = match software {
            Some((hash, list)) => (Some(hash), Some(pack_list(list.as_bytes()))),
            None => (None, None),
        };
        Ok(FirstRecord {
            core,
            packed,
            list_hash,
            list,
            hardware,
        })
    }
}

/// Points the machine at list `hash`, storing the list if it is new (as a
/// delta of the machine's base list when that pays) and deleting the list
/// it had if no machine has it any more and no list is a delta of it.
async fn set_software<C: GenericClient>(
    c: &C,
    machine_id: &str,
    hash: &str,
    list: &str,
) -> Result<(), StoreError> {
    let old: Option<String> = row(
        c,
        "SELECT hash FROM machine_software WHERE machine_id = $1",
        &[&machine_id],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()?;
    if old.as_deref() == Some(hash) {
        return Ok(());
    }
    lock_lists(c, hash, old.as_deref()).await?;
    let stored = row(c, "SELECT 1 FROM software_lists WHERE hash = $1", &[&hash])
        .await?
        .is_some();
    if !stored {
        let base = row(c, DELTA_BASE, &[&machine_id])
            .await?
            .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?;
        let new = NewList::of(list, base);
        // Check-ins bringing the same new list wait for each other
        // (`lock_lists`), but an enrolment (`nird_enroll`) may insert it
        // meanwhile: then this insert finds the row and does nothing.
        exec(
            c,
            "INSERT INTO software_lists (hash, body, base) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&hash, &new.body, &new.base],
        )
        .await?;
    }
    exec(
        c,
        "INSERT INTO machine_software (machine_id, hash) VALUES ($1, $2)
         ON CONFLICT (machine_id) DO UPDATE SET hash = excluded.hash",
        &[&machine_id, &hash],
    )
    .await?;
    // The list it had, then that list's base if it was a delta.
    let mut unused = old;
    while let Some(hash) = unused.take() {
        unused = row(c, DROP_UNUSED_LIST, &[&hash])
            .await?
            .map(|r| r.try_get::<_, Option<String>>(0))
            .transpose()?
            .flatten();
    }
    Ok(())
}

/// First key of the advisory locks [`lock_lists`] takes (`nird`): the
/// two-key form, a key space apart from the publications' lock.
const LIST_LOCK: i32 = 0x6e69_7264;

/// Serialises the check-ins that move machines to or from the same lists,
/// until the transaction ends: the list `hash` a machine takes, the list
/// `old` it leaves and `old`'s base (which leaving may delete). Without
/// it, under READ COMMITTED, a check-in could find a list that another
/// one is deleting as unused and point its machine at it (lost when the
/// other commits), and two machines leaving a shared list at once could
/// each see the other still on it and both keep it, for ever. Each
/// statement after the lock sees what the other check-in committed. The
/// locks are taken in one order, so two check-ins crossing (X to Y, Y to
/// X) wait instead of deadlocking; two lists sharing a key only wait for
/// each other.
async fn lock_lists<C: GenericClient>(
    c: &C,
    hash: &str,
    old: Option<&str>,
) -> Result<(), StoreError> {
    // One statement (a round trip per check-in): the keys are the hashes'
    // first 32 bits, locked in ascending order by the sorted subquery.
    row(
        c,
        "SELECT COUNT(pg_advisory_xact_lock($1, k)) FROM (
             SELECT DISTINCT ('x' || left(h, 8))::bit(32)::int4 AS k FROM (
                 SELECT $2::text AS h
                 UNION ALL SELECT $3::text
                 UNION ALL SELECT base FROM software_lists WHERE hash = $3
             ) lists WHERE h IS NOT NULL ORDER BY k
         ) keys",
        &[&LIST_LOCK, &hash, &old],
    )
    .await?;
    Ok(())
}

/// A machine's latest inventory, the exact canonical text the agent sent.
pub async fn latest<C: GenericClient>(
    c: &C,
    machine_id: &str,
) -> Result<Option<String>, StoreError> {
    let Some(core) = latest_core(c, machine_id).await? else {
        return Ok(None);
    };
    let Some(hash) = software_reference(&core)? else {
        return Ok(Some(core));
    };
    let list = list(c, &hash).await?.ok_or_else(|| missing_list(&hash))?;
    Ok(Some(join(&core, &list)?))
}

/// A machine's latest inventory as stored (SQLite's `latest_core`).
pub async fn latest_core<C: GenericClient>(
    c: &C,
    machine_id: &str,
) -> Result<Option<String>, StoreError> {
    let found = row(
        c,
        "SELECT inventory, packed FROM inventory_history WHERE machine_id = $1
         ORDER BY id DESC LIMIT 1",
        &[&machine_id],
    )
    .await?;
    found
        .map(|r| row_text(r.try_get(0)?, r.try_get(1)?))
        .transpose()
}

/// Package list `hash` (SQLite's `list`).
pub async fn list<C: GenericClient>(c: &C, hash: &str) -> Result<Option<String>, StoreError> {
    let Some(r) = row(c, LIST_BODY, &[&hash]).await? else {
        return Ok(None);
    };
    let (body, base_body, base): (Vec<u8>, Option<Vec<u8>>, Option<String>) =
        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
    list_row_text(hash, &body, base_body.as_deref(), base.as_deref()).map(Some)
}
