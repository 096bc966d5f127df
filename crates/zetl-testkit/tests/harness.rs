//! The harness against the real binaries of this machine.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::thread;

use zetl_testkit::{free_port, MariaDbOptions, MariaDbServer, MotoServer, PgOptions, PgServer};

#[test]
fn pg_starts_with_logical_replication() {
    let pg = PgServer::start(PgOptions::default()).expect("start PostgreSQL");
    assert_eq!(pg.psql("zetl", "SHOW wal_level").unwrap().trim(), "logical");
    assert_eq!(pg.psql("postgres", "SHOW max_replication_slots").unwrap().trim(), "32");
    assert_eq!(pg.psql("postgres", "SHOW fsync").unwrap().trim(), "off");
    assert_eq!(pg.url("zetl"), format!("postgres://zetl:zetl@127.0.0.1:{}/zetl", pg.port()));
    assert!(pg.data_dir().join("PG_VERSION").is_file());
    assert!(pg.bin_dir().join("pg_ctl").is_file());

    // Role zetl: superuser, replication, scram password.
    let role = pg
        .psql(
            "postgres",
            "SELECT rolsuper, rolreplication, left(rolpassword, 13) FROM pg_authid WHERE rolname = 'zetl'",
        )
        .unwrap();
    assert_eq!(role.trim(), "t|t|SCRAM-SHA-256");

    // Several statements, CREATE DATABASE included, and multi-row output.
    pg.create_database("other db").unwrap();
    let out = pg
        .psql(
            "other db",
            "CREATE TABLE t (id int PRIMARY KEY, v text);\n\
             INSERT INTO t VALUES (1, 'a'), (2, 'b');\n\
             SELECT id, v FROM t ORDER BY id",
        )
        .unwrap();
    assert_eq!(out, "1|a\n2|b\n");

    // A logical slot can be made (needs wal_level=logical).
    pg.psql("zetl", "SELECT 1 FROM pg_create_logical_replication_slot('s1', 'pgoutput')").unwrap();

    // Errors carry psql's stderr.
    let err = pg.psql("zetl", "SELECT * FROM no_such_table").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("no_such_table"), "{text}");
    assert!(err.stderr().unwrap().contains("does not exist"), "{text}");
}

#[test]
fn pg_accepts_password_login_over_tcp() {
    let pg = PgServer::start(PgOptions::default()).unwrap();
    let psql = pg.bin_dir().join("psql");
    let out = Command::new(if psql.is_file() { psql } else { PathBuf::from("psql") })
        .args(["-X", "-At", "-c", "SELECT current_user, inet_server_addr()"])
        .arg(pg.url("zetl"))
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "zetl|127.0.0.1");

    let bad = Command::new("psql")
        .args(["-X", "-At", "-w", "-c", "SELECT 1"])
        .arg(format!("postgres://zetl:wrong@127.0.0.1:{}/zetl", pg.port()))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("password authentication failed"));
}

#[test]
fn pg_servers_start_in_parallel_on_different_ports() {
    let handles: Vec<_> =
        (0..3).map(|_| thread::spawn(|| PgServer::start(PgOptions::default()).expect("start PostgreSQL"))).collect();
    let servers: Vec<PgServer> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ports: Vec<u16> = servers.iter().map(|s| s.port()).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for s in &servers {
        assert_eq!(s.psql("zetl", "SHOW port").unwrap().trim(), s.port().to_string());
    }
    let dirs: Vec<PathBuf> = servers.iter().map(|s| s.data_dir().to_path_buf()).collect();
    drop(servers);
    if std::env::var_os("ZETL_KEEP_SERVERS").is_none() {
        for d in dirs {
            assert!(!d.exists(), "{} was not removed", d.display());
        }
    }
}

#[test]
fn pg_restart_and_stop() {
    let pg = PgServer::start(PgOptions { logical: false, extra_conf: vec![("wal_sender_timeout".into(), "0".into())] })
        .unwrap();
    assert_eq!(pg.psql("zetl", "SHOW wal_level").unwrap().trim(), "replica");
    assert_eq!(pg.psql("zetl", "SHOW wal_sender_timeout").unwrap().trim(), "0");
    pg.psql("zetl", "CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)").unwrap();
    let before = pg.psql("zetl", "SELECT pg_postmaster_start_time()").unwrap();
    pg.restart().unwrap();
    let after = pg.psql("zetl", "SELECT pg_postmaster_start_time()").unwrap();
    assert_ne!(before, after);
    assert_eq!(pg.psql("zetl", "SELECT id FROM kept").unwrap().trim(), "7");

    pg.stop().unwrap();
    assert!(pg.psql("zetl", "SELECT 1").is_err());
    pg.restart().unwrap(); // pg_ctl restart also starts a stopped server
    assert_eq!(pg.psql("zetl", "SELECT 1").unwrap().trim(), "1");
}

#[test]
fn mariadb_starts_with_row_binlog() {
    let db = MariaDbServer::start(MariaDbOptions::default()).expect("start MariaDB");
    let out = db
        .sql("", "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@server_id, @@gtid_strict_mode;")
        .unwrap();
    assert_eq!(out.trim(), "1\tROW\tFULL\tFULL\t1\t1");
    assert_eq!(db.url("zetl"), format!("mysql://zetl:zetl@127.0.0.1:{}/zetl", db.port()));

    db.create_database("app").unwrap();
    db.sql("app", "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t VALUES (1,'a'),(2,'b');").unwrap();
    assert_eq!(db.sql("app", "SELECT id, v FROM t ORDER BY id").unwrap(), "1\ta\n2\tb\n");

    // The zetl user logs in over TCP with its password.
    let out = Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "-P"])
        .arg(db.port().to_string())
        .args(["-u", "zetl", "-pzetl", "-N", "-B", "-e", "SELECT CURRENT_USER(); SHOW GRANTS"])
        .arg("zetl")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("zetl@127.0.0.1\n"), "{text}");
    assert!(text.contains("GRANT ALL PRIVILEGES ON *.*"), "{text}");

    let err = db.sql("app", "SELECT * FROM nope;").unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");

    db.restart().unwrap();
    assert_eq!(db.sql("app", "SELECT COUNT(*) FROM t").unwrap().trim(), "2");
    let dir = db.dir().to_path_buf();
    drop(db);
    if std::env::var_os("ZETL_KEEP_SERVERS").is_none() {
        assert!(!dir.exists());
    }
}

#[test]
fn mariadb_without_binlog() {
    let db = MariaDbServer::start(MariaDbOptions { binlog: false, extra_args: vec!["--max-connections=50".into()] })
        .unwrap();
    assert_eq!(db.sql("", "SELECT @@log_bin, @@max_connections").unwrap().trim(), "0\t50");
}

#[test]
fn moto_answers_http() {
    let moto = MotoServer::start().expect("start moto");
    let url = moto.endpoint_url();
    assert_eq!(url, format!("http://127.0.0.1:{}", moto.port()));

    // DynamoDB ListTables, the way an SDK sends it (moto ignores signatures).
    let body = "{}";
    let request = format!(
        "POST / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
         X-Amz-Target: DynamoDB_20120810.ListTables\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {len}\r\n\r\n{body}",
        port = moto.port(),
        len = body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", moto.port())).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"TableNames\": []"), "{response}");

    let port = moto.port();
    drop(moto);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn free_ports_differ() {
    let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ports.len());
    assert!(ports.iter().all(|&p| p > 0));
}

/// Runs `zetl-harness ARGS` and returns the `export NAME=VALUE` lines.
fn harness(args: &[&str]) -> Vec<(String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_zetl-harness")).args(args).output().unwrap();
    assert!(out.status.success(), "zetl-harness {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (name, value) = l.strip_prefix("export ").unwrap().split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn harness_binary_starts_and_stops_servers() {
    let base = std::env::temp_dir().join(format!("zetl-harness-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let pg_dir = base.join("pg");
    let pg_dir = pg_dir.to_str().unwrap();

    let vars = harness(&["pg", "start", pg_dir]);
    assert_eq!(vars[0].0, "ZETL_PG_PORT");
    let port = vars[0].1.clone();
    assert_eq!(vars[1], ("ZETL_PG_URL".into(), format!("postgres://zetl:zetl@127.0.0.1:{port}/zetl")));
    // The server outlives the command; starting again just reports it.
    assert!(TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok());
    assert_eq!(harness(&["pg", "start", pg_dir]), vars);
    harness(&["pg", "stop", pg_dir]);
    assert!(TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err());
    harness(&["pg", "stop", pg_dir]); // idempotent
                                      // A stopped cluster is started again, keeping its data and (free) port.
    assert_eq!(harness(&["pg", "start", pg_dir]), vars);
    harness(&["pg", "stop", pg_dir]);

    let my_dir = base.join("mariadb");
    let my_dir = my_dir.to_str().unwrap();
    let vars = harness(&["mariadb", "start", my_dir]);
    assert_eq!(vars[0].0, "ZETL_MYSQL_PORT");
    assert_eq!(vars[1], ("ZETL_MYSQL_URL".into(), format!("mysql://zetl:zetl@127.0.0.1:{}/zetl", vars[0].1)));
    let port: u16 = vars[0].1.parse().unwrap();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    harness(&["mariadb", "stop", my_dir]);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert_eq!(harness(&["mariadb", "start", my_dir]), vars);
    harness(&["mariadb", "stop", my_dir]);

    let moto_dir = base.join("moto");
    let moto_dir = moto_dir.to_str().unwrap();
    let vars = harness(&["moto", "start", moto_dir]);
    assert_eq!(vars[0].0, "ZETL_MOTO_PORT");
    assert_eq!(vars[1], ("ZETL_MOTO_URL".into(), format!("http://127.0.0.1:{}", vars[0].1)));
    let port: u16 = vars[0].1.parse().unwrap();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    harness(&["moto", "stop", moto_dir]);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn startup_failures_show_the_server_log() {
    let err = PgServer::start(PgOptions {
        logical: true,
        extra_conf: vec![("max_wal_senders".into(), "not-a-number".into())],
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("failed to start"), "{text}");
    assert!(text.contains("server log"), "{text}");
    assert!(text.contains("max_wal_senders"), "{text}");

    let err =
        MariaDbServer::start(MariaDbOptions { binlog: true, extra_args: vec!["--no-such-option".into()] }).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("exited during startup"), "{text}");
    assert!(text.contains("no-such-option"), "{text}");
}
