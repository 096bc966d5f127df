//! What `zetl status` reads from a DuckDB target.

use crate::error::{Context, DuckdbError};
use duckdb::{params, AccessMode, Config, Connection, OptionalExt};
use std::path::Path;
pub use zetl_core::status::{TableStatus, TargetStatus};
use zetl_core::{Phase, TableState};

/// Opens the file read-only. DuckDB lets one process write a file, so while `zetl run` holds
/// it this fails with a lock error the caller reports.
pub fn read_status(path: &Path, integration: &str) -> Result<TargetStatus, DuckdbError> {
    if !path.exists() {
        return Ok(TargetStatus::default());
    }
    let config = Config::default()
        .access_mode(AccessMode::ReadOnly)
        .map_err(|source| DuckdbError::Open { path: path.display().to_string(), cause: source })?;
    let conn = Connection::open_with_flags(path, config)
        .map_err(|source| DuckdbError::Open { path: path.display().to_string(), cause: source })?;
    let has_state: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM duckdb_tables() WHERE schema_name = '_zetl' AND table_name = 'checkpoints'",
            [],
            |r| r.get(0),
        )
        .context(|| "looking for _zetl".into())?;
    if !has_state {
        return Ok(TargetStatus::default());
    }
    let mut status = TargetStatus::default();
    let cp: Option<(String, String, String)> = conn
        .query_row(
            "SELECT phase, position, CAST(updated_at AS VARCHAR) FROM _zetl.checkpoints WHERE integration = ?",
            params![integration],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .context(|| "reading the checkpoint".into())?;
    if let Some((phase, position, at)) = cp {
        status.phase = Some(Phase::parse(&phase).map_err(DuckdbError::State)?);
        status.position = Some(position);
        status.updated_at = Some(at);
    }
    let mut stmt = conn
        .prepare(
            "SELECT table_schema, table_name, state, rows_copied, CAST(updated_at AS VARCHAR), state_reason \
             FROM _zetl.tables \
             WHERE integration = ? ORDER BY 1, 2",
        )
        .context(|| "reading table state".into())?;
    let rows = stmt
        .query_map(params![integration], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .context(|| "reading table state".into())?;
    for row in rows {
        let (schema, name, state, rows_copied, updated_at, reason) = row.context(|| "reading table state".into())?;
        let state = TableState::parse(&state).map_err(DuckdbError::State)?;
        status.tables.push(TableStatus { schema, name, state, rows_copied, updated_at, reason });
    }
    Ok(status)
}
