//! The processor against a second, independent Kafka implementation (tansu),
//! started by `scripts/tansu.sh`. Runs when `FRAUDSTREAM_TEST_BROKERS` is set.

mod common;

use common::*;
use fraudstream::config::Config;
use fraudstream::pipeline::topics::{self, Create};
use fraudstream::source::time::now_ms;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use std::time::Duration;

/// The tests share one broker and run one at a time (tansu answers concurrent
/// topic creation slowly).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn brokers() -> Option<String> {
    let b = std::env::var("FRAUDSTREAM_TEST_BROKERS")
        .ok()
        .filter(|b| !b.is_empty());
    if b.is_none() {
        common::skip_notice("*** SKIPPED: FRAUDSTREAM_TEST_BROKERS is not set (scripts/tansu.sh start sets up a broker) ***");
    }
    b
}

/// A config with fresh topics and group on the external broker.
fn fresh_config(brokers: &str, partitions: i32) -> Config {
    let c = fresh_names(brokers);
    create_topics(&c, partitions, true);
    c
}

/// A config with fresh topic names and group, none created.
fn fresh_names(brokers: &str) -> Config {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let suffix = format!("{}-{}-{n}", std::process::id(), now_ms());
    let mut c = Config::default();
    c.kafka.brokers = brokers.to_string();
    c.kafka.group_id = format!("fraudstream-{suffix}");
    c.kafka.instance_id = suffix.clone();
    for (topic, name) in [
        (&mut c.kafka.input_topic, "payments"),
        (&mut c.kafka.labels_topic, "labels"),
        (&mut c.kafka.output_topic, "decisions"),
        (&mut c.kafka.dlq_topic, "payments-dlq"),
        (&mut c.kafka.checkpoint_topic, "checkpoints"),
    ] {
        *topic = format!("{name}-{suffix}");
    }
    c.metrics.addr = String::new();
    c.processing.commit_interval_ms = 100;
    c
}

/// Creates the four user topics of `c` and, with `checkpoints`, its checkpoint topic.
fn create_topics(c: &Config, partitions: i32, checkpoints: bool) {
    let admin: AdminClient<DefaultClientContext> =
        fraudstream::config::client_config(c).create().unwrap();
    let k = &c.kafka;
    let mut names = vec![
        &k.input_topic,
        &k.labels_topic,
        &k.output_topic,
        &k.dlq_topic,
    ];
    if checkpoints {
        names.push(&k.checkpoint_topic);
    }
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let results = rt
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

#[test]
fn exactly_once_across_a_restart_with_malformed_input_on_tansu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(brokers) = brokers() else { return };
    let config = fresh_config(&brokers, 2);
    let now = now_ms();
    let mut records = Vec::new();
    for i in 0..3000 {
        records.push(event(
            &format!("e{i}"),
            &format!("acc{}", i % 53),
            now - 10_000 + i,
            20.0,
        ));
        if i % 100 == 0 {
            records.push((
                "bad".to_string(),
                format!("{{\"event_id\":\"bad{i}\",\"amount\":").into_bytes(),
            ));
        }
    }
    let p = fraudstream::demo::producer(&brokers).unwrap();
    for (k, v) in &records {
        fraudstream::demo::send(&p, &config.kafka.input_topic, k.as_bytes(), v).unwrap();
    }
    fraudstream::demo::flush(&p).unwrap();

    let k = &config.kafka;
    let mut reader =
        fraudstream::demo::reader(&brokers, &[&k.output_topic, &k.dlq_topic], 2).unwrap();
    let mut out = Output::default();
    let wait = Duration::from_secs(180);
    let first = Running::start(&config);
    read_until(&mut reader, &mut out, wait, |o| o.decisions.len() >= 1000);
    let s1 = first.stop();
    let second = Running::start(&config);
    read_until(&mut reader, &mut out, wait, |o| {
        o.decisions.len() == 3000 && o.dlq.len() == 30
    });
    drain(&mut reader, &mut out);
    let s2 = second.stop();
    let dups: Vec<_> = out
        .decisions
        .iter()
        .filter(|(_, v)| v.len() != 1)
        .map(|(k, _)| k.clone())
        .collect();
    assert!(dups.is_empty(), "duplicate decisions: {dups:?}");
    assert_eq!(out.dlq.len(), 30);
    assert!(out.dlq.iter().all(|d| d.0 == "invalid_json"));
    assert_eq!(
        s1.decided + s2.decided,
        3000,
        "the restart resumed exactly where the first run committed"
    );
}

#[test]
fn sigkill_chaos_on_tansu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(brokers) = brokers() else { return };
    let config = fresh_config(&brokers, 2);
    common::chaos::run_chaos(&config, 2, 1_000, 3);
}

/// As a new operator would: a fresh broker with the four user topics of the
/// README. `run` creates the checkpoint topic (compacted, the input's partition
/// count) and decides exactly once across a restart.
#[test]
fn run_on_tansu_with_the_four_user_topics_creates_the_checkpoint_topic() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(brokers) = brokers() else { return };
    let config = fresh_names(&brokers);
    create_topics(&config, 3, false);
    let now = now_ms();
    let p = fraudstream::demo::producer(&brokers).unwrap();
    for i in 0..600 {
        let (k, v) = event(
            &format!("e{i}"),
            &format!("a{}", i % 17),
            now - 9000 + i,
            7.0,
        );
        fraudstream::demo::send(&p, &config.kafka.input_topic, k.as_bytes(), &v).unwrap();
    }
    fraudstream::demo::flush(&p).unwrap();
    let k = &config.kafka;
    let mut reader =
        fraudstream::demo::reader(&brokers, &[&k.output_topic, &k.dlq_topic], 3).unwrap();
    let mut out = Output::default();
    let wait = Duration::from_secs(180);
    let first = Running::start(&config);
    read_until(&mut reader, &mut out, wait, |o| o.decisions.len() >= 200);
    let s1 = first.stop();
    let statuses = topics::survey(&config, Create::Nothing).unwrap();
    let cp = statuses
        .iter()
        .find(|s| s.spec.name == config.kafka.checkpoint_topic)
        .unwrap();
    assert_eq!(
        cp.found,
        Some(3),
        "created with the input's partition count"
    );
    assert_eq!(
        topic_setting(&config, &config.kafka.checkpoint_topic, "cleanup.policy").as_deref(),
        Some("compact")
    );
    let second = Running::start(&config);
    read_until(&mut reader, &mut out, wait, |o| o.decisions.len() == 600);
    drain(&mut reader, &mut out);
    let s2 = second.stop();
    assert!(
        out.decisions.values().all(|d| d.len() == 1),
        "a decision repeated"
    );
    assert_eq!(s1.decided + s2.decided, 600);
}

/// `fraudstream topics --create` on a fresh tansu creates every topic, the
/// checkpoint topic compacted; a second `topics` finds them all in order.
#[test]
fn the_topics_command_creates_every_topic_on_tansu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(brokers) = brokers() else { return };
    let config = fresh_names(&brokers);
    let k = &config.kafka;
    let flags = [
        "--input-topic",
        &k.input_topic,
        "--labels-topic",
        &k.labels_topic,
        "--output-topic",
        &k.output_topic,
        "--dlq-topic",
        &k.dlq_topic,
    ];
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fraudstream"))
            .args(["topics", "--brokers", &brokers])
            .args(flags)
            .args(extra)
            .env("FRAUDSTREAM__KAFKA__CHECKPOINT_TOPIC", &k.checkpoint_topic)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = run(&[]);
    assert!(!ok && text.contains("does not exist"), "{text}");
    let (ok, text) = run(&["--create", "--partitions", "2"]);
    assert!(ok, "{text}");
    assert_eq!(text.matches("created, 2 partitions").count(), 5, "{text}");
    let (ok, text) = run(&[]);
    assert!(ok, "{text}");
    assert_eq!(text.matches("ok, 2 partitions").count(), 5, "{text}");
    assert_eq!(
        topic_setting(&config, &k.checkpoint_topic, "cleanup.policy").as_deref(),
        Some("compact")
    );
}

/// A topic's setting as the broker describes it.
fn topic_setting(config: &Config, topic: &str, key: &str) -> Option<String> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<DefaultClientContext> =
        fraudstream::config::client_config(config).create().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let described = rt
        .block_on(admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new()))
        .unwrap();
    let resource = described.into_iter().next()?.ok()?;
    resource.get(key)?.value.clone()
}
