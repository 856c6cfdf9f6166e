//! Group commit: one writer task per process appends the queued events in batches, one
//! transaction each, and answers every request with its own committed row.
//!
//! Guards against a flood of events (failed logins, refusals) serialising every route that
//! records one: a mutex and a transaction per event made each request wait for every commit
//! before its own. Now requests queue their events; the writer takes all that are waiting (up
//! to [`MAX_BATCH`]), seals them in queue order on the chain head, commits once, and hands
//! each request its row. The chain order is the queue order, deterministic for the writer.
//! The queue is bounded ([`QUEUE_CAPACITY`]): when it is full, requests wait for room
//! (back-pressure) instead of growing memory.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::key::KeyError;
use super::{AuditError, AuditEvent, LiveKeys, chain};
use crate::clock::Clock;
use crate::store::{AuditRow, Store};

/// Events waiting for the writer, at most.
pub const QUEUE_CAPACITY: usize = 1024;
/// Events in one transaction, at most.
pub const MAX_BATCH: usize = 256;

/// What seals and stores a batch: the store, the chain's keys, the clock.
pub struct Sealer {
    pub store: Store,
    pub keys: Arc<LiveKeys>,
    pub clock: Arc<dyn Clock>,
}

/// Why a batch was not appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    /// The chain is sealed with (or a rotation names) a key this process cannot read.
    #[error(transparent)]
    Key(#[from] KeyError),
}

struct Queued {
    event: AuditEvent,
    done: oneshot::Sender<Result<AuditRow, AuditError>>,
}

/// The queue to this process's writer, started on the first append (inside the runtime that
/// runs it). Cheap to clone: clones share the writer.
#[derive(Clone, Default)]
pub struct Writer {
    queue: Arc<OnceLock<mpsc::Sender<Queued>>>,
}

impl Writer {
    /// Queues `event` (waiting for room when the queue is full) and waits for its row.
    pub async fn append(&self, sealer: Sealer, event: AuditEvent) -> Result<AuditRow, AuditError> {
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = queue();
            tokio::spawn(write_batches(sealer, receiver));
            sender
        });
        let (done, row) = oneshot::channel();
        queue
            .send(Queued { event, done })
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        row.await.map_err(|_| AuditError::WriterStopped)?
    }
}

fn queue() -> (mpsc::Sender<Queued>, mpsc::Receiver<Queued>) {
    mpsc::channel(QUEUE_CAPACITY)
}

/// The writer: until every sender is gone, takes what is queued, appends it in one
/// transaction, and answers each request.
async fn write_batches(sealer: Sealer, mut queue: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // None taken means every sender is gone: the process is ending.
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let appended = append(&sealer, &batch).await;
        match appended {
            Ok(rows) => {
                for (queued, row) in batch.drain(..).zip(rows) {
                    let _ = queued.done.send(Ok(row));
                }
            }
            Err(error) => {
                tracing::error!(%error, events = batch.len(), "audit batch append failed");
                let error = Arc::new(error);
                for queued in batch.drain(..) {
                    let _ = queued.done.send(Err(AuditError::Batch(error.clone())));
                }
            }
        }
    }
}

/// Seals `batch` in queue order, one row per event, in one transaction, each under the key
/// the chain head names; a rotation event moves the chain to the key it names, which must be
/// readable here already (else every later append would fail).
async fn append(sealer: &Sealer, batch: &[Queued]) -> Result<Vec<AuditRow>, AppendError> {
    sealer
        .store
        .append_audit_batch(batch, |head, key_id, queued| {
            let key = sealer.keys.by_id(key_id)?;
            let row = chain::seal(&key, head, sealer.clock.now(), &queued.event);
            if let Some(next) = chain::next_key(&row) {
                sealer.keys.by_id(&next)?;
                *key_id = next;
            }
            Ok(row)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_pushes_back_when_full() {
        let (sender, _receiver) = queue();
        let mut accepted = 0;
        loop {
            let (done, _) = oneshot::channel();
            let queued = Queued {
                event: AuditEvent::new(super::super::EventType::Logout),
                done,
            };
            if sender.try_send(queued).is_err() {
                break;
            }
            accepted += 1;
            assert!(accepted <= QUEUE_CAPACITY, "the queue grows without bound");
        }
        assert_eq!(accepted, QUEUE_CAPACITY);
    }
}
