//! Terminal features across partitions and instances: the repartition topic.
//!
//! The input is partitioned by account, so a partition sees only some of a
//! terminal's payments. With `kafka.terminal_topic` set, each event is processed
//! in two steps, as Kafka Streams does for a join on another key:
//!
//! 1. the owner of the account's input partition updates everything not keyed by
//!    the terminal ([`Scope::ByAccount`]) and writes the event, with those
//!    features, to the terminal topic partition of its terminal;
//! 2. the owner of that partition updates the terminal's state
//!    ([`Scope::ByTerminal`]), completes the features and decides.
//!
//! Labels take the same route: the account side remembers where each event went
//! and forwards its label there. Both steps are exactly-once (the records and the
//! input offsets commit in one transaction; the second step reads
//! `read_committed`), and the terminal topic is the terminal side's changelog for
//! state restore. The cost: a decision waits for one more commit (about
//! `commit_interval_ms`), and every event crosses the broker twice.
//!
//! [`Scope::ByAccount`]: crate::features::Scope::ByAccount
//! [`Scope::ByTerminal`]: crate::features::Scope::ByTerminal

use super::offsets::OffsetTrack;
use crate::features::{
    EngineLimits, FeatureEngine, FeatureSet, LabelJoin, LabelOutcome, Relabel, Scope,
};
use crate::state::key_hash;
use std::sync::Arc;

/// Tag of a routed event record.
const EVENT: u8 = b'E';
/// Tag of a routed label record.
const LABEL: u8 = b'L';
/// Bytes before an event record's features: tag, input timestamp, feature count.
const EVENT_HEADER: usize = 1 + 8 + 2;

/// The terminal topic partition of `terminal` among `partitions`.
pub fn partition_of(terminal: &str, partitions: i32) -> i32 {
    (key_hash(0x7e2d, terminal.as_bytes()) % partitions.max(1) as u64) as i32
}

/// A decoded terminal topic record.
#[derive(Debug, PartialEq)]
pub enum RoutedRecord<'a> {
    /// An event and the features its account side computed.
    Event {
        /// When the event was written to the input topic, epoch ms (for end-to-end latency).
        input_ts_ms: i64,
        /// Little-endian f64 features, one per feature of the set.
        features: &'a [u8],
        /// The original input payload.
        payload: &'a [u8],
    },
    /// A label for an event routed earlier.
    Label {
        /// Whether it was fraud.
        fraud: bool,
        /// The event's id.
        event_id: &'a str,
    },
}

impl<'a> RoutedRecord<'a> {
    /// Decodes a record; `n_features` is the running feature set's size.
    pub fn decode(record: &'a [u8], n_features: usize) -> Result<Self, String> {
        match record.first() {
            Some(&EVENT) => {
                if record.len() < EVENT_HEADER {
                    return Err("truncated routed event".into());
                }
                let input_ts_ms = i64::from_le_bytes(record[1..9].try_into().unwrap_or_default());
                let n = u16::from_le_bytes([record[9], record[10]]) as usize;
                if n != n_features {
                    return Err(format!(
                        "routed event has {n} features; this feature set has {n_features}"
                    ));
                }
                let end = EVENT_HEADER + 8 * n;
                if record.len() < end {
                    return Err("truncated routed event".into());
                }
                Ok(Self::Event {
                    input_ts_ms,
                    features: &record[EVENT_HEADER..end],
                    payload: &record[end..],
                })
            }
            Some(&LABEL) if record.len() >= 2 => Ok(Self::Label {
                fraud: record[1] != 0,
                event_id: std::str::from_utf8(&record[2..]).map_err(|e| e.to_string())?,
            }),
            _ => Err("not a routed event or label".into()),
        }
    }

    /// Copies an event record's features into `out`.
    pub fn read_features(features: &[u8], out: &mut [f64]) {
        for (o, b) in out.iter_mut().zip(features.chunks_exact(8)) {
            *o = f64::from_le_bytes(b.try_into().unwrap_or_default());
        }
    }
}

/// Encodes a routed event into `out` (cleared first).
pub fn encode_event(input_ts_ms: i64, features: &[f64], payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(EVENT);
    out.extend_from_slice(&input_ts_ms.to_le_bytes());
    out.extend_from_slice(&(features.len() as u16).to_le_bytes());
    for f in features {
        out.extend_from_slice(&f.to_le_bytes());
    }
    out.extend_from_slice(payload);
}

/// Encodes a routed label into `out` (cleared first).
pub fn encode_label(event_id: &str, fraud: bool, out: &mut Vec<u8>) {
    out.clear();
    out.push(LABEL);
    out.push(u8::from(fraud));
    out.extend_from_slice(event_id.as_bytes());
}

/// A partition worker's part in the repartitioned path: where its account side sent
/// each event, and the terminal side of the same-numbered terminal topic partition.
pub struct TerminalSide {
    /// State of the terminals routed to this partition.
    pub engine: FeatureEngine,
    /// Terminal topic offsets.
    pub track: OffsetTrack,
    /// Partitions of the terminal topic.
    pub partitions: i32,
    /// Event id -> terminal topic partition (+1) of this partition's recent events,
    /// with their latest label, so their labels (and corrections) can follow them.
    routes: LabelJoin,
}

impl TerminalSide {
    /// An empty terminal side over `partitions` terminal topic partitions.
    pub fn new(set: Arc<FeatureSet>, limits: EngineLimits, partitions: i32) -> Self {
        Self {
            engine: FeatureEngine::scoped(set, limits, Scope::ByTerminal),
            track: OffsetTrack::default(),
            partitions,
            routes: LabelJoin::new(limits.max_pending_labels, 1),
        }
    }

    /// Records that event `id` (time `ts_ms`) went to `partition`; returns the label
    /// that arrived before it, if any, to forward now.
    pub fn remember_route(&mut self, id: u64, ts_ms: i64, partition: i32) -> Option<bool> {
        let ts_s = ts_ms.div_euclid(1000).clamp(0, i64::from(u32::MAX)) as u32;
        self.routes
            .remember(id, ts_s, std::iter::once((partition as u64 + 1, 0)));
        let early = self.routes.take_early(id)?;
        // Known from now on, so that only a different label follows it.
        self.routes.relabel(id, early);
        Some(early)
    }

    /// Where the label of event `id` must go (a first label or a correction), or
    /// why it goes nowhere: the same label as before ([`LabelOutcome::Repeated`]),
    /// the event not seen yet (`Parked`: it waits, bounded), or no longer
    /// remembered (`Unknown`).
    pub fn route_label(&mut self, id: u64, fraud: bool) -> Result<i32, LabelOutcome> {
        match self.routes.relabel(id, fraud) {
            Relabel::Found(_, _, Some(before)) if before == fraud => Err(LabelOutcome::Repeated),
            Relabel::Found(_, (keys, _), _) => Ok(keys[0] as i32 - 1),
            Relabel::Forgotten => Err(LabelOutcome::Unknown),
            Relabel::NotSeen => {
                self.routes.park(id, fraud);
                Err(LabelOutcome::Parked)
            }
        }
    }

    /// Approximate bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.engine.memory_bytes() + self.routes.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_round_trip(ts in any::<i64>(), feats in proptest::collection::vec(any::<f64>(), 0..40),
                              payload in proptest::collection::vec(any::<u8>(), 0..200),
                              id in "[a-z0-9-]{0,40}", fraud in any::<bool>()) {
            let mut buf = Vec::new();
            encode_event(ts, &feats, &payload, &mut buf);
            let RoutedRecord::Event { input_ts_ms, features, payload: p } = RoutedRecord::decode(&buf, feats.len()).unwrap() else {
                panic!("not an event")
            };
            prop_assert_eq!(input_ts_ms, ts);
            prop_assert_eq!(p, &payload[..]);
            let mut back = vec![0.0; feats.len()];
            RoutedRecord::read_features(features, &mut back);
            prop_assert!(back.iter().zip(&feats).all(|(a, b)| a.to_bits() == b.to_bits()));
            prop_assert!(RoutedRecord::decode(&buf, feats.len() + 1).is_err());
            prop_assert!(RoutedRecord::decode(&buf[..buf.len().min(EVENT_HEADER + 8 * feats.len()).saturating_sub(1)], feats.len()).is_err());
            encode_label(&id, fraud, &mut buf);
            prop_assert_eq!(RoutedRecord::decode(&buf, 3).unwrap(), RoutedRecord::Label { fraud, event_id: &id });
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = RoutedRecord::decode(&bytes, 2);
        }
    }

    #[test]
    fn labels_follow_their_event_whichever_comes_first() {
        let set = Arc::new(crate::features::load_feature_set("default").unwrap());
        let mut side = TerminalSide::new(set, EngineLimits::default(), 4);
        assert_eq!(side.remember_route(1, 0, 3), None);
        assert_eq!(side.route_label(1, false), Ok(3));
        // A correction follows the first label; a repeat stays here.
        assert_eq!(side.route_label(1, true), Ok(3));
        assert_eq!(side.route_label(1, true), Err(LabelOutcome::Repeated));
        // A label before its event waits, then goes out with the event.
        assert_eq!(side.route_label(2, true), Err(LabelOutcome::Parked));
        assert_eq!(side.remember_route(2, 0, 0), Some(true));
        assert_eq!(side.route_label(2, true), Err(LabelOutcome::Repeated));
        let spread: std::collections::HashSet<i32> = (0..200)
            .map(|i| partition_of(&format!("t{i}"), 4))
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
