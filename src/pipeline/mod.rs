//! Pipeline: the consume → features → decide → produce loop, its batching and
//! commits, and partition assignment.
//!
//! One thread polls the consumer and runs the hot path. State is owned per
//! partition ([`PartitionWorker`]); nothing is shared between partitions. The
//! loop is a few owned steps, plain structs called in turn: the workers and
//! their restores ([`workers`]), the hot path ([`handle`]) and the decision
//! API's calls ([`api`]), output routing ([`output`]), the batch and its
//! transaction ([`batch`], [`commit`]), whose commit runs on a thread of its
//! own while inputs are still decided, their records parked for the next
//! transaction ([`parked`]), and publishing ([`publish`]). The
//! rebalance callbacks run on the same thread, inside `poll`, so they commit the
//! open batch before partitions are revoked ([`assignment`]). With terminal
//! features repartitioned, events make a second pass through the terminal topic
//! ([`terminal`]) and are decided there.

mod api;
mod assignment;
mod batch;
pub mod checkpoint;
mod commit;
mod handle;
mod offsets;
mod output;
mod parked;
mod partition;
mod publish;
mod reload;
pub mod restore;
pub mod terminal;
pub mod topics;
mod workers;

#[cfg(test)]
mod tests;

pub use checkpoint::Checkpoint;
pub use offsets::OffsetTrack;
pub use partition::{Encoded, PartitionWorker, Routed};

use crate::config::Config;
use crate::config::{Guarantee, Mode};
use crate::decision::Decider;
use crate::features::{load_feature_set, EngineLimits, FeatureSet, FeatureSpecError};
use crate::model::ModelStore;
use crate::ops::internal_events::KafkaErrorEvent;
use crate::ops::latency::LatencyHistogram;
use crate::ops::lifecycle::{Health, Shutdown};
use crate::ops::metrics::Metrics;
use crate::rules::reload::{RuleStore, RulesSource};
use crate::sink::{Committer, Sink, SinkError};
use crate::source::currency::RatesSource;
use crate::source::event::Limits;
use crate::source::kafka::consumer_config;
use assignment::PipelineContext;
use batch::Batch;
use output::Output;
use publish::Publisher;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use restore::Restore;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use topics::TopicsError;
use workers::Workers;

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

/// Longest wait in one turn of the loop when there is nothing to do.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Longest wait for a Kafka message while a commit runs (and the API is off):
/// the commit's end is noticed at most this late.
const COMMITTING_WAIT: Duration = Duration::from_millis(1);

fn run_inner(
    config: &Config,
    rules: RulesSource,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: Shutdown,
    calls: Option<crate::api::call::CallReceiver>,
) -> Result<RunStats, PipelineError> {
    let engine = Engine::load(config, rules, &metrics)?;
    let _watcher = reload::watch(
        engine.rules.clone(),
        engine.models.clone(),
        engine.rates,
        metrics.clone(),
        shutdown.clone(),
    )?;
    crate::sink::check_record_limits(config).map_err(PipelineError::RecordLimits)?;
    // Also the first contact with the brokers: an unreachable broker or a failed
    // TLS handshake ends the start here, with the client's reason.
    let input_partitions = topics::check(&topics::survey(config, topics::Create::Internal)?)?;
    let sink = Sink::start(config)?;
    let mut pipeline = Pipeline::new(
        config,
        engine.set,
        engine.rules,
        engine.models,
        sink,
        metrics.clone(),
    )?;
    pipeline.workers.terminal_partitions = (!config.kafka.terminal_topic.is_empty()
        && config.processing.mode == Mode::Decide)
        .then_some(input_partitions as i32);
    let a = &config.api;
    pipeline.api = calls.map(|calls| {
        api::ApiSide::new(
            calls,
            input_partitions as i32,
            a.partitioner,
            a.replay_entries,
        )
    });
    let consumer = subscribe(config, pipeline, metrics, health.clone())?;
    poll_loop(&consumer, &health, &shutdown)?;
    health.set_stopping();
    let stats = {
        let mut p = consumer.context().lock();
        p.finish_calls()?;
        p.commit(&consumer)?;
        p.publish();
        let mut stats = std::mem::take(&mut p.stats);
        stats.hot_path_ns = std::mem::take(&mut p.output.hot_path_ns);
        stats.route_ns = std::mem::take(&mut p.output.route_ns);
        stats
    };
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!(?stats, "pipeline stopped");
    Ok(stats)
}

/// What deciding needs, loaded from the configured files: the feature set,
/// the rules, the models and the currency rates.
struct Engine {
    set: Arc<FeatureSet>,
    rules: Arc<RuleStore>,
    models: Arc<ModelStore>,
    rates: RatesSource,
}

impl Engine {
    fn load(config: &Config, rules: RulesSource, metrics: &Metrics) -> Result<Self, PipelineError> {
        let rates = RatesSource::from_config(&config.currency)
            .map_err(|e| PipelineError::Rates(e.to_string()))?;
        let table = rates
            .reload()
            .map_err(|e| PipelineError::Rates(e.to_string()))?;
        reload::report_rates(&table, metrics);
        let set = Arc::new(load_feature_set(&config.features.set)?);
        crate::ops::internal_events::register(metrics);
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
        reload::report_models(&models, metrics);
        Ok(Self {
            set,
            rules,
            models,
            rates,
        })
    }
}

/// The consumer, owning `pipeline` in its context, subscribed to the topics in use.
fn subscribe(
    config: &Config,
    pipeline: Pipeline,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<BaseConsumer<PipelineContext>, PipelineError> {
    let terminal = pipeline.workers.terminal_partitions.is_some();
    let context = PipelineContext {
        pipeline: Mutex::new(pipeline),
        metrics,
        health,
        input_topic: config.kafka.input_topic.clone(),
        config: config.clone(),
    };
    let consumer: BaseConsumer<PipelineContext> =
        consumer_config(config).create_with_context(context)?;
    let k = &config.kafka;
    let mut topics = vec![k.input_topic.as_str()];
    if !k.labels_topic.is_empty() {
        topics.push(k.labels_topic.as_str());
    }
    if terminal {
        topics.push(k.terminal_topic.as_str());
    }
    consumer.subscribe(&topics)?;
    tracing::info!(
        brokers = %k.brokers,
        group = %k.group_id,
        input = %k.input_topic,
        output = %k.output_topic,
        guarantee = ?config.processing.guarantee,
        terminal_topic = %k.terminal_topic,
        "pipeline started"
    );
    Ok(consumer)
}

/// Polls and decides until `shutdown`. While a commit runs, Kafka messages (with
/// the API off) and the decision API's calls are still decided, their records
/// parked, up to `processing.max_batch_events`; past that, input waits for the
/// commit's end.
fn poll_loop(
    consumer: &BaseConsumer<PipelineContext>,
    health: &Health,
    shutdown: &Shutdown,
) -> Result<(), PipelineError> {
    while !shutdown.is_triggered() {
        // While partitions restore, poll without waiting: the restore gets the time.
        // With the API on, the wait is for calls instead (librdkafka's poll cannot
        // be woken early); while a commit runs, shortly, for its end too; and
        // once nothing more can park, for its end only. With the API on, Kafka
        // input waits for the commit's end: read flat out, it would take the
        // CPU the calls need (`loadtest --api-addr` with wrk at 5,000 calls/s:
        // p99 at the 50 ms deadline); calls are still decided.
        let (restoring, api, committing, full) = {
            let p = consumer.context().lock();
            let api = p.api.is_some();
            (
                !p.restoring.is_empty(),
                api,
                p.batch.committing(),
                p.batch.committing() && (api || !p.batch.can_park()),
            )
        };
        let polled = match (full, restoring || api, committing) {
            (true, _, _) => None,
            (false, true, _) => consumer.poll(Duration::ZERO),
            (false, false, true) => consumer.poll(COMMITTING_WAIT),
            (false, false, false) => consumer.poll(IDLE_WAIT),
        };
        let mut p = consumer.context().lock();
        let idle = polled.is_none() && !restoring;
        match polled {
            Some(Ok(msg)) => {
                health.set_broker_ok(true);
                if !p.held_back(consumer, &msg) {
                    p.handle(&msg)?;
                }
            }
            Some(Err(e)) => KafkaErrorEvent::Consume(&e).emit(&p.metrics),
            None => {}
        }
        if api {
            p.serve_calls(if idle { API_IDLE_WAIT } else { Duration::ZERO })?;
        }
        p.batch.poll();
        // Nothing more can be read: wait for the commit's end (it wakes the
        // wait); with the API on, only once no call can park either, and at
        // most as long as for a call.
        let wait = match (full && !restoring, api) {
            (true, false) => IDLE_WAIT,
            (true, true) if !p.batch.can_park() => API_IDLE_WAIT,
            _ => Duration::ZERO,
        };
        p.maybe_commit(consumer, wait)?;
        if p.publisher.due() {
            p.publish();
        }
        if !p.restoring.is_empty() {
            p.restore_step(consumer);
            health.set_restoring(p.restoring.len());
        }
    }
    Ok(())
}

/// Everything the hot path touches, owned by the polling thread: the steps of
/// the loop and what they share.
struct Pipeline {
    config: Config,
    limits: Limits,
    /// Write checkpoints into each transaction (exactly-once mode).
    checkpoints: bool,
    /// Forward input unchanged (the load test's Kafka-only baseline).
    passthrough: bool,
    /// Rebuild state from the input on assignment and after an abort.
    restore_state: bool,
    decider: Decider,
    workers: Workers,
    /// Partitions whose state is being rebuilt, paused until done (oldest first).
    restoring: Vec<Restore>,
    batch: Batch,
    /// The checkpoints (by partition) the running commit covers.
    committing: Vec<(usize, Checkpoint)>,
    output: Output,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    stats: RunStats,
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
    ) -> Result<Self, SinkError> {
        let p = &config.processing;
        let exactly_once = p.guarantee == Guarantee::ExactlyOnce;
        let committer = exactly_once.then(Committer::start).transpose()?;
        let commit_interval = Duration::from_millis(p.commit_interval_ms);
        Ok(Self {
            config: config.clone(),
            limits: Limits::from_config(p),
            checkpoints: exactly_once,
            passthrough: p.mode == Mode::Passthrough,
            restore_state: p.restore_state && exactly_once,
            decider: Decider::new(rules, set.len(), Some(metrics.clone())).with_models(models),
            workers: Workers::new(
                set,
                EngineLimits::from_config(&config.state),
                p.dedup_window_events,
            ),
            restoring: Vec::new(),
            batch: Batch::new(sink, committer, p.max_batch_events, commit_interval),
            committing: Vec::new(),
            output: Output::new(config, metrics.clone()),
            publisher: Publisher::new(metrics.clone()),
            metrics,
            stats: RunStats::default(),
            api: None,
        })
    }

    /// Publishes the per-event counters and the state's metrics.
    fn publish(&mut self) {
        self.output.hot.flush();
        self.publisher.publish(self.workers.iter());
    }
}
