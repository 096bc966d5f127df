//! `_zetl.dead_letters` of a DuckDB target: the rows `screen` set aside, listed and applied
//! again once the user fixed the cause. Each letter holds every column as DuckDB text; replay
//! casts them to the table's column types as they are by then.
//!
//! A letter is replayed only while no later change to its key has been applied: a change to
//! the key applied after it (an upsert, a delete, a move from or to it), a truncate or a new
//! copy of its table marks it superseded in the same target transaction, as does the replay of
//! a later letter of the same key. Positions are never compared: the order is the order in
//! which the target applied things.

use crate::catalog::table_columns;
use crate::ddl::qualified;
use crate::error::{Context, DuckdbError};
use crate::stage::Stage;
use crate::types::{ident, literal};
use duckdb::{params, Connection};
use std::collections::HashSet;
use zetl_core::apply::DeadLetter;
use zetl_core::{Position, TableId};

/// Why a letter is superseded, as `dead-letters list` shows it.
pub const LATER_CHANGE: &str = "a later change to this key was applied";
pub const TRUNCATED: &str = "the table was truncated at the source after it";
pub const COPIED: &str = "the table was copied again after it";

/// Stamps the open transaction's new dead letters, and the letters it superseded, with the
/// position it commits at.
pub fn set_position(conn: &Connection, integration: &str, position: &Position) -> Result<(), DuckdbError> {
    conn.execute(
        "UPDATE _zetl.dead_letters SET position = ? WHERE position IS NULL AND integration = ?",
        params![position.0, integration],
    )
    .context(|| "positioning dead letters".into())?;
    conn.execute(
        "UPDATE _zetl.dead_letters SET superseded_position = ? \
         WHERE superseded_at IS NOT NULL AND superseded_position IS NULL AND integration = ?",
        params![position.0, integration],
    )
    .context(|| "positioning superseded dead letters".into())?;
    Ok(())
}

/// The tables that have letters still to replay: only their batches look for letters to
/// supersede.
pub fn pending_tables(conn: &Connection, integration: &str) -> Result<HashSet<TableId>, DuckdbError> {
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT table_schema, table_name FROM _zetl.dead_letters \
             WHERE integration = ? AND replayed_at IS NULL AND superseded_at IS NULL",
        )
        .context(|| "reading _zetl.dead_letters".into())?;
    let rows = stmt
        .query_map(params![integration], |r| Ok(TableId::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .context(|| "reading _zetl.dead_letters".into())?;
    rows.collect::<Result<_, _>>().context(|| "reading _zetl.dead_letters".into())
}

/// `$."name"`, the JSON path of a column in a letter's `row_data`.
fn json_path(name: &str) -> String {
    literal(&format!("$.\"{}\"", name.replace('"', "\\\"")))
}

const PENDING: &str = "d.replayed_at IS NULL AND d.superseded_at IS NULL";

/// Marks superseded the pending letters of the stage's table whose key a staged row (the rows
/// the table is about to get: upserts, deletes, both keys of a move) changes. Letters keep each
/// column as `CAST(staged AS VARCHAR)`, so the staged keys compare as the same text.
pub fn supersede_staged(conn: &Connection, integration: &str, stage: &Stage) -> Result<usize, DuckdbError> {
    let schema = &stage.schema;
    let keys = schema.key_columns();
    if keys.is_empty() {
        return Ok(0);
    }
    let matches = |staged: &dyn Fn(usize, &str) -> String| -> String {
        keys.iter()
            .map(|&k| {
                let name = &schema.columns[k].name;
                format!(
                    "json_extract_string(d.row_data, {}) = CAST({} AS VARCHAR)",
                    json_path(name),
                    staged(k, &ident(name))
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let new_key = matches(&|_, name| format!("s.{name}"));
    let old_key = matches(&|k, _| format!("s._zetl_from_{k}"));
    let sql = format!(
        "UPDATE _zetl.dead_letters AS d SET superseded_at = current_timestamp, superseded_by = {why} \
         WHERE d.integration = ? AND d.table_schema = ? AND d.table_name = ? AND {PENDING} \
         AND EXISTS (SELECT 1 FROM {staged} AS s WHERE ({new_key}) OR (s._zetl_op = {mv} AND {old_key}))",
        why = literal(LATER_CHANGE),
        staged = stage.sql_name(),
        mv = crate::stage::StagedOp::Move,
    );
    conn.execute(&sql, params![integration, schema.id.schema, schema.id.name])
        .context(|| format!("superseding dead letters of {}", schema.id))
}

/// Marks superseded every pending letter of `table` (`why`: truncated, copied again).
pub fn supersede_table(conn: &Connection, integration: &str, table: &TableId, why: &str) -> Result<usize, DuckdbError> {
    conn.execute(
        &format!(
            "UPDATE _zetl.dead_letters AS d SET superseded_at = current_timestamp, superseded_by = ? \
             WHERE d.integration = ? AND d.table_schema = ? AND d.table_name = ? AND {PENDING}"
        ),
        params![why, integration, table.schema, table.name],
    )
    .context(|| format!("superseding dead letters of {table}"))
}

/// The letters of table `from` are `to`'s (a table filled aside replaced `to`).
pub fn move_table(conn: &Connection, integration: &str, from: &TableId, to: &TableId) -> Result<usize, DuckdbError> {
    conn.execute(
        "UPDATE _zetl.dead_letters SET table_schema = ?, table_name = ? \
         WHERE integration = ? AND table_schema = ? AND table_name = ?",
        params![to.schema, to.name, integration, from.schema, from.name],
    )
    .context(|| format!("moving the dead letters of {from} to {to}"))
}

pub fn list(conn: &Connection, integration: &str) -> Result<Vec<DeadLetter>, DuckdbError> {
    let mut stmt = conn
        .prepare(
            "SELECT id, table_schema || '.' || table_name, key, op, error, CAST(created_at AS VARCHAR), \
             CAST(replayed_at AS VARCHAR), CAST(superseded_at AS VARCHAR), \
             superseded_by || coalesce(' (source position ' || superseded_position || ')', '') \
             FROM _zetl.dead_letters WHERE integration = ? ORDER BY id",
        )
        .context(|| "reading _zetl.dead_letters".into())?;
    let rows = stmt
        .query_map(params![integration], |r| {
            Ok(DeadLetter {
                id: r.get(0)?,
                table: r.get(1)?,
                key: r.get(2)?,
                op: r.get(3)?,
                error: r.get(4)?,
                created_at: r.get(5)?,
                replayed_at: r.get(6)?,
                superseded_at: r.get(7)?,
                superseded_by: r.get(8)?,
            })
        })
        .context(|| "reading _zetl.dead_letters".into())?;
    rows.collect::<Result<Vec<_>, _>>().context(|| "reading _zetl.dead_letters".into())
}

/// A letter to replay.
struct Letter {
    id: i64,
    table: TableId,
    data: String,
    types: Option<String>,
    position: Option<String>,
}

/// Applies every letter neither replayed nor superseded (or only `ids`), each in a transaction
/// of its own, oldest first; returns how many were applied and (id, error) of those that failed
/// again.
pub fn replay(conn: &Connection, integration: &str, ids: &[i64]) -> Result<(u64, Vec<(i64, String)>), DuckdbError> {
    let wanted = if ids.is_empty() {
        String::new()
    } else {
        format!(" AND id IN ({})", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", "))
    };
    let letters: Vec<Letter> = {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT id, table_schema, table_name, CAST(row_data AS VARCHAR), CAST(column_types AS VARCHAR), position \
                 FROM _zetl.dead_letters AS d WHERE integration = ? AND {PENDING}{wanted} ORDER BY id"
            ))
            .context(|| "reading _zetl.dead_letters".into())?;
        let rows = stmt
            .query_map(params![integration], |r| {
                Ok(Letter {
                    id: r.get(0)?,
                    table: TableId::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                    data: r.get(3)?,
                    types: r.get(4)?,
                    position: r.get(5)?,
                })
            })
            .context(|| "reading _zetl.dead_letters".into())?;
        rows.collect::<Result<_, _>>().context(|| "reading _zetl.dead_letters".into())?
    };
    let (mut done, mut failed) = (0, Vec::new());
    for letter in letters {
        // A letter superseded by the replay of a later one of its key (listed before this one
        // only when asked for by id) stays as it is.
        let pending: bool = conn
            .query_row(
                &format!("SELECT count(*) > 0 FROM _zetl.dead_letters AS d WHERE id = ? AND {PENDING}"),
                [letter.id],
                |r| r.get(0),
            )
            .context(|| "reading _zetl.dead_letters".into())?;
        if !pending {
            continue;
        }
        match replay_one(conn, integration, &letter) {
            Ok(()) => done += 1,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                failed.push((letter.id, e.to_string()));
            }
        }
    }
    Ok((done, failed))
}

/// Deletes the row under the letter's key (if the table has one), inserts the letter's row,
/// and marks older pending letters of the same key superseded by it.
fn replay_one(conn: &Connection, integration: &str, letter: &Letter) -> Result<(), DuckdbError> {
    let table = &letter.table;
    let what = || format!("replaying dead letter {} into {table}", letter.id);
    let columns = table_columns(conn, "current_database()", table)?;
    if columns.is_empty() {
        return Err(DuckdbError::State(format!("dead letter {}: table {table} no longer exists", letter.id)));
    }
    let strings = |sql: &str, param: &dyn duckdb::ToSql| -> Result<Vec<String>, DuckdbError> {
        let mut stmt = conn.prepare(sql).context(what)?;
        let rows = stmt.query_map([param], |r| r.get(0)).context(what)?;
        rows.collect::<Result<_, _>>().context(what)
    };
    let present = strings("SELECT unnest(json_keys(CAST(? AS JSON)))", &letter.data)?;
    let keys = strings("SELECT unnest(key_columns) FROM _zetl.dead_letters WHERE id = ?", &letter.id)?;
    let data = literal(&letter.data);
    let cols: Vec<&String> = present.iter().filter(|n| columns.iter().any(|c| &c.name == *n)).collect();
    let mut values = Vec::new();
    for name in &cols {
        values.push(replay_value(conn, letter, &data, name, &columns)?);
    }
    let value_of = |name: &str| cols.iter().position(|c| *c == name).map(|i| values[i].clone());
    let target = qualified(table);
    let names: Vec<String> = cols.iter().map(|n| ident(n)).collect();
    let mut sql = String::from("BEGIN TRANSACTION; ");
    if !keys.is_empty() {
        let mut cond = Vec::new();
        let mut same_key = Vec::new();
        for k in &keys {
            let v = value_of(k).ok_or_else(|| {
                DuckdbError::State(format!(
                    "dead letter {}: key column {k} is missing from its row or from {table}",
                    letter.id
                ))
            })?;
            cond.push(format!("{} = {v}", ident(k)));
            same_key.push(format!(
                "json_extract_string(d.row_data, {p}) = json_extract_string({data}, {p})",
                p = json_path(k)
            ));
        }
        sql.push_str(&format!("DELETE FROM {target} WHERE {}; ", cond.join(" AND ")));
        sql.push_str(&format!(
            "UPDATE _zetl.dead_letters AS d SET superseded_at = current_timestamp, superseded_by = {why}, \
             superseded_position = {position} \
             WHERE d.integration = {integration} AND d.table_schema = {schema} AND d.table_name = {name} \
             AND d.id < {id} AND {PENDING} AND {same}; ",
            why = literal(&format!("dead letter {} of the same key was replayed after it", letter.id)),
            position = letter.position.as_deref().map(literal).unwrap_or_else(|| "NULL".into()),
            integration = literal(integration),
            schema = literal(&table.schema),
            name = literal(&table.name),
            id = letter.id,
            same = same_key.join(" AND "),
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO {target} ({}) SELECT {}; \
         UPDATE _zetl.dead_letters SET replayed_at = current_timestamp WHERE id = {}; COMMIT",
        names.join(", "),
        values.join(", "),
        letter.id
    ));
    conn.execute_batch(&sql).context(what)
}

/// SQL for the letter's text of column `name`, cast to the column's current type (lists travel
/// as JSON). Where that type differs from the one the value was staged as, a value the cast
/// would change (rounded, cut) raises an error naming it instead of being stored.
fn replay_value(
    conn: &Connection,
    letter: &Letter,
    data: &str,
    name: &str,
    columns: &[crate::catalog::TableColumn],
) -> Result<String, DuckdbError> {
    let text = format!("json_extract_string({data}, {})", json_path(name));
    let Some(c) = columns.iter().find(|c| c.name == name) else { return Ok(text) };
    if c.data_type.ends_with(']') {
        return Ok(format!("CAST(CAST({text} AS JSON) AS {})", c.data_type));
    }
    let cast = format!("CAST({text} AS {})", c.data_type);
    let staged: Option<String> = match &letter.types {
        None => None,
        Some(types) => conn
            .query_row(
                "SELECT json_extract_string(CAST(? AS JSON), ?)",
                params![types, format!("$.\"{}\"", name.replace('"', "\\\""))],
                |r| r.get(0),
            )
            .context(|| format!("reading the column types of dead letter {}", letter.id))?,
    };
    Ok(match staged {
        Some(from) if from != c.data_type => {
            let original = format!("CAST({text} AS {from})");
            let problem = format!("dead letter {}: value ", letter.id);
            let why = format!(" cannot be stored exactly in column {name} ({}): widen the column first", c.data_type);
            format!(
                "CASE WHEN {text} IS NULL OR CAST({cast} AS {from}) = {original} THEN {cast} \
                 ELSE error({} || {text} || {}) END",
                literal(&problem),
                literal(&why)
            )
        }
        _ => cast,
    })
}
