//! MariaDB copies made while streaming: a table with an integer key is filled in chunks beside
//! the binlog, so the other tables keep streaming; a kill -9 during the fill continues it
//! after the chunks committed. Both end with the whole target equal to the whole source under
//! a write workload on the filled table.

use crate::common;
use common::config::{map, yaml};
use common::mysql::MyEnv;
use common::StopOnDrop;
use common::{http_get, poll, zetl_command, Rng, TIMEOUT};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ROWS: u64 = 1_000_000;

fn create_tables(env: &MyEnv) {
    env.sql(&format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, v varchar(40), n int); \
         INSERT INTO big SELECT seq, md5(seq), seq FROM seq_1_to_{ROWS}; \
         CREATE TABLE small (id int PRIMARY KEY, at varchar(30)); \
         ANALYZE TABLE big"
    ));
}

/// Writes to `big` until `stop`: updates and deletes across the whole key range, inserts
/// above and below it, and key changes (rows moving from the part not copied yet into the part
/// copied, and out of it). Returns the statements batches written.
fn write_until(env: &MyEnv, stop: &AtomicBool) -> u64 {
    let mut rng = Rng::seeded(23);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let k = rng.range(1, ROWS);
        env.sql(&format!(
            "UPDATE big SET v = 'upd {i}', n = n + 1 WHERE id = {k}; \
             DELETE FROM big WHERE id = {}; \
             INSERT INTO big VALUES ({}, 'ins', 0), (-{i} - 1, 'below', 0); \
             BEGIN; UPDATE big SET id = {} WHERE id = {}; UPDATE big SET id = -{i} - 10000000 WHERE id = {}; COMMIT",
            (k * 7) % ROWS + 1,
            2 * ROWS + i,
            5 * ROWS + i,
            (k * 13) % ROWS + 1,
            (k * 17) % ROWS + 1,
        ));
        i += 1;
    }
    i
}

fn metric(port: u16, series: &str) -> f64 {
    let (_, text) = http_get(port, "/metrics");
    text.lines().filter(|l| l.starts_with(series)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

fn copying(port: u16, integration: &str, table: &str) -> bool {
    metric(port, &format!("zetl_table_copying{{integration=\"{integration}\",table=\"{table}\"}}")) > 0.0
}

/// `zetl resync` of a million-row table while zetl runs: the table is filled beside the
/// binlog. Rows written meanwhile to another table reach the target while the fill is still
/// under way (a copy that held the binlog would apply them only after it), and the filled
/// table ends equal to the source under writes to it throughout.
#[test]
fn mariadb_a_resync_is_filled_beside_the_stream() {
    let env = MyEnv::start("my_fill");
    resync_filled_beside_the_stream(&env, "my_fill", None);
}

/// The same with a signal table, the way MySQL fills (it has no snapshot position): each
/// chunk's snapshot is opened after a fence committed there. MariaDB would not need it; set,
/// it is used. The table is zetl's own: never replicated, checked by `zetl check`, removed by
/// `zetl drop`.
#[test]
fn a_resync_fenced_by_a_signal_table_is_filled_beside_the_stream() {
    let env = MyEnv::start("my_fence");
    let signal = "shop.zetl_signal";
    let config = resync_filled_beside_the_stream(&env, "my_fence", Some(signal));
    let fences: u64 = env
        .sql("SELECT fences FROM zetl_signal WHERE integration = 'my_fence'")
        .trim()
        .parse()
        .expect("the integration's row in the signal table");
    assert!(fences >= ROWS / 50_000, "{fences} fences for a fill of {ROWS} rows in chunks of 50 000");
    assert!(
        !env.target_tables().iter().any(|t| t.contains("zetl_signal")),
        "the signal table was replicated: {:?}",
        env.target_tables()
    );
    let cfg = config.to_str().expect("utf-8 path");
    let out = zetl_command(&["check", "-c", cfg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("✓ signal table {signal}")), "{text}");
    let out = zetl_command(&["drop", "-c", cfg, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let left = env.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'zetl_signal'");
    assert_eq!(left.trim(), "0", "zetl drop left the signal table");
}

/// Resyncs `shop.big` of a streaming integration `name` under writes (see above); returns its
/// configuration file.
fn resync_filled_beside_the_stream(env: &MyEnv, name: &str, signal: Option<&str>) -> std::path::PathBuf {
    create_tables(env);
    let port = zetl_testkit::free_port();
    let mut config = env
        .config(name)
        .source("heartbeat_secs", 1)
        .set("metrics", map([("listen", format!("127.0.0.1:{port}").into())]));
    if let Some(signal) = signal {
        config = config.source("signal_table", signal);
    }
    let config = config.write();
    let mut zetl = env.run_zetl_streaming(&config);
    common::wait_for("the initial copy to be committed", &mut zetl, || {
        std::fs::read_to_string(env.log_path()).is_ok_and(|l| l.contains("initial copy committed at the target"))
    });
    let stop = AtomicBool::new(false);
    let (mut during, mut worst) = (0, Duration::ZERO);
    let started = Instant::now();
    std::thread::scope(|s| {
        let writer = s.spawn(|| write_until(env, &stop));
        let _stop = StopOnDrop(&stop);
        let out = zetl_command(&["resync", "-c", config.to_str().expect("utf-8 path"), "shop.big"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        // The request is taken up at the stream's next periodic look (10 s).
        common::wait_for("the copy of shop.big to begin", &mut zetl, || copying(port, name, "shop.big"));
        let applied = format!("zetl_changes_applied_total{{integration=\"{name}\",table=\"shop.small\"");
        for i in 0u64.. {
            if !copying(port, name, "shop.big") {
                break;
            }
            let written = Instant::now();
            env.sql(&format!("INSERT INTO small VALUES ({i}, NOW(6))"));
            let arrived = poll(TIMEOUT, || metric(port, &applied) > i as f64);
            assert!(arrived, "a row of shop.small was not applied within {TIMEOUT:?} during the fill");
            if copying(port, name, "shop.big") {
                during += 1;
                worst = worst.max(written.elapsed());
            }
        }
        stop.store(true, Ordering::Relaxed);
        let batches = writer.join().expect("workload");
        eprintln!(
            "fill of 1M rows beside the stream: {:.1} s; {during} rows of shop.small applied during it, \
             the slowest after {worst:?}; {batches} write batches to shop.big meanwhile",
            started.elapsed().as_secs_f64()
        );
    });
    assert!(during >= 1, "no change to another table was applied while shop.big was being copied");
    env.catch_up_and_stop(zetl, &config);
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(log.contains("copying the table while streaming, in chunks table=shop.big"), "{log}");
    assert!(log.contains("table copied while streaming table=shop.big"), "{log}");
    env.assert_equal(&["shop.big", "shop.small"]);
    config
}

const WORDS: u64 = 300_000;

/// Writes to `words` (a two-column text key in a case- and accent-insensitive collation):
/// updates, deletes, inserts and key changes, until `stop`.
fn write_words_until(env: &MyEnv, stop: &AtomicBool) -> u64 {
    let mut rng = Rng::seeded(29);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let k = rng.range(1, WORDS);
        env.sql(&format!(
            "UPDATE words SET n = n + 1 WHERE w = 'w{k}'; DELETE FROM words WHERE w = 'w{}'; \
             INSERT INTO words VALUES ('Éire', 'new {i}', {i}), ('{}', 'w0{i}', 0); \
             UPDATE words SET region = 'aardvark' WHERE w = 'w{}'",
            (k * 7) % WORDS + 1,
            ["north", "Nörth", "it''s"][(i % 3) as usize],
            (k * 13) % WORDS + 1,
        ));
        i += 1;
    }
    i
}

/// A resync's fills killed at 30, 60 and 90 % continue after the chunks committed, under
/// writes to both tables: one with an integer key, and one keyed by two text columns in a
/// collation where `Nörth` sorts with `north` (the server orders and compares the keys).
#[test]
fn mariadb_a_resync_killed_at_30_60_and_90_percent_continues_its_fill() {
    let env = MyEnv::start("my_refill");
    create_tables(&env);
    env.sql(&format!(
        "CREATE TABLE words (region varchar(20), w varchar(40), n int, PRIMARY KEY (region, w)) \
           COLLATE utf8mb4_general_ci; \
         INSERT INTO words SELECT ELT(1 + seq % 5, 'north', 'Nörth', 'NORTH', 'it''s', 'Zone 1'), \
           CONCAT('w', seq), seq FROM seq_1_to_{WORDS}; ANALYZE TABLE words"
    ));
    let port = zetl_testkit::free_port();
    let config = env
        .config("my_refill")
        .source("heartbeat_secs", 1)
        .set("batch", yaml("{ max_bytes: 4000000 }"))
        .set("metrics", map([("listen", format!("127.0.0.1:{port}").into())]))
        .write();
    let zetl = env.run_zetl_streaming(&config);
    env.catch_up_and_stop(zetl, &config);
    let cfg = config.to_str().expect("utf-8 path");
    let out = zetl_command(&["resync", "-c", cfg, "shop.big", "shop.words"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let continued = "the copy made while streaming continues after the rows committed table=shop.";
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| write_until(&env, &stop));
        let words = s.spawn(|| write_words_until(&env, &stop));
        let _stop = StopOnDrop(&stop);
        // The fills run one after the other (shop.big first): the last kill lands in shop.words.
        // Committed rows: the last kill must find a chunk of shop.words committed (the writer
        // can be seconds behind the rows it has counted, replacing shop.big).
        let committed = common::CommittedRows::new(port, "my_refill");
        env.kill_9_at_30_60_and_90_percent(&config, (ROWS + WORDS) as f64, continued, || committed.read());
        let mut zetl = env.run_zetl(&config);
        let filled = poll(TIMEOUT * 4, || {
            std::fs::read_to_string(env.log_path())
                .is_ok_and(|l| l.contains("table copied while streaming table=shop.words"))
        });
        assert!(filled, "the fill of shop.words did not finish");
        stop.store(true, Ordering::Relaxed);
        let batches = writer.join().expect("workload") + words.join().expect("workload");
        if let Some(status) = zetl.try_exit() {
            panic!("zetl exited ({status}) after the fill");
        }
        env.catch_up_and_stop(zetl, &config);
        eprintln!("{batches} write batches during the fills");
    });
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(log.matches(continued).count() >= 3, "{log}");
    assert!(log.contains(&format!("{continued}words")), "the fill of shop.words was not continued:\n{log}");
    assert!(!log.contains("starts over in one piece"), "{log}");
    env.assert_equal(&["shop.big", "shop.words", "shop.small"]);
}

/// DDL during fills: a column added to the table being filled starts its copy over in one
/// piece (with the added column's values), and a table dropped while it is filled stops its
/// fill, marked; the table after it and the others end equal to the source.
#[test]
fn mariadb_fills_meet_an_added_column_and_a_drop() {
    let env = MyEnv::start("my_fill_ddl");
    create_tables(&env);
    env.sql(&format!(
        "CREATE TABLE doomed (id int PRIMARY KEY, v varchar(40)); \
         INSERT INTO doomed SELECT seq, md5(seq) FROM seq_1_to_{ROWS}; ANALYZE TABLE doomed"
    ));
    let config = env.config("my_fill_ddl").source("heartbeat_secs", 1).write();
    let zetl = env.run_zetl_streaming(&config);
    env.catch_up_and_stop(zetl, &config);
    let out = zetl_command(&["resync", "-c", config.to_str().expect("utf-8 path"), "shop.big", "shop.doomed"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut zetl = env.run_zetl(&config);
    let logged = |text: &str| std::fs::read_to_string(env.log_path()).is_ok_and(|l| l.contains(text));
    common::wait_for("the fill of shop.big", &mut zetl, || {
        logged("copying the table while streaming, in chunks table=shop.big")
    });
    env.sql("UPDATE big SET n = -n WHERE id % 1000 = 0; ALTER TABLE big ADD COLUMN extra int NOT NULL DEFAULT 5");
    env.sql("UPDATE big SET extra = 6 WHERE id % 997 = 0");
    // The fills run one at a time: shop.doomed's begins once shop.big is done.
    common::wait_for("the fill of shop.doomed", &mut zetl, || logged("copied while streaming table=shop.big"));
    env.sql("DROP TABLE doomed");
    env.sql("INSERT INTO small VALUES (1, 'after the drop')");
    common::wait_for("the fill of shop.doomed to stop", &mut zetl, || {
        logged("the table being copied left the source under this name; its copy stops table=shop.doomed")
    });
    env.catch_up_and_stop(zetl, &config);
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(log.contains("the copy made while streaming starts over in one piece"), "{log}");
    env.assert_equal(&["shop.big", "shop.small"]);
}

/// Tables keyed by a TIMESTAMP with fractions (with another column), by a TIME and by an ENUM
/// (with another column) are filled in chunks beside the binlog too, under writes from a
/// session in another time zone: the cursor's literals name the same instants in zetl's UTC
/// session, and an ENUM continues with the labels declared after (it sorts by declaration,
/// `gold` < `silver` < `bronze`, not as text). All end equal.
#[test]
fn mariadb_timestamp_time_and_enum_keys_are_filled_in_chunks() {
    let env = MyEnv::start("my_fill_ts");
    env.sql(
        "CREATE TABLE events (at timestamp(6) NOT NULL, src int NOT NULL, v int, PRIMARY KEY (at, src)); \
         INSERT INTO events SELECT FROM_UNIXTIME(1600000000 + seq DIV 3 * 2 + (seq % 1000) / 1000), seq % 3, seq \
           FROM seq_1_to_150000; \
         CREATE TABLE slots (t time(3) PRIMARY KEY, v int); \
         INSERT INTO slots SELECT SEC_TO_TIME(CAST(seq AS SIGNED) - 60000 + 0.125), seq FROM seq_1_to_120000; \
         CREATE TABLE tiers (tier enum('gold', 'silver', 'bronze') NOT NULL, id int NOT NULL, v int, \
           PRIMARY KEY (tier, id)); \
         INSERT INTO tiers SELECT 1 + seq % 3, seq, seq FROM seq_1_to_150000; \
         ANALYZE TABLE events, slots, tiers",
    );
    let config = env.config("my_fill_ts").source("heartbeat_secs", 1).write();
    let tables = ["shop.events", "shop.slots", "shop.tiers"];
    let write = |rng: &mut Rng, i: u64| {
        let (k, m) = (rng.range(1, 150_000), rng.range(1, 120_000));
        format!(
                    "SET time_zone = '+05:30'; \
                     UPDATE events SET v = v + 1 WHERE at = FROM_UNIXTIME(1600000000 + {k} DIV 3 * 2 + ({k} % 1000) / 1000); \
                     DELETE FROM events WHERE src = {s} AND at >= FROM_UNIXTIME(1600000000 + {k} * 2) LIMIT 1; \
                     INSERT INTO events VALUES (FROM_UNIXTIME(1500000000 + {i} + 0.5), 7, {i}), (NOW(6) + INTERVAL {i} SECOND, 8, {i}); \
                     UPDATE slots SET v = -v WHERE t = SEC_TO_TIME({m} - 60000 + 0.125); \
                     UPDATE slots SET t = SEC_TO_TIME(-70000 - {i}) WHERE t = SEC_TO_TIME({m2} - 60000 + 0.125); \
                     UPDATE tiers SET v = -v WHERE id = {k}; \
                     UPDATE tiers SET tier = 'gold', id = 1000000 + {i} WHERE id = {m}; \
                     UPDATE tiers SET tier = 'bronze' WHERE id = {m2}; DELETE FROM tiers WHERE id = {k2}",
                    s = k % 3,
                    k2 = (k * 13) % 150_000 + 1,
                    m2 = (m * 7) % 120_000 + 1,
                )
    };
    let log = fill_under_writes(&env, &config, &tables, 31, &write);
    for table in ["shop.events", "shop.slots"] {
        assert!(
            log.contains(&format!("copying the table while streaming, in chunks table={table}")),
            "{table} not filled in chunks"
        );
    }
    env.assert_equal(&tables);
}

/// SET, FLOAT, DOUBLE and BIT keys are filled in chunks too, under writes: a SET sorts by its
/// bits but compares as text (the values after the cursor's are named), a FLOAT's own text is
/// not its value (`1.1` is 1.100000023841858), a DOUBLE's text must be read as a double, and a
/// BIT arrives as bytes. A cursor compared the wrong way loses rows or reads the same ones
/// again and again. All end equal.
#[test]
fn mariadb_set_float_and_bit_keys_are_filled_in_chunks() {
    let env = MyEnv::start("my_fill_bits");
    env.sql(
        "CREATE TABLE flags (s set('b', 'a', 'c', 'd') NOT NULL, id int NOT NULL, v int, \
           PRIMARY KEY (s, id), KEY (id)); \
         INSERT INTO flags SELECT seq % 16, seq, seq FROM seq_1_to_150000; \
         CREATE TABLE gauges (f float PRIMARY KEY, n int NOT NULL UNIQUE, v int); \
         INSERT INTO gauges SELECT (CAST(seq AS SIGNED) - 60000) / 7e0, seq, seq FROM seq_1_to_120000; \
         CREATE TABLE masks (b bit(20) NOT NULL, d double NOT NULL, n int NOT NULL UNIQUE, v int, \
           PRIMARY KEY (b, d)); \
         INSERT INTO masks SELECT seq % 1000, seq / 3e0, seq, seq FROM seq_1_to_150000; \
         ANALYZE TABLE flags, gauges, masks",
    );
    let config = env.config("my_fill_bits").source("heartbeat_secs", 1).write();
    let tables = ["shop.flags", "shop.gauges", "shop.masks"];
    let write = |rng: &mut Rng, i: u64| {
        let (k, m) = (rng.range(1, 150_000), rng.range(1, 120_000));
        format!(
            "UPDATE flags SET v = -v WHERE id = {k}; \
                     UPDATE IGNORE flags SET s = 'b,d', id = 1000000 + {i} WHERE id = {m}; \
                     DELETE FROM flags WHERE id = {k2}; \
                     INSERT INTO flags VALUES ('', 2000000 + {i}, {i}); \
                     UPDATE gauges SET v = v + 1 WHERE n = {m}; \
                     UPDATE IGNORE gauges SET f = 1e6 + {i} * 0.5 WHERE n = {m2}; \
                     DELETE FROM gauges WHERE n = {k}; \
                     INSERT IGNORE INTO gauges VALUES (-1e5 - {i} / 3e0, 1000000 + {i}, {i}); \
                     UPDATE masks SET v = -v WHERE n = {k}; \
                     UPDATE IGNORE masks SET b = b'11111111111111111111', d = {i} / 7e0 WHERE n = {m}; \
                     DELETE FROM masks WHERE n = {k2}",
            k2 = (k * 13) % 150_000 + 1,
            m2 = (m * 7) % 120_000 + 1,
        )
    };
    let log = fill_under_writes(&env, &config, &tables, 37, &write);
    for table in tables {
        assert!(
            log.contains(&format!("copying the table while streaming, in chunks table={table}")),
            "{table} not filled in chunks"
        );
    }
    env.assert_equal(&tables);
}

/// `zetl resync` of `tables` (zetl caught up and stopped first), then a run that fills them
/// while `write(rng, i)` gives the statements written meanwhile, until every fill is done;
/// ends caught up and stopped. Returns zetl's log.
fn fill_under_writes(
    env: &MyEnv,
    config: &std::path::Path,
    tables: &[&str],
    seed: u64,
    write: &(dyn Fn(&mut Rng, u64) -> String + Sync),
) -> String {
    let zetl = env.run_zetl_streaming(config);
    env.catch_up_and_stop(zetl, config);
    let mut resync = vec!["resync", "-c", config.to_str().expect("utf-8 path")];
    resync.extend(tables);
    let out = zetl_command(&resync);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stop = AtomicBool::new(false);
    let mut zetl = env.run_zetl(config);
    let logged = |text: &str| std::fs::read_to_string(env.log_path()).is_ok_and(|l| l.contains(text));
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            let mut rng = Rng::seeded(seed);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                env.sql(&write(&mut rng, i));
                i += 1;
            }
        });
        for table in tables {
            common::wait_for(&format!("the fill of {table}"), &mut zetl, || {
                logged(&format!("table copied while streaming table={table}"))
            });
        }
        stop.store(true, Ordering::Relaxed);
    });
    env.catch_up_and_stop(zetl, config);
    std::fs::read_to_string(env.log_path()).unwrap_or_default()
}
