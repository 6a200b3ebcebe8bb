//! Internal events: what the pipeline reports to the operator, each as its log
//! line and its metric together, with label values from the stages' own enums.

use crate::decision::Action;
use crate::features::LabelOutcome;
use crate::ops::metrics::{BatchOutcome, KafkaErrorKind, Metrics};
use crate::rules::{RulesError, Ruleset};
use crate::sink::DeadLetter;
use crate::source::event::InvalidReason;
use prometheus::local::{LocalHistogram, LocalIntCounter};
use std::fmt::Display;

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

/// An invalid record was written to the dead-letter topic. Its log line is rate
/// limited by the caller: `suppressed` is `Some(lines left out since the last)`
/// when this one is logged.
pub struct DeadLettered<'a> {
    /// The record's origin and reason.
    pub record: &'a DeadLetter<'a>,
    /// Whether to log, and how many lines were left out before this one.
    pub suppressed: Option<u64>,
}

impl DeadLettered<'_> {
    /// Counts the record and logs it when allowed.
    pub fn emit(&self, m: &Metrics) {
        m.dlq_records.inc();
        if let Some(suppressed) = self.suppressed {
            let dl = self.record;
            tracing::warn!(
                reason = dl.reason,
                error = dl.error,
                topic = dl.topic,
                partition = dl.partition,
                offset = dl.offset,
                suppressed,
                "invalid event sent to the dead-letter topic"
            );
        }
    }
}

/// A batch was committed with its offsets.
pub struct BatchCommitted;

impl BatchCommitted {
    /// Counts the commit.
    pub fn emit(&self, m: &Metrics) {
        m.transactions
            .with_label_values(&[BatchOutcome::Commit.as_str()])
            .inc();
    }
}

/// A batch was aborted: nothing of it is visible and it is read again.
pub struct BatchAborted<'a> {
    /// Why the transaction failed.
    pub reason: &'a dyn Display,
}

impl BatchAborted<'_> {
    /// Counts and logs the abort.
    pub fn emit(&self, m: &Metrics) {
        m.transactions
            .with_label_values(&[BatchOutcome::Abort.as_str()])
            .inc();
        tracing::warn!(reason = %self.reason, "batch aborted; re-reading it from the last commit");
    }
}

/// A new ruleset went live.
pub struct RulesReloaded<'a> {
    /// The ruleset now running.
    pub ruleset: &'a Ruleset,
}

impl RulesReloaded<'_> {
    /// Counts the reload, publishes the version and logs it.
    pub fn emit(&self, m: &Metrics) {
        let r = self.ruleset;
        m.rules_reloads.inc();
        m.set_rules_version(&r.version);
        tracing::info!(version = %r.version, rules = ?r.counts(), tests = r.tests_passed, "rules reloaded");
    }
}

/// A ruleset was rejected; the running one stays.
pub struct RulesRejected<'a> {
    /// Every problem found in the files.
    pub errors: &'a RulesError,
}

impl RulesRejected<'_> {
    /// Counts the rejection and logs each problem.
    pub fn emit(&self, m: &Metrics) {
        m.rules_reload_errors.inc();
        for err in &self.errors.0 {
            tracing::error!(error = %err, "rules rejected; the running ruleset stays");
        }
    }
}

/// A model went live.
pub struct ModelReloaded<'a> {
    /// Its version.
    pub version: &'a dyn Display,
}

impl ModelReloaded<'_> {
    /// Counts and logs the reload.
    pub fn emit(&self, m: &Metrics) {
        m.model_reloads.inc();
        tracing::info!(version = %self.version, "model reloaded");
    }
}

/// A model file was rejected; the running model stays.
pub struct ModelRejected<'a> {
    /// What is wrong with it.
    pub error: &'a dyn Display,
}

impl ModelRejected<'_> {
    /// Counts and logs the rejection.
    pub fn emit(&self, m: &Metrics) {
        m.model_reload_errors.inc();
        tracing::error!(error = %self.error, "model rejected; the running model stays");
    }
}

/// A partition's state was rebuilt from its input after an assignment.
pub struct StateRestored {
    /// The input partition.
    pub partition: i32,
    /// Input events applied.
    pub events: u64,
    /// Labels applied.
    pub labels: u64,
    /// Terminal-topic records applied.
    pub routed: u64,
    /// How long it took, seconds.
    pub seconds: f64,
}

impl StateRestored {
    /// Counts the events, observes the time and logs the restore.
    pub fn emit(&self, m: &Metrics) {
        m.state_restored_events.inc_by(self.events);
        m.state_restore_seconds.observe(self.seconds);
        tracing::info!(
            partition = self.partition,
            events = self.events,
            labels = self.labels,
            routed = self.routed,
            seconds = self.seconds,
            "state restored"
        );
    }
}

/// A Kafka error, by where it happened.
pub enum KafkaErrorEvent<'a> {
    /// Reported by the client, with librdkafka's reason.
    Client {
        /// The error.
        error: &'a dyn Display,
        /// librdkafka's reason text.
        reason: &'a str,
    },
    /// Returned by a poll of the consumer.
    Consume(&'a dyn Display),
    /// An assignment or revocation that could not be applied.
    Rebalance(&'a dyn Display),
    /// The checkpoints could not be read; the group's committed offsets are used.
    Checkpoint(&'a dyn Display),
    /// A partition's state could not be re-read; it continues with what was.
    Restore {
        /// The input partition.
        partition: i32,
        /// The error.
        error: &'a dyn Display,
    },
}

impl KafkaErrorEvent<'_> {
    /// The `kind` label.
    pub fn kind(&self) -> KafkaErrorKind {
        match self {
            Self::Client { .. } => KafkaErrorKind::Client,
            Self::Consume(_) => KafkaErrorKind::Consume,
            Self::Rebalance(_) => KafkaErrorKind::Rebalance,
            Self::Checkpoint(_) => KafkaErrorKind::Checkpoint,
            Self::Restore { .. } => KafkaErrorKind::Restore,
        }
    }

    /// Counts the error by kind and logs it.
    pub fn emit(&self, m: &Metrics) {
        m.kafka_errors
            .with_label_values(&[self.kind().as_str()])
            .inc();
        match *self {
            Self::Client { error, reason } => {
                tracing::warn!(error = %error, reason, "kafka client error")
            }
            Self::Consume(e) => tracing::warn!(error = %e, kind = "consume", "kafka error"),
            Self::Rebalance(e) => tracing::error!(error = %e, "rebalance failed"),
            Self::Checkpoint(e) => tracing::error!(
                error = %e,
                "cannot read checkpoints; resuming from the group's committed offsets"
            ),
            Self::Restore { partition, error } => tracing::error!(
                partition,
                error = %error,
                "state restore failed; the partition continues with the state re-read so far"
            ),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of every fixed label set is exported (at 0) before anything
    /// happened, so a dashboard or an alert on any series works from the start.
    #[test]
    fn every_label_value_of_every_counter_is_exported_at_start() {
        let m = Metrics::new();
        register(&m);
        let text = m.render();
        let mut labels: Vec<&str> = LabelOutcome::ALL.iter().map(|o| o.code()).collect();
        labels.extend(["invalid", "routed"]);
        let sets: [(&str, &str, Vec<&str>); 5] = [
            (
                "fraudstream_kafka_errors_total",
                "kind",
                KafkaErrorKind::ALL.map(KafkaErrorKind::as_str).to_vec(),
            ),
            (
                "fraudstream_transactions_total",
                "outcome",
                BatchOutcome::ALL.map(BatchOutcome::as_str).to_vec(),
            ),
            (
                "fraudstream_events_invalid_total",
                "reason",
                InvalidReason::ALL.iter().map(|r| r.code()).collect(),
            ),
            (
                "fraudstream_decisions_total",
                "action",
                Action::ALL.map(Action::as_str).to_vec(),
            ),
            ("fraudstream_labels_total", "outcome", labels),
        ];
        for (name, label, values) in sets {
            for v in values {
                let series = format!("{name}{{{label}=\"{v}\"}} 0\n");
                assert!(text.contains(&series), "{series} missing from\n{text}");
            }
        }
    }
}
