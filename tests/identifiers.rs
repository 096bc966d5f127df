//! Names the DuckDB target cannot keep apart (it compares identifiers case-insensitively) and
//! column names zetl keeps for itself stop the integration with a clear error naming them,
//! before anything is created or written; the other tables' copies are not touched.

use crate::common;

use common::{zetl_command, TestEnv};

fn run_fails_with(env: &TestEnv, tables: &[&str], needles: &[&str]) {
    let config = env.config("names", tables).write();
    let out = zetl_command(&["run", "-c", config.to_str().expect("utf-8 path")]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "zetl run should fail; it printed:\n{all}");
    for needle in needles {
        assert!(all.contains(needle), "expected `{needle}` in zetl's output:\n{all}");
    }
}

#[test]
fn names_that_collide_at_the_target_are_refused() {
    let env = TestEnv::start("names");
    env.sql(
        "CREATE TABLE \"Orders\" (id int PRIMARY KEY); INSERT INTO \"Orders\" VALUES (1);\n\
         CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (2);\n\
         CREATE TABLE cased (\"ID\" int PRIMARY KEY, id int);\n\
         CREATE TABLE marked (id int PRIMARY KEY, _zetl_deleted bool);",
    );
    run_fails_with(
        &env,
        &["public.Orders", "public.orders"],
        &["`public.Orders`", "`public.orders`", "are one name in DuckDB", "tables.exclude"],
    );
    run_fails_with(
        &env,
        &["public.cased"],
        &["columns `public.cased.ID` and `public.cased.id` are one name in DuckDB"],
    );
    run_fails_with(
        &env,
        &["public.marked"],
        &["table public.marked: column `_zetl_deleted`", "rename the column at the source or exclude the table"],
    );
}
