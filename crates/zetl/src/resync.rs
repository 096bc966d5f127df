//! `zetl resync`: copy chosen tables again. A running `zetl run` is asked through its HTTP
//! endpoint and copies them while the other tables keep their place in the stream; a stopped
//! integration has them marked in the target and copies them when it next starts. Either way
//! the new copy replaces the old one in a single target transaction.

use crate::http::REQUEST_HEADER;
use crate::registry::{self, Config};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zetl_core::config::Secret;
use zetl_core::source::Failed;
use zetl_core::TableId;

pub async fn resync(config: &Path, name: Option<&str>, tables: &[String]) -> Result<u8> {
    let config = Config::load(config)?;
    let integration = config.integration(name)?;
    let mut ids = Vec::new();
    for t in tables {
        match t.split_once('.') {
            Some((s, n)) if !s.is_empty() && !n.is_empty() => ids.push(TableId::new(s, n)),
            _ => bail!("`{t}` is not schema.table"),
        }
    }
    if let Some(addr) = integration.metrics_listen {
        match ask_running(addr, &integration.name, &ids, integration.metrics_token.as_ref()).await {
            Answer::Accepted(body) => {
                println!("{}", body.trim_end());
                println!(
                    "zetl run copies them within source.table_discovery_secs; follow it in its log or with `zetl status`"
                );
                return Ok(0);
            }
            Answer::Refused(status, body) => {
                bail!("the zetl run answering on {addr} refused the resync ({status}): {}", body.trim_end())
            }
            Answer::Nobody => {}
        }
    }
    let (owned, wanted) = (integration.clone(), ids.clone());
    let unknown: Vec<String> = tokio::task::spawn_blocking(move || {
        let mut target = registry::target(&owned, registry::Role::Admin)?;
        let mut unknown = Vec::new();
        for t in wanted {
            if !target.request_resync(&t)? {
                unknown.push(t.to_string());
            }
        }
        Ok::<_, Failed>(unknown)
    })
    .await
    .context("marking tables")??;
    if !unknown.is_empty() {
        bail!("integration `{}` has not copied {}; nothing to resync there", integration.name, unknown.join(", "));
    }
    println!("marked for a new copy at the next `zetl run`: {}", tables.join(", "));
    Ok(0)
}

/// Forgets the stored position, so that the next `zetl run` copies everything again from a
/// new snapshot (its tables stay readable until that run starts the copy).
pub async fn resync_all(config: &Path, name: Option<&str>) -> Result<u8> {
    let config = Config::load(config)?;
    let integration = config.integration(name)?.clone();
    let label = integration.name.clone();
    tokio::task::spawn_blocking(move || registry::target(&integration, registry::Role::Admin)?.forget_position())
        .await
        .context("resetting")??;
    println!("integration `{label}` copies everything again at its next `zetl run`");
    Ok(0)
}

enum Answer {
    /// Nothing answers there: zetl is not running.
    Nobody,
    Accepted(String),
    /// Status line and body.
    Refused(String, String),
}

/// `POST /resync` to a running zetl, with the header (and token) the endpoint requires.
async fn ask_running(
    addr: std::net::SocketAddr,
    integration: &str,
    tables: &[TableId],
    token: Option<&Secret>,
) -> Answer {
    let mut query: Vec<String> = tables.iter().map(|t| format!("table={}", encode(&t.to_string()))).collect();
    query.push(format!("integration={}", encode(integration)));
    let authorization = token.map(|t| format!("Authorization: Bearer {}\r\n", t.expose())).unwrap_or_default();
    let request = format!(
        "POST /resync?{} HTTP/1.1\r\nHost: localhost\r\n{REQUEST_HEADER}: resync\r\n{authorization}\
         Content-Length: 0\r\n\r\n",
        query.join("&")
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        Some(response)
    };
    let Some(response) = tokio::time::timeout(Duration::from_secs(5), exchange).await.ok().flatten() else {
        return Answer::Nobody;
    };
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or("").trim_start_matches("HTTP/1.1 ").to_string();
    if status.starts_with("202") {
        Answer::Accepted(body.to_string())
    } else {
        Answer::Refused(status, body.to_string())
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
