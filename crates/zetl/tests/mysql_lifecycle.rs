//! Table lifecycle at a MariaDB source: `CREATE TABLE IF NOT EXISTS` on a table that exists
//! (logged, yet a no-op), a table dropped and created again by the same statement, and a
//! table that leaves the filters and comes back. Each ends with a whole-table comparison.

mod common;
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
    let config = env.write_config("ifne", None, "");
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
    let all = env.write_config("toggle", None, "");
    let zetl = env.run_zetl_streaming(&all);
    env.catch_up_and_stop(zetl, &all);

    let without = env.write_config("toggle", Some(r#"{ include: ["shop.*"], exclude: ["shop.toggled"] }"#), "");
    let zetl = env.run_zetl_streaming(&without);
    env.sql("UPDATE toggled SET v = 'while out' WHERE id = 2; DELETE FROM toggled WHERE id = 3;");
    env.catch_up_and_stop(zetl, &without);

    // The same file as before: written again.
    let all = env.write_config("toggle", None, "");
    let zetl = env.run_zetl_streaming(&all);
    env.sql("INSERT INTO toggled VALUES (4, 'back in')");
    env.catch_up_and_stop(zetl, &all);
    env.assert_equal(&["shop.toggled"]);
}
