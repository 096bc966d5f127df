//! A target column the user narrowed (a numeric with a smaller scale, REAL instead of DOUBLE)
//! takes the values that fit it exactly; a value it would round becomes a dead letter
//! (`on_error: dead_letter`) or stops the run (`fail`), naming table, key, column and value,
//! and a replay refuses it until the column is wide enough again. DuckDB and PostgreSQL
//! targets.

use crate::common;
use common::config::{map, path, yaml};
use serde_yaml::Mapping;

use common::{zetl_command, PgOptions, PgServer, TestEnv, DB};
use std::path::{Path, PathBuf};
use zetl_testkit::compare::assert_tables_equal;
use zetl_testkit::compare_pg::assert_pg_tables_equal;

const SOURCE: &str = "CREATE TABLE n (id int PRIMARY KEY, amount numeric(12,3), ratio double precision); \
     INSERT INTO n VALUES (1, 1.5, 0.5)";

/// Rows 2 (fits), 3 (amount would round), 4 (ratio would round), 5 (fits), in one transaction.
const CHANGES: &str = "INSERT INTO n VALUES (2, 123.4, 0.25), (3, 123.456, 0.5), (4, 1.0, 0.1), (5, 7, 2)";

/// Integration `narrow` into `target`; `dead_letters` sets `apply.on_error: dead_letter`.
fn write(env: &TestEnv, file: &str, target: Mapping, dead_letters: bool) -> PathBuf {
    let config = env.config("narrow", &["public.*"]).target(target).metrics_off();
    let config = if dead_letters { config.set("apply", yaml("{ on_error: dead_letter }")) } else { config };
    config.write_to(file)
}

/// The letters of keys 3 and 4, each naming column and value; returns the listing.
fn assert_two_letters(cfg: &str, amount_type: &str, ratio_type: &str) -> String {
    let listed = zetl_command(&["dead-letters", "list", "-c", cfg]);
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    let pending: Vec<&str> = text.lines().filter(|l| l.contains("pending")).collect();
    assert_eq!(pending.len(), 2, "{text}");
    assert!(
        pending.iter().any(|l| l.contains("(id=3)")
            && l.contains("value 123.456 cannot be stored exactly in column amount")
            && l.contains(amount_type)),
        "{text}"
    );
    assert!(
        pending.iter().any(|l| l.contains("(id=4)")
            && l.contains("value 0.1 cannot be stored exactly in column ratio")
            && l.contains(ratio_type)),
        "{text}"
    );
    text
}

/// `fail` stops at row 6 (amount 9.99 into one decimal), naming it; nothing of it is applied.
fn assert_fail_mode_stops(env: &TestEnv, strict: &Path, table: &str) {
    env.sql("INSERT INTO n VALUES (6, 9.99, 1)");
    let out = zetl_command(&["run", "-c", strict.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("table {table}")) && err.contains("key (id=6)") && err.contains("value 9.99"),
        "{err}"
    );
    assert!(err.contains("column amount"), "{err}");
}

/// A replay while the column is still narrow fails again, naming the value; the letters stay.
fn assert_replay_refused_while_narrow(cfg: &str) {
    let replayed = zetl_command(&["dead-letters", "replay", "-c", cfg]);
    let out = String::from_utf8_lossy(&replayed.stdout).to_string();
    assert!(!replayed.status.success() && out.contains("replayed 0"), "{out}");
    assert!(out.contains("123.456") && out.contains("cannot be stored exactly"), "{out}");
}

#[test]
fn duckdb_refuses_values_a_narrowed_column_would_round() {
    let env = TestEnv::start("narrow_duck");
    env.sql(SOURCE);
    let target = map([("kind", "duckdb".into()), ("path", path(&env.duckdb_path()))]);
    let dead_cfg = write(&env, "dead.yaml", target.clone(), true);
    let cfg = dead_cfg.to_str().expect("utf-8");
    let mut zetl = env.run_zetl(&dead_cfg);
    env.wait_caught_up(&mut zetl, "narrow");
    zetl.stop();
    env.target_sql("ALTER TABLE public.n ALTER amount TYPE DECIMAL(9,1); ALTER TABLE public.n ALTER ratio TYPE REAL");

    env.sql(CHANGES);
    let mut zetl = env.run_zetl(&dead_cfg);
    env.wait_caught_up(&mut zetl, "narrow");
    zetl.stop();
    let rows =
        env.target_value("SELECT string_agg(id || ':' || amount || ':' || ratio, ',' ORDER BY id) FROM public.n");
    assert_eq!(rows.as_deref(), Some("1:1.5:0.5,2:123.4:0.25,5:7.0:2.0"), "only exact values are stored");
    assert_two_letters(cfg, "DECIMAL(9,1)", "FLOAT");
    assert_replay_refused_while_narrow(cfg);

    assert_fail_mode_stops(&env, &write(&env, "strict.yaml", target, false), "public.n");

    // Wide again: the letters replay, the stream catches up, the target equals the source.
    env.target_sql(
        "ALTER TABLE public.n ALTER amount TYPE DECIMAL(12,3); ALTER TABLE public.n ALTER ratio TYPE DOUBLE",
    );
    let replayed = zetl_command(&["dead-letters", "replay", "-c", cfg]);
    let out = String::from_utf8_lossy(&replayed.stdout).to_string();
    assert!(replayed.status.success() && out.contains("replayed 2"), "{out}");
    let mut zetl = env.run_zetl(&dead_cfg);
    env.wait_caught_up(&mut zetl, "narrow");
    zetl.stop();
    assert_tables_equal(&env.url(), &env.duckdb_path(), &["public.n"]);
}

#[test]
fn postgres_refuses_values_a_narrowed_column_would_round() {
    let env = TestEnv::start("narrow_pg");
    let server = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    env.sql(SOURCE);
    let target = map([
        ("kind", "postgres".into()),
        ("url", server.url(DB).into()),
        ("schemas", map([("public", "mirror".into())]).into()),
    ]);
    let dead_cfg = write(&env, "dead.yaml", target.clone(), true);
    let cfg = dead_cfg.to_str().expect("utf-8");
    let mut zetl = env.run_zetl(&dead_cfg);
    env.wait_caught_up(&mut zetl, "narrow");
    zetl.stop();
    let q = |sql: &str| server.psql(DB, sql).expect("query the target").trim().to_string();
    q("ALTER TABLE mirror.n ALTER amount TYPE numeric(9,1), ALTER ratio TYPE real");

    env.sql(CHANGES);
    let mut zetl = env.run_zetl(&dead_cfg);
    env.wait_caught_up(&mut zetl, "narrow");
    zetl.stop();
    assert_eq!(
        q("SELECT string_agg(id || ':' || amount || ':' || ratio, ',' ORDER BY id) FROM mirror.n"),
        "1:1.5:0.5,2:123.4:0.25,5:7.0:2",
        "only exact values are stored"
    );
    assert_two_letters(cfg, "numeric(9,1)", "real");
    assert_replay_refused_while_narrow(cfg);

    assert_fail_mode_stops(&env, &write(&env, "strict.yaml", target, false), "public.n");

    // Wide again: the letters replay, the stream catches up, the target equals the source.
    q("ALTER TABLE mirror.n ALTER amount TYPE numeric(12,3), ALTER ratio TYPE double precision");
    let replayed = zetl_command(&["dead-letters", "replay", "-c", cfg]);
    let out = String::from_utf8_lossy(&replayed.stdout).to_string();
    assert!(replayed.status.success() && out.contains("replayed 2"), "{out}");
    let mut zetl = env.run_zetl(&dead_cfg);
    env.wait_caught_up(&mut zetl, "narrow");
    zetl.stop();
    assert_pg_tables_equal(&env.url(), &server.url(DB), &[("public.n", "mirror.n")], "");
}
