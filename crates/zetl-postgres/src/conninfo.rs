//! Connection settings from the source URL, shared by the SQL connections (tokio-postgres) and
//! the replication connection (our own protocol layer).

pub mod auth;

use crate::error::PgError;
use crate::tls::{client_config, SslMode};
use auth::{AuthPolicy, AuthWatch, WatchedTls};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_postgres::config::{Host, SslNegotiation};
use tokio_postgres::tls::MakeTlsConnect;

#[derive(Clone)]
pub struct ConnInfo {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Vec<u8>>,
    pub dbname: String,
    pub ssl_mode: SslMode,
    pub tls: Arc<rustls::ClientConfig>,
    /// Which password exchanges the server may ask for (`require_auth`).
    pub auth: AuthPolicy,
    pub config: tokio_postgres::Config,
    /// Whether the fall back to plaintext under `sslmode=prefer` was logged (once per URL).
    warned_plaintext: Arc<AtomicBool>,
}

impl std::fmt::Debug for ConnInfo {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "postgres://{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }
}

/// Session settings that make the server's text output match the event model's canonical
/// forms (docs/type-mapping.md). Sent on every connection, replication ones included, since
/// logical decoding formats values with the walsender's settings.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("client_encoding", "UTF8"),
    ("bytea_output", "hex"),
];

impl ConnInfo {
    pub fn from_url(url: &str) -> Result<ConnInfo, PgError> {
        // tokio-postgres knows only disable/prefer/require and no require_auth: those are ours.
        let ZetlParams { url, ssl_mode, root_cert, require_auth } = take_zetl_params(url)?;
        let auth = AuthPolicy::new(require_auth.as_deref(), ssl_mode)?;
        // tokio-postgres' error text does not echo the URL, so it is safe to show.
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| PgError::Url(e.to_string()))?;
        let host = match config.get_hosts() {
            [Host::Tcp(h)] => h.clone(),
            [] => "localhost".to_string(),
            [Host::Tcp(_), ..] => return Err(PgError::Url("several hosts are not supported".into())),
            _ => return Err(PgError::Url("only TCP hosts are supported (not unix sockets)".into())),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().map(str::to_string).ok_or_else(|| PgError::Url("the url names no user".into()))?;
        let dbname = config.get_dbname().unwrap_or(&user).to_string();
        let options: String = SESSION_SETTINGS
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .chain(DeadPeer::of(&config).server_settings())
            .map(|(k, v)| format!("-c {k}={v} "))
            .collect();
        config.options(options.trim_end());
        if config.get_application_name().is_none() {
            config.application_name("zetl");
        }
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let tls = client_config(ssl_mode, root_cert.as_deref())?;
        let password = config.get_password().map(<[u8]>::to_vec);
        let warned_plaintext = Arc::default();
        Ok(ConnInfo { host, port, password, user, dbname, ssl_mode, tls, auth, config, warned_plaintext })
    }

    /// A SQL connection. tokio-postgres speaks the protocol; the socket is ours, so that the
    /// server's authentication request can be checked against `require_auth` before
    /// tokio-postgres answers it (see `auth`).
    pub async fn connect_sql(&self) -> Result<tokio_postgres::Client, PgError> {
        let tcp = self.connect_tcp().await?;
        let plaintext = Arc::new(AtomicBool::new(false));
        let direct = self.config.get_ssl_negotiation() == SslNegotiation::Direct;
        let raw = match (self.ssl_mode, direct) {
            (SslMode::Disable, _) => AuthWatch::raw(tcp, self.auth, false, plaintext.clone()),
            (_, true) => AuthWatch::transparent(tcp, self.auth),
            (_, false) => AuthWatch::raw(tcp, self.auth, true, plaintext.clone()),
        };
        let mut make = tokio_postgres_rustls::MakeRustlsConnect::new((*self.tls).clone());
        let Ok(inner) = MakeTlsConnect::<AuthWatch<TcpStream>>::make_tls_connect(&mut make, &self.host);
        let connected = self.config.connect_raw(raw, WatchedTls { inner, policy: self.auth }).await;
        if plaintext.load(Ordering::Relaxed) {
            self.warn_plaintext();
        }
        let (client, connection) = connected.map_err(|cause| match auth::refusal_in(&cause) {
            Some(method) => self.auth.check(method, &self.user).err().unwrap_or_else(|| self.sql_error(cause)),
            None => self.sql_error(cause),
        })?;
        tokio::spawn(drive(connection));
        Ok(client)
    }

    fn sql_error(&self, cause: tokio_postgres::Error) -> PgError {
        PgError::Sql { what: format!("connecting to {}:{}", self.host, self.port), cause }
    }

    /// TCP as tokio-postgres would open it: `hostaddr` if given, `connect_timeout`, no Nagle;
    /// and keepalives on zetl's timing (see [`dead_peer_timing`]). For the SQL and the
    /// replication connections alike.
    pub(crate) async fn connect_tcp(&self) -> Result<TcpStream, PgError> {
        let addr = format!("{}:{}", self.host, self.port);
        let fail = |cause: std::io::Error| PgError::Connect { addr: addr.clone(), cause };
        let attempt = async {
            let targets: Vec<SocketAddr> = match self.config.get_hostaddrs().first() {
                Some(ip) => vec![SocketAddr::new(*ip, self.port)],
                None => tokio::net::lookup_host((self.host.as_str(), self.port)).await?.collect(),
            };
            let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host name resolves to no address");
            for target in targets {
                let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                socket.set_keepalive(self.config.get_keepalives())?;
                match socket.connect(target).await {
                    Ok(stream) => {
                        stream.set_nodelay(true)?;
                        if self.config.get_keepalives() {
                            dead_peer_timing(&stream, &self.config)?;
                        }
                        return Ok(stream);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        // A server behind a cut link never answers the SYN: without a limit the attempt
        // would take the system's two minutes of retries, holding up the reconnect.
        let limit = self.config.get_connect_timeout().copied().unwrap_or(std::time::Duration::from_secs(10));
        tokio::time::timeout(limit, attempt)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out")))
            .map_err(fail)
    }

    /// `sslmode=prefer` and the server has TLS off: said once, since every later connection
    /// to it is the same.
    pub(crate) fn warn_plaintext(&self) {
        if !self.warned_plaintext.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                server = %format!("{}:{}", self.host, self.port),
                "the server does not accept TLS, so sslmode=prefer connects without encryption; \
                 turn ssl on at the server and use sslmode=verify-full, or say sslmode=disable"
            );
        }
    }
}

/// Without a word from a peer that vanished (a cut link, a dropped route, a firewall that
/// blackholes), a connection waiting to read would wait for the system's keepalive (two hours)
/// and one with data in flight — the stream's status updates, a query — for the
/// retransmissions (about 15 minutes): replication would stall with nothing logged. zetl's
/// default probes an idle connection after 15 s, every 5 s, 3 times, and gives up on data
/// unacknowledged for 60 s (`tcp_user_timeout`, as PostgreSQL's `wal_receiver_timeout`);
/// either ends in an error and zetl reconnects. The kernel answers probes and acknowledges
/// data whatever the server is doing, so a busy server is not taken for a lost one (only one
/// that stops reading for a minute while zetl writes to it). The URL's `keepalives_idle`,
/// `keepalives_interval`, `keepalives_retries` and `tcp_user_timeout` override the timing.
fn dead_peer_timing(stream: &TcpStream, config: &tokio_postgres::Config) -> std::io::Result<()> {
    let d = DeadPeer::of(config);
    let keepalive = socket2::TcpKeepalive::new().with_time(d.idle).with_interval(d.interval).with_retries(d.retries);
    let socket = socket2::SockRef::from(stream);
    socket.set_tcp_keepalive(&keepalive)?;
    socket.set_tcp_user_timeout(Some(d.unacknowledged))
}

/// The dead-peer timing of [`dead_peer_timing`], from the URL or zetl's defaults.
struct DeadPeer {
    idle: Duration,
    interval: Duration,
    retries: u32,
    unacknowledged: Duration,
}

impl DeadPeer {
    fn of(config: &tokio_postgres::Config) -> DeadPeer {
        // tokio-postgres' own default idle time: the URL did not set one.
        const UNSET_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
        DeadPeer {
            idle: Some(config.get_keepalives_idle()).filter(|d| *d != UNSET_IDLE).unwrap_or(Duration::from_secs(15)),
            interval: config.get_keepalives_interval().unwrap_or(Duration::from_secs(5)),
            retries: config.get_keepalives_retries().unwrap_or(3),
            unacknowledged: config.get_tcp_user_timeout().copied().unwrap_or(Duration::from_secs(60)),
        }
    }

    /// The same timing for the server's end of the connection, as session settings. Without
    /// them a session whose zetl vanished behind a cut link lives on at the server for its
    /// system's keepalive time (two hours), and with it what it holds: the target's writer
    /// lock (every reconnect is then refused as a second writer), a fill's snapshot (holding
    /// back vacuum). Sent at connect, so they apply from the first moment.
    fn server_settings(&self) -> [(&'static str, String); 4] {
        [
            ("tcp_keepalives_idle", self.idle.as_secs().max(1).to_string()),
            ("tcp_keepalives_interval", self.interval.as_secs().max(1).to_string()),
            ("tcp_keepalives_count", self.retries.to_string()),
            ("tcp_user_timeout", self.unacknowledged.as_millis().to_string()),
        ]
    }
}

impl ConnInfo {
    /// [`DeadPeer::server_settings`] for a connection that sends its own startup message
    /// (replication).
    pub(crate) fn server_dead_peer_settings(&self) -> [(&'static str, String); 4] {
        DeadPeer::of(&self.config).server_settings()
    }
}

async fn drive<C: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: C) {
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "SQL connection closed");
    }
}

/// The URL parameters zetl reads itself, and the URL without them for tokio-postgres.
struct ZetlParams {
    url: String,
    ssl_mode: SslMode,
    root_cert: Option<PathBuf>,
    require_auth: Option<String>,
}

/// Removes `sslmode`, `sslrootcert` and `require_auth` from the URL's query and returns them
/// decoded.
fn take_zetl_params(url: &str) -> Result<ZetlParams, PgError> {
    // The query starts at the first `?` after the credentials, which end at the first `@`
    // (as tokio-postgres reads them): a password may hold a `?`.
    let after_credentials = url.find('@').map_or(0, |at| at + 1);
    let (base, query) = match url[after_credentials..].find('?') {
        Some(q) => (&url[..after_credentials + q], &url[after_credentials + q + 1..]),
        None => (url, ""),
    };
    let mut params = ZetlParams { url: String::new(), ssl_mode: SslMode::Prefer, root_cert: None, require_auth: None };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => params.ssl_mode = SslMode::parse(&decode(v)?)?,
            Some(("sslrootcert", v)) => params.root_cert = Some(PathBuf::from(decode(v)?)),
            Some(("require_auth", v)) => params.require_auth = Some(decode(v)?),
            _ => kept.push(pair),
        }
    }
    params.url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok(params)
}

/// A URL parameter's value with `%XX` decoded.
fn decode(value: &str) -> Result<String, PgError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(byte.ok_or_else(|| PgError::Url(format!("`{value}`: a `%` must be followed by two hex digits")))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgError::Url(format!("`{value}` is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_and_hides_password() {
        let info = ConnInfo::from_url("postgres://rep:s3cret@db.example:6543/shop").expect("valid");
        assert_eq!(
            (info.host.as_str(), info.port, info.user.as_str(), info.dbname.as_str()),
            ("db.example", 6543, "rep", "shop")
        );
        assert_eq!(info.password.as_deref(), Some(&b"s3cret"[..]));
        assert!(!format!("{info:?}").contains("s3cret"));
    }

    #[test]
    fn reads_tls_parameters_and_rejects_missing_user() {
        let info = ConnInfo::from_url("postgres://u@h/db?sslmode=require&connect_timeout=5").expect("valid");
        assert_eq!(info.ssl_mode, SslMode::Require);
        assert_eq!(ConnInfo::from_url("postgres://u@h/db").expect("valid").ssl_mode, SslMode::Prefer);
        assert!(ConnInfo::from_url("postgres://u@h/db?sslmode=sometimes").is_err());
        assert!(ConnInfo::from_url("postgres://h/db").is_err());
    }

    #[test]
    fn require_auth_defaults_to_scram_unless_the_server_is_verified() {
        use auth::AuthMethod::{Md5, Password, ScramSha256};
        let prefer = ConnInfo::from_url("postgres://u@h/db").expect("valid");
        assert!(prefer.auth.allows(ScramSha256) && !prefer.auth.allows(Md5) && !prefer.auth.allows(Password));
        let opted = ConnInfo::from_url("postgres://u@h/db?require_auth=password%2Cmd5,scram-sha-256").expect("valid");
        assert!(opted.auth.allows(Password) && opted.auth.allows(Md5));
        let msg = ConnInfo::from_url("postgres://u@h/db?require_auth=kerberos").expect_err("refused").to_string();
        assert!(msg.contains("require_auth `kerberos`"), "{msg}");
        let msg = ConnInfo::from_url("postgres://u@h/db?sslmode=verify-ca").expect_err("no root").to_string();
        assert!(msg.contains("add sslrootcert=/path/to/ca.crt to the url"), "{msg}");
    }

    /// Passwords with URL delimiters in them, percent-encoded where a URL needs it.
    #[test]
    fn awkward_passwords_parse_and_stay_hidden() {
        let urls = [
            ("postgres://rep:p%2Fa%3Ass%40w%3Frd%231@db:5432/shop?sslmode=disable", "p/a:ss@w?rd#1"),
            ("postgres://rep:p/a:ss%40w?rd#1@db:5432/shop?sslmode=disable", "p/a:ss@w?rd#1"),
            ("postgres://rep@db:5432/shop?sslmode=disable&password=secret", "secret"),
        ];
        for (url, password) in urls {
            let info = ConnInfo::from_url(url).expect("valid");
            assert_eq!(info.password.as_deref(), Some(password.as_bytes()), "{url}");
            assert_eq!((info.host.as_str(), info.dbname.as_str(), info.ssl_mode), ("db", "shop", SslMode::Disable));
            let shown = format!("{info:?} {}", zetl_core::config::redact_url(url));
            for part in ["p/a", "p%2F", "ss%40w", "rd#1", "secret"] {
                assert!(!shown.contains(part), "`{part}` in {shown}");
            }
        }
        // An error about the rest of the URL does not quote the password either.
        let msg = ConnInfo::from_url("postgres://rep:p%2Fa%3Ass@db:notaport/shop").expect_err("bad port");
        assert!(!msg.to_string().contains("p%2Fa") && !msg.to_string().contains("p/a"), "{msg}");
    }
}
