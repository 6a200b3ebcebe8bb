//! The consumer's context: rebalance callbacks that resume each assigned partition
//! from its checkpoint, paused until the poll loop has restored its state, and
//! commit before revocation.

use super::checkpoint::{self, Checkpoint};
use super::Pipeline;
use crate::config::{Config, Guarantee};
use crate::ops::internal_events::KafkaErrorEvent;
use crate::ops::lifecycle::Health;
use crate::ops::metrics::Metrics;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Consumer context: owns the pipeline so the rebalance callbacks can commit it.
pub(super) struct PipelineContext {
    pub(super) pipeline: Mutex<Pipeline>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) health: Arc<Health>,
    pub(super) input_topic: String,
    pub(super) config: Config,
}

impl PipelineContext {
    pub(super) fn lock(&self) -> MutexGuard<'_, Pipeline> {
        // Only this thread takes the lock; a poisoned lock means a panic already unwound.
        self.pipeline.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientContext for PipelineContext {
    fn stats(&self, stats: Statistics) {
        if let Some(topic) = stats.topics.get(&self.input_topic) {
            for (id, p) in &topic.partitions {
                // Offsets are committed in transactions, so librdkafka's own
                // `consumer_lag` (from the group's committed offset) may be unknown;
                // the distance from the last stable offset to what was consumed is
                // the lag that matters here.
                let lag = if p.ls_offset >= 0 && p.app_offset >= 0 {
                    (p.ls_offset - p.app_offset).max(0)
                } else {
                    p.consumer_lag
                };
                if *id >= 0 && p.fetch_state == "active" && lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[&id.to_string()])
                        .set(lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        use rdkafka::types::RDKafkaErrorCode as C;
        let code = error.rdkafka_error_code();
        if matches!(
            code,
            Some(C::AllBrokersDown) | Some(C::BrokerTransportFailure)
        ) {
            self.health.set_broker_ok(false);
        }
        KafkaErrorEvent::Client {
            error: &error,
            reason,
        }
        .emit(&self.metrics);
    }
}

impl ConsumerContext for PipelineContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let checkpoints = self.resume_from_checkpoints(tpl);
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                self.assigned(consumer, tpl, &checkpoints);
                r
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoking(consumer, tpl);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => Err(KafkaError::Rebalance(other.into())),
        };
        if let Err(e) = result {
            KafkaErrorEvent::Rebalance(&e).emit(&self.metrics);
        }
    }
}

impl PipelineContext {
    /// Sets each assigned partition's start offset from its checkpoint, so a
    /// restarted or rebalanced worker resumes exactly after the last committed batch.
    fn resume_from_checkpoints(&self, tpl: &mut TopicPartitionList) -> HashMap<i32, Checkpoint> {
        if self.config.processing.guarantee != Guarantee::ExactlyOnce {
            return HashMap::new();
        }
        let parts = partitions_of(tpl, &self.input_topic);
        let timeout = Duration::from_millis(self.config.processing.kafka_timeout_ms.max(1000) * 3);
        // Resuming anywhere else would decide events twice or skip them: retry a
        // few times before falling back to the group's committed offsets.
        let mut read = checkpoint::read_latest(&self.config, &parts, timeout);
        for attempt in 1..=4 {
            let Err(e) = &read else { break };
            tracing::warn!(error = %e, attempt, "cannot read checkpoints yet; retrying");
            std::thread::sleep(Duration::from_secs(1));
            read = checkpoint::read_latest(&self.config, &parts, timeout);
        }
        match read {
            Ok(found) => {
                let labels = &self.config.kafka.labels_topic;
                for (p, cp) in &found {
                    let targets = [
                        (&self.input_topic, cp.input_offset),
                        (labels, cp.labels_offset),
                        (&self.config.kafka.terminal_topic, cp.terminal_offset),
                    ];
                    for (topic, offset) in targets {
                        if let Some(o) = offset {
                            if tpl.find_partition(topic, *p).is_some() {
                                let _ = tpl.set_partition_offset(topic, *p, Offset::Offset(o));
                            }
                        }
                    }
                }
                tracing::info!(partitions = ?parts, restored = found.len(), "resuming from checkpoints");
                found
            }
            Err(e) => {
                KafkaErrorEvent::Checkpoint(&e).emit(&self.metrics);
                HashMap::new()
            }
        }
    }

    /// Creates the workers of newly assigned partitions. One with a checkpoint is
    /// paused until the poll loop has rebuilt its state up to there: none of its
    /// events is scored before, and the callback returns at once.
    fn assigned(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
        checkpoints: &HashMap<i32, Checkpoint>,
    ) {
        let mut p = self.lock();
        p.stats.assignments += 1;
        // A new generation: its commits need the group's metadata anew.
        p.batch.forget_group();
        for el in tpl.elements() {
            if el.topic() == self.input_topic {
                let partition = el.partition();
                if p.fresh_worker(partition, checkpoints.get(&partition).copied()) {
                    p.pause(consumer, partition);
                }
            }
        }
        self.publish_owners(&p, consumer, tpl, true);
        self.health.set_restoring(p.restoring.len());
        self.health.set_assigned(p.workers.assigned());
        self.health.set_broker_ok(true);
        self.metrics
            .assigned_partitions
            .set(p.workers.assigned() as i64);
        tracing::info!(partitions = ?partitions_of(tpl, &self.input_topic), "partitions assigned");
    }

    /// Commits the open batch before partitions go, then drops their state.
    fn revoking(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let mut p = self.lock();
        if let Err(e) = p.commit(consumer) {
            tracing::error!(error = %e, "commit before revocation failed");
        }
        for el in tpl.elements() {
            if el.topic() == self.input_topic {
                p.remove_worker(el.partition());
            }
        }
        self.publish_owners(&p, consumer, tpl, false);
        self.health.set_restoring(p.restoring.len());
        self.health.set_assigned(p.workers.assigned());
        self.metrics
            .assigned_partitions
            .set(p.workers.assigned() as i64);
        tracing::info!(partitions = ?partitions_of(tpl, &self.input_topic), "partitions revoked");
    }

    /// Tells the other instances, through the owners topic, that this one now
    /// owns (or released) `tpl`'s input partitions, when the API forwards calls.
    fn publish_owners(
        &self,
        p: &Pipeline,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
        owned: bool,
    ) {
        if let Some(o) = p.api.as_ref().and_then(|a| a.owners()) {
            let generation = crate::api::owners::generation(consumer);
            o.publish(&partitions_of(tpl, &self.input_topic), generation, owned);
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList, topic: &str) -> Vec<i32> {
    tpl.elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .map(|e| e.partition())
        .collect()
}
