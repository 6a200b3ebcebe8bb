//! [`FeatureSet::history_reach_s`]: an event at least that long after the
//! start of its history gets the features of an unbounded history, whatever
//! kind of feature reads it.

use super::*;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// One feature of each kind that reads history, with the reach it needs.
const KINDS: &[(&str, u32)] = &[
    ("aggregate = \"count\"\nwindow = \"30d\"", 30),
    ("aggregate = \"mean\"\nwindow = \"7d\"", 7),
    ("aggregate = \"sum\"\nwindow = \"1d\"", 1),
    ("aggregate = \"max\"\nwindow = \"30d\"", 30),
    ("aggregate = \"zscore\"\nwindow = \"14d\"", 14),
    ("aggregate = \"hour_gap\"\nwindow = \"10d\"", 10),
    (
        "aggregate = \"distinct\"\nof = \"terminal\"\nwindow = \"3d\"",
        3,
    ),
    (
        "aggregate = \"fraud_rate\"\nwindow = \"7d\"\ndelay = \"7d\"",
        14,
    ),
    ("aggregate = \"fraud_count\"\nwindow = \"20d\"", 20),
    ("aggregate = \"first_seen\"\nwindow = \"45d\"", 45),
    ("aggregate = \"secs_since_last\"", 30),
];

fn set_of(kind: &str) -> Arc<FeatureSet> {
    let text = format!("name = \"k\"\n[[feature]]\nname = \"f\"\nentity = \"account\"\n{kind}\n");
    Arc::new(FeatureSet::parse("k.toml", &text).unwrap())
}

/// Features of every event from `start_ms` on, in an engine that sees only
/// those: one account paying every 5 hours at one of 5 terminals, every
/// third payment labelled fraud a day later.
fn replay(set: &Arc<FeatureSet>, start_ms: i64, end_ms: i64) -> Vec<(i64, f64)> {
    let mut eng = FeatureEngine::new(set.clone(), EngineLimits::default());
    let mut out = vec![0.0; set.len()];
    let mut pending = std::collections::VecDeque::new();
    let mut rows = Vec::new();
    for i in 0.. {
        let ts = i * 5 * HOUR;
        if ts >= end_ms {
            break;
        }
        while pending.front().is_some_and(|&(at, _)| at <= ts) {
            let (_, id): (i64, String) = pending.pop_front().unwrap();
            eng.apply_label(&id, true);
        }
        if ts < start_ms {
            continue;
        }
        let id = format!("e{i}");
        let terminal = format!("t{}", i % 5);
        let ev = EventView {
            event_id: &id,
            ts_ms: ts,
            amount: 10.0 + (i * 37 % 90) as f64,
            account: "a",
            card: "a",
            terminal: &terminal,
            ..EventView::default()
        };
        eng.update(&ev, &mut out);
        if i % 3 == 0 {
            pending.push_back((ts + DAY, id));
        }
        rows.push((ts, out[0]));
    }
    rows
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn events_a_reach_after_the_history_starts_get_full_history_features() {
    let (start, end) = (60 * DAY, 160 * DAY);
    for &(kind, days) in KINDS {
        let set = set_of(kind);
        let reach = i64::from(set.history_reach_s()) * 1000;
        assert_eq!(reach, i64::from(days) * DAY, "{kind}");
        let full = replay(&set, 0, end);
        let cut = replay(&set, start, end);
        let full = &full[full.len() - cut.len()..];
        for (&(ts, f), &(_, c)) in full.iter().zip(&cut) {
            if ts >= start + reach {
                assert!(same(f, c), "{kind} at day {}: {f} vs {c}", ts / DAY);
            }
        }
        // The history is partial before the reach: the feature differs in the
        // day before it, or at the start of the history (first_seen, max...).
        let early = full.iter().zip(&cut).any(|(&(ts, f), &(_, c))| {
            ts >= start + reach - reach.min(DAY) && ts < start + reach && !same(f, c)
                || ts == start && !same(f, c)
        });
        assert!(early, "{kind}: no partial window before the reach");
    }
}

/// The default set's longest window is 30 days; the handbook's terminal risk
/// reads 30 days ending a week back.
#[test]
fn the_shipped_sets_reach_back_a_month_or_more() {
    for (name, days) in [("default", 30), ("handbook", 37), ("model", 37)] {
        let set = load_feature_set(name).unwrap();
        assert_eq!(set.history_reach_s(), days * 86_400, "{name}");
    }
}
