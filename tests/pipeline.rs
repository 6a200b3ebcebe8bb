//! The processor end to end against librdkafka's mock cluster over TCP.

mod common;

use common::*;
use fraudstream::source::time::now_ms;
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn every_event_gets_exactly_one_decision() {
    let cluster = Cluster::start(3);
    let now = now_ms();
    let events: Vec<_> = (0..2000)
        .map(|i| {
            event(
                &format!("e{i}"),
                &format!("acc{}", i % 97),
                now - 100_000 + i,
                10.0 + (i % 50) as f64,
            )
        })
        .collect();
    cluster.produce("payments", &events);
    let running = Running::start(&cluster.config);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    read_until(&mut reader, &mut out, WAIT, |o| o.decisions.len() == 2000);
    drain(&mut reader, &mut out);
    let stats = running.stop();
    assert_eq!(out.decisions.len(), 2000);
    for i in 0..2000 {
        let d = &out.decisions[&format!("e{i}")];
        assert_eq!(d.len(), 1, "event e{i} has {} decisions", d.len());
        let d = &d[0];
        assert_eq!(d["account_id"], format!("acc{}", i % 97));
        assert!(["allow", "review", "block"].contains(&d["action"].as_str().unwrap()));
        let score = d["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        for key in [
            "reasons",
            "rules_version",
            "model_version",
            "event_ts",
            "decided_at",
            "latency_us",
        ] {
            assert!(!d[key].is_null(), "decision lacks {key}: {d}");
        }
    }
    assert!(out.dlq.is_empty());
    assert_eq!(stats.decided, 2000);
    // Offsets are committed for everything decided.
    let committed: i64 = committed(&cluster.config, 3).values().sum();
    assert_eq!(committed, 2000);
}

#[test]
fn malformed_input_goes_to_the_dlq_with_a_reason_and_processing_continues() {
    let cluster = Cluster::start(1);
    let now = now_ms();
    // Field case 02: e-ms is decided; e-s (epoch seconds) and e-zero are dead-lettered.
    let case_02: Vec<Vec<u8>> =
        include_str!("fixtures/field-cases/02-epoch-seconds/payments.jsonl")
            .lines()
            .map(|l| l.as_bytes().to_vec())
            .collect();
    let valid = |field: &str, value: &str| {
        let mut v: serde_json::Value = serde_json::from_str(&format!(
            r#"{{"event_id":"x","ts":{now},"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}}"#
        ))
        .unwrap();
        v[field] = serde_json::from_str(value).unwrap();
        v.to_string().into_bytes()
    };
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", b"not json at all".to_vec()),
        ("invalid_json", br#"{"event_id":"x","ts":1,"#.to_vec()),
        ("invalid_utf8", b"\xff\xfe\xfd".to_vec()),
        (
            "missing_field",
            format!(
                r#"{{"event_id":"x","ts":{now},"account_id":"a","amount":1,"currency":"EUR"}}"#
            )
            .into_bytes(),
        ),
        ("wrong_type", valid("account_id", r#"["a"]"#)),
        ("invalid_amount", valid("amount", "-1")),
        ("invalid_amount", valid("amount", r#""NaN""#)),
        ("invalid_amount", valid("amount", "1.001")),
        ("invalid_timestamp", valid("ts", r#""soon""#)),
        (
            "future_timestamp",
            valid("ts", &(now + 86_400_000 * 365).to_string()),
        ),
        (
            "oversized",
            format!(r#"{{"event_id":"x","pad":"{}"}}"#, "x".repeat(70_000)).into_bytes(),
        ),
        ("invalid_field", valid("event_id", r#""""#)),
        ("invalid_field", valid("country", r#""Germany""#)),
        ("invalid_currency", valid("currency", r#""ABC""#)),
        ("no_fx_rate", valid("currency", r#""KES""#)),
        ("timestamp_in_seconds", case_02[1].clone()),
        ("timestamp_before_min", case_02[2].clone()),
        (
            "invalid_json",
            format!(r#"{{"deep":{}}}"#, "[".repeat(5000)).into_bytes(),
        ),
        ("invalid_json", Vec::new()),
    ];
    let mut records = Vec::new();
    for (i, (_, payload)) in bad.iter().enumerate() {
        records.push(event(&format!("ok{i}"), "acc", now - 1000 + i as i64, 5.0));
        records.push(("k".to_string(), payload.clone()));
    }
    records.push(("acc-1".to_string(), case_02[0].clone()));
    records.push(event("last", "acc", now, 5.0));
    cluster.produce("payments", &records);
    let running = Running::start(&cluster.config);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    read_until(&mut reader, &mut out, WAIT, |o| o.total() == records.len());
    drain(&mut reader, &mut out);
    running.stop();
    assert_eq!(
        out.decisions.len(),
        bad.len() + 2,
        "every valid event, including the one after the bad ones, is decided"
    );
    assert!(
        out.decisions.contains_key("e-ms"),
        "field case 02: e-ms is decided"
    );
    assert_eq!(out.dlq.len(), bad.len());
    let mut dlq = out.dlq.clone();
    dlq.sort_by_key(|d| d.1.parse::<i64>().unwrap());
    for ((want_reason, payload), (reason, offset, bytes)) in bad.iter().zip(&dlq) {
        assert_eq!(reason, want_reason, "record at offset {offset}");
        assert_eq!(bytes, payload, "the DLQ keeps the original bytes");
    }
}

#[test]
fn shutdown_mid_stream_loses_nothing_and_commits_only_decided_offsets() {
    let cluster = Cluster::start(4);
    let now = now_ms();
    // Volume kept well under the mock broker's 5 MiB per partition.
    let n = 12_000;
    let events: Vec<_> = (0..n)
        .map(|i| {
            event(
                &format!("e{i}"),
                &format!("acc{}", i % 501),
                now - 50_000 + i as i64,
                12.5,
            )
        })
        .collect();
    cluster.produce("payments", &events);
    let mut reader = cluster.reader();
    let mut out = Output::default();

    let first = Running::start(&cluster.config);
    read_until(&mut reader, &mut out, WAIT, |o| o.decisions.len() >= n / 10);
    let stats = first.stop();
    assert!(
        stats.decided < n as u64,
        "the test stops mid-stream ({} decided)",
        stats.decided
    );
    // Everything committed was decided, and everything decided was committed.
    let committed: i64 = committed(&cluster.config, 4).values().sum();
    assert_eq!(committed as u64, stats.decided);
    read_until(&mut reader, &mut out, WAIT, |o| {
        o.decisions.len() as u64 >= stats.decided
    });
    drain(&mut reader, &mut out);
    assert_eq!(
        out.decisions.len() as u64,
        stats.decided,
        "read_committed sees exactly the committed decisions"
    );

    let second = Running::start(&cluster.config);
    read_until(&mut reader, &mut out, WAIT, |o| o.decisions.len() == n);
    drain(&mut reader, &mut out);
    let stats2 = second.stop();
    assert_eq!(stats.decided + stats2.decided, n as u64);
    let dups: Vec<_> = out
        .decisions
        .iter()
        .filter(|(_, v)| v.len() != 1)
        .map(|(k, _)| k)
        .collect();
    assert!(dups.is_empty(), "duplicated decisions: {dups:?}");
}

#[test]
fn at_least_once_mode_also_decides_everything() {
    let mut cluster = Cluster::start(2);
    cluster.config.processing.guarantee = fraudstream::config::Guarantee::AtLeastOnce;
    let now = now_ms();
    let events: Vec<_> = (0..3000)
        .map(|i| {
            event(
                &format!("e{i}"),
                &format!("a{}", i % 13),
                now - 10_000 + i,
                3.0,
            )
        })
        .collect();
    cluster.produce("payments", &events);
    let running = Running::start(&cluster.config);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    read_until(&mut reader, &mut out, WAIT, |o| o.decisions.len() == 3000);
    let stats = running.stop();
    assert_eq!(stats.decided, 3000);
    let committed: i64 = committed(&cluster.config, 2).values().sum();
    assert_eq!(committed, 3000);
}

#[test]
fn labels_feed_terminal_risk_and_metrics_endpoint_reports_it() {
    let mut cluster = Cluster::start(1);
    cluster.config.metrics.addr = "127.0.0.1:0".into();
    let now = now_ms();
    // Four frauds at one terminal, labelled; then a payment there is flagged.
    let mut records = Vec::new();
    for i in 0..4 {
        records.push(event_at(
            &format!("f{i}"),
            &format!("victim{i}"),
            "rogue",
            now - 60_000 + i * 1000,
        ));
    }
    cluster.produce("payments", &records);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = Running::start(&cluster.config);
    let addr = running.serve_http(&rt);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    read_until(&mut reader, &mut out, WAIT, |o| o.decisions.len() == 4);
    // The labels follow their decided payments (a label read before its payment
    // is parked, then counted as such, not as applied).
    let labels: Vec<_> = (0..4)
        .map(|i| {
            (
                format!("victim{i}"),
                format!(r#"{{"event_id":"f{i}","label":"fraud"}}"#).into_bytes(),
            )
        })
        .collect();
    cluster.produce("labels", &labels);
    // Wait (bounded) until the labels were consumed, then pay at the rogue terminal.
    let deadline = std::time::Instant::now() + WAIT;
    while !fraudstream::ops::http::get(&addr, "/metrics")
        .unwrap_or_else(|e| panic!("GET {addr}: {e}"))
        .1
        .contains("fraudstream_labels_total{outcome=\"applied\"} 4")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "labels were not applied"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.produce("payments", &[event_at("next", "someone", "rogue", now)]);
    read_until(&mut reader, &mut out, WAIT, |o| {
        o.decisions.contains_key("next")
    });
    let d = &out.decisions["next"][0];
    assert_ne!(d["action"], "allow", "{d}");
    assert_eq!(d["reasons"][0]["code"], "terminal_risk", "{d}");

    assert_eq!(
        fraudstream::ops::http::get(&addr, "/healthz").unwrap().0,
        200
    );
    assert_eq!(
        fraudstream::ops::http::get(&addr, "/readyz").unwrap().0,
        200
    );
    // Per-event metrics are flushed with each commit: wait (bounded) for them.
    let expected = [
        "fraudstream_events_decided_total 5",
        "fraudstream_decisions_total{action=\"allow\"} 4",
        "fraudstream_assigned_partitions 1",
    ];
    let deadline = std::time::Instant::now() + WAIT;
    let metrics = loop {
        let metrics = fraudstream::ops::http::get(&addr, "/metrics").unwrap().1;
        if expected.iter().all(|line| metrics.contains(line)) {
            break metrics;
        }
        let missing: Vec<_> = expected.iter().filter(|l| !metrics.contains(*l)).collect();
        assert!(
            std::time::Instant::now() < deadline,
            "missing {missing:?} in\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !metrics.contains("someone") && !metrics.contains("victim"),
        "no entity ids in metrics"
    );
    running.stop.trigger();
    assert_eq!(
        fraudstream::ops::http::get(&addr, "/readyz").unwrap().0,
        503,
        "not ready once shutdown starts"
    );
    running.stop();
}

fn event_at(id: &str, account: &str, terminal: &str, ts: i64) -> (String, Vec<u8>) {
    (
        account.to_string(),
        format!(r#"{{"event_id":"{id}","ts":{ts},"account_id":"{account}","terminal_id":"{terminal}","amount":20.0,"currency":"EUR"}}"#).into_bytes(),
    )
}

#[test]
fn rules_hot_reload_while_running_and_bad_files_keep_the_running_ruleset() {
    let mut cluster = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let write = |threshold: u32| {
        std::fs::write(
            rules.join("big.yaml"),
            format!("rules:\n  - id: big\n    when: amount > {threshold}\n    action: block\n    reason: {{ code: big, text: Big payment }}\n"),
        )
        .unwrap();
    };
    write(100);
    cluster.config.rules.dir = rules.display().to_string();
    let now = now_ms();
    let running = Running::start(&cluster.config);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    cluster.produce("payments", &[event("a1", "acc", now - 3000, 150.0)]);
    read_until(&mut reader, &mut out, WAIT, |o| {
        o.decisions.contains_key("a1")
    });
    let first = out.decisions["a1"][0].clone();
    assert_eq!(first["action"], "block");

    // A good change goes live: the same amount is now allowed, under a new version.
    write(1000);
    let deadline = std::time::Instant::now() + WAIT;
    let mut i = 0;
    let second = loop {
        i += 1;
        let id = format!("b{i}");
        cluster.produce("payments", &[event(&id, "acc", now - 2000 + i, 150.0)]);
        read_until(&mut reader, &mut out, WAIT, |o| {
            o.decisions.contains_key(&id)
        });
        let d = out.decisions[&id][0].clone();
        if d["rules_version"] != first["rules_version"] {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the changed rule file was never picked up"
        );
    };
    assert_eq!(second["action"], "allow");
    assert_eq!(running.metrics.rules_reloads.get(), 1);

    // A broken file is rejected, counted, and the running ruleset keeps deciding.
    std::fs::write(
        rules.join("big.yaml"),
        "rules:\n  - id: big\n    when: amount >>> 3\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while running.metrics.rules_reload_errors.get() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the broken file was never reported"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.produce("payments", &[event("c1", "acc", now - 1000, 5000.0)]);
    read_until(&mut reader, &mut out, WAIT, |o| {
        o.decisions.contains_key("c1")
    });
    let third = &out.decisions["c1"][0];
    assert_eq!(third["rules_version"], second["rules_version"]);
    assert_eq!(
        third["action"], "block",
        "5000 > 1000 under the running ruleset"
    );
    running.stop();
}

#[test]
fn the_model_scores_live_events_and_a_missing_model_falls_back_to_rules() {
    let mut cluster = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("r.yaml"), "rules:\n  - id: huge\n    when: amount > 10000\n    action: block\n    reason: { code: huge, text: Huge }\n").unwrap();
    let model_path = dir.path().join("champion.json");
    cluster.config.features.set = "default".into();
    cluster.config.rules.dir = rules.display().to_string();
    cluster.config.model.path = model_path.display().to_string();
    let now = now_ms();
    let running = Running::start(&cluster.config);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    // No model file yet: decided on rules alone, and the decision says so.
    cluster.produce("payments", &[event("m1", "acc", now - 5000, 500.0)]);
    read_until(&mut reader, &mut out, WAIT, |o| {
        o.decisions.contains_key("m1")
    });
    let d = &out.decisions["m1"][0];
    assert_eq!(d["model_version"], "none");
    assert!(
        d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "policy_model_unavailable"),
        "{d}"
    );
    assert!(running.metrics.model_unavailable.get() >= 1);

    // A normal history for the account: two weeks of ~40.00 payments.
    let history: Vec<_> = (0..28)
        .map(|i| {
            event(
                &format!("h{i}"),
                "acc",
                now - 14 * 86_400_000 + i * 12 * 3_600_000,
                40.0,
            )
        })
        .collect();
    cluster.produce("payments", &history);
    read_until(&mut reader, &mut out, WAIT, |o| {
        o.decisions.contains_key("h27")
    });
    // The model appears: it is picked up and scores, with explanations.
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json"),
        &model_path,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut i = 0;
    let scored = loop {
        i += 1;
        let id = format!("m{}", i + 1);
        cluster.produce("payments", &[event(&id, "acc", now - 4000 + i, 900.0)]);
        read_until(&mut reader, &mut out, WAIT, |o| {
            o.decisions.contains_key(&id)
        });
        let d = out.decisions[&id][0].clone();
        if d["model_version"] != "none" {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the model file was never picked up"
        );
    };
    assert!(scored["model_version"]
        .as_str()
        .unwrap()
        .starts_with("handbook@"));
    let score = scored["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score), "{scored}");
    let explained = scored["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["code"].as_str().unwrap().starts_with("model:"));
    assert_eq!(
        explained,
        scored["action"] != "allow",
        "reviewed and blocked payments are explained: {scored}"
    );
    assert!(!scored["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["code"] == "policy_model_unavailable"));
    running.stop();
}

/// Every committed record of `topic` partition 0, read to its end: headers and payload.
fn read_to_end(
    config: &fraudstream::config::Config,
    topic: &str,
) -> Vec<(HashMap<String, String>, Vec<u8>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", "test-read-to-end")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(std::time::Instant::now() < deadline, "{topic} unreadable");
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let v = String::from_utf8_lossy(h.value.unwrap_or(&[]));
                                (h.key.to_string(), v.to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((headers, m.payload().unwrap_or(&[]).to_vec()));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return out,
            _ => {}
        }
    }
}

/// An input larger than the producer's `message.max.bytes` (1,000,000 by
/// default): its dead letter is cut to `processing.dlq_max_payload_bytes`, says
/// the original size and SHA-256, and is committed together with its offset.
#[test]
fn an_oversized_input_is_dead_lettered_cut_to_size_and_commits_only_with_it() {
    use sha2::Digest;
    let cluster = Cluster::start(1);
    let now = now_ms();
    let big = format!(r#"{{"event_id":"big","pad":"{}"}}"#, "x".repeat(1 << 20)).into_bytes();
    let mut records = vec![event("before", "acc", now - 2000, 5.0)];
    records.push(("acc".to_string(), big.clone()));
    records.push(event("after", "acc", now - 1000, 5.0));
    // The test's producer takes a record of over 1 MB; fraudstream's does not.
    let p: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &cluster.config.kafka.brokers)
        .set("message.max.bytes", "4000000")
        .create()
        .unwrap();
    for (key, payload) in &records {
        fraudstream::demo::send(&p, "payments", key.as_bytes(), payload).unwrap();
    }
    fraudstream::demo::flush(&p).unwrap();
    let running = Running::start(&cluster.config);
    let deadline = std::time::Instant::now() + WAIT;
    while committed(&cluster.config, 1).values().sum::<i64>() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "offsets never committed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = running.stop();
    assert_eq!((stats.decided, stats.invalid), (2, 1));
    // The offset of the oversized input is committed: its dead letter must be too.
    let dead = read_to_end(&cluster.config, "payments-dlq");
    assert_eq!(
        dead.len(),
        1,
        "the oversized input's dead letter is committed with its offset"
    );
    let (headers, payload) = &dead[0];
    let keep = cluster.config.processing.dlq_max_payload_bytes;
    assert_eq!(headers["fraudstream.error.reason"], "oversized");
    assert_eq!(headers["fraudstream.source.offset"], "1");
    assert_eq!(headers["fraudstream.payload.bytes"], big.len().to_string());
    let sha: String = sha2::Sha256::digest(&big)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(headers["fraudstream.payload.sha256"], sha);
    assert_eq!(headers["fraudstream.payload.truncated"], "true");
    assert_eq!(
        payload[..],
        big[..keep],
        "the first dlq_max_payload_bytes are kept"
    );
    let decided = read_to_end(&cluster.config, "decisions").len();
    assert_eq!(decided, 2);
}
