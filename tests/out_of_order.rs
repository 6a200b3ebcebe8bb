//! Features are point-in-time correct for out-of-order events: every accepted
//! event's features equal those of a fresh engine fed, in event-time order
//! (ties within a second in arrival order), every event that had arrived up to
//! and including it, with the labels known when it arrived (the latest label
//! of each payment: corrections included). Live, after a restore, and in the
//! offline replay.

use fraudstream::features::{load_feature_set, EngineLimits, EventView, FeatureEngine, FeatureSet};
use fraudstream::offline::replay::{ReplayOptions, Replayer};
use fraudstream::pipeline::PartitionWorker;
use fraudstream::source::event::Limits;
use fraudstream::source::handbook::TxRow;
use fraudstream::state::TableLimits;
use proptest::prelude::*;
use std::sync::Arc;

/// Every aggregate kind: windows with delays and amount filters, min/max,
/// standard deviation, z-score and hour gap, distinct counts, first_seen and
/// secs_since_last (with horizons shorter
/// than the gaps the tests make), label aggregates (on five entity kinds,
/// pairs among them), pairs, ratios.
const ALL_KINDS: &str = r#"
name = "every kind"
[[feature]]
name = "a_count_5m"
entity = "account"
aggregate = "count"
window = "5m"
[[feature]]
name = "a_sum_10m"
entity = "account"
aggregate = "sum"
window = "10m"
[[feature]]
name = "a_mean_1h"
entity = "account"
aggregate = "mean"
window = "1h"
[[feature]]
name = "a_min_10m"
entity = "account"
aggregate = "min"
window = "10m"
[[feature]]
name = "a_max_1h"
entity = "account"
aggregate = "max"
window = "1h"
[[feature]]
name = "a_max_small_10m"
entity = "account"
aggregate = "max"
window = "10m"
amount_max = 30
[[feature]]
name = "a_count_10m_ending_5m_ago"
entity = "account"
aggregate = "count"
window = "10m"
delay = "5m"
[[feature]]
name = "a_sum_mid_1h"
entity = "account"
aggregate = "sum"
window = "1h"
amount_min = 20
amount_max = 40.5
[[feature]]
name = "a_terminals_10m"
entity = "account"
aggregate = "distinct"
of = "terminal"
window = "10m"
[[feature]]
name = "a_devices_1h"
entity = "account"
aggregate = "distinct"
of = "device"
window = "1h"
[[feature]]
name = "a_secs_since_last"
entity = "account"
aggregate = "secs_since_last"
[[feature]]
name = "a_first_seen"
entity = "account"
aggregate = "first_seen"
[[feature]]
name = "a_fraud_10m"
entity = "account"
aggregate = "fraud_count"
window = "10m"
[[feature]]
name = "a_labelled_1h"
entity = "account"
aggregate = "labelled_count"
window = "1h"
[[feature]]
name = "t_count_10m"
entity = "terminal"
aggregate = "count"
window = "10m"
[[feature]]
name = "t_fraud_rate_1h"
entity = "terminal"
aggregate = "fraud_rate"
window = "1h"
[[feature]]
name = "t_fraud_share_1h"
entity = "terminal"
aggregate = "fraud_share"
window = "1h"
[[feature]]
name = "t_fraud_30m_ending_10m_ago"
entity = "terminal"
aggregate = "fraud_count"
window = "30m"
delay = "10m"
[[feature]]
name = "t_min_big_1h"
entity = "terminal"
aggregate = "min"
window = "1h"
amount_min = 10
[[feature]]
name = "t_accounts_1h"
entity = "terminal"
aggregate = "distinct"
of = "account"
window = "1h"
[[feature]]
name = "at_first_seen"
entity = "account+terminal"
aggregate = "first_seen"
window = "20m"
[[feature]]
name = "at_secs_since_last"
entity = "account+terminal"
aggregate = "secs_since_last"
window = "20m"
[[feature]]
name = "at_fraud_1h"
entity = "account+terminal"
aggregate = "fraud_count"
window = "1h"
[[feature]]
name = "ct_fraud_30m"
entity = "card+terminal"
aggregate = "fraud_count"
window = "30m"
[[feature]]
name = "d_fraud_1h"
entity = "device"
aggregate = "fraud_count"
window = "1h"
[[feature]]
name = "d_count_5m"
entity = "device"
aggregate = "count"
window = "5m"
[[feature]]
name = "d_first_seen"
entity = "device"
aggregate = "first_seen"
window = "10m"
[[feature]]
name = "a_std_1h"
entity = "account"
aggregate = "std"
window = "1h"
[[feature]]
name = "a_zscore_10m"
entity = "account"
aggregate = "zscore"
window = "10m"
[[feature]]
name = "t_hour_gap_1h"
entity = "terminal"
aggregate = "hour_gap"
window = "1h"
[[feature]]
name = "amount"
event = "amount"
[[feature]]
name = "amount_to_mean"
ratio = ["amount", "a_mean_1h"]
"#;

const LATENESS_S: u32 = 120;

/// One generated payment.
#[derive(Debug, Clone)]
struct Payment {
    id: String,
    ts_ms: i64,
    account: String,
    terminal: String,
    device: Option<String>,
    amount: f64,
}

impl Payment {
    fn view(&self) -> EventView<'_> {
        EventView {
            event_id: &self.id,
            ts_ms: self.ts_ms,
            amount: self.amount,
            account: &self.account,
            card: &self.account,
            terminal: &self.terminal,
            device: self.device.as_deref(),
            ..EventView::default()
        }
    }
}

/// What arrives, in order: a payment (by index), or a label for one.
#[derive(Debug, Clone, Copy)]
enum Arrival {
    Payment(usize),
    Label(usize, bool),
}

fn limits() -> EngineLimits {
    EngineLimits {
        table: TableLimits {
            lateness_s: LATENESS_S,
            ..TableLimits::default()
        },
        ..EngineLimits::default()
    }
}

/// Payments in event time, mostly seconds to minutes apart (several in one
/// second, now and then a gap longer than every window), and the order they
/// arrive in: each delayed by up to the lateness, so none is later than it.
/// Labels arrive in between, some before their payment, some correcting an
/// earlier one.
fn scenario() -> impl Strategy<Value = (Vec<Payment>, Vec<Arrival>)> {
    let payment = (
        prop_oneof![6 => 0i64..90_000, 2 => 0i64..1000, 1 => 3_000_000i64..5_000_000],
        0usize..3,
        0usize..3,
        0usize..4,
        1u32..6000,
        0i64..=i64::from(LATENESS_S) * 1000,
    );
    (
        proptest::collection::vec(payment, 20..90),
        proptest::collection::vec((any::<u8>(), any::<u16>(), any::<bool>()), 0..40),
    )
        .prop_map(|(raw, labels)| {
            let mut ts_ms = 1_700_000_000_000i64;
            let mut payments = Vec::new();
            let mut arrive_at = Vec::new();
            for (i, (gap, a, t, d, cents, delay)) in raw.into_iter().enumerate() {
                ts_ms += gap;
                payments.push(Payment {
                    id: format!("p{i}"),
                    ts_ms,
                    account: format!("acc{a}"),
                    terminal: format!("t{t}"),
                    device: (d < 3).then(|| format!("dev{d}")),
                    amount: f64::from(cents) / 100.0,
                });
                arrive_at.push((ts_ms + delay, i));
            }
            arrive_at.sort();
            let mut arrivals: Vec<Arrival> = arrive_at
                .iter()
                .map(|&(_, i)| Arrival::Payment(i))
                .collect();
            // Payments are labelled, relabelled (corrections) or labelled again.
            for (at, which, fraud) in labels {
                let p = usize::from(which) % payments.len().min(12);
                let at = usize::from(at) % (arrivals.len() + 1);
                arrivals.insert(at, Arrival::Label(p, fraud));
            }
            (payments, arrivals)
        })
}

fn same(a: &[f64], b: &[f64]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// The features of the payment arriving at `arrivals[k]`, from a fresh engine
/// fed in event-time order everything that had arrived by then.
fn reference(
    set: &Arc<FeatureSet>,
    payments: &[Payment],
    arrivals: &[Arrival],
    k: usize,
) -> Vec<f64> {
    let Arrival::Payment(this) = arrivals[k] else {
        unreachable!()
    };
    let mut label = vec![None; payments.len()];
    let mut arrived = Vec::new();
    for a in &arrivals[..=k] {
        match *a {
            Arrival::Payment(i) => arrived.push(i),
            Arrival::Label(i, fraud) => label[i] = Some(fraud),
        }
    }
    // Stable: ties within a second keep their arrival order.
    arrived.sort_by_key(|&i| payments[i].ts_ms.div_euclid(1000));
    let mut engine = FeatureEngine::new(set.clone(), limits());
    let mut out = vec![0.0; set.len()];
    for i in arrived {
        engine.update(&payments[i].view(), &mut out);
        if i == this {
            return out;
        }
        if let Some(fraud) = label[i] {
            engine.apply_label(&payments[i].id, fraud);
        }
    }
    unreachable!("the payment itself was fed")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The property, over random permutations within the lateness bound.
    #[test]
    fn late_events_get_the_features_of_a_replay_sorted_by_event_time(
        (payments, arrivals) in scenario(),
    ) {
        let set = Arc::new(FeatureSet::parse("kinds.toml", ALL_KINDS).unwrap());
        let mut live = FeatureEngine::new(set.clone(), limits());
        let mut out = vec![0.0; set.len()];
        for (k, a) in arrivals.iter().enumerate() {
            match *a {
                Arrival::Label(i, fraud) => {
                    live.apply_label(&payments[i].id, fraud);
                }
                Arrival::Payment(i) => {
                    live.update(&payments[i].view(), &mut out);
                    let want = reference(&set, &payments, &arrivals, k);
                    let diff: Vec<_> = set.names.iter().zip(out.iter().zip(&want))
                        .filter(|(_, (a, b))| !same(&[**a], &[**b]))
                        .map(|(n, (a, b))| format!("{n}: live {a}, sorted {b}"))
                        .collect();
                    prop_assert!(diff.is_empty(), "payment {} (arrival {}): {:?}", i, k, diff);
                }
            }
        }
    }
}

/// The field case (08-out-of-order): 10:00, 10:06, 10:07 then a payment stamped
/// 10:05: it counts 2 payments in its 10 minutes (10:00 and itself), not 4.
#[test]
fn the_10_05_payment_counts_two_payments_in_its_10_minutes() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let count = set.index_of("account.tx_count_10m").unwrap();
    let mut engine = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    let at = |hh_mm: (i64, i64)| 1_704_103_200_000 + ((hh_mm.0 - 10) * 60 + hh_mm.1) * 60_000;
    for (id, time) in [
        ("a", (10, 0)),
        ("b", (10, 6)),
        ("c", (10, 7)),
        ("d", (10, 5)),
    ] {
        let p = Payment {
            id: id.into(),
            ts_ms: at(time),
            account: "a1".into(),
            terminal: "t1".into(),
            device: None,
            amount: 10.0,
        };
        engine.update(&p.view(), &mut out);
    }
    assert_eq!(out[count], 2.0);
    let stats = engine.table_stats().find(|s| s.0 == "account").unwrap().2;
    assert_eq!(stats.late_applied, 1);
}

/// An event later than the lateness is left out of the state, counted, and
/// has no features of the entity kinds it was too late for.
#[test]
fn events_later_than_the_lateness_have_no_entity_features() {
    let set = Arc::new(FeatureSet::parse("kinds.toml", ALL_KINDS).unwrap());
    let mut engine = FeatureEngine::new(set.clone(), limits());
    let mut out = vec![0.0; set.len()];
    let pay = |id: &str, ts_ms: i64, account: &str| Payment {
        id: id.into(),
        ts_ms,
        account: account.into(),
        terminal: "t1".into(),
        device: None,
        amount: 25.0,
    };
    let t0 = 1_700_000_000_000;
    engine.update(&pay("a", t0, "acc1").view(), &mut out);
    engine.update(&pay("b", t0 + 600_000, "acc2").view(), &mut out);
    // acc1's newest is at t0, so this is not late for it; but the terminal's is
    // 10 minutes later: too late there.
    engine.update(&pay("c", t0 + 1000, "acc1").view(), &mut out);
    let value = |out: &[f64], name: &str| out[set.index_of(name).unwrap()];
    assert_eq!(value(&out, "a_count_5m"), 2.0);
    assert!(value(&out, "t_count_10m").is_nan() && value(&out, "t_accounts_1h").is_nan());
    assert_eq!(value(&out, "amount"), 25.0);
    engine.update(&pay("d", t0 + 600_000, "acc2").view(), &mut out);
    assert_eq!(
        value(&out, "t_count_10m"),
        2.0,
        "the dropped payment is not counted"
    );
    let dropped: u64 = engine.table_stats().map(|s| s.2.late_dropped).sum();
    assert_eq!(dropped, 1);
}

/// A restore re-reads the input partition in offset order through the same
/// path as live: after it, out-of-order payments get the features they get in
/// an uninterrupted run.
#[test]
fn a_restore_gives_out_of_order_events_their_live_features() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let payload = |i: i64| {
        // Times go back and forth by up to 4 minutes around a rising clock.
        let ts = 1_700_000_000_000 + i * 20_000 - (i * 7919 % 13) * 20_000;
        format!(
            r#"{{"event_id":"e{i}","ts":{ts},"account_id":"acc{}","terminal_id":"t{}","device_id":"d{}","amount":"{}.{:02}","currency":"EUR"}}"#,
            i % 5,
            i % 3,
            i % 4,
            i % 90 + 1,
            i * 37 % 100
        )
        .into_bytes()
    };
    let limits = Limits {
        max_future_skew_ms: i64::MAX / 4,
        ..Limits::default()
    };
    let mut live = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut restored = PartitionWorker::new(set.clone(), EngineLimits::default(), 1000, None);
    let (mut a, mut b) = (vec![0.0; set.len()], vec![0.0; set.len()]);
    let mut late = 0;
    for i in 0..600 {
        let bytes = payload(i);
        let ev = fraudstream::source::event::parse_event(&bytes, &limits).unwrap();
        live.update(&EventView::of(&ev), &mut a);
        if i < 400 {
            assert!(restored.restore(&bytes, &limits));
        } else {
            restored.engine.update(&EventView::of(&ev), &mut b);
            assert!(same(&a, &b), "event {i}: {a:?} vs {b:?}");
        }
        late = restored
            .engine
            .table_stats()
            .map(|s| s.2.late_applied)
            .sum();
    }
    assert!(late > 100, "{late} late events");
}

/// The offline replay (`features`, `train`, `backtest`) feeds rows in file
/// order through the same engine and lateness as live: rows out of order get
/// their live features.
#[test]
fn the_offline_replay_gives_out_of_order_rows_their_live_features() {
    let set = Arc::new(load_feature_set("model").unwrap());
    let opts = ReplayOptions {
        label_delay_ms: i64::MAX / 4,
        ..ReplayOptions::default()
    };
    let mut replayer = Replayer::new(set.clone(), &opts);
    let mut live = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    for i in 0..2000i64 {
        // A customer's rows are up to 90 s out of order.
        let (id, customer, terminal) = (i.to_string(), (i % 4).to_string(), (i % 7).to_string());
        let ts_ms = 1_522_540_800_000 + i * 30_000 - (i * 31 % 9) * 30_000;
        let amount = (i % 300) as f64 + 0.25;
        let row = TxRow::new(&id, ts_ms, &customer, &terminal, amount, false);
        let view = EventView {
            event_id: &id,
            ts_ms: row.ts_ms,
            amount: row.amount,
            account: &customer,
            card: &customer,
            terminal: &terminal,
            device: None,
            ..EventView::default()
        };
        live.update(&view, &mut out);
        let replayed = replayer.step(&row);
        assert!(
            same(&out, replayed),
            "row {i}: live {out:?}, replay {replayed:?}"
        );
    }
}

/// One payment stamped 50 minutes ahead (as `processing.max_future_skew_secs`
/// allows) moves the tables' clocks and evicts entities idle a little less
/// than their retention: the on-time payments that follow, of an account and
/// a terminal never seen, still get their features and enter the state,
/// instead of being taken for evicted ones.
#[test]
fn a_payment_stamped_ahead_leaves_new_entities_their_features() {
    let set = Arc::new(load_feature_set("default").unwrap());
    let mut engine = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    let (t0, day, minute) = (1_700_000_000_000i64, 86_400_000i64, 60_000i64);
    let pay = |id: &str, ts_ms: i64, account: &str| Payment {
        id: id.into(),
        ts_ms,
        account: account.into(),
        terminal: format!("t-{account}"),
        device: None,
        amount: 10.0,
    };
    engine.update(&pay("a", t0 + 40 * minute, "idle").view(), &mut out);
    engine.update(&pay("b", t0 + 30 * day, "busy").view(), &mut out);
    engine.update(
        &pay("c", t0 + 30 * day + 50 * minute, "ahead").view(),
        &mut out,
    );
    for k in 0..3 {
        let p = pay(&format!("n{k}"), t0 + 30 * day + minute + k, "new");
        engine.update(&p.view(), &mut out);
        let value = |name: &str| out[set.index_of(name).unwrap()];
        for name in [
            "account.tx_count_30d",
            "terminal.tx_count_30d",
            "card_terminal.tx_count_30d",
        ] {
            assert_eq!(value(name), (k + 1) as f64, "{name} of payment {k}");
        }
    }
    let dropped: u64 = engine.table_stats().map(|s| s.2.late_dropped).sum();
    assert_eq!(dropped, 0);
}
