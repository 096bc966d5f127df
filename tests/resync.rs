//! `zetl resync`: a running integration copies a table again while the others keep streaming;
//! a stopped one copies it at its next start. Both end with target == source.

use crate::common;
use common::config::map;

use common::{poll, zetl_command, TestEnv, TIMEOUT};
use std::io::{Read, Write};
use std::net::TcpStream;

fn scrape(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn copied_rows(metrics: &str, table: &str) -> f64 {
    let series = format!("zetl_snapshot_rows_total{{integration=\"resync\",table=\"{table}\"}}");
    metrics.lines().find(|l| l.starts_with(&series)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

#[test]
fn resync_while_running_and_while_stopped() {
    let env = TestEnv::start("resync");
    env.sql(
        "CREATE TABLE a (id int PRIMARY KEY, v int); INSERT INTO a SELECT g, 0 FROM generate_series(1, 2000) g;\n\
         CREATE TABLE b (id int PRIMARY KEY, v int); INSERT INTO b SELECT g, 0 FROM generate_series(1, 2000) g;",
    );
    let port = zetl_testkit::free_port();
    let metrics = map([("listen", format!("127.0.0.1:{port}").into())]);
    let cfg = env.config("resync", &["public.*"]).set("metrics", metrics).write();
    let cfg_s = cfg.to_str().expect("utf-8 path");
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "resync");

    std::thread::scope(|s| {
        let workload = s.spawn(|| {
            for i in 0..60 {
                env.sql(&format!(
                    "BEGIN; UPDATE a SET v = v + 1 WHERE id % 7 = {m}; UPDATE b SET v = v + 1 WHERE id % 5 = {n}; \
                     INSERT INTO a VALUES ({k}, {i}); COMMIT;",
                    m = i % 7,
                    n = i % 5,
                    k = 10_000 + i
                ));
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        let out = zetl_command(&["resync", "-c", cfg_s, "public.a"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("resync queued: public.a"), "{text}");
        let recopied = poll(TIMEOUT, || copied_rows(&scrape(port), "public.a") > 2000.0);
        assert!(recopied, "public.a was not copied again:\n{}", scrape(port));
        workload.join().expect("workload");
    });
    env.wait_caught_up(&mut zetl, "resync");
    zetl.stop();
    env.assert_equal(&["public.a", "public.b"]);

    // Stopped: marked in the target, copied at the next start.
    env.sql("UPDATE b SET v = -1 WHERE id <= 10");
    let out = zetl_command(&["resync", "-c", cfg_s, "public.b"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("marked"));
    let out = zetl_command(&["resync", "-c", cfg_s, "public.nope"]);
    assert_ne!(out.status.code(), Some(0));
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "resync");
    let copied_again = poll(TIMEOUT, || copied_rows(&scrape(port), "public.b") >= 2000.0);
    assert!(copied_again, "public.b was not copied at start:\n{}", scrape(port));
    zetl.stop();
    env.assert_equal(&["public.a", "public.b"]);
}
