//! Inventory storage that stays small (portable SQL: `INSERT ... ON
//! CONFLICT`, no SQLite-only function).
//!
//! The package list is ≈ 95 % of a 2,500-package document and changes
//! weekly; the rest changes rarely. So:
//! - each distinct package list (`software` member) is stored **once**,
//!   content-addressed by the SHA-256 of its canonical JSON and
//!   compressed (LZ4, below), in `software_lists`; `machine_software` says which
//!   list each machine has now. Machines installed from the same image and
//!   upgraded alike share one row;
//! - a new list is stored as a **delta** ([`list_delta`], [`NewList`]) of
//!   the *base* of the list the machine had (that list itself when it is
//!   whole, else the whole list it is a delta of) while the delta stays
//!   under 1/16 of the base's stored size (≈ 40 weekly upgrades): a weekly
//!   20-package upgrade writes ≈ 110 bytes instead of ≈ 53 KB, and costs a
//!   read of the base instead of compressing 245 KB (`cargo bench -p
//!   nird-server --bench list_delta`). A base is always whole (`base`
//!   NULL), so a read costs at most one base and one delta;
//! - a list no machine has and no delta needs is deleted at once (then
//!   the base of a deleted delta, if nothing needs it either);
//! - history rows keep the document with `software` replaced by a reference
//!   `{"part": HASH}` (what the list was, not its content), inserted
//!   deflate-compressed into `packed` (`inventory` empty); the dashboard's
//!   columns are computed from its text by the statement its trigger runs
//!   ([`PRECOMPUTE_INVENTORY`]): ≈ 2 KB a change;
//! - the retention policy prunes history rows as before; lists live as long
//!   as a machine has them.
//!
//! Two codecs, each where it pays:
//! - **package lists: LZ4** (`lz4_flex`, pure Rust): every new whole list
//!   is compressed while the check-in waits, and deflate at its fastest level
//!   cost ≈ 1 ms for a real 2,500-package list (≈ 240 KB of JSON with the
//!   entropy of real names and versions: 200–380 MB/s), LZ4 ≈ 0.3 ms
//!   (750–820 MB/s) for 10–20 % more bytes (ratio 4.2 against 4.6–5.2 on
//!   this machine's own list). Reading a list back (the delta path, every
//!   weekly upgrade) is 3–5× faster too. A stored LZ4 list starts with the
//!   byte [`LZ4_LIST`], which no deflate stream can start with (its block
//!   type would be the reserved 3): lists stored deflated by earlier
//!   versions are read as they are, without a migration;
//! - **history rows: deflate level 6** (one compressor per thread, reset
//!   between rows): a few KB kept for a year, where the ratio matters;
//!   level 9 gave the same bytes (± 0.2 %) for 40 % more time.
//!
//! zstd (not measured here) would bring a C library into the build; the
//! year's database is dominated by one compressed history row per change
//! (≈ 2 KB), so a smarter history (rows as deltas) would gain more than a
//! better codec.
//!
//! [`latest`] rebuilds the exact canonical document the agent sent (its
//! SHA-256 is the stored `inventory_hash`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read as _;

use nird_proto::hash::{CanonicalObject, sha256_hex};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::value::RawValue;

use crate::store::{StoreError, list_delta};

/// The reference that replaces the package list in stored documents.
pub(crate) const PART_PREFIX: &str = r#"{"part":""#;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// First byte of a package list stored LZ4-compressed (followed by
/// `lz4_flex`'s block format with its size prepended). As the first byte
/// of a raw deflate stream, `0xFE` would declare block type 3, which
/// RFC 1951 reserves: no list stored deflated starts with it.
pub const LZ4_LIST: u8 = 0xFE;

/// The largest list [`unpack_list`] accepts: far above any request body
/// the server takes (a stored size beyond it is a damaged row, not a
/// reason to allocate gigabytes).
const MAX_LIST_BYTES: usize = 256 << 20;

/// A package list's text, compressed for `software_lists`.
pub fn pack_list(text: &[u8]) -> Vec<u8> {
    let mut packed = lz4_flex::block::compress_prepend_size(text);
    packed.insert(0, LZ4_LIST);
    packed
}

/// Inverse of [`pack_list`]; a list stored deflated by an earlier version
/// is inflated.
pub fn unpack_list(bytes: &[u8]) -> Result<String, StoreError> {
    match bytes.split_first() {
        Some((&LZ4_LIST, block)) => String::from_utf8(unpack_lz4(block)?).map_err(backend),
        Some((&DELTA_LIST, _)) => Err(backend("package list delta read without its base")),
        _ => inflate(bytes),
    }
}

/// An LZ4 block with its size prepended, bounded by [`MAX_LIST_BYTES`].
fn unpack_lz4(block: &[u8]) -> Result<Vec<u8>, StoreError> {
    let (size, _) = lz4_flex::block::uncompressed_size(block).map_err(backend)?;
    if size > MAX_LIST_BYTES {
        return Err(backend(format!(
            "stored package list claims {size} bytes, more than {MAX_LIST_BYTES}"
        )));
    }
    lz4_flex::block::decompress_size_prepended(block).map_err(backend)
}

/// First byte of a package list stored as a delta of another
/// ([`list_delta`]; the row's `base` names that list): followed by the
/// script, LZ4-compressed. As the first byte of a raw deflate stream,
/// `0xFF` would declare block type 3 too, so no older list starts with it.
pub const DELTA_LIST: u8 = 0xFF;

/// A new list is stored as a delta when the delta takes at most
/// 1/`DELTA_SHARE` of its base's stored bytes; past that it is stored
/// whole and becomes the base of the machine's next lists. The bound is
/// set by time, not space: encoding costs ≈ 0.25 µs per package changed
/// since the base, so at ≈ 800 (3.4 KB of a 54 KB base, ≈ 40 weekly
/// upgrades of 20 packages) it would cost as much as compressing the
/// whole list (BENCHMARKS.md). Reading a list costs at most one base and
/// one delta.
const DELTA_SHARE: usize = 16;

/// How a new package list is stored (`software_lists` row). Public for
/// `server/benches/list_delta.rs`, which times this very decision.
pub struct NewList {
    /// The row's `body`.
    pub body: Vec<u8>,
    /// The row's `base`: the hash of the whole list `body` is a delta of.
    pub base: Option<String>,
}

impl NewList {
    /// `text` stored whole.
    pub fn whole(text: &str) -> Self {
        NewList {
            body: pack_list(text.as_bytes()),
            base: None,
        }
    }

    /// `text` stored as a delta of `base` (its hash and stored body: the
    /// whole list the machine's current list is, or is a delta of) when
    /// that is small enough ([`DELTA_SHARE`]), whole otherwise.
    pub fn of(text: &str, base: Option<(String, Vec<u8>)>) -> Self {
        let Some((hash, stored)) = base else {
            return Self::whole(text);
        };
        let base_text = match unpack_list(&stored) {
            Ok(t) => t,
            Err(e) => {
                // The machine's list reads back as damaged: storing this
                // one whole mends the machine.
                tracing::warn!(base = %hash, error = %e, "package list base unreadable, new list stored whole");
                return Self::whole(text);
            }
        };
        let limit = stored.len() / DELTA_SHARE;
        let Some(script) = list_delta::encode(base_text.as_bytes(), text.as_bytes(), limit * 4)
        else {
            return Self::whole(text);
        };
        // Checked before it is trusted with the list (≈ 20 µs): an
        // encoder bug costs a whole list, never a wrong one.
        if list_delta::apply(base_text.as_bytes(), &script, MAX_LIST_BYTES)
            .ok()
            .as_deref()
            != Some(text.as_bytes())
        {
            tracing::error!(base = %hash, "package list delta does not rebuild its list, stored whole");
            return Self::whole(text);
        }
        let mut body = lz4_flex::block::compress_prepend_size(&script);
        body.insert(0, DELTA_LIST);
        if body.len() > limit {
            return Self::whole(text);
        }
        NewList {
            body,
            base: Some(hash),
        }
    }
}

/// A stored list's text: `body`, with `base` the body of the list its row
/// names as its base (`None` when it names none).
pub(crate) fn list_text(body: &[u8], base: Option<&[u8]>) -> Result<String, StoreError> {
    match (body.split_first(), base) {
        (Some((&DELTA_LIST, block)), Some(base)) => {
            let script = unpack_lz4(block)?;
            let text = list_delta::apply(unpack_list(base)?.as_bytes(), &script, MAX_LIST_BYTES)
                .map_err(backend)?;
            String::from_utf8(text).map_err(backend)
        }
        (_, None) => unpack_list(body),
        (_, Some(_)) => Err(backend("package list row names a base but is not a delta")),
    }
}

/// Reads list `?1` (`$1`): its body, its base's body (NULL when it has no
/// base, or when the base is missing) and its base's hash. A base is
/// always a whole list (`base IS NULL`).
pub(crate) const LIST_BODY: &str = "SELECT l.body, b.body, l.base FROM software_lists l
     LEFT JOIN software_lists b ON b.hash = l.base AND b.base IS NULL
     WHERE l.hash = $1";

/// The text of a row read by [`LIST_BODY`].
pub(crate) fn list_row_text(
    hash: &str,
    body: &[u8],
    base_body: Option<&[u8]>,
    base: Option<&str>,
) -> Result<String, StoreError> {
    match (base, base_body) {
        (Some(base), None) => Err(StoreError::Backend(format!(
            "software list {hash}: its base {base} is missing"
        ))),
        _ => list_text(body, base_body),
    }
}

/// The whole list a new list of machine `?1` (`$1`) is a delta of: its
/// current list, or that list's base. Hash and stored body.
pub(crate) const DELTA_BASE: &str = "SELECT b.hash, b.body FROM machine_software m
     JOIN software_lists l ON l.hash = m.hash
     JOIN software_lists b ON b.hash = COALESCE(l.base, l.hash) AND b.base IS NULL
     WHERE m.machine_id = $1";

/// Deletes list `?1` (`$1`) if no machine has it and no list is a delta of
/// it; answers its base when it was deleted (which may be unused now).
pub(crate) const DROP_UNUSED_LIST: &str = "DELETE FROM software_lists WHERE hash = $1
     AND NOT EXISTS (SELECT 1 FROM machine_software WHERE hash = $1)
     AND NOT EXISTS (SELECT 1 FROM software_lists WHERE base = $1)
     RETURNING base";

/// Deflate (level 6) of a history row. Each thread keeps one compressor
/// and resets it: allocating and zeroing zlib's window and hash tables
/// cost more than compressing a 5 KB row.
pub fn pack_row(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    thread_local! {
        static COMPRESS: RefCell<flate2::Compress> =
            RefCell::new(flate2::Compress::new(flate2::Compression::new(6), false));
    }
    COMPRESS.with_borrow_mut(|c| {
        c.reset();
        let mut out = Vec::with_capacity(bytes.len() / 2 + 64);
        loop {
            let read = usize::try_from(c.total_in()).map_err(backend)?;
            let rest = bytes.get(read..).unwrap_or_default();
            match c
                .compress_vec(rest, &mut out, flate2::FlushCompress::Finish)
                .map_err(backend)?
            {
                flate2::Status::StreamEnd => return Ok(out),
                flate2::Status::Ok | flate2::Status::BufError => {
                    out.reserve(out.capacity().max(1024));
                }
            }
        }
    })
}

/// Inverse of [`pack_row`] (raw deflate, any level).
pub fn inflate(bytes: &[u8]) -> Result<String, StoreError> {
    let mut out = String::with_capacity(bytes.len() * 8);
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_string(&mut out)
        .map_err(backend)?;
    Ok(out)
}

/// A canonical document split into its package list (canonical JSON of the
/// `software` member, when it holds a value), the rest with a reference in
/// its place, and the rest without the member (what the audit reads). The
/// members are kept as raw text: no re-serialisation of 2,500 packages,
/// and the parts of a canonical text are canonical.
pub(crate) struct Split<'t> {
    /// The document with `software` replaced by `{"part": HASH}`.
    pub(crate) core: String,
    /// The document without `software`.
    pub(crate) hardware: String,
    /// The list's hash and text, when the document holds one.
    pub(crate) software: Option<(String, &'t str)>,
}

pub(crate) fn split(document: &CanonicalObject) -> Split<'_> {
    // The members were found by the one scan that checked the text is
    // canonical (or written with the text): no pass over it here. Keys are
    // kept as written in JSON, escapes included.
    let software = document
        .member("software")
        .filter(|v| v.starts_with(r#"{"value":"#))
        .map(|v| (sha256_hex(v.as_bytes()), v));
    let object = |reference: Option<&str>| {
        let size = match &software {
            Some((_, list)) => document.as_str().len() - list.len() + 80,
            None => document.as_str().len(),
        };
        let mut text = String::with_capacity(size);
        text.push('{');
        for (key, value) in document.members() {
            let value = match (key, reference) {
                ("software", Some(r)) => r,
                ("software", None) => continue,
                _ => value,
            };
            if text.len() > 1 {
                text.push(',');
            }
            text.push('"');
            text.push_str(key);
            text.push_str("\":");
            text.push_str(value);
        }
        text.push('}');
        text
    };
    let hardware = object(None);
    let core = match &software {
        Some((hash, _)) => object(Some(&format!(r#"{PART_PREFIX}{hash}"}}"#))),
        None => document.as_str().to_owned(),
    };
    Split {
        core,
        hardware,
        software,
    }
}

/// A package list ready for storage.
enum ListBody {
    /// Not stored yet when prepared: the row to store. A delta keeps the
    /// list's text too: the writer stores it whole if the delta's base was
    /// deleted meanwhile.
    New { list: NewList, text: Option<String> },
    /// Its text: the list was stored already when prepared (machines from
    /// one image share it), so it was not compressed again; the writer
    /// compresses it only if it was deleted meanwhile.
    Stored(String),
}

/// A canonical inventory made ready for storage off the writer thread:
/// splitting, hashing and compressing a 2,500-package document takes
/// milliseconds, and the one writer thread commits every check-in, so it
/// only runs SQL ([`record`]).
pub struct Prepared {
    /// The history row's text (the dashboard's columns are read from it).
    core: String,
    /// `core` compressed, what the row keeps.
    packed: Vec<u8>,
    /// The package list's hash and body, when the document holds one.
    software: Option<(String, ListBody)>,
    /// The document without its package list: the audit facts describe
    /// hardware and are computed from this (a tenth of the text to parse
    /// on the writer thread).
    pub hardware: String,
}

/// Prepares `document`, machine `machine_id`'s new inventory, for
/// [`record`]; `conn` (a read connection) tells whether its package list
/// is stored already, and gives the list a new one is a delta of.
pub fn prepare(
    conn: &Connection,
    machine_id: &str,
    document: &CanonicalObject,
) -> Result<Prepared, StoreError> {
    let Split {
        core,
        hardware,
        software,
    } = split(document);
    let software = match software {
        Some((hash, list)) => {
            let body = if list_stored(conn, &hash)? {
                ListBody::Stored(list.to_owned())
            } else {
                let base = conn
                    .prepare_cached(DELTA_BASE)?
                    .query_row([machine_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let new = NewList::of(list, base);
                let text = new.base.as_ref().map(|_| list.to_owned());
                ListBody::New { list: new, text }
            };
            Some((hash, body))
        }
        None => None,
    };
    Ok(Prepared {
        packed: pack_row(core.as_bytes())?,
        core,
        software,
        hardware,
    })
}

fn list_stored(conn: &Connection, hash: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM software_lists WHERE hash = ?1)")?
        .query_row([hash], |r| r.get(0))?)
}

/// Records a machine's new inventory (`prepared`, whose hash is `hash`):
/// its package list stored once, the history row appended within the daily
/// budget of `per_day` rows (past it the day's newest row is replaced),
/// compressed.
pub fn record(
    conn: &Connection,
    machine_id: &str,
    at: i64,
    hash: &str,
    prepared: &Prepared,
    per_day: u32,
) -> Result<(), StoreError> {
    if let Some((list_hash, body)) = &prepared.software {
        set_software(conn, machine_id, list_hash, body)?;
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
    // Stored compressed right away (rather than when a newer row
    // supersedes it): rows are small while they are placed, so pages fill
    // with history rows instead of holding one each.
    let packed = &prepared.packed;
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
            // Compressed from the start: the dashboard's trigger skips a
            // row whose text is empty, its statement runs below.
            conn.prepare_cached(
                "INSERT INTO inventory_history (machine_id, recorded_at, inventory_hash, inventory, packed)
                 VALUES (?1, ?2, ?3, '', ?4)",
            )?
            .execute(params![machine_id, at, hash, packed])?;
        }
    }
    // The dashboard's columns, from the row's text, for both kinds of row
    // (the trigger alone missed the day's replaced rows).
    conn.prepare_cached(PRECOMPUTE_INVENTORY)?
        .execute(params![machine_id, prepared.core])?;
    Ok(())
}

/// The dashboard's columns of machine `?1` from its inventory text `?2`:
/// the statement of the `machines_precompute_inventory` trigger (migration
/// 5, which fires for rows inserted with their text: enrolment, older
/// servers), `NEW.machine_id` and `NEW.inventory` as parameters. Run by
/// [`record`], which inserts rows compressed: the text is then written
/// once instead of inserted and replaced in the same transaction. A test
/// checks both give the same columns.
pub(crate) const PRECOMPUTE_INVENTORY: &str = "UPDATE machines SET
        serial = COALESCE(json_extract(?2, '$.identity.serial.value'), ''),
        model = TRIM(COALESCE(json_extract(?2, '$.identity.vendor.value'), '')
            || ' ' || COALESCE(json_extract(?2, '$.identity.product.value'), '')),
        win11 = COALESCE(json_extract(?2, '$.windows11.status'), 'unknown'),
        agent_version = COALESCE(json_extract(?2, '$.agent_version'), ''),
        alerts = (alerts & 8)
            | (CASE WHEN EXISTS (SELECT 1 FROM json_each(?2, '$.storage.disks.value') d
                   WHERE json_extract(d.value, '$.smart.value.health') = 'failing') THEN 1 ELSE 0 END)
            | (CASE WHEN EXISTS (SELECT 1 FROM json_each(?2, '$.batteries.value') b
                   WHERE json_extract(b.value, '$.wear_percent.value') > 50) THEN 2 ELSE 0 END)
            | (CASE WHEN EXISTS (SELECT 1 FROM json_each(?2, '$.storage.filesystems.value') f
                   WHERE json_extract(f.value, '$.usage.value.used_percent') > 90) THEN 4 ELSE 0 END)
    WHERE id = ?1 AND json_valid(?2)";

/// Points the machine at list `hash`, storing the list if it is new and
/// deleting the list it had if no machine has it any more.
fn set_software(
    conn: &Connection,
    machine_id: &str,
    hash: &str,
    body: &ListBody,
) -> Result<(), StoreError> {
    let old: Option<String> = conn
        .prepare_cached("SELECT hash FROM machine_software WHERE machine_id = ?1")?
        .query_row([machine_id], |r| r.get(0))
        .optional()?;
    if old.as_deref() == Some(hash) {
        return Ok(());
    }
    if !list_stored(conn, hash)? {
        let whole;
        let list = match body {
            // Its base deleted since it was prepared (another check-in of
            // this machine): stored whole.
            ListBody::New {
                list: NewList {
                    base: Some(base), ..
                },
                text: Some(text),
            } if !conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM software_lists WHERE hash = ?1 AND base IS NULL)",
                )?
                .query_row([base], |r| r.get::<_, bool>(0))? =>
            {
                whole = NewList::whole(text);
                &whole
            }
            ListBody::New { list, .. } => list,
            ListBody::Stored(text) => {
                whole = NewList::whole(text);
                &whole
            }
        };
        conn.prepare_cached("INSERT INTO software_lists (hash, body, base) VALUES (?1, ?2, ?3)")?
            .execute(params![hash, list.body, list.base])?;
    }
    conn.prepare_cached(
        "INSERT INTO machine_software (machine_id, hash) VALUES (?1, ?2)
         ON CONFLICT (machine_id) DO UPDATE SET hash = excluded.hash",
    )?
    .execute(params![machine_id, hash])?;
    if let Some(old) = old {
        // The list it had, then that list's base if it was a delta.
        let mut unused = Some(old);
        while let Some(hash) = unused.take() {
            unused = conn
                .prepare_cached(DROP_UNUSED_LIST)?
                .query_row([hash], |r| r.get::<_, Option<String>>(0))
                .optional()?
                .flatten();
        }
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
    let Some(core) = latest_core(conn, machine_id)? else {
        return Ok(None);
    };
    let Some(hash) = software_reference(&core)? else {
        return Ok(Some(core));
    };
    let list = list(conn, &hash)?.ok_or_else(|| missing_list(&hash))?;
    Ok(Some(join(&core, &list)?))
}

/// A machine's latest inventory as stored: its package list, if it has
/// one, replaced by a reference to it ([`software_reference`]).
pub fn latest_core(conn: &Connection, machine_id: &str) -> Result<Option<String>, StoreError> {
    let row: Option<(String, Option<Vec<u8>>)> = conn
        .prepare_cached(
            "SELECT inventory, packed FROM inventory_history WHERE machine_id = ?1
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row([machine_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(inventory, packed)| row_text(inventory, packed))
        .transpose()
}

/// Package list `hash`: the canonical text of a `software` member.
pub fn list(conn: &Connection, hash: &str) -> Result<Option<String>, StoreError> {
    conn.prepare_cached(LIST_BODY)?
        .query_row([hash], |r| {
            let (body, base_body, base): (Vec<u8>, Option<Vec<u8>>, Option<String>) =
                (r.get(0)?, r.get(1)?, r.get(2)?);
            Ok(list_row_text(
                hash,
                &body,
                base_body.as_deref(),
                base.as_deref(),
            ))
        })
        .optional()?
        .transpose()
}

/// A stored document names a list the database lacks: a damaged database.
pub(crate) fn missing_list(hash: &str) -> StoreError {
    StoreError::Backend(format!("software list {hash} missing"))
}

/// The hash of the package list a stored document refers to, if it does.
pub(crate) fn software_reference(core: &str) -> Result<Option<String>, StoreError> {
    // Owned keys: a key with an escape cannot be borrowed from the text.
    let members: BTreeMap<String, &RawValue> = serde_json::from_str(core).map_err(backend)?;
    Ok(members
        .get("software")
        .and_then(|r| r.get().strip_prefix(PART_PREFIX))
        .and_then(|r| r.strip_suffix("\"}"))
        .map(str::to_owned))
}

/// A stored document with its package list (`list`, canonical JSON) put
/// back in place of the reference: the exact text the agent sent.
pub(crate) fn join(core: &str, list: &str) -> Result<String, StoreError> {
    let mut members: BTreeMap<String, &RawValue> = serde_json::from_str(core).map_err(backend)?;
    let list = RawValue::from_string(list.to_owned()).map_err(backend)?;
    members.insert("software".to_owned(), &list);
    serde_json::to_string(&members).map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list of `n` packages, `upgraded` of them with a new version.
    fn list(n: usize, upgraded: usize) -> String {
        let entries: Vec<String> = (0..n)
            .map(|i| {
                let suffix = if i % 50 == 0 && i / 50 < upgraded {
                    "+deb12u1"
                } else {
                    ""
                };
                format!(
                    r#"{{"arch":"amd64","name":"lib{}-{}","version":"{}.{}-{}{suffix}"}}"#,
                    ["gtk", "kde", "x11"][i % 3],
                    i * 7919 % 10007,
                    i % 13,
                    i % 7,
                    i % 5
                )
            })
            .collect();
        format!(r#"{{"value":{{"packages":[{}]}}}}"#, entries.join(","))
    }

    #[test]
    fn new_lists_are_deltas_of_their_base_when_that_pays() {
        let base = list(2000, 0);
        let stored = pack_list(base.as_bytes());
        let hash = sha256_hex(base.as_bytes());
        // 20 upgrades: a delta, a small fraction of the whole.
        let new = list(2000, 20);
        let delta = NewList::of(&new, Some((hash.clone(), stored.clone())));
        assert_eq!(delta.base.as_deref(), Some(hash.as_str()));
        assert_eq!(delta.body[0], DELTA_LIST);
        assert!(delta.body.len() * 20 < stored.len(), "{}", delta.body.len());
        assert_eq!(list_text(&delta.body, Some(&stored)).unwrap(), new);
        // No base, or too many changes: whole.
        let whole = NewList::of(&new, None);
        assert_eq!((whole.body[0], whole.base), (LZ4_LIST, None));
        let far = list(2000, 40).replace("lib", "autre");
        let whole = NewList::of(&far, Some((hash.clone(), stored.clone())));
        assert_eq!((whole.body[0], &whole.base), (LZ4_LIST, &None));
        assert_eq!(list_text(&whole.body, None).unwrap(), far);
        // An unreadable base: whole, the machine mended.
        let whole = NewList::of(&new, Some((hash.clone(), vec![LZ4_LIST, 1])));
        assert_eq!(whole.base, None);
        // Damaged rows are errors: a delta without its base, a base named
        // by a list that is not a delta, a missing base, a delta as a base,
        // a damaged script.
        assert!(unpack_list(&delta.body).is_err());
        assert!(list_text(&delta.body, None).is_err());
        assert!(list_text(&stored, Some(&stored)).is_err());
        assert!(list_row_text("h", &delta.body, None, Some(&hash)).is_err());
        assert!(list_text(&delta.body, Some(&delta.body)).is_err());
        let mut damaged = delta.body.clone();
        damaged.truncate(damaged.len() - 2);
        assert!(list_text(&damaged, Some(&stored)).is_err());
    }

    #[test]
    fn split_keeps_canonical_parts() {
        let doc = serde_json::json!({
            "a": 1,
            "software": {"value": {"packages": [{"name": "x", "arch": "all"}]}},
            "z": {"b": [1, 2]},
        });
        let serde_json::Value::Object(map) = &doc else {
            unreachable!()
        };
        let document = CanonicalObject::from_map(map).unwrap();
        // The same parts from the scanned text.
        let scanned = CanonicalObject::from_text(document.as_str().to_owned()).unwrap();
        assert_eq!(scanned, document);
        let Split {
            core,
            hardware,
            software,
        } = split(&document);
        let (hash, list) = software.unwrap();
        assert_eq!(
            list,
            r#"{"value":{"packages":[{"arch":"all","name":"x"}]}}"#
        );
        assert_eq!(hash, sha256_hex(list.as_bytes()));
        assert_eq!(
            core,
            format!(r#"{{"a":1,"software":{{"part":"{hash}"}},"z":{{"b":[1,2]}}}}"#)
        );
        assert_eq!(hardware, r#"{"a":1,"z":{"b":[1,2]}}"#);
        // Unavailable or absent software stays inline.
        let document =
            CanonicalObject::from_text(r#"{"software":{"unavailable":"x"}}"#.to_owned()).unwrap();
        let split = split(&document);
        assert!(split.software.is_none());
        assert_eq!(split.core, r#"{"software":{"unavailable":"x"}}"#);
        assert_eq!(split.hardware, "{}");
        // Keys with escapes (parsed, not scanned) are written back escaped.
        let text = r#"{"A\u0019":[],"software":{"value":{"packages":[]}},"z":1}"#;
        assert!(CanonicalObject::from_text(text.to_owned()).is_err());
        let parsed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).unwrap();
        let document = CanonicalObject::from_map(&parsed).unwrap();
        assert_eq!(document.as_str(), text);
        let split = super::split(&document);
        assert_eq!(split.hardware, r#"{"A\u0019":[],"z":1}"#);
        let (hash, list) = split.software.unwrap();
        assert_eq!(list, r#"{"value":{"packages":[]}}"#);
        assert_eq!(
            split.core,
            format!(r#"{{"A\u0019":[],"software":{{"part":"{hash}"}},"z":1}}"#)
        );
    }

    #[test]
    fn lists_and_rows_round_trip_and_old_lists_still_read() {
        let list =
            r#"{"value":{"packages":[{"arch":"all","name":"gcompris-qt","version":"4.0-1"}]}}"#;
        let packed = pack_list(list.as_bytes());
        assert_eq!(packed[0], LZ4_LIST);
        assert_eq!(unpack_list(&packed).unwrap(), list);
        assert_eq!(unpack_list(&pack_list(b"")).unwrap(), "");
        // A list stored deflated by an earlier version.
        let mut old = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(1));
        std::io::Write::write_all(&mut old, list.as_bytes()).unwrap();
        let old = old.finish().unwrap();
        assert_ne!(old[0], LZ4_LIST);
        assert_eq!(unpack_list(&old).unwrap(), list);
        // No deflate stream starts with the tag: it declares the reserved
        // block type.
        assert!(inflate(&[LZ4_LIST, 0, 0, 0]).is_err());
        // Damaged rows are errors, not panics or huge allocations.
        assert!(unpack_list(&[LZ4_LIST]).is_err());
        assert!(unpack_list(&[LZ4_LIST, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2]).is_err());
        let mut truncated = packed.clone();
        truncated.truncate(packed.len() - 3);
        assert!(unpack_list(&truncated).is_err());
        assert!(inflate(&[DELTA_LIST, 0, 0, 0]).is_err());
        // History rows: the compressor is reused, each row stands alone.
        let rows = [
            "abc".repeat(2000),
            String::new(),
            list.to_owned(),
            "abc".repeat(2000),
        ];
        let packed: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| pack_row(r.as_bytes()).unwrap())
            .collect();
        for (row, packed) in rows.iter().zip(&packed) {
            assert_eq!(&inflate(packed).unwrap(), row);
        }
        assert_eq!(packed[0], packed[3]);
        assert!(packed[0].len() < 100);
    }
}
