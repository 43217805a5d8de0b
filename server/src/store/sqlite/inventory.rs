//! Inventory storage that stays small (portable SQL: `INSERT ... ON
//! CONFLICT`, no SQLite-only function).
//!
//! The package list is ≈ 95 % of a 2,500-package document and changes
//! weekly; the rest changes rarely. So:
//! - each distinct package list (`software` member) is stored **once**,
//!   content-addressed by the SHA-256 of its canonical JSON and
//!   deflate-compressed, in `software_lists`; `machine_software` says which
//!   list each machine has now. Machines installed from the same image and
//!   upgraded alike share one row; a list no machine has any more is
//!   deleted at once;
//! - history rows keep the document with `software` replaced by a reference
//!   `{"part": HASH}` (what the list was, not its content): inserted as text
//!   so the dashboard's trigger reads it as before, then, in the same
//!   transaction, deflate-compressed into `packed` (`inventory` becomes
//!   empty): ≈ 2 KB a change;
//! - the retention policy prunes history rows as before; lists live as long
//!   as a machine has them.
//!
//! Deflate (flate2, already in the server's build) rather than zstd: zstd
//! (not measured here) would bring a C library into the build for a gain
//! on texts that deflate already shrinks 4–7:1; the year's database is
//! dominated by one compressed history row per change (≈ 2 KB), so a
//! smarter history (rows as deltas) would gain more than a better codec.
//!
//! [`latest`] rebuilds the exact canonical document the agent sent (its
//! SHA-256 is the stored `inventory_hash`).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};

use nird_proto::hash::sha256_hex;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::value::RawValue;

use crate::store::StoreError;

/// The reference that replaces the package list in stored documents.
pub(crate) const PART_PREFIX: &str = r#"{"part":""#;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Deflate at `level`: 1 for package lists (≈ 1 ms for 2,500 packages on
/// the writer thread, ≈ 7:1), 9 for history rows (a few KB each, kept for
/// a year: every byte counts, the time does not).
pub fn deflate(bytes: &[u8], level: u32) -> Result<Vec<u8>, StoreError> {
    let mut e = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(bytes.len() / 6),
        flate2::Compression::new(level),
    );
    e.write_all(bytes).map_err(backend)?;
    e.finish().map_err(backend)
}

/// Inverse of [`deflate`].
pub fn inflate(bytes: &[u8]) -> Result<String, StoreError> {
    let mut out = String::with_capacity(bytes.len() * 8);
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_string(&mut out)
        .map_err(backend)?;
    Ok(out)
}

/// A canonical document split into its package list (canonical JSON of the
/// `software` member, when it holds a value) and the rest with a reference
/// in its place. The members are kept as raw text: no re-serialisation of
/// 2,500 packages, and the parts of a canonical text are canonical.
pub(crate) fn split(canonical: &str) -> Result<(String, Option<(String, String)>), StoreError> {
    let mut members: BTreeMap<&str, &RawValue> =
        serde_json::from_str(canonical).map_err(backend)?;
    let Some(software) = members.get("software").copied() else {
        return Ok((canonical.to_owned(), None));
    };
    if !software.get().starts_with(r#"{"value":"#) {
        return Ok((canonical.to_owned(), None));
    }
    let hash = sha256_hex(software.get().as_bytes());
    let reference = format!(r#"{PART_PREFIX}{hash}"}}"#);
    let reference = RawValue::from_string(reference).map_err(backend)?;
    members.insert("software", &reference);
    let core = serde_json::to_string(&members).map_err(backend)?;
    Ok((core, Some((hash, software.get().to_owned()))))
}

/// Records a machine's new inventory (canonical text `inventory`, hash
/// `hash`): its package list stored once, the history row appended within
/// the daily budget of `per_day` rows (past it the day's newest row is
/// replaced), compressed.
pub fn record(
    conn: &Connection,
    machine_id: &str,
    at: i64,
    hash: &str,
    inventory: &str,
    per_day: u32,
) -> Result<(), StoreError> {
    let (core, software) = split(inventory)?;
    if let Some((list_hash, list)) = &software {
        set_software(conn, machine_id, list_hash, list)?;
    }
    let day_start = at - at.rem_euclid(86_400);
    // Through the (machine_id, recorded_at) index: at most `per_day` + 1
    // entries are read.
    let (today, newest): (i64, Option<i64>) = conn
        .prepare_cached(
            "SELECT COUNT(*), MAX(id) FROM inventory_history
             WHERE machine_id = ?1 AND recorded_at >= ?2",
        )?
        .query_row(params![machine_id, day_start], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    // Stored compressed right away: the dashboard's trigger has read the
    // text at INSERT time. Compressing the row in the same transaction
    // (rather than when a newer row supersedes it) keeps rows small while
    // they are placed, so pages fill with history rows instead of holding
    // one each.
    let packed = deflate(core.as_bytes(), 9)?;
    match newest {
        Some(id) if today >= i64::from(per_day.max(1)) => {
            conn.prepare_cached(
                "UPDATE inventory_history SET recorded_at = ?2, inventory_hash = ?3,
                        inventory = '', packed = ?4
                 WHERE id = ?1",
            )?
            .execute(params![id, at, hash, packed])?;
        }
        _ => {
            conn.prepare_cached(
                "INSERT INTO inventory_history (machine_id, recorded_at, inventory_hash, inventory)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![machine_id, at, hash, core])?;
            conn.prepare_cached(
                "UPDATE inventory_history SET inventory = '', packed = ?2 WHERE id = ?1",
            )?
            .execute(params![conn.last_insert_rowid(), packed])?;
        }
    }
    Ok(())
}

/// Points the machine at list `hash`, storing the list if it is new and
/// deleting the list it had if no machine has it any more.
fn set_software(
    conn: &Connection,
    machine_id: &str,
    hash: &str,
    list: &str,
) -> Result<(), StoreError> {
    let old: Option<String> = conn
        .prepare_cached("SELECT hash FROM machine_software WHERE machine_id = ?1")?
        .query_row([machine_id], |r| r.get(0))
        .optional()?;
    if old.as_deref() == Some(hash) {
        return Ok(());
    }
    let known: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM software_lists WHERE hash = ?1)")?
        .query_row([hash], |r| r.get(0))?;
    if !known {
        conn.prepare_cached("INSERT INTO software_lists (hash, body) VALUES (?1, ?2)")?
            .execute(params![hash, deflate(list.as_bytes(), 1)?])?;
    }
    conn.prepare_cached(
        "INSERT INTO machine_software (machine_id, hash) VALUES (?1, ?2)
         ON CONFLICT (machine_id) DO UPDATE SET hash = excluded.hash",
    )?
    .execute(params![machine_id, hash])?;
    if let Some(old) = old {
        conn.prepare_cached(
            "DELETE FROM software_lists WHERE hash = ?1
             AND NOT EXISTS (SELECT 1 FROM machine_software WHERE hash = ?1)",
        )?
        .execute([old])?;
    }
    Ok(())
}

/// The text of a history row: `inventory`, or its compressed copy.
pub fn row_text(inventory: String, packed: Option<Vec<u8>>) -> Result<String, StoreError> {
    match packed {
        Some(bytes) => inflate(&bytes),
        None => Ok(inventory),
    }
}

/// A machine's latest inventory, the exact canonical text the agent sent.
pub fn latest(conn: &Connection, machine_id: &str) -> Result<Option<String>, StoreError> {
    let row: Option<(String, Option<Vec<u8>>)> = conn
        .prepare_cached(
            "SELECT inventory, packed FROM inventory_history WHERE machine_id = ?1
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row([machine_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((inventory, packed)) = row else {
        return Ok(None);
    };
    let core = row_text(inventory, packed)?;
    let Some(hash) = software_reference(&core)? else {
        return Ok(Some(core));
    };
    let body: Vec<u8> = conn
        .prepare_cached("SELECT body FROM software_lists WHERE hash = ?1")?
        .query_row([&hash], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Backend(format!("software list {hash} missing")))?;
    Ok(Some(join(&core, &inflate(&body)?)?))
}

/// The hash of the package list a stored document refers to, if it does.
pub(crate) fn software_reference(core: &str) -> Result<Option<String>, StoreError> {
    let members: BTreeMap<&str, &RawValue> = serde_json::from_str(core).map_err(backend)?;
    Ok(members
        .get("software")
        .and_then(|r| r.get().strip_prefix(PART_PREFIX))
        .and_then(|r| r.strip_suffix("\"}"))
        .map(str::to_owned))
}

/// A stored document with its package list (`list`, canonical JSON) put
/// back in place of the reference: the exact text the agent sent.
pub(crate) fn join(core: &str, list: &str) -> Result<String, StoreError> {
    let mut members: BTreeMap<&str, &RawValue> = serde_json::from_str(core).map_err(backend)?;
    let list = RawValue::from_string(list.to_owned()).map_err(backend)?;
    members.insert("software", &list);
    serde_json::to_string(&members).map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_canonical_parts() {
        let doc = serde_json::json!({
            "a": 1,
            "software": {"value": {"packages": [{"name": "x", "arch": "all"}]}},
            "z": {"b": [1, 2]},
        });
        let text = String::from_utf8(nird_proto::hash::canonical_json(&doc).unwrap()).unwrap();
        let (core, part) = split(&text).unwrap();
        let (hash, list) = part.unwrap();
        assert_eq!(
            list,
            r#"{"value":{"packages":[{"arch":"all","name":"x"}]}}"#
        );
        assert_eq!(hash, sha256_hex(list.as_bytes()));
        assert_eq!(
            core,
            format!(r#"{{"a":1,"software":{{"part":"{hash}"}},"z":{{"b":[1,2]}}}}"#)
        );
        // Unavailable or absent software stays inline.
        let (core, part) = split(r#"{"software":{"unavailable":"x"}}"#).unwrap();
        assert!(part.is_none());
        assert_eq!(core, r#"{"software":{"unavailable":"x"}}"#);
        assert_eq!(inflate(&deflate(b"abc", 9).unwrap()).unwrap(), "abc");
    }
}
