//! Moving a staged batch into its table, set-based: per table and batch, at most one fill of
//! unchanged columns per such column, one DELETE of every touched key, one INSERT of the final
//! rows. Target tables carry no key constraint (DuckDB's indexes are costly to maintain and
//! reject a delete and re-insert of one key in one transaction), so "upsert" is delete + insert.

use crate::ddl::qualified;
use crate::dead_letters;
use crate::error::{Context, DuckdbError};
use crate::screen::{screen, Guard};
use crate::stage::{Stage, StagedOp, REMOVES};
use crate::types::{from_wire, ident, to_wire};
use duckdb::{Connection, OptionalExt};
use zetl_core::batch::{net_unkeyed, KeyedOp, TableBatch};
use zetl_core::{ChangeKind, Row, TableSchema};

/// Marks rows deleted in soft-delete mode (their position is set at commit).
const MARK_DELETED: &str = "_zetl_deleted = true, _zetl_synced_at = current_timestamp, _zetl_position = NULL";

/// `soft`: deletes (and a truncate) mark rows instead of removing them. Returns how many
/// changes went to dead letters.
pub fn apply_table(
    conn: &Connection,
    stage: &Stage,
    batch: &TableBatch,
    soft: bool,
    guard: &Guard,
) -> Result<u64, DuckdbError> {
    let schema = &stage.schema;
    let target = qualified(&schema.id);
    if batch.truncate {
        let sql = if soft {
            format!("UPDATE {target} SET {MARK_DELETED} WHERE NOT _zetl_deleted")
        } else {
            format!("DELETE FROM {target}")
        };
        conn.execute_batch(&sql).context(|| format!("truncating {}", schema.id))?;
        if guard.letters_pending {
            dead_letters::supersede_table(conn, guard.integration, &schema.id, dead_letters::TRUNCATED)?;
        }
    }
    if !schema.key_columns().is_empty() {
        apply_keyed(conn, stage, batch, soft, guard)
    } else {
        apply_in_order(conn, stage, &batch.unkeyed, soft, guard)
    }
}

fn apply_keyed(
    conn: &Connection,
    stage: &Stage,
    batch: &TableBatch,
    soft: bool,
    guard: &Guard,
) -> Result<u64, DuckdbError> {
    let schema = &stage.schema;
    let ops = batch.keyed_ops().map(|op| match op {
        KeyedOp::Upsert(row) => (StagedOp::Upsert, row, None),
        KeyedOp::Delete(row) => (StagedOp::Delete, row, None),
        KeyedOp::Expire(row) => (StagedOp::Expire, row, None),
        KeyedOp::Move { row, from } => (StagedOp::Move, row, Some(from)),
    });
    let unchanged = stage.load(conn, ops)?;
    let target = qualified(&schema.id);
    let staged = stage.sql_name();
    // Moves first: their unchanged columns live under the old key, deleted just below.
    let from_match = key_match(schema, |i, _| format!("s._zetl_from_{i}"));
    let key_match = key_match(schema, |_, name| format!("s.{name}"));
    if !unchanged.is_empty() {
        unchanged_without_row(conn, stage, guard, &from_match, &key_match, batch.filling)?;
    }
    for i in &unchanged {
        fill_unchanged(conn, stage, *i, &from_match, StagedOp::Move)?;
        fill_unchanged(conn, stage, *i, &key_match, StagedOp::Upsert)?;
    }
    // A rejected row leaves the stage before anything is deleted: its key keeps its old row.
    let dead = screen(conn, stage, guard)?;
    // What is left in the stage is applied now, after any dead letter of its keys.
    if guard.letters_pending {
        dead_letters::supersede_staged(conn, guard.integration, stage)?;
    }
    let replaced = if soft {
        // Deleted keys keep their row, marked; every other touched key gets its new row.
        conn.execute_batch(&format!(
            "UPDATE {target} AS t SET {MARK_DELETED}, _zetl_expired = (s._zetl_op = {expire}) \
             FROM {staged} AS s WHERE {key_match} AND {REMOVES}",
            expire = StagedOp::Expire,
        ))
        .context(|| format!("marking deleted rows of {}", schema.id))?;
        format!(" AND NOT {REMOVES}")
    } else {
        String::new()
    };
    conn.execute_batch(&format!("DELETE FROM {target} AS t USING {staged} AS s WHERE {key_match}{replaced}"))
        .context(|| format!("deleting changed rows of {}", schema.id))?;
    insert_staged(conn, stage, &format!("AS s WHERE NOT {REMOVES}"))?;
    stage.clear(conn)?;
    Ok(dead)
}

/// `t.k = s.k AND …` over the key columns; `staged(index, quoted name)` names the staged
/// side of each (the new key's columns, or a move's old-key columns).
fn key_match(schema: &TableSchema, staged: impl Fn(usize, &str) -> String) -> String {
    schema
        .key_columns()
        .iter()
        .map(|&i| {
            let c = &schema.columns[i];
            let name = ident(&c.name);
            format!("t.{name} = {}", from_wire(&c.ty, &staged(i, &name)))
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// An update that left columns unchanged (PostgreSQL sends no value for an unchanged TOASTed
/// column) takes them from the row under its key; with no such row at the target they would
/// become NULL without a word. The target already differs from the source there: stop, naming
/// the key and the fix. While the table is `filling` (see `TableBatch::filling`) such rows
/// are dropped instead: the copy has not reached them yet.
fn unchanged_without_row(
    conn: &Connection,
    stage: &Stage,
    guard: &Guard,
    from_match: &str,
    key_match: &str,
    filling: bool,
) -> Result<(), DuckdbError> {
    let schema = &stage.schema;
    let target = qualified(&schema.id);
    let staged = stage.sql_name();
    let without_row = format!(
        "s._zetl_u IS NOT NULL AND ( \
           (s._zetl_op = {mv} AND NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {from_match})) OR \
           (s._zetl_op = {upsert} AND NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {key_match})))",
        mv = StagedOp::Move,
        upsert = StagedOp::Upsert,
    );
    if filling {
        conn.execute_batch(&format!("DELETE FROM {staged} AS s WHERE {without_row}"))
            .context(|| format!("setting aside updates of {} the copy has not reached", schema.id))?;
        return Ok(());
    }
    let key = crate::screen::key_sql(schema);
    let sql = format!("SELECT {key} FROM {staged} AS s WHERE {without_row} LIMIT 1");
    let missing: Option<String> = conn
        .query_row(&sql, [], |r| r.get(0))
        .optional()
        .context(|| format!("looking for the rows of {}'s unchanged columns", schema.id))?;
    match missing {
        None => Ok(()),
        Some(key) => Err(DuckdbError::Rejected {
            integration: guard.integration.to_string(),
            table: schema.id.to_string(),
            key,
            problem: format!(
                "an update left columns unchanged (not sent by the source) but the target has no row under that key to keep them from: the target differs from the source here; run `zetl resync {}`",
                schema.id
            ),
        }),
    }
}

/// Takes column `i` from the target's row for staged rows of `op` that left it unchanged.
fn fill_unchanged(conn: &Connection, stage: &Stage, i: usize, matches: &str, op: StagedOp) -> Result<(), DuckdbError> {
    let schema = &stage.schema;
    let c = &schema.columns[i];
    let n = ident(&c.name);
    conn.execute_batch(&format!(
        "UPDATE {} AS s SET {n} = {} FROM {} AS t WHERE {matches} AND s._zetl_op = {op} AND s._zetl_u LIKE '%,{i},%'",
        stage.sql_name(),
        to_wire(&c.ty, &format!("t.{n}")),
        qualified(&schema.id),
    ))
    .context(|| format!("keeping unchanged column {} of {}", c.name, schema.id))
}

/// Inserts staged rows into the table, converting from the staged form.
fn insert_staged(conn: &Connection, stage: &Stage, filter: &str) -> Result<(), DuckdbError> {
    let schema = &stage.schema;
    let names: Vec<String> = schema.columns.iter().map(|c| ident(&c.name)).collect();
    let exprs: Vec<String> = schema.columns.iter().map(|c| from_wire(&c.ty, &ident(&c.name))).collect();
    conn.execute_batch(&format!(
        "INSERT INTO {} ({}) SELECT {} FROM {} {filter}",
        qualified(&schema.id),
        names.join(", "),
        exprs.join(", "),
        stage.sql_name()
    ))
    .context(|| format!("inserting into {}", schema.id))
}

/// Tables without a key: the batch's net removals (each takes exactly one identical row: a
/// keyless table may hold identical rows) in one statement, then its additions in bulk.
fn apply_in_order(
    conn: &Connection,
    stage: &Stage,
    changes: &[ChangeKind],
    soft: bool,
    guard: &Guard,
) -> Result<u64, DuckdbError> {
    let (removed, mut added) = net_unkeyed(changes);
    remove_rows(conn, stage, &removed, soft)?;
    flush_inserts(conn, stage, &mut added, guard)
}

/// Rows into the table through the stage, screened; returns how many went to dead letters.
pub fn flush_inserts(
    conn: &Connection,
    stage: &Stage,
    rows: &mut Vec<&Row>,
    guard: &Guard,
) -> Result<u64, DuckdbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    stage.load(conn, rows.drain(..).map(|r| (StagedOp::Upsert, r, None)))?;
    let dead = screen(conn, stage, guard)?;
    insert_staged(conn, stage, "")?;
    stage.clear(conn)?;
    Ok(dead)
}

/// Removes one target row identical to each of `rows` (or marks it, `soft`), with one
/// statement: the staged rows are counted by content and matched with as many target rows.
fn remove_rows(conn: &Connection, stage: &Stage, rows: &[&Row], soft: bool) -> Result<(), DuckdbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let schema = &stage.schema;
    stage.load(conn, rows.iter().map(|r| (StagedOp::Delete, *r, None)))?;
    let target = qualified(&schema.id);
    let cols: Vec<String> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} AS c{i}", from_wire(&c.ty, &ident(&c.name))))
        .collect();
    let same: Vec<String> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("t.{} IS NOT DISTINCT FROM w.c{i}", ident(&c.name)))
        .collect();
    let groups: Vec<String> = (0..schema.columns.len()).map(|i| format!("w.c{i}")).collect();
    let live = if soft { " AND NOT t._zetl_deleted" } else { "" };
    let hits = format!(
        "SELECT rid FROM (SELECT t.rowid AS rid, w.cnt, row_number() OVER (PARTITION BY {groups} ORDER BY t.rowid) AS n \
         FROM {target} AS t JOIN (SELECT {cols}, count(*) AS cnt FROM {staged} GROUP BY ALL) AS w ON {same}{live}) \
         WHERE n <= cnt",
        groups = groups.join(", "),
        cols = cols.join(", "),
        staged = stage.sql_name(),
        same = same.join(" AND "),
    );
    let sql = if soft {
        format!("UPDATE {target} SET {MARK_DELETED} WHERE rowid IN ({hits})")
    } else {
        format!("DELETE FROM {target} WHERE rowid IN ({hits})")
    };
    let done = conn.execute(&sql, []).context(|| format!("deleting rows of {}", schema.id))?;
    stage.clear(conn)?;
    if done < rows.len() {
        tracing::warn!(table = %schema.id, missing = rows.len() - done, "rows to delete not found at the target");
    }
    Ok(())
}
