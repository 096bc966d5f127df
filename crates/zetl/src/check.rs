//! `zetl check`: every prerequisite, one line each, nothing changed.

use crate::registry::{self, Config, Integration};
use anyhow::Result;
use std::path::Path;
use zetl_core::check::Outcome;
use zetl_core::source::CheckEnv;

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
    match registry::source(integration) {
        Err(e) => report.line(false, "source", &e.to_string()),
        Ok(source) => {
            let env = CheckEnv {
                stored_position: stored_position(integration).await,
                reserved_in_file: reserved_in(&config),
            };
            for v in source.check(&env).await {
                report.line(v.outcome, &v.what, &v.detail);
            }
        }
    }
    let v = registry::check_target(integration).await;
    report.line(v.outcome, &v.what, &v.detail);
    Ok(if report.failed == 0 { 0 } else { crate::EXIT_CHECK })
}

/// The position stored at the target, when the target can be read (not while zetl runs).
async fn stored_position(integration: &Integration) -> Option<String> {
    let owned = integration.clone();
    tokio::task::spawn_blocking(move || registry::read_status(&owned)).await.ok().and_then(Result::ok)?.position
}

/// What every integration in the file reserves on its source (PostgreSQL: its slot).
fn reserved_in(config: &Config) -> Vec<String> {
    config.integrations.iter().filter_map(|i| registry::source(i).ok()).flat_map(|s| s.reserved_names()).collect()
}
