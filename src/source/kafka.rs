//! The Kafka side of the source: consumer settings and the label message contract.

use crate::config::client_config;
use crate::config::Config;
use rdkafka::config::ClientConfig;
use serde::Deserialize;
use std::borrow::Cow;

/// Consumer settings: manual offset handling, `read_committed`, and the range
/// assignor so the input and labels topics (same partition count, both keyed by
/// account) are co-partitioned on each instance.
pub fn consumer_config(config: &Config) -> ClientConfig {
    let mut c = client_config(config);
    c.set("group.id", &config.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("partition.assignment.strategy", "range")
        .set("statistics.interval.ms", "5000")
        // Kafka's default: a broker outage shorter than this keeps the assignment
        // (no rebalance, no state restore); a crashed instance's partitions move
        // after it.
        .set("session.timeout.ms", "45000");
    for (k, v) in &config.kafka.consumer {
        c.set(k, v);
    }
    c
}

/// A fraud label on the labels topic (keyed by account id, like the payment).
#[derive(Debug, Deserialize)]
pub struct LabelMessage<'a> {
    /// The labelled payment's `event_id`.
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    /// The verdict.
    pub label: LabelKind,
    /// When the label was decided (informational).
    #[serde(default)]
    pub ts: Option<super::time::EventTime>,
}

/// Verdict of a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    /// Confirmed fraud (chargeback, analyst verdict).
    Fraud,
    /// Confirmed legitimate.
    Legit,
}

/// Parses a label message.
pub fn parse_label(payload: &[u8]) -> Result<LabelMessage<'_>, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "label is not UTF-8".to_string())?;
    serde_json::from_str(text).map_err(|e| crate::source::event::redact_pans(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse() {
        let l = parse_label(br#"{"event_id":"e1","label":"fraud","ts":"2024-01-01T00:00:00Z"}"#)
            .unwrap();
        assert_eq!((l.event_id.as_ref(), l.label), ("e1", LabelKind::Fraud));
        assert!(parse_label(br#"{"event_id":"e1","label":"maybe"}"#).is_err());
    }
}
