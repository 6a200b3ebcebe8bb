use super::*;
use proptest::prelude::*;

/// `amount` base units as [`Money`].
fn m(amount: f64) -> Money {
    Money::from_f64(amount)
}

fn spec(length_s: u32, delay_s: u32) -> WindowSpec {
    WindowSpec {
        length_s,
        delay_s,
        filter: AmountFilter::ALL,
        value: WindowValue::Amount,
    }
}

/// Naive reference: recompute each window from every applied event.
#[derive(Default)]
struct Naive {
    events: Vec<(u32, Money, Option<bool>)>,
    newest: u32,
    /// (time, value) of every distinct-tracked value seen.
    values: Vec<(u32, u32)>,
}

impl Naive {
    fn window(&self, w: &WindowSpec) -> (u32, i64, u32, u32) {
        let hi = i64::from(self.newest) - i64::from(w.delay_s);
        let lo = hi - i64::from(w.length_s);
        let mut out = (0, 0, 0, 0);
        for &(ts, amount, label) in &self.events {
            let ts = i64::from(ts);
            if ts > lo && ts <= hi && w.filter.accepts(amount) {
                out.0 += 1;
                out.1 += naive_value(w.value, ts, amount);
                out.2 += u32::from(label.is_some());
                out.3 += u32::from(label == Some(true));
            }
        }
        out
    }

    fn extreme(&self, w: &WindowSpec, max: bool) -> f64 {
        let hi = i64::from(self.newest) - i64::from(w.delay_s);
        let lo = hi - i64::from(w.length_s);
        let inside = self
            .events
            .iter()
            .filter(|e| i64::from(e.0) > lo && i64::from(e.0) <= hi && w.filter.accepts(e.1))
            .map(|e| e.1);
        let v = if max { inside.max() } else { inside.min() };
        v.map_or(f64::NAN, Money::to_f64)
    }

    fn distinct(&self, length_s: u32) -> usize {
        let lo = i64::from(self.newest) - i64::from(length_s);
        let mut seen: Vec<u32> = self
            .values
            .iter()
            .filter(|(t, _)| i64::from(*t) > lo && *t <= self.newest)
            .map(|(_, v)| *v)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }
}

/// What a window of `value` adds for an event at `ts` (seconds) of `amount`,
/// computed apart from the table's code: cents by `f64::round`, the hour's
/// point on the circle by `cos`/`sin`, the two coordinates packed by multiplication.
fn naive_value(value: WindowValue, ts: i64, amount: Money) -> i64 {
    match value {
        WindowValue::Amount => amount.0,
        WindowValue::AmountSquared => {
            let cents = (amount.0 as f64 / 100.0).round() as i64;
            cents * cents
        }
        WindowValue::HourVector => {
            let angle = (ts % 86_400 / 3600) as f64 * std::f64::consts::PI / 12.0;
            let (cos, sin) = (
                (angle.cos() * 1e4).round() as i64,
                (angle.sin() * 1e4).round() as i64,
            );
            cos + sin * (1i64 << 32)
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Event { dt: i32, amount: u16 },
    Label { back: usize, fraud: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (-400i32..900, 1u16..500).prop_map(|(dt, amount)| Op::Event { dt, amount }),
        1 => (0usize..20, any::<bool>()).prop_map(|(back, fraud)| Op::Label { back, fraud }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn windows_equal_naive_recompute(ops in proptest::collection::vec(op(), 1..200)) {
        let windows = vec![
            spec(600, 0),
            spec(3600, 0),
            spec(86_400, 0),
            spec(1800, 900),
            WindowSpec { length_s: 3600, delay_s: 0, filter: AmountFilter { min: Money(0), max: Money(50 * MONEY_SCALE) }, value: WindowValue::Amount },
            WindowSpec { value: WindowValue::AmountSquared, ..spec(86_400, 0) },
            WindowSpec { value: WindowValue::HourVector, ..spec(86_400, 0) },
        ];
        let limits = TableLimits { max_entities: 10, max_events_per_entity: 100_000, lateness_s: 300 };
        let trackers = vec![
            TrackerSpec::Extreme { window: 1, max: true },
            TrackerSpec::Extreme { window: 3, max: false },
            TrackerSpec::Extreme { window: 4, max: true },
            TrackerSpec::Distinct { length_s: 3600 },
        ];
        let mut table = EntityTable::new(windows.clone(), trackers.clone(), 0, limits);
        let mut naive = Naive::default();
        let mut t: i64 = 1_600_000_000;
        // (time, index in `naive.events`, tag) of every applied event.
        let mut applied: Vec<(u32, usize, u32)> = Vec::new();
        let mut tag = 0;
        for op in ops {
            match op {
                Op::Event { dt, amount } => {
                    t = (t + i64::from(dt)).max(1_500_000_000);
                    // A handful of distinct values, so the tracker stays under its cap.
                    let distinct_value = 1 + u32::from(amount % 9);
                    // Not whole cents: the squared window rounds to cents, halves included.
                    let amount = Money(i64::from(amount) * 2537);
                    tag += 1;
                    let obs = table.observe(7, t * 1000, amount, tag, &[distinct_value]);
                    let ts = t as u32;
                    if obs.applied == Applied::Dropped {
                        prop_assert!(naive.newest - ts > 300);
                        continue;
                    }
                    naive.values.push((ts, distinct_value));
                    naive.events.push((ts, amount, None));
                    applied.push((ts, naive.events.len() - 1, tag));
                    naive.newest = naive.newest.max(ts);
                    for (i, w) in windows.iter().enumerate() {
                        let acc = table.acc(obs.slot, i);
                        let (count, sum, labelled, fraud) = naive.window(w);
                        prop_assert_eq!(acc.count, count, "window {} count", i);
                        prop_assert_eq!(acc.sum.0, sum, "window {} sum", i);
                        prop_assert_eq!(acc.labelled, labelled, "window {} labelled", i);
                        prop_assert_eq!(acc.fraud, fraud, "window {} fraud", i);
                    }
                    for (t, tr) in trackers.iter().enumerate() {
                        let got = table.tracker(obs.slot, t);
                        match *tr {
                            TrackerSpec::Extreme { window, max } => {
                                let want = naive.extreme(&windows[window as usize], max);
                                prop_assert!(got == want || (got.is_nan() && want.is_nan()), "tracker {} got {} want {}", t, got, want);
                            }
                            TrackerSpec::Distinct { length_s } => {
                                prop_assert_eq!(got as usize, naive.distinct(length_s).min(DISTINCT_CAP), "distinct");
                            }
                        }
                    }
                }
                Op::Label { back, fraud } => {
                    if applied.len() > back {
                        let (ts, idx, tag) = applied[applied.len() - 1 - back];
                        if naive.events[idx].2.is_none() {
                            // No sequence hint: found by time and tag (the hint is tested below).
                            let hit = table.apply_label(7, ts, tag, u32::MAX, fraud);
                            let held = i64::from(ts) > i64::from(naive.newest) - 86_400 - 300;
                            if hit {
                                naive.events[idx].2 = Some(fraud);
                            } else {
                                prop_assert!(!held, "label for a held event was refused");
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn lru_evicts_least_recently_seen_when_full() {
    let limits = TableLimits {
        max_entities: 3,
        ..TableLimits::default()
    };
    let mut t = EntityTable::new(vec![spec(60, 0)], vec![], 0, limits);
    for key in 1..=3 {
        t.observe(key, 1_000_000, m(1.0), 0, &[]);
    }
    t.observe(1, 1_001_000, m(1.0), 0, &[]); // 1 is now most recent; 2 is least recent
    let obs = t.observe(4, 1_002_000, m(1.0), 0, &[]);
    assert!(obs.first_seen);
    assert_eq!(t.len(), 3);
    assert_eq!(t.stats().evicted_lru, 1);
    assert!(!t.observe(1, 1_003_000, m(1.0), 0, &[]).first_seen);
    assert!(
        t.observe(2, 1_004_000, m(1.0), 0, &[]).first_seen,
        "2 was evicted"
    );
}

#[test]
fn idle_entities_are_evicted_after_the_longest_window() {
    let limits = TableLimits {
        lateness_s: 10,
        ..TableLimits::default()
    };
    let mut t = EntityTable::new(vec![spec(60, 0), spec(100, 20)], vec![], 0, limits);
    t.observe(1, 0, m(1.0), 0, &[]);
    t.observe(2, 50_000, m(1.0), 0, &[]);
    // Retention is 100 + 20 + 10 = 130 s.
    t.observe(3, 129_000, m(1.0), 0, &[]);
    assert_eq!(t.len(), 3);
    t.observe(3, 131_000, m(1.0), 0, &[]);
    assert_eq!(t.len(), 2);
    assert_eq!(t.stats().evicted_idle, 1);
}

#[test]
fn event_cap_truncates_and_counts() {
    let limits = TableLimits {
        max_events_per_entity: 4,
        ..TableLimits::default()
    };
    let mut t = EntityTable::new(vec![spec(3600, 0)], vec![], 0, limits);
    let mut obs = t.observe(1, 0, m(1.0), 0, &[]);
    for i in 1..10 {
        obs = t.observe(1, i * 1000, m(1.0), 0, &[]);
    }
    assert_eq!(t.acc(obs.slot, 0).count, 4);
    assert_eq!(t.stats().truncated, 6);
}

#[test]
fn late_events_beyond_lateness_are_dropped_but_counted() {
    let limits = TableLimits {
        lateness_s: 60,
        ..TableLimits::default()
    };
    let mut t = EntityTable::new(vec![spec(3600, 0)], vec![], 0, limits);
    let first = t.observe(1, 1_000_000, m(1.0), 0, &[]);
    let late = t.observe(1, 950_000, m(2.0), 0, &[]);
    assert_eq!(late.applied, Applied::Late);
    assert_eq!(t.accs_at(&late)[0].sum, m(2.0), "as of its own time");
    assert_eq!(
        t.observe(1, 900_000, m(4.0), 0, &[]).applied,
        Applied::Dropped
    );
    // An entity the table does not hold, far behind the table's newest event
    // (its stream lags, as on a repartition topic fed by several partitions),
    // with no history evicted that could reach it: applied as a new entity.
    assert_eq!(
        t.observe(2, 900_000, m(4.0), 0, &[]).applied,
        Applied::OnTime
    );
    assert_eq!(t.len(), 2);
    assert_eq!(
        t.acc(first.slot, 0).sum,
        m(3.0),
        "dropped events are left out"
    );
    assert_eq!(
        t.stats(),
        TableStats {
            late_applied: 1,
            late_dropped: 1,
            ..TableStats::default()
        }
    );
}

/// An entity evicted for idleness comes back with an event whose windows could
/// reach its evicted history: dropped (its features would miss that history);
/// an event beyond that reach starts the entity afresh.
#[test]
fn events_that_could_reach_an_evicted_history_are_dropped() {
    let limits = TableLimits {
        lateness_s: 60,
        ..TableLimits::default()
    };
    // Retention 3600 + 60 s.
    let mut t = EntityTable::new(vec![spec(3600, 0)], vec![], 0, limits);
    t.observe(1, 0, m(1.0), 0, &[]);
    t.observe(2, 3_700_000, m(1.0), 0, &[]);
    assert_eq!(t.stats().evicted_idle, 1, "entity 1 idle beyond retention");
    assert_eq!(
        t.observe(1, 3_000_000, m(1.0), 0, &[]).applied,
        Applied::Dropped
    );
    // Entity 3 was never held: it has no history to miss.
    assert_eq!(
        t.observe(3, 3_000_000, m(1.0), 0, &[]).applied,
        Applied::OnTime
    );
    assert_eq!(
        t.observe(1, 3_601_000, m(1.0), 0, &[]).applied,
        Applied::OnTime,
        "beyond the reach of its evicted history, entity 1 starts afresh"
    );
    assert_eq!(t.len(), 3);
}

/// An event stamped ahead of the others (a producer's clock an hour fast, as
/// `processing.max_future_skew_secs` allows) moves the table's clock and
/// evicts entities idle for a little less than their retention: the first
/// events of new entities that follow, on time, are applied, not taken for
/// evicted ones; only the evicted entities' own events that could reach their
/// history are dropped. Keys are forgotten a day after they could be
/// evicted, and then events that far behind are dropped, as they could reach them.
#[test]
fn a_clock_run_ahead_does_not_drop_new_entities() {
    let limits = TableLimits {
        lateness_s: 300,
        ..TableLimits::default()
    };
    let day = 86_400_000;
    let mut t = EntityTable::new(vec![spec(30 * 86_400, 0)], vec![], 0, limits);
    t.observe(1, 40 * 60_000, m(1.0), 0, &[]);
    t.observe(2, 30 * day, m(1.0), 0, &[]);
    // Fifty minutes ahead of the stream: entity 1 is now idle past its retention.
    t.observe(3, 30 * day + 50 * 60_000, m(1.0), 0, &[]);
    assert_eq!(t.stats().evicted_idle, 1);
    for key in 10..20 {
        let obs = t.observe(key, 30 * day + 60_000, m(1.0), 0, &[]);
        assert_eq!(obs.applied, Applied::OnTime, "new entity {key}");
        assert!(obs.first_seen);
    }
    // Its 30 days reach back to entity 1's evicted payment at 00:40.
    assert_eq!(
        t.observe(1, 30 * day + 60_000, m(1.0), 0, &[]).applied,
        Applied::Dropped
    );
    assert_eq!(t.stats().late_dropped, 1);
    // Two days later entity 1's key is forgotten; a new entity far behind the
    // clock may be it, and is dropped.
    t.observe(2, 32 * day + 60 * 60_000, m(1.0), 0, &[]);
    t.observe(2, 32 * day + 61 * 60_000, m(1.0), 0, &[]);
    assert_eq!(t.evicted.len(), 0, "forgotten");
    assert_eq!(
        t.observe(99, 30 * day, m(1.0), 0, &[]).applied,
        Applied::Dropped
    );
}

#[test]
fn memory_per_entity_is_small() {
    let mut t = EntityTable::new(
        vec![spec(600, 0), spec(3600, 0), spec(86_400, 0)],
        vec![],
        0,
        TableLimits::default(),
    );
    for key in 0..10_000u64 {
        for i in 0..5 {
            t.observe(key, 1_000_000 + i * 60_000, m(10.0), 0, &[]);
        }
    }
    let per = t.memory_bytes() / t.len();
    assert!(per < 1024, "{per} bytes per entity");
}

#[test]
fn distinct_counts_saturate_at_the_cap() {
    let mut t = EntityTable::new(
        vec![],
        vec![TrackerSpec::Distinct { length_s: 3600 }],
        0,
        TableLimits::default(),
    );
    let mut obs = t.observe(1, 0, m(1.0), 0, &[1]);
    for v in 2..40u32 {
        obs = t.observe(1, i64::from(v) * 1000, m(1.0), 0, &[v]);
    }
    assert_eq!(t.tracker(obs.slot, 0), DISTINCT_CAP as f64);
    // Two hours later only the values seen in the last hour count.
    let obs = t.observe(1, 7_200_000, m(1.0), 0, &[99]);
    assert_eq!(t.tracker(obs.slot, 0), 1.0);
}

#[test]
fn min_and_max_follow_truncation_without_a_rebuild() {
    let limits = TableLimits {
        max_events_per_entity: 4,
        ..TableLimits::default()
    };
    let trackers = vec![
        TrackerSpec::Extreme {
            window: 0,
            max: true,
        },
        TrackerSpec::Extreme {
            window: 0,
            max: false,
        },
    ];
    let mut t = EntityTable::new(vec![spec(3600, 0)], trackers, 0, limits);
    let mut obs = t.observe(1, 0, m(10.0), 0, &[]);
    for (i, amount) in [50.0, 20.0, 30.0, 40.0, 5.0].into_iter().enumerate() {
        obs = t.observe(1, (i as i64 + 1) * 1000, m(amount), 0, &[]);
    }
    // The cap keeps the last four: 20, 30, 40, 5.
    assert_eq!(t.acc(obs.slot, 0).count, 4);
    assert_eq!(
        (t.tracker(obs.slot, 0), t.tracker(obs.slot, 1)),
        (40.0, 5.0)
    );
    obs = t.observe(1, 7000, m(1.0), 0, &[]);
    assert_eq!(
        (t.tracker(obs.slot, 0), t.tracker(obs.slot, 1)),
        (40.0, 1.0)
    );
    t.observe(1, 8000, m(2.0), 0, &[]);
    obs = t.observe(1, 9000, m(3.0), 0, &[]);
    assert_eq!(
        (t.tracker(obs.slot, 0), t.tracker(obs.slot, 1)),
        (5.0, 1.0),
        "40 left with the cap"
    );
}

/// A label carries its event's sequence number, so of two payments in the same
/// second the labelled one is the one counted, even after a late insert.
#[test]
fn labels_go_to_their_own_event_within_a_second() {
    let small = WindowSpec {
        length_s: 3600,
        delay_s: 0,
        filter: AmountFilter {
            min: AmountFilter::ALL.min,
            max: Money(5 * MONEY_SCALE),
        },
        value: WindowValue::Amount,
    };
    let limits = TableLimits {
        lateness_s: 600,
        ..TableLimits::default()
    };
    let mut t = EntityTable::new(vec![small], vec![], 0, limits);
    let a = t.observe(7, 1_000_000, m(100.0), 1, &[]);
    let b = t.observe(7, 1_000_500, m(2.0), 2, &[]);
    assert_eq!((a.seq + 1, b.seq), (b.seq, a.seq + 1));
    // The small payment (second of that second) is the fraud.
    assert!(t.apply_label(7, 1000, 2, b.seq, true));
    let c = t.observe(7, 1_001_000, m(1.0), 0, &[]);
    assert_eq!((t.acc(c.slot, 0).labelled, t.acc(c.slot, 0).fraud), (1, 1));
    // A late payment shifts later entries; a stale hint falls back to the search.
    t.observe(7, 999_000, m(50.0), 0, &[]);
    assert!(t.apply_label(7, 1000, 1, a.seq, false));
    let d = t.observe(7, 1_002_000, m(1.0), 0, &[]);
    assert_eq!(
        t.acc(d.slot, 0).labelled,
        1,
        "the legit label went to the 100.00 payment"
    );
}

#[test]
fn amounts_become_money_rounded_to_the_nearest_ten_thousandth() {
    let cases = [
        (0.01, 100),
        (42.24, 422_400),
        (16_777_217.0, 167_772_170_000),
        (999_999_999.99, 9_999_999_999_900),
        (1.0 / 3.0, 3333),
        (2.0 / 3.0, 6667),
        (0.000_05, 1),
        (-0.000_05, -1),
        (-12.345_67, -123_457),
        (f64::NAN, 0),
        (1e300, i64::MAX - 1),
    ];
    for (amount, units) in cases {
        assert_eq!(Money::from_f64(amount), Money(units), "{amount}");
    }
    assert_eq!(Money(422_400).to_f64().to_string(), "42.24");
}
