//! Output routing: where the records an input produces go (decisions, dead
//! letters, terminal topic records, the decision API's records) and what they
//! count, through the open transaction's [`crate::sink::Sink`] (or parked
//! while a commit runs).

use super::parked::{Out, Produce};
use super::partition::{Encoded, Routed};
use super::terminal;
use crate::config::Config;
use crate::decision::{ModelInput, Outcome};
use crate::ops::internal_events::{DeadLettered, HotPathMetrics};
use crate::ops::latency::LatencyHistogram;
use crate::ops::metrics::Metrics;
use crate::sink::DeadLetter;
use crate::source::event::{InvalidEvent, InvalidReason};
use axum::body::Bytes;
use prometheus::IntCounter;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The topics the pipeline reads and writes (an empty name: not in use).
pub(super) struct Topics {
    pub input: String,
    pub labels: String,
    pub output: String,
    pub dlq: String,
    pub checkpoint: String,
    pub terminal: String,
}

impl Topics {
    pub fn from_config(config: &Config) -> Self {
        let k = &config.kafka;
        Self {
            input: k.input_topic.clone(),
            labels: k.labels_topic.clone(),
            output: k.output_topic.clone(),
            dlq: k.dlq_topic.clone(),
            checkpoint: k.checkpoint_topic.clone(),
            terminal: k.terminal_topic.clone(),
        }
    }
}

/// Decisions and dead letters produced into a batch: added to the run's totals
/// when it commits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    pub decided: u64,
    pub invalid: u64,
}

/// Where the dead letters of calls say they came from.
const CALL_SOURCE: &str = "POST /v1/decisions";

/// The records of one decision API call, produced now or parked until the next
/// transaction begins ([`super::batch`]).
#[derive(Debug)]
pub(super) enum CallRecords {
    /// A decided call: its event, on the input topic partition of its account
    /// (marked [`crate::api::RECORD_HEADER`]), and its decision.
    Decided {
        partition: i32,
        key: Vec<u8>,
        payload: Bytes,
        decision: Vec<u8>,
    },
    /// A call answered with the deadline's fallback whose partition this
    /// instance cannot record it on (not assigned here, or stopping): its event
    /// on the input topic partition of its account, carrying the fallback
    /// ([`crate::api::FALLBACK_HEADER`]) for the partition's owner to record.
    Fallback {
        partition: i32,
        key: Vec<u8>,
        payload: Bytes,
        decision: Vec<u8>,
    },
    /// An invalid payment: its dead letter.
    DeadLetter {
        payload: Bytes,
        reason: &'static str,
        error: String,
    },
}

impl CallRecords {
    /// Queues the records in `sink`'s open transaction.
    pub fn produce(&self, sink: &mut Out<'_>, topics: &Topics) {
        match self {
            Self::Decided {
                partition,
                key,
                payload,
                decision,
            } => {
                sink.send(&topics.output, key, decision);
                let marker = (crate::api::RECORD_HEADER, &b"1"[..]);
                sink.send_with_header(&topics.input, *partition, key, payload, marker);
            }
            Self::Fallback {
                partition,
                key,
                payload,
                decision,
            } => {
                let marker = (crate::api::FALLBACK_HEADER, &decision[..]);
                sink.send_with_header(&topics.input, *partition, key, payload, marker);
            }
            Self::DeadLetter {
                payload,
                reason,
                error,
            } => {
                let dl = DeadLetter {
                    topic: CALL_SOURCE,
                    partition: -1,
                    offset: -1,
                    reason,
                    error,
                };
                sink.send_dead_letter(&topics.dlq, None, payload, &dl);
            }
        }
    }
}

/// The routing step: topics, the hot path's reusable output buffers and the
/// per-event counters.
pub(super) struct Output {
    pub topics: Topics,
    /// The decision being produced.
    pub out: Encoded,
    /// The terminal topic record being produced.
    pub routed: Routed,
    label_record: Vec<u8>,
    /// Per-event metrics, flushed with each commit and publish.
    pub hot: HotPathMetrics,
    by_reason: Vec<IntCounter>,
    dlq_log: RateLimitedLog,
    metrics: Arc<Metrics>,
    /// Nanoseconds from reading each valid event to handing its output to the producer.
    pub hot_path_ns: LatencyHistogram,
    /// Nanoseconds from reading each repartitioned event to handing it to the
    /// producer for its terminal's owner.
    pub route_ns: LatencyHistogram,
}

impl Output {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        Self {
            topics: Topics::from_config(config),
            out: Encoded::default(),
            routed: Routed::default(),
            label_record: Vec::new(),
            hot: HotPathMetrics::new(&metrics),
            by_reason: InvalidReason::ALL
                .iter()
                .map(|r| metrics.events_invalid.with_label_values(&[r.code()]))
                .collect(),
            dlq_log: RateLimitedLog::default(),
            metrics,
            hot_path_ns: LatencyHistogram::default(),
            route_ns: LatencyHistogram::default(),
        }
    }

    /// Produces the decision in `self.out` and counts it.
    pub fn decision(
        &mut self,
        sink: &mut Out<'_>,
        tally: &mut Tally,
        outcome: Outcome,
        read_at: Instant,
    ) {
        sink.send(&self.topics.output, &self.out.key, &self.out.decision);
        self.count_decision(tally, outcome, read_at);
    }

    /// Counts the decision in `self.out` (produced by the caller).
    pub fn count_decision(&mut self, tally: &mut Tally, outcome: Outcome, read_at: Instant) {
        let out = &self.out;
        self.hot_path_ns.record(read_at.elapsed().as_nanos() as u64);
        tally.decided += 1;
        self.hot.events_decided.inc();
        self.hot.decisions[outcome.action as usize].inc();
        self.hot.score.observe(outcome.score);
        match outcome.model {
            ModelInput::Score(s) => self.hot.model_score.observe(s),
            ModelInput::Unavailable => self.metrics.model_unavailable.inc(),
            ModelInput::NotConfigured => {}
        }
        self.hot.hot_path_seconds.observe(out.latency.as_secs_f64());
        if let Some(produced_ms) = out.input_ts_ms {
            let e2e = (out.decided_at_ms - produced_ms).max(0) as f64 / 1000.0;
            self.hot.end_to_end_seconds.observe(e2e);
        }
    }

    /// Forwards an input record unchanged (passthrough mode).
    pub fn passthrough(
        &mut self,
        sink: &mut Out<'_>,
        tally: &mut Tally,
        key: &[u8],
        payload: &[u8],
        read_at: Instant,
    ) {
        sink.send(&self.topics.output, key, payload);
        tally.decided += 1;
        self.hot_path_ns.record(read_at.elapsed().as_nanos() as u64);
    }

    /// Produces the routed event in `self.routed` (and the label that arrived
    /// before it) to its terminal's partition.
    pub fn routed(&mut self, sink: &mut Out<'_>, read_at: Instant) {
        let r = &self.routed;
        sink.send_to_partition(&self.topics.terminal, r.partition, &r.key, &r.record);
        if r.early_label {
            sink.send_to_partition(&self.topics.terminal, r.partition, &r.key, &r.label);
        }
        self.metrics.events_routed.inc();
        self.route_ns.record(read_at.elapsed().as_nanos() as u64);
    }

    /// Sends a label to the terminal topic partition its event went to.
    pub fn forward_label(
        &mut self,
        sink: &mut Out<'_>,
        partition: i32,
        event_id: &str,
        fraud: bool,
        key: &[u8],
    ) {
        terminal::encode_label(event_id, fraud, &mut self.label_record);
        sink.send_to_partition(&self.topics.terminal, partition, key, &self.label_record);
    }

    /// Dead-letters an input record (`dl` says where it came from) and counts it.
    pub fn dead_letter(
        &mut self,
        sink: &mut Out<'_>,
        tally: &mut Tally,
        key: Option<&[u8]>,
        payload: &[u8],
        dl: &DeadLetter<'_>,
        reason: InvalidReason,
    ) {
        sink.send_dead_letter(&self.topics.dlq, key, payload, dl);
        self.count_dead_letter(tally, reason);
        DeadLettered {
            record: dl,
            suppressed: self.dlq_log.allow(),
        }
        .emit(&self.metrics);
    }

    /// The dead letter of an invalid call, and its count.
    pub fn call_dead_letter(
        &mut self,
        tally: &mut Tally,
        payload: Bytes,
        invalid: &InvalidEvent,
    ) -> CallRecords {
        self.count_dead_letter(tally, invalid.reason);
        self.metrics.dlq_records.inc();
        CallRecords::DeadLetter {
            payload,
            reason: invalid.reason.code(),
            error: invalid.detail.clone(),
        }
    }

    fn count_dead_letter(&mut self, tally: &mut Tally, reason: InvalidReason) {
        tally.invalid += 1;
        self.by_reason[reason.index()].inc();
    }

    /// A duplicate skipped.
    pub fn duplicate(&self) {
        self.metrics.events_duplicate.inc();
    }
}

/// Lets one log line through per second and counts the ones held back.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    /// `Some(suppressed since the last line)` when a line may be logged now.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < Duration::from_secs(1) => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}
