//! One input partition's worker: its entity state and its offset bookkeeping.

use crate::decision::{itoa_buf, Decider, Outcome, Subject};
use crate::features::{EngineLimits, EventView, FeatureEngine, FeatureSet};
use crate::source::event::{parse_event, InvalidEvent, Limits};
use crate::source::time::now_ms;
use crate::state::{key_hash, RecentIds};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Offsets of one topic-partition: what was read and what is durably committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffsetTrack {
    /// Next offset to read, once anything was read since assignment.
    pub next: Option<i64>,
    /// Next offset as of the last successful commit (or the first offset read).
    pub committed: Option<i64>,
}

impl OffsetTrack {
    /// Records that `offset` was processed.
    pub fn advance(&mut self, offset: i64) {
        if self.committed.is_none() {
            self.committed = Some(offset);
        }
        self.next = Some(offset + 1);
    }

    /// Whether output for offsets past the last commit is pending.
    pub fn dirty(&self) -> bool {
        self.next.is_some() && self.next != self.committed
    }

    /// Marks everything read as committed.
    pub fn mark_committed(&mut self) {
        self.committed = self.next;
    }

    /// Forgets uncommitted progress; returns where reading must resume.
    pub fn rewind(&mut self) -> Option<i64> {
        self.next = self.committed;
        self.committed
    }
}

/// The worker that owns partition `p` of the input topic (and of the labels topic).
pub struct PartitionWorker {
    /// Entity state and features for the keys of this partition.
    pub engine: FeatureEngine,
    /// Input topic offsets.
    pub input: OffsetTrack,
    /// Labels topic offsets.
    pub labels: OffsetTrack,
    /// Ids of the latest events, to skip an event delivered twice.
    recent: RecentIds,
    /// Feature output of events replayed into the state, discarded.
    scratch: Vec<f64>,
}

impl PartitionWorker {
    /// A worker with empty state that remembers the last `dedup_window` event ids.
    pub fn new(set: Arc<FeatureSet>, limits: EngineLimits, dedup_window: usize) -> Self {
        Self {
            scratch: vec![0.0; set.len()],
            engine: FeatureEngine::new(set, limits),
            input: OffsetTrack::default(),
            labels: OffsetTrack::default(),
            recent: RecentIds::new(dedup_window),
        }
    }

    /// Replays one already-decided input payload into the state (state restore):
    /// the same parsing, duplicate check and update as [`PartitionWorker::decide`],
    /// without deciding. Returns whether it changed the state.
    pub fn restore(&mut self, payload: &[u8], limits: &Limits) -> bool {
        let Ok(ev) = parse_event(payload, limits) else {
            return false;
        };
        if !self.recent.insert(key_hash(0, ev.event_id.as_bytes())) {
            return false;
        }
        self.engine.update(&EventView::of(&ev), &mut self.scratch);
        true
    }
}

/// Reusable buffers the hot path writes one decision into.
#[derive(Debug, Default)]
pub struct Encoded {
    /// Kafka key of the decision (the account id).
    pub key: Vec<u8>,
    /// The decision, JSON.
    pub decision: Vec<u8>,
    /// Wall clock when it was decided, epoch ms.
    pub decided_at_ms: i64,
    /// From reading the event to deciding it.
    pub latency: Duration,
}

impl PartitionWorker {
    /// The hot path for one input payload, up to the producer: parse and validate,
    /// skip it if its id was seen recently (`Ok(None)`), update this partition's
    /// state, extract features, decide, and encode the decision into `out`.
    /// `read_at` is when the event was read.
    pub fn decide(
        &mut self,
        payload: &[u8],
        limits: &Limits,
        decider: &mut Decider,
        read_at: Instant,
        out: &mut Encoded,
    ) -> Result<Option<Outcome>, InvalidEvent> {
        let ev = parse_event(payload, limits)?;
        if !self.recent.insert(key_hash(0, ev.event_id.as_bytes())) {
            return Ok(None);
        }
        self.engine
            .update(&EventView::of(&ev), decider.features_mut());
        let mut mcc = itoa_buf::Buf::default();
        let subject = Subject::of(&ev, &mut mcc);
        out.decided_at_ms = now_ms();
        out.latency = read_at.elapsed();
        let outcome = decider.decide(
            &subject,
            out.decided_at_ms,
            out.latency.as_micros() as u64,
            &mut out.decision,
        );
        out.key.clear();
        out.key.extend_from_slice(ev.account_id.as_bytes());
        Ok(Some(outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the mix of reads, commits and aborts, the committed offset only
        /// moves forward, and a rewind resumes right after the last commit.
        #[test]
        fn offsets_never_commit_unread_and_rewind_to_last_commit(ops in proptest::collection::vec(0u8..3, 1..100)) {
            let mut t = OffsetTrack::default();
            let mut offset = 100i64;
            let mut committed_model: Option<i64> = None;
            for op in ops {
                match op {
                    0 => {
                        if committed_model.is_none() { committed_model = Some(offset); }
                        t.advance(offset);
                        offset += 1;
                    }
                    1 => { t.mark_committed(); if t.next.is_some() { committed_model = t.next; } }
                    _ => {
                        let resume = t.rewind();
                        prop_assert_eq!(resume, committed_model);
                        if let Some(r) = resume { offset = r; }
                        prop_assert!(!t.dirty());
                    }
                }
                prop_assert!(t.committed.unwrap_or(0) <= t.next.unwrap_or(0));
                prop_assert_eq!(t.committed, committed_model);
            }
        }
    }
}
