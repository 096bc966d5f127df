//! Values an Iceberg table cannot store (PostgreSQL's `infinity` timestamps, `NaN` in a
//! `numeric(p,s)`): with `apply.on_error: fail` the run stops naming the table, key and
//! column; with `dead_letter` the change is set aside in `zetl_dead_letters` (copied rows
//! included) and everything else applied. Later changes to a letter's key supersede it, also
//! across a restart; `zetl dead-letters replay` applies what fits now and reports what does
//! not. Read back through pyiceberg and compared with the source, whole.

use crate::common;
use crate::iceberg::iceberg_target;
use common::config::{map, yaml};
use common::{zetl_command, PgOptions, PgServer, TestEnv, DB};
use zetl_testkit::compare_iceberg::{assert_iceberg_equal, read_lake, Reader};

const DDL: &str = "CREATE TABLE t (id int PRIMARY KEY, v int, ts timestamp, n numeric(6,2));
INSERT INTO t SELECT g, g, timestamp '2024-01-01' + g * interval '1 day', g * 1.5 FROM generate_series(1, 6) g;
INSERT INTO t VALUES (7, 7, 'infinity', 7);";

fn catalog(env: &TestEnv) -> std::path::PathBuf {
    env.scratch.path.join("lake").join("catalog.db")
}

/// `id:v:ts:n` of every row of the lake's `public.t` (catalog: the SQLite file or a
/// PostgreSQL URL), read by pyiceberg.
fn lake_rows(env: &TestEnv, catalog: &str) -> String {
    let (duck, _) = read_lake(Reader::PyIceberg, catalog, "zetl", &env.scratch.path, &["public.t"]);
    let conn = duckdb::Connection::open(duck).expect("open the reading");
    conn.query_row(
        "SELECT string_agg(concat_ws(':', id, v, coalesce(CAST(ts AS VARCHAR), '-'), coalesce(CAST(n AS VARCHAR), '-')), \
         ' ' ORDER BY id) FROM public.t",
        [],
        |r| r.get(0),
    )
    .expect("read the rows")
}

fn listed(cfg: &str) -> String {
    let out = zetl_command(&["dead-letters", "list", "-c", cfg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The state of the letter of `key` with operation `op` in `dead-letters list`.
fn state_of(list: &str, key: &str, op: &str) -> String {
    let line = list.lines().find(|l| l.contains(key) && l.contains(&format!("\t{op}\t"))).unwrap_or_else(|| {
        panic!("no letter for {key} ({op}):\n{list}");
    });
    line.split('\t').nth(5).unwrap_or_default().to_string()
}

#[test]
fn values_the_lake_cannot_store_become_dead_letters_and_replay_once_they_fit() {
    let env = TestEnv::start("iceberg_letters");
    let sqlite = catalog(&env).display().to_string();
    letters_set_aside_superseded_and_replayed(&env, iceberg_target(&env), &sqlite);
}

/// The same with the catalog (and `zetl_dead_letters`) in PostgreSQL.
#[test]
fn dead_letters_live_in_a_postgres_catalog_too() {
    let env = TestEnv::start("iceberg_letters_pg");
    let server = PgServer::start(PgOptions::default()).expect("start the catalog's PostgreSQL");
    let url = server.url(DB);
    let mut target = iceberg_target(&env);
    target.insert("catalog".into(), map([("kind", "sql".into()), ("url", url.clone().into())]).into());
    letters_set_aside_superseded_and_replayed(&env, target, &url);
}

fn letters_set_aside_superseded_and_replayed(env: &TestEnv, target: serde_yaml::Mapping, catalog: &str) {
    env.sql(DDL);
    let config = env
        .config("lake", &["public.*"])
        .target(target)
        .metrics_off()
        .set("apply", yaml("{ on_error: dead_letter }"))
        .write();
    let cfg = config.to_str().expect("utf-8 path");
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "lake");
    env.sql("UPDATE t SET ts = 'infinity', v = -v WHERE id IN (1, 2, 3, 4); UPDATE t SET n = 'NaN' WHERE id = 5");
    env.wait_caught_up(&mut zetl, "lake");
    // Set aside: the rows keep their last stored values; key 7's copied row is not there.
    assert_eq!(
        lake_rows(env, catalog),
        "1:1:2024-01-02 00:00:00:1.50 2:2:2024-01-03 00:00:00:3.00 3:3:2024-01-04 00:00:00:4.50 \
         4:4:2024-01-05 00:00:00:6.00 5:5:2024-01-06 00:00:00:7.50 6:6:2024-01-07 00:00:00:9.00"
    );
    zetl.stop();
    let list = listed(cfg);
    for (key, op) in [("(id=1)", "upsert"), ("(id=2)", "upsert"), ("(id=5)", "upsert"), ("(id=7)", "copy")] {
        assert_eq!(state_of(&list, key, op), "pending", "{list}");
    }
    assert!(list.contains("column ts: value infinity cannot be stored in an Iceberg timestamp column"), "{list}");
    assert!(list.contains("column n: value NaN cannot be stored in an Iceberg decimal(6, 2) column"), "{list}");

    // Later changes to keys 1, 3 and 4 (updated, deleted, moved away), after a restart.
    let mut zetl = env.run_zetl(&config);
    env.sql("UPDATE t SET ts = '2030-01-01', v = 11 WHERE id = 1; DELETE FROM t WHERE id = 3; UPDATE t SET id = 40, ts = NULL WHERE id = 4");
    env.wait_caught_up(&mut zetl, "lake");
    // The cause goes away for the letters of ts: the source drops the column.
    env.sql("ALTER TABLE t DROP COLUMN ts; UPDATE t SET v = 66 WHERE id = 6");
    env.wait_caught_up(&mut zetl, "lake");
    zetl.stop();
    let list = listed(cfg);
    for key in ["(id=1)", "(id=3)", "(id=4)"] {
        assert!(state_of(&list, key, "upsert").starts_with("superseded"), "{key}: {list}");
    }
    assert!(list.lines().filter(|l| l.contains("superseded")).all(|l| l.contains("(source position ")), "{list}");

    let out = zetl_command(&["dead-letters", "replay", "-c", cfg]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "a letter that still does not fit fails the replay: {said}");
    assert!(said.contains("replayed 2"), "{said}");
    assert!(said.lines().any(|l| l.contains("failed again") && l.contains("NaN")), "{said}");
    let list = listed(cfg);
    assert!(state_of(&list, "(id=2)", "upsert").starts_with("replayed"), "{list}");
    assert!(state_of(&list, "(id=7)", "copy").starts_with("replayed"), "{list}");
    assert_eq!(state_of(&list, "(id=5)", "upsert"), "pending", "{list}");

    // A running integration takes the change that supersedes the last one; the lake is the source.
    let mut zetl = env.run_zetl(&config);
    env.sql("UPDATE t SET n = 5.25 WHERE id = 5");
    env.wait_caught_up(&mut zetl, "lake");
    zetl.stop();
    assert!(state_of(&listed(cfg), "(id=5)", "upsert").starts_with("superseded"));
    assert_iceberg_equal(Reader::PyIceberg, &env.url(), catalog, "zetl", &env.scratch.path, &["public.t"]);
}

/// `on_error: fail` (the default): the run stops at the change with exit 1, naming the table,
/// key and column; nothing of its transaction is in the lake, and the next start stops again.
#[test]
fn a_value_the_lake_cannot_store_stops_the_run_naming_it() {
    let env = TestEnv::start("iceberg_misfit");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, d date); INSERT INTO t VALUES (1, '2024-01-01')");
    let config = env.config("lake", &["public.*"]).target(iceberg_target(&env)).metrics_off().write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "lake");
    env.sql("BEGIN; INSERT INTO t VALUES (2, '2024-02-02'); UPDATE t SET d = '-infinity' WHERE id = 1; COMMIT");
    let stops = |run: &mut common::Zetl| {
        assert!(common::poll(common::TIMEOUT, || run.try_exit().is_some()), "zetl did not stop at the value");
        let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
        assert_eq!(run.try_exit().and_then(|s| s.code()), Some(1), "{log}");
        let last = log.lines().rev().find(|l| l.starts_with("zetl: error")).unwrap_or_default().to_string();
        assert!(
            last.contains("table public.t, key (id=1)")
                && last.contains("column d: value -infinity cannot be stored in an Iceberg date column"),
            "{last}"
        );
    };
    stops(&mut zetl);
    stops(&mut env.run_zetl(&config));
    let (duck, _) = read_lake(Reader::PyIceberg, catalog(&env), "zetl", &env.scratch.path, &["public.t"]);
    let conn = duckdb::Connection::open(duck).expect("open the reading");
    let ids: String =
        conn.query_row("SELECT string_agg(id::VARCHAR, ',' ORDER BY id) FROM public.t", [], |r| r.get(0)).expect("ids");
    assert_eq!(ids, "1", "nothing of the stopped transaction is in the lake");
}
