//! Row changes while streaming: DML of every kind, unchanged TOAST values, large and rolled
//! back transactions, tables without a key, and column changes.

use crate::common;

use common::{PgOptions, TestEnv};

#[test]
fn inserts_updates_deletes_and_truncates_while_streaming() {
    let env = TestEnv::start("dml");
    env.sql(
        "CREATE TABLE items (id int PRIMARY KEY, v text, n int);\n\
         INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(1, 100) g;\n\
         CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));\n\
         INSERT INTO pairs SELECT g % 5, 'k' || g, g FROM generate_series(1, 20) g;\n\
         CREATE TABLE scratch (id int PRIMARY KEY, v text);\n\
         INSERT INTO scratch SELECT g, 's' || g FROM generate_series(1, 10) g;",
    );
    let config = env.config("dml", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "dml");

    env.sql("INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(101, 200) g");
    env.sql("UPDATE items SET v = v || '-updated', n = n * 10 WHERE id % 3 = 0");
    env.sql("DELETE FROM items WHERE id % 7 = 0");
    // Several changes to the same keys in one transaction.
    env.sql(
        "BEGIN;\n\
         INSERT INTO items VALUES (500, 'a', 1);\n\
         UPDATE items SET v = 'b' WHERE id = 500;\n\
         DELETE FROM items WHERE id = 500;\n\
         INSERT INTO items VALUES (501, 'x', 1);\n\
         UPDATE items SET n = 2 WHERE id = 501;\n\
         DELETE FROM items WHERE id = 1;\n\
         INSERT INTO items VALUES (1, 'reborn', -1);\n\
         COMMIT;",
    );
    // Key changes: every moved key lands on a free one.
    env.sql("UPDATE items SET id = id + 1000 WHERE id <= 20");
    env.sql("UPDATE items SET id = id - 1000, v = 'moved back' WHERE id BETWEEN 1011 AND 1015");
    env.sql("UPDATE pairs SET b = b || '-renamed' WHERE a = 1");
    env.sql("UPDATE pairs SET a = a + 10, v = -v WHERE a = 2");
    // Key swap inside one transaction (through a free key).
    env.sql(
        "BEGIN;\n\
         UPDATE items SET id = -1 WHERE id = 101;\n\
         UPDATE items SET id = 101 WHERE id = 102;\n\
         UPDATE items SET id = 102 WHERE id = -1;\n\
         COMMIT;",
    );
    // Truncate, then new rows in the same transaction; and a plain truncate.
    env.sql(
        "BEGIN;\n\
         UPDATE scratch SET v = 'before truncate';\n\
         TRUNCATE scratch;\n\
         INSERT INTO scratch VALUES (1, 'after truncate'), (2, 'also after');\n\
         COMMIT;",
    );
    env.sql("TRUNCATE pairs");
    env.sql("INSERT INTO pairs VALUES (1, 'fresh', 1)");
    env.wait_caught_up(&mut zetl, "dml");
    zetl.stop();

    env.assert_equal(&["public.items", "public.pairs", "public.scratch"]);
}

const BIG: &str = "repeat('x', 100000)";

#[test]
fn unchanged_toast_values_are_kept() {
    let env = TestEnv::start("toast");
    env.sql(&format!(
        "CREATE TABLE docs (id int PRIMARY KEY, body text, small int, tags text[]);\n\
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;\n\
         INSERT INTO docs SELECT g, {BIG} || g, g, ARRAY['t' || g] FROM generate_series(1, 5) g;"
    ));
    let config = env.config("toast", &["public.docs"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "toast");

    // Out-of-line values arrive in full with their insert ...
    env.sql(&format!("INSERT INTO docs SELECT g, {BIG} || g, g, NULL FROM generate_series(6, 10) g"));
    // ... and are not sent again when only another column changes.
    env.sql("UPDATE docs SET small = small + 100");
    env.sql("UPDATE docs SET tags = ARRAY['changed'] WHERE id IN (2, 7)");
    // Inserted and updated in one transaction (the batch knows the value).
    env.sql(&format!(
        "BEGIN;\n\
         INSERT INTO docs VALUES (11, {BIG} || 'eleven', 11, NULL);\n\
         UPDATE docs SET small = 1100 WHERE id = 11;\n\
         COMMIT;"
    ));
    // Updated in two transactions that end up in one target batch.
    env.sql("UPDATE docs SET small = -1 WHERE id = 3; UPDATE docs SET small = -2 WHERE id = 3;");
    // A changed big value next to unchanged ones.
    env.sql(&format!("UPDATE docs SET body = {BIG} || 'new' WHERE id = 4"));
    env.wait_caught_up(&mut zetl, "toast");
    zetl.stop();

    env.assert_equal(&["public.docs"]);
    assert_eq!(
        env.target_value("SELECT count(*)::VARCHAR FROM public.docs WHERE length(body) >= 100000 AND small > 100"),
        Some("10".into()),
        "the updated rows keep their big values"
    );
}

/// A key-changing UPDATE of a row whose big value is stored out of line: PostgreSQL sends the
/// new row with the big value marked "unchanged" and only the key of the old row.
#[test]
fn unchanged_toast_value_survives_a_key_change() {
    let env = TestEnv::start("toastkey");
    env.sql(&format!(
        "CREATE TABLE docs (id int PRIMARY KEY, body text, small int);\n\
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;\n\
         INSERT INTO docs SELECT g, {BIG} || g, g FROM generate_series(1, 4) g;"
    ));
    let config = env.config("toastkey", &["public.docs"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "toastkey");
    env.sql("UPDATE docs SET id = id + 1000 WHERE id <= 2");
    env.sql("UPDATE docs SET id = id + 1000, small = 0 WHERE id = 3");
    env.wait_caught_up(&mut zetl, "toastkey");
    zetl.stop();
    env.assert_equal(&["public.docs"]);
}

#[test]
fn large_transaction_and_rolled_back_transactions() {
    let env = TestEnv::start("bigtxn");
    env.sql(
        "CREATE TABLE big (id int PRIMARY KEY, v text, n int);\n\
         CREATE TABLE small (id int PRIMARY KEY, v text);\n\
         INSERT INTO small VALUES (1, 'one');",
    );
    let config = env.config("bigtxn", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "bigtxn");

    env.sql(
        "BEGIN;\n\
         INSERT INTO big SELECT g, md5(g::text), g % 100 FROM generate_series(1, 200000) g;\n\
         UPDATE big SET n = -n, v = 'updated' WHERE id % 10 = 0;\n\
         DELETE FROM big WHERE id % 1000 = 1;\n\
         INSERT INTO small VALUES (2, 'with the big one');\n\
         COMMIT;",
    );
    env.sql(
        "BEGIN;\n\
         INSERT INTO small VALUES (3, 'rolled back');\n\
         INSERT INTO big SELECT g, 'rolled back', 0 FROM generate_series(300001, 301000) g;\n\
         UPDATE small SET v = 'rolled back' WHERE id = 1;\n\
         ROLLBACK;",
    );
    env.sql(
        "BEGIN;\n\
         INSERT INTO small VALUES (4, 'kept');\n\
         SAVEPOINT s1;\n\
         INSERT INTO small VALUES (5, 'rolled back to savepoint');\n\
         ROLLBACK TO SAVEPOINT s1;\n\
         INSERT INTO small VALUES (6, 'kept too');\n\
         COMMIT;",
    );
    env.wait_caught_up(&mut zetl, "bigtxn");
    zetl.stop();

    env.assert_equal(&["public.big", "public.small"]);
    assert_eq!(
        env.target_value("SELECT count(*)::VARCHAR FROM public.small WHERE v LIKE 'rolled back%'"),
        Some("0".into())
    );
}

/// With a tiny `logical_decoding_work_mem` PostgreSQL streams transactions while they are in
/// progress (pgoutput protocol 2): committed ones, aborted ones and aborted subtransactions.
#[test]
fn in_progress_transactions_streamed_by_the_server() {
    let env = TestEnv::start_with(
        "streamed",
        PgOptions { extra_conf: vec![("logical_decoding_work_mem".into(), "64kB".into())], ..PgOptions::default() },
    );
    env.sql(
        "CREATE TABLE big (id int PRIMARY KEY, v text, n int);\n\
         CREATE TABLE events (a int, b text);\n\
         INSERT INTO big SELECT g, 'snap', 0 FROM generate_series(1, 1000) g;",
    );
    let config = env.config("streamed", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "streamed");

    env.sql(
        "BEGIN;\n\
         INSERT INTO big SELECT g, md5(g::text), g FROM generate_series(1001, 30000) g;\n\
         UPDATE big SET v = 'changed in the big one' WHERE id <= 500;\n\
         INSERT INTO events SELECT g, 'e' FROM generate_series(1, 2000) g;\n\
         SAVEPOINT s1;\n\
         INSERT INTO big SELECT g, 'aborted subxact', 0 FROM generate_series(40001, 45000) g;\n\
         ROLLBACK TO SAVEPOINT s1;\n\
         DELETE FROM big WHERE id BETWEEN 900 AND 1100;\n\
         COMMIT;",
    );
    env.sql(
        "BEGIN;\n\
         INSERT INTO big SELECT g, 'aborted', 0 FROM generate_series(50001, 60000) g;\n\
         INSERT INTO events SELECT g, 'aborted' FROM generate_series(1, 1000) g;\n\
         ROLLBACK;",
    );
    env.sql("INSERT INTO events VALUES (-1, 'after')");
    env.wait_caught_up(&mut zetl, "streamed");
    zetl.stop();
    env.assert_equal(&["public.big", "public.events"]);
}

#[test]
fn tables_without_a_primary_key() {
    let env = TestEnv::start("nokey");
    env.sql(
        "CREATE TABLE appendonly (a int, b text);\n\
         INSERT INTO appendonly VALUES (1, 'dup'), (1, 'dup'), (2, NULL), (2, NULL);\n\
         CREATE TABLE full_rows (a int, b text, n numeric, ts timestamptz, j jsonb, f float8, arr text[]);\n\
         ALTER TABLE full_rows REPLICA IDENTITY FULL;\n\
         INSERT INTO full_rows VALUES\n\
           (1, 'dup', 1.50, '2024-01-01 00:00:00+00', '{\"k\": 1}', 'NaN', '{a,NULL}'),\n\
           (1, 'dup', 1.50, '2024-01-01 00:00:00+00', '{\"k\": 1}', 'NaN', '{a,NULL}'),\n\
           (1, 'dup', 1.50, '2024-01-01 00:00:00+00', '{\"k\": 1}', 'NaN', '{a,NULL}'),\n\
           (2, NULL, NULL, NULL, NULL, NULL, NULL),\n\
           (2, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let config = env.config("nokey", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "nokey");

    env.sql("INSERT INTO appendonly VALUES (1, 'dup'), (3, 'three'), (3, 'three')");
    env.sql("INSERT INTO appendonly SELECT 4, 'many' FROM generate_series(1, 50)");
    env.sql(
        "INSERT INTO full_rows VALUES\n\
           (1, 'dup', 1.50, '2024-01-01 00:00:00+00', '{\"k\": 1}', 'NaN', '{a,NULL}'),\n\
           (3, 'x', 3, now(), '[]', 1.5, '{}');",
    );
    // One of several identical rows: updated, then another one deleted.
    env.sql(
        "UPDATE full_rows SET b = 'one of the dups' \
         WHERE ctid = (SELECT ctid FROM full_rows WHERE b = 'dup' LIMIT 1)",
    );
    env.sql("DELETE FROM full_rows WHERE ctid = (SELECT ctid FROM full_rows WHERE b = 'dup' LIMIT 1)");
    // Rows with NULLs are matched too.
    env.sql("UPDATE full_rows SET n = 2 WHERE ctid = (SELECT ctid FROM full_rows WHERE a = 2 LIMIT 1)");
    env.sql("DELETE FROM full_rows WHERE ctid = (SELECT ctid FROM full_rows WHERE a = 2 AND n IS NULL LIMIT 1)");
    // Several changes to identical rows in one transaction.
    env.sql(
        "BEGIN;\n\
         INSERT INTO full_rows (a, b) VALUES (5, 'same'), (5, 'same'), (5, 'same');\n\
         UPDATE full_rows SET b = 'changed' WHERE ctid = (SELECT ctid FROM full_rows WHERE a = 5 LIMIT 1);\n\
         DELETE FROM full_rows WHERE ctid = (SELECT ctid FROM full_rows WHERE a = 5 AND b = 'same' LIMIT 1);\n\
         COMMIT;",
    );
    env.sql("UPDATE full_rows SET ts = '2000-01-01 00:00:00+00' WHERE a = 3");
    env.wait_caught_up(&mut zetl, "nokey");
    zetl.stop();

    env.assert_equal(&["public.appendonly", "public.full_rows"]);
}

#[test]
fn columns_added_and_dropped_while_streaming() {
    let env = TestEnv::start("columns");
    env.sql(
        "CREATE TABLE evolve (id int PRIMARY KEY, a text, gone int);\n\
         INSERT INTO evolve SELECT g, 'a' || g, g FROM generate_series(1, 10) g;",
    );
    let config = env.config("columns", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "columns");

    env.sql("INSERT INTO evolve VALUES (11, 'a11', 11)");
    env.sql("ALTER TABLE evolve ADD COLUMN added int");
    env.sql("INSERT INTO evolve VALUES (12, 'a12', 12, 1200)");
    env.sql("UPDATE evolve SET added = id * 100 WHERE id <= 3");
    // Rows changed before and after a column is added, in one transaction.
    env.sql(
        "BEGIN;\n\
         INSERT INTO evolve (id, a, gone) VALUES (13, 'a13', 13);\n\
         UPDATE evolve SET a = 'touched' WHERE id = 4;\n\
         ALTER TABLE evolve ADD COLUMN note text;\n\
         INSERT INTO evolve VALUES (14, 'a14', 14, 1400, 'with note');\n\
         UPDATE evolve SET note = 'noted' WHERE id = 5;\n\
         COMMIT;",
    );
    env.sql("ALTER TABLE evolve DROP COLUMN gone");
    env.sql("INSERT INTO evolve VALUES (15, 'a15', 1500, 'after drop')");
    env.sql("UPDATE evolve SET a = 'after drop' WHERE id = 6");
    env.wait_caught_up(&mut zetl, "columns");
    zetl.stop();

    env.assert_equal(&["public.evolve"]);
    // The dropped column stays at the target: rows nobody touched since keep their value,
    // rows written after the drop have none.
    assert_eq!(env.target_value("SELECT gone::VARCHAR FROM public.evolve WHERE id = 7"), Some("7".into()));
    assert_eq!(env.target_value("SELECT gone::VARCHAR FROM public.evolve WHERE id = 15"), None);
}
