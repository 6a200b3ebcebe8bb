//! Calls on the pipeline thread against the mock cluster, with faults injected:
//! a call for a restoring partition waits its turn, a call
//! whose transaction aborts is forgotten and decided anew, once, and calls
//! decided while a commit runs go into the next transaction, once.

use super::super::tests::{cluster, read_all, wait_for, WAIT};
use super::*;
use crate::api::call::{queue, CallSender, Ticket};
use crate::config::Config;
use crate::ops::lifecycle::{Health, Shutdown};
use crate::ops::metrics::Metrics;
use crate::pipeline::{restore, run_with_api, PipelineError, RunStats};
use crate::sink::faults::{hold_commits, Release};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

struct Running {
    stop: Shutdown,
    health: Arc<Health>,
    calls: CallSender,
    metrics: Arc<Metrics>,
    handle: JoinHandle<Result<RunStats, PipelineError>>,
}

/// Runs the pipeline with a call queue on a thread that first calls `inject`.
fn start(config: &Config, inject: impl FnOnce() + Send + 'static) -> Running {
    let (stop, health, metrics) = (Shutdown::new(), Health::new(), Arc::new(Metrics::new()));
    let (calls, rx) = queue(16, metrics.api_queue_depth.clone());
    let (c, s, h, m) = (
        config.clone(),
        stop.clone(),
        health.clone(),
        metrics.clone(),
    );
    let handle = std::thread::spawn(move || {
        inject();
        run_with_api(
            &c,
            crate::rules::reload::RulesSource::from_config(&c.rules),
            m,
            h,
            s,
            rx,
        )
    });
    Running {
        stop,
        health,
        calls,
        metrics,
        handle,
    }
}

impl Running {
    /// Queues `payload` and waits for the pipeline's reply.
    fn call(&self, payload: &str) -> Reply {
        let (tx, rx) = oneshot::channel();
        let call = Call {
            payload: payload.as_bytes().to_vec().into(),
            kind: CallKind::Decide,
            received: Instant::now(),
            ticket: Arc::new(Ticket::default()),
            reply: tx,
        };
        self.calls.try_send(call).expect("queued");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async { tokio::time::timeout(WAIT, rx).await })
            .expect("answered in time")
            .expect("answered")
    }

    /// Transactions aborted so far.
    fn aborts(&self) -> u64 {
        let abort = crate::ops::metrics::BatchOutcome::Abort.as_str();
        self.metrics.transactions.with_label_values(&[abort]).get()
    }

    fn stop(self) -> RunStats {
        self.stop.trigger();
        self.handle.join().unwrap().unwrap()
    }
}

fn payment(id: &str) -> String {
    let ts = crate::source::time::now_ms() - 1000;
    format!(
        r#"{{"event_id":"{id}","ts":{ts},"account_id":"acc-1","terminal_id":"t1","amount":12,"currency":"EUR"}}"#
    )
}

/// Runs the pipeline until calls `e0` .. `e{n-1}` are decided, and stops it.
fn decide_and_stop(config: &Config, n: usize) {
    let first = start(config, || {});
    wait_for("ready", || first.health.is_ready());
    for i in 0..n {
        assert!(matches!(
            first.call(&payment(&format!("e{i}"))),
            Reply::Decided { .. }
        ));
    }
    first.stop();
}

fn api_config(c: &mut Config) {
    c.api.addr = "127.0.0.1:0".into();
}

/// While the only partition restores, a call is answered `Restoring`; once
/// restored, the same call is decided.
#[test]
fn a_call_for_a_restoring_partition_waits_for_the_restore() {
    let (_kafka, config) = cluster(1, api_config);
    decide_and_stop(&config, 150);
    // 150 records at 20 ms each: a restore of 3 s.
    let second = start(&config, || {
        restore::faults::slow_restore(Duration::from_millis(20))
    });
    wait_for("the restore to start", || second.health.restoring() > 0);
    assert_eq!(second.call(&payment("late")), Reply::Restoring);
    wait_for("restored", || second.health.is_ready());
    assert!(matches!(
        second.call(&payment("late")),
        Reply::Decided {
            replayed: false,
            ..
        }
    ));
    // A call restored from the input is known: not decided again.
    assert_eq!(second.call(&payment("e7")), Reply::DecidedOnTopic);
    second.stop();
    let decisions = read_all(&config, "decisions", 1);
    assert_eq!(decisions.len(), 151);
    assert!(decisions.values().all(|&k| k == 1), "a decision repeated");
}

/// A call whose client got the deadline's fallback while its partition
/// restored is recorded once the restore ends: a repeat gets that fallback
/// back, and the decisions topic has it once (it was dropped unrecorded).
#[test]
fn a_fallback_given_during_a_restore_is_recorded_after_it() {
    let (_kafka, config) = cluster(1, api_config);
    decide_and_stop(&config, 50);
    // 50 records at 20 ms each: a restore of 1 s.
    let second = start(&config, || {
        restore::faults::slow_restore(Duration::from_millis(20))
    });
    wait_for("the restore to start", || second.health.restoring() > 0);
    let fallback = br#"{"event_id":"late","action":"review"}"#.to_vec();
    let (tx, _client_gone) = oneshot::channel();
    let ticket = Arc::new(Ticket::default());
    assert!(
        ticket.abandon(fallback.clone()),
        "the client has the fallback"
    );
    let abandoned = Call {
        payload: payment("late").into_bytes().into(),
        kind: CallKind::Decide,
        received: Instant::now(),
        ticket,
        reply: tx,
    };
    second.calls.try_send(abandoned).expect("queued");
    wait_for("restored", || second.health.is_ready());
    assert_eq!(
        second.call(&payment("late")),
        Reply::Decided {
            decision: fallback,
            replayed: true
        }
    );
    second.stop();
    let decisions = read_all(&config, "decisions", 1);
    assert_eq!(decisions.len(), 51);
    assert_eq!(decisions.get("late"), Some(&1));
}

/// The decision record of a call cannot be queued: its transaction aborts, so
/// the call is forgotten (state and replay), and its repeat is decided anew and
/// recorded once.
#[test]
fn a_call_whose_transaction_aborts_is_forgotten_and_decided_anew_once() {
    let (_kafka, config) = cluster(1, api_config);
    crate::sink::faults::fail_enqueue_to(&config, "decisions", 0);
    let running = start(&config, || {});
    wait_for("ready", || running.health.is_ready());
    let first = running.call(&payment("a1"));
    assert!(matches!(
        first,
        Reply::Decided {
            replayed: false,
            ..
        }
    ));
    // The abort comes with the commit, on the commit thread; a repeat before
    // it still gets the original decision (see the module's doc).
    wait_for("the transaction aborted", || running.aborts() >= 1);
    let again = loop {
        match running.call(&payment("a1")) {
            Reply::Restoring => std::thread::sleep(Duration::from_millis(20)),
            other => break other,
        }
    };
    assert!(
        matches!(
            again,
            Reply::Decided {
                replayed: false,
                ..
            }
        ),
        "decided anew, not replayed nor taken for a duplicate: {again:?}"
    );
    let stats = running.stop();
    assert!(stats.aborts >= 1);
    let decisions = read_all(&config, "decisions", 1);
    assert_eq!(decisions.get("a1"), Some(&1));
}

fn decided_anew(reply: &Reply) -> bool {
    matches!(
        reply,
        Reply::Decided {
            replayed: false,
            ..
        }
    )
}

/// The first commit is held in flight (a hook on the commit thread): calls are
/// still answered meanwhile, their records wait for the next transaction, and
/// every call's event and decision are committed exactly once; also when that
/// next transaction aborts (a parked decision cannot be queued): the parked
/// calls are then forgotten and decided anew, once.
#[test]
fn calls_answered_while_a_commit_runs_are_committed_once_with_the_next_batch() {
    for fail_parked in [false, true] {
        let (_kafka, config) = cluster(1, api_config);
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        if fail_parked {
            // c0's decision goes through; c1's, produced after the commit, fails.
            crate::sink::faults::fail_enqueue_to(&config, "decisions", 1);
        }
        let running = start(&config, move || hold_commits(started_tx, release_rx));
        wait_for("ready", || running.health.is_ready());
        assert!(decided_anew(&running.call(&payment("c0"))));
        started
            .recv_timeout(WAIT)
            .expect("the batch of c0 is committing");
        assert!(decided_anew(&running.call(&payment("c1"))));
        assert!(decided_anew(&running.call(&payment("c2"))));
        let repeat = running.call(&payment("c1"));
        assert!(
            matches!(repeat, Reply::Decided { replayed: true, .. }),
            "a parked call is known: {repeat:?}"
        );
        release.send(Release).unwrap();
        // Later commits go through.
        drop(release);
        if fail_parked {
            for id in ["c1", "c2"] {
                // Until the pipeline thread has taken the abort, a repeat still
                // gets the (unrecorded) original, as any answer before a commit.
                let again = loop {
                    match running.call(&payment(id)) {
                        Reply::Restoring | Reply::Decided { replayed: true, .. } => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        other => break other,
                    }
                };
                assert!(decided_anew(&again), "{id} after the abort: {again:?}");
            }
        }
        let stats = running.stop();
        assert_eq!(stats.aborts, u64::from(fail_parked));
        for topic in ["decisions", "payments"] {
            let records = read_all(&config, topic, 1);
            let ids = ["c0", "c1", "c2"].map(|id| records.get(id).copied());
            assert_eq!(ids, [Some(1); 3], "{fail_parked}: {topic}: {records:?}");
        }
    }
}

fn payment_of(id: &str, account: &str) -> String {
    payment(id).replace("acc-1", account)
}

/// A call whose client already got `fallback` at its deadline.
fn abandoned(payload: String, fallback: &[u8]) -> Call {
    let ticket = Arc::new(Ticket::default());
    assert!(
        ticket.abandon(fallback.to_vec()),
        "the client has the fallback"
    );
    Call {
        payload: payload.into_bytes().into(),
        kind: CallKind::Decide,
        received: Instant::now(),
        ticket,
        reply: oneshot::channel().0,
    }
}

fn fallback_of(id: &str) -> Vec<u8> {
    format!(r#"{{"event_id":"{id}","action":"review"}}"#).into_bytes()
}

/// Two instances own a partition each; each gets a call answered with the
/// fallback for both partitions' accounts: the one for the other instance's
/// partition is recorded by that owner (it was only logged), each once, and a
/// repeat at the owner gets that fallback back.
#[test]
fn a_fallback_for_a_partition_assigned_elsewhere_is_recorded_by_its_owner() {
    let (_kafka, config) = cluster(2, api_config);
    let instances = [start(&config, || {}), start(&config, || {})];
    wait_for("both instances own a partition", || {
        instances.iter().all(|i| i.health.is_ready())
    });
    // An account on each partition (by the API's partitioner).
    let accounts: Vec<String> = (0..2)
        .map(|p| {
            (0..)
                .map(|n| format!("acc-{n}"))
                .find(|a| config.api.partitioner.partition(a.as_bytes(), 2) == p)
                .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        for account in &accounts {
            let id = format!("fb-{i}-{account}");
            let call = abandoned(payment_of(&id, account), &fallback_of(&id));
            instance.calls.try_send(call).expect("queued");
            ids.push((id, account.clone()));
        }
    }
    wait_for("every fallback recorded", || {
        let decisions = read_all(&config, "decisions", 2);
        ids.iter().all(|(id, _)| decisions.contains_key(id))
    });
    for (id, account) in &ids {
        let replies: Vec<Reply> = instances
            .iter()
            .map(|i| i.call(&payment_of(id, account)))
            .collect();
        let recorded = Reply::Decided {
            decision: fallback_of(id),
            replayed: true,
        };
        assert!(
            replies.contains(&recorded) && replies.contains(&Reply::NotOwner),
            "{id}: {replies:?}"
        );
    }
    for i in instances {
        i.stop();
    }
    let decisions = read_all(&config, "decisions", 2);
    assert_eq!(decisions.len(), ids.len(), "{decisions:?}");
    assert!(decisions.values().all(|&k| k == 1), "{decisions:?}");
}

/// The pipeline stops with a call answered with the fallback still queued (its
/// partition never assigned), or held for a restore: the next run records it,
/// once (both were dropped).
#[test]
fn a_fallback_left_at_shutdown_is_recorded_by_the_next_run() {
    for held in [false, true] {
        let (_kafka, config) = cluster(1, api_config);
        let mut before = 0;
        if held {
            decide_and_stop(&config, 50);
            before = 50;
            // 50 records at 20 ms each: a restore of 1 s, stopped during it.
            let second = start(&config, || {
                restore::faults::slow_restore(Duration::from_millis(20))
            });
            wait_for("the restore to start", || second.health.restoring() > 0);
            let call = abandoned(payment("late"), &fallback_of("late"));
            second.calls.try_send(call).expect("queued");
            second.stop();
        } else {
            // Stopped before its loop ever ran: nothing is assigned.
            let (stop, metrics) = (Shutdown::new(), Arc::new(Metrics::new()));
            let (calls, rx) = queue(16, metrics.api_queue_depth.clone());
            let call = abandoned(payment("late"), &fallback_of("late"));
            calls.try_send(call).expect("queued");
            stop.trigger();
            let rules = crate::rules::reload::RulesSource::from_config(&config.rules);
            run_with_api(&config, rules, metrics, Health::new(), stop, rx).unwrap();
        }
        let next = start(&config, || {});
        wait_for("ready", || next.health.is_ready());
        wait_for("the fallback recorded", || {
            read_all(&config, "decisions", 1).contains_key("late")
        });
        assert_eq!(
            next.call(&payment("late")),
            Reply::Decided {
                decision: fallback_of("late"),
                replayed: true
            },
            "held: {held}"
        );
        next.stop();
        let decisions = read_all(&config, "decisions", 1);
        assert_eq!(decisions.len(), before + 1, "held: {held}");
        assert_eq!(decisions.get("late"), Some(&1), "held: {held}");
    }
}
