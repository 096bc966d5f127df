//! MariaDB → DuckDB: the initial copy and the binlog, compared whole against the source:
//! every type, inserts/updates/deletes in multi-statement transactions, key changes, tables
//! without a key, DDL mid-stream, tables that join later, and restarts.

use crate::common;
use common::config::map;
use common::mysql::MyEnv;

const ZOO: &str = "CREATE TABLE zoo (
    id bigint unsigned PRIMARY KEY,
    ti tinyint, tiu tinyint unsigned, si smallint, siu smallint unsigned, mi mediumint,
    miu mediumint unsigned, i int, iu int unsigned, bi bigint, biu bigint unsigned,
    f float, d double, dec1 decimal(10,3), dec2 decimal(65,30),
    b1 bit(1), b9 bit(9), yr year, after_yr int unsigned,
    ch char(5), vc varchar(40), tx text, lat varchar(20) CHARACTER SET latin1,
    bin binary(4), vb varbinary(10), bl blob,
    dt date, tm time(3), dtm datetime(6), dtm0 datetime, ts timestamp(3) NULL DEFAULT NULL,
    en enum('small','medium','large'), st set('red','green','blue'),
    js json
)";

fn zoo_row(id: u64) -> String {
    format!(
        "({id}, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, \
          -9223372036854775808, 18446744073709551615, 1.5, -2.25e-300, -1234567.891, \
          12345678901234567890123456789012345.123456789012345678901234567891, \
          b'1', b'100000001', 2155, 4000000000, 'ab', 'héllo wörld ✓ 🚀', REPEAT('x', 3000), 'café', \
          'ab', x'00ff10', x'deadbeef', '2024-02-29', '-838:59:59.999', '9999-12-31 23:59:59.999999', \
          '1000-01-01 00:00:00', '2038-01-19 03:14:07.123', 'large', 'red,blue', \
          '{{\"a\": [1, 2.5, null, true], \"b\": {{\"c\": \"d\"}}}}')"
    )
}

#[test]
fn every_type_and_every_change_arrive_intact() {
    let env = MyEnv::start("my_types");
    env.sql(ZOO);
    env.sql(&format!("INSERT INTO zoo VALUES {}, {}", zoo_row(1), zoo_row(2)));
    env.sql("INSERT INTO zoo (id) VALUES (3)");
    // MariaDB's default sql_mode allows zero dates; zetl stores them as NULL.
    env.sql("INSERT INTO zoo (id, dt, dtm0, yr) VALUES (4, '0000-00-00', '0000-00-00 00:00:00', 0)");
    env.sql("CREATE TABLE keyless (a int, b varchar(10))");
    env.sql("INSERT INTO keyless VALUES (1, 'one'), (1, 'one'), (2, 'two')");
    let config = env.config("types").write();
    let zetl = env.run_zetl_streaming(&config);

    // Streamed: the same values again, plus updates of every column and deletes.
    env.sql(&format!("INSERT INTO zoo VALUES {}, {}", zoo_row(10), zoo_row(11)));
    env.sql("INSERT INTO zoo (id, dt, dtm0) VALUES (12, '0000-00-00', '0000-00-00 00:00:00')");
    env.sql(
        "UPDATE zoo SET ti = 127, tiu = 0, biu = 0, f = -0.5, dec2 = -0.000000000000000000000000000001, \
         b9 = b'111111111', vc = NULL, bin = x'01', tm = '00:00:00.001', ts = '1970-01-01 00:00:01', \
         en = 'small', st = '', js = '[]' WHERE id IN (1, 10)",
    );
    env.sql("DELETE FROM zoo WHERE id IN (2, 11)");
    env.sql(
        "START TRANSACTION; \
         INSERT INTO zoo (id, vc) VALUES (20, 'in txn'); \
         UPDATE zoo SET vc = 'changed in txn' WHERE id = 20; \
         UPDATE zoo SET id = 21 WHERE id = 20; \
         DELETE FROM zoo WHERE id = 3; \
         INSERT INTO keyless VALUES (3, 'three'); \
         UPDATE keyless SET b = 'uno' WHERE a = 1 LIMIT 1; \
         DELETE FROM keyless WHERE a = 2; \
         COMMIT",
    );
    env.sql("START TRANSACTION; INSERT INTO zoo (id) VALUES (30); ROLLBACK");
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.zoo", "shop.keyless"]);
    assert_eq!(env.target_value("SELECT vc FROM shop.zoo WHERE id = 21").as_deref(), Some("changed in txn"));
    assert_eq!(env.target_value("SELECT CAST(count(*) AS VARCHAR) FROM shop.zoo WHERE id = 30").as_deref(), Some("0"));
}

#[test]
fn ddl_mid_stream_new_tables_and_restarts() {
    let env = MyEnv::start("my_ddl");
    env.sql("CREATE TABLE orders (id int PRIMARY KEY AUTO_INCREMENT, item varchar(20), qty int)");
    env.sql("INSERT INTO orders (item, qty) VALUES ('a', 1), ('b', 2)");
    env.sql("CREATE DATABASE other; CREATE TABLE other.ignored (id int PRIMARY KEY); CREATE TABLE other.staged (id int PRIMARY KEY, v text)");
    env.sql("INSERT INTO other.staged VALUES (1, 'staged'), (2, 'rows')");
    let config = env.config("ddl").write();
    let zetl = env.run_zetl_streaming(&config);

    env.sql("ALTER TABLE orders ADD COLUMN note varchar(50)");
    env.sql("INSERT INTO orders (item, qty, note) VALUES ('c', 3, 'added column')");
    env.sql("UPDATE orders SET note = 'old row' WHERE id = 1");
    env.sql("ALTER TABLE orders DROP COLUMN qty");
    env.sql("INSERT INTO orders (item, note) VALUES ('d', 'dropped column')");
    env.sql("CREATE TABLE later (k varchar(10) PRIMARY KEY, v int); INSERT INTO later VALUES ('x', 1), ('y', 2)");
    env.sql("CREATE TABLE emptied (id int PRIMARY KEY); INSERT INTO emptied VALUES (1), (2); TRUNCATE TABLE emptied; INSERT INTO emptied VALUES (3)");
    env.sql("INSERT INTO other.ignored VALUES (1)");
    env.sql("RENAME TABLE other.staged TO shop.moved");
    env.sql("INSERT INTO moved VALUES (3, 'after the rename')");
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.orders", "shop.later", "shop.emptied", "shop.moved"]);
    assert_eq!(
        env.target_value("SELECT CAST(count(*) AS VARCHAR) FROM duckdb_tables() WHERE schema_name = 'other'")
            .as_deref(),
        Some("0"),
        "tables outside the filters must not reach the target"
    );

    // Changes while zetl is down are picked up from the stored position, once.
    env.sql("INSERT INTO orders (item, note) VALUES ('e', 'while stopped'); DELETE FROM orders WHERE item = 'a'");
    env.sql("UPDATE later SET v = v + 10");
    let zetl = env.run_zetl_streaming(&config);
    env.sql("INSERT INTO later VALUES ('z', 3)");
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.orders", "shop.later", "shop.emptied", "shop.moved"]);
}

#[test]
fn mariadb_into_a_postgres_target() {
    let env = MyEnv::start("my_to_pg");
    let target = zetl_testkit::PgServer::start(zetl_testkit::PgOptions::default()).expect("start PostgreSQL");
    env.sql(ZOO);
    env.sql(&format!("INSERT INTO zoo VALUES {}", zoo_row(1)));
    let target_settings = map([("kind", "postgres".into()), ("url", target.url("zetl").into())]);
    let config = env.config("topg").include(&["shop.zoo"]).target(target_settings).write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql(&format!("INSERT INTO zoo VALUES {}", zoo_row(2)));
    env.sql("UPDATE zoo SET vc = 'changed', biu = 1 WHERE id = 1; INSERT INTO zoo (id) VALUES (3)");
    let zetl = {
        let mut zetl = zetl;
        let done = common::mysql::eventually(|| {
            assert!(zetl.try_exit().is_none(), "zetl exited");
            target.psql("zetl", "SELECT count(*) FROM shop.zoo").is_ok_and(|n| n.trim() == "3")
                && target.psql("zetl", "SELECT vc FROM shop.zoo WHERE id = 1").is_ok_and(|v| v.trim() == "changed")
        });
        assert!(done, "the PostgreSQL target did not receive the changes");
        zetl
    };
    zetl.stop();
    let pg = |sql: &str| target.psql("zetl", sql).expect("query the target").trim().to_string();
    assert_eq!(
        pg("SELECT biu::text || '|' || ti || '|' || dec2::text FROM shop.zoo WHERE id = 2"),
        "18446744073709551615|-128|12345678901234567890123456789012345.123456789012345678901234567891"
    );
    assert_eq!(
        pg("SELECT vc || '|' || lat || '|' || encode(bin, 'hex') || '|' || js::text FROM shop.zoo WHERE id = 2"),
        "héllo wörld ✓ 🚀|café|61620000|{\"a\": [1, 2.5, null, true], \"b\": {\"c\": \"d\"}}"
    );
    assert_eq!(
        pg("SELECT tm::text || '|' || dtm::text || '|' || ts::text FROM shop.zoo WHERE id = 2"),
        "-838:59:59.999|9999-12-31 23:59:59.999999|2038-01-19 03:14:07.123+00"
    );
}
