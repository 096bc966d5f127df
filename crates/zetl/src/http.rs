//! `/metrics` (Prometheus text format), `/healthz` (the process runs) and `/readyz` (streaming,
//! and within the lag budget) on `metrics.listen`. HTTP/1.1 with one request per connection is
//! all a scraper or a probe needs, so no web framework is pulled in for it.
//!
//! `POST /resync` changes something (it makes the source copy tables again), so it is guarded
//! against what can reach a loopback port besides `zetl resync`: web pages in a local browser
//! and other local processes. It needs the `X-Zetl-Request` header, which a page can only send
//! to another origin after a CORS preflight that this endpoint never approves; without
//! `metrics.token` the `Host` must be an address or `localhost`, so that a page cannot come in
//! through a DNS name of its own pointed at 127.0.0.1 (DNS rebinding); with the token it must
//! come as `Authorization: Bearer …`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zetl_core::config::Secret;
use zetl_core::pipeline::now_us;
use zetl_core::progress::Progress;
use zetl_core::Phase;

/// The header a request that changes something must carry (`zetl resync` sends
/// `X-Zetl-Request: resync`).
pub const REQUEST_HEADER: &str = "X-Zetl-Request";

pub struct Endpoint {
    pub integration: String,
    pub progress: Arc<Progress>,
    pub ready_max_lag_seconds: f64,
    /// `POST /resync?table=schema.name&…` queues tables here for the source.
    pub resync: zetl_core::source::ResyncRequests,
    /// `metrics.token`: when set, `POST /resync` must carry it as `Authorization: Bearer …`.
    pub token: Option<Secret>,
}

/// The parts of a request the routes look at.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    /// The header lines, after the request line.
    headers: Vec<(&'a str, &'a str)>,
}

impl<'a> Request<'a> {
    fn parse(head: &'a str) -> Request<'a> {
        let mut lines = head.split("\r\n");
        let mut parts = lines.next().unwrap_or("").split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(name, value)| (name.trim(), value.trim()))
            .collect();
        Request { method, path, query, headers }
    }

    fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }
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
    if !listen.ip().is_loopback() && endpoint.token.is_none() {
        tracing::warn!(
            %listen,
            "metrics.listen accepts connections from other hosts and metrics.token is not set: \
             whoever reaches it can make zetl copy tables again (POST /resync)"
        );
    }
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
    let head = String::from_utf8_lossy(&request);
    let (status, content_type, body) = route(&Request::parse(&head), endpoint);
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

fn route(request: &Request, e: &Endpoint) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if request.method == "POST" && request.path == "/resync" {
        if let Err(refusal) = authorize(request, e.token.as_ref()) {
            tracing::warn!(reason = refusal, "POST /resync refused");
            return ("403 Forbidden", TEXT, format!("{refusal}\n"));
        }
        return resync(request.query, e);
    }
    // Also answers a CORS preflight (OPTIONS), without the Access-Control-Allow-* headers a
    // browser would need to go on.
    if request.method != "GET" {
        return ("405 Method Not Allowed", TEXT, "GET, or POST /resync\n".into());
    }
    match request.path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            zetl_core::metrics::render(&e.integration, &e.progress, now_us()),
        ),
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" => {
            let streaming = e.progress.phase.is(Phase::Streaming);
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
                ("503 Service Unavailable", TEXT, format!("not ready: {}\n", e.progress.phase.name()))
            }
        }
        _ => ("404 Not Found", TEXT, "try /metrics, /healthz or /readyz\n".into()),
    }
}

/// Whether a request may change something; the reason for the client when not.
fn authorize(request: &Request, token: Option<&Secret>) -> Result<(), &'static str> {
    if request.header(REQUEST_HEADER).is_none_or(str::is_empty) {
        return Err("POST /resync needs the header `X-Zetl-Request: resync` (web pages cannot send it to \
                    this address; `zetl resync` does)");
    }
    match token {
        Some(token) => {
            let offered = request.header("Authorization").and_then(|v| {
                let (scheme, credentials) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("Bearer").then(|| credentials.trim())
            });
            if !offered.is_some_and(|t| token.matches(t.as_bytes())) {
                return Err("POST /resync needs `Authorization: Bearer <metrics.token>`");
            }
        }
        None => {
            if !request.header("Host").is_none_or(is_address_or_localhost) {
                return Err("POST /resync by a host name needs metrics.token (without it only an IP address \
                            or localhost is accepted, so that a web page cannot come in by a DNS name of its own)");
            }
        }
    }
    Ok(())
}

/// `Host: 127.0.0.1:9187`, `[::1]:9187`, `localhost`: a name no web page can own.
fn is_address_or_localhost(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').filter(|(h, _)| !h.contains(':')).map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
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
            // `zetl resync` names the integration it means: another one's zetl answering on
            // this address (two integrations given one metrics.listen) must not take it.
            Some(("integration", Some(name))) if name != e.integration => {
                let problem = format!(
                    "this is integration `{}`, not `{name}`: give each integration on a host its own metrics.listen\n",
                    e.integration
                );
                return ("409 Conflict", TEXT, problem);
            }
            Some(("integration", Some(_))) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &str) -> String {
        format!("POST /resync?table=public.a HTTP/1.1\r\n{headers}\r\n")
    }

    fn allowed(headers: &str, token: Option<&Secret>) -> Result<(), &'static str> {
        let head = request(headers);
        authorize(&Request::parse(&head), token)
    }

    #[test]
    fn changes_need_the_header_and_the_token_when_there_is_one() {
        let ok = "Host: 127.0.0.1:9187\r\nX-Zetl-Request: resync\r\n";
        assert_eq!(allowed(ok, None), Ok(()));
        assert_eq!(allowed("host: localhost\r\nx-zetl-request: resync\r\n", None), Ok(()));
        assert_eq!(allowed("Host: [::1]:9187\r\nX-Zetl-Request: 1\r\n", None), Ok(()));
        assert!(allowed("Host: 127.0.0.1:9187\r\n", None).expect_err("no header").contains("X-Zetl-Request"));
        let rebound = allowed("Host: attacker.example:9187\r\nX-Zetl-Request: resync\r\n", None);
        assert!(rebound.expect_err("a name").contains("metrics.token"));

        let token: Secret = serde_json::from_str("\"s3cr3t\"").expect("secret");
        let with = |auth: &str| allowed(&format!("Host: zetl:9187\r\nX-Zetl-Request: resync\r\n{auth}"), Some(&token));
        assert_eq!(with("Authorization: Bearer s3cr3t\r\n"), Ok(()));
        assert_eq!(with("authorization: bearer s3cr3t\r\n"), Ok(()));
        for wrong in ["", "Authorization: Bearer s3cr3", "Authorization: Basic s3cr3t", "Authorization: s3cr3t"] {
            assert!(with(&format!("{wrong}\r\n")).is_err(), "{wrong}");
        }
        let refusal = with("Authorization: Bearer nope\r\n").expect_err("wrong token");
        assert!(!refusal.contains("s3cr3t") && refusal.contains("Authorization: Bearer"), "{refusal}");
    }
}
