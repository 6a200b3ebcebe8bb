//! The decision API (`POST /v1/decisions`) against a mock cluster: a call is
//! decided by the same engine and state as the Kafka path, recorded once on
//! the input and decisions topics, deduplicated across both paths, and every
//! answer matches `config/openapi.yaml`.

mod common;

use common::api::{
    api_config, check_against_openapi, comparable, openapi, post, reference, ApiProcessor,
};
use common::{read_until, Cluster, Output};
use fraudstream::api::call::{queue, Reply};
use fraudstream::api::{api_routes, ApiState, Partitioner, DEADLINE_REASON};
use fraudstream::config::Config;
use fraudstream::decision::Action;
use fraudstream::ops::metrics::Metrics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use std::sync::Arc;
use std::time::Duration;

const PATH: &str = "/v1/decisions";
const PARTITIONS: i32 = 2;

fn payment(id: &str, account: &str, ts_ms: i64, amount: f64) -> Vec<u8> {
    format!(
        r#"{{"event_id":"{id}","ts":{ts_ms},"account_id":"{account}","terminal_id":"t-1","amount":{amount},"currency":"EUR"}}"#
    )
    .into_bytes()
}

fn produce(cluster: &Cluster, partition: i32, account: &str, payload: &[u8]) {
    common::chaos::produce_partitioned(
        &cluster.config.kafka.brokers,
        &cluster.config.kafka.input_topic,
        &[(partition, account.to_string(), payload.to_vec())],
    );
}

fn wait_decided(reader: &mut fraudstream::demo::Reader, out: &mut Output, id: &str) {
    read_until(reader, out, Duration::from_secs(60), |o| {
        o.decisions.contains_key(id)
    });
}

#[test]
fn a_call_shares_the_kafka_paths_state_and_is_decided_and_recorded_once() {
    let cluster = Cluster::start(PARTITIONS);
    let config = api_config(&cluster);
    let doc = openapi();
    let api = ApiProcessor::start(&config);
    api.wait_ready();
    let mut reader = cluster.reader();
    let mut out = Output::default();
    let account = "acc-7";
    let p = Partitioner::ConsistentRandom.partition(account.as_bytes(), PARTITIONS);
    let t0 = fraudstream::source::time::now_ms() - 600_000;
    let kafka: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            payment(
                &format!("k{i}"),
                account,
                t0 + i * 10_000,
                40.0 + i as f64 * 90.0,
            )
        })
        .collect();
    let call = payment("h1", account, t0 + 60_000, 700.0);
    let after = payment("k5", account, t0 + 70_000, 650.0);
    let mut steps: Vec<&[u8]> = kafka.iter().map(Vec::as_slice).collect();
    steps.extend([call.as_slice(), after.as_slice()]);
    let want = reference(&config, &steps);

    for (i, k) in kafka.iter().enumerate() {
        produce(&cluster, p, account, k);
        wait_decided(&mut reader, &mut out, &format!("k{i}"));
    }
    // The call sees the five Kafka payments of its account...
    let r = post(&api.addr, PATH, &[], &call).unwrap();
    check_against_openapi(&doc, &r);
    assert_eq!(r.status, 200, "{}", r.body);
    let decision = r.json();
    assert_eq!(comparable(&decision), want[5]);
    assert!(decision["latency_us"].is_u64());
    // ...and the next Kafka payment sees the call.
    produce(&cluster, p, account, &after);
    wait_decided(&mut reader, &mut out, "k5");
    assert_eq!(comparable(&out.decisions["k5"][0]), want[6]);
    assert_eq!(
        out.decisions["h1"][0], decision,
        "the topic has the answer, as answered"
    );

    // A repeat gets the original; a Kafka duplicate gets nothing; a call for an
    // event decided from the topic gets that decision (tests/api_repeats.rs).
    let again = post(&api.addr, PATH, &[], &call).unwrap();
    check_against_openapi(&doc, &again);
    assert_eq!((again.status, again.json()), (200, decision.clone()));
    assert_eq!(
        again.header("fraudstream-replayed").as_deref(),
        Some("true")
    );
    produce(&cluster, p, account, &call);
    let dup = post(&api.addr, PATH, &[], &kafka[0]).unwrap();
    check_against_openapi(&doc, &dup);
    assert_eq!(
        (dup.status, dup.json()),
        (200, out.decisions["k0"][0].clone())
    );

    // An invalid payment: 400 with the dead-letter reason, and a dead letter.
    let bad = payment("bad-1", account, t0, -5.0);
    let r = post(&api.addr, PATH, &[], &bad).unwrap();
    check_against_openapi(&doc, &r);
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (400, Some("invalid_amount"))
    );
    read_until(&mut reader, &mut out, Duration::from_secs(60), |o| {
        !o.dlq.is_empty()
    });
    assert_eq!(out.dlq[0].0, "invalid_amount");
    assert_eq!(out.dlq[0].2, bad);

    common::drain(&mut reader, &mut out);
    for (id, d) in &out.decisions {
        assert_eq!(d.len(), 1, "{id} decided {} times", d.len());
    }
    assert_eq!(out.decisions.len(), 7);
    let input = input_records(&config, p);
    let marked: Vec<_> = input
        .iter()
        .filter(|(_, api)| *api)
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        marked,
        ["h1"],
        "the call is on the input topic, marked, on its account's partition"
    );
    let calls = api.metrics.api_calls.with_label_values(&["decided"]).get();
    assert_eq!(calls, 1);
    api.stop();
}

/// (event_id, written by the API) of the committed records of an input partition.
fn input_records(config: &Config, partition: i32) -> Vec<(String, bool)> {
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", "api-test-input")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(
        &config.kafka.input_topic,
        partition,
        rdkafka::Offset::Beginning,
    )
    .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    loop {
        match c.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                let api = m
                    .headers()
                    .is_some_and(|h| h.iter().any(|h| h.key == fraudstream::api::RECORD_HEADER));
                out.push((v["event_id"].as_str().unwrap().to_string(), api));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return out,
            other => panic!("reading the input: {other:?}"),
        }
    }
}

/// The HTTP side alone, with a queue nobody drains: a missing token, an
/// oversized body, a deadline and a full queue, each answered as documented.
#[test]
fn token_size_deadline_and_full_queue_are_answered_as_documented() {
    let doc = openapi();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = queue(1, metrics.api_queue_depth.clone());
    let limits = fraudstream::source::event::Limits::from_config(&Config::default().processing);
    let state = ApiState::new(
        tx,
        limits,
        Duration::from_millis(5),
        Action::Block,
        Some("s3cret".into()),
        metrics.clone(),
    );
    let addr = rt
        .block_on(fraudstream::ops::http::serve_router(
            "127.0.0.1:0",
            Default::default(),
            api_routes(state),
            metrics.clone(),
        ))
        .unwrap()
        .to_string();
    let auth = [("Authorization", "Bearer s3cret")];
    let ev = payment("e1", "a1", fraudstream::source::time::now_ms(), 10.0);

    let r = post(&addr, PATH, &[], &ev).unwrap();
    check_against_openapi(&doc, &r);
    assert_eq!(r.status, 401);
    let r = post(&addr, PATH, &[("Authorization", "Bearer wrong")], &ev).unwrap();
    assert_eq!(r.status, 401);

    let big = vec![b' '; limits.max_message_bytes + 1];
    let r = post(&addr, PATH, &auth, &big).unwrap();
    check_against_openapi(&doc, &r);
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (413, Some("oversized"))
    );

    // Nobody decides: past the deadline, the configured fallback, saying so.
    let r = post(&addr, PATH, &auth, &ev).unwrap();
    check_against_openapi(&doc, &r);
    assert_eq!(r.status, 200);
    let d = r.json();
    assert_eq!(d["action"], "block");
    assert_eq!(d["reasons"][0]["code"], DEADLINE_REASON);
    // The call still waits in the queue (of one): the next is turned away.
    let r = post(&addr, &format!("{PATH}?timeout_ms=50"), &auth, &ev).unwrap();
    check_against_openapi(&doc, &r);
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (429, Some("queue_full"))
    );
    let r = post(&addr, &format!("{PATH}?timeout_ms=0"), &auth, &ev).unwrap();
    check_against_openapi(&doc, &r);
    assert_eq!(r.status, 400);

    // The pipeline finds the abandoned call with the fallback the client got.
    let call = rx.recv(Duration::ZERO).expect("the call is queued");
    let fallback = call.ticket.take().expect_err("abandoned at its deadline");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(fallback).unwrap(),
        d
    );
    let _ = call.reply.send(Reply::Recorded);
    let m = |o: &str| metrics.api_calls.with_label_values(&[o]).get();
    assert_eq!(
        (
            m("unauthorized"),
            m("oversized"),
            m("timeout"),
            m("queue_full")
        ),
        (2, 1, 1, 1)
    );
    assert_eq!(metrics.api_queue_depth.get(), 0);
}
