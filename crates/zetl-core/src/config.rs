//! The user's YAML contract (see docs/configuration.md). Parsed with `deny_unknown_fields`
//! everywhere, then validated once into types that cannot be invalid afterwards. The source
//! and target settings are each crate's own ([`Settings`]); this module keeps the file, its
//! errors with file:line, and what every integration has.

use crate::apply::{ApplyDoc, ApplyPolicy};
use crate::envsubst;
use crate::error::ConfigError;
use crate::filter::TableFilter;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

pub mod kind;
mod secret;
pub use secret::{redact_url, Secret, SecretUrl};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Settings, T: Settings + Default"))]
struct FileDoc<S, T> {
    integrations: Vec<IntegrationDoc<S, T>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Settings, T: Settings + Default"))]
struct IntegrationDoc<S, T> {
    name: String,
    source: S,
    #[serde(default)]
    target: T,
    #[serde(default)]
    tables: TablesDoc,
    #[serde(default)]
    batch: BatchConfig,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    apply: ApplyDoc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the HTTP endpoint (`/metrics`, `/healthz`, `/readyz`); `off` disables it.
    #[serde(default = "defaults::metrics_listen")]
    pub listen: String,
    /// `/readyz` answers 503 when lag grows past this.
    #[serde(default = "defaults::ready_max_lag_seconds")]
    pub ready_max_lag_seconds: f64,
    /// When set, requests that change something (`POST /resync`) must carry it as
    /// `Authorization: Bearer …`.
    #[serde(default)]
    pub token: Option<Secret>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: defaults::metrics_listen(),
            ready_max_lag_seconds: defaults::ready_max_lag_seconds(),
            token: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TablesDoc {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    /// Pattern → `initial | never | resync`, in the order written (a YAML mapping keeps it).
    #[serde(default)]
    snapshot: serde_yaml::Mapping,
}

impl TablesDoc {
    fn filter(&self) -> Result<TableFilter, String> {
        let mut modes = Vec::new();
        for (pattern, mode) in &self.snapshot {
            let pattern =
                pattern.as_str().ok_or_else(|| format!("snapshot: the key {pattern:?} is not a table pattern"))?;
            let mode = serde_yaml::from_value(mode.clone())
                .map_err(|_| format!("snapshot: `{pattern}` must be one of `initial`, `never`, `resync`"))?;
            modes.push((pattern.to_string(), mode));
        }
        TableFilter::new(&self.include, &self.exclude)?.with_snapshot_modes(&modes)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Connections copying at once.
    #[serde(default = "defaults::snapshot_parallelism")]
    pub parallelism: usize,
    /// Tables with more (estimated) rows than this are copied in chunks of about this size.
    #[serde(default = "defaults::snapshot_chunk_rows")]
    pub chunk_rows: u64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self { parallelism: defaults::snapshot_parallelism(), chunk_rows: defaults::snapshot_chunk_rows() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Longest a committed source transaction waits before the target commits it.
    #[serde(default = "defaults::batch_max_wait_ms")]
    pub max_wait_ms: u64,
    /// Changes held before they are written to the target (also inside one big transaction).
    #[serde(default = "defaults::batch_max_bytes")]
    pub max_bytes: usize,
    /// Set by targets that commit by time only (a lake: one snapshot per `commit_every`):
    /// `max_bytes` then writes the changes held into the open transaction without committing.
    #[serde(skip)]
    pub commit_by_time_only: bool,
    /// Set by targets that log every change (a lake in changelog mode): batches keep each
    /// change in order, with the position of its source transaction, instead of collapsing.
    #[serde(skip)]
    pub changelog: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_wait_ms: defaults::batch_max_wait_ms(),
            max_bytes: defaults::batch_max_bytes(),
            commit_by_time_only: false,
            changelog: false,
        }
    }
}

mod defaults {
    pub fn metrics_listen() -> String {
        "127.0.0.1:9187".into()
    }
    pub fn ready_max_lag_seconds() -> f64 {
        60.0
    }
    pub fn snapshot_parallelism() -> usize {
        std::thread::available_parallelism().map(|n| n.get().clamp(2, 8)).unwrap_or(2)
    }
    pub fn snapshot_chunk_rows() -> u64 {
        1_000_000
    }
    pub fn batch_max_wait_ms() -> u64 {
        500
    }
    pub fn batch_max_bytes() -> usize {
        32 << 20
    }
}

/// A source's or a target's own settings, defined by its crate: deserialised from the
/// integration's `source:` / `target:` mapping (unknown keys refused, with file:line), then
/// checked by themselves.
pub trait Settings: DeserializeOwned + Clone + fmt::Debug {
    fn validate(&self) -> Result<(), ValidationError>;

    /// A target's word on the integration's `apply:` settings: what it cannot do, refused
    /// when the file is read.
    fn accepts(&self, _apply: &ApplyPolicy) -> Result<(), String> {
        Ok(())
    }
}

/// A setting that parsed but breaks a rule: which one (its key under `source:` or
/// `target:`) and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {constraint}")]
pub struct ValidationError {
    pub field: String,
    pub constraint: String,
}

/// A URL setting such as `endpoint_url`, which must be http:// or https://.
pub fn http_url(field: &str, url: Option<&str>) -> Result<(), ValidationError> {
    match url {
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            Err(ValidationError::new(field, "must start with http:// or https://"))
        }
        _ => Ok(()),
    }
}

impl ValidationError {
    pub fn new(field: impl Into<String>, constraint: impl Into<String>) -> Self {
        ValidationError { field: field.into(), constraint: constraint.into() }
    }

    /// The same error for a setting nested under `prefix`.
    pub fn under(self, prefix: &str) -> Self {
        ValidationError { field: format!("{prefix}.{}", self.field), ..self }
    }
}

impl SnapshotConfig {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.parallelism == 0 || self.parallelism > 64 {
            return Err(ValidationError::new("snapshot.parallelism", "must be between 1 and 64"));
        }
        Ok(())
    }
}

/// `url` must use one of `schemes`.
pub fn require_scheme(url: &SecretUrl, schemes: &[&str]) -> Result<(), ValidationError> {
    if url.has_scheme(schemes) {
        return Ok(());
    }
    let listed: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
    Err(ValidationError::new("url", format!("must start with {}", listed.join(" or "))))
}

/// One validated integration: `S` and `T` are the source and target settings of the kinds
/// this binary was built with (its registry).
#[derive(Debug, Clone)]
pub struct Integration<S, T> {
    pub name: String,
    pub source: S,
    pub target: T,
    pub tables: TableFilter,
    pub batch: BatchConfig,
    /// Where `/metrics` etc. are served; `None` when turned off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub ready_max_lag_seconds: f64,
    /// The shared token `POST /resync` requires, if any.
    pub metrics_token: Option<Secret>,
    /// Delete mode and truncate policy per table.
    pub apply: ApplyPolicy,
}

#[derive(Debug)]
pub struct Config<S, T> {
    pub file: PathBuf,
    pub integrations: Vec<Integration<S, T>>,
}

impl<S: Settings, T: Settings + Default> Config<S, T> {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { file: path.display().to_string(), cause: source })?;
        Self::parse(path, &text, |name| std::env::var(name).ok())
    }

    pub fn parse(path: &Path, text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let (text, secrets) = envsubst::substitute(path, text, lookup)?;
        let doc: FileDoc<S, T> =
            serde_yaml::from_str(&text).map_err(|e| scrub(syntax_error(&file, &text, &e), &secrets))?;
        let invalid = |problem: String| ConfigError::Invalid { file: file.clone(), problem };
        if doc.integrations.is_empty() {
            return Err(invalid("`integrations` is empty: declare at least one".into()));
        }
        let mut integrations = Vec::with_capacity(doc.integrations.len());
        for it in doc.integrations {
            if !valid_name(&it.name) {
                return Err(invalid(format!(
                    "integration name `{}` must be 1-40 characters of a-z, 0-9, `_` and `-`",
                    it.name
                )));
            }
            if integrations.iter().any(|i: &Integration<S, T>| i.name == it.name) {
                return Err(invalid(format!("integration `{}` is declared twice", it.name)));
            }
            let in_it = |e: String| invalid(format!("integration `{}`: {e}", it.name));
            let tables = it.tables.filter().map_err(|e| in_it(format!("tables: {e}")))?;
            it.source.validate().map_err(|e| in_it(e.under("source").to_string()))?;
            it.target.validate().map_err(|e| in_it(e.under("target").to_string()))?;
            let apply = ApplyPolicy::from_doc(it.apply).map_err(in_it)?;
            it.target.accepts(&apply).map_err(in_it)?;
            let metrics_listen = match it.metrics.listen.as_str() {
                "off" | "" => None,
                addr => Some(
                    addr.parse().map_err(|_| in_it(format!("metrics.listen `{addr}` is not HOST:PORT or `off`")))?,
                ),
            };
            if it.batch.max_bytes == 0 {
                return Err(in_it("batch.max_bytes must be at least 1".into()));
            }
            let lag = it.metrics.ready_max_lag_seconds;
            if !lag.is_finite() || lag < 0.0 {
                return Err(in_it(format!("metrics.ready_max_lag_seconds must be 0 or more seconds, not {lag}")));
            }
            if let Some(token) = &it.metrics.token {
                // Never quote the value: it is a secret.
                if token.is_empty() || !token.is_header_safe() {
                    return Err(in_it(
                        "metrics.token must be non-empty, visible ASCII without spaces \
                         (it travels in an HTTP header)"
                            .into(),
                    ));
                }
            }
            integrations.push(Integration {
                name: it.name,
                source: it.source,
                target: it.target,
                tables,
                batch: it.batch,
                metrics_listen,
                ready_max_lag_seconds: it.metrics.ready_max_lag_seconds,
                metrics_token: it.metrics.token,
                apply,
            });
        }
        Ok(Config { file: path.to_path_buf(), integrations })
    }
}

impl<S, T> Config<S, T> {
    /// The integration a command is about: the named one, or the only one.
    pub fn integration(&self, name: Option<&str>) -> Result<&Integration<S, T>, ConfigError> {
        let file = self.file.display().to_string();
        match name {
            Some(n) => self.integrations.iter().find(|i| i.name == n).ok_or_else(|| ConfigError::Invalid {
                file,
                problem: format!("no integration named `{n}` (declared: {})", self.names()),
            }),
            None if self.integrations.len() == 1 => Ok(&self.integrations[0]),
            None => Err(ConfigError::Invalid {
                file,
                problem: format!("the file declares several integrations; pick one with -i NAME ({})", self.names()),
            }),
        }
    }

    fn names(&self) -> String {
        self.integrations.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

fn valid_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn syntax_error(file: &str, text: &str, e: &serde_yaml::Error) -> ConfigError {
    let (mut line, mut column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    // serde_yaml appends " at line L column C"; the location is already in front.
    let mut problem = e.to_string();
    if let Some(at) = problem.find(" at line ") {
        problem.truncate(at);
    }
    // Inside `source:` / `target:` (tagged by `kind`) serde_yaml reports the mapping's start;
    // point at the offending key itself.
    if let Some(key) = problem.split("unknown field `").nth(1).and_then(|r| r.split('`').next()) {
        if let Some((l, c)) = find_key(text, key, line) {
            (line, column) = (l, c);
        }
    }
    ConfigError::Syntax { file: file.to_string(), line, column, problem }
}

/// Values from the environment are usually secrets: never echo them.
fn scrub(mut e: ConfigError, secrets: &[String]) -> ConfigError {
    if let ConfigError::Syntax { problem, .. } = &mut e {
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            *problem = problem.replace(s.as_str(), "***");
        }
        // A URL may also have been written out in full: hide its password.
        *problem = problem
            .split(' ')
            .map(|w| if w.contains("://") { redact_url(w) } else { w.to_string() })
            .collect::<Vec<_>>()
            .join(" ");
    }
    e
}

/// The first line at or after `from` (1-based) that holds `key:` as a mapping key.
fn find_key(text: &str, key: &str, from: usize) -> Option<(usize, usize)> {
    text.lines().enumerate().skip(from.saturating_sub(1)).find_map(|(i, l)| {
        let trimmed = l.trim_start().trim_start_matches("- ");
        let indent = l.len() - trimmed.len();
        trimmed.strip_prefix(key).filter(|rest| rest.trim_start().starts_with(':')).map(|_| (i + 1, indent + 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings as a source crate defines them, read by kind as the binary's registry does.
    #[derive(Debug, Clone)]
    enum Source {
        Postgres(Pg),
    }

    impl<'de> Deserialize<'de> for Source {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let (_, rest) = kind::split_kind(d, "source", &["postgres"])?;
            Ok(Source::Postgres(kind::settings("source", rest)?))
        }
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pg {
        url: SecretUrl,
        #[serde(default)]
        snapshot: SnapshotConfig,
    }

    impl Settings for Source {
        fn validate(&self) -> Result<(), ValidationError> {
            let Source::Postgres(pg) = self;
            require_scheme(&pg.url, &["postgres", "postgresql"])?;
            pg.snapshot.validate()
        }
    }

    #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Target {
        path: Option<String>,
    }

    impl Settings for Target {
        fn validate(&self) -> Result<(), ValidationError> {
            Ok(())
        }
    }

    type Config = super::Config<Source, Target>;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("z.yaml"), text, |n| (n == "PW").then(|| "pw".to_string()))
    }

    const GOOD: &str =
        "integrations:\n  - name: a\n    source:\n      kind: postgres\n      url: postgres://u:${PW}@h/db\n";

    #[test]
    fn defaults_fill_what_is_left_out() {
        let c = parse(GOOD).expect("valid");
        let it = c.integration(None).expect("one integration");
        assert_eq!(it.target, Target::default());
        assert_eq!(it.batch.max_wait_ms, 500);
    }

    #[test]
    fn a_broken_setting_is_named_by_its_key() {
        let text = GOOD.replace("postgres://", "mysql://");
        let msg = parse(&text).expect_err("scheme").to_string();
        assert_eq!(msg, "z.yaml: integration `a`: source.url must start with postgres:// or postgresql://");
        let text = format!("{GOOD}      snapshot: {{ parallelism: 0 }}\n");
        let msg = parse(&text).expect_err("parallelism").to_string();
        assert!(msg.ends_with("source.snapshot.parallelism must be between 1 and 64"), "{msg}");
        let text = format!("{GOOD}      snapshot: {{ chunk_rows: -5 }}\n");
        let msg = parse(&text).expect_err("chunk_rows").to_string();
        assert!(msg.contains("source.snapshot.chunk_rows: invalid value: integer `-5`"), "{msg}");
        let msg = parse(&GOOD.replace("kind: postgres", "kind: oracle")).expect_err("kind").to_string();
        assert!(msg.contains("source.kind: unknown kind `oracle`, expected one of `postgres`"), "{msg}");
    }

    #[test]
    fn snapshot_modes_are_read_per_table_pattern() {
        let text = format!("{GOOD}    tables:\n      snapshot: {{ shop.audit_log: never, shop.*: resync }}\n");
        let c = parse(&text).expect("valid");
        let tables = &c.integration(None).expect("one").tables;
        assert_eq!(tables.snapshot_mode(&crate::TableId::new("shop", "audit_log")), crate::filter::SnapshotMode::Never);
        assert_eq!(tables.snapshot_mode(&crate::TableId::new("shop", "x")), crate::filter::SnapshotMode::Resync);
        let text = format!("{GOOD}    tables:\n      snapshot: {{ shop.audit_log: sometimes }}\n");
        let msg = parse(&text).expect_err("unknown mode").to_string();
        assert!(
            msg.ends_with("tables: snapshot: `shop.audit_log` must be one of `initial`, `never`, `resync`"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_key_inside_source_names_its_line() {
        let text = format!("{GOOD}      bogus: 1\n");
        let msg = parse(&text).expect_err("unknown key").to_string();
        assert!(msg.starts_with("z.yaml:6:7: "), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
    }

    #[test]
    fn secrets_never_reach_errors() {
        let text = "integrations:\n  - name: a\n    source: postgres://u:${PW}@h/db\n";
        let msg = parse(text).expect_err("a string is not a source").to_string();
        assert!(msg.contains("expected a mapping with `kind:`"), "{msg}");
        assert!(!msg.contains("pw"), "{msg}");
        let c = parse(GOOD).expect("valid");
        assert!(!format!("{:?}", c.integrations).contains(":pw@"));
    }

    #[test]
    fn metrics_token_is_kept_secret() {
        let with = |token: &str| format!("{GOOD}    metrics:\n      token: \"{token}\"\n");
        let c = Config::parse(Path::new("z.yaml"), &with("${TOKEN}"), |n| match n {
            "TOKEN" => Some("s3cr3t".into()),
            _ => Some("pw".into()),
        })
        .expect("valid");
        let it = c.integration(None).expect("one integration");
        assert!(it.metrics_token.as_ref().is_some_and(|t| t.matches(b"s3cr3t")));
        assert!(!format!("{it:?}").contains("s3cr3t"));
        assert_eq!(c.integrations[0].metrics_listen, Some("127.0.0.1:9187".parse().expect("addr")));
        for bad in ["", "with space"] {
            let msg = parse(&with(bad)).expect_err("bad token").to_string();
            assert!(msg.contains("metrics.token must be"), "{msg}");
            assert!(bad.is_empty() || !msg.contains(bad), "{msg}");
        }
    }

    #[test]
    fn urls_with_awkward_passwords_never_reach_debug_output() {
        let text = "integrations:\n  - name: a\n    source:\n      kind: postgres\n      \
                    url: \"postgres://u:p%2Fa%3Ass%40w%3Frd%231@h/db?password=secret\"\n";
        let c = parse(text).expect("valid");
        let shown = format!("{:?}", c.integrations);
        for s in ["p%2Fa", "%40w", "secret"] {
            assert!(!shown.contains(s), "`{s}` in {shown}");
        }
    }

    #[test]
    fn wrong_kind_and_bad_names_are_rejected() {
        let msg = parse(&GOOD.replace("postgres\n", "oracle\n")).expect_err("kind").to_string();
        assert!(msg.contains("oracle"), "{msg}");
        assert!(parse(&GOOD.replace("name: a", "name: A!")).is_err());
        let two = format!("{GOOD}{}", &GOOD["integrations:\n".len()..]);
        assert!(parse(&two).expect_err("duplicate").to_string().contains("twice"));
    }
}
