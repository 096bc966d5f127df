//! The DynamoDB source, when this binary is built with it (cargo feature `dynamodb`, on by
//! default). Without it — a smaller, faster build for PostgreSQL and MySQL only — a DynamoDB
//! integration is refused with how to get a build that has it.

use crate::failure::Failure;
use std::sync::Arc;
use tokio::sync::watch;
use zetl_core::channel::EventSender;
use zetl_core::check::Verdict;
use zetl_core::config::DynamodbSourceConfig;
use zetl_core::filter::TableFilter;
use zetl_core::pipeline::Progress;
use zetl_core::source::StartState;

#[cfg(feature = "dynamodb")]
mod built {
    use super::*;
    use zetl_dynamodb::DynSource;

    pub async fn run(
        config: &DynamodbSourceConfig,
        tables: TableFilter,
        progress: Arc<Progress>,
        start: StartState,
        events: EventSender,
        stop: watch::Receiver<bool>,
    ) -> Result<(), Failure> {
        let source = DynSource::new(config.clone(), tables).with_progress(progress);
        source.run(start, events, stop).await.map_err(Failure::of)
    }

    pub async fn check(config: &DynamodbSourceConfig, tables: TableFilter, stored: Option<&str>) -> Vec<Verdict> {
        zetl_dynamodb::check(&DynSource::new(config.clone(), tables), stored).await
    }

    pub async fn current_position(config: &DynamodbSourceConfig, tables: TableFilter) -> Result<String, String> {
        DynSource::new(config.clone(), tables).current_position().await.map_err(|e| e.to_string())
    }
}

#[cfg(not(feature = "dynamodb"))]
mod built {
    use super::*;
    use zetl_core::check::Outcome;

    const MISSING: &str = "this zetl was built without the DynamoDB source: build it with the default features \
                           (`cargo build --release -p zetl`)";

    pub async fn run(
        _: &DynamodbSourceConfig,
        _: TableFilter,
        _: Arc<Progress>,
        _: StartState,
        _: EventSender,
        _: watch::Receiver<bool>,
    ) -> Result<(), Failure> {
        Err(anyhow::anyhow!(MISSING).into())
    }

    pub async fn check(_: &DynamodbSourceConfig, _: TableFilter, _: Option<&str>) -> Vec<Verdict> {
        vec![(Outcome::Fail, "source".into(), MISSING.into())]
    }

    pub async fn current_position(_: &DynamodbSourceConfig, _: TableFilter) -> Result<String, String> {
        Err(MISSING.into())
    }
}

pub use built::{check, current_position, run};
