//! Which password exchanges the server may ask for, after libpq's `require_auth` (docs:
//! "Connection Strings" → "Parameter Key Words").
//!
//! A server not verified by its certificate (any `sslmode` but `verify-ca`/`verify-full`) may
//! be an impostor. A cleartext password request would hand it the password, an MD5 request a
//! salted hash it can attack offline; SCRAM-SHA-256 reveals neither. So on such connections
//! the default allows SCRAM and no password at all; the URL can say otherwise, e.g.
//! `require_auth=password,md5,scram-sha-256`.
//!
//! The replication connection (our own protocol client) asks [`AuthPolicy::check`] before it
//! answers. tokio-postgres answers by itself, so the SQL connections read the server through
//! [`AuthWatch`], which fails the read that brings a refused request: tokio-postgres then
//! stops before it has sent anything.

use crate::error::PgError;
use crate::tls::SslMode;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A way of proving the password, as `require_auth` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// The server asked for nothing (`trust`, or a client certificate).
    None,
    /// The password in cleartext.
    Password,
    /// An MD5 hash of the password with a salt the server chooses.
    Md5,
    ScramSha256,
}

impl AuthMethod {
    const ALL: [AuthMethod; 4] = [AuthMethod::None, AuthMethod::Password, AuthMethod::Md5, AuthMethod::ScramSha256];

    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Password => "password",
            AuthMethod::Md5 => "md5",
            AuthMethod::ScramSha256 => "scram-sha-256",
        }
    }

    fn described(self) -> &'static str {
        match self {
            AuthMethod::None => "no password (the server asked for none)",
            AuthMethod::Password => "cleartext password",
            AuthMethod::Md5 => "MD5 password hash",
            AuthMethod::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    /// The method an AuthenticationRequest code asks for (docs: "Message Formats",
    /// Authentication*): 3 cleartext, 5 MD5, 10 SASL, whose only mechanisms are SCRAM-SHA-256
    /// and its channel-bound form. Other codes (Kerberos, GSS, SSPI) are refused by both
    /// clients anyway; SASL continue/final (11, 12) belong to the exchange already allowed.
    pub fn requested_by(code: i32) -> Option<AuthMethod> {
        match code {
            3 => Some(AuthMethod::Password),
            5 => Some(AuthMethod::Md5),
            10 => Some(AuthMethod::ScramSha256),
            _ => None,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// `require_auth` in the URL.
    Url,
    /// The default for a server verified by its certificate: anything.
    Verified,
    /// The default for any other connection: SCRAM or nothing.
    Unverified(SslMode),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthPolicy {
    allowed: u8,
    origin: Origin,
}

impl AuthPolicy {
    /// From the URL's `require_auth` (a comma-separated list of `password`, `md5`,
    /// `scram-sha-256`, `none`), else the default for `mode`.
    pub fn new(require_auth: Option<&str>, mode: SslMode) -> Result<AuthPolicy, PgError> {
        let Some(list) = require_auth else {
            return Ok(if mode.verifies_server() {
                AuthPolicy { allowed: all(&AuthMethod::ALL), origin: Origin::Verified }
            } else {
                AuthPolicy {
                    allowed: all(&[AuthMethod::None, AuthMethod::ScramSha256]),
                    origin: Origin::Unverified(mode),
                }
            });
        };
        let mut allowed = 0;
        for item in list.split(',').map(str::trim) {
            let method = AuthMethod::ALL.into_iter().find(|m| m.name() == item).ok_or_else(|| {
                PgError::Url(format!(
                    "require_auth `{item}` is not one of password, md5, scram-sha-256, none \
                     (a list such as require_auth=md5,scram-sha-256)"
                ))
            })?;
            allowed |= method.bit();
        }
        Ok(AuthPolicy { allowed, origin: Origin::Url })
    }

    pub fn allows(self, method: AuthMethod) -> bool {
        self.allowed & method.bit() != 0
    }

    fn allowed_names(self) -> String {
        AuthMethod::ALL.into_iter().filter(|m| self.allows(*m)).map(AuthMethod::name).collect::<Vec<_>>().join(",")
    }

    /// Ok when the server may use `method`; else the error to stop with, before anything of
    /// the password is sent.
    pub fn check(self, method: AuthMethod, user: &str) -> Result<(), PgError> {
        if self.allows(method) {
            return Ok(());
        }
        let reason = match self.origin {
            Origin::Unverified(mode) => format!(
                "with sslmode={mode} the server is not verified and could be an impostor collecting passwords; \
                 verify it (sslmode=verify-full and sslrootcert=/path/to/ca.crt in the url), move the role to \
                 scram-sha-256 on the server (password_encryption, pg_hba.conf), or accept the risk with \
                 require_auth={},scram-sha-256 in the url",
                method.name()
            ),
            Origin::Url | Origin::Verified => {
                format!("require_auth in the url allows only {}", self.allowed_names())
            }
        };
        Err(PgError::AuthRefused { user: user.to_string(), method: method.described(), reason })
    }
}

fn all(methods: &[AuthMethod]) -> u8 {
    methods.iter().fold(0, |bits, m| bits | m.bit())
}

/// The error a refused request fails the read with; [`ConnInfo::connect_sql`] finds it in
/// tokio-postgres' error and reports [`AuthPolicy::check`]'s.
#[derive(Debug)]
pub struct Refused(pub AuthMethod);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "authentication by {} refused", self.0.name())
    }
}

impl std::error::Error for Refused {}

/// Where in the server's messages the watch is.
#[derive(Debug, Clone, Copy)]
enum Watch {
    /// The one byte answering SSLRequest: `S` (TLS follows) or `N`.
    SslAnswer,
    /// A message's type, length and, for an AuthenticationRequest, its code.
    Header {
        bytes: [u8; 9],
        have: usize,
    },
    /// The rest of a message's body.
    Skip(usize),
    /// Authentication is over, or TLS took over (a watch inside it reads on): pass through.
    Done,
    Refused(AuthMethod),
}

const HEADER: Watch = Watch::Header { bytes: [0; 9], have: 0 };

/// A stream that reads the server's messages until authentication is over, and fails the
/// read that brings a request `policy` refuses.
pub struct AuthWatch<S> {
    inner: S,
    policy: AuthPolicy,
    state: Watch,
    /// Whether the server asked for anything before AuthenticationOk.
    asked: bool,
    /// Set when the server answered SSLRequest with `N`.
    plaintext: Option<Arc<AtomicBool>>,
}

impl<S> AuthWatch<S> {
    /// Over the TCP connection. `ssl_request`: whether the first byte answers an SSLRequest;
    /// `plaintext` learns whether the server refused TLS.
    pub fn raw(inner: S, policy: AuthPolicy, ssl_request: bool, plaintext: Arc<AtomicBool>) -> AuthWatch<S> {
        let state = if ssl_request { Watch::SslAnswer } else { HEADER };
        AuthWatch { inner, policy, state, asked: false, plaintext: Some(plaintext) }
    }

    /// Inside TLS: the first byte starts a message.
    pub fn tls(inner: S, policy: AuthPolicy) -> AuthWatch<S> {
        AuthWatch { inner, policy, state: HEADER, asked: false, plaintext: None }
    }

    /// Over the raw socket with direct TLS negotiation: nothing there is readable.
    pub fn transparent(inner: S, policy: AuthPolicy) -> AuthWatch<S> {
        AuthWatch { inner, policy, state: Watch::Done, asked: false, plaintext: None }
    }

    /// Follows `bytes`, just read from the server.
    fn observe(&mut self, mut bytes: &[u8]) -> Result<(), AuthMethod> {
        while let Some(&first) = bytes.first() {
            match &mut self.state {
                Watch::Done | Watch::Refused(_) => break,
                Watch::SslAnswer if first == b'S' => self.state = Watch::Done,
                Watch::SslAnswer => {
                    if first == b'N' {
                        bytes = &bytes[1..];
                        if let Some(flag) = &self.plaintext {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                    // Anything else is an ErrorResponse from a server too old for SSLRequest.
                    self.state = HEADER;
                }
                Watch::Skip(left) => {
                    let n = (*left).min(bytes.len());
                    bytes = &bytes[n..];
                    *left -= n;
                    if *left == 0 {
                        self.state = HEADER;
                    }
                }
                Watch::Header { bytes: header, have } => {
                    let need = if *have > 0 && header[0] == b'R' { 9 } else { 5 };
                    let n = (need - *have).min(bytes.len());
                    header[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have < need || (*have == 5 && header[0] == b'R') {
                        continue;
                    }
                    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
                    let rest = length.saturating_sub(need - 1);
                    let code =
                        (header[0] == b'R').then(|| i32::from_be_bytes([header[5], header[6], header[7], header[8]]));
                    self.state = if rest == 0 { HEADER } else { Watch::Skip(rest) };
                    if let Some(code) = code {
                        self.authentication_request(code)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn authentication_request(&mut self, code: i32) -> Result<(), AuthMethod> {
        let method = match code {
            // AuthenticationOk: the end of the exchange.
            0 if self.asked => {
                self.state = Watch::Done;
                return Ok(());
            }
            0 => AuthMethod::None,
            other => {
                self.asked = true;
                match AuthMethod::requested_by(other) {
                    Some(method) => method,
                    None => return Ok(()),
                }
            }
        };
        if self.policy.allows(method) {
            if method == AuthMethod::None {
                self.state = Watch::Done;
            }
            Ok(())
        } else {
            self.state = Watch::Refused(method);
            Err(method)
        }
    }
}

fn refused(method: AuthMethod) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, Refused(method))
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthWatch<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Watch::Refused(method) = this.state {
            return Poll::Ready(Err(refused(method)));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if !matches!(this.state, Watch::Done) {
            if let Err(method) = this.observe(&buf.filled()[before..]) {
                // The request never reaches tokio-postgres, so it cannot answer it.
                buf.set_filled(before);
                return Poll::Ready(Err(refused(method)));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthWatch<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tokio_postgres::tls::TlsStream + Unpin> tokio_postgres::tls::TlsStream for AuthWatch<S> {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        self.inner.channel_binding()
    }
}

/// tokio-postgres' TLS connector, with a watch inside the TLS session it makes.
pub struct WatchedTls<T> {
    pub inner: T,
    pub policy: AuthPolicy,
}

impl<S, T> tokio_postgres::tls::TlsConnect<S> for WatchedTls<T>
where
    T: tokio_postgres::tls::TlsConnect<S> + Send + 'static,
    T::Future: Send + 'static,
{
    type Stream = AuthWatch<T::Stream>;
    type Error = T::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Stream, T::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let (handshake, policy) = (self.inner.connect(stream), self.policy);
        Box::pin(async move { Ok(AuthWatch::tls(handshake.await?, policy)) })
    }
}

/// The method a refused request asked for, if that is why a connection failed.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<AuthMethod> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(Refused(method)) = io.get_ref().and_then(|inner| inner.downcast_ref::<Refused>()) {
                return Some(*method);
            }
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(require_auth: Option<&str>, mode: SslMode) -> AuthPolicy {
        AuthPolicy::new(require_auth, mode).expect("valid")
    }

    /// An AuthenticationRequest message with `code` and `extra` body bytes.
    fn auth_request(code: i32, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&(8 + extra.len() as u32).to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(extra);
        m
    }

    /// Feeds `bytes` to a raw watch `chunk` bytes at a time; the refused method, if any.
    fn watch(policy: AuthPolicy, ssl_request: bool, bytes: &[u8], chunk: usize) -> (Option<AuthMethod>, bool) {
        let plaintext = Arc::new(AtomicBool::new(false));
        let mut w = AuthWatch::raw((), policy, ssl_request, plaintext.clone());
        let refused = bytes.chunks(chunk).find_map(|c| w.observe(c).err());
        (refused, plaintext.load(Ordering::Relaxed))
    }

    #[test]
    fn defaults_depend_on_whether_the_server_is_verified() {
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            let p = policy(None, mode);
            assert!(p.allows(AuthMethod::ScramSha256) && p.allows(AuthMethod::None), "{mode}");
            assert!(!p.allows(AuthMethod::Password) && !p.allows(AuthMethod::Md5), "{mode}");
        }
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            assert!(AuthMethod::ALL.iter().all(|m| policy(None, mode).allows(*m)), "{mode}");
        }
        let p = policy(Some("md5, scram-sha-256"), SslMode::VerifyFull);
        assert!(p.allows(AuthMethod::Md5) && !p.allows(AuthMethod::Password) && !p.allows(AuthMethod::None));
        let msg = AuthPolicy::new(Some("gss"), SslMode::Prefer).expect_err("unknown").to_string();
        assert!(msg.contains("require_auth `gss` is not one of"), "{msg}");
    }

    #[test]
    fn refusals_say_how_to_proceed() {
        let msg = policy(None, SslMode::Prefer).check(AuthMethod::Password, "rep").expect_err("refused").to_string();
        assert!(
            msg.starts_with("refusing to authenticate as `rep` by cleartext password: with sslmode=prefer"),
            "{msg}"
        );
        assert!(msg.contains("require_auth=password,scram-sha-256"), "{msg}");
        let msg = policy(Some("scram-sha-256"), SslMode::VerifyFull).check(AuthMethod::None, "rep").expect_err("x");
        assert!(msg.to_string().ends_with("require_auth in the url allows only scram-sha-256"), "{msg}");
    }

    #[test]
    fn watch_fails_at_a_refused_request_wherever_reads_split_it() {
        let unverified = policy(None, SslMode::Prefer);
        let mut md5 = b"N".to_vec();
        md5.extend(auth_request(5, &[1, 2, 3, 4]));
        let mut scram = b"N".to_vec();
        scram.extend(auth_request(10, b"SCRAM-SHA-256\0\0"));
        scram.extend(auth_request(11, b"r=abc"));
        scram.extend(auth_request(12, b"v=xyz"));
        scram.extend(auth_request(0, b""));
        scram.extend(auth_request(5, &[0; 4])); // after AuthenticationOk: not looked at
        for chunk in [1, 2, 3, 7, 1024] {
            assert_eq!(watch(unverified, true, &md5, chunk), (Some(AuthMethod::Md5), true), "chunk {chunk}");
            assert_eq!(watch(unverified, true, &scram, chunk), (None, true), "chunk {chunk}");
            let trust = auth_request(0, b"");
            let only_scram = policy(Some("scram-sha-256"), SslMode::Disable);
            assert_eq!(watch(only_scram, false, &trust, chunk).0, Some(AuthMethod::None), "chunk {chunk}");
        }
        // TLS accepted: the watch inside TLS reads on; this one passes everything.
        let mut tls = b"S".to_vec();
        tls.extend(auth_request(3, b""));
        assert_eq!(watch(unverified, true, &tls, 1), (None, false));
        let allowed = policy(Some("password"), SslMode::Disable);
        assert_eq!(watch(allowed, false, &auth_request(3, b""), 1).0, None);
    }
}
