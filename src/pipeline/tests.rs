//! The pipeline against the mock cluster with faults injected (a record that
//! cannot be queued, a slow restore): nothing is lost or repeated.

use super::*;
use crate::demo::{self, EmbeddedKafka};
use crate::sink::faults::fail_enqueue_to;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::thread::JoinHandle;
use std::time::Instant;

pub(super) const WAIT: Duration = Duration::from_secs(90);

pub(super) fn cluster(
    partitions: i32,
    configure: impl FnOnce(&mut Config),
) -> (EmbeddedKafka, Config) {
    let mut config = Config::default();
    configure(&mut config);
    config.metrics.addr = String::new();
    config.rules.dir = "builtin".into();
    config.features.set = "default".into();
    config.processing.commit_interval_ms = 50;
    config.processing.max_batch_events = 40;
    let kafka = EmbeddedKafka::start(&config, partitions).expect("mock cluster");
    config.kafka.brokers = kafka.bootstrap_servers();
    (kafka, config)
}

/// `n` payment events over 20 accounts; every tenth is invalid when `invalid`.
fn produce(config: &Config, from: usize, n: usize, invalid: bool) {
    let p = demo::producer(&config.kafka.brokers).unwrap();
    let now = crate::source::time::now_ms();
    for i in from..from + n {
        let account = format!("acc{}", i % 20);
        let payload = if invalid && i % 10 == 3 {
            format!(r#"{{"event_id":"e{i}","amount":"#)
        } else {
            format!(
                r#"{{"event_id":"e{i}","ts":{},"account_id":"{account}","terminal_id":"t{}","amount":{},"currency":"EUR"}}"#,
                now - 100_000 + i as i64,
                i % 7,
                5 + i % 40
            )
        };
        demo::send(
            &p,
            &config.kafka.input_topic,
            account.as_bytes(),
            payload.as_bytes(),
        )
        .unwrap();
    }
    demo::flush(&p).unwrap();
}

struct Running {
    stop: Shutdown,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    handle: JoinHandle<Result<RunStats, PipelineError>>,
}

/// Runs the pipeline on a thread that first calls `inject` (the restore and
/// commit hooks are planned on the thread that starts the pipeline).
fn start(config: &Config, inject: impl FnOnce() + Send + 'static) -> Running {
    if std::env::var_os("RUST_LOG").is_some() {
        crate::cli::init_logging(crate::config::LogFormat::Text, "info");
    }
    let (stop, health, metrics) = (Shutdown::new(), Health::new(), Arc::new(Metrics::new()));
    let (c, s, h, m) = (
        config.clone(),
        stop.clone(),
        health.clone(),
        metrics.clone(),
    );
    let handle = std::thread::spawn(move || {
        inject();
        run(&c, m, h, s)
    });
    Running {
        stop,
        health,
        metrics,
        handle,
    }
}

impl Running {
    fn stop(self) -> RunStats {
        self.stop.trigger();
        self.handle.join().unwrap().unwrap()
    }
}

/// Input offsets committed (checkpoints), summed over partitions.
fn committed(config: &Config, partitions: i32) -> i64 {
    let parts: Vec<i32> = (0..partitions).collect();
    checkpoint::read_latest(config, &parts, WAIT)
        .unwrap()
        .values()
        .filter_map(|cp| cp.input_offset)
        .sum()
}

/// Every committed record of `topic`, read to its end: event id (or source offset
/// for a dead letter) -> times seen.
pub(super) fn read_all(config: &Config, topic: &str, partitions: i32) -> HashMap<String, usize> {
    let reader: BaseConsumer = crate::config::client_config(config)
        .set("group.id", "test-reader")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    reader.assign(&tpl).unwrap();
    let (mut open, mut seen) = (partitions, HashMap::new());
    let deadline = Instant::now() + WAIT;
    while open > 0 {
        assert!(
            Instant::now() < deadline,
            "{topic} was not readable to its end"
        );
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                let v: serde_json::Value =
                    serde_json::from_slice(msg.payload().unwrap_or(&[])).unwrap_or_default();
                let header = |key: &str| {
                    use rdkafka::message::Headers;
                    let h = msg.headers()?;
                    let v = h.iter().find(|h| h.key == key)?.value?;
                    Some(String::from_utf8_lossy(v).to_string())
                };
                let id = match (v["event_id"].as_str(), header("fraudstream.source.offset")) {
                    (Some(id), _) => id.to_string(),
                    (None, Some(offset)) => {
                        let p = header("fraudstream.source.partition").unwrap_or_default();
                        format!("{p}@{offset}")
                    }
                    (None, None) => format!("unknown {}@{}", msg.partition(), msg.offset()),
                };
                *seen.entry(id).or_insert(0) += 1;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
            _ => {}
        }
    }
    seen
}

/// Waits (bounded) until `ready` holds; a hang is a failure, not a timing assertion.
pub(super) fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One enqueue failure on each topic the pipeline writes, in both guarantees:
/// the batch aborts and is decided again, so every input still gets its output
/// (exactly once, or at least once), and no committed offset skips one.
#[test]
fn a_record_that_cannot_be_queued_aborts_its_batch_and_is_decided_again() {
    let cases = [
        ("decisions", Guarantee::ExactlyOnce, false),
        ("payments-dlq", Guarantee::ExactlyOnce, false),
        ("fraudstream-checkpoints", Guarantee::ExactlyOnce, false),
        ("fraudstream-by-terminal", Guarantee::ExactlyOnce, true),
        ("decisions", Guarantee::AtLeastOnce, false),
        ("payments-dlq", Guarantee::AtLeastOnce, false),
    ];
    for (topic, guarantee, repartitioned) in cases {
        let (_kafka, config) = cluster(2, |c| {
            c.processing.guarantee = guarantee;
            if repartitioned {
                c.kafka.terminal_topic = "fraudstream-by-terminal".into();
            }
        });
        let n = 400;
        produce(&config, 0, n, true);
        fail_enqueue_to(&config, topic, 3);
        let running = start(&config, || {});
        let valid = n - n / 10;
        wait_for(
            &format!("every event decided ({topic}, {guarantee:?})"),
            || read_all(&config, "decisions", 2).len() == valid,
        );
        let stats = running.stop();
        assert!(stats.aborts >= 1, "{topic}: the failure aborted a batch");
        let decisions = read_all(&config, "decisions", 2);
        let dead = read_all(&config, "payments-dlq", 2);
        assert_eq!(
            dead.len(),
            n / 10,
            "{topic}: every invalid event dead-lettered"
        );
        if guarantee == Guarantee::ExactlyOnce {
            assert!(
                decisions.values().all(|&k| k == 1),
                "{topic}: a decision repeated"
            );
            assert!(
                dead.values().all(|&k| k == 1),
                "{topic}: a dead letter repeated"
            );
            assert_eq!(committed(&config, 2), n as i64, "{topic}");
        }
    }
}

/// A restore that outlasts `max.poll.interval.ms` runs from the poll loop with the
/// partitions paused: no second rebalance, `/readyz` not ready meanwhile, and the
/// events after the checkpoint are decided exactly once.
#[test]
fn a_restore_longer_than_the_poll_interval_does_not_set_off_a_rebalance() {
    let (_kafka, config) = cluster(2, |c| {
        // No duplicate check: it would hide a partition resumed at the wrong offset.
        c.processing.dedup_window_events = 0;
        // The least the mock cluster allows: a session must outlast its 3 s
        // initial rebalance delay, and the poll interval the session.
        for (k, v) in [
            ("max.poll.interval.ms", "6000"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ] {
            c.kafka.consumer.insert(k.into(), v.into());
        }
    });
    produce(&config, 0, 300, false);
    let first = start(&config, || {});
    wait_for("the first run's commits", || committed(&config, 2) == 300);
    first.stop();
    produce(&config, 300, 100, false);
    // 300 events at 30 ms each: a restore of 9 s, half as long again as the poll interval.
    let second = start(&config, || {
        restore::faults::slow_restore(Duration::from_millis(30))
    });
    wait_for("the restore to start", || second.health.restoring() > 0);
    assert!(!second.health.is_ready(), "not ready while restoring");
    wait_for("the events after the checkpoint", || {
        committed(&config, 2) == 400
    });
    wait_for("ready once restored", || second.health.is_ready());
    let stats = second.stop();
    assert_eq!(stats.assignments, 1, "one assignment, no rebalance");
    assert_eq!(stats.decided, 100);
    let decisions = read_all(&config, "decisions", 2);
    assert_eq!(decisions.len(), 400);
    assert!(decisions.values().all(|&k| k == 1), "a decision repeated");
}

/// While a commit is held, Kafka messages are still read and decided, their
/// records parked for the next transaction with their offsets; once the commit
/// ends they commit exactly once. When the transaction of the parked records
/// aborts instead (`fail`), they are read and decided again, and the run's
/// committed totals count each input once.
#[test]
fn kafka_input_is_decided_while_a_commit_runs_and_commits_once() {
    use crate::sink::faults::{hold_commits, Release};
    for fail in [false, true] {
        let (_kafka, config) = cluster(2, |_| {});
        produce(&config, 0, 10, true);
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        if fail {
            // The held batch has at most 9 decisions: a parked one fails.
            fail_enqueue_to(&config, "decisions", 9);
        }
        let running = start(&config, move || hold_commits(started_tx, release_rx));
        started.recv_timeout(WAIT).expect("a commit is held");
        // 30 more than the held batch can have read: at most a batch's worth
        // (processing.max_batch_events = 40) can park.
        produce(&config, 10, 30, true);
        let consumed = || running.metrics.events_consumed.get();
        wait_for("the messages sent during the commit decided", || {
            consumed() >= 40
        });
        release.send(Release).unwrap();
        drop(release);
        wait_for("every offset committed", || committed(&config, 2) == 40);
        let stats = running.stop();
        let totals = (stats.decided, stats.invalid, stats.aborts);
        assert_eq!(totals, (36, 4, u64::from(fail)), "fail: {fail}");
        let decisions = read_all(&config, "decisions", 2);
        let dead = read_all(&config, "payments-dlq", 2);
        assert_eq!((decisions.len(), dead.len()), (36, 4), "fail: {fail}");
        // The mock cluster lists no aborted transactions to `read_committed`
        // readers (librdkafka's rdkafka_mock_handlers.c), so the records of an
        // aborted one that reached it show: only without an abort is each once.
        if !fail {
            assert!(
                decisions.values().chain(dead.values()).all(|&k| k == 1),
                "a record repeated: {decisions:?} {dead:?}"
            );
        }
    }
}
