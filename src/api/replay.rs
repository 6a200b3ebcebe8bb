//! The decisions of the latest payments by event id, whichever path decided
//! them (a call or a Kafka event), so that a call repeating an `event_id` gets
//! the original decision back.
//!
//! Bounded: at most `entries` decisions, whose bytes share one ring of
//! `entries` × [`AVERAGE_DECISION_BYTES`] allocated up front; the oldest go
//! first when either is full. Keeping one allocates nothing (the Kafka path
//! calls [`DecisionLog::insert`] per event), which `tests/no_alloc.rs` checks.

use std::collections::{HashMap, VecDeque};

/// Bytes of the ring per entry: decisions longer than this on average leave
/// fewer than `entries` kept (a decision of the starter rules and the shipped
/// model is 300 to 500 bytes).
pub const AVERAGE_DECISION_BYTES: usize = 512;

/// One decision's place in the ring.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    start: usize,
    len: usize,
}

/// The latest decisions by event id hash, oldest forgotten first.
#[derive(Debug)]
pub struct DecisionLog {
    ring: Box<[u8]>,
    /// Where the next decision is written.
    head: usize,
    /// Oldest first; entry `i` has sequence number `first + i`.
    entries: VecDeque<Entry>,
    first: u64,
    capacity: usize,
    /// Event id hash to the sequence number of its entry.
    index: HashMap<u64, u64>,
    /// Sequence number of the first entry not yet committed.
    uncommitted: u64,
}

impl DecisionLog {
    /// A log of at most `entries` decisions (0 keeps none).
    pub fn new(entries: usize) -> Self {
        Self {
            ring: vec![0; entries * AVERAGE_DECISION_BYTES].into_boxed_slice(),
            head: 0,
            entries: VecDeque::with_capacity(entries),
            first: 0,
            capacity: entries,
            // Twice what it holds: removals leave tombstones, and a table at most
            // half full is rehashed in place instead of grown (no allocation).
            index: HashMap::with_capacity(2 * entries + 2),
            uncommitted: 0,
        }
    }

    /// The decision kept for event id hash `id`.
    pub fn get(&self, id: u64) -> Option<&[u8]> {
        let seq = *self.index.get(&id)?;
        let e = self.entries.get((seq - self.first) as usize)?;
        Some(&self.ring[e.start..e.start + e.len])
    }

    /// Keeps `decision` for `id`, forgetting the oldest as needed; one longer
    /// than the whole ring is not kept.
    pub fn insert(&mut self, id: u64, decision: &[u8]) {
        let len = decision.len();
        if self.capacity == 0 || len == 0 || len > self.ring.len() {
            return;
        }
        let mut start = self.head;
        if start + len > self.ring.len() {
            // The tail is too short: start over at 0. What lies past the head is
            // from the previous lap, so the oldest; it goes first.
            while self.entries.front().is_some_and(|e| e.start >= self.head) {
                self.evict_oldest();
            }
            start = 0;
        }
        while let Some(e) = self.entries.front() {
            let overlaps = e.start < start + len && start < e.start + e.len;
            if !overlaps && self.entries.len() < self.capacity {
                break;
            }
            self.evict_oldest();
        }
        self.ring[start..start + len].copy_from_slice(decision);
        self.head = start + len;
        let seq = self.first + self.entries.len() as u64;
        self.entries.push_back(Entry { id, start, len });
        self.index.insert(id, seq);
    }

    /// Where the decisions kept so far end: a transaction closing now covers
    /// the decisions before this mark.
    pub fn mark(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// The decisions kept before `mark` (from [`Self::mark`]) are recorded:
    /// their transaction committed. Those kept since stay uncommitted.
    pub fn committed_through(&mut self, mark: u64) {
        self.uncommitted = self.uncommitted.max(mark);
    }

    /// The decisions kept so far are recorded (their transaction committed).
    pub fn committed(&mut self) {
        self.committed_through(self.mark());
    }

    /// Forgets the decisions kept since the last [`Self::committed`]: their
    /// transaction aborted, so they were never recorded.
    pub fn aborted(&mut self) {
        while self.first + (self.entries.len() as u64) > self.uncommitted {
            let Some(e) = self.entries.pop_back() else {
                break;
            };
            let seq = self.first + self.entries.len() as u64;
            self.forget(e.id, seq);
            self.head = e.start;
        }
        self.uncommitted = self.first + self.entries.len() as u64;
    }

    /// How many decisions are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict_oldest(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.forget(e.id, self.first);
            self.first += 1;
        }
    }

    /// Removes `id` from the index if it still points at entry `seq`.
    fn forget(&mut self, id: u64, seq: u64) {
        if self.index.get(&id) == Some(&seq) {
            self.index.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decision(id: u64, len: usize) -> Vec<u8> {
        (0..len).map(|i| (id as usize * 31 + i) as u8).collect()
    }

    #[test]
    fn a_kept_decision_comes_back_whole_and_the_oldest_goes_first() {
        let mut log = DecisionLog::new(2);
        log.insert(1, b"one");
        log.insert(2, b"two");
        log.insert(3, b"three");
        assert_eq!(log.get(1), None, "the oldest is forgotten");
        assert_eq!(log.get(2), Some(&b"two"[..]));
        assert_eq!(log.get(3), Some(&b"three"[..]));
        assert_eq!(log.len(), 2);
        let mut none = DecisionLog::new(0);
        none.insert(1, b"one");
        assert_eq!(none.get(1), None);
    }

    #[test]
    fn an_abort_forgets_what_was_kept_since_the_last_commit() {
        let mut log = DecisionLog::new(4);
        log.insert(1, b"one");
        log.committed();
        log.insert(2, b"two");
        log.insert(3, b"three");
        log.aborted();
        assert_eq!(log.get(1), Some(&b"one"[..]));
        assert_eq!((log.get(2), log.get(3)), (None, None));
        log.insert(3, b"tres");
        assert_eq!(log.get(3), Some(&b"tres"[..]), "decided anew");
        assert_eq!(log.get(1), Some(&b"one"[..]));
    }

    proptest! {
        /// Against a model that keeps everything: the log holds the newest of
        /// what was inserted since the last abort, whole, within both bounds.
        #[test]
        fn the_log_is_a_bounded_suffix_of_what_was_inserted(
            entries in 1usize..6,
            ops in prop::collection::vec((1usize..1500, 0u8..10), 1..200),
        ) {
            let mut log = DecisionLog::new(entries);
            let ring = entries * AVERAGE_DECISION_BYTES;
            let mut model: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut committed = 0;
            for (i, (len, op)) in ops.into_iter().enumerate() {
                let id = i as u64;
                match op {
                    0 => { log.committed(); committed = model.len(); }
                    1 => { log.aborted(); model.truncate(committed); }
                    _ => {
                        let d = decision(id, len);
                        log.insert(id, &d);
                        if len <= ring {
                            prop_assert_eq!(log.get(id), Some(&d[..]), "a decision that fits is kept");
                            model.push((id, d));
                        } else {
                            prop_assert_eq!(log.get(id), None);
                        }
                    }
                }
                prop_assert!(log.len() <= entries);
                prop_assert!(log.entries.iter().map(|e| e.len).sum::<usize>() <= ring);
                let kept = &model[model.len() - log.len()..];
                for (e, (id, d)) in log.entries.iter().zip(kept) {
                    prop_assert_eq!(e.id, *id);
                    prop_assert_eq!(log.get(*id), Some(&d[..]));
                }
                for (id, _) in &model[..model.len() - log.len()] {
                    prop_assert_eq!(log.get(*id), None);
                }
            }
        }
    }
}
