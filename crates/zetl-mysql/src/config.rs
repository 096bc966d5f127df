//! The settings of a MySQL / MariaDB source (`source: { kind: mysql, … }`), read through the
//! row binlog.

use serde::Deserialize;
use zetl_core::config::{require_scheme, SecretUrl, Settings, SnapshotConfig, ValidationError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSourceConfig {
    pub url: SecretUrl,
    /// The replica server id zetl registers with; default derived from the integration name.
    /// Must differ from every server and replica in the topology.
    pub server_id: Option<u32>,
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// Seconds between heartbeats the server sends while the binlog is idle.
    #[serde(default = "heartbeat_secs")]
    pub heartbeat_secs: u64,
}

impl Settings for MysqlSourceConfig {
    fn validate(&self) -> Result<(), ValidationError> {
        require_scheme(&self.url, &["mysql", "mariadb"])?;
        if self.server_id == Some(0) {
            return Err(ValidationError::new("server_id", "must not be 0 (the server refuses replicas without an id)"));
        }
        if self.heartbeat_secs == 0 || self.heartbeat_secs > 3600 {
            return Err(ValidationError::new("heartbeat_secs", "must be between 1 and 3600"));
        }
        self.snapshot.validate()
    }
}

fn heartbeat_secs() -> u64 {
    5
}
