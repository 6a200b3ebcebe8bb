//! Configuration: built-in defaults, `config/default.toml`, a `--config` file,
//! `FRAUDSTREAM__SECTION__KEY` environment variables, then command-line flags.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

mod checks;
#[cfg(test)]
mod tests;

pub use checks::{
    advertised_url_problem, MAX_API_QUEUE, MAX_API_REPLAY, MAX_DEDUP_WINDOW_EVENTS,
    MAX_HTTP_CONNECTIONS,
};

/// A configuration problem: one line per problem, each naming where the value
/// came from (`file:line:col`, an environment variable or a flag), the key, and
/// what was expected.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka connection and topics.
    pub kafka: KafkaConfig,
    /// Event handling and commit behaviour.
    pub processing: ProcessingConfig,
    /// Entity state limits.
    pub state: StateConfig,
    /// Which feature set to compute.
    pub features: FeaturesConfig,
    /// Where the rules are.
    pub rules: RulesConfig,
    /// Which model scores events.
    pub model: ModelConfig,
    /// Metrics and health HTTP endpoint.
    pub metrics: MetricsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Base currency and exchange rates.
    pub currency: CurrencyConfig,
    /// The synchronous decision API (`POST /v1/decisions`).
    pub api: ApiConfig,
}

/// Kafka connection, topics and librdkafka passthrough settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group id; instances with the same id share the partitions.
    pub group_id: String,
    /// Topic of payment events.
    pub input_topic: String,
    /// Topic decisions are written to.
    pub output_topic: String,
    /// Topic of late fraud labels (empty to disable).
    pub labels_topic: String,
    /// Dead-letter topic for invalid events.
    pub dlq_topic: String,
    /// Compacted topic of per-partition checkpoints (exactly-once mode); at least as
    /// many partitions as the input topic.
    pub checkpoint_topic: String,
    /// Repartition topic that routes each event to the owner of its terminal, so
    /// terminal features count the terminal's payments from every partition and
    /// instance. Exactly as many partitions as the input topic. Empty: terminal
    /// features count only the payments of the event's own input partition.
    pub terminal_topic: String,
    /// `transactional.id` of this instance; empty derives `fraudstream-<group_id>-<instance_id>`.
    pub transactional_id: String,
    /// Stable id of this instance within the group (hostname-like); used for the transactional id.
    pub instance_id: String,
    /// librdkafka settings for every client (e.g. `security.protocol`, `sasl.mechanisms`).
    pub client: BTreeMap<String, String>,
    /// librdkafka settings for the consumers only.
    pub consumer: BTreeMap<String, String>,
    /// librdkafka settings for the producer only.
    pub producer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".into(),
            group_id: "fraudstream".into(),
            input_topic: "payments".into(),
            output_topic: "decisions".into(),
            labels_topic: "labels".into(),
            dlq_topic: "payments-dlq".into(),
            checkpoint_topic: "fraudstream-checkpoints".into(),
            terminal_topic: String::new(),
            transactional_id: String::new(),
            instance_id: "0".into(),
            client: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The transactional id this instance uses.
    pub fn effective_transactional_id(&self) -> String {
        if self.transactional_id.is_empty() {
            format!("fraudstream-{}-{}", self.group_id, self.instance_id)
        } else {
            self.transactional_id.clone()
        }
    }
}

/// Delivery guarantee for decisions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Decisions, DLQ records and input offsets in one Kafka transaction per batch.
    ExactlyOnce,
    /// Offsets committed after the batch's decisions are acknowledged; may repeat decisions after a crash.
    AtLeastOnce,
}

/// What the processor does with each input event.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Features, rules, model and a decision per event.
    #[default]
    Decide,
    /// Copy each input record to the output topic unchanged, with the same
    /// batching, transactions and offsets: the load test's baseline of what the
    /// Kafka I/O alone costs.
    Passthrough,
}

/// Event handling and commit behaviour.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingConfig {
    /// Delivery guarantee.
    pub guarantee: Guarantee,
    /// `decide`, or `passthrough` to measure the Kafka I/O baseline.
    pub mode: Mode,
    /// Longest time a batch stays open before it is committed, ms.
    pub commit_interval_ms: u64,
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// Largest accepted message, bytes.
    pub max_message_bytes: usize,
    /// Longest dead-letter payload written whole, bytes; a longer one is cut to this
    /// length, with its original size and SHA-256 in headers.
    pub dlq_max_payload_bytes: usize,
    /// Largest accepted amount, in the base currency.
    pub max_amount: f64,
    /// How far an event time may be ahead of the wall clock, seconds.
    pub max_future_skew_secs: i64,
    /// Earliest accepted event time (RFC 3339 or YYYY-MM-DD, UTC); earlier
    /// events are dead-lettered as `timestamp_before_min`.
    pub min_event_time: String,
    /// How long to wait for Kafka operations (commit, flush) before retrying, ms.
    pub kafka_timeout_ms: u64,
    /// Recent event ids remembered per partition; an event whose id is among them
    /// is a duplicate and gets no second decision. 0 disables the check.
    pub dedup_window_events: usize,
    /// Rebuild a partition's state on assignment by re-reading its input up to the
    /// checkpoint (exactly-once mode).
    pub restore_state: bool,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            guarantee: Guarantee::ExactlyOnce,
            mode: Mode::Decide,
            commit_interval_ms: 100,
            max_batch_events: 5000,
            max_message_bytes: 64 * 1024,
            dlq_max_payload_bytes: 512 * 1024,
            max_amount: 1.0e9,
            max_future_skew_secs: 3600,
            min_event_time: "2000-01-01T00:00:00Z".into(),
            kafka_timeout_ms: 10_000,
            dedup_window_events: 100_000,
            restore_state: true,
        }
    }
}

/// Entity state limits, per partition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Most entities of one kind held per partition (least recently seen evicted beyond).
    pub max_entities: usize,
    /// Most events kept per entity.
    pub max_events_per_entity: usize,
    /// How late an out-of-order event may be and still update the state, seconds.
    pub lateness_secs: u32,
    /// Most recent events remembered per partition for joining late labels.
    pub max_pending_labels: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            max_entities: 1_000_000,
            max_events_per_entity: 512,
            lateness_secs: 300,
            max_pending_labels: 500_000,
        }
    }
}

impl ProcessingConfig {
    /// `min_event_time` in epoch ms, if it is an RFC 3339 time or a date.
    pub fn min_event_time_ms(&self) -> Option<i64> {
        let t = self.min_event_time.as_str();
        crate::time::parse_date_ms(t).or_else(|| crate::time::parse_rfc3339_ms(t).map(|t| t.0))
    }
}

/// The base currency every amount is converted into, and the rates file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CurrencyConfig {
    /// ISO 4217 code of the base currency.
    pub base: String,
    /// Reference rates file (reloaded on change and SIGHUP); empty accepts
    /// only payments in the base currency.
    pub rates: String,
}

impl Default for CurrencyConfig {
    fn default() -> Self {
        Self {
            base: "EUR".into(),
            rates: "config/fx_rates.toml".into(),
        }
    }
}

impl CurrencyConfig {
    /// `base` as an ISO 4217 currency with minor units (any letter case), if it is one.
    pub fn base_currency(&self) -> Option<iso_currency::Currency> {
        iso_currency::Currency::from_code(&self.base.to_ascii_uppercase())
            .filter(|c| c.exponent().is_some())
    }
}

/// Which feature set to compute.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesConfig {
    /// Built-in set name (`default`, `handbook`) or path to a TOML feature set.
    pub set: String,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        Self {
            set: "default".into(),
        }
    }
}

/// Where the rules are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Directory of rule files (watched and reloaded on change and SIGHUP), or
    /// `builtin` for the starter ruleset compiled into the binary.
    pub dir: String,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            dir: "rules".into(),
        }
    }
}

/// Which model scores events (none: rules alone decide).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Champion model file; empty for none. Reloaded on change and SIGHUP.
    pub path: String,
    /// Challenger model file, scored in shadow and reported in decisions; empty for none.
    pub challenger: String,
}

impl ModelConfig {
    /// The champion and challenger paths, if set.
    pub fn paths(&self) -> (Option<std::path::PathBuf>, Option<std::path::PathBuf>) {
        let p = |s: &str| (!s.is_empty()).then(|| std::path::PathBuf::from(s));
        (p(&self.path), p(&self.challenger))
    }
}

/// Metrics and health endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`; empty disables the endpoint.
    pub addr: String,
    /// Most HTTP connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Longest wait for a request head or for a read to progress, ms.
    pub read_timeout_ms: u64,
    /// Longest wait for a write to progress (a client that does not read), ms.
    pub write_timeout_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:9464".into(),
            max_connections: 1024,
            read_timeout_ms: 10_000,
            write_timeout_ms: 10_000,
        }
    }
}

/// The synchronous decision API: `POST /v1/decisions` ([`crate::api`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to serve the API on; empty (the default) disables it.
    pub addr: String,
    /// Calls waiting for the pipeline thread at most; one more is answered 429.
    pub queue_capacity: usize,
    /// Deadline of a call without `timeout_ms`, ms.
    pub timeout_ms: u64,
    /// The action a call gets past its deadline: `allow` fails open, `review` or
    /// `block` fail closed.
    pub on_timeout: TimeoutAction,
    /// Decisions (of calls and of Kafka events) kept to answer a call repeating
    /// an `event_id` with the original; about 600 bytes each, allocated at start
    /// ([`crate::api::replay`]). Past them a repeat gets 409.
    pub replay_entries: usize,
    /// How producers of the input topic choose a partition from the account id
    /// (librdkafka's names): the API decides a call on the worker of that partition.
    pub partitioner: Partitioner,
    /// Bearer token every call must carry (`Authorization: Bearer ...`); empty: none.
    pub bearer_token: String,
    /// Most connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Longest wait for a TLS handshake, a request head, or any read to
    /// progress (so also for an idle connection's next request), ms.
    pub read_timeout_ms: u64,
    /// Longest wait for a whole request body once its head arrived, ms; past it
    /// the call gets 408.
    pub body_timeout_ms: u64,
    /// Longest wait for a write to progress (a client that does not read), ms.
    pub write_timeout_ms: u64,
    /// PEM certificate chain the API serves over TLS; empty: plain HTTP.
    pub tls_cert: String,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: String,
    /// PEM certificates of the CA that signs clients' certificates: when set,
    /// only clients presenting one are served (mutual TLS).
    pub tls_client_ca: String,
    /// `http://host:port` (`https://` with `tls_cert`) at which other instances
    /// reach this one's API; set on every instance of a group, calls for another
    /// instance's partition are forwarded to it ([`crate::api::forward`]). Empty:
    /// answered 503 `not_owner`.
    pub advertised_url: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            addr: String::new(),
            queue_capacity: 1024,
            timeout_ms: 50,
            on_timeout: TimeoutAction::Allow,
            replay_entries: 100_000,
            partitioner: Partitioner::ConsistentRandom,
            bearer_token: String::new(),
            max_connections: 1024,
            read_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            write_timeout_ms: 10_000,
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_client_ca: String::new(),
            advertised_url: String::new(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info` or `fraudstream=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Loads the layered configuration and checks every value. `overrides` are
/// command-line values, applied last.
pub fn load(config_file: Option<&Path>, overrides: Figment) -> Result<Config, ConfigError> {
    load_from(Path::new("config/default.toml"), config_file, overrides)
}

/// [`load`] with an explicit path for the repository's default file (tests).
pub fn load_from(
    default_file: &Path,
    config_file: Option<&Path>,
    overrides: Figment,
) -> Result<Config, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if default_file.exists() {
        check_toml(default_file)?;
        fig = fig.merge(Toml::file(default_file));
    }
    if let Some(path) = config_file {
        if !path.exists() {
            return Err(ConfigError(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        check_toml(path)?;
        fig = fig.merge(Toml::file(path));
    }
    fig = fig
        .merge(Env::prefixed(ENV_PREFIX).split("__"))
        .merge(overrides);
    let config: Config = fig.extract().map_err(|e| {
        let problems = e
            .into_iter()
            .map(|e| format!("{}: {}", origin(e.metadata.as_ref(), &e.path), e.kind));
        ConfigError(problems.collect::<Vec<_>>().join("; "))
    })?;
    let problems: Vec<String> = config
        .problems()
        .into_iter()
        .map(|(key, expected)| {
            let path: Vec<String> = key.split('.').map(String::from).collect();
            format!("{}: {expected}", origin(fig.find_metadata(key), &path))
        })
        .collect();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError(problems.join("; ")))
    }
}

const ENV_PREFIX: &str = "FRAUDSTREAM__";

/// A TOML syntax error in `path` as `path:line:col: message`.
fn check_toml(path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    toml_edit::ImDocument::parse(text.as_str()).map_err(|e| {
        let (line, col) = crate::text::line_col(&text, e.span().map_or(0, |s| s.start));
        let message = e.message().trim_end();
        ConfigError(format!("{}:{line}:{col}: {message}", path.display()))
    })?;
    Ok(())
}

/// Where the value at `key` came from: `file:line:col`, the environment
/// variable, or the flag; then the key.
fn origin(metadata: Option<&figment::Metadata>, key: &[String]) -> String {
    let dotted = key.join(".");
    let Some(metadata) = metadata else {
        return dotted;
    };
    if let Some(figment::Source::File(path)) = &metadata.source {
        let place = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| key_line_col(&text, key))
            .map_or(String::new(), |(l, c)| format!(":{l}:{c}"));
        // Figment found the file by an absolute path; show it as the operator named it.
        let cwd = std::env::current_dir().unwrap_or_default();
        let shown = path.strip_prefix(&cwd).unwrap_or(path);
        return format!("{}{place}: {dotted}", shown.display());
    }
    if metadata.name.contains(ENV_PREFIX) {
        let var = key.join("__").to_uppercase();
        return format!("environment variable {ENV_PREFIX}{var}");
    }
    format!("flag for {dotted}")
}

/// Line and column of the last key of `key` in TOML `text`, if it is there.
fn key_line_col(text: &str, key: &[String]) -> Option<(usize, usize)> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let (last, parents) = key.split_last()?;
    for k in parents {
        table = table.get(k)?.as_table_like()?;
    }
    let (k, _) = table.get_key_value(last)?;
    Some(crate::text::line_col(text, k.span()?.start))
}

/// librdkafka settings shared by every client: brokers plus the `[kafka.client]` passthrough.
pub fn client_config(config: &Config) -> rdkafka::ClientConfig {
    let mut c = rdkafka::ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers);
    for (k, v) in &config.kafka.client {
        c.set(k, v);
    }
    c
}

/// A Kafka producer's partitioner for keyed records, by librdkafka's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// librdkafka's default: CRC-32 of the key modulo the partition count.
    ConsistentRandom,
    /// The Java client's default: murmur2 of the key, positive, modulo the count.
    Murmur2Random,
}

/// The action a decision-API call gets past its deadline (`[api] on_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutAction {
    /// Fail open.
    Allow,
    /// Fail closed, to review.
    Review,
    /// Fail closed, blocked.
    Block,
}
