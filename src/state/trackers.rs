//! Aggregates that running sums cannot give: sliding-window min/max (a monotonic
//! deque per window, amortised O(1)) and distinct counts (a small fixed table of
//! last-seen value hashes per entity, exact up to [`DISTINCT_CAP`] values).

use super::window::{Entry, WindowAcc, WindowSpec};
use std::collections::VecDeque;

/// Most distinct values a distinct-count tracker tells apart; counts saturate here.
pub const DISTINCT_CAP: usize = 16;

/// An aggregate beyond the window sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerSpec {
    /// Minimum (or, with `max`, maximum) amount in window `window`.
    Extreme {
        /// Index of the window.
        window: u16,
        /// Maximum instead of minimum.
        max: bool,
    },
    /// Distinct values of another field over the last `length_s` seconds.
    Distinct {
        /// Window length, seconds.
        length_s: u32,
    },
}

/// A monotonic deque of sequence numbers: the candidates for the window's extreme.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extreme {
    deque: VecDeque<u32>,
    /// Entries up to (excluding) this sequence number have been offered.
    fed: u32,
}

/// Last-seen time of up to [`DISTINCT_CAP`] value hashes (0 = empty slot).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Distinct {
    hashes: [u32; DISTINCT_CAP],
    seen_s: [u32; DISTINCT_CAP],
}

impl Extreme {
    /// Offers the window's new entries and drops the ones that left it.
    pub(crate) fn update(
        &mut self,
        ring: &VecDeque<Entry>,
        base: u32,
        acc: &WindowAcc,
        spec: &WindowSpec,
        max: bool,
    ) {
        // Entries that left the window first: they may already be gone from the ring.
        while self.deque.front().is_some_and(|&f| f < acc.start) {
            self.deque.pop_front();
        }
        if self.fed < acc.start {
            self.fed = acc.start;
        }
        while self.fed < acc.end {
            let e = ring[(self.fed - base) as usize];
            if spec.filter.accepts(e.amount) {
                while let Some(&back) = self.deque.back() {
                    let b = ring[(back - base) as usize].amount;
                    if (max && b <= e.amount) || (!max && b >= e.amount) {
                        self.deque.pop_back();
                    } else {
                        break;
                    }
                }
                self.deque.push_back(self.fed);
            }
            self.fed += 1;
        }
    }

    /// Forgets everything (after an out-of-order insert shifted sequence numbers).
    pub(crate) fn reset(&mut self, start: u32) {
        self.deque.clear();
        self.fed = start;
    }

    /// The current extreme, or NaN when the window is empty.
    pub(crate) fn value(&self, ring: &VecDeque<Entry>, base: u32) -> f64 {
        self.deque
            .front()
            .and_then(|&s| ring.get(s.wrapping_sub(base) as usize))
            .map_or(f64::NAN, |e| f64::from(e.amount))
    }
}

impl Distinct {
    /// Records value `hash` (non-zero) seen at `ts_s`.
    pub(crate) fn record(&mut self, hash: u32, ts_s: u32) {
        let mut target = 0;
        for i in 0..DISTINCT_CAP {
            if self.hashes[i] == hash {
                self.seen_s[i] = self.seen_s[i].max(ts_s);
                return;
            }
            // Prefer an empty slot, else the one seen longest ago.
            if self.hashes[target] != 0
                && (self.hashes[i] == 0 || self.seen_s[i] < self.seen_s[target])
            {
                target = i;
            }
        }
        self.hashes[target] = hash;
        self.seen_s[target] = ts_s;
    }

    /// Distinct values seen in `(now_s - length_s, now_s]`.
    pub(crate) fn count(&self, now_s: u32, length_s: u32) -> f64 {
        let lo = i64::from(now_s) - i64::from(length_s);
        let n = (0..DISTINCT_CAP)
            .filter(|&i| {
                self.hashes[i] != 0 && i64::from(self.seen_s[i]) > lo && self.seen_s[i] <= now_s
            })
            .count();
        n as f64
    }
}
