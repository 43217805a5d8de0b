//! `nird-server db copy`: moves a SQLite deployment to PostgreSQL without
//! losing a row.
//!
//! 1. The source is brought to the current schema (opening it as the
//!    server does), the target is created or migrated, and must be empty.
//! 2. Every table is copied in one PostgreSQL transaction, in foreign-key
//!    order, column for column (the two schemas have the same columns:
//!    `store/pg/migrations.rs`), rows batched into multi-row `INSERT`s.
//!    The triggers that derive rows or columns from other rows (the
//!    dashboard's precomputed columns, the scope rows of older accounts)
//!    are disabled meanwhile: what they derived is copied as it is. The
//!    audit log keeps its rows and ids (its append-only trigger only
//!    refuses changes, inserting is what it allows).
//! 3. Identity sequences continue after the copied ids.
//! 4. Verification, after the commit: for each table, the row count and a
//!    SHA-256 over every row (in primary-key order, byte order for text)
//!    must be the same on both sides.

use std::collections::BTreeSet;

use rusqlite::types::Value;
use sha2::{Digest as _, Sha256};
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::{SqliteStore, Store as _, StoreError};

/// Every table, parents before children.
pub const TABLES: &[&str] = &[
    "schools",
    "enrollment_tokens",
    "machines",
    "inventory_history",
    "profile_releases",
    "blobs",
    "release_blobs",
    "release_includes",
    "school_assignments",
    "machine_overrides",
    "apply_reports",
    "users",
    "user_schools",
    "user_scopes",
    "sessions",
    "login_failures",
    "api_tokens",
    "audit_log",
    "keyrings",
    "catalogue_indexes",
    "index_entries",
    "audit_facts",
    "software_lists",
    "machine_software",
];

/// Tables whose triggers derive data from their rows: disabled during the
/// copy (the derived data is copied too).
const DERIVING: &[&str] = &[
    "inventory_history",
    "apply_reports",
    "users",
    "user_schools",
];

/// What was copied: (table, rows, SHA-256 of its rows).
pub type CopyReport = Vec<(String, u64, String)>;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A column of the target table.
struct Column {
    /// Its name.
    name: String,
    /// `bigint`, `text` or `bytea`.
    kind: String,
}

/// The columns of `table` on PostgreSQL, in order.
async fn columns<C: GenericClient>(client: &C, table: &str) -> Result<Vec<Column>, StoreError> {
    let rows = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1
             ORDER BY ordinal_position",
            &[&table],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Column {
                name: r.try_get(0)?,
                kind: r.try_get(1)?,
            })
        })
        .collect()
}

/// The primary key columns of `table`, in key order.
async fn primary_key<C: GenericClient>(client: &C, table: &str) -> Result<Vec<String>, StoreError> {
    let rows = client
        .query(
            "SELECT a.attname::text FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = $1::text::regclass AND i.indisprimary
             ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&table],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// One SQLite value as a PostgreSQL parameter of column kind `kind`.
fn param(v: Value, kind: &str, at: &str) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
    Ok(match (kind, v) {
        ("bigint", Value::Integer(i)) => Box::new(i),
        ("bigint", Value::Null) => Box::new(None::<i64>),
        ("text", Value::Text(t)) => Box::new(t),
        ("text", Value::Null) => Box::new(None::<String>),
        ("bytea", Value::Blob(b)) => Box::new(b),
        ("bytea", Value::Null) => Box::new(None::<Vec<u8>>),
        (kind, v) => {
            return Err(StoreError::Backend(format!(
                "{at}: valeur {v:?} impossible à copier dans une colonne {kind}"
            )));
        }
    })
}

/// Feeds one value to a row hash: a type tag, then the value (lengths
/// first, so that no two rows hash alike by concatenation).
fn hash_value(h: &mut Sha256, v: &Value) {
    match v {
        Value::Null => h.update([0]),
        Value::Integer(i) => {
            h.update([1]);
            h.update(i.to_be_bytes());
        }
        Value::Text(t) => {
            h.update([2]);
            h.update((t.len() as u64).to_be_bytes());
            h.update(t.as_bytes());
        }
        Value::Blob(b) => {
            h.update([3]);
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
        Value::Real(r) => {
            h.update([4]);
            h.update(r.to_be_bytes());
        }
    }
}

/// Reads a PostgreSQL value as the SQLite value it was copied from.
fn pg_value(row: &tokio_postgres::Row, i: usize, kind: &str) -> Result<Value, StoreError> {
    Ok(match kind {
        "bigint" => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(Value::Null, Value::Integer),
        "text" => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::Text),
        "bytea" => row
            .try_get::<_, Option<Vec<u8>>>(i)?
            .map_or(Value::Null, Value::Blob),
        other => return Err(backend(format!("column type {other} not handled"))),
    })
}

/// `ORDER BY` of a table's primary key; text compared byte by byte on
/// PostgreSQL as SQLite does.
fn order_by(pk: &[String], columns: &[Column], postgres: bool) -> String {
    pk.iter()
        .map(|k| {
            let text = columns.iter().any(|c| &c.name == k && c.kind == "text");
            if postgres && text {
                format!("{k} COLLATE \"C\"")
            } else {
                k.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Copies the SQLite database at `from` into the empty PostgreSQL
/// database at `to`, then verifies it.
pub async fn copy(from: &std::path::Path, to: &str) -> Result<CopyReport, StoreError> {
    if !from.is_file() {
        return Err(StoreError::NotFound(format!(
            "la base SQLite {}",
            from.display()
        )));
    }
    // The source at the current schema (a no-op when it already is).
    SqliteStore::open(from)?.close().await?;
    // The target: created or migrated by the store itself.
    super::PgStore::connect_with(to, 1).await?.close().await?;
    let config: tokio_postgres::Config = to.parse().map_err(backend)?;
    let (mut client, connection) = config.connect(tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    let result = copy_into(from, &mut client).await;
    drop(client);
    let _ = connection.await;
    result
}

async fn copy_into(
    from: &std::path::Path,
    client: &mut tokio_postgres::Client,
) -> Result<CopyReport, StoreError> {
    let source = rusqlite::Connection::open_with_flags(
        from,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Every table of the target is one this command knows how to copy
    // (besides the server's bookkeeping: schema version, closure
    // generation).
    let present: BTreeSet<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema()
               AND table_name NOT IN ('schema_version', 'closure_generation')",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let known: BTreeSet<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
    if present != known {
        return Err(backend(format!(
            "tables of the target and of db copy differ: {:?}",
            present.symmetric_difference(&known).collect::<Vec<_>>()
        )));
    }
    for table in TABLES {
        let n: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await?
            .try_get(0)?;
        if n > 0 {
            return Err(StoreError::Conflict(format!(
                "la base cible n'est pas vide (table {table} : {n} lignes) : \
                 db copy ne remplit qu'une base neuve"
            )));
        }
    }
    let tx = client.transaction().await?;
    for table in DERIVING {
        tx.batch_execute(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
            .await?;
    }
    let mut report = Vec::new();
    for table in TABLES {
        let cols = columns(&tx, table).await?;
        let pk = primary_key(&tx, table).await?;
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        let list = names.join(", ");
        let mut stmt = source.prepare(&format!(
            "SELECT {list} FROM {table} ORDER BY {}",
            order_by(&pk, &cols, false)
        ))?;
        let mut rows = stmt.query([])?;
        let per_batch = (60_000 / cols.len()).clamp(1, 1_000);
        let mut batch: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut in_batch = 0usize;
        let mut hash = Sha256::new();
        let mut count = 0u64;
        loop {
            let next = rows.next()?;
            if let Some(r) = next {
                for (i, c) in cols.iter().enumerate() {
                    let v: Value = r.get(i)?;
                    hash_value(&mut hash, &v);
                    batch.push(param(v, &c.kind, &format!("{table}.{}", c.name))?);
                }
                in_batch += 1;
                count += 1;
            }
            if in_batch > 0 && (in_batch == per_batch || next.is_none()) {
                let placeholders: Vec<String> = (0..in_batch)
                    .map(|row| {
                        let cells: Vec<String> = (0..cols.len())
                            .map(|c| format!("${}", row * cols.len() + c + 1))
                            .collect();
                        format!("({})", cells.join(", "))
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO {table} ({list}) OVERRIDING SYSTEM VALUE VALUES {}",
                    placeholders.join(", ")
                );
                let params: Vec<&(dyn ToSql + Sync)> = batch
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                tx.execute(&sql, &params).await?;
                batch.clear();
                in_batch = 0;
            }
            if next.is_none() {
                break;
            }
        }
        if cols.iter().any(|c| c.name == "id" && c.kind == "bigint") && pk == ["id"] {
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                                   COALESCE(MAX(id), 0) + 1, false) FROM {table}"
                ),
                &[],
            )
            .await?;
        }
        report.push(((*table).to_owned(), count, hex::encode(hash.finalize())));
    }
    for table in DERIVING {
        tx.batch_execute(&format!("ALTER TABLE {table} ENABLE TRIGGER USER"))
            .await?;
    }
    tx.commit().await?;
    verify(client, &report).await?;
    Ok(report)
}

/// Counts and hashes every table of the target, as the copy did on the
/// source, reading through a cursor (bounded memory).
async fn verify(
    client: &mut tokio_postgres::Client,
    report: &CopyReport,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    for (table, count, hash) in report {
        let cols = columns(&tx, table).await?;
        let pk = primary_key(&tx, table).await?;
        let list = cols
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        tx.batch_execute(&format!(
            "DECLARE verify NO SCROLL CURSOR FOR SELECT {list} FROM {table} ORDER BY {}",
            order_by(&pk, &cols, true)
        ))
        .await?;
        let mut h = Sha256::new();
        let mut n = 0u64;
        loop {
            let rows = tx.query("FETCH 1000 FROM verify", &[]).await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                for (i, c) in cols.iter().enumerate() {
                    hash_value(&mut h, &pg_value(r, i, &c.kind)?);
                }
            }
            n += rows.len() as u64;
        }
        tx.batch_execute("CLOSE verify").await?;
        let got = hex::encode(h.finalize());
        if n != *count || &got != hash {
            return Err(backend(format!(
                "verification failed for {table}: {count} rows {hash} copied, {n} rows {got} read back"
            )));
        }
    }
    tx.commit().await?;
    Ok(())
}
