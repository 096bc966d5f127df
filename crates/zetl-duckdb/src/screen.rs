//! Rows the target table would reject, found before they are applied. DuckDB has no savepoints
//! and a failed statement aborts the whole transaction, so a bad row cannot be tried and undone
//! as on PostgreSQL. Instead each staged batch is checked against the table as it is now — a
//! column type the user narrowed, a NOT NULL the user added, a staged text (interval, array)
//! that must still parse — and the rows that would fail are reported (`on_error: fail`) or moved
//! to `_zetl.dead_letters` (`dead_letter`), the rest going on as usual.
//!
//! A narrowed column rejects more than what does not convert: DuckDB's casts round
//! (`CAST(123.456 AS DECIMAL(5,1))` is 123.5, a DOUBLE cast to REAL loses digits, a TIMESTAMP
//! cast to TIMESTAMP_S loses its fraction) without an error. Where the table's type differs
//! from the staged one, a value whose cast to the table's type and back is not the value it was
//! is rejected too, so the target never holds a value the source does not have.

use crate::checks::Check;
use crate::error::{Context, DuckdbError};
use crate::stage::{Stage, REMOVES};
use crate::types::{ident, literal, try_from_wire};
use duckdb::Connection;
use zetl_core::apply::OnError;
use zetl_core::TableSchema;

/// What the checks of a stage rejected: (row id in the stage, key, what is wrong).
struct Rejected {
    row: i64,
    key: String,
    problem: String,
}

/// Who is applying, and what a rejected row does.
pub struct Guard<'a> {
    pub integration: &'a str,
    pub on_error: OnError,
    /// The table has dead letters still to replay: the keys a batch changes supersede them.
    pub letters_pending: bool,
}

/// Checks the staged upserts; returns how many went to dead letters (`fail`: the first
/// rejected row is the error).
pub fn screen(conn: &Connection, stage: &Stage, guard: &Guard) -> Result<u64, DuckdbError> {
    if stage.checks.is_empty() {
        return Ok(0);
    }
    let rejected = find(conn, stage)?;
    if let (Some(first), OnError::Fail) = (rejected.first(), guard.on_error) {
        return Err(DuckdbError::Rejected {
            integration: guard.integration.to_string(),
            table: stage.schema.id.to_string(),
            key: first.key.clone(),
            problem: first.problem.clone(),
        });
    }
    for r in &rejected {
        keep(conn, stage, guard.integration, r)?;
        tracing::warn!(table = %stage.schema.id, key = %r.key, error = %r.problem, "change rejected by the target; kept in _zetl.dead_letters");
    }
    if !rejected.is_empty() {
        let rows: Vec<String> = rejected.iter().map(|r| r.row.to_string()).collect();
        conn.execute_batch(&format!("DELETE FROM {} WHERE rowid IN ({})", stage.sql_name(), rows.join(", ")))
            .context(|| format!("setting rejected rows of {} aside", stage.schema.id))?;
    }
    Ok(rejected.len() as u64)
}

fn find(conn: &Connection, stage: &Stage) -> Result<Vec<Rejected>, DuckdbError> {
    let schema = &stage.schema;
    let (mut conds, mut problems) = (Vec::new(), Vec::new());
    for check in &stage.checks {
        for (cond, problem) in conditions(schema, check) {
            problems.push(format!("WHEN {cond} THEN {problem}"));
            conds.push(cond);
        }
    }
    let sql = format!(
        "SELECT s.rowid, {key}, CASE {} END FROM {} AS s WHERE NOT {REMOVES} AND ({}) ORDER BY s.rowid",
        problems.join(" "),
        stage.sql_name(),
        conds.join(" OR "),
        key = key_sql(schema),
    );
    let mut stmt = conn.prepare(&sql).context(|| format!("checking staged rows of {}", schema.id))?;
    let rows = stmt
        .query_map([], |r| Ok(Rejected { row: r.get(0)?, key: r.get(1)?, problem: r.get(2)? }))
        .context(|| format!("checking staged rows of {}", schema.id))?;
    rows.collect::<Result<Vec<_>, _>>().context(|| format!("checking staged rows of {}", schema.id))
}

/// The SQL conditions under which a staged row (alias `s`) fails `check`, each with the SQL of
/// the message saying why (naming the column and the value).
fn conditions(schema: &TableSchema, check: &Check) -> Vec<(String, String)> {
    match check {
        Check::Converts { column, to, exactly } => {
            let c = &schema.columns[*column];
            let n = format!("s.{}", ident(&c.name));
            let value = try_from_wire(&c.ty, &n);
            let shown = |e: &str| format!("left(CAST({e} AS VARCHAR), 64)");
            let why = format!(" cannot be stored in column {} ({to})", c.name);
            let mut out = vec![(
                format!("({n} IS NOT NULL AND TRY_CAST({value} AS {to}) IS NULL)"),
                format!("'value ' || {} || {}", shown(&n), literal(&why)),
            )];
            if *exactly {
                // Cast to the table's type and back to the staged one: a value that does not
                // come back as it was would be stored changed.
                let staged = crate::types::target_type(&c.ty);
                let stored = format!("TRY_CAST({value} AS {to})");
                let why = format!(" cannot be stored exactly in column {} ({to}): it would become ", c.name);
                out.push((
                    format!("({n} IS NOT NULL AND TRY_CAST({stored} AS {staged}) IS DISTINCT FROM {value})"),
                    format!("'value ' || {} || {} || {}", shown(&n), literal(&why), shown(&stored)),
                ));
            }
            out
        }
        Check::NotNull { column } => {
            let c = &schema.columns[*column];
            let why = format!("NULL in column {}, which is NOT NULL at the target", c.name);
            vec![(format!("s.{} IS NULL", ident(&c.name)), literal(&why))]
        }
    }
}

/// `(id=42)` for a staged row (alias `s`), as `TableSchema::describe_key` writes it.
pub fn key_sql(schema: &TableSchema) -> String {
    schema.describe_key_sql(|name| format!("left(CAST(s.{} AS VARCHAR), 64)", ident(name)))
}

/// Copies a staged row into `_zetl.dead_letters`: every column as DuckDB text, under its name.
fn keep(conn: &Connection, stage: &Stage, integration: &str, r: &Rejected) -> Result<(), DuckdbError> {
    let schema = &stage.schema;
    let fields: Vec<String> =
        schema.columns.iter().map(|c| format!("{}, CAST(s.{} AS VARCHAR)", literal(&c.name), ident(&c.name))).collect();
    let keys: Vec<String> = schema.key_columns().iter().map(|&k| literal(&schema.columns[k].name)).collect();
    // The type each value had, for a replay into a column that is still narrower.
    let types: Vec<String> = schema
        .columns
        .iter()
        .filter(|c| !crate::types::staged_as_text(&c.ty))
        .map(|c| format!("{}, {}", literal(&c.name), literal(&crate::types::target_type(&c.ty))))
        .collect();
    conn.execute(
        &format!(
            "INSERT INTO _zetl.dead_letters (integration, table_schema, table_name, key, key_columns, op, row_data, \
             column_types, error) \
             SELECT ?, ?, ?, ?, CAST([{}] AS VARCHAR[]), 'upsert', json_object({}), json_object({}), ? \
             FROM {} AS s WHERE s.rowid = ?",
            keys.join(", "),
            fields.join(", "),
            types.join(", "),
            stage.sql_name()
        ),
        duckdb::params![integration, schema.id.schema, schema.id.name, r.key, r.problem, r.row],
    )
    .context(|| format!("keeping a dead letter of {}", schema.id))?;
    Ok(())
}
