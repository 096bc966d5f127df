//! `POST /resync` changes something, so the endpoint refuses requests that lack the
//! `X-Zetl-Request` header (what a web page would send), come by a host name without
//! `metrics.token`, lack the token when there is one, or name another integration; nothing is
//! queued for them, while `zetl resync` keeps working. Ends with target == source.

use crate::common;
use common::config::map;

use common::{poll, zetl_command_with, TestEnv, Zetl, TIMEOUT};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const TOKEN: &str = "t0k3n-Zq9/x";

fn http(port: u16, request: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.write_all(request.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn copied_rows(port: u16) -> f64 {
    let metrics = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let series = "zetl_snapshot_rows_total{integration=\"guard\",table=\"public.a\"}";
    metrics.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

fn post(port: u16, headers: &str) -> String {
    http(port, &format!("POST /resync?table=public.a HTTP/1.1\r\n{headers}Content-Length: 0\r\n\r\n"))
}

/// Each request is refused with 403 and a reason naming `expected`, and after two table
/// discovery rounds public.a has not been copied again.
fn assert_refused(port: u16, requests: &[(&str, &str)]) {
    let before = copied_rows(port);
    for (headers, expected) in requests {
        let answer = post(port, headers);
        assert!(answer.starts_with("HTTP/1.1 403"), "{headers:?} was not refused:\n{answer}");
        assert!(answer.contains(expected), "{headers:?}: no `{expected}` in\n{answer}");
        assert!(!answer.contains(TOKEN), "{answer}");
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(copied_rows(port), before, "a refused request queued a copy");
}

fn resync(cfg: &str, env: &[(&str, &str)]) {
    let out = zetl_command_with(&["resync", "-c", cfg, "public.a"], TIMEOUT, env).expect("zetl resync finished");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("resync queued: public.a"), "{text}");
}

#[test]
fn resync_needs_the_header_and_the_token() {
    let env = TestEnv::start("guard");
    env.sql("CREATE TABLE a (id int PRIMARY KEY, v int); INSERT INTO a SELECT g, 0 FROM generate_series(1, 2000) g;");
    let port = zetl_testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let config = env.config("guard", &["public.*"]);
    let cfg = config.set("metrics", map([("listen", listen.clone().into())])).write();
    let cfg_s = cfg.to_str().expect("utf-8 path");

    // Without a token: the header, and an address or localhost as Host.
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "guard");
    assert_refused(
        port,
        &[
            ("Host: 127.0.0.1\r\n", "X-Zetl-Request"),
            ("Host: 127.0.0.1\r\nOrigin: http://example.com\r\n", "X-Zetl-Request"),
            ("Host: rebound.example:80\r\nX-Zetl-Request: resync\r\n", "metrics.token"),
        ],
    );
    let preflight = http(port, "OPTIONS /resync HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(preflight.starts_with("HTTP/1.1 405") && !preflight.contains("Access-Control"), "{preflight}");
    // Another integration given the same metrics.listen: its `zetl resync` reaches this zetl,
    // which refuses it instead of copying its own table of that name.
    let other = env.config("other", &["public.*"]).set("metrics", map([("listen", listen.clone().into())])).write();
    let before = copied_rows(port);
    let other_s = other.to_str().expect("utf-8 path");
    let out = zetl_command_with(&["resync", "-c", other_s, "public.a"], TIMEOUT, &[]).expect("zetl resync finished");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("this is integration `guard`, not `other`"), "{err}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(copied_rows(port), before, "another integration's resync queued a copy");
    resync(cfg_s, &[]);
    assert!(poll(TIMEOUT, || copied_rows(port) > 2000.0), "public.a was not copied again");
    env.wait_caught_up(&mut zetl, "guard");
    zetl.stop();

    // With metrics.token: `Authorization: Bearer`, whatever the Host.
    let metrics = map([("listen", listen.into()), ("token", "${GUARD_TOKEN}".into())]);
    env.config("guard", &["public.*"]).set("metrics", metrics).write();
    let mut zetl = Zetl::spawn_with(&cfg, &env.log_path(), &[("GUARD_TOKEN", TOKEN)]);
    env.wait_caught_up(&mut zetl, "guard");
    env.sql("UPDATE a SET v = 1 WHERE id <= 100");
    assert_refused(
        port,
        &[
            ("Host: 127.0.0.1\r\nAuthorization: Bearer t0k3n-Zq9/x\r\n", "X-Zetl-Request"),
            ("Host: 127.0.0.1\r\nX-Zetl-Request: resync\r\n", "Authorization: Bearer"),
            ("Host: 127.0.0.1\r\nX-Zetl-Request: resync\r\nAuthorization: Bearer t0k3n-Zq9\r\n", "metrics.token"),
        ],
    );
    let by_name =
        post(port, &format!("Host: zetl:{port}\r\nX-Zetl-Request: resync\r\nAuthorization: Bearer {TOKEN}\r\n"));
    assert!(by_name.starts_with("HTTP/1.1 202"), "{by_name}");
    assert!(poll(TIMEOUT, || copied_rows(port) >= 2000.0), "public.a was not copied again");
    resync(cfg_s, &[("GUARD_TOKEN", TOKEN)]);
    assert!(poll(TIMEOUT, || copied_rows(port) >= 4000.0), "public.a was not copied a second time");
    env.wait_caught_up(&mut zetl, "guard");
    zetl.stop();
    let log = std::fs::read_to_string(env.log_path()).expect("log");
    assert!(log.contains("POST /resync refused") && !log.contains(TOKEN), "{log}");
    env.assert_equal(&["public.a"]);
}
