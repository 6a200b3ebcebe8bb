//! Configuration: built-in defaults, `config/default.toml`, a `--config` file,
//! `FRAUDSTREAM__SECTION__KEY` environment variables, then command-line flags.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A configuration problem (unknown key, wrong type, unreadable file).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        // One line per problem, each naming the key and where its value came from.
        ConfigError(
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

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
    /// Largest accepted amount.
    pub max_amount: f64,
    /// How far an event time may be ahead of the wall clock, seconds.
    pub max_future_skew_secs: i64,
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
    /// The input validation limits these settings describe.
    pub fn event_limits(&self) -> crate::source::event::Limits {
        crate::source::event::Limits {
            max_message_bytes: self.max_message_bytes,
            max_amount: self.max_amount,
            max_future_skew_ms: self.max_future_skew_secs.saturating_mul(1000),
        }
    }
}

impl StateConfig {
    /// The engine limits these settings describe.
    pub fn engine_limits(&self) -> crate::features::EngineLimits {
        crate::features::EngineLimits {
            table: crate::state::TableLimits {
                max_entities: self.max_entities,
                max_events_per_entity: self.max_events_per_entity,
                lateness_s: self.lateness_secs,
            },
            max_pending_labels: self.max_pending_labels,
        }
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

impl RulesConfig {
    /// The source this names.
    pub fn source(&self) -> crate::rules::reload::RulesSource {
        if self.dir == "builtin" {
            crate::rules::reload::RulesSource::Builtin
        } else {
            crate::rules::reload::RulesSource::Dir(self.dir.clone().into())
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
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:9464".into(),
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

/// Loads the layered configuration. `overrides` are command-line values, applied last.
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
        fig = fig.merge(Toml::file(default_file));
    }
    if let Some(path) = config_file {
        if !path.exists() {
            return Err(ConfigError(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        fig = fig.merge(Toml::file(path));
    }
    fig = fig.merge(Env::prefixed("FRAUDSTREAM__").split("__"));
    let config: Config = fig.merge(overrides).extract()?;
    Ok(config)
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
    fn missing_config_file_is_an_error() {
        let err = load(Some(Path::new("/nonexistent/x.toml")), Figment::new()).unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }
}
