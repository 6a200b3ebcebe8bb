//! An embedded Kafka broker (librdkafka's mock cluster: a real Kafka protocol
//! server on localhost) with the topics fraudstream needs, plus plain clients.

use crate::config::Config;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

/// A running mock cluster and its topics.
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
    /// Partitions of the input, labels and output topics.
    pub partitions: i32,
}

impl EmbeddedKafka {
    /// Starts a one-broker cluster and creates the topics named in `config`.
    pub fn start(config: &Config, partitions: i32) -> Result<Self, KafkaError> {
        let cluster = MockCluster::new(1)?;
        let k = &config.kafka;
        for topic in [
            &k.input_topic,
            &k.labels_topic,
            &k.output_topic,
            &k.checkpoint_topic,
            &k.dlq_topic,
            &k.terminal_topic,
        ] {
            if !topic.is_empty() {
                cluster.create_topic(topic, partitions, 1)?;
            }
        }
        // The mock cluster has no CreateTopics API: the owners topic too, when used.
        if let Some(owners) = crate::api::owners::topic(config) {
            cluster.create_topic(&owners, partitions, 1)?;
        }
        Ok(Self {
            cluster,
            partitions,
        })
    }

    /// Creates one more topic (the mock cluster has no CreateTopics API).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), KafkaError> {
        self.cluster.create_topic(topic, partitions, 1)
    }

    /// `bootstrap.servers` of the cluster.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Takes the broker down (`up = false`) or brings it back.
    pub fn set_broker_up(&self, up: bool) -> Result<(), KafkaError> {
        if up {
            self.cluster.broker_up(1)
        } else {
            self.cluster.broker_down(1)
        }
    }
}

/// A plain idempotent producer for test and demo input.
pub fn producer(brokers: &str) -> Result<BaseProducer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
}

/// Queues one record, waiting while the local queue is full.
pub fn send(
    producer: &BaseProducer,
    topic: &str,
    key: &[u8],
    payload: &[u8],
) -> Result<(), KafkaError> {
    let mut rec = BaseRecord::to(topic).key(key).payload(payload);
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Flushes a producer, failing if anything was not delivered in time.
pub fn flush(producer: &BaseProducer) -> Result<(), KafkaError> {
    producer.flush(Duration::from_secs(30))
}

/// A `read_committed` reader of whole topics from the beginning, for the demo
/// and tests. The mock broker keeps at most 5 MiB per partition; a reader that
/// falls further behind continues from the oldest data still held
/// (`auto.offset.reset=earliest`), never from the end.
pub struct Reader {
    consumer: BaseConsumer,
}

impl Reader {
    /// The next message, or `None` when nothing arrived within `timeout`.
    pub fn poll(&mut self, timeout: Duration) -> Option<BorrowedMessage<'_>> {
        match self.consumer.poll(timeout) {
            Some(Ok(msg)) => Some(msg),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "reader error");
                None
            }
            None => None,
        }
    }
}

/// A [`Reader`] assigned to every partition of `topics` from the beginning.
pub fn reader(brokers: &str, topics: &[&str], partitions: i32) -> Result<Reader, KafkaError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "fraudstream-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        // The mock broker answers an empty fetch only when this expires.
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    Ok(Reader { consumer })
}
