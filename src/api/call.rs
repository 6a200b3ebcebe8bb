//! One call on its way from the HTTP side to the pipeline thread and back: the
//! bounded queue between them, the ticket that settles a call missing its
//! deadline, and the reply.

use crate::source::event::InvalidEvent;
use axum::body::Bytes;
use prometheus::IntGauge;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Longest `timeout_ms` a call may ask for.
pub const MAX_CALL_TIMEOUT_MS: u64 = 60_000;

/// What the pipeline thread is asked to do.
#[derive(Debug)]
pub enum CallKind {
    /// Decide the payment and record it.
    Decide,
    /// Record an invalid payment on the dead-letter topic (it was answered 400).
    DeadLetter(InvalidEvent),
}

/// A payment posted to the API, queued for the pipeline thread.
#[derive(Debug)]
pub struct Call {
    /// The request body: one payment event.
    pub payload: Bytes,
    /// What to do with it.
    pub kind: CallKind,
    /// When the request was read (the deadline counts from here).
    pub received: Instant,
    /// Settles who answers a call near its deadline.
    pub ticket: Arc<Ticket>,
    /// Where the answer goes (a dropped receiver is a client that left).
    pub reply: oneshot::Sender<Reply>,
}

/// The pipeline's answer to a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// The decision (JSON, the output topic's contract); `replayed` when it is the
    /// original decision of an earlier call with the same `event_id`.
    Decided {
        /// The decision record.
        decision: Vec<u8>,
        /// An earlier call's decision, returned again.
        replayed: bool,
    },
    /// The `event_id` was already decided from the input topic; its decision is
    /// on the decisions topic.
    DecidedOnTopic,
    /// This instance does not own the account's partition.
    NotOwner,
    /// The account's partition is restoring its state.
    Restoring,
    /// The dead letter is recorded.
    Recorded,
}

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

/// Decides once whether the pipeline decides a call or its deadline passed
/// first; in the second case it carries the fallback decision the client got,
/// so that the pipeline records that one.
#[derive(Debug, Default)]
pub struct Ticket {
    state: AtomicU8,
    fallback: OnceLock<Vec<u8>>,
}

impl Ticket {
    /// The pipeline takes the call: `Ok` to decide it, or `Err(fallback)` when
    /// the client was already answered with `fallback` at its deadline.
    pub fn take(&self) -> Result<(), &[u8]> {
        match self
            .state
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(_) => Err(self.fallback.get().map_or(&[][..], Vec::as_slice)),
        }
    }

    /// The deadline passed: answers with `fallback` unless the pipeline took the
    /// call first (then false: its decision is moments away).
    pub fn abandon(&self, fallback: Vec<u8>) -> bool {
        let _ = self.fallback.set(fallback);
        self.state
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The HTTP side of the queue.
#[derive(Clone)]
pub struct CallSender {
    tx: SyncSender<Call>,
    depth: IntGauge,
    /// Cleared by [`CallReceiver::close`]; held for reading while a call goes in,
    /// so none goes in after the pipeline served the queue one last time.
    open: Arc<RwLock<bool>>,
}

/// Why a call could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is full.
    Full,
    /// The pipeline has stopped.
    Closed,
}

impl CallSender {
    /// Queues `call` without waiting.
    pub fn try_send(&self, call: Call) -> Result<(), QueueError> {
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        if !*open {
            return Err(QueueError::Closed);
        }
        match self.tx.try_send(call) {
            Ok(()) => {
                self.depth.inc();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(QueueError::Full),
            Err(TrySendError::Disconnected(_)) => Err(QueueError::Closed),
        }
    }
}

/// The pipeline side of the queue.
pub struct CallReceiver {
    rx: Receiver<Call>,
    depth: IntGauge,
    owners: Option<super::owners::Publisher>,
    open: Arc<RwLock<bool>>,
}

impl CallReceiver {
    /// Also publishes this instance's partitions to the owners topic on every
    /// rebalance, so other instances forward their calls here.
    pub fn with_owners(mut self, owners: super::owners::Publisher) -> Self {
        self.owners = Some(owners);
        self
    }

    /// The owners topic publisher, when calls are forwarded between instances.
    pub fn owners(&self) -> Option<&super::owners::Publisher> {
        self.owners.as_ref()
    }

    /// Refuses calls from now on ([`QueueError::Closed`]); those queued before
    /// are still received. The pipeline closes the queue as it stops, then serves
    /// what is left, so a call whose client got the fallback is never dropped.
    pub fn close(&self) {
        *self.open.write().unwrap_or_else(PoisonError::into_inner) = false;
    }

    /// The next call, waiting up to `wait` for one.
    pub fn recv(&self, wait: Duration) -> Option<Call> {
        let call = if wait.is_zero() {
            self.rx.try_recv().ok()
        } else {
            self.rx.recv_timeout(wait).ok()
        };
        if call.is_some() {
            self.depth.dec();
        }
        call
    }
}

/// A queue of at most `capacity` calls; `depth` follows its length.
pub fn queue(capacity: usize, depth: IntGauge) -> (CallSender, CallReceiver) {
    let (tx, rx) = mpsc::sync_channel(capacity);
    let open = Arc::new(RwLock::new(true));
    (
        CallSender {
            tx,
            depth: depth.clone(),
            open: open.clone(),
        },
        CallReceiver {
            rx,
            depth,
            owners: None,
            open,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_settles_once_whoever_comes_first() {
        let t = Ticket::default();
        assert_eq!(t.take(), Ok(()));
        assert!(!t.abandon(b"late".to_vec()), "taken: the decision wins");
        let t = Ticket::default();
        assert!(t.abandon(b"fallback".to_vec()));
        assert_eq!(
            t.take(),
            Err(&b"fallback"[..]),
            "abandoned: the fallback is recorded"
        );
    }

    #[test]
    fn the_queue_is_bounded_and_counts_its_depth() {
        let depth = IntGauge::new("d", "d").unwrap();
        let (tx, rx) = queue(1, depth.clone());
        let call = || Call {
            payload: Bytes::new(),
            kind: CallKind::Decide,
            received: Instant::now(),
            ticket: Arc::default(),
            reply: oneshot::channel().0,
        };
        assert_eq!(tx.try_send(call()), Ok(()));
        assert_eq!(tx.try_send(call()), Err(QueueError::Full));
        assert_eq!(depth.get(), 1);
        assert!(rx.recv(Duration::ZERO).is_some());
        assert_eq!(depth.get(), 0);
        assert_eq!(tx.try_send(call()), Ok(()));
        rx.close();
        assert_eq!(tx.try_send(call()), Err(QueueError::Closed));
        assert!(
            rx.recv(Duration::ZERO).is_some(),
            "queued before: still served"
        );
        drop(rx);
        assert_eq!(tx.try_send(call()), Err(QueueError::Closed));
    }
}
