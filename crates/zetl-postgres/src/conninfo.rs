//! Connection settings from the source URL, shared by the SQL connections (tokio-postgres) and
//! the replication connection (our own protocol layer).

use crate::error::PgError;
use std::str::FromStr;
use tokio_postgres::config::{Host, SslMode};

#[derive(Clone)]
pub struct ConnInfo {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Vec<u8>>,
    pub dbname: String,
    pub config: tokio_postgres::Config,
}

impl std::fmt::Debug for ConnInfo {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
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
];

impl ConnInfo {
    pub fn from_url(url: &str) -> Result<ConnInfo, PgError> {
        // tokio-postgres' error text does not echo the URL, so it is safe to show.
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|e| PgError::Url(e.to_string()))?;
        let host = match config.get_hosts() {
            [Host::Tcp(h)] => h.clone(),
            [] => "localhost".to_string(),
            [Host::Tcp(_), ..] => {
                return Err(PgError::Url("several hosts are not supported".into()))
            }
            _ => {
                return Err(PgError::Url(
                    "only TCP hosts are supported (not unix sockets)".into(),
                ))
            }
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config
            .get_user()
            .map(str::to_string)
            .ok_or_else(|| PgError::Url("the url names no user".into()))?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(PgError::Url(
                "sslmode=require is not supported by this build yet; use sslmode=disable or prefer"
                    .into(),
            ));
        }
        let dbname = config.get_dbname().unwrap_or(&user).to_string();
        let options: String = SESSION_SETTINGS
            .iter()
            .map(|(k, v)| format!("-c {k}={v} "))
            .collect();
        config.options(options.trim_end());
        if config.get_application_name().is_none() {
            config.application_name("zetl");
        }
        Ok(ConnInfo {
            host,
            port,
            password: config.get_password().map(<[u8]>::to_vec),
            user,
            dbname,
            config,
        })
    }

    pub async fn connect_sql(&self) -> Result<tokio_postgres::Client, PgError> {
        let (client, connection) =
            self.config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|source| PgError::Sql {
                    what: format!("connecting to {}:{}", self.host, self.port),
                    source,
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "SQL connection closed");
            }
        });
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_and_hides_password() {
        let info = ConnInfo::from_url("postgres://rep:s3cret@db.example:6543/shop").expect("valid");
        assert_eq!(
            (
                info.host.as_str(),
                info.port,
                info.user.as_str(),
                info.dbname.as_str()
            ),
            ("db.example", 6543, "rep", "shop")
        );
        assert_eq!(info.password.as_deref(), Some(&b"s3cret"[..]));
        assert!(!format!("{info:?}").contains("s3cret"));
    }

    #[test]
    fn rejects_unsupported_tls_and_missing_user() {
        assert!(ConnInfo::from_url("postgres://u@h/db?sslmode=require").is_err());
        assert!(ConnInfo::from_url("postgres://h/db").is_err());
    }
}
