//! How changes are applied at a DuckDB target: soft-deleted rows stay, marked, with the time
//! and source position of their last change; ignored truncates leave the target as it was;
//! rows the target rejects stop the run or become dead letters.

use crate::common;
use common::config::yaml;

use common::{zetl_command, TestEnv};
use zetl_testkit::compare::{assert_tables_equal, assert_tables_equal_where};

#[test]
fn soft_deletes_hard_overrides_and_ignored_truncates() {
    let env = TestEnv::start("delete_modes");
    env.sql(
        "CREATE TABLE orders (id int PRIMARY KEY, status text); \
         CREATE TABLE logs (line text); \
         CREATE TABLE scratch (id int PRIMARY KEY); \
         INSERT INTO orders SELECT g, 'new' FROM generate_series(1, 20) g; \
         INSERT INTO logs VALUES ('a'), ('a'), ('b'); \
         INSERT INTO scratch VALUES (1), (2)",
    );
    env.sql("ALTER TABLE logs REPLICA IDENTITY FULL");
    let apply = yaml("{ deletes: soft, tables: { public.scratch: { deletes: hard, truncate: ignore } } }");
    let cfg = env.config("modes", &["public.*"]).metrics_off().set("apply", apply).write();
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "modes");

    env.sql(
        "DELETE FROM orders WHERE id <= 5; UPDATE orders SET status = 'paid' WHERE id BETWEEN 6 AND 8; \
         DELETE FROM logs WHERE line = 'a' AND ctid = (SELECT min(ctid) FROM logs WHERE line = 'a'); \
         DELETE FROM scratch WHERE id = 1; INSERT INTO scratch VALUES (3)",
    );
    // A deleted key that comes back is one live row again.
    env.sql("INSERT INTO orders VALUES (1, 'again')");
    env.sql("TRUNCATE scratch");
    env.wait_caught_up(&mut zetl, "modes");
    zetl.stop();

    // The live rows equal the source; the deleted ones are still there, marked.
    assert_tables_equal_where(&env.url(), &env.duckdb_path(), &["public.orders", "public.logs"], "NOT _zetl_deleted");
    let count = |sql: &str| env.target_value(sql).unwrap_or_default();
    assert_eq!(count("SELECT CAST(count(*) AS VARCHAR) FROM public.orders WHERE _zetl_deleted"), "4");
    assert_eq!(count("SELECT CAST(count(*) AS VARCHAR) FROM public.orders WHERE id = 1"), "1");
    assert_eq!(count("SELECT CAST(count(*) AS VARCHAR) FROM public.logs WHERE _zetl_deleted"), "1");
    assert_eq!(
        count("SELECT CAST(count(*) AS VARCHAR) FROM public.orders WHERE _zetl_position IS NULL OR _zetl_synced_at IS NULL"),
        "0",
        "every row carries the position and time of its last change"
    );
    // scratch: hard deletes, and the source's TRUNCATE was ignored.
    assert_eq!(env.sql_value("SELECT count(*) FROM scratch"), "0");
    assert_eq!(count("SELECT string_agg(CAST(id AS VARCHAR), ',' ORDER BY id) FROM public.scratch"), "2,3");
    let columns = count(
        "SELECT CAST(count(*) AS VARCHAR) FROM duckdb_columns() WHERE table_name = 'scratch' AND column_name LIKE '_zetl_%'",
    );
    assert_eq!(columns, "0", "hard-delete tables get no bookkeeping columns");
}

#[test]
fn rejected_rows_become_dead_letters_and_replay_after_the_fix() {
    let env = TestEnv::start("duck_dead");
    env.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v int, note text, iv interval); \
         INSERT INTO t SELECT g, g, 'n' || g, g * interval '1 s' FROM generate_series(1, 10) g",
    );
    let dead_cfg =
        env.config("dead", &["public.*"]).metrics_off().set("apply", yaml("{ on_error: dead_letter }")).write();
    let cfg = dead_cfg.to_str().expect("utf-8");
    let mut zetl = env.run_zetl(&dead_cfg);
    env.wait_caught_up(&mut zetl, "dead");
    zetl.stop();

    // The user narrows a column and forbids NULLs at the target; some new rows no longer fit.
    env.target_sql("ALTER TABLE public.t ALTER v TYPE SMALLINT; ALTER TABLE public.t ALTER note SET NOT NULL");
    env.sql(
        "INSERT INTO t VALUES (100, 5, 'a', '1 day'), (101, 100000, 'b', '2 days'), (102, 7, NULL, NULL); \
         UPDATE t SET v = 70000 WHERE id = 1; DELETE FROM t WHERE id = 2; UPDATE t SET note = 'ok' WHERE id = 3",
    );
    let mut zetl = env.run_zetl(&dead_cfg);
    env.wait_caught_up(&mut zetl, "dead");
    zetl.stop();
    let rows = env.target_value(
        "SELECT string_agg(id || ':' || v || ':' || note, ',' ORDER BY id) FROM public.t WHERE id IN (1, 2, 3, 100, 101, 102)",
    );
    assert_eq!(rows.as_deref(), Some("1:1:n1,3:3:ok,100:5:a"), "rejected rows keep the target's old row");
    let listed = zetl_command(&["dead-letters", "list", "-c", cfg]);
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert_eq!(text.lines().filter(|l| l.contains("pending")).count(), 3, "{text}");
    assert!(
        text.contains("(id=101)") && text.contains("value 100000 cannot be stored in column v (SMALLINT)"),
        "{text}"
    );
    assert!(text.contains("(id=102)") && text.contains("NULL in column note"), "{text}");
    assert!(text.contains("(id=1)"), "{text}");

    // The cause fixed, a replay brings the target level with the source.
    env.target_sql("ALTER TABLE public.t ALTER v TYPE INTEGER; ALTER TABLE public.t ALTER note DROP NOT NULL");
    let replayed = zetl_command(&["dead-letters", "replay", "-c", cfg]);
    let out = String::from_utf8_lossy(&replayed.stdout).to_string();
    assert!(replayed.status.success() && out.contains("replayed 3"), "{out}");
    assert_tables_equal(&env.url(), &env.duckdb_path(), &["public.t"]);
    let again = zetl_command(&["dead-letters", "list", "-c", cfg]);
    assert!(!String::from_utf8_lossy(&again.stdout).contains("pending"));

    // on_error: fail (the default) stops at the first rejected row, naming it.
    env.target_sql("ALTER TABLE public.t ALTER id TYPE TINYINT");
    env.sql("INSERT INTO t VALUES (203, 1, 'x', NULL)");
    let strict = env.config("dead", &["public.*"]).metrics_off().write_to("strict.yaml");
    let out = zetl_command(&["run", "-c", strict.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("integration dead, table public.t, key (id=203)")
            && err.contains("value 203 cannot be stored in column id"),
        "{err}"
    );
    assert_eq!(
        env.target_value("SELECT CAST(count(*) AS VARCHAR) FROM public.t WHERE v = 1 AND note = 'x'").as_deref(),
        Some("0")
    );
}
