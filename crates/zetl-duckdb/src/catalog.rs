//! What the target database holds now, read from DuckDB's own catalog: the modules that
//! create tables, stage batches and screen rows all ask it, and it asks none of them.

use crate::error::{Context, DuckdbError};
use duckdb::{params, Connection};
use zetl_core::TableId;

/// A table column as the target has it now.
pub struct TableColumn {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

/// The columns of `table` in the database `database` (SQL: `current_database()`, `'temp'`),
/// in order; empty when there is no such table.
pub fn table_columns(conn: &Connection, database: &str, table: &TableId) -> Result<Vec<TableColumn>, DuckdbError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT column_name, data_type, is_nullable FROM duckdb_columns() \
             WHERE database_name = {database} AND schema_name = ? AND table_name = ? ORDER BY column_index"
        ))
        .context(|| format!("reading the columns of {table}"))?;
    let cols = stmt
        .query_map(params![table.schema, table.name], |r| {
            Ok(TableColumn { name: r.get(0)?, data_type: r.get(1)?, nullable: r.get(2)? })
        })
        .context(|| format!("reading the columns of {table}"))?
        .collect::<Result<Vec<_>, _>>()
        .context(|| format!("reading the columns of {table}"))?;
    Ok(cols)
}
