//! Whole-table comparison of a PostgreSQL source table with its DuckDB copy.
//!
//! Both sides are read completely, every value is turned into a canonical text per the
//! *source* column's type (PostgreSQL and DuckDB print some types differently), rows are
//! sorted by those texts (primary-key columns first when the source table has a primary key)
//! and walked in step. The first difference is reported with the row's key, the column and
//! both values, together with both row counts.
//!
//! Normalisation by source type:
//! - `bool`: `t`/`f` and `true`/`false`;
//! - `float4` / `float8`: parsed (`NaN` equals `NaN`, `Infinity` equals `inf`);
//! - `numeric`: trailing zeros after the point are dropped (`1.50` equals `1.5`);
//! - `bytea`: compared as bytes (PostgreSQL's hex output; DuckDB's `hex(blob)`);
//! - `interval`: parsed into (months, days, microseconds), so `1 year 2 mons` (PostgreSQL's
//!   `postgres` style) equals `1 year 2 months` (DuckDB);
//! - arrays: `array_to_json(c)` at the source and `to_json(c)` at the target, compared as JSON
//!   with every number compared as f64;
//! - `json` / `jsonb`: compared as parsed JSON (object key order and whitespace do not matter);
//! - anything else (integers, text, dates, times, timestamps, uuids, enums...): as text, with
//!   both sessions in UTC and ISO date style.
//!
//! Columns that only the target has (dropped at the source) are ignored; a source column the
//! target lacks, or a missing target table, is a difference. Generated columns are skipped:
//! PostgreSQL 15 does not replicate them.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use duckdb::{AccessMode, Config, Connection};
use serde_json::Value as Json;
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// How long a value may be in a report before it is cut.
const SHOW_CHARS: usize = 120;

/// Compares every table in `tables` (`"schema.table"`) between the PostgreSQL database at
/// `pg_url` and the DuckDB file at `duckdb_path` (opened read-only: zetl must be stopped),
/// and panics naming every table that differs, with its first differing row.
pub fn assert_tables_equal(pg_url: &str, duckdb_path: &Path, tables: &[&str]) {
    assert_tables_equal_where(pg_url, duckdb_path, tables, "");
}

/// Like [`assert_tables_equal`], reading only the target rows that pass `target_filter` (SQL,
/// e.g. `NOT _zetl_deleted` for soft-delete tables; empty for all).
pub fn assert_tables_equal_where(pg_url: &str, duckdb_path: &Path, tables: &[&str], target_filter: &str) {
    let mut comparer = match Comparer::open(pg_url, duckdb_path) {
        Ok(c) => c,
        Err(e) => panic!("cannot compare source and target: {e}"),
    };
    comparer.target_filter = target_filter.to_string();
    let failures: Vec<String> = tables.iter().filter_map(|t| comparer.compare(t).err()).collect();
    if !failures.is_empty() {
        panic!("source and target differ ({} of {} tables):\n{}", failures.len(), tables.len(), failures.join("\n"));
    }
}

/// Compares one table (`"schema.table"`); `Err` describes the first difference.
pub fn compare_table(pg_url: &str, duckdb_path: &Path, table: &str) -> Result<(), String> {
    Comparer::open(pg_url, duckdb_path)?.compare(table)
}

/// Open connections to both sides, for comparing several tables.
pub struct Comparer {
    runtime: Runtime,
    pg: Client,
    duck: Connection,
    /// SQL condition on target rows; empty for all.
    pub target_filter: String,
}

impl Comparer {
    /// Connects to PostgreSQL (session in UTC, ISO dates, hex bytea) and opens the DuckDB file
    /// read-only.
    pub fn open(pg_url: &str, duckdb_path: &Path) -> Result<Comparer, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
        let pg = connect_pg(&runtime, pg_url)?;
        Ok(Comparer { runtime, pg, duck: open_target(duckdb_path)?, target_filter: String::new() })
    }

    /// Compares one table (`"schema.table"`); `Err` describes the first difference.
    pub fn compare(&self, table: &str) -> Result<(), String> {
        let (schema, name) = table.split_once('.').ok_or_else(|| format!("{table}: expected `schema.table`"))?;
        let qualified = format!("{}.{}", ident(schema), ident(name));
        let columns = pg_columns(&self.runtime, &self.pg, table, &qualified)?;
        let target_types = target_columns(&self.duck, schema, name)?;
        if target_types.is_empty() {
            return Err(format!("{table}: the table does not exist at the target"));
        }
        let missing: Vec<&str> =
            columns.iter().filter(|c| !target_types.contains_key(&c.name)).map(|c| c.name.as_str()).collect();
        if !missing.is_empty() {
            return Err(format!(
                "{table}: column(s) {} missing at the target (target has: {})",
                missing.join(", "),
                sorted_keys(&target_types)
            ));
        }
        let source = read_pg(&self.runtime, &self.pg, table, &qualified, &columns, "")?;
        let target = read_target(&self.duck, table, &qualified, &columns, &target_types, &self.target_filter)?;
        diff(table, &columns, source, target)
    }
}

/// A PostgreSQL session printing values the way the comparison expects (UTC, ISO dates,
/// `postgres` intervals, hex bytea, exact floats).
pub(crate) fn connect_pg(runtime: &Runtime, url: &str) -> Result<Client, String> {
    runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(url, NoTls).await.map_err(|e| format!("cannot connect to {url}: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
            .batch_execute(
                "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; \
                 SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; \
                 SET bytea_output = 'hex'",
            )
            .await
            .map_err(|e| format!("cannot set up the session: {e}"))?;
        Ok(client)
    })
}

/// The columns of a PostgreSQL table, with how to normalise their values.
pub(crate) fn pg_columns(
    runtime: &Runtime,
    pg: &Client,
    table: &str,
    qualified: &str,
) -> Result<Vec<SourceColumn>, String> {
    let err = |e: tokio_postgres::Error| format!("{table}: reading the source columns: {e}");
    runtime.block_on(async {
        let rows = pg
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                        coalesce(bt.typname, t.typname)::text, \
                        coalesce(bt.typcategory, t.typcategory)::text, \
                        coalesce(ix.indisprimary, false) \
                 FROM pg_attribute a \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
                 LEFT JOIN pg_index ix ON ix.indrelid = a.attrelid AND ix.indisprimary \
                      AND a.attnum = ANY (ix.indkey) \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 \
                   AND NOT a.attisdropped AND a.attgenerated = '' \
                 ORDER BY a.attnum",
                &[&qualified],
            )
            .await
            .map_err(err)?;
        if rows.is_empty() {
            return Err(format!("{table}: the source table has no columns"));
        }
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let source_type: String = r.get(1);
                let base: String = r.get(2);
                let category: String = r.get(3);
                SourceColumn { kind: Kind::of(&base, &category), name, source_type, key: r.get(4) }
            })
            .collect())
    })
}

/// Every row of a PostgreSQL table passing `filter` (SQL; empty for all), normalised.
pub(crate) fn read_pg(
    runtime: &Runtime,
    pg: &Client,
    table: &str,
    qualified: &str,
    columns: &[SourceColumn],
    filter: &str,
) -> Result<Vec<Row>, String> {
    let exprs: Vec<String> = columns
        .iter()
        .map(|c| match c.kind {
            Kind::Array => format!("array_to_json({})::text", ident(&c.name)),
            // The type's own output (a `::text` cast would trim char(n) padding).
            _ => ident(&c.name),
        })
        .collect();
    let filter = if filter.is_empty() { String::new() } else { format!(" WHERE {filter}") };
    let sql = format!("SELECT {} FROM {qualified}{filter}", exprs.join(", "));
    let messages = runtime.block_on(pg.simple_query(&sql)).map_err(|e| format!("{table}: reading the source: {e}"))?;
    let mut rows = Vec::new();
    for m in messages {
        if let SimpleQueryMessage::Row(r) = m {
            let raw: Vec<Option<String>> = (0..columns.len()).map(|i| r.get(i).map(str::to_owned)).collect();
            rows.push(Row::new(columns, raw, Side::Source));
        }
    }
    Ok(rows)
}

/// Opens the DuckDB file read-only: zetl must be stopped.
pub(crate) fn open_target(duckdb_path: &Path) -> Result<Connection, String> {
    let config = Config::default().access_mode(AccessMode::ReadOnly).map_err(|e| format!("duckdb config: {e}"))?;
    let duck = Connection::open_with_flags(duckdb_path, config)
        .map_err(|e| format!("cannot open {} read-only (is zetl still running?): {e}", duckdb_path.display()))?;
    // Without the ICU extension there is no TimeZone setting, and TIMESTAMPTZ prints in
    // UTC anyway.
    let _ = duck.execute_batch("SET TimeZone = 'UTC'");
    Ok(duck)
}

pub(crate) fn target_columns(duck: &Connection, schema: &str, name: &str) -> Result<HashMap<String, String>, String> {
    let err = |e: duckdb::Error| format!("{schema}.{name}: reading the target columns: {e}");
    let mut stmt = duck
        .prepare(
            "SELECT column_name, data_type FROM duckdb_columns() \
             WHERE database_name = current_database() AND schema_name = ? AND table_name = ?",
        )
        .map_err(err)?;
    let rows = stmt.query_map([schema, name], |r| Ok((r.get(0)?, r.get(1)?))).map_err(err)?;
    rows.collect::<Result<HashMap<String, String>, _>>().map_err(err)
}

pub(crate) fn read_target(
    duck: &Connection,
    table: &str,
    qualified: &str,
    columns: &[SourceColumn],
    target_types: &HashMap<String, String>,
    filter: &str,
) -> Result<Vec<Row>, String> {
    let exprs: Vec<String> = columns
        .iter()
        .map(|c| {
            let n = ident(&c.name);
            let ty = target_types[&c.name].to_ascii_uppercase();
            if ty == "BLOB" {
                format!("hex({n})")
            } else if ty.ends_with(']') || ty.starts_with("STRUCT") || ty.starts_with("MAP") || ty.starts_with("LIST") {
                format!("CAST(to_json({n}) AS VARCHAR)")
            } else {
                format!("CAST({n} AS VARCHAR)")
            }
        })
        .collect();
    let filter = if filter.is_empty() { String::new() } else { format!(" WHERE {filter}") };
    let sql = format!("SELECT {} FROM {qualified}{filter}", exprs.join(", "));
    let err = |e: duckdb::Error| format!("{table}: reading the target: {e}");
    let mut stmt = duck.prepare(&sql).map_err(err)?;
    let mut result = stmt.query([]).map_err(err)?;
    let mut rows = Vec::new();
    while let Some(r) = result.next().map_err(err)? {
        let raw =
            (0..columns.len()).map(|i| r.get::<_, Option<String>>(i)).collect::<Result<Vec<_>, _>>().map_err(err)?;
        rows.push(Row::new(columns, raw, Side::Target));
    }
    Ok(rows)
}

#[derive(Debug)]
pub(crate) struct SourceColumn {
    pub(crate) name: String,
    /// The source column's type as the source names it, for reports.
    pub(crate) source_type: String,
    pub(crate) kind: Kind,
    /// Part of the source table's primary key.
    pub(crate) key: bool,
}

/// How values of a column are normalised before they are compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Bool,
    Float32,
    Float64,
    Numeric,
    Bytes,
    Interval,
    Json,
    Array,
    /// MySQL DATETIME / TIMESTAMP: fraction digits vary with the column's precision.
    Timestamp,
    Text,
}

impl Kind {
    fn of(base_type: &str, category: &str) -> Kind {
        if category == "A" {
            return Kind::Array;
        }
        match base_type {
            "bool" => Kind::Bool,
            "float4" => Kind::Float32,
            "float8" => Kind::Float64,
            "numeric" => Kind::Numeric,
            "bytea" => Kind::Bytes,
            "interval" => Kind::Interval,
            "json" | "jsonb" => Kind::Json,
            _ => Kind::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Side {
    Source,
    Target,
}

pub(crate) struct Row {
    raw: Vec<Option<String>>,
    norm: Vec<Option<String>>,
}

impl Row {
    pub(crate) fn new(columns: &[SourceColumn], raw: Vec<Option<String>>, side: Side) -> Row {
        let norm = columns.iter().zip(&raw).map(|(c, v)| v.as_deref().map(|v| normalize(c.kind, side, v))).collect();
        Row { raw, norm }
    }
}

/// The canonical text of one value; a value that does not parse stays as it is (and then
/// most likely differs from the other side, which the report shows).
fn normalize(kind: Kind, side: Side, text: &str) -> String {
    match kind {
        Kind::Bool => match text {
            "t" | "true" | "1" => "true".into(),
            "f" | "false" | "0" => "false".into(),
            _ => text.into(),
        },
        Kind::Float32 => match text.parse::<f32>() {
            Ok(f) => float_text(f64::from(f)),
            Err(_) => text.into(),
        },
        Kind::Float64 => match text.parse::<f64>() {
            Ok(f) => float_text(f),
            Err(_) => text.into(),
        },
        Kind::Numeric => numeric_text(text),
        Kind::Bytes => {
            let hex = match side {
                Side::Source => text.strip_prefix("\\x").unwrap_or(text),
                Side::Target => text,
            };
            format!("\\x{}", hex.to_ascii_lowercase())
        }
        Kind::Interval => match parse_interval(text) {
            Some((months, days, micros)) => format!("{months} months {days} days {micros} us"),
            None => text.into(),
        },
        Kind::Json | Kind::Array => match serde_json::from_str::<Json>(text) {
            Ok(v) => {
                let mut out = String::new();
                canonical_json(&v, &mut out);
                out
            }
            Err(_) => text.into(),
        },
        Kind::Timestamp => {
            let t = text.strip_suffix("+00").unwrap_or(text);
            match t.split_once('.') {
                Some((whole, frac)) if frac.trim_end_matches('0').is_empty() => whole.into(),
                Some((whole, frac)) => format!("{whole}.{}", frac.trim_end_matches('0')),
                None => t.into(),
            }
        }
        Kind::Text => text.into(),
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else {
        format!("{f:?}")
    }
}

/// `12.50` → `12.5`, `3.00` → `3`, `+1` → `1`, `-0.0` → `0`.
fn numeric_text(text: &str) -> String {
    let t = text.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    let mut s = t.to_string();
    if s.contains('.') && s.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// PostgreSQL (`postgres` IntervalStyle) and DuckDB interval text → (months, days, µs).
/// Both print `[N year[s]] [N mon[s]|month[s]] [N day[s]] [[-|+]HH:MM:SS[.ffffff]]`.
fn parse_interval(text: &str) -> Option<(i64, i64, i64)> {
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let mut tokens = text.split_whitespace().peekable();
    if tokens.peek() == Some(&"@") {
        tokens.next();
    }
    while let Some(tok) = tokens.next() {
        if tok.contains(':') {
            let (sign, hms) = match tok.as_bytes()[0] {
                b'-' => (-1, &tok[1..]),
                b'+' => (1, &tok[1..]),
                _ => (1, tok),
            };
            let mut parts = hms.split(':');
            let h: i64 = parts.next()?.parse().ok()?;
            let m: i64 = parts.next()?.parse().ok()?;
            let s = parts.next().unwrap_or("0");
            if parts.next().is_some() {
                return None;
            }
            let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
            let whole: i64 = whole.parse().ok()?;
            if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let frac: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().ok()? };
            micros += sign * (((h * 60 + m) * 60 + whole) * 1_000_000 + frac);
            continue;
        }
        let n: i64 = tok.strip_prefix('+').unwrap_or(tok).parse().ok()?;
        match tokens.next()?.trim_end_matches('s') {
            "year" => months += 12 * n,
            "mon" | "month" => months += n,
            "day" => days += n,
            "hour" => micros += n * 3_600_000_000,
            "min" | "minute" => micros += n * 60_000_000,
            "sec" | "second" => micros += n * 1_000_000,
            _ => return None,
        }
    }
    Some((months, days, micros))
}

/// JSON text with object keys sorted and every number written as an f64.
fn canonical_json(v: &Json, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => match n.as_f64() {
            Some(f) => out.push_str(&float_text(f)),
            None => out.push_str(&n.to_string()),
        },
        Json::String(s) => out.push_str(&Json::String(s.clone()).to_string()),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
    }
}

/// Sorts both sides and reports the first difference.
pub(crate) fn diff(
    table: &str,
    columns: &[SourceColumn],
    mut source: Vec<Row>,
    mut target: Vec<Row>,
) -> Result<(), String> {
    let key: Vec<usize> = {
        let k: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].key).collect();
        if k.is_empty() {
            (0..columns.len()).collect()
        } else {
            k
        }
    };
    let keyed = columns.iter().any(|c| c.key);
    let key_cmp = |a: &Row, b: &Row| {
        key.iter().map(|&i| a.norm[i].cmp(&b.norm[i])).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    };
    let full_cmp = |a: &Row, b: &Row| key_cmp(a, b).then_with(|| a.norm.cmp(&b.norm));
    source.sort_by(full_cmp);
    target.sort_by(full_cmp);
    let counts = format!("source has {} rows, target has {}", source.len(), target.len());
    let describe_key = |r: &Row| {
        let parts: Vec<String> = key.iter().map(|&i| format!("{}={}", columns[i].name, show(&r.raw[i]))).collect();
        format!("({})", parts.join(", "))
    };
    let describe_row = |r: &Row| {
        let parts: Vec<String> =
            (0..columns.len()).map(|i| format!("{}={}", columns[i].name, show(&r.raw[i]))).collect();
        parts.join(", ")
    };
    let first_column_diff = |s: &Row, t: &Row| -> Option<String> {
        let i = (0..columns.len()).find(|&i| s.norm[i] != t.norm[i])?;
        let c = &columns[i];
        let mut m =
            format!("column `{}` ({}): source {}, target {}", c.name, c.source_type, show(&s.raw[i]), show(&t.raw[i]));
        if s.norm[i] != s.raw[i] || t.norm[i] != t.raw[i] {
            let _ = write!(m, " (normalized: source {}, target {})", show(&s.norm[i]), show(&t.norm[i]));
        }
        Some(m)
    };
    if keyed {
        // The target has no key constraint: a key twice there is a difference of its own.
        if let Some(w) = target.windows(2).find(|w| key_cmp(&w[0], &w[1]) == Ordering::Equal) {
            let n = target.iter().filter(|r| key_cmp(r, &w[0]) == Ordering::Equal).count();
            return Err(format!(
                "{table}: key {} appears {n} times at the target ({counts})\n    row: {}\n    row: {}",
                describe_key(&w[0]),
                describe_row(&w[0]),
                describe_row(&w[1])
            ));
        }
    }
    let (mut i, mut j) = (0, 0);
    loop {
        match (source.get(i), target.get(j)) {
            (None, None) => return Ok(()),
            (Some(s), Some(t)) => match key_cmp(s, t) {
                Ordering::Equal if s.norm == t.norm => {
                    i += 1;
                    j += 1;
                }
                Ordering::Equal => {
                    return Err(format!(
                        "{table}: row {} differs: {} ({counts}, first difference at sorted row {i})",
                        describe_key(s),
                        first_column_diff(s, t).unwrap_or_default()
                    ));
                }
                Ordering::Less => {
                    return Err(missing(
                        table,
                        keyed,
                        &describe_key(s),
                        &describe_row(s),
                        "missing at the target",
                        Some((&describe_row(t), first_column_diff(s, t), "target")),
                        &counts,
                    ));
                }
                Ordering::Greater => {
                    return Err(missing(
                        table,
                        keyed,
                        &describe_key(t),
                        &describe_row(t),
                        "only at the target (not at the source)",
                        Some((&describe_row(s), first_column_diff(s, t), "source")),
                        &counts,
                    ));
                }
            },
            (Some(s), None) => {
                return Err(missing(
                    table,
                    keyed,
                    &describe_key(s),
                    &describe_row(s),
                    "missing at the target",
                    None,
                    &counts,
                ));
            }
            (None, Some(t)) => {
                return Err(missing(
                    table,
                    keyed,
                    &describe_key(t),
                    &describe_row(t),
                    "only at the target (not at the source)",
                    None,
                    &counts,
                ));
            }
        }
    }
}

fn missing(
    table: &str,
    keyed: bool,
    key: &str,
    row: &str,
    what: &str,
    nearest: Option<(&str, Option<String>, &str)>,
    counts: &str,
) -> String {
    let mut m = if keyed {
        format!("{table}: row with key {key} is {what} ({counts})\n    row: {row}")
    } else {
        format!("{table}: a row is {what} ({counts}; no primary key: rows compared whole)\n    row: {row}")
    };
    if let Some((other, column, side)) = nearest {
        let _ = write!(m, "\n    nearest {side} row in sort order: {other}");
        if let Some(c) = column {
            let _ = write!(m, "\n    first difference to it: {c}");
        }
    }
    m
}

/// A value for a report: `NULL`, or quoted and cut to [`SHOW_CHARS`].
fn show(v: &Option<String>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) if s.chars().count() > SHOW_CHARS => {
            let cut: String = s.chars().take(SHOW_CHARS).collect();
            format!("{cut:?}… ({} chars)", s.chars().count())
        }
        Some(s) => format!("{s:?}"),
    }
}

pub(crate) use crate::pg::quote_ident as ident;

pub(crate) fn sorted_keys(map: &HashMap<String, String>) -> String {
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort();
    keys.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_of_both_sides_normalise_alike() {
        let pairs = [
            ("1 year 2 mons 3 days 04:05:06.5", "1 year 2 months 3 days 04:05:06.5"),
            ("-1 years -2 mons +3 days -04:05:06", "-14 months 3 days -04:05:06"),
            ("1 mon", "1 month"),
            ("00:00:00", "00:00:00"),
            ("100:00:00", "100:00:00"),
            ("-3 days +04:00:00", "-3 days 04:00:00"),
        ];
        for (pg, duck) in pairs {
            assert_eq!(
                normalize(Kind::Interval, Side::Source, pg),
                normalize(Kind::Interval, Side::Target, duck),
                "{pg} vs {duck}"
            );
        }
        assert_ne!(
            normalize(Kind::Interval, Side::Source, "1 day"),
            normalize(Kind::Interval, Side::Target, "24:00:00")
        );
    }

    #[test]
    fn scalars_normalise() {
        let n = |k, s, t| normalize(k, s, t);
        assert_eq!(n(Kind::Bool, Side::Source, "t"), n(Kind::Bool, Side::Target, "true"));
        assert_eq!(n(Kind::Float64, Side::Source, "NaN"), n(Kind::Float64, Side::Target, "nan"));
        assert_eq!(n(Kind::Float64, Side::Source, "-Infinity"), n(Kind::Float64, Side::Target, "-inf"));
        assert_eq!(n(Kind::Float64, Side::Source, "1e+300"), "1e300");
        assert_eq!(n(Kind::Float32, Side::Source, "0.1"), n(Kind::Float32, Side::Target, "0.1"));
        assert_eq!(n(Kind::Numeric, Side::Source, "12.50"), "12.5");
        assert_eq!(n(Kind::Numeric, Side::Source, "100"), "100");
        assert_eq!(n(Kind::Numeric, Side::Source, "3.000"), "3");
        assert_eq!(n(Kind::Bytes, Side::Source, "\\x0aff"), n(Kind::Bytes, Side::Target, "0AFF"));
        assert_eq!(n(Kind::Array, Side::Source, "[1.50,null]"), n(Kind::Array, Side::Target, "[1.5,null]"));
        assert_eq!(
            n(Kind::Json, Side::Source, r#"{"b": 1, "a": [true]}"#),
            n(Kind::Json, Side::Target, r#"{"a":[true],"b":1.0}"#)
        );
        assert_ne!(n(Kind::Text, Side::Source, "a"), n(Kind::Text, Side::Target, "a "));
    }
}
