//! Following the tables' streams: one reader task per shard that may be read (see `shards`),
//! many at once; each page of records becomes one target transaction whose checkpoint holds
//! every shard's last applied sequence number. Pages of one shard arrive in order, and an
//! item's records stay in its shard's lineage, so each item's changes apply in order.

use crate::attr;
use crate::client::Clients;
use crate::error::{api, DynError};
use crate::position::{ShardPos, StreamPos, TablePos};
use crate::shards::{self, Listed, Start};
use crate::table::TableInfo;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_dynamodbstreams::types::{OperationType, Record, ShardIteratorType};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use zetl_core::channel::EventSender;
use zetl_core::source::SourcePosition;
use zetl_core::{Change, ChangeKind, Position, SourceEvent};

/// How long a reader waits after an empty page of an open shard.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often the streams are described again for new shards.
const DISCOVER_EVERY: Duration = Duration::from_secs(10);
/// Records per GetRecords call (the service's maximum).
const PAGE_RECORDS: i32 = 1000;

/// One decoded record.
struct Decoded {
    seq: String,
    change: Change,
    at_us: Option<i64>,
}

enum Msg {
    /// `room`: the page's share of [`PAGES_BYTES`], given back once it is applied.
    Page {
        table: String,
        shard: String,
        records: Vec<Decoded>,
        finished: bool,
        room: OwnedSemaphorePermit,
    },
    Failed(DynError),
}

/// Memory the decoded pages waiting to be applied may hold, all shards together (a page may be
/// up to 1 MB of records, and many shards are read at once). A page larger than this waits
/// until it is alone.
const PAGES_BYTES: usize = 16 << 20;

pub struct Streamer {
    clients: Clients,
    tables: BTreeMap<String, Arc<TableInfo>>,
    pos: StreamPos,
    events: EventSender,
}

impl Streamer {
    pub fn new(
        clients: Clients,
        tables: BTreeMap<String, Arc<TableInfo>>,
        pos: StreamPos,
        events: EventSender,
    ) -> Self {
        Self { clients, tables, pos, events }
    }

    /// Applies the streams until `stop` turns true (between pages) or an error.
    pub async fn run(&mut self, stop: &mut watch::Receiver<bool>) -> Result<(), DynError> {
        let (tx, mut rx) = mpsc::channel::<Msg>(16);
        let room = Arc::new(Semaphore::new(PAGES_BYTES));
        let mut readers = JoinSet::new();
        let mut reading: HashSet<(String, String)> = HashSet::new();
        self.start_ready(&tx, &room, &mut readers, &mut reading).await?;
        let mut discover = tokio::time::interval(DISCOVER_EVERY);
        discover.tick().await;
        let mut idle = tokio::time::interval(Duration::from_secs(1));
        let mut busy = false;
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        readers.abort_all();
                        return Ok(());
                    }
                }
                msg = rx.recv() => match msg {
                    Some(Msg::Page { table, shard, records, finished, room: _room }) => {
                        busy = true;
                        self.apply(&table, &shard, records, finished).await?;
                        if finished {
                            reading.remove(&(table, shard));
                            self.start_ready(&tx, &room, &mut readers, &mut reading).await?;
                        }
                    }
                    Some(Msg::Failed(e)) => {
                        readers.abort_all();
                        return Err(e);
                    }
                    None => return Err(DynError::Closed),
                },
                _ = discover.tick() => self.start_ready(&tx, &room, &mut readers, &mut reading).await?,
                _ = idle.tick() => {
                    // Nothing arrived for a while: the target's checkpoint and lag catch up.
                    if !std::mem::take(&mut busy) {
                        self.events.send(SourceEvent::Heartbeat { position: self.position() }).await?;
                    }
                }
            }
        }
    }

    pub fn position(&self) -> Position {
        self.pos.to_position()
    }

    /// Describes each table's stream and starts a reader for every shard that may be read.
    async fn start_ready(
        &mut self,
        tx: &mpsc::Sender<Msg>,
        room: &Arc<Semaphore>,
        readers: &mut JoinSet<()>,
        reading: &mut HashSet<(String, String)>,
    ) -> Result<(), DynError> {
        for (name, table) in &self.tables {
            let listed = list_shards(&self.clients, &table.stream_arn).await?;
            if let Some(pos) = self.pos.tables.get_mut(name) {
                shards::forget_trimmed(pos, &listed);
            }
            let empty = TablePos { stream: table.stream_arn.clone(), shards: BTreeMap::new(), copy_began_us: None };
            let pos = self.pos.tables.get(name).unwrap_or(&empty);
            shards::check_retention(pos, zetl_core::pipeline::now_us())
                .map_err(|gap| DynError::Gap(format!("table {name}: {gap}")))?;
            let busy: HashSet<String> = reading.iter().filter(|(t, _)| t == name).map(|(_, s)| s.clone()).collect();
            let ready =
                shards::ready(&listed, pos, &busy).map_err(|gap| DynError::Gap(format!("table {name}: {gap}")))?;
            for (shard, start) in ready {
                tracing::debug!(table = %name, shard = %shard, ?start, "reading shard");
                reading.insert((name.clone(), shard.clone()));
                let reader = Reader {
                    clients: self.clients.clone(),
                    table: table.clone(),
                    shard,
                    tx: tx.clone(),
                    room: room.clone(),
                };
                readers.spawn(reader.run(start));
            }
        }
        Ok(())
    }

    async fn apply(&mut self, table: &str, shard: &str, records: Vec<Decoded>, finished: bool) -> Result<(), DynError> {
        let Some(info) = self.tables.get(table) else { return Ok(()) };
        let entry = self.pos.tables.entry(table.to_string()).or_insert_with(|| TablePos {
            stream: info.stream_arn.clone(),
            shards: BTreeMap::new(),
            copy_began_us: None,
        });
        let last = records.last().map(|r| (r.seq.clone(), r.at_us));
        if finished {
            entry.shards.insert(shard.to_string(), ShardPos::Done);
        } else if let Some((seq, _)) = &last {
            entry.shards.insert(shard.to_string(), ShardPos::After(seq.clone()));
        }
        if !entry.shards.values().any(|s| *s == ShardPos::Open) {
            entry.copy_began_us = None;
        }
        if records.is_empty() {
            return Ok(self.events.send(SourceEvent::Heartbeat { position: self.position() }).await?);
        }
        self.events.send(SourceEvent::Begin).await?;
        for r in records {
            self.events.send(SourceEvent::Change(r.change)).await?;
        }
        let commit_time_us = last.and_then(|(_, at)| at);
        Ok(self.events.send(SourceEvent::Commit { position: self.position(), commit_time_us }).await?)
    }
}

/// Every shard of a stream (DescribeStream, page by page).
pub async fn list_shards(clients: &Clients, arn: &str) -> Result<Vec<Listed>, DynError> {
    let mut out = Vec::new();
    let (mut start, mut prev): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = clients
            .streams
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .map_err(|e| api(format!("describing stream {arn}"), e))?;
        let Some(desc) = page.stream_description() else { break };
        for s in desc.shards() {
            if let Some(id) = s.shard_id() {
                let open = s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_none();
                out.push(Listed { id: id.to_string(), parent: s.parent_shard_id().map(str::to_string), open });
            }
        }
        // A server that ignores paging would repeat its last shard: stop there.
        match desc.last_evaluated_shard_id() {
            Some(last) if prev.as_deref() != Some(last) => {
                prev = Some(last.to_string());
                start = prev.clone();
            }
            _ => break,
        }
    }
    Ok(out)
}

/// A REMOVE made by DynamoDB's time to live, not by a client: the service is its identity.
fn expired_by_ttl(record: &Record) -> bool {
    record
        .user_identity()
        .is_some_and(|id| id.r#type() == Some("Service") && id.principal_id() == Some("dynamodb.amazonaws.com"))
}

struct Reader {
    clients: Clients,
    table: Arc<TableInfo>,
    shard: String,
    tx: mpsc::Sender<Msg>,
    room: Arc<Semaphore>,
}

impl Reader {
    async fn run(self, start: Start) {
        if let Err(e) = self.read(start).await {
            let _ = self.tx.send(Msg::Failed(e)).await;
        }
    }

    async fn read(&self, start: Start) -> Result<(), DynError> {
        let mut last = match &start {
            Start::After(seq) => Some(seq.clone()),
            Start::TrimHorizon => None,
        };
        let mut iterator = self.iterator(last.as_deref()).await?;
        loop {
            let page =
                match self.clients.streams.get_records().shard_iterator(&iterator).limit(PAGE_RECORDS).send().await {
                    Ok(page) => page,
                    Err(e) => match e.as_service_error() {
                        // Iterators live 15 minutes: take a new one after the last record read.
                        Some(GetRecordsError::ExpiredIteratorException(_)) => {
                            iterator = self.iterator(last.as_deref()).await?;
                            continue;
                        }
                        Some(GetRecordsError::TrimmedDataAccessException(_)) => {
                            return Err(self.trimmed(last.as_deref()));
                        }
                        _ => return Err(api(format!("reading shard {} of table {}", self.shard, self.table.name), e)),
                    },
                };
            let records = page.records().iter().map(|r| self.decode(r)).collect::<Result<Vec<_>, _>>()?;
            if let Some(r) = records.last() {
                last = Some(r.seq.clone());
            }
            let finished = page.next_shard_iterator().is_none();
            let empty = records.is_empty();
            if !empty || finished {
                let weight: usize = records.iter().map(|r| r.change.weight() + r.seq.len()).sum();
                let permits = u32::try_from(weight.clamp(1, PAGES_BYTES)).unwrap_or(u32::MAX);
                let Ok(room) = self.room.clone().acquire_many_owned(permits).await else { return Ok(()) };
                let (table, shard) = (self.table.name.clone(), self.shard.clone());
                let msg = Msg::Page { table, shard, records, finished, room };
                if self.tx.send(msg).await.is_err() {
                    return Ok(());
                }
            }
            match page.next_shard_iterator() {
                Some(next) => iterator = next.to_string(),
                None => return Ok(()),
            }
            if empty {
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }

    async fn iterator(&self, after: Option<&str>) -> Result<String, DynError> {
        let request =
            self.clients.streams.get_shard_iterator().stream_arn(&self.table.stream_arn).shard_id(&self.shard);
        let request = match after {
            Some(seq) => request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let out = request.send().await.map_err(|e| {
            if let Some(GetShardIteratorError::TrimmedDataAccessException(_)) = e.as_service_error() {
                self.trimmed(after)
            } else {
                api(format!("opening shard {} of table {}", self.shard, self.table.name), e)
            }
        })?;
        out.shard_iterator().map(str::to_string).ok_or_else(|| DynError::Api {
            what: format!("opening shard {} of table {}", self.shard, self.table.name),
            cause: "no shard iterator returned".into(),
            transient: false,
        })
    }

    fn trimmed(&self, after: Option<&str>) -> DynError {
        DynError::Gap(format!(
            "table {}: shard {} no longer holds the records after sequence number {} (streams keep 24 hours)",
            self.table.name,
            self.shard,
            after.unwrap_or("(start)")
        ))
    }

    fn decode(&self, record: &Record) -> Result<Decoded, DynError> {
        let table = &self.table;
        let Some(data) = record.dynamodb() else {
            return Err(self.bad("a record without its data"));
        };
        let seq = data.sequence_number().unwrap_or_default().to_string();
        // Only what the change needs is converted: the new image for a write, the key for a
        // delete (the target finds the row by its key; the old image would be thrown away).
        let kind = match record.event_name() {
            Some(op @ (OperationType::Insert | OperationType::Modify)) => {
                let Some(new) = data.new_image() else {
                    return Err(self.bad("an INSERT/MODIFY record without its new image (stream view type?)"));
                };
                // Keys never change in DynamoDB: a MODIFY replaces the item under its key.
                let row = table.row(&attr::item(new));
                if op == &OperationType::Insert {
                    ChangeKind::Insert { row }
                } else {
                    ChangeKind::Update { old: None, row }
                }
            }
            Some(OperationType::Remove) => {
                // The old image first: its binary keys are exact where some servers garble `Keys`.
                let Some(keys) = data.old_image().or(data.keys()) else {
                    return Err(self.bad("a REMOVE record without keys"));
                };
                let old = table.key_row(&attr::item(keys));
                if expired_by_ttl(record) {
                    ChangeKind::Expire { old }
                } else {
                    ChangeKind::Delete { old }
                }
            }
            other => return Err(self.bad(&format!("a record of unknown kind {other:?}"))),
        };
        let at_us =
            data.approximate_creation_date_time().map(|t| t.secs() * 1_000_000 + i64::from(t.subsec_nanos() / 1000));
        Ok(Decoded { seq, change: Change { table: table.id(), kind }, at_us })
    }

    fn bad(&self, what: &str) -> DynError {
        DynError::Api {
            what: format!("reading shard {} of table {}", self.shard, self.table.name),
            cause: format!("the stream sent {what}"),
            transient: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::Identity;

    #[test]
    fn ttl_removals_are_told_apart() {
        let remove = |identity: Option<Identity>| {
            Record::builder().event_name(OperationType::Remove).set_user_identity(identity).build()
        };
        let ttl = Identity::builder().r#type("Service").principal_id("dynamodb.amazonaws.com").build();
        let user = Identity::builder().r#type("Service").principal_id("someone.else").build();
        assert!(expired_by_ttl(&remove(Some(ttl))));
        assert!(!expired_by_ttl(&remove(Some(user))));
        assert!(!expired_by_ttl(&remove(None)));
    }
}
