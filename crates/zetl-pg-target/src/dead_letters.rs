//! Changes the target rejects. A table's batch runs under a savepoint; when it fails, its
//! changes are applied one by one (each under a savepoint of its own) to find the ones at
//! fault. With `on_error: fail` the first is reported with its key and cause; with
//! `dead_letter` each goes to `_zetl.dead_letters` — every column's value as PostgreSQL text —
//! and the rest is applied. `zetl dead-letters replay` applies them again later, with
//! `jsonb_populate_record` turning the texts back into the table's own types.
//!
//! A letter is replayed only while no later change to its key has been applied: a change to
//! its key applied after it (upsert, delete, either key of a move), a truncate or a new copy of
//! its table marks it superseded in the same target transaction, as does the replay of a later
//! letter of its key. Keys are compared as `jsonb_build_object` of the staged, typed key
//! columns (`key_data`); positions are never compared.

use crate::error::{PgTargetError, SqlContext};
use crate::merge::{self, quote, Stage};
use crate::types::{ident, literal, pg_type};
use std::collections::{HashMap, HashSet};
use tokio_postgres::Client;
use zetl_core::apply::{DeadLetter, OnError};
use zetl_core::batch::{Batch, KeyedOp, TableBatch};
use zetl_core::{Change, ChangeKind, Row, TableId, Value};

/// Why a letter is superseded, as `dead-letters list` shows it.
pub const LATER_CHANGE: &str = "a later change to this key was applied";
pub const TRUNCATED: &str = "the table was truncated at the source after it";
pub const COPIED: &str = "the table was copied again after it";

const PENDING: &str = "d.replayed_at IS NULL AND d.superseded_at IS NULL";

/// The (source) tables that have letters still to replay: only their batches look for letters
/// to supersede.
pub async fn pending_tables(c: &Client, integration: &str) -> Result<HashSet<TableId>, PgTargetError> {
    let rows = c
        .query(
            &format!("SELECT DISTINCT table_schema, table_name FROM _zetl.dead_letters d WHERE integration = $1 AND {PENDING}"),
            &[&integration],
        )
        .await
        .ctx(|| "reading _zetl.dead_letters".into())?;
    Ok(rows.iter().map(|r| TableId::new(r.get::<_, String>(0), r.get::<_, String>(1))).collect())
}

/// `jsonb_build_object('k', <k>, …)` over the key columns, `staged(index, quoted name)` naming
/// each (a staged row's new key, or a move's old key).
fn key_object(stage: &Stage, staged: impl Fn(usize, &str) -> String) -> Option<String> {
    let schema = &stage.schema;
    let keys = schema.key_columns();
    if keys.is_empty() {
        return None;
    }
    let parts: Vec<String> = keys
        .iter()
        .map(|&k| {
            let name = &schema.columns[k].name;
            format!("{}, {}", quote(name), staged(k, &ident(name)))
        })
        .collect();
    Some(format!("jsonb_build_object({})", parts.join(", ")))
}

/// Marks superseded the pending letters whose key a staged row (upserts, deletes, both keys of
/// a move) changes.
pub async fn supersede_staged(c: &Client, integration: &str, stage: &Stage) -> Result<u64, PgTargetError> {
    let (Some(new_key), Some(old_key)) =
        (key_object(stage, |_, n| format!("s.{n}")), key_object(stage, |k, _| format!("s._zetl_from_{k}")))
    else {
        return Ok(0);
    };
    let id = &stage.schema.id;
    c.execute(
        &format!(
            "UPDATE _zetl.dead_letters d SET superseded_at = now(), superseded_by = $4 \
             WHERE d.integration = $1 AND d.table_schema = $2 AND d.table_name = $3 AND {PENDING} \
             AND d.key_data IN (SELECT {new_key} FROM {staged} s UNION SELECT {old_key} FROM {staged} s WHERE s._zetl_op = 2)",
            staged = stage.staged(),
        ),
        &[&integration, &id.schema, &id.name, &LATER_CHANGE],
    )
    .await
    .ctx(|| format!("superseding dead letters of {id}"))
}

/// Marks superseded every pending letter of `table` (`why`: truncated, copied again).
pub async fn supersede_table(c: &Client, integration: &str, table: &TableId, why: &str) -> Result<u64, PgTargetError> {
    c.execute(
        &format!(
            "UPDATE _zetl.dead_letters d SET superseded_at = now(), superseded_by = $4 \
             WHERE d.integration = $1 AND d.table_schema = $2 AND d.table_name = $3 AND {PENDING}"
        ),
        &[&integration, &table.schema, &table.name, &why],
    )
    .await
    .ctx(|| format!("superseding dead letters of {table}"))
}

/// The letters of table `from` are `to`'s (a table filled aside replaced `to`).
pub async fn move_table(c: &Client, integration: &str, from: &TableId, to: &TableId) -> Result<u64, PgTargetError> {
    c.execute(
        "UPDATE _zetl.dead_letters SET table_schema = $4, table_name = $5 \
         WHERE integration = $1 AND table_schema = $2 AND table_name = $3",
        &[&integration, &from.schema, &from.name, &to.schema, &to.name],
    )
    .await
    .ctx(|| format!("moving the dead letters of {from} to {to}"))
}

/// Stamps the open transaction's new dead letters, and the letters it superseded, with the
/// position it commits at.
pub async fn set_position(c: &Client, integration: &str, position: &str) -> Result<(), PgTargetError> {
    c.execute(
        "UPDATE _zetl.dead_letters SET position = $1 WHERE position IS NULL AND integration = $2",
        &[&position, &integration],
    )
    .await
    .ctx(|| "positioning dead letters".into())?;
    c.execute(
        "UPDATE _zetl.dead_letters SET superseded_position = $1 \
         WHERE superseded_at IS NOT NULL AND superseded_position IS NULL AND integration = $2",
        &[&position, &integration],
    )
    .await
    .ctx(|| "positioning superseded dead letters".into())?;
    Ok(())
}

/// Applies a table's batch; returns how many changes became dead letters.
pub async fn apply_guarded(
    c: &Client,
    integration: &str,
    stage: &Stage,
    batch: &TableBatch,
    soft: bool,
    on_error: OnError,
    letters_pending: bool,
) -> Result<u64, PgTargetError> {
    let letters = letters_pending.then_some(integration);
    match under_savepoint(c, "zetl_table", merge::apply_table(c, stage, batch, soft, letters)).await? {
        Ok(()) => Ok(0),
        // A lock or statement timeout, a deadlock, a lost connection: no verdict on the rows.
        Err(e) if !e.is_data_error() => Err(e),
        Err(batch_error) => {
            tracing::debug!(table = %stage.schema.id, error = %batch_error, "batch rejected; applying its changes one by one");
            one_by_one(c, integration, stage, batch, soft, on_error, letters).await
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
    letters: Option<&str>,
) -> Result<u64, PgTargetError> {
    let schema = &stage.schema;
    if batch.truncate {
        let mut only = Batch::default();
        only.truncate(&schema.id);
        if let Some(t) = only.tables.get(&schema.id) {
            merge::apply_table(c, stage, t, soft, letters).await?;
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
    // Kept once every change was tried: a change of this batch applied after a rejected one
    // (the old key of a move, say) must not supersede the letter of a change it preceded.
    let mut rejected = Vec::new();
    for kind in changes {
        let mut single = Batch::default();
        single.push(schema, Change { table: schema.id.clone(), kind: kind.clone() });
        let Some(one) = single.tables.get(&schema.id) else { continue };
        if let Err(e) = under_savepoint(c, "zetl_change", merge::apply_table(c, stage, one, soft, letters)).await? {
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
            tracing::warn!(table = %schema.id, key = %key, error = %e, "change rejected by the target; kept in _zetl.dead_letters");
            rejected.push((op, key, row.clone(), e.to_string()));
        }
    }
    for (op, key, row, error) in &rejected {
        record(c, integration, stage, op, key, row, error).await?;
    }
    Ok(rejected.len() as u64)
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
    let key_data = key_data(c, stage, row).await?;
    let types: Vec<String> = stage
        .schema
        .columns
        .iter()
        .map(|c| format!("{}:{}", json_string(&c.name), json_string(&pg_type(&c.ty))))
        .collect();
    let types = format!("{{{}}}", types.join(","));
    c.execute(
        "INSERT INTO _zetl.dead_letters (integration, table_schema, table_name, key, op, row_data, error, key_data, column_types) \
         VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8::text::jsonb, $9::text::jsonb)",
        &[&integration, &stage.schema.id.schema, &stage.schema.id.name, &key, &op, &data, &error, &key_data, &types],
    )
    .await
    .ctx(|| format!("keeping a dead letter of {}", stage.schema.id))?;
    Ok(())
}

/// The letter's key as later batches compare theirs: the row staged as they are, its key
/// columns through `jsonb_build_object`. None for a keyless table, or (logged) when the row
/// cannot be staged again: such a letter is superseded only by a truncate or a new copy.
async fn key_data(c: &Client, stage: &Stage, row: &Row) -> Result<Option<String>, PgTargetError> {
    let Some(object) = key_object(stage, |_, n| format!("s.{n}")) else { return Ok(None) };
    let mut found = None;
    let work = async {
        stage.load(c, std::iter::once((0, row, None))).await?;
        let r = c
            .query_one(&format!("SELECT ({object})::text FROM {} s", stage.staged()), &[])
            .await
            .ctx(|| format!("reading the key of a dead letter of {}", stage.schema.id))?;
        found = Some(r.get::<_, String>(0));
        stage.clear(c).await
    };
    if let Err(e) = under_savepoint(c, "zetl_key", work).await? {
        tracing::warn!(table = %stage.schema.id, error = %e, "cannot keep the key of a dead letter: later changes to it will not supersede it");
        found = None;
    }
    Ok(found)
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
            "SELECT id, table_schema || '.' || table_name, key, op, error, created_at::text, replayed_at::text, \
             superseded_at::text, superseded_by || coalesce(' (source position ' || superseded_position || ')', '') \
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
            superseded_at: r.get(7),
            superseded_by: r.get(8),
        })
        .collect())
}

/// Applies every dead letter neither replayed nor superseded (or only `ids`), each in its own
/// transaction, oldest first, into the (quoted) table `target_table(schema, name)` names;
/// returns how many were applied and (id, error) of the ones that failed again.
pub async fn replay(
    c: &Client,
    integration: &str,
    ids: &[i64],
    target_table: impl Fn(&str, &str) -> String,
) -> Result<(u64, Vec<(i64, String)>), PgTargetError> {
    let rows = c
        .query(
            &format!(
                "SELECT id, table_schema, table_name FROM _zetl.dead_letters d \
                 WHERE integration = $1 AND {PENDING} AND (cardinality($2::int8[]) = 0 OR id = ANY($2)) ORDER BY id"
            ),
            &[&integration, &ids],
        )
        .await
        .ctx(|| "reading _zetl.dead_letters".into())?;
    let (mut done, mut failed) = (0, Vec::new());
    let mut keys_of: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        let (id, schema, name): (i64, String, String) = (r.get(0), r.get(1), r.get(2));
        let target = target_table(&schema, &name);
        if !keys_of.contains_key(&target) {
            let keys = primary_key(c, &target).await?;
            keys_of.insert(target.clone(), keys);
        }
        let keys = keys_of.get(&target).map(Vec::as_slice).unwrap_or_default();
        match replay_one(c, &target, keys, id).await {
            Ok(_) => done += 1,
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

/// Applies letter `id` unless it was superseded meanwhile (false then). The letter's row is
/// locked first, as a running `zetl run` locks it before superseding it, so the two take turns.
async fn replay_one(c: &Client, target: &str, keys: &[String], id: i64) -> Result<bool, PgTargetError> {
    let what = || format!("replaying dead letter {id} into {target}");
    c.batch_execute("BEGIN").await.ctx(what)?;
    let Some(letter) = c
        .query_opt(
            &format!(
                "SELECT op, row_data::text, column_types::text FROM _zetl.dead_letters d WHERE id = $1 AND {PENDING} FOR UPDATE"
            ),
            &[&id],
        )
        .await
        .ctx(what)?
    else {
        c.batch_execute("ROLLBACK").await.ctx(what)?;
        return Ok(false);
    };
    let (op, data, types): (String, String, Option<String>) = (letter.get(0), letter.get(1), letter.get(2));
    let present: Vec<String> = c
        .query("SELECT jsonb_object_keys($1::text::jsonb)", &[&data])
        .await
        .ctx(what)?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    if let Some(types) = &types {
        refuse_changed_values(c, target, id, &data, types).await?;
    }
    let present: Vec<String> = present.iter().map(|n| ident(n)).collect();
    let record = format!("jsonb_populate_record(NULL::{target}, $1::text::jsonb)");
    let key_list = keys.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ");
    let sql = match (op.as_str(), keys.is_empty()) {
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
    c.execute(&sql, &[&data]).await.ctx(what)?;
    c.execute("UPDATE _zetl.dead_letters SET replayed_at = now() WHERE id = $1", &[&id]).await.ctx(what)?;
    // Older letters of the same key are stale now.
    c.execute(
        &format!(
            "UPDATE _zetl.dead_letters d SET superseded_at = now(), superseded_by = $2, superseded_position = l.position \
             FROM _zetl.dead_letters l WHERE l.id = $1 AND d.integration = l.integration \
             AND d.table_schema = l.table_schema AND d.table_name = l.table_name AND d.key_data = l.key_data \
             AND d.id < l.id AND {PENDING}"
        ),
        &[&id, &format!("dead letter {id} of the same key was replayed after it")],
    )
    .await
    .ctx(what)?;
    c.batch_execute("COMMIT").await.ctx(what)?;
    Ok(true)
}

/// A letter's values are cast into the table's column types as they are now; PostgreSQL rounds
/// on the way into a narrower column (numeric(5,1), real). A value that would not be stored as
/// it was (`types`: the letter's staged type of each column) is refused, naming it.
async fn refuse_changed_values(
    c: &Client,
    target: &str,
    id: i64,
    data: &str,
    types: &str,
) -> Result<(), PgTargetError> {
    let what = || format!("checking dead letter {id} against the column types of {target}");
    let narrowed = c
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), ty.value FROM pg_attribute a \
             JOIN jsonb_each_text($2::text::jsonb) ty ON ty.key = a.attname \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             AND ($3::text::jsonb ->> a.attname::text) IS NOT NULL",
            &[&target, &types, &data],
        )
        .await
        .ctx(what)?;
    for r in narrowed {
        let (column, to, from): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if to == from {
            continue;
        }
        let value = format!("($1::text::jsonb ->> {})::{from}", quote(&column));
        let check = c
            .query_one(
                &format!(
                    "SELECT ({value})::{to}::{from} IS DISTINCT FROM {value}, ({value})::text, ({value})::{to}::text"
                ),
                &[&data],
            )
            .await
            .ctx(what)?;
        if check.get::<_, bool>(0) {
            return Err(PgTargetError::State(format!(
                "dead letter {id}: value {} cannot be stored exactly in column {column} ({to}) of {target}: it would become {}; widen the column first",
                check.get::<_, String>(1),
                check.get::<_, String>(2)
            )));
        }
    }
    Ok(())
}
