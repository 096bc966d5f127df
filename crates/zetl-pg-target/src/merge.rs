//! A batch into its table, set-based: the changes are COPYed into a temporary staging table,
//! then per table one fill of each unchanged column, one DELETE (or soft-delete UPDATE) of the
//! deleted keys and one INSERT … ON CONFLICT of the final rows.

use crate::error::{PgTargetError, SqlContext};
use crate::types::{copy_field, ident, pg_type};
use bytes::Bytes;
use futures_util::SinkExt;
use std::collections::BTreeSet;
use tokio_postgres::Client;
use zetl_core::batch::{KeyedOp, TableBatch};
use zetl_core::{ChangeKind, Row, TableSchema, Value};

const OP_UPSERT: i16 = 0;
const OP_DELETE: i16 = 1;
const OP_MOVE: i16 = 2;

/// Marks rows deleted in soft-delete mode (their position is set at commit).
const MARK_DELETED: &str = "_zetl_deleted = true, _zetl_synced_at = now(), _zetl_position = NULL";

pub struct Stage {
    pub schema: TableSchema,
    /// The quoted target table.
    pub target: String,
    name: String,
}

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
        Ok(Stage { schema: schema.clone(), target, name })
    }

    pub async fn drop(&self, c: &Client) -> Result<(), PgTargetError> {
        c.batch_execute(&format!("DROP TABLE IF EXISTS {}", ident(&self.name)))
            .await
            .ctx(|| format!("dropping the staging table of {}", self.schema.id))
    }

    /// COPYs rows in; returns the indexes of columns that some row left unchanged.
    async fn load<'a>(
        &self,
        c: &Client,
        rows: impl Iterator<Item = (i16, &'a Row, Option<&'a Row>)>,
    ) -> Result<BTreeSet<usize>, PgTargetError> {
        let mut unchanged = BTreeSet::new();
        let mut text = String::new();
        for (op, row, from) in rows {
            let mut mask = String::new();
            for (i, v) in row.iter().enumerate() {
                if matches!(v, Value::Unchanged) {
                    unchanged.insert(i);
                    mask.push_str(&format!(",{i}"));
                }
                copy_field(&mut text, v);
                text.push('\t');
            }
            for &k in self.schema.key_columns() {
                copy_field(&mut text, from.and_then(|f| f.get(k)).unwrap_or(&Value::Null));
                text.push('\t');
            }
            text.push_str(&op.to_string());
            text.push('\t');
            if mask.is_empty() {
                text.push_str("\\N");
            } else {
                text.push_str(&mask);
                text.push(',');
            }
            text.push('\n');
        }
        copy_in(c, &format!("COPY {} FROM STDIN", ident(&self.name)), text, &self.schema.id.to_string()).await?;
        Ok(unchanged)
    }

    async fn clear(&self, c: &Client) -> Result<(), PgTargetError> {
        c.batch_execute(&format!("TRUNCATE {}", ident(&self.name)))
            .await
            .ctx(|| format!("clearing the staging table of {}", self.schema.id))
    }

    fn columns(&self) -> String {
        self.schema.columns.iter().map(|c| ident(&c.name)).collect::<Vec<_>>().join(", ")
    }
}

/// COPY text into `sql`'s table.
pub async fn copy_in(c: &Client, sql: &str, text: String, table: &str) -> Result<(), PgTargetError> {
    let sink = c.copy_in::<_, Bytes>(sql).await.ctx(|| format!("copying into {table}"))?;
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from(text)).await.ctx(|| format!("copying into {table}"))?;
    sink.finish().await.ctx(|| format!("copying into {table}"))?;
    Ok(())
}

/// Copied rows straight into the table.
pub async fn copy_rows(c: &Client, stage: &Stage, rows: &[Row]) -> Result<(), PgTargetError> {
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
    let sql = format!("COPY {} ({}) FROM STDIN", stage.target, stage.columns());
    copy_in(c, &sql, text, &stage.schema.id.to_string()).await
}

/// `soft`: deletes (and a truncate) mark rows instead of removing them.
pub async fn apply_table(c: &Client, stage: &Stage, batch: &TableBatch, soft: bool) -> Result<(), PgTargetError> {
    let target = &stage.target;
    let id = &stage.schema.id;
    if batch.truncate {
        let sql = if soft {
            format!("UPDATE {target} SET {MARK_DELETED} WHERE NOT _zetl_deleted")
        } else {
            format!("TRUNCATE {target}")
        };
        c.batch_execute(&sql).await.ctx(|| format!("truncating {id}"))?;
    }
    if stage.schema.key_columns().is_empty() {
        return apply_in_order(c, stage, &batch.unkeyed, soft).await;
    }
    let ops = batch.keyed_ops().map(|op| match op {
        KeyedOp::Upsert(row) => (OP_UPSERT, row, None),
        KeyedOp::Delete(row) => (OP_DELETE, row, None),
        KeyedOp::Move { row, from } => (OP_MOVE, row, Some(from)),
    });
    let unchanged = stage.load(c, ops).await?;
    let staged = ident(&stage.name);
    let schema = &stage.schema;
    let from_match = key_match(schema, |i, _| format!("s._zetl_from_{i}"));
    let key_match = key_match(schema, |_, name| format!("s.{name}"));
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
    let delete = if soft {
        format!(
            "UPDATE {target} AS t SET {MARK_DELETED} FROM {staged} AS s WHERE {key_match} AND s._zetl_op = {OP_DELETE}"
        )
    } else {
        format!("DELETE FROM {target} AS t USING {staged} AS s WHERE {key_match} AND s._zetl_op = {OP_DELETE}")
    };
    c.batch_execute(&delete).await.ctx(|| format!("deleting rows of {id}"))?;
    let keys: Vec<String> = schema.key_columns().iter().map(|&i| ident(&schema.columns[i].name)).collect();
    let mut sets: Vec<String> = schema.columns.iter().map(|c| format!("{0} = excluded.{0}", ident(&c.name))).collect();
    if soft {
        sets.push("_zetl_deleted = false, _zetl_synced_at = now(), _zetl_position = NULL".into());
    }
    c.batch_execute(&format!(
        "INSERT INTO {target} ({cols}) SELECT {cols} FROM {staged} WHERE _zetl_op <> {OP_DELETE} \
         ON CONFLICT ({}) DO UPDATE SET {}",
        keys.join(", "),
        sets.join(", "),
        cols = stage.columns()
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

/// Tables without a key: inserts in bulk, and each delete removes (or marks) exactly one
/// matching row, in source order.
async fn apply_in_order(c: &Client, stage: &Stage, changes: &[ChangeKind], soft: bool) -> Result<(), PgTargetError> {
    let mut inserts: Vec<&Row> = Vec::new();
    for change in changes {
        let old = match change {
            ChangeKind::Insert { row } => {
                inserts.push(row);
                continue;
            }
            ChangeKind::Update { old, row } => {
                flush_inserts(c, stage, &mut inserts).await?;
                if let Some(old) = old {
                    delete_one(c, stage, old, soft).await?;
                }
                inserts.push(row);
                continue;
            }
            ChangeKind::Delete { old } => old,
        };
        flush_inserts(c, stage, &mut inserts).await?;
        delete_one(c, stage, old, soft).await?;
    }
    flush_inserts(c, stage, &mut inserts).await
}

async fn flush_inserts(c: &Client, stage: &Stage, rows: &mut Vec<&Row>) -> Result<(), PgTargetError> {
    if rows.is_empty() {
        return Ok(());
    }
    stage.load(c, rows.drain(..).map(|r| (OP_UPSERT, r, None))).await?;
    c.batch_execute(&format!(
        "INSERT INTO {} ({cols}) SELECT {cols} FROM {}",
        stage.target,
        ident(&stage.name),
        cols = stage.columns()
    ))
    .await
    .ctx(|| format!("inserting into {}", stage.schema.id))?;
    stage.clear(c).await
}

async fn delete_one(c: &Client, stage: &Stage, old: &Row, soft: bool) -> Result<(), PgTargetError> {
    stage.load(c, std::iter::once((OP_DELETE, old, None))).await?;
    let cond = stage
        .schema
        .columns
        .iter()
        .map(|col| format!("t.{0} IS NOT DISTINCT FROM s.{0}", ident(&col.name)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let (target, staged) = (&stage.target, ident(&stage.name));
    let live = if soft { " AND NOT t._zetl_deleted" } else { "" };
    let pick = format!("(SELECT t.ctid FROM {target} AS t, {staged} AS s WHERE {cond}{live} LIMIT 1)");
    let sql = if soft {
        format!("UPDATE {target} SET {MARK_DELETED} WHERE ctid = {pick}")
    } else {
        format!("DELETE FROM {target} WHERE ctid = {pick}")
    };
    let n = c.execute(&sql, &[]).await.ctx(|| format!("deleting a row of {}", stage.schema.id))?;
    if n == 0 {
        tracing::warn!(table = %stage.schema.id, "row to delete not found at the target");
    }
    stage.clear(c).await
}
