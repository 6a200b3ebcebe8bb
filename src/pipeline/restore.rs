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

use super::checkpoint::{Checkpoint, QuietContext};
use super::partition::PartitionWorker;
use crate::config::Config;
use crate::sink::client_config;
use crate::source::event::Limits;
use crate::source::kafka::{parse_label, LabelKind};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
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
/// up to `until` (exclusive offsets).
pub fn restore(
    config: &Config,
    partition: i32,
    until: &Checkpoint,
    worker: &mut PartitionWorker,
    limits: &Limits,
) -> Result<Restored, KafkaError> {
    let started = Instant::now();
    let mut r = Restored::default();
    if let Some(end) = until.input_offset {
        read_until(
            config,
            &config.kafka.input_topic,
            partition,
            end,
            |payload| {
                r.events += u64::from(worker.restore(payload, limits));
            },
        )?;
    }
    if let (Some(end), false) = (until.labels_offset, config.kafka.labels_topic.is_empty()) {
        read_until(
            config,
            &config.kafka.labels_topic,
            partition,
            end,
            |payload| {
                if let Ok(label) = parse_label(payload) {
                    // Routed labels were forwarded the first time round.
                    let _ = worker.apply_label(&label.event_id, label.label == LabelKind::Fraud);
                    r.labels += 1;
                }
            },
        )?;
    }
    if let (Some(end), false) = (
        until.terminal_offset,
        config.kafka.terminal_topic.is_empty(),
    ) {
        read_until(
            config,
            &config.kafka.terminal_topic,
            partition,
            end,
            |record| {
                r.routed += u64::from(worker.restore_routed(record, limits));
            },
        )?;
    }
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

/// Calls `apply` with each committed payload of `topic`/`partition` from the oldest
/// retained offset up to `end` (exclusive). Fails if no progress is made for the
/// configured Kafka timeout.
fn read_until(
    config: &Config,
    topic: &str,
    partition: i32,
    end: i64,
    mut apply: impl FnMut(&[u8]),
) -> Result<(), KafkaError> {
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
    let stall = Duration::from_millis(config.processing.kafka_timeout_ms.max(1000));
    let mut last_progress = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                last_progress = Instant::now();
                if msg.offset() >= end {
                    return Ok(());
                }
                apply(msg.payload().unwrap_or(&[]));
                if msg.offset() + 1 >= end {
                    return Ok(());
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(()),
            Some(Err(e)) => return Err(e),
            None if last_progress.elapsed() > stall => {
                return Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::OperationTimedOut,
                ))
            }
            None => {}
        }
    }
}
