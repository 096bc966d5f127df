//! MariaDB → DuckDB under stress: kill -9 while sysbench writes, and one transaction of a
//! million rows. The target must end equal to the source, with no loss and no duplicates.

use crate::common;
use common::config::yaml;
use common::mysql::MyEnv;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub(crate) fn sysbench(env: &MyEnv, action: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new("sysbench");
    cmd.arg("oltp_write_only")
        .args(["--db-driver=mysql", "--mysql-host=127.0.0.1", "--mysql-user=zetl", "--mysql-password=zetl"])
        .arg(format!("--mysql-port={}", env.server.port()))
        .args(["--mysql-db=shop", "--tables=4", "--table-size=5000"])
        .args(extra)
        .arg(action)
        .stdin(Stdio::null());
    cmd
}

fn start_workload(env: &MyEnv, seconds: u64) -> Child {
    let log = std::fs::File::create(env.scratch.path.join("sysbench.log")).expect("sysbench log");
    sysbench(env, "run", &["--threads=4", &format!("--time={seconds}"), "--report-interval=0"])
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("start sysbench (apt-get install sysbench; scripts/setup.sh installs it)")
}

#[test]
fn kill_9_under_an_oltp_workload_loses_and_duplicates_nothing() {
    let env = MyEnv::start("my_kill9");
    let prepared = sysbench(&env, "prepare", &[]).output().expect("run sysbench (scripts/setup.sh installs it)");
    assert!(prepared.status.success(), "sysbench prepare failed: {}", String::from_utf8_lossy(&prepared.stderr));
    let config = env.config("kill9").write();
    let zetl = env.run_zetl_streaming(&config);
    let mut workload = start_workload(&env, 16);
    std::thread::sleep(Duration::from_secs(4));
    zetl.kill9();
    std::thread::sleep(Duration::from_millis(500));
    let zetl = env.run_zetl_streaming(&config);
    std::thread::sleep(Duration::from_secs(4));
    zetl.kill9();
    let zetl = env.run_zetl_streaming(&config);
    let status = workload.wait().expect("wait for sysbench");
    let report = std::fs::read_to_string(env.scratch.path.join("sysbench.log")).unwrap_or_default();
    assert!(status.success(), "sysbench failed: {report}");
    let transactions: u64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("transactions:")?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(transactions > 100, "the workload wrote too little to test anything: {report}");
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.sbtest1", "shop.sbtest2", "shop.sbtest3", "shop.sbtest4"]);
}

#[test]
fn a_million_row_transaction_stays_whole() {
    let env = MyEnv::start("my_bigtxn");
    env.sql("CREATE TABLE big (id int PRIMARY KEY, label varchar(30), amount decimal(12,2))");
    env.sql("CREATE TABLE side (id int PRIMARY KEY, n int); INSERT INTO side VALUES (1, 0)");
    let config = env.config("bigtxn").write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql(
        "START TRANSACTION; \
         INSERT INTO big SELECT seq, CONCAT('row ', seq), seq * 1.25 FROM seq_1_to_1000000; \
         UPDATE big SET label = 'updated' WHERE id % 1000 = 0; \
         DELETE FROM big WHERE id % 999 = 0; \
         UPDATE side SET n = 1; \
         COMMIT",
    );
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.big", "shop.side"]);
}

#[test]
fn the_stream_resumes_after_the_server_restarts() {
    let env = MyEnv::start("my_restart");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 1)");
    let config = env.config("restart").write();
    let mut zetl = env.run_zetl_streaming(&config);
    env.sql("INSERT INTO t VALUES (2, 2)");
    std::thread::sleep(Duration::from_secs(1));
    env.server.restart().expect("restart MariaDB");
    env.sql("INSERT INTO t VALUES (3, 3); UPDATE t SET v = 10 WHERE id = 1");
    let mut reconnected = |times: usize| {
        common::mysql::eventually(|| {
            assert!(zetl.try_exit().is_none(), "zetl exited instead of reconnecting");
            std::fs::read_to_string(env.log_path()).is_ok_and(|l| l.matches("streaming the binlog").count() >= times)
        })
    };
    assert!(reconnected(2), "zetl did not resume streaming after the server restarted");
    // A crash (SIGKILL): the binlog and InnoDB recover to the same transactions.
    env.sql("INSERT INTO t VALUES (4, 4)");
    env.server.crash_and_restart().expect("crash and restart MariaDB");
    env.sql("INSERT INTO t VALUES (5, 5); DELETE FROM t WHERE id = 2");
    assert!(reconnected(3), "zetl did not resume streaming after the server crashed");
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.t"]);
}

#[test]
fn a_chunked_parallel_copy_under_writes_is_consistent() {
    let env = MyEnv::start("my_chunks");
    env.sql(
        "CREATE TABLE nums (id bigint PRIMARY KEY, v int); \
         INSERT INTO nums SELECT seq, seq FROM seq_1_to_60000; \
         CREATE TABLE words (w varchar(20) PRIMARY KEY, n int); \
         INSERT INTO words SELECT CONCAT('w', seq), seq FROM seq_1_to_3000; \
         ANALYZE TABLE nums, words",
    );
    let config = env.config("chunks").source("snapshot", yaml("{ parallelism: 4, chunk_rows: 5000 }")).write();
    // Writes race the copy: each must land either in the copy or in the stream, once.
    let writer = {
        let (port, dir) = (env.server.port(), env.scratch.path.clone());
        std::thread::spawn(move || {
            let sql: String = (0..300)
                .map(|i| {
                    format!(
                        "UPDATE nums SET v = v + 1 WHERE id = {}; DELETE FROM nums WHERE id = {}; \
                         INSERT INTO nums VALUES ({}, 0); UPDATE words SET n = n + 1 WHERE w = 'w{}';\n",
                        i * 97 + 1,
                        i * 89 + 2,
                        100_000 + i,
                        i + 1
                    )
                })
                .collect();
            let script = dir.join("writes.sql");
            std::fs::write(&script, sql).expect("write the script");
            Command::new("mariadb")
                .args(["--no-defaults", "-h", "127.0.0.1", "-u", "zetl", "-pzetl", "shop"])
                .arg(format!("-P{port}"))
                .stdin(std::fs::File::open(&script).expect("open the script"))
                .output()
                .expect("run the writes")
        })
    };
    let zetl = env.run_zetl_streaming(&config);
    let out = writer.join().expect("writer thread");
    assert!(out.status.success(), "writes failed: {}", String::from_utf8_lossy(&out.stderr));
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.nums", "shop.words"]);
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    let jobs: usize =
        log.lines().find_map(|l| l.split("jobs=").nth(1)?.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    assert!(jobs > 2, "the big table was not split into key ranges:\n{log}");
    assert!(log.contains("connections=4") || log.contains("busy source"), "the copy was not parallel:\n{log}");
}

/// SIGTERM during a long initial copy stops zetl without finishing the copy (exit 0); the
/// next start copies again and the target equals the source.
#[test]
fn sigterm_during_the_initial_copy_stops_it() {
    let env = MyEnv::start("my_termcopy");
    env.sql(
        "CREATE TABLE big (id int PRIMARY KEY, pad varchar(200)); \
         INSERT INTO big SELECT seq, repeat('x', 100) FROM seq_1_to_1000000",
    );
    let config = env.config("termcopy").write();
    let mut zetl = env.run_zetl(&config);
    let log = || std::fs::read_to_string(env.log_path()).unwrap_or_default();
    common::wait_for("the initial copy to start", &mut zetl, || log().contains("snapshot opened"));
    zetl.stop();
    assert!(log().contains("stopped during the initial copy"), "zetl did not stop in the copy:\n{}", log());
    assert!(!log().contains("initial copy complete"), "zetl finished the copy before it stopped:\n{}", log());

    let zetl = env.run_zetl(&config);
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.big"]);
}
