//! Checkpoints: per input partition, the next offsets to read, written to the
//! checkpoint topic inside the same transaction as the decisions.
//!
//! Kafka's own transactional offset commit (`send_offsets_to_transaction`) is
//! made too, so consumer-group tooling shows the real lag; the checkpoint makes
//! resumption independent of whether a broker stores those offsets (librdkafka's
//! mock cluster accepts but does not store them). Partition `p` of the checkpoint
//! topic holds the checkpoints of input partition `p`; in production the topic is
//! compacted, so only the latest record per key is kept.

use crate::config::client_config;
use crate::config::Config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Where processing of one input partition resumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub version: u32,
    /// Next offset of the input topic partition.
    pub input_offset: Option<i64>,
    /// Next offset of the labels topic partition.
    pub labels_offset: Option<i64>,
    /// Next offset of the terminal topic partition (terminal features repartitioned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_offset: Option<i64>,
}

impl Checkpoint {
    /// Current format version.
    pub const VERSION: u32 = 1;

    /// The record key for input partition `p` (one key per partition, for compaction).
    pub fn key(partition: i32) -> String {
        format!("offsets-{partition}")
    }
}

/// A client context that does not log end-of-partition, which this reader expects.
pub(crate) struct QuietContext;

impl rdkafka::ClientContext for QuietContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_))
            && error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF)
        {
            tracing::warn!(error = %error, reason, "checkpoint reader error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietContext {}

/// Reads the latest committed checkpoint of each of `partitions`, up to the end of
/// the committed data (the last stable offset), within `timeout`.
pub fn read_latest(
    config: &Config,
    partitions: &[i32],
    timeout: Duration,
) -> Result<HashMap<i32, Checkpoint>, KafkaError> {
    let mut out = HashMap::new();
    if partitions.is_empty() {
        return Ok(out);
    }
    let topic = &config.kafka.checkpoint_topic;
    let consumer: BaseConsumer<QuietContext> = client_config(config)
        .set(
            "group.id",
            format!("{}-checkpoint-reader", config.kafka.group_id),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // If old data was deleted, read what is left (the latest checkpoint is
        // always the newest record), never jump to the end.
        .set("auto.offset.reset", "earliest")
        .create_with_context(QuietContext)?;
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut open: Vec<i32> = partitions.to_vec();
    let deadline = Instant::now() + timeout;
    while !open.is_empty() {
        if Instant::now() > deadline {
            return Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                if let Some(cp) = msg
                    .payload()
                    .and_then(|p| serde_json::from_slice::<Checkpoint>(p).ok())
                {
                    out.insert(msg.partition(), cp);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => open.retain(|&x| x != p),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok(out)
}
