//! Values far larger than a batch (`batch.max_bytes`, 32 MiB by default): 40 MB texts and
//! byte strings, in the initial copy and in the stream, from PostgreSQL (TOASTed, sent whole)
//! and MariaDB (LONGTEXT/LONGBLOB, one rows event each). They arrive whole and exact; zetl's
//! peak memory is printed.

use crate::common;
use common::mysql::{MyEnv, MY_DB};
use common::TestEnv;

const BIG: u64 = 40_000_000;

#[test]
fn forty_megabyte_values_from_postgres_arrive_whole() {
    let env = TestEnv::start("large_pg");
    env.sql(&format!(
        "CREATE TABLE blobs (id int PRIMARY KEY, t text, b bytea);\n\
         INSERT INTO blobs SELECT 1, repeat(md5('a'), {n}), decode(repeat(md5('b'), {n}), 'hex');",
        n = BIG / 32
    ));
    let config = env.config("large_pg", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "large_pg");
    env.sql(&format!(
        "INSERT INTO blobs SELECT 2, repeat(md5('c'), {n}), decode(repeat(md5('d'), {n}), 'hex');\n\
         UPDATE blobs SET t = t || 'x', b = b || '\\x00ff'::bytea WHERE id = 1;",
        n = BIG / 32
    ));
    env.wait_caught_up(&mut zetl, "large_pg");
    let peak = common::peak_rss_kb(zetl.pid());
    zetl.stop();
    eprintln!(
        "postgres: two rows of 40 MB text + 20 MB bytea, copied and streamed; zetl's peak RSS {} MiB",
        peak / 1024
    );
    env.assert_equal(&["public.blobs"]);
}

#[test]
fn forty_megabyte_values_from_mariadb_arrive_whole() {
    let env = MyEnv::start("large_my");
    env.sql(&format!(
        "CREATE TABLE blobs (id int PRIMARY KEY, t longtext, b longblob); \
         INSERT INTO blobs VALUES (1, REPEAT(md5('a'), {n}), UNHEX(REPEAT(md5('b'), {n})))",
        n = BIG / 32
    ));
    let config = env.config("large_my").write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql(&format!(
        "INSERT INTO blobs VALUES (2, REPEAT(md5('c'), {n}), UNHEX(REPEAT(md5('d'), {n}))); \
         UPDATE blobs SET t = CONCAT(t, 'x'), b = CONCAT(b, X'00ff') WHERE id = 1",
        n = BIG / 32
    ));
    // Time to apply them before the peak is read (the catch-up below restarts zetl if needed).
    std::thread::sleep(std::time::Duration::from_secs(8));
    let peak = common::peak_rss_kb(zetl.pid());
    env.catch_up_and_stop(zetl, &config);
    // The comparison reads each value in hex, twice its size: more than the server's 64 MiB
    // (zetl's connections were made under that limit, which binlog events may exceed).
    env.sql("SET GLOBAL max_allowed_packet = 1073741824");
    eprintln!("mariadb: two rows of 40 MB text + 20 MB blob, copied and streamed; zetl's peak RSS {} MiB", peak / 1024);
    env.assert_equal(&[&format!("{MY_DB}.blobs")]);
}
