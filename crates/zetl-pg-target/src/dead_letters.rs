//! Changes the target rejects. A table's batch runs under a savepoint; when it fails, its
//! changes are applied one by one (each under a savepoint of its own) to find the ones at
//! fault. With `on_error: fail` the first is reported with its key and cause; with
//! `dead_letter` each goes to `_zetl.dead_letters` — every column's value as PostgreSQL text —
//! and the rest is applied. `zetl dead-letters replay` applies them again later, with
//! `jsonb_populate_record` turning the texts back into the table's own types.

use crate::error::{PgTargetError, SqlContext};
use crate::merge::{self, Stage};
use crate::types::{ident, literal};
use std::collections::HashMap;
use tokio_postgres::Client;
use zetl_core::apply::{DeadLetter, OnError};
use zetl_core::batch::{Batch, KeyedOp, TableBatch};
use zetl_core::{Change, ChangeKind, Row, Value};

/// Applies a table's batch; returns how many changes became dead letters.
pub async fn apply_guarded(
    c: &Client,
    integration: &str,
    stage: &Stage,
    batch: &TableBatch,
    soft: bool,
    on_error: OnError,
) -> Result<u64, PgTargetError> {
    match under_savepoint(c, "zetl_table", merge::apply_table(c, stage, batch, soft)).await? {
        Ok(()) => Ok(0),
        // A lock or statement timeout, a deadlock, a lost connection: no verdict on the rows.
        Err(e) if !e.is_data_error() => Err(e),
        Err(batch_error) => {
            tracing::debug!(table = %stage.schema.id, error = %batch_error, "batch rejected; applying its changes one by one");
            one_by_one(c, integration, stage, batch, soft, on_error).await
        }
    }
}

/// Runs `work` under a savepoint: kept when it succeeds, undone (leaving the transaction
/// usable) when it fails. The outer error is the savepoint's own failure.
async fn under_savepoint(
    c: &Client,
    name: &str,
    work: impl std::future::Future<Output = Result<(), PgTargetError>>,
) -> Result<Result<(), PgTargetError>, PgTargetError> {
    let step = |sql: String| async move { c.batch_execute(&sql).await.ctx(|| sql.clone()) };
    step(format!("SAVEPOINT {name}")).await?;
    match work.await {
        Ok(()) => step(format!("RELEASE SAVEPOINT {name}")).await.map(|()| Ok(())),
        Err(e) => step(format!("ROLLBACK TO SAVEPOINT {name}")).await.map(|()| Err(e)),
    }
}

async fn one_by_one(
    c: &Client,
    integration: &str,
    stage: &Stage,
    batch: &TableBatch,
    soft: bool,
    on_error: OnError,
) -> Result<u64, PgTargetError> {
    let schema = &stage.schema;
    if batch.truncate {
        let mut only = Batch::default();
        only.truncate(&schema.id);
        if let Some(t) = only.tables.get(&schema.id) {
            merge::apply_table(c, stage, t, soft).await?;
        }
    }
    let changes: Vec<ChangeKind> = if schema.key_columns().is_empty() {
        batch.unkeyed.clone()
    } else {
        batch
            .keyed_ops()
            .map(|op| match op {
                KeyedOp::Upsert(row) => ChangeKind::Insert { row: row.clone() },
                KeyedOp::Delete(old) => ChangeKind::Delete { old: old.clone() },
                KeyedOp::Expire(old) => ChangeKind::Expire { old: old.clone() },
                KeyedOp::Move { row, from } => ChangeKind::Update { old: Some(from.clone()), row: row.clone() },
            })
            .collect()
    };
    let mut dead = 0;
    for kind in changes {
        let mut single = Batch::default();
        single.push(schema, Change { table: schema.id.clone(), kind: kind.clone() });
        let Some(one) = single.tables.get(&schema.id) else { continue };
        if let Err(e) = under_savepoint(c, "zetl_change", merge::apply_table(c, stage, one, soft)).await? {
            if !e.is_data_error() {
                return Err(e);
            }
            let (op, row) = match &kind {
                ChangeKind::Insert { row } | ChangeKind::Update { row, .. } => ("upsert", row),
                ChangeKind::Delete { old } | ChangeKind::Expire { old } => ("delete", old),
            };
            let key = schema.describe_key(row);
            if on_error == OnError::Fail {
                return Err(PgTargetError::State(format!(
                    "integration {integration}, table {}, key {key}: the target rejected the change: {e}",
                    schema.id
                )));
            }
            record(c, integration, stage, op, &key, row, &e.to_string()).await?;
            tracing::warn!(table = %schema.id, key = %key, error = %e, "change rejected by the target; kept in _zetl.dead_letters");
            dead += 1;
        }
    }
    Ok(dead)
}

async fn record(
    c: &Client,
    integration: &str,
    stage: &Stage,
    op: &str,
    key: &str,
    row: &Row,
    error: &str,
) -> Result<(), PgTargetError> {
    let mut data = row_json(stage, row);
    if data.is_empty() {
        data = "{}".into();
    }
    c.execute(
        "INSERT INTO _zetl.dead_letters (integration, table_schema, table_name, key, op, row_data, error) \
         VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7)",
        &[&integration, &stage.schema.id.schema, &stage.schema.id.name, &key, &op, &data, &error],
    )
    .await
    .ctx(|| format!("keeping a dead letter of {}", stage.schema.id))?;
    Ok(())
}

/// `{"col": "text", …}`: every column the change carries, as PostgreSQL's input text (null for
/// NULL; columns the source left unchanged are left out).
fn row_json(stage: &Stage, row: &Row) -> String {
    let fields: Vec<String> = stage
        .schema
        .columns
        .iter()
        .zip(row)
        .filter(|(_, v)| !matches!(v, Value::Unchanged))
        .map(|(col, v)| {
            let value = if v.is_null() { "null".to_string() } else { json_string(&literal(v)) };
            format!("{}:{value}", json_string(&col.name))
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    zetl_core::json::push_string(&mut out, s);
    out
}

pub async fn list(c: &Client, integration: &str) -> Result<Vec<DeadLetter>, PgTargetError> {
    let rows = c
        .query(
            "SELECT id, table_schema || '.' || table_name, key, op, error, created_at::text, replayed_at::text \
             FROM _zetl.dead_letters WHERE integration = $1 ORDER BY id",
            &[&integration],
        )
        .await
        .ctx(|| "reading _zetl.dead_letters".into())?;
    Ok(rows
        .iter()
        .map(|r| DeadLetter {
            id: r.get(0),
            table: r.get(1),
            key: r.get(2),
            op: r.get(3),
            error: r.get(4),
            created_at: r.get(5),
            replayed_at: r.get(6),
        })
        .collect())
}

/// Applies every dead letter not yet replayed (or only `ids`), each in its own transaction,
/// into the (quoted) table `target_table(schema, name)` names; returns how many were applied
/// and (id, error) of the ones that failed again.
pub async fn replay(
    c: &Client,
    integration: &str,
    ids: &[i64],
    target_table: impl Fn(&str, &str) -> String,
) -> Result<(u64, Vec<(i64, String)>), PgTargetError> {
    let rows = c
        .query(
            "SELECT id, table_schema, table_name, op, row_data::text FROM _zetl.dead_letters \
             WHERE integration = $1 AND replayed_at IS NULL AND (cardinality($2::int8[]) = 0 OR id = ANY($2)) ORDER BY id",
            &[&integration, &ids],
        )
        .await
        .ctx(|| "reading _zetl.dead_letters".into())?;
    let (mut done, mut failed) = (0, Vec::new());
    let mut keys_of: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        let (id, schema, name, op, data): (i64, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let target = target_table(&schema, &name);
        if !keys_of.contains_key(&target) {
            let keys = primary_key(c, &target).await?;
            keys_of.insert(target.clone(), keys);
        }
        let keys = keys_of.get(&target).map(Vec::as_slice).unwrap_or_default();
        match replay_one(c, &target, keys, &op, &data, id).await {
            Ok(()) => done += 1,
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK").await;
                failed.push((id, e.to_string()));
            }
        }
    }
    Ok((done, failed))
}

/// The primary-key columns of a (quoted) target table.
async fn primary_key(c: &Client, target: &str) -> Result<Vec<String>, PgTargetError> {
    Ok(c
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
            &[&target],
        )
        .await
        .ctx(|| format!("reading the primary key of {target}"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

async fn replay_one(
    c: &Client,
    target: &str,
    keys: &[String],
    op: &str,
    data: &str,
    id: i64,
) -> Result<(), PgTargetError> {
    let what = || format!("replaying dead letter {id} into {target}");
    let present: Vec<String> = c
        .query("SELECT jsonb_object_keys($1::text::jsonb)", &[&data])
        .await
        .ctx(what)?
        .iter()
        .map(|r| ident(&r.get::<_, String>(0)))
        .collect();
    let record = format!("jsonb_populate_record(NULL::{target}, $1::text::jsonb)");
    let key_list = keys.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ");
    let sql = match (op, keys.is_empty()) {
        ("delete", false) => format!("DELETE FROM {target} WHERE ({key_list}) = (SELECT {key_list} FROM {record})"),
        ("delete", true) => {
            let cond =
                present.iter().map(|c| format!("t.{c} IS NOT DISTINCT FROM r.{c}")).collect::<Vec<_>>().join(" AND ");
            format!(
                "DELETE FROM {target} WHERE ctid = (SELECT t.ctid FROM {target} t, {record} r WHERE {cond} LIMIT 1)"
            )
        }
        (_, false) => {
            let cols = present.join(", ");
            let sets: Vec<String> = present.iter().map(|c| format!("{c} = excluded.{c}")).collect();
            format!(
                "INSERT INTO {target} ({cols}) SELECT {cols} FROM {record} ON CONFLICT ({key_list}) DO UPDATE SET {}",
                sets.join(", ")
            )
        }
        (_, true) => format!("INSERT INTO {target} ({cols}) SELECT {cols} FROM {record}", cols = present.join(", ")),
    };
    c.batch_execute("BEGIN").await.ctx(what)?;
    c.execute(&sql, &[&data]).await.ctx(what)?;
    c.execute("UPDATE _zetl.dead_letters SET replayed_at = now() WHERE id = $1", &[&id]).await.ctx(what)?;
    c.batch_execute("COMMIT").await.ctx(what)?;
    Ok(())
}
