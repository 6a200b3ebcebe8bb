//! Hostile conditions against the mock cluster: a flood of malformed input, a
//! broker outage, a flood of new accounts, and duplicate deliveries.

mod common;

use common::*;
use fraudstream::features::{load_feature_set, EngineLimits, EventView, FeatureEngine};
use fraudstream::source::time::now_ms;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(180);

/// One malformed message of kind `kind`, and the DLQ reason it must get (`None`
/// where several are right, e.g. random bytes may be bad UTF-8 or bad JSON).
fn malformed(
    kind: usize,
    i: usize,
    now: i64,
    rng: &mut SmallRng,
) -> (Vec<u8>, Option<&'static str>) {
    let valid = |amount: &str, ts: &str| {
        format!(
            r#"{{"event_id":"bad-{i}","ts":{ts},"account_id":"a{i}","terminal_id":"t","amount":{amount},"currency":"EUR"}}"#
        )
    };
    match kind {
        0 => {
            let n = rng.gen_range(1..200);
            ((0..n).map(|_| rng.gen::<u8>()).collect(), None)
        }
        1 => {
            let full = valid("12.5", &now.to_string());
            let cut = rng.gen_range(1..full.len() - 1);
            (full.as_bytes()[..cut].to_vec(), Some("invalid_json"))
        }
        2 => (
            format!(r#"{{"event_id":"bad-{i}","ts":{now},"account_id":{i},"terminal_id":"t","amount":1,"currency":"EUR"}}"#).into_bytes(),
            Some("wrong_type"),
        ),
        3 if i % 100 == 3 => (
            format!(r#"{{"event_id":"bad-{i}","pad":"{}"}}"#, "x".repeat(70_000)).into_bytes(),
            Some("oversized"),
        ),
        3 => (
            format!(r#"{{"event_id":"bad-{i}","ts":{now},"account_id":"{}","terminal_id":"t","amount":1,"currency":"EUR"}}"#, "y".repeat(5_000)).into_bytes(),
            Some("invalid_field"),
        ),
        4 => (
            format!(r#"{{"event_id":"bad-{i}","deep":{}}}"#, "[".repeat(1_000)).into_bytes(),
            Some("invalid_json"),
        ),
        5 => (valid("\"NaN\"", &now.to_string()).into_bytes(), Some("invalid_amount")),
        6 => (valid("-5", &now.to_string()).into_bytes(), Some("invalid_amount")),
        7 => (valid("1e300", &now.to_string()).into_bytes(), Some("invalid_amount")),
        8 => (valid("3", "\"yesterday\"").into_bytes(), Some("invalid_timestamp")),
        9 => (
            valid("3", &(now + 10 * 365 * 86_400_000).to_string()).into_bytes(),
            Some("future_timestamp"),
        ),
        10 => (
            valid("3", &now.to_string()).replace("\"EUR\"", "\"ABC\"").into_bytes(),
            Some("invalid_currency"),
        ),
        11 => (
            valid("3", &now.to_string()).replace("\"EUR\"", "\"KES\"").into_bytes(),
            Some("no_fx_rate"),
        ),
        12 => (valid("3", &(now / 1000).to_string()).into_bytes(), Some("timestamp_in_seconds")),
        13 => (valid("3", "0").into_bytes(), Some("timestamp_before_min")),
        _ => {
            let mut v = valid("3", &now.to_string()).into_bytes();
            let at = v.iter().position(|&b| b == b'a').unwrap() + 1;
            v.insert(at, 0xff);
            (v, Some("invalid_utf8"))
        }
    }
}

#[test]
fn a_hundred_thousand_malformed_messages_interleaved_with_valid_ones() {
    let cluster = Cluster::start(8);
    let now = now_ms();
    let mut rng = SmallRng::seed_from_u64(5);
    let mut records = Vec::new();
    let mut expected_reason: HashMap<Vec<u8>, Option<&str>> = HashMap::new();
    let (n_bad, every) = (100_000, 10);
    for i in 0..n_bad {
        let (payload, reason) = malformed(i % 15, i, now, &mut rng);
        expected_reason.insert(payload.clone(), reason);
        records.push((format!("k{}", i % 977), payload));
        if i % every == every - 1 {
            let v = i / every;
            records.push(event(
                &format!("ok-{v}"),
                &format!("acc{}", v % 500),
                now - 600_000 + v as i64,
                20.0,
            ));
        }
    }
    let n_valid = n_bad / every;
    let running = Running::start(&cluster.config);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    // Produce in chunks and read each back, so the mock broker's 5 MiB per
    // partition retention is never outrun.
    let mut sent = 0;
    for chunk in records.chunks(11_000) {
        cluster.produce("payments", chunk);
        sent += chunk.len();
        read_until(&mut reader, &mut out, WAIT, |o| o.total() >= sent);
    }
    drain(&mut reader, &mut out);
    let counted: u64 = fraudstream::source::event::InvalidReason::ALL
        .iter()
        .map(|r| {
            running
                .metrics
                .events_invalid
                .with_label_values(&[r.code()])
                .get()
        })
        .sum();
    let stats = running.stop();

    assert_eq!(
        out.dlq.len(),
        n_bad,
        "every malformed message is dead-lettered"
    );
    for (reason, _, payload) in &out.dlq {
        assert!(!reason.is_empty());
        let want = expected_reason
            .get(payload)
            .expect("the DLQ keeps the original bytes");
        if let Some(want) = want {
            assert_eq!(
                reason,
                want,
                "{}",
                String::from_utf8_lossy(&payload[..payload.len().min(120)])
            );
        }
    }
    assert_eq!(out.decisions.len(), n_valid, "every valid event is decided");
    assert!(out.decisions.values().all(|d| d.len() == 1));
    assert_eq!(stats.invalid, n_bad as u64);
    assert_eq!(stats.decided, n_valid as u64);
    assert_eq!(
        counted, n_bad as u64,
        "the invalid-events counter moved for each"
    );
}

#[test]
fn a_30_second_broker_outage_is_survived_without_loss_and_reported_on_readyz() {
    let cluster = Cluster::start(2);
    let now = now_ms();
    let batch = |from: usize| -> Vec<_> {
        (from..from + 300)
            .map(|i| {
                event(
                    &format!("o{i}"),
                    &format!("acc{}", i % 31),
                    now - 60_000 + i as i64,
                    9.0,
                )
            })
            .collect()
    };
    let running = Running::start(&cluster.config);
    cluster.produce("payments", &batch(0));
    let mut reader = cluster.reader();
    let mut out = Output::default();
    read_until(&mut reader, &mut out, WAIT, |o| o.decisions.len() == 300);
    assert!(running.health.is_ready());
    cluster.kafka.set_broker_up(false).unwrap();
    let outage = Instant::now();
    // Events produced during the outage wait in the producer's queue.
    let producer = fraudstream::demo::producer(&cluster.config.kafka.brokers).unwrap();
    for (key, payload) in batch(300) {
        fraudstream::demo::send(&producer, "payments", key.as_bytes(), &payload).unwrap();
    }
    let mut saw_not_ready = false;
    while outage.elapsed() < Duration::from_secs(30) {
        saw_not_ready |= !running.health.is_ready();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        saw_not_ready,
        "/readyz reports not ready while the broker is down"
    );
    cluster.kafka.set_broker_up(true).unwrap();
    fraudstream::demo::flush(&producer).unwrap();

    read_until(&mut reader, &mut out, WAIT, |o| o.decisions.len() == 600);
    drain(&mut reader, &mut out);
    let back = Instant::now();
    while !running.health.is_ready() {
        assert!(back.elapsed() < WAIT, "ready again once the broker is back");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = running.stop();
    assert_eq!(out.decisions.len(), 600, "nothing lost");
    assert!(
        out.decisions.values().all(|d| d.len() == 1),
        "nothing decided twice"
    );
    assert!(out.dlq.is_empty());
    assert_eq!(stats.decided, 600);
}

#[test]
fn a_flood_of_new_accounts_stays_within_the_entity_cap() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let mut limits = EngineLimits::default();
    limits.table.max_entities = 20_000;
    let mut engine = FeatureEngine::new(set.clone(), limits);
    let mut out = vec![0.0; set.len()];
    let ids: Vec<String> = (0..1_000_000).map(|i| format!("flood-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let view = EventView {
            event_id: id,
            ts_ms: 1_700_000_000_000 + i as i64,
            amount: 10.0,
            account: id,
            card: id,
            terminal: "t",
            device: Some(id),
            ip: None,
            country: Some("DE"),
            ..Default::default()
        };
        engine.update(&view, &mut out);
    }
    let mut evicted = 0;
    for (entity, live, stats) in engine.table_stats() {
        assert!(live <= 20_000, "{entity}: {live} entities held");
        evicted += stats.evicted_lru;
    }
    assert!(
        evicted >= 3 * 980_000,
        "accounts, cards and devices were evicted: {evicted}"
    );
}

#[test]
fn duplicate_event_ids_get_no_second_decision_even_after_a_restart() {
    let cluster = Cluster::start(2);
    let now = now_ms();
    let unique: Vec<_> = (0..500)
        .map(|i| {
            event(
                &format!("d{i}"),
                &format!("acc{}", i % 41),
                now - 60_000 + i as i64,
                7.0,
            )
        })
        .collect();
    let mut first = unique.clone();
    first.extend(unique[..100].iter().cloned());
    cluster.produce("payments", &first);
    let running = Running::start(&cluster.config);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    read_until(&mut reader, &mut out, WAIT, |o| o.decisions.len() == 500);
    drain(&mut reader, &mut out);
    let stats = running.stop();
    assert_eq!(stats.duplicates, 100);
    assert_eq!(stats.decided, 500);

    // After a restart the recent ids are restored with the state: re-sent events
    // are still recognised.
    let mut second: Vec<_> = unique[200..250].to_vec();
    second.extend((500..550).map(|i| event(&format!("d{i}"), "acc1", now - 1_000 + i as i64, 7.0)));
    cluster.produce("payments", &second);
    let running = Running::start(&cluster.config);
    read_until(&mut reader, &mut out, WAIT, |o| o.decisions.len() == 550);
    drain(&mut reader, &mut out);
    let stats = running.stop();
    assert_eq!(stats.duplicates, 50);
    assert_eq!(stats.decided, 50);
    assert!(
        out.decisions.values().all(|d| d.len() == 1),
        "one decision per event id"
    );
    assert!(out.dlq.is_empty(), "duplicates are not dead letters");
}
