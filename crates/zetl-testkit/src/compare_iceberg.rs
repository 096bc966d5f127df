//! Iceberg tables against their PostgreSQL source, whole: each table is read by a real reader
//! (pyiceberg, DuckDB's iceberg extension or Spark, through `python/iceberg_dump.py`, position
//! deletes applied), written losslessly as Parquet, loaded into a scratch DuckDB file and
//! compared by [`crate::compare`]'s exact per-type rules.

use crate::compare::assert_tables_equal;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("iceberg_dump.py")
}

/// The engines that read the lake in the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    PyIceberg,
    /// DuckDB's iceberg extension (`iceberg_scan`), from PyPI.
    DuckDb,
    /// Spark 3.5 with the Iceberg runtime, through Iceberg's JdbcCatalog.
    Spark,
}

impl Reader {
    fn arg(self) -> &'static str {
        match self {
            Reader::PyIceberg => "pyiceberg",
            Reader::DuckDb => "duckdb",
            Reader::Spark => "spark",
        }
    }
}

/// Reads `tables` through `reader` from the SQL catalog `catalog` (the SQLite file or a
/// `postgres://` URL; catalog `name`) into a DuckDB file under `scratch`; returns the row
/// count of each table.
pub fn read_lake(
    reader: Reader,
    catalog: impl AsRef<std::ffi::OsStr>,
    name: &str,
    scratch: &Path,
    tables: &[&str],
) -> (PathBuf, Vec<u64>) {
    read_lake_with(reader, catalog, name, scratch, tables, &[])
}

/// [`read_lake`] with `env` set for the reader: `ZETL_S3_ENDPOINT` and the AWS keys of an
/// S3 warehouse on an S3-compatible server.
pub fn read_lake_with(
    reader: Reader,
    catalog: impl AsRef<std::ffi::OsStr>,
    name: &str,
    scratch: &Path,
    tables: &[&str],
    env: &[(&str, &str)],
) -> (PathBuf, Vec<u64>) {
    let out = scratch.join(format!("{}-read", reader.arg()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("create the pyiceberg output directory");
    let run = Command::new("python3")
        .arg(script())
        .arg(reader.arg())
        .arg(catalog)
        .arg(name)
        .arg(&out)
        .args(tables)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .envs(env.iter().copied())
        .output()
        .expect("run python3");
    assert!(run.status.success(), "iceberg_dump.py {} failed: {}", reader.arg(), String::from_utf8_lossy(&run.stderr));
    let counts = String::from_utf8_lossy(&run.stdout)
        .lines()
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, n)| n.parse().ok()))
        .collect();
    let duck_path = out.join("read.duckdb");
    let duck = duckdb::Connection::open(&duck_path).expect("open the scratch DuckDB file");
    for table in tables {
        let (schema, name) = table.split_once('.').expect("schema.table");
        let parquet = out.join(format!("{table}.parquet"));
        duck.execute_batch(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; \
             CREATE TABLE \"{schema}\".\"{name}\" AS SELECT * FROM read_parquet('{}')",
            parquet.display()
        ))
        .unwrap_or_else(|e| panic!("loading {table} read by {}: {e}", reader.arg()));
    }
    (duck_path, counts)
}

/// Panics naming the first differences unless every table of `tables`, read through
/// `reader`, equals the PostgreSQL source at `pg_url`.
pub fn assert_iceberg_equal(
    reader: Reader,
    pg_url: &str,
    catalog: impl AsRef<std::ffi::OsStr>,
    name: &str,
    scratch: &Path,
    tables: &[&str],
) {
    let (duck_path, _) = read_lake(reader, catalog, name, scratch, tables);
    assert_tables_equal(pg_url, &duck_path, tables);
}

/// The current-state query of a changelog table (docs/configuration.md), run in the scratch
/// DuckDB file a reader wrote: `table` is replaced by the state it gives, to be compared with
/// the source. `key` names the key columns; a table without one is insert-only, and its
/// state is every row logged after the last truncate.
pub fn changelog_to_state(duck_path: &Path, table: &str, key: &[&str]) {
    let (schema, name) = table.split_once('.').expect("schema.table");
    let quoted = format!("\"{schema}\".\"{name}\"");
    let latest = if key.is_empty() {
        "_zetl_op IN ('insert', 'copy')".to_string()
    } else {
        let key: Vec<String> = key.iter().map(|k| format!("\"{k}\"")).collect();
        format!(
            "_zetl_op <> 'truncate' QUALIFY row_number() OVER (PARTITION BY {} ORDER BY _zetl_seq DESC) = 1",
            key.join(", ")
        )
    };
    let sql = format!(
        "CREATE TABLE \"{schema}\".\"{name}_state\" AS \
         SELECT * EXCLUDE (_zetl_op, _zetl_seq, _zetl_position, _zetl_commit_time) FROM ( \
           SELECT * FROM {quoted} \
           WHERE _zetl_seq > (SELECT coalesce(max(_zetl_seq), -1) FROM {quoted} WHERE _zetl_op = 'truncate') \
             AND {latest} \
         ) WHERE _zetl_op NOT IN ('delete', 'expire'); \
         DROP TABLE {quoted}; \
         ALTER TABLE \"{schema}\".\"{name}_state\" RENAME TO \"{name}\";"
    );
    let duck = duckdb::Connection::open(duck_path).expect("open the scratch DuckDB file");
    duck.execute_batch(&sql).unwrap_or_else(|e| panic!("the current state of {table}: {e}\n{sql}"));
}
