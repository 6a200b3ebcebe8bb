//! The decision API on two instances of one group against a mock cluster: a
//! call sent to either instance is decided once, by the owner of its account's
//! partition (forwarded there when needed), on the account's whole state, and
//! the answer is the decision on the topic; also while an instance joins and
//! another leaves.

mod common;

use common::api::{api_config, check_against_openapi, comparable, openapi, post, reference};
use common::api::{as_instance, ApiProcessor, Response};
use common::{read_until, Cluster, Output};
use fraudstream::api::forward::{DECIDED_BY, FORWARDED_BY};
use fraudstream::config::Config;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 4;
/// Generous: a fallback decision would not be the reference's.
const PATH: &str = "/v1/decisions?timeout_ms=30000";
const WAIT: Duration = Duration::from_secs(90);

fn cluster() -> Cluster {
    Cluster::start_with(PARTITIONS, |c| {
        // So the mock cluster has the owners topic (it cannot create topics).
        c.api.addr = "127.0.0.1:0".into();
        c.api.advertised_url = "http://127.0.0.1:1".into();
    })
}

/// Instance `id` of the group, its API on a port of its own that it advertises.
fn instance(cluster: &Cluster, id: &str) -> Config {
    as_instance(api_config(cluster), id, "http://127.0.0.1")
}

/// A payment at a terminal of the account's own, so that the reference (one
/// account's payments alone) sees the same terminal features.
fn payment(id: &str, account: &str, ts_ms: i64, amount: f64) -> Vec<u8> {
    format!(
        r#"{{"event_id":"{id}","ts":{ts_ms},"account_id":"{account}","terminal_id":"t-{account}","amount":{amount},"currency":"EUR"}}"#
    )
    .into_bytes()
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `body` to the instances in `addrs`, starting at `first`, until one
/// answers other than 503 (or a refused connection), as a client that honours
/// `Retry-After` would, without its wait: the conditions polled for are the
/// owner tables catching up and restores finishing. Returns the answer and the
/// address that gave it.
fn call_at(addrs: &[String], first: usize, body: &[u8]) -> (Response, String) {
    let deadline = Instant::now() + WAIT;
    for attempt in first.. {
        assert!(Instant::now() < deadline, "never answered");
        let addr = &addrs[attempt % addrs.len()];
        match post(addr, PATH, &[], body) {
            Ok(r) if r.status == 503 => assert!(r.header("retry-after").is_some()),
            Ok(r) => return (r, addr.clone()),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    unreachable!()
}

/// What an account's payments got, in the order they were answered.
#[derive(Default)]
struct Ledger {
    accounts: HashMap<String, Vec<(Vec<u8>, Response)>>,
    /// Calls answered by an instance (by address) with another's decision.
    forwarded: HashMap<String, u64>,
}

impl Ledger {
    /// Records the answer `r` to `body`, given at `addr` (instance `at`).
    fn answered(
        &mut self,
        account: String,
        body: Vec<u8>,
        (r, addr): (Response, String),
        at: &str,
    ) {
        if r.header(DECIDED_BY).is_some_and(|by| by != at) {
            *self.forwarded.entry(addr).or_default() += 1;
        }
        self.accounts.entry(account).or_default().push((body, r));
    }
}

impl Ledger {
    /// Every answer a decision: the account's state was whole at each call
    /// (equal to one worker deciding its payments in order), and the topic has
    /// exactly the decisions answered, once each.
    fn check(&self, config: &Config, out: &Output) {
        let mut answered = 0;
        for (account, calls) in &self.accounts {
            let payloads: Vec<&[u8]> = calls.iter().map(|(p, _)| p.as_slice()).collect();
            let want = reference(config, &payloads);
            for ((_, r), want) in calls.iter().zip(&want) {
                assert_eq!(r.status, 200, "{account}: {}", r.body);
                let got = r.json();
                assert_eq!(comparable(&got), *want, "{account}: state not whole");
                let id = got["event_id"].as_str().unwrap();
                assert_eq!(out.decisions[id], [got.clone()], "{id} on the topic");
                answered += 1;
            }
        }
        assert_eq!(out.decisions.len(), answered, "a decision nobody asked for");
    }
}

fn read_decisions(cluster: &Cluster, n: usize) -> Output {
    let mut reader = cluster.reader();
    let mut out = Output::default();
    read_until(&mut reader, &mut out, WAIT, |o| o.decisions.len() >= n);
    common::drain(&mut reader, &mut out);
    out
}

fn forwarded(p: &ApiProcessor, outcome: &str) -> u64 {
    p.metrics.api_forwarded.with_label_values(&[outcome]).get()
}

#[test]
fn a_call_to_either_instance_is_decided_once_by_its_partitions_owner() {
    let cluster = cluster();
    let doc = openapi();
    let (ca, cb) = (instance(&cluster, "a"), instance(&cluster, "b"));
    let (a, b) = (ApiProcessor::start(&ca), ApiProcessor::start(&cb));
    wait_for("both instances to own partitions", || {
        let (pa, pb) = (
            a.metrics.assigned_partitions.get(),
            b.metrics.assigned_partitions.get(),
        );
        pa > 0 && pb > 0 && pa + pb == PARTITIONS as i64
    });
    a.wait_ready();
    b.wait_ready();
    let addrs = [a.addr.clone(), b.addr.clone()];
    let t0 = fraudstream::source::time::now_ms() - 3_600_000;
    let mut ledger = Ledger::default();
    let mut owner_of: HashMap<String, String> = HashMap::new();
    for round in 0..6 {
        for acc in 0..8 {
            let account = format!("acc-{acc}");
            let id = format!("e{round}-{acc}");
            let body = payment(
                &id,
                &account,
                t0 + round * 60_000,
                20.0 + (round as usize * acc) as f64 * 37.0,
            );
            // Each account's payments alternate between the two instances.
            let (r, addr) = call_at(&addrs, (round as usize + acc) % 2, &body);
            check_against_openapi(&doc, &r);
            let by = r.header(DECIDED_BY).expect("says who decided");
            let owner = owner_of.entry(account.clone()).or_insert(by.clone());
            assert_eq!(*owner, by, "{account} decided by two instances");
            let at = if addr == a.addr { "a" } else { "b" };
            ledger.answered(account, body, (r, addr), at);
        }
    }
    let owners: std::collections::HashSet<_> = owner_of.values().collect();
    assert_eq!(owners.len(), 2, "both instances decide: {owner_of:?}");
    assert!(forwarded(&a, "decided") > 0 && forwarded(&b, "decided") > 0);
    for p in [&a, &b] {
        assert_eq!(
            forwarded(p, "decided"),
            ledger.forwarded[&p.addr],
            "one count per forwarded call"
        );
    }

    // A repeat sent to the instance that does not own the account gets the
    // original decision, through its owner.
    let (body, first) = &ledger.accounts["acc-3"][0];
    let other = if owner_of["acc-3"] == "a" {
        &b.addr
    } else {
        &a.addr
    };
    let again = post(other, PATH, &[], body).unwrap();
    check_against_openapi(&doc, &again);
    assert_eq!((again.status, again.json()), (200, first.json()));
    assert_eq!(
        again.header("fraudstream-replayed").as_deref(),
        Some("true")
    );

    // A call already forwarded once is not forwarded again: the non-owner says so.
    let late = payment("hop", "acc-3", t0 + 9 * 60_000, 15.0);
    let r = post(other, PATH, &[(FORWARDED_BY, "x")], &late).unwrap();
    check_against_openapi(&doc, &r);
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (503, Some("not_owner"))
    );
    assert!(r.header("retry-after").is_some());

    let out = read_decisions(&cluster, 48);
    ledger.check(&ca, &out);
    a.stop();
    b.stop();
}

/// Calls flow to whichever instances are up while a second instance joins and
/// the first then leaves: each call is answered with its decision, on the
/// account's whole state, and recorded once.
#[test]
fn calls_are_answered_while_an_instance_joins_and_another_leaves() {
    let cluster = cluster();
    let (ca, cb) = (instance(&cluster, "a"), instance(&cluster, "b"));
    let a = ApiProcessor::start(&ca);
    a.wait_ready();
    let addrs = Arc::new(Mutex::new(vec![a.addr.clone()]));
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let a_metrics = a.metrics.clone();
    let sender = {
        let (addrs, answered, stop) = (addrs.clone(), answered.clone(), stop.clone());
        let a_addr = a.addr.clone();
        std::thread::spawn(move || {
            let t0 = fraudstream::source::time::now_ms() - 3_600_000;
            let mut ledger = Ledger::default();
            for k in 0.. {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let account = format!("acc-{}", k % 8);
                let body = payment(
                    &format!("c{k}"),
                    &account,
                    t0 + k as i64 * 100,
                    5.0 + (k % 13) as f64 * 41.0,
                );
                let targets = addrs.lock().unwrap().clone();
                // Each account's calls alternate between the instances, round
                // after round: sent to one instance only (the first target
                // `k`, like the account, odd or even), an account is forwarded
                // only if the other instance owns it, and with the range
                // assignor ordering members by their random ids, each instance
                // may own just the accounts it is sent, leaving nothing to
                // forward either way.
                let (r, addr) = call_at(&targets, k / 8 + k, &body);
                let at = if addr == a_addr { "a" } else { "b" };
                ledger.answered(account, body, (r, addr), at);
                answered.fetch_add(1, Ordering::Release);
            }
            ledger
        })
    };
    let reach = |n: usize| {
        wait_for(&format!("{n} calls answered"), || {
            answered.load(Ordering::Acquire) >= n
        })
    };
    reach(30);
    let b = ApiProcessor::start(&cb);
    addrs.lock().unwrap().push(b.addr.clone());
    wait_for("b to own partitions", || {
        b.metrics.assigned_partitions.get() > 0
    });
    b.wait_ready();
    let n = answered.load(Ordering::Acquire);
    reach(n + 60);
    wait_for("calls forwarded both ways", || {
        forwarded(&a, "decided") > 0 && forwarded(&b, "decided") > 0
    });
    // a leaves while calls flow; b takes its partitions over.
    let a_addr = a.addr.clone();
    a.stop();
    addrs.lock().unwrap().retain(|x| *x != a_addr);
    wait_for("b to own every partition", || {
        b.metrics.assigned_partitions.get() == PARTITIONS as i64
    });
    b.wait_ready();
    let n = answered.load(Ordering::Acquire);
    reach(n + 60);
    stop.store(true, Ordering::Release);
    let ledger = sender.join().unwrap();
    // Each instance counts each call it forwarded once (the sender runs on
    // through the waits: thousands of calls, half of them forwarded).
    let decided = |m: &fraudstream::ops::metrics::Metrics| {
        m.api_forwarded.with_label_values(&["decided"]).get()
    };
    assert_eq!(
        (decided(&a_metrics), decided(&b.metrics)),
        (
            ledger.forwarded.get(&a_addr).copied().unwrap_or(0),
            ledger.forwarded.get(&b.addr).copied().unwrap_or(0)
        ),
        "one count per forwarded call"
    );
    let total = ledger.accounts.values().map(Vec::len).sum();
    let out = read_decisions(&cluster, total);
    ledger.check(&cb, &out);
    b.stop();
}
