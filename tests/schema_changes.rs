//! Column changes at a PostgreSQL source that write no row changes: `ADD COLUMN … DEFAULT`
//! with a constant (the target fills the existing rows) or a volatile default (a rewrite: the
//! table is copied again), `ALTER COLUMN … TYPE … USING` (a rewrite: copied again) and a
//! keyless table gaining a key (its earlier updates were not published: copied again), made
//! while zetl streams and while it is stopped. Each ends with the whole target compared with
//! the whole source, on DuckDB and PostgreSQL.

use crate::common;

use common::warehouse::{wait_copied, Warehouse};
use common::{PgOptions, TestEnv};

/// `stopped`: the changes are made while zetl is stopped, and seen when it starts again (the
/// target's stored schema is the baseline of the first Relation message).
fn column_changes(warehouse: Warehouse, test: &str, stopped: bool) {
    let env = TestEnv::start(test);
    env.sql(
        "CREATE TABLE items (id int PRIMARY KEY, v text);\n\
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;\n\
         CREATE TABLE prices (id int PRIMARY KEY, amount int);\n\
         INSERT INTO prices SELECT g, g * 10 FROM generate_series(1, 100) g;\n\
         CREATE TABLE stamps (id int PRIMARY KEY);\n\
         INSERT INTO stamps SELECT g FROM generate_series(1, 100) g;\n\
         CREATE TABLE gains (a int, v text); INSERT INTO gains VALUES (1, 'x'), (2, 'y');",
    );
    let config = warehouse.config(&env, test, &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, test);
    let changes = "ALTER TABLE items ADD COLUMN status text NOT NULL DEFAULT 'new';\n\
         ALTER TABLE items ADD COLUMN qty int DEFAULT 7, ADD COLUMN seen date DEFAULT '2024-02-29';\n\
         ALTER TABLE items ADD COLUMN note text;\n\
         INSERT INTO items (id, v) VALUES (1000, 'after the columns');\n\
         UPDATE items SET qty = 1, note = 'set' WHERE id = 5;\n\
         ALTER TABLE prices ALTER COLUMN amount TYPE numeric(12,2) USING amount / 3.0;\n\
         UPDATE prices SET amount = amount + 0.25 WHERE id = 1;\n\
         ALTER TABLE stamps ADD COLUMN r float8 DEFAULT random();\n\
         INSERT INTO stamps VALUES (1000, 0.5);\n\
         UPDATE gains SET v = 'before the key' WHERE a = 1;\n\
         ALTER TABLE gains ADD PRIMARY KEY (a);\n\
         INSERT INTO gains VALUES (3, 'z');";
    let mut zetl = if stopped {
        zetl.stop();
        env.sql(changes);
        env.run_zetl(&config)
    } else {
        env.sql(changes);
        zetl
    };
    for table in ["public.prices", "public.stamps", "public.gains"] {
        wait_copied(&env, &mut zetl, table, 1);
    }
    env.sql("UPDATE prices SET amount = 0.01 WHERE id = 2; UPDATE items SET status = 'done' WHERE id = 3;");
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    warehouse.assert_equal(&env, &["public.items", "public.prices", "public.stamps", "public.gains"]);
}

#[test]
fn added_and_retyped_columns_duckdb() {
    column_changes(Warehouse::Duckdb, "cols_duck", false);
}

#[test]
fn added_and_retyped_columns_postgres() {
    column_changes(Warehouse::postgres(), "cols_pg", false);
}

#[test]
fn columns_changed_while_stopped_duckdb() {
    column_changes(Warehouse::Duckdb, "cols_stopped_duck", true);
}

#[test]
fn columns_changed_while_stopped_postgres() {
    column_changes(Warehouse::postgres(), "cols_stopped_pg", true);
}

/// A key that changes at the source: a new primary key, a keyless table that gains one (its
/// earlier updates were not published: copied again), and a REPLICA IDENTITY FULL table whose
/// primary key widens (distinct rows must not collapse on the old key).
fn key_changes(warehouse: Warehouse, test: &str) {
    let env = TestEnv::start(test);
    env.sql(
        "CREATE TABLE rekeyed (a int PRIMARY KEY, b int NOT NULL, v text);\n\
         INSERT INTO rekeyed SELECT g, g + 100, 'row ' || g FROM generate_series(1, 50) g;\n\
         CREATE TABLE gains (a int, v text); INSERT INTO gains VALUES (1, 'x'), (2, 'y');\n\
         CREATE TABLE fullpk (a int PRIMARY KEY, b int NOT NULL, v text);\n\
         ALTER TABLE fullpk REPLICA IDENTITY FULL;\n\
         INSERT INTO fullpk SELECT g, g % 5, 'row ' || g FROM generate_series(1, 20) g;",
    );
    let config = warehouse.config(&env, test, &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, test);
    env.sql(
        "ALTER TABLE rekeyed DROP CONSTRAINT rekeyed_pkey, ADD PRIMARY KEY (b);\n\
         UPDATE rekeyed SET v = 'after the new key' WHERE b % 3 = 0;\n\
         INSERT INTO rekeyed VALUES (1, 1000, 'same a, other b');\n\
         DELETE FROM rekeyed WHERE b = 105;\n\
         UPDATE gains SET v = 'before the key' WHERE a = 1;\n\
         ALTER TABLE gains ADD PRIMARY KEY (a);\n\
         ALTER TABLE fullpk DROP CONSTRAINT fullpk_pkey, ADD PRIMARY KEY (a, b);\n\
         INSERT INTO fullpk VALUES (1, 99, 'same a, other b');\n\
         UPDATE fullpk SET v = 'updated' WHERE a = 2;",
    );
    wait_copied(&env, &mut zetl, "public.gains", 1);
    env.sql("UPDATE gains SET v = 'after the key' WHERE a = 2; DELETE FROM fullpk WHERE a = 1 AND b = 1;");
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    warehouse.assert_equal(&env, &["public.rekeyed", "public.gains", "public.fullpk"]);
}

#[test]
fn key_changes_duckdb() {
    key_changes(Warehouse::Duckdb, "keys_duck");
}

#[test]
fn key_changes_postgres() {
    key_changes(Warehouse::postgres(), "keys_pg");
}

/// DDL inside transactions the server streams before they commit (pgoutput v2): one that
/// aborts, and a subtransaction that rolls back inside one that commits, leave no column at
/// the target.
fn ddl_in_streamed_transactions(warehouse: Warehouse, test: &str) {
    let small_memory = vec![("logical_decoding_work_mem".into(), "64kB".into())];
    let env = TestEnv::start_with(test, PgOptions { extra_conf: small_memory, ..PgOptions::default() });
    env.sql(
        "CREATE TABLE big (id int PRIMARY KEY, v text);\n\
         INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, 100) g;",
    );
    let config = warehouse.config(&env, test, &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, test);
    env.sql(
        "BEGIN;\n\
         ALTER TABLE big ADD COLUMN phantom int DEFAULT 1;\n\
         INSERT INTO big SELECT g, md5(g::text), g FROM generate_series(1000, 20000) g;\n\
         ROLLBACK;\n\
         BEGIN;\n\
         INSERT INTO big SELECT g, md5(g::text) FROM generate_series(30000, 45000) g;\n\
         SAVEPOINT s;\n\
         ALTER TABLE big ADD COLUMN ghost text;\n\
         INSERT INTO big (id, v, ghost) VALUES (60000, 'in the subtransaction', 'g');\n\
         ROLLBACK TO SAVEPOINT s;\n\
         UPDATE big SET v = 'kept' WHERE id < 50;\n\
         COMMIT;\n\
         INSERT INTO big VALUES (70000, 'after');",
    );
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    let streamed =
        env.sql_value(&format!("SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'zetl_{test}'"));
    assert!(streamed.parse::<i64>().is_ok_and(|n| n >= 2), "the server streamed {streamed} transactions, not both");
    warehouse.assert_equal(&env, &["public.big"]);
    assert_eq!(warehouse.columns(&env, "public.big"), ["id", "v"], "no column of a rolled-back ALTER at the target");
}

#[test]
fn ddl_in_streamed_transactions_duckdb() {
    ddl_in_streamed_transactions(Warehouse::Duckdb, "streamddl_duck");
}

#[test]
fn ddl_in_streamed_transactions_postgres() {
    ddl_in_streamed_transactions(Warehouse::postgres(), "streamddl_pg");
}
