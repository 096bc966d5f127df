//! The DynamoDB source end to end: check the tables and their streams, make the initial seed
//! (the stream position noted first; cut short, it goes on per Scan segment), then follow the
//! streams, seeding tables that need a copy later beside them (`fill`).

use crate::client::{self, Clients};
use crate::config::DynamodbSourceConfig;
use crate::error::DynError;
use crate::fill::Continue;
use crate::position::{StreamPos, TablePos};
use crate::scan;
use crate::scan_cursor;
use crate::shards;
use crate::stream::Streamer;
use crate::table::{self, TableInfo};
use std::collections::BTreeMap;
use std::sync::Arc;
use zetl_core::check::Verdict;
use zetl_core::copy_rows::adopt_without_copy;
use zetl_core::filter::{SnapshotMode, TableFilter};
use zetl_core::source::{CheckEnv, Holdings, Source, SourceContext, SourcePosition, StartState};
use zetl_core::{CopiedTable, SourceEvent};

pub struct DynSource {
    config: DynamodbSourceConfig,
    filter: TableFilter,
}

impl DynSource {
    pub fn new(config: DynamodbSourceConfig, filter: TableFilter) -> Self {
        Self { config, filter }
    }

    pub fn config(&self) -> &DynamodbSourceConfig {
        &self.config
    }

    pub fn filter(&self) -> &TableFilter {
        &self.filter
    }

    /// The clients and every selected table, checked.
    pub async fn tables(&self) -> Result<(Clients, Vec<TableInfo>), DynError> {
        let clients = client::connect(&self.config).await?;
        let mut tables = Vec::new();
        for name in table::list(&clients, &self.filter).await? {
            tables.push(table::describe(&clients, &name, &self.config).await?);
        }
        if tables.is_empty() {
            tracing::warn!(place = %clients.place, "no DynamoDB table matches tables.include / exclude");
        }
        Ok((clients, tables))
    }

    /// The selected tables' streams as they are now (`zetl status`): shards per table.
    async fn shards_now(&self) -> Result<String, DynError> {
        let (clients, tables) = self.tables().await?;
        let mut parts = Vec::new();
        for t in &tables {
            let shards = crate::stream::list_shards(&clients, &t.stream_arn).await?;
            parts.push(format!("{}: {} shards", t.name, shards.len()));
        }
        Ok(parts.join(", "))
    }

    /// Seeds `t`, or goes on with the segments of its seed cut short (`continuing`).
    async fn seed(
        &self,
        clients: &Clients,
        t: &TableInfo,
        ctx: &SourceContext,
        continuing: Option<Continue>,
    ) -> Result<(), DynError> {
        if self.filter.snapshot_mode(&t.id()) == SnapshotMode::Never {
            return Ok(adopt_without_copy(&ctx.events, t.schema.clone(), CopiedTable::default()).await?);
        }
        ctx.progress.estimate_rows(&t.id(), t.item_count.max(0) as u64);
        let (cursors, before) = match continuing {
            Some((cursors, rows)) => {
                tracing::info!(table = %t.name, rows, "the seed continues after the pages committed");
                ctx.send(SourceEvent::CopyResume { table: t.id(), rows }).await?;
                (Some(cursors), rows)
            }
            None => {
                ctx.send(SourceEvent::CopyStart(t.id())).await?;
                (None, 0)
            }
        };
        let rows = before + scan::seed(clients, &Arc::new(t.clone()), &self.config.scan, &ctx.events, cursors).await?;
        ctx.send(SourceEvent::CopyDone { table: t.id(), rows, copied: Box::default() }).await?;
        tracing::info!(table = %t.name, rows, "table seeded");
        Ok(())
    }
    /// The initial seed (or the rest of one cut short): every table without a committed copy,
    /// one after the other, before any stream is read. `false` when stopped during it.
    async fn initial_seed(
        &self,
        clients: &Clients,
        tables: &[TableInfo],
        start: &StartState<StreamPos>,
        pos: &mut StreamPos,
        ctx: &SourceContext,
    ) -> Result<bool, DynError> {
        // One cut short goes on from the stream positions it noted, keeping the tables it
        // completed and the pages it committed.
        let continuing = start.snapshot_from.is_some();
        if continuing {
            tracing::info!(
                seeded = start.copied.len(),
                to_continue = start.under_way.len(),
                "the interrupted initial seed continues"
            );
        }
        let to_seed = tables
            .iter()
            .filter(|t| !continuing || !start.copied.contains_key(&t.id()) || self.filter.copy_again_at_start(&t.id()));
        for t in to_seed {
            // A seed continues from the stream position noted when it began.
            let resumed = pos.tables.get(&t.name).filter(|_| continuing).and_then(|_| {
                let copy = start.under_way.get(&t.id())?;
                Some((scan_cursor::continuable(&copy.parts, self.config.scan.segments)?, copy.rows))
            });
            if resumed.is_none() {
                // The shards open now hold every change made from here on: noted before the
                // scan, so that a gap (trimmed before zetl reads them) is an error, not a
                // silent loss.
                let listed = crate::stream::list_shards(clients, &t.stream_arn).await?;
                let began = zetl_core::pipeline::now_us();
                let table_pos = TablePos {
                    stream: t.stream_arn.clone(),
                    shards: shards::open_at_copy(&listed, None, &Default::default()),
                    copy_began_us: Some(began),
                };
                pos.tables.insert(t.name.clone(), table_pos);
            }
            // Kept (never acknowledged) with what the initial seed commits: a restart
            // continues it from here.
            ctx.send(SourceEvent::SnapshotStart { position: pos.to_position() }).await?;
            if ctx.unless_stopped(self.seed(clients, t, ctx, resumed)).await.transpose()?.is_none() {
                tracing::info!(table = %t.name, "stopped during the seed; the next start continues it");
                return Ok(false);
            }
        }
        ctx.send(SourceEvent::SnapshotDone { position: pos.to_position() }).await?;
        tracing::info!(tables = tables.len(), "initial copy complete");
        Ok(true)
    }
}

impl Source for DynSource {
    type Position = StreamPos;
    type Error = DynError;

    /// Check the tables, seed the ones the target has no copy of, then follow the streams,
    /// until `stop` turns true (between stream pages) or an error.
    async fn run(&self, start: StartState<StreamPos>, ctx: SourceContext) -> Result<(), DynError> {
        let (clients, tables) = self.tables().await?;
        let clients = clients.sampling_clock(ctx.progress.clone());
        let fresh = start.resume_from.is_none();
        let mut pos = start.resume_from.clone().or(start.snapshot_from.clone()).unwrap_or_default();
        for t in &tables {
            if let Some(stored) = pos.tables.get(&t.name) {
                if stored.stream != t.stream_arn {
                    return Err(DynError::Gap(format!(
                        "table {}: its stream changed (was {}, now {}); the stream was disabled at some point",
                        t.name, stored.stream, t.stream_arn
                    )));
                }
            }
        }
        for t in &tables {
            ctx.send(SourceEvent::Schema(t.schema.clone())).await?;
        }
        if fresh && !self.initial_seed(&clients, &tables, &start, &mut pos, &ctx).await? {
            return Ok(());
        }
        // Once streaming, tables without a committed copy (new to the filters, marked by `zetl
        // resync`, a seed cut off; `snapshot: resync` ones at every start) are seeded beside
        // the other tables' streams.
        let seeds: Vec<(String, Option<Continue>)> = tables
            .iter()
            .filter(|t| {
                !fresh
                    && (!start.copied.contains_key(&t.id())
                        || start.under_way.contains_key(&t.id())
                        || self.filter.copy_again_at_start(&t.id()))
            })
            .map(|t| {
                let copy = start.under_way.get(&t.id());
                let continuing =
                    copy.and_then(|c| Some((scan_cursor::continuable(&c.parts, self.config.scan.segments)?, c.rows)));
                (t.name.clone(), continuing)
            })
            .collect();
        let tables: BTreeMap<String, Arc<TableInfo>> =
            tables.into_iter().map(|t| (t.name.clone(), Arc::new(t))).collect();
        pos.tables.retain(|name, _| tables.contains_key(name));
        tracing::info!(tables = tables.len(), "following the streams");
        let selection = (self.filter.clone(), self.config.clone());
        let mut streamer = Streamer::new(clients, tables, pos, ctx.events.clone(), selection);
        streamer.run(&ctx, seeds).await
    }

    async fn check(&self, env: &CheckEnv) -> Vec<Verdict> {
        crate::check::check(self, env.stored_position.as_deref()).await
    }

    async fn current_position(&self) -> Result<String, DynError> {
        self.shards_now().await
    }

    async fn holdings(&self) -> Result<Holdings, DynError> {
        // DynamoDB keeps 24 hours of stream whoever reads it.
        Ok(Holdings::NothingByDesign("it reads DynamoDB Streams"))
    }
}
