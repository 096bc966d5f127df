//! Copies made while streaming (a new table, `zetl resync`, a table the stream cannot carry
//! on with) of tables with a primary key (`fill_cursor::key_fits`): filled in place chunk by
//! chunk between stretches of the binlog, so that such a copy holds the other tables back for
//! one chunk at a time instead of its whole length. Other tables are still copied whole while
//! the binlog waits (`MySource::copy_while_streaming`), and so is every table on MySQL without
//! a signal table (`signal.rs`): MySQL tells a snapshot's binlog position only under
//! `FLUSH TABLES WITH READ LOCK`, too heavy to take for every chunk.
//!
//! Each chunk is read in key order after the last key sent, in a consistent snapshot that
//! sees every transaction the stream has read: on MariaDB, one whose binlog position
//! (`binlog_snapshot_position`) is at or past the stream's; with a signal table, one opened
//! after a fence committed. The first chunk's place (`FillCursor::since`) divides the stream
//! as a copy in one piece does: the table's changes in transactions that began before it are
//! in every chunk and are skipped (before it is known, all are), every later one applies. One
//! from before a chunk's snapshot is in that chunk too, whose rows are written over the keys
//! and are newer; one the chunk holds already is applied again after it. Each key's changes
//! arrive in order with the whole row (`binlog_row_image = FULL`), so the key still ends as
//! the source has it. The copy counts as done once the stream has passed everything the last
//! chunk's snapshot saw. The cursor (with `since`) is committed with the rows: a restart
//! continues after it.

use crate::catalog;
use crate::columns::MyTable;
use crate::conninfo::ConnInfo;
use crate::error::{MyError, SqlContext};
use crate::fill_cursor::{key_fits, FillCursor};
use crate::flavor::{start_snapshot, Flavor};
use crate::position::{BinlogPos, StoredPos};
use crate::signal::SignalTable;
use crate::snapshot::{read_rows, RowQuery};
use crate::stream::{event_file_max, silence_limit, Streamer};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zetl_core::fill_pace::{self, Pace};
use zetl_core::source::SourcePosition;
use zetl_core::{CopiedTable, SourceEvent, TableId};

struct Fill {
    table: Arc<MyTable>,
    cursor: FillCursor,
    rows: u64,
    began: Instant,
    /// Every row is read: a position past everything the last chunk's snapshot saw, which
    /// the stream must pass before the copy counts as done.
    read_at: Option<BinlogPos>,
}

/// The tables being filled, one at a time in the order they were begun.
#[derive(Default)]
pub struct Fills {
    queue: VecDeque<Fill>,
    reader: Option<Conn>,
    pace: Pace,
    /// Fences each chunk's snapshot when set; otherwise MariaDB's snapshot position places it.
    signal: Option<SignalTable>,
}

impl Fills {
    pub fn new(signal: Option<SignalTable>) -> Fills {
        Fills { signal, ..Fills::default() }
    }

    /// Whether tables can be filled beside the stream of a `flavor` server.
    pub fn can_fill_on(&self, flavor: Flavor) -> bool {
        flavor == Flavor::MariaDb || self.signal.is_some()
    }

    /// Whether `table` can be filled beside the stream of a `flavor` server.
    pub fn can_fill(&self, flavor: Flavor, table: &MyTable) -> bool {
        self.can_fill_on(flavor) && key_fits(table)
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn gap(&self) -> Duration {
        self.pace.gap()
    }

    /// Starts filling `table` (a fill of it under way starts over), or continues one a restart
    /// cut off, holding `resumed` rows up to its range's cursor. Sends its schema and
    /// `FillStart` now, so the target marks it as being copied at once.
    pub async fn begin(
        &mut self,
        streamer: &mut Streamer,
        table: MyTable,
        resumed: Option<(FillCursor, u64)>,
    ) -> Result<(), MyError> {
        let id = table.id.clone();
        self.queue.retain(|f| f.table.id != id);
        let (cursor, rows) = resumed.unwrap_or_else(|| {
            (FillCursor { columns: table.schema().columns_fingerprint(), since: None, after: None }, 0)
        });
        // The table's changes before the first chunk are in the copy (see the module's comment).
        let unknown = BinlogPos { file: event_file_max(), pos: u64::MAX, gtid: None };
        streamer.copied_at.insert(id.clone(), cursor.since.clone().unwrap_or(unknown));
        streamer.filling.insert(id.clone());
        streamer.known.insert(id.clone());
        streamer.remember_json_columns(&table);
        streamer.events.send(SourceEvent::Schema(table.schema())).await?;
        let resumed = (rows > 0 || cursor.after.is_some()).then_some(rows);
        streamer.events.send(SourceEvent::FillStart { table: id.clone(), resumed }).await?;
        let after = Some(cursor.cursor());
        streamer.events.send(SourceEvent::CopyRows { table: id.clone(), rows: Vec::new(), after }).await?;
        match resumed {
            Some(rows) => {
                tracing::info!(table = %id, rows, "the copy made while streaming continues after the rows committed")
            }
            None => tracing::info!(table = %id, "copying the table while streaming, in chunks"),
        }
        streamer.copied_schema(table.clone());
        self.pace.begin();
        let fill = Fill { table: Arc::new(table), cursor, rows, began: Instant::now(), read_at: None };
        self.queue.push_back(fill);
        Ok(())
    }

    /// Reads the next chunk of the first table being filled, at a transaction boundary of the
    /// stream. Returns a table whose fill cannot go on in chunks (its columns changed): the
    /// caller copies it whole instead.
    pub async fn step(&mut self, info: &ConnInfo, streamer: &mut Streamer) -> Result<Option<TableId>, MyError> {
        let Some(fill) = self.queue.front() else { return Ok(None) };
        let id = fill.table.id.clone();
        if !streamer.filling.contains(&id) {
            self.queue.pop_front();
            if streamer.known.contains(&id) {
                tracing::debug!(table = %id, "fill dropped: the table is copied again");
            } else {
                // Dropped or renamed away: the rows copied so far stay, marked as incomplete.
                left(streamer, id).await?;
            }
            return Ok(None);
        }
        if let Some(at) = &fill.read_at {
            if streamer.passed >= *at {
                let (rows, seconds) = (fill.rows, fill.began.elapsed().as_secs_f64());
                let consistent_at = fill.cursor.since.clone().map(|p| StoredPos::from(p).to_position());
                let copied = CopiedTable { consistent_at, ..CopiedTable::default() };
                streamer
                    .events
                    .send(SourceEvent::CopyDone { table: id.clone(), rows, copied: Box::new(copied) })
                    .await?;
                tracing::info!(table = %id, rows, seconds, "table copied while streaming");
                streamer.filling.remove(&id);
                self.queue.pop_front();
            } else {
                // An idle server's heartbeats carry the stream on to the end of the binlog.
                tracing::debug!(table = %id, at = %at, "waiting for the stream to pass the last chunk");
            }
            self.pace.wait();
            return Ok(None);
        }
        if self.pace.stream_first(behind(streamer).await) {
            tracing::debug!(table = %id, "the stream is behind: it runs before the next chunk");
            self.pace.wait();
            return Ok(None);
        }
        let started = Instant::now();
        let reader = match &mut self.reader {
            Some(r) => r,
            slot => slot.insert(info.connect().await?),
        };
        let chunk = Self::chunk(reader, streamer, self.signal.as_ref(), self.queue.front_mut()).await;
        if chunk.is_err() {
            // A connection that failed mid-chunk is not used again.
            self.reader = None;
        }
        match chunk? {
            Chunk::Read => {
                self.pace.read(started);
                Ok(None)
            }
            Chunk::NotYet => {
                self.pace.wait();
                Ok(None)
            }
            Chunk::Changed(why) => Ok(self.fall_back(streamer, why)),
            Chunk::Gone(at) => {
                self.queue.pop_front();
                // Its changes so far are skipped, so the stream would never see it go: it
                // follows whatever is created under the name after the snapshot instead.
                streamer.copied_at.insert(id.clone(), at);
                streamer.forget(&id);
                left(streamer, id).await?;
                Ok(None)
            }
        }
    }

    /// Reads one chunk of `fill` in a snapshot of its own.
    async fn chunk(
        reader: &mut Conn,
        streamer: &mut Streamer,
        signal: Option<&SignalTable>,
        fill: Option<&mut Fill>,
    ) -> Result<Chunk, MyError> {
        let Some(fill) = fill else { return Ok(Chunk::NotYet) };
        let Some(placed) = open_snapshot(reader, streamer, signal).await? else {
            tracing::debug!(table = %fill.table.id, passed = %streamer.passed, "the chunk's snapshot is behind the stream");
            return Ok(Chunk::NotYet);
        };
        let rollback = "dropping the copy's snapshot";
        // The catalog shows the table as it is now, which the snapshot sees or is older than.
        let now = catalog::table(reader, &fill.table.id).await?;
        if now.as_ref() != Some(&*fill.table) {
            reader.query_drop("ROLLBACK").await.ctx(|| rollback.into())?;
            return Ok(match (now, &fill.cursor.since) {
                (Some(_), _) => Chunk::Changed("its columns changed"),
                (None, None) => Chunk::Gone(placed.since),
                // The stream applies the table's changes since the first chunk: it meets the
                // drop or rename and ends the fill.
                (None, Some(_)) => Chunk::NotYet,
            });
        }
        let Some(condition) = fill.cursor.condition(&fill.table) else {
            reader.query_drop("ROLLBACK").await.ctx(|| rollback.into())?;
            return Ok(Chunk::Changed("its cursor does not fit its key"));
        };
        if fill.cursor.since.is_none() {
            streamer.copied_at.insert(fill.table.id.clone(), placed.since.clone());
            fill.cursor.since = Some(placed.since);
        }
        tracing::debug!(table = %fill.table.id, after = ?fill.cursor.after, "reading a chunk");
        let silence = silence_limit(streamer.heartbeat_secs);
        let (order, limit) = (fill.table.key.clone(), Some(fill_pace::CHUNK_ROWS));
        let query = RowQuery { condition, order, limit, silence };
        let base = fill.cursor.clone();
        let cursor = |last: &[Vec<u8>]| Some(FillCursor { after: Some(last.to_vec()), ..base.clone() }.cursor());
        let (rows, last) = read_rows(reader, &fill.table, &query, &cursor, &streamer.events).await?;
        reader.query_drop("COMMIT").await.ctx(|| "ending the copy's snapshot".into())?;
        fill.rows += rows;
        match (rows == fill_pace::CHUNK_ROWS, last) {
            (true, Some(key)) => fill.cursor.after = Some(key),
            (false, _) => fill.read_at = Some(placed.until),
            (true, None) => return Ok(Chunk::Changed("the key of its rows cannot be read back")),
        }
        Ok(Chunk::Read)
    }

    fn fall_back(&mut self, streamer: &mut Streamer, why: &str) -> Option<TableId> {
        let fill = self.queue.pop_front()?;
        streamer.filling.remove(&fill.table.id);
        tracing::info!(table = %fill.table.id, why, "the copy made while streaming starts over in one piece");
        Some(fill.table.id.clone())
    }
}

/// Where a chunk's snapshot lies in the binlog.
struct Placed {
    /// Every transaction before it is in the snapshot.
    since: BinlogPos,
    /// Every transaction in the snapshot is before it.
    until: BinlogPos,
}

/// Opens a chunk's snapshot on `reader`, one that sees every transaction the stream has read;
/// `None` (nothing left open) when MariaDB's snapshot is still behind the stream: a
/// transaction the stream has read is not visible yet (the binlog is written before the
/// storage engine commits), and the next snapshot will see it.
async fn open_snapshot(
    reader: &mut Conn,
    streamer: &Streamer,
    signal: Option<&SignalTable>,
) -> Result<Option<Placed>, MyError> {
    if let Some(signal) = signal {
        signal.fence(reader).await?;
        start_snapshot(reader).await?;
        // Read after the snapshot opened: whatever it sees was in the binlog by then.
        let (file, pos) = streamer.flavor.binlog_end(reader).await?;
        let since = BinlogPos { gtid: None, ..streamer.passed.clone() };
        return Ok(Some(Placed { since, until: BinlogPos::new(file, pos) }));
    }
    let (at, _) = Flavor::MariaDb.open_snapshots(std::slice::from_mut(reader)).await?;
    if at < streamer.passed {
        reader.query_drop("ROLLBACK").await.ctx(|| "dropping the copy's snapshot".into())?;
        return Ok(None);
    }
    let at = BinlogPos { gtid: None, ..at };
    Ok(Some(Placed { since: at.clone(), until: at }))
}

/// The table being filled left the source under its name: its copy stops, marked so.
async fn left(streamer: &Streamer, table: TableId) -> Result<(), MyError> {
    tracing::warn!(table = %table, "the table being copied left the source under this name; its copy stops");
    let reason = "left the source under this name during its copy".to_string();
    Ok(streamer.events.send(SourceEvent::ResyncRequired { table, reason }).await?)
}

/// How far the stream is behind the server's binlog, in bytes (`None` when it cannot be told;
/// a later file counts as far behind).
async fn behind(streamer: &mut Streamer) -> Option<u64> {
    let (file, end) = streamer.flavor.binlog_end(&mut streamer.side).await.ok()?;
    let passed = &streamer.passed;
    Some(if file == passed.file { end.saturating_sub(passed.pos) } else { u64::MAX })
}

/// What one chunk step did.
enum Chunk {
    Read,
    /// Not possible yet; tried again after the stream ran a little.
    NotYet,
    /// The fill cannot go on in chunks, for this reason.
    Changed(&'static str),
    /// The table was gone under its name before the first chunk, in the snapshot at this
    /// position.
    Gone(BinlogPos),
}
