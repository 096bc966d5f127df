//! The user's YAML contract (see docs/configuration.md). Parsed with `deny_unknown_fields`
//! everywhere, then validated once into types that cannot be invalid afterwards.

use crate::apply::{ApplyDoc, ApplyPolicy};
use crate::envsubst;
use crate::error::ConfigError;
use crate::filter::TableFilter;
use serde::Deserialize;
use std::path::{Path, PathBuf};

mod secret;
pub use secret::{redact_url, Secret, SecretUrl};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    integrations: Vec<IntegrationDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationDoc {
    name: String,
    source: SourceConfig,
    #[serde(default)]
    target: TargetConfig,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceConfig {
    Postgres(PostgresSourceConfig),
    Mysql(MysqlSourceConfig),
    Dynamodb(DynamodbSourceConfig),
}

/// DynamoDB tables, seeded by a parallel Scan and followed through DynamoDB Streams.
/// Credentials come from the standard AWS chain (environment, profile, web identity, ECS,
/// instance metadata), never from this file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamodbSourceConfig {
    /// AWS region; default from the AWS chain (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// Another endpoint than AWS's (a local DynamoDB-compatible server).
    pub endpoint_url: Option<String>,
    /// A named profile of the AWS config and credentials files.
    pub profile: Option<String>,
    /// How the whole item is kept in the `item` column: `dynamodb` (DynamoDB's typed JSON,
    /// lossless) or `plain` (ordinary JSON: sets become arrays, binary base64 strings).
    #[serde(default)]
    pub item_format: ItemFormat,
    /// Table name → attribute → type: attributes also kept as typed columns.
    #[serde(default)]
    pub columns: std::collections::BTreeMap<String, std::collections::BTreeMap<String, AttributeType>>,
    #[serde(default)]
    pub scan: ScanConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemFormat {
    #[default]
    Dynamodb,
    Plain,
}

/// The type a declared attribute column gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeType {
    /// S, or any scalar as its text.
    Text,
    /// N, exact (DynamoDB numbers have up to 38 digits).
    Number,
    /// N that is a whole 64-bit number.
    Integer,
    /// N as a double.
    Float,
    Bool,
    /// B.
    Bytes,
    /// Any attribute as plain JSON.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// Parallel Scan segments per table.
    #[serde(default = "defaults::scan_segments")]
    pub segments: u32,
    /// Read capacity units per second the seed may consume per table; 0 is no limit.
    #[serde(default)]
    pub read_units_per_second: u32,
    /// Items per Scan page.
    #[serde(default = "defaults::scan_page_items")]
    pub page_items: u32,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self { segments: defaults::scan_segments(), read_units_per_second: 0, page_items: defaults::scan_page_items() }
    }
}

/// MySQL or MariaDB, read through the row binlog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSourceConfig {
    pub url: SecretUrl,
    /// The replica server id zetl registers with; default derived from the integration name.
    /// Must differ from every server and replica in the topology.
    pub server_id: Option<u32>,
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// Seconds between heartbeats the server sends while the binlog is idle.
    #[serde(default = "defaults::heartbeat_secs")]
    pub heartbeat_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    pub url: SecretUrl,
    /// Publication name; default `zetl_<integration>`.
    pub publication: Option<String>,
    /// Replication slot name; default `zetl_<integration>`.
    pub slot: Option<String>,
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// Seconds between looks for new tables that match the filters.
    #[serde(default = "defaults::table_discovery_secs")]
    pub table_discovery_secs: u64,
    /// `zetl check` fails when the slot retains more WAL than this (MiB).
    #[serde(default = "defaults::slot_wal_budget_mb")]
    pub slot_wal_budget_mb: u64,
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
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetConfig {
    Duckdb(DuckdbTargetConfig),
    Postgres(PostgresTargetConfig),
}

/// A PostgreSQL database as the warehouse.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTargetConfig {
    pub url: SecretUrl,
    /// Source schema (MySQL: database) → target schema; unlisted ones keep their name.
    #[serde(default)]
    pub schemas: std::collections::HashMap<String, String>,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig::Duckdb(DuckdbTargetConfig {
            path: PathBuf::from(defaults::DUCKDB_PATH),
            memory_limit: defaults::duckdb_memory_limit(),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuckdbTargetConfig {
    #[serde(default = "defaults::duckdb_path")]
    pub path: PathBuf,
    /// DuckDB's `memory_limit` (its buffer pool; beyond it DuckDB spills to disk).
    #[serde(default = "defaults::duckdb_memory_limit")]
    pub memory_limit: String,
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
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_wait_ms: defaults::batch_max_wait_ms(), max_bytes: defaults::batch_max_bytes() }
    }
}

mod defaults {
    pub const DUCKDB_PATH: &str = "warehouse.duckdb";
    pub fn duckdb_path() -> std::path::PathBuf {
        DUCKDB_PATH.into()
    }
    pub fn metrics_listen() -> String {
        "127.0.0.1:9187".into()
    }
    pub fn ready_max_lag_seconds() -> f64 {
        60.0
    }
    pub fn duckdb_memory_limit() -> String {
        "256MB".into()
    }
    pub fn snapshot_parallelism() -> usize {
        std::thread::available_parallelism().map(|n| n.get().clamp(2, 8)).unwrap_or(2)
    }
    pub fn snapshot_chunk_rows() -> u64 {
        1_000_000
    }
    pub fn slot_wal_budget_mb() -> u64 {
        10 * 1024
    }
    pub fn table_discovery_secs() -> u64 {
        10
    }
    pub fn heartbeat_secs() -> u64 {
        5
    }
    pub fn batch_max_wait_ms() -> u64 {
        500
    }
    pub fn scan_segments() -> u32 {
        4
    }
    pub fn scan_page_items() -> u32 {
        1000
    }
    pub fn batch_max_bytes() -> usize {
        32 << 20
    }
}

/// One validated integration.
#[derive(Debug, Clone)]
pub struct Integration {
    pub name: String,
    pub source: SourceConfig,
    pub target: TargetConfig,
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
pub struct Config {
    pub file: PathBuf,
    pub integrations: Vec<Integration>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { file: path.display().to_string(), cause: source })?;
        Self::parse(path, &text, |name| std::env::var(name).ok())
    }

    pub fn parse(path: &Path, text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let (text, secrets) = envsubst::substitute(path, text, lookup)?;
        let doc: FileDoc = serde_yaml::from_str(&text).map_err(|e| scrub(syntax_error(&file, &text, &e), &secrets))?;
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
            if integrations.iter().any(|i: &Integration| i.name == it.name) {
                return Err(invalid(format!("integration `{}` is declared twice", it.name)));
            }
            let tables = TableFilter::new(&it.tables.include, &it.tables.exclude)
                .map_err(|e| invalid(format!("integration `{}`: tables: {e}", it.name)))?;
            validate_source(&it.source).map_err(|e| invalid(format!("integration `{}`: {e}", it.name)))?;
            if let TargetConfig::Postgres(pg) = &it.target {
                if !pg.url.has_scheme(&["postgres", "postgresql"]) {
                    return Err(invalid(format!(
                        "integration `{}`: target.url must start with postgres:// or postgresql://",
                        it.name
                    )));
                }
            }
            let apply =
                ApplyPolicy::from_doc(it.apply).map_err(|e| invalid(format!("integration `{}`: {e}", it.name)))?;
            let metrics_listen = match it.metrics.listen.as_str() {
                "off" | "" => None,
                addr => Some(addr.parse().map_err(|_| {
                    invalid(format!("integration `{}`: metrics.listen `{addr}` is not HOST:PORT or `off`", it.name))
                })?),
            };
            if let Some(token) = &it.metrics.token {
                // Never quote the value: it is a secret.
                if token.is_empty() || !token.is_header_safe() {
                    return Err(invalid(format!(
                        "integration `{}`: metrics.token must be non-empty, visible ASCII without spaces \
                         (it travels in an HTTP header)",
                        it.name
                    )));
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

    /// The integration a command is about: the named one, or the only one.
    pub fn integration(&self, name: Option<&str>) -> Result<&Integration, ConfigError> {
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

fn validate_source(source: &SourceConfig) -> Result<(), String> {
    let snapshot = match source {
        SourceConfig::Postgres(pg) => {
            if !pg.url.has_scheme(&["postgres", "postgresql"]) {
                return Err("source.url must start with postgres:// or postgresql://".into());
            }
            &pg.snapshot
        }
        SourceConfig::Mysql(my) => {
            if !my.url.has_scheme(&["mysql", "mariadb"]) {
                return Err("source.url must start with mysql:// or mariadb://".into());
            }
            if my.server_id == Some(0) {
                return Err("source.server_id must not be 0 (the server refuses replicas without an id)".into());
            }
            if my.heartbeat_secs == 0 || my.heartbeat_secs > 3600 {
                return Err("source.heartbeat_secs must be between 1 and 3600".into());
            }
            &my.snapshot
        }
        SourceConfig::Dynamodb(d) => {
            if let Some(url) = &d.endpoint_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err("source.endpoint_url must start with http:// or https://".into());
                }
            }
            if d.scan.segments == 0 || d.scan.segments > 1000 {
                return Err("source.scan.segments must be between 1 and 1000".into());
            }
            if d.scan.page_items == 0 {
                return Err("source.scan.page_items must be at least 1".into());
            }
            return Ok(());
        }
    };
    if snapshot.parallelism == 0 || snapshot.parallelism > 64 {
        return Err("source.snapshot.parallelism must be between 1 and 64".into());
    }
    Ok(())
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

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("z.yaml"), text, |n| (n == "PW").then(|| "pw".to_string()))
    }

    const GOOD: &str =
        "integrations:\n  - name: a\n    source:\n      kind: postgres\n      url: postgres://u:${PW}@h/db\n";

    #[test]
    fn defaults_fill_what_is_left_out() {
        let c = parse(GOOD).expect("valid");
        let it = c.integration(None).expect("one integration");
        assert!(matches!(&it.target, TargetConfig::Duckdb(d) if d.path == Path::new("warehouse.duckdb")));
        assert_eq!(it.batch.max_wait_ms, 500);
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
        assert!(msg.contains("invalid type"), "{msg}");
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
