//! MariaDB side of the end-to-end tests: a server per test (row binlog, full metadata), its
//! `mysql` source settings, and catching up by a sentinel row.

use super::config::{map, TestConfig};
use super::{poll, Env, Scratch, Server, Zetl, TIMEOUT};
use serde_yaml::Mapping;
use std::fs;
use std::path::Path;
use std::time::Duration;

pub use zetl_testkit::compare_mysql::assert_mysql_tables_equal;
pub use zetl_testkit::{MariaDbOptions, MariaDbServer};

/// The database every MySQL test replicates from.
pub const MY_DB: &str = "shop";
/// Written last by [`MyEnv::catch_up_and_stop`]: once the target has it, it has everything.
pub const SYNC_TABLE: &str = "_zetl_sync";
/// What zetl logs once it reads the binlog.
const STREAMING: &str = "streaming the binlog";

impl Server for MariaDbServer {
    fn source(&self) -> Mapping {
        map([("kind", "mysql".into()), ("url", self.url(MY_DB).into())])
    }
}

/// A test replicating from MariaDB.
pub type MyEnv = Env<MariaDbServer>;

impl MyEnv {
    pub fn start(test: &str) -> MyEnv {
        Self::start_with(test, MariaDbOptions::default())
    }

    pub fn start_with(test: &str, opts: MariaDbOptions) -> MyEnv {
        let scratch = Scratch::new(test);
        let db = MariaDbServer::start(opts).unwrap_or_else(|e| panic!("start MariaDB: {e}"));
        let env = Env::new(db, scratch);
        env.server
            .sql(
                "",
                &format!(
                    "CREATE DATABASE IF NOT EXISTS {MY_DB}; CREATE TABLE {MY_DB}.{SYNC_TABLE} (n bigint PRIMARY KEY)"
                ),
            )
            .unwrap_or_else(|e| panic!("create the test database: {e}"));
        env
    }

    pub fn url(&self) -> String {
        self.server.url(MY_DB)
    }

    /// Runs SQL at the source (as root) and returns its output; panics on errors.
    pub fn sql(&self, sql: &str) -> String {
        self.server.sql(MY_DB, sql).unwrap_or_else(|e| panic!("SQL at the source failed: {e}\n--- SQL ---\n{sql}"))
    }

    /// Integration `name` replicating `shop.*` (`.include` replaces it), metrics off.
    pub fn config(&self, name: &str) -> TestConfig {
        self.base_config(name).include(&[&format!("{MY_DB}.*")]).metrics_off()
    }

    /// Starts zetl and waits until it reads the binlog (the initial copy, if any, is done).
    pub fn run_zetl_streaming(&self, config: &Path) -> Zetl {
        self.wait_streaming(|| self.run_zetl(config))
    }

    /// Starts zetl with `start` and waits until it reads the binlog.
    pub fn wait_streaming(&self, start: impl FnOnce() -> Zetl) -> Zetl {
        let before = self.log_count(STREAMING);
        let mut zetl = start();
        let ok = poll(TIMEOUT, || {
            if let Some(status) = zetl.try_exit() {
                panic!("zetl exited ({status}) before it streamed");
            }
            self.log_count(STREAMING) > before
        });
        assert!(ok, "zetl did not start streaming within {TIMEOUT:?}");
        zetl
    }

    fn log_count(&self, needle: &str) -> usize {
        fs::read_to_string(self.log_path()).map(|t| t.matches(needle).count()).unwrap_or(0)
    }

    /// Writes a sentinel row after everything so far, then stops zetl (SIGTERM) and looks
    /// for the row in the target; until it is there, zetl is started again and given more
    /// time. Returns with zetl stopped and the target holding every change written before.
    pub fn catch_up_and_stop(&self, zetl: Zetl, config: &Path) {
        self.catch_up_and_stop_with(zetl, config, |n| self.target_synced(&Self::sync_count(n)));
    }

    /// [`MyEnv::catch_up_and_stop`] into another target: `holds(n)` says whether the target
    /// has sentinel row `n` (of `SYNC_TABLE`, column `n`).
    pub fn catch_up_and_stop_with(&self, zetl: Zetl, config: &Path, holds: impl Fn(u64) -> bool) {
        let n = self.write_sync();
        let waits = (Duration::from_millis(500), Duration::from_secs(4));
        self.stop_when_synced(zetl, config, waits, || holds(n));
    }

    /// The `SELECT count(*)` that finds sentinel `n` at a SQL target.
    pub fn sync_count(n: u64) -> String {
        format!("SELECT count(*) FROM {MY_DB}.{SYNC_TABLE} WHERE n = {n}")
    }

    /// Writes the next sentinel row at the source; returns its number.
    fn write_sync(&self) -> u64 {
        let n = self.next_sync();
        self.sql(&format!("INSERT INTO {MY_DB}.{SYNC_TABLE} VALUES ({n})"));
        n
    }

    /// Like [`MyEnv::catch_up_and_stop`], but zetl is not started again: the target must hold
    /// every change written before when zetl is stopped after a few seconds of catching up.
    pub fn catch_up_once_and_stop(&self, mut zetl: Zetl) {
        let n = self.write_sync();
        std::thread::sleep(Duration::from_secs(6));
        if let Some(status) = zetl.try_exit() {
            panic!("zetl exited ({status}) while the test waited for it to catch up");
        }
        zetl.stop();
        assert!(self.target_synced(&Self::sync_count(n)), "zetl did not catch up within one run of 6 s");
    }

    /// Compares the listed tables (`shop.t`) between source and target; zetl must be stopped.
    pub fn assert_equal(&self, tables: &[&str]) {
        assert_mysql_tables_equal(&self.server, &self.duckdb_path(), tables);
    }
}

/// Waits until `ready` or [`TIMEOUT`]; false if it never was.
pub fn eventually(ready: impl FnMut() -> bool) -> bool {
    poll(TIMEOUT, ready)
}
