//! An update that leaves a TOASTed column unchanged carries no value for it: the target takes
//! it from the row it has. When that row is missing (the target was changed by hand, or lost
//! it), the value must not become NULL without a word: zetl stops, naming the key and the fix.

use crate::common;

use common::warehouse::Warehouse;
use common::{zetl_command, TestEnv, DB};

fn unchanged_toast_without_a_target_row(warehouse: Warehouse, test: &str) {
    let env = TestEnv::start(test);
    env.sql(
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text);\n\
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;\n\
         INSERT INTO docs SELECT g, 'doc ' || g, (SELECT string_agg(md5(random()::text || i), '') \
            FROM generate_series(1, 200) i) FROM generate_series(1, 5) g;",
    );
    let config = warehouse.config(&env, test, &["public.docs"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, test);
    // Changes that leave the body unchanged keep it.
    env.sql("UPDATE docs SET title = 'renamed' WHERE id = 1");
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    warehouse.assert_equal(&env, &["public.docs"]);

    // The target loses a row; the source then updates it without touching the body.
    match &warehouse {
        Warehouse::Duckdb => env.target_sql("DELETE FROM public.docs WHERE id = 3"),
        Warehouse::Postgres(target) => {
            target.psql(DB, "DELETE FROM public.docs WHERE id = 3").expect("delete at the target");
        }
    }
    env.sql("UPDATE docs SET title = 'changed' WHERE id = 3");
    let out = zetl_command(&["run", "-c", config.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("table public.docs, key (id=3)") && err.contains("no row under that key"),
        "expected the key and the cause in:\n{err}"
    );
    assert!(err.contains("zetl resync public.docs"), "expected the fix in:\n{err}");
}

#[test]
fn unchanged_toast_without_a_target_row_stops_duckdb() {
    unchanged_toast_without_a_target_row(Warehouse::Duckdb, "toast_duck");
}

#[test]
fn unchanged_toast_without_a_target_row_stops_postgres() {
    unchanged_toast_without_a_target_row(Warehouse::postgres(), "toast_pg");
}
