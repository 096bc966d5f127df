//! The target of an integration, for the verbs that look at or mark its `_zetl` state
//! (`status`, `resync`, `check`). Targets block: call these off the async threads.

use anyhow::{Context, Result};
use zetl_core::apply::DeadLetter;
use zetl_core::config::{DuckdbTargetConfig, Integration, TargetConfig};
use zetl_core::status::TargetStatus;
use zetl_core::TableId;
use zetl_duckdb::DuckdbTarget;
use zetl_pg_target::PgTarget;

/// `_zetl` as it is now, read-only.
pub fn read_status(integration: &Integration) -> Result<TargetStatus> {
    Ok(match &integration.target {
        TargetConfig::Duckdb(duck) => zetl_duckdb::status::read_status(&duck.path, &integration.name)?,
        TargetConfig::Postgres(pg) => zetl_pg_target::read_status(pg.url.expose(), &integration.name)?,
    })
}

/// Marks tables for a new copy at the next start; returns the ones the target never copied.
pub fn request_resync(integration: &Integration, tables: &[TableId]) -> Result<Vec<TableId>> {
    let mut unknown = Vec::new();
    match &integration.target {
        TargetConfig::Duckdb(duck) => {
            let target = open_duckdb(integration, duck).context(HELD)?;
            for t in tables {
                if !target.request_resync(t)? {
                    unknown.push(t.clone());
                }
            }
        }
        TargetConfig::Postgres(pg) => {
            let mut target = PgTarget::connect(pg.url.expose(), &integration.name, pg.schemas.clone())?;
            for t in tables {
                if !target.request_resync(t)? {
                    unknown.push(t.clone());
                }
            }
        }
    }
    Ok(unknown)
}

/// Forgets the stored position: the next start copies everything again.
pub fn forget_position(integration: &Integration) -> Result<()> {
    match &integration.target {
        TargetConfig::Duckdb(duck) => {
            open_duckdb(integration, duck).context(STOP_FIRST)?.forget_position()?;
        }
        TargetConfig::Postgres(pg) => {
            PgTarget::connect(pg.url.expose(), &integration.name, pg.schemas.clone())?.forget_position()?;
        }
    }
    Ok(())
}

/// The changes the target set aside (apply.on_error: dead_letter).
pub fn list_dead_letters(integration: &Integration) -> Result<Vec<DeadLetter>> {
    Ok(match &integration.target {
        TargetConfig::Duckdb(duck) => open_duckdb(integration, duck).context(STOP_FIRST)?.list_dead_letters()?,
        TargetConfig::Postgres(pg) => {
            PgTarget::connect(pg.url.expose(), &integration.name, pg.schemas.clone())?.list_dead_letters()?
        }
    })
}

/// Applies dead letters again (all pending, or `ids`): how many were, and (id, error) of the rest.
pub fn replay_dead_letters(integration: &Integration, ids: &[i64]) -> Result<(u64, Vec<(i64, String)>)> {
    Ok(match &integration.target {
        TargetConfig::Duckdb(duck) => open_duckdb(integration, duck).context(STOP_FIRST)?.replay_dead_letters(ids)?,
        TargetConfig::Postgres(pg) => {
            PgTarget::connect(pg.url.expose(), &integration.name, pg.schemas.clone())?.replay_dead_letters(ids)?
        }
    })
}

fn open_duckdb(integration: &Integration, duck: &DuckdbTargetConfig) -> Result<DuckdbTarget, zetl_duckdb::DuckdbError> {
    DuckdbTarget::open_with_memory(&duck.path, &integration.name, Some(&duck.memory_limit))
}

/// A DuckDB file is open to one process at a time.
const STOP_FIRST: &str = "opening the target (stop `zetl run` first)";

const HELD: &str =
    "zetl run seems to hold the target but does not answer on metrics.listen; stop it, or enable metrics.listen";
