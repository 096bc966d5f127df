//! Table lifecycle at a PostgreSQL source: a name that comes to hold another table (dropped
//! and created again, swapped by renames), a table renamed away and back, a table that leaves
//! the filters and comes back — while zetl streams and while it is stopped. Each ends with the
//! whole target compared with the whole source, on a DuckDB and on a PostgreSQL target.

use crate::common;

use common::warehouse::{copies_of, wait_copied, Warehouse};
use common::TestEnv;

const SETUP: &str = "CREATE TABLE dropped (id int PRIMARY KEY, v text);\n\
     INSERT INTO dropped SELECT g, 'old ' || g FROM generate_series(1, 100) g;\n\
     CREATE TABLE swap (id int PRIMARY KEY, v text);\n\
     INSERT INTO swap SELECT g, 'swap old ' || g FROM generate_series(1, 100) g;\n\
     CREATE TABLE swap_new (id int PRIMARY KEY, v text);\n\
     INSERT INTO swap_new SELECT g, 'swap new ' || g FROM generate_series(51, 120) g;\n\
     CREATE TABLE back (id int PRIMARY KEY, v text);\n\
     INSERT INTO back SELECT g, 'back ' || g FROM generate_series(1, 100) g;";

/// Drops and creates `dropped` again with other rows, swaps `swap_new` in for `swap` in one
/// transaction, and renames `back` away and back with changes in between.
const LIFECYCLE: &str = "DROP TABLE dropped;\n\
     CREATE TABLE dropped (id int PRIMARY KEY, v text, extra int);\n\
     INSERT INTO dropped SELECT g, 'new ' || g, g FROM generate_series(50, 130) g;\n\
     BEGIN; ALTER TABLE swap RENAME TO swap_old; ALTER TABLE swap_new RENAME TO swap; COMMIT;\n\
     UPDATE swap SET v = 'after the swap' WHERE id % 3 = 0;\n\
     UPDATE swap_old SET v = 'old table after the swap' WHERE id % 4 = 0;\n\
     ALTER TABLE back RENAME TO back_away;\n\
     UPDATE back_away SET v = 'changed while renamed' WHERE id % 2 = 0;\n\
     DELETE FROM back_away WHERE id % 5 = 0;\n\
     INSERT INTO back_away VALUES (1000, 'inserted while renamed');\n\
     ALTER TABLE back_away RENAME TO back;";

const AFTER: &str = "INSERT INTO dropped VALUES (500, 'after', 5);\n\
     UPDATE dropped SET v = 'updated after' WHERE id % 10 = 0;\n\
     DELETE FROM swap WHERE id % 7 = 0;\n\
     INSERT INTO back VALUES (2000, 'after');";

const COMPARED: &[&str] = &["public.dropped", "public.swap", "public.swap_old", "public.back"];

fn lifecycle_while_streaming(warehouse: Warehouse, test: &str) {
    let env = TestEnv::start(test);
    env.sql(SETUP);
    let config = warehouse.config(&env, test, &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, test);
    env.sql(LIFECYCLE);
    wait_copied(&env, &mut zetl, "public.dropped", 1);
    wait_copied(&env, &mut zetl, "public.swap", 1);
    wait_copied(&env, &mut zetl, "public.swap_old", 1);
    env.sql(AFTER);
    env.wait_caught_up(&mut zetl, test);
    // The rename away and back may fall between two discovery passes or across one: either
    // way `back` is copied again.
    wait_copied(&env, &mut zetl, "public.back", 1);
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    warehouse.assert_equal(&env, COMPARED);
    let published = env.sql_value(&format!(
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = 'zetl_{test}'"
    ));
    assert_eq!(published, "back,dropped,swap,swap_old", "the publication holds the tables under their names now");
}

#[test]
fn drop_create_and_renames_while_streaming_duckdb() {
    lifecycle_while_streaming(Warehouse::Duckdb, "life_duck");
}

#[test]
fn drop_create_and_renames_while_streaming_postgres() {
    lifecycle_while_streaming(Warehouse::postgres(), "life_pg");
}

/// While zetl is stopped: `dropped` and `swap` hold other tables at the next start (stored
/// OIDs), and the stream that resumes sees `back` renamed away and back. Table discovery is
/// off (an hour), so `back` is copied again only because the stream marked it in the target:
/// the third start does it.
fn lifecycle_while_stopped(warehouse: Warehouse, test: &str) {
    let env = TestEnv::start(test);
    env.sql(SETUP);
    let config = warehouse.config(&env, test, &["public.*"]).source("table_discovery_secs", 3600).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    env.sql(LIFECYCLE);
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, test);
    env.sql(AFTER);
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    assert_eq!(copies_of(&env, "public.back"), 0, "no discovery ran, so nothing copied `back` yet");
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    assert_eq!(copies_of(&env, "public.back"), 1, "the start after the rename copies `back` again");
    warehouse.assert_equal(&env, COMPARED);
}

#[test]
fn drop_create_and_renames_while_stopped_duckdb() {
    lifecycle_while_stopped(Warehouse::Duckdb, "stopped_duck");
}

#[test]
fn drop_create_and_renames_while_stopped_postgres() {
    lifecycle_while_stopped(Warehouse::postgres(), "stopped_pg");
}

/// A table that leaves the filters stops being replicated; when it comes back it is copied
/// again instead of resuming a copy that missed every change in between.
fn excluded_then_included(warehouse: Warehouse, test: &str) {
    let env = TestEnv::start(test);
    env.sql(
        "CREATE TABLE kept (id int PRIMARY KEY, v text); INSERT INTO kept VALUES (1, 'a');\n\
         CREATE TABLE toggled (id int PRIMARY KEY, v text);\n\
         INSERT INTO toggled SELECT g, 'first ' || g FROM generate_series(1, 50) g;",
    );
    let all = warehouse.config(&env, test, &["public.*"]).write();
    let mut zetl = env.run_zetl(&all);
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();

    let without = warehouse.config(&env, test, &["public.*"]).exclude(&["public.toggled"]).write();
    let mut zetl = env.run_zetl(&without);
    env.sql("UPDATE toggled SET v = 'while excluded' WHERE id % 2 = 0; DELETE FROM toggled WHERE id > 40;");
    env.sql("INSERT INTO kept VALUES (2, 'b')");
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    // `status` shows the table's state and why.
    let out = common::zetl_command(&["status", "-c", without.to_str().expect("utf-8 path"), "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    let toggled = status["tables"].as_array().and_then(|t| t.iter().find(|t| t["table"] == "toggled"));
    let toggled = toggled.unwrap_or_else(|| panic!("no toggled in {status}"));
    assert_eq!(toggled["state"], "excluded", "{status}");
    assert_eq!(toggled["reason"], "out of the integration's table filters", "{status}");

    let all = warehouse.config(&env, test, &["public.*"]).write();
    let mut zetl = env.run_zetl(&all);
    env.wait_caught_up(&mut zetl, test);
    env.sql("UPDATE toggled SET v = 'back in' WHERE id = 1");
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    warehouse.assert_equal(&env, &["public.kept", "public.toggled"]);
}

#[test]
fn excluded_then_included_is_copied_again_duckdb() {
    excluded_then_included(Warehouse::Duckdb, "toggle_duck");
}

#[test]
fn excluded_then_included_is_copied_again_postgres() {
    excluded_then_included(Warehouse::postgres(), "toggle_pg");
}

/// Partition maintenance that writes no row changes (TRUNCATE of a leaf is not sent under
/// `publish_via_partition_root`; ATTACH, DETACH and DROP of a leaf move rows silently) copies
/// the partitioned table again; a partition created as such does not.
fn partition_maintenance(warehouse: Warehouse, test: &str) {
    let env = TestEnv::start(test);
    env.sql(
        "CREATE TABLE events (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);\n\
         CREATE TABLE events_01 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');\n\
         CREATE TABLE events_02 PARTITION OF events FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');\n\
         CREATE TABLE events_03 PARTITION OF events FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');\n\
         INSERT INTO events SELECT g, '2024-01-01'::date + (g % 90), 'row ' || g FROM generate_series(1, 300) g;",
    );
    let config = warehouse.config(&env, test, &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, test);
    let steps = [
        "TRUNCATE events_01",
        "ALTER TABLE events DETACH PARTITION events_02",
        "CREATE TABLE events_04 (id int NOT NULL, at date NOT NULL, v text);\n\
         INSERT INTO events_04 VALUES (1000, '2024-04-02', 'attached');\n\
         ALTER TABLE events ATTACH PARTITION events_04 FOR VALUES FROM ('2024-04-01') TO ('2024-05-01')",
        "DROP TABLE events_03",
    ];
    for (n, step) in steps.iter().enumerate() {
        // A partition created as one: its rows arrive through the stream, no copy needed.
        env.sql(&format!(
            "CREATE TABLE events_new_{n} PARTITION OF events FOR VALUES FROM ('{y}-01-01') TO ('{y}-02-01');\n\
             INSERT INTO events VALUES ({id}, '{y}-01-05', 'in a new partition');",
            y = 2030 + n,
            id = 5000 + n
        ));
        env.sql(step);
        wait_copied(&env, &mut zetl, "public.events", n + 1);
        env.sql(&format!("INSERT INTO events VALUES ({}, '2024-01-10', 'after step {n}')", 2000 + n));
        env.wait_caught_up(&mut zetl, test);
    }
    // Once more after the last step's copy: nothing else is copied.
    std::thread::sleep(std::time::Duration::from_secs(2));
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    assert_eq!(copies_of(&env, "public.events"), steps.len(), "one copy for each step, none for new partitions");
    // TRUNCATE of a leaf while zetl is stopped: noticed at the next start.
    env.sql("TRUNCATE events_new_0");
    let mut zetl = env.run_zetl(&config);
    // Caught up with the stream is not the end of the copy, which runs beside it.
    wait_copied(&env, &mut zetl, "public.events", steps.len() + 1);
    env.wait_caught_up(&mut zetl, test);
    zetl.stop();
    assert_eq!(copies_of(&env, "public.events"), steps.len() + 1);
    warehouse.assert_equal(&env, &["public.events", "public.events_02"]);
}

#[test]
fn partition_maintenance_duckdb() {
    partition_maintenance(Warehouse::Duckdb, "parts_duck");
}

#[test]
fn partition_maintenance_postgres() {
    partition_maintenance(Warehouse::postgres(), "parts_pg");
}
