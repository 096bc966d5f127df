//! `zetl check`: every prerequisite, one line each, nothing changed.

use anyhow::Result;
use std::path::Path;
use zetl_core::check::Outcome;
use zetl_core::config::{Config, Integration, SourceConfig, TargetConfig};
use zetl_mysql::MySource;
use zetl_postgres::conninfo::ConnInfo;
use zetl_postgres::PgSource;

struct Report {
    failed: usize,
}

impl Report {
    fn line(&mut self, outcome: impl Into<Outcome>, what: &str, detail: &str) {
        let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        match outcome.into() {
            Outcome::Pass => println!("✓ {what}{detail}"),
            Outcome::Warn => println!("⚠ {what}{detail}"),
            Outcome::Fail => {
                self.failed += 1;
                println!("✗ {what}{detail}");
            }
        }
    }
}

pub async fn check(config: &Path, name: Option<&str>) -> Result<u8> {
    let config = Config::load(config)?;
    let integration = config.integration(name)?;
    let mut report = Report { failed: 0 };
    report.line(true, "config", &format!("{} (integration `{}`)", config.file.display(), integration.name));
    let verdicts = match &integration.source {
        SourceConfig::Postgres(pg) => match PgSource::new(&integration.name, pg.clone(), integration.tables.clone()) {
            Err(e) => Err(e.to_string()),
            Ok(source) => Ok(source.check(&slots_of(&config)).await),
        },
        SourceConfig::Mysql(my) => match MySource::new(&integration.name, my.clone(), integration.tables.clone()) {
            Err(e) => Err(e.to_string()),
            Ok(source) => Ok(zetl_mysql::check(&source, stored_position(integration).await.as_deref()).await),
        },
        SourceConfig::Dynamodb(dynamo) => {
            let stored = stored_position(integration).await;
            Ok(crate::dynamo::check(dynamo, integration.tables.clone(), stored.as_deref()).await)
        }
    };
    match verdicts {
        Err(e) => report.line(false, "source url", &e),
        Ok(verdicts) => {
            for (outcome, what, detail) in verdicts {
                report.line(outcome, &what, &detail);
            }
        }
    }
    let (target_ok, detail) = match &integration.target {
        TargetConfig::Duckdb(duck) => match duck.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => (false, format!("the directory of {} does not exist", duck.path.display())),
            _ => (true, format!("DuckDB file {}", duck.path.display())),
        },
        TargetConfig::Postgres(pg) => match ConnInfo::from_url(pg.url.expose()) {
            Err(e) => (false, e.to_string()),
            Ok(info) => match info.connect_sql().await {
                Ok(_) => (true, format!("PostgreSQL {info:?}")),
                Err(e) => (false, e.to_string()),
            },
        },
    };
    report.line(target_ok, "target", &detail);
    Ok(if report.failed == 0 { 0 } else { crate::EXIT_CHECK })
}

/// The position stored at the target, when the target can be read (not while zetl runs).
async fn stored_position(integration: &Integration) -> Option<String> {
    let owned = integration.clone();
    tokio::task::spawn_blocking(move || crate::target::read_status(&owned)).await.ok().and_then(Result::ok)?.position
}

/// The slot of every integration in the file.
fn slots_of(config: &Config) -> Vec<String> {
    config
        .integrations
        .iter()
        .filter_map(|i| match &i.source {
            SourceConfig::Postgres(pg) => {
                PgSource::new(&i.name, pg.clone(), i.tables.clone()).ok().map(|s| s.slot_name())
            }
            SourceConfig::Mysql(_) | SourceConfig::Dynamodb(_) => None,
        })
        .collect()
}
