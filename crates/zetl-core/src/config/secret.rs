//! Values that must never reach a log line or an error message: the shared token of the HTTP
//! endpoint, and passwords inside connection URLs.

use serde::Deserialize;

/// A secret from the configuration (usually `${VAR}`): shown as `***`, compared in constant
/// time.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for sending it where it belongs (an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `offered` is the secret. Takes the same time for every offered value of a given
    /// length, so that response times do not reveal how much of a guess was right.
    pub fn matches(&self, offered: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut diff = expected.len() ^ offered.len();
        for (i, &b) in offered.iter().enumerate() {
            let e = expected.get(i).copied().unwrap_or(!b);
            diff |= usize::from(e ^ b);
        }
        std::hint::black_box(diff) == 0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Visible ASCII without spaces: what an HTTP header value carries unchanged.
    pub(crate) fn is_header_safe(&self) -> bool {
        self.0.bytes().all(|b| b.is_ascii_graphic())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A connection URL from the configuration. It cannot be printed with its password: `Debug`
/// and `Display` show the redacted form ([`redact_url`]); `expose` hands the URL itself to the
/// driver that connects with it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the URL names one of these schemes (`postgres://`, …).
    pub fn has_scheme(&self, schemes: &[&str]) -> bool {
        schemes.iter().any(|s| self.0.strip_prefix(s).is_some_and(|rest| rest.starts_with("://")))
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

#[cfg(test)]
impl Secret {
    pub(crate) fn new(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

/// Query parameters whose value is a password (libpq's `password`; `sslpassword` unlocks a
/// client key).
const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];

/// A URL with its passwords replaced by `***`, fit for logs and errors.
///
/// Generated passwords often hold `/`, `?`, `#` or `@`, and the URL parsers in use read such
/// a URL differently: tokio-postgres ends the credentials at the first `@` anywhere, WHATWG
/// parsers (mysql_async) at the last `@` before the first `/`, `?` or `#`, and an `@`
/// left unencoded in a password moves both. The password is taken to reach the latest of
/// these (and of the `@`s before the query), so that it is hidden under any reading;
/// `password=` query parameters are hidden as well.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    let mut out = String::with_capacity(url.len());
    out.push_str(head);
    let after_credentials = match credentials_end(rest) {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _password)) => {
                out.push_str(user);
                out.push_str(":***");
                &rest[at..]
            }
            // No password in the credentials: what looked like them may be a query holding
            // an `@` (`?application_name=a@b`), so look for parameters from the start.
            None => rest,
        },
        None => rest,
    };
    match after_credentials.split_once('?') {
        Some((before, query)) => {
            out.push_str(before);
            out.push('?');
            out.push_str(&redact_params(query));
        }
        None => out.push_str(after_credentials),
    }
    out
}

/// Where the credentials end (their `@`), under the widest reading.
fn credentials_end(rest: &str) -> Option<usize> {
    let first_at = rest.find('@');
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let last_at_in_authority = rest[..authority_end].rfind('@');
    let last_at_before_query = rest[..query_start(rest)].rfind('@');
    first_at.max(last_at_in_authority).max(last_at_before_query)
}

/// The first `?` that starts parameters (`?key=`): a `?` inside a password is followed by no
/// `=` before the next `@`.
fn query_start(rest: &str) -> usize {
    rest.match_indices('?')
        .map(|(i, _)| i)
        .find(|&i| rest[i + 1..].split('@').next().is_some_and(|segment| segment.contains('=')))
        .unwrap_or(rest.len())
}

fn redact_params(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if SECRET_PARAMS.iter().any(|s| percent_decoded(key).eq_ignore_ascii_case(s)) => {
                format!("{key}=***")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `%XX` decoded (for comparing parameter names only); undecodable input is kept as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_url_shows_without_its_password() {
        let url = SecretUrl::new("postgres://u:hunter2@h/db");
        assert!(!format!("{url} {url:?}").contains("hunter2"));
        assert_eq!(url.expose(), "postgres://u:hunter2@h/db");
        assert!(url.has_scheme(&["postgresql", "postgres"]) && !url.has_scheme(&["mysql"]));
    }

    const SECRET: &str = "p/a:ss@w?rd#1";

    fn assert_hidden(url: &str, secrets: &[&str], expected: &str) {
        let shown = redact_url(url);
        for s in secrets {
            assert!(!shown.contains(s), "`{s}` shown in {shown}");
        }
        assert_eq!(shown, expected);
    }

    #[test]
    fn hides_passwords_with_url_delimiters() {
        // Percent-encoded, as a URL should carry it.
        assert_hidden(
            "postgres://rep:p%2Fa%3Ass%40w%3Frd%231@db.example:5432/shop?sslmode=require",
            &["p%2F", "%40w", "rd%231"],
            "postgres://rep:***@db.example:5432/shop?sslmode=require",
        );
        // Only the `@` encoded (tokio-postgres reads this one).
        assert_hidden(
            "postgres://rep:p/a:ss%40w?rd#1@db.example/shop",
            &["p/a", "ss%40w", "rd#1"],
            "postgres://rep:***@db.example/shop",
        );
        // Not encoded at all: hidden under either parser's reading.
        assert_hidden(
            &format!("mysql://rep:{SECRET}@db:3306/shop"),
            &["p/a", "ss", "rd#1"],
            "mysql://rep:***@db:3306/shop",
        );
        assert_hidden("mariadb://rep:a@b@db/x", &["a@b"], "mariadb://rep:***@db/x");
    }

    #[test]
    fn hides_password_parameters() {
        assert_hidden(
            "postgres://rep@db/shop?sslmode=require&password=secret&application_name=a@b",
            &["secret"],
            "postgres://rep@db/shop?sslmode=require&password=***&application_name=a@b",
        );
        assert_hidden("postgres://db/shop?Pass%77ord=secret", &["secret"], "postgres://db/shop?Pass%77ord=***");
        assert_hidden(
            "postgres://rep:one@db/shop?password=two",
            &["one", "two"],
            "postgres://rep:***@db/shop?password=***",
        );
    }

    #[test]
    fn leaves_urls_without_secrets_alone() {
        for url in ["postgres://rep@db:5432/shop", "postgres://db/shop?application_name=a@b", "plain words"] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn secrets_compare_exactly_and_never_print() {
        let s = Secret::new("t0ken");
        assert!(s.matches(b"t0ken"));
        for wrong in [&b""[..], b"t0ke", b"t0kenn", b"T0ken", b"x"] {
            assert!(!s.matches(wrong), "{wrong:?}");
        }
        assert!(!Secret::new("").matches(b"\xff"));
        assert_eq!(format!("{s:?}"), "***");
    }
}
