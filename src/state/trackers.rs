//! Aggregates that running sums cannot give: sliding-window min/max (a monotonic
//! deque per window of up to four candidates inline: amortised O(1), plus a
//! rescan of the window when more were needed and the kept ones all left) and
//! distinct counts (a small fixed table of last-seen value hashes per entity,
//! exact up to [`DISTINCT_CAP`] values).

use super::window::{Entry, Money, WindowAcc, WindowSpec};
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

/// Candidates an [`Extreme`] keeps inline: with the rest of it, one cache line
/// (four exact amounts of 8 bytes and their sequence numbers).
const EXTREME_CAP: usize = 4;

/// A window's min or max: the monotonic deque of its candidates (each entry
/// that no later entry beats), oldest (the extreme) first, with their amounts.
///
/// It keeps at most [`EXTREME_CAP`] candidates inline, so that an update reads
/// one cache line and never the heap. Beyond that it keeps the oldest ones and
/// notes that it is incomplete; the ones not kept are all beaten by the last one
/// kept, so a new entry that beats it makes the deque complete again, and if
/// the kept ones all leave the window first, the deque is rebuilt from the
/// window's entries. The value is exact either way.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
pub(crate) struct Extreme {
    seqs: [u32; EXTREME_CAP],
    amounts: [Money; EXTREME_CAP],
    /// The candidates are `lo..hi`.
    lo: u8,
    hi: u8,
    /// Candidates after `hi` exist but were not kept.
    incomplete: bool,
    /// Entries up to (excluding) this sequence number have been offered.
    fed: u32,
}

/// Last-seen time of up to [`DISTINCT_CAP`] value hashes (0 = empty slot): the
/// values seen last, so that a window's count is exact up to the cap.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Distinct {
    hashes: [u32; DISTINCT_CAP],
    seen_s: [u32; DISTINCT_CAP],
}

const _: () = assert!(std::mem::size_of::<Extreme>() == 64);

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
        while self.lo < self.hi && self.seqs[self.lo as usize] < acc.start {
            self.lo += 1;
        }
        if self.lo == self.hi && self.incomplete {
            // Candidates not kept may still be in the window: find them again.
            self.reset(acc.start);
        }
        if self.fed < acc.start {
            self.fed = acc.start;
        }
        while self.fed < acc.end {
            let e = ring[(self.fed - base) as usize];
            if spec.filter.accepts(e.amount) {
                self.offer(self.fed, e.amount, max);
            }
            self.fed += 1;
        }
    }

    /// Offers entry `seq` of amount `amount` as the newest candidate.
    #[inline]
    fn offer(&mut self, seq: u32, amount: Money, max: bool) {
        let beaten = |b: Money| if max { b <= amount } else { b >= amount };
        let hi = self.hi;
        while self.lo < self.hi && beaten(self.amounts[self.hi as usize - 1]) {
            self.hi -= 1;
        }
        if self.hi < hi {
            // It beat the last candidate kept, so every one not kept too.
            self.incomplete = false;
        }
        if self.incomplete {
            return;
        }
        if self.hi as usize == EXTREME_CAP && self.lo > 0 {
            let (lo, hi) = (self.lo as usize, self.hi as usize);
            self.seqs.copy_within(lo..hi, 0);
            self.amounts.copy_within(lo..hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        if (self.hi as usize) < EXTREME_CAP {
            self.seqs[self.hi as usize] = seq;
            self.amounts[self.hi as usize] = amount;
            self.hi += 1;
        } else {
            self.incomplete = true;
        }
    }

    /// Forgets everything, to be fed again from sequence number `start` (after
    /// an out-of-order insert shifted sequence numbers, or to find candidates
    /// that were not kept).
    pub(crate) fn reset(&mut self, start: u32) {
        self.lo = 0;
        self.hi = 0;
        self.incomplete = false;
        self.fed = start;
    }

    /// The current extreme, or NaN when the window is empty.
    #[inline]
    pub(crate) fn value(&self) -> f64 {
        if self.lo < self.hi {
            self.amounts[self.lo as usize].to_f64()
        } else {
            f64::NAN
        }
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
        if self.hashes[target] != 0 && self.seen_s[target] > ts_s {
            // A late value seen before all those kept: not among the last seen.
            return;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::window::{AmountFilter, MONEY_SCALE};
    use proptest::prelude::*;

    /// Feeds `amounts` (in [`Money`] units) one by one through an [`Extreme`]
    /// over the last `w` entries, checking its value against a scan of the
    /// window after each; returns how many updates found it incomplete.
    fn check(amounts: &[i64], w: usize, max: bool, filter: AmountFilter) -> usize {
        let spec = WindowSpec {
            length_s: 0,
            delay_s: 0,
            filter,
            value: Default::default(),
        };
        let ring: VecDeque<Entry> = amounts
            .iter()
            .map(|&amount| Entry::new(0, Money(amount), 0))
            .collect();
        let (mut ex, mut incomplete) = (Extreme::default(), 0);
        for end in 1..=amounts.len() {
            let start = end.saturating_sub(w);
            let acc = WindowAcc {
                start: start as u32,
                end: end as u32,
                ..WindowAcc::default()
            };
            ex.update(&ring, 0, &acc, &spec, max);
            incomplete += usize::from(ex.incomplete);
            let inside = amounts[start..end]
                .iter()
                .filter(|&&a| filter.accepts(Money(a)))
                .copied();
            let want = if max { inside.max() } else { inside.min() };
            let want = want.map_or(f64::NAN, |a| Money(a).to_f64());
            let got = ex.value();
            assert!(
                got == want || (got.is_nan() && want.is_nan()),
                "entry {end}: got {got}, want {want}"
            );
        }
        incomplete
    }

    #[test]
    fn a_run_longer_than_the_inline_deque_stays_exact() {
        // Falling amounts: every entry is a candidate for the max, rising ones for the min.
        let falling: Vec<i64> = (0..200).map(|i| 1000 - i).collect();
        let rising: Vec<i64> = falling.iter().rev().copied().collect();
        assert!(check(&falling, 30, true, AmountFilter::ALL) > 100);
        assert!(check(&rising, 30, false, AmountFilter::ALL) > 100);
        // Then a new maximum beats every candidate, kept or not.
        let mut jump = falling[..50].to_vec();
        jump.extend([5000, 1, 2]);
        check(&jump, 40, true, AmountFilter::ALL);
    }

    /// Amounts one unit apart at every magnitude (1e9 + 0.0001 against 1e9)
    /// are told apart: the extreme is the exact amount.
    #[test]
    fn extremes_are_exact_at_any_magnitude() {
        for base in [
            100,
            1_000_000 * MONEY_SCALE,
            1_000_000_000 * MONEY_SCALE,
            16_777_216 * MONEY_SCALE,
        ] {
            let amounts: Vec<i64> = (0..100).map(|i| base + (i * 37 % 11)).collect();
            check(&amounts, 17, true, AmountFilter::ALL);
            check(&amounts, 17, false, AmountFilter::ALL);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn extremes_equal_a_scan_of_the_window(
            noise in proptest::collection::vec(0i64..40, 1..300),
            trend in -4i64..=4,
            w in 1usize..60,
            max in any::<bool>(),
            filtered in any::<bool>(),
        ) {
            let amounts: Vec<i64> = noise
                .iter()
                .enumerate()
                .map(|(i, &n)| (2000 + trend * i as i64 + n) * MONEY_SCALE)
                .collect();
            let filter = if filtered {
                AmountFilter { min: Money(1990 * MONEY_SCALE), max: Money(2020 * MONEY_SCALE) }
            } else {
                AmountFilter::ALL
            };
            check(&amounts, w, max, filter);
        }
    }
}
