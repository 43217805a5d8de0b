//! PostgreSQL side of inventory storage: the same layout as SQLite's
//! (`store/sqlite/inventory.rs`, which documents it): package lists stored
//! once, content-addressed and compressed; history rows compressed into
//! `packed` in the transaction that inserts them. The splitting and
//! compression are SQLite's own functions; only the statements differ.

use deadpool_postgres::GenericClient;
use nird_proto::hash::CanonicalObject;

use super::{exec, row};
use crate::store::StoreError;
use crate::store::sqlite::inventory::{
    Split, join, pack_list, pack_row, row_text, software_reference, split, unpack_list,
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

/// Points the machine at list `hash`, storing the list if it is new and
/// deleting the list it had if no machine has it any more.
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
    // Two machines may bring the same new list at once: the second insert
    // finds the row and does nothing.
    let body = pack_list(list.as_bytes());
    exec(
        c,
        "INSERT INTO software_lists (hash, body) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&hash, &body],
    )
    .await?;
    exec(
        c,
        "INSERT INTO machine_software (machine_id, hash) VALUES ($1, $2)
         ON CONFLICT (machine_id) DO UPDATE SET hash = excluded.hash",
        &[&machine_id, &hash],
    )
    .await?;
    if let Some(old) = old {
        exec(
            c,
            "DELETE FROM software_lists WHERE hash = $1
             AND NOT EXISTS (SELECT 1 FROM machine_software WHERE hash = $1)",
            &[&old],
        )
        .await?;
    }
    Ok(())
}

/// A machine's latest inventory, the exact canonical text the agent sent.
pub async fn latest<C: GenericClient>(
    c: &C,
    machine_id: &str,
) -> Result<Option<String>, StoreError> {
    let Some(r) = row(
        c,
        "SELECT inventory, packed FROM inventory_history WHERE machine_id = $1
         ORDER BY id DESC LIMIT 1",
        &[&machine_id],
    )
    .await?
    else {
        return Ok(None);
    };
    let core = row_text(r.try_get(0)?, r.try_get(1)?)?;
    let Some(hash) = software_reference(&core)? else {
        return Ok(Some(core));
    };
    let body: Vec<u8> = row(
        c,
        "SELECT body FROM software_lists WHERE hash = $1",
        &[&hash],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()?
    .ok_or_else(|| StoreError::Backend(format!("software list {hash} missing")))?;
    Ok(Some(join(&core, &unpack_list(&body)?)?))
}
