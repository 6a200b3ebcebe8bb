//! Decision API calls on the pipeline thread: each is decided by the worker
//! that owns its account's partition, between Kafka messages, and its event and
//! decision go into the open transaction with the Kafka path's output.
//!
//! The event goes to the input topic, on the account's partition, marked with
//! [`RECORD_HEADER`]. When the worker reads it back it finds its id among the
//! recent ids and skips it; after a restart (or in a replay) it is applied to
//! the state without a second decision. A later event with the same id, by
//! either path, is a duplicate.

use super::Pipeline;
use crate::api::call::{Call, CallKind, CallReceiver, Reply};
use crate::api::{Partitioner, RECORD_HEADER};
use crate::sink::{DeadLetter, SinkError};
use crate::source::event::{parse_event, InvalidEvent};
use crate::state::key_hash;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Most calls served between two Kafka polls, so neither path starves the other.
const CALLS_PER_POLL: usize = 64;

/// The pipeline's side of the API: its queue and what it remembers of calls.
pub struct ApiSide {
    calls: CallReceiver,
    partitions: i32,
    partitioner: Partitioner,
    replay: ReplayCache,
    /// Ids put into `replay` in the open batch: forgotten if it aborts.
    batch: Vec<u64>,
    /// Partitions whose state took calls in the open batch: rebuilt if it aborts.
    touched: Vec<i32>,
}

impl ApiSide {
    /// Serves `calls` for an input topic of `partitions` partitions, keeping the
    /// decisions of the last `replay_entries` calls for repeats.
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
            replay: ReplayCache::new(replay_entries),
            batch: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// The owners topic publisher, when calls are forwarded between instances.
    pub(super) fn owners(&self) -> Option<&crate::api::owners::Publisher> {
        self.calls.owners()
    }

    /// The open batch committed: its calls' decisions are durable.
    pub(super) fn committed(&mut self) {
        self.batch.clear();
        self.touched.clear();
    }

    /// Whether calls changed `partition`'s state in the aborted batch (asked once
    /// per partition by the rewind, which rebuilds it).
    pub(super) fn take_touched(&mut self, partition: i32) -> bool {
        let before = self.touched.len();
        self.touched.retain(|&p| p != partition);
        self.touched.len() != before
    }

    /// The open batch aborted: its calls were not recorded, so a repeat is decided anew.
    pub(super) fn aborted(&mut self) {
        for id in self.batch.drain(..) {
            self.replay.remove(id);
        }
    }
}

/// Where the dead letters of calls say they came from.
const SOURCE: &str = "POST /v1/decisions";

impl Pipeline {
    /// Serves the calls waiting, up to [`CALLS_PER_POLL`]; waits up to `wait`
    /// for the first one.
    pub(super) fn serve_calls(&mut self, mut wait: Duration) -> Result<(), SinkError> {
        for _ in 0..CALLS_PER_POLL {
            let Some(call) = self.api.as_ref().and_then(|a| a.calls.recv(wait)) else {
                break;
            };
            wait = Duration::ZERO;
            self.serve_call(call)?;
        }
        Ok(())
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
                self.dead_letter_call(&call.payload, &invalid)?;
                let _ = call.reply.send(Reply::Recorded);
                return Ok(());
            }
        };
        let p = api
            .partitioner
            .partition(ev.account_id.as_bytes(), api.partitions);
        let id = key_hash(0, ev.event_id.as_bytes());
        let key = ev.account_id.as_bytes().to_vec();
        let answer = if self.workers.get_mut(p).is_none() {
            Reply::NotOwner
        } else if self.restoring.iter().any(|r| r.partition() == p) {
            Reply::Restoring
        } else if let Some(d) = api.replay.get(id) {
            Reply::Decided {
                decision: d.to_vec(),
                replayed: true,
            }
        } else {
            drop(parsed);
            return self.decide_call(call, p, id, &key);
        };
        let _ = call.reply.send(answer);
        Ok(())
    }

    /// Decides a call on partition `p`'s worker (or records the fallback its
    /// client got at the deadline) and answers it.
    fn decide_call(&mut self, call: Call, p: i32, id: u64, key: &[u8]) -> Result<(), SinkError> {
        // Read now, as a Kafka message is when polled: `latency_us` and the hot
        // path's histogram leave the queue out (`fraudstream_api_call_seconds`
        // has the whole call).
        let read_at = Instant::now();
        self.open_batch(read_at)?;
        let worker = self.workers.get(p);
        let answer = match call.ticket.take() {
            Err(fallback) => {
                // The client has the fallback: record it, as if decided now.
                if fallback.is_empty() || !worker.restore(&call.payload, &self.limits) {
                    return Ok(());
                }
                self.sink.send(&self.output_topic, key, fallback);
                self.stats.decided += 1;
                self.batch_output.0 += 1;
                fallback.to_vec()
            }
            Ok(()) => {
                let decided = worker.decide(
                    &call.payload,
                    &self.limits,
                    &mut self.decider,
                    read_at,
                    &mut self.out,
                );
                match decided {
                    Ok(Some(outcome)) => {
                        self.decided(outcome, read_at);
                        self.out.decision.clone()
                    }
                    Ok(None) => {
                        self.duplicate();
                        let _ = call.reply.send(Reply::DecidedOnTopic);
                        return Ok(());
                    }
                    Err(invalid) => {
                        self.dead_letter_call(&call.payload, &invalid)?;
                        let _ = call.reply.send(Reply::Recorded);
                        return Ok(());
                    }
                }
            }
        };
        let marker = (RECORD_HEADER, "1");
        self.sink
            .send_with_header(&self.input_topic, p, key, &call.payload, marker);
        if let Some(api) = self.api.as_mut() {
            api.replay.insert(id, answer.clone());
            api.batch.push(id);
            if !api.touched.contains(&p) {
                api.touched.push(p);
            }
        }
        let _ = call.reply.send(Reply::Decided {
            decision: answer,
            replayed: false,
        });
        Ok(())
    }

    /// Opens a transaction for the call's records if none is open.
    fn open_batch(&mut self, at: Instant) -> Result<(), SinkError> {
        if self.batch_events == 0 {
            self.batch_started = at;
        }
        self.sink.begin()?;
        self.batch_events += 1;
        Ok(())
    }

    /// Records an invalid call on the dead-letter topic, like an invalid input record.
    fn dead_letter_call(
        &mut self,
        payload: &[u8],
        invalid: &InvalidEvent,
    ) -> Result<(), SinkError> {
        self.open_batch(Instant::now())?;
        let dl = DeadLetter {
            topic: SOURCE,
            partition: -1,
            offset: -1,
            reason: invalid.reason.code(),
            error: &invalid.detail,
        };
        self.sink
            .send_dead_letter(&self.dlq_topic, None, payload, &dl);
        self.stats.invalid += 1;
        self.batch_output.1 += 1;
        self.by_reason[invalid.reason.index()].inc();
        self.metrics.dlq_records.inc();
        Ok(())
    }
}

/// The decisions of the latest calls by event id hash, oldest forgotten first.
struct ReplayCache {
    capacity: usize,
    order: VecDeque<u64>,
    decisions: HashMap<u64, Vec<u8>>,
}

impl ReplayCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            order: VecDeque::new(),
            decisions: HashMap::new(),
        }
    }

    fn get(&self, id: u64) -> Option<&[u8]> {
        self.decisions.get(&id).map(Vec::as_slice)
    }

    fn insert(&mut self, id: u64, decision: Vec<u8>) {
        if self.capacity == 0 || self.decisions.insert(id, decision).is_some() {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.decisions.remove(&old);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        // Its place in `order` goes when it comes up; removing a missing id is harmless.
        self.decisions.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_cache_keeps_the_latest_calls_only() {
        let mut c = ReplayCache::new(2);
        for id in 1..=3 {
            c.insert(id, vec![id as u8]);
        }
        assert_eq!(c.get(1), None, "the oldest is forgotten");
        assert_eq!(c.get(3), Some(&[3u8][..]));
        c.remove(3);
        assert_eq!(c.get(3), None);
        assert!(c.decisions.len() <= 2);
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod api_tests;
