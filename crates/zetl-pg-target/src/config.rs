//! The settings of a PostgreSQL target (`target: { kind: postgres, … }`).

use serde::Deserialize;
use zetl_core::config::{require_scheme, SecretUrl, Settings, ValidationError};

/// A PostgreSQL database as the warehouse.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTargetConfig {
    pub url: SecretUrl,
    /// Source schema (MySQL: database) → target schema; unlisted ones keep their name.
    #[serde(default)]
    pub schemas: std::collections::HashMap<String, String>,
}

impl Settings for PostgresTargetConfig {
    fn validate(&self) -> Result<(), ValidationError> {
        require_scheme(&self.url, &["postgres", "postgresql"])
    }
}
