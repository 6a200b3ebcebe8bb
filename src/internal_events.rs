//! Internal events: what the pipeline reports to the operator, each as its log
//! line and its metric together, with label values from the stages' own enums.

use crate::decision::Action;
use crate::features::LabelOutcome;
use crate::metrics::Metrics;
use crate::source::event::InvalidReason;
use prometheus::local::{LocalHistogram, LocalIntCounter};

/// Creates the series (at 0) of every label value the stages define, so they
/// exist from the first scrape after the pipeline starts.
pub fn register(m: &Metrics) {
    for reason in InvalidReason::ALL {
        m.events_invalid.with_label_values(&[reason.code()]);
    }
    for action in Action::ALL {
        m.decisions.with_label_values(&[action.as_str()]);
    }
    for outcome in LabelOutcome::ALL {
        m.labels.with_label_values(&[outcome.code()]);
    }
    for outcome in ["invalid", "routed"] {
        m.labels.with_label_values(&[outcome]);
    }
}

/// The metrics every decided event moves, accumulated by the polling thread
/// without atomics and flushed to [`Metrics`] once per batch (and each second),
/// so the hot path does no shared-memory writes for them.
pub struct HotPathMetrics {
    /// `fraudstream_events_consumed_total`.
    pub events_consumed: LocalIntCounter,
    /// `fraudstream_events_decided_total`.
    pub events_decided: LocalIntCounter,
    /// `fraudstream_decisions_total`, by [`Action`] index.
    pub decisions: [LocalIntCounter; 3],
    /// `fraudstream_score`.
    pub score: LocalHistogram,
    /// `fraudstream_model_score`.
    pub model_score: LocalHistogram,
    /// `fraudstream_hot_path_seconds`.
    pub hot_path_seconds: LocalHistogram,
    /// `fraudstream_end_to_end_seconds`.
    pub end_to_end_seconds: LocalHistogram,
}

impl HotPathMetrics {
    /// Local halves of `m`'s per-event metrics.
    pub fn new(m: &Metrics) -> Self {
        Self {
            events_consumed: m.events_consumed.local(),
            events_decided: m.events_decided.local(),
            decisions: Action::ALL.map(|a| m.decisions.with_label_values(&[a.as_str()]).local()),
            score: m.score.local(),
            model_score: m.model_score.local(),
            hot_path_seconds: m.hot_path_seconds.local(),
            end_to_end_seconds: m.end_to_end_seconds.local(),
        }
    }

    /// Adds what was accumulated to the shared metrics.
    pub fn flush(&self) {
        self.events_consumed.flush();
        self.events_decided.flush();
        for d in &self.decisions {
            d.flush();
        }
        self.score.flush();
        self.model_score.flush();
        self.hot_path_seconds.flush();
        self.end_to_end_seconds.flush();
    }
}
