//! The replication connection's socket: plain TCP, or TLS after PostgreSQL's SSLRequest
//! (docs: "Message Flow" → "SSL Session Encryption").

use crate::conninfo::ConnInfo;
use crate::error::PgError;
use crate::tls::SslMode;
use rustls::pki_types::ServerName;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

pub enum Socket {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The SSLRequest code (1234 << 16 | 5679).
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

pub async fn connect(info: &ConnInfo) -> Result<Socket, PgError> {
    let addr = format!("{}:{}", info.host, info.port);
    let mut tcp = info.connect_tcp().await?;
    if info.ssl_mode == SslMode::Disable {
        return Ok(Socket::Plain(tcp));
    }
    tcp.write_all(&SSL_REQUEST).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    if answer[0] != b'S' {
        if info.ssl_mode.requires_tls() {
            return Err(PgError::Prerequisite(format!(
                "{addr} does not accept TLS connections, but the url asks for sslmode={:?}",
                info.ssl_mode
            )));
        }
        return Ok(Socket::Plain(tcp));
    }
    let name =
        ServerName::try_from(info.host.clone()).map_err(|e| PgError::Url(format!("host `{}`: {e}", info.host)))?;
    let connector = tokio_rustls::TlsConnector::from(info.tls.clone());
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| PgError::Prerequisite(format!("TLS handshake with {addr} failed: {e}")))?;
    Ok(Socket::Tls(Box::new(tls)))
}

impl AsyncRead for Socket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_flush(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
