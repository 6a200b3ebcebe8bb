//! Pipeline: the consume → features → decide → produce loop, its batching and
//! commits, and partition assignment.
//!
//! One thread polls the consumer and runs the hot path. State is owned per
//! partition ([`PartitionWorker`]); nothing is shared between partitions. The
//! rebalance callbacks run on the same thread, inside `poll`, so they commit the
//! open batch before partitions are revoked ([`assignment`]). With terminal
//! features repartitioned, events make a second pass through the terminal topic
//! ([`terminal`]) and are decided there.

mod api;
mod assignment;
pub mod checkpoint;
mod handle;
mod offsets;
mod partition;
mod reload;
pub mod restore;
pub mod terminal;
pub mod topics;

#[cfg(test)]
mod tests;

pub use checkpoint::Checkpoint;
pub use offsets::OffsetTrack;
pub use partition::{Encoded, PartitionWorker, Routed};

use crate::config::Config;
use crate::config::{Guarantee, Mode};
use crate::decision::Decider;
use crate::features::{load_feature_set, EngineLimits, FeatureSet, FeatureSpecError};
use crate::internal_events::{
    BatchAborted, BatchCommitted, HotPathMetrics, KafkaErrorEvent, StateRestored,
};
use crate::latency::LatencyHistogram;
use crate::lifecycle::{Health, Shutdown};
use crate::metrics::Metrics;
use crate::model::ModelStore;
use crate::rules::reload::{RuleStore, RulesSource};
use crate::sink::{Sink, SinkError};
use crate::source::currency::RatesSource;
use crate::source::event::{InvalidReason, Limits};
use crate::source::kafka::consumer_config;
use crate::state::TableStats;
use assignment::PipelineContext;
use prometheus::IntCounter;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use restore::Restore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use topics::TopicsError;

/// Why the pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The feature set could not be loaded.
    #[error(transparent)]
    Features(#[from] FeatureSpecError),
    /// The rules could not be loaded.
    #[error("rules:\n{0}")]
    Rules(#[from] crate::rules::RulesError),
    /// The base currency or the rates file is not usable.
    #[error("{0}")]
    Rates(String),
    /// The rules watcher could not start.
    #[error("cannot watch the rules directory: {0}")]
    Watch(#[from] std::io::Error),
    /// The consumer could not be created or subscribed.
    #[error("consumer: {0}")]
    Consumer(#[from] KafkaError),
    /// The producer failed beyond recovery.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The brokers cannot be reached, or a topic is missing or wrongly partitioned.
    #[error(transparent)]
    Topics(#[from] TopicsError),
    /// Some record the pipeline writes could not fit the producer's limit.
    #[error("record size: {0}")]
    RecordLimits(String),
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
    /// Partition assignments received (one per rebalance that gave this instance partitions).
    pub assignments: u64,
    /// Nanoseconds from reading each valid event to handing its output to the producer.
    pub hot_path_ns: LatencyHistogram,
    /// With terminal features repartitioned: nanoseconds from reading each valid
    /// input event to handing it to the producer for its terminal's owner.
    pub route_ns: LatencyHistogram,
}

/// Runs the pipeline until `shutdown` is triggered, then finishes the open batch,
/// commits it and returns.
pub fn run(
    config: &Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<RunStats, PipelineError> {
    run_with_rules(
        config,
        RulesSource::from_config(&config.rules),
        metrics,
        health,
        shutdown,
    )
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
    run_inner(config, rules, metrics, health, shutdown, None)
}

/// [`run_with_rules`] also deciding the decision API's calls from `calls`
/// ([`crate::api::serve`]).
pub fn run_with_api(
    config: &Config,
    rules: RulesSource,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: Shutdown,
    calls: crate::api::call::CallReceiver,
) -> Result<RunStats, PipelineError> {
    run_inner(config, rules, metrics, health, shutdown, Some(calls))
}

/// Longest wait for an API call while no Kafka message is ready: a Kafka message
/// arriving meanwhile waits at most this long.
const API_IDLE_WAIT: Duration = Duration::from_millis(1);

fn run_inner(
    config: &Config,
    rules: RulesSource,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: Shutdown,
    calls: Option<crate::api::call::CallReceiver>,
) -> Result<RunStats, PipelineError> {
    let rates = RatesSource::from_config(&config.currency)
        .map_err(|e| PipelineError::Rates(e.to_string()))?;
    let table = rates
        .reload()
        .map_err(|e| PipelineError::Rates(e.to_string()))?;
    reload::report_rates(&table, &metrics);
    let set = Arc::new(load_feature_set(&config.features.set)?);
    crate::internal_events::register(&metrics);
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
        rates,
        metrics.clone(),
        shutdown.clone(),
    )?;
    crate::sink::check_record_limits(config).map_err(PipelineError::RecordLimits)?;
    // Also the first contact with the brokers: an unreachable broker or a failed
    // TLS handshake ends the start here, with the client's reason.
    let input_partitions = topics::check(&topics::survey(config, topics::Create::Internal)?)?;
    let sink = Sink::start(config)?;
    let terminal_partitions = (!config.kafka.terminal_topic.is_empty()
        && config.processing.mode == Mode::Decide)
        .then_some(input_partitions as i32);
    let mut pipeline = Pipeline::new(config, set, rules, models, sink, metrics.clone());
    pipeline.workers.terminal_partitions = terminal_partitions;
    let a = &config.api;
    pipeline.api = calls.map(|calls| {
        api::ApiSide::new(
            calls,
            input_partitions as i32,
            a.partitioner,
            a.replay_entries,
        )
    });
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
    if terminal_partitions.is_some() {
        topics.push(config.kafka.terminal_topic.as_str());
    }
    consumer.subscribe(&topics)?;
    tracing::info!(
        brokers = %config.kafka.brokers,
        group = %config.kafka.group_id,
        input = %config.kafka.input_topic,
        output = %config.kafka.output_topic,
        guarantee = ?config.processing.guarantee,
        terminal_topic = %config.kafka.terminal_topic,
        "pipeline started"
    );
    while !shutdown.is_triggered() {
        // While partitions restore, poll without waiting: the restore gets the time.
        // With the API on, the wait is for calls instead (librdkafka's poll cannot
        // be woken early).
        let (restoring, api) = {
            let p = consumer.context().lock();
            (!p.restoring.is_empty(), p.api.is_some())
        };
        let wait = if restoring || api {
            Duration::ZERO
        } else {
            Duration::from_millis(50)
        };
        let polled = consumer.poll(wait);
        let mut p = consumer.context().lock();
        let idle = polled.is_none() && !restoring;
        match polled {
            Some(Ok(msg)) => {
                health.set_broker_ok(true);
                if !p.held_back(&consumer, &msg) {
                    p.handle(&msg)?;
                }
            }
            Some(Err(e)) => KafkaErrorEvent::Consume(&e).emit(&p.metrics),
            None => {}
        }
        if api {
            p.serve_calls(if idle { API_IDLE_WAIT } else { Duration::ZERO })?;
        }
        p.sink.poll();
        p.maybe_commit(&consumer)?;
        p.maybe_publish();
        if !p.restoring.is_empty() {
            p.restore_step(&consumer);
            health.set_restoring(p.restoring.len());
        }
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

/// This instance's partition workers, by partition number.
struct Workers {
    slots: Vec<Option<PartitionWorker>>,
    set: Arc<FeatureSet>,
    limits: EngineLimits,
    dedup_window: usize,
    /// Partitions of the terminal topic, when terminal features are repartitioned.
    terminal_partitions: Option<i32>,
}

impl Workers {
    fn new_worker(&self) -> PartitionWorker {
        PartitionWorker::new(
            self.set.clone(),
            self.limits,
            self.dedup_window,
            self.terminal_partitions,
        )
    }

    fn slot(&mut self, partition: i32) -> &mut Option<PartitionWorker> {
        let i = partition.max(0) as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        &mut self.slots[i]
    }

    /// The worker of `partition`, created if missing (a message can only come from
    /// an assigned partition, but be safe if not).
    fn get(&mut self, partition: i32) -> &mut PartitionWorker {
        if self.slot(partition).is_none() {
            let w = self.new_worker();
            return self.slot(partition).insert(w);
        }
        self.slot(partition).as_mut().expect("just checked")
    }

    /// A worker with empty state at `partition`, replacing any.
    fn fresh(&mut self, partition: i32) -> &mut PartitionWorker {
        let w = self.new_worker();
        self.slot(partition).insert(w)
    }

    fn remove(&mut self, partition: i32) {
        if let Some(w) = self.slots.get_mut(partition.max(0) as usize) {
            *w = None;
        }
    }

    /// The worker of `partition`, if assigned.
    fn get_mut(&mut self, partition: i32) -> Option<&mut PartitionWorker> {
        self.slots.get_mut(partition.max(0) as usize)?.as_mut()
    }

    fn assigned(&self) -> usize {
        self.iter().count()
    }

    fn iter(&self) -> impl Iterator<Item = &PartitionWorker> {
        self.slots.iter().flatten()
    }
}

/// Everything the hot path touches, owned by the polling thread.
struct Pipeline {
    input_topic: String,
    labels_topic: String,
    output_topic: String,
    dlq_topic: String,
    checkpoint_topic: String,
    terminal_topic: String,
    checkpoints: bool,
    /// Forward input unchanged (the load test's Kafka-only baseline).
    passthrough: bool,
    /// Rebuild state from the input on assignment and after an abort.
    restore_state: bool,
    config: Config,
    limits: Limits,
    max_batch_events: usize,
    commit_interval: Duration,
    decider: Decider,
    sink: Sink,
    workers: Workers,
    /// Partitions whose state is being rebuilt, paused until done (oldest first).
    restoring: Vec<Restore>,
    batch_events: usize,
    /// Decisions and dead letters of the open batch (discounted if it aborts).
    batch_output: (u64, u64),
    batch_started: Instant,
    out: Encoded,
    routed: Routed,
    label_record: Vec<u8>,
    metrics: Arc<Metrics>,
    /// Per-event metrics, flushed with each commit and publish.
    hot: HotPathMetrics,
    by_reason: Vec<IntCounter>,
    stats: RunStats,
    last_publish: Instant,
    published: HashMap<String, TableStats>,
    dlq_log: RateLimitedLog,
    /// The decision API's calls, when it is on.
    api: Option<api::ApiSide>,
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
            terminal_topic: config.kafka.terminal_topic.clone(),
            checkpoints: p.guarantee == Guarantee::ExactlyOnce,
            passthrough: p.mode == Mode::Passthrough,
            restore_state: p.restore_state && p.guarantee == Guarantee::ExactlyOnce,
            config: config.clone(),
            limits: Limits::from_config(p),
            max_batch_events: p.max_batch_events.max(1),
            commit_interval: Duration::from_millis(p.commit_interval_ms),
            decider: Decider::new(rules, set.len(), Some(metrics.clone())).with_models(models),
            workers: Workers {
                slots: Vec::new(),
                set,
                limits: EngineLimits::from_config(&config.state),
                dedup_window: p.dedup_window_events,
                terminal_partitions: None,
            },
            sink,
            restoring: Vec::new(),
            batch_events: 0,
            batch_output: (0, 0),
            batch_started: Instant::now(),
            out: Encoded::default(),
            routed: Routed::default(),
            label_record: Vec::new(),
            hot: HotPathMetrics::new(&metrics),
            by_reason: InvalidReason::ALL
                .iter()
                .map(|r| metrics.events_invalid.with_label_values(&[r.code()]))
                .collect(),
            metrics,
            stats: RunStats::default(),
            last_publish: Instant::now(),
            published: HashMap::new(),
            dlq_log: RateLimitedLog::default(),
            api: None,
        }
    }

    /// Puts a worker with empty state at `partition` (replacing any) and, when
    /// `restore_to` is given, starts its offsets there and queues the rebuild of
    /// its state from the input up to there; returns whether it queued one (the partition must then stay paused until
    /// [`Pipeline::restore_step`] finishes it).
    fn fresh_worker(&mut self, partition: i32, restore_to: Option<Checkpoint>) -> bool {
        let worker = self.workers.fresh(partition);
        if let Some(cp) = &restore_to {
            worker.resume_at(cp);
        }
        self.restoring.retain(|r| r.partition() != partition);
        let api = self.api.is_some();
        let mut until = match restore_to.filter(|_| self.restore_state) {
            Some(until) => until,
            None if api && self.restore_state => Checkpoint::default(),
            None => return false,
        };
        if api {
            // Calls' records are re-read before calls are taken, checkpoint or not.
            until.input_offset.get_or_insert(0);
        }
        let restore = Restore::new(&self.config, partition, &until);
        self.restoring.push(if api {
            restore.with_api_tail()
        } else {
            restore
        });
        true
    }

    /// Drops `partition`'s worker and any restore of it (revoked).
    fn remove_worker(&mut self, partition: i32) {
        self.workers.remove(partition);
        self.restoring.retain(|r| r.partition() != partition);
    }

    /// The topic-partitions that belong to input partition `partition`: its input,
    /// labels and terminal partitions, for those topics in use.
    fn partition_set(&self, partition: i32) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        let terminal = self
            .workers
            .terminal_partitions
            .map(|_| &self.terminal_topic);
        for topic in [Some(&self.input_topic), Some(&self.labels_topic), terminal]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_empty())
        {
            tpl.add_partition(topic, partition);
        }
        tpl
    }

    /// Pauses `partition`'s topic-partitions while its state is rebuilt.
    fn pause(&self, consumer: &BaseConsumer<PipelineContext>, partition: i32) {
        if let Err(e) = consumer.pause(&self.partition_set(partition)) {
            tracing::error!(partition, error = %e, "cannot pause a restoring partition");
        }
    }

    /// A message of a partition still restoring must wait: rewinds it to that
    /// message (it is read again once the partition resumes). Paused partitions
    /// deliver nothing, so this only catches a message fetched before the pause.
    fn held_back(
        &self,
        consumer: &BaseConsumer<PipelineContext>,
        msg: &BorrowedMessage<'_>,
    ) -> bool {
        let p = msg.partition();
        if self.restoring.is_empty() || !self.restoring.iter().any(|r| r.partition() == p) {
            return false;
        }
        let at = Offset::Offset(msg.offset());
        if let Err(e) = consumer.seek(msg.topic(), p, at, Duration::ZERO) {
            tracing::error!(partition = p, error = %e, "cannot hold back a message of a restoring partition");
        }
        true
    }

    /// Advances the oldest restore for a slice of time (the poll loop calls it
    /// between polls); a finished or failed one resumes its partition.
    fn restore_step(&mut self, consumer: &BaseConsumer<PipelineContext>) {
        let Some(r) = self.restoring.first_mut() else {
            return;
        };
        let partition = r.partition();
        let Some(worker) = self.workers.get_mut(partition) else {
            self.restoring.remove(0);
            return;
        };
        let slice = Duration::from_millis(100);
        match r.step(&self.config, worker, &self.limits, slice) {
            Ok(false) => return,
            Ok(true) => {
                let r = &r.done;
                StateRestored {
                    partition,
                    events: r.events,
                    labels: r.labels,
                    routed: r.routed,
                    seconds: r.seconds,
                }
                .emit(&self.metrics);
            }
            Err(e) => KafkaErrorEvent::Restore {
                partition,
                error: &e,
            }
            .emit(&self.metrics),
        }
        self.restoring.remove(0);
        if let Err(e) = consumer.resume(&self.partition_set(partition)) {
            tracing::error!(partition, error = %e, "cannot resume a restored partition");
        }
    }

    fn maybe_commit(&mut self, consumer: &BaseConsumer<PipelineContext>) -> Result<(), SinkError> {
        // A batch with a record that could not be queued only aborts: do it now.
        if self.batch_events >= self.max_batch_events
            || self.sink.batch_failed()
            || (self.batch_events > 0 && self.batch_started.elapsed() >= self.commit_interval)
        {
            self.commit(consumer)?;
        }
        Ok(())
    }

    /// Commits the open batch: output and input offsets together.
    fn commit(&mut self, consumer: &BaseConsumer<PipelineContext>) -> Result<(), SinkError> {
        self.hot.flush();
        if self.batch_events == 0 {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (p, w) in self.workers.slots.iter().enumerate() {
            let Some(w) = w.as_ref().filter(|w| w.dirty()) else {
                continue;
            };
            let cp = w.checkpoint();
            for (topic, next) in self.tracked(&cp) {
                let _ = offsets.add_partition_offset(topic, p as i32, Offset::Offset(next));
            }
            if self.checkpoints {
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
                for w in self.workers.slots.iter_mut().flatten() {
                    w.mark_committed();
                }
                if let Some(api) = &mut self.api {
                    api.committed();
                }
                self.batch_events = 0;
                self.batch_output = (0, 0);
                self.stats.commits += 1;
                BatchCommitted.emit(&self.metrics);
                Ok(())
            }
            Err(SinkError::Aborted(reason)) => {
                self.stats.aborts += 1;
                // Nothing of the batch is visible; it will be decided again.
                self.stats.decided -= self.batch_output.0;
                self.stats.invalid -= self.batch_output.1;
                self.batch_output = (0, 0);
                if let Some(api) = &mut self.api {
                    api.aborted();
                }
                BatchAborted { reason: &reason }.emit(&self.metrics);
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
        for p in 0..self.workers.slots.len() {
            let called = self.api.as_mut().is_some_and(|a| a.take_touched(p as i32));
            let Some(w) = self.workers.slots[p].as_mut() else {
                continue;
            };
            if !w.dirty() && !called {
                continue;
            }
            let until = w.rewind();
            for (topic, offset) in self.tracked(&until) {
                if let Err(e) = consumer.seek(topic, p as i32, Offset::Offset(offset), timeout) {
                    tracing::error!(error = %e, topic = %topic, partition = p, "seek after abort failed");
                }
            }
            // The state included the aborted events: rebuild it up to the last commit.
            if self.fresh_worker(p as i32, Some(until)) {
                self.pause(consumer, p as i32);
            }
        }
    }

    /// The topics and offsets a checkpoint records, for the topics in use.
    fn tracked<'a>(&'a self, cp: &Checkpoint) -> impl Iterator<Item = (&'a str, i64)> {
        [
            (self.input_topic.as_str(), cp.input_offset),
            (self.labels_topic.as_str(), cp.labels_offset),
            (self.terminal_topic.as_str(), cp.terminal_offset),
        ]
        .into_iter()
        .filter_map(|(topic, offset)| Some((topic, offset?)))
        .filter(|(topic, _)| !topic.is_empty())
    }

    fn maybe_publish(&mut self) {
        if self.last_publish.elapsed() >= Duration::from_secs(1) {
            self.publish();
        }
    }

    /// Publishes state gauges and counters (once a second, off the per-event path).
    fn publish(&mut self) {
        self.last_publish = Instant::now();
        self.hot.flush();
        let mut totals: HashMap<&str, (usize, TableStats)> = HashMap::new();
        let mut bytes = 0;
        for w in self.workers.iter() {
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
