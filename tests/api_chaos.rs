//! Exactly one decision per payment when payments arrive both by HTTP (the
//! decision API) and by Kafka, some by both and some twice by HTTP, while the
//! processor is SIGKILLed at random moments and restarted.

mod common;

use common::api::post;
use common::chaos::{chaos_config, chaos_events, kill_repeatedly, produce_partitioned, spawn};
use common::{read_until, Cluster, Output};
use fraudstream::api::Partitioner;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PARTITIONS: i32 = 2;

/// Posts `payload` until it is answered with a decision (200) or as already
/// decided from the topic (409); connection errors, 429 and 503 are retried,
/// as a payment system would. Any other answer fails the test.
fn post_until_answered(addr: &str, payload: &[u8], stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match post(addr, "/v1/decisions", &[], payload) {
            Ok(r) if r.status == 200 || r.status == 409 => return,
            Ok(r) if r.status == 429 || r.status == 503 => {}
            Ok(r) => panic!("unexpected answer {}: {}", r.status, r.body),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn http_and_kafka_payments_across_sigkills_get_exactly_one_decision_each() {
    let cluster = Cluster::start(PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let mut config = chaos_config(&cluster.config, dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    config.api.addr = addr.clone();
    let config_file = dir.path().join("fraudstream.toml");
    std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
    let log = dir.path().join("fraudstream.log");

    // Each account's payments on the partition the API computes for it.
    let n = 900;
    let events: Vec<_> = chaos_events(n, PARTITIONS, fraudstream::source::time::now_ms())
        .into_iter()
        .map(|(_, account, payload)| {
            let p = Partitioner::ConsistentRandom.partition(account.as_bytes(), PARTITIONS);
            (p, account, payload)
        })
        .collect();
    // By Kafka: i % 3 == 1 and == 2; by HTTP: i % 3 == 0 and == 2 (both ways);
    // every 5th HTTP one twice.
    let kafka: Vec<_> = (0..n)
        .filter(|i| i % 3 != 0)
        .map(|i| events[i].clone())
        .collect();
    let http: Vec<Vec<u8>> = (0..n)
        .filter(|i| i % 3 != 1)
        .flat_map(|i| {
            let times = if i % 5 == 0 { 2 } else { 1 };
            std::iter::repeat_n(events[i].2.clone(), times)
        })
        .collect();
    produce_partitioned(&config.kafka.brokers, &config.kafka.input_topic, &kafka);

    let stop = Arc::new(AtomicBool::new(false));
    let poster = {
        let (addr, http, stop) = (addr.clone(), http.clone(), stop.clone());
        std::thread::spawn(move || {
            for payload in &http {
                post_until_answered(&addr, payload, &stop);
            }
        })
    };

    let k = &config.kafka;
    let mut reader =
        fraudstream::demo::reader(&k.brokers, &[&k.output_topic, &k.dlq_topic], PARTITIONS)
            .unwrap();
    let mut out = Output::default();
    kill_repeatedly(&config_file, &log, &mut reader, &mut out, n, 3, "api chaos");
    let mut child = spawn(&config_file, &log);
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        poster.join().expect("poster");
        // An answer given just before a kill may not have been committed: a
        // client that reconciles asks again (a repeat is answered, not re-decided).
        let never = AtomicBool::new(false);
        for payload in &http {
            post_until_answered(&addr, payload, &never);
        }
        read_until(&mut reader, &mut out, Duration::from_secs(180), |o| {
            o.decisions.len() >= n
        });
        common::drain(&mut reader, &mut out);
    }));
    stop.store(true, Ordering::Relaxed);
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    child.wait().unwrap();
    if done.is_err() {
        panic!(
            "not every payment was decided ({} of {n}); processor log:\n{}",
            out.decisions.len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    assert!(out.dlq.is_empty(), "no valid payment is dead-lettered");
    let duplicated: Vec<_> = out
        .decisions
        .iter()
        .filter(|(_, d)| d.len() != 1)
        .map(|(id, d)| (id, d.len()))
        .collect();
    assert!(
        duplicated.is_empty(),
        "decided more than once: {duplicated:?}"
    );
    assert_eq!(out.decisions.len(), n);
}
