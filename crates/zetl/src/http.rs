//! `/metrics` (Prometheus text format), `/healthz` (the process runs) and `/readyz` (streaming,
//! and within the lag budget) on `metrics.listen`. HTTP/1.1 with one request per connection is
//! all a scraper or a probe needs, so no web framework is pulled in for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zetl_core::pipeline::now_us;
use zetl_core::progress::{Progress, PHASE_STREAMING};

pub struct Endpoint {
    pub integration: String,
    pub progress: Arc<Progress>,
    pub ready_max_lag_seconds: f64,
    /// `POST /resync?table=schema.name&…` queues tables here for the source.
    pub resync: zetl_postgres::ResyncRequests,
}

/// Serves until the process ends. A port already in use is logged, not fatal: replication
/// matters more than its metrics.
pub async fn serve(listen: SocketAddr, endpoint: Endpoint) {
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%listen, error = %e, "metrics endpoint not started");
            return;
        }
    };
    tracing::info!(%listen, "metrics on http://{listen}/metrics");
    let endpoint = Arc::new(endpoint);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &endpoint)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, endpoint: &Endpoint) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let (status, content_type, body) = route(method, path, query, endpoint);
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

fn route(method: &str, path: &str, query: &str, e: &Endpoint) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method == "POST" && path == "/resync" {
        return resync(query, e);
    }
    if method != "GET" {
        return ("405 Method Not Allowed", TEXT, "GET, or POST /resync\n".into());
    }
    match path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            zetl_core::metrics::render(&e.integration, &e.progress, now_us()),
        ),
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" => {
            let streaming = e.progress.phase.load(std::sync::atomic::Ordering::Relaxed) == PHASE_STREAMING;
            let lag = e.progress.lag_seconds(now_us());
            if streaming && lag <= e.ready_max_lag_seconds {
                ("200 OK", TEXT, format!("ready: streaming, lag {lag:.1} s\n"))
            } else if streaming {
                (
                    "503 Service Unavailable",
                    TEXT,
                    format!("not ready: lag {lag:.1} s over {} s\n", e.ready_max_lag_seconds),
                )
            } else {
                ("503 Service Unavailable", TEXT, format!("not ready: {}\n", e.progress.phase_name()))
            }
        }
        _ => ("404 Not Found", TEXT, "try /metrics, /healthz or /readyz\n".into()),
    }
}

fn resync(query: &str, e: &Endpoint) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let mut tables = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').map(|(k, v)| (k, percent_decode(v))) {
            Some(("table", Some(name))) => match name.split_once('.') {
                Some((schema, table)) if !schema.is_empty() && !table.is_empty() => {
                    tables.push(zetl_core::TableId::new(schema, table))
                }
                _ => return ("400 Bad Request", TEXT, format!("`{name}` is not schema.table\n")),
            },
            _ => return ("400 Bad Request", TEXT, format!("unexpected `{pair}`; use table=schema.name\n")),
        }
    }
    if tables.is_empty() {
        return ("400 Bad Request", TEXT, "name at least one table=schema.name\n".into());
    }
    let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    match e.resync.lock() {
        Ok(mut queue) => queue.extend(tables),
        Err(_) => return ("500 Internal Server Error", TEXT, "resync queue unavailable\n".into()),
    }
    tracing::info!(tables = %names.join(", "), "resync requested");
    ("202 Accepted", TEXT, format!("resync queued: {}\n", names.join(", ")))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
