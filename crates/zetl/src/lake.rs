//! `zetl lake maintain`: maintenance of an integration's Apache Iceberg tables (see
//! `zetl_iceberg::maintain`).

use crate::registry::{Config, TargetConfig};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use zetl_iceberg::DurationSetting;

pub async fn maintain(config: &Path, name: Option<&str>, older_than: &str) -> Result<u8> {
    let integration = Config::load(config)?.integration(name)?.clone();
    let DurationSetting(older_than) = older_than.parse().map_err(|e: String| anyhow!("--older-than: {e}"))?;
    let TargetConfig::Iceberg(target) = integration.target.clone() else {
        bail!(
            "integration {}: its target is not Iceberg; `zetl lake maintain` maintains Iceberg tables",
            integration.name
        );
    };
    let name = integration.name.clone();
    let done = tokio::task::spawn_blocking(move || zetl_iceberg::maintain::maintain(&target, &name, older_than))
        .await
        .context("maintaining the lake")??;
    for m in &done {
        println!(
            "{}: data files {} -> {}, {} delete files folded in, {} snapshots expired, {} files removed",
            m.table, m.data_files.0, m.data_files.1, m.delete_files, m.snapshots_expired, m.files_removed
        );
    }
    if done.is_empty() {
        println!("no tables to maintain yet");
    }
    Ok(0)
}
