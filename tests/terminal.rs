//! Terminal features across partitions and instances (`kafka.terminal_topic`):
//! a terminal's payments arrive on every input partition, and its features count
//! all of them, whichever instance owns the account, and after a restart.

mod common;

use common::{read_until, Cluster, Output, Running};
use fraudstream::source::time::now_ms;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
const PAYMENTS: usize = 16;

/// Rules that fire only on cross-partition terminal counts.
const RULES: &str = "rules:
  - id: busy_terminal
    when: terminal.tx_count_24h >= 16
    action: review
    reason: { code: busy_terminal, text: Busy terminal }
  - id: fraud_terminal
    when: terminal.fraud_count_7d >= 2
    action: review
    reason: { code: fraud_terminal, text: Terminal with fraud }
";

/// Payment `i` at terminal T-1. Payments are a second apart: the terminal side
/// sees the partitions' events interleaved, within `state.lateness_secs`.
fn payment(i: usize, ts_ms: i64) -> (String, Vec<u8>) {
    let account = format!("acc-{i}");
    let body = format!(
        r#"{{"event_id":"e{i}","ts":{ts_ms},"account_id":"{account}","terminal_id":"T-1","amount":12.5,"currency":"EUR"}}"#
    );
    (account, body.into_bytes())
}

fn fraud_label(i: usize) -> (String, Vec<u8>) {
    (
        format!("acc-{i}"),
        format!(r#"{{"event_id":"e{i}","label":"fraud"}}"#).into_bytes(),
    )
}

fn reasons(out: &Output, id: &str) -> Vec<String> {
    out.decisions[id][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

fn cluster(terminal_topic: &str, rules: &std::path::Path) -> Cluster {
    let mut c = Cluster::start_with(4, |c| c.kafka.terminal_topic = terminal_topic.into());
    c.config.rules.dir = rules.display().to_string();
    c
}

fn rules_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("terminal.yaml"), RULES).unwrap();
    dir
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn labels_applied(r: &Running) -> u64 {
    r.metrics.labels.with_label_values(&["applied"]).get()
}

/// Sends 15 payments at one terminal from 15 accounts (spread over the 4
/// partitions), two fraud labels, then a 16th payment: its decision must see
/// all 16 payments and both frauds. `labels_seen` says when the processors
/// have taken both labels.
fn sixteenth_payment_sees_the_whole_terminal(
    cluster: &Cluster,
    labels_seen: impl Fn() -> bool,
) -> Output {
    let mut reader = cluster.reader();
    let mut out = Output::default();
    let start = now_ms() - 3_600_000;
    let first: Vec<_> = (0..PAYMENTS - 1)
        .map(|i| payment(i, start + i as i64 * 1000))
        .collect();
    cluster.produce("payments", &first);
    read_until(&mut reader, &mut out, WAIT, |o| {
        o.decisions.len() == PAYMENTS - 1
    });
    cluster.produce("labels", &[fraud_label(0), fraud_label(1)]);
    wait_for("both labels at the terminal side", &labels_seen);
    let last = PAYMENTS - 1;
    cluster.produce("payments", &[payment(last, start + last as i64 * 1000)]);
    read_until(&mut reader, &mut out, WAIT, |o| {
        o.decisions.len() == PAYMENTS
    });
    out
}

#[test]
fn two_instances_count_a_terminal_across_all_partitions() {
    let rules = rules_dir();
    let cluster = cluster("fraudstream-by-terminal", rules.path());
    let mut a = cluster.config.clone();
    a.kafka.instance_id = "a".into();
    let mut b = cluster.config.clone();
    b.kafka.instance_id = "b".into();
    let (ra, rb) = (Running::start(&a), Running::start(&b));
    wait_for("both instances to own partitions", || {
        let (pa, pb) = (
            ra.metrics.assigned_partitions.get(),
            rb.metrics.assigned_partitions.get(),
        );
        pa > 0 && pb > 0 && pa + pb == 4
    });
    let out = sixteenth_payment_sees_the_whole_terminal(&cluster, || {
        labels_applied(&ra) + labels_applied(&rb) >= 2
    });
    let last = format!("e{}", PAYMENTS - 1);
    let hit = reasons(&out, &last);
    assert!(hit.contains(&"busy_terminal".to_string()), "{hit:?}");
    assert!(hit.contains(&"fraud_terminal".to_string()), "{hit:?}");
    for i in 0..PAYMENTS - 1 {
        let r = reasons(&out, &format!("e{i}"));
        assert!(!r.contains(&"busy_terminal".to_string()), "e{i}: {r:?}");
        assert_eq!(out.decisions[&format!("e{i}")].len(), 1);
    }
    // Both instances read some of the payments; the owner of T-1's partition
    // decided them all, so payments crossed from one instance to the other.
    let (sa, sb) = (ra.stop(), rb.stop());
    assert_eq!(sa.decided + sb.decided, PAYMENTS as u64);
    assert_eq!(sa.consumed + sb.consumed, PAYMENTS as u64);
    assert!(sa.consumed > 0 && sb.consumed > 0, "{sa:?} {sb:?}");
}

#[test]
fn without_the_terminal_topic_a_partition_sees_only_its_share() {
    let rules = rules_dir();
    let cluster = cluster("", rules.path());
    let running = Running::start(&cluster.config);
    let out = sixteenth_payment_sees_the_whole_terminal(&cluster, || {
        running.metrics.labels.with_label_values(&["applied"]).get()
            + running.metrics.labels.with_label_values(&["unknown"]).get()
            >= 2
    });
    let hit = reasons(&out, &format!("e{}", PAYMENTS - 1));
    assert!(!hit.contains(&"busy_terminal".to_string()), "{hit:?}");
    running.stop();
}

#[test]
fn the_terminal_side_is_restored_after_a_restart() {
    let rules = rules_dir();
    let cluster = cluster("fraudstream-by-terminal", rules.path());
    let mut reader = cluster.reader();
    let mut out = Output::default();
    let start = now_ms() - 3_600_000;
    let first: Vec<_> = (0..PAYMENTS - 1)
        .map(|i| payment(i, start + i as i64 * 1000))
        .collect();
    let running = Running::start(&cluster.config);
    cluster.produce("payments", &first);
    read_until(&mut reader, &mut out, WAIT, |o| {
        o.decisions.len() == PAYMENTS - 1
    });
    cluster.produce("labels", &[fraud_label(0), fraud_label(1)]);
    wait_for("both labels at the terminal side", || {
        labels_applied(&running) >= 2
    });
    running.stop();
    // A new process: everything it knows about the terminal comes from the restore.
    let running = Running::start(&cluster.config);
    let last = PAYMENTS - 1;
    cluster.produce("payments", &[payment(last, start + last as i64 * 1000)]);
    read_until(&mut reader, &mut out, WAIT, |o| {
        o.decisions.len() == PAYMENTS
    });
    let hit = reasons(&out, &format!("e{last}"));
    assert!(hit.contains(&"busy_terminal".to_string()), "{hit:?}");
    assert!(hit.contains(&"fraud_terminal".to_string()), "{hit:?}");
    // Restores run from the poll loop, partition by partition: the other
    // partition's may finish after this decision.
    wait_for("every partition restored", || {
        running.metrics.state_restored_events.get() >= (PAYMENTS - 1) as u64
    });
    common::drain(&mut reader, &mut out);
    assert!(
        out.decisions.values().all(|d| d.len() == 1),
        "a payment was decided twice"
    );
    running.stop();
}
