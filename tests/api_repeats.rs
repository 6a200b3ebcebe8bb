//! One decision per `event_id` across both paths: a call repeating an event
//! decided from the input topic, or by an earlier call, gets that decision
//! back, byte for byte as on the decisions topic; past `api.replay_entries`
//! decisions it gets 409, and nothing is decided twice.

mod common;

use common::api::{post, ApiProcessor};
use common::{drain, read_until, Cluster, Output};
use std::time::Duration;

const PATH: &str = "/v1/decisions";

fn payment(id: &str, i: usize) -> Vec<u8> {
    let ts = fraudstream::source::time::now_ms() - 60_000 + i as i64 * 100;
    format!(
        r#"{{"event_id":"{id}","ts":{ts},"account_id":"acc-{}","terminal_id":"t-1","amount":{}.5,"currency":"EUR"}}"#,
        i % 3,
        10 + i * 70
    )
    .into_bytes()
}

#[test]
fn a_repeat_gets_the_original_decision_whichever_path_decided_it() {
    let rules = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(2);
    let mut config = cluster.config.clone();
    config.api.addr = "127.0.0.1:0".into();
    config.api.timeout_ms = 30_000;
    // Kept: the last 4 decisions, of either path.
    config.api.replay_entries = 4;
    config.rules.dir = rules.path().display().to_string();
    config.processing.commit_interval_ms = 20;
    let api = ApiProcessor::start(&config);
    api.wait_ready();
    let mut reader = cluster.reader();
    let mut out = Output::default();

    // Six from the topic, then one call: k0 and k1 are past the last 4 decisions.
    let ids: Vec<String> = (0..6).map(|i| format!("k{i}")).collect();
    let records: Vec<(String, Vec<u8>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("acc-{}", i % 3), payment(id, i)))
        .collect();
    cluster.produce(&config.kafka.input_topic, &records);
    read_until(&mut reader, &mut out, Duration::from_secs(60), |o| {
        ids.iter().all(|id| o.decisions.contains_key(id))
    });
    let call = payment("h0", 6);
    let first = post(&api.addr, PATH, &[], &call).unwrap();
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("fraudstream-replayed"), None);

    // Repeats of the kept ones, by call, with other content even: the original.
    for (id, i) in [("k3", 3), ("k4", 4), ("k5", 5), ("h0", 6)] {
        let r = post(&api.addr, PATH, &[], &payment(id, i + 10)).unwrap();
        assert_eq!(r.status, 200, "{id}: {}", r.body);
        assert_eq!(r.header("fraudstream-replayed").as_deref(), Some("true"));
        let want = if id == "h0" {
            first.json()
        } else {
            out.decisions[id][0].clone()
        };
        assert_eq!(r.json(), want, "{id}");
    }
    // Past the bound: still not decided twice, but the decision is on the topic only.
    // (On the original's account: a worker knows the ids of its partition only.)
    for (id, i) in [("k0", 0), ("k1", 1)] {
        let r = post(&api.addr, PATH, &[], &payment(id, i)).unwrap();
        assert_eq!(
            (r.status, r.json()["reason"].as_str()),
            (409, Some("duplicate_event")),
            "{id}"
        );
    }
    // A Kafka repeat of the call is not decided again either.
    cluster.produce(&config.kafka.input_topic, &[("acc-0".into(), call)]);
    drain(&mut reader, &mut out);
    for (id, d) in &out.decisions {
        assert_eq!(d.len(), 1, "{id} decided {} times", d.len());
    }
    assert_eq!(out.decisions.len(), 7);
    let m = |o: &str| api.metrics.api_calls.with_label_values(&[o]).get();
    assert_eq!((m("decided"), m("replayed"), m("duplicate")), (1, 4, 2));
    api.stop();
}
