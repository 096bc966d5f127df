//! TLS to the source per `sslmode`, with a throwaway certificate authority.

use crate::common;

use common::{zetl_command, TestEnv};
use std::path::Path;
use std::process::Command;

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {}", args.join(" "));
}

/// A certificate authority `name.crt` / `name.key` in `dir`.
fn authority(dir: &Path, name: &str) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    let subject = format!("/CN={name}");
    openssl(
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", &subject, "-keyout", &key, "-out",
            &crt,
        ],
        dir,
    );
}

/// `server.crt` / `server.key` for 127.0.0.1, signed by the authority `ca`.
fn server_certificate(dir: &Path, ca: &str) {
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").expect("ext");
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        dir,
    );
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
        dir,
    );
}

/// Turns TLS on at the source with a certificate from a new authority; returns the
/// authority's certificate.
fn enable_tls(env: &TestEnv) -> std::path::PathBuf {
    authority(&env.scratch.path, "ca");
    server_certificate(&env.scratch.path, "ca");
    let data = env.server.data_dir();
    for ext in ["crt", "key"] {
        let to = data.join(format!("server.{ext}"));
        std::fs::copy(env.scratch.path.join(format!("server.{ext}")), &to).expect("copy cert");
        let ok = Command::new("chown").arg("postgres").arg(&to).status().expect("chown").success();
        assert!(ok, "chown {}", to.display());
    }
    let ok = Command::new("chmod").arg("600").arg(data.join("server.key")).status().expect("chmod").success();
    assert!(ok);
    env.sql("ALTER SYSTEM SET ssl = on");
    env.sql("SELECT pg_reload_conf()");
    std::thread::sleep(std::time::Duration::from_millis(500));
    env.scratch.path.join("ca.crt")
}

fn config(env: &TestEnv, url: &str) -> std::path::PathBuf {
    env.config("tls", &["public.*"]).source("url", url).write()
}

#[test]
fn verify_full_replicates_over_tls() {
    let env = TestEnv::start("tls");
    let ca = enable_tls(&env);
    env.sql("CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 500) g");
    let url = format!("{}?sslmode=verify-full&sslrootcert={}", env.url(), ca.display());
    let cfg = config(&env, &url);
    let mut zetl = env.run_zetl(&cfg);
    env.sql("UPDATE items SET v = 'changed' WHERE id <= 100; DELETE FROM items WHERE id > 450");
    env.wait_caught_up(&mut zetl, "tls");
    let encrypted = env.sql_value(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.backend_type = 'walsender'",
    );
    assert_eq!(encrypted, "1", "the replication connection must use TLS");
    zetl.stop();
    env.assert_equal(&["public.items"]);
}

#[test]
fn a_certificate_from_another_authority_is_refused() {
    let env = TestEnv::start("tls-wrong-ca");
    enable_tls(&env);
    env.sql("CREATE TABLE items (id int PRIMARY KEY)");
    authority(&env.scratch.path, "other");
    let url = format!("{}?sslmode=verify-full&sslrootcert={}", env.url(), env.scratch.path.join("other.crt").display());
    let cfg = config(&env, &url);
    let out = zetl_command(&["check", "-c", cfg.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("✗ source connection") && stdout.contains("UnknownIssuer"), "{stdout}");
    assert!(!stdout.contains(":zetl@"), "password shown: {stdout}");
    // sslmode=require encrypts without verifying, as libpq does.
    let cfg = config(&env, &format!("{}?sslmode=require", env.url()));
    let out = zetl_command(&["check", "-c", cfg.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}
