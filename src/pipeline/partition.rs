//! One input partition's worker: its entity state and its offset bookkeeping.

use super::checkpoint::Checkpoint;
use super::offsets::OffsetTrack;
use super::terminal::{self, RoutedRecord, TerminalSide};
use crate::decision::{Decider, Outcome};
use crate::features::{EngineLimits, EventView, FeatureEngine, FeatureSet, LabelOutcome, Scope};
use crate::source::event::{parse_event, InvalidEvent, Limits};
use crate::source::time::now_ms;
use crate::state::{key_hash, RecentIds};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The worker that owns partition `p` of the input topic (and of the labels topic).
pub struct PartitionWorker {
    /// Entity state and features for the keys of this partition.
    pub engine: FeatureEngine,
    /// Input topic offsets.
    pub input: OffsetTrack,
    /// Labels topic offsets.
    pub labels: OffsetTrack,
    /// The terminal side, when terminal features are repartitioned; `engine` then
    /// keeps only what is not keyed by the terminal.
    pub terminal: Option<TerminalSide>,
    /// Ids of the latest events, to skip an event delivered twice.
    recent: RecentIds,
    /// Feature output of events replayed into the state, discarded.
    scratch: Vec<f64>,
}

impl PartitionWorker {
    /// A worker with empty state that remembers the last `dedup_window` event ids.
    /// With `terminal_partitions`, terminal features are repartitioned over that many
    /// terminal topic partitions ([`super::terminal`]).
    pub fn new(
        set: Arc<FeatureSet>,
        limits: EngineLimits,
        dedup_window: usize,
        terminal_partitions: Option<i32>,
    ) -> Self {
        let scope = match terminal_partitions {
            Some(_) => Scope::ByAccount,
            None => Scope::All,
        };
        Self {
            scratch: vec![0.0; set.len()],
            terminal: terminal_partitions.map(|n| TerminalSide::new(set.clone(), limits, n)),
            engine: FeatureEngine::scoped(set, limits, scope),
            input: OffsetTrack::default(),
            labels: OffsetTrack::default(),
            recent: RecentIds::new(dedup_window),
        }
    }

    /// Whether anything was read since the last commit.
    pub fn dirty(&self) -> bool {
        self.input.dirty()
            || self.labels.dirty()
            || self.terminal.as_ref().is_some_and(|t| t.track.dirty())
    }

    /// Where reading resumes after what was read so far.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            version: Checkpoint::VERSION,
            input_offset: self.input.next,
            labels_offset: self.labels.next,
            terminal_offset: self.terminal.as_ref().and_then(|t| t.track.next),
        }
    }

    /// Marks what was read up to `cp` (a [`PartitionWorker::checkpoint`] taken
    /// earlier) as committed; what was read since stays pending.
    pub fn mark_committed(&mut self, cp: &Checkpoint) {
        self.input.mark_committed(cp.input_offset);
        self.labels.mark_committed(cp.labels_offset);
        if let Some(t) = &mut self.terminal {
            t.track.mark_committed(cp.terminal_offset);
        }
    }

    /// Starts the offset bookkeeping at `cp` (where this partition resumes), so a
    /// checkpoint written before a topic is read again still carries its offset
    /// rather than none (which would resume that topic from its beginning).
    pub fn resume_at(&mut self, cp: &Checkpoint) {
        let at = |offset: Option<i64>| OffsetTrack {
            next: offset,
            committed: offset,
        };
        self.input = at(cp.input_offset);
        self.labels = at(cp.labels_offset);
        if let Some(t) = &mut self.terminal {
            t.track = at(cp.terminal_offset);
        }
    }

    /// Forgets uncommitted progress; returns where reading must resume.
    pub fn rewind(&mut self) -> Checkpoint {
        Checkpoint {
            version: Checkpoint::VERSION,
            input_offset: self.input.rewind(),
            labels_offset: self.labels.rewind(),
            terminal_offset: self.terminal.as_mut().and_then(|t| t.track.rewind()),
        }
    }

    /// Replays one already-decided input payload into the state (state restore):
    /// the same parsing, duplicate check and update as [`PartitionWorker::decide`],
    /// without deciding. Returns whether it changed the state.
    pub fn restore(&mut self, payload: &[u8], limits: &Limits) -> bool {
        let Ok(ev) = parse_event(payload, limits) else {
            return false;
        };
        let id = key_hash(0, ev.event_id.as_bytes());
        if !self.recent.insert(id) {
            return false;
        }
        self.engine.update(&EventView::of(&ev), &mut self.scratch);
        if let Some(t) = &mut self.terminal {
            t.remember_route(
                id,
                ev.ts.0,
                terminal::partition_of(&ev.terminal_id, t.partitions),
            );
        }
        true
    }

    /// Applies a label (or a correction) to this partition's state. When terminal
    /// features are repartitioned, also returns the terminal topic partition its
    /// event went to, where the label must follow (during restore the caller
    /// ignores it: it was forwarded the first time), and the outcome is the
    /// routing's when it goes nowhere.
    pub fn apply_label(&mut self, event_id: &str, fraud: bool) -> (LabelOutcome, Option<i32>) {
        let outcome = self.engine.apply_label(event_id, fraud);
        match &mut self.terminal {
            None => (outcome, None),
            Some(t) => match t.route_label(key_hash(0, event_id.as_bytes()), fraud) {
                Ok(partition) => (outcome, Some(partition)),
                Err(why) => (why, None),
            },
        }
    }

    /// Replays one terminal topic record into the terminal side's state (restore).
    pub fn restore_routed(&mut self, record: &[u8], limits: &Limits) -> bool {
        let Some(t) = &mut self.terminal else {
            return false;
        };
        match RoutedRecord::decode(record, self.scratch.len()) {
            Ok(RoutedRecord::Event { payload, .. }) => match parse_event(payload, limits) {
                Ok(ev) => {
                    t.engine.update(&EventView::of(&ev), &mut self.scratch);
                    true
                }
                Err(_) => false,
            },
            Ok(RoutedRecord::Label { fraud, event_id }) => {
                t.engine.apply_label(event_id, fraud);
                true
            }
            Err(_) => false,
        }
    }
}

/// Reusable buffers the hot path writes one decision into.
#[derive(Debug, Default)]
pub struct Encoded {
    /// Kafka key of the decision (the account id).
    pub key: Vec<u8>,
    /// The decision, JSON.
    pub decision: Vec<u8>,
    /// Wall clock when it was decided, epoch ms.
    pub decided_at_ms: i64,
    /// From reading the event to deciding it.
    pub latency: Duration,
    /// When the event was written to the input topic, epoch ms, if known.
    pub input_ts_ms: Option<i64>,
    /// `key_hash` of the event id ([`PartitionWorker::decide`] only).
    pub id: u64,
}

/// What the terminal side did with a terminal topic record.
#[derive(Debug, Clone, Copy)]
pub enum RoutedOutcome {
    /// Decided the event; the decision is in [`Encoded`].
    Decided(Outcome),
    /// Applied a label to the terminal's state.
    Label(LabelOutcome),
}

/// Reusable buffers the account side of a repartitioned event writes into.
#[derive(Debug, Default)]
pub struct Routed {
    /// Terminal topic partition.
    pub partition: i32,
    /// Kafka key (the terminal id).
    pub key: Vec<u8>,
    /// The encoded record ([`terminal::encode_event`]).
    pub record: Vec<u8>,
    /// Whether a label arrived before this event: it follows the event, encoded in `label`.
    pub early_label: bool,
    /// The early label's record ([`terminal::encode_label`]).
    pub label: Vec<u8>,
}

impl PartitionWorker {
    /// The hot path for one input payload, up to the producer: parse and validate,
    /// skip it if its id was seen recently (`Ok(None)`), update this partition's
    /// state, extract features, decide, and encode the decision into `out`.
    /// `read_at` is when the event was read.
    pub fn decide(
        &mut self,
        payload: &[u8],
        limits: &Limits,
        decider: &mut Decider,
        read_at: Instant,
        out: &mut Encoded,
    ) -> Result<Option<Outcome>, InvalidEvent> {
        let ev = parse_event(payload, limits)?;
        out.id = key_hash(0, ev.event_id.as_bytes());
        if !self.recent.insert(out.id) {
            return Ok(None);
        }
        let view = EventView::of(&ev);
        self.engine.update(&view, decider.features_mut());
        out.input_ts_ms = None;
        Ok(Some(Self::decide_event(&view, decider, read_at, out)))
    }

    /// Decides `subject`, whose features are in the decider, and encodes the decision.
    fn decide_event(
        subject: &EventView<'_>,
        decider: &mut Decider,
        read_at: Instant,
        out: &mut Encoded,
    ) -> Outcome {
        out.decided_at_ms = now_ms();
        out.latency = read_at.elapsed();
        let outcome = decider.decide(
            subject,
            out.decided_at_ms,
            out.latency.as_micros() as u64,
            &mut out.decision,
        );
        out.key.clear();
        out.key.extend_from_slice(subject.account.as_bytes());
        outcome
    }

    /// The account side of a repartitioned event: parse and validate, skip a
    /// duplicate (`Ok(false)`), update the state not keyed by the terminal and
    /// encode the event with those features for its terminal's partition into `out`.
    pub fn route(
        &mut self,
        payload: &[u8],
        limits: &Limits,
        input_ts_ms: i64,
        out: &mut Routed,
    ) -> Result<bool, InvalidEvent> {
        let ev = parse_event(payload, limits)?;
        let id = key_hash(0, ev.event_id.as_bytes());
        if !self.recent.insert(id) {
            return Ok(false);
        }
        self.engine.update(&EventView::of(&ev), &mut self.scratch);
        let Some(t) = &mut self.terminal else {
            unreachable!("route is only called with terminal features repartitioned")
        };
        out.partition = terminal::partition_of(&ev.terminal_id, t.partitions);
        let early = t.remember_route(id, ev.ts.0, out.partition);
        out.early_label = early.is_some();
        if let Some(fraud) = early {
            terminal::encode_label(&ev.event_id, fraud, &mut out.label);
        }
        out.key.clear();
        out.key.extend_from_slice(ev.terminal_id.as_bytes());
        terminal::encode_event(input_ts_ms, &self.scratch, payload, &mut out.record);
        Ok(true)
    }

    /// The terminal side of a repartitioned event: update the terminal's state,
    /// complete the features the account side computed, decide and encode the
    /// decision into `out`; or apply a routed label.
    pub fn decide_routed(
        &mut self,
        record: &[u8],
        limits: &Limits,
        decider: &mut Decider,
        read_at: Instant,
        out: &mut Encoded,
    ) -> Result<RoutedOutcome, InvalidEvent> {
        let invalid = |detail: String| InvalidEvent {
            reason: crate::source::event::InvalidReason::WrongType,
            detail,
        };
        let Some(t) = &mut self.terminal else {
            return Err(invalid(
                "terminal topic record, but terminal features are not repartitioned".into(),
            ));
        };
        let (input_ts_ms, features, payload) =
            match RoutedRecord::decode(record, self.scratch.len()) {
                Ok(RoutedRecord::Event {
                    input_ts_ms,
                    features,
                    payload,
                }) => (input_ts_ms, features, payload),
                Ok(RoutedRecord::Label { fraud, event_id }) => {
                    return Ok(RoutedOutcome::Label(t.engine.apply_label(event_id, fraud)));
                }
                Err(e) => return Err(invalid(e)),
            };
        let ev = parse_event(payload, limits)?;
        RoutedRecord::read_features(features, decider.features_mut());
        let view = EventView::of(&ev);
        t.engine.update(&view, decider.features_mut());
        out.input_ts_ms = Some(input_ts_ms);
        Ok(RoutedOutcome::Decided(Self::decide_event(
            &view, decider, read_at, out,
        )))
    }
}
