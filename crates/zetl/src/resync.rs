//! `zetl resync`: copy chosen tables again. A running `zetl run` is asked through its HTTP
//! endpoint and copies them while the other tables keep their place in the stream; a stopped
//! integration has them marked in the target and copies them when it next starts. Either way
//! the new copy replaces the old one in a single target transaction.

use crate::target;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zetl_core::config::Config;
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
        if let Some(answer) = ask_running(addr, &ids).await {
            println!("{}", answer.trim_end());
            println!(
                "zetl run copies them within source.table_discovery_secs; follow it in its log or with `zetl status`"
            );
            return Ok(0);
        }
    }
    let (owned, wanted) = (integration.clone(), ids.clone());
    let unknown: Vec<String> = tokio::task::spawn_blocking(move || target::request_resync(&owned, &wanted))
        .await
        .context("marking tables")??
        .iter()
        .map(ToString::to_string)
        .collect();
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
    tokio::task::spawn_blocking(move || target::forget_position(&integration)).await.context("resetting")??;
    println!("integration `{label}` copies everything again at its next `zetl run`");
    Ok(0)
}

/// `POST /resync` to a running zetl; `None` when nothing answers there.
async fn ask_running(addr: std::net::SocketAddr, tables: &[TableId]) -> Option<String> {
    let query: Vec<String> = tables.iter().map(|t| format!("table={}", encode(&t.to_string()))).collect();
    let request = format!("POST /resync?{} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", query.join("&"));
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        Some(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange).await.ok()??;
    let accepted = response.starts_with("HTTP/1.1 202");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    accepted.then_some(body)
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
