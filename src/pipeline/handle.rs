//! The hot path: one consumed message at a time, from the input, labels or
//! terminal topic, to the records it produces.

use super::partition::RoutedOutcome as Routed;
use super::terminal;
use super::Pipeline;
use crate::decision::{ModelInput, Outcome};
use crate::internal_events::DeadLettered;
use crate::sink::{DeadLetter, SinkError};
use crate::source::event::{InvalidEvent, InvalidReason};
use crate::source::kafka::{parse_label, LabelKind};
use rdkafka::message::{BorrowedMessage, Message};
use std::time::Instant;

impl Pipeline {
    /// Handles one message inside the open batch (opening one if needed).
    pub(super) fn handle(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), SinkError> {
        let read_at = Instant::now();
        if self.batch_events == 0 {
            self.batch_started = read_at;
        }
        self.sink.begin()?;
        self.batch_events += 1;
        let (partition, offset) = (msg.partition(), msg.offset());
        if msg.topic() == self.labels_topic {
            self.handle_label(msg);
            self.workers.get(partition).labels.advance(offset);
            return Ok(());
        }
        if self.workers.terminal_partitions.is_some() && msg.topic() == self.terminal_topic {
            self.handle_routed(msg, read_at);
            if let Some(t) = &mut self.workers.get(partition).terminal {
                t.track.advance(offset);
            }
            return Ok(());
        }
        self.stats.consumed += 1;
        self.hot.events_consumed.inc();
        let payload = msg.payload().unwrap_or(&[]);
        if self.passthrough {
            self.sink
                .send(&self.output_topic, msg.key().unwrap_or(&[]), payload);
            self.stats.decided += 1;
            self.batch_output.0 += 1;
            self.stats
                .hot_path_ns
                .record(read_at.elapsed().as_nanos() as u64);
        } else if self.api.is_some() && crate::api::is_api_record(msg) {
            // Decided by the API when it was written: only the state may lack it.
            let _ = self.workers.get(partition).restore(payload, &self.limits);
        } else if self.workers.terminal_partitions.is_some() {
            self.route(msg, read_at);
        } else {
            let worker = self.workers.get(partition);
            let decided = worker.decide(
                payload,
                &self.limits,
                &mut self.decider,
                read_at,
                &mut self.out,
            );
            match decided {
                Ok(None) => self.duplicate(),
                Ok(Some(outcome)) => {
                    self.out.input_ts_ms = msg.timestamp().to_millis();
                    self.decided(outcome, read_at);
                    self.remember_decision();
                }
                Err(invalid) => self.dead_letter(msg, &invalid),
            }
        }
        self.workers.get(partition).input.advance(offset);
        Ok(())
    }

    /// The account side of a repartitioned event: forward it to its terminal's owner.
    fn route(&mut self, msg: &BorrowedMessage<'_>, read_at: Instant) {
        let input_ts_ms = msg.timestamp().to_millis().unwrap_or(0);
        let worker = self.workers.get(msg.partition());
        let routed = worker.route(
            msg.payload().unwrap_or(&[]),
            &self.limits,
            input_ts_ms,
            &mut self.routed,
        );
        match routed {
            Ok(false) => self.duplicate(),
            Ok(true) => {
                let r = &self.routed;
                self.sink
                    .send_to_partition(&self.terminal_topic, r.partition, &r.key, &r.record);
                if r.early_label {
                    self.sink.send_to_partition(
                        &self.terminal_topic,
                        r.partition,
                        &r.key,
                        &r.label,
                    );
                }
                self.metrics.events_routed.inc();
                self.stats
                    .route_ns
                    .record(read_at.elapsed().as_nanos() as u64);
            }
            Err(invalid) => self.dead_letter(msg, &invalid),
        }
    }

    /// The terminal side: a routed event to decide, or a routed label to apply.
    fn handle_routed(&mut self, msg: &BorrowedMessage<'_>, read_at: Instant) {
        let worker = self.workers.get(msg.partition());
        let decided = worker.decide_routed(
            msg.payload().unwrap_or(&[]),
            &self.limits,
            &mut self.decider,
            read_at,
            &mut self.out,
        );
        match decided {
            Ok(Routed::Decided(outcome)) => self.decided(outcome, read_at),
            Ok(Routed::Label(outcome)) => self
                .metrics
                .labels
                .with_label_values(&[outcome.code()])
                .inc(),
            Err(invalid) => self.dead_letter(msg, &invalid),
        }
    }

    /// Produces the decision in `self.out` and counts it.
    pub(super) fn decided(&mut self, outcome: Outcome, read_at: Instant) {
        let out = &self.out;
        self.sink.send(&self.output_topic, &out.key, &out.decision);
        self.stats
            .hot_path_ns
            .record(read_at.elapsed().as_nanos() as u64);
        self.stats.decided += 1;
        self.batch_output.0 += 1;
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

    pub(super) fn duplicate(&mut self) {
        self.stats.duplicates += 1;
        self.metrics.events_duplicate.inc();
    }

    fn handle_label(&mut self, msg: &BorrowedMessage<'_>) {
        self.stats.labels += 1;
        let payload = msg.payload().unwrap_or(&[]);
        match parse_label(payload) {
            Ok(label) => {
                let fraud = label.label == LabelKind::Fraud;
                let (outcome, route) = self
                    .workers
                    .get(msg.partition())
                    .apply_label(&label.event_id, fraud);
                let name = match route {
                    Some(partition) => {
                        let key = msg.key().unwrap_or(&[]);
                        self.forward_label(partition, &label.event_id, fraud, key);
                        "routed"
                    }
                    None => outcome.code(),
                };
                self.metrics.labels.with_label_values(&[name]).inc();
            }
            Err(error) => {
                self.metrics.labels.with_label_values(&["invalid"]).inc();
                let invalid = InvalidEvent {
                    reason: InvalidReason::WrongType,
                    detail: format!("invalid label: {error}"),
                };
                self.dead_letter(msg, &invalid);
            }
        }
    }

    /// Sends a label to the terminal topic partition its event went to.
    fn forward_label(&mut self, partition: i32, event_id: &str, fraud: bool, key: &[u8]) {
        terminal::encode_label(event_id, fraud, &mut self.label_record);
        self.sink
            .send_to_partition(&self.terminal_topic, partition, key, &self.label_record);
    }

    pub(super) fn dead_letter(&mut self, msg: &BorrowedMessage<'_>, invalid: &InvalidEvent) {
        let dl = DeadLetter {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            reason: invalid.reason.code(),
            error: &invalid.detail,
        };
        self.sink.send_dead_letter(
            &self.dlq_topic,
            msg.key(),
            msg.payload().unwrap_or(&[]),
            &dl,
        );
        self.stats.invalid += 1;
        self.batch_output.1 += 1;
        self.by_reason[invalid.reason.index()].inc();
        DeadLettered {
            record: &dl,
            suppressed: self.dlq_log.allow(),
        }
        .emit(&self.metrics);
    }
}
