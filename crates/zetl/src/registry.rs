//! The one place that knows every kind of source and target: their settings under `kind:` in
//! the YAML file, and how each is built from them. A new source or target is a variant and a
//! line in each function here; everything else holds them as `AnySource` and `AnyTarget`.

use serde::{Deserialize, Deserializer};
use zetl_core::any_target::{erase, AnyTarget};
use zetl_core::check::Verdict;
use zetl_core::config::{kind, Settings, ValidationError};
use zetl_core::source::{AnySource, Failed};
use zetl_core::status::TargetStatus;

pub type Config = zetl_core::config::Config<SourceConfig, TargetConfig>;
pub type Integration = zetl_core::config::Integration<SourceConfig, TargetConfig>;

#[derive(Debug, Clone)]
pub enum SourceConfig {
    Postgres(zetl_postgres::PostgresSourceConfig),
    Mysql(zetl_mysql::MysqlSourceConfig),
    Dynamodb(dynamodb::Settings),
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (kind, rest) = kind::split_kind(d, "source", &["postgres", "mysql", "dynamodb"])?;
        Ok(match kind.as_str() {
            "postgres" => SourceConfig::Postgres(kind::settings("source", rest)?),
            "mysql" => SourceConfig::Mysql(kind::settings("source", rest)?),
            _ => SourceConfig::Dynamodb(kind::settings("source", rest)?),
        })
    }
}

impl Settings for SourceConfig {
    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            SourceConfig::Postgres(c) => c.validate(),
            SourceConfig::Mysql(c) => c.validate(),
            SourceConfig::Dynamodb(c) => c.validate(),
        }
    }
}

/// The DynamoDB source, when this binary is built with it (cargo feature `dynamodb`, on by
/// default).
#[cfg(feature = "dynamodb")]
mod dynamodb {
    use zetl_core::filter::TableFilter;
    use zetl_core::source::{AnySource, Failed};

    pub use zetl_dynamodb::DynamodbSourceConfig as Settings;

    pub fn source(settings: &Settings, tables: TableFilter) -> Result<Box<dyn AnySource>, Failed> {
        Ok(Box::new(zetl_dynamodb::DynSource::new(settings.clone(), tables)))
    }
}

/// Without it (a smaller, faster build for PostgreSQL and MySQL only), a DynamoDB integration
/// is refused when the file is read, saying how to get a build that has it.
#[cfg(not(feature = "dynamodb"))]
mod dynamodb {
    use serde::Deserialize;
    use zetl_core::config::ValidationError;
    use zetl_core::filter::TableFilter;
    use zetl_core::source::{AnySource, Failed};

    const MISSING: &str = "`dynamodb` needs a zetl built with the DynamoDB source: build it with the default \
                           features (`cargo build --release -p zetl`)";

    #[derive(Debug, Clone, Deserialize)]
    pub struct Settings {}

    impl zetl_core::config::Settings for Settings {
        fn validate(&self) -> Result<(), ValidationError> {
            Err(ValidationError::new("kind", MISSING))
        }
    }

    pub fn source(_: &Settings, _: TableFilter) -> Result<Box<dyn AnySource>, Failed> {
        Err(Failed { transient: false, error: MISSING.into() })
    }
}

#[derive(Debug, Clone)]
pub enum TargetConfig {
    Duckdb(zetl_duckdb::DuckdbTargetConfig),
    Postgres(zetl_pg_target::PostgresTargetConfig),
    Iceberg(zetl_iceberg::IcebergTargetConfig),
}

impl<'de> Deserialize<'de> for TargetConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (kind, rest) = kind::split_kind(d, "target", &["duckdb", "postgres", "iceberg"])?;
        Ok(match kind.as_str() {
            "duckdb" => TargetConfig::Duckdb(kind::settings("target", rest)?),
            "iceberg" => TargetConfig::Iceberg(kind::settings("target", rest)?),
            _ => TargetConfig::Postgres(kind::settings("target", rest)?),
        })
    }
}

/// An integration without `target:` replicates into a DuckDB file.
impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig::Duckdb(Default::default())
    }
}

impl Settings for TargetConfig {
    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            TargetConfig::Duckdb(c) => c.validate(),
            TargetConfig::Postgres(c) => c.validate(),
            TargetConfig::Iceberg(c) => c.validate(),
        }
    }

    fn accepts(&self, apply: &zetl_core::apply::ApplyPolicy) -> Result<(), String> {
        use zetl_core::apply::{DeleteMode, OnError};
        let TargetConfig::Iceberg(c) = self else { return Ok(()) };
        if apply.all().any(|a| a.deletes == DeleteMode::Soft) {
            return Err("apply.deletes: soft is not available on an Iceberg target yet".into());
        }
        if c.mode == zetl_iceberg::Mode::Changelog && apply.all().any(|a| a.on_error == OnError::DeadLetter) {
            return Err("apply.on_error: dead_letter: a changelog keeps every change in source order and sets \
                        none aside (use mode: mirror, or on_error: fail)"
                .into());
        }
        Ok(())
    }
}

pub fn source(integration: &Integration) -> Result<Box<dyn AnySource>, Failed> {
    let (name, tables) = (&integration.name, integration.tables.clone());
    Ok(match &integration.source {
        SourceConfig::Postgres(c) => {
            Box::new(zetl_postgres::PgSource::new(name, c.clone(), tables).map_err(Failed::of)?)
        }
        SourceConfig::Mysql(c) => Box::new(zetl_mysql::MySource::new(name, c.clone(), tables).map_err(Failed::of)?),
        SourceConfig::Dynamodb(c) => dynamodb::source(c, tables)?,
    })
}

/// What a target is opened for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `zetl run`: the integration's only writer there (a second one is refused).
    Writer,
    /// The operator's verbs (`resync`, `dead-letters`), next to a running writer or not.
    Admin,
}

/// Opens the target (`_zetl` brought up to date). Blocks: call it off the async threads.
pub fn target(integration: &Integration, role: Role) -> Result<AnyTarget, Failed> {
    let (name, apply) = (&integration.name, integration.apply.clone());
    Ok(match &integration.target {
        TargetConfig::Duckdb(c) => erase(
            zetl_duckdb::DuckdbTarget::open_with_memory(&c.path, name, Some(&c.memory_limit))
                .map_err(Failed::of)?
                .with_apply_policy(apply),
        ),
        TargetConfig::Postgres(c) => {
            let target = zetl_pg_target::PgTarget::connect(c.url.expose(), name, c.schemas.clone())
                .map_err(Failed::of)?
                .with_apply_policy(apply);
            // A DuckDB file is locked by the process that opens it; a database is not.
            erase(if role == Role::Writer { target.claim().map_err(Failed::of)? } else { target })
        }
        TargetConfig::Iceberg(c) => {
            let target = zetl_iceberg::IcebergTarget::open(c, name).map_err(Failed::of)?.with_apply_policy(apply);
            erase(if role == Role::Writer { target.claim().map_err(Failed::of)? } else { target })
        }
    })
}

/// How the writer batches for this target: a lake commits one snapshot per `commit_every`
/// (writing what it holds into open data files meanwhile), the others as `batch:` says.
pub fn batching(integration: &Integration) -> zetl_core::config::BatchConfig {
    let mut batch = integration.batch.clone();
    if let TargetConfig::Iceberg(c) = &integration.target {
        batch.max_wait_ms = c.commit_every.0.as_millis() as u64;
        batch.commit_by_time_only = true;
        batch.changelog = c.mode == zetl_iceberg::Mode::Changelog;
    }
    batch
}

/// The target's `_zetl` state, read-only (works beside a running zetl where the target
/// allows it). Blocks.
pub fn read_status(integration: &Integration) -> Result<TargetStatus, Failed> {
    let name = &integration.name;
    match &integration.target {
        TargetConfig::Duckdb(c) => zetl_duckdb::status::read_status(&c.path, name).map_err(Failed::of),
        TargetConfig::Postgres(c) => zetl_pg_target::read_status(c.url.expose(), name).map_err(Failed::of),
        TargetConfig::Iceberg(c) => zetl_iceberg::state::read_status(c, name).map_err(Failed::of),
    }
}

/// `zetl check`'s line for the target: reachable, nothing changed.
pub async fn check_target(integration: &Integration) -> Verdict {
    let (ok, detail) = match &integration.target {
        TargetConfig::Duckdb(c) => match c.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => (false, format!("the directory of {} does not exist", c.path.display())),
            _ => (true, format!("DuckDB file {}", c.path.display())),
        },
        TargetConfig::Iceberg(c) => {
            let config = c.clone();
            match tokio::task::spawn_blocking(move || zetl_iceberg::check(&config)).await {
                Ok(Ok(())) => {
                    (true, format!("Iceberg warehouse {}, catalog {}", c.warehouse_location(), c.catalog.url))
                }
                Ok(Err(e)) => (false, e.to_string()),
                Err(e) => (false, format!("checking the catalog failed: {e}")),
            }
        }
        TargetConfig::Postgres(c) => match zetl_postgres::conninfo::ConnInfo::from_url(c.url.expose()) {
            Err(e) => (false, e.to_string()),
            Ok(info) => match info.connect_sql().await {
                Ok(_) => (true, format!("PostgreSQL {info:?}")),
                Err(e) => (false, e.to_string()),
            },
        },
    };
    Verdict::new(ok, "target".into(), detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(source: &str, target: &str) -> Result<Config, String> {
        let text = format!("integrations:\n  - name: a\n    source: {source}\n{target}");
        Config::parse(Path::new("z.yaml"), &text, |_| None).map_err(|e| e.to_string())
    }

    const PG: &str = "{ kind: postgres, url: \"postgres://u@h/db\" }";

    #[test]
    fn an_integration_without_a_target_writes_warehouse_duckdb() {
        let config = parse(PG, "").expect("valid");
        let TargetConfig::Duckdb(duck) = &config.integrations[0].target else { panic!("not DuckDB") };
        assert_eq!(duck.path, Path::new("warehouse.duckdb"));
        assert_eq!(duck.memory_limit, "256MB");
    }

    #[test]
    fn each_kind_checks_its_own_settings_and_names_the_key() {
        let my = "{ kind: mysql, url: \"mysql://u@h/db\", server_id: 0 }";
        let e = parse(my, "").expect_err("server_id 0");
        assert!(
            e.ends_with("integration `a`: source.server_id must not be 0 (the server refuses replicas without an id)"),
            "{e}"
        );
        let target = "    target: { kind: postgres, url: \"mysql://u@h/db\" }\n";
        let e = parse(PG, target).expect_err("target scheme");
        assert!(e.ends_with("target.url must start with postgres:// or postgresql://"), "{e}");
        let e = parse("{ kind: oracle, url: \"x\" }", "").expect_err("unknown kind");
        assert!(
            e.contains("source.kind: unknown kind `oracle`, expected one of `postgres`, `mysql`, `dynamodb`"),
            "{e}"
        );
        let e = parse("{ kind: postgres, url: \"postgres://u@h/db\", snapshot: { chunk_rows: -5 } }", "")
            .expect_err("type");
        assert!(e.contains("source.snapshot.chunk_rows: invalid value: integer `-5`"), "{e}");
    }

    #[test]
    fn dynamodb_settings_are_checked_by_their_crate_or_refused_by_a_build_without_it() {
        let e = parse("{ kind: dynamodb, scan: { segments: 0 } }", "").expect_err("segments");
        if cfg!(feature = "dynamodb") {
            assert!(e.ends_with("source.scan.segments must be between 1 and 1000"), "{e}");
        } else {
            assert!(e.contains("source.kind `dynamodb` needs a zetl built with the DynamoDB source"), "{e}");
        }
    }
}
