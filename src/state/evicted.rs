//! The keys a table evicted for idleness, remembered for a while, so that an
//! entity the table does not hold is told from one whose history it dropped.

use super::KeyHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

/// How long after it could last have been evicted (its newest event plus the
/// horizon and the lateness) a table remembers an evicted entity's key,
/// seconds: a first event of any other key is applied unless it is this far
/// behind the table's newest event. An event time that runs ahead of the
/// others (a producer's clock, `processing.max_future_skew_secs` allows an
/// hour) thus never makes the next new entities' events look evicted.
pub const REMEMBER_EVICTED_S: u32 = 86_400;

/// Entities evicted for idleness: the recent ones by key, the older ones by
/// the newest event time among them.
#[derive(Default)]
pub(super) struct EvictedKeys {
    /// Key -> newest event time of the history dropped, seconds.
    by_key: HashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
    /// `(newest_s, key)` of the entries of `by_key`, in eviction order.
    order: VecDeque<(u32, u64)>,
    /// Newest event time of the evicted entities no longer remembered, seconds.
    forgotten_newest_s: Option<u32>,
}

impl EvictedKeys {
    /// Whether an event of `key` (not held) at `ts_s`, whose windows reach
    /// `reach_s` back, could reach an evicted history: that of `key` if it
    /// is remembered, else any forgotten one. A key neither held nor
    /// remembered since was never held, or forgotten.
    pub fn may_reach(&self, key: u64, ts_s: u32, reach_s: u32) -> bool {
        let reaches = |newest_s: u32| u64::from(ts_s) <= u64::from(newest_s) + u64::from(reach_s);
        match self.by_key.get(&key) {
            Some(&newest_s) => reaches(newest_s),
            None => self.forgotten_newest_s.is_some_and(reaches),
        }
    }

    /// Remembers that `key`'s history, up to `newest_s`, was evicted.
    pub fn remember(&mut self, key: u64, newest_s: u32) {
        self.by_key.insert(key, newest_s);
        self.order.push_back((newest_s, key));
    }

    /// Forgets up to `max` of the oldest keys whose newest event plus `keep_s`
    /// is before `clock_s`.
    #[inline]
    pub fn forget(&mut self, clock_s: u32, keep_s: u64, max: usize) {
        for _ in 0..max {
            let Some(&(n, k)) = self.order.front() else {
                return;
            };
            if u64::from(n) + keep_s >= u64::from(clock_s) {
                return;
            }
            self.order.pop_front();
            // Unless evicted again since, with a newer history.
            if self.by_key.get(&k) == Some(&n) {
                self.by_key.remove(&k);
            }
            self.forgotten_newest_s = Some(self.forgotten_newest_s.map_or(n, |f| f.max(n)));
        }
    }

    /// Keys remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Approximate bytes held.
    pub fn memory_bytes(&self) -> usize {
        // hashbrown: key + value + one control byte per bucket.
        self.by_key.capacity() * (8 + 4 + 1) + self.order.capacity() * 16
    }
}
