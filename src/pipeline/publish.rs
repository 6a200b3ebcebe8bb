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
}

impl Publisher {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            last: Instant::now(),
            published: HashMap::new(),
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
        for w in workers {
            bytes += w.engine.memory_bytes();
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
}
