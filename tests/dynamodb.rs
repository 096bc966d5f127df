//! DynamoDB → DuckDB against moto's server: the parallel Scan seed with writes racing it, the
//! stream with every attribute type, restarts and kill -9 under load, and the clear refusals
//! (no stream, KEYS_ONLY, missing table, unreachable endpoint, no credentials). Every test
//! compares the whole target with the whole table.

use crate::common;
use common::config::{map, yaml};

use common::dynamo::{DynEnv, CREDENTIALS};
use common::{zetl_command_with, TIMEOUT};
use std::process::{Child, Command};

fn churn(env: &DynEnv, table: &str, seconds: u32, seed: u32) -> Child {
    Command::new("python3")
        .arg(zetl_testkit::compare_dynamo::script())
        .args([&env.endpoint(), "churn", table, &seconds.to_string(), &seed.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the load")
}

#[test]
fn seed_with_racing_writes_then_stream_every_attribute_type() {
    let env = DynEnv::start("dyn_types");
    env.driver(&["create", "t"]);
    env.driver(&["create", "other"]);
    env.driver(&["fill", "t", "0", "400"]);
    env.driver(&["fill", "other", "0", "5"]);
    let cfg = env
        .config("dyn", &["t", "other"])
        .source("scan", yaml("{ segments: 3, page_items: 50 }"))
        .source("columns", yaml("{ t: { small: integer, s: text, ok: bool } }"))
        .write();
    // Writes race the scan: the stream, read from its oldest record after the seed, converges.
    let mut load = churn(&env, "t", 3, 7);
    let zetl = env.run_zetl(&cfg);
    load.wait().expect("load finished");
    env.driver(&["mutate", "t"]);
    env.catch_up_and_stop(zetl, &cfg, &["t", "other"]);
    env.assert_equal("t");
    env.assert_equal("other");

    // Declared attributes are typed columns beside the item.
    let mismatched = env.target_value(
        "SELECT count(*) FROM dynamodb.t WHERE pk <> 'sync' AND (small IS DISTINCT FROM \
         CAST(json_extract_string(item, '$.small.N') AS BIGINT) OR ok IS DISTINCT FROM \
         CAST(json_extract_string(item, '$.ok.BOOL') AS BOOLEAN) OR s IS DISTINCT FROM json_extract_string(item, '$.s.S'))",
    );
    assert_eq!(mismatched.as_deref(), Some("0"));
    let types = env.target_value(
        "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index) FROM duckdb_columns() \
         WHERE schema_name = 'dynamodb' AND table_name = 't'",
    );
    assert_eq!(types.as_deref(), Some("pk VARCHAR, sk VARCHAR, ok BOOLEAN, s VARCHAR, small BIGINT, item JSON"));
}

/// A seed cut short by kill -9 at 30, 60 and 90 % goes on per Scan segment after the pages the
/// target committed, while items change; the stream, read from where the first seed began,
/// brings the table level.
#[test]
fn kill_9_at_30_60_and_90_percent_continues_the_seed() {
    const ITEMS: f64 = 3000.0;
    let env = DynEnv::start("dyn_resume");
    env.driver(&["create", "t"]);
    env.driver(&["fill", "t", "0", "3000"]);
    let port = zetl_testkit::free_port();
    let cfg = env
        .config("dynresume", &["t"])
        .source("scan", yaml("{ segments: 3, page_items: 20 }"))
        .set("batch", yaml("{ max_bytes: 20000 }"))
        .set("metrics", map([("listen", format!("127.0.0.1:{port}").into())]))
        .write();
    let mut load = churn(&env, "t", 20, 5);
    let continued = "the seed continues after the pages committed";
    env.kill_9_at_30_60_and_90_percent(&cfg, ITEMS, continued, || common::copied_rows(port, "dynresume"));
    let zetl = env.run_zetl(&cfg);
    load.wait().expect("load finished");
    env.catch_up_and_stop(zetl, &cfg, &["t"]);
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(log.matches("the seed continues after the pages committed").count() >= 3, "{log}");
    // Every item was read once over the four runs: the pages committed before a kill were
    // not read again (the writes only touch the first 300 of the items filled).
    let seeded = log
        .lines()
        .find_map(|l| l.split_once("table seeded table=t rows=")?.1.split_whitespace().next()?.parse::<f64>().ok())
        .expect("the seed completed");
    assert!(seeded <= ITEMS, "{seeded} items read for {ITEMS}: pages were read again\n{log}");
    env.assert_equal("t");
}

#[test]
fn restarts_and_kill_9_under_load_resume_from_the_stored_sequence_numbers() {
    let env = DynEnv::start("dyn_kill");
    env.driver(&["create", "t"]);
    env.driver(&["fill", "t", "0", "100"]);
    let cfg = env.config("dynkill", &["t"]).write();
    let zetl = env.run_zetl(&cfg);
    env.catch_up_and_stop(zetl, &cfg, &["t"]);
    env.assert_equal("t");

    // Changes while zetl is stopped arrive after a restart.
    env.driver(&["mutate", "t"]);
    let zetl = env.run_zetl(&cfg);
    env.catch_up_and_stop(zetl, &cfg, &["t"]);
    env.assert_equal("t");

    // kill -9 twice while the table churns.
    let mut load = churn(&env, "t", 8, 11);
    for pause in [2, 3] {
        let zetl = env.run_zetl(&cfg);
        std::thread::sleep(std::time::Duration::from_secs(pause));
        zetl.kill9();
    }
    let zetl = env.run_zetl(&cfg);
    load.wait().expect("load finished");
    env.catch_up_and_stop(zetl, &cfg, &["t"]);
    env.assert_equal("t");
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(log.contains("following the streams"), "{log}");

    // A stored shard the stream no longer has (trimmed after 24 hours): a clear stop, never a
    // silent gap; `zetl resync --all` makes a new copy.
    env.target_sql("UPDATE _zetl.checkpoints SET position = replace(position, '\"shardId-', '\"shardId-gone-')");
    gap_stops_then_resync_recovers(&env, &cfg, &["is no longer in the stream", "run `zetl resync --all`"]);
}

/// `zetl run` stops with `needles` in its error, `zetl check` marks table t's stored position,
/// and `zetl resync --all` then brings table t level with the source again.
fn gap_stops_then_resync_recovers(env: &DynEnv, cfg: &std::path::Path, needles: &[&str]) {
    let path = cfg.to_str().expect("utf-8");
    let out = zetl_command_with(&["run", "-c", path], TIMEOUT, &CREDENTIALS).expect("run finished");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(needles.iter().all(|n| err.contains(n)), "expected {needles:?} in:\n{err}");
    let out = zetl_command_with(&["check", "-c", path], TIMEOUT, &CREDENTIALS).expect("check finished");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("✗ table t stored position"), "{text}");
    let out = zetl_command_with(&["resync", "--all", "-c", path], TIMEOUT, &CREDENTIALS).expect("resync finished");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.driver(&["mutate", "t"]);
    let zetl = env.run_zetl(cfg);
    env.catch_up_and_stop(zetl, cfg, &["t"]);
    env.assert_equal("t");
}

#[test]
fn tables_and_endpoints_zetl_cannot_use_are_refused_clearly() {
    let env = DynEnv::start("dyn_errors");
    env.driver(&["create", "nostream", "none"]);
    env.driver(&["create", "keysonly", "KEYS_ONLY"]);
    let run = |table: &str, environment: &[(&str, &str)]| {
        let cfg = env.config("dynerr", &[table]).write();
        let out = zetl_command_with(&["run", "-c", cfg.to_str().expect("utf-8")], TIMEOUT, environment)
            .unwrap_or_else(|_| panic!("zetl run did not finish for {table}"));
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run("nostream", &CREDENTIALS);
    assert!(
        err.contains("DynamoDB table nostream: has no stream")
            && err.contains("--stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"),
        "{err}"
    );
    let err = run("keysonly", &CREDENTIALS);
    assert!(err.contains("its stream has view type KEYS_ONLY; zetl needs NEW_AND_OLD_IMAGES"), "{err}");
    let err = run("missing", &CREDENTIALS);
    assert!(err.contains("DynamoDB table missing: no such table at http://127.0.0.1"), "{err}");

    // Nothing listens on the endpoint.
    let closed = format!("http://127.0.0.1:{}", zetl_testkit::free_port());
    let cfg = env.config("dynerr", &["t"]).source("endpoint_url", closed.clone()).write_to("closed.yaml");
    let out = zetl_command_with(&["run", "-c", cfg.to_str().expect("utf-8")], TIMEOUT, &CREDENTIALS).expect("finished");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("listing tables at {closed}")), "{err}");

    // No credentials anywhere in the chain.
    let none = [
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_PROFILE", ""),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
        ("AWS_CONFIG_FILE", "/nonexistent/config"),
    ];
    let err = run("keysonly", &none);
    assert!(err.contains("credentials"), "{err}");

    // `zetl check` says the same, one line per table, and fails.
    let cfg = env.config("dyncheck", &["nostream", "keysonly"]).write();
    let out = zetl_command_with(&["check", "-c", cfg.to_str().expect("utf-8")], TIMEOUT, &CREDENTIALS).expect("check");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(common::EXIT_CHECK_CODE), "{text}");
    assert!(text.contains("✗ table nostream") && text.contains("✗ table keysonly"), "{text}");
}

/// The shards open when the seed began are noted in the position before the Scan: if they are
/// still unread about a day later (the stream keeps records 24 hours), or gone from the
/// stream, zetl stops asking for a resync instead of reading a trimmed stream as if whole.
#[test]
fn a_stream_that_may_have_trimmed_changes_since_the_seed_is_a_clear_stop() {
    let env = DynEnv::start("dyn_retention");
    env.driver(&["create", "t"]);
    env.driver(&["fill", "t", "0", "20"]);
    let cfg = env.config("dyn", &["t"]).write();
    let zetl = env.run_zetl(&cfg);
    env.catch_up_and_stop(zetl, &cfg, &["t"]);
    env.assert_equal("t");
    let position = env.target_value("SELECT position FROM _zetl.checkpoints").expect("a position");
    assert!(!position.contains("\"open\""), "the shard was read, so none is still open: {position}");

    // As if the seed had ended 25 hours ago and its shard had not been read since.
    let began = zetl_core::pipeline::now_us() - 25 * 3600 * 1_000_000;
    env.target_sql(&format!(
        "UPDATE _zetl.checkpoints SET position = replace(regexp_replace(position, '\\{{\"after\":\"[0-9]+\"\\}}', '\"open\"', 'g'), \
         '\"shards\":', '\"copy_began_us\":{began},\"shards\":')"
    ));
    gap_stops_then_resync_recovers(&env, &cfg, &["the copy began 25.0 hours ago", "zetl resync"]);
}

/// A table that leaves the filters is no longer followed; when it comes back it is seeded again
/// instead of resuming a copy that missed every change in between.
#[test]
fn a_table_excluded_then_included_again_is_seeded_again() {
    let env = DynEnv::start("dyn_toggle");
    env.driver(&["create", "t"]);
    env.driver(&["create", "u"]);
    env.driver(&["fill", "t", "0", "10"]);
    env.driver(&["fill", "u", "0", "10"]);
    let both = env.config("toggle", &["t", "u"]).write();
    let zetl = env.run_zetl(&both);
    env.catch_up_and_stop(zetl, &both, &["t", "u"]);

    let only_t = env.config("toggle", &["t"]).write();
    let zetl = env.run_zetl(&only_t);
    env.driver(&["mutate", "u"]);
    env.catch_up_and_stop(zetl, &only_t, &["t"]);

    let both = env.config("toggle", &["t", "u"]).write();
    let zetl = env.run_zetl(&both);
    env.catch_up_and_stop(zetl, &both, &["t", "u"]);
    env.assert_equal("t");
    env.assert_equal("u");
}

/// `zetl resync t` on a running integration seeds t again beside u's stream: u's changes keep
/// arriving while t is scanned (how long each took is printed), readers of t see its old copy,
/// unchanged, until the new one replaces it whole — caught up, never going back to older values
/// while t's stream is read again from where the seed began — a kill -9 mid-seed continues
/// after the pages committed, and both tables end equal to DynamoDB, rows the target had lost
/// included.
#[test]
fn a_resync_seeds_beside_the_other_streams_and_continues_after_kill_9() {
    const ITEMS: f64 = 3000.0;
    let env = DynEnv::start("dyn_reseed");
    for (table, items) in [("t", "3000"), ("u", "10")] {
        env.driver(&["create", table]);
        env.driver(&["fill", table, "0", items]);
    }
    let target = common::PgServer::start(common::PgOptions::default()).expect("start the target PostgreSQL");
    let port = zetl_testkit::free_port();
    let cfg = env
        .config("reseed", &["t", "u"])
        // 10 items a page, 15 pages a second (moto counts a Scan page as one unit): a Scan of t
        // takes 20 s at least.
        .source("scan", yaml("{ segments: 2, page_items: 10, read_units_per_second: 15 }"))
        .target(map([("kind", "postgres".into()), ("url", target.url(common::DB).into())]))
        .set("metrics", map([("listen", format!("127.0.0.1:{port}").into())]))
        .write();
    let path = cfg.to_str().expect("utf-8");
    let read = |sql: &str| target.psql(common::DB, sql).expect("read the target").trim().to_string();
    let holds = |table: &str, n: u64| read(&DynEnv::sync_count(table, n)) == "1";
    let log = || std::fs::read_to_string(env.log_path()).unwrap_or_default();
    let seeded = || log().matches("table copied while streaming table=t").count();
    let t_rows = || common::copied_rows_of_table(port, "reseed", "dynamodb.t");

    let mut zetl = env.run_zetl(&cfg);
    let first = env.next_sync();
    env.driver(&["sync", "t", &first.to_string()]);
    env.driver(&["sync", "u", &first.to_string()]);
    common::wait_for("the first sentinels", &mut zetl, || holds("t", first) && holds("u", first));
    // Rows only a new copy brings back; a view stands for what readers built on the table.
    read(
        "DELETE FROM dynamodb.t WHERE pk IN (SELECT pk FROM dynamodb.t WHERE pk <> 'sync' ORDER BY pk LIMIT 40); \
          CREATE VIEW dynamodb.t_seen AS SELECT * FROM dynamodb.t",
    );
    let old_copy = "SELECT count(*) || ' ' || md5(string_agg(item::text, ',' ORDER BY pk, sk)) FROM dynamodb.t_seen";

    let mut load = [churn(&env, "t", 15, 3), churn(&env, "u", 15, 4)];
    let out = zetl_command_with(&["resync", "-c", path, "dynamodb.t"], TIMEOUT, &CREDENTIALS).expect("resync finished");
    assert!(String::from_utf8_lossy(&out.stdout).contains("resync queued"), "{}", String::from_utf8_lossy(&out.stderr));
    common::wait_for("30 % of the new copy", &mut zetl, || t_rows() >= ITEMS * 1.3);
    let frozen = read(old_copy);
    assert_eq!(read("SELECT to_regclass('dynamodb._zetl_fill_t') IS NOT NULL"), "t", "t is not filled aside");
    let u_streams = |zetl: &mut common::Zetl, when: &str| {
        let (began, sentinel) = (std::time::Instant::now(), env.next_sync());
        env.driver(&["sync", "u", &sentinel.to_string()]);
        common::wait_for("u's change", zetl, || holds("u", sentinel));
        assert_eq!(seeded(), 0, "u's change {when} arrived only once t was seeded:\n{}", log());
        eprintln!("dynamodb resync: a change to u {when} arrived in {:.1} s", began.elapsed().as_secs_f64());
    };
    u_streams(&mut zetl, "during t's seed");
    assert_eq!(read(old_copy), frozen, "readers saw t change during its seed");
    common::wait_for("40 % of the new copy", &mut zetl, || t_rows() >= ITEMS * 1.4);
    zetl.kill9();

    let mut zetl = env.run_zetl(&cfg);
    common::wait_for("the seed to continue", &mut zetl, || {
        log().contains("the copy made while streaming continues after the rows committed table=t")
    });
    u_streams(&mut zetl, "during t's continued seed");
    assert_eq!(read(old_copy), frozen, "readers saw t change during its continued seed");
    // The writes (15 s) end before t's Scan can (20 s). Its stream, read again from where the
    // seed began, replays records older than the Scan: they go into the copy before it
    // replaces t, so from the moment it does, readers see t as DynamoDB has it.
    for l in &mut load {
        l.wait().expect("load finished");
    }
    let replaced = "SELECT to_regclass('dynamodb._zetl_fill_t') IS NULL";
    common::wait_for("t's copy to replace it", &mut zetl, || read(replaced) == "t");
    for _ in 0..5 {
        zetl_testkit::compare_dynamo::assert_dynamo_pg_equal(&env.endpoint(), "t", &target.url(common::DB));
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    env.catch_up_and_stop_with(zetl, &cfg, &["t", "u"], |t, n| holds(t, n));
    zetl_testkit::compare_dynamo::assert_dynamo_pg_equal(&env.endpoint(), "t", &target.url(common::DB));
    zetl_testkit::compare_dynamo::assert_dynamo_pg_equal(&env.endpoint(), "u", &target.url(common::DB));
    // The pages committed before the kill were not read again: the restart went on from N
    // items, and N plus what it read is at most t's 3000 items and the first sentinel.
    let logged = |needle: &str| {
        log().lines().find_map(|l| l.split_once(needle)?.1.split_whitespace().next()?.parse::<f64>().ok())
    };
    let continued = logged("continues after the rows committed table=t rows=").expect("the seed continued");
    let rows = logged("table copied while streaming table=t rows=").expect("the seed completed");
    assert!(continued > 0.0 && rows <= ITEMS + 1.0, "{continued} then {rows} items for {ITEMS}\n{}", log());
}

/// `snapshot: resync`: the table is seeded again at every start, beside the stream, so rows
/// the target lost while zetl was stopped come back; a table under `initial` is not seeded again.
#[test]
fn a_snapshot_resync_table_is_seeded_again_at_every_start() {
    let env = DynEnv::start("dyn_every_start");
    for table in ["t", "u"] {
        env.driver(&["create", table]);
        env.driver(&["fill", table, "0", "50"]);
    }
    let cfg = env.config("everystart", &["t", "u"]).snapshot_modes(&[("dynamodb.t", "resync")]).write();
    let zetl = env.run_zetl(&cfg);
    env.catch_up_and_stop(zetl, &cfg, &["t", "u"]);
    env.assert_equal("t");
    env.target_sql("DELETE FROM dynamodb.t WHERE pk <> 'sync'");

    let zetl = env.run_zetl(&cfg);
    env.driver(&["mutate", "t"]);
    env.catch_up_and_stop(zetl, &cfg, &["t", "u"]);
    env.assert_equal("t");
    env.assert_equal("u");
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    // Once per start (catching up may take more than one run).
    assert!(log.contains("copying the table while streaming table=t"), "{log}");
    assert!(!log.contains("copying the table while streaming table=u"), "{log}");
}

/// A table created while zetl streams that matches the filters is seeded beside the other
/// table's stream and followed from then on, without a restart.
#[test]
fn a_table_created_while_streaming_is_seeded_and_followed() {
    let env = DynEnv::start("dyn_created");
    env.driver(&["create", "t"]);
    env.driver(&["fill", "t", "0", "20"]);
    let cfg = env.config("created", &["t", "late*"]).write();
    let log = || std::fs::read_to_string(env.log_path()).unwrap_or_default();
    let mut zetl = env.run_zetl(&cfg);
    common::wait_for("the streams", &mut zetl, || log().contains("following the streams"));
    env.driver(&["create", "late1"]);
    env.driver(&["fill", "late1", "0", "30"]);
    common::wait_for("late1's seed", &mut zetl, || log().contains("table copied while streaming table=late1"));
    env.driver(&["mutate", "late1"]);
    env.driver(&["mutate", "t"]);
    env.catch_up_and_stop(zetl, &cfg, &["t", "late1"]);
    env.assert_equal("t");
    env.assert_equal("late1");
    assert!(log().contains("a new table matches the filters table=late1"), "{}", log());
}
