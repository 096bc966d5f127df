//! zetl's core: the event model every source emits and every target consumes, the user's
//! configuration, table filters, batching and the pipeline that joins a source to a target.

pub mod any_target;
pub mod apply;
mod apply_thread;
pub mod batch;
pub mod bookkeeping;
pub mod channel;
pub mod check;
pub mod columns;
pub mod config;
pub mod copy_rows;
mod envsubst;
pub mod error;
pub mod event;
pub mod fill_pace;
pub mod filter;
pub mod hex;
pub mod json;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod source;
pub mod source_clock;
pub mod sql;
pub mod status;
pub mod target;

pub use error::{ConfigError, PipelineError, Retry};
pub use event::{Checkpoint, CopiedTable, CopyCursor, CopyUnderWay, Phase, Position, SourceEvent, TableState};
pub use model::{Change, ChangeKind, Column, ColumnType, Row, RowIdentity, TableId, TableSchema, Value};
