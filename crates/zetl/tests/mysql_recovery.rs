//! MariaDB → DuckDB under stress: kill -9 while sysbench writes, and one transaction of a
//! million rows. The target must end equal to the source, with no loss and no duplicates.

mod common;
use common::mysql::MyEnv;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn sysbench(env: &MyEnv, action: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new("sysbench");
    cmd.arg("oltp_write_only")
        .args(["--db-driver=mysql", "--mysql-host=127.0.0.1", "--mysql-user=zetl", "--mysql-password=zetl"])
        .arg(format!("--mysql-port={}", env.db.port()))
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
    let config = env.write_config("kill9", None, "");
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
    let config = env.write_config("bigtxn", None, "");
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
