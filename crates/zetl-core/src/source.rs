//! The surface every source implements, what it is given when it runs, and the one place where
//! a source's typed position becomes the text the target stores with the data (and back).
//!
//! A source is written against [`Source`] with its own position and error types; the binary
//! holds it as a [`AnySource`] (built by its registry from the configuration), which the
//! blanket implementation below derives from `Source`, so no source writes that part twice.

use crate::channel::{Closed, EventSender};
use crate::check::Verdict;
use crate::error::Retry;
use crate::event::{Checkpoint, CopiedTable, CopyUnderWay, Phase, Position, SourceEvent};
use crate::model::TableId;
use crate::progress::Progress;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Tables waiting to be copied again (`zetl resync`), shared between the HTTP endpoint that
/// takes the requests and the source that serves them.
pub type ResyncRequests = Arc<Mutex<Vec<TableId>>>;

/// A future the binary awaits in place (never spawned, so it need not be `Send`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A source's place in its change log (PostgreSQL LSN, binlog file:offset + GTID state,
/// DynamoDB per-shard sequence numbers). Written as text with `Display` and read back with
/// `parse` only here: events carry it as an opaque [`Position`] the target stores.
pub trait SourcePosition: Sized + Clone + fmt::Display + Send + Sync + 'static {
    /// What kind of position this is, for errors ("an LSN").
    const KIND: &'static str;

    /// Reads what `Display` wrote; the error says what is wrong with `text`.
    fn parse(text: &str) -> Result<Self, String>;

    fn to_position(&self) -> Position {
        Position(self.to_string())
    }

    fn from_position(stored: &Position) -> Result<Self, BadPosition> {
        Self::parse(&stored.0).map_err(|problem| BadPosition { text: stored.0.clone(), kind: Self::KIND, problem })
    }
}

/// A stored position its source cannot read: the target holds another integration's state,
/// or was edited by hand. Definite: `zetl resync --all` starts over.
#[derive(Debug, thiserror::Error)]
#[error("the position stored at the target, `{text}`, is not {kind} ({problem}); if the target belongs to another integration, use another `name`, else start over with `zetl resync --all`")]
pub struct BadPosition {
    pub text: String,
    pub kind: &'static str,
    pub problem: String,
}

impl Retry for BadPosition {
    fn is_transient(&self) -> bool {
        false
    }
}

/// What the target knows when a run starts, as it stores it.
pub struct TargetState {
    pub checkpoint: Option<Checkpoint>,
    /// Tables whose copy the target has committed and that stream since.
    pub copied: HashMap<TableId, CopiedTable>,
    /// Copies that can continue where they stand: of an interrupted initial copy, or (once
    /// streaming) those filled beside the stream (see `SourceEvent::FillStart`).
    pub under_way: HashMap<TableId, CopyUnderWay>,
}

impl TargetState {
    /// Whether the stored checkpoint is that of an initial copy a source can continue (see
    /// [`SourceEvent::SnapshotStart`]): its copies are kept instead of starting over.
    pub fn resumable_snapshot(checkpoint: Option<&Checkpoint>) -> bool {
        checkpoint.is_some_and(|c| c.phase == Phase::Snapshotting && !c.position.0.is_empty())
    }
}

/// What the target knows when a run starts, read into the source's own position type.
pub struct StartState<P> {
    /// Where the stream resumes: the checkpoint once an initial copy completed. `None`: the
    /// initial copy is (made) again.
    pub resume_from: Option<P>,
    /// An initial copy was interrupted after it began at this position (see
    /// [`SourceEvent::SnapshotStart`]): the source may continue it.
    pub snapshot_from: Option<P>,
    pub copied: HashMap<TableId, CopiedTable>,
    pub under_way: HashMap<TableId, CopyUnderWay>,
}

impl<P: SourcePosition> StartState<P> {
    pub fn read(state: TargetState) -> Result<Self, BadPosition> {
        let (mut resume_from, mut snapshot_from) = (None, None);
        match &state.checkpoint {
            Some(Checkpoint { phase: Phase::Streaming, position }) => resume_from = Some(P::from_position(position)?),
            Some(c @ Checkpoint { position, .. }) if TargetState::resumable_snapshot(Some(c)) => {
                snapshot_from = Some(P::from_position(position)?)
            }
            _ => {}
        }
        Ok(StartState { resume_from, snapshot_from, copied: state.copied, under_way: state.under_way })
    }

    /// Where the copy of `table` made while streaming is consistent, when it was.
    pub fn consistent_at(&self, table: &TableId) -> Option<P> {
        self.copied.get(table)?.consistent_at.as_ref().and_then(|p| P::parse(&p.0).ok())
    }
}

/// Everything a running source talks to: the channel to the writer, the positions the target
/// has committed, the stop signal, the counters behind metrics and the resync requests.
pub struct SourceContext {
    pub events: EventSender,
    /// The last position the target committed; the source may let its server free what lies
    /// before it.
    pub acks: watch::Receiver<Position>,
    /// Turns true on SIGTERM / Ctrl-C: stop at the next transaction boundary.
    pub stop: watch::Receiver<bool>,
    pub progress: Arc<Progress>,
    pub resync: ResyncRequests,
}

impl SourceContext {
    pub async fn send(&self, event: SourceEvent) -> Result<(), Closed> {
        self.events.send(event).await
    }

    /// The last committed position, when it reads as `P`.
    pub fn acknowledged<P: SourcePosition>(&self) -> Option<P> {
        P::parse(&self.acks.borrow().0).ok()
    }

    /// Runs `work` (a copy) unless a stop comes first; `None` when stopped, the work dropped
    /// where it was. A copy cut off is never used: the writer rolls back a copy made while
    /// streaming, and an initial copy starts over at the next start.
    pub async fn unless_stopped<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let mut stop = self.stop.clone();
        let stopped = async move {
            // With no one left to send a stop, none comes.
            if stop.wait_for(|stopping| *stopping).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            out = work => Some(out),
            () = stopped => None,
        }
    }

    /// Whether resync requests are waiting (cheap: nothing is taken).
    pub fn resync_requested(&self) -> bool {
        self.resync.lock().is_ok_and(|r| !r.is_empty())
    }

    /// The resync requests that arrived since the last call, split into the tables this
    /// integration replicates (`replicated`) and the rest, which are logged and dropped.
    pub fn take_resync_requests(&self, replicated: impl Fn(&TableId) -> bool) -> Vec<TableId> {
        let requested = self.resync.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
        let (known, unknown): (Vec<TableId>, Vec<TableId>) = requested.into_iter().partition(|t| replicated(t));
        for table in unknown {
            tracing::warn!(%table, "resync requested for a table this integration does not replicate");
        }
        known
    }
}

/// The newest position in `acks` as `P` (for a stream that waits on `acks.changed()`), marked
/// as seen.
pub fn take_ack<P: SourcePosition>(acks: &mut watch::Receiver<Position>) -> Option<P> {
    P::parse(&acks.borrow_and_update().0).ok()
}

/// Tables copied while streaming, each with the position its copy is consistent at: the
/// copy holds every transaction before that position, so the stream skips the table's changes
/// in those (as PostgreSQL's own table sync does).
#[derive(Debug)]
pub struct CopiedAt<P>(HashMap<TableId, P>);

impl<P> Default for CopiedAt<P> {
    fn default() -> Self {
        CopiedAt(HashMap::new())
    }
}

impl<P: PartialOrd> CopiedAt<P> {
    pub fn insert(&mut self, table: TableId, at: P) {
        self.0.insert(table, at);
    }

    pub fn get(&self, table: &TableId) -> Option<&P> {
        self.0.get(table)
    }

    pub fn remove(&mut self, table: &TableId) {
        self.0.remove(table);
    }

    /// Whether the copy of `table` already holds the transaction at `txn`.
    pub fn holds(&self, table: &TableId, txn: &P) -> bool {
        self.0.get(table).is_some_and(|at| txn.partial_cmp(at) == Some(std::cmp::Ordering::Less))
    }
}

/// What `zetl check` knows besides the source's own configuration.
#[derive(Default)]
pub struct CheckEnv {
    /// The position the target stores, when the target can be read.
    pub stored_position: Option<String>,
    /// Names reserved on source servers by every integration in the file
    /// ([`Source::reserved_names`]), so leftovers of retired ones can be pointed out.
    pub reserved_in_file: Vec<String>,
}

/// What an integration keeps on its source server, for `zetl drop`.
pub enum Holdings {
    /// This kind of source keeps nothing for a reader; the sentence says why.
    NothingByDesign(&'static str),
    Held {
        place: String,
        items: Vec<Held>,
    },
}

pub struct Held {
    /// "replication slot", "publication".
    pub kind: &'static str,
    pub name: String,
    /// A server process using it now, which makes dropping it wrong.
    pub in_use_by: Option<String>,
}

/// A source of changes. Implemented once per source crate; everything else uses it through
/// [`AnySource`].
pub trait Source: Send + Sync {
    type Position: SourcePosition;
    type Error: std::error::Error + Retry + Send + Sync + 'static;

    /// Copies what `start` lacks (everything, or tables new to the integration), then
    /// follows the change log, until `ctx.stop` turns true (at a transaction boundary) or
    /// an error.
    fn run(
        &self,
        start: StartState<Self::Position>,
        ctx: SourceContext,
    ) -> impl Future<Output = Result<(), Self::Error>>;

    /// `zetl check`: every prerequisite, one verdict each, nothing changed.
    fn check(&self, env: &CheckEnv) -> impl Future<Output = Vec<Verdict>>;

    /// The server's position now, for `zetl status`.
    fn current_position(&self) -> impl Future<Output = Result<String, Self::Error>>;

    /// How many bytes of log lie from `from` to `to`, where the log is measured in bytes.
    fn bytes_between(&self, _from: &Self::Position, _to: &Self::Position) -> Option<u64> {
        None
    }

    /// Names this integration reserves on its server (PostgreSQL: its slot).
    fn reserved_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// What the integration keeps on the server now, for `zetl drop`.
    fn holdings(&self) -> impl Future<Output = Result<Holdings, Self::Error>>;

    /// Removes what `holdings` listed (after the user confirmed).
    fn release(&self, _holdings: &Holdings) -> impl Future<Output = Result<(), Self::Error>> {
        async { Ok(()) }
    }
}

/// A source's or target's error with its own type erased, still saying whether it may pass
/// by itself. Displays as the error it holds.
#[derive(Debug)]
pub struct Failed {
    pub transient: bool,
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

impl Failed {
    pub fn of<E: std::error::Error + Retry + Send + Sync + 'static>(e: E) -> Self {
        Failed { transient: e.is_transient(), error: Box::new(e) }
    }
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

impl Retry for Failed {
    fn is_transient(&self) -> bool {
        self.transient
    }
}

/// [`Source`] with its types erased: what the binary holds. Positions are text here and read
/// into the source's own type once, in this module.
pub trait AnySource {
    fn run(&self, state: TargetState, ctx: SourceContext) -> BoxFuture<'_, Result<(), Failed>>;
    fn check<'a>(&'a self, env: &'a CheckEnv) -> BoxFuture<'a, Vec<Verdict>>;
    fn current_position(&self) -> BoxFuture<'_, Result<String, Failed>>;
    fn bytes_between(&self, from: &str, to: &str) -> Option<u64>;
    fn reserved_names(&self) -> Vec<String>;
    fn holdings(&self) -> BoxFuture<'_, Result<Holdings, Failed>>;
    fn release<'a>(&'a self, holdings: &'a Holdings) -> BoxFuture<'a, Result<(), Failed>>;
}

impl<S: Source> AnySource for S {
    fn run(&self, state: TargetState, ctx: SourceContext) -> BoxFuture<'_, Result<(), Failed>> {
        Box::pin(async move {
            let start = StartState::read(state).map_err(Failed::of)?;
            Source::run(self, start, ctx).await.map_err(Failed::of)
        })
    }

    fn check<'a>(&'a self, env: &'a CheckEnv) -> BoxFuture<'a, Vec<Verdict>> {
        Box::pin(Source::check(self, env))
    }

    fn current_position(&self) -> BoxFuture<'_, Result<String, Failed>> {
        Box::pin(async move { Source::current_position(self).await.map_err(Failed::of) })
    }

    fn bytes_between(&self, from: &str, to: &str) -> Option<u64> {
        Source::bytes_between(self, &S::Position::parse(from).ok()?, &S::Position::parse(to).ok()?)
    }

    fn reserved_names(&self) -> Vec<String> {
        Source::reserved_names(self)
    }

    fn holdings(&self) -> BoxFuture<'_, Result<Holdings, Failed>> {
        Box::pin(async move { Source::holdings(self).await.map_err(Failed::of) })
    }

    fn release<'a>(&'a self, holdings: &'a Holdings) -> BoxFuture<'a, Result<(), Failed>> {
        Box::pin(async move { Source::release(self, holdings).await.map_err(Failed::of) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
    struct Offset(u64);

    impl fmt::Display for Offset {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.0)
        }
    }

    impl SourcePosition for Offset {
        const KIND: &'static str = "an offset";
        fn parse(text: &str) -> Result<Self, String> {
            text.parse().map(Offset).map_err(|e| format!("{e}"))
        }
    }

    fn state(phase: Phase, position: &str) -> TargetState {
        let checkpoint = Checkpoint { position: Position(position.into()), phase };
        TargetState { checkpoint: Some(checkpoint), copied: HashMap::new(), under_way: HashMap::new() }
    }

    #[test]
    fn only_a_streaming_checkpoint_is_resumed_and_it_must_read_as_the_sources_position() {
        let start = StartState::<Offset>::read(state(Phase::Streaming, "42")).expect("reads");
        assert_eq!(start.resume_from, Some(Offset(42)));
        let start = StartState::<Offset>::read(state(Phase::Snapshotting, "42")).expect("reads");
        assert_eq!((start.resume_from, start.snapshot_from), (None, Some(Offset(42))));
        let start = StartState::<Offset>::read(state(Phase::Snapshotting, "")).expect("reads");
        assert_eq!((start.resume_from, start.snapshot_from), (None, None));
        let e = StartState::<Offset>::read(state(Phase::Streaming, "0/16B3748")).err().expect("not an offset");
        assert!(e.to_string().starts_with("the position stored at the target, `0/16B3748`, is not an offset"), "{e}");
        assert!(!e.is_transient());
    }

    #[test]
    fn a_copy_holds_the_transactions_before_its_position_only() {
        let (t, other) = (TableId::new("s", "t"), TableId::new("s", "u"));
        let mut copied = CopiedAt::default();
        copied.insert(t.clone(), Offset(10));
        assert!(copied.holds(&t, &Offset(9)));
        assert!(!copied.holds(&t, &Offset(10)));
        assert!(!copied.holds(&other, &Offset(1)));
    }
}
