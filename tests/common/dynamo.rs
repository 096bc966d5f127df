//! DynamoDB side of the end-to-end tests: a moto server per test, its `dynamodb` source
//! settings, and catching up by a sentinel item written into each table last.

use super::config::{map, TestConfig};
use super::{Env, Scratch, Server, Zetl};
use serde_yaml::Mapping;
use std::path::Path;
use std::time::Duration;

pub use zetl_testkit::compare_dynamo::{assert_dynamo_equal, dynamo};
pub use zetl_testkit::MotoServer;

/// moto takes any keys; zetl finds them where the AWS chain looks first. No instance metadata:
/// a missing key must fail at once, not after IMDS timeouts.
pub const CREDENTIALS: [(&str, &str); 3] =
    [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_EC2_METADATA_DISABLED", "true")];

impl Server for MotoServer {
    fn source(&self) -> Mapping {
        map([("kind", "dynamodb".into()), ("region", "us-east-1".into()), ("endpoint_url", self.endpoint_url().into())])
    }

    fn zetl_env(&self) -> &'static [(&'static str, &'static str)] {
        &CREDENTIALS
    }
}

/// A test replicating from DynamoDB (moto).
pub type DynEnv = Env<MotoServer>;

impl DynEnv {
    pub fn start(test: &str) -> DynEnv {
        let moto = MotoServer::start().unwrap_or_else(|e| panic!("start moto: {e}"));
        Env::new(moto, Scratch::new(test))
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint_url()
    }

    /// Runs the test driver (`create`, `fill`, `mutate`, `churn`, `dump`) against moto.
    pub fn driver(&self, args: &[&str]) -> String {
        dynamo(&self.endpoint(), args)
    }

    /// Integration `name` replicating `tables`, metrics off.
    pub fn config(&self, name: &str, tables: &[&str]) -> TestConfig {
        self.base_config(name).include(tables).metrics_off()
    }

    /// Writes a sentinel item into each table after everything so far, then stops zetl and
    /// looks for them at the target; until they are there, zetl runs again for longer.
    /// Returns with zetl stopped and the target holding every change written before.
    pub fn catch_up_and_stop(&self, zetl: Zetl, config: &Path, tables: &[&str]) {
        self.catch_up_and_stop_with(zetl, config, tables, |t, n| self.target_has_sync(t, n));
    }

    /// [`DynEnv::catch_up_and_stop`] for any target: `holds(table, n)` says whether the
    /// target has sentinel `n` of `table`.
    pub fn catch_up_and_stop_with(
        &self,
        zetl: Zetl,
        config: &Path,
        tables: &[&str],
        holds: impl Fn(&str, u64) -> bool,
    ) {
        let n = self.next_sync();
        for t in tables {
            self.driver(&["sync", t, &n.to_string()]);
        }
        // Runs grow to 30 s: moto serves a stream read from its oldest record at about 200
        // records/s, so a page of 1000 takes seconds, more beside other tests, and a run
        // stopped before its first page ends commits nothing.
        let waits = (Duration::from_millis(1500), Duration::from_secs(30));
        self.stop_when_synced(zetl, config, waits, || tables.iter().all(|t| holds(t, n)));
    }

    /// The `SELECT count(*)` that finds sentinel `n` of `table` at a SQL target.
    pub fn sync_count(table: &str, n: u64) -> String {
        format!("SELECT count(*) FROM dynamodb.\"{table}\" WHERE pk = 'sync' AND sk = '{n}'")
    }

    fn target_has_sync(&self, table: &str, n: u64) -> bool {
        self.target_synced(&Self::sync_count(table, n))
    }

    pub fn assert_equal(&self, table: &str) {
        assert_dynamo_equal(&self.endpoint(), table, &self.duckdb_path());
    }
}
