//! Table lifecycle at a MariaDB source: `CREATE TABLE IF NOT EXISTS` on a table that exists
//! (logged, yet a no-op), a table dropped and created again by the same statement, and a
//! table that leaves the filters and comes back. Each ends with a whole-table comparison.

use crate::common;
use common::mysql::MyEnv;

#[test]
fn create_table_if_not_exists_on_an_existing_table_changes_nothing() {
    let env = MyEnv::start("my_ifne");
    env.sql(
        "CREATE TABLE kept (id int PRIMARY KEY, v varchar(20));\n\
         INSERT INTO kept VALUES (1, 'a'), (2, 'b'), (3, 'c');\n\
         CREATE TABLE recreated (id int PRIMARY KEY, v varchar(20));\n\
         INSERT INTO recreated VALUES (1, 'old');",
    );
    let config = env.config("ifne").write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql(
        "INSERT INTO kept VALUES (4, 'streamed');\n\
         CREATE TABLE IF NOT EXISTS kept (id int PRIMARY KEY, v varchar(20));\n\
         INSERT INTO kept VALUES (5, 'after');\n\
         DROP TABLE recreated;\n\
         CREATE TABLE IF NOT EXISTS recreated (id int PRIMARY KEY, v varchar(20));\n\
         INSERT INTO recreated VALUES (2, 'new');",
    );
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.kept", "shop.recreated"]);
}

#[test]
fn excluded_then_included_is_copied_again() {
    let env = MyEnv::start("my_toggle");
    env.sql(
        "CREATE TABLE toggled (id int PRIMARY KEY, v varchar(20));\n\
         INSERT INTO toggled VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    );
    let all = env.config("toggle").write();
    let zetl = env.run_zetl_streaming(&all);
    env.catch_up_and_stop(zetl, &all);

    let without = env.config("toggle").include(&["shop.*"]).exclude(&["shop.toggled"]).write();
    let zetl = env.run_zetl_streaming(&without);
    env.sql("UPDATE toggled SET v = 'while out' WHERE id = 2; DELETE FROM toggled WHERE id = 3;");
    env.catch_up_and_stop(zetl, &without);

    // The same file as before: written again.
    let all = env.config("toggle").write();
    let zetl = env.run_zetl_streaming(&all);
    env.sql("INSERT INTO toggled VALUES (4, 'back in')");
    env.catch_up_and_stop(zetl, &all);
    env.assert_equal(&["shop.toggled"]);
}

/// Partition maintenance changes rows without row events: TRUNCATE / DROP / EXCHANGE
/// PARTITION copy the tables again while zetl streams; REORGANIZE, REBUILD, ADD and COALESCE
/// PARTITION only move rows and need nothing.
#[test]
fn partition_maintenance_copies_the_table_again() {
    let env = MyEnv::start("my_partitions");
    env.sql(
        "CREATE TABLE parts (id int PRIMARY KEY, v varchar(20)) PARTITION BY RANGE (id) (\n\
           PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN (200),\n\
           PARTITION p2 VALUES LESS THAN (300), PARTITION p3 VALUES LESS THAN MAXVALUE);\n\
         INSERT INTO parts VALUES (1, 'a'), (2, 'b'), (150, 'c'), (250, 'd'), (350, 'e');\n\
         CREATE TABLE swap (id int PRIMARY KEY, v varchar(20));\n\
         INSERT INTO swap VALUES (260, 'swapped in'), (270, 'too');\n\
         CREATE TABLE hashed (id int PRIMARY KEY, v varchar(20)) PARTITION BY HASH (id) PARTITIONS 4;\n\
         INSERT INTO hashed VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e');",
    );
    let config = env.config("parts").write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql(
        "INSERT INTO parts VALUES (3, 'streamed');\n\
         ALTER TABLE parts TRUNCATE PARTITION p0;\n\
         INSERT INTO parts VALUES (4, 'after truncate');\n\
         ALTER TABLE parts DROP PARTITION p1;\n\
         UPDATE parts SET v = 'changed' WHERE id = 250;\n\
         ALTER TABLE parts EXCHANGE PARTITION p2 WITH TABLE swap;\n\
         INSERT INTO swap VALUES (280, 'into swap');\n\
         ALTER TABLE parts REORGANIZE PARTITION p3 INTO (PARTITION p3 VALUES LESS THAN (400), PARTITION p4 VALUES LESS THAN MAXVALUE);\n\
         ALTER TABLE parts REBUILD PARTITION p0;\n\
         INSERT INTO parts VALUES (5, 'last');\n\
         ALTER TABLE hashed ADD PARTITION PARTITIONS 2;\n\
         ALTER TABLE hashed COALESCE PARTITION 3;\n\
         INSERT INTO hashed VALUES (9, 'moved around');",
    );
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.parts", "shop.swap", "shop.hashed"]);
}

/// A table dropped and created again (other columns, other rows) twice while zetl is stopped,
/// then given a column with a DEFAULT: the catalog zetl reads at the CREATE already has that
/// column, yet its rows must get the default. Picked up in the same run, its rows once.
#[test]
fn dropped_and_created_again_while_zetl_is_stopped() {
    let env = MyEnv::start("my_recreate_lag");
    env.sql(
        "CREATE TABLE again (id int PRIMARY KEY, v varchar(20));\n\
         INSERT INTO again VALUES (1, 'first'), (2, 'first');",
    );
    let config = env.config("recreate_lag").write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql("INSERT INTO again VALUES (3, 'streamed')");
    env.catch_up_and_stop(zetl, &config);

    env.sql(
        "DROP TABLE again;\n\
         CREATE TABLE again (id int PRIMARY KEY, w text, n int);\n\
         INSERT INTO again VALUES (10, 'second', 1), (11, 'second', 2);\n\
         UPDATE again SET n = 5 WHERE id = 10;\n\
         DROP TABLE again;\n\
         CREATE TABLE again (id bigint PRIMARY KEY, w text, n int, extra varchar(5));\n\
         INSERT INTO again VALUES (20, 'third', 1, 'x');\n\
         ALTER TABLE again ADD COLUMN d int DEFAULT 5;",
    );
    let zetl = env.run_zetl_streaming(&config);
    env.sql(
        "INSERT INTO again (id, w, n, extra) VALUES (21, 'while catching up', 2, 'y'), (22, 'gone', 3, 'z');\n\
         DELETE FROM again WHERE id = 22;",
    );
    env.catch_up_once_and_stop(zetl);
    env.assert_equal(&["shop.again"]);
}

/// The same while zetl streams, with rows written right after each CREATE.
#[test]
fn dropped_and_created_again_while_zetl_runs() {
    let env = MyEnv::start("my_recreate_live");
    env.sql(
        "CREATE TABLE again (id int PRIMARY KEY, v varchar(20));\n\
         INSERT INTO again VALUES (1, 'first'), (2, 'first');",
    );
    let config = env.config("recreate_live").write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql(
        "INSERT INTO again VALUES (3, 'streamed');\n\
         DROP TABLE again;\n\
         CREATE TABLE again (id int PRIMARY KEY, w text);\n\
         INSERT INTO again VALUES (10, 'second');\n\
         DROP TABLE again;\n\
         CREATE TABLE again (id int PRIMARY KEY, w text, n int);\n\
         INSERT INTO again VALUES (20, 'third', 1), (21, 'third', 2);\n\
         UPDATE again SET n = 7 WHERE id = 21;",
    );
    env.catch_up_once_and_stop(zetl);
    env.assert_equal(&["shop.again"]);
}

/// MariaDB adds a column with a DEFAULT instantly, without row events for the rows that exist:
/// a literal default is filled in at the target; an expression default, a NOT NULL column
/// without one, or a column type change copies the table again. `stopped`: the changes are
/// made while zetl is stopped (the target's stored schema is the baseline they are seen
/// against when it starts again).
fn added_columns(test: &str, stopped: bool) {
    let env = MyEnv::start(test);
    env.sql(
        "CREATE TABLE lit (id int PRIMARY KEY, v varchar(20));\n\
         INSERT INTO lit VALUES (1, 'a'), (2, 'b');\n\
         CREATE TABLE expr (id int PRIMARY KEY, v varchar(20));\n\
         INSERT INTO expr VALUES (1, 'a'), (2, 'b');\n\
         CREATE TABLE notnull (id int PRIMARY KEY, v varchar(20));\n\
         INSERT INTO notnull VALUES (1, 'a'), (2, 'b');\n\
         CREATE TABLE retyped (id int PRIMARY KEY, v varchar(20), d decimal(10,2));\n\
         INSERT INTO retyped VALUES (1, '12', 1.25), (2, '5', 2.5);",
    );
    let config = env.config("add_default").write();
    let mut zetl = Some(env.run_zetl_streaming(&config));
    env.sql(
        "INSERT INTO lit VALUES (3, 'c'); INSERT INTO expr VALUES (3, 'c');\n\
         INSERT INTO notnull VALUES (3, 'c'); INSERT INTO retyped VALUES (3, '7', 3.75);",
    );
    if stopped {
        // No row change between the restart and the ALTERs: the first TABLE_MAP of each
        // table after the restart already has the new columns.
        env.catch_up_once_and_stop(zetl.take().expect("running"));
    }
    env.sql(
        "ALTER TABLE lit ADD COLUMN n int DEFAULT 7, ADD s varchar(20) DEFAULT 'it''s', \
           ADD d decimal(10,2) DEFAULT -1.5, ADD dt datetime DEFAULT '2024-01-02 03:04:05', \
           ADD e enum('x','y') DEFAULT 'y', ADD z int;\n\
         INSERT INTO lit (id, v) VALUES (4, 'after');\n\
         ALTER TABLE expr ADD COLUMN u varchar(40) DEFAULT (concat('id-', 'x')), ADD t timestamp(6) DEFAULT CURRENT_TIMESTAMP(6);\n\
         INSERT INTO expr (id, v) VALUES (4, 'after');\n\
         ALTER TABLE notnull ADD COLUMN n int NOT NULL;\n\
         INSERT INTO notnull VALUES (4, 'after', 9);\n\
         ALTER TABLE retyped MODIFY d double, MODIFY v int DEFAULT 0;\n\
         INSERT INTO retyped VALUES (4, 8, 4.5);",
    );
    let zetl = zetl.unwrap_or_else(|| env.run_zetl_streaming(&config));
    env.catch_up_once_and_stop(zetl);
    env.assert_equal(&["shop.lit", "shop.expr", "shop.notnull", "shop.retyped"]);
}

#[test]
fn added_columns_get_their_defaults_in_existing_rows() {
    added_columns("my_add_default", false);
}

#[test]
fn columns_added_while_stopped_get_their_defaults() {
    added_columns("my_add_stopped", true);
}

/// The catalog is read when the stream reaches the ALTER; if the column has another DEFAULT
/// by then (zetl lagged behind), the table is copied instead of filled with a guess.
#[test]
fn added_column_whose_default_changed_since_is_copied() {
    let env = MyEnv::start("my_add_default_lag");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v varchar(20)); INSERT INTO t VALUES (1, 'a'), (2, 'b');");
    let config = env.config("add_default_lag").write();
    let zetl = env.run_zetl_streaming(&config);
    env.catch_up_and_stop(zetl, &config);
    env.sql(
        "INSERT INTO t VALUES (3, 'c');\n\
         ALTER TABLE t ADD COLUMN n int DEFAULT 7;\n\
         INSERT INTO t (id, v) VALUES (4, 'd');\n\
         ALTER TABLE t ALTER COLUMN n SET DEFAULT 8;\n\
         INSERT INTO t (id, v) VALUES (5, 'e');",
    );
    let zetl = env.run_zetl_streaming(&config);
    env.catch_up_once_and_stop(zetl);
    env.assert_equal(&["shop.t"]);
}

/// `CREATE TABLE … SELECT` in a session logging statements: its rows are in the statement
/// text, so zetl copies the table.
#[test]
fn create_table_select_logged_as_a_statement_is_copied() {
    let env = MyEnv::start("my_ctas_stmt");
    env.sql("CREATE TABLE src (id int PRIMARY KEY, v varchar(20)); INSERT INTO src VALUES (1, 'a'), (2, 'b');");
    let config = env.config("ctas_stmt").write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql(
        "SET SESSION binlog_format = 'STATEMENT';\n\
         CREATE TABLE made (PRIMARY KEY (id)) SELECT id, v FROM src;\n\
         SET SESSION binlog_format = 'ROW';\n\
         INSERT INTO made VALUES (3, 'row');\n\
         CREATE TABLE made_rows (PRIMARY KEY (id)) SELECT id, v FROM src;",
    );
    env.catch_up_once_and_stop(zetl);
    env.assert_equal(&["shop.made", "shop.made_rows", "shop.src"]);
}

/// `tables.snapshot` on MariaDB: a `never` table gets only the changes made after it joined; a
/// `resync` table is copied again at every start, so a change the binlog does not carry
/// (written with `sql_log_bin = 0`) reaches the target at the next start.
#[test]
fn snapshot_modes_never_and_resync() {
    let env = MyEnv::start("my_snapmodes");
    env.sql(
        "CREATE TABLE log (id int PRIMARY KEY, msg varchar(20)); INSERT INTO log VALUES (1, 'old'), (2, 'old');\n\
         CREATE TABLE ref (code varchar(10) PRIMARY KEY, rate decimal(10,3)); INSERT INTO ref VALUES ('a', 1.5), ('b', 2.25);",
    );
    let config = env.config("snapmodes").snapshot_modes(&[("shop.log", "never"), ("shop.ref", "resync")]).write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql("INSERT INTO log VALUES (3, 'new'); INSERT INTO ref VALUES ('c', 3);");
    env.catch_up_and_stop(zetl, &config);
    let ids = env.target_value("SELECT string_agg(id::text, ',' ORDER BY id) FROM shop.log");
    assert_eq!(ids.as_deref(), Some("3"), "only the row inserted after the start");

    env.sql("SET sql_log_bin = 0; UPDATE ref SET rate = 9 WHERE code = 'a'; SET sql_log_bin = 1; INSERT INTO ref VALUES ('d', 4);");
    let zetl = env.run_zetl_streaming(&config);
    env.catch_up_and_stop(zetl, &config);
    env.sql("DELETE FROM log WHERE id <= 2");
    let zetl = env.run_zetl_streaming(&config);
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.log", "shop.ref"]);
}
