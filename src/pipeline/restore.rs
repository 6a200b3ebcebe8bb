//! Rebuilding a partition's state: the input topic is its changelog.
//!
//! Everything the state holds was derived from input events (and labels) up to
//! the partition's checkpoint, in offset order. So on assignment, and after an
//! aborted batch, the worker re-reads the input partition from its oldest
//! retained record up to the checkpoint, through the same parsing, duplicate
//! check and state update as live, without deciding or producing anything; then
//! the labels partition up to its checkpoint. The state is then what an
//! uninterrupted run would hold, and nothing is counted twice. The input topic's
//! retention must cover the longest window plus its delay (documented in the
//! README); a snapshot topic would bound restore time further and is not built.
//! The restore runs from the poll loop, a slice at a time, while the partition
//! is paused ([`Restore`]).

use super::checkpoint::{Checkpoint, QuietContext};
use super::partition::PartitionWorker;
use crate::config::client_config;
use crate::config::Config;
use crate::source::event::Limits;
use crate::source::kafka::{parse_label, LabelKind};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What a restore re-read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Restored {
    /// Input events applied to the state.
    pub events: u64,
    /// Labels applied.
    pub labels: u64,
    /// Terminal topic records (events and labels) applied to the terminal side.
    pub routed: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Rebuilds `worker`'s state (input partition `partition`) from the input and
/// labels topics, and the terminal topic when terminal features are repartitioned,
/// up to `until` (exclusive offsets), in one go.
pub fn restore(
    config: &Config,
    partition: i32,
    until: &Checkpoint,
    worker: &mut PartitionWorker,
    limits: &Limits,
) -> Result<Restored, KafkaError> {
    let mut r = Restore::new(config, partition, until);
    while !r.step(config, worker, limits, Duration::from_secs(1))? {}
    Ok(r.done)
}

/// The topics a restore re-reads, in this order: labels apply to events already
/// in the state.
#[derive(Debug, Clone, Copy)]
enum Source {
    Input,
    Labels,
    Terminal,
}

/// A partition's restore in progress. The poll loop advances it a slice at a
/// time ([`Restore::step`]) while the partition is paused, so a long restore
/// never keeps the consumer from polling (a restore inside the rebalance
/// callback could outlast `max.poll.interval.ms` and set off another rebalance).
pub struct Restore {
    partition: i32,
    /// Sources still to re-read, each up to its end offset (exclusive).
    todo: VecDeque<(Source, i64)>,
    /// Reader of the source at the front of `todo`, once opened.
    reader: Option<BaseConsumer<QuietContext>>,
    last_progress: Instant,
    /// When the first slice ran (a restore may wait behind others).
    started: Option<Instant>,
    /// Also re-read the decision API's input records past the checkpoint.
    api_tail: bool,
    /// What was re-read so far.
    pub done: Restored,
}

impl Restore {
    /// A restore of input partition `partition` up to `until`.
    pub fn new(config: &Config, partition: i32, until: &Checkpoint) -> Self {
        let k = &config.kafka;
        let sources = [
            (Source::Input, until.input_offset, true),
            (
                Source::Labels,
                until.labels_offset,
                !k.labels_topic.is_empty(),
            ),
            (
                Source::Terminal,
                until.terminal_offset,
                !k.terminal_topic.is_empty(),
            ),
        ];
        Self {
            partition,
            todo: sources
                .into_iter()
                .filter_map(|(s, end, used)| Some((s, end.filter(|_| used)?)))
                .collect(),
            reader: None,
            last_progress: Instant::now(),
            started: None,
            api_tail: false,
            done: Restored::default(),
        }
    }

    /// Also applies the decision API's input records past the checkpoint, up to
    /// the end of the partition: they were decided when written, so calls that
    /// repeat them, and their Kafka duplicates, find their ids before the
    /// partition takes calls again (they join the state before the Kafka events
    /// between the checkpoint and them: the order after a restore).
    pub fn with_api_tail(mut self) -> Self {
        self.api_tail = true;
        self
    }

    /// The input partition being restored.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Re-reads into `worker` for about `budget`; `Ok(true)` once everything up to
    /// the checkpoint is applied. Fails if a source makes no progress for the
    /// configured Kafka timeout.
    pub fn step(
        &mut self,
        config: &Config,
        worker: &mut PartitionWorker,
        limits: &Limits,
        budget: Duration,
    ) -> Result<bool, KafkaError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let deadline = Instant::now() + budget;
        let stall = Duration::from_millis(config.processing.kafka_timeout_ms.max(1000));
        while let Some(&(source, end)) = self.todo.front() {
            let reader = match &mut self.reader {
                Some(r) => r,
                None => {
                    self.last_progress = Instant::now();
                    self.reader
                        .insert(open_reader(config, topic(config, source), self.partition)?)
                }
            };
            let tail = self.api_tail && matches!(source, Source::Input);
            let finished = match reader.poll(Duration::from_millis(10)) {
                Some(Ok(msg)) => {
                    self.last_progress = Instant::now();
                    if msg.offset() < end || (tail && crate::api::is_api_record(&msg)) {
                        apply(
                            source,
                            msg.payload().unwrap_or(&[]),
                            worker,
                            limits,
                            &mut self.done,
                        );
                    }
                    !tail && msg.offset() + 1 >= end
                }
                Some(Err(KafkaError::PartitionEOF(_))) => true,
                Some(Err(e)) => return Err(e),
                None if self.last_progress.elapsed() > stall => {
                    return Err(KafkaError::MessageConsumption(
                        RDKafkaErrorCode::OperationTimedOut,
                    ))
                }
                None => false,
            };
            if finished {
                self.todo.pop_front();
                self.reader = None;
            } else if Instant::now() >= deadline {
                return Ok(false);
            }
        }
        self.done.seconds = started.elapsed().as_secs_f64();
        Ok(true)
    }
}

fn topic(config: &Config, source: Source) -> &str {
    let k = &config.kafka;
    match source {
        Source::Input => &k.input_topic,
        Source::Labels => &k.labels_topic,
        Source::Terminal => &k.terminal_topic,
    }
}

/// Applies one committed record of `source` to the state, as live processing did.
fn apply(
    source: Source,
    payload: &[u8],
    worker: &mut PartitionWorker,
    limits: &Limits,
    r: &mut Restored,
) {
    #[cfg(test)]
    faults::slow_down();
    match source {
        Source::Input => r.events += u64::from(worker.restore(payload, limits)),
        Source::Labels => {
            if let Ok(label) = parse_label(payload) {
                // Routed labels were forwarded the first time round.
                let _ = worker.apply_label(&label.event_id, label.label == LabelKind::Fraud);
                r.labels += 1;
            }
        }
        Source::Terminal => r.routed += u64::from(worker.restore_routed(payload, limits)),
    }
}

/// A `read_committed` reader of `topic`/`partition` from its oldest retained record.
fn open_reader(
    config: &Config,
    topic: &str,
    partition: i32,
) -> Result<BaseConsumer<QuietContext>, KafkaError> {
    let consumer: BaseConsumer<QuietContext> = client_config(config)
        .set("group.id", format!("{}-restore", config.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create_with_context(QuietContext)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// Test-only slowness: every record a restore applies on this thread takes longer.
#[cfg(test)]
pub(crate) mod faults {
    use std::cell::Cell;
    use std::time::Duration;

    thread_local! {
        static PER_RECORD: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }

    /// Makes each restored record on this thread take `d` more.
    pub(crate) fn slow_restore(d: Duration) {
        PER_RECORD.with(|p| p.set(d));
    }

    pub(super) fn slow_down() {
        let d = PER_RECORD.with(Cell::get);
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}
