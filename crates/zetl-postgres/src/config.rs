//! The settings of a PostgreSQL source (`source: { kind: postgres, … }`).

use serde::Deserialize;
use zetl_core::config::{require_scheme, SecretUrl, Settings, SnapshotConfig, ValidationError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    pub url: SecretUrl,
    /// Publication name; default `zetl_<integration>`.
    pub publication: Option<String>,
    /// Replication slot name; default `zetl_<integration>`.
    pub slot: Option<String>,
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// Seconds between looks for new tables that match the filters.
    #[serde(default = "table_discovery_secs")]
    pub table_discovery_secs: u64,
    /// `zetl check` fails when the slot retains more WAL than this (MiB).
    #[serde(default = "slot_wal_budget_mb")]
    pub slot_wal_budget_mb: u64,
}

impl Settings for PostgresSourceConfig {
    fn validate(&self) -> Result<(), ValidationError> {
        require_scheme(&self.url, &["postgres", "postgresql"])?;
        self.snapshot.validate()
    }
}

fn table_discovery_secs() -> u64 {
    10
}

fn slot_wal_budget_mb() -> u64 {
    10 * 1024
}
