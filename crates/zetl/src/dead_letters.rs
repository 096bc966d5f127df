//! `zetl dead-letters list|replay`: the changes a target set aside (apply.on_error:
//! dead_letter), and applying them again once their cause is fixed.

use crate::target::{list_dead_letters, replay_dead_letters};
use anyhow::{Context, Result};
use std::path::Path;
use zetl_core::config::Config;

pub async fn list(config: &Path, name: Option<&str>) -> Result<u8> {
    let integration = Config::load(config)?.integration(name)?.clone();
    let letters = tokio::task::spawn_blocking(move || list_dead_letters(&integration))
        .await
        .context("reading dead letters")??;
    if letters.is_empty() {
        println!("no dead letters");
    }
    for d in letters {
        let state = d.replayed_at.map(|at| format!("replayed {at}")).unwrap_or_else(|| "pending".into());
        println!("{}\t{}\t{}\t{}\t{}\t{state}\t{}", d.id, d.table, d.key, d.op, d.created_at, d.error);
    }
    Ok(0)
}

pub async fn replay(config: &Path, name: Option<&str>, ids: Vec<i64>) -> Result<u8> {
    let integration = Config::load(config)?.integration(name)?.clone();
    let (done, failed) = tokio::task::spawn_blocking(move || replay_dead_letters(&integration, &ids))
        .await
        .context("replaying dead letters")??;
    println!("replayed {done}");
    for (id, error) in &failed {
        println!("dead letter {id} failed again: {error}");
    }
    Ok(if failed.is_empty() { 0 } else { crate::EXIT_FAILED })
}
