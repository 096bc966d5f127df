//! The settings of a MySQL / MariaDB source (`source: { kind: mysql, … }`), read through the
//! row binlog.

use serde::Deserialize;
use zetl_core::config::{require_scheme, SecretUrl, Settings, SnapshotConfig, ValidationError};
use zetl_core::TableId;

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
    /// `database.table`: a table zetl writes one row to before each chunk of a copy made
    /// while streaming, so that the chunk's snapshot is known to hold every transaction the
    /// stream has read (see `signal.rs`). Needed on MySQL to fill such copies in chunks;
    /// MariaDB tells a snapshot's binlog position and uses the table only when it is set.
    pub signal_table: Option<String>,
}

impl MysqlSourceConfig {
    /// The signal table, once validated.
    pub fn signal_table(&self) -> Option<TableId> {
        self.signal_table.as_deref().and_then(parse_table)
    }
}

/// `database.table`, both parts non-empty and free of quotes.
fn parse_table(text: &str) -> Option<TableId> {
    let (schema, name) = text.split_once('.')?;
    let fits = |part: &str| !part.is_empty() && !part.contains(['.', '`', '\'', '"']);
    (fits(schema) && fits(name)).then(|| TableId::new(schema, name))
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
        if let Some(text) = self.signal_table.as_deref().filter(|t| parse_table(t).is_none()) {
            let why = format!("`{text}` must be `database.table` (unquoted names, one dot)");
            return Err(ValidationError::new("signal_table", why));
        }
        self.snapshot.validate()
    }
}

fn heartbeat_secs() -> u64 {
    5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_table_is_named_database_dot_table() {
        assert_eq!(parse_table("zetl.signal"), Some(TableId::new("zetl", "signal")));
        for bad in ["signal", "zetl.", ".signal", "a.b.c", "`zetl`.signal", "zetl.sig'nal"] {
            assert_eq!(parse_table(bad), None, "{bad}");
        }
    }
}
