//! `zetl status`: what the target's `_zetl` schema says, plus the source's current position.

use crate::registry::{self, Config, Integration};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;
use zetl_core::status::TargetStatus;
use zetl_core::Phase;

/// `status --json` is a stable contract (docs/operations.md): fields are only ever added.
struct Status {
    integration: String,
    target: Result<TargetStatus, String>,
    source_position: Result<String, String>,
    /// Log bytes from the target's position to the source's, where the source counts in bytes.
    lag_bytes: Option<u64>,
    /// What a running `zetl run` reports on its metrics endpoint (the DuckDB file is locked
    /// while it runs).
    running: Option<Running>,
}

struct Running {
    url: String,
    phase: String,
    lag_seconds: f64,
    lag_bytes: f64,
    transactions: f64,
    copies: Vec<Copying>,
}

/// A table whose copy is under way in the running process.
struct Copying {
    table: String,
    rows: u64,
    /// The source's estimate, when it has one.
    estimated: Option<u64>,
    /// Rows per second since the copy began in this run (absent in its first second).
    rate: Option<f64>,
}

impl Copying {
    fn describe(&self) -> String {
        let mut text = match self.estimated.filter(|e| *e > 0) {
            Some(e) => {
                let pct = (self.rows as f64 * 100.0 / e as f64).min(100.0);
                format!("{} {pct:.0}% ({} of ~{} rows)", self.table, self.rows, e)
            }
            None => format!("{} {} rows", self.table, self.rows),
        };
        if let Some(r) = self.rate.filter(|r| *r > 0.0) {
            text += &format!(", {r:.0} rows/s");
        }
        if let Some(eta) = self.eta_seconds() {
            text += &format!(", ETA {}", duration(eta));
        }
        text
    }

    /// Seconds left at the rate so far, when there is an estimate still ahead.
    fn eta_seconds(&self) -> Option<f64> {
        let rate = self.rate.filter(|r| *r > 0.0)?;
        let left = self.estimated.filter(|e| *e > self.rows)? - self.rows;
        Some((left as f64 / rate).round())
    }
}

/// 4000 → `1h6m`, 75 → `1m15s`.
fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        s if s >= 3600 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

impl Status {
    fn to_json(&self) -> String {
        use serde_json::{json, Value};
        let (phase, position, updated_at, tables, target_error) = match &self.target {
            Ok(t) => (
                json!(t.phase.map_or("new", Phase::as_str)),
                json!(t.position),
                json!(t.updated_at),
                Value::Array(
                    t.tables
                        .iter()
                        .map(|x| {
                            json!({
                                "schema": x.schema, "table": x.name, "state": x.state.as_str(),
                                "rows_copied": x.rows_copied, "updated_at": x.updated_at, "reason": x.reason,
                            })
                        })
                        .collect(),
                ),
                Value::Null,
            ),
            Err(e) => (json!("unknown"), Value::Null, Value::Null, json!([]), json!(e)),
        };
        let (phase, running) = match &self.running {
            Some(r) => (
                json!(r.phase),
                json!({
                    "metrics_url": r.url, "phase": r.phase, "lag_seconds": r.lag_seconds,
                    "lag_bytes": r.lag_bytes, "transactions_applied": r.transactions,
                    "copies": r.copies.iter().map(|c| json!({
                        "table": c.table, "rows_copied": c.rows, "rows_estimated": c.estimated,
                        "rows_per_second": c.rate, "eta_seconds": c.eta_seconds(),
                    })).collect::<Vec<_>>(),
                }),
            ),
            None => (phase, Value::Null),
        };
        json!({
            "integration": self.integration,
            "phase": phase,
            "running": running,
            "target_position": position,
            "target_updated_at": updated_at,
            "source_position": self.source_position.as_ref().ok(),
            "source_error": self.source_position.as_ref().err(),
            "target_error": target_error,
            "lag_bytes": self.lag_bytes,
            "tables": tables,
        })
        .to_string()
    }

    fn to_text(&self) -> String {
        let mut out = format!("integration  {}\n", self.integration);
        if let Some(r) = &self.running {
            out += &format!(
                "running      phase {}, lag {:.1} s / {} bytes, {} transactions applied ({})\n",
                r.phase, r.lag_seconds, r.lag_bytes, r.transactions, r.url
            );
            for c in &r.copies {
                out += &format!("copying      {}\n", c.describe());
            }
        }
        match &self.target {
            Ok(t) => {
                out += &format!("phase        {}\n", t.phase.map_or("new (never run)", Phase::as_str));
                out += &format!(
                    "target at    {} (committed {})\n",
                    t.position.as_deref().unwrap_or("-"),
                    t.updated_at.as_deref().unwrap_or("-")
                );
            }
            Err(e) => out += &format!("target       unavailable: {e}\n"),
        }
        match &self.source_position {
            Ok(p) => out += &format!("source at    {p}\n"),
            Err(e) => out += &format!("source       unavailable: {e}\n"),
        }
        if let Some(lag) = self.lag_bytes {
            out += &format!("lag          {lag} bytes of WAL\n");
        }
        if let Ok(t) = &self.target {
            if !t.tables.is_empty() {
                out += &format!("\n{:<40} {:<16} {:>12}  {}\n", "TABLE", "STATE", "ROWS COPIED", "WHY");
                for x in &t.tables {
                    let (table, why) = (format!("{}.{}", x.schema, x.name), x.reason.as_deref().unwrap_or(""));
                    out += &format!("{table:<40} {:<16} {:>12}  {why}\n", x.state, x.rows_copied);
                }
            }
        }
        out
    }
}

pub async fn status(config: &Path, name: Option<&str>, json: bool, watch: bool) -> Result<u8> {
    let config = Config::load(config)?;
    let integration = config.integration(name)?;
    loop {
        let status = collect(integration).await?;
        if watch && !json {
            print!("\x1b[2J\x1b[H");
        }
        if json {
            println!("{}", status.to_json());
        } else {
            print!("{}", status.to_text());
        }
        if !watch {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn collect(integration: &Integration) -> Result<Status> {
    let owned = integration.clone();
    let target = tokio::task::spawn_blocking(move || registry::read_status(&owned))
        .await
        .context("reading the target")?
        .map_err(|e| format!("{e:#}"));
    let source = registry::source(integration).context("source config")?;
    let source_position = source.current_position().await.map_err(|e| e.to_string());
    let lag_bytes = match (&target, &source_position) {
        (Ok(TargetStatus { position: Some(at), .. }), Ok(now)) => source.bytes_between(at, now),
        _ => None,
    };
    let running = match (&target, integration.metrics_listen) {
        (Err(_), Some(addr)) => scrape(addr, &integration.name).await,
        _ => None,
    };
    Ok(Status { integration: integration.name.clone(), target, source_position, lag_bytes, running })
}

/// Reads phase and lag from a running process's `/metrics`; `None` when nothing answers.
async fn scrape(addr: std::net::SocketAddr, integration: &str) -> Option<Running> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await.ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        Some(text)
    };
    let text = tokio::time::timeout(Duration::from_secs(2), fetch).await.ok()??;
    let label = format!("{{integration=\"{integration}\"");
    let value = |name: &str| -> Option<f64> {
        let prefix = format!("{name}{label}}}");
        text.lines().find(|l| l.starts_with(&prefix))?.rsplit(' ').next()?.parse().ok()
    };
    let on = |phase: Phase| {
        let label = format!("phase=\"{phase}\"");
        text.lines().any(|l| l.starts_with(zetl_core::metrics::PHASE) && l.contains(&label) && l.ends_with(" 1"))
    };
    let phase = Phase::ALL.into_iter().find(|p| on(*p)).map_or("starting", Phase::as_str);
    let per_table = |name: &str, table: &str| -> Option<u64> {
        let prefix = format!("{name}{{integration=\"{integration}\",table=\"{table}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
    };
    let copying = format!("{}{label},table=\"", zetl_core::metrics::TABLE_COPYING);
    let copies = text
        .lines()
        .filter_map(|l| l.strip_prefix(&copying)?.strip_suffix("\"} 1"))
        .map(|table| Copying {
            table: table.to_string(),
            rows: per_table(zetl_core::metrics::SNAPSHOT_ROWS, table).unwrap_or(0),
            estimated: per_table(zetl_core::metrics::SNAPSHOT_ROWS_ESTIMATED, table),
            rate: per_table(zetl_core::metrics::SNAPSHOT_ROWS_PER_SECOND, table).map(|r| r as f64),
        })
        .collect();
    Some(Running {
        url: format!("http://{addr}/metrics"),
        phase: phase.into(),
        lag_seconds: value(zetl_core::metrics::LAG_SECONDS)?,
        lag_bytes: value(zetl_core::metrics::LAG_BYTES).unwrap_or(0.0),
        transactions: value(zetl_core::metrics::TRANSACTIONS_APPLIED).unwrap_or(0.0),
        copies,
    })
}

#[cfg(test)]
mod tests {
    use super::Copying;

    #[test]
    fn a_copy_under_way_reads_with_its_share_of_the_estimate() {
        let copy = |estimated, rate| Copying { table: "public.big".into(), rows: 450_000, estimated, rate };
        assert_eq!(copy(Some(1_000_000), None).describe(), "public.big 45% (450000 of ~1000000 rows)");
        assert_eq!(copy(None, None).describe(), "public.big 450000 rows");
        assert_eq!(copy(Some(0), None).describe(), "public.big 450000 rows");
        assert_eq!(
            copy(Some(1_000_000), Some(5000.0)).describe(),
            "public.big 45% (450000 of ~1000000 rows), 5000 rows/s, ETA 1m50s"
        );
        assert_eq!(copy(None, Some(5000.0)).describe(), "public.big 450000 rows, 5000 rows/s");
        assert_eq!(
            copy(Some(400_000), Some(5000.0)).describe(),
            "public.big 100% (450000 of ~400000 rows), 5000 rows/s"
        );
        assert_eq!(super::duration(4000.0), "1h6m");
    }
}
