//! A small client for PostgreSQL's streaming replication protocol (docs: "Streaming Replication
//! Protocol"): startup with `replication=database`, password / MD5 / SCRAM-SHA-256 auth, simple
//! queries for the replication commands, then CopyBoth with XLogData, keepalives and standby
//! status updates. tokio-postgres cannot start such a session, so this is ours.

use crate::conninfo::auth::AuthMethod;
use crate::conninfo::{ConnInfo, SESSION_SETTINGS};
use crate::error::PgError;
use crate::lsn::Lsn;
use crate::socket::{self, Socket};
use crate::tls::SslMode;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Reads are large: per-message system calls are what bounds a replication client
/// (design field notes: pg_recvlogical's ~110k changes/s).
const READ_CHUNK: usize = 1 << 20;

pub struct ReplicationConn {
    stream: Socket,
    buf: BytesMut,
    out: BytesMut,
}

/// One message of the replication stream.
#[derive(Debug)]
pub enum ReplMessage {
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        /// The server's clock when it sent the message, µs since the Unix epoch.
        sent_us: i64,
        data: Bytes,
    },
    Keepalive {
        wal_end: Lsn,
        sent_us: i64,
        reply_requested: bool,
    },
    /// The server ended the stream (CopyDone).
    End,
}

impl ReplicationConn {
    pub async fn connect(info: &ConnInfo) -> Result<ReplicationConn, PgError> {
        let stream = socket::connect(info).await?;
        if info.ssl_mode == SslMode::Prefer && matches!(stream, Socket::Plain(_)) {
            info.warn_plaintext();
        }
        let mut conn = ReplicationConn { stream, buf: BytesMut::with_capacity(READ_CHUNK), out: BytesMut::new() };
        let mut params: Vec<(&str, &str)> = vec![
            ("user", &info.user),
            ("database", &info.dbname),
            ("replication", "database"),
            ("application_name", "zetl"),
        ];
        params.extend_from_slice(SESSION_SETTINGS);
        let dead_peer = info.server_dead_peer_settings();
        params.extend(dead_peer.iter().map(|(k, v)| (*k, v.as_str())));
        frontend::startup_message(params, &mut conn.out)?;
        conn.flush().await?;
        conn.authenticate(info).await?;
        Ok(conn)
    }

    /// Answers the server's authentication requests, each checked against `require_auth`
    /// before anything of the password is sent.
    async fn authenticate(&mut self, info: &ConnInfo) -> Result<(), PgError> {
        let auth_err = |reason: &str| PgError::Auth { user: info.user.clone(), reason: reason.to_string() };
        let password =
            || info.password.clone().ok_or_else(|| auth_err("the server asks for a password and the url has none"));
        let mut scram: Option<sasl::ScramSha256> = None;
        let mut asked = false;
        loop {
            let (tag, mut body) = self.read_frame().await?;
            match tag {
                b'R' => {
                    let kind = take_i32(&mut body)?;
                    match AuthMethod::requested_by(kind) {
                        Some(method) => info.auth.check(method, &info.user)?,
                        None if kind == 0 && !asked => info.auth.check(AuthMethod::None, &info.user)?,
                        None => {}
                    }
                    asked |= kind != 0;
                    match kind {
                        0 => {}
                        3 => frontend::password_message(&password()?, &mut self.out)?,
                        5 => {
                            let salt: [u8; 4] = body
                                .get(..4)
                                .and_then(|s| s.try_into().ok())
                                .ok_or_else(|| auth_err("short MD5 salt"))?;
                            let hash = md5_hash(info.user.as_bytes(), &password()?, salt);
                            frontend::password_message(hash.as_bytes(), &mut self.out)?;
                        }
                        10 => {
                            let offers_scram = body.split(|&b| b == 0).any(|m| m == b"SCRAM-SHA-256");
                            if !offers_scram {
                                return Err(auth_err("the server offers no SASL mechanism zetl knows (SCRAM-SHA-256)"));
                            }
                            let s = sasl::ScramSha256::new(&password()?, sasl::ChannelBinding::unsupported());
                            frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut self.out)?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| auth_err("SASL continue without a start"))?;
                            s.update(&body).map_err(|e| auth_err(&e.to_string()))?;
                            frontend::sasl_response(s.message(), &mut self.out)?;
                        }
                        12 => {
                            let mut s = scram.take().ok_or_else(|| auth_err("SASL final without a start"))?;
                            s.finish(&body).map_err(|e| auth_err(&e.to_string()))?;
                        }
                        other => return Err(auth_err(&format!("unsupported authentication method {other}"))),
                    }
                    self.flush().await?;
                }
                b'E' => {
                    let e = server_error("the connection", &body);
                    return Err(match e {
                        PgError::Server { code, message, .. } if code == "28P01" || code == "28000" => {
                            PgError::Auth { user: info.user.clone(), reason: message }
                        }
                        other => other,
                    });
                }
                b'Z' => return Ok(()),
                _ => {} // ParameterStatus, BackendKeyData, NoticeResponse
            }
        }
    }

    /// Runs one replication command; returns its rows as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, PgError> {
        frontend::query(sql, &mut self.out)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, body) = self.read_frame().await?;
            match tag {
                b'D' => rows.push(data_row(body)?),
                b'E' => error = Some(server_error(&first_words(sql), &body)),
                b'Z' => return error.map_or(Ok(rows), Err),
                _ => {}
            }
        }
    }

    /// Sends START_REPLICATION and switches to streaming.
    pub async fn start_replication(mut self, sql: &str) -> Result<ReplicationStream, PgError> {
        frontend::query(sql, &mut self.out)?;
        self.flush().await?;
        loop {
            let (tag, body) = self.read_frame().await?;
            match tag {
                b'W' => return Ok(ReplicationStream { conn: self }),
                b'E' => return Err(server_error("START_REPLICATION", &body)),
                b'N' => {}
                other => return Err(PgError::Protocol(format!("expected CopyBothResponse, got '{}'", other as char))),
            }
        }
    }

    async fn flush(&mut self) -> Result<(), PgError> {
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        self.out.clear();
        Ok(())
    }

    /// The next backend message: its type byte and body. Cancel-safe: a partly read message
    /// stays in the buffer.
    async fn read_frame(&mut self) -> Result<(u8, Bytes), PgError> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
                if len < 4 {
                    return Err(PgError::Protocol(format!("message length {len}")));
                }
                if self.buf.len() > len {
                    let mut frame = self.buf.split_to(len + 1).freeze();
                    let tag = frame.get_u8();
                    frame.advance(4);
                    return Ok((tag, frame));
                }
                self.buf.reserve(len + 1 - self.buf.len());
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(PgError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}

pub struct ReplicationStream {
    conn: ReplicationConn,
}

impl ReplicationStream {
    /// Cancel-safe (see `read_frame`), so it can sit in a `select!` beside timers.
    pub async fn next(&mut self) -> Result<ReplMessage, PgError> {
        loop {
            let (tag, mut body) = self.conn.read_frame().await?;
            match tag {
                b'd' => {
                    let kind = take_u8(&mut body)?;
                    match kind {
                        b'w' => {
                            let wal_start = Lsn(take_u64(&mut body)?);
                            let wal_end = Lsn(take_u64(&mut body)?);
                            let sent_us = unix_us(take_u64(&mut body)?);
                            return Ok(ReplMessage::XLogData { wal_start, wal_end, sent_us, data: body });
                        }
                        b'k' => {
                            let wal_end = Lsn(take_u64(&mut body)?);
                            let sent_us = unix_us(take_u64(&mut body)?);
                            let reply_requested = take_u8(&mut body)? == 1;
                            return Ok(ReplMessage::Keepalive { wal_end, sent_us, reply_requested });
                        }
                        other => return Err(PgError::Protocol(format!("unknown CopyData kind '{}'", other as char))),
                    }
                }
                b'c' => return Ok(ReplMessage::End),
                b'E' => return Err(server_error("the replication stream", &body)),
                _ => {}
            }
        }
    }

    /// Standby status update: `flushed` is what the target has committed; the server may
    /// recycle WAL before it and the slot's `confirmed_flush_lsn` moves to it.
    pub async fn send_status(&mut self, received: Lsn, flushed: Lsn, reply: bool) -> Result<(), PgError> {
        let mut msg = BytesMut::with_capacity(34);
        msg.put_u8(b'r');
        msg.put_u64(received.0);
        msg.put_u64(flushed.0);
        msg.put_u64(flushed.0);
        msg.put_i64(now_pg_us());
        msg.put_u8(reply as u8);
        frontend::CopyData::new(msg.freeze())?.write(&mut self.conn.out);
        self.conn.flush().await
    }
}

pub fn now_pg_us() -> i64 {
    zetl_core::pipeline::now_us() - PG_EPOCH_OFFSET_US
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// ErrorResponse fields (docs: "Error and Notice Message Fields").
/// PostgreSQL's timestamps count µs from 2000-01-01.
fn unix_us(pg_us: u64) -> i64 {
    (pg_us as i64).saturating_add(PG_EPOCH_OFFSET_US)
}

pub(crate) fn server_error(what: &str, body: &[u8]) -> PgError {
    let (mut code, mut message, mut hint, mut detail) = (String::new(), String::new(), None, None);
    for field in body.split(|&b| b == 0) {
        let Some((&kind, value)) = field.split_first() else {
            continue;
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match kind {
            b'C' => code = value,
            b'M' => message = value,
            b'H' => hint = Some(value),
            b'D' => detail = Some(value),
            _ => {}
        }
    }
    if let Some(d) = detail {
        message = format!("{message}: {d}");
    }
    let hint = hint.or_else(|| crate::error::hint_for(Some(&code)).map(String::from));
    PgError::Server { what: what.to_string(), code, message, hint }
}

fn data_row(mut body: Bytes) -> Result<Vec<Option<String>>, PgError> {
    if body.len() < 2 {
        return Err(PgError::Protocol("short DataRow".into()));
    }
    let n = body.get_i16();
    let mut row = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let len = take_i32(&mut body)?;
        if len < 0 {
            row.push(None);
        } else {
            let len = len as usize;
            if body.len() < len {
                return Err(PgError::Protocol("short DataRow value".into()));
            }
            row.push(Some(String::from_utf8_lossy(&body.split_to(len)).into_owned()));
        }
    }
    Ok(row)
}

fn take_u8(b: &mut Bytes) -> Result<u8, PgError> {
    if b.is_empty() {
        return Err(PgError::Protocol("short message".into()));
    }
    Ok(b.get_u8())
}

fn take_i32(b: &mut Bytes) -> Result<i32, PgError> {
    if b.len() < 4 {
        return Err(PgError::Protocol("short message".into()));
    }
    Ok(b.get_i32())
}

fn take_u64(b: &mut Bytes) -> Result<u64, PgError> {
    if b.len() < 8 {
        return Err(PgError::Protocol("short message".into()));
    }
    Ok(b.get_u64())
}
