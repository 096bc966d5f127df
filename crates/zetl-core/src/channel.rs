//! The channel between a source and the writer, bounded by the memory its events hold rather
//! than by their count: a chunk of copied rows and a single small change weigh what they hold,
//! so a slow target stops the source at a fixed budget whatever the row width (guarantee 5).

use crate::event::SourceEvent;
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// The source's end.
#[derive(Clone)]
pub struct EventSender {
    tx: mpsc::UnboundedSender<(SourceEvent, OwnedSemaphorePermit)>,
    budget: Arc<Semaphore>,
    max: u32,
}

/// The writer's end.
pub struct EventReceiver {
    rx: mpsc::UnboundedReceiver<(SourceEvent, OwnedSemaphorePermit)>,
}

/// The writer is gone.
#[derive(Debug, thiserror::Error)]
#[error("the writer stopped")]
pub struct Closed;

/// Room for one event in the channel.
pub struct Slot {
    tx: mpsc::UnboundedSender<(SourceEvent, OwnedSemaphorePermit)>,
    permit: OwnedSemaphorePermit,
}

impl Slot {
    pub fn send(self, event: SourceEvent) -> Result<(), Closed> {
        self.tx.send((event, self.permit)).map_err(|_| Closed)
    }
}

/// A channel holding at most `max_bytes` of events (one larger event still passes, alone).
pub fn channel(max_bytes: usize) -> (EventSender, EventReceiver) {
    let max = max_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
    let (tx, rx) = mpsc::unbounded_channel();
    (EventSender { tx, budget: Arc::new(Semaphore::new(max as usize)), max }, EventReceiver { rx })
}

impl EventSender {
    /// Waits for room for an event of `weight` bytes. Cancel-safe: dropping the future
    /// takes nothing.
    pub async fn reserve(&self, weight: usize) -> Result<Slot, Closed> {
        let n = weight.clamp(1, self.max as usize) as u32;
        let permit = self.budget.clone().acquire_many_owned(n).await.map_err(|_| Closed)?;
        if self.tx.is_closed() {
            return Err(Closed);
        }
        Ok(Slot { tx: self.tx.clone(), permit })
    }

    /// Room for an event of `weight` bytes if there is some now; `None` when the channel is
    /// full. Spares a busy source a waiting future (and its timers) per event.
    pub fn try_reserve(&self, weight: usize) -> Result<Option<Slot>, Closed> {
        let n = weight.clamp(1, self.max as usize) as u32;
        match self.budget.clone().try_acquire_many_owned(n) {
            Ok(_) if self.tx.is_closed() => Err(Closed),
            Ok(permit) => Ok(Some(Slot { tx: self.tx.clone(), permit })),
            Err(TryAcquireError::NoPermits) => Ok(None),
            Err(TryAcquireError::Closed) => Err(Closed),
        }
    }

    pub async fn send(&self, event: SourceEvent) -> Result<(), Closed> {
        self.reserve(event.weight()).await?.send(event)
    }
}

impl EventReceiver {
    /// The next event; its room is given back when the returned guard drops.
    pub async fn recv(&mut self) -> Option<(SourceEvent, OwnedSemaphorePermit)> {
        self.rx.recv().await
    }

    /// The next event if one is waiting now.
    pub fn try_recv(&mut self) -> Option<(SourceEvent, OwnedSemaphorePermit)> {
        self.rx.try_recv().ok()
    }

    pub fn blocking_recv(&mut self) -> Option<(SourceEvent, OwnedSemaphorePermit)> {
        self.rx.blocking_recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Position;

    #[tokio::test]
    async fn a_full_budget_blocks_until_the_writer_takes_an_event() {
        let (tx, mut rx) = channel(100);
        let slot = tx.reserve(80).await.expect("room");
        slot.send(SourceEvent::Heartbeat { position: Position("1".into()) }).expect("open");
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(50), tx.reserve(40)).await;
        assert!(blocked.is_err(), "80 + 40 bytes must not fit in 100");
        let (_event, room) = rx.recv().await.expect("event");
        drop(room);
        let slot = tokio::time::timeout(std::time::Duration::from_millis(500), tx.reserve(40)).await;
        assert!(slot.is_ok(), "room is back once the writer is done with the event");
    }

    #[tokio::test]
    async fn try_reserve_finds_room_only_while_the_budget_has_it() {
        let (tx, mut rx) = channel(100);
        let slot = tx.try_reserve(80).expect("open").expect("room");
        slot.send(SourceEvent::Heartbeat { position: Position("1".into()) }).expect("open");
        assert!(tx.try_reserve(40).expect("open").is_none(), "80 + 40 bytes must not fit in 100");
        drop(rx.recv().await.expect("event"));
        assert!(tx.try_reserve(40).expect("open").is_some());
        drop(rx);
        assert!(tx.try_reserve(1).is_err(), "the writer is gone");
    }

    #[tokio::test]
    async fn an_event_larger_than_the_budget_passes_alone() {
        let (tx, mut rx) = channel(10);
        tx.send(SourceEvent::Heartbeat { position: Position("x".repeat(100)) }).await.expect("passes");
        assert!(rx.recv().await.is_some());
    }
}
