//! Every metric fraudstream exports, in one place. Label sets are small and
//! fixed: never an account, card or terminal id.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Buckets from 1 microsecond to 10 ms for the in-process hot path.
const HOT_PATH_BUCKETS: &[f64] = &[
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2,
];
/// Buckets from 20 microseconds to 1 s for decision API calls.
const API_BUCKETS: &[f64] = &[
    2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.25, 1.0,
];
/// Buckets from 1 ms to 60 s for end-to-end latency.
const E2E_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The process's metrics and the registry that exports them.
pub struct Metrics {
    /// Registry holding every metric below.
    pub registry: Registry,
    /// Messages read from the input topic.
    pub events_consumed: IntCounter,
    /// Valid events that got a decision.
    pub events_decided: IntCounter,
    /// Invalid events, by reason.
    pub events_invalid: IntCounterVec,
    /// Events whose id was seen recently: not decided again.
    pub events_duplicate: IntCounter,
    /// Events forwarded to their terminal's owner (terminal features repartitioned).
    pub events_routed: IntCounter,
    /// Events re-read to rebuild partition state after an assignment.
    pub state_restored_events: IntCounter,
    /// How long the last state restore took, seconds.
    pub state_restore_seconds: Histogram,
    /// Decisions, by action.
    pub decisions: IntCounterVec,
    /// Records written to the dead-letter topic.
    pub dlq_records: IntCounter,
    /// Labels read, by outcome (`applied`, `corrected`, `repeated`, `parked`, `unknown`,
    /// `invalid`; `routed` when forwarded to the owner of their terminal).
    pub labels: IntCounterVec,
    /// Read-to-decision time in the processor.
    pub hot_path_seconds: Histogram,
    /// Event time to decision produced.
    pub end_to_end_seconds: Histogram,
    /// Decision scores.
    pub score: Histogram,
    /// Consumer lag per input partition.
    pub consumer_lag: IntGaugeVec,
    /// Entities held, by entity kind.
    pub state_entities: IntGaugeVec,
    /// Approximate bytes of entity state.
    pub state_bytes: IntGauge,
    /// Event time (epoch seconds) from which every window of the state is full:
    /// its earliest event plus the feature set's reach, latest over partitions.
    pub full_windows_from: IntGauge,
    /// Entity evictions, by entity kind and cause (`idle`, `capacity`).
    pub state_evictions: IntCounterVec,
    /// Out-of-order events, by entity kind and outcome (`applied`, `dropped`).
    pub late_events: IntCounterVec,
    /// Rule hits, by rule id and mode (`live`, `shadow`).
    pub rule_hits: IntCounterVec,
    /// Rule reloads that went live.
    pub rules_reloads: IntCounter,
    /// Rule reloads rejected (the running ruleset stayed).
    pub rules_reload_errors: IntCounter,
    /// Rates-file reloads that went live.
    pub fx_rates_reloads: IntCounter,
    /// Rates-file reloads rejected (the running table stayed).
    pub fx_rates_reload_errors: IntCounter,
    /// Date of the running rates table, Unix seconds (0 without a rates file).
    pub fx_rates_as_of: IntGauge,
    /// The active ruleset version (`version` label), always 1.
    pub rules_info: IntGaugeVec,
    /// Champion model scores.
    pub model_score: Histogram,
    /// Events decided without the model because it could not score.
    pub model_unavailable: IntCounter,
    /// Model reloads that went live.
    pub model_reloads: IntCounter,
    /// Model reloads rejected (the running model stayed).
    pub model_reload_errors: IntCounter,
    /// The active model versions (`role`, `version` labels), always 1.
    pub model_info: IntGaugeVec,
    /// Kafka transactions / batch commits, by outcome (`commit`, `abort`).
    pub transactions: IntCounterVec,
    /// Kafka client errors, by kind.
    pub kafka_errors: IntCounterVec,
    /// Input partitions currently assigned.
    pub assigned_partitions: IntGauge,
    /// 1 when ready to process (assigned and broker reachable).
    pub ready: IntGauge,
    /// Build information (`version` label), always 1.
    pub build_info: IntGaugeVec,
    /// Open connections to the HTTP endpoint.
    pub http_connections: IntGauge,
    /// Failed accepts on the HTTP endpoint (each backed off), e.g. out of file descriptors.
    pub http_accept_errors: IntCounter,
    /// TLS handshakes that failed or timed out (the decision API over TLS).
    pub http_tls_errors: IntCounter,
    /// Decision API calls, by outcome ([`ApiOutcome`]).
    pub api_calls: IntCounterVec,
    /// Decision API call time, from reading the request to its answer.
    pub api_seconds: Histogram,
    /// Decision API calls waiting for the pipeline thread.
    pub api_queue_depth: IntGauge,
    /// Decision API calls forwarded to their partition's owner, by outcome ([`ForwardOutcome`]).
    pub api_forwarded: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    ///
    /// Longer than a screen on purpose: it is the registration list, one
    /// entry per metric (name, help, labels), so that every exported name
    /// reads in one place; splitting it would only scatter that list.
    pub fn new() -> Self {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = r.register(Box::new(pc));
        }
        let m = Self {
            events_consumed: counter(
                &r,
                "fraudstream_events_consumed_total",
                "Messages read from the input topic.",
            ),
            events_decided: counter(
                &r,
                "fraudstream_events_decided_total",
                "Valid events that got a decision.",
            ),
            events_invalid: counter_vec(
                &r,
                "fraudstream_events_invalid_total",
                "Invalid events sent to the dead-letter topic, by reason.",
                &["reason"],
            ),
            events_duplicate: counter(
                &r,
                "fraudstream_events_duplicate_total",
                "Events whose event_id was seen recently on the partition; skipped without a second decision.",
            ),
            events_routed: counter(
                &r,
                "fraudstream_events_routed_total",
                "Events forwarded to the owner of their terminal through the terminal topic, to be decided there.",
            ),
            state_restored_events: counter(
                &r,
                "fraudstream_state_restored_events_total",
                "Input events re-read to rebuild partition state after an assignment.",
            ),
            state_restore_seconds: histogram(
                &r,
                "fraudstream_state_restore_seconds",
                "Time to rebuild one assigned partition's state.",
                &[0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0],
            ),
            decisions: counter_vec(
                &r,
                "fraudstream_decisions_total",
                "Decisions produced, by action.",
                &["action"],
            ),
            dlq_records: counter(
                &r,
                "fraudstream_dlq_records_total",
                "Records written to the dead-letter topic.",
            ),
            labels: counter_vec(
                &r,
                "fraudstream_labels_total",
                "Fraud labels read, by outcome.",
                &["outcome"],
            ),
            hot_path_seconds: histogram(
                &r,
                "fraudstream_hot_path_seconds",
                "Time from reading an event to handing its decision to the producer.",
                HOT_PATH_BUCKETS,
            ),
            end_to_end_seconds: histogram(
                &r,
                "fraudstream_end_to_end_seconds",
                "Time from the input record's timestamp to its decision being produced.",
                E2E_BUCKETS,
            ),
            score: histogram(
                &r,
                "fraudstream_score",
                "Risk score of decisions.",
                &[0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0],
            ),
            consumer_lag: gauge_vec(
                &r,
                "fraudstream_consumer_lag",
                "Messages behind the end of the input partition.",
                &["partition"],
            ),
            state_entities: gauge_vec(
                &r,
                "fraudstream_state_entities",
                "Entities held in memory, by entity kind.",
                &["entity"],
            ),
            state_bytes: gauge(
                &r,
                "fraudstream_state_bytes",
                "Approximate bytes of entity state held.",
            ),
            full_windows_from: gauge(
                &r,
                "fraudstream_state_full_windows_from_timestamp_seconds",
                "Event time from which every feature window has its whole history (earliest event held plus the longest window).",
            ),
            state_evictions: counter_vec(
                &r,
                "fraudstream_state_evictions_total",
                "Entities evicted, by entity kind and cause.",
                &["entity", "cause"],
            ),
            late_events: counter_vec(
                &r,
                "fraudstream_late_events_total",
                "Out-of-order events, by entity kind and outcome.",
                &["entity", "outcome"],
            ),
            rule_hits: counter_vec(
                &r,
                "fraudstream_rule_hits_total",
                "Rule hits, by rule id and mode.",
                &["rule", "mode"],
            ),
            rules_reloads: counter(
                &r,
                "fraudstream_rules_reloads_total",
                "Rule reloads that went live.",
            ),
            fx_rates_reloads: counter(
                &r,
                "fraudstream_fx_rates_reloads_total",
                "Exchange-rate file reloads that went live.",
            ),
            fx_rates_reload_errors: counter(
                &r,
                "fraudstream_fx_rates_reload_errors_total",
                "Exchange-rate file reloads rejected; the running rates stayed.",
            ),
            fx_rates_as_of: gauge(
                &r,
                "fraudstream_fx_rates_as_of_seconds",
                "Date of the running exchange rates, Unix seconds (0 without a rates file).",
            ),
            rules_reload_errors: counter(
                &r,
                "fraudstream_rules_reload_errors_total",
                "Rule reloads rejected; the running ruleset stayed.",
            ),
            rules_info: gauge_vec(
                &r,
                "fraudstream_rules_info",
                "The active ruleset version.",
                &["version"],
            ),
            model_score: histogram(
                &r,
                "fraudstream_model_score",
                "Fraud probability from the champion model.",
                &[0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0],
            ),
            model_unavailable: counter(
                &r,
                "fraudstream_model_unavailable_total",
                "Events decided without the model because it could not score.",
            ),
            model_reloads: counter(
                &r,
                "fraudstream_model_reloads_total",
                "Model reloads that went live.",
            ),
            model_reload_errors: counter(
                &r,
                "fraudstream_model_reload_errors_total",
                "Model reloads rejected; the running model stayed.",
            ),
            model_info: gauge_vec(
                &r,
                "fraudstream_model_info",
                "The active model versions.",
                &["role", "version"],
            ),
            transactions: counter_vec(
                &r,
                "fraudstream_transactions_total",
                "Batch commits (Kafka transactions), by outcome.",
                &["outcome"],
            ),
            kafka_errors: counter_vec(
                &r,
                "fraudstream_kafka_errors_total",
                "Kafka client errors, by kind.",
                &["kind"],
            ),
            assigned_partitions: gauge(
                &r,
                "fraudstream_assigned_partitions",
                "Input partitions assigned to this instance.",
            ),
            ready: gauge(
                &r,
                "fraudstream_ready",
                "1 when partitions are assigned and the broker is reachable.",
            ),
            build_info: gauge_vec(
                &r,
                "fraudstream_build_info",
                "Build information.",
                &["version"],
            ),
            http_connections: gauge(
                &r,
                "fraudstream_http_connections",
                "Open connections to the HTTP endpoint.",
            ),
            http_accept_errors: counter(
                &r,
                "fraudstream_http_accept_errors_total",
                "Failed accepts on the HTTP endpoint, each followed by a back-off.",
            ),
            http_tls_errors: counter(
                &r,
                "fraudstream_http_tls_errors_total",
                "TLS handshakes that failed or timed out (e.g. a client without a certificate signed by api.tls_client_ca).",
            ),
            api_calls: counter_vec(
                &r,
                "fraudstream_api_calls_total",
                "Decision API calls (POST /v1/decisions), by outcome.",
                &["outcome"],
            ),
            api_seconds: histogram(
                &r,
                "fraudstream_api_call_seconds",
                "Decision API call time, from reading the request to its answer.",
                API_BUCKETS,
            ),
            api_queue_depth: gauge(
                &r,
                "fraudstream_api_queue_depth",
                "Decision API calls waiting for the pipeline thread.",
            ),
            api_forwarded: counter_vec(
                &r,
                "fraudstream_api_forwarded_total",
                "Decision API calls forwarded to the instance owning their partition, by outcome.",
                &["outcome"],
            ),
            registry: r,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Pre-create label values so series exist (at 0) from the first scrape;
        // the stages' own label values by `internal_events::register`.
        for outcome in BatchOutcome::ALL {
            m.transactions.with_label_values(&[outcome.as_str()]);
        }
        for kind in KafkaErrorKind::ALL {
            m.kafka_errors.with_label_values(&[kind.as_str()]);
        }
        for outcome in ApiOutcome::ALL {
            m.api_calls.with_label_values(&[outcome.code()]);
        }
        for outcome in ForwardOutcome::ALL {
            m.api_forwarded.with_label_values(&[outcome.code()]);
        }
        m
    }

    /// Creates the per-entity series (at 0) for the entity kinds of a feature set.
    pub fn register_entities<'a>(&self, entities: impl Iterator<Item = &'a str>) {
        for e in entities {
            self.state_entities.with_label_values(&[e]);
            for cause in ["idle", "capacity"] {
                self.state_evictions.with_label_values(&[e, cause]);
            }
            for outcome in ["applied", "dropped"] {
                self.late_events.with_label_values(&[e, outcome]);
            }
        }
    }

    /// Marks `version` as the active ruleset.
    pub fn set_rules_version(&self, version: &str) {
        self.rules_info.reset();
        self.rules_info.with_label_values(&[version]).set(1);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Label `kind` of `fraudstream_kafka_errors_total`: where a Kafka error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaErrorKind {
    /// Reported by the client itself (broker down, transport).
    Client,
    /// Returned by a poll of the consumer.
    Consume,
    /// An assignment or revocation that could not be applied.
    Rebalance,
    /// The checkpoints could not be read at assignment.
    Checkpoint,
    /// A partition's state could not be re-read.
    Restore,
}

impl KafkaErrorKind {
    /// Every kind, each exported from the start.
    pub const ALL: [Self; 5] = [
        Self::Client,
        Self::Consume,
        Self::Rebalance,
        Self::Checkpoint,
        Self::Restore,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Consume => "consume",
            Self::Rebalance => "rebalance",
            Self::Checkpoint => "checkpoint",
            Self::Restore => "restore",
        }
    }
}

/// Label `outcome` of `fraudstream_transactions_total`: how a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Committed with its offsets.
    Commit,
    /// Aborted; it is read and decided again.
    Abort,
}

impl BatchOutcome {
    /// Every outcome, each exported from the start.
    pub const ALL: [Self; 2] = [Self::Commit, Self::Abort];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Commit => "commit",
            Self::Abort => "abort",
        }
    }
}

/// How a call ended, the `outcome` label of `fraudstream_api_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiOutcome {
    /// Decided.
    Decided,
    /// Answered with the decision of an earlier call with the same `event_id`.
    Replayed,
    /// Already decided from the input topic (409).
    Duplicate,
    /// Past its deadline: the fallback decision.
    Timeout,
    /// Not a valid payment or request (400).
    Invalid,
    /// Body over the size limit (413).
    Oversized,
    /// Body not received whole within `api.body_timeout_ms` (408).
    SlowBody,
    /// Missing or wrong bearer token (401).
    Unauthorized,
    /// The queue was full (429).
    QueueFull,
    /// The account's partition is restoring (503).
    Restoring,
    /// The account's partition is not assigned to this instance (503).
    NotOwner,
    /// The processor is stopping (503).
    Unavailable,
    /// Forwarded to the instance owning the account's partition, which answered.
    Forwarded,
}

impl ApiOutcome {
    /// Every outcome, for pre-registering label values.
    pub const ALL: [ApiOutcome; 13] = [
        Self::Decided,
        Self::Replayed,
        Self::Duplicate,
        Self::Timeout,
        Self::Invalid,
        Self::Oversized,
        Self::SlowBody,
        Self::Unauthorized,
        Self::QueueFull,
        Self::Restoring,
        Self::NotOwner,
        Self::Unavailable,
        Self::Forwarded,
    ];

    /// The label value.
    pub fn code(self) -> &'static str {
        match self {
            Self::Decided => "decided",
            Self::Replayed => "replayed",
            Self::Duplicate => "duplicate",
            Self::Timeout => "timeout",
            Self::Invalid => "invalid",
            Self::Oversized => "oversized",
            Self::SlowBody => "slow_body",
            Self::Unauthorized => "unauthorized",
            Self::QueueFull => "queue_full",
            Self::Restoring => "restoring",
            Self::NotOwner => "not_owner",
            Self::Unavailable => "unavailable",
            Self::Forwarded => "forwarded",
        }
    }
}

/// How a forwarded call ended, the `outcome` label of `fraudstream_api_forwarded_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardOutcome {
    /// The owner answered with a decision (200).
    Decided,
    /// The owner answered otherwise (its partition moved on, restoring, 4xx...).
    Refused,
    /// The owner could not be reached (the caller got 503).
    Unreachable,
    /// The owner did not answer by the deadline (the caller got the fallback).
    Timeout,
}

impl ForwardOutcome {
    /// Every outcome, for pre-registering label values.
    pub const ALL: [Self; 4] = [
        Self::Decided,
        Self::Refused,
        Self::Unreachable,
        Self::Timeout,
    ];

    /// The label value.
    pub fn code(self) -> &'static str {
        match self {
            Self::Decided => "decided",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
        }
    }
}
