//! Sink: decisions and dead-letter records out to Kafka, committed together with
//! the input offsets (one transaction per batch), or after delivery is acknowledged.

mod committer;

pub use committer::{Committed, Committer};

use crate::config::{client_config, Config, Guarantee};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, TopicPartitionList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A failure to produce or commit.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The producer could not be created or initialised.
    #[error("cannot start the producer: {0}")]
    Start(KafkaError),
    /// The batch could not be committed; its output is discarded and its input will be read again.
    #[error("batch aborted: {0}")]
    Aborted(String),
    /// Another instance with the same transactional id took over, or the producer is unusable.
    #[error("fatal producer error: {0}")]
    Fatal(KafkaError),
    /// The thread that commits transactions ([`Committer`]) stopped.
    #[error("the commit thread stopped: {0}")]
    Committer(String),
}

/// Counts delivery failures reported by librdkafka.
#[derive(Default)]
pub struct SinkContext {
    failed: AtomicU64,
}

impl ClientContext for SinkContext {}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where a dead-lettered record came from and why it was rejected.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Reason code (`invalid_json`, ...).
    pub reason: &'a str,
    /// Human-readable error, free of card numbers.
    pub error: &'a str,
}

/// The producer side of the pipeline.
pub struct Sink {
    producer: BaseProducer<SinkContext>,
    transactional: bool,
    in_transaction: bool,
    failed_seen: u64,
    timeout: Duration,
    /// Why a record of the open batch could not be queued: the batch must not commit.
    enqueue_failed: Option<String>,
    /// Largest dead-letter payload written whole (`processing.dlq_max_payload_bytes`).
    dlq_max_payload: usize,
    /// The enqueue fault planned for this producer (tests), wherever it runs.
    #[cfg(test)]
    fault: faults::Plan,
}

impl Sink {
    /// Creates the producer; in exactly-once mode also initialises its transactions,
    /// fencing any earlier instance with the same transactional id.
    pub fn start(config: &Config) -> Result<Self, SinkError> {
        let mut c = client_config(config);
        c.set("enable.idempotence", "true")
            .set("linger.ms", "2")
            // Long enough to ride out a broker outage of most of a minute without
            // failing the batch (and below `transaction.timeout.ms`).
            .set("message.timeout.ms", "55000")
            .set("queue.buffering.max.messages", "200000");
        let transactional = config.processing.guarantee == Guarantee::ExactlyOnce;
        if transactional {
            c.set(
                "transactional.id",
                config.kafka.effective_transactional_id(),
            )
            .set("transaction.timeout.ms", "60000");
        }
        for (k, v) in &config.kafka.producer {
            c.set(k, v);
        }
        let producer: BaseProducer<SinkContext> = c
            .create_with_context(SinkContext::default())
            .map_err(SinkError::Start)?;
        let timeout = Duration::from_millis(config.processing.kafka_timeout_ms);
        if transactional {
            init_transactions_with_retry(&producer, timeout)?;
        }
        Ok(Self {
            producer,
            transactional,
            in_transaction: false,
            failed_seen: 0,
            timeout,
            enqueue_failed: None,
            dlq_max_payload: config.processing.dlq_max_payload_bytes,
            #[cfg(test)]
            fault: faults::take(config),
        })
    }

    /// Opens a transaction if none is open (exactly-once mode).
    pub fn begin(&mut self) -> Result<(), SinkError> {
        if self.transactional && !self.in_transaction {
            self.producer
                .begin_transaction()
                .map_err(SinkError::Fatal)?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Whether output is pending a commit.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Queues a record, waiting (backpressure) while the producer's queue is full.
    /// A record that cannot be queued fails the batch: [`Sink::commit`] aborts it.
    pub fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) {
        self.send_record(BaseRecord::to(topic).key(key).payload(payload));
    }

    /// Queues a record to an explicit partition.
    pub fn send_to_partition(&mut self, topic: &str, partition: i32, key: &[u8], payload: &[u8]) {
        self.send_record(
            BaseRecord::to(topic)
                .partition(partition)
                .key(key)
                .payload(payload),
        );
    }

    /// Queues a record to an explicit partition with one header `name: value`.
    pub fn send_with_header(
        &mut self,
        topic: &str,
        partition: i32,
        key: &[u8],
        payload: &[u8],
        (name, value): (&str, &[u8]),
    ) {
        let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
            key: name,
            value: Some(value),
        });
        self.send_record(
            BaseRecord::to(topic)
                .partition(partition)
                .key(key)
                .payload(payload)
                .headers(headers),
        );
    }

    /// Queues a dead-letter record: the original key and bytes, with the error and
    /// the source coordinates in headers (`fraudstream.error.*`, `fraudstream.source.*`).
    /// A payload longer than `processing.dlq_max_payload_bytes` (a key longer than
    /// [`DLQ_MAX_KEY_BYTES`]) is cut to that length, so the record always fits the
    /// producer's `message.max.bytes`; `fraudstream.payload.bytes` and
    /// `fraudstream.payload.sha256` always describe the whole original payload, and
    /// `fraudstream.payload.truncated` says whether it was cut.
    pub fn send_dead_letter(
        &mut self,
        dlq_topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        dl: &DeadLetter<'_>,
    ) {
        let partition = dl.partition.to_string();
        let offset = dl.offset.to_string();
        let size = payload.len().to_string();
        let sha256 = hex_sha256(payload);
        let kept = &payload[..payload.len().min(self.dlq_max_payload)];
        let truncated = if kept.len() < payload.len() {
            "true"
        } else {
            "false"
        };
        let headers = [
            ("fraudstream.error.reason", dl.reason),
            ("fraudstream.error.message", dl.error),
            ("fraudstream.source.topic", dl.topic),
            ("fraudstream.source.partition", &partition),
            ("fraudstream.source.offset", &offset),
            ("fraudstream.payload.bytes", &size),
            ("fraudstream.payload.sha256", &sha256),
            ("fraudstream.payload.truncated", truncated),
        ]
        .into_iter()
        .fold(OwnedHeaders::new_with_capacity(8), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        });
        let mut rec = BaseRecord::to(dlq_topic).payload(kept).headers(headers);
        if let Some(k) = key {
            rec = rec.key(&k[..k.len().min(DLQ_MAX_KEY_BYTES)]);
        }
        self.send_record(rec);
    }

    fn send_record(&mut self, mut rec: BaseRecord<'_, [u8], [u8]>) {
        #[cfg(test)]
        if let Some(e) = self.fault.enqueue_fault(rec.topic) {
            return self.fail_batch(rec.topic, &e);
        }
        loop {
            match self.producer.send(rec) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, back)) => return self.fail_batch(back.topic, &e),
            }
        }
    }

    /// Any local error but a full queue (a record too large, an unknown partition,
    /// a producer in error) fails the whole batch: committing it would skip the
    /// record's input for good.
    fn fail_batch(&mut self, topic: &str, e: &KafkaError) {
        tracing::error!(error = %e, topic, "cannot queue record; the batch will be aborted");
        if self.enqueue_failed.is_none() {
            self.enqueue_failed = Some(format!("cannot queue a record for '{topic}': {e}"));
        }
    }

    /// Whether a record of the open batch could not be queued (the batch can only abort).
    pub fn batch_failed(&self) -> bool {
        self.enqueue_failed.is_some()
    }

    /// Serves delivery reports without blocking.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Makes the batch durable together with `offsets` (the next offset to read per partition).
    /// On `Err(Aborted)` nothing of the batch is visible to `read_committed` readers
    /// and its offsets are not committed.
    pub fn commit<C: ConsumerContext>(
        &mut self,
        offsets: &TopicPartitionList,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), SinkError> {
        if self.transactional {
            return self.commit_transaction(offsets, consumer.group_metadata().as_ref());
        }
        if let Some(reason) = self.enqueue_failed.take() {
            // At least once: what was queued may still be delivered (a repeat, never a gap).
            return Err(SinkError::Aborted(reason));
        }
        let flushed = self.producer.flush(self.timeout);
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        if let Err(e) = flushed {
            return Err(SinkError::Aborted(format!("flush: {e}")));
        }
        if failed != self.failed_seen {
            self.failed_seen = failed;
            return Err(SinkError::Aborted("some records were not delivered".into()));
        }
        if offsets.count() > 0 {
            consumer
                .commit(offsets, CommitMode::Sync)
                .map_err(|e| SinkError::Aborted(format!("offset commit: {e}")))?;
        }
        Ok(())
    }

    /// Whether batches commit as transactions (exactly-once mode), which
    /// [`Sink::commit_transaction`] can run off the consumer's thread.
    pub fn transactional(&self) -> bool {
        self.transactional
    }

    /// Commits the open transaction with `offsets` of the consumer group `group`
    /// (exactly-once mode): [`Sink::commit`] without the consumer, so that it can
    /// run on another thread ([`Committer`]). A transaction with a record that
    /// could not be queued, or without group metadata, is aborted.
    pub fn commit_transaction(
        &mut self,
        offsets: &TopicPartitionList,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<(), SinkError> {
        if let Some(reason) = self.enqueue_failed.take() {
            // None of the batch becomes visible.
            self.abort();
            return Err(SinkError::Aborted(reason));
        }
        if !self.in_transaction {
            return Ok(());
        }
        let Some(meta) = group else {
            self.abort();
            return Err(SinkError::Aborted(
                "consumer has no group metadata yet".into(),
            ));
        };
        let result = self
            .retry(|p, t| p.send_offsets_to_transaction(offsets, meta, t))
            .and_then(|()| self.retry(|p, t| p.commit_transaction(t)));
        match result {
            Ok(()) => {
                self.in_transaction = false;
                Ok(())
            }
            Err(e) if is_fatal(&e) => Err(SinkError::Fatal(e)),
            Err(e) => {
                self.abort();
                Err(SinkError::Aborted(e.to_string()))
            }
        }
    }

    /// Aborts the open transaction, if any.
    pub fn abort(&mut self) {
        if self.transactional && self.in_transaction {
            // An abort that timed out (e.g. the broker is unreachable) must be
            // retried until it completes: until then the transaction stays open.
            if let Err(e) = self.retry(|p, t| p.abort_transaction(t)) {
                tracing::error!(error = %e, "abort_transaction failed");
            }
            self.in_transaction = false;
        }
    }

    /// Waits until every queued record is delivered (at-least-once shutdown).
    pub fn flush(&self) {
        let _ = self.producer.flush(self.timeout);
    }

    fn retry(
        &self,
        op: impl Fn(&BaseProducer<SinkContext>, Duration) -> Result<(), KafkaError>,
    ) -> Result<(), KafkaError> {
        let mut backoff = Duration::from_millis(50);
        for attempt in 0.. {
            match op(&self.producer, self.timeout) {
                Err(KafkaError::Transaction(e)) if e.is_retriable() && attempt < 20 => {
                    tracing::warn!(error = %e, attempt, "transaction step failed; retrying");
                    // Serve delivery reports while waiting: an abort or commit
                    // cannot finish while they are queued.
                    let until = std::time::Instant::now() + backoff;
                    while std::time::Instant::now() < until {
                        self.producer.poll(Duration::from_millis(10));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
        unreachable!("the loop returns")
    }
}

/// Longest key a dead-letter record keeps.
pub const DLQ_MAX_KEY_BYTES: usize = 1024;

/// Bytes a record needs beyond its key and payload (headers, framing), with room to spare.
const RECORD_OVERHEAD_BYTES: usize = 16 * 1024;

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Checks that every record the pipeline writes fits the producer's
/// `message.max.bytes`: a dead letter (cut to `processing.dlq_max_payload_bytes`),
/// and a decision or routed event of an input of `processing.max_message_bytes`.
/// A record that does not fit could never be queued, and its batch never commit.
pub fn check_record_limits(config: &Config) -> Result<(), String> {
    let key = "message.max.bytes";
    let k = &config.kafka;
    let setting = k.producer.get(key).or_else(|| k.client.get(key));
    let limit = match setting {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("{key} = {v:?} is not a number of bytes"))?,
        None => DEFAULT_MESSAGE_MAX_BYTES,
    };
    let p = &config.processing;
    let needs = [
        (
            "processing.dlq_max_payload_bytes",
            p.dlq_max_payload_bytes + DLQ_MAX_KEY_BYTES,
        ),
        ("processing.max_message_bytes", p.max_message_bytes),
    ];
    for (name, bytes) in needs {
        if bytes + RECORD_OVERHEAD_BYTES > limit {
            return Err(format!(
                "{name} leaves no room under the producer's {key} ({limit}): a record of \
                 {bytes} bytes plus {RECORD_OVERHEAD_BYTES} of headers must fit; lower {name} \
                 or raise kafka.producer.\"{key}\" (and the topics' max.message.bytes)"
            ));
        }
    }
    Ok(())
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_fatal(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => t.is_fatal() || !t.txn_requires_abort() && !t.is_retriable(),
        _ => false,
    }
}

fn init_transactions_with_retry(
    producer: &BaseProducer<SinkContext>,
    timeout: Duration,
) -> Result<(), SinkError> {
    let mut backoff = Duration::from_millis(100);
    for attempt in 0.. {
        match producer.init_transactions(timeout) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Transaction(e)) if e.is_retriable() && attempt < 30 => {
                tracing::warn!(error = %e, attempt, "init_transactions failed; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(SinkError::Start(e)),
        }
    }
    unreachable!("the loop returns")
}

/// Test-only fault injection: one enqueue of a producer fails; commits wait for a release.
#[cfg(test)]
pub(crate) mod faults {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};

    pub(crate) use super::committer::faults::{hold_commits, Release};

    /// Planned faults by the brokers of the producer they are for (each test
    /// has a mock cluster of its own), taken by the next [`Sink`] started for them.
    static PLANS: Mutex<Option<HashMap<String, Plan>>> = Mutex::new(None);

    /// A fault planned for one producer: the topic whose record fails, and how
    /// many of its records go through first.
    #[derive(Debug, Default)]
    pub(crate) struct Plan(Option<(String, u64)>);

    /// Makes the record to `topic` after the next `n` to it fail to enqueue,
    /// once, in the next [`Sink`] started for `config`'s brokers, whichever
    /// thread starts it and whichever threads it is used on.
    pub(crate) fn fail_enqueue_to(config: &Config, topic: &str, n: u64) {
        let mut plans = PLANS.lock().unwrap_or_else(PoisonError::into_inner);
        plans.get_or_insert_with(HashMap::new).insert(
            config.kafka.brokers.clone(),
            Plan(Some((topic.to_string(), n))),
        );
    }

    /// The plan for a producer of `config`'s brokers (none planned: no fault).
    pub(super) fn take(config: &Config) -> Plan {
        let mut plans = PLANS.lock().unwrap_or_else(PoisonError::into_inner);
        plans
            .as_mut()
            .and_then(|p| p.remove(&config.kafka.brokers))
            .unwrap_or_default()
    }

    impl Plan {
        /// The error the planned fault makes a record to `topic` fail with, if its turn.
        pub(super) fn enqueue_fault(&mut self, topic: &str) -> Option<KafkaError> {
            match self.0.as_mut() {
                Some((t, 0)) if t == topic => {
                    self.0 = None;
                    Some(KafkaError::MessageProduction(
                        RDKafkaErrorCode::InvalidArgument,
                    ))
                }
                Some((t, n)) if t == topic => {
                    *n -= 1;
                    None
                }
                _ => None,
            }
        }
    }

    /// A fault planned for a producer is its own: it fires on the thread the
    /// producer is used on, not the one that planned it, and not in a producer
    /// of other brokers.
    #[test]
    fn a_planned_fault_follows_its_producer_to_another_thread() {
        let config = |brokers: &str| {
            let mut c = Config::default();
            c.kafka.brokers = brokers.into();
            c.processing.guarantee = crate::config::Guarantee::AtLeastOnce;
            c
        };
        let (ours, other) = (config("127.0.0.1:9"), config("127.0.0.1:7"));
        fail_enqueue_to(&ours, "decisions", 1);
        let failed = |c: Config| {
            std::thread::spawn(move || {
                let mut sink = Sink::start(&c).expect("a producer");
                let mut failed = Vec::new();
                for topic in ["decisions", "payments-dlq", "decisions", "decisions"] {
                    sink.send(topic, b"k", b"v");
                    failed.push(sink.batch_failed());
                }
                failed
            })
            .join()
            .unwrap()
        };
        assert_eq!(failed(other), [false; 4], "another producer's plan");
        assert_eq!(failed(ours), [false, false, true, true]);
    }
}
