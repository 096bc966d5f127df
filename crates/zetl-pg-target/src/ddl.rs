//! Target tables follow the source schema: created from it (with its primary key, which the
//! merge's ON CONFLICT needs), added columns added, dropped columns kept.

use crate::error::{PgTargetError, SqlContext};
use crate::types::{ident, pg_type};
use tokio_postgres::Client;
use zetl_core::TableSchema;

/// Bookkeeping columns of a table in soft-delete mode; `_zetl_position` is set at commit,
/// through a partial index on the rows still without it.
pub const SOFT_COLUMNS: [(&str, &str); 4] = [
    ("_zetl_deleted", "boolean NOT NULL DEFAULT false"),
    ("_zetl_expired", "boolean NOT NULL DEFAULT false"),
    ("_zetl_synced_at", "timestamptz NOT NULL DEFAULT now()"),
    ("_zetl_position", "text"),
];

/// `table`: the quoted, schema-qualified target name. `previous`: the schema the table followed
/// so far in this run; a column whose source type changed since takes the new type (a type the
/// user gave a column at the target is left alone otherwise). Returns the columns added to an
/// existing table.
pub async fn ensure_table(
    c: &Client,
    target_schema: &str,
    table: &str,
    schema: &TableSchema,
    soft: bool,
    previous: Option<&TableSchema>,
) -> Result<Vec<String>, PgTargetError> {
    let mut added = Vec::new();
    c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(target_schema)))
        .await
        .ctx(|| format!("creating schema {target_schema}"))?;
    let existing: Vec<String> = c
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
            &[&table],
        )
        .await
        .ctx(|| format!("reading the columns of {table}"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let id = &schema.id;
    if existing.is_empty() {
        let mut cols: Vec<String> =
            schema.columns.iter().map(|c| format!("{} {}", ident(&c.name), pg_type(&c.ty))).collect();
        let keys: Vec<String> = schema.key_columns().iter().map(|&i| ident(&schema.columns[i].name)).collect();
        if !keys.is_empty() {
            cols.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        }
        if soft {
            cols.extend(SOFT_COLUMNS.iter().map(|(n, ty)| format!("{} {ty}", ident(n))));
        }
        c.batch_execute(&format!("CREATE TABLE {table} ({})", cols.join(", ")))
            .await
            .ctx(|| format!("creating table {table} for {id}"))?;
        tracing::info!(table = %id, target = %table, "created target table");
    } else {
        for col in schema.columns.iter().filter(|c| !existing.contains(&c.name)) {
            c.batch_execute(&format!("ALTER TABLE {table} ADD COLUMN {} {}", ident(&col.name), pg_type(&col.ty)))
                .await
                .ctx(|| format!("adding column {} to {table}", col.name))?;
            tracing::info!(table = %id, column = %col.name, "added column");
            added.push(col.name.clone());
        }
        for col in schema.columns.iter().filter(|c| {
            previous.and_then(|p| p.column_index(&c.name).map(|i| &p.columns[i])).is_some_and(|old| old.ty != c.ty)
        }) {
            retype(c, table, &col.name, &pg_type(&col.ty)).await?;
            tracing::info!(table = %id, column = %col.name, to = %pg_type(&col.ty), "changed column type");
        }
        if follow_key(c, table, schema).await? {
            tracing::info!(table = %schema.id, "primary key follows the source's key");
        }
        for (n, ty) in SOFT_COLUMNS.iter().filter(|(n, _)| soft && !existing.iter().any(|e| e == n)) {
            c.batch_execute(&format!("ALTER TABLE {table} ADD COLUMN {} {ty}", ident(n)))
                .await
                .ctx(|| format!("adding soft-delete column {n} to {table}"))?;
        }
    }
    if soft {
        let index = ident(&format!("{}_zetl_unpositioned", schema.id.name));
        c.batch_execute(&format!("CREATE INDEX IF NOT EXISTS {index} ON {table} ((1)) WHERE _zetl_position IS NULL"))
            .await
            .ctx(|| format!("indexing {table}"))?;
    }
    Ok(added)
}

/// Gives the table the source's key as its primary key: the merge's `ON CONFLICT` names it, so
/// a key the source changed (a new primary key, another replica identity index, a keyless
/// table that gained one) must change here too.
/// Returns whether it changed.
pub async fn follow_key(c: &Client, table: &str, schema: &TableSchema) -> Result<bool, PgTargetError> {
    let wanted: Vec<&str> = schema.key_columns().iter().map(|&i| schema.columns[i].name.as_str()).collect();
    let Key { name, columns: current, .. } = primary_key(c, table).await?;
    if current.iter().map(String::as_str).eq(wanted.iter().copied()) {
        return Ok(false);
    }
    if let Some(name) = name {
        c.batch_execute(&format!("ALTER TABLE {table} DROP CONSTRAINT {}", ident(&name)))
            .await
            .ctx(|| format!("dropping the old primary key of {table}"))?;
    }
    if !wanted.is_empty() {
        let cols: Vec<String> = wanted.iter().map(|n| ident(n)).collect();
        c.batch_execute(&format!("ALTER TABLE {table} ADD PRIMARY KEY ({})", cols.join(", ")))
            .await
            .ctx(|| format!("giving {table} the source's key ({})", wanted.join(", ")))?;
    }
    tracing::debug!(table = %schema.id, from = ?current, to = ?wanted, "primary key changed");
    Ok(true)
}

/// A table's primary key as the catalog has it.
#[derive(Default)]
struct Key {
    name: Option<String>,
    columns: Vec<String>,
    /// Something of the user's depends on it (a foreign key, a view grouping by it).
    depended_on: bool,
}

async fn primary_key(c: &Client, table: &str) -> Result<Key, PgTargetError> {
    let row = c
        .query_opt(
            "SELECT con.conname::text, array_agg(a.attname::text ORDER BY k.ord), \
               EXISTS (SELECT 1 FROM pg_depend d WHERE d.refobjid IN (con.oid, con.conindid) AND d.deptype = 'n') \
             FROM pg_constraint con CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum \
             WHERE con.conrelid = to_regclass($1) AND con.contype = 'p' GROUP BY con.oid, con.conname, con.conindid",
            &[&table],
        )
        .await
        .ctx(|| format!("reading the primary key of {table}"))?;
    Ok(row.map_or_else(Key::default, |r| Key { name: Some(r.get(0)), columns: r.get(1), depended_on: r.get(2) }))
}

/// Drops the primary key of a table a copy is about to fill: one sorted build of the index
/// when the copy is done (`follow_key`) costs the server less than a B-tree insert per row.
/// Kept when something of the user's depends on it. Returns whether it was dropped.
pub async fn drop_key(c: &Client, table: &str) -> Result<bool, PgTargetError> {
    let Key { name: Some(name), depended_on: false, .. } = primary_key(c, table).await? else { return Ok(false) };
    c.batch_execute(&format!("ALTER TABLE {table} DROP CONSTRAINT {}", ident(&name)))
        .await
        .ctx(|| format!("dropping the primary key of {table} while it is copied"))?;
    Ok(true)
}

/// Gives a column a new type, casting its values; where they do not cast, NULL. The source
/// table is copied again after such a change (it rewrote the table), so the NULLs last only
/// until that copy lands.
async fn retype(c: &Client, table: &str, column: &str, ty: &str) -> Result<(), PgTargetError> {
    let col = ident(column);
    c.batch_execute("SAVEPOINT zetl_retype").await.ctx(|| "setting a savepoint".into())?;
    let cast = format!("ALTER TABLE {table} ALTER COLUMN {col} TYPE {ty} USING {col}::text::{ty}");
    if c.batch_execute(&cast).await.is_ok() {
        return c.batch_execute("RELEASE SAVEPOINT zetl_retype").await.ctx(|| "releasing a savepoint".into());
    }
    c.batch_execute("ROLLBACK TO SAVEPOINT zetl_retype").await.ctx(|| "rolling back to a savepoint".into())?;
    c.batch_execute(&format!("ALTER TABLE {table} ALTER COLUMN {col} TYPE {ty} USING NULL"))
        .await
        .ctx(|| format!("changing the type of column {column} of {table} to {ty}"))
}
