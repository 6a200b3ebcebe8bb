//! Helpers shared by integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod api;
pub mod chaos;

/// Where the handbook data set is: `$FRAUDSTREAM_HANDBOOK_DIR` or `../shared/data/handbook`.
/// Prints a loud notice and returns `None` when it is absent.
pub fn handbook_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FRAUDSTREAM_HANDBOOK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/handbook")
        });
    if dir.join("transactions.csv.gz").exists() {
        Some(dir)
    } else {
        skip_notice(&format!(
            "*** SKIPPED: handbook data not found at {} (set FRAUDSTREAM_HANDBOOK_DIR) ***",
            dir.display()
        ));
        None
    }
}

use fraudstream::config::Config;
use fraudstream::demo::{self, EmbeddedKafka};
use fraudstream::ops::lifecycle::{Health, Shutdown};
use fraudstream::ops::metrics::Metrics;
use fraudstream::pipeline::{self, PipelineError, RunStats};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A mock cluster with fraudstream's topics and a config pointing at it.
pub struct Cluster {
    pub kafka: EmbeddedKafka,
    pub config: Config,
}

impl Cluster {
    pub fn start(partitions: i32) -> Cluster {
        Self::start_with(partitions, |_| {})
    }

    /// A cluster whose topics follow `config` as `configure` leaves it.
    pub fn start_with(partitions: i32, configure: impl FnOnce(&mut Config)) -> Cluster {
        let mut config = Config::default();
        configure(&mut config);
        config.metrics.addr = String::new();
        config.processing.commit_interval_ms = 50;
        let kafka = EmbeddedKafka::start(&config, partitions).expect("mock cluster");
        config.kafka.brokers = kafka.bootstrap_servers();
        Cluster { kafka, config }
    }

    pub fn produce(&self, topic: &str, records: &[(String, Vec<u8>)]) {
        let p = demo::producer(&self.config.kafka.brokers).unwrap();
        for (key, payload) in records {
            demo::send(&p, topic, key.as_bytes(), payload).unwrap();
        }
        demo::flush(&p).unwrap();
    }

    pub fn reader(&self) -> fraudstream::demo::Reader {
        let k = &self.config.kafka;
        demo::reader(
            &k.brokers,
            &[&k.output_topic, &k.dlq_topic],
            self.kafka.partitions,
        )
        .unwrap()
    }
}

/// A processor running on its own thread.
pub struct Running {
    pub stop: Shutdown,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    handle: JoinHandle<Result<RunStats, PipelineError>>,
}

impl Running {
    pub fn start(config: &Config) -> Running {
        if std::env::var_os("RUST_LOG").is_some() {
            fraudstream::cli::init_logging(fraudstream::config::LogFormat::Text, "info");
        }
        let (stop, health, metrics) = (Shutdown::new(), Health::new(), Arc::new(Metrics::new()));
        let (c, s, h, m) = (
            config.clone(),
            stop.clone(),
            health.clone(),
            metrics.clone(),
        );
        let handle = std::thread::spawn(move || pipeline::run(&c, m, h, s));
        Running {
            stop,
            health,
            metrics,
            handle,
        }
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` for this processor on `rt`; returns the address.
    pub fn serve_http(&self, rt: &tokio::runtime::Runtime) -> String {
        self.serve_http_with(rt, fraudstream::ops::http::HttpLimits::default())
    }

    /// [`Running::serve_http`] under `limits`.
    pub fn serve_http_with(
        &self,
        rt: &tokio::runtime::Runtime,
        limits: fraudstream::ops::http::HttpLimits,
    ) -> String {
        let state = fraudstream::ops::http::OperatorState {
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            shutdown: self.stop.clone(),
        };
        rt.block_on(fraudstream::ops::http::serve("127.0.0.1:0", limits, state))
            .expect("metrics endpoint")
            .to_string()
    }

    /// Waits for the pipeline to end by itself (a failed start) and returns its result.
    pub fn join(self) -> Result<RunStats, PipelineError> {
        self.handle.join().expect("pipeline thread")
    }

    pub fn stop(self) -> RunStats {
        self.stop.trigger();
        self.handle
            .join()
            .expect("pipeline thread")
            .expect("pipeline result")
    }
}

/// What a reader saw on the output and dead-letter topics.
#[derive(Default, Debug)]
pub struct Output {
    /// event_id -> decisions seen for it.
    pub decisions: HashMap<String, Vec<serde_json::Value>>,
    /// Dead-letter records: (reason header, source offset header, payload).
    pub dlq: Vec<(String, String, Vec<u8>)>,
}

impl Output {
    pub fn total(&self) -> usize {
        self.decisions.values().map(Vec::len).sum::<usize>() + self.dlq.len()
    }
}

/// Reads until `done(output)` holds; panics after `timeout` (a hang is a failure,
/// not a timing assertion).
pub fn read_until(
    reader: &mut fraudstream::demo::Reader,
    out: &mut Output,
    timeout: Duration,
    done: impl Fn(&Output) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(out) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for output; have {} records",
            out.total()
        );
        let Some(msg) = reader.poll(Duration::from_millis(100)) else {
            continue;
        };
        let payload = msg.payload().unwrap_or(&[]).to_vec();
        let mut reason = String::new();
        let mut offset = String::new();
        if let Some(h) = msg.headers() {
            for hd in h.iter() {
                let v = String::from_utf8_lossy(hd.value.unwrap_or(&[])).to_string();
                match hd.key {
                    "fraudstream.error.reason" => reason = v,
                    "fraudstream.source.offset" => offset = v,
                    _ => {}
                }
            }
        }
        if !reason.is_empty() {
            out.dlq.push((reason, offset, payload));
        } else {
            let v: serde_json::Value = serde_json::from_slice(&payload).expect("decision is JSON");
            let id = v["event_id"].as_str().expect("event_id").to_string();
            out.decisions.entry(id).or_default().push(v);
        }
    }
}

/// Drains whatever else is readable for a short while (to catch duplicates).
pub fn drain(reader: &mut fraudstream::demo::Reader, out: &mut Output) {
    let until = Instant::now() + Duration::from_millis(1500);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_until(reader, out, Duration::from_secs(3), |_| {
            Instant::now() >= until
        })
    }));
}

/// A valid payment event.
pub fn event(id: &str, account: &str, ts_ms: i64, amount: f64) -> (String, Vec<u8>) {
    (
        account.to_string(),
        format!(r#"{{"event_id":"{id}","ts":{ts_ms},"account_id":"{account}","terminal_id":"t-{}","amount":{amount},"currency":"EUR"}}"#, id.len() % 7)
            .into_bytes(),
    )
}

/// Where each input partition resumes: the checkpoints in exactly-once mode,
/// the group's committed offsets in at-least-once mode.
pub fn committed(config: &Config, partitions: i32) -> HashMap<i32, i64> {
    if config.processing.guarantee == fraudstream::config::Guarantee::ExactlyOnce {
        let parts: Vec<i32> = (0..partitions).collect();
        let cps =
            fraudstream::pipeline::checkpoint::read_latest(config, &parts, Duration::from_secs(30))
                .unwrap();
        return cps
            .into_iter()
            .filter_map(|(p, cp)| Some((p, cp.input_offset?)))
            .collect();
    }
    group_committed(config, partitions)
}

/// Committed offsets of the consumer group on the input topic, per partition.
pub fn group_committed(config: &Config, partitions: i32) -> HashMap<i32, i64> {
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", &config.kafka.group_id)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(&config.kafka.input_topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Prints a notice that libtest's output capture does not swallow, so a skipped
/// test is visible in a plain `cargo test` run.
pub fn skip_notice(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "\n{msg}\n");
}
