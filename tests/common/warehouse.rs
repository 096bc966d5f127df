//! The two targets a PostgreSQL-source test can run against, with one config and one
//! whole-table comparison for both; and how to see copies made while streaming in the log.

use super::config::{map, TestConfig};
use super::{wait_for, PgOptions, PgServer, TestEnv, Zetl, DB};
use zetl_testkit::compare_pg::assert_pg_tables_equal;

/// Where a test replicates to.
pub enum Warehouse {
    Duckdb,
    Postgres(PgServer),
}

impl Warehouse {
    pub fn postgres() -> Warehouse {
        Warehouse::Postgres(PgServer::start(PgOptions::default()).expect("start the target PostgreSQL"))
    }

    /// Integration `name` replicating `tables` into this warehouse.
    pub fn config(&self, env: &TestEnv, name: &str, tables: &[&str]) -> TestConfig {
        match self {
            Warehouse::Duckdb => env.config(name, tables),
            Warehouse::Postgres(target) => env
                .config(name, tables)
                .target(map([("kind", "postgres".into()), ("url", target.url(DB).into())]))
                .metrics_off(),
        }
    }

    /// The target table's columns in order (`schema.table` as at the source).
    pub fn columns(&self, env: &TestEnv, table: &str) -> Vec<String> {
        let (schema, name) = table.split_once('.').expect("schema.table");
        let sql = format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = '{schema}' \
             AND table_name = '{name}' ORDER BY ordinal_position"
        );
        match self {
            Warehouse::Duckdb => {
                let duck = env.duckdb();
                let mut stmt = duck.prepare(&sql).expect("prepare");
                let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("query the target");
                rows.map(|r| r.expect("a column name")).collect()
            }
            Warehouse::Postgres(target) => {
                let out = target.psql(DB, &sql).expect("query the target");
                out.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
            }
        }
    }

    pub fn assert_equal(&self, env: &TestEnv, tables: &[&str]) {
        match self {
            Warehouse::Duckdb => env.assert_equal(tables),
            Warehouse::Postgres(target) => {
                let pairs: Vec<(&str, &str)> = tables.iter().map(|t| (*t, *t)).collect();
                assert_pg_tables_equal(&env.url(), &target.url(DB), &pairs, "");
            }
        }
    }
}

/// How many times the log says `table` was copied while streaming.
pub fn copies_of(env: &TestEnv, table: &str) -> usize {
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    let needle = format!("table={table} ");
    log.lines().filter(|l| l.contains("table copied while streaming") && l.contains(&needle)).count()
}

pub fn wait_copied(env: &TestEnv, zetl: &mut Zetl, table: &str, times: usize) {
    wait_for(&format!("{table} to be copied {times} time(s) while streaming"), zetl, || copies_of(env, table) >= times);
}

/// Integration `topg` replicating `public.*` into the PostgreSQL `target` (schema `public` →
/// `mirror`), table discovery at its default.
pub fn pg_target_config(env: &TestEnv, target: &PgServer) -> TestConfig {
    let target = map([
        ("kind", "postgres".into()),
        ("url", target.url(DB).into()),
        ("schemas", map([("public", "mirror".into())]).into()),
    ]);
    env.config("topg", &["public.*"]).source("table_discovery_secs", 10).target(target).metrics_off()
}
