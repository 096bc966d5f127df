//! The source URL → driver options, with the session settings every connection needs.

use crate::error::MyError;
use mysql_async::{Conn, Opts, OptsBuilder};
use std::time::Duration;
use zetl_core::config::redact_url;

/// Every session reads text as utf8mb4 and temporal values in UTC.
const SESSION_SETTINGS: &[&str] = &["SET NAMES utf8mb4", "SET time_zone = '+00:00'"];

/// 1 GiB, MySQL's and MariaDB's upper bound for `max_allowed_packet`.
const MAX_PACKET: usize = 1 << 30;

#[derive(Clone)]
pub struct ConnInfo {
    opts: Opts,
    /// `host:port` for messages (never the URL: it holds the password).
    pub addr: String,
    pub user: String,
}

impl ConnInfo {
    pub fn from_url(url: &str) -> Result<Self, MyError> {
        let normalized = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        let opts = Opts::from_url(&normalized).map_err(|e| MyError::Url(format!("{}: {e}", redact_url(url))))?;
        let addr = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
        let user = opts.user().unwrap_or("root").to_string();
        let opts = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            // The protocol's largest packet. The driver would otherwise take the server's
            // `max_allowed_packet`, which bounds statements but not binlog events: a row event
            // of a large row (an update carries it twice) is bigger, and the stream would stop
            // at it for good.
            .max_allowed_packet(Some(MAX_PACKET))
            .init(SESSION_SETTINGS.to_vec())
            .into();
        Ok(Self { opts, addr, user })
    }

    pub async fn connect(&self) -> Result<Conn, MyError> {
        Conn::new(self.opts.clone()).await.map_err(|cause| MyError::Connect { addr: self.addr.clone(), cause })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A URL the driver cannot read is quoted in the error, with its passwords hidden: raw or
    /// percent-encoded, with URL delimiters in them, or as a `password=` parameter.
    #[test]
    fn errors_never_show_the_password() {
        let urls = [
            ("mysql://rep:p/a:ss@w?rd#1@db:3306/shop", &["p/a", "rd#1"][..]),
            ("mariadb://rep:p%2Fa%3Ass%40w%3Frd%231@db:notaport/shop", &["p%2Fa", "%40w"][..]),
            ("mysql://rep@db:3306/shop?password=secret", &["secret"][..]),
        ];
        for (url, secrets) in urls {
            let Err(e) = ConnInfo::from_url(url) else { panic!("{url} was accepted") };
            let msg = e.to_string();
            assert!(msg.contains("rep") && msg.contains("***"), "{msg}");
            for s in secrets {
                assert!(!msg.contains(s), "`{s}` in {msg}");
            }
        }
    }
}
