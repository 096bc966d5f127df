//! A MariaDB source that is not ready, and a stored position the server no longer has: each
//! gives a clear error (and `zetl check` the right ✗ line) instead of a silent gap.

use crate::common;
use common::mysql::{eventually, MariaDbOptions, MyEnv};
use common::{zetl_command, EXIT_CHECK_CODE};
use std::process::Output;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn run_fails_with(env: &MyEnv, config: &std::path::Path, needle: &str) {
    let out = zetl_command(&["run", "-c", config.to_str().expect("utf-8 path")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "zetl run should fail; it printed:\n{all}");
    assert!(all.contains(needle), "expected `{needle}` in zetl's output:\n{all}");
    assert!(!all.contains(":zetl@") && !all.contains("weak:weak"), "the password must not be printed:\n{all}");
    let _ = env;
}

fn check_fails_with(config: &std::path::Path, line: &str) -> String {
    let out = zetl_command(&["check", "-c", config.to_str().expect("utf-8 path")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(EXIT_CHECK_CODE), "zetl check should fail; it printed:\n{all}");
    assert!(all.lines().any(|l| l.starts_with('✗') && l.contains(line)), "expected a ✗ line about `{line}`:\n{all}");
    all
}

#[test]
fn binlog_off_is_refused_with_the_fix() {
    let env = MyEnv::start_with("my_nobinlog", MariaDbOptions { binlog: false, extra_args: Vec::new() });
    env.sql("CREATE TABLE t (id int PRIMARY KEY)");
    let config = env.config("nobinlog").write();
    let report = check_fails_with(&config, "log_bin");
    assert!(report.contains("✓ source connection"), "{report}");
    run_fails_with(&env, &config, "binary logging is off");
}

#[test]
fn statement_format_is_refused_with_the_fix() {
    let opts = MariaDbOptions { binlog: true, extra_args: vec!["--binlog-format=STATEMENT".into()] };
    let env = MyEnv::start_with("my_statement", opts);
    let config = env.config("statement").write();
    check_fails_with(&config, "binlog_format");
    run_fails_with(&env, &config, "binlog_format is STATEMENT, not ROW");
}

#[test]
fn missing_grants_are_named() {
    let env = MyEnv::start("my_grants");
    env.sql(
        "CREATE TABLE t (id int PRIMARY KEY); \
         CREATE USER 'weak'@'127.0.0.1' IDENTIFIED BY 'weak'; GRANT SELECT ON shop.* TO 'weak'@'127.0.0.1'",
    );
    let url = env.url().replace("zetl:zetl@", "weak:weak@");
    let config = env.base_config("weak").include(&["shop.*"]).source("url", url).metrics_off().write();
    let report = check_fails_with(&config, "grants");
    assert!(report.contains("REPLICATION SLAVE"), "{report}");
    run_fails_with(&env, &config, "missing REPLICATION SLAVE, REPLICATION CLIENT");
}

#[test]
fn purged_binlog_at_the_stored_position_asks_for_a_resync() {
    let env = MyEnv::start("my_purged");
    env.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
    let config = env.config("purged").write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql("INSERT INTO t VALUES (2)");
    env.catch_up_and_stop(zetl, &config);
    // While zetl is stopped, the binlog it would resume from goes away.
    env.sql("INSERT INTO t VALUES (3); FLUSH BINARY LOGS; INSERT INTO t VALUES (4); FLUSH BINARY LOGS");
    let current = env.sql("SHOW MASTER STATUS");
    let file = current.split('\t').next().expect("a binlog file").to_string();
    // The server keeps a file while a (just closed) dump thread or its binlog checkpoint
    // still refers to it: purge until it is gone.
    let purged = eventually(|| {
        env.sql(&format!("PURGE BINARY LOGS TO '{file}'"));
        !env.sql("SHOW BINARY LOGS").contains("mysql-bin.000001")
    });
    assert!(purged, "the old binlog could not be purged: {}", env.sql("SHOW BINARY LOGS"));
    check_fails_with(&config, "stored position");
    run_fails_with(&env, &config, "must be copied again");

    // The way out the error names: a new copy from scratch.
    let out = zetl_command(&["resync", "--all", "-c", config.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out));
    env.sql("INSERT INTO t VALUES (5)");
    let zetl = env.run_zetl_streaming(&config);
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.t"]);
}
