//! Pipeline: the consume → features → decide → produce loop, its batching and
//! commits, and partition assignment.
//!
//! One thread polls the consumer and runs the hot path. State is owned per
//! partition ([`PartitionWorker`]); nothing is shared between partitions. The
//! rebalance callbacks run on the same thread, inside `poll`, so they commit the
//! open batch before partitions are revoked.

pub mod checkpoint;
mod partition;
mod reload;
pub mod restore;

pub use checkpoint::Checkpoint;
pub use partition::{Encoded, OffsetTrack, PartitionWorker};

use crate::config::Config;
use crate::config::{Guarantee, Mode};
use crate::decision::{Action, Decider, ModelInput};
use crate::features::{load_feature_set, EngineLimits, FeatureSet, FeatureSpecError, LabelOutcome};
use crate::latency::LatencyHistogram;
use crate::lifecycle::{Health, Shutdown};
use crate::metrics::Metrics;
use crate::model::ModelStore;
use crate::rules::reload::{RuleStore, RulesSource};
use crate::sink::{DeadLetter, Sink, SinkError};
use crate::source::event::{InvalidEvent, InvalidReason, Limits};
use crate::source::kafka::{consumer_config, parse_label, LabelKind};
use crate::state::TableStats;
use prometheus::IntCounter;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Why the pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The feature set could not be loaded.
    #[error(transparent)]
    Features(#[from] FeatureSpecError),
    /// The rules could not be loaded.
    #[error("rules:\n{0}")]
    Rules(#[from] crate::rules::RulesError),
    /// The rules watcher could not start.
    #[error("cannot watch the rules directory: {0}")]
    Watch(#[from] std::io::Error),
    /// The consumer could not be created or subscribed.
    #[error("consumer: {0}")]
    Consumer(#[from] KafkaError),
    /// The producer failed beyond recovery.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A topic is missing or too small.
    #[error("topic '{topic}': {problem}")]
    Topic {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Totals of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Input messages read.
    pub consumed: u64,
    /// Decisions produced.
    pub decided: u64,
    /// Invalid events dead-lettered.
    pub invalid: u64,
    /// Labels read.
    pub labels: u64,
    /// Batches committed.
    pub commits: u64,
    /// Batches aborted.
    pub aborts: u64,
    /// Events skipped because their id was seen recently.
    pub duplicates: u64,
    /// Nanoseconds from reading each valid event to handing its output to the producer.
    pub hot_path_ns: LatencyHistogram,
}

/// Runs the pipeline until `shutdown` is triggered, then finishes the open batch,
/// commits it and returns.
pub fn run(
    config: &Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<RunStats, PipelineError> {
    run_with_rules(config, config.rules.source(), metrics, health, shutdown)
}

/// [`run`] with rules from `rules` instead of `config.rules` (the load test's
/// generated rulesets).
pub fn run_with_rules(
    config: &Config,
    rules: RulesSource,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<RunStats, PipelineError> {
    let set = Arc::new(load_feature_set(&config.features.set)?);
    metrics.register_entities(set.entities.iter().map(|e| e.name.as_str()));
    let rules = Arc::new(RuleStore::load(rules, set.clone())?);
    tracing::info!(version = %rules.current().version, rules = ?rules.current().counts(), "rules loaded");
    metrics.set_rules_version(&rules.current().version);
    let (champion, challenger) = config.model.paths();
    let (models, model_errors) = ModelStore::open(champion, challenger, set.clone());
    for e in &model_errors {
        metrics.model_reload_errors.inc();
        tracing::error!(error = %e, "model not loaded; deciding with the policy's model fallback until it loads");
    }
    let models = Arc::new(models);
    reload::report_models(&models, &metrics);
    let _watcher = reload::watch(
        rules.clone(),
        models.clone(),
        metrics.clone(),
        shutdown.clone(),
    )?;
    let sink = Sink::start(config)?;
    let pipeline = Pipeline::new(config, set, rules, models, sink, metrics.clone());
    let context = PipelineContext {
        pipeline: Mutex::new(pipeline),
        metrics,
        health: health.clone(),
        input_topic: config.kafka.input_topic.clone(),
        config: config.clone(),
    };
    let consumer: BaseConsumer<PipelineContext> =
        consumer_config(config).create_with_context(context)?;
    let mut topics = vec![config.kafka.input_topic.as_str()];
    if !config.kafka.labels_topic.is_empty() {
        topics.push(config.kafka.labels_topic.as_str());
    }
    if config.processing.guarantee == Guarantee::ExactlyOnce {
        check_checkpoint_topic(&consumer, config)?;
    }
    consumer.subscribe(&topics)?;
    tracing::info!(
        brokers = %config.kafka.brokers,
        group = %config.kafka.group_id,
        input = %config.kafka.input_topic,
        output = %config.kafka.output_topic,
        guarantee = ?config.processing.guarantee,
        "pipeline started"
    );
    while !shutdown.is_triggered() {
        let polled = consumer.poll(Duration::from_millis(50));
        let mut p = consumer.context().lock();
        match polled {
            Some(Ok(msg)) => {
                health.set_broker_ok(true);
                p.handle(&msg)?;
            }
            Some(Err(e)) => p.kafka_error("consume", &e),
            None => {}
        }
        p.sink.poll();
        p.maybe_commit(&consumer)?;
        p.maybe_publish();
    }
    health.set_stopping();
    let stats = {
        let mut p = consumer.context().lock();
        p.commit(&consumer)?;
        p.publish();
        std::mem::take(&mut p.stats)
    };
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!(?stats, "pipeline stopped");
    Ok(stats)
}

/// The checkpoint topic must exist with at least as many partitions as the input.
fn check_checkpoint_topic<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    config: &Config,
) -> Result<(), PipelineError> {
    let k = &config.kafka;
    let timeout = Duration::from_millis(config.processing.kafka_timeout_ms);
    let count = |topic: &str| -> Result<usize, PipelineError> {
        let md = consumer.fetch_metadata(Some(topic), timeout)?;
        let t = md.topics().iter().find(|t| t.name() == topic);
        match t {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                Ok(t.partitions().len())
            }
            _ => Err(PipelineError::Topic {
                topic: topic.to_string(),
                problem: "does not exist".into(),
            }),
        }
    };
    let (input, checkpoints) = (count(&k.input_topic)?, count(&k.checkpoint_topic)?);
    if checkpoints < input {
        return Err(PipelineError::Topic {
            topic: k.checkpoint_topic.clone(),
            problem: format!("has {checkpoints} partitions but the input topic has {input}; it needs at least as many"),
        });
    }
    Ok(())
}

/// Consumer context: owns the pipeline so the rebalance callbacks can commit it.
struct PipelineContext {
    pipeline: Mutex<Pipeline>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    input_topic: String,
    config: Config,
}

impl PipelineContext {
    fn lock(&self) -> MutexGuard<'_, Pipeline> {
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
        self.metrics
            .kafka_errors
            .with_label_values(&["client"])
            .inc();
        tracing::warn!(error = %error, reason, "kafka client error");
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
                self.assigned(tpl, &checkpoints);
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
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
            self.metrics
                .kafka_errors
                .with_label_values(&["rebalance"])
                .inc();
            tracing::error!(error = %e, "rebalance failed");
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
                self.metrics
                    .kafka_errors
                    .with_label_values(&["checkpoint"])
                    .inc();
                tracing::error!(error = %e, "cannot read checkpoints; resuming from the group's committed offsets");
                HashMap::new()
            }
        }
    }

    /// Creates the workers of newly assigned partitions, each with its state
    /// rebuilt up to its checkpoint, before any of their events is scored.
    fn assigned(&self, tpl: &TopicPartitionList, checkpoints: &HashMap<i32, Checkpoint>) {
        let mut p = self.lock();
        for el in tpl.elements() {
            if el.topic() == self.input_topic {
                let partition = el.partition();
                p.fresh_worker(partition, checkpoints.get(&partition).copied());
            }
        }
        self.health.set_assigned(p.assigned());
        self.health.set_broker_ok(true);
        self.metrics.assigned_partitions.set(p.assigned() as i64);
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
                p.drop_worker(el.partition());
            }
        }
        self.health.set_assigned(p.assigned());
        self.metrics.assigned_partitions.set(p.assigned() as i64);
        tracing::info!(partitions = ?partitions_of(tpl, &self.input_topic), "partitions revoked");
    }
}

fn partitions_of(tpl: &TopicPartitionList, topic: &str) -> Vec<i32> {
    tpl.elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .map(|e| e.partition())
        .collect()
}

/// Everything the hot path touches, owned by the polling thread.
struct Pipeline {
    input_topic: String,
    labels_topic: String,
    output_topic: String,
    dlq_topic: String,
    checkpoint_topic: String,
    checkpoints: bool,
    /// Forward input unchanged (the load test's Kafka-only baseline).
    passthrough: bool,
    /// Rebuild state from the input on assignment and after an abort.
    restore_state: bool,
    dedup_window: usize,
    config: Config,
    limits: Limits,
    max_batch_events: usize,
    commit_interval: Duration,
    engine_limits: EngineLimits,
    set: Arc<FeatureSet>,
    decider: Decider,
    sink: Sink,
    workers: Vec<Option<PartitionWorker>>,
    batch_events: usize,
    /// Decisions and dead letters of the open batch (discounted if it aborts).
    batch_output: (u64, u64),
    batch_started: Instant,
    out: Encoded,
    metrics: Arc<Metrics>,
    by_action: [IntCounter; 3],
    by_reason: Vec<IntCounter>,
    stats: RunStats,
    last_publish: Instant,
    published: HashMap<String, TableStats>,
    dlq_log: RateLimitedLog,
}

impl Pipeline {
    fn new(
        config: &Config,
        set: Arc<FeatureSet>,
        rules: Arc<RuleStore>,
        models: Arc<ModelStore>,
        sink: Sink,
        metrics: Arc<Metrics>,
    ) -> Self {
        let p = &config.processing;
        Self {
            input_topic: config.kafka.input_topic.clone(),
            labels_topic: config.kafka.labels_topic.clone(),
            output_topic: config.kafka.output_topic.clone(),
            dlq_topic: config.kafka.dlq_topic.clone(),
            checkpoint_topic: config.kafka.checkpoint_topic.clone(),
            checkpoints: p.guarantee == Guarantee::ExactlyOnce,
            passthrough: p.mode == Mode::Passthrough,
            restore_state: p.restore_state && p.guarantee == Guarantee::ExactlyOnce,
            dedup_window: p.dedup_window_events,
            config: config.clone(),
            limits: p.event_limits(),
            max_batch_events: p.max_batch_events.max(1),
            commit_interval: Duration::from_millis(p.commit_interval_ms),
            engine_limits: config.state.engine_limits(),
            decider: Decider::new(rules, set.len(), Some(metrics.clone())).with_models(models),
            set,
            sink,
            workers: Vec::new(),
            batch_events: 0,
            batch_output: (0, 0),
            batch_started: Instant::now(),
            out: Encoded::default(),
            by_action: Action::ALL.map(|a| metrics.decisions.with_label_values(&[a.as_str()])),
            by_reason: InvalidReason::ALL
                .iter()
                .map(|r| metrics.events_invalid.with_label_values(&[r.code()]))
                .collect(),
            metrics,
            stats: RunStats::default(),
            last_publish: Instant::now(),
            published: HashMap::new(),
            dlq_log: RateLimitedLog::default(),
        }
    }

    fn assigned(&self) -> usize {
        self.workers.iter().filter(|w| w.is_some()).count()
    }

    /// Puts a worker with empty state at `partition` (replacing any) and, when
    /// `restore_to` is given, rebuilds its state from the input up to there.
    fn fresh_worker(&mut self, partition: i32, restore_to: Option<Checkpoint>) {
        let i = partition.max(0) as usize;
        if self.workers.len() <= i {
            self.workers.resize_with(i + 1, || None);
        }
        let worker = self.workers[i].insert(PartitionWorker::new(
            self.set.clone(),
            self.engine_limits,
            self.dedup_window,
        ));
        let Some(until) = restore_to.filter(|_| self.restore_state) else {
            return;
        };
        match restore::restore(&self.config, partition, &until, worker, &self.limits) {
            Ok(r) => {
                self.metrics.state_restored_events.inc_by(r.events);
                self.metrics.state_restore_seconds.observe(r.seconds);
                tracing::info!(
                    partition,
                    events = r.events,
                    labels = r.labels,
                    seconds = r.seconds,
                    "state restored"
                );
            }
            Err(e) => {
                self.metrics
                    .kafka_errors
                    .with_label_values(&["restore"])
                    .inc();
                tracing::error!(partition, error = %e, "state restore failed; the partition continues with the state re-read so far");
            }
        }
    }

    fn drop_worker(&mut self, partition: i32) {
        if let Some(w) = self.workers.get_mut(partition as usize) {
            *w = None;
        }
    }

    fn worker(&mut self, partition: i32) -> &mut PartitionWorker {
        Self::worker_in(
            &mut self.workers,
            partition,
            &self.set,
            self.engine_limits,
            self.dedup_window,
        )
    }

    /// The worker of `partition`, created if missing (a message can only come from
    /// an assigned partition, but be safe if not).
    fn worker_in<'w>(
        workers: &'w mut Vec<Option<PartitionWorker>>,
        partition: i32,
        set: &Arc<FeatureSet>,
        limits: EngineLimits,
        dedup_window: usize,
    ) -> &'w mut PartitionWorker {
        let i = partition.max(0) as usize;
        if workers.len() <= i {
            workers.resize_with(i + 1, || None);
        }
        workers[i].get_or_insert_with(|| PartitionWorker::new(set.clone(), limits, dedup_window))
    }

    /// The hot path for one message.
    fn handle(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), SinkError> {
        let read_at = Instant::now();
        if self.batch_events == 0 {
            self.batch_started = read_at;
        }
        self.sink.begin()?;
        self.batch_events += 1;
        let (partition, offset) = (msg.partition(), msg.offset());
        if msg.topic() == self.labels_topic {
            self.handle_label(msg);
            self.worker(partition).labels.advance(offset);
            return Ok(());
        }
        self.stats.consumed += 1;
        self.metrics.events_consumed.inc();
        let payload = msg.payload().unwrap_or(&[]);
        if self.passthrough {
            self.sink
                .send(&self.output_topic, msg.key().unwrap_or(&[]), payload);
            self.stats.decided += 1;
            self.batch_output.0 += 1;
            self.stats
                .hot_path_ns
                .record(read_at.elapsed().as_nanos() as u64);
            self.worker(partition).input.advance(offset);
            return Ok(());
        }
        let worker = Self::worker_in(
            &mut self.workers,
            partition,
            &self.set,
            self.engine_limits,
            self.dedup_window,
        );
        match worker.decide(
            payload,
            &self.limits,
            &mut self.decider,
            read_at,
            &mut self.out,
        ) {
            Ok(None) => {
                self.stats.duplicates += 1;
                self.metrics.events_duplicate.inc();
            }
            Ok(Some(outcome)) => {
                let out = &self.out;
                self.sink.send(&self.output_topic, &out.key, &out.decision);
                self.stats
                    .hot_path_ns
                    .record(read_at.elapsed().as_nanos() as u64);
                self.stats.decided += 1;
                self.batch_output.0 += 1;
                self.metrics.events_decided.inc();
                self.by_action[outcome.action as usize].inc();
                self.metrics.score.observe(outcome.score);
                match outcome.model {
                    ModelInput::Score(s) => self.metrics.model_score.observe(s),
                    ModelInput::Unavailable => self.metrics.model_unavailable.inc(),
                    ModelInput::NotConfigured => {}
                }
                self.metrics
                    .hot_path_seconds
                    .observe(out.latency.as_secs_f64());
                if let Some(produced_ms) = msg.timestamp().to_millis() {
                    let e2e = (out.decided_at_ms - produced_ms).max(0) as f64 / 1000.0;
                    self.metrics.end_to_end_seconds.observe(e2e);
                }
            }
            Err(invalid) => self.dead_letter(msg, &invalid),
        }
        self.worker(partition).input.advance(offset);
        Ok(())
    }

    fn handle_label(&mut self, msg: &BorrowedMessage<'_>) {
        self.stats.labels += 1;
        let payload = msg.payload().unwrap_or(&[]);
        match parse_label(payload) {
            Ok(label) => {
                let fraud = label.label == LabelKind::Fraud;
                let outcome = self
                    .worker(msg.partition())
                    .engine
                    .apply_label(&label.event_id, fraud);
                let name = match outcome {
                    LabelOutcome::Applied => "applied",
                    LabelOutcome::Parked => "parked",
                    LabelOutcome::Unknown => "unknown",
                };
                self.metrics.labels.with_label_values(&[name]).inc();
            }
            Err(error) => {
                self.metrics.labels.with_label_values(&["invalid"]).inc();
                let invalid = InvalidEvent {
                    reason: InvalidReason::WrongType,
                    detail: format!("invalid label: {error}"),
                };
                self.dead_letter(msg, &invalid);
            }
        }
    }

    fn dead_letter(&mut self, msg: &BorrowedMessage<'_>, invalid: &InvalidEvent) {
        let dl = DeadLetter {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            reason: invalid.reason.code(),
            error: &invalid.detail,
        };
        self.sink.send_dead_letter(
            &self.dlq_topic,
            msg.key(),
            msg.payload().unwrap_or(&[]),
            &dl,
        );
        self.stats.invalid += 1;
        self.batch_output.1 += 1;
        self.by_reason[invalid.reason.index()].inc();
        self.metrics.dlq_records.inc();
        if let Some(suppressed) = self.dlq_log.allow() {
            tracing::warn!(
                reason = dl.reason,
                error = dl.error,
                topic = dl.topic,
                partition = dl.partition,
                offset = dl.offset,
                suppressed,
                "invalid event sent to the dead-letter topic"
            );
        }
    }

    fn maybe_commit(&mut self, consumer: &BaseConsumer<PipelineContext>) -> Result<(), SinkError> {
        if self.batch_events >= self.max_batch_events
            || (self.batch_events > 0 && self.batch_started.elapsed() >= self.commit_interval)
        {
            self.commit(consumer)?;
        }
        Ok(())
    }

    /// Commits the open batch: output and input offsets together.
    fn commit(&mut self, consumer: &BaseConsumer<PipelineContext>) -> Result<(), SinkError> {
        if self.batch_events == 0 {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (p, w) in self.workers.iter().enumerate() {
            let Some(w) = w else { continue };
            if !w.input.dirty() && !w.labels.dirty() {
                continue;
            }
            let tracks = [
                (&self.input_topic, &w.input),
                (&self.labels_topic, &w.labels),
            ];
            for (topic, track) in tracks {
                if let (true, Some(next)) = (track.dirty(), track.next) {
                    let _ = offsets.add_partition_offset(topic, p as i32, Offset::Offset(next));
                }
            }
            if self.checkpoints {
                let cp = Checkpoint {
                    version: Checkpoint::VERSION,
                    input_offset: w.input.next,
                    labels_offset: w.labels.next,
                };
                let value = serde_json::to_vec(&cp).unwrap_or_default();
                let key = Checkpoint::key(p as i32);
                self.sink.send_to_partition(
                    &self.checkpoint_topic,
                    p as i32,
                    key.as_bytes(),
                    &value,
                );
            }
        }
        match self.sink.commit(&offsets, consumer) {
            Ok(()) => {
                for w in self.workers.iter_mut().flatten() {
                    w.input.mark_committed();
                    w.labels.mark_committed();
                }
                self.batch_events = 0;
                self.batch_output = (0, 0);
                self.stats.commits += 1;
                self.metrics
                    .transactions
                    .with_label_values(&["commit"])
                    .inc();
                Ok(())
            }
            Err(SinkError::Aborted(reason)) => {
                self.stats.aborts += 1;
                // Nothing of the batch is visible; it will be decided again.
                self.stats.decided -= self.batch_output.0;
                self.stats.invalid -= self.batch_output.1;
                self.batch_output = (0, 0);
                self.metrics
                    .transactions
                    .with_label_values(&["abort"])
                    .inc();
                tracing::warn!(%reason, "batch aborted; re-reading it from the last commit");
                self.rewind(consumer);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// After an abort: resume every partition at its last commit. The state of those
    /// partitions included the aborted events, so it is rebuilt from empty.
    fn rewind(&mut self, consumer: &BaseConsumer<PipelineContext>) {
        self.batch_events = 0;
        let timeout = Duration::from_secs(5);
        for p in 0..self.workers.len() {
            let Some(w) = self.workers[p].as_mut() else {
                continue;
            };
            if !w.input.dirty() && !w.labels.dirty() {
                continue;
            }
            let until = Checkpoint {
                version: Checkpoint::VERSION,
                input_offset: w.input.rewind(),
                labels_offset: w.labels.rewind(),
            };
            let tracks = [
                (&self.input_topic, until.input_offset),
                (&self.labels_topic, until.labels_offset),
            ];
            for (topic, resume) in tracks {
                if let Some(offset) = resume {
                    if let Err(e) = consumer.seek(topic, p as i32, Offset::Offset(offset), timeout)
                    {
                        tracing::error!(error = %e, topic = %topic, partition = p, "seek after abort failed");
                    }
                }
            }
            // The state included the aborted events: rebuild it up to the last commit.
            self.fresh_worker(p as i32, Some(until));
        }
    }

    fn kafka_error(&mut self, kind: &str, e: &KafkaError) {
        self.metrics.kafka_errors.with_label_values(&[kind]).inc();
        tracing::warn!(error = %e, kind, "kafka error");
    }

    fn maybe_publish(&mut self) {
        if self.last_publish.elapsed() >= Duration::from_secs(1) {
            self.publish();
        }
    }

    /// Publishes state gauges and counters (once a second, off the per-event path).
    fn publish(&mut self) {
        self.last_publish = Instant::now();
        let mut totals: HashMap<&str, (usize, TableStats)> = HashMap::new();
        let mut bytes = 0;
        for w in self.workers.iter().flatten() {
            bytes += w.engine.memory_bytes();
            for (name, len, st) in w.engine.table_stats() {
                let t = totals.entry(name).or_default();
                t.0 += len;
                t.1.evicted_idle += st.evicted_idle;
                t.1.evicted_lru += st.evicted_lru;
                t.1.late_applied += st.late_applied;
                t.1.late_dropped += st.late_dropped;
            }
        }
        self.metrics.state_bytes.set(bytes as i64);
        for (name, (len, st)) in totals {
            self.metrics
                .state_entities
                .with_label_values(&[name])
                .set(len as i64);
            let prev = self.published.entry(name.to_string()).or_default();
            let m = &self.metrics;
            let deltas = [
                (
                    &m.state_evictions,
                    "idle",
                    st.evicted_idle,
                    prev.evicted_idle,
                ),
                (
                    &m.state_evictions,
                    "capacity",
                    st.evicted_lru,
                    prev.evicted_lru,
                ),
                (
                    &m.late_events,
                    "applied",
                    st.late_applied,
                    prev.late_applied,
                ),
                (
                    &m.late_events,
                    "dropped",
                    st.late_dropped,
                    prev.late_dropped,
                ),
            ];
            for (counter, label, now, before) in deltas {
                if now > before {
                    counter
                        .with_label_values(&[name, label])
                        .inc_by(now - before);
                }
            }
            *prev = st;
        }
    }
}

/// Lets one log line through per second and counts the ones held back.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    /// `Some(suppressed since the last line)` when a line may be logged now.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < Duration::from_secs(1) => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}
