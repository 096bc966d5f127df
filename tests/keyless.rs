//! Tables without a key: a batch's removals are matched set-wise (one statement), each taking
//! exactly one identical row, then its additions are inserted in bulk. Duplicates, NULLs and
//! removals of rows added earlier in the same batch end as the changes one by one would.

use crate::common;

use common::warehouse::Warehouse;
use common::TestEnv;

fn keyless_batches(warehouse: Warehouse, test: &str) {
    let env = TestEnv::start(test);
    env.sql(
        "CREATE TABLE log (k int, v text, n numeric);\n\
         ALTER TABLE log REPLICA IDENTITY FULL;\n\
         INSERT INTO log SELECT g % 5, CASE WHEN g % 7 = 0 THEN NULL ELSE 'v' || (g % 3) END, g % 2 \
            FROM generate_series(1, 300) g;",
    );
    let config = warehouse.config(&env, test, &["public.log"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, test);
    env.sql(
        "BEGIN;\n\
         INSERT INTO log VALUES (9, 'dup', 1), (9, 'dup', 1), (9, 'dup', 1), (9, NULL, NULL);\n\
         DELETE FROM log WHERE ctid = (SELECT min(ctid) FROM log WHERE k = 9 AND v = 'dup');\n\
         UPDATE log SET v = 'changed' WHERE ctid = (SELECT min(ctid) FROM log WHERE k = 1 AND v = 'v1');\n\
         DELETE FROM log WHERE k = 2 AND v IS NULL;\n\
         UPDATE log SET n = n + 10 WHERE k = 3;\n\
         DELETE FROM log WHERE ctid = (SELECT max(ctid) FROM log WHERE k = 9 AND v IS NULL);\n\
         INSERT INTO log VALUES (9, NULL, NULL);\n\
         COMMIT;\n\
         DELETE FROM log WHERE k = 4 AND v = 'v0' AND ctid IN (SELECT ctid FROM log WHERE k = 4 AND v = 'v0' LIMIT 3);",
    );
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    warehouse.assert_equal(&env, &["public.log"]);
}

#[test]
fn keyless_batches_duckdb() {
    keyless_batches(Warehouse::Duckdb, "keyless_duck");
}

#[test]
fn keyless_batches_postgres() {
    keyless_batches(Warehouse::postgres(), "keyless_pg");
}
