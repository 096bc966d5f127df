//! Operator verbs: `zetl check` about slots, `zetl drop`.

use crate::common;

use common::{zetl_command, TestEnv};

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = zetl_command(args);
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn check_flags_unused_slots_and_wal_over_budget_then_drop_removes_them() {
    let env = TestEnv::start("operate");
    env.sql("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1), (2)");
    let cfg = env.config("retired", &["public.*"]).write();
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "retired");

    // While it runs, the slot cannot be dropped.
    let (code, out) = run(&["drop", "-c", cfg.to_str().expect("path"), "--yes"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("stop `zetl run`"), "{out}");
    zetl.stop();

    // Some WAL after the slot's position, then a budget of 0 MiB: the slot is over it.
    env.sql("CREATE TABLE filler AS SELECT g FROM generate_series(1, 200000) g");
    let strict = env.config("retired", &["public.*"]).source("slot_wal_budget_mb", 0).write();
    let (code, out) = run(&["check", "-c", strict.to_str().expect("path")]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("✗ replication slot") && out.contains("over the budget"), "{out}");

    // Another file whose integration does not own the slot: a warning, not a failure.
    let other = env.config("newer", &["public.*"]).write();
    let (code, out) = run(&["check", "-c", other.to_str().expect("path")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("⚠ unused slot") && out.contains("zetl_retired"), "{out}");

    let (code, out) = run(&["drop", "-c", cfg.to_str().expect("path"), "--yes"]);
    assert_eq!(code, Some(0), "{out}");
    let left = env.sql_value(
        "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'zetl_retired') || ',' || \
         (SELECT count(*) FROM pg_publication WHERE pubname LIKE 'zetl\\_retired%')",
    );
    assert_eq!(left, "0,0", "slot and publications must be gone");
    let (code, out) = run(&["drop", "-c", cfg.to_str().expect("path"), "--yes"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("nothing to drop"), "{out}");
}
