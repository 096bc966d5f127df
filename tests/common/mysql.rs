//! MariaDB side of the end-to-end tests: a server per test (row binlog, full metadata), the
//! YAML config for a `mysql` source, and catching up by a sentinel row.

use super::{poll, Scratch, Zetl, TIMEOUT};
use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};

pub use zetl_testkit::compare_mysql::assert_mysql_tables_equal;
pub use zetl_testkit::{MariaDbOptions, MariaDbServer};

/// The database every MySQL test replicates from.
pub const MY_DB: &str = "shop";
/// Written last by [`MyEnv::catch_up_and_stop`]: once the target has it, it has everything.
const SYNC_TABLE: &str = "_zetl_sync";
/// What zetl logs once it reads the binlog.
const STREAMING: &str = "streaming the binlog";

pub struct MyEnv {
    pub db: MariaDbServer,
    pub scratch: Scratch,
    sync: Cell<u64>,
}

impl MyEnv {
    pub fn start(test: &str) -> MyEnv {
        Self::start_with(test, MariaDbOptions::default())
    }

    pub fn start_with(test: &str, opts: MariaDbOptions) -> MyEnv {
        let scratch = Scratch::new(test);
        let db = MariaDbServer::start(opts).unwrap_or_else(|e| panic!("start MariaDB: {e}"));
        let env = MyEnv { db, scratch, sync: Cell::new(0) };
        env.db
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
        self.db.url(MY_DB)
    }

    /// Runs SQL at the source (as root) and returns its output; panics on errors.
    pub fn sql(&self, sql: &str) -> String {
        self.db.sql(MY_DB, sql).unwrap_or_else(|e| panic!("SQL at the source failed: {e}\n--- SQL ---\n{sql}"))
    }

    pub fn duckdb_path(&self) -> PathBuf {
        self.scratch.path.join("warehouse.duckdb")
    }

    pub fn log_path(&self) -> PathBuf {
        self.scratch.path.join("zetl.log")
    }

    /// A config for integration `name` replicating `shop.*` (or `tables`, YAML of the
    /// `tables` key), 100 ms batches, metrics off; `source_extra` adds `key: value, ...`.
    pub fn write_config(&self, name: &str, tables: Option<&str>, source_extra: &str) -> PathBuf {
        let extra = if source_extra.is_empty() { String::new() } else { format!(", {source_extra}") };
        let tables = tables.map(str::to_string).unwrap_or_else(|| format!("{{ include: [\"{MY_DB}.*\"] }}"));
        let yaml = format!(
            "integrations:\n  \
               - name: {name}\n    \
                 source: {{ kind: mysql, url: \"{url}\"{extra} }}\n    \
                 target: {{ kind: duckdb, path: \"{path}\" }}\n    \
                 tables: {tables}\n    \
                 batch: {{ max_wait_ms: 100 }}\n    \
                 metrics: {{ listen: \"off\" }}\n",
            url = self.url(),
            path = self.duckdb_path().display(),
        );
        let path = self.scratch.path.join(format!("{name}.yaml"));
        fs::write(&path, yaml).expect("write the config");
        path
    }

    pub fn run_zetl(&self, config: &Path) -> Zetl {
        Zetl::spawn(config, &self.log_path())
    }

    /// Starts zetl and waits until it reads the binlog (the initial copy, if any, is done).
    pub fn run_zetl_streaming(&self, config: &Path) -> Zetl {
        let before = self.log_count(STREAMING);
        let mut zetl = self.run_zetl(config);
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
    pub fn catch_up_and_stop(&self, mut zetl: Zetl, config: &Path) {
        let n = self.sync.get() + 1;
        self.sync.set(n);
        self.sql(&format!("INSERT INTO {MY_DB}.{SYNC_TABLE} VALUES ({n})"));
        let started = std::time::Instant::now();
        let mut wait = std::time::Duration::from_millis(500);
        loop {
            std::thread::sleep(wait);
            if let Some(status) = zetl.try_exit() {
                panic!("zetl exited ({status}) while the test waited for it to catch up");
            }
            zetl.stop();
            if self.target_has_sync(n) {
                return;
            }
            assert!(started.elapsed() < TIMEOUT, "zetl did not catch up with the source within {TIMEOUT:?}");
            wait = (wait * 2).min(std::time::Duration::from_secs(4));
            zetl = self.run_zetl(config);
        }
    }

    /// Like [`MyEnv::catch_up_and_stop`], but zetl is not started again: the target must hold
    /// every change written before when zetl is stopped after a few seconds of catching up.
    pub fn catch_up_once_and_stop(&self, mut zetl: Zetl) {
        let n = self.sync.get() + 1;
        self.sync.set(n);
        self.sql(&format!("INSERT INTO {MY_DB}.{SYNC_TABLE} VALUES ({n})"));
        std::thread::sleep(std::time::Duration::from_secs(6));
        if let Some(status) = zetl.try_exit() {
            panic!("zetl exited ({status}) while the test waited for it to catch up");
        }
        zetl.stop();
        assert!(self.target_has_sync(n), "zetl did not catch up within one run of 6 s");
    }

    fn target_has_sync(&self, n: u64) -> bool {
        let Ok(duck) = duckdb::Connection::open_with_flags(
            self.duckdb_path(),
            duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly).expect("duckdb config"),
        ) else {
            return false;
        };
        duck.query_row(&format!("SELECT count(*) FROM {MY_DB}.{SYNC_TABLE} WHERE n = {n}"), [], |r| r.get::<_, i64>(0))
            .is_ok_and(|c| c == 1)
    }

    /// Compares the listed tables (`shop.t`) between source and target; zetl must be stopped.
    pub fn assert_equal(&self, tables: &[&str]) {
        assert_mysql_tables_equal(&self.db, &self.duckdb_path(), tables);
    }

    /// One value from the target (DuckDB opened read-only; zetl must be stopped).
    pub fn target_value(&self, sql: &str) -> Option<String> {
        super::duckdb_value(&self.duckdb_path(), sql)
    }
}

/// Waits until `ready` or [`TIMEOUT`]; false if it never was.
pub fn eventually(ready: impl FnMut() -> bool) -> bool {
    poll(TIMEOUT, ready)
}
