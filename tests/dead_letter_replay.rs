//! A dead letter is replayed only while no later change to its key was applied: a key updated,
//! deleted or moved away at the source after its change was set aside keeps the newer row at
//! the target, and the letter is listed as superseded instead of being applied. Letters whose
//! key did not change since still replay. PostgreSQL source → DuckDB and → PostgreSQL.

use crate::common;
use common::config::yaml;

use common::warehouse::pg_target_config;
use common::{zetl_command, PgOptions, PgServer, TestEnv, DB};
use zetl_testkit::compare::assert_tables_equal;
use zetl_testkit::compare_pg::assert_pg_tables_equal;

/// The source's changes: letters for keys 1 to 4 (`bad` does not fit the target), then newer
/// accepted changes to 1 (updated), 3 (deleted) and 4 (moved to 40); 2 is left alone.
fn reject_then_change(env: &TestEnv, zetl: &mut common::Zetl, integration: &str, bad: &str) {
    env.sql(&format!("UPDATE t SET v = {bad} WHERE id IN (1, 2, 3, 4)"));
    env.wait_caught_up(zetl, integration);
    env.sql("UPDATE t SET v = 11 WHERE id = 1; DELETE FROM t WHERE id = 3; UPDATE t SET id = 40, v = 4 WHERE id = 4");
    env.wait_caught_up(zetl, integration);
}

fn lines_with(text: &str, word: &str) -> Vec<String> {
    text.lines().filter(|l| l.contains(word)).map(str::to_string).collect()
}

/// What `dead-letters list` and `replay` say after the fix: one letter (key 2) replayed, the
/// three others superseded and not applied.
fn assert_replay_skips_superseded(cfg: &str) {
    let replayed = zetl_command(&["dead-letters", "replay", "-c", cfg]);
    let out = String::from_utf8_lossy(&replayed.stdout).to_string();
    assert!(replayed.status.success() && out.contains("replayed 1"), "{out}");
    let skipped = lines_with(&out, "not applied: superseded");
    assert_eq!(skipped.len(), 3, "{out}");
    for key in ["(id=1)", "(id=3)", "(id=4)"] {
        assert!(skipped.iter().any(|l| l.contains(key) && l.contains("a later change to this key")), "{key}: {out}");
    }
    let listed = zetl_command(&["dead-letters", "list", "-c", cfg]);
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(lines_with(&text, "pending").is_empty(), "{text}");
    assert_eq!(lines_with(&text, "superseded").len(), 3, "{text}");
    assert!(lines_with(&text, "(id=2)").iter().all(|l| l.contains("replayed")), "{text}");
    assert!(
        lines_with(&text, "superseded").iter().all(|l| l.contains("(source position ")),
        "a superseded letter names the position of the change that won: {text}"
    );
}

#[test]
fn duckdb_replay_skips_letters_whose_key_changed_since() {
    let env = TestEnv::start("dl_replay_duck");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 6) g");
    let path = env.config("dead", &["public.*"]).metrics_off().set("apply", yaml("{ on_error: dead_letter }")).write();
    let cfg = path.to_str().expect("utf-8");
    let mut zetl = env.run_zetl(&path);
    env.wait_caught_up(&mut zetl, "dead");
    zetl.stop();
    env.target_sql("ALTER TABLE public.t ALTER v TYPE SMALLINT");

    let mut zetl = env.run_zetl(&path);
    reject_then_change(&env, &mut zetl, "dead", "100000");
    zetl.stop();
    let rows = env.target_value("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM public.t");
    assert_eq!(rows.as_deref(), Some("1:11,2:2,5:5,6:6,40:4"), "the newer rows are at the target");

    // The cause fixed, the replay applies the letter of key 2 only.
    env.target_sql("ALTER TABLE public.t ALTER v TYPE INTEGER");
    assert_replay_skips_superseded(cfg);
    assert_tables_equal(&env.url(), &env.duckdb_path(), &["public.t"]);

    // A letter is superseded in the transaction that applies the later change: stopped in
    // between, the next run still knows.
    env.target_sql("ALTER TABLE public.t ALTER v SET NOT NULL");
    let mut zetl = env.run_zetl(&path);
    env.sql("UPDATE t SET v = NULL WHERE id = 5");
    env.wait_caught_up(&mut zetl, "dead");
    zetl.stop();
    let mut zetl = env.run_zetl(&path);
    env.sql("UPDATE t SET v = 55 WHERE id = 5");
    env.wait_caught_up(&mut zetl, "dead");
    zetl.stop();
    env.target_sql("ALTER TABLE public.t ALTER v DROP NOT NULL");
    let replayed = zetl_command(&["dead-letters", "replay", "-c", cfg]);
    let out = String::from_utf8_lossy(&replayed.stdout).to_string();
    assert!(replayed.status.success() && out.contains("replayed 0"), "{out}");
    assert_tables_equal(&env.url(), &env.duckdb_path(), &["public.t"]);
}

#[test]
fn postgres_replay_skips_letters_whose_key_changed_since() {
    let env = TestEnv::start("dl_replay_pg");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 6) g");
    let path = pg_target_config(&env, &target).set("apply", yaml("{ on_error: dead_letter }")).write();
    let cfg = path.to_str().expect("utf-8");
    let mut zetl = env.run_zetl(&path);
    env.wait_caught_up(&mut zetl, "topg");
    target.psql(DB, "ALTER TABLE mirror.t ADD CONSTRAINT positive CHECK (v >= 0)").expect("constraint");
    reject_then_change(&env, &mut zetl, "topg", "-1");
    zetl.stop();
    let q = |sql: &str| target.psql(DB, sql).expect("query the target").trim().to_string();
    assert_eq!(q("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM mirror.t"), "1:11,2:2,5:5,6:6,40:4");

    target.psql(DB, "ALTER TABLE mirror.t DROP CONSTRAINT positive").expect("drop constraint");
    assert_replay_skips_superseded(cfg);
    assert_pg_tables_equal(&env.url(), &target.url(DB), &[("public.t", "mirror.t")], "");

    // Two letters of one key: both replay, oldest first, and the target ends with the newer row.
    target.psql(DB, "ALTER TABLE mirror.t ADD CONSTRAINT positive CHECK (v >= 0) NOT VALID").expect("constraint");
    let mut zetl = env.run_zetl(&path);
    env.sql("UPDATE t SET v = -5 WHERE id = 5");
    env.wait_caught_up(&mut zetl, "topg");
    env.sql("UPDATE t SET v = -6 WHERE id = 5");
    env.wait_caught_up(&mut zetl, "topg");
    zetl.stop();
    target.psql(DB, "ALTER TABLE mirror.t DROP CONSTRAINT positive").expect("drop constraint");
    let replayed = zetl_command(&["dead-letters", "replay", "-c", cfg]);
    let out = String::from_utf8_lossy(&replayed.stdout).to_string();
    assert!(replayed.status.success() && out.contains("replayed 2"), "{out}");
    assert_pg_tables_equal(&env.url(), &target.url(DB), &[("public.t", "mirror.t")], "");
}
