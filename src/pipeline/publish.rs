//! Publishing: the state's gauges and counters, once a second, off the
//! per-event path.

use super::partition::PartitionWorker;
use crate::ops::metrics::Metrics;
use crate::state::TableStats;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the state's metrics are published.
const EVERY: Duration = Duration::from_secs(1);

/// The publishing step: what it last published, to export counter deltas.
pub(super) struct Publisher {
    metrics: Arc<Metrics>,
    last: Instant,
    /// Totals per entity table as of the last publish.
    published: HashMap<String, TableStats>,
    /// The full-windows event time last published, epoch ms.
    full_from_ms: Option<i64>,
}

impl Publisher {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            last: Instant::now(),
            published: HashMap::new(),
            full_from_ms: None,
        }
    }

    /// Whether a second has passed since the last publish.
    pub fn due(&self) -> bool {
        self.last.elapsed() >= EVERY
    }

    /// Publishes the state of `workers`: bytes and entities (gauges), evictions
    /// and late events (counters, by the change since the last publish).
    pub fn publish<'a>(&mut self, workers: impl Iterator<Item = &'a PartitionWorker>) {
        self.last = Instant::now();
        let mut totals: HashMap<&str, (usize, TableStats)> = HashMap::new();
        let mut bytes = 0;
        let mut full_from: Option<i64> = None;
        for w in workers {
            bytes += w.engine.memory_bytes();
            let terminal = w.terminal.as_ref().map(|t| &t.engine);
            for e in std::iter::once(&w.engine).chain(terminal) {
                full_from = full_from.max(e.full_windows_from_ms());
            }
            for (name, len, st) in w.engine.table_stats() {
                let t = totals.entry(name).or_default();
                t.0 += len;
                t.1.evicted_idle += st.evicted_idle;
                t.1.evicted_lru += st.evicted_lru;
                t.1.late_applied += st.late_applied;
                t.1.late_dropped += st.late_dropped;
            }
        }
        self.metrics.state_bytes.set(bytes as i64);
        self.publish_full_windows(full_from);
        for (name, (len, st)) in totals {
            self.metrics
                .state_entities
                .with_label_values(&[name])
                .set(len as i64);
            let prev = self.published.entry(name.to_string()).or_default();
            let m = &self.metrics;
            let deltas = [
                (
                    &m.state_evictions,
                    "idle",
                    st.evicted_idle,
                    prev.evicted_idle,
                ),
                (
                    &m.state_evictions,
                    "capacity",
                    st.evicted_lru,
                    prev.evicted_lru,
                ),
                (
                    &m.late_events,
                    "applied",
                    st.late_applied,
                    prev.late_applied,
                ),
                (
                    &m.late_events,
                    "dropped",
                    st.late_dropped,
                    prev.late_dropped,
                ),
            ];
            for (counter, label, now, before) in deltas {
                if now > before {
                    counter
                        .with_label_values(&[name, label])
                        .inc_by(now - before);
                }
            }
            *prev = st;
        }
    }

    /// Publishes from when the windows are full, and says so when it moves
    /// ahead of the wall clock (state that starts, or restarts, on a short history).
    fn publish_full_windows(&mut self, full_from: Option<i64>) {
        let Some(ms) = full_from.filter(|&ms| Some(ms) != self.full_from_ms) else {
            return;
        };
        self.full_from_ms = Some(ms);
        self.metrics.full_windows_from.set(ms.div_euclid(1000));
        if ms > crate::source::time::now_ms() {
            tracing::warn!(
                full_windows_from = %crate::time::rfc3339_ms(ms),
                "the feature state's history is shorter than its longest window: features of events before this event time read partial windows (counts and means low, first_seen high); models trained on full windows score them as they never learned"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{load_feature_set, EngineLimits};
    use crate::source::event::Limits;

    fn payload(i: u32, ts_ms: i64) -> Vec<u8> {
        format!(
            r#"{{"event_id":"e{i}","ts":{ts_ms},"account_id":"a{i}","terminal_id":"t1","amount":5,"currency":"EUR"}}"#
        )
        .into_bytes()
    }

    /// The gauge is the earliest event time held (an event out of order
    /// included) plus the feature set's reach, as a worker restoring its
    /// input after a restart finds it (each worker here starts empty).
    #[test]
    fn full_windows_from_is_the_earliest_event_plus_the_reach_across_a_restart() {
        let set = Arc::new(load_feature_set("default").unwrap());
        let reach_s = i64::from(set.history_reach_s());
        let t0 = 1_700_000_000_000;
        let input = [
            payload(0, t0 + 60_000),
            payload(1, t0),
            payload(2, t0 + 120_000),
        ];
        let published = |restored: &[Vec<u8>]| {
            let metrics = Arc::new(Metrics::new());
            let mut w = PartitionWorker::new(set.clone(), EngineLimits::default(), 100, None);
            for p in restored {
                w.restore(p, &Limits::default());
            }
            Publisher::new(metrics.clone()).publish(std::iter::once(&w));
            metrics.full_windows_from.get()
        };
        assert_eq!(published(&[]), 0, "no event, nothing to say");
        assert_eq!(published(&input[..1]), (t0 + 60_000) / 1000 + reach_s);
        assert_eq!(published(&input), t0 / 1000 + reach_s);
    }
}
