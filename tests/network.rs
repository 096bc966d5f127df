//! Network faults between zetl and its source (PostgreSQL, MariaDB, DynamoDB), made with the kernel's tools: zetl
//! runs in a network namespace and reaches the source over a veth pair that the test cuts
//! (packets silently dropped, as behind a failed link or a blackholing firewall), flaps,
//! slows with `tc`, or loses packets at random (nftables) — during the initial copy and while
//! streaming under a write workload. zetl must notice the dead connection by itself, reconnect, never apply part of a
//! transaction, and end with the whole target equal to the whole source. What the kernel here
//! cannot do is done by a relay in front of the server (`relay`): a fixed delay (no `netem`),
//! and silencing moto (DynamoDB), which binds 127.0.0.1 only.

use crate::common;
use common::mysql::{MyEnv, MY_DB};
use common::netns::Netns;
use common::StopOnDrop;
use common::{PgOptions, TestEnv, Zetl};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use zetl_testkit::MariaDbOptions;

/// The harness's user and password; the connection's dead-peer timing shortened through the
/// URL (seconds) so that a cut is noticed within a few seconds.
fn source_url(env: &TestEnv, ns: &Netns) -> String {
    format!(
        "postgres://zetl:zetl@{}:{}/{}?keepalives_idle=1&keepalives_interval=1&keepalives_retries=2&tcp_user_timeout=4&connect_timeout=3",
        ns.host_ip,
        env.server.port(),
        common::DB
    )
}

/// Cuts the link for `long`; zetl must notice the dead connection while the link is still
/// down (its dead-peer timing, not the link's return, ends the connection: a link that never
/// comes back, or a server gone for good, would otherwise stall it for the system's 15
/// minutes of retransmissions).
fn cut_and_notice(log: &std::path::Path, ns: &Netns, fault: Fault, long: Duration) {
    let before = std::fs::read_to_string(log).unwrap_or_default().len();
    fault.start(ns);
    std::thread::sleep(long);
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let during = text.get(before..).unwrap_or_default();
    fault.end(ns);
    assert!(during.contains("transient failure"), "the cut was not noticed within {long:?}:\n{during}");
}

/// Waits for zetl to catch up after the faults, and prints how long that took.
fn report_catch_up(env: &TestEnv, zetl: &mut Zetl, integration: &str, what: &str, written: u64) {
    let healed = Instant::now();
    env.wait_caught_up(zetl, integration);
    let took = healed.elapsed().as_secs_f64();
    eprintln!("{what}: {written} transactions written around the faults; caught up {took:.1} s after the last one");
}

/// What a cut takes away: the whole link, or one server's port (blackholed by a firewall,
/// the other connections going on).
#[derive(Clone, Copy)]
enum Fault {
    Link,
    Port(u16),
}

impl Fault {
    fn start(self, ns: &Netns) {
        match self {
            Fault::Link => ns.cut(),
            Fault::Port(port) => ns.blackhole(port),
        }
    }

    fn end(self, ns: &Netns) {
        match self {
            Fault::Link => ns.heal(),
            Fault::Port(_) => ns.unblackhole(),
        }
    }
}

/// Runs `during` while transactions of three statements (two accounts of `acct`, one row into
/// `moves`) are written through `sql`; returns how many were written.
fn under_workload(accounts: u64, sql: impl Fn(&str) + Sync, during: impl FnOnce()) -> u64 {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let id = (i * 7919) % accounts + 1;
                sql(&format!(
                    "BEGIN; UPDATE acct SET balance = balance - {i} WHERE id = {id};\n\
                     INSERT INTO moves (acct, amount) VALUES ({id}, {i});\n\
                     UPDATE acct SET note = 'moved {i}' WHERE id = {}; COMMIT;",
                    id % 1000 + 1
                ));
            }
            i
        });
        let _stop = StopOnDrop(&stop);
        during();
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("workload")
    })
}

/// Under the workload: a 10 s `fault` that must be noticed while it lasts, six short ones
/// (0.4 s each way), then 10 s losing 10 % of the packets each way. Returns how many
/// transactions were written.
fn faults_under_workload(
    ns: &Netns,
    log: &std::path::Path,
    fault: Fault,
    accounts: u64,
    sql: impl Fn(&str) + Sync,
) -> u64 {
    under_workload(accounts, sql, || {
        std::thread::sleep(Duration::from_secs(2));
        cut_and_notice(log, ns, fault, Duration::from_secs(10));
        std::thread::sleep(Duration::from_secs(2));
        for _ in 0..6 {
            fault.start(ns);
            std::thread::sleep(Duration::from_millis(400));
            fault.end(ns);
            std::thread::sleep(Duration::from_millis(400));
        }
        std::thread::sleep(Duration::from_secs(1));
        ns.lose(10);
        std::thread::sleep(Duration::from_secs(10));
        ns.stop_losing();
    })
}

const ACCOUNTS: &str = "CREATE TABLE acct (id int PRIMARY KEY, balance bigint, note text);\n\
    INSERT INTO acct SELECT g, g * 10, repeat(md5(g::text), 4) FROM generate_series(1, 200000) g;\n\
    CREATE TABLE moves (id bigserial PRIMARY KEY, acct int, amount int);";

#[test]
fn cuts_and_lossy_links_during_copy_and_stream_end_equal() {
    let ns = Netns::create();
    let opts = PgOptions {
        extra_conf: vec![("listen_addresses".into(), format!("127.0.0.1,{}", ns.host_ip))],
        ..PgOptions::default()
    };
    let env = TestEnv::start_with("netfault", opts);
    env.server.allow_clients_from(&format!("{}/32", ns.inner_ip)).expect("pg_hba for the namespace");
    env.sql(ACCOUNTS);
    let config = env.config("net", &["public.*"]).source("url", source_url(&env, &ns)).metrics_off().write();
    let start = || Zetl::spawn_wrapped(&ns.wrapper(), &config, &env.log_path(), &[]);

    // The copy over a slow link losing 3 % of its packets, cut in the middle.
    ns.impair("tbf rate 40mbit burst 64kbit latency 400ms");
    ns.lose(3);
    let mut zetl = start();
    std::thread::sleep(Duration::from_millis(2500));
    cut_and_notice(&env.log_path(), &ns, Fault::Link, Duration::from_secs(10));
    ns.unimpair();
    ns.stop_losing();
    let healed = Instant::now();
    env.wait_caught_up(&mut zetl, "net");
    eprintln!("copy: caught up {:.1} s after the link came back", healed.elapsed().as_secs_f64());

    // Streaming: a cut, then a flapping link (losses in bursts shorter than the timeouts).
    let written = faults_under_workload(&ns, &env.log_path(), Fault::Link, 200_000, |sql| {
        env.sql(sql);
    });
    report_catch_up(&env, &mut zetl, "net", "stream", written);
    zetl.stop();
    env.assert_equal(&["public.acct", "public.moves"]);
}

/// Every packet 100 ms late each way (200 ms round trips; a relay holds them, the kernel here
/// has no `netem`), through the initial copy and a streamed write workload: slower, never
/// broken, and equal. Prints how long the copy and the catch-up took.
#[test]
fn a_link_with_200_ms_round_trips_slows_but_never_breaks() {
    use common::relay::Relay;
    let env = TestEnv::start("netdelay");
    env.sql(ACCOUNTS);
    let relay = Relay::start(env.server.port());
    relay.delay(Duration::from_millis(100));
    let url = format!("postgres://zetl:zetl@127.0.0.1:{}/{}", relay.port(), common::DB);
    let config = env.config("slow", &["public.*"]).source("url", url.as_str()).metrics_off().write();
    let started = Instant::now();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "slow");
    eprintln!("network: 100 ms each way: copy of 200 000 rows done in {:.1} s", started.elapsed().as_secs_f64());
    let written = under_workload(
        200_000,
        |sql| {
            env.sql(sql);
        },
        || std::thread::sleep(Duration::from_secs(10)),
    );
    report_catch_up(&env, &mut zetl, "slow", "network: 100 ms each way, stream", written);
    zetl.stop();
    env.assert_equal(&["public.acct", "public.moves"]);
}

/// MariaDB: the initial copy over a slow link, cut in the middle (noticed by the silence of
/// the copy's connections: six heartbeat periods, one second each here); then the binlog
/// connection behind a cut link, noticed by the heartbeats it misses, then a flapping link;
/// the stream ends equal under an OLTP-like workload.
#[test]
fn mariadb_binlog_survives_a_cut_and_a_flapping_link() {
    let ns = Netns::create();
    let opts = MariaDbOptions {
        extra_args: vec![format!("--bind-address=127.0.0.1,{}", ns.host_ip)],
        ..MariaDbOptions::default()
    };
    let env = MyEnv::start_with("netfault_my", opts);
    // The pair's addresses: zetl inside the namespace, and a catch-up run started outside it (from
    // the host end's address) alike.
    let pair = format!("{}.%", ns.host_ip.rsplit_once('.').expect("an IPv4 address").0);
    env.sql(&format!(
        "CREATE USER 'zetl'@'{pair}' IDENTIFIED BY 'zetl'; GRANT ALL PRIVILEGES ON *.* TO 'zetl'@'{pair}';\n\
         CREATE TABLE acct (id int PRIMARY KEY, balance bigint, note varchar(200));\n\
         INSERT INTO acct SELECT seq, seq * 10, REPEAT(md5(seq), 4) FROM seq_1_to_200000;\n\
         CREATE TABLE moves (id bigint AUTO_INCREMENT PRIMARY KEY, acct int, amount int);"
    ));
    let url = format!("mysql://zetl:zetl@{}:{}/{MY_DB}", ns.host_ip, env.server.port());
    let config = env.config("netmy").source("url", url).source("heartbeat_secs", 1).write();
    ns.impair("tbf rate 40mbit burst 64kbit latency 400ms");
    let mut zetl = env.wait_streaming(|| {
        let zetl = Zetl::spawn_wrapped(&ns.wrapper(), &config, &env.log_path(), &[]);
        std::thread::sleep(Duration::from_millis(2500));
        cut_and_notice(&env.log_path(), &ns, Fault::Link, Duration::from_secs(10));
        ns.unimpair();
        zetl
    });
    let written = faults_under_workload(&ns, &env.log_path(), Fault::Link, 200_000, |sql| {
        env.sql(sql);
    });
    if let Some(status) = zetl.try_exit() {
        panic!("zetl exited ({status}) during the faults");
    }
    eprintln!("mariadb: {written} transactions written around the faults");
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&[&format!("{MY_DB}.acct"), &format!("{MY_DB}.moves")]);
}

/// The PostgreSQL *target* behind the faults: its port blackholed for 10 s (the source's
/// connections go on), then blackholed on and off six times, then 10 % random loss, while the
/// source is written. zetl notices the dead target connection while it is down (the URL's
/// dead-peer timing), retries without exiting, commits no part of a transaction, and the
/// target ends equal to the source.
#[test]
fn a_blackholed_postgres_target_is_survived() {
    let ns = Netns::create();
    let listen = || PgOptions {
        extra_conf: vec![("listen_addresses".into(), format!("127.0.0.1,{}", ns.host_ip))],
        ..PgOptions::default()
    };
    let env = TestEnv::start_with("netfault_target", listen());
    let target = common::PgServer::start(listen()).expect("start the target PostgreSQL");
    for server in [&env.server, &target] {
        server.allow_clients_from(&format!("{}/32", ns.inner_ip)).expect("pg_hba for the namespace");
    }
    env.sql(
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint, note text);\n\
         INSERT INTO acct SELECT g, g * 10, md5(g::text) FROM generate_series(1, 20000) g;\n\
         CREATE TABLE moves (id bigserial PRIMARY KEY, acct int, amount int);",
    );
    let dead_peer = "keepalives_idle=1&keepalives_interval=1&keepalives_retries=2&tcp_user_timeout=4&connect_timeout=3";
    let target_url = format!("postgres://zetl:zetl@{}:{}/{}?{dead_peer}", ns.host_ip, target.port(), common::DB);
    let settings = common::config::map([
        ("kind", "postgres".into()),
        ("url", target_url.into()),
        ("schemas", common::config::map([("public", "mirror".into())]).into()),
    ]);
    let config = env.config("nettarget", &["public.*"]).source("url", source_url(&env, &ns)).target(settings);
    let config = config.metrics_off().write();
    let mut zetl = Zetl::spawn_wrapped(&ns.wrapper(), &config, &env.log_path(), &[]);
    env.wait_caught_up(&mut zetl, "nettarget");

    let written = faults_under_workload(&ns, &env.log_path(), Fault::Port(target.port()), 20_000, |sql| {
        env.sql(sql);
    });
    report_catch_up(&env, &mut zetl, "nettarget", "target", written);
    zetl.stop();
    let pairs = [("public.acct", "mirror.acct"), ("public.moves", "mirror.moves")];
    zetl_testkit::compare_pg::assert_pg_tables_equal(&env.url(), &target.url(common::DB), &pairs, "");
}

/// The DynamoDB endpoint stops answering (no reset, no close: a blackhole) for a few seconds
/// while zetl streams into a PostgreSQL target. The requests caught in it never get an answer;
/// zetl must give up on them by itself (the AWS clients' read timeout), retry on new
/// connections, and end equal. Prints how long the catch-up took after the endpoint answered again.
#[cfg(feature = "dynamodb")]
#[test]
fn a_dynamodb_endpoint_that_stops_answering_is_given_up_on_and_reached_again() {
    use common::dynamo::DynEnv;
    use common::relay::Relay;
    let env = DynEnv::start("dyn_stall");
    env.driver(&["create", "t"]);
    env.driver(&["fill", "t", "0", "200"]);
    let relay = Relay::start(env.server.port());
    let target = zetl_testkit::PgServer::start(PgOptions::default()).expect("start the target PostgreSQL");
    let settings = common::config::map([("kind", "postgres".into()), ("url", target.url(common::DB).into())]);
    let cfg = env.config("stall", &["t"]).source("endpoint_url", relay.url().as_str()).target(settings).write();
    let holds = |n: u64| target.psql(common::DB, &DynEnv::sync_count("t", n)).is_ok_and(|c| c.trim() == "1");
    let mut zetl = env.run_zetl(&cfg);
    env.driver(&["sync", "t", "1"]);
    common::wait_for("the first sentinel", &mut zetl, || holds(1));

    relay.stall();
    env.driver(&["mutate", "t"]);
    std::thread::sleep(Duration::from_secs(5));
    relay.resume();
    let answered = Instant::now();
    env.driver(&["sync", "t", "2"]);
    let caught_up = common::poll(Duration::from_secs(300), || {
        assert!(zetl.try_exit().is_none(), "zetl exited instead of retrying");
        holds(2)
    });
    assert!(caught_up, "zetl did not come back within 300 s of the endpoint answering again");
    eprintln!(
        "network: DynamoDB endpoint silent 5 s: caught up {:.1} s after it answered again",
        answered.elapsed().as_secs_f64()
    );
    zetl.stop();
    zetl_testkit::compare_dynamo::assert_dynamo_pg_equal(&env.endpoint(), "t", &target.url(common::DB));
}
