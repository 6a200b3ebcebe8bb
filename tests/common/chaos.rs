//! The chaos test, shared by the mock-cluster and tansu runs: a fixed set of
//! events, the processor as a separate OS process killed with SIGKILL at random
//! moments and restarted, then the output read with `read_committed` and compared
//! with an uninterrupted in-process run of the same engine.

use super::{read_until, Output};
use fraudstream::config::Config;
use fraudstream::decision::Decider;
use fraudstream::features::load_feature_set;
use fraudstream::model::ModelStore;
use fraudstream::pipeline::{Encoded, PartitionWorker};
use fraudstream::rules::reload::{RuleStore, RulesSource};
use fraudstream::source::event::Limits;
use fraudstream::state::key_hash;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `(partition, key, payload)` of `n` valid events over a few accounts and
/// terminals, ending an hour ago, each routed to its account's partition. Each
/// terminal is used by the accounts of one partition only, so its events reach
/// it in one order even when terminal features are repartitioned, and an
/// uninterrupted per-partition run is the reference either way.
pub fn chaos_events(n: usize, partitions: i32, now_ms: i64) -> Vec<(i32, String, Vec<u8>)> {
    let mut rng = SmallRng::seed_from_u64(11);
    let start = now_ms - 3_600_000 - n as i64 * 1_000;
    (0..n)
        .map(|i| {
            let account = format!("acc-{}", rng.gen_range(0..60));
            let partition = (key_hash(0, account.as_bytes()) % partitions as u64) as i32;
            let amount = if rng.gen_bool(0.03) {
                rng.gen_range(200.0..900.0)
            } else {
                rng.gen_range(2.0..120.0)
            };
            let payload = format!(
                r#"{{"event_id":"chaos-{i}","ts":{},"account_id":"{account}","card_id":"{account}","terminal_id":"term-{partition}-{}","amount":{amount:.2},"currency":"EUR"}}"#,
                start + i as i64 * 1_000,
                rng.gen_range(0..15)
            );
            (partition, account, payload.into_bytes())
        })
        .collect()
}

/// Produces `events` to their partitions of `topic`.
pub fn produce_partitioned(brokers: &str, topic: &str, events: &[(i32, String, Vec<u8>)]) {
    let p: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (partition, key, payload) in events {
        let mut rec = BaseRecord::to(topic)
            .partition(*partition)
            .key(key.as_bytes())
            .payload(payload.as_slice());
        while let Err((e, back)) = p.send(rec) {
            assert!(
                matches!(
                    e,
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull
                    )
                ),
                "{e}"
            );
            rec = back;
            p.poll(Duration::from_millis(5));
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// The processor settings of the chaos run: the `model` feature set and shipped
/// model (so every decision's score depends on the whole window state), no rules,
/// small batches, and a short session so a killed member leaves the group quickly.
pub fn chaos_config(base: &Config, dir: &Path) -> Config {
    let mut c = base.clone();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    c.features.set = "default".into();
    c.model.path = root.join("models/handbook.json").display().to_string();
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    c.rules.dir = rules.display().to_string();
    c.processing.max_batch_events = 40;
    c.processing.commit_interval_ms = 20;
    c.metrics.addr = String::new();
    if c.kafka.instance_id.is_empty() {
        c.kafka.instance_id = "chaos".into();
    }
    for (k, v) in [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
        ("fetch.wait.max.ms", "20"),
    ] {
        c.kafka.consumer.insert(k.into(), v.into());
    }
    c
}

/// The decisions an uninterrupted run makes: each partition's events in order
/// through the same engine. event_id -> (action, score, reasons).
pub fn reference_decisions(
    config: &Config,
    events: &[(i32, String, Vec<u8>)],
) -> HashMap<String, serde_json::Value> {
    let set = Arc::new(load_feature_set(&config.features.set).unwrap());
    let rules =
        Arc::new(RuleStore::load(RulesSource::from_config(&config.rules), set.clone()).unwrap());
    let (models, errors) = ModelStore::open(config.model.paths().0, None, set.clone());
    assert!(errors.is_empty(), "{errors:?}");
    let mut decider = Decider::new(rules, set.len(), None).with_models(Arc::new(models));
    let limits = Limits::from_config(&config.processing);
    let mut workers: HashMap<i32, PartitionWorker> = HashMap::new();
    let mut out = Encoded::default();
    let mut decided = HashMap::new();
    for (p, _, payload) in events {
        let w = workers.entry(*p).or_insert_with(|| {
            PartitionWorker::new(
                set.clone(),
                fraudstream::features::EngineLimits::from_config(&config.state),
                config.processing.dedup_window_events,
                None,
            )
        });
        if let Ok(Some(_)) = w.decide(payload, &limits, &mut decider, Instant::now(), &mut out) {
            let v: serde_json::Value = serde_json::from_slice(&out.decision).unwrap();
            decided.insert(v["event_id"].as_str().unwrap().to_string(), comparable(&v));
        }
    }
    decided
}

/// The parts of a decision that depend on the state: action, score, reasons.
pub fn comparable(v: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({"action": v["action"], "score": v["score"], "reasons": v["reasons"]})
}

pub fn spawn(config_file: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_fraudstream"))
        .args(["run", "--config"])
        .arg(config_file)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start fraudstream")
}

/// Runs the chaos test on `config` (its topics exist with `partitions`
/// partitions): produce, kill the processor `kills` times at random moments,
/// finish, and check the output.
pub fn run_chaos(base: &Config, partitions: i32, n: usize, kills: usize) {
    run_chaos_with(base, partitions, n, kills, |_| {})
}

/// [`run_chaos`] with the processor's settings changed by `configure`.
pub fn run_chaos_with(
    base: &Config,
    partitions: i32,
    n: usize,
    kills: usize,
    configure: impl FnOnce(&mut Config),
) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = chaos_config(base, dir.path());
    configure(&mut config);
    let config_file = dir.path().join("fraudstream.toml");
    std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
    let log = dir.path().join("fraudstream.log");
    let events = chaos_events(n, partitions, fraudstream::source::time::now_ms());
    let expected = reference_decisions(&config, &events);
    assert_eq!(expected.len(), n);
    produce_partitioned(&config.kafka.brokers, &config.kafka.input_topic, &events);

    let k = &config.kafka;
    let mut reader =
        fraudstream::demo::reader(&k.brokers, &[&k.output_topic, &k.dlq_topic], partitions)
            .unwrap();
    let mut out = Output::default();
    kill_repeatedly(&config_file, &log, &mut reader, &mut out, n, kills, "chaos");
    let mut child = spawn(&config_file, &log);
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_until(&mut reader, &mut out, Duration::from_secs(180), |o| {
            o.decisions.len() >= n
        });
        super::drain(&mut reader, &mut out);
    }));
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    child.wait().unwrap();
    if done.is_err() {
        panic!(
            "not every event was decided ({} of {n}); processor log:\n{}",
            out.decisions.len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    assert!(out.dlq.is_empty(), "no valid event is dead-lettered");
    let duplicated: Vec<_> = out
        .decisions
        .iter()
        .filter(|(_, d)| d.len() != 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        duplicated.is_empty(),
        "decided more than once: {duplicated:?}"
    );
    for (id, want) in &expected {
        let got = out
            .decisions
            .get(id)
            .unwrap_or_else(|| panic!("{id} has no decision"));
        assert_eq!(
            &comparable(&got[0]),
            want,
            "{id}: the decision differs from an uninterrupted run's (state not restored?)"
        );
    }
}

/// Starts the processor `kills` times and SIGKILLs each run once more of the
/// `n` decisions are visible, plus a random delay, so the kill lands
/// mid-stream, inside or between transactions. `what` names the test in logs.
pub fn kill_repeatedly(
    config_file: &Path,
    log: &Path,
    reader: &mut fraudstream::demo::Reader,
    out: &mut Output,
    n: usize,
    kills: usize,
    what: &str,
) {
    let mut rng = SmallRng::seed_from_u64(std::process::id() as u64);
    for kill in 0..kills {
        let mut child = spawn(config_file, log);
        let target = (n * (kill + 1) / (kills + 2)).max(1);
        read_until(reader, out, Duration::from_secs(120), |o| {
            o.decisions.len() >= target
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..150)));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        eprintln!(
            "{what}: killed run {kill} with {} decisions visible",
            out.decisions.len()
        );
    }
}
