//! A DynamoDB table (read through moto with boto3, `python/dynamo.py dump`) against its DuckDB
//! copy: every item, as DynamoDB typed JSON, equal to the target's `item` column, and the key
//! columns equal to the item's keys. Sets compare as sets.

use crate::compare::open_target;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The test driver script (`create`, `fill`, `mutate`, `churn`, `dump`).
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("dynamo.py")
}

/// Runs the driver against `endpoint`; its stdout. Panics with its stderr on failure.
pub fn dynamo(endpoint: &str, args: &[&str]) -> String {
    let out = Command::new("python3").arg(script()).arg(endpoint).args(args).output().expect("run python3");
    assert!(out.status.success(), "dynamo.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Panics, naming the first differences, unless the DuckDB target holds exactly the table's
/// items.
pub fn assert_dynamo_equal(endpoint: &str, table: &str, duckdb_path: &Path) {
    let duck = open_target(duckdb_path).unwrap_or_else(|e| panic!("{e}"));
    let sql =
        format!("SELECT CAST(pk AS VARCHAR), CAST(sk AS VARCHAR), CAST(item AS VARCHAR) FROM dynamodb.\"{table}\"");
    let mut stmt = duck.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_items_equal(endpoint, table, rows);
}

/// [`assert_dynamo_equal`] for a PostgreSQL target at `url` (its `dynamodb` schema).
pub fn assert_dynamo_pg_equal(endpoint: &str, table: &str, url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let pg = crate::compare::connect_pg(&runtime, url).unwrap_or_else(|e| panic!("{e}"));
    let sql = format!("SELECT pk::text, sk::text, item::text FROM dynamodb.\"{table}\"");
    let rows = runtime.block_on(pg.query(&sql, &[])).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_items_equal(endpoint, table, rows);
}

/// The table's items, dumped from DynamoDB, against the target's (pk, sk, item) rows.
fn assert_items_equal(endpoint: &str, table: &str, rows: Vec<(String, String, String)>) {
    let source: BTreeMap<String, Value> = dynamo(endpoint, &["dump", table])
        .lines()
        .map(|line| {
            let item: Value = serde_json::from_str(line).expect("dump line is JSON");
            (key_of(&item), normalize(item))
        })
        .collect();
    let mut target = BTreeMap::new();
    for (pk, sk, item) in rows {
        let item: Value =
            serde_json::from_str(&item).unwrap_or_else(|e| panic!("target item is not JSON ({e}): {item}"));
        let key = key_of(&item);
        assert_eq!(key, format!("{pk}/{sk}"), "key columns differ from the item's keys");
        assert!(target.insert(key.clone(), normalize(item)).is_none(), "item {key} twice at the target");
    }
    let mut problems = Vec::new();
    for (key, item) in &source {
        match target.get(key) {
            None => problems.push(format!("missing at the target: {key}")),
            Some(t) if t != item => problems.push(format!("differs: {key}\n  source {item}\n  target {t}")),
            Some(_) => {}
        }
    }
    problems.extend(target.keys().filter(|k| !source.contains_key(*k)).map(|k| format!("only at the target: {k}")));
    assert!(
        problems.is_empty(),
        "table {table}: {} of {} items differ:\n{}",
        problems.len(),
        source.len(),
        problems.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn key_of(item: &Value) -> String {
    let part = |k: &str| {
        item[k].as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap_or("?").to_string()
    };
    format!("{}/{}", part("pk"), part("sk"))
}

/// Sorts the members of sets (DynamoDB keeps no order in them).
fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("SS" | "NS" | "BS", Value::Array(mut a)) => {
                            a.sort_by_key(|x| x.to_string());
                            Value::Array(a)
                        }
                        (_, v) => normalize(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        other => other,
    }
}
