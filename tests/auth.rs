//! Password exchanges on a connection whose server is not verified (the harness's server has
//! TLS off, so `sslmode=prefer` falls back to plaintext): SCRAM goes ahead, a cleartext or
//! MD5 request is refused unless the URL allows it with `require_auth`, on the SQL and the
//! replication connection alike. No password ever reaches the output.

use crate::common;

use common::{zetl_command, TestEnv};
use std::process::Output;
use zetl_postgres::conninfo::ConnInfo;
use zetl_postgres::replication::ReplicationConn;

/// Generated-looking, with every URL delimiter; percent-encoded in the URLs.
const PASSWORD: &str = "p/a:ss@w?rd#1";
const ENCODED: &str = "p%2Fa%3Ass%40w%3Frd%231";

fn url(env: &TestEnv, user: &str, params: &str) -> String {
    format!("postgres://{user}:{ENCODED}@127.0.0.1:{}/zetl{params}", env.server.port())
}

fn config(env: &TestEnv, user: &str, params: &str) -> std::path::PathBuf {
    env.config("auth", &["public.*"]).source("url", url(env, user, params)).write_to(&format!("{user}.yaml"))
}

fn assert_no_password(text: &str) {
    for secret in [PASSWORD, ENCODED, "p/a", "p%2F", "rd#1"] {
        assert!(!text.contains(secret), "`{secret}` shown:\n{text}");
    }
}

/// `zetl check`'s output (it connects with tokio-postgres first, so a refusal there ends it).
fn check(cfg: &std::path::Path) -> String {
    let out: Output = zetl_command(&["check", "-c", cfg.to_str().expect("utf-8 path")]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_no_password(&all);
    all
}

/// Our own replication-protocol client, connected on its own.
fn replication(url: &str) -> Result<(), String> {
    let info = ConnInfo::from_url(url).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let result = runtime.block_on(ReplicationConn::connect(&info)).map(drop).map_err(|e| e.to_string());
    if let Err(e) = &result {
        assert_no_password(e);
    }
    result
}

fn line<'a>(output: &'a str, name: &str) -> &'a str {
    output.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("no `{name}` line in:\n{output}"))
}

#[test]
fn cleartext_and_md5_requests_need_require_auth_without_a_verified_server() {
    let env = TestEnv::start("auth");
    env.sql(&format!(
        "CREATE TABLE items (id int PRIMARY KEY);\n\
         CREATE ROLE scram LOGIN SUPERUSER REPLICATION PASSWORD '{PASSWORD}';\n\
         CREATE ROLE clear LOGIN SUPERUSER REPLICATION PASSWORD '{PASSWORD}';\n\
         SET password_encryption = 'md5';\n\
         CREATE ROLE old LOGIN SUPERUSER REPLICATION PASSWORD '{PASSWORD}';"
    ));
    // `clear` is asked for the password in cleartext, `old` for an MD5 hash. (Logical
    // replication connections match a database's lines, so these cover both connections.)
    let hba = env.server.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    let ours = "host all clear 127.0.0.1/32 password\nhost all old 127.0.0.1/32 md5\n";
    std::fs::write(&hba, format!("{ours}{rules}")).expect("pg_hba.conf");
    env.sql("SELECT pg_reload_conf()");

    // SCRAM: fine, with the fall back to plaintext said once.
    let out = check(&config(&env, "scram", ""));
    assert!(line(&out, "source connection").starts_with('✓'), "{out}");
    assert!(line(&out, "replication connection").starts_with('✓'), "{out}");
    assert_eq!(out.matches("does not accept TLS, so sslmode=prefer connects without encryption").count(), 1, "{out}");

    for (user, method, allow) in
        [("clear", "cleartext password", "password,scram-sha-256"), ("old", "MD5 password hash", "md5,scram-sha-256")]
    {
        let refusal = format!("refusing to authenticate as `{user}` by {method}: with sslmode=prefer");
        let out = check(&config(&env, user, ""));
        let sql = line(&out, "source connection");
        assert!(sql.starts_with('✗') && sql.contains(&refusal), "{out}");
        assert!(sql.contains(&format!("require_auth={allow}")), "{out}");
        let repl = replication(&url(&env, user, "")).expect_err("refused");
        assert!(repl.contains(&refusal), "{repl}");

        let allowed = format!("?require_auth={allow}");
        let out = check(&config(&env, user, &allowed));
        assert!(line(&out, "source connection").starts_with('✓'), "{out}");
        assert!(line(&out, "replication connection").starts_with('✓'), "{out}");
        replication(&url(&env, user, &allowed)).expect("allowed");
    }

    // A verified server may ask for anything (tls.rs shows verify-full over TLS); an explicit
    // list is kept to whatever the connection.
    let out = check(&config(&env, "scram", "?require_auth=md5"));
    assert!(line(&out, "source connection").contains("require_auth in the url allows only md5"), "{out}");
    let repl = replication(&url(&env, "scram", "?require_auth=md5")).expect_err("refused");
    assert!(repl.contains("by SCRAM-SHA-256: require_auth in the url allows only md5"), "{repl}");
}
