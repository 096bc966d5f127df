//! MariaDB → DuckDB value fidelity: values that read one way in the initial copy and another in
//! the binlog (latin1's cp1252 bytes, FLOAT digits, JSON text), changes the binlog carries in
//! ways zetl must not miss (DML logged as statements, XA transactions), and compressed binlog
//! events, which zetl refuses. Each test ends with a whole-table comparison or a clear refusal.

use crate::common;
use common::mysql::{MariaDbOptions, MyEnv};
use common::{zetl_command, EXIT_CHECK_CODE, TIMEOUT};
use std::process::Output;
use zetl_mysql::position::BinlogPos;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn log(env: &MyEnv) -> String {
    std::fs::read_to_string(env.log_path()).unwrap_or_default()
}

/// Waits for `zetl` to exit by itself and returns its exit code.
fn exits_by_itself(zetl: &mut common::Zetl) -> Option<i32> {
    let exited = common::poll(TIMEOUT, || zetl.try_exit().is_some());
    assert!(exited, "zetl did not stop by itself within {TIMEOUT:?}");
    zetl.try_exit().and_then(|s| s.code())
}

/// Rows of `from` (`table [WHERE …]`) at the target (zetl must be stopped).
fn count(env: &MyEnv, from: &str) -> u64 {
    let n = env.target_value(&format!("SELECT CAST(count(*) AS VARCHAR) FROM {from}"));
    n.and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// The position stored in the target for `integration` (zetl must be stopped).
fn stored_position(env: &MyEnv, integration: &str) -> BinlogPos {
    let text = env
        .target_value(&format!("SELECT position FROM _zetl.checkpoints WHERE integration = '{integration}'"))
        .expect("a stored position");
    BinlogPos::parse(&text).unwrap_or_else(|| panic!("stored position `{text}` does not parse"))
}

#[test]
fn latin1_is_cp1252_in_the_copy_and_the_binlog() {
    let env = MyEnv::start("my_latin1");
    env.sql(
        "CREATE TABLE lat (id int PRIMARY KEY, v varchar(40) CHARACTER SET latin1, c char(3) CHARACTER SET latin1)",
    );
    // Every byte 0x80–0x9F MySQL's latin1 (cp1252) gives a character, and ISO-8859-1 letters.
    env.sql("INSERT INTO lat VALUES (1, '€ “quoted” – ™', 'é…'), (2, CONVERT(UNHEX('808182838485868788898A8B8C8D8E8F909192939495969798999A9B9C9D9E9FA0FF') USING latin1), 'Ÿ')");
    let config = env.config("latin1").write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql("INSERT INTO lat VALUES (11, '€ “quoted” – ™', 'é…'), (12, CONVERT(UNHEX('808182838485868788898A8B8C8D8E8F909192939495969798999A9B9C9D9E9FA0FF') USING latin1), 'Ÿ')");
    env.sql("UPDATE lat SET v = CONCAT(v, ' ‰') WHERE id IN (1, 11)");
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.lat"]);
    for id in [1, 11] {
        assert_eq!(
            env.target_value(&format!("SELECT v FROM shop.lat WHERE id = {id}")).as_deref(),
            Some("€ “quoted” – ™ ‰"),
            "row {id}"
        );
    }
}

const FLOATS: &str = "(1.2345679, 1.2345678901234567), (3.40282346e38, 1.7976931348623157e308), \
    (-1.17549435e-38, 2.2250738585072014e-308), (0.1, 0.1), (16777217, 16777217), (7.5, -4.9e-324)";

#[test]
fn floats_and_json_keep_every_digit() {
    let env = MyEnv::start("my_floats");
    env.sql(
        "CREATE TABLE keyless (f float, d double, tag varchar(10)); \
         CREATE TABLE keyed (id int PRIMARY KEY AUTO_INCREMENT, f float, d double, f7 float(7,4), js json)",
    );
    env.sql(&format!("INSERT INTO keyless (f, d) VALUES {FLOATS}"));
    env.sql(&format!(
        "INSERT INTO keyed (f, d) VALUES {FLOATS}; \
         INSERT INTO keyed (f7, js) VALUES (1.2346, '{{\"b\": 1.50, \"a\": [1e2, \"x\"]}}')"
    ));
    let config = env.config("floats").write();
    let zetl = env.run_zetl_streaming(&config);
    // A table without a key: updates and deletes find their row by its whole old image, so
    // the copied values must be the very values the binlog shows.
    env.sql(
        "UPDATE keyless SET tag = 'upd' WHERE f = CAST(1.2345679 AS FLOAT) OR d = 0.1; \
         UPDATE keyless SET tag = 'max' WHERE f > 3e38; \
         DELETE FROM keyless WHERE f < -1e-38; \
         DELETE FROM keyless WHERE f = 16777216",
    );
    env.sql(&format!(
        "INSERT INTO keyless (f, d, tag) VALUES (1.2345679, 1.2345678901234567, 'streamed'); \
         INSERT INTO keyed (f, d) VALUES {FLOATS}; \
         INSERT INTO keyed (f7, js) VALUES (1.2346, '{{\"b\": 1.50, \"a\": [1e2, \"x\"]}}'); \
         UPDATE keyed SET f = f * 3 WHERE id = 1"
    ));
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.keyless", "shop.keyed"]);
    assert_eq!(
        env.target_value("SELECT CAST(count(*) AS VARCHAR) FROM shop.keyless").as_deref(),
        Some("5"),
        "no row duplicated or left behind in the keyless table"
    );
    // JSON: the copy and the binlog give the document's own text, digits and all.
    let json = env.sql("SELECT GROUP_CONCAT(js ORDER BY id SEPARATOR '|') FROM keyed WHERE js IS NOT NULL");
    let target = env.target_value("SELECT string_agg(CAST(js AS VARCHAR), '|' ORDER BY id) FROM shop.keyed");
    assert_eq!(target.as_deref(), Some(json.trim()));
    assert_eq!(json.trim(), r#"{"b": 1.50, "a": [1e2, "x"]}|{"b": 1.50, "a": [1e2, "x"]}"#);
}

#[test]
fn dml_logged_as_a_statement_stops_with_the_fix() {
    let env = MyEnv::start("my_stmt_dml");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v varchar(10)); INSERT INTO t VALUES (1, 'copied')");
    env.sql("CREATE DATABASE other; CREATE TABLE other.o (id int PRIMARY KEY)");
    let config = env.config("stmtdml").write();
    let zetl = env.run_zetl_streaming(&config);
    // A statement-logged change outside the filters is none of zetl's business.
    env.sql("SET SESSION binlog_format = 'STATEMENT'; INSERT INTO other.o VALUES (1); UPDATE other.o SET id = 2");
    env.sql("INSERT INTO t VALUES (2, 'row')");
    env.catch_up_and_stop(zetl, &config);
    let mut zetl = env.run_zetl_streaming(&config);
    let before = env.sql("SHOW MASTER STATUS");
    let mut cols = before.split('\t');
    let statement_at =
        BinlogPos::new(cols.next().expect("file"), cols.next().expect("pos").trim().parse().expect("pos"));
    env.sql("SET SESSION binlog_format = 'STATEMENT'; UPDATE t SET v = 'statement' WHERE id = 1");
    env.sql("INSERT INTO t VALUES (3, 'after')");
    assert_eq!(exits_by_itself(&mut zetl), Some(1));
    let out = log(&env);
    assert!(
        out.contains("a data change to shop.t was logged as a statement, not as rows, at"),
        "expected the statement error in zetl's log:\n{out}"
    );
    assert!(out.contains("binlog_format=ROW for every session") && out.contains("zetl resync"), "{out}");
    // Nothing from the statement on was acknowledged: the target stops before it.
    let stored = stored_position(&env, "stmtdml");
    assert!(
        stored.file == statement_at.file && stored.pos <= statement_at.pos,
        "stored {stored}, statement at {statement_at}"
    );
    assert_eq!(env.target_value("SELECT v FROM shop.t WHERE id = 2").as_deref(), Some("row"));
    assert_eq!(count(&env, "shop.t WHERE id = 3"), 0);
    assert_eq!(env.target_value("SELECT v FROM shop.t WHERE id = 1").as_deref(), Some("copied"));

    // The fix the error names: copy the table again, then run.
    let out = zetl_command(&["resync", "-c", config.to_str().expect("utf-8 path"), "shop.t"]);
    assert!(out.status.success(), "{}", text(&out));
    let zetl = env.run_zetl_streaming(&config);
    env.sql("INSERT INTO t VALUES (4, 'later')");
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.t"]);
}

#[test]
fn compressed_binlog_is_refused_at_start_and_in_the_stream() {
    let opts = MariaDbOptions { binlog: true, extra_args: vec!["--log-bin-compress=ON".into()] };
    let env = MyEnv::start_with("my_compress", opts);
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v text)");
    let config = env.config("compress").write();
    let out = zetl_command(&["check", "-c", config.to_str().expect("utf-8 path")]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(EXIT_CHECK_CODE), "{report}");
    assert!(report.lines().any(|l| l.starts_with('✗') && l.contains("log_bin_compress")), "{report}");
    let out = zetl_command(&["run", "-c", config.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("log_bin_compress is ON"), "{}", text(&out));

    // Turned on while zetl streams: the first compressed event stops it, named.
    env.sql("SET GLOBAL log_bin_compress = OFF");
    let zetl = env.run_zetl_streaming(&config);
    env.sql("INSERT INTO t VALUES (1, 'small')");
    env.catch_up_and_stop(zetl, &config);
    let mut zetl = env.run_zetl_streaming(&config);
    env.sql("SET GLOBAL log_bin_compress = ON");
    // Only events longer than log_bin_compress_min_len (256 bytes) are compressed.
    env.sql("INSERT INTO t VALUES (2, REPEAT('compress me ', 100))");
    assert_eq!(exits_by_itself(&mut zetl), Some(1));
    let out = log(&env);
    assert!(out.contains("compressed binlog event WRITE_ROWS_COMPRESSED_EVENT"), "{out}");
    assert_eq!(env.target_value("SELECT v FROM shop.t WHERE id = 1").as_deref(), Some("small"));
    assert_eq!(count(&env, "shop.t WHERE id = 2"), 0);
}

#[test]
fn xa_transactions_count_only_when_committed() {
    let env = MyEnv::start("my_xa");
    env.sql("CREATE TABLE acct (id int PRIMARY KEY, bal int); INSERT INTO acct VALUES (1, 100), (2, 200)");
    env.sql("CREATE TABLE log (n int, what varchar(20))");
    let config = env.config("xa").write();
    let zetl = env.run_zetl_streaming(&config);
    // Rolled back after the prepare: its rows are in the binlog, and must not reach the target.
    env.sql(
        "XA START 'rb'; INSERT INTO acct VALUES (3, 300); UPDATE acct SET bal = 0 WHERE id = 1; \
         INSERT INTO log VALUES (1, 'rolled back'); XA END 'rb'; XA PREPARE 'rb'; XA ROLLBACK 'rb'",
    );
    // Committed, with other transactions between its prepare and its commit.
    env.sql(
        "XA START 'cm'; UPDATE acct SET bal = bal + 5 WHERE id = 2; INSERT INTO log VALUES (2, 'committed'); \
         XA END 'cm'; XA PREPARE 'cm'",
    );
    env.sql("INSERT INTO acct VALUES (4, 400); INSERT INTO log VALUES (3, 'between')");
    env.sql("XA COMMIT 'cm'");
    // Prepared and rolled back from another session, after others committed.
    env.sql("XA START X'7a',X'01',7; INSERT INTO log VALUES (4, 'other session'); XA END X'7a',X'01',7; XA PREPARE X'7a',X'01',7");
    env.sql("UPDATE acct SET bal = bal - 1 WHERE id = 4");
    env.sql("XA ROLLBACK X'7a',X'01',7");
    // One phase: an ordinary transaction.
    env.sql("XA START 'op'; INSERT INTO log VALUES (5, 'one phase'); XA END 'op'; XA COMMIT 'op' ONE PHASE");
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.acct", "shop.log"]);
    assert_eq!(env.target_value("SELECT CAST(bal AS VARCHAR) FROM shop.acct WHERE id = 2").as_deref(), Some("205"));
    assert_eq!(env.target_value("SELECT CAST(count(*) AS VARCHAR) FROM shop.log").as_deref(), Some("3"));
}

/// XA transactions prepared before the checkpoint and committed (or rolled back) while zetl
/// is stopped, or after more than one restart: a restart reads their rows again from where
/// they began, and applies exactly the committed ones.
#[test]
fn xa_prepared_before_a_restart_counts_at_its_commit() {
    let env = MyEnv::start("my_xa_restart");
    env.sql("CREATE TABLE t (id int PRIMARY KEY, v varchar(20))");
    let config = env.config("xarestart").write();
    let zetl = env.run_zetl_streaming(&config);
    env.sql("INSERT INTO t VALUES (1, 'before')");
    // Each from a session of its own, which leaves the transaction prepared when it ends.
    for (xid, id) in [("late", 2), ("gone", 3), ("twice", 4)] {
        let sql = format!("XA START '{xid}'; INSERT INTO t VALUES ({id}, '{xid}'); XA END '{xid}'; XA PREPARE '{xid}'");
        env.server.sql("shop", &sql).expect("prepare");
    }
    env.sql("INSERT INTO t VALUES (10, 'after the prepares')");
    env.catch_up_and_stop(zetl, &config);
    env.sql("XA COMMIT 'late'; XA ROLLBACK 'gone'; INSERT INTO t VALUES (11, 'while stopped')");
    let zetl = env.run_zetl_streaming(&config);
    env.sql("INSERT INTO t VALUES (12, 'after the restart')");
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.t"]);
    // Still prepared across a second restart.
    env.sql("XA COMMIT 'twice'");
    let zetl = env.run_zetl_streaming(&config);
    env.catch_up_and_stop(zetl, &config);
    env.assert_equal(&["shop.t"]);
    assert_eq!(env.target_value("SELECT CAST(count(*) AS VARCHAR) FROM shop.t").as_deref(), Some("6"));
}
