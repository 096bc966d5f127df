//! zetl's DynamoDB source: the selected tables are seeded by a parallel Scan, then followed
//! through DynamoDB Streams (new and old images), shard lineage respected, per-shard sequence
//! numbers stored in the target with the data.

mod attr;
mod check;
mod client;
mod config;
mod error;
mod fill;
mod position;
mod reader;
mod scan;
mod scan_cursor;
mod shards;
mod source;
mod stream;
mod table;

pub use config::{AttributeType, DynamodbSourceConfig, ItemFormat, ScanConfig};
pub use error::DynError;
pub use source::DynSource;
pub use table::SCHEMA;
