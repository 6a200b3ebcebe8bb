//! Configuration: built-in defaults, `config/default.toml`, a `--config` file,
//! `FRAUDSTREAM__SECTION__KEY` environment variables, then command-line flags.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

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

/// Most connections `metrics.max_connections` may allow.
pub const MAX_HTTP_CONNECTIONS: usize = 100_000;
/// Most event ids `processing.dedup_window_events` may remember per partition
/// (allocated up front).
pub const MAX_DEDUP_WINDOW_EVENTS: usize = 10_000_000;
/// Most calls `api.queue_capacity` may queue.
pub const MAX_API_QUEUE: usize = 1_000_000;
/// Most decisions `api.replay_entries` may keep (allocated at start, ~600 MB).
pub const MAX_API_REPLAY: usize = 1_000_000;
/// Longest timeout a `*_timeout_ms` key may give, ms (a day).
const MAX_TIMEOUT_MS: u64 = 86_400_000;

/// Values outside their range, as (key, what was expected), in the order checked.
#[derive(Default)]
struct Problems(Vec<(&'static str, String)>);

impl Problems {
    fn check(&mut self, ok: bool, key: &'static str, expected: &str) {
        if !ok {
            self.0.push((key, format!("expected {expected}")));
        }
    }
}

impl Config {
    /// Every value outside its range, as (key, what was expected).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Problems::default();
        self.stream_problems(&mut out);
        self.endpoint_problems(&mut out);
        out.check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            "a tracing filter such as info or fraudstream=debug,rdkafka=warn",
        );
        out.check(
            self.processing.min_event_time_ms().is_some(),
            "processing.min_event_time",
            &format!(
                "RFC 3339 (2000-01-01T00:00:00Z) or YYYY-MM-DD, not '{}'",
                self.processing.min_event_time
            ),
        );
        out.check(
            self.currency.base_currency().is_some(),
            "currency.base",
            &format!("an ISO 4217 currency code, not '{}'", self.currency.base),
        );
        out.0
    }

    /// The problems of `kafka`, `processing` and `state`.
    fn stream_problems(&self, out: &mut Problems) {
        let k = &self.kafka;
        for (value, key) in [
            (&k.brokers, "kafka.brokers"),
            (&k.group_id, "kafka.group_id"),
            (&k.input_topic, "kafka.input_topic"),
            (&k.output_topic, "kafka.output_topic"),
            (&k.dlq_topic, "kafka.dlq_topic"),
            (&k.checkpoint_topic, "kafka.checkpoint_topic"),
        ] {
            out.check(!value.trim().is_empty(), key, "a non-empty name");
        }
        let p = &self.processing;
        out.check(
            p.max_batch_events >= 1,
            "processing.max_batch_events",
            "at least 1",
        );
        out.check(
            p.max_message_bytes >= 1,
            "processing.max_message_bytes",
            "at least 1",
        );
        out.check(
            p.max_amount.is_finite() && p.max_amount > 0.0,
            "processing.max_amount",
            "a finite amount above 0",
        );
        out.check(
            p.max_future_skew_secs >= 0,
            "processing.max_future_skew_secs",
            "0 or more",
        );
        let timeout = format!("1 to {MAX_TIMEOUT_MS} ms");
        out.check(
            (1..=MAX_TIMEOUT_MS).contains(&p.kafka_timeout_ms),
            "processing.kafka_timeout_ms",
            &timeout,
        );
        out.check(
            p.dedup_window_events <= MAX_DEDUP_WINDOW_EVENTS,
            "processing.dedup_window_events",
            &format!("at most {MAX_DEDUP_WINDOW_EVENTS} (0 turns the check off)"),
        );
        out.check(
            self.state.max_entities >= 1,
            "state.max_entities",
            "at least 1",
        );
        out.check(
            self.state.max_events_per_entity >= 1,
            "state.max_events_per_entity",
            "at least 1",
        );
    }

    /// The problems of `metrics` and `api`.
    fn endpoint_problems(&self, out: &mut Problems) {
        let timeout = format!("1 to {MAX_TIMEOUT_MS} ms");
        let m = &self.metrics;
        out.check(
            (1..=MAX_HTTP_CONNECTIONS).contains(&m.max_connections),
            "metrics.max_connections",
            &format!("1 to {MAX_HTTP_CONNECTIONS}"),
        );
        for (value, key) in [
            (m.read_timeout_ms, "metrics.read_timeout_ms"),
            (m.write_timeout_ms, "metrics.write_timeout_ms"),
        ] {
            out.check((1..=MAX_TIMEOUT_MS).contains(&value), key, &timeout);
        }
        let a = &self.api;
        out.check(
            (1..=MAX_API_QUEUE).contains(&a.queue_capacity),
            "api.queue_capacity",
            &format!("1 to {MAX_API_QUEUE}"),
        );
        out.check(
            (1..=MAX_TIMEOUT_MS).contains(&a.timeout_ms),
            "api.timeout_ms",
            &timeout,
        );
        out.check(
            a.replay_entries <= MAX_API_REPLAY,
            "api.replay_entries",
            &format!("at most {MAX_API_REPLAY}"),
        );
        out.check(
            (1..=MAX_HTTP_CONNECTIONS).contains(&a.max_connections),
            "api.max_connections",
            &format!("1 to {MAX_HTTP_CONNECTIONS}"),
        );
        for (value, key) in [
            (a.read_timeout_ms, "api.read_timeout_ms"),
            (a.body_timeout_ms, "api.body_timeout_ms"),
            (a.write_timeout_ms, "api.write_timeout_ms"),
        ] {
            out.check((1..=MAX_TIMEOUT_MS).contains(&value), key, &timeout);
        }
        out.check(
            a.tls_cert.is_empty() == a.tls_key.is_empty(),
            "api.tls_key",
            "api.tls_cert and api.tls_key both set (TLS) or both empty (plain HTTP)",
        );
        out.check(
            a.tls_client_ca.is_empty() || !a.tls_cert.is_empty(),
            "api.tls_client_ca",
            "api.tls_cert and api.tls_key set too: client certificates need TLS",
        );
        out.check(
            a.addr.is_empty() || self.kafka.terminal_topic.is_empty(),
            "api.addr",
            "empty while kafka.terminal_topic is set: a call is decided by its account's worker, but terminal repartitioning decides on the terminal's; clear api.addr or kafka.terminal_topic",
        );
        out.check(
            a.addr.is_empty() || self.processing.mode == Mode::Decide,
            "api.addr",
            "empty while processing.mode = \"passthrough\": passthrough decides nothing; clear api.addr or set processing.mode = \"decide\"",
        );
        if !a.advertised_url.is_empty() {
            let url = advertised_url_problem(&a.advertised_url);
            out.check(
                url.is_none(),
                "api.advertised_url",
                &url.unwrap_or_default(),
            );
            out.check(
                !a.addr.is_empty(),
                "api.advertised_url",
                "api.addr set too (forwarding is between decision APIs)",
            );
            let tls = !a.tls_cert.is_empty();
            out.check(
                a.advertised_url.starts_with("https://") == tls,
                "api.advertised_url",
                "https://host:port when api.tls_cert is set (forwarded calls go over the API's TLS), http://host:port when not",
            );
            out.check(
                !tls || !a.tls_client_ca.is_empty(),
                "api.advertised_url",
                "api.tls_client_ca set too with api.tls_cert: forwarded calls check the owner's certificate against it and present this instance's (mutual TLS)",
            );
            out.check(
                self.kafka
                    .consumer
                    .get("group.protocol")
                    .is_none_or(|p| p == "classic"),
                "api.advertised_url",
                "the classic group protocol (owner records are ordered by its generations)",
            );
        }
    }
}

/// What is wrong with `url` as an `api.advertised_url`, if anything: it must be
/// `http://host:port` or `https://host:port` (the address other instances reach
/// this one's API at).
pub fn advertised_url_problem(url: &str) -> Option<String> {
    let expected = || {
        format!("an http(s)://host:port URL other instances reach this one's API at, not '{url}'")
    };
    let Ok(uri) = url.parse::<axum::http::Uri>() else {
        return Some(expected());
    };
    let ok = matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.host().is_some_and(|h| !h.is_empty())
        && uri.port_u16().is_some()
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none();
    (!ok).then(expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_apply_in_order() {
        Jail::expect_with(|jail| {
            jail.create_dir("config")?;
            jail.create_file("config/default.toml", "[kafka]\nbrokers = \"from-default:1\"\ngroup_id = \"g-default\"\ninput_topic = \"in-default\"\n")?;
            jail.create_file("prod.toml", "[kafka]\ngroup_id = \"g-file\"\ninput_topic = \"in-file\"\n[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n")?;
            jail.set_env("FRAUDSTREAM__KAFKA__INPUT_TOPIC", "in-env");
            jail.set_env("FRAUDSTREAM__PROCESSING__COMMIT_INTERVAL_MS", "250");
            let flags = Figment::new().merge(Serialized::default("kafka.output_topic", "out-flag"));
            let c = load(Some(Path::new("prod.toml")), flags).map_err(|e| e.to_string())?;
            assert_eq!(c.kafka.brokers, "from-default:1");
            assert_eq!(c.kafka.group_id, "g-file");
            assert_eq!(c.kafka.input_topic, "in-env");
            assert_eq!(c.kafka.output_topic, "out-flag");
            assert_eq!(c.kafka.dlq_topic, "payments-dlq");
            assert_eq!(c.processing.commit_interval_ms, 250);
            assert_eq!(c.kafka.client["security.protocol"], "SASL_SSL");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[kafka]\nbrokerz = \"x\"\n")?;
            let err = load(Some(Path::new("bad.toml")), Figment::new())
                .unwrap_err()
                .to_string();
            assert!(err.contains("brokerz"), "{err}");
            assert!(err.contains("bad.toml"), "{err}");
            jail.create_file("bad2.toml", "[procesing]\nx = 1\n")?;
            let err = load(Some(Path::new("bad2.toml")), Figment::new())
                .unwrap_err()
                .to_string();
            assert!(err.contains("procesing"), "{err}");
            jail.set_env("FRAUDSTREAM__STATE__MAX_ENTITIEZ", "5");
            let err = load(None, Figment::new()).unwrap_err().to_string();
            assert!(err.contains("max_entitiez"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn errors_say_file_line_col_or_variable_or_flag_and_what_was_expected() {
        Jail::expect_with(|jail| {
            let load_err = |file: &str, flags: Figment| {
                load(Some(Path::new(file)), flags).unwrap_err().to_string()
            };
            jail.create_file("syntax.toml", "[kafka]\nbrokers = \"a\"\ngroup_id = = 1\n")?;
            let err = load_err("syntax.toml", Figment::new());
            assert!(
                err.starts_with("invalid configuration: syntax.toml:3:12: "),
                "{err}"
            );
            jail.create_file(
                "type.toml",
                "[processing]\n\n  max_batch_events = \"many\"\n",
            )?;
            let err = load_err("type.toml", Figment::new());
            assert!(
                err.contains("type.toml:3:3: processing.max_batch_events: invalid type: found string \"many\", expected")
                    && err.contains("usize"),
                "{err}"
            );
            jail.create_file("unknown.toml", "[kafka]\nbrokerz = \"x\"\n")?;
            let err = load_err("unknown.toml", Figment::new());
            assert!(
                err.contains("unknown.toml:2:1: kafka.brokerz: unknown field"),
                "{err}"
            );
            jail.create_file(
                "range.toml",
                "[state]\nmax_entities = 0\n[metrics]\nmax_connections = 0\n",
            )?;
            let err = load_err("range.toml", Figment::new());
            assert!(
                err.contains("range.toml:2:1: state.max_entities: expected at least 1"),
                "{err}"
            );
            assert!(
                err.contains("range.toml:4:1: metrics.max_connections: expected 1 to 100000"),
                "{err}"
            );
            jail.set_env("FRAUDSTREAM__METRICS__WRITE_TIMEOUT_MS", "0");
            let flags = Figment::new().merge(Serialized::default("kafka.input_topic", ""));
            let err = load_err("range.toml", flags);
            assert!(err.contains("environment variable FRAUDSTREAM__METRICS__WRITE_TIMEOUT_MS: expected 1 to 86400000 ms"), "{err}");
            assert!(
                err.contains("flag for kafka.input_topic: expected a non-empty name"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn min_event_time_and_base_currency_are_checked() {
        Jail::expect_with(|jail| {
            let c = load(None, Figment::new()).map_err(|e| e.to_string())?;
            assert_eq!(
                crate::source::event::Limits::from_config(&c.processing).min_event_time_ms,
                946_684_800_000
            );
            jail.create_file("a.toml", "[processing]\nmin_event_time = \"2018-04-01\"\n")?;
            let c = load(Some(Path::new("a.toml")), Figment::new()).map_err(|e| e.to_string())?;
            assert_eq!(
                crate::source::event::Limits::from_config(&c.processing).min_event_time_ms,
                1_522_540_800_000
            );
            jail.create_file("b.toml", "[processing]\nmin_event_time = \"2018-04-31\"\n")?;
            let err = load(Some(Path::new("b.toml")), Figment::new())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("processing.min_event_time: expected RFC 3339")
                    && err.contains("'2018-04-31'"),
                "{err}"
            );
            jail.create_file("c.toml", "[currency]\nbase = \"EURO\"\n")?;
            let err = load(Some(Path::new("c.toml")), Figment::new())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("currency.base: expected an ISO 4217 currency code, not 'EURO'"),
                "{err}"
            );
            jail.set_env("FRAUDSTREAM__CURRENCY__BASE", "usd");
            let c = load(None, Figment::new()).map_err(|e| e.to_string())?;
            assert_eq!(
                crate::source::currency::RatesSource::from_config(&c.currency)
                    .map_err(|e| e.to_string())?
                    .base
                    .code(),
                "USD"
            );
            Ok(())
        });
    }

    /// Each key with a value that used to crash or stall the processor, or
    /// that can never work, and the line of the check that refuses it.
    #[test]
    fn every_value_out_of_range_is_refused_with_its_key() {
        let cases = [
            ("kafka", "brokers", "\"\""),
            ("kafka", "group_id", "\" \""),
            ("kafka", "input_topic", "\"\""),
            ("kafka", "output_topic", "\"\""),
            ("kafka", "dlq_topic", "\"\""),
            ("kafka", "checkpoint_topic", "\"\""),
            ("processing", "max_batch_events", "0"),
            ("processing", "max_message_bytes", "0"),
            ("processing", "max_amount", "nan"),
            ("processing", "max_amount", "inf"),
            ("processing", "max_amount", "-1.0"),
            ("processing", "max_future_skew_secs", "-1"),
            ("processing", "kafka_timeout_ms", "0"),
            // Allocated up front per partition: this much aborted the process.
            ("processing", "dedup_window_events", "1000000000000000"),
            ("state", "max_entities", "0"),
            ("state", "max_events_per_entity", "0"),
            // More than a semaphore holds panicked.
            ("metrics", "max_connections", "4611686018427387904"),
            ("metrics", "read_timeout_ms", "0"),
            ("metrics", "read_timeout_ms", "86400001"),
            ("metrics", "write_timeout_ms", "0"),
            ("log", "level", "\"fraudstream=loud=yes\""),
            // Allocated at start: ~600 bytes each.
            ("api", "replay_entries", "1000001"),
            ("api", "max_connections", "0"),
            ("api", "read_timeout_ms", "0"),
            ("api", "body_timeout_ms", "0"),
            ("api", "write_timeout_ms", "86400001"),
            ("api", "tls_key", "\"key.pem\""),
            ("api", "tls_client_ca", "\"ca.pem\""),
        ];
        for (section, key, value) in cases {
            Jail::expect_with(|jail| {
                jail.create_file("c.toml", &format!("# bad\n[{section}]\n{key} = {value}\n"))?;
                let err = load(Some(Path::new("c.toml")), Figment::new())
                    .unwrap_err()
                    .to_string();
                let at = format!("c.toml:3:1: {section}.{key}: expected ");
                assert!(err.contains(&at), "{section}.{key} = {value}: {err}");
                Ok(())
            });
        }
        assert!(Config::default().problems().is_empty());
        assert!(load_from(Path::new("config/default.toml"), None, Figment::new()).is_ok());
    }

    /// The API decides on the account's worker: terminal repartitioning and
    /// passthrough do not, so the combination is refused, saying what to do.
    #[test]
    fn the_api_with_terminal_repartitioning_or_passthrough_is_refused() {
        let cases = [
            (
                "[kafka]\nterminal_topic = \"by-terminal\"\n",
                "clear api.addr or kafka.terminal_topic",
            ),
            (
                "[processing]\nmode = \"passthrough\"\n",
                "clear api.addr or set processing.mode = \"decide\"",
            ),
        ];
        for (other, what_to_do) in cases {
            Jail::expect_with(|jail| {
                jail.create_file("c.toml", &format!("[api]\naddr = \"127.0.0.1:0\"\n{other}"))?;
                let err = load(Some(Path::new("c.toml")), Figment::new())
                    .unwrap_err()
                    .to_string();
                assert!(
                    err.contains("c.toml:2:1: api.addr: expected empty while")
                        && err.contains(what_to_do),
                    "{err}"
                );
                jail.create_file("c.toml", other)?;
                assert!(load(Some(Path::new("c.toml")), Figment::new()).is_ok());
                Ok(())
            });
        }
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = load(Some(Path::new("/nonexistent/x.toml")), Figment::new()).unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }
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
