//! `zetl dead-letters list|replay`: the changes a target set aside (apply.on_error:
//! dead_letter), and applying them again once their cause is fixed. A letter superseded by a
//! later change to its key is shown as such and never applied.

use crate::registry::{self, Config};
use anyhow::{Context, Result};
use std::path::Path;
use zetl_core::apply::DeadLetter;

pub async fn list(config: &Path, name: Option<&str>) -> Result<u8> {
    let integration = Config::load(config)?.integration(name)?.clone();
    let letters =
        tokio::task::spawn_blocking(move || registry::target(&integration, registry::Role::Admin)?.list_dead_letters())
            .await
            .context("reading dead letters")??;
    if letters.is_empty() {
        println!("no dead letters");
    }
    for d in letters {
        let state = match (&d.replayed_at, &d.superseded_at) {
            (Some(at), _) => format!("replayed {at}"),
            (None, Some(at)) => format!("superseded {at}: {}", d.superseded_by.as_deref().unwrap_or("")),
            (None, None) => "pending".into(),
        };
        println!("{}\t{}\t{}\t{}\t{}\t{state}\t{}", d.id, d.table, d.key, d.op, d.created_at, d.error);
    }
    Ok(0)
}

pub async fn replay(config: &Path, name: Option<&str>, ids: Vec<i64>) -> Result<u8> {
    let integration = Config::load(config)?.integration(name)?.clone();
    let (done, failed, superseded) = tokio::task::spawn_blocking(move || {
        let mut target = registry::target(&integration, registry::Role::Admin)?;
        let (done, failed) = target.replay_dead_letters(&ids)?;
        // The ones this replay skipped (or asked for) because a later change made them stale.
        let superseded: Vec<DeadLetter> = target
            .list_dead_letters()?
            .into_iter()
            .filter(|d| d.superseded_at.is_some() && (ids.is_empty() || ids.contains(&d.id)))
            .collect();
        Ok::<_, anyhow::Error>((done, failed, superseded))
    })
    .await
    .context("replaying dead letters")??;
    println!("replayed {done}");
    for d in &superseded {
        println!(
            "dead letter {} not applied: superseded, {} ({} {})",
            d.id,
            d.superseded_by.as_deref().unwrap_or(""),
            d.table,
            d.key
        );
    }
    for (id, error) in &failed {
        println!("dead letter {id} failed again: {error}");
    }
    Ok(if failed.is_empty() { 0 } else { crate::EXIT_FAILED })
}
