//! The initial copy in parallel page-range chunks (also cut short by kill -9), partitioned
//! tables, replica identity by index, identifiers that need quoting, and per-table snapshot
//! modes.

use crate::common;
use common::config::yaml;

use common::{wait_for, TestEnv};

#[test]
fn chunked_copy_killed_then_restarted_then_streaming() {
    let env = TestEnv::start("chunks");
    env.sql(
        "CREATE TABLE wide (id int PRIMARY KEY, v text, n int);\n\
         INSERT INTO wide SELECT g, md5(g::text), g FROM generate_series(1, 400000) g;\n\
         CREATE TABLE heap (a int, b text);\n\
         INSERT INTO heap SELECT g % 100, 'row ' || (g % 37) FROM generate_series(1, 30000) g;\n\
         ANALYZE;",
    );
    let config =
        env.config("chunks", &["public.*"]).source("snapshot", yaml("{ parallelism: 3, chunk_rows: 50000 }")).write();
    // Killed while copying (the table is large enough that the copy takes a while even on a
    // fast machine): the next start copies again from scratch.
    let mut zetl = env.run_zetl(&config);
    wait_for("the initial copy to start", &mut zetl, || {
        std::fs::read_to_string(env.log_path()).unwrap_or_default().contains("initial copy starts")
    });
    zetl.kill9();
    env.sql("UPDATE wide SET v = 'between runs' WHERE id % 1000 = 0");
    env.sql("INSERT INTO heap VALUES (1, 'between runs')");

    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "chunks");
    env.sql("UPDATE wide SET n = -n WHERE id % 3 = 0");
    env.sql("DELETE FROM wide WHERE id % 11 = 0");
    env.sql("INSERT INTO wide SELECT g, 'new', g FROM generate_series(400001, 401000) g");
    env.sql("INSERT INTO heap SELECT 7, 'streamed' FROM generate_series(1, 10)");
    env.wait_caught_up(&mut zetl, "chunks");
    zetl.stop();
    env.assert_equal(&["public.wide", "public.heap"]);
    // Two tables, but more copy jobs: the big tables were split into page ranges.
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    let jobs: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("initial copy starts"))
        .filter_map(|l| l.split("jobs=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        jobs.len() == 2 && jobs.iter().all(|&j| j > 2),
        "two initial copies (killed, then complete), each in more than two jobs: {jobs:?}"
    );
}

#[test]
fn partitions_replica_identity_index_and_quoted_names() {
    let env = TestEnv::start("shapes");
    env.sql(
        "CREATE TABLE measurements (id int, at date, v float8, PRIMARY KEY (id, at)) \
           PARTITION BY RANGE (at);\n\
         CREATE TABLE measurements_2023 PARTITION OF measurements \
           FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');\n\
         CREATE TABLE measurements_2024 PARTITION OF measurements \
           FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n\
         CREATE TABLE measurements_rest PARTITION OF measurements DEFAULT;\n\
         INSERT INTO measurements SELECT g, date '2023-06-01' + g, g * 0.5 \
           FROM generate_series(1, 600) g;\n\
         CREATE TABLE by_index (code text NOT NULL, v int);\n\
         CREATE UNIQUE INDEX by_index_code ON by_index (code);\n\
         ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_code;\n\
         INSERT INTO by_index SELECT 'c' || g, g FROM generate_series(1, 20) g;\n\
         CREATE SCHEMA \"Mixed Case\";\n\
         CREATE TABLE \"Mixed Case\".\"we\"\"ird table\" \
           (\"Id\" int PRIMARY KEY, \"select\" text, \"Col Name\" int);\n\
         INSERT INTO \"Mixed Case\".\"we\"\"ird table\" VALUES (1, 'a', 1), (2, 'b', 2);",
    );
    let config = env.config("shapes", &["public.*", "Mixed Case.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "shapes");

    env.sql("INSERT INTO measurements SELECT g, date '2024-03-01' + g, -g FROM generate_series(1, 50) g");
    // Rows moving between partitions.
    env.sql("UPDATE measurements SET at = at + 365 WHERE id <= 20");
    env.sql("UPDATE measurements SET v = 0 WHERE id BETWEEN 21 AND 40");
    env.sql("DELETE FROM measurements WHERE id BETWEEN 41 AND 45");
    env.sql("INSERT INTO measurements VALUES (9999, '2030-01-01', 1)");
    env.sql("UPDATE by_index SET v = v * 100 WHERE v <= 5");
    env.sql("UPDATE by_index SET code = code || '-renamed' WHERE v = 600");
    env.sql("DELETE FROM by_index WHERE v BETWEEN 10 AND 12");
    env.sql(
        "INSERT INTO \"Mixed Case\".\"we\"\"ird table\" VALUES (3, 'c', 3);\n\
         UPDATE \"Mixed Case\".\"we\"\"ird table\" SET \"select\" = 'updated', \"Id\" = 10 \
           WHERE \"Id\" = 1;\n\
         DELETE FROM \"Mixed Case\".\"we\"\"ird table\" WHERE \"Id\" = 2;",
    );
    env.wait_caught_up(&mut zetl, "shapes");
    zetl.stop();

    let weird = "Mixed Case.we\"ird table";
    env.assert_equal(&["public.measurements", "public.by_index", weird]);
    assert_eq!(
        env.target_tables(),
        vec![weird.to_string(), "public.by_index".into(), "public.measurements".into()],
        "partitions arrive as their root table"
    );
}

/// A table loaded and never analysed (`reltuples` = -1, `relpages` = 0) is sized from its pages
/// and copied in chunks by several workers, like one with statistics.
#[test]
fn a_table_never_analysed_is_still_copied_in_chunks() {
    let env = TestEnv::start("unanalysed");
    env.sql(
        "CREATE TABLE fresh (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off); \
         INSERT INTO fresh SELECT g, md5(g::text) FROM generate_series(1, 200000) g",
    );
    assert_eq!(env.sql_value("SELECT reltuples || '/' || relpages FROM pg_class WHERE relname = 'fresh'"), "-1/0");
    let snapshot = yaml("{ parallelism: 2, chunk_rows: 20000 }");
    let config = env.config("unanalysed", &["public.fresh"]).source("snapshot", snapshot).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "unanalysed");
    zetl.stop();
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    let jobs: u64 = log
        .lines()
        .find(|l| l.contains("initial copy starts"))
        .and_then(|l| l.split("jobs=").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `initial copy starts … jobs=N` line in:\n{log}"));
    assert!(jobs >= 5, "200000 rows in chunks of 20000 were copied as {jobs} job(s)");
    env.assert_equal(&["public.fresh"]);
}

/// `tables.snapshot`: a `never` table gets only the changes made after it joined; a `resync`
/// table (keyless here, so its updates do not stream) is copied again at every start, and the
/// inserts streamed before that copy are not applied twice.
#[test]
fn snapshot_modes_never_and_resync() {
    let env = TestEnv::start("snapmodes");
    env.sql(
        "CREATE TABLE log (id int PRIMARY KEY, msg text); INSERT INTO log SELECT g, 'old ' || g FROM generate_series(1, 1000) g;\n\
         CREATE TABLE ref (code text, rate numeric); INSERT INTO ref SELECT 'c' || g, g / 7.0 FROM generate_series(1, 50) g;\n\
         CREATE TABLE orders (id int PRIMARY KEY, v int); INSERT INTO orders SELECT g, g FROM generate_series(1, 500) g;",
    );
    let config = env
        .config("snapmodes", &["public.*"])
        .snapshot_modes(&[("public.log", "never"), ("ref", "resync")])
        .metrics_off()
        .write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "snapmodes");
    env.sql(
        "INSERT INTO log SELECT g, 'new ' || g FROM generate_series(1001, 1100) g; UPDATE log SET msg = 'changed' WHERE id IN (5, 1005);\n\
         INSERT INTO ref VALUES ('late', 1.5); UPDATE orders SET v = -v WHERE id <= 10;",
    );
    env.wait_caught_up(&mut zetl, "snapmodes");
    zetl.stop();
    let count = |sql: &str| env.target_value(sql).unwrap_or_default();
    // The rows inserted after the start, and the one old row updated since (its new image).
    assert_eq!(count("SELECT count(*) FROM public.log"), "101");
    assert_eq!(
        count("SELECT string_agg(msg, ',' ORDER BY id) FROM public.log WHERE id IN (5, 1005)"),
        "changed,changed"
    );
    assert_eq!(count("SELECT count(*) FROM public.ref"), "51");
    env.assert_equal(&["public.orders"]);

    // Stopped: ref's update does not stream (no key), so only its copy at the next start
    // brings it; its streamed insert must not be applied on top of that copy.
    env.sql("UPDATE ref SET rate = rate * 2 WHERE code LIKE 'c1%'; INSERT INTO ref VALUES ('later', 2.5); DELETE FROM orders WHERE id = 7;");
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "snapmodes");
    zetl.stop();
    // The rows `never` did not copy, removed at the source: their deletes find nothing.
    env.sql("DELETE FROM log WHERE id <= 1000");
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "snapmodes");
    zetl.stop();
    env.assert_equal(&["public.log", "public.ref", "public.orders"]);
}
