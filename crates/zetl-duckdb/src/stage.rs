//! Staging tables: changes reach a table by bulk-appending them into a temporary table of the
//! same shape, then one set-based statement per step moves them (see `merge`). Temporary tables
//! are not written to DuckDB's WAL, so staging costs no disk writes.

use crate::catalog::table_columns;
use crate::checks::{self, Check};
use crate::columnar::{Cells, Columns, ROWS_PER_CHUNK};
use crate::error::{Context, DuckdbError};
use crate::types::{ident, to_db, wire_type};
use duckdb::types::Value as Db;
use duckdb::{Appender, Connection};
use std::collections::BTreeSet;
use zetl_core::columns::{rows_of, ColumnKind, RecordBatch};
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
    /// The staging table's columns as appended: the row's, the old key's, op and mask.
    columns: Columns,
    /// The table's own columns, for copied rows appended straight into it.
    table_columns: Columns,
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
        let kinds: Vec<ColumnKind> = schema.columns.iter().map(|c| ColumnKind::of(&c.ty)).collect();
        let keys = schema.key_columns().iter().map(|&k| kinds[k]);
        let staged_kinds = kinds.iter().copied().chain(keys).chain([ColumnKind::Code, ColumnKind::Text]).collect();
        Ok(Stage {
            name,
            schema: schema.clone(),
            checks,
            columns: Columns::new(staged_kinds),
            table_columns: Columns::new(kinds),
        })
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
        let rows: Vec<Staged<'a>> = rows.collect();
        let mut unchanged = BTreeSet::new();
        let masks: Vec<Option<String>> = rows.iter().map(|(_, row, _)| unchanged_mask(row, &mut unchanged)).collect();
        let open = || {
            conn.appender_to_catalog_and_db(&self.name, "temp", "main")
                .context(|| format!("opening the appender for {}", self.schema.id))
        };
        let keys = self.schema.key_columns();
        let width = self.schema.columns.len();
        let staged: Vec<(&Staged<'a>, &Option<String>)> = rows.iter().zip(&masks).collect();
        let cells = |((op, row, from), mask): &(&Staged<'_>, &Option<String>), cells: &mut Cells<'_>| {
            for i in 0..width {
                cells.value(row.get(i).unwrap_or(&Value::Null));
            }
            for &k in keys {
                cells.value(from.and_then(|f| f.get(k)).unwrap_or(&Value::Null));
            }
            cells.code(*op as u8);
            cells.text(mask.as_deref());
        };
        let values = |((op, row, from), mask): &(&Staged<'a>, &Option<String>)| {
            let mut values: Vec<Db> = Vec::with_capacity(width + keys.len() + 2);
            for (i, col) in self.schema.columns.iter().enumerate() {
                values.push(to_db(row.get(i).unwrap_or(&Value::Null), &col.ty));
            }
            for &k in keys {
                values.push(to_db(from.and_then(|f| f.get(k)).unwrap_or(&Value::Null), &self.schema.columns[k].ty));
            }
            values.push(Db::UTinyInt(*op as u8));
            values.push((*mask).clone().map_or(Db::Null, Db::Text));
            (*row, values)
        };
        append(open, &self.schema, &self.columns, &staged, cells, values)?;
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

/// An appender of the table's own columns, in the schema's order.
fn table_appender<'c>(conn: &'c Connection, schema: &TableSchema) -> Result<Appender<'c>, DuckdbError> {
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let table = &schema.id;
    conn.appender_with_columns_to_db(&table.name, &table.schema, &names)
        .context(|| format!("opening the appender for {table}"))
}

pub fn append_directly(conn: &Connection, stage: &Stage, rows: &[Row]) -> Result<(), DuckdbError> {
    let schema = &stage.schema;
    append(
        || table_appender(conn, schema),
        schema,
        &stage.table_columns,
        rows,
        |row, cells| row.iter().for_each(|v| cells.value(v)),
        |row| (row, schema.columns.iter().zip(row).map(|(c, v)| to_db(v, &c.ty)).collect()),
    )
}

/// Appends a copy's rows that came as columns straight into the table; false (nothing
/// appended) when they must go as rows: the table's values are checked on the way, or the
/// batch does not hold its columns. A batch DuckDB refuses is appended again as rows, to name
/// the row it refused.
pub fn append_columns(conn: &Connection, stage: &Stage, batch: &RecordBatch) -> Result<bool, DuckdbError> {
    if !can_append_directly(stage) || !stage.table_columns.hold(batch) {
        return Ok(false);
    }
    let mut appender = table_appender(conn, &stage.schema)?;
    let appended = appender.append_record_batch(batch.clone()).and_then(|()| appender.flush());
    drop(appender);
    let Err(refused) = appended else { return Ok(true) };
    if let Some(rows) = rows_of(&stage.schema, batch) {
        append_directly(conn, stage, &rows)?;
    }
    Err(DuckdbError::Row {
        table: stage.schema.id.to_string(),
        key: "(in the last rows appended)".into(),
        cause: refused.to_string(),
    })
}

/// Appends `rows` a data chunk at a time, as Arrow columns (`cells` writes a row's). From a
/// chunk whose values do not all fit their columns on, rows go one by one as `values` gives
/// them; and after a chunk DuckDB refuses, its rows go one by one through a new appender (the
/// refusing one refuses everything after) to name the row it refused: DuckDB's cast of a whole
/// vector names only the value. Such a failure fails the target transaction, so what these
/// rows add is rolled back with it.
fn append<'c, 'a, T>(
    open: impl Fn() -> Result<Appender<'c>, DuckdbError>,
    schema: &TableSchema,
    columns: &Columns,
    rows: &'a [T],
    mut cells: impl FnMut(&T, &mut Cells<'_>),
    values: impl Fn(&'a T) -> (&'a Row, Vec<Db>),
) -> Result<(), DuckdbError> {
    let table = schema.id.to_string();
    let mut appender = open()?;
    let mut failed = None;
    let mut one_by_one = rows.len();
    for (n, chunk) in rows.chunks(ROWS_PER_CHUNK).enumerate() {
        let Some(batch) = columns.batch(chunk, &mut cells) else {
            one_by_one = n * ROWS_PER_CHUNK;
            break;
        };
        if let Err(e) = appender.append_record_batch(batch) {
            failed = Some(e.to_string());
            one_by_one = n * ROWS_PER_CHUNK;
            appender = open()?;
            break;
        }
    }
    for (row, values) in rows[one_by_one..].iter().map(values) {
        appender.append_row(duckdb::appender_params_from_iter(values)).map_err(|e| DuckdbError::Row {
            table: table.clone(),
            key: describe_key(schema, row),
            cause: e.to_string(),
        })?;
    }
    let in_last =
        |cause: String| DuckdbError::Row { table: table.clone(), key: "(in the last rows appended)".into(), cause };
    if let Some(cause) = failed {
        return Err(in_last(cause));
    }
    appender.flush().map_err(|e| in_last(e.to_string()))
}

/// The staging form of the columns a row left unchanged (`,3,7,`), noting them in `unchanged`.
fn unchanged_mask(row: &Row, unchanged: &mut BTreeSet<usize>) -> Option<String> {
    let mut mask = String::new();
    for (i, v) in row.iter().enumerate() {
        if matches!(v, Value::Unchanged) {
            unchanged.insert(i);
            mask.push_str(&format!(",{i}"));
        }
    }
    (!mask.is_empty()).then(|| format!("{mask},"))
}

/// The key of a row for error messages: `(id=42)`, or the first columns of a keyless row.
pub fn describe_key(schema: &TableSchema, row: &Row) -> String {
    schema.describe_key(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    use zetl_core::{Column, ColumnType, RowIdentity};

    /// A table `t (id INTEGER, ts TIMESTAMP)` and its stage, for values DuckDB refuses.
    fn timestamp_table() -> (Connection, Stage) {
        let conn = Connection::open_in_memory().expect("duckdb");
        conn.execute_batch("CREATE TABLE t (id INTEGER, ts TIMESTAMP)").expect("table");
        let column = |name: &str, ty| Column { name: name.into(), ty, source_type: String::new(), nullable: true };
        let schema = TableSchema {
            id: TableId::new("main", "t"),
            columns: vec![column("id", ColumnType::Int32), column("ts", ColumnType::Timestamp)],
            identity: RowIdentity::Key(vec![0]),
        };
        let stage = Stage::create(&conn, &schema, 0).expect("stage");
        (conn, stage)
    }

    /// A chunk DuckDB refuses (a timestamp past its range, which PostgreSQL holds) fails
    /// naming the row, found by appending that chunk's rows one by one.
    #[test]
    fn a_refused_chunk_names_the_row_it_holds() {
        let (conn, stage) = timestamp_table();
        assert!(can_append_directly(&stage));
        let rows: Vec<Row> = (0..5000)
            .map(|i| {
                let at = if i == 4500 { "294270-01-01 00:00:00" } else { "2024-01-02 03:04:05.123456" };
                vec![Value::Int(i), Value::Timestamp(at.into())]
            })
            .collect();
        append_directly(&conn, &stage, &rows[..4000]).expect("fits");
        let count: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).expect("count");
        assert_eq!(count, 4000);
        match append_directly(&conn, &stage, &rows) {
            Err(DuckdbError::Row { table, key, .. }) => {
                assert_eq!((table.as_str(), key.as_str()), ("main.t", "(id=4500)"))
            }
            other => panic!("expected the refused row named, got {other:?}"),
        }
    }

    /// Copied columns DuckDB refuses are appended again as rows to name the refused one; the
    /// error holds no rows appended (the transaction it fails is rolled back).
    #[test]
    fn refused_columns_name_the_row_they_hold() {
        let (conn, stage) = timestamp_table();
        let schema = &stage.schema;
        let batch = |bad: Option<i64>| {
            let mut columns = zetl_core::columns::ColumnsBuilder::for_table(schema, 3000);
            for i in 0..3000 {
                let at = if Some(i) == bad { "294270-01-01 00:00:00" } else { "2024-01-02 03:04:05.123456" };
                assert!(columns.column(0).expect("id").push(&Value::Int(i)));
                assert!(columns.column(1).expect("ts").text(Some(at)));
                assert!(columns.end_row());
            }
            columns.finish().expect("batch")
        };
        assert!(append_columns(&conn, &stage, &batch(None)).expect("appended"));
        let count: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).expect("count");
        assert_eq!(count, 3000);
        match append_columns(&conn, &stage, &batch(Some(2500))) {
            Err(DuckdbError::Row { table, key, .. }) => {
                assert_eq!((table.as_str(), key.as_str()), ("main.t", "(id=2500)"))
            }
            other => panic!("expected the refused row named, got {other:?}"),
        }
    }

    #[test]
    fn removes_names_the_codes_of_delete_and_expire() {
        assert_eq!(REMOVES, format!("s._zetl_op IN ({}, {})", StagedOp::Delete, StagedOp::Expire));
    }
}
