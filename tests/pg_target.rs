//! PostgreSQL → PostgreSQL: the initial copy and the stream into a second server, compared
//! whole; schema mapping; soft deletes; the `_zetl` migrations.

use crate::common;
use common::config::yaml;

use common::warehouse::pg_target_config as config;
use common::{zetl_command, zetl_command_timeout, PgOptions, PgServer, TestEnv, DB, TIMEOUT};
use zetl_testkit::compare_pg::assert_pg_tables_equal;

#[test]
fn snapshot_and_stream_into_postgres_with_every_type() {
    let env = TestEnv::start("pg_target");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    env.sql(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); \
         CREATE TABLE zoo (id bigint PRIMARY KEY, b bool, i2 int2, i4 int4, f4 real, f8 float8, \
            n numeric(12,3), nn numeric, t text, by bytea, d date, tm time, ts timestamp(3), tz timestamptz, \
            iv interval, u uuid, j jsonb, m mood, arr int4[], tarr text[]); \
         CREATE TABLE events (at timestamptz, what text); \
         ALTER TABLE events REPLICA IDENTITY FULL; \
         INSERT INTO zoo SELECT g, g % 2 = 0, g, g * 10, g / 3.0, g / 7.0, g * 1.5, 10^30 + g, \
            'row ' || g || E'\\ttab\\nline \\\\ back', decode('00ff' || lpad(to_hex(g), 4, '0'), 'hex'), \
            '2024-01-01'::date + g, '12:00'::time + g * interval '1 s', '2024-01-01'::timestamp + g * interval '1.5 s', \
            '2024-01-01 00:00+02'::timestamptz + g * interval '1 h', g * interval '1 day 2 s', \
            md5(g::text)::uuid, jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g)), \
            (ARRAY['sad','ok','happy'])[1 + g % 3]::mood, ARRAY[g, NULL, -g], ARRAY['x,y', NULL, '\"q\"'] \
         FROM generate_series(1, 500) g; \
         INSERT INTO events VALUES ('2024-01-01', 'a'), ('2024-01-01', 'a'), ('2024-01-02', 'b'); \
         CREATE TABLE flat AS SELECT id, b, i2, i4, f4, f8, n, nn, t, by, d, tm, ts, tz, iv, u, j, m FROM zoo; \
         ALTER TABLE flat ADD PRIMARY KEY (id); \
         INSERT INTO flat (id, n, nn, d, ts, tz, iv) VALUES (-1, -0.001, 'NaN', 'infinity', '-infinity', 'infinity', \
            '-1 mon -2 days -00:00:00.000001'), (-2, 0, -123456789012345678901234567890.0000000001, '1900-02-28', \
            '1900-03-01 23:59:59.999999', '1969-12-31 23:59:59.5+00', '0')",
    );
    // A target migrated (to version 1) by an earlier zetl, which kept its versions in sqlx's table.
    let legacy = "CREATE TABLE _zetl._sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL, \
         installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL, checksum bytea NOT NULL, \
         execution_time bigint NOT NULL); \
         INSERT INTO _zetl._sqlx_migrations VALUES (1, 'state, by sqlx', now(), true, '\\x00', 0)";
    let v1 = include_str!("../migrations/postgres/0001_state.sql");
    target.psql(DB, &format!("{v1};\n{legacy}")).expect("an earlier zetl's migrations");
    // `flat` has no arrays: it goes to the target in COPY's binary format (zoo's arrays as text).
    let cfg = config(&env, &target).write();
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "topg");
    env.sql(
        "UPDATE zoo SET t = 'changed', j = '{\"x\": null}', arr = '{}' WHERE id <= 50; \
         DELETE FROM zoo WHERE id BETWEEN 51 AND 60; \
         UPDATE zoo SET id = id + 1000 WHERE id BETWEEN 61 AND 65; \
         UPDATE flat SET t = 'changed', n = -n, iv = -iv, tz = tz - interval '30 years' WHERE id <= 50; \
         DELETE FROM flat WHERE id BETWEEN 51 AND 60; \
         INSERT INTO zoo (id, t) VALUES (2000, NULL); \
         BEGIN; INSERT INTO events VALUES ('2024-01-03', 'c'); DELETE FROM events WHERE what = 'a' AND ctid = \
            (SELECT min(ctid) FROM events WHERE what = 'a'); COMMIT",
    );
    env.wait_caught_up(&mut zetl, "topg");
    zetl.stop();
    assert_pg_tables_equal(
        &env.url(),
        &target.url(DB),
        &[("public.zoo", "mirror.zoo"), ("public.events", "mirror.events"), ("public.flat", "mirror.flat")],
        "",
    );
    // The copy filled the keyed tables without their keys, built once it was done (the
    // updates, deletes and key changes above merged on them).
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    for table in ["public.zoo", "public.flat"] {
        assert!(log.contains(&format!("primary key built after the copy table={table}")), "{log}");
    }

    let taken_over = target.psql(DB, "SELECT description FROM _zetl.schema_version WHERE version = 1").expect("v1");
    assert_eq!(taken_over.trim(), "state, by sqlx");
    // Migrations applied twice are a no-op; a newer schema is refused.
    let version = target.psql(DB, "SELECT count(*) FROM _zetl.schema_version").expect("version");
    let zetl = env.run_zetl(&cfg);
    env.sql("INSERT INTO zoo (id) VALUES (3000)");
    let mut zetl = zetl;
    env.wait_caught_up(&mut zetl, "topg");
    zetl.stop();
    assert_eq!(target.psql(DB, "SELECT count(*) FROM _zetl.schema_version").expect("version"), version);
    target
        .psql(DB, "INSERT INTO _zetl.schema_version (version, description) VALUES (99, 'from a newer zetl')")
        .expect("pretend a newer zetl");
    let out = zetl_command(&["run", "-c", cfg.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("version 99, newer than this zetl knows"), "{text}");
}

#[test]
fn soft_deletes_in_a_postgres_target() {
    let env = TestEnv::start("pg_target_soft");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    env.sql(
        "CREATE TABLE orders (id int PRIMARY KEY, v text); INSERT INTO orders SELECT g, 'v' FROM generate_series(1, 10) g; \
         CREATE TABLE scratch (id int PRIMARY KEY); INSERT INTO scratch VALUES (1), (2)",
    );
    let cfg = config(&env, &target)
        .set("apply", yaml("{ deletes: soft, tables: { public.scratch: { deletes: hard, truncate: ignore } } }"))
        .write();
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "topg");
    env.sql("DELETE FROM orders WHERE id <= 3; UPDATE orders SET v = 'w' WHERE id = 4; INSERT INTO orders VALUES (1, 'back')");
    env.sql("DELETE FROM scratch WHERE id = 1; TRUNCATE scratch; INSERT INTO scratch VALUES (5)");
    env.wait_caught_up(&mut zetl, "topg");
    zetl.stop();
    assert_pg_tables_equal(&env.url(), &target.url(DB), &[("public.orders", "mirror.orders")], "NOT _zetl_deleted");
    let marked = target
        .psql(DB, "SELECT count(*) FROM mirror.orders WHERE _zetl_deleted AND _zetl_position IS NOT NULL")
        .expect("count");
    assert_eq!(marked.trim(), "2");
    // Hard deletes there, and the TRUNCATE ignored: 2 survives at the target only.
    assert_eq!(
        target.psql(DB, "SELECT string_agg(id::text, ',' ORDER BY id) FROM mirror.scratch").expect("rows").trim(),
        "2,5"
    );
}

#[test]
fn kill_9_under_pgbench_into_postgres() {
    let env = TestEnv::start("pg_target_kill9");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    let init =
        std::process::Command::new("pgbench").args(["-i", "-q", "-s", "1"]).arg(env.url()).output().expect("pgbench");
    assert!(init.status.success(), "pgbench -i: {}", String::from_utf8_lossy(&init.stderr));
    let cfg = config(&env, &target).write();
    let mut zetl = env.run_zetl(&cfg);
    let mut load = std::process::Command::new("pgbench")
        .args(["-n", "-c", "4", "-j", "2", "-T", "10"])
        .arg(env.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start pgbench");
    for _ in 0..2 {
        std::thread::sleep(std::time::Duration::from_secs(3));
        zetl.kill9();
        zetl = env.run_zetl(&cfg);
    }
    assert!(load.wait().expect("pgbench").success(), "pgbench failed");
    env.wait_caught_up(&mut zetl, "topg");
    zetl.stop();
    let pairs: Vec<(String, String)> = ["accounts", "branches", "tellers", "history"]
        .iter()
        .map(|t| (format!("public.pgbench_{t}"), format!("mirror.pgbench_{t}")))
        .collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_pg_tables_equal(&env.url(), &target.url(DB), &pairs, "");
}

#[test]
fn the_target_restarting_is_survived() {
    let env = TestEnv::start("pg_target_restart");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 100) g");
    let cfg = config(&env, &target).write();
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "topg");
    target.restart().expect("restart the target");
    env.sql("UPDATE t SET v = v + 1; INSERT INTO t VALUES (1000, 0)");
    env.wait_caught_up(&mut zetl, "topg");
    zetl.stop();
    assert_pg_tables_equal(&env.url(), &target.url(DB), &[("public.t", "mirror.t")], "");
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(log.contains("resuming from the target's checkpoint"), "zetl did not reconnect:\n{log}");
}

#[test]
fn rejected_changes_become_dead_letters_and_replay_after_the_fix() {
    let env = TestEnv::start("pg_target_dead");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 10) g");
    let dead_cfg = config(&env, &target).set("apply", yaml("{ on_error: dead_letter }")).write();
    let cfg = dead_cfg.to_str().expect("utf-8");
    let mut zetl = env.run_zetl(&dead_cfg);
    env.wait_caught_up(&mut zetl, "topg");
    // Something at the target now rejects some rows.
    target.psql(DB, "ALTER TABLE mirror.t ADD CONSTRAINT positive CHECK (v >= 0)").expect("constraint");
    env.sql("INSERT INTO t VALUES (100, 5), (101, -1), (102, 7); UPDATE t SET v = -5 WHERE id = 1; DELETE FROM t WHERE id = 2");
    env.wait_caught_up(&mut zetl, "topg");
    zetl.stop();
    let q = |sql: &str| target.psql(DB, sql).expect("query the target").trim().to_string();
    assert_eq!(
        q("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM mirror.t WHERE id IN (1, 2, 100, 101, 102)"),
        "1:1,100:5,102:7"
    );
    let listed = zetl_command(&["dead-letters", "list", "-c", cfg]);
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert_eq!(text.lines().filter(|l| l.contains("pending")).count(), 2, "{text}");
    assert!(
        text.contains("(id=101)") && text.contains("(id=1)") && text.contains("violates check constraint"),
        "{text}"
    );

    // The cause fixed, a replay brings the target level with the source.
    target.psql(DB, "ALTER TABLE mirror.t DROP CONSTRAINT positive").expect("drop constraint");
    let replayed = zetl_command(&["dead-letters", "replay", "-c", cfg]);
    assert!(replayed.status.success(), "{}", String::from_utf8_lossy(&replayed.stdout));
    assert!(String::from_utf8_lossy(&replayed.stdout).contains("replayed 2"));
    assert_pg_tables_equal(&env.url(), &target.url(DB), &[("public.t", "mirror.t")], "");

    // on_error: fail (the default) stops at the first rejected change, naming it.
    target.psql(DB, "ALTER TABLE mirror.t ADD CONSTRAINT positive CHECK (v >= 0) NOT VALID").expect("constraint");
    env.sql("INSERT INTO t VALUES (103, -3)");
    let strict = config(&env, &target).write();
    let out = zetl_command(&["run", "-c", strict.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("table public.t, key (id=103)") && err.contains("positive"), "{err}");
}

#[test]
fn soft_mode_tells_ttl_expiries_from_deletes_in_postgres() {
    use zetl_core::apply::{ApplyPolicy, DeleteMode, TableApply};
    use zetl_core::batch::Batch;
    use zetl_core::target::Target;
    use zetl_core::{Change, ChangeKind, Checkpoint, Column, ColumnType, Phase, Position, RowIdentity, TableId};
    use zetl_core::{TableSchema, Value};

    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    let policy = ApplyPolicy::uniform(TableApply { deletes: DeleteMode::Soft, ..TableApply::default() });
    let mut t = zetl_pg_target::PgTarget::connect(&target.url(DB), "ttl", Default::default())
        .expect("connect")
        .with_apply_policy(policy);
    let col = |name: &str, ty| Column { name: name.into(), ty, source_type: String::new(), nullable: true };
    let schema = TableSchema {
        id: TableId::new("dynamodb", "items"),
        columns: vec![col("id", ColumnType::Int64), col("item", ColumnType::Json)],
        identity: RowIdentity::Key(vec![0]),
    };
    let row = |id: i64, item: Value| vec![Value::Int(id), item];
    let change = |kind| Change { table: schema.id.clone(), kind };
    let commit = |t: &mut zetl_pg_target::PgTarget, batch: &Batch, at: &str| {
        t.begin().expect("begin");
        t.ensure_table(&schema).expect("table");
        t.apply(batch).expect("apply");
        t.commit(&Checkpoint { position: Position(at.into()), phase: Phase::Streaming }).expect("commit");
    };
    let mut b = Batch::default();
    for id in 1..=3 {
        b.push(&schema, change(ChangeKind::Insert { row: row(id, Value::Json(format!("{{\"n\":{id}}}"))) }));
    }
    commit(&mut t, &b, "1");
    let mut b = Batch::default();
    b.push(&schema, change(ChangeKind::Delete { old: row(1, Value::Null) }));
    b.push(&schema, change(ChangeKind::Expire { old: row(2, Value::Null) }));
    commit(&mut t, &b, "2");
    let flags = target
        .psql(DB, "SELECT string_agg(id || ':' || _zetl_deleted || ':' || _zetl_expired, ',' ORDER BY id) FROM dynamodb.items")
        .expect("query");
    assert_eq!(flags.trim(), "1:true:false,2:true:true,3:false:false");
}

/// With `on_error: dead_letter`, only the target's verdict on a row (a data error) sets a
/// change aside. A lock timeout says nothing about the rows: zetl tries again from the
/// checkpoint and applies them once the lock is gone, with no dead letter.
#[test]
fn a_lock_timeout_is_retried_never_a_dead_letter() {
    let env = TestEnv::start("pg_target_lock");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 10) g");
    let cfg = config(&env, &target).set("apply", yaml("{ on_error: dead_letter }")).write();
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "topg");
    target.psql(DB, "ALTER DATABASE zetl SET lock_timeout = '200ms'").expect("lock_timeout");
    // New sessions get the setting: make zetl reconnect to the target.
    target
        .psql(DB, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'zetl%' AND datname = 'zetl'")
        .expect("end zetl's target sessions");
    let holder = {
        let url = target.url(DB);
        std::thread::spawn(move || {
            std::process::Command::new("psql")
                .arg(url)
                .args([
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    "BEGIN; LOCK TABLE mirror.t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;",
                ])
                .output()
                .expect("run psql")
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    env.sql("INSERT INTO t VALUES (100, 100); UPDATE t SET v = -1 WHERE id = 1; DELETE FROM t WHERE id = 2");
    let held = holder.join().expect("the lock holder");
    assert!(held.status.success(), "{}", String::from_utf8_lossy(&held.stderr));
    env.wait_caught_up(&mut zetl, "topg");
    zetl.stop();
    assert_pg_tables_equal(&env.url(), &target.url(DB), &[("public.t", "mirror.t")], "");
    let letters = target.psql(DB, "SELECT count(*) FROM _zetl.dead_letters").expect("count dead letters");
    assert_eq!(letters.trim(), "0", "a lock timeout must not make dead letters");
}

/// A second `zetl run` of an integration that runs already is refused before it touches the
/// target — into PostgreSQL (which holds no file lock) as into DuckDB — and the first goes on
/// with its tables whole.
#[test]
fn a_second_run_of_a_running_integration_is_refused() {
    let env = TestEnv::start("pg_target_twice");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    env.sql("CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' FROM generate_series(1, 500) g");
    let to_pg = config(&env, &target).write();
    let to_duckdb = env.config("twice", &["public.*"]).metrics_off().write();
    let mut first_pg = env.run_zetl(&to_pg);
    env.wait_caught_up(&mut first_pg, "topg");
    let mut first_duckdb = env.run_zetl(&to_duckdb);
    env.wait_caught_up(&mut first_duckdb, "twice");

    for (cfg, needle) in [
        (&to_pg, "another `zetl run` of integration `topg` is writing to this target database"),
        (&to_duckdb, "cannot open DuckDB file"),
    ] {
        let second = zetl_command_timeout(&["run", "-c", cfg.to_str().expect("utf-8")], TIMEOUT)
            .unwrap_or_else(|_| panic!("the second zetl run of {} did not stop by itself", cfg.display()));
        let err = String::from_utf8_lossy(&second.stderr).to_string();
        assert_eq!(second.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "expected `{needle}` in:\n{err}");
    }

    env.sql("UPDATE items SET v = 'w' WHERE id <= 100; DELETE FROM items WHERE id > 450; INSERT INTO items VALUES (1000, 'x')");
    env.wait_caught_up(&mut first_pg, "topg");
    env.wait_caught_up(&mut first_duckdb, "twice");
    first_pg.stop();
    first_duckdb.stop();
    assert_pg_tables_equal(&env.url(), &target.url(DB), &[("public.items", "mirror.items")], "");
    env.assert_equal(&["public.items"]);
}

/// The target PostgreSQL is down for a minute while the source keeps writing: zetl keeps
/// retrying (its backoff grows to 30 s) without exiting and, once the target is back, applies
/// everything; the target ends equal to the source, nothing applied twice.
#[test]
fn the_target_down_for_a_minute_is_waited_out() {
    let env = TestEnv::start("pg_target_down");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    env.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;\n\
         CREATE TABLE events (id bigserial PRIMARY KEY, n int)",
    );
    let cfg = config(&env, &target).write();
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "topg");
    target.stop().expect("stop the target");
    let down = std::time::Instant::now();
    let mut i = 0;
    while down.elapsed() < std::time::Duration::from_secs(60) {
        env.sql(&format!(
            "BEGIN; UPDATE t SET v = v + 1 WHERE id % 10 = {}; INSERT INTO events (n) VALUES ({i}); COMMIT;",
            i % 10
        ));
        if let Some(status) = zetl.try_exit() {
            panic!("zetl exited ({status}) while the target was down");
        }
        i += 1;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    target.restart().expect("start the target again");
    env.wait_caught_up(&mut zetl, "topg");
    zetl.stop();
    let tables = [("public.t", "mirror.t"), ("public.events", "mirror.events")];
    assert_pg_tables_equal(&env.url(), &target.url(DB), &tables, "");
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(log.contains("transient failure"), "zetl did not retry:\n{log}");
    eprintln!("{i} transactions written while the target was down");
}
