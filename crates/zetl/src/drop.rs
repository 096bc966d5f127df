//! `zetl drop`: removes an integration's slot and publications from the source, after the
//! user confirms, so a retired integration stops holding WAL. The target is left as it is.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, Write};
use std::path::Path;
use zetl_core::config::{Config, SourceConfig};
use zetl_postgres::PgSource;

pub async fn drop(config: &Path, name: Option<&str>, yes: bool) -> Result<u8> {
    let config = Config::load(config)?;
    let integration = config.integration(name)?;
    let pg = match &integration.source {
        SourceConfig::Postgres(pg) => pg,
        SourceConfig::Mysql(_) => {
            // A binlog reader holds nothing on the server: binlogs expire by the server's own
            // retention whether anyone reads them or not.
            println!(
                "nothing to drop: integration `{}` reads the binlog as a replica and holds nothing on the source",
                integration.name
            );
            return Ok(0);
        }
        SourceConfig::Dynamodb(_) => {
            // A stream reader holds nothing: DynamoDB keeps 24 hours of stream whoever reads it.
            println!(
                "nothing to drop: integration `{}` reads DynamoDB Streams and holds nothing on the source",
                integration.name
            );
            return Ok(0);
        }
    };
    let source = PgSource::new(&integration.name, pg.clone(), integration.tables.clone())?;
    let plan = source.retirement().await.context("looking up the integration's slot and publications")?;
    if plan.slot.is_none() && plan.publications.is_empty() {
        println!("nothing to drop: integration `{}` holds no slot or publication on the source", integration.name);
        return Ok(0);
    }
    println!("integration `{}` holds on {:?}:", integration.name, source.conn_info());
    if let Some(slot) = &plan.slot {
        println!("  replication slot  {slot}");
    }
    for p in &plan.publications {
        println!("  publication       {p}");
    }
    if !yes {
        print!("drop them? the integration can then only start over with a full copy. type its name to confirm: ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != integration.name {
            bail!("not confirmed; nothing dropped");
        }
    }
    source.retire(&plan).await?;
    println!("dropped. The target still holds the tables and its _zetl rows for `{}`.", integration.name);
    Ok(0)
}
