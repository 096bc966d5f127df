//! What the user sees when the config or the source is wrong: the right exit code, a message
//! that points at the problem, and never the password.

use crate::common;

use common::{zetl_command, zetl_command_timeout, PgOptions, Scratch, TestEnv};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use zetl_testkit::free_port;

/// The password used in every URL below; it must never be printed.
const PASSWORD: &str = "S3cr3t-Pw";

fn write(dir: &Scratch, name: &str, yaml: &str) -> PathBuf {
    let path = dir.path.join(name);
    std::fs::write(&path, yaml).expect("write config");
    path
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn run(args: &[&str], config: &Path) -> Output {
    let config = config.to_str().expect("utf-8 path");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-c", config]);
    zetl_command(&all)
}

fn assert_no_password(what: &str, out: &Output) {
    let all = text(out);
    assert!(!all.contains(PASSWORD), "{what}: the password appears in the output:\n{all}");
}

fn config_yaml(url: &str, duckdb: &Path) -> String {
    format!(
        "integrations:\n\
         \x20 - name: bad\n\
         \x20   source: {{ kind: postgres, url: \"{url}\" }}\n\
         \x20   target: {{ kind: duckdb, path: \"{}\" }}\n",
        duckdb.display()
    )
}

#[test]
fn unknown_keys_name_the_file_line_and_key() {
    let dir = Scratch::new("unknown-key");
    let cases = [
        (
            "top.yaml",
            "integrations:\n  - name: t1\n    source: { kind: postgres, url: \"postgres://u:p@h/db\" }\n    colour: blue\n",
            4,
            "colour",
        ),
        (
            "batch.yaml",
            "integrations:\n  - name: t1\n    source: { kind: postgres, url: \"postgres://u:p@h/db\" }\n    batch:\n      max_wait_ms: 100\n      max_wiat: 3\n",
            6,
            "max_wiat",
        ),
        (
            "source.yaml",
            "integrations:\n  - name: t1\n    source:\n      kind: postgres\n      url: \"postgres://u:p@h/db\"\n      slot_nam: x\n",
            6,
            "slot_nam",
        ),
        (
            "tables.yaml",
            "integrations:\n  - name: t1\n    source: { kind: postgres, url: \"postgres://u:p@h/db\" }\n    tables:\n      include: [\"public.*\"]\n      exlude: [\"x\"]\n",
            6,
            "exlude",
        ),
        ("root.yaml", "integration:\n  - name: t1\n", 1, "integration"),
    ];
    for (name, yaml, line, key) in cases {
        let path = write(&dir, name, yaml);
        for cmd in ["run", "check"] {
            let out = run(&[cmd], &path);
            let all = text(&out);
            assert_eq!(out.status.code(), Some(2), "`zetl {cmd}` with {name}: exit code\n{all}");
            let at = format!("{}:{line}", path.display());
            assert!(all.contains(&at), "`zetl {cmd}` with {name}: the message should name {at}\n{all}");
            assert!(all.contains(key), "`zetl {cmd}` with {name}: the message should name `{key}`\n{all}");
        }
    }
}

#[test]
fn missing_variable_names_the_variable_and_line() {
    let dir = Scratch::new("missing-var");
    let yaml = "integrations:\n  - name: t1\n    source:\n      kind: postgres\n      \
                url: \"postgres://u:${ZETL_TEST_UNSET_PASSWORD}@127.0.0.1:5432/db\"\n";
    let path = write(&dir, "vars.yaml", yaml);
    for cmd in ["run", "check"] {
        let out = run(&[cmd], &path);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "`zetl {cmd}`: exit code\n{all}");
        assert!(all.contains("ZETL_TEST_UNSET_PASSWORD"), "{all}");
        assert!(all.contains(&format!("{}:5", path.display())), "{all}");
    }
}

#[test]
fn unreachable_source() {
    let dir = Scratch::new("unreachable");
    let port = free_port();
    let url = format!("postgres://rep:{PASSWORD}@127.0.0.1:{port}/db");
    let path = write(&dir, "z.yaml", &config_yaml(&url, &dir.path.join("w.duckdb")));
    let host_port = format!("127.0.0.1:{port}");

    let out = run(&["check"], &path);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "`zetl check`: exit code\n{all}");
    assert!(
        all.lines().any(|l| l.starts_with('✗') && l.contains("source connection")),
        "`zetl check` prints a ✗ line for the connection\n{all}"
    );
    assert!(all.contains(&host_port), "names {host_port}\n{all}");
    assert_no_password("zetl check", &out);

    let config = path.to_str().expect("utf-8");
    let out = match zetl_command_timeout(&["run", "-c", config], Duration::from_secs(30)) {
        Ok(out) => out,
        Err(out) => {
            assert_no_password("zetl run (killed)", &out);
            panic!(
                "`zetl run` with an unreachable source did not exit within 30 s (it keeps \
                 retrying); it should fail with a message naming {host_port}\n{}",
                text(&out)
            );
        }
    };
    let all = text(&out);
    assert!(!out.status.success(), "`zetl run` must fail with an unreachable source\n{all}");
    assert!(all.contains(&host_port), "names {host_port}\n{all}");
    assert_no_password("zetl run", &out);
}

#[test]
fn wal_level_replica_and_wrong_password() {
    let env = TestEnv::start_with("walreplica", PgOptions { logical: false, ..PgOptions::default() });
    env.sql(&format!(
        "CREATE ROLE rep LOGIN SUPERUSER REPLICATION PASSWORD '{PASSWORD}';\n\
         CREATE TABLE t (id int PRIMARY KEY);"
    ));
    let url = format!("postgres://rep:{PASSWORD}@127.0.0.1:{}/zetl", env.server.port());
    let path = write(&env.scratch, "z.yaml", &config_yaml(&url, &env.scratch.path.join("w.duckdb")));

    let out = run(&["check"], &path);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "`zetl check`: exit code\n{all}");
    assert!(
        all.lines().any(|l| l.starts_with("✗ wal_level") && l.contains("replica")),
        "`zetl check` prints ✗ wal_level\n{all}"
    );
    assert!(all.lines().any(|l| l.starts_with("✓ source connection")), "{all}");
    assert_no_password("zetl check", &out);

    let out = run(&["run"], &path);
    let all = text(&out);
    assert!(!out.status.success() && out.status.code().is_some(), "`zetl run` must fail with wal_level=replica\n{all}");
    assert!(all.contains("wal_level"), "mentions wal_level\n{all}");
    assert_no_password("zetl run", &out);

    // A wrong password: refused at once, and neither password is printed.
    let wrong = url.replace(PASSWORD, &format!("{PASSWORD}-wrong"));
    let path = write(&env.scratch, "wrong.yaml", &config_yaml(&wrong, &env.scratch.path.join("w.duckdb")));
    let out = run(&["check"], &path);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_no_password("zetl check (wrong password)", &out);
    let out = run(&["run"], &path);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("password authentication failed") && all.contains("rep"),
        "says why: the server's authentication failure for user rep\n{all}"
    );
    assert_no_password("zetl run (wrong password)", &out);
}

/// A database whose encoding is SQL_ASCII stores text that is not UTF-8. `zetl check` warns
/// of the encoding; a value that is not UTF-8 stops the initial copy, and later the stream at
/// its transaction, with the reason and the fix (exit 1; nothing of it or after it applied),
/// and again at the next start (never skipped); once the value is corrected at the source, the
/// copy goes through, and `zetl resync --all` brings the target equal after the stream's.
#[test]
fn text_that_is_not_utf8_stops_with_the_fix() {
    let env = TestEnv::start("sqlascii");
    env.sql("CREATE DATABASE sa ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
    let sa = |sql: &str| env.server.psql("sa", sql).unwrap_or_else(|e| panic!("SQL in database sa: {e}"));
    sa("CREATE TABLE t (id int PRIMARY KEY, s text); INSERT INTO t VALUES (0, E'\\xff'), (1, 'plain');");
    let url = env.server.url("sa");
    let config = env.config("sa", &["public.*"]).source("url", url.as_str()).write();
    let cfg = config.to_str().expect("utf-8 path");

    let out = zetl_command(&["check", "-c", cfg]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "a warning does not fail `zetl check`\n{all}");
    assert!(all.lines().any(|l| l.contains("database encoding") && l.contains("SQL_ASCII")), "{all}");

    let stops = |zetl: &mut common::Zetl| {
        assert!(common::poll(common::TIMEOUT, || zetl.try_exit().is_some()), "zetl did not stop at the value");
        let status = zetl.try_exit().expect("exited");
        let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
        assert_eq!(status.code(), Some(1), "{log}");
        let last = log.lines().rev().find(|l| l.starts_with("zetl: error")).unwrap_or_default().to_string();
        assert!(last.contains("not valid UTF-8") && last.contains("zetl resync --all"), "{last}");
    };
    stops(&mut env.run_zetl(&config));
    sa("UPDATE t SET s = 'ff' WHERE id = 0");
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "sa");
    sa("INSERT INTO t VALUES (2, E'caf\\xe9'); INSERT INTO t VALUES (3, 'after');");
    stops(&mut zetl);
    let held = env.target_value("SELECT string_agg(id::varchar, ',' ORDER BY id) FROM public.t");
    assert_eq!(held, Some("0,1".into()));
    let mut again = env.run_zetl(&config);
    stops(&mut again);

    sa("UPDATE t SET s = 'cafe' WHERE id = 2");
    let out = zetl_command(&["resync", "-c", cfg, "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "sa");
    zetl.stop();
    common::assert_tables_equal(&url, &env.duckdb_path(), &["public.t"]);
}
