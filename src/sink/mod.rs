//! Sink: decisions and dead-letter records out to Kafka, committed together with
//! the input offsets (one transaction per batch), or after delivery is acknowledged.

use crate::config::{Config, Guarantee};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
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
}

/// librdkafka settings shared by every client: brokers plus the `[kafka.client]` passthrough.
pub fn client_config(config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers);
    for (k, v) in &config.kafka.client {
        c.set(k, v);
    }
    c
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
    pub fn send(&self, topic: &str, key: &[u8], payload: &[u8]) {
        self.send_record(BaseRecord::to(topic).key(key).payload(payload));
    }

    /// Queues a record to an explicit partition.
    pub fn send_to_partition(&self, topic: &str, partition: i32, key: &[u8], payload: &[u8]) {
        self.send_record(
            BaseRecord::to(topic)
                .partition(partition)
                .key(key)
                .payload(payload),
        );
    }

    /// Queues a dead-letter record: the original key and bytes, with the error and
    /// the source coordinates in headers (`fraudstream.error.*`, `fraudstream.source.*`).
    pub fn send_dead_letter(
        &self,
        dlq_topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        dl: &DeadLetter<'_>,
    ) {
        let partition = dl.partition.to_string();
        let offset = dl.offset.to_string();
        let headers = OwnedHeaders::new_with_capacity(5)
            .insert(Header {
                key: "fraudstream.error.reason",
                value: Some(dl.reason),
            })
            .insert(Header {
                key: "fraudstream.error.message",
                value: Some(dl.error),
            })
            .insert(Header {
                key: "fraudstream.source.topic",
                value: Some(dl.topic),
            })
            .insert(Header {
                key: "fraudstream.source.partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "fraudstream.source.offset",
                value: Some(&offset),
            });
        let mut rec = BaseRecord::to(dlq_topic).payload(payload).headers(headers);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        self.send_record(rec);
    }

    fn send_record(&self, mut rec: BaseRecord<'_, [u8], [u8]>) {
        loop {
            match self.producer.send(rec) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    // Any other local error (e.g. message too large) fails the batch at commit.
                    tracing::error!(error = %e, "cannot queue record");
                    self.producer
                        .context()
                        .failed
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
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
            if !self.in_transaction {
                return Ok(());
            }
            let Some(meta) = consumer.group_metadata() else {
                self.abort();
                return Err(SinkError::Aborted(
                    "consumer has no group metadata yet".into(),
                ));
            };
            let result = self
                .retry(|p, t| p.send_offsets_to_transaction(offsets, &meta, t))
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
        } else {
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
