//! `_zetl.dead_letters` of a DuckDB target: the rows `screen` set aside, listed and applied
//! again once the user fixed the cause. Each letter holds every column as DuckDB text; replay
//! casts them to the table's column types as they are by then.

use crate::ddl::{qualified, table_columns};
use crate::error::{Context, DuckdbError};
use crate::types::{ident, literal};
use duckdb::{params, Connection};
use zetl_core::apply::DeadLetter;
use zetl_core::{Position, TableId};

/// Stamps the open transaction's new dead letters with the position it commits at.
pub fn set_position(conn: &Connection, integration: &str, position: &Position) -> Result<(), DuckdbError> {
    conn.execute(
        "UPDATE _zetl.dead_letters SET position = ? WHERE position IS NULL AND integration = ?",
        params![position.0, integration],
    )
    .context(|| "positioning dead letters".into())?;
    Ok(())
}

pub fn list(conn: &Connection, integration: &str) -> Result<Vec<DeadLetter>, DuckdbError> {
    let mut stmt = conn
        .prepare(
            "SELECT id, table_schema || '.' || table_name, key, op, error, CAST(created_at AS VARCHAR), \
             CAST(replayed_at AS VARCHAR) FROM _zetl.dead_letters WHERE integration = ? ORDER BY id",
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
}

/// Applies every letter not yet replayed (or only `ids`), each in a transaction of its own;
/// returns how many were applied and (id, error) of those that failed again.
pub fn replay(conn: &Connection, integration: &str, ids: &[i64]) -> Result<(u64, Vec<(i64, String)>), DuckdbError> {
    let wanted = if ids.is_empty() {
        String::new()
    } else {
        format!(" AND id IN ({})", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", "))
    };
    let letters: Vec<Letter> = {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT id, table_schema, table_name, CAST(row_data AS VARCHAR) \
                 FROM _zetl.dead_letters WHERE integration = ? AND replayed_at IS NULL{wanted} ORDER BY id"
            ))
            .context(|| "reading _zetl.dead_letters".into())?;
        let rows = stmt
            .query_map(params![integration], |r| {
                Ok(Letter {
                    id: r.get(0)?,
                    table: TableId::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                    data: r.get(3)?,
                })
            })
            .context(|| "reading _zetl.dead_letters".into())?;
        rows.collect::<Result<_, _>>().context(|| "reading _zetl.dead_letters".into())?
    };
    let (mut done, mut failed) = (0, Vec::new());
    for letter in letters {
        match replay_one(conn, &letter) {
            Ok(()) => done += 1,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                failed.push((letter.id, e.to_string()));
            }
        }
    }
    Ok((done, failed))
}

/// Deletes the row under the letter's key (if the table has one), inserts the letter's row.
fn replay_one(conn: &Connection, letter: &Letter) -> Result<(), DuckdbError> {
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
    // The letter's text for `name`, cast to the column's current type (lists travel as JSON).
    let value = |name: &str| -> String {
        let path = literal(&format!("$.\"{}\"", name.replace('"', "\\\"")));
        let text = format!("json_extract_string({data}, {path})");
        match columns.iter().find(|c| c.name == name) {
            Some(c) if c.data_type.ends_with(']') => format!("CAST(CAST({text} AS JSON) AS {})", c.data_type),
            Some(c) => format!("CAST({text} AS {})", c.data_type),
            None => text,
        }
    };
    let target = qualified(table);
    let cols: Vec<&String> = present.iter().filter(|n| columns.iter().any(|c| &c.name == *n)).collect();
    let names: Vec<String> = cols.iter().map(|n| ident(n)).collect();
    let values: Vec<String> = cols.iter().map(|n| value(n)).collect();
    let mut sql = String::from("BEGIN TRANSACTION; ");
    if !keys.is_empty() {
        let cond: Vec<String> = keys.iter().map(|k| format!("{} = {}", ident(k), value(k))).collect();
        sql.push_str(&format!("DELETE FROM {target} WHERE {}; ", cond.join(" AND ")));
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
