//! The settings of an Iceberg target (`target: { kind: iceberg, … }`).

use serde::Deserialize;
use std::time::Duration;
use zetl_core::config::{SecretUrl, ValidationError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcebergTargetConfig {
    /// Where tables live: `file:///path` (or a plain absolute path), or `s3://bucket/prefix`.
    pub warehouse: String,
    /// An S3 warehouse's region; default from the AWS chain (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// An S3-compatible server instead of AWS's S3 (MinIO, moto, Ceph…).
    pub endpoint_url: Option<String>,
    /// A named profile of the AWS config and credentials files.
    pub profile: Option<String>,
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub mode: Mode,
    /// How often changes become an Iceberg snapshot: `60s`, `5m`, or seconds as a number.
    #[serde(default = "default_commit_every")]
    pub commit_every: DurationSetting,
    /// Data files roll over at about this many bytes of Parquet.
    #[serde(default = "default_target_file_size")]
    pub target_file_size: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    pub kind: CatalogKind,
    /// `sqlite:///path/catalog.db` or `postgres://user:password@host/db` (its URL parameters
    /// as for a PostgreSQL source: sslmode, sslrootcert, require_auth).
    pub url: SecretUrl,
    /// The catalog name Spark and pyiceberg are configured with (`catalog_name` in its tables).
    #[serde(default = "default_catalog_name")]
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogKind {
    Sql,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The table equals the source table (position deletes for superseded rows).
    #[default]
    Mirror,
    /// One appended row per change.
    Changelog,
}

/// A duration written `60s`, `5m`, `1h` or as whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "raw_duration::Raw")]
pub struct DurationSetting(pub Duration);

mod raw_duration {
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum Raw {
        Seconds(u64),
        Text(String),
    }
}

impl TryFrom<raw_duration::Raw> for DurationSetting {
    type Error = String;

    fn try_from(raw: raw_duration::Raw) -> Result<Self, String> {
        let text = match raw {
            raw_duration::Raw::Seconds(s) => return Ok(DurationSetting(Duration::from_secs(s))),
            raw_duration::Raw::Text(t) => t,
        };
        let bad = || format!("`{text}` is not a duration (write 60s, 5m or 1h)");
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = text.split_at(split);
        let n: u64 = number.parse().map_err(|_| bad())?;
        let seconds = match unit.trim() {
            "ms" => return Ok(DurationSetting(Duration::from_millis(n))),
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            _ => return Err(bad()),
        };
        Ok(DurationSetting(Duration::from_secs(seconds)))
    }
}

impl std::str::FromStr for DurationSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::try_from(raw_duration::Raw::Text(text.to_string()))
    }
}

fn default_commit_every() -> DurationSetting {
    DurationSetting(Duration::from_secs(60))
}

fn default_target_file_size() -> u64 {
    128 << 20
}

fn default_catalog_name() -> String {
    "zetl".into()
}

impl IcebergTargetConfig {
    pub fn is_s3(&self) -> bool {
        self.warehouse.starts_with("s3://")
    }

    /// The bucket of an S3 warehouse.
    pub fn bucket(&self) -> Option<&str> {
        let rest = self.warehouse.strip_prefix("s3://")?;
        Some(rest.split('/').next().unwrap_or(rest))
    }

    /// The warehouse as a location without a trailing slash (a plain path as `file://`).
    pub fn warehouse_location(&self) -> String {
        let w = self.warehouse.trim_end_matches('/');
        if w.starts_with('/') {
            format!("file://{w}")
        } else {
            w.to_string()
        }
    }

    /// The path of the SQLite catalog file, when the catalog is one.
    pub fn sqlite_path(&self) -> Option<&str> {
        self.catalog.url.expose().strip_prefix("sqlite://")
    }
}

impl zetl_core::config::Settings for IcebergTargetConfig {
    fn validate(&self) -> Result<(), ValidationError> {
        let location = self.warehouse_location();
        if self.is_s3() {
            if !cfg!(feature = "s3") {
                return Err(ValidationError::new(
                    "warehouse",
                    "s3:// needs a zetl built with S3 support (the default build; this one was built with --no-default-features)",
                ));
            }
            if self.bucket().is_none_or(|b| b.is_empty()) {
                return Err(ValidationError::new("warehouse", "must name a bucket: s3://bucket/prefix"));
            }
            zetl_core::config::http_url("endpoint_url", self.endpoint_url.as_deref())?;
        } else if !location.starts_with("file:///") {
            return Err(ValidationError::new("warehouse", "must be file:///absolute/path or s3://bucket/prefix"));
        } else {
            let s3_only = [("region", &self.region), ("endpoint_url", &self.endpoint_url), ("profile", &self.profile)];
            if let Some((key, _)) = s3_only.iter().find(|(_, v)| v.is_some()) {
                return Err(ValidationError::new(*key, "applies to an s3:// warehouse only"));
            }
        }
        let postgres = self.catalog.url.has_scheme(&["postgres", "postgresql"]);
        if !postgres && self.sqlite_path().is_none_or(|p| !p.starts_with('/')) {
            return Err(ValidationError::new(
                "catalog.url",
                "must be sqlite:///absolute/path/catalog.db or postgres://user@host/database",
            ));
        }
        if self.commit_every.0.is_zero() {
            return Err(ValidationError::new("commit_every", "must be more than 0"));
        }
        if self.target_file_size < 1 << 20 {
            return Err(ValidationError::new("target_file_size", "must be at least 1048576 bytes"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_seconds() {
        let parse = |t: &str| DurationSetting::try_from(raw_duration::Raw::Text(t.into()));
        assert_eq!(parse("60s"), Ok(DurationSetting(Duration::from_secs(60))));
        assert_eq!(parse("5m"), Ok(DurationSetting(Duration::from_secs(300))));
        assert_eq!(parse("250ms"), Ok(DurationSetting(Duration::from_millis(250))));
        assert!(parse("soon").is_err());
        assert!(parse("5d").is_err());
        let secs = DurationSetting::try_from(raw_duration::Raw::Seconds(7));
        assert_eq!(secs, Ok(DurationSetting(Duration::from_secs(7))));
    }
}
