//! A fixed-size latency histogram with exact small values and ~3 % relative error
//! above: O(1) to record, no allocation after creation, mergeable. The load test
//! and the pipeline's run totals read p50/p99/p99.9 from it.

/// Sub-buckets per power of two above [`EXACT`] (2^5 = 32: at most 1/32 error).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values below this are counted exactly.
const EXACT: u64 = 2 * SUB as u64;
/// Buckets covering every `u64`.
const BUCKETS: usize = EXACT as usize + (64 - SUB_BITS as usize - 1) * SUB;

/// Counts of values (e.g. nanoseconds) in log-linear buckets.
#[derive(Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.total)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max)
            .finish()
    }
}

fn bucket(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let magnitude = 63 - v.leading_zeros(); // >= SUB_BITS + 1
    let sub = ((v >> (magnitude - SUB_BITS)) as usize) & (SUB - 1);
    EXACT as usize + (magnitude - SUB_BITS - 1) as usize * SUB + sub
}

/// The largest value that falls in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    if i < EXACT as usize {
        return i as u64;
    }
    let magnitude = ((i - EXACT as usize) / SUB) as u32 + SUB_BITS + 1;
    let sub = ((i - EXACT as usize) % SUB) as u64;
    let width = 1u64 << (magnitude - SUB_BITS);
    ((SUB as u64 + sub) << (magnitude - SUB_BITS)).saturating_add(width - 1)
}

impl LatencyHistogram {
    /// Counts one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value counted.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): an upper bound at most 1/32 above the
    /// true value, never above the maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper_bound(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_tile_the_whole_range_in_order() {
        let mut prev = None;
        for i in 0..BUCKETS {
            let hi = upper_bound(i);
            assert_eq!(bucket(hi), i, "upper bound of {i}");
            if let Some(p) = prev {
                assert_eq!(bucket(p + 1), i, "first value of {i}");
            }
            prev = Some(hi);
        }
        assert_eq!(prev, Some(u64::MAX));
    }

    proptest! {
        /// Quantiles are within 1/32 above the exact order statistic.
        #[test]
        fn quantiles_are_close_to_exact(
            mut values in proptest::collection::vec(0u64..10_000_000_000, 1..2000),
            q in 0.0f64..=1.0,
        ) {
            let mut h = LatencyHistogram::default();
            values.iter().for_each(|&v| h.record(v));
            values.sort_unstable();
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1];
            let got = h.quantile(q);
            prop_assert!(got >= exact, "{got} < {exact}");
            prop_assert!(got as f64 <= exact as f64 * (1.0 + 1.0 / 32.0) + 1.0, "{got} vs {exact}");
            prop_assert_eq!(h.count(), values.len() as u64);
        }
    }

    #[test]
    fn merging_adds_counts() {
        let (mut a, mut b) = (LatencyHistogram::default(), LatencyHistogram::default());
        (0..100).for_each(|v| a.record(v));
        (100..200).for_each(|v| b.record(v * 1000));
        a.merge(&b);
        assert_eq!(a.count(), 200);
        assert_eq!(a.max(), 199_000);
        assert_eq!(a.quantile(0.25), 49);
    }
}
