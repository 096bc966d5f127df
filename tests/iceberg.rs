//! The Iceberg target: PostgreSQL, MariaDB and DynamoDB tables replicated into Iceberg v2
//! tables of a SQLite SQL catalog (mirror and changelog modes, `zetl lake maintain`), read back
//! through pyiceberg, DuckDB's iceberg extension and Spark (position deletes applied) and
//! compared whole with the source, by exact values.

use crate::common;
use common::config::{map, TestConfig};
use common::mysql::{MyEnv, MY_DB};
use common::{Env, Server, StopOnDrop, TestEnv, Zetl};
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use zetl_testkit::compare::assert_tables_equal;
use zetl_testkit::compare_iceberg::{assert_iceberg_equal, changelog_to_state, read_lake, Reader};

pub const TABLES: &[&str] = &["public.kinds", "public.pairs", "public.log", "public.rev"];

pub const DDL: &str = "
CREATE TABLE kinds (id int PRIMARY KEY, b bool, i2 int2, i8 int8, f8 float8, n numeric(12,2), t text,
    by bytea, d date, tm time, ts timestamp, tstz timestamptz, u uuid, jb jsonb);
INSERT INTO kinds SELECT g, g % 2 = 0, (g % 30000)::int2, g::int8 * 1000003, g / 7.0,
    (g * 1.25)::numeric(12,2), 'row ' || g, decode(md5(g::text), 'hex'), date '2000-01-01' + g,
    time '00:00' + g * interval '1.5 second', timestamp '2001-01-01' + g * interval '1 minute 0.000001 s',
    timestamptz '2001-01-01 00:00+00' + g * interval '1 hour', md5(g::text)::uuid,
    jsonb_build_object('g', g, 's', 'x' || g)
    FROM generate_series(1, 30000) g;
INSERT INTO kinds (id) VALUES (-1);
CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));
INSERT INTO pairs SELECT g % 100, 'k' || (g / 100), g FROM generate_series(1, 5000) g;
CREATE TABLE log (msg text, at int);
INSERT INTO log SELECT 'line ' || g, g FROM generate_series(1, 1000) g;
CREATE TABLE rev (x int, y text, v int, PRIMARY KEY (y, x));
INSERT INTO rev SELECT g % 50, 'y' || (g / 50), g FROM generate_series(1, 2000) g;
";

/// Every kind of change, some to rows in files already committed (position deletes), some
/// twice in one transaction, key changes both ways.
pub const CHANGES: &str = "
UPDATE kinds SET t = 'updated ' || id, n = n + 1 WHERE id % 10 = 0;
DELETE FROM kinds WHERE id % 10 = 1;
UPDATE kinds SET id = id + 100000 WHERE id % 10 = 2 AND id < 20000;
UPDATE kinds SET id = -id WHERE id % 10 = 2 AND id BETWEEN 20000 AND 25000;
UPDATE kinds SET tstz = NULL, u = NULL, jb = '[1, {\"a\": null}]' WHERE id % 10 = 3;
BEGIN; UPDATE kinds SET f8 = 'NaN' WHERE id = 4; UPDATE kinds SET f8 = f8 WHERE id = 4; DELETE FROM kinds WHERE id = 14;
INSERT INTO kinds (id, t) VALUES (14, 'again'); COMMIT;
INSERT INTO kinds (id, t, n) SELECT 200000 + g, 'new ' || g, g FROM generate_series(1, 500) g;
UPDATE pairs SET v = -v WHERE a = 7;
UPDATE pairs SET b = b || '!' WHERE a = 8;
DELETE FROM pairs WHERE a = 9;
INSERT INTO log SELECT 'streamed ' || g, g FROM generate_series(1, 100) g;
UPDATE rev SET v = -v WHERE x % 3 = 0;
DELETE FROM rev WHERE x % 7 = 0;
";

fn lake<S: Server>(env: &Env<S>) -> (PathBuf, PathBuf) {
    (env.scratch.path.join("lake"), env.scratch.path.join("lake").join("catalog.db"))
}

pub fn iceberg_target<S: Server>(env: &Env<S>) -> serde_yaml::Mapping {
    let (warehouse, catalog) = lake(env);
    let catalog = map([("kind", "sql".into()), ("url", format!("sqlite://{}", catalog.display()).into())]);
    map([
        ("kind", "iceberg".into()),
        ("warehouse", format!("file://{}", warehouse.display()).into()),
        ("catalog", catalog.into()),
        ("commit_every", "1s".into()),
    ])
}

fn iceberg_config(env: &TestEnv, name: &str) -> TestConfig {
    env.config(name, &["public.*"]).target(iceberg_target(env)).metrics_off()
}

/// Reads `tables` through each of `readers` and compares each reading with the source.
fn assert_read_equal(env: &TestEnv, readers: &[Reader], tables: &[&str]) {
    let (_, catalog) = lake(env);
    for reader in readers {
        assert_iceberg_equal(*reader, &env.url(), &catalog, "zetl", &env.scratch.path, tables);
    }
}

fn assert_lake_equal(env: &TestEnv) {
    assert_read_equal(env, &[Reader::PyIceberg, Reader::DuckDb], TABLES);
}

/// Copy, every kind of change, a kill -9 under a write workload and a restart that rebuilds
/// the key index from the table: pyiceberg and DuckDB read exactly the source.
#[test]
fn postgres_into_iceberg_equals_the_source_through_pyiceberg_and_duckdb() {
    let env = TestEnv::start("iceberg");
    env.sql(DDL);
    let config = iceberg_config(&env, "lake").write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "lake");
    zetl.stop();
    assert_lake_equal(&env);

    let mut zetl = env.run_zetl(&config);
    env.sql(CHANGES);
    env.wait_caught_up(&mut zetl, "lake");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                env.sql(&format!(
                    "UPDATE kinds SET t = 'load {i}', i8 = i8 + 1 WHERE id = {}; \
                     DELETE FROM pairs WHERE a = {} AND b = 'k{}'; \
                     INSERT INTO kinds (id, t) VALUES ({}, 'load') ON CONFLICT (id) DO UPDATE SET t = 'dup';",
                    (i * 7919) % 30000,
                    i % 100,
                    (i / 100) % 50,
                    300000 + i % 2000,
                ));
            }
            i
        });
        std::thread::sleep(std::time::Duration::from_secs(4));
        zetl.kill9();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let mut zetl = env.run_zetl(&config);
        std::thread::sleep(std::time::Duration::from_secs(4));
        stop.store(true, Ordering::Relaxed);
        let written = writer.join().expect("workload");
        env.wait_caught_up(&mut zetl, "lake");
        zetl.stop();
        eprintln!("{written} transactions written around the kill");
    });
    assert_lake_equal(&env);
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(!log.contains(" ERROR "), "{log}");
}

/// A second `zetl run` of a running integration is refused before it writes anything (the
/// catalog holds no lock of its own between commits); the first is left running.
pub fn assert_second_run_refused(config: &Path, integration: &str) {
    let second = common::zetl_command_timeout(&["run", "-c", config.to_str().expect("utf-8")], common::TIMEOUT)
        .unwrap_or_else(|_| panic!("the second zetl run of {} did not stop by itself", config.display()));
    let err = String::from_utf8_lossy(&second.stderr).to_string();
    assert_eq!(second.status.code(), Some(1), "{err}");
    let needle = format!("another `zetl run` of integration `{integration}` is writing to this Iceberg catalog");
    assert!(err.contains(&needle), "expected `{needle}` in:\n{err}");
}

/// Each commit is one Iceberg snapshot per changed table carrying the integration and the
/// source position in its summary; a table the stream did not touch gets none.
#[test]
fn iceberg_snapshots_carry_the_source_position() {
    let env = TestEnv::start("iceberg_snap");
    env.sql(DDL);
    let config = iceberg_config(&env, "lake").write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "lake");
    assert_second_run_refused(&config, "lake");
    let before_update = env.sql_value("SELECT pg_current_wal_insert_lsn()");
    env.sql("UPDATE kinds SET t = 'x' WHERE id = 5");
    env.wait_caught_up(&mut zetl, "lake");
    zetl.stop();
    let (_, catalog) = lake(&env);
    // In commit order: the metadata's snapshot list is in no particular order (iceberg-rust
    // writes it from a map); the sequence numbers are.
    let summaries = common::python(&format!(
        "from pyiceberg.catalog.sql import SqlCatalog\n\
         c = SqlCatalog('zetl', uri='sqlite:///{}')\n\
         for name in ('public.kinds', 'public.log'):\n\
         \x20   t = c.load_table(name)\n\
         \x20   for s in sorted(t.snapshots(), key=lambda s: s.sequence_number):\n\
         \x20       p = s.summary.additional_properties\n\
         \x20       live = int(p['total-records']) - int(p['total-position-deletes'])\n\
         \x20       print(name, s.summary.operation.value, live, p.get('zetl.integration'), p.get('zetl.position'))\n",
        catalog.display()
    ));
    let kinds: Vec<&str> = summaries.lines().filter(|l| l.starts_with("public.kinds ")).collect();
    let log: Vec<&str> = summaries.lines().filter(|l| l.starts_with("public.log ")).collect();
    assert_eq!(log.len(), 1, "the untouched table has its copy's snapshot only:\n{summaries}");
    assert!(kinds.len() >= 2, "{summaries}");
    let last = kinds.last().expect("a snapshot");
    assert!(
        last.starts_with("public.kinds overwrite 30001 lake "),
        "an update is an overwrite with position deletes, whose totals count the table's rows: {last}"
    );
    assert_eq!(log[0].split(' ').nth(2), Some("1000"), "the copy's totals: {}", log[0]);
    let position = last.rsplit(' ').next().unwrap_or_default();
    let confirmed = env.sql_value("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'zetl_lake'");
    assert!(!position.is_empty() && position != "None", "{last}");
    let lsn = |s: &str| {
        let (hi, lo) = s.split_once('/').expect("an LSN");
        (u64::from_str_radix(hi, 16).expect("hex") << 32) | u64::from_str_radix(lo, 16).expect("hex")
    };
    assert!(
        lsn(&before_update) < lsn(position) && lsn(position) <= lsn(&confirmed),
        "the last snapshot is the update's ({before_update} < its position), and the slot never confirms past it: {position} vs {confirmed}"
    );
    let (duck, counts) = read_lake(Reader::PyIceberg, &catalog, "zetl", &env.scratch.path, &["public.kinds"]);
    assert_eq!(counts, vec![30001], "{}", duck.display());
}

/// Updates that leave a TOASTed column unsent take its value from the row the lake holds: in
/// a data file committed before, in the open transaction, and across a key change.
#[test]
fn unsent_toast_values_are_read_back_from_the_lake() {
    let env = TestEnv::start("iceberg_toast");
    env.sql(
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text, price numeric(10,2));\n\
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;\n\
         INSERT INTO docs SELECT g, 'doc ' || g, (SELECT string_agg(md5(i::text || g), '') \
            FROM generate_series(1, 150) i), g * 1.5 FROM generate_series(1, 40) g;",
    );
    let config = env.config("toast", &["public.docs"]).target(iceberg_target(&env)).metrics_off().write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "toast");
    env.sql(
        "UPDATE docs SET title = 'renamed' WHERE id <= 10;\n\
         BEGIN; UPDATE docs SET title = 'twice' WHERE id = 11; UPDATE docs SET price = 0 WHERE id = 11; COMMIT;\n\
         UPDATE docs SET id = id + 1000 WHERE id BETWEEN 20 AND 25;\n\
         UPDATE docs SET id = -id, title = 'moved' WHERE id = 30;",
    );
    env.wait_caught_up(&mut zetl, "toast");
    env.sql("UPDATE docs SET title = 'again' WHERE id IN (1, 1020, -30)");
    env.wait_caught_up(&mut zetl, "toast");
    zetl.stop();
    assert_read_equal(&env, &[Reader::PyIceberg], &["public.docs"]);
}

/// Spark, the distributed engine, opens the same SQLite catalog through Iceberg's JdbcCatalog
/// and reads the copy and every kind of change (position deletes applied) exactly as the source
/// holds them; pyiceberg and DuckDB read the same. The table has no `time` column: Spark 3.5
/// has no time type and refuses Iceberg tables with one (docs/type-mapping.md).
#[test]
fn spark_reads_exactly_the_source() {
    let env = TestEnv::start("iceberg_spark");
    env.sql(DDL);
    env.sql("ALTER TABLE kinds DROP COLUMN tm");
    let config = iceberg_config(&env, "lake").write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "lake");
    env.sql(CHANGES);
    env.wait_caught_up(&mut zetl, "lake");
    zetl.stop();
    assert_read_equal(&env, &[Reader::Spark, Reader::PyIceberg, Reader::DuckDb], TABLES);
}

/// MariaDB → Iceberg: copy, every kind of change, a kill -9 and a restart; pyiceberg and DuckDB
/// read exactly the source.
#[test]
fn mariadb_into_iceberg_equals_the_source_through_pyiceberg_and_duckdb() {
    let env = MyEnv::start("iceberg_my");
    env.sql(
        "CREATE TABLE items (id bigint PRIMARY KEY, name varchar(40), qty int, price decimal(12,3), \
             at datetime(6), blob_ varbinary(64), note text); \
         INSERT INTO items SELECT seq, CONCAT('item ', seq), seq % 97, seq / 8, \
             TIMESTAMP '2020-01-01 00:00:00' + INTERVAL seq SECOND, UNHEX(MD5(seq)), REPEAT('n', seq % 300) \
             FROM seq_1_to_20000; \
         CREATE TABLE rev (x int, y varchar(10), v int, PRIMARY KEY (y, x)); \
         INSERT INTO rev SELECT seq % 50, CONCAT('y', seq DIV 50), seq FROM seq_1_to_2000; \
         CREATE TABLE mark (n int PRIMARY KEY);",
    );
    let tables = [format!("{MY_DB}.items"), format!("{MY_DB}.rev"), format!("{MY_DB}.mark")];
    let config = env.config("mylake").target(iceberg_target(&env)).write();
    let mut zetl = env.run_zetl_streaming(&config);
    env.sql(
        "UPDATE items SET qty = qty + 1, note = NULL WHERE id % 10 = 0; \
         DELETE FROM items WHERE id % 10 = 1; \
         UPDATE items SET id = id + 100000 WHERE id % 10 = 2; \
         INSERT INTO items (id, name) SELECT 500000 + seq, 'new' FROM seq_1_to_300;",
    );
    wait_for_mark(&env, &mut zetl, 1);
    zetl.kill9();
    // After the restart the key index is read back from the files: a key declared (y, x) must
    // come back in that order, or these rows would be added again instead of replaced.
    env.sql(
        "UPDATE items SET price = -price WHERE id % 10 = 3; DELETE FROM items WHERE id % 10 = 4; \
         UPDATE rev SET v = -v WHERE x % 3 = 0; DELETE FROM rev WHERE x % 7 = 0;",
    );
    let mut zetl = env.run_zetl(&config);
    wait_for_mark(&env, &mut zetl, 2);
    zetl.stop();
    let (_, catalog) = lake(&env);
    let names: Vec<&str> = tables.iter().map(String::as_str).collect();
    for reader in [Reader::PyIceberg, Reader::DuckDb] {
        let (duck, _) = read_lake(reader, &catalog, "zetl", &env.scratch.path, &names);
        zetl_testkit::compare_mysql::assert_mysql_tables_equal(&env.server, &duck, &names);
    }
}

/// Writes mark `n` at the source and waits until pyiceberg sees it in the lake.
fn wait_for_mark(env: &MyEnv, zetl: &mut Zetl, n: u64) {
    env.sql(&format!("INSERT INTO mark VALUES ({n})"));
    let (_, catalog) = lake(env);
    let mark = format!("{MY_DB}.mark");
    common::wait_for(&format!("mark {n} in the lake"), zetl, || numbers_in_lake(&catalog, &mark).contains(&n));
}

/// The values of column `n` of `table` as pyiceberg reads them from the SQLite `catalog`
/// (none while the table does not exist).
pub fn numbers_in_lake(catalog: &Path, table: &str) -> Vec<u64> {
    let program = format!(
        "from pyiceberg.catalog.sql import SqlCatalog\n\
         try:\n\
         \x20   t = SqlCatalog('zetl', uri='sqlite:///{}').load_table('{table}')\n\
         \x20   print(*t.scan().to_arrow().column('n').to_pylist())\n\
         except Exception:\n\
         \x20   pass\n",
        catalog.display()
    );
    common::python(&program).split_whitespace().filter_map(|n| n.parse().ok()).collect()
}

/// Schema changes become Iceberg schema updates (an added column, one with a default that the
/// existing rows take, `int` → `bigint` on a key column, a dropped column), a `zetl resync` copies a table again, and `zetl status` reads
/// the state from the catalog: pyiceberg still reads exactly the source.
#[test]
fn iceberg_tables_evolve_and_resync() {
    let env = TestEnv::start("iceberg_evolve");
    env.sql(DDL);
    let config = iceberg_config(&env, "lake").write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "lake");
    env.sql(
        "ALTER TABLE kinds ADD COLUMN extra int; UPDATE kinds SET extra = id % 5 WHERE id % 3 = 0;\n\
         ALTER TABLE pairs ALTER COLUMN a TYPE bigint; UPDATE pairs SET v = 0 WHERE a = 11;\n\
         INSERT INTO pairs VALUES (5000000000, 'big', 1);\n\
         UPDATE kinds SET i2 = -i2 WHERE id % 11 = 0;\n\
         ALTER TABLE kinds DROP COLUMN i2; UPDATE kinds SET t = 'after drop' WHERE id % 7 = 0;",
    );
    env.wait_caught_up(&mut zetl, "lake");
    // Columns added with a value for the existing rows, amid changes of the same transaction
    // (rows in committed files, rows the transaction wrote, position deletes of both), in a
    // keyed table and a keyless one.
    env.sql(
        "BEGIN; UPDATE kinds SET t = 'before the default' WHERE id % 13 = 0;\n\
         ALTER TABLE kinds ADD COLUMN flag int NOT NULL DEFAULT 7;\n\
         UPDATE kinds SET flag = 8 WHERE id % 17 = 0; DELETE FROM kinds WHERE id % 19 = 0;\n\
         INSERT INTO kinds (id, t) VALUES (-5, 'new after the default'); COMMIT;\n\
         INSERT INTO log VALUES ('before the tag', -1);\n\
         ALTER TABLE log ADD COLUMN tag text DEFAULT 'untagged';\n\
         INSERT INTO log VALUES ('tagged', -2, 'mine');",
    );
    env.wait_caught_up(&mut zetl, "lake");
    zetl.stop();
    let cfg = config.to_str().expect("utf-8 path");
    let out = common::zetl_command(&["resync", "-c", cfg, "public.pairs"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    env.sql("DELETE FROM pairs WHERE a = 12; UPDATE kinds SET extra = -1 WHERE id = 6");
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "lake");
    zetl.stop();
    let status = common::zetl_command(&["status", "-c", cfg]);
    let shown = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(shown.contains("public.pairs") && shown.contains("streaming"), "{shown}");
    assert_lake_equal(&env);
}

/// Changelog mode: every change is a row of its own, in order, with its source position and
/// commit time — several changes of one key in one transaction included — and the documented
/// current-state query over the log equals the source, whole, after a kill -9 and a restart
/// (the index of latest versions, for unsent TOAST values, read back from the log), and after
/// columns added with a default value (keyed and keyless tables).
#[test]
fn changelog_keeps_every_change_and_its_current_state_equals_the_source() {
    let env = TestEnv::start("iceberg_log");
    env.sql(DDL);
    env.sql(
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text);\n\
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;\n\
         INSERT INTO docs SELECT g, 'doc ' || g, (SELECT string_agg(md5(i::text || g), '') \
            FROM generate_series(1, 150) i) FROM generate_series(1, 40) g;",
    );
    let mut target = iceberg_target(&env);
    target.insert("mode".into(), "changelog".into());
    // Small batches: a big transaction reaches the target in parts before its commit.
    let batch = map([("max_bytes", 65536.into())]);
    let config = env.config("log", &["public.*"]).target(target).set("batch", batch).metrics_off().write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "log");
    env.sql("BEGIN; UPDATE kinds SET t = t || '!' WHERE id % 3 = 0; UPDATE pairs SET v = 7 WHERE a = 3; COMMIT;");
    env.sql("INSERT INTO pairs VALUES (1000, 'x', 1)");
    env.sql("UPDATE pairs SET v = 2 WHERE a = 1000");
    env.sql("BEGIN; UPDATE pairs SET v = 3 WHERE a = 1000; UPDATE pairs SET v = 4 WHERE a = 1000; COMMIT");
    env.sql("DELETE FROM pairs WHERE a = 1000");
    env.sql(CHANGES);
    env.sql("UPDATE docs SET title = 'renamed' WHERE id <= 10; UPDATE docs SET id = id + 100 WHERE id = 20;");
    env.wait_caught_up(&mut zetl, "log");
    zetl.kill9();
    env.sql(
        "UPDATE docs SET title = 'again' WHERE id IN (1, 120, 30); UPDATE kinds SET t = 'after' WHERE id % 10 = 5;\n\
         UPDATE rev SET v = 0 WHERE x = 1; DELETE FROM kinds WHERE id % 10 = 6;\n\
         TRUNCATE log; INSERT INTO log VALUES ('after the truncate', 1);\n\
         ALTER TABLE pairs ADD COLUMN note text; UPDATE pairs SET note = 'noted' WHERE a = 5;",
    );
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "log");
    // Columns added with a value for the rows that exist: the log starts again from the
    // current rows (a truncate row, then `copy` rows), amid changes of the same transaction.
    env.sql(
        "BEGIN; UPDATE rev SET v = -1 WHERE x = 2; ALTER TABLE rev ADD COLUMN flag int NOT NULL DEFAULT 7;\n\
         UPDATE rev SET flag = 8 WHERE x = 3; DELETE FROM rev WHERE x = 4; COMMIT;\n\
         INSERT INTO log VALUES ('before the tag', 2); ALTER TABLE log ADD COLUMN tag text DEFAULT 'untagged';\n\
         INSERT INTO log VALUES ('tagged', 3, 'mine');",
    );
    env.wait_caught_up(&mut zetl, "log");
    zetl.stop();

    let (_, catalog) = lake(&env);
    let mut tables = TABLES.to_vec();
    tables.push("public.docs");
    let (duck_path, _) = read_lake(Reader::PyIceberg, &catalog, "zetl", &env.scratch.path, &tables);
    let duck = duckdb::Connection::open(&duck_path).expect("open the reading");
    let history: Vec<(String, Option<i32>, Option<String>, bool)> = duck
        .prepare(
            "SELECT _zetl_op, v, _zetl_position, _zetl_commit_time IS NOT NULL FROM public.pairs \
             WHERE a = 1000 ORDER BY _zetl_seq",
        )
        .and_then(|mut q| q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect())
        .expect("the history of one key");
    let ops: Vec<(&str, Option<i32>)> = history.iter().map(|(op, v, _, _)| (op.as_str(), *v)).collect();
    assert_eq!(
        ops,
        [("insert", Some(1)), ("update", Some(2)), ("update", Some(3)), ("update", Some(4)), ("delete", None)],
        "{history:?}"
    );
    assert!(history.iter().all(|(_, _, p, t)| p.is_some() && *t), "{history:?}");
    let positions: Vec<&str> = history.iter().filter_map(|(_, _, p, _)| p.as_deref()).collect();
    assert_eq!(positions[2], positions[3], "one transaction, one position: {history:?}");
    assert_ne!(positions[1], positions[2], "{history:?}");
    let big: (i64, i64) = duck
        .query_row(
            "WITH p AS (SELECT any_value(_zetl_position) AS p FROM public.pairs WHERE a = 3 AND v = 7) \
             SELECT (SELECT count(*) FROM public.kinds, p WHERE _zetl_position = p.p), \
                    (SELECT count(*) FROM public.pairs, p WHERE _zetl_position = p.p)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the big transaction's rows");
    assert_eq!(big, (10000, 50), "every row of the big transaction has the position of its commit");
    drop(duck);

    for (table, key) in [
        ("public.kinds", &["id"][..]),
        ("public.pairs", &["a", "b"]),
        ("public.log", &[]),
        ("public.rev", &["y", "x"]),
        ("public.docs", &["id"]),
    ] {
        changelog_to_state(&duck_path, table, key);
    }
    assert_tables_equal(&env.url(), &duck_path, &tables);
}

/// Whether pyiceberg finds the sentinel item `n` of DynamoDB table `table` in the lake of the
/// SQLite `catalog`.
#[cfg(feature = "dynamodb")]
pub fn dynamo_sync_in_lake(catalog: &Path, table: &str, n: u64) -> bool {
    let program = format!(
        "from pyiceberg.catalog.sql import SqlCatalog\n\
         try:\n\
         \x20   t = SqlCatalog('zetl', uri='sqlite:///{}').load_table('dynamodb.{table}')\n\
         \x20   print(t.scan(row_filter=\"pk == 'sync' and sk == '{n}'\").to_arrow().num_rows)\n\
         except Exception:\n\
         \x20   print(0)\n",
        catalog.display()
    );
    common::python(&program).trim() == "1"
}

/// Per table: snapshots, data files and position-delete files of the current snapshot, as
/// pyiceberg lists them from the catalog at SQLAlchemy URI `uri`.
pub fn lake_shape(uri: &str) -> Vec<(String, usize, usize, usize)> {
    let program = format!(
        "from pyiceberg.catalog.sql import SqlCatalog\n\
         c = SqlCatalog('zetl', uri='{uri}')\n\
         for name in {:?}:\n\
         \x20   t = c.load_table(name)\n\
         \x20   tasks = list(t.scan().plan_files())\n\
         \x20   deletes = {{d.file_path for task in tasks for d in task.delete_files}}\n\
         \x20   print(name, len(t.snapshots()), len(tasks), len(deletes))\n",
        TABLES
    );
    common::python(&program)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.first()?.to_string(), f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
        })
        .collect()
}

fn sqlite_uri(catalog: &Path) -> String {
    format!("sqlite:///{}", catalog.display())
}

/// `zetl lake maintain` rewrites tables with position deletes or small files into few files,
/// expires old snapshots and removes files nothing refers to (an orphan left by a transaction
/// that never committed included); run again beside a streaming `zetl run` under a write
/// workload, it makes the writer read the tables again. The lake equals the source throughout.
#[test]
fn lake_maintain_compacts_expires_and_removes_orphans() {
    let env = TestEnv::start("iceberg_maintain");
    env.sql(DDL);
    let config = iceberg_config(&env, "lake").write();
    let cfg = config.to_str().expect("utf-8 path");
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "lake");
    env.sql(CHANGES);
    for round in 0..4 {
        std::thread::sleep(std::time::Duration::from_millis(1200));
        env.sql(&format!(
            "UPDATE kinds SET t = 'round {round}' WHERE id % 50 = {round}; DELETE FROM rev WHERE x = {round};"
        ));
    }
    env.wait_caught_up(&mut zetl, "lake");
    zetl.stop();
    let (warehouse, catalog) = lake(&env);
    let kinds_data = warehouse.join("public").join("kinds").join("data");
    let orphan = kinds_data.join("never-committed.parquet");
    std::fs::write(&orphan, b"a file no snapshot refers to").expect("write an orphan");
    let before = lake_shape(&sqlite_uri(&catalog));
    let kinds = before.iter().find(|t| t.0 == "public.kinds").expect("kinds").clone();
    assert!(kinds.1 > 2 && kinds.3 > 0, "several snapshots and position deletes to maintain: {before:?}");

    let out = common::zetl_command(&["lake", "maintain", "-c", cfg, "--older-than", "0s"]);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{shown}{}", String::from_utf8_lossy(&out.stderr));
    assert!(shown.contains("public.kinds: data files"), "{shown}");
    let after = lake_shape(&sqlite_uri(&catalog));
    for (table, snapshots, data, deletes) in &after {
        assert_eq!((*snapshots, *deletes), (1, 0), "{table}: one snapshot, no deletes: {after:?}");
        assert!(*data <= 1, "{table}: its rows in one file: {after:?}");
    }
    assert!(!orphan.exists(), "the orphan is removed");
    let on_disk = std::fs::read_dir(&kinds_data).expect("kinds/data").count();
    assert_eq!(on_disk, 1, "only the rewritten file stays in {}", kinds_data.display());
    assert_lake_equal(&env);

    // Beside a running zetl: its next transaction waits for the lock and reads the tables again.
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "lake");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                env.sql(&format!(
                    "UPDATE kinds SET t = 'busy {i}' WHERE id = {}; DELETE FROM rev WHERE v = {};",
                    (i * 31) % 30000,
                    i % 2000
                ));
            }
        });
        for _ in 0..2 {
            std::thread::sleep(std::time::Duration::from_secs(2));
            let out = common::zetl_command(&["lake", "maintain", "-c", cfg, "--older-than", "0s"]);
            assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
    });
    env.wait_caught_up(&mut zetl, "lake");
    zetl.stop();
    assert_lake_equal(&env);
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(log.contains("reading it again"), "the running writer saw the maintained tables");
}

/// DynamoDB → Iceberg: the Scan seed, then the stream's puts, updates and deletes; pyiceberg
/// reads every item, as DynamoDB typed JSON, equal to the table's.
#[cfg(feature = "dynamodb")]
#[test]
fn dynamodb_into_iceberg_equals_the_table() {
    use common::dynamo::DynEnv;
    let env = DynEnv::start("iceberg_dyn");
    env.driver(&["create", "t"]);
    env.driver(&["fill", "t", "0", "300"]);
    let config = env.config("dynlake", &["t"]).target(iceberg_target(&env)).write();
    let mut zetl = env.run_zetl(&config);
    env.driver(&["mutate", "t"]);
    env.driver(&["sync", "t", "1"]);
    let (_, catalog) = lake(&env);
    let synced = || dynamo_sync_in_lake(&catalog, "t", 1);
    common::wait_for("the sync item in the lake", &mut zetl, synced);
    zetl.stop();
    let (duck, _) = read_lake(Reader::PyIceberg, &catalog, "zetl", &env.scratch.path, &["dynamodb.t"]);
    zetl_testkit::compare_dynamo::assert_dynamo_equal(&env.endpoint(), "t", &duck);
}

/// Tables without a key, replica identity full: an update or a delete takes one identical row
/// (duplicates included), found among the rows of the open transaction, of a file written in
/// it, and of files committed before a restart; read back equal to the source.
#[test]
fn keyless_tables_take_updates_and_deletes_by_whole_row() {
    let env = TestEnv::start("iceberg_keyless");
    env.sql(
        "CREATE TABLE bag (item text, qty int, at timestamptz, price numeric(8,2));\n\
         ALTER TABLE bag REPLICA IDENTITY FULL;\n\
         INSERT INTO bag SELECT 'item ' || (g % 40), g % 7, timestamptz '2020-01-01 00:00+00' + (g % 3) * interval '1 day', \
            (g % 5) * 1.5 FROM generate_series(1, 3000) g;\n\
         INSERT INTO bag VALUES (NULL, NULL, NULL, NULL), (NULL, NULL, NULL, NULL);",
    );
    let mut target = iceberg_target(&env);
    target.insert("commit_every".into(), "4s".into());
    // Small batches under a slow commit: one lake transaction takes several batches, and
    // rows of an earlier one are already in a data file when a later one removes them.
    let batch = map([("max_bytes", 65536.into())]);
    let config = env.config("bag", &["public.bag"]).target(target).set("batch", batch).metrics_off().write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "bag");
    // Committed rows: duplicates updated and deleted (ctid picks one of identical rows).
    env.sql(
        "UPDATE bag SET qty = qty + 100 WHERE ctid IN (SELECT ctid FROM bag WHERE item = 'item 3' LIMIT 5);\n\
         DELETE FROM bag WHERE ctid IN (SELECT ctid FROM bag WHERE item = 'item 4' AND qty = 4 LIMIT 3);\n\
         DELETE FROM bag WHERE ctid IN (SELECT ctid FROM bag WHERE item IS NULL LIMIT 1);\n\
         UPDATE bag SET price = NULL WHERE item = 'item 5';",
    );
    env.wait_caught_up(&mut zetl, "bag");
    zetl.stop();
    // After a restart, rows added and changed again inside one transaction, then committed ones.
    let mut zetl = env.run_zetl(&config);
    env.sql(
        "BEGIN; INSERT INTO bag VALUES ('fresh', 1, NULL, 1), ('fresh', 1, NULL, 1);\n\
         UPDATE bag SET qty = 2 WHERE ctid IN (SELECT ctid FROM bag WHERE item = 'fresh' LIMIT 1);\n\
         DELETE FROM bag WHERE item = 'item 6'; COMMIT;\n\
         UPDATE bag SET item = 'renamed' WHERE item = 'item 7' AND qty < 3;",
    );
    env.sql("INSERT INTO bag SELECT 'bulk', g, NULL, 2 FROM generate_series(1, 20000) g");
    env.sql(
        "DELETE FROM bag WHERE item = 'bulk' AND qty <= 50;\n\
         UPDATE bag SET price = 0 WHERE item = 'bulk' AND qty BETWEEN 100 AND 120;",
    );
    env.wait_caught_up(&mut zetl, "bag");
    zetl.stop();
    assert_read_equal(&env, &[Reader::PyIceberg, Reader::DuckDb], &["public.bag"]);
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(!log.contains("not found at the target"), "every removed row was found:\n{log}");
}

/// `program` (Python, given `t`: the table `table` as pyiceberg loads it from the SQLite
/// `catalog`, reading `main`), and what it prints.
fn read_with_pyiceberg(catalog: &Path, table: &str, program: &str) -> String {
    let program = format!(
        "import pyarrow.compute as pc\n\
         from pyiceberg.catalog.sql import SqlCatalog\n\
         t = SqlCatalog('zetl', uri='sqlite:///{}').load_table('{table}')\n{program}",
        catalog.display()
    );
    common::python(&program).trim().to_string()
}

const BIG_ROWS: u64 = 1_500_000;

/// `zetl resync public.big` of a running zetl (`config`, integration `name`, endpoint on)
/// under writes that only add rows to it and raise its `v`, killed once after a chunk of the
/// fill is committed, then `zetl lake maintain` expiring every snapshot it may, and a restart
/// that goes on with the fill. Every `read()` taken while the fill was under way must give
/// `expected` (the table as it was), and the fill must have gone to the branch in both runs.
fn resync_unseen_until_complete(env: &TestEnv, config: &Path, name: &str, read: &dyn Fn() -> String, expected: &str) {
    let cfg = config.to_str().expect("utf-8 path");
    let mut zetl = env.run_zetl(config);
    env.wait_caught_up(&mut zetl, name);
    let log = || std::fs::read_to_string(env.log_path()).unwrap_or_default();
    let began = || log().contains("copying the table while streaming, in chunks table=public.big");
    let resumed = || log().contains("continues after the rows committed table=public.big");
    // Sent by the source with the copy's end: the replacement is committed after it.
    let ended = || log().contains("table copied while streaming table=public.big");
    // Once a chunk is committed: filled in place, the table would show it now.
    let chunk_committed = || {
        let status = common::zetl_command(&["status", "-c", cfg]);
        let shown = String::from_utf8_lossy(&status.stdout).to_string();
        let line = shown.lines().find(|l| l.starts_with("public.big")).unwrap_or_default().to_string();
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"copying") && fields.get(2).and_then(|r| r.parse::<u64>().ok()).is_some_and(|r| r > 0)
    };
    let done = AtomicBool::new(false);
    let mut during: [Vec<String>; 2] = Default::default();
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&done);
        let out = common::zetl_command(&["resync", "-c", cfg, "public.big"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        common::wait_for("the fill of public.big", &mut zetl, began);
        // From now on every change of the table comes after the fill's start.
        s.spawn(|| {
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                env.sql(&format!(
                    "BEGIN; UPDATE big SET v = v + 1 WHERE id = {a}; INSERT INTO big VALUES ({n}, 1, 'new'); \
                     UPDATE small SET v = v + 1 WHERE id = {b}; COMMIT;",
                    a = 1 + (i * 7919) % BIG_ROWS,
                    b = 1 + i % 100,
                    n = 10_000_000 + i,
                ));
                i += 1;
            }
        });
        common::wait_for("a committed chunk of the fill", &mut zetl, chunk_committed);
        // Killed at once, then read: a read (seconds for this table) while zetl ran could
        // outlast the rest of the fill on a fast run, and the kill would then miss it.
        assert!(!ended(), "the fill ended before the kill; make the table larger");
        zetl.kill9();
        during[0].push(read());
        let out = common::zetl_command(&["lake", "maintain", "-c", cfg, "--older-than", "0s"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let mut zetl = env.run_zetl(config);
        common::wait_for("the fill going on after the restart", &mut zetl, resumed);
        while !ended() {
            let seen = read();
            if !ended() {
                during[1].push(seen);
            }
            if let Some(status) = zetl.try_exit() {
                panic!("zetl exited ({status}) during the fill");
            }
        }
        done.store(true, Ordering::Relaxed);
        env.wait_caught_up(&mut zetl, name);
        zetl.stop();
    });
    for (run, seen) in during.iter().enumerate() {
        assert!(!seen.is_empty(), "no reading during the fill of run {run}");
        for reading in seen {
            assert_eq!(reading, expected, "run {run}: a reader saw a partly replaced table");
        }
    }
    assert_eq!(log().matches("aside=public._zetl_fill_big").count(), 2, "filled on the branch in both runs");
}

fn big_and_small(env: &TestEnv) {
    env.sql(&format!(
        "CREATE TABLE big (id int PRIMARY KEY, v int, pad text);\n\
         INSERT INTO big SELECT g, 0, md5(g::text) FROM generate_series(1, {BIG_ROWS}) g; ANALYZE big;\n\
         CREATE TABLE small (id int PRIMARY KEY, v int); INSERT INTO small SELECT g, 0 FROM generate_series(1, 100) g;"
    ));
}

/// A resync while streaming fills the table on its branch `zetl-fill` (`apply.resync:
/// replace`, the default): readers of the table (`main`) see it exactly as it was for the whole
/// fill — across a kill -9 in the middle of it and a `zetl lake maintain` that expires every
/// snapshot it may meanwhile — and then the whole copy with every change since, at once. With
/// the fill in place, readers would see a few chunks of the table. Ends equal to the source.
#[test]
fn a_resync_replaces_the_iceberg_table_whole_for_readers() {
    let env = TestEnv::start("iceberg_replace");
    big_and_small(&env);
    // The running zetl takes the resync through its endpoint.
    let metrics = map([("listen", format!("127.0.0.1:{}", zetl_testkit::free_port()).into())]);
    let config = env.config("lake", &["public.*"]).target(iceberg_target(&env)).set("metrics", metrics).write();
    let (_, catalog) = lake(&env);
    let count_and_sum = "a = t.scan(selected_fields=('v',)).to_arrow()\n\
                         print(a.num_rows, pc.sum(a.column('v')).as_py() or 0)\n";
    let read = || read_with_pyiceberg(&catalog, "public.big", count_and_sum);
    resync_unseen_until_complete(&env, &config, "lake", &read, &format!("{BIG_ROWS} 0"));
    let refs = read_with_pyiceberg(&catalog, "public.big", "print(*sorted(t.metadata.refs))");
    assert_eq!(refs, "main", "the fill's branch is left after the replacement");
    assert_read_equal(&env, &[Reader::PyIceberg, Reader::DuckDb], &["public.big", "public.small"]);
}

/// Changelog mode: a resync is logged on the branch too — its `truncate` row, the copy and the
/// table's changes meanwhile reach `main` in one commit, so a reader of the log never sees the
/// truncate without the whole copy after it — across a kill -9 mid-fill; the log's current
/// state then equals the source.
#[test]
fn a_changelog_resync_reaches_the_log_whole() {
    let env = TestEnv::start("iceberg_log_resync");
    big_and_small(&env);
    let mut target = iceberg_target(&env);
    target.insert("mode".into(), "changelog".into());
    let metrics = map([("listen", format!("127.0.0.1:{}", zetl_testkit::free_port()).into())]);
    let config = env.config("log", &["public.*"]).target(target).set("metrics", metrics).write();
    let (_, catalog) = lake(&env);
    let ops = "o = t.scan(selected_fields=('_zetl_op',)).to_arrow().column('_zetl_op')\n\
               print(*(pc.sum(pc.equal(o, op)).as_py() or 0 for op in ('truncate', 'copy', 'update', 'insert')))\n";
    let read = || read_with_pyiceberg(&catalog, "public.big", ops);
    // The initial copy's truncate and copy rows, nothing the workload wrote since the resync.
    resync_unseen_until_complete(&env, &config, "log", &read, &format!("1 {BIG_ROWS} 0 0"));
    let tables = ["public.big", "public.small"];
    let (duck_path, _) = read_lake(Reader::PyIceberg, &catalog, "zetl", &env.scratch.path, &tables);
    changelog_to_state(&duck_path, "public.big", &["id"]);
    changelog_to_state(&duck_path, "public.small", &["id"]);
    assert_tables_equal(&env.url(), &duck_path, &tables);
}
