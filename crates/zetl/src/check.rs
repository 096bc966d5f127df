//! `zetl check`: every prerequisite, one line each, nothing changed.

use anyhow::Result;
use std::path::Path;
use zetl_core::config::{Config, SourceConfig, TargetConfig};
use zetl_postgres::{Outcome, PgSource};

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
    let SourceConfig::Postgres(pg) = &integration.source;
    match PgSource::new(&integration.name, pg.clone(), integration.tables.clone()) {
        Err(e) => report.line(false, "source url", &e.to_string()),
        Ok(source) => {
            let known = slots_of(&config);
            for (outcome, what, detail) in source.check(&known).await {
                report.line(outcome, &what, &detail);
            }
        }
    }
    let TargetConfig::Duckdb(duck) = &integration.target;
    let target_ok = match duck.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.is_dir(),
        None => true,
    };
    report.line(
        target_ok,
        "target",
        &if target_ok {
            format!("DuckDB file {}", duck.path.display())
        } else {
            format!("the directory of {} does not exist", duck.path.display())
        },
    );
    Ok(if report.failed == 0 { 0 } else { crate::EXIT_CHECK })
}

/// The slot of every integration in the file.
fn slots_of(config: &Config) -> Vec<String> {
    config
        .integrations
        .iter()
        .filter_map(|i| {
            let SourceConfig::Postgres(pg) = &i.source;
            PgSource::new(&i.name, pg.clone(), i.tables.clone()).ok().map(|s| s.slot_name())
        })
        .collect()
}
