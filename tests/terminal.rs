//! The live copy progress line: drawn on a terminal (rows, rate, ETA per table, also for a
//! table never analysed), absent from logs that go to a file or a pipe.

use crate::common;

use common::{poll, TestEnv, TIMEOUT};
use std::process::{Command, Stdio};

#[test]
fn copy_progress_is_drawn_on_a_terminal_and_only_there() {
    let env = TestEnv::start("terminal");
    env.sql(
        "CREATE TABLE wide (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = off); \
         INSERT INTO wide SELECT g, repeat('x', 200) FROM generate_series(1, 1500000) g",
    );
    // Just loaded and never analysed, as a new user's table is: no statistics to go by.
    assert_eq!(env.sql_value("SELECT reltuples FROM pg_class WHERE relname = 'wide'"), "-1");
    let cfg = env.config("tty", &["public.*"]).write();
    // `script` gives zetl a pseudo-terminal and records what it draws there.
    let typescript = env.scratch.path.join("typescript");
    let command = format!("{} run -c {}", common::zetl_bin(), cfg.display());
    let mut child = Command::new("script")
        .args(["-q", "-f", "-e", "-c", &command])
        .arg(&typescript)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("run zetl under script(1)");
    let copied = poll(TIMEOUT, || {
        std::fs::read_to_string(&typescript).is_ok_and(|t| t.contains("initial copy committed at the target"))
    });
    let _ = Command::new("pkill").args(["-TERM", "-f", &format!("run -c {}", cfg.display())]).status();
    let _ = child.wait();
    let shown = std::fs::read_to_string(&typescript).unwrap_or_default();
    assert!(copied, "the copy did not finish:\n{shown}");
    let line = shown
        .split("\x1b[2K")
        .find(|part| part.starts_with("copying public.wide"))
        .unwrap_or_else(|| panic!("no progress line for public.wide was drawn:\n{shown}"));
    assert!(line.contains("% ") && line.contains(" rows ") && line.contains("/s ETA "), "{line}");

    // The same run with its logs in a file: no terminal control in them.
    std::fs::remove_file(env.duckdb_path()).ok();
    let mut zetl = env.run_zetl(&cfg);
    let log = env.log_path();
    let done = poll(TIMEOUT, || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("initial copy committed")));
    assert!(zetl.try_exit().is_none() && done, "zetl did not copy with its logs in a file");
    zetl.stop();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains('\x1b'), "terminal control codes in a log file:\n{text}");
}
