//! Topics as Kafka Streams treats them: `run` creates its internal topics on a
//! fresh broker, checks co-partitioning at start, and `fraudstream topics`
//! prints (or creates) every topic the configuration needs. Against librdkafka's
//! mock cluster here; `tests/tansu.rs` runs the first case against tansu.

mod common;

use common::*;
use fraudstream::config::Config;
use fraudstream::pipeline::topics::{self, Create};
use fraudstream::pipeline::PipelineError;
use std::process::Command;

/// A mock cluster with the README's four user topics only.
fn user_topics_only(partitions: i32, configure: impl FnOnce(&mut Config)) -> Cluster {
    let mut cluster = Cluster::start_with(partitions, |c| {
        configure(c);
        c.kafka.checkpoint_topic.clear();
        c.kafka.terminal_topic.clear();
    });
    let defaults = Config::default();
    cluster.config.kafka.checkpoint_topic = defaults.kafka.checkpoint_topic;
    cluster
}

/// librdkafka's mock cluster has no CreateTopics API (and auto-creates a topic
/// only for a metadata request that allows it, which fraudstream's never does):
/// the start fails with the topic and the exact settings to create it with.
/// (`tests/tansu.rs` runs the same start against tansu, which creates it.)
#[test]
fn run_where_the_checkpoint_topic_cannot_be_created_names_it_and_its_settings() {
    let mut cluster = user_topics_only(3, |_| {});
    cluster.config.processing.kafka_timeout_ms = 2000;
    let err = Running::start(&cluster.config)
        .join()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("topic 'fraudstream-checkpoints': does not exist and cannot be created ("),
        "{err}"
    );
    assert!(
        err.ends_with("create it with partitions=3 cleanup.policy=compact"),
        "{err}"
    );
    let after = topics::survey(&cluster.config, Create::Nothing).unwrap();
    assert_eq!(after[4].found, None, "nothing auto-created it");
}

/// Input, labels and terminal topics must have the same partition count, the
/// checkpoint topic at least as many: each mismatch stops the start with a
/// message that names the topic and both counts.
#[test]
fn co_partitioning_is_checked_at_start() {
    for wrong in ["labels-3", "by-terminal-3", "checkpoints-1"] {
        let mut cluster = Cluster::start(2);
        for (name, partitions) in [("labels-3", 3), ("by-terminal-3", 3), ("checkpoints-1", 1)] {
            cluster.kafka.create_topic(name, partitions).unwrap();
        }
        let k = &mut cluster.config.kafka;
        match wrong {
            "labels-3" => k.labels_topic = wrong.into(),
            "by-terminal-3" => k.terminal_topic = wrong.into(),
            _ => k.checkpoint_topic = wrong.into(),
        }
        let err = Running::start(&cluster.config).join().unwrap_err();
        let PipelineError::Topics(e) = &err else {
            panic!("{wrong}: {err}")
        };
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("topic '{wrong}': has ")), "{msg}");
        assert!(
            msg.contains("partitions but the input topic 'payments' has 2"),
            "{msg}"
        );
    }
}

/// `fraudstream topics` on the mock cluster: the table, and `--create` failing
/// with the settings to use (`tests/tansu.rs` creates them on tansu).
#[test]
fn the_topics_command_prints_every_topic_the_config_needs() {
    let cluster = user_topics_only(2, |c| c.kafka.terminal_topic = "by-terminal".into());
    let brokers = &cluster.config.kafka.brokers;
    let (ok, table, err) = topics_command(brokers, &[]);
    assert!(ok, "{table}{err}");
    assert!(table.contains("fraudstream-checkpoints"), "{table}");
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing in\n{table}"))
            .to_string()
    };
    for name in ["payments ", "labels ", "decisions ", "payments-dlq "] {
        assert!(line(name).contains("ok, 2 partitions"), "{}", line(name));
    }
    assert!(
        line("labels ").contains("2 (= input)"),
        "{}",
        line("labels ")
    );
    let cp = line("fraudstream-checkpoints");
    assert!(
        cp.contains(">= 2") && cp.contains("cleanup.policy=compact"),
        "{cp}"
    );
    assert!(cp.contains("missing (`run` creates it)"), "{cp}");
}

/// Runs `fraudstream topics --brokers BROKERS EXTRA...`: success, stdout, stderr.
pub fn topics_command(brokers: &str, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fraudstream"))
        .args(["topics", "--brokers", brokers])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FRAUDSTREAM__PROCESSING__KAFKA_TIMEOUT_MS", "3000")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}
