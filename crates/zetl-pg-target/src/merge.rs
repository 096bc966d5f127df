//! A batch into its table, set-based: the changes are COPYed into a temporary staging table,
//! then per table one fill of each unchanged column, one DELETE (or soft-delete UPDATE) of the
//! deleted keys and one INSERT … ON CONFLICT of the final rows.
//!
//! PostgreSQL rounds a value on assignment to a narrower column (numeric(5,1), real, timestamp(0))
//! without an error. So where the user gave a target column another type (or type modifier)
//! than zetl's, the INSERT's SELECT casts the staged value to it and back, and a value that
//! does not come back unchanged raises a data error naming key, column and value
//! (`_zetl.refuse_changed_value`, migration 0004) instead of being stored.

use crate::copy_binary::BinaryCopy;
use crate::dead_letters;
use crate::error::{PgTargetError, SqlContext};
use crate::types::{copy_field, ident, pg_type};
use bytes::Bytes;
use futures_util::SinkExt;
use std::collections::BTreeSet;
use tokio_postgres::Client;
use zetl_core::batch::{net_unkeyed, KeyedOp, TableBatch};
use zetl_core::columns::{cell_at, RecordBatch};
use zetl_core::{ChangeKind, Row, TableSchema, Value};

const OP_UPSERT: i16 = 0;
const OP_DELETE: i16 = 1;
const OP_MOVE: i16 = 2;
/// A delete by the source's time to live.
const OP_EXPIRE: i16 = 3;
/// SQL: the staged row (alias `s`) removes its key.
const REMOVES: &str = "s._zetl_op IN (1, 3)";

/// Marks rows deleted in soft-delete mode (their position is set at commit).
const MARK_DELETED: &str = "_zetl_deleted = true, _zetl_synced_at = now(), _zetl_position = NULL";

pub struct Stage {
    pub schema: TableSchema,
    /// The quoted target table.
    pub target: String,
    name: String,
    /// Copied rows go straight into the target in binary: its columns have the types zetl
    /// gives them (a user may have changed one; binary data must match the type exactly).
    direct_binary: bool,
    /// Columns whose target type differs from zetl's: (index, target type, staged type).
    narrowed: Vec<(usize, String, String)>,
}

/// One row to stage: its op, the row, and for a move the row holding the old key.
type Staged<'a> = (i16, &'a Row, Option<&'a Row>);

impl Stage {
    pub async fn create(c: &Client, schema: &TableSchema, target: String, n: usize) -> Result<Stage, PgTargetError> {
        let name = format!("_zetl_stage_{n}");
        let mut cols: Vec<String> =
            schema.columns.iter().map(|c| format!("{} {}", ident(&c.name), pg_type(&c.ty))).collect();
        for &k in schema.key_columns() {
            cols.push(format!("_zetl_from_{k} {}", pg_type(&schema.columns[k].ty)));
        }
        cols.push("_zetl_op smallint NOT NULL".into());
        cols.push("_zetl_u text".into());
        c.batch_execute(&format!("CREATE TEMP TABLE {} ({})", ident(&name), cols.join(", ")))
            .await
            .ctx(|| format!("creating the staging table for {}", schema.id))?;
        // Columns whose type (or modifier: numeric(5,1) against numeric(12,3)) differs at the
        // target; the target's type is NULL for a column it lacks.
        let differing = c
            .query(
                "SELECT s.attname::text, format_type(t.atttypid, t.atttypmod), format_type(s.atttypid, s.atttypmod) \
                 FROM pg_attribute s \
                 LEFT JOIN pg_attribute t ON t.attrelid = $2::text::regclass AND t.attname = s.attname AND NOT t.attisdropped \
                 WHERE s.attrelid = $1::text::regclass AND s.attnum > 0 AND s.attname NOT LIKE '\\_zetl\\_%' \
                 AND (t.atttypid, t.atttypmod) IS DISTINCT FROM (s.atttypid, s.atttypmod)",
                &[&ident(&name), &target],
            )
            .await
            .ctx(|| format!("comparing the column types of {target} with zetl's"))?;
        let narrowed = differing
            .iter()
            .filter_map(|r| {
                let (column, to): (String, Option<String>) = (r.get(0), r.get(1));
                let index = schema.columns.iter().position(|c| c.name == column)?;
                Some((index, to?, r.get(2)))
            })
            .collect();
        Ok(Stage { schema: schema.clone(), target, name, direct_binary: differing.is_empty(), narrowed })
    }

    pub async fn drop(&self, c: &Client) -> Result<(), PgTargetError> {
        c.batch_execute(&format!("DROP TABLE IF EXISTS {}", ident(&self.name)))
            .await
            .ctx(|| format!("dropping the staging table of {}", self.schema.id))
    }

    /// COPYs rows in; returns the indexes of columns that some row left unchanged.
    pub(crate) async fn load<'a>(
        &self,
        c: &Client,
        rows: impl Iterator<Item = Staged<'a>>,
    ) -> Result<BTreeSet<usize>, PgTargetError> {
        let rows: Vec<Staged> = rows.collect();
        let mut unchanged = BTreeSet::new();
        for (_, row, _) in &rows {
            unchanged.extend(row.iter().enumerate().filter(|(_, v)| matches!(v, Value::Unchanged)).map(|(i, _)| i));
        }
        let staged = ident(&self.name);
        let (sql, data) = match self.binary_rows(&rows) {
            Some(data) => (format!("COPY {staged} FROM STDIN (FORMAT binary)"), data),
            None => (format!("COPY {staged} FROM STDIN"), self.text_rows(&rows).into_bytes()),
        };
        copy_in(c, &sql, data, &self.schema.id.to_string()).await?;
        Ok(unchanged)
    }

    fn binary_rows(&self, rows: &[Staged]) -> Option<Vec<u8>> {
        let schema = &self.schema;
        let keys = schema.key_columns();
        let mut out = BinaryCopy::new();
        for (op, row, from) in rows {
            out.start_row(schema.columns.len() + keys.len() + 2);
            for (col, v) in schema.columns.iter().zip(row.iter()) {
                out.value(v, &col.ty)?;
            }
            for &k in keys {
                out.value(from.and_then(|f| f.get(k)).unwrap_or(&Value::Null), &schema.columns[k].ty)?;
            }
            out.int16(*op);
            match unchanged_mask(row) {
                Some(mask) => out.text(&mask),
                None => out.null(),
            }
        }
        Some(out.finish())
    }

    fn text_rows(&self, rows: &[Staged]) -> String {
        let mut text = String::new();
        for (op, row, from) in rows {
            for v in row.iter() {
                copy_field(&mut text, v);
                text.push('\t');
            }
            for &k in self.schema.key_columns() {
                copy_field(&mut text, from.and_then(|f| f.get(k)).unwrap_or(&Value::Null));
                text.push('\t');
            }
            text.push_str(&op.to_string());
            text.push('\t');
            text.push_str(&unchanged_mask(row).unwrap_or_else(|| "\\N".into()));
            text.push('\n');
        }
        text
    }

    pub(crate) async fn clear(&self, c: &Client) -> Result<(), PgTargetError> {
        c.batch_execute(&format!("TRUNCATE {}", ident(&self.name)))
            .await
            .ctx(|| format!("clearing the staging table of {}", self.schema.id))
    }

    fn columns(&self) -> String {
        self.schema.columns.iter().map(|c| ident(&c.name)).collect::<Vec<_>>().join(", ")
    }

    /// The staging table, quoted.
    pub(crate) fn staged(&self) -> String {
        ident(&self.name)
    }

    /// The SELECT list moving staged rows (alias `s`) into the target: the columns as they
    /// are, a narrowed one through the exactness check.
    fn select_list(&self) -> String {
        let key = key_sql(&self.schema);
        let list: Vec<String> = self
            .schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, col)| {
                let n = format!("s.{}", ident(&col.name));
                let Some((_, to, from)) = self.narrowed.iter().find(|(c, _, _)| *c == i) else { return n };
                let stored = format!("CAST({n} AS {to})");
                format!(
                    "CASE WHEN {n} IS NULL OR CAST({stored} AS {from}) IS NOT DISTINCT FROM {n} THEN {stored} \
                     ELSE CAST(_zetl.refuse_changed_value({key}, {name}, {ty}, {n}::text, {stored}::text) AS {to}) END",
                    name = quote(&col.name),
                    ty = quote(to),
                )
            })
            .collect();
        list.join(", ")
    }
}

/// A single-quoted SQL string literal (standard_conforming_strings, on since PostgreSQL 9.1).
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// SQL for `(id=42)` of a staged row (alias `s`), as `TableSchema::describe_key` writes it (the
/// first columns of a keyless row).
fn key_sql(schema: &TableSchema) -> String {
    schema.describe_key_sql(|name| format!("left(s.{}::text, 64)", ident(name)))
}

/// `,2,5,` for a row that left columns 2 and 5 unchanged; `None` when it sent them all.
fn unchanged_mask(row: &Row) -> Option<String> {
    let mut mask = String::new();
    for (i, v) in row.iter().enumerate() {
        if matches!(v, Value::Unchanged) {
            mask.push_str(&format!(",{i}"));
        }
    }
    (!mask.is_empty()).then(|| mask + ",")
}

/// COPY `data` into `sql`'s table.
pub async fn copy_in(c: &Client, sql: &str, data: Vec<u8>, table: &str) -> Result<(), PgTargetError> {
    let sink = c.copy_in::<_, Bytes>(sql).await.ctx(|| format!("copying into {table}"))?;
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from(data)).await.ctx(|| format!("copying into {table}"))?;
    sink.finish().await.ctx(|| format!("copying into {table}"))?;
    Ok(())
}

/// Copied rows straight into the table.
pub async fn copy_rows(c: &Client, stage: &Stage, rows: &[Row]) -> Result<(), PgTargetError> {
    if !stage.narrowed.is_empty() {
        // Through the stage, so that a value the narrowed column would change is refused.
        let mut rows: Vec<&Row> = rows.iter().collect();
        return flush_inserts(c, stage, &mut rows).await;
    }
    let table = stage.schema.id.to_string();
    let columns = stage.columns();
    if stage.direct_binary {
        if let Some(data) = copy_rows_binary(&stage.schema, rows) {
            let sql = format!("COPY {} ({columns}) FROM STDIN (FORMAT binary)", stage.target);
            return copy_in(c, &sql, data, &table).await;
        }
    }
    let mut text = String::new();
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                text.push('\t');
            }
            copy_field(&mut text, v);
        }
        text.push('\n');
    }
    let sql = format!("COPY {} ({columns}) FROM STDIN", stage.target);
    copy_in(c, &sql, text.into_bytes(), &table).await
}

/// A copy's rows that came as columns, straight into the table in binary; false (nothing
/// written) when they must go as rows: a narrowed column, a table not written in binary, or a
/// value the binary encoder does not take.
pub async fn copy_columns(c: &Client, stage: &Stage, batch: &RecordBatch) -> Result<bool, PgTargetError> {
    if !stage.narrowed.is_empty() || !stage.direct_binary {
        return Ok(false);
    }
    let Some(data) = copy_columns_binary(&stage.schema, batch) else { return Ok(false) };
    let sql = format!("COPY {} ({}) FROM STDIN (FORMAT binary)", stage.target, stage.columns());
    copy_in(c, &sql, data, &stage.schema.id.to_string()).await?;
    Ok(true)
}

fn copy_columns_binary(schema: &TableSchema, batch: &RecordBatch) -> Option<Vec<u8>> {
    if batch.num_columns() != schema.columns.len() {
        return None;
    }
    let mut out = BinaryCopy::new();
    for i in 0..batch.num_rows() {
        out.start_row(schema.columns.len());
        for (col, array) in schema.columns.iter().zip(batch.columns()) {
            out.cell(cell_at(array.as_ref(), i)?, &col.ty)?;
        }
    }
    Some(out.finish())
}

fn copy_rows_binary(schema: &TableSchema, rows: &[Row]) -> Option<Vec<u8>> {
    let mut out = BinaryCopy::new();
    for row in rows {
        out.start_row(schema.columns.len());
        for (col, v) in schema.columns.iter().zip(row.iter()) {
            out.value(v, &col.ty)?;
        }
    }
    Some(out.finish())
}

/// An update that left columns unchanged (PostgreSQL sends no value for an unchanged TOASTed
/// column) takes them from the row under its key; with no such row at the target they would
/// become NULL without a word. The target already differs from the source there: stop, naming
/// the key and the fix. While the table is `filling` (see `TableBatch::filling`) such rows
/// are dropped instead: the copy has not reached them yet.
async fn unchanged_without_row(
    c: &Client,
    stage: &Stage,
    from_match: &str,
    key_match: &str,
    filling: bool,
) -> Result<(), PgTargetError> {
    let (schema, target, staged) = (&stage.schema, &stage.target, ident(&stage.name));
    let without_row = format!(
        "s._zetl_u IS NOT NULL AND ( \
           (s._zetl_op = {OP_MOVE} AND NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {from_match})) OR \
           (s._zetl_op = {OP_UPSERT} AND NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {key_match})))"
    );
    if filling {
        let sql = format!("DELETE FROM {staged} AS s WHERE {without_row}");
        c.batch_execute(&sql)
            .await
            .ctx(|| format!("setting aside updates of {} the copy has not reached", schema.id))?;
        return Ok(());
    }
    let sql = format!("SELECT {} FROM {staged} AS s WHERE {without_row} LIMIT 1", key_sql(schema));
    let row =
        c.query_opt(&sql, &[]).await.ctx(|| format!("looking for the rows of {}'s unchanged columns", schema.id))?;
    match row {
        None => Ok(()),
        Some(r) => Err(PgTargetError::State(format!(
            "table {id}, key {key}: an update left columns unchanged (not sent by the source) but the target has no row under that key to keep them from: the target differs from the source here; run `zetl resync {id}`",
            id = schema.id,
            key = r.get::<_, String>(0)
        ))),
    }
}

/// `soft`: deletes (and a truncate) mark rows instead of removing them. `letters`: the
/// integration, when the table has dead letters still to replay (the changes applied here
/// supersede those of their keys).
pub async fn apply_table(
    c: &Client,
    stage: &Stage,
    batch: &TableBatch,
    soft: bool,
    letters: Option<&str>,
) -> Result<(), PgTargetError> {
    let target = &stage.target;
    let id = &stage.schema.id;
    if batch.truncate {
        let sql = if soft {
            format!("UPDATE {target} SET {MARK_DELETED} WHERE NOT _zetl_deleted")
        } else {
            format!("TRUNCATE {target}")
        };
        c.batch_execute(&sql).await.ctx(|| format!("truncating {id}"))?;
        if let Some(integration) = letters {
            dead_letters::supersede_table(c, integration, id, dead_letters::TRUNCATED).await?;
        }
    }
    if stage.schema.key_columns().is_empty() {
        return apply_in_order(c, stage, &batch.unkeyed, soft).await;
    }
    let ops = batch.keyed_ops().map(|op| match op {
        KeyedOp::Upsert(row) => (OP_UPSERT, row, None),
        KeyedOp::Delete(row) => (OP_DELETE, row, None),
        KeyedOp::Expire(row) => (OP_EXPIRE, row, None),
        KeyedOp::Move { row, from } => (OP_MOVE, row, Some(from)),
    });
    let unchanged = stage.load(c, ops).await?;
    let staged = ident(&stage.name);
    let schema = &stage.schema;
    let from_match = key_match(schema, |i, _| format!("s._zetl_from_{i}"));
    let key_match = key_match(schema, |_, name| format!("s.{name}"));
    if !unchanged.is_empty() {
        unchanged_without_row(c, stage, &from_match, &key_match, batch.filling).await?;
    }
    for i in &unchanged {
        let col = ident(&schema.columns[*i].name);
        for (matches, op) in [(&from_match, OP_MOVE), (&key_match, OP_UPSERT)] {
            c.batch_execute(&format!(
                "UPDATE {staged} AS s SET {col} = t.{col} FROM {target} AS t \
                 WHERE {matches} AND s._zetl_op = {op} AND s._zetl_u LIKE '%,{i},%'"
            ))
            .await
            .ctx(|| format!("keeping unchanged column {} of {id}", schema.columns[*i].name))?;
        }
    }
    // Before any row is written, so that the letter rows are locked first (as a replay locks
    // them) and a replay running meanwhile cannot deadlock with this.
    if let Some(integration) = letters {
        dead_letters::supersede_staged(c, integration, stage).await?;
    }
    let delete = if soft {
        format!(
            "UPDATE {target} AS t SET {MARK_DELETED}, _zetl_expired = (s._zetl_op = {OP_EXPIRE}) \
             FROM {staged} AS s WHERE {key_match} AND {REMOVES}"
        )
    } else {
        format!("DELETE FROM {target} AS t USING {staged} AS s WHERE {key_match} AND {REMOVES}")
    };
    c.batch_execute(&delete).await.ctx(|| format!("deleting rows of {id}"))?;
    let keys: Vec<String> = schema.key_columns().iter().map(|&i| ident(&schema.columns[i].name)).collect();
    let mut sets: Vec<String> = schema.columns.iter().map(|c| format!("{0} = excluded.{0}", ident(&c.name))).collect();
    if soft {
        sets.push(
            "_zetl_deleted = false, _zetl_expired = false, _zetl_synced_at = now(), _zetl_position = NULL".into(),
        );
    }
    c.batch_execute(&format!(
        "INSERT INTO {target} ({}) SELECT {} FROM {staged} AS s WHERE NOT {REMOVES} \
         ON CONFLICT ({}) DO UPDATE SET {}",
        stage.columns(),
        stage.select_list(),
        keys.join(", "),
        sets.join(", "),
    ))
    .await
    .ctx(|| format!("writing rows of {id}"))?;
    stage.clear(c).await
}

/// `t.k = <staged k> AND …` over the key columns.
fn key_match(schema: &TableSchema, staged: impl Fn(usize, &str) -> String) -> String {
    schema
        .key_columns()
        .iter()
        .map(|&i| {
            let name = ident(&schema.columns[i].name);
            format!("t.{name} = {}", staged(i, &name))
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Tables without a key: the batch's net removals (each takes exactly one identical row: a
/// keyless table may hold identical rows) in one statement, then its additions in bulk.
async fn apply_in_order(c: &Client, stage: &Stage, changes: &[ChangeKind], soft: bool) -> Result<(), PgTargetError> {
    let (removed, mut added) = net_unkeyed(changes);
    remove_rows(c, stage, &removed, soft).await?;
    flush_inserts(c, stage, &mut added).await
}

async fn flush_inserts(c: &Client, stage: &Stage, rows: &mut Vec<&Row>) -> Result<(), PgTargetError> {
    if rows.is_empty() {
        return Ok(());
    }
    stage.load(c, rows.drain(..).map(|r| (OP_UPSERT, r, None))).await?;
    c.batch_execute(&format!(
        "INSERT INTO {} ({}) SELECT {} FROM {} AS s",
        stage.target,
        stage.columns(),
        stage.select_list(),
        ident(&stage.name),
    ))
    .await
    .ctx(|| format!("inserting into {}", stage.schema.id))?;
    stage.clear(c).await
}

/// Removes one target row identical to each of `rows` (or marks it, `soft`), with one
/// statement: the staged rows are counted by content and matched with as many target rows.
async fn remove_rows(c: &Client, stage: &Stage, rows: &[&Row], soft: bool) -> Result<(), PgTargetError> {
    if rows.is_empty() {
        return Ok(());
    }
    stage.load(c, rows.iter().map(|r| (OP_DELETE, *r, None))).await?;
    let columns = &stage.schema.columns;
    let cols: Vec<String> =
        columns.iter().enumerate().map(|(i, col)| format!("s.{} AS c{i}", ident(&col.name))).collect();
    let same: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, col)| format!("t.{} IS NOT DISTINCT FROM w.c{i}", ident(&col.name)))
        .collect();
    let groups: Vec<String> = (0..columns.len()).map(|i| format!("w.c{i}")).collect();
    let by: Vec<String> = (1..=columns.len()).map(|i| i.to_string()).collect();
    let (target, staged) = (&stage.target, ident(&stage.name));
    let live = if soft { " AND NOT t._zetl_deleted" } else { "" };
    let hits = format!(
        "SELECT rid FROM (SELECT t.ctid AS rid, w.cnt, row_number() OVER (PARTITION BY {groups} ORDER BY t.ctid) AS n \
         FROM {target} AS t JOIN (SELECT {cols}, count(*) AS cnt FROM {staged} AS s GROUP BY {by}) AS w \
         ON {same}{live}) AS x WHERE n <= cnt",
        groups = groups.join(", "),
        cols = cols.join(", "),
        by = by.join(", "),
        same = same.join(" AND "),
    );
    let sql = if soft {
        format!("UPDATE {target} SET {MARK_DELETED} WHERE ctid IN ({hits})")
    } else {
        format!("DELETE FROM {target} WHERE ctid IN ({hits})")
    };
    let done = c.execute(&sql, &[]).await.ctx(|| format!("deleting rows of {}", stage.schema.id))?;
    if (done as usize) < rows.len() {
        tracing::warn!(table = %stage.schema.id, missing = rows.len() - done as usize, "rows to delete not found at the target");
    }
    stage.clear(c).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use zetl_core::columns::ColumnsBuilder;
    use zetl_core::{Column, ColumnType, RowIdentity, TableId};

    /// Copied columns are written as the same COPY binary stream as the rows they hold.
    #[test]
    fn columns_encode_as_their_rows_do() {
        let types = [
            ColumnType::Bool,
            ColumnType::Int16,
            ColumnType::Int64,
            ColumnType::UInt64,
            ColumnType::Float32,
            ColumnType::Decimal { precision: 10, scale: 2 },
            ColumnType::Text,
            ColumnType::Bytes,
            ColumnType::Date,
            ColumnType::TimestampTz,
            ColumnType::Interval,
            ColumnType::Uuid,
            ColumnType::Json,
        ];
        let columns = types
            .iter()
            .enumerate()
            .map(|(i, ty)| Column { name: format!("c{i}"), ty: ty.clone(), source_type: String::new(), nullable: true })
            .collect();
        let schema = TableSchema { id: TableId::new("s", "t"), columns, identity: RowIdentity::Key(vec![1]) };
        let rows: Vec<Row> = vec![
            vec![
                Value::Bool(true),
                Value::Int(-32768),
                Value::Int(i64::MIN),
                Value::UInt(u64::MAX),
                Value::Float(f64::from(0.1f32)),
                Value::Decimal("-12345678.90".into()),
                Value::Text("é\t\\".into()),
                Value::Bytes(vec![0, 255]),
                Value::Date("2024-02-29".into()),
                Value::TimestampTz("1999-12-31 23:59:59.5+00".into()),
                Value::Interval("14 months -3 days 5 microseconds".into()),
                Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
                Value::Json("{\"k\": 1}".into()),
            ],
            std::iter::once(Value::Null).cycle().take(types.len()).collect(),
        ];
        let mut columns = ColumnsBuilder::for_table(&schema, rows.len());
        for row in &rows {
            for (i, v) in row.iter().enumerate() {
                assert!(columns.column(i).expect("column").push(v));
            }
            assert!(columns.end_row());
        }
        let from_columns = copy_columns_binary(&schema, &columns.finish().expect("batch")).expect("taken");
        assert_eq!(from_columns, copy_rows_binary(&schema, &rows).expect("taken"));
    }
}
