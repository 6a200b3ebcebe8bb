//! Labels can be corrected, through the processor: a chargeback turns a
//! provisional `legit` into `fraud`, a lost dispute turns `fraud` back into
//! `legit`, live, after a restart (the restore re-reads the labels partition),
//! and across the terminal repartition. The field case 12-label-correction,
//! from its copy in `tests/fixtures`.

mod common;

use common::{read_until, Cluster, Output, Running};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

const RULES: &str = "rules:
  - id: known_fraud_terminal
    when: terminal.fraud_count_7d >= 1
    action: review
    reason: { code: known_fraud_terminal, text: Terminal with a known fraud }
";

/// The field case's steps: (topic, key, value), in the order produced.
fn field_case_steps() -> Vec<(String, String, Vec<u8>)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/field-cases/12-label-correction/steps.jsonl"
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["topic"].as_str().unwrap().to_string(),
                v["key"].as_str().unwrap().to_string(),
                v["value"].to_string().into_bytes(),
            )
        })
        .collect()
}

/// A payment at 2026-11-30 10:`minute` (the field case's day).
fn payment(id: &str, minute: u32, account: &str, terminal: &str) -> (String, String, Vec<u8>) {
    let value = format!(
        r#"{{"event_id":"{id}","ts":"2026-11-30T10:{minute:02}:00Z","account_id":"{account}","terminal_id":"{terminal}","amount":10,"currency":"EUR"}}"#
    );
    ("payments".into(), account.into(), value.into_bytes())
}

fn label(id: &str, account: &str, label: &str) -> (String, String, Vec<u8>) {
    let value = format!(r#"{{"event_id":"{id}","label":"{label}"}}"#);
    ("labels".into(), account.into(), value.into_bytes())
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn labels_total(running: &[&Running], outcome: &str) -> u64 {
    running
        .iter()
        .map(|r| r.metrics.labels.with_label_values(&[outcome]).get())
        .sum()
}

fn hits(out: &Output, id: &str) -> bool {
    out.decisions[id][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["code"] == "known_fraud_terminal")
}

/// Produces `steps` in order, one at a time: a payment once it is decided, a
/// label once the processors counted one more label outcome than before (as
/// an operator's topics would be read in order).
fn play(
    cluster: &Cluster,
    running: &[&Running],
    reader: &mut fraudstream::demo::Reader,
    out: &mut Output,
    steps: &[(String, String, Vec<u8>)],
) {
    let outcomes = ["applied", "corrected", "repeated"];
    let taken = || -> u64 { outcomes.iter().map(|o| labels_total(running, o)).sum() };
    for (topic, key, value) in steps {
        let before = taken();
        cluster.produce(topic, &[(key.clone(), value.clone())]);
        if topic == "payments" {
            let id = serde_json::from_slice::<serde_json::Value>(value).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_string();
            read_until(reader, out, WAIT, |o| o.decisions.contains_key(&id));
        } else {
            wait_for("the label to be applied", || taken() > before);
        }
    }
}

/// A cluster with `partitions` partitions; terminal features are per partition
/// unless `terminal_topic` repartitions them.
fn cluster(partitions: i32, terminal_topic: &str, rules: &std::path::Path) -> Cluster {
    let mut c = Cluster::start_with(partitions, |c| {
        c.kafka.terminal_topic = terminal_topic.into()
    });
    c.config.rules.dir = rules.display().to_string();
    c
}

/// The field case, then a lost dispute (fraud, then legit), on one processor;
/// then a new process, whose state comes from the restore, decides a third
/// payment at each terminal.
#[test]
fn a_chargeback_after_a_provisional_legit_counts_as_fraud_live_and_after_a_restart() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("labels.yaml"), RULES).unwrap();
    let cluster = cluster(1, "", rules.path());
    let running = Running::start(&cluster.config);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    play(
        &cluster,
        &[&running],
        &mut reader,
        &mut out,
        &field_case_steps(),
    );
    assert!(
        hits(&out, "p-2"),
        "T-LF has one known fraud: {:?}",
        out.decisions["p-2"]
    );
    assert_eq!(labels_total(&[&running], "corrected"), 1);
    assert_eq!(labels_total(&[&running], "parked"), 0);
    let dispute = [
        payment("d-1", 5, "acc-d1", "T-LD"),
        label("d-1", "acc-d1", "fraud"),
        label("d-1", "acc-d1", "legit"),
        label("d-1", "acc-d1", "legit"),
        payment("d-2", 6, "acc-d2", "T-LD"),
    ];
    play(&cluster, &[&running], &mut reader, &mut out, &dispute);
    assert!(!hits(&out, "d-2"), "the dispute was lost: no fraud at T-LD");
    assert_eq!(
        (
            labels_total(&[&running], "corrected"),
            labels_total(&[&running], "repeated")
        ),
        (2, 1)
    );
    running.stop();

    let running = Running::start(&cluster.config);
    let after = [
        payment("p-3", 7, "acc-f3", "T-LF"),
        payment("d-3", 8, "acc-d3", "T-LD"),
    ];
    play(&cluster, &[&running], &mut reader, &mut out, &after);
    assert!(hits(&out, "p-3"), "restored: the chargeback is known");
    assert!(!hits(&out, "d-3"), "restored: the dispute is known");
    running.stop();
}

/// With terminal features repartitioned, the account side forwards the
/// correction to the terminal's owner (and keeps a repeat to itself).
#[test]
fn corrections_follow_their_payment_to_the_terminal_side() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("labels.yaml"), RULES).unwrap();
    let cluster = cluster(2, "fraudstream-by-terminal", rules.path());
    let running = Running::start(&cluster.config);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    let mut steps = field_case_steps();
    // The same label again: counted as a repeat on the account side.
    steps.insert(3, steps[2].clone());
    play(&cluster, &[&running], &mut reader, &mut out, &steps);
    assert!(hits(&out, "p-2"), "{:?}", out.decisions["p-2"]);
    assert_eq!(labels_total(&[&running], "routed"), 2);
    assert_eq!(labels_total(&[&running], "repeated"), 1);
    assert_eq!(
        labels_total(&[&running], "corrected"),
        1,
        "at the terminal side"
    );
    running.stop();
}
