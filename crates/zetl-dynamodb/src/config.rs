//! The settings of a DynamoDB source (`source: { kind: dynamodb, … }`).

use serde::Deserialize;
use zetl_core::config::{Settings, ValidationError};

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
    #[serde(default = "scan_segments")]
    pub segments: u32,
    /// Read capacity units per second the seed may consume per table; 0 is no limit.
    #[serde(default)]
    pub read_units_per_second: u32,
    /// Items per Scan page.
    #[serde(default = "scan_page_items")]
    pub page_items: u32,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self { segments: scan_segments(), read_units_per_second: 0, page_items: scan_page_items() }
    }
}

impl Settings for DynamodbSourceConfig {
    fn validate(&self) -> Result<(), ValidationError> {
        zetl_core::config::http_url("endpoint_url", self.endpoint_url.as_deref())?;
        if self.scan.segments == 0 || self.scan.segments > 1000 {
            return Err(ValidationError::new("scan.segments", "must be between 1 and 1000"));
        }
        if self.scan.page_items == 0 {
            return Err(ValidationError::new("scan.page_items", "must be at least 1"));
        }
        Ok(())
    }
}

fn scan_segments() -> u32 {
    4
}

fn scan_page_items() -> u32 {
    1000
}
