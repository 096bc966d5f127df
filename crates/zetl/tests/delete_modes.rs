//! Delete modes and truncate policies: soft-deleted rows stay at the target, marked, with the
//! time and source position of their last change; ignored truncates leave the target as it was.

mod common;

use common::{TestEnv, DB};
use zetl_testkit::compare::assert_tables_equal_where;

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
    let cfg = env.scratch.path.join("modes.yaml");
    std::fs::write(
        &cfg,
        format!(
            "integrations:\n  - name: modes\n    source: {{ kind: postgres, url: \"{url}\" }}\n    \
             target: {{ kind: duckdb, path: \"{path}\" }}\n    tables: {{ include: [\"public.*\"] }}\n    \
             batch: {{ max_wait_ms: 100 }}\n    metrics: {{ listen: \"off\" }}\n    \
             apply:\n      deletes: soft\n      tables:\n        public.scratch: {{ deletes: hard, truncate: ignore }}\n",
            url = env.pg.url(DB),
            path = env.duckdb_path().display()
        ),
    )
    .expect("write config");
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
