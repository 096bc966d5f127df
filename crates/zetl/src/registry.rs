//! The one place that turns an integration's configuration into its source and its target: a
//! new source or target is one line in each function here. Everything else holds them as
//! `AnySource` and `AnyTarget`.

use zetl_core::any_target::{erase, AnyTarget};
use zetl_core::check::{Outcome, Verdict};
use zetl_core::config::{Integration, SourceConfig, TargetConfig};
use zetl_core::source::{AnySource, Failed};
use zetl_core::status::TargetStatus;

pub fn source(integration: &Integration) -> Result<Box<dyn AnySource>, Failed> {
    let (name, tables) = (&integration.name, integration.tables.clone());
    Ok(match &integration.source {
        SourceConfig::Postgres(c) => {
            Box::new(zetl_postgres::PgSource::new(name, c.clone(), tables).map_err(Failed::of)?)
        }
        SourceConfig::Mysql(c) => Box::new(zetl_mysql::MySource::new(name, c.clone(), tables).map_err(Failed::of)?),
        #[cfg(feature = "dynamodb")]
        SourceConfig::Dynamodb(c) => Box::new(zetl_dynamodb::DynSource::new(c.clone(), tables)),
        #[cfg(not(feature = "dynamodb"))]
        SourceConfig::Dynamodb(_) => {
            let error = "this zetl was built without the DynamoDB source: build it with the default features";
            return Err(Failed { transient: false, error: error.into() });
        }
    })
}

/// Opens the target for writing (`_zetl` brought up to date). Blocks: call it off the async
/// threads.
pub fn target(integration: &Integration) -> Result<AnyTarget, Failed> {
    let (name, apply) = (&integration.name, integration.apply.clone());
    Ok(match &integration.target {
        TargetConfig::Duckdb(c) => erase(
            zetl_duckdb::DuckdbTarget::open_with_memory(&c.path, name, Some(&c.memory_limit))
                .map_err(Failed::of)?
                .with_apply_policy(apply),
        ),
        TargetConfig::Postgres(c) => erase(
            zetl_pg_target::PgTarget::connect(c.url.expose(), name, c.schemas.clone())
                .map_err(Failed::of)?
                .with_apply_policy(apply),
        ),
    })
}

/// The target's `_zetl` state, read-only (works beside a running zetl where the target
/// allows it). Blocks.
pub fn read_status(integration: &Integration) -> Result<TargetStatus, Failed> {
    let name = &integration.name;
    match &integration.target {
        TargetConfig::Duckdb(c) => zetl_duckdb::status::read_status(&c.path, name).map_err(Failed::of),
        TargetConfig::Postgres(c) => zetl_pg_target::read_status(c.url.expose(), name).map_err(Failed::of),
    }
}

/// `zetl check`'s line for the target: reachable, nothing changed.
pub async fn check_target(integration: &Integration) -> Verdict {
    let (ok, detail) = match &integration.target {
        TargetConfig::Duckdb(c) => match c.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => (false, format!("the directory of {} does not exist", c.path.display())),
            _ => (true, format!("DuckDB file {}", c.path.display())),
        },
        TargetConfig::Postgres(c) => match zetl_postgres::conninfo::ConnInfo::from_url(c.url.expose()) {
            Err(e) => (false, e.to_string()),
            Ok(info) => match info.connect_sql().await {
                Ok(_) => (true, format!("PostgreSQL {info:?}")),
                Err(e) => (false, e.to_string()),
            },
        },
    };
    (Outcome::from(ok), "target".into(), detail)
}
