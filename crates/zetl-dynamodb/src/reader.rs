//! One DynamoDB Streams shard read by a task of its own (`Reader`): its pages of records,
//! decoded, sent to the stream's loop in order, with an empty page saying the reader has
//! reached the shard's newest record; the tasks themselves (`Readers`), by table and shard.

use crate::attr;
use crate::client::Clients;
use crate::error::{api, DynError};
use crate::shards::Start;
use crate::table::TableInfo;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_dynamodbstreams::types::{OperationType, Record, ShardIteratorType};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use zetl_core::{Change, ChangeKind};

/// How long a reader waits after an empty page of an open shard.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Records per GetRecords call (the service's maximum).
const PAGE_RECORDS: i32 = 1000;

/// One decoded record.
pub struct Decoded {
    pub seq: String,
    pub change: Change,
    pub at_us: Option<i64>,
}

/// What a reader sends, stamped with the table's reading it belongs to (see
/// `Streamer::epochs`).
pub struct Msg {
    pub table: String,
    pub epoch: u64,
    pub body: Body,
}

pub enum Body {
    /// `room`: the page's share of [`PAGES_BYTES`], given back once it is applied.
    Page {
        shard: String,
        records: Vec<Decoded>,
        finished: bool,
        room: OwnedSemaphorePermit,
    },
    /// An empty page of an open shard: its reader has (about) reached its newest record.
    Head {
        shard: String,
    },
    Failed(DynError),
}

/// Memory the decoded pages waiting to be applied may hold, all shards together (a page may be
/// up to 1 MB of records, and many shards are read at once). A page larger than this waits
/// until it is alone.
pub const PAGES_BYTES: usize = 16 << 20;

/// The reader tasks, by table and shard.
#[derive(Default)]
pub struct Readers {
    tasks: JoinSet<()>,
    by_shard: HashMap<(String, String), AbortHandle>,
}

impl Readers {
    pub fn spawn(&mut self, reader: Reader, start: Start) {
        let key = (reader.table.name.clone(), reader.shard.clone());
        self.by_shard.insert(key, self.tasks.spawn(reader.run(start)));
    }

    /// The shards of `table` being read.
    pub fn busy(&self, table: &str) -> HashSet<String> {
        self.by_shard.keys().filter(|(t, _)| t == table).map(|(_, s)| s.clone()).collect()
    }

    /// `shard` of `table` was read to its end.
    pub fn finished(&mut self, table: &str, shard: &str) {
        self.by_shard.remove(&(table.to_string(), shard.to_string()));
    }

    /// Stops reading `table`'s stream.
    pub fn stop_table(&mut self, table: &str) {
        self.by_shard.retain(|(t, _), reader| {
            if t == table {
                reader.abort();
            }
            t != table
        });
    }

    /// Forgets the tasks that ended.
    pub fn reap(&mut self) {
        while self.tasks.try_join_next().is_some() {}
    }

    pub fn abort_all(&mut self) {
        self.tasks.abort_all();
    }
}

/// A REMOVE made by DynamoDB's time to live, not by a client: the service is its identity.
fn expired_by_ttl(record: &Record) -> bool {
    record
        .user_identity()
        .is_some_and(|id| id.r#type() == Some("Service") && id.principal_id() == Some("dynamodb.amazonaws.com"))
}

pub struct Reader {
    pub clients: Clients,
    pub table: Arc<TableInfo>,
    pub shard: String,
    pub epoch: u64,
    pub tx: mpsc::Sender<Msg>,
    pub room: Arc<Semaphore>,
}

impl Reader {
    async fn run(self, start: Start) {
        if let Err(e) = self.read(start).await {
            let _ = self.tx.send(self.msg(Body::Failed(e))).await;
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
            if empty && !finished && self.tx.send(self.msg(Body::Head { shard: self.shard.clone() })).await.is_err() {
                return Ok(());
            }
            if !empty || finished {
                let weight: usize = records.iter().map(|r| r.change.weight() + r.seq.len()).sum();
                let permits = u32::try_from(weight.clamp(1, PAGES_BYTES)).unwrap_or(u32::MAX);
                let Ok(room) = self.room.clone().acquire_many_owned(permits).await else { return Ok(()) };
                let msg = self.msg(Body::Page { shard: self.shard.clone(), records, finished, room });
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

    fn msg(&self, body: Body) -> Msg {
        Msg { table: self.table.name.clone(), epoch: self.epoch, body }
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
