//! Staging tables: changes reach a table by bulk-appending them into a temporary table of the
//! same shape, then one set-based statement per step moves them (see `merge`). Temporary tables
//! are not written to DuckDB's WAL, so staging costs no disk writes.

use crate::catalog::table_columns;
use crate::checks::{self, Check};
use crate::error::{Context, DuckdbError};
use crate::types::{ident, to_db, wire_type};
use duckdb::types::Value as Db;
use duckdb::Connection;
use std::collections::BTreeSet;
use zetl_core::{Row, TableId, TableSchema, Value};

/// What a staged row does to its key; stored in the staging table's `_zetl_op` column and
/// written into SQL as its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StagedOp {
    Upsert = 0,
    Delete = 1,
    /// An upsert whose unchanged columns come from the row under the old key (`_zetl_from_*`).
    Move = 2,
    /// A delete by the source's time to live.
    Expire = 3,
}

impl std::fmt::Display for StagedOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", *self as u8)
    }
}

/// SQL: the staged row (alias `s`) removes its key.
pub const REMOVES: &str = "s._zetl_op IN (1, 3)";

/// One row to stage: its op, the row, and for a move the row holding the old key.
pub type Staged<'a> = (StagedOp, &'a Row, Option<&'a Row>);

pub struct Stage {
    pub name: String,
    pub schema: TableSchema,
    /// What a staged row must pass before it reaches the table (see `screen`).
    pub checks: Vec<Check>,
}

impl Stage {
    pub fn create(conn: &Connection, schema: &TableSchema, number: usize) -> Result<Stage, DuckdbError> {
        let name = format!("_zetl_stage_{number}");
        let mut cols: Vec<String> =
            schema.columns.iter().map(|c| format!("{} {}", ident(&c.name), wire_type(&c.ty))).collect();
        for &k in schema.key_columns() {
            cols.push(format!("_zetl_from_{k} {}", wire_type(&schema.columns[k].ty)));
        }
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS temp.{n}; CREATE TEMP TABLE {n} ({}, _zetl_op UTINYINT, _zetl_u VARCHAR)",
            cols.join(", "),
            n = ident(&name)
        ))
        .context(|| format!("creating staging table for {}", schema.id))?;
        let staged: Vec<String> =
            table_columns(conn, "'temp'", &TableId::new("main", &name))?.into_iter().map(|c| c.data_type).collect();
        let checks = checks::plan(schema, &staged, &table_columns(conn, "current_database()", &schema.id)?);
        Ok(Stage { name, schema: schema.clone(), checks })
    }

    pub fn sql_name(&self) -> String {
        format!("temp.{}", ident(&self.name))
    }

    /// Appends rows; returns the indexes of columns that some row left unchanged.
    pub fn load<'a>(
        &self,
        conn: &Connection,
        rows: impl Iterator<Item = Staged<'a>>,
    ) -> Result<BTreeSet<usize>, DuckdbError> {
        let mut unchanged = BTreeSet::new();
        let mut appender = conn
            .appender_to_catalog_and_db(&self.name, "temp", "main")
            .context(|| format!("opening the appender for {}", self.schema.id))?;
        let width = self.schema.columns.len();
        let keys = self.schema.key_columns();
        for (op, row, from) in rows {
            let mut values: Vec<Db> = Vec::with_capacity(width + keys.len() + 2);
            let mut mask = String::new();
            for (i, col) in self.schema.columns.iter().enumerate() {
                let v = row.get(i).unwrap_or(&Value::Null);
                if matches!(v, Value::Unchanged) {
                    unchanged.insert(i);
                    mask.push_str(&format!(",{i}"));
                }
                values.push(to_db(v, &col.ty));
            }
            for &k in keys {
                let v = from.and_then(|f| f.get(k)).unwrap_or(&Value::Null);
                values.push(to_db(v, &self.schema.columns[k].ty));
            }
            values.push(Db::UTinyInt(op as u8));
            values.push(if mask.is_empty() { Db::Null } else { Db::Text(format!("{mask},")) });
            appender.append_row(duckdb::appender_params_from_iter(values)).map_err(|e| DuckdbError::Row {
                table: self.schema.id.to_string(),
                key: describe_key(&self.schema, row),
                cause: e.to_string(),
            })?;
        }
        appender.flush().map_err(|e| DuckdbError::Row {
            table: self.schema.id.to_string(),
            key: "(in the last rows appended)".into(),
            cause: e.to_string(),
        })?;
        Ok(unchanged)
    }

    pub fn clear(&self, conn: &Connection) -> Result<(), DuckdbError> {
        conn.execute_batch(&format!("DELETE FROM {}", self.sql_name()))
            .context(|| format!("clearing staging for {}", self.schema.id))
    }
}

/// Copied rows go straight into the table when no column needs converting or checking on the
/// way (saves a second pass through a staging table).
pub fn can_append_directly(stage: &Stage) -> bool {
    stage.checks.is_empty()
}

pub fn append_directly(conn: &Connection, schema: &TableSchema, rows: &[Row]) -> Result<(), DuckdbError> {
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let table = &schema.id;
    let mut appender = conn
        .appender_with_columns_to_db(&table.name, &table.schema, &names)
        .context(|| format!("opening the appender for {table}"))?;
    for row in rows {
        let values = schema.columns.iter().zip(row).map(|(c, v)| to_db(v, &c.ty));
        appender.append_row(duckdb::appender_params_from_iter(values)).map_err(|e| DuckdbError::Row {
            table: table.to_string(),
            key: describe_key(schema, row),
            cause: e.to_string(),
        })?;
    }
    appender.flush().map_err(|e| DuckdbError::Row {
        table: table.to_string(),
        key: "(in the last rows appended)".into(),
        cause: e.to_string(),
    })
}

/// The key of a row for error messages: `(id=42)`, or the first columns of a keyless row.
pub fn describe_key(schema: &TableSchema, row: &Row) -> String {
    schema.describe_key(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_names_the_codes_of_delete_and_expire() {
        assert_eq!(REMOVES, format!("s._zetl_op IN ({}, {})", StagedOp::Delete, StagedOp::Expire));
    }
}
