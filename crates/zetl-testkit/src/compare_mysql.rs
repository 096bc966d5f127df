//! Whole-table comparison of a MariaDB/MySQL source table with its DuckDB (or PostgreSQL) copy, by the same
//! rules as the PostgreSQL one ([`crate::compare`]): both sides read whole, values
//! normalised by the source column's type, rows sorted and walked in step.
//!
//! The source is read with the `mariadb` client of the harness's server, every value sent as
//! hex of its canonical text (so no escaping can blur it). Per source type:
//! - `bit(1)` compares with the target's boolean, wider `bit(n)` as a number;
//! - `time` as an interval;
//! - `datetime` / `timestamp` as text with trailing fraction zeros dropped (the source
//!   session runs in UTC); zero dates count as NULL, which is how zetl stores them;
//! - binary types as bytes, `json` as parsed JSON, `decimal` without trailing zeros;
//! - `float` / `double` as the exact f32 / f64 each side holds (the source's FLOAT is read as
//!   a DOUBLE: its own text has only 6 significant digits and would hide a lossy copy).

use crate::compare::{
    connect_pg, diff, ident, open_target, read_pg, read_target, sorted_keys, target_columns, Kind, Row, Side,
    SourceColumn,
};
use crate::MariaDbServer;
use duckdb::Connection;
use std::path::Path;

/// Compares every table in `tables` (`"database.table"`) and panics naming every table that
/// differs, with its first differing row. zetl must be stopped (DuckDB is opened read-only).
pub fn assert_mysql_tables_equal(server: &MariaDbServer, duckdb_path: &Path, tables: &[&str]) {
    let duck = match open_target(duckdb_path) {
        Ok(d) => d,
        Err(e) => panic!("cannot compare source and target: {e}"),
    };
    let failures: Vec<String> = tables.iter().filter_map(|t| compare(server, &duck, t).err()).collect();
    if !failures.is_empty() {
        panic!("source and target differ ({} of {} tables):\n{}", failures.len(), tables.len(), failures.join("\n"));
    }
}

/// Compares one table; `Err` describes the first difference.
pub fn compare_mysql_table(server: &MariaDbServer, duckdb_path: &Path, table: &str) -> Result<(), String> {
    compare(server, &open_target(duckdb_path)?, table)
}

struct MyColumn {
    column: SourceColumn,
    /// The source expression giving the column's canonical text.
    expr: String,
}

fn compare(server: &MariaDbServer, duck: &Connection, table: &str) -> Result<(), String> {
    let (db, name) = table.split_once('.').ok_or_else(|| format!("{table}: expected `database.table`"))?;
    let (columns, source) = read_source(server, db, name)?;
    let target_types = target_columns(duck, db, name)?;
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
    let qualified = format!("{}.{}", ident(db), ident(name));
    let target = read_target(duck, table, &qualified, &columns, &target_types, "")?;
    diff(table, &columns, source, target)
}

/// Compares every `(source table, target table)` pair (`"database.table"`, `"schema.table"`)
/// of a MariaDB source and a PostgreSQL target, and panics naming every pair that differs.
pub fn assert_mysql_pg_tables_equal(server: &MariaDbServer, target_url: &str, tables: &[(&str, &str)]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"));
    let target = connect_pg(&runtime, target_url).unwrap_or_else(|e| panic!("cannot compare: {e}"));
    let failures: Vec<String> = tables
        .iter()
        .filter_map(|(s, t)| {
            let run = || -> Result<(), String> {
                let (db, name) = s.split_once('.').ok_or_else(|| format!("{s}: expected `database.table`"))?;
                let (columns, source) = read_source(server, db, name)?;
                let (schema, table) = t.split_once('.').ok_or_else(|| format!("{t}: expected `schema.table`"))?;
                let qualified = format!("{}.{}", ident(schema), ident(table));
                let target_rows = read_pg(&runtime, &target, t, &qualified, &columns, "")?;
                diff(s, &columns, source, target_rows)
            };
            run().err()
        })
        .collect();
    if !failures.is_empty() {
        panic!("source and target differ ({} of {} tables):\n{}", failures.len(), tables.len(), failures.join("\n"));
    }
}

/// The columns of a source table and its rows, read whole.
fn read_source(server: &MariaDbServer, db: &str, name: &str) -> Result<(Vec<SourceColumn>, Vec<Row>), String> {
    let table = format!("{db}.{name}");
    let columns = source_columns(server, db, name)?;
    if columns.is_empty() {
        return Err(format!("{table}: the table does not exist at the source"));
    }
    let exprs: Vec<String> = columns.iter().map(|c| format!("HEX({})", c.expr)).collect();
    let sql = format!("SET time_zone = '+00:00'; SELECT {} FROM `{}`.`{}`", exprs.join(", "), db, name);
    let out = server.sql("", &sql).map_err(|e| format!("{table}: reading the source: {e}"))?;
    let plain: Vec<SourceColumn> = columns.into_iter().map(|c| c.column).collect();
    let mut source = Vec::new();
    for line in out.lines() {
        let raw: Vec<Option<String>> = line.split('\t').map(unhex).collect();
        if raw.len() != plain.len() {
            return Err(format!("{table}: source row with {} of {} fields: {line}", raw.len(), plain.len()));
        }
        source.push(Row::new(&plain, raw, Side::Source));
    }
    Ok((plain, source))
}

fn unhex(field: &str) -> Option<String> {
    if field == "NULL" {
        return None;
    }
    let bytes: Vec<u8> =
        (0..field.len() / 2).filter_map(|i| u8::from_str_radix(field.get(2 * i..2 * i + 2)?, 16).ok()).collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn source_columns(server: &MariaDbServer, db: &str, name: &str) -> Result<Vec<MyColumn>, String> {
    let lit = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
    let sql = format!(
        "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.COLUMN_KEY = 'PRI', \
                EXISTS (SELECT 1 FROM information_schema.CHECK_CONSTRAINTS k \
                        WHERE k.CONSTRAINT_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME \
                          AND k.CHECK_CLAUSE = CONCAT('json_valid(`', c.COLUMN_NAME, '`)')) \
         FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = {} AND c.TABLE_NAME = {} \
         ORDER BY c.ORDINAL_POSITION",
        lit(db),
        lit(name)
    );
    let out = server.sql("", &sql).map_err(|e| format!("{db}.{name}: reading the source columns: {e}"))?;
    let mut columns = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [col, data_type, column_type, key, json] = f[..] else {
            return Err(format!("{db}.{name}: unexpected column description `{line}`"));
        };
        let c = format!("`{}`", col.replace('`', "``"));
        let zero_date =
            |text: &str| format!("IF(YEAR({c}) = 0 OR MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0, NULL, {text})");
        let (kind, expr) = match data_type {
            "bit" if column_type == "bit(1)" => (Kind::Bool, format!("CAST({c} + 0 AS CHAR)")),
            "bit" | "year" => (Kind::Text, format!("CAST({c} + 0 AS CHAR)")),
            // A FLOAT as text has 6 significant digits; as a DOUBLE it is the float's exact
            // value, whose shortest text parses back to it. Both sides are then compared as
            // the f32 / f64 they parse to, bit for bit.
            "float" => (Kind::Float32, format!("CAST({c} + 0e0 AS CHAR)")),
            "double" => (Kind::Float64, format!("CAST({c} AS CHAR)")),
            "decimal" => (Kind::Numeric, format!("CAST({c} AS CHAR)")),
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry" | "point" => {
                (Kind::Bytes, format!("HEX({c})"))
            }
            "time" => (Kind::Interval, format!("CAST({c} AS CHAR)")),
            "date" => (Kind::Text, zero_date(&format!("CAST({c} AS CHAR)"))),
            "datetime" | "timestamp" => (Kind::Timestamp, zero_date(&format!("CAST({c} AS CHAR)"))),
            "json" => (Kind::Json, c.clone()),
            _ if json == "1" => (Kind::Json, c.clone()),
            _ => (Kind::Text, format!("CAST({c} AS CHAR)")),
        };
        columns.push(MyColumn {
            column: SourceColumn { name: col.to_string(), source_type: column_type.to_string(), kind, key: key == "1" },
            expr,
        });
    }
    Ok(columns)
}
