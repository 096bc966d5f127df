//! The Iceberg target with its SQL catalog in PostgreSQL (the production catalog): the
//! catalog tables and zetl's state live in a PostgreSQL database of their own, and pyiceberg,
//! DuckDB and Spark (Iceberg's JdbcCatalog) open that same catalog and read exactly the source.

use crate::common;
use crate::iceberg::{iceberg_target, lake_shape, CHANGES, DDL, TABLES};
use common::config::map;
use common::{PgOptions, PgServer, TestEnv, DB};
use zetl_testkit::compare_iceberg::{assert_iceberg_equal, Reader};

/// Copy, every kind of change, a kill -9 and a restart, `zetl status` and `zetl lake
/// maintain`, all with the catalog in PostgreSQL; each reader equals the source, whole.
#[test]
fn a_postgres_catalog_is_read_by_pyiceberg_duckdb_and_spark() {
    let env = TestEnv::start("iceberg_pgcat");
    let server = PgServer::start(PgOptions::default()).expect("start the catalog's PostgreSQL");
    let catalog = server.url(DB);
    env.sql(DDL);
    let mut target = iceberg_target(&env);
    target.insert("catalog".into(), map([("kind", "sql".into()), ("url", catalog.clone().into())]).into());
    let config = env.config("pglake", &["public.*"]).target(target).metrics_off().write();
    let cfg = config.to_str().expect("utf-8 path");

    let check = common::zetl_command(&["check", "-c", cfg]);
    let checked = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(checked.contains("catalog postgres://zetl:***@"), "the catalog is checked, its password hidden: {checked}");

    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "pglake");
    crate::iceberg::assert_second_run_refused(&config, "pglake");
    env.sql(CHANGES);
    env.wait_caught_up(&mut zetl, "pglake");
    env.sql("UPDATE kinds SET t = 'before the kill' WHERE id % 9 = 0; DELETE FROM rev WHERE x = 1;");
    zetl.kill9();
    let mut zetl = env.run_zetl(&config);
    env.sql("UPDATE kinds SET t = 'after the kill' WHERE id % 13 = 0; INSERT INTO log VALUES ('after', 0);");
    env.wait_caught_up(&mut zetl, "pglake");
    zetl.stop();

    let registered = server.psql(DB, "SELECT count(*) FROM iceberg_tables WHERE catalog_name = 'zetl'").expect("query");
    assert_eq!(registered.trim(), TABLES.len().to_string(), "every table is in the PostgreSQL catalog");
    let sqlite = env.scratch.path.join("lake").join("catalog.db");
    assert!(!sqlite.exists(), "no SQLite catalog beside it");
    let status = common::zetl_command(&["status", "-c", cfg]);
    let shown = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(shown.contains("public.kinds") && shown.contains("streaming"), "{shown}");

    for reader in [Reader::PyIceberg, Reader::DuckDb] {
        assert_iceberg_equal(reader, &env.url(), &catalog, "zetl", &env.scratch.path, TABLES);
    }
    // Spark has no `time` type and refuses `kinds` (docs/type-mapping.md).
    let spark_tables: Vec<&str> = TABLES.iter().copied().filter(|t| *t != "public.kinds").collect();
    assert_iceberg_equal(Reader::Spark, &env.url(), &catalog, "zetl", &env.scratch.path, &spark_tables);

    let out = common::zetl_command(&["lake", "maintain", "-c", cfg, "--older-than", "0s"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let uri = format!("postgresql+psycopg2://{}", catalog.split_once("://").expect("a url").1);
    for (table, snapshots, _, deletes) in lake_shape(&uri) {
        assert_eq!((snapshots, deletes), (1, 0), "{table}: maintained through the PostgreSQL catalog");
    }
    assert_iceberg_equal(Reader::PyIceberg, &env.url(), &catalog, "zetl", &env.scratch.path, TABLES);
}
