//! `tables.include` / `tables.exclude`, also for tables created while zetl runs.

use crate::common;

use common::{poll, wait_for, TestEnv, DB};
use std::time::{Duration, Instant};

#[test]
fn include_exclude_and_tables_created_while_running() {
    let env = TestEnv::start("filters");
    env.sql(
        "CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2));\n\
         INSERT INTO orders SELECT g, g * 1.25 FROM generate_series(1, 50) g;\n\
         CREATE TABLE audit_log (id int PRIMARY KEY, what text);\n\
         INSERT INTO audit_log VALUES (1, 'excluded from the start');\n\
         CREATE SCHEMA other;\n\
         CREATE TABLE other.things (id int PRIMARY KEY);\n\
         INSERT INTO other.things VALUES (1);",
    );
    let config = env.config("filters", &["public.*"]).exclude(&["public.audit_*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "filters");

    // New tables while streaming: two that match, one excluded, one in another schema.
    env.sql(
        "CREATE TABLE late (id int PRIMARY KEY, v text);\n\
         INSERT INTO late SELECT g, 'before discovery ' || g FROM generate_series(1, 100) g;\n\
         CREATE TABLE late_nokey (a int, b text);\n\
         INSERT INTO late_nokey VALUES (1, 'x'), (1, 'x');\n\
         CREATE TABLE audit_late (id int PRIMARY KEY, what text);\n\
         INSERT INTO audit_late VALUES (1, 'never replicated');\n\
         CREATE TABLE other.late_other (id int PRIMARY KEY);\n\
         INSERT INTO other.late_other VALUES (1);",
    );
    env.sql("INSERT INTO orders VALUES (51, 1.00)");
    // Changes while the new table is being picked up and copied ...
    env.sql("UPDATE late SET v = 'changed early' WHERE id <= 10");
    wait_for("public.late to join the publication", &mut zetl, || {
        env.sql_value(
            "SELECT count(*) FROM pg_publication_tables \
             WHERE pubname LIKE 'zetl_filters%' AND tablename IN ('late', 'late_nokey')",
        ) == "2"
    });
    env.sql("INSERT INTO late VALUES (101, 'right after discovery')");
    env.wait_caught_up(&mut zetl, "filters");
    // ... and once it streams.
    env.sql("INSERT INTO late SELECT g, 'streamed ' || g FROM generate_series(102, 150) g");
    env.sql("UPDATE late SET v = 'streamed update' WHERE id % 5 = 0");
    env.sql("DELETE FROM late WHERE id % 7 = 0");
    env.sql("INSERT INTO late_nokey VALUES (2, 'streamed'), (1, 'x')");
    env.sql("INSERT INTO audit_late VALUES (2, 'still never replicated')");
    env.sql("INSERT INTO audit_log VALUES (2, 'still excluded')");
    env.wait_caught_up(&mut zetl, "filters");
    zetl.stop();

    env.assert_equal(&["public.orders", "public.late", "public.late_nokey"]);
    assert_eq!(
        env.target_tables(),
        vec!["public.late", "public.late_nokey", "public.orders"],
        "only the tables that match the filters are at the target"
    );
    let published = env.sql_value(
        "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY schemaname, tablename) \
         FROM pg_publication_tables WHERE pubname LIKE 'zetl_filters%'",
    );
    assert_eq!(published, "public.late,public.late_nokey,public.orders");
}

/// `table_discovery_secs: 1` — a new matching table is picked up within seconds also when the
/// source is otherwise idle (nothing else arrives on the replication stream meanwhile).
#[test]
fn new_table_discovered_within_the_configured_interval_while_idle() {
    let env = TestEnv::start("discovery");
    env.sql("CREATE TABLE first (id int PRIMARY KEY)");
    let config = env.config("discovery", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "discovery");
    // Let the stream go idle, then add a table and write nothing else.
    std::thread::sleep(Duration::from_secs(2));
    env.sql("CREATE TABLE second (id int PRIMARY KEY); INSERT INTO second VALUES (1);");
    let created = Instant::now();
    let limit = Duration::from_secs(6);
    let joined = poll(limit, || {
        env.sql_value(
            "SELECT count(*) FROM pg_publication_tables \
             WHERE pubname = 'zetl_discovery' AND tablename = 'second'",
        ) == "1"
    });
    let took = created.elapsed();
    // Whatever the timing, the table must arrive in the end. (A write to another table, so
    // that this test does not depend on idle_source_after_a_new_table_copy_is_confirmed.)
    env.sql("INSERT INTO first VALUES (1)");
    env.wait_caught_up(&mut zetl, "discovery");
    zetl.stop();
    env.assert_equal(&["public.first", "public.second"]);
    assert!(
        joined,
        "with table_discovery_secs: 1 the new table was not picked up within {limit:?} \
         (it took {took:?} until it was published, or longer)"
    );
}

/// kill -9 while a table created during streaming is being copied: the next start copies it
/// again, and its changes made meanwhile are neither lost nor applied twice.
#[test]
fn kill_9_while_copying_a_new_table() {
    let env = TestEnv::start("newcopy");
    env.sql("CREATE TABLE first (id int PRIMARY KEY, v text); INSERT INTO first VALUES (1, 'a');");
    let config = env.config("newcopy", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "newcopy");
    let copies = || std::fs::read_to_string(env.log_path()).unwrap_or_default().matches("initial copy starts").count();
    assert_eq!(copies(), 1);
    env.sql(
        "CREATE TABLE second (id int PRIMARY KEY, v text);\n\
         INSERT INTO second SELECT g, md5(g::text) FROM generate_series(1, 150000) g;\n\
         CREATE TABLE second_log (k int, v text);\n\
         INSERT INTO second_log SELECT g % 10, 'x' FROM generate_series(1, 20000) g;",
    );
    env.sql("INSERT INTO first VALUES (2, 'wake the stream up')");
    wait_for("the copy of the new tables to start", &mut zetl, || copies() == 2);
    env.sql("UPDATE second SET v = 'during the copy' WHERE id % 100 = 0");
    env.sql("INSERT INTO second_log VALUES (1, 'during the copy')");
    std::thread::sleep(Duration::from_millis(150));
    zetl.kill9();
    env.sql("UPDATE second SET v = 'while down' WHERE id % 100 = 1");
    env.sql("INSERT INTO second_log VALUES (2, 'while down')");

    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "newcopy");
    env.sql("DELETE FROM second WHERE id % 100 = 2");
    env.sql("INSERT INTO second_log VALUES (3, 'after')");
    env.wait_caught_up(&mut zetl, "newcopy");
    zetl.stop();
    env.assert_equal(&["public.first", "public.second", "public.second_log"]);
}

/// After copying a table created while streaming, an otherwise idle source must still see its
/// slot confirmed (and the copy committed at the target) without waiting for the next write.
#[test]
fn idle_source_after_a_new_table_copy_is_confirmed() {
    let env = TestEnv::start("idlecopy");
    env.sql("CREATE TABLE first (id int PRIMARY KEY); INSERT INTO first VALUES (1);");
    let config = env.config("idlecopy", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "idlecopy");
    env.sql("CREATE TABLE second (id int PRIMARY KEY); INSERT INTO second VALUES (1), (2);");
    wait_for("the new table to be copied", &mut zetl, || {
        std::fs::read_to_string(env.log_path()).unwrap_or_default().contains("table copied while streaming")
    });
    // No source transaction from here on: only idle keepalives reach zetl.
    env.wait_caught_up_within(&mut zetl, "idlecopy", Duration::from_secs(20));
    zetl.stop();
    env.assert_equal(&["public.first", "public.second"]);
}

/// A transaction open when a new table joins the publication had its earlier changes to the
/// table left out of the stream (pgoutput decides per change): the copy waits for it to end,
/// so that it holds those changes, and the stream skips the transaction for that table.
#[test]
fn a_transaction_open_when_a_table_joins_the_publication_is_copied_whole() {
    let env = TestEnv::start("joined");
    env.sql("CREATE TABLE first (id int PRIMARY KEY); INSERT INTO first VALUES (1);");
    let config = env.config("joined", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "joined");
    env.sql("CREATE TABLE fresh (id int PRIMARY KEY, v text)");
    let mut open = env.server.session(DB).expect("psql session");
    open.send("BEGIN; INSERT INTO fresh SELECT g, 'before' FROM generate_series(1, 1000) g;").expect("send");
    let published = "SELECT count(*) FROM pg_publication_tables WHERE tablename = 'fresh'";
    wait_for("the new table to join the publication", &mut zetl, || env.sql_value(published) == "1");
    open.send("INSERT INTO fresh SELECT g, 'after' FROM generate_series(1001, 2000) g; COMMIT;").expect("send");
    open.finish().expect("the transaction commits");
    env.wait_caught_up(&mut zetl, "joined");
    zetl.stop();
    env.assert_equal(&["public.first", "public.fresh"]);
}
