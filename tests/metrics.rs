//! The HTTP endpoint: Prometheus metrics during a real replication, health and readiness.

use crate::common;
use common::config::map;

use common::{http_get as get, metric_sample as sample, poll, TestEnv, TIMEOUT};
use std::net::TcpStream;

#[test]
fn metrics_move_with_the_replication_and_lag_returns_to_zero() {
    let env = TestEnv::start("metrics");
    env.sql("CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' FROM generate_series(1, 300) g");
    let port = zetl_testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let metrics = map([("listen", listen.into()), ("ready_max_lag_seconds", 30.into())]);
    let cfg = env.config("metrics", &["public.*"]).set("metrics", metrics).write();
    let mut zetl = env.run_zetl(&cfg);
    assert!(poll(TIMEOUT, || TcpStream::connect(("127.0.0.1", port)).is_ok()), "the endpoint never listened");
    assert_eq!(get(port, "/healthz").0, 200);

    env.wait_caught_up(&mut zetl, "metrics");
    let (_, before) = get(port, "/metrics");
    let copied = sample(&before, "zetl_snapshot_rows_total{integration=\"metrics\",table=\"public.items\"}");
    assert_eq!(copied, Some(300.0), "{before}");
    assert_eq!(sample(&before, "zetl_phase{integration=\"metrics\",phase=\"streaming\"}"), Some(1.0), "{before}");

    env.sql("INSERT INTO items SELECT g, 'w' FROM generate_series(301, 350) g; UPDATE items SET v = 'u' WHERE id <= 10; DELETE FROM items WHERE id = 11");
    env.wait_caught_up(&mut zetl, "metrics");
    let (status, after) = get(port, "/metrics");
    assert_eq!(status, 200);
    let series =
        |op: &str| format!("zetl_changes_applied_total{{integration=\"metrics\",table=\"public.items\",op=\"{op}\"}}");
    assert_eq!(sample(&after, &series("insert")), Some(50.0), "{after}");
    assert_eq!(sample(&after, &series("update")), Some(10.0), "{after}");
    assert_eq!(sample(&after, &series("delete")), Some(1.0), "{after}");
    assert!(
        sample(&after, "zetl_transactions_applied_total{integration=\"metrics\"}").unwrap_or(0.0) >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "zetl_apply_duration_seconds_count{integration=\"metrics\"}").unwrap_or(0.0) >= 1.0,
        "{after}"
    );
    assert!(sample(&after, "zetl_source_retained_bytes{integration=\"metrics\"}").is_some(), "{after}");
    // Caught up, and idle: no lag, and ready.
    assert_eq!(sample(&after, "zetl_lag_seconds{integration=\"metrics\"}"), Some(0.0), "{after}");
    let (ready, body) = get(port, "/readyz");
    assert_eq!(ready, 200, "{body}");
    assert_eq!(get(port, "/nope").0, 404);
    // While zetl holds the DuckDB file, `status` reads the running process's endpoint.
    let out = common::zetl_command(&["status", "-c", cfg.to_str().expect("utf-8 path"), "--json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"running\":{") && json.contains("\"phase\":\"streaming\""), "{json}");
    zetl.stop();
    env.assert_equal(&["public.items"]);
    // Stopped: `status` reads the target's _zetl schema and the source's position.
    let out = common::zetl_command(&["status", "-c", cfg.to_str().expect("utf-8 path"), "--json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{json}");
    for field in ["\"phase\":\"streaming\"", "\"running\":null", "\"table\":\"items\"", "\"lag_bytes\":"] {
        assert!(json.contains(field), "{field} missing in {json}");
    }
    assert!(!json.contains("\"target_position\":null"), "{json}");
}

/// `zetl status` beside a running copy (the DuckDB file locked) shows each table being copied,
/// with its rows so far and the source's estimate, from the metrics endpoint.
#[test]
fn status_shows_the_tables_being_copied() {
    let env = TestEnv::start("status_copy");
    env.big_table(2_000_000);
    let port = zetl_testkit::free_port();
    let metrics = map([("listen", format!("127.0.0.1:{port}").into())]);
    let cfg = env.config("status_copy", &["public.*"]).set("metrics", metrics).write();
    let cfg_s = cfg.to_str().expect("utf-8 path");
    let mut zetl = env.run_zetl(&cfg);
    let mut seen = None;
    // A rate shows once the copy has run a second.
    common::wait_for("zetl status to show the copy of public.big with its rate", &mut zetl, || {
        let out = common::zetl_command(&["status", "--json", "-c", cfg_s]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let copies = status["running"]["copies"].as_array().cloned().unwrap_or_default();
        seen = copies.into_iter().find(|c| c["table"] == "public.big" && c["rows_per_second"].as_f64().is_some());
        seen.is_some()
    });
    let copy = seen.expect("seen");
    let estimated = copy["rows_estimated"].as_u64().expect("an estimate");
    assert!((1_800_000..=2_200_000).contains(&estimated), "estimate {estimated} for 2000000 rows: {copy}");
    let rows = copy["rows_copied"].as_u64().expect("rows copied");
    assert!(rows <= 2_000_000, "{copy}");
    let rate = copy["rows_per_second"].as_f64().expect("a rate");
    assert!(rate > 0.0, "{copy}");
    if rows < estimated {
        let eta = copy["eta_seconds"].as_f64().expect("an ETA while rows are left");
        assert!((eta - (estimated - rows) as f64 / rate).abs() <= 1.0, "ETA is what is left at the rate: {copy}");
    }
    zetl.stop();
}

/// A resync of a big keyed table fills it in chunks between stretches of the stream: the other
/// tables' transactions keep being applied while the copy runs (before, none were until it
/// ended), and the whole target still equals the source.
#[test]
fn a_resync_leaves_the_other_tables_streaming() {
    let env = TestEnv::start("resync_streams");
    env.big_table(1_000_000);
    env.sql("CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())");
    let port = zetl_testkit::free_port();
    let metrics = map([("listen", format!("127.0.0.1:{port}").into())]);
    let cfg = env.config("resync_streams", &["public.*"]).set("metrics", metrics).write();
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "resync_streams");
    let during = during_resync(port, "resync_streams", &cfg, "public.big", &env.log_path(), || {
        env.sql("INSERT INTO ticks DEFAULT VALUES; UPDATE big SET pad = 'y' WHERE id = 1 + (random() * 999999)::int");
    });
    println!("during the resync: {} transactions applied, lag at most {} s", during.applied, during.most_lag);
    assert!(
        during.applied >= 5,
        "only {} transactions were applied while the copy ran: it held the stream",
        during.applied
    );
    env.wait_caught_up(&mut zetl, "resync_streams");
    zetl.stop();
    env.assert_equal(&["public.big", "public.ticks"]);
}

/// A table without a key is copied in one piece, which holds the stream (PostgreSQL reads no
/// WAL meanwhile): writes to the other tables are lag, and `zetl_lag_seconds` counts it
/// instead of reporting the last batch's.
#[test]
fn lag_counts_the_stream_held_by_a_resync() {
    let env = TestEnv::start("resync_lag");
    env.sql(
        "CREATE TABLE big (id int, pad text); \
         INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 2000000) g; ANALYZE big",
    );
    env.sql("CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())");
    let port = zetl_testkit::free_port();
    let metrics = map([("listen", format!("127.0.0.1:{port}").into())]);
    let cfg = env.config("resync_lag", &["public.*"]).set("metrics", metrics).write();
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "resync_lag");
    let during = during_resync(port, "resync_lag", &cfg, "public.big", &env.log_path(), || {
        env.sql("INSERT INTO ticks DEFAULT VALUES");
    });
    // The copy of 2M rows takes seconds; a tick written every 50 ms waits all of it.
    let most = during.most_lag;
    assert!(most >= 1.0, "zetl_lag_seconds stayed at {most} s while the stream waited for the copy");
    env.wait_caught_up(&mut zetl, "resync_lag");
    zetl.stop();
    env.assert_equal(&["public.big", "public.ticks"]);
}

/// The same for MariaDB, whose binlog connection is closed while a copy in one piece runs (a
/// table without a primary key: one with a key is filled beside the stream, chunk by chunk).
#[test]
fn mariadb_lag_counts_the_stream_held_by_a_resync() {
    let env = common::mysql::MyEnv::start("my_resync_lag");
    env.sql(
        "CREATE TABLE big (id varchar(12) NOT NULL, pad varchar(100)); \
         INSERT INTO big SELECT CONCAT('k', seq), repeat('x', 100) FROM seq_1_to_2000000; \
         CREATE TABLE ticks (id int AUTO_INCREMENT PRIMARY KEY, at datetime(6) DEFAULT now(6))",
    );
    let port = zetl_testkit::free_port();
    let metrics = map([("listen", format!("127.0.0.1:{port}").into())]);
    let cfg = env.config("my_resync_lag").set("metrics", metrics).write();
    let zetl = env.run_zetl_streaming(&cfg);
    let most = during_resync(port, "my_resync_lag", &cfg, "shop.big", &env.log_path(), || {
        env.sql("INSERT INTO ticks () VALUES ()");
    })
    .most_lag;
    eprintln!("mariadb: lag at most {most:.1} s while the binlog waited for a 2M-row copy in one piece");
    assert!(most >= 1.0, "zetl_lag_seconds stayed at {most} s while the binlog waited for the copy");
    env.catch_up_and_stop(zetl, &cfg);
    env.assert_equal(&["shop.big", "shop.ticks"]);
}

/// What was seen while a resync ran.
struct DuringResync {
    /// The largest `zetl_lag_seconds`.
    most_lag: f64,
    /// Source transactions applied between the first and the last look that found it running.
    applied: u64,
}

/// Asks the running zetl to copy `table` again and, once the copy is under way (nothing
/// received before it is pending then), runs `write` every 50 ms until it ends.
fn during_resync(
    port: u16,
    integration: &str,
    cfg: &std::path::Path,
    table: &str,
    log: &std::path::Path,
    write: impl Fn() + Sync,
) -> DuringResync {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let (stop, under_way) = (AtomicBool::new(false), AtomicBool::new(false));
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Relaxed) {
                if under_way.load(Relaxed) {
                    write();
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        let out = common::zetl_command(&["resync", "-c", cfg.to_str().expect("utf-8 path"), table]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let copying = format!("zetl_table_copying{{integration=\"{integration}\",table=\"{table}\"}}");
        let lag = format!("zetl_lag_seconds{{integration=\"{integration}\"}}");
        let applied = format!("zetl_transactions_applied_total{{integration=\"{integration}\"}}");
        let copied = format!("table copied while streaming table={table} ");
        let (mut most, mut first, mut last) = (0.0f64, None, 0.0);
        // Generous: beside the other tests, a debug build fills slowly.
        let done = poll(TIMEOUT * 4, || {
            let (_, text) = get(port, "/metrics");
            // Only while the copy runs: the catch-up after it shows the lag anyway.
            if sample(&text, &copying).is_some() {
                under_way.store(true, Relaxed);
                most = most.max(sample(&text, &lag).unwrap_or(0.0));
                last = sample(&text, &applied).unwrap_or(0.0);
                first.get_or_insert(last);
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            std::fs::read_to_string(log).is_ok_and(|l| l.contains(&copied)) && sample(&text, &copying).is_none()
        });
        stop.store(true, Relaxed);
        assert!(done, "the resync of {table} did not end");
        DuringResync { most_lag: most, applied: (last - first.unwrap_or(last)) as u64 }
    })
}

/// The environment that runs zetl with its clock `shift`ed (`+30s`): libfaketime preloaded
/// into zetl itself (the `faketime` program would stand between it and its signals), the
/// multi-threaded build, monotonic time left alone.
fn faked_clock(shift: &str) -> [(&str, &str); 3] {
    [
        ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"),
        ("FAKETIME", shift),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]
}

/// The most lag `integration` reported while `tick(i)` ran 30 times, 100 ms apart (caught
/// up), and in the 20 s after `big` (a 1M-row transaction to apply).
fn lag_caught_up_and_behind(port: u16, integration: &str, tick: impl Fn(u32), big: impl FnOnce()) -> (f64, f64) {
    let mut idle: f64 = 0.0;
    for i in 0..30 {
        tick(i);
        idle = idle.max(lag_now(port, integration));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    big();
    (idle, most_lag(port, integration, std::time::Duration::from_secs(20)))
}

/// `zetl_lag_seconds` of `integration` now (-1 when it cannot be read).
fn lag_now(port: u16, integration: &str) -> f64 {
    let series = format!("zetl_lag_seconds{{integration=\"{integration}\"}}");
    sample(&get(port, "/metrics").1, &series).unwrap_or(-1.0)
}

/// The most lag `integration` reports in `window`, looked at every 100 ms.
fn most_lag(port: u16, integration: &str, window: std::time::Duration) -> f64 {
    let mut most: f64 = 0.0;
    let started = std::time::Instant::now();
    while started.elapsed() < window {
        most = most.max(lag_now(port, integration));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    most
}

/// The source's clock and zetl's 30 s apart each way (zetl run under libfaketime): lag is
/// measured on the source's clock. Under a ticker, caught up, zetl must not report the skew as
/// lag (the source behind); with a large transaction being applied it must report the lag it
/// has (the source ahead would hide it). The log says how far the clocks are apart.
#[test]
fn lag_is_measured_on_the_sources_clock() {
    let env = TestEnv::start("skew");
    env.sql("CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())");
    for shift in ["+30s", "-30s"] {
        let port = zetl_testkit::free_port();
        let cfg =
            env.config("skew", &["public.*"]).set("metrics", map([("listen", format!("127.0.0.1:{port}").into())]));
        let cfg = cfg.write();
        let mut zetl = common::Zetl::spawn_with(&cfg, &env.log_path(), &faked_clock(shift));
        env.wait_caught_up(&mut zetl, "skew");
        let (idle, behind) = lag_caught_up_and_behind(
            port,
            "skew",
            |_| {
                env.sql("INSERT INTO ticks DEFAULT VALUES");
            },
            || {
                env.sql("INSERT INTO ticks (at) SELECT now() FROM generate_series(1, 1000000)");
            },
        );
        env.wait_caught_up(&mut zetl, "skew");
        zetl.stop();
        eprintln!(
            "zetl's clock {shift}: lag at most {idle:.1} s caught up, {behind:.1} s applying a 1M-row transaction"
        );
        assert!(idle < 5.0, "zetl's clock {shift}: the skew was reported as lag ({idle} s)");
        assert!(behind >= 2.0, "zetl's clock {shift}: the lag of a 1M-row transaction was hidden ({behind} s)");
    }
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(log.contains("the source's clock and this machine's differ"), "{log}");
    env.assert_equal(&["public.ticks"]);
}

/// The same for MariaDB, zetl's clock 30 s ahead: the server's clock is read every tick (the
/// binlog carries none), so caught up there is no lag, and a large transaction's lag shows.
#[test]
fn mariadb_lag_is_measured_on_the_servers_clock() {
    let env = common::mysql::MyEnv::start("skew_my");
    env.sql("CREATE TABLE ticks (id int AUTO_INCREMENT PRIMARY KEY, n int)");
    let port = zetl_testkit::free_port();
    let cfg = env.config("skew_my").set("metrics", map([("listen", format!("127.0.0.1:{port}").into())])).write();
    let zetl = env.wait_streaming(|| common::Zetl::spawn_with(&cfg, &env.log_path(), &faked_clock("+30s")));
    let (idle, behind) = lag_caught_up_and_behind(
        port,
        "skew_my",
        |i| {
            env.sql(&format!("INSERT INTO ticks (n) VALUES ({i})"));
        },
        || {
            env.sql("INSERT INTO ticks (n) SELECT seq FROM seq_1_to_1000000");
        },
    );
    // A transaction left open 8 s before its last statement and commit: its rows events keep
    // the times their statements started, but its lag counts from its commit.
    env.sql("BEGIN; INSERT INTO ticks (n) VALUES (-1); DO SLEEP(8); INSERT INTO ticks (n) SELECT seq FROM seq_1_to_300000; COMMIT");
    let held = most_lag(port, "skew_my", std::time::Duration::from_secs(5));
    env.catch_up_and_stop(zetl, &cfg);
    eprintln!(
        "mariadb, zetl's clock +30s: lag at most {idle:.1} s caught up, {behind:.1} s applying a 1M-row transaction, \
         {held:.1} s applying a transaction held open 8 s"
    );
    assert!(idle < 5.0, "the skew was reported as lag ({idle} s)");
    assert!(behind >= 2.0, "the lag of a 1M-row transaction was hidden ({behind} s)");
    assert!(held < 6.0, "a transaction held open 8 s before its commit was reported {held} s behind");
    env.assert_equal(&[&format!("{}.ticks", common::mysql::MY_DB)]);
}

/// The same for DynamoDB, zetl's clock 30 s ahead: each Streams answer's `Date` tells the
/// service's clock, which stamps the records, so caught up there is no lag.
#[cfg(feature = "dynamodb")]
#[test]
fn dynamodb_lag_is_measured_on_the_services_clock() {
    use common::dynamo::{DynEnv, CREDENTIALS};
    let env = DynEnv::start("skew_dyn");
    env.driver(&["create", "t"]);
    let port = zetl_testkit::free_port();
    let cfg = env.config("skew_dyn", &["t"]).set("metrics", map([("listen", format!("127.0.0.1:{port}").into())]));
    let cfg = cfg.write();
    let mut zetl_env: Vec<(&str, &str)> = faked_clock("+30s").to_vec();
    zetl_env.extend(CREDENTIALS);
    let mut zetl = common::Zetl::spawn_with(&cfg, &env.log_path(), &zetl_env);
    let following = || std::fs::read_to_string(env.log_path()).unwrap_or_default().contains("following the streams");
    common::wait_for("zetl to follow the stream", &mut zetl, following);
    let (idle, _) =
        lag_caught_up_and_behind(port, "skew_dyn", |i| drop(env.driver(&["sync", "t", &i.to_string()])), || {});
    env.catch_up_and_stop(zetl, &cfg, &["t"]);
    eprintln!("dynamodb, zetl's clock +30s: lag at most {idle:.1} s caught up");
    assert!(idle < 5.0, "the skew was reported as lag ({idle} s)");
    env.assert_equal("t");
}
