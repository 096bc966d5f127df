//! The settings of a DuckDB target (`target: { kind: duckdb, … }`, the default).

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuckdbTargetConfig {
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// DuckDB's `memory_limit` (its buffer pool; beyond it DuckDB spills to disk).
    #[serde(default = "default_memory_limit")]
    pub memory_limit: String,
}

impl Default for DuckdbTargetConfig {
    fn default() -> Self {
        DuckdbTargetConfig { path: default_path(), memory_limit: default_memory_limit() }
    }
}

fn default_path() -> PathBuf {
    "warehouse.duckdb".into()
}

fn default_memory_limit() -> String {
    "256MB".into()
}

impl zetl_core::config::Settings for DuckdbTargetConfig {
    fn validate(&self) -> Result<(), zetl_core::config::ValidationError> {
        Ok(())
    }
}
