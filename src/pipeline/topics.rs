//! The topics a configuration needs, treated as Kafka Streams treats them: the
//! processor's own (internal) topics are created at start with the settings
//! they need, the user's topics are checked, and so is co-partitioning (the
//! input, labels and terminal topics have the same partition count: partition
//! `p` of each belongs to the owner of input partition `p`). `fraudstream
//! topics` prints the same plan and, with `--create`, creates what is missing.

use crate::config::client_config;
use crate::config::{Config, Guarantee};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientContext;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why the topics are not usable.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// No broker answered; `detail` is the client's last error (a refused
    /// connection, a failed TLS handshake, a rejected login...).
    #[error("cannot reach the brokers at {brokers} (security.protocol={protocol}): {detail}")]
    Unreachable {
        /// `bootstrap.servers`.
        brokers: String,
        /// `security.protocol` in use.
        protocol: String,
        /// What the client last reported.
        detail: String,
    },
    /// A topic is missing, cannot be created, or has the wrong partition count.
    #[error("topic '{topic}': {problem}")]
    Topic {
        /// The topic.
        topic: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The admin client could not be created.
    #[error("cannot start the admin client: {0}")]
    Client(#[from] KafkaError),
}

/// How many partitions a topic must have, relative to the input topic's N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitions {
    /// Any count (N when created).
    Any,
    /// Exactly N (co-partitioned with the input).
    SameAsInput,
    /// N or more.
    AtLeastInput,
}

/// One topic the configuration needs.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// What the pipeline uses it for (`input`, `labels`, `checkpoints`...).
    pub role: &'static str,
    /// Partition count rule.
    pub partitions: Partitions,
    /// Topic settings it is created with (`cleanup.policy=compact`...).
    pub settings: &'static [(&'static str, &'static str)],
    /// Internal topics are the processor's own: `run` creates them when missing.
    pub internal: bool,
}

/// A topic as found on the broker.
#[derive(Debug, Clone)]
pub struct TopicStatus {
    /// What it must be.
    pub spec: TopicSpec,
    /// Its partition count, if it exists.
    pub found: Option<usize>,
    /// Whether this call created it.
    pub created: bool,
}

/// Every topic `config` needs, the input first.
pub fn needed(config: &Config) -> Vec<TopicSpec> {
    let k = &config.kafka;
    let spec = |name: &str, role, partitions, settings, internal| TopicSpec {
        name: name.to_string(),
        role,
        partitions,
        settings,
        internal,
    };
    let mut out = vec![spec(&k.input_topic, "input", Partitions::Any, &[], false)];
    if !k.labels_topic.is_empty() {
        out.push(spec(
            &k.labels_topic,
            "labels",
            Partitions::SameAsInput,
            &[],
            false,
        ));
    }
    out.push(spec(&k.output_topic, "output", Partitions::Any, &[], false));
    out.push(spec(
        &k.dlq_topic,
        "dead letters",
        Partitions::Any,
        &[],
        false,
    ));
    if config.processing.guarantee == Guarantee::ExactlyOnce {
        out.push(spec(
            &k.checkpoint_topic,
            "checkpoints",
            Partitions::AtLeastInput,
            &[("cleanup.policy", "compact")],
            true,
        ));
    }
    if let Some(owners) = crate::api::owners::topic(config) {
        // Who owns which input partition, for forwarding API calls: one record per partition.
        out.push(spec(
            &owners,
            "api owners",
            Partitions::AtLeastInput,
            &[("cleanup.policy", "compact")],
            true,
        ));
    }
    if !k.terminal_topic.is_empty() {
        // The terminal side's changelog: keep it as long as the input topic.
        out.push(spec(
            &k.terminal_topic,
            "terminal repartition",
            Partitions::SameAsInput,
            &[("cleanup.policy", "delete")],
            true,
        ));
    }
    out
}

/// What to create when a topic is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Nothing (report only).
    Nothing,
    /// The internal topics (what `run` does).
    Internal,
    /// Every topic; the input gets this many partitions if it is missing.
    All {
        /// Partitions of a missing input topic.
        input_partitions: Option<i32>,
    },
}

/// Records the client's first error, to say why a broker did not answer (a
/// failed TLS handshake or login is logged at warning level or worse; what
/// follows, such as "all brokers are down", only repeats it).
#[derive(Default)]
struct LastError(Mutex<Option<String>>);

impl LastError {
    fn record(&self, what: &str) {
        let mut first = self.0.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| what.to_string());
    }
}

impl ClientContext for LastError {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(fac, log_message, "admin client");
        use RDKafkaLogLevel as L;
        if matches!(
            level,
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning
        ) {
            self.record(log_message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(error = %error, reason, "admin client error");
        self.record(reason);
    }
}

impl rdkafka::producer::ProducerContext for LastError {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// Finds every needed topic on the brokers and creates the missing ones `create`
/// allows. Fails if no broker answers; wrong partition counts are left to
/// [`check`] (so `fraudstream topics` can print them).
pub fn survey(config: &Config, create: Create) -> Result<Vec<TopicStatus>, TopicsError> {
    // A producer, not the admin client: its poll serves the client's log and
    // error events, which say why no broker answered.
    let probe: BaseProducer<LastError> = client_config(config)
        // A metadata request must never create a topic with the broker's defaults.
        .set("allow.auto.create.topics", "false")
        .create_with_context(LastError::default())?;
    let timeout = Duration::from_millis(config.processing.kafka_timeout_ms.max(1000));
    let metadata = probe.client().fetch_metadata(None, timeout).map_err(|e| {
        probe.poll(Duration::from_millis(100));
        let last = probe.context().0.lock().ok().and_then(|l| l.clone());
        TopicsError::Unreachable {
            brokers: config.kafka.brokers.clone(),
            protocol: config
                .kafka
                .client
                .get("security.protocol")
                .cloned()
                .unwrap_or_else(|| "plaintext".into()),
            detail: last.unwrap_or_else(|| e.to_string()),
        }
    })?;
    let mut out: Vec<TopicStatus> = needed(config)
        .into_iter()
        .map(|spec| TopicStatus {
            found: partitions_of(&metadata, &spec.name),
            spec,
            created: false,
        })
        .collect();
    let input = out[0].found.map(|n| n as i32).or(match create {
        Create::All { input_partitions } => input_partitions,
        _ => None,
    });
    let Some(n) = input else { return Ok(out) };
    let mut admin = None;
    for status in out.iter_mut().filter(|s| s.found.is_none()) {
        let allowed = match create {
            Create::Nothing => false,
            Create::Internal => status.spec.internal,
            Create::All { .. } => true,
        };
        if allowed {
            let admin = match &mut admin {
                Some(a) => a,
                None => admin.insert(client_config(config).create()?),
            };
            create_topic(admin, &status.spec, n, timeout)?;
            status.found = Some(n as usize);
            status.created = true;
        }
    }
    Ok(out)
}

fn partitions_of(metadata: &Metadata, topic: &str) -> Option<usize> {
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len())
}

/// Creates `spec` with `partitions` and waits until its metadata shows it.
fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    spec: &TopicSpec,
    partitions: i32,
    timeout: Duration,
) -> Result<(), TopicsError> {
    let mut topic = NewTopic::new(&spec.name, partitions, TopicReplication::Fixed(-1));
    for (k, v) in spec.settings {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(timeout));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| cannot_create(spec, partitions, &e.to_string()))?;
    let results = rt
        .block_on(admin.create_topics([&topic], &opts))
        .map_err(|e| cannot_create(spec, partitions, &e.to_string()))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(cannot_create(spec, partitions, &code.to_string())),
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        let md = admin.inner().fetch_metadata(Some(&spec.name), timeout).ok();
        if md.is_some_and(|md| partitions_of(&md, &spec.name).is_some()) {
            tracing::info!(topic = %spec.name, partitions, settings = %Settings(spec, partitions), "topic created");
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(cannot_create(
                spec,
                partitions,
                "it did not appear in the metadata",
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cannot_create(spec: &TopicSpec, partitions: i32, why: &str) -> TopicsError {
    TopicsError::Topic {
        topic: spec.name.clone(),
        problem: format!(
            "does not exist and cannot be created ({why}); create it with {}",
            Settings(spec, partitions)
        ),
    }
}

/// A topic's settings as an operator types them: `partitions=3 cleanup.policy=compact`.
pub struct Settings<'a>(pub &'a TopicSpec, pub i32);

impl fmt::Display for Settings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "partitions={}", self.1)?;
        for (k, v) in self.0.settings {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// What is wrong when `spec` has `found` partitions and the input topic
/// `input_name` has `input`; `None` when the count is right.
pub fn partition_problem(
    spec: &TopicSpec,
    found: usize,
    input_name: &str,
    input: usize,
) -> Option<String> {
    let (ok, needs) = match spec.partitions {
        Partitions::Any => (true, ""),
        Partitions::SameAsInput => (found == input, "exactly as many"),
        Partitions::AtLeastInput => (found >= input, "at least as many"),
    };
    (!ok).then(|| {
        format!(
            "has {found} partitions but the input topic '{input_name}' has {input}; it needs \
             {needs} (partition p of each belongs to the owner of input partition p)"
        )
    })
}

/// Fails on the first topic that is missing or breaks co-partitioning; returns
/// the input topic's partition count.
pub fn check(statuses: &[TopicStatus]) -> Result<usize, TopicsError> {
    let input = &statuses[0];
    let Some(n) = input.found else {
        return Err(TopicsError::Topic {
            topic: input.spec.name.clone(),
            problem: "does not exist; create it (keyed by account_id), or run \
                      `fraudstream topics --create --partitions N`"
                .into(),
        });
    };
    for s in &statuses[1..] {
        let problem = match s.found {
            None => Some(format!(
                "does not exist; create it with {}, or run `fraudstream topics --create`",
                Settings(&s.spec, n as i32)
            )),
            Some(found) => partition_problem(&s.spec, found, &input.spec.name, n),
        };
        if let Some(problem) = problem {
            return Err(TopicsError::Topic {
                topic: s.spec.name.clone(),
                problem,
            });
        }
    }
    Ok(n)
}
