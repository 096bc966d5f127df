//! DynamoDB side of the end-to-end tests: a moto server per test, the YAML config for a
//! `dynamodb` source, and catching up by a sentinel item written into each table last.

use super::{Scratch, Zetl, TIMEOUT};
use std::cell::Cell;
use std::path::{Path, PathBuf};

pub use zetl_testkit::compare_dynamo::{assert_dynamo_equal, dynamo};
pub use zetl_testkit::MotoServer;

/// moto takes any keys; zetl finds them where the AWS chain looks first. No instance metadata:
/// a missing key must fail at once, not after IMDS timeouts.
pub const CREDENTIALS: [(&str, &str); 3] =
    [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_EC2_METADATA_DISABLED", "true")];

pub struct DynEnv {
    pub moto: MotoServer,
    pub scratch: Scratch,
    sync: Cell<u64>,
}

impl DynEnv {
    pub fn start(test: &str) -> DynEnv {
        let moto = MotoServer::start().unwrap_or_else(|e| panic!("start moto: {e}"));
        DynEnv { moto, scratch: Scratch::new(test), sync: Cell::new(0) }
    }

    pub fn endpoint(&self) -> String {
        self.moto.endpoint_url()
    }

    /// Runs the test driver (`create`, `fill`, `mutate`, `churn`, `dump`) against moto.
    pub fn driver(&self, args: &[&str]) -> String {
        dynamo(&self.endpoint(), args)
    }

    pub fn duckdb_path(&self) -> PathBuf {
        self.scratch.path.join("warehouse.duckdb")
    }

    pub fn log_path(&self) -> PathBuf {
        self.scratch.path.join("zetl.log")
    }

    /// A config for integration `name` with `source_extra` (`key: value, ...`) in the source.
    pub fn write_config(&self, name: &str, tables: &str, source_extra: &str) -> PathBuf {
        let extra = if source_extra.is_empty() { String::new() } else { format!(", {source_extra}") };
        let path = self.scratch.path.join(format!("{name}.yaml"));
        let yaml = format!(
            "integrations:\n  - name: {name}\n    source: {{ kind: dynamodb, region: us-east-1, endpoint_url: \"{url}\"{extra} }}\n    \
             target: {{ kind: duckdb, path: \"{path}\" }}\n    tables: {tables}\n    \
             batch: {{ max_wait_ms: 100 }}\n    metrics: {{ listen: \"off\" }}\n",
            url = self.endpoint(),
            path = self.duckdb_path().display()
        );
        std::fs::write(&path, yaml).expect("write config");
        path
    }

    pub fn run_zetl(&self, config: &Path) -> Zetl {
        Zetl::spawn_with(config, &self.log_path(), &CREDENTIALS)
    }

    /// Writes a sentinel item into each table after everything so far, then stops zetl and
    /// looks for them at the target; until they are there, zetl runs again for longer.
    /// Returns with zetl stopped and the target holding every change written before.
    pub fn catch_up_and_stop(&self, mut zetl: Zetl, config: &Path, tables: &[&str]) {
        let n = self.sync.get() + 1;
        self.sync.set(n);
        for t in tables {
            self.driver(&["sync", t, &n.to_string()]);
        }
        let started = std::time::Instant::now();
        let mut wait = std::time::Duration::from_millis(1500);
        loop {
            std::thread::sleep(wait);
            if let Some(status) = zetl.try_exit() {
                panic!("zetl exited ({status}) while the test waited for it to catch up");
            }
            zetl.stop();
            if tables.iter().all(|t| self.target_has_sync(t, n)) {
                return;
            }
            assert!(started.elapsed() < TIMEOUT * 2, "zetl did not catch up with the source");
            wait = (wait * 2).min(std::time::Duration::from_secs(8));
            zetl = self.run_zetl(config);
        }
    }

    fn target_has_sync(&self, table: &str, n: u64) -> bool {
        self.target_value(&format!("SELECT count(*) FROM dynamodb.\"{table}\" WHERE pk = 'sync' AND sk = '{n}'"))
            .is_some_and(|c| c == "1")
    }

    /// One value from the target as text (zetl must be stopped); `None` when it cannot be read.
    pub fn target_value(&self, sql: &str) -> Option<String> {
        super::duckdb_value(&self.duckdb_path(), sql)
    }

    /// Changes the target as a user would between runs (zetl must be stopped).
    pub fn target_sql(&self, sql: &str) {
        super::duckdb_exec(&self.duckdb_path(), sql);
    }

    pub fn assert_equal(&self, table: &str) {
        assert_dynamo_equal(&self.endpoint(), table, &self.duckdb_path());
    }
}
