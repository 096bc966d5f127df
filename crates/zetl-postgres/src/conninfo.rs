//! Connection settings from the source URL, shared by the SQL connections (tokio-postgres) and
//! the replication connection (our own protocol layer).

use crate::error::PgError;
use crate::tls::{client_config, SslMode};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::config::Host;

#[derive(Clone)]
pub struct ConnInfo {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Vec<u8>>,
    pub dbname: String,
    pub ssl_mode: SslMode,
    pub tls: Arc<rustls::ClientConfig>,
    pub config: tokio_postgres::Config,
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
        // tokio-postgres knows only disable/prefer/require: the TLS parameters are ours.
        let (url, ssl_mode, root_cert) = take_tls_params(url)?;
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
        let options: String = SESSION_SETTINGS.iter().map(|(k, v)| format!("-c {k}={v} ")).collect();
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
        Ok(ConnInfo { host, port, password, user, dbname, ssl_mode, tls, config })
    }

    pub async fn connect_sql(&self) -> Result<tokio_postgres::Client, PgError> {
        let what = || format!("connecting to {}:{}", self.host, self.port);
        if self.ssl_mode == SslMode::Disable {
            let (client, connection) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|source| PgError::Sql { what: what(), cause: source })?;
            tokio::spawn(drive(connection));
            Ok(client)
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*self.tls).clone());
            let (client, connection) =
                self.config.connect(tls).await.map_err(|source| PgError::Sql { what: what(), cause: source })?;
            tokio::spawn(drive(connection));
            Ok(client)
        }
    }
}

async fn drive<C: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: C) {
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "SQL connection closed");
    }
}

/// Removes `sslmode` and `sslrootcert` from the URL's query and returns them parsed.
fn take_tls_params(url: &str) -> Result<(String, SslMode, Option<PathBuf>), PgError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut mode = SslMode::Prefer;
    let mut root = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = SslMode::parse(v)?,
            Some(("sslrootcert", v)) => root = Some(PathBuf::from(v)),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, mode, root))
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
}
