//! Copies made while streaming (a new table, `zetl resync`, a table the stream cannot carry
//! on with), filled in place chunk by chunk between stretches of the stream, so that a copy
//! holds the other tables back for one chunk at a time instead of its whole length.
//!
//! Each chunk is read in key order after the last key sent, in a snapshot of its own that
//! sees every transaction the stream has passed (see `try_copy_snapshot`). Every change the
//! stream carries for the table is applied, before its chunk and after it. One from before a
//! chunk's snapshot is in the chunk too, whose rows are written over the keys and are newer.
//! One the chunk holds already is applied again after it; each key's changes arrive in order
//! with the whole row, so the key still ends as the source has it. (An update that left
//! TOASTed columns unsent, for a key the copy has not reached, is dropped at the target: see
//! `TableBatch::filling`.) So no xid cut or key comparison is needed, and a TRUNCATE
//! meanwhile simply applies. The copy counts as done once the stream has passed the last
//! chunk's snapshot (no change it carries can be one a chunk held any more). The cursor is
//! committed with the rows: a restart continues.

use crate::catalog::{self, quote_table, TableInfo};
use crate::conninfo::ConnInfo;
use crate::copy_cut::CopyCut;
use crate::error::{PgError, SqlContext};
use crate::key_cursor::KeyPart;
use crate::lsn::Lsn;
use crate::snapshot::read_chunk;
use crate::source::{try_copy_snapshot, SnapshotWait};
use crate::stream::Streamer;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use zetl_core::fill_pace::{self, Pace};
use zetl_core::{CopiedTable, SourceEvent, TableSchema};

struct Fill {
    info: TableInfo,
    schema: Arc<TableSchema>,
    part: KeyPart,
    /// See `publication_joined`.
    joined: Option<u64>,
    rows: u64,
    began: Instant,
    last_wait_log: Option<Instant>,
    /// Transactions the stream has passed that an earlier chunk's snapshot did not see yet:
    /// the next must (the stream may pass many more meanwhile, see `RECENT_XIDS`).
    unseen: Vec<u32>,
    /// Every row is read: the cut of the last chunk's snapshot, which the stream must pass
    /// before the copy counts as done. Until then a change it carries may be one a chunk
    /// held already, applied again, which the target must still take leniently.
    read_at: Option<CopyCut>,
}

/// The tables being filled, one at a time in the order they were begun.
#[derive(Default)]
pub struct Fills {
    queue: VecDeque<Fill>,
    reader: Option<Client>,
    pace: Pace,
}

impl Fills {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn gap(&self) -> Duration {
        self.pace.gap()
    }

    /// Starts filling `info` (a fill of it under way starts over), or continues one a restart
    /// interrupted, holding `resumed` rows up to its part's cursor. Sends its schema and
    /// `FillStart` now, so the target marks it as being copied at once.
    pub async fn begin(
        &mut self,
        streamer: &mut Streamer<'_>,
        mut info: TableInfo,
        schema: TableSchema,
        joined: Option<u64>,
        resumed: Option<(KeyPart, u64)>,
    ) -> Result<(), PgError> {
        self.queue.retain(|f| f.info.id != info.id);
        catalog::size_up(streamer.sql, std::slice::from_mut(&mut info)).await?;
        streamer.progress.estimate_rows(&info.id, info.estimated_rows.max(0.0) as u64);
        let id = info.id.clone();
        let (part, rows) = resumed.unwrap_or_else(|| {
            let columns = Some(schema.columns_fingerprint());
            let whole = KeyPart { table: info.source_id(), part: 0, from: None, to: None, after: None, columns };
            (whole, 0)
        });
        // Every change of the table applies from here on (see the module's comment).
        streamer.copied_at.remove(&id);
        streamer.filling.insert(id.clone());
        self.pace.begin();
        streamer.remember_schema(schema.clone());
        let events = &streamer.events;
        events.send(SourceEvent::Schema(schema.clone())).await?;
        let resumed = (rows > 0 || part.after.is_some()).then_some(rows);
        events.send(SourceEvent::FillStart { table: id.clone(), resumed }).await?;
        let after = Some(part.cursor());
        events.send(SourceEvent::CopyRows { table: id.clone(), rows: Vec::new(), after }).await?;
        match resumed {
            Some(rows) => {
                tracing::info!(table = %id, rows, "the copy made while streaming continues after the rows committed")
            }
            None => tracing::info!(table = %id, "copying the table while streaming, in chunks"),
        }
        let schema = Arc::new(schema);
        let began = Instant::now();
        let last_wait_log = None;
        let (unseen, read_at) = (Vec::new(), None);
        self.queue.push_back(Fill { info, schema, part, joined, rows, began, last_wait_log, unseen, read_at });
        Ok(())
    }

    /// Reads the next chunk of the first table being filled, between two transactions of the
    /// stream. Returns a table whose fill cannot go on in chunks (its columns changed), with
    /// its `joined`: the caller copies it whole instead.
    pub async fn step(
        &mut self,
        info: &ConnInfo,
        streamer: &mut Streamer<'_>,
    ) -> Result<Option<(TableInfo, Option<u64>)>, PgError> {
        let Some(fill) = self.queue.front() else { return Ok(None) };
        let id = fill.info.id.clone();
        if !streamer.filling.contains(&id) {
            // The stream found it must be copied again (and said so): the next copy begins anew.
            tracing::debug!(table = %id, "fill dropped: the table is to be copied again");
            self.queue.pop_front();
            return Ok(None);
        }
        if streamer.tables.get(&id).is_none_or(|t| t.oid != fill.info.oid) {
            self.give_up(streamer).await?;
            return Ok(None);
        }
        if let Some(cut) = &fill.read_at {
            if cut.passed(streamer.received()) {
                let (rows, seconds) = (fill.rows, fill.began.elapsed().as_secs_f64());
                let copied = CopiedTable { consistent_at: None, source_id: Some(fill.info.source_id()), schema: None };
                streamer
                    .events
                    .send(SourceEvent::CopyDone { table: id.clone(), rows, copied: Box::new(copied) })
                    .await?;
                tracing::info!(table = %id, rows, seconds, "table copied while streaming");
                streamer.filling.remove(&id);
                self.queue.pop_front();
            } else {
                tracing::debug!(table = %id, "waiting for the stream to pass the last chunk");
                // An idle server sends nothing past its last change: a transaction with an
                // id writes a commit record, which the server then reports having passed.
                let nudge = streamer.sql.batch_execute("SELECT pg_current_xact_id()").await;
                nudge.ctx(|| "moving the stream past the copy".into())?;
            }
            self.pace.wait();
            return Ok(None);
        }
        if streamer.known_schema(&id) != Some(&*fill.schema) {
            return Ok(self.fall_back(streamer, "the stream changed its columns"));
        }
        if self.pace.stream_first(behind(streamer).await) {
            tracing::debug!(table = %id, "the stream is behind: it runs before the next chunk");
            self.pace.wait();
            return Ok(None);
        }
        let reader = match &mut self.reader {
            Some(r) if !r.is_closed() => r,
            slot => {
                let r = info.connect_sql().await?;
                // The key's index gives the chunk in order; a sort would read the whole rest.
                r.batch_execute("SET enable_sort = off").await.ctx(|| "preparing the copy session".into())?;
                slot.insert(r)
            }
        };
        let started = Instant::now();
        let Some(fill) = self.queue.front_mut() else { return Ok(None) };
        let cut = match try_copy_snapshot(reader, streamer, fill.joined, &fill.unseen).await? {
            Ok((cut, _)) => cut,
            Err(wait) => {
                tracing::debug!(table = %id, "the chunk's snapshot is not usable yet");
                if let SnapshotWait::Unseen(xid) = wait {
                    if !fill.unseen.contains(&xid) {
                        fill.unseen.push(xid);
                    }
                }
                if fill.last_wait_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    wait.log();
                    fill.last_wait_log = Some(Instant::now());
                }
                self.pace.wait();
                return Ok(None);
            }
        };
        fill.unseen.clear();
        // Read by name: the table must still be the one under it (a drop or a rename since
        // the stream last showed it is seen here first).
        let under_name = "SELECT to_regclass($1)::oid";
        let name = quote_table(&fill.info.id);
        let found = reader.query_one(under_name, &[&name]).await.ctx(|| format!("looking up {id}"))?;
        if found.get::<_, Option<u32>>(0) != Some(fill.info.oid) {
            reader.batch_execute("ROLLBACK").await.ctx(|| "dropping the copy's snapshot".into())?;
            self.give_up(streamer).await?;
            return Ok(None);
        }
        let now = catalog::table_schema(reader, &fill.info, &streamer.types).await?;
        if now != *fill.schema {
            reader.batch_execute("ROLLBACK").await.ctx(|| "dropping the copy's snapshot".into())?;
            return Ok(self.fall_back(streamer, "its columns changed"));
        }
        tracing::debug!(table = %id, after = ?fill.part.after, "reading a chunk");
        let (rows, last) =
            read_chunk(reader, &fill.info, fill.schema.clone(), &fill.part, fill_pace::CHUNK_ROWS, &streamer.events)
                .await?;
        reader.batch_execute("COMMIT").await.ctx(|| "ending the copy's snapshot".into())?;
        fill.rows += rows;
        self.pace.read(started);
        match (rows == fill_pace::CHUNK_ROWS, last) {
            (true, Some(key)) => fill.part.after = Some(key),
            (false, _) => fill.read_at = Some(cut),
            (true, None) => return Ok(self.fall_back(streamer, "the key of its rows cannot be read back as text")),
        }
        Ok(None)
    }

    fn fall_back(&mut self, streamer: &mut Streamer<'_>, why: &str) -> Option<(TableInfo, Option<u64>)> {
        let fill = self.queue.pop_front()?;
        streamer.filling.remove(&fill.info.id);
        tracing::info!(table = %fill.info.id, why, "the copy made while streaming starts over in one piece");
        Some((fill.info, fill.joined))
    }

    /// The table left the source under its name (dropped, renamed) while it was filled: its
    /// copy stops, marked so (`zetl status` shows why); a table under that name again, or
    /// the renamed one, is copied anew by table discovery.
    async fn give_up(&mut self, streamer: &mut Streamer<'_>) -> Result<(), PgError> {
        let Some(fill) = self.queue.pop_front() else { return Ok(()) };
        let table = fill.info.id;
        tracing::warn!(table = %table, "the table being copied left the source under this name; its copy stops");
        streamer.filling.remove(&table);
        let reason = "left the source under this name during its copy".to_string();
        streamer.events.send(SourceEvent::ResyncRequired { table, reason }).await?;
        Ok(())
    }
}

/// How far the stream is behind the server's WAL, in bytes (`None` when it cannot be told).
async fn behind(streamer: &Streamer<'_>) -> Option<u64> {
    let row = streamer.sql.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.ok()?;
    let wal = Lsn::parse(row.get(0))?;
    Some(wal.0.saturating_sub(streamer.progress.source_log_position.load(Ordering::Relaxed)))
}
