//! Decision API calls on the pipeline thread: each is decided by the worker
//! that owns its account's partition, between Kafka messages, and its event and
//! decision go into a transaction with the Kafka path's output.
//!
//! The event goes to the input topic, on the account's partition, marked with
//! [`crate::api::RECORD_HEADER`]. When the worker reads it back it finds its id among the
//! recent ids and skips it; after a restart (or in a replay) it is applied to
//! the state without a second decision. A later event with the same id, by
//! either path, is a duplicate: a call gets the original decision from the
//! [`DecisionLog`] (calls' and Kafka events' decisions), or 409 once it is
//! past the log's bound.
//!
//! **When the answer is sent.** A call is answered as soon as it is decided,
//! before its transaction commits: in the open transaction if one can take
//! records, or, while the previous batch's commit runs, with its records parked
//! for the transaction that begins right after that commit
//! ([`super::batch`]). Either way its event and decision commit in exactly one
//! transaction, at most about `processing.commit_interval_ms` plus one commit
//! later. If that transaction aborts, the call is forgotten (its state change
//! is rewound, its decision leaves the replay cache), and a repeat of its
//! `event_id` is decided anew, once (a repeat that comes before the abort is
//! taken still gets the original back, itself an answer before a commit). A crash between the answer and the commit
//! has the same effect: the client holds a decision that was never recorded,
//! the restarted state does not include the payment, and a retry is decided
//! anew (possibly differently, as the state may differ); retrying with the same
//! `event_id` is how a client makes sure a decision is on record.
//!
//! **A fallback this instance cannot record.** A call whose client got the
//! deadline's fallback must be recorded with that fallback. When its partition
//! restores here, the call is held until the restore ends. When the partition
//! is not assigned here (a rebalance moved it, or none is assigned yet), when
//! the pipeline stops with such a call still queued or held, or when a
//! forwarded call's owner did not answer by the deadline (the forwarding
//! instance answers the fallback only once it has queued such a call here), the
//! call's event goes to its account's partition of the input topic, in this
//! instance's transaction, carrying the fallback in
//! [`crate::api::FALLBACK_HEADER`]. The partition's owner, reading it, applies
//! it to its state and records the fallback on the decisions topic in its
//! transaction, or, if the `event_id` was decided before, counts a duplicate.
//! So only the owner, which holds the partition's ids, decides whether a
//! decision is recorded: there is exactly one per `event_id` (this instance
//! writing the decision too could record a second one for an id the owner had
//! decided), and it needs no route to the owner (forwarding it over HTTP could
//! fail as the call did). The restore's API tail skips such records (their
//! decision is not out yet); the owner reads them live. Until the owner has read
//! the record, normally within a poll, a repeat of the `event_id` is decided
//! anew and that decision is the one recorded (as it is when a forwarded call's
//! owner had decided it after all): the repeat gets the decision on record, and
//! the first client holds its fallback.

use super::output::CallRecords;
use super::parked::Produce;
use super::Pipeline;
use crate::api::call::{Call, CallKind, CallReceiver, Reply};
use crate::api::replay::DecisionLog;
use crate::api::ApiRecord;
use crate::api::Partitioner;
use crate::sink::SinkError;
use crate::source::event::{parse_event, InvalidEvent};
use crate::state::key_hash;
use rdkafka::message::{BorrowedMessage, Message};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most calls served between two Kafka polls, so neither path starves the other.
const CALLS_PER_POLL: usize = 64;

/// Most calls held for a restore ([`ApiSide`]); more wait in their queue.
const HELD_CALLS: usize = 4096;

/// The pipeline's side of the API: its queue and what it remembers of calls.
pub struct ApiSide {
    calls: CallReceiver,
    partitions: i32,
    partitioner: Partitioner,
    replay: DecisionLog,
    /// Partitions whose state took calls in the open batch.
    open: Vec<i32>,
    /// Partitions whose state took calls in the batch being committed.
    in_flight: Vec<i32>,
    /// The decision log's mark when the batch being committed closed.
    in_flight_mark: u64,
    /// Calls whose client got the deadline's fallback while their partition was
    /// restoring: recorded once it is restored (dropping one would leave an
    /// answered payment with no decision on record), oldest first.
    held: VecDeque<Call>,
    /// The pipeline stops: the queue is closed and what is left in it is served
    /// one last time (fallbacks recorded, not held).
    stopping: bool,
}

impl ApiSide {
    /// Serves `calls` for an input topic of `partitions` partitions, keeping the
    /// last `replay_entries` decisions (calls' and Kafka events') for repeats.
    pub fn new(
        calls: CallReceiver,
        partitions: i32,
        partitioner: Partitioner,
        replay_entries: usize,
    ) -> Self {
        Self {
            calls,
            partitions,
            partitioner,
            replay: DecisionLog::new(replay_entries),
            open: Vec::new(),
            in_flight: Vec::new(),
            in_flight_mark: 0,
            held: VecDeque::new(),
            stopping: false,
        }
    }

    /// The open batch's commit begins: calls from now on are in the next one.
    pub(super) fn commit_started(&mut self) {
        for p in self.open.drain(..) {
            if !self.in_flight.contains(&p) {
                self.in_flight.push(p);
            }
        }
        self.in_flight_mark = self.replay.mark();
    }

    /// The owners topic publisher, when calls are forwarded between instances.
    pub(super) fn owners(&self) -> Option<&crate::api::owners::Publisher> {
        self.calls.owners()
    }

    /// The batch being committed committed: its calls' decisions are durable.
    pub(super) fn committed(&mut self) {
        self.replay.committed_through(self.in_flight_mark);
        self.in_flight.clear();
    }

    /// Whether calls changed `partition`'s state in the aborted batches (asked
    /// once per partition by the rewind, which rebuilds it).
    pub(super) fn take_touched(&mut self, partition: i32) -> bool {
        let mut found = false;
        for touched in [&mut self.open, &mut self.in_flight] {
            let before = touched.len();
            touched.retain(|&p| p != partition);
            found |= touched.len() != before;
        }
        found
    }

    /// The batch being committed aborted, and with it the open one (the calls
    /// parked for it): those calls were not recorded, so a repeat is decided anew.
    pub(super) fn aborted(&mut self) {
        self.replay.aborted();
    }
}

impl Pipeline {
    /// Keeps the Kafka path's decision in `self.out` for a call repeating its
    /// event id (API on only; allocates nothing).
    pub(super) fn remember_decision(&mut self) {
        if let Some(api) = &mut self.api {
            api.replay
                .insert(self.output.out.id, &self.output.out.decision);
        }
    }

    /// Serves the calls waiting, up to [`CALLS_PER_POLL`]; waits up to `wait`
    /// for the first one. While a commit runs, calls park their records, as
    /// many as the batch takes; the rest wait in their queue.
    pub(super) fn serve_calls(&mut self, mut wait: Duration) -> Result<(), SinkError> {
        self.serve_held()?;
        for _ in 0..CALLS_PER_POLL {
            if self.batch.committing() && !self.batch.can_park() {
                break;
            }
            // Held calls wait for a restore: take no more than the queue holds.
            if self
                .api
                .as_ref()
                .is_some_and(|a| a.held.len() >= HELD_CALLS)
            {
                break;
            }
            let Some(call) = self.api.as_ref().and_then(|a| a.calls.recv(wait)) else {
                break;
            };
            wait = Duration::ZERO;
            self.serve_call(call)?;
        }
        Ok(())
    }

    /// Serves again the held calls whose partition finished restoring.
    fn serve_held(&mut self) -> Result<(), SinkError> {
        let Some(api) = self.api.as_mut() else {
            return Ok(());
        };
        let mut held = std::mem::take(&mut api.held);
        let result = (|| {
            while let Some(call) = held.pop_front() {
                if self.batch.committing() && !self.batch.can_park() {
                    held.push_front(call);
                    break;
                }
                self.serve_call(call)?;
            }
            Ok(())
        })();
        if let Some(api) = self.api.as_mut() {
            // Those held again by serve_call come after the ones not tried yet.
            let again = std::mem::replace(&mut api.held, held);
            api.held.extend(again);
        }
        result
    }

    fn serve_call(&mut self, call: Call) -> Result<(), SinkError> {
        let Some(api) = self.api.as_mut() else {
            return Ok(());
        };
        let parsed = parse_event(&call.payload, &self.limits);
        let ev = match (&call.kind, &parsed) {
            (CallKind::Decide, Ok(ev)) => ev,
            (CallKind::DeadLetter(invalid), _) | (CallKind::Decide, Err(invalid)) => {
                let invalid = invalid.clone();
                drop(parsed);
                self.dead_letter_call(&call, &invalid)?;
                let _ = call.reply.send(Reply::Recorded);
                return Ok(());
            }
        };
        let p = api
            .partitioner
            .partition(ev.account_id.as_bytes(), api.partitions);
        let id = key_hash(0, ev.event_id.as_bytes());
        let key = ev.account_id.as_bytes().to_vec();
        let restoring = self.restoring.iter().any(|r| r.partition() == p);
        let answer = if self.workers.get_mut(p).is_none() || (restoring && api.stopping) {
            if let Err(fallback) = call.ticket.take() {
                // Its client holds the fallback: the owner records it (module doc).
                let records = CallRecords::Fallback {
                    partition: p,
                    key,
                    payload: call.payload.clone(),
                    decision: fallback.to_vec(),
                };
                drop(parsed);
                return self.record_call(records, Instant::now());
            }
            Reply::NotOwner
        } else if restoring {
            if call.ticket.take().is_err() {
                // Its client holds the fallback: record it once restored.
                tracing::debug!(
                    partition = p,
                    "a call answered with the fallback waits for its partition's restore"
                );
                drop(parsed);
                api.held.push_back(call);
                return Ok(());
            }
            Reply::Restoring
        } else if let Some(d) = api.replay.get(id) {
            Reply::Decided {
                decision: d.to_vec(),
                replayed: true,
            }
        } else {
            drop(parsed);
            return self.decide_call(call, p, id, key);
        };
        let _ = call.reply.send(answer);
        Ok(())
    }

    /// The pipeline stops: closes the call queue and serves what is left in it
    /// and the held calls, so that every call answered with a fallback is
    /// recorded by the last commit (on a restoring partition, by its owner:
    /// [`CallRecords::Fallback`]).
    pub(super) fn finish_calls(&mut self) -> Result<(), SinkError> {
        let Some(api) = self.api.as_mut() else {
            return Ok(());
        };
        api.calls.close();
        api.stopping = true;
        let held = std::mem::take(&mut api.held);
        for call in held {
            self.serve_call(call)?;
        }
        while let Some(call) = self.api.as_ref().and_then(|a| a.calls.recv(Duration::ZERO)) {
            self.serve_call(call)?;
        }
        Ok(())
    }

    /// An input record the API wrote: applied to the state; one carrying its
    /// client's fallback ([`ApiRecord::Fallback`]) also gets that decision
    /// recorded, unless its `event_id` was decided before (then it is a duplicate).
    pub(super) fn handle_api_record(&mut self, msg: &BorrowedMessage<'_>, record: ApiRecord<'_>) {
        let payload = msg.payload().unwrap_or(&[]);
        let applied = self
            .workers
            .get(msg.partition())
            .restore(payload, &self.limits);
        let ApiRecord::Fallback(decision) = record else {
            return;
        };
        let ev = match parse_event(payload, &self.limits) {
            Ok(ev) => ev,
            Err(invalid) => return self.dead_letter(msg, &invalid),
        };
        if !applied || decision.is_empty() {
            return self.duplicate();
        }
        let id = key_hash(0, ev.event_id.as_bytes());
        let (mut sink, tally) = self.batch.output();
        sink.send(
            &self.output.topics.output,
            msg.key().unwrap_or(&[]),
            decision,
        );
        tally.decided += 1;
        if let Some(api) = &mut self.api {
            api.replay.insert(id, decision);
        }
    }

    /// Decides a call on partition `p`'s worker (or records the fallback its
    /// client got at the deadline) and answers it.
    fn decide_call(&mut self, call: Call, p: i32, id: u64, key: Vec<u8>) -> Result<(), SinkError> {
        // Read now, as a Kafka message is when polled: `latency_us` and the hot
        // path's histogram leave the queue out (`fraudstream_api_call_seconds`
        // has the whole call).
        let read_at = Instant::now();
        let worker = self.workers.get(p);
        let decision = match call.ticket.take() {
            Err(fallback) => {
                // The client has the fallback: record it, as if decided now.
                if fallback.is_empty() || !worker.restore(&call.payload, &self.limits) {
                    return Ok(());
                }
                self.batch.tally().decided += 1;
                fallback.to_vec()
            }
            Ok(()) => {
                let out = &mut self.output.out;
                match worker.decide(&call.payload, &self.limits, &mut self.decider, read_at, out) {
                    Ok(Some(outcome)) => {
                        self.output
                            .count_decision(self.batch.tally(), outcome, read_at);
                        self.output.out.decision.clone()
                    }
                    Ok(None) => {
                        self.output.duplicate();
                        self.stats.duplicates += 1;
                        let _ = call.reply.send(Reply::DecidedOnTopic);
                        return Ok(());
                    }
                    Err(invalid) => {
                        self.dead_letter_call(&call, &invalid)?;
                        let _ = call.reply.send(Reply::Recorded);
                        return Ok(());
                    }
                }
            }
        };
        if let Some(api) = self.api.as_mut() {
            api.replay.insert(id, &decision);
            if !api.open.contains(&p) {
                api.open.push(p);
            }
        }
        let reply = Reply::Decided {
            decision: decision.clone(),
            replayed: false,
        };
        let records = CallRecords::Decided {
            partition: p,
            key,
            payload: call.payload.clone(),
            decision,
        };
        self.record_call(records, read_at)?;
        let _ = call.reply.send(reply);
        Ok(())
    }

    /// Records an invalid call on the dead-letter topic, like an invalid input record.
    fn dead_letter_call(&mut self, call: &Call, invalid: &InvalidEvent) -> Result<(), SinkError> {
        let records =
            self.output
                .call_dead_letter(self.batch.tally(), call.payload.clone(), invalid);
        self.record_call(records, Instant::now())
    }

    /// Produces a call's records in the open transaction, or parks them while a
    /// commit runs.
    fn record_call(&mut self, records: CallRecords, read_at: Instant) -> Result<(), SinkError> {
        let (mut sink, _) = self.batch.open(read_at)?;
        records.produce(&mut sink, &self.output.topics);
        Ok(())
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod api_tests;
