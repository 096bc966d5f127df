//! `zetl drop`: removes what an integration holds on its source (PostgreSQL: its slot and
//! publications), after the user confirms, so a retired integration stops holding WAL. The
//! target is left as it is.

use crate::registry::{self, Config};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, Write};
use std::path::Path;
use zetl_core::source::Holdings;

pub async fn drop(config: &Path, name: Option<&str>, yes: bool) -> Result<u8> {
    let config = Config::load(config)?;
    let integration = config.integration(name)?;
    let source = registry::source(integration)?;
    let holdings = source.holdings().await.context("looking up what the integration holds on the source")?;
    let (place, items) = match &holdings {
        Holdings::NothingByDesign(why) => {
            println!("nothing to drop: integration `{}` holds nothing on the source ({why})", integration.name);
            return Ok(0);
        }
        Holdings::Held { items, .. } if items.is_empty() => {
            println!("nothing to drop: integration `{}` holds nothing on the source", integration.name);
            return Ok(0);
        }
        Holdings::Held { place, items } => (place, items),
    };
    println!("integration `{}` holds on {place}:", integration.name);
    for held in items {
        println!("  {:<18}{}", held.kind, held.name);
    }
    if !yes {
        print!("drop them? without its replication slot, if it has one, the integration can only start over with a full copy. type its name to confirm: ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != integration.name {
            bail!("not confirmed; nothing dropped");
        }
    }
    source.release(&holdings).await?;
    println!("dropped. The target still holds the tables and its _zetl rows for `{}`.", integration.name);
    Ok(0)
}
