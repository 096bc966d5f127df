//! The soak: zetl killed with SIGKILL at random moments (during the initial copy, while it
//! catches up, mid-batch, mid-commit, inside large transactions) under a real workload, for
//! `SOAK_CYCLES` cycles (10 by default: the short form the test run includes;
//! `scripts/soak.sh` runs 100). Then the workload stops, zetl catches up, and the whole target
//! must equal the whole source. Each combination prints one `soak:` line of figures.

use crate::common;
use crate::mysql_recovery::sysbench;
#[cfg(feature = "dynamodb")]
use common::dynamo::DynEnv;
use common::mysql::MyEnv;
use common::warehouse::pg_target_config;
use common::{zetl_command, Env, PgOptions, PgServer, Rng, StopOnDrop, TestEnv, Zetl, DB};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zetl_testkit::compare_pg::assert_pg_tables_equal;

fn cycles() -> usize {
    std::env::var("SOAK_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(10)
}

/// What one combination went through.
#[derive(Default)]
struct Figures {
    kills: usize,
    /// `zetl resync` requests made while it ran (some cut short by the next kill).
    resyncs: usize,
    /// Restarts that caught up (`/readyz`: streaming, lag ≤ 1 s) before the next kill, and
    /// how long that took.
    catch_ups: Vec<Duration>,
    peak_rss_kb: u64,
}

impl Figures {
    fn print(&mut self, combination: &str, written: &str) {
        self.catch_ups.sort();
        let median = self.catch_ups.get(self.catch_ups.len() / 2).copied().unwrap_or_default();
        let max = self.catch_ups.last().copied().unwrap_or_default();
        eprintln!(
            "soak: {combination}: cycles={} resyncs={} written={written} equal=yes \
             caught_up_before_next_kill={} catch_up_median_s={:.2} catch_up_max_s={:.2} peak_rss_mib={}",
            self.kills,
            self.resyncs,
            self.catch_ups.len(),
            median.as_secs_f64(),
            max.as_secs_f64(),
            self.peak_rss_kb / 1024
        );
    }
}

fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = write!(s, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

/// `cycles` times: start zetl, let it run a random 0.3–6 s (noting when `/readyz` first says
/// it caught up), SIGKILL it; in every third cycle, once it caught up, `zetl resync` of
/// `resync` (if given) first, so that some kills land in a copy made while streaming. Returns zetl
/// started once more.
fn kill_cycles<S: common::Server>(
    env: &Env<S>,
    config: &Path,
    port: u16,
    resync: Option<&str>,
    figures: &mut Figures,
) -> Zetl {
    let mut rng = Rng::from_env_or_clock();
    let file = config.to_str().expect("utf-8 path");
    for cycle in 0..cycles() {
        let zetl = env.run_zetl(config);
        let started = Instant::now();
        let run_for = Duration::from_millis(rng.range(300, 6000));
        let mut caught_up = None;
        while started.elapsed() < run_for {
            if caught_up.is_none() && ready(port) {
                caught_up = Some(started.elapsed());
                if let Some(resync) = resync.filter(|_| cycle % 3 == 1) {
                    let out = zetl_command(&["resync", "-c", file, resync]);
                    assert_eq!(out.status.code(), Some(0), "zetl resync: {}", String::from_utf8_lossy(&out.stderr));
                    figures.resyncs += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        figures.catch_ups.extend(caught_up);
        figures.peak_rss_kb = figures.peak_rss_kb.max(common::peak_rss_kb(zetl.pid()));
        zetl.kill9();
        figures.kills += 1;
    }
    env.run_zetl(config)
}

fn with_metrics(config: common::config::TestConfig, port: u16) -> common::config::TestConfig {
    let metrics =
        common::config::map([("listen", format!("127.0.0.1:{port}").into()), ("ready_max_lag_seconds", 1.0.into())]);
    config.set("metrics", metrics)
}

/// pgbench TPC-B (4 clients) until stopped, beside a table of many types changed in small
/// and large transactions (the large ones stream from the server in parts).
struct PgWorkload {
    pgbench: Child,
}

const ZOO: &str = "CREATE TABLE zoo (id int PRIMARY KEY, n numeric(20,6), f float8, t text, ts timestamptz, \
                   j jsonb, b bytea, u uuid, a int[]);\n\
                   INSERT INTO zoo SELECT g, g / 7.0, g * 1.5e-3, repeat('z', g % 50), \
                   '2026-01-01'::timestamptz + g * interval '1 minute', jsonb_build_object('g', g), \
                   decode(md5(g::text), 'hex'), md5(g::text)::uuid, ARRAY[g, -g] FROM generate_series(1, 20000) g;";

impl PgWorkload {
    fn start(env: &TestEnv) -> PgWorkload {
        let init = Command::new("pgbench").args(["-i", "-q", "-s", "1"]).arg(env.url()).output().expect("pgbench");
        assert!(init.status.success(), "pgbench -i: {}", String::from_utf8_lossy(&init.stderr));
        env.sql(ZOO);
        let pgbench = Command::new("pgbench")
            .args(["-n", "-c", "4", "-j", "2", "-T", "3600"])
            .arg(env.url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbench");
        PgWorkload { pgbench }
    }

    /// Changes to `zoo` until `stop`: small transactions, and every tenth one large.
    fn zoo(env: &TestEnv, stop: &AtomicBool) {
        let mut rng = Rng::from_env_or_clock();
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            round += 1;
            let k = rng.range(1, 20_000);
            let sql = if round.is_multiple_of(10) {
                format!(
                    "UPDATE zoo SET n = n + 1, j = j || '{{\"r\": {round}}}', a = a || {round} WHERE id % 3 = {}",
                    k % 3
                )
            } else {
                format!(
                    "BEGIN; UPDATE zoo SET t = t || 'x', f = f * 2, ts = ts + interval '1 second' WHERE id BETWEEN {k} AND {k} + 20;\n\
                     DELETE FROM zoo WHERE id = {k} + 30;\n\
                     INSERT INTO zoo VALUES ({k} + 30, -1.5, 1e300, 'back', now(), '[1, {{\"a\": null}}]', '\\x00ff', gen_random_uuid(), '{{}}');\n\
                     COMMIT;"
                )
            };
            env.sql(&sql);
        }
    }

    fn stop(mut self) {
        // Killed: the server rolls back the transactions its clients had open. (Not SIGINT: a
        // run started in the background by a non-interactive shell inherits SIGINT ignored,
        // and pgbench then never ends.)
        let _ = self.pgbench.kill();
        let _ = self.pgbench.wait();
    }
}

const PGBENCH: [&str; 4] = ["pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"];

fn soak_postgres(env: &TestEnv, config: &Path, port: u16, integration: &str) -> Figures {
    let workload = PgWorkload::start(env);
    let stop = AtomicBool::new(false);
    let mut figures = Figures::default();
    let mut zetl = std::thread::scope(|s| {
        // A failed cycle stops the zoo too: the scope would otherwise wait for it for good.
        let _stop = StopOnDrop(&stop);
        let zoo = s.spawn(|| PgWorkload::zoo(env, &stop));
        let zetl = kill_cycles(env, config, port, Some("public.pgbench_accounts"), &mut figures);
        stop.store(true, Ordering::Relaxed);
        zoo.join().expect("zoo workload");
        zetl
    });
    workload.stop();
    // Unthrottled pgbench outruns a debug build: the backlog grows with the cycles (4–4.5
    // minutes of lag, millions of changes, after 100), so the final catch-up gets time in
    // proportion (a minute per five cycles; the 10-cycle test run keeps its two minutes).
    let patience = common::TIMEOUT * u32::try_from(cycles().div_ceil(5)).unwrap_or(1).max(1);
    let caught_up = Instant::now();
    env.wait_caught_up_within(&mut zetl, integration, patience);
    eprintln!("soak: {integration}: caught up {:.0} s after the workload stopped", caught_up.elapsed().as_secs_f64());
    zetl.stop();
    figures
}

/// PostgreSQL streaming transactions of more than 64 kB to zetl in parts, as it does large ones.
fn source(test: &str) -> TestEnv {
    let small_memory = vec![("logical_decoding_work_mem".into(), "64kB".into())];
    TestEnv::start_with(test, PgOptions { extra_conf: small_memory, ..PgOptions::default() })
}

/// pgbench's transactions (one `pgbench_history` row each), and the rest.
fn transactions(env: &TestEnv) -> String {
    format!("{} pgbench transactions and the zoo's", env.sql_value("SELECT count(*) FROM pgbench_history"))
}

#[test]
fn soak_postgres_into_duckdb() {
    let env = source("soak_pg_duckdb");
    let port = zetl_testkit::free_port();
    let config = with_metrics(env.config("soak", &["public.*"]), port).write();
    let mut figures = soak_postgres(&env, &config, port, "soak");
    let mut tables: Vec<String> = PGBENCH.iter().map(|t| format!("public.{t}")).collect();
    tables.push("public.zoo".into());
    env.assert_equal(&tables.iter().map(String::as_str).collect::<Vec<_>>());
    figures.print("PostgreSQL -> DuckDB", &transactions(&env));
}

#[test]
fn soak_postgres_into_postgres() {
    let env = source("soak_pg_pg");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    let port = zetl_testkit::free_port();
    let config = with_metrics(pg_target_config(&env, &target), port).write();
    let mut figures = soak_postgres(&env, &config, port, "topg");
    let pairs: Vec<(String, String)> =
        PGBENCH.iter().chain(&["zoo"]).map(|t| (format!("public.{t}"), format!("mirror.{t}"))).collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_pg_tables_equal(&env.url(), &target.url(DB), &pairs, "");
    figures.print("PostgreSQL -> PostgreSQL", &transactions(&env));
}

/// Into Iceberg tables (a commit every second; the resyncs fill `pgbench_accounts` in place),
/// read back through pyiceberg.
#[test]
fn soak_postgres_into_iceberg() {
    let env = source("soak_pg_lake");
    let port = zetl_testkit::free_port();
    let config = with_metrics(env.config("soak", &["public.*"]).target(crate::iceberg::iceberg_target(&env)), port);
    let mut figures = soak_postgres(&env, &config.write(), port, "soak");
    let tables: Vec<String> = PGBENCH.iter().chain(&["zoo"]).map(|t| format!("public.{t}")).collect();
    let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
    let catalog = env.scratch.path.join("lake").join("catalog.db");
    let reader = zetl_testkit::compare_iceberg::Reader::PyIceberg;
    zetl_testkit::compare_iceberg::assert_iceberg_equal(
        reader,
        &env.url(),
        &catalog,
        "zetl",
        &env.scratch.path,
        &tables,
    );
    figures.print("PostgreSQL -> Iceberg", &transactions(&env));
}

/// sysbench `oltp_write_only` (4 threads) for about as long as the kill cycles take; the
/// resyncs fill `sbtest2`. Returns zetl started once more, and the transactions sysbench wrote.
fn soak_mariadb(env: &MyEnv, config: &Path, port: u16, figures: &mut Figures) -> (Zetl, String) {
    let prepared = sysbench(env, "prepare", &[]).output().expect("run sysbench (scripts/setup.sh installs it)");
    assert!(prepared.status.success(), "sysbench prepare: {}", String::from_utf8_lossy(&prepared.stderr));
    let log = std::fs::File::create(env.scratch.path.join("sysbench.log")).expect("sysbench log");
    let seconds = format!("--time={}", cycles() * 3);
    let mut load = sysbench(env, "run", &["--threads=4", &seconds, "--report-interval=0"])
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .expect("start sysbench");
    let zetl = kill_cycles(env, config, port, Some("shop.sbtest2"), figures);
    assert!(load.wait().expect("wait for sysbench").success(), "sysbench failed");
    // It reports its count when it ends by itself.
    let report = std::fs::read_to_string(env.scratch.path.join("sysbench.log")).unwrap_or_default();
    let written = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("transactions:")?.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    (zetl, format!("{written} transactions"))
}

const SBTEST: [&str; 4] = ["shop.sbtest1", "shop.sbtest2", "shop.sbtest3", "shop.sbtest4"];

#[test]
fn soak_mariadb_into_duckdb() {
    let env = MyEnv::start("soak_my_duckdb");
    let port = zetl_testkit::free_port();
    let config = with_metrics(env.config("soak"), port).write();
    let mut figures = Figures::default();
    let (zetl, written) = soak_mariadb(&env, &config, port, &mut figures);
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&SBTEST);
    figures.print("MariaDB -> DuckDB", &written);
}

#[test]
fn soak_mariadb_into_postgres() {
    let env = MyEnv::start("soak_my_pg");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    let port = zetl_testkit::free_port();
    let settings = common::config::map([("kind", "postgres".into()), ("url", target.url(DB).into())]);
    let config = with_metrics(env.config("soak").target(settings), port).write();
    let mut figures = Figures::default();
    let (zetl, written) = soak_mariadb(&env, &config, port, &mut figures);
    let holds = |n| target.psql(DB, &MyEnv::sync_count(n)).is_ok_and(|count| count.trim() == "1");
    env.catch_up_and_stop_with(zetl, &config, holds);
    let pairs: Vec<(&str, &str)> = SBTEST.iter().map(|t| (*t, *t)).collect();
    zetl_testkit::compare_mysql::assert_mysql_pg_tables_equal(&env.server, &target.url(DB), &pairs);
    figures.print("MariaDB -> PostgreSQL", &written);
}

/// Into Iceberg tables (a commit every second; `sbtest2`'s resyncs filled in place), read
/// back through pyiceberg.
#[test]
fn soak_mariadb_into_iceberg() {
    let env = MyEnv::start("soak_my_lake");
    let port = zetl_testkit::free_port();
    let config = with_metrics(env.config("soak").target(crate::iceberg::iceberg_target(&env)), port).write();
    let mut figures = Figures::default();
    let (zetl, written) = soak_mariadb(&env, &config, port, &mut figures);
    let catalog = env.scratch.path.join("lake").join("catalog.db");
    let sync = format!("{}.{}", common::mysql::MY_DB, common::mysql::SYNC_TABLE);
    env.catch_up_and_stop_with(zetl, &config, |n| crate::iceberg::numbers_in_lake(&catalog, &sync).contains(&n));
    let reader = zetl_testkit::compare_iceberg::Reader::PyIceberg;
    let (duck, _) = zetl_testkit::compare_iceberg::read_lake(reader, &catalog, "zetl", &env.scratch.path, &SBTEST);
    zetl_testkit::compare_mysql::assert_mysql_tables_equal(&env.server, &duck, &SBTEST);
    figures.print("MariaDB -> Iceberg", &written);
}

/// A table of 500 items (small enough that a seed completes within a cycle now and then:
/// moto scans slowly) under a boto3 writer (puts, updates, deletes) for about as long as the
/// kill cycles take; its resyncs seed it again beside its stream. Returns zetl started once
/// more, and what was written.
#[cfg(feature = "dynamodb")]
fn soak_dynamodb(env: &DynEnv, config: &Path, port: u16, figures: &mut Figures) -> (Zetl, String) {
    let seconds = (cycles() * 3).to_string();
    let mut load = Command::new("python3")
        .arg(zetl_testkit::compare_dynamo::script())
        .args([&env.endpoint(), "churn", "t", &seconds, "5"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start the boto3 writer");
    let zetl = kill_cycles(env, config, port, Some("dynamodb.t"), figures);
    assert!(load.wait().expect("wait for the writer").success(), "the boto3 writer failed");
    (zetl, format!("{seconds} s of boto3 churn"))
}

#[cfg(feature = "dynamodb")]
fn dynamodb_source(test: &str) -> DynEnv {
    let env = DynEnv::start(test);
    env.driver(&["create", "t"]);
    env.driver(&["fill", "t", "0", "500"]);
    env
}

#[cfg(feature = "dynamodb")]
#[test]
fn soak_dynamodb_into_duckdb() {
    let env = dynamodb_source("soak_dyn_duckdb");
    let port = zetl_testkit::free_port();
    let config = with_metrics(env.config("soak", &["t"]), port).write();
    let mut figures = Figures::default();
    let (zetl, written) = soak_dynamodb(&env, &config, port, &mut figures);
    env.catch_up_and_stop(zetl, &config, &["t"]);
    env.assert_equal("t");
    figures.print("DynamoDB -> DuckDB", &written);
}

#[cfg(feature = "dynamodb")]
#[test]
fn soak_dynamodb_into_postgres() {
    let env = dynamodb_source("soak_dyn_pg");
    let target = PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    let port = zetl_testkit::free_port();
    let settings = common::config::map([("kind", "postgres".into()), ("url", target.url(DB).into())]);
    let config = with_metrics(env.config("soak", &["t"]).target(settings), port).write();
    let mut figures = Figures::default();
    let (zetl, written) = soak_dynamodb(&env, &config, port, &mut figures);
    let holds = |t: &str, n| target.psql(DB, &DynEnv::sync_count(t, n)).is_ok_and(|count| count.trim() == "1");
    env.catch_up_and_stop_with(zetl, &config, &["t"], holds);
    zetl_testkit::compare_dynamo::assert_dynamo_pg_equal(&env.endpoint(), "t", &target.url(DB));
    figures.print("DynamoDB -> PostgreSQL", &written);
}

/// Into an Iceberg table (a commit every second), read back through pyiceberg.
#[cfg(feature = "dynamodb")]
#[test]
fn soak_dynamodb_into_iceberg() {
    let env = dynamodb_source("soak_dyn_lake");
    let port = zetl_testkit::free_port();
    let config = with_metrics(env.config("soak", &["t"]).target(crate::iceberg::iceberg_target(&env)), port).write();
    let mut figures = Figures::default();
    let (zetl, written) = soak_dynamodb(&env, &config, port, &mut figures);
    let catalog = env.scratch.path.join("lake").join("catalog.db");
    env.catch_up_and_stop_with(zetl, &config, &["t"], |t, n| crate::iceberg::dynamo_sync_in_lake(&catalog, t, n));
    let reader = zetl_testkit::compare_iceberg::Reader::PyIceberg;
    let (duck, _) =
        zetl_testkit::compare_iceberg::read_lake(reader, &catalog, "zetl", &env.scratch.path, &["dynamodb.t"]);
    zetl_testkit::compare_dynamo::assert_dynamo_equal(&env.endpoint(), "t", &duck);
    figures.print("DynamoDB -> Iceberg", &written);
}
