//! Where the stream of each table has been applied up to: per table its stream and, per shard,
//! the last applied sequence number or that the shard is finished. Stored in the target with
//! the data (as JSON), so a restart or a kill -9 resumes after exactly what was applied.
//! A shard of the stream that is not listed has not been read yet: it starts at its oldest
//! record once its parent is finished.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamPos {
    pub tables: BTreeMap<String, TablePos>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePos {
    /// The stream ARN: a table whose stream was disabled and enabled again has a new one, and
    /// the changes in between are lost to the stream.
    pub stream: String,
    #[serde(default)]
    pub shards: BTreeMap<String, ShardPos>,
    /// When the table's copy (Scan) began, µs since the epoch, while shards that were open then
    /// are still unread ([`ShardPos::Open`]): their records since then must all still be in the
    /// stream, which keeps them 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_began_us: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardPos {
    /// Applied up to and including this sequence number.
    After(String),
    /// Read to its end (a closed shard).
    Done,
    /// Open when the table's copy began and not read yet: read from its oldest record, which
    /// must still be there (changes since the copy began are in it).
    Open,
}

impl zetl_core::source::SourcePosition for StreamPos {
    const KIND: &'static str = "a DynamoDB stream position";

    fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

impl fmt::Display for StreamPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zetl_core::source::SourcePosition;

    #[test]
    fn round_trips() {
        let mut pos = StreamPos::default();
        let mut shards = BTreeMap::new();
        shards.insert("shardId-1".to_string(), ShardPos::After("1100000000017454423009".into()));
        shards.insert("shardId-0".to_string(), ShardPos::Done);
        pos.tables.insert("orders".into(), TablePos { stream: "arn:s".into(), shards, copy_began_us: None });
        assert_eq!(StreamPos::parse(&pos.to_string()), Ok(pos));
        assert!(StreamPos::parse("0/16B3748").is_err());
        let open = StreamPos::parse(r#"{"tables":{"t":{"stream":"a","copy_began_us":5,"shards":{"s":"open"}}}}"#);
        assert_eq!(open.map(|p| p.tables["t"].shards["s"].clone()), Ok(ShardPos::Open));
    }
}
