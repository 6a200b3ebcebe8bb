//! The hot path: one consumed message at a time, from the input, labels or
//! terminal topic, to the records it produces.

use super::partition::RoutedOutcome as Routed;
use super::Pipeline;
use crate::sink::{DeadLetter, SinkError};
use crate::source::event::{InvalidEvent, InvalidReason};
use crate::source::kafka::{parse_label, LabelKind};
use rdkafka::message::{BorrowedMessage, Message};
use std::time::Instant;

impl Pipeline {
    /// Handles one message inside the open batch (opening one if needed).
    pub(super) fn handle(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), SinkError> {
        let read_at = Instant::now();
        self.batch.open(read_at)?;
        let (partition, offset) = (msg.partition(), msg.offset());
        let topics = &self.output.topics;
        if msg.topic() == topics.labels {
            self.handle_label(msg);
            self.workers.get(partition).labels.advance(offset);
            return Ok(());
        }
        if self.workers.terminal_partitions.is_some() && msg.topic() == topics.terminal {
            self.handle_routed(msg, read_at);
            if let Some(t) = &mut self.workers.get(partition).terminal {
                t.track.advance(offset);
            }
            return Ok(());
        }
        self.stats.consumed += 1;
        self.output.hot.events_consumed.inc();
        let payload = msg.payload().unwrap_or(&[]);
        if self.passthrough {
            let (mut sink, tally) = self.batch.output();
            let key = msg.key().unwrap_or(&[]);
            self.output
                .passthrough(&mut sink, tally, key, payload, read_at);
        } else if let Some(record) = crate::api::api_record(msg) {
            self.handle_api_record(msg, record);
        } else if self.workers.terminal_partitions.is_some() {
            self.route(msg, read_at);
        } else {
            let worker = self.workers.get(partition);
            let out = &mut self.output.out;
            match worker.decide(payload, &self.limits, &mut self.decider, read_at, out) {
                Ok(None) => self.duplicate(),
                Ok(Some(outcome)) => {
                    self.output.out.input_ts_ms = msg.timestamp().to_millis();
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
        let payload = msg.payload().unwrap_or(&[]);
        match worker.route(payload, &self.limits, input_ts_ms, &mut self.output.routed) {
            Ok(false) => self.duplicate(),
            Ok(true) => self.output.routed(&mut self.batch.output().0, read_at),
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
            &mut self.output.out,
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

    /// Produces the decision in `self.output.out` and counts it.
    fn decided(&mut self, outcome: crate::decision::Outcome, read_at: Instant) {
        let (mut sink, tally) = self.batch.output();
        self.output.decision(&mut sink, tally, outcome, read_at);
    }

    pub(super) fn duplicate(&mut self) {
        self.stats.duplicates += 1;
        self.output.duplicate();
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
                        let mut sink = self.batch.output().0;
                        self.output.forward_label(
                            &mut sink,
                            partition,
                            &label.event_id,
                            fraud,
                            key,
                        );
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

    pub(super) fn dead_letter(&mut self, msg: &BorrowedMessage<'_>, invalid: &InvalidEvent) {
        let dl = DeadLetter {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            reason: invalid.reason.code(),
            error: &invalid.detail,
        };
        let payload = msg.payload().unwrap_or(&[]);
        let (mut sink, tally) = self.batch.output();
        self.output
            .dead_letter(&mut sink, tally, msg.key(), payload, &dl, invalid.reason);
    }
}
