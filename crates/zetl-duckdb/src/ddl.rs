//! Target tables follow the source schema: created from it, added columns added, dropped
//! columns kept (always nullable: zetl creates no NOT NULL or key constraints, so a column the
//! source dropped simply stays NULL from then on).

use crate::catalog::table_columns;
use crate::error::{Context, DuckdbError};
use crate::types::{ident, literal, target_type};
use duckdb::{params, Connection};
use zetl_core::{TableId, TableSchema};

/// Bookkeeping columns of a table in soft-delete mode. Their defaults fill them for every
/// inserted row; `_zetl_position` is set when the target commits.
pub const SOFT_COLUMNS: [(&str, &str); 4] = [
    ("_zetl_deleted", "BOOLEAN DEFAULT false"),
    ("_zetl_expired", "BOOLEAN DEFAULT false"),
    ("_zetl_synced_at", "TIMESTAMPTZ DEFAULT current_timestamp"),
    ("_zetl_position", "VARCHAR"),
];

pub use zetl_core::sql::quote_table as qualified;

/// Columns the target table has now, `None` when it does not exist.
fn existing_columns(conn: &Connection, table: &TableId) -> Result<Option<Vec<(String, String)>>, DuckdbError> {
    let cols = table_columns(conn, "current_database()", table)?;
    Ok(if cols.is_empty() { None } else { Some(cols.into_iter().map(|c| (c.name, c.data_type)).collect()) })
}

pub fn table_exists(conn: &Connection, table: &TableId) -> Result<bool, DuckdbError> {
    Ok(existing_columns(conn, table)?.is_some())
}

/// DuckDB folds identifiers to one case when it compares them: `"Orders"` and `orders` are one
/// table, `ID` and `id` one column. Two source names that fold together would merge two tables'
/// rows, or fail a CREATE, so they stop the integration before anything is written.
fn check_case_collisions(conn: &Connection, schema: &TableSchema) -> Result<(), DuckdbError> {
    for (i, a) in schema.columns.iter().enumerate() {
        if let Some(b) = schema.columns[..i].iter().find(|b| b.name.eq_ignore_ascii_case(&a.name)) {
            return Err(DuckdbError::CaseCollision {
                what: "columns",
                a: format!("{}.{}", schema.id, b.name),
                b: format!("{}.{}", schema.id, a.name),
                fix: "rename one of them at the source, or exclude the table",
            });
        }
    }
    let mut stmt = conn
        .prepare(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() \
             AND lower(schema_name) = lower(?) AND lower(table_name) = lower(?) \
             AND (schema_name <> ? OR table_name <> ?)",
        )
        .context(|| format!("looking for tables named like {}", schema.id))?;
    let id = &schema.id;
    let other: Option<(String, String)> = stmt
        .query_map(params![id.schema, id.name, id.schema, id.name], |r| Ok((r.get(0)?, r.get(1)?)))
        .context(|| format!("looking for tables named like {id}"))?
        .next()
        .transpose()
        .context(|| format!("looking for tables named like {id}"))?;
    if let Some((s, n)) = other {
        return Err(DuckdbError::CaseCollision {
            what: "tables",
            a: format!("{s}.{n}"),
            b: id.to_string(),
            fix: "exclude one of them in tables.exclude, or rename it at the source",
        });
    }
    Ok(())
}

/// `soft`: the table keeps deleted rows, marked (see [`SOFT_COLUMNS`]). `previous`: the schema
/// the table followed so far in this run; a column whose source type changed since takes the
/// new type (a type the user gave a column at the target is left alone otherwise). Returns the
/// columns added to an existing table.
pub fn ensure_table(
    conn: &Connection,
    schema: &TableSchema,
    soft: bool,
    previous: Option<&TableSchema>,
) -> Result<Vec<String>, DuckdbError> {
    let mut added = Vec::new();
    let table = &schema.id;
    check_case_collisions(conn, schema)?;
    let name = qualified(table);
    conn.execute_batch(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(&table.schema)))
        .context(|| format!("creating schema {}", table.schema))?;
    match existing_columns(conn, table)? {
        None => {
            let mut cols: Vec<String> =
                schema.columns.iter().map(|c| format!("{} {}", ident(&c.name), target_type(&c.ty))).collect();
            if soft {
                cols.extend(SOFT_COLUMNS.iter().map(|(n, ty)| format!("{} {ty}", ident(n))));
            }
            let comment = format!("replicated by zetl from {table}");
            conn.execute_batch(&format!(
                "CREATE TABLE {name} ({}); COMMENT ON TABLE {name} IS {}",
                cols.join(", "),
                literal(&comment)
            ))
            .context(|| format!("creating table {table}"))?;
            tracing::info!(table = %table, "created target table");
        }
        Some(existing) => {
            for col in &schema.columns {
                if let Some((_, now)) = existing.iter().find(|(n, _)| n == &col.name) {
                    let retyped = previous
                        .and_then(|p| p.column_index(&col.name).map(|i| &p.columns[i]))
                        .is_some_and(|old| old.ty != col.ty);
                    if retyped {
                        let wanted = target_type(&col.ty);
                        // The source changed the column's type; the source table is copied
                        // again (the change rewrote it), so values that do not cast become NULL
                        // only until that copy lands.
                        conn.execute_batch(&format!(
                            "ALTER TABLE {name} ALTER COLUMN {c} SET DATA TYPE {wanted} USING TRY_CAST({c} AS {wanted})",
                            c = ident(&col.name)
                        ))
                        .context(|| format!("changing the type of column {} of {table} to {wanted}", col.name))?;
                        tracing::info!(table = %table, column = %col.name, from = %now, to = %wanted, "changed column type");
                    }
                    continue;
                }
                conn.execute_batch(&format!(
                    "ALTER TABLE {name} ADD COLUMN {} {}",
                    ident(&col.name),
                    target_type(&col.ty)
                ))
                .context(|| format!("adding column {} to {table}", col.name))?;
                tracing::info!(table = %table, column = %col.name, "added column");
                added.push(col.name.clone());
            }
            for (n, ty) in SOFT_COLUMNS.iter().filter(|_| soft) {
                if !existing.iter().any(|(e, _)| e == n) {
                    conn.execute_batch(&format!("ALTER TABLE {name} ADD COLUMN {} {ty}", ident(n)))
                        .context(|| format!("adding soft-delete column {n} to {table}"))?;
                    tracing::info!(table = %table, column = %n, "added soft-delete column");
                }
            }
            for (n, _) in &existing {
                if schema.column_index(n).is_none() && !SOFT_COLUMNS.iter().any(|(s, _)| s == n) {
                    tracing::info!(table = %table, column = %n, "column no longer at the source; kept at the target");
                }
            }
        }
    }
    Ok(added)
}
