//! Stopping, crashing and reconnecting: whatever happens to zetl or the source, the target ends
//! equal to the source, with nothing lost and nothing applied twice.

use crate::common;

use common::{poll, wait_for, Rng, TestEnv, Zetl};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SCHEMA: &str = "CREATE TABLE acct (id int PRIMARY KEY, v text, n int);\n\
     CREATE TABLE ledger (k int, note text);\n\
     INSERT INTO acct SELECT g, 'init', 0 FROM generate_series(1, 2000) g;\n\
     INSERT INTO ledger SELECT g % 10, 'init' FROM generate_series(1, 2000) g;";

const TABLES: &[&str] = &["public.acct", "public.ledger"];

/// One explicit multi-statement transaction of random inserts, updates (also of the key) and
/// deletes on `acct`, and (duplicate) inserts into the keyless `ledger`.
fn random_transaction(rng: &mut Rng, i: u64) -> String {
    let mut sql = String::from("BEGIN;\n");
    for _ in 0..rng.range(1, 6) {
        let k = rng.range(1, 2500);
        let stmt = match rng.range(0, 10) {
            0..=3 => format!(
                "INSERT INTO acct VALUES ({k}, 'ins {i}', 1) \
                 ON CONFLICT (id) DO UPDATE SET v = 'upsert {i}', n = acct.n + 1;\n"
            ),
            4..=6 => format!("UPDATE acct SET n = n + 1, v = 'upd {i}' WHERE id = {k};\n"),
            7 => format!("DELETE FROM acct WHERE id = {k};\n"),
            8 => format!(
                "UPDATE acct SET id = id + 10000 WHERE id = {k} \
                 AND NOT EXISTS (SELECT 1 FROM acct WHERE id = {k} + 10000);\n"
            ),
            _ => format!("INSERT INTO ledger VALUES ({}, 'dup {i}'), ({0}, 'dup {i}');\n", k % 10),
        };
        sql.push_str(&stmt);
    }
    sql.push_str(&format!("INSERT INTO ledger VALUES ({}, 'txn {i}');\nCOMMIT;\n", i % 10));
    sql
}

/// Runs random transactions (three per psql call) until `stop` or `max` transactions; returns
/// how many psql calls failed (e.g. while the source restarts) when `tolerate_errors`.
fn workload(env: &TestEnv, seed: u64, max: u64, stop: &AtomicBool, done: &AtomicU64, tolerate_errors: bool) -> u64 {
    let mut rng = Rng::seeded(seed);
    let mut failed = 0;
    let mut i = 0;
    while i < max && !stop.load(Ordering::Relaxed) {
        let script: String = (0..3).map(|j| random_transaction(&mut rng, i + j)).collect();
        i += 3;
        match env.server.psql(common::DB, &script) {
            Ok(_) => {
                done.fetch_add(3, Ordering::Relaxed);
            }
            Err(e) if tolerate_errors => {
                failed += 1;
                std::thread::sleep(Duration::from_millis(100));
                let _ = e;
            }
            Err(e) => panic!("workload transaction failed: {e}"),
        }
    }
    failed
}

fn count_in_log(env: &TestEnv, needle: &str) -> usize {
    std::fs::read_to_string(env.log_path()).unwrap_or_default().matches(needle).count()
}

#[test]
fn stop_change_source_and_resume() {
    let env = TestEnv::start("resume");
    env.sql(SCHEMA);
    let config = env.config("resume", &["public.*"]).write();
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);

    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "resume");
    workload(&env, 1, 60, &stop, &done, false);
    env.wait_caught_up(&mut zetl, "resume");
    zetl.stop();
    env.assert_equal(TABLES);

    // Changes while zetl is stopped.
    workload(&env, 2, 90, &stop, &done, false);
    env.sql("INSERT INTO ledger SELECT 1, 'while stopped' FROM generate_series(1, 100)");
    env.sql("TRUNCATE acct; INSERT INTO acct VALUES (1, 'after truncate', 1);");
    workload(&env, 3, 30, &stop, &done, false);

    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "resume");
    zetl.stop();
    env.assert_equal(TABLES);

    // A restart with nothing new must not apply anything twice either.
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "resume");
    zetl.stop();
    env.assert_equal(TABLES);
    assert_eq!(
        count_in_log(&env, "initial copy starts"),
        1,
        "zetl resumed from its checkpoint each time (no new initial copy)"
    );
}

#[test]
fn kill_9_during_a_concurrent_workload() {
    let env = TestEnv::start("kill9");
    env.sql(SCHEMA);
    let config = env.config("kill9", &["public.*"]).write();
    let mut rng = Rng::from_env_or_clock();
    let seed = rng.next();
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);

    std::thread::scope(|s| {
        let worker = s.spawn(|| workload(&env, seed, 3000, &stop, &done, false));
        let mut zetl = env.run_zetl(&config);
        for round in 1..=3 {
            let pause = Duration::from_millis(rng.range(300, 2000));
            std::thread::sleep(pause);
            eprintln!("kill -9 #{round} after {pause:?} ({} transactions so far)", done.load(Ordering::Relaxed));
            zetl.kill9();
            zetl = env.run_zetl(&config);
        }
        std::thread::sleep(Duration::from_millis(rng.range(300, 1500)));
        stop.store(true, Ordering::Relaxed);
        worker.join().expect("workload thread panicked");
        eprintln!("workload: {} transactions", done.load(Ordering::Relaxed));
        env.wait_caught_up(&mut zetl, "kill9");
        zetl.stop();
    });
    env.assert_equal(TABLES);
    assert_eq!(
        env.target_value("SELECT phase FROM _zetl.checkpoints WHERE integration = 'kill9'"),
        Some("streaming".into())
    );
}

/// The source restarted (fast shutdown), then crashed (immediate shutdown), under a workload:
/// zetl reconnects each time and ends equal, nothing lost or applied twice.
#[test]
fn source_restart_while_streaming() {
    let env = TestEnv::start("pgrestart");
    env.sql(SCHEMA);
    let config = env.config("pgrestart", &["public.*"]).write();
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);

    let mut zetl: Zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "pgrestart");
    let failed = std::thread::scope(|s| {
        let worker = s.spawn(|| workload(&env, 7, 600, &stop, &done, true));
        std::thread::sleep(Duration::from_millis(800));
        env.server.restart().unwrap_or_else(|e| panic!("restart PostgreSQL: {e}"));
        std::thread::sleep(Duration::from_millis(1500));
        // A crash: the slot comes back as of the last checkpoint, behind what zetl committed,
        // so the server sends transactions again that the target has already.
        env.server.crash_and_restart().unwrap_or_else(|e| panic!("crash and restart PostgreSQL: {e}"));
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        worker.join().expect("workload thread panicked")
    });
    eprintln!("workload: {} transactions, {failed} psql calls failed around the restart", done.load(Ordering::Relaxed));
    env.sql("INSERT INTO ledger VALUES (42, 'after the restart')");
    env.wait_caught_up(&mut zetl, "pgrestart");
    zetl.stop();
    env.assert_equal(TABLES);
}

/// SIGTERM while the source is down (zetl waiting to reconnect) stops zetl promptly.
#[test]
fn sigterm_while_the_source_is_down() {
    let env = TestEnv::start("termdown");
    env.sql(SCHEMA);
    let config = env.config("termdown", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "termdown");
    env.server.stop().unwrap_or_else(|e| panic!("stop PostgreSQL: {e}"));
    // Long enough for a few failed reconnects (0.5 s, 1 s, 2 s, 4 s, 8 s backoff).
    std::thread::sleep(Duration::from_secs(8));
    assert!(zetl.try_exit().is_none(), "zetl keeps trying while the source is down");
    let asked = Instant::now();
    zetl.send_term();
    let limit = Duration::from_secs(5);
    let exited = poll(limit, || zetl.try_exit().is_some());
    let status = zetl.try_exit();
    env.server.restart().unwrap_or_else(|e| panic!("start PostgreSQL again: {e}"));
    assert!(
        exited,
        "zetl did not exit within {limit:?} of SIGTERM while the source was down \
         (waited {:?})",
        asked.elapsed()
    );
    eprintln!("zetl exited with {status:?} {:?} after SIGTERM", asked.elapsed());
}

/// SIGTERM during a long initial copy stops zetl without finishing the copy (and exits 0),
/// keeping the rows copied so far: the next start continues after them, and the target equals
/// the source.
#[test]
fn sigterm_during_the_initial_copy_stops_it() {
    let env = TestEnv::start("termcopy");
    env.big_table(2_000_000);
    let config = env.config("termcopy", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    wait_for("the initial copy to start", &mut zetl, || count_in_log(&env, "initial copy starts") == 1);
    std::thread::sleep(Duration::from_millis(500));
    zetl.stop();
    assert_eq!(count_in_log(&env, "stopped during the initial copy"), 1, "zetl did not stop in the copy");
    assert_eq!(count_in_log(&env, "initial copy complete"), 0, "zetl finished the copy before it stopped");

    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "termcopy");
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    let kept: u64 = log
        .lines()
        .find(|l| l.contains("the copy continues after the rows committed"))
        .and_then(|l| l.split("rows=").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("the second start did not continue the copy:\n{log}"));
    assert!(kept > 0, "no rows were kept from the first start");
    zetl.stop();
    env.assert_equal(&["public.big"]);
}

/// The server ends zetl's SQL session (what a restart, a failover or `pg_terminate_backend`
/// does): zetl reconnects by itself, as it does when the replication connection is ended.
#[test]
fn sql_session_terminated_by_the_server() {
    let env = TestEnv::start("terminated");
    env.sql(SCHEMA);
    let config = env.config("terminated", &["public.*"]).write();
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "terminated");
    let ended = env.sql_value(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'zetl' AND backend_type = 'client backend'",
    );
    assert_ne!(ended, "0", "zetl has an SQL session to end");
    // Table discovery (every second) uses that session next.
    std::thread::sleep(Duration::from_secs(3));
    workload(&env, 11, 60, &stop, &done, false);
    env.wait_caught_up(&mut zetl, "terminated");
    zetl.stop();
    env.assert_equal(TABLES);
}

/// The slot fell further behind than `max_slot_wal_keep_size` while zetl was stopped, and the
/// server invalidated it: the changes since the checkpoint are gone. zetl must stop by itself
/// with the reason and the fix, acknowledging nothing; the fix (`zetl resync --all`) then
/// copies everything again and the target ends equal.
#[test]
fn an_invalidated_slot_stops_with_the_fix() {
    let keep = vec![("max_slot_wal_keep_size".to_string(), "1MB".to_string())];
    let env = TestEnv::start_with("slot-lost", common::PgOptions { extra_conf: keep, ..Default::default() });
    env.sql(SCHEMA);
    let config = env.config("lost", &["public.*"]).write();
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "lost");
    zetl.stop();
    // Several WAL segments past the slot, then checkpoints that remove them.
    for round in 0..4 {
        env.sql(&format!(
            "INSERT INTO ledger SELECT g % 10, md5(g::text) || '{round}' FROM generate_series(1, 100000) g;\n\
             SELECT pg_switch_wal(); CHECKPOINT;"
        ));
    }
    let status = env.sql_value("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'zetl_lost'");
    assert_eq!(status, "lost", "the server did not invalidate the slot");

    let cfg = config.to_str().expect("utf-8 path");
    let out = common::zetl_command(&["check", "-c", cfg]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(common::EXIT_CHECK_CODE), "{report}");
    assert!(report.lines().any(|l| l.starts_with('✗') && l.contains("was invalidated by the server")), "{report}");
    let mut zetl = env.run_zetl(&config);
    let exited = poll(common::TIMEOUT, || zetl.try_exit().is_some());
    assert!(exited, "zetl did not stop by itself on an invalidated slot");
    assert_eq!(zetl.try_exit().and_then(|s| s.code()), Some(1));
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(log.contains("replication slot `zetl_lost` was invalidated by the server"), "{log}");
    assert!(log.contains("`zetl resync -c FILE -i lost --all`"), "the fix is not named:\n{log}");

    let out = common::zetl_command(&["resync", "-c", cfg, "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut zetl = env.run_zetl(&config);
    env.wait_caught_up(&mut zetl, "lost");
    zetl.stop();
    env.assert_equal(TABLES);
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: std::path::PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).expect("make the mount point");
        let options = format!("size={size},mode=1777");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "zetl-test"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount a tmpfs (needs root): {}", String::from_utf8_lossy(&out.stderr));
        Tmpfs(dir)
    }

    fn resize(&self, size: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "resize the tmpfs: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).output();
    }
}

/// The directory for large transactions fills up (TMPDIR on a 2 MB tmpfs) while a
/// transaction the server streams before its commit is spilled there: zetl stops by itself,
/// naming the directory and the fix, with nothing of the transaction acknowledged. Given room,
/// the next run applies the transaction whole.
#[test]
fn a_full_spill_directory_stops_with_the_fix_and_loses_nothing() {
    let small = vec![("logical_decoding_work_mem".to_string(), "64kB".to_string())];
    let env = TestEnv::start_with("spill-full", common::PgOptions { extra_conf: small, ..Default::default() });
    env.sql(SCHEMA);
    let tmp = Tmpfs::mount(env.scratch.path.join("tmp"), "2m");
    let tmpdir = tmp.0.to_str().expect("utf-8 path").to_string();
    let config = env.config("spill", &["public.*"]).write();
    let with_tmp = [("TMPDIR", tmpdir.as_str())];
    let run = || Zetl::spawn_with(&config, &env.log_path(), &with_tmp);
    let mut zetl = run();
    env.wait_caught_up(&mut zetl, "spill");
    env.sql(
        "BEGIN; INSERT INTO acct SELECT g, repeat(md5(g::text), 4), g FROM generate_series(100001, 140000) g; \
         UPDATE acct SET n = n + 1 WHERE id <= 2000; INSERT INTO ledger VALUES (1, 'in the big one'); COMMIT;",
    );
    let exited = poll(common::TIMEOUT, || zetl.try_exit().is_some());
    assert!(exited, "zetl did not stop by itself when the spill directory was full");
    assert_eq!(zetl.try_exit().and_then(|s| s.code()), Some(1));
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    let named = format!("cannot keep large transactions on disk in {tmpdir}/zetl-spill-spill-");
    assert!(log.contains(&named), "{log}");
    assert!(log.contains("set TMPDIR to a directory with room"), "{log}");

    tmp.resize("256m");
    let mut zetl = run();
    env.wait_caught_up(&mut zetl, "spill");
    zetl.stop();
    env.assert_equal(TABLES);
    let left = std::fs::read_dir(&tmp.0).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "spill directories left behind in {tmpdir}");
}
