//! Money is exact: every amount aggregate (sum, mean, min, max, amount
//! filters) equals the exact decimal result, at 0.01, 1e6, 1e9 and 16777217,
//! however long windows slide; and the feature CSV writes that value.

use fraudstream::features::{EngineLimits, EventView, FeatureEngine, FeatureSet};
use proptest::prelude::*;
use std::process::Command;
use std::sync::Arc;

/// Amount features over two sliding windows, with filters whose bounds sit on
/// amounts the tests use.
const MONEY_FEATURES: &str = r#"
name = "money"
[[feature]]
name = "sum_10m"
entity = "account"
aggregate = "sum"
window = "10m"
[[feature]]
name = "sum_1h"
entity = "account"
aggregate = "sum"
window = "1h"
[[feature]]
name = "mean_1h"
entity = "account"
aggregate = "mean"
window = "1h"
[[feature]]
name = "min_1h"
entity = "account"
aggregate = "min"
window = "1h"
[[feature]]
name = "max_1h"
entity = "account"
aggregate = "max"
window = "1h"
[[feature]]
name = "max_10m"
entity = "account"
aggregate = "max"
window = "10m"
[[feature]]
name = "small_sum_1h"
entity = "account"
aggregate = "sum"
window = "1h"
amount_min = 0.01
amount_max = 1000000.01
[[feature]]
name = "big_count_1h"
entity = "account"
aggregate = "count"
window = "1h"
amount_min = 16777217
[[feature]]
name = "big_mean_1h"
entity = "account"
aggregate = "mean"
window = "1h"
amount_min = 16777217
amount_max = 1000000000
"#;

/// Amounts as written in events, each next to a neighbour one cent away.
const AMOUNTS: [&str; 14] = [
    "0.01",
    "0.02",
    "0.03",
    "42.24",
    "999999.99",
    "1000000.00",
    "1000000.01",
    "16777216.99",
    "16777217.00",
    "16777217.01",
    "999999999.99",
    "1000000000.00",
    "123456789.12",
    "0.10",
];

/// Ten-thousandths of a unit in `s` (a decimal with at most four decimals), exactly.
fn units(s: &str) -> i128 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<4}");
    int.parse::<i128>().unwrap() * 10_000 + frac.parse::<i128>().unwrap()
}

/// The `f64` nearest to `num / (den * 10_000)` (num and den well inside 2^53).
fn nearest(num: i128, den: i128) -> f64 {
    num as f64 / (den as f64 * 10_000.0)
}

/// What each feature of [`MONEY_FEATURES`] must read for an event at `t` (s)
/// given all events so far in time order as (time s, units), by a scan of the
/// windows.
fn expected(events: &[(i64, i128)], t: i64) -> Vec<f64> {
    let events = &events[events.partition_point(|e| e.0 <= t - 3600)..];
    let within = |len: i64| move |&&(ts, _): &&(i64, i128)| ts > t - len && ts <= t;
    let sum = |it: &mut dyn Iterator<Item = &(i64, i128)>| it.map(|e| e.1).sum::<i128>();
    let ten_min: Vec<_> = events.iter().filter(within(600)).collect();
    let hour: Vec<_> = events.iter().filter(within(3600)).collect();
    let small: Vec<_> = hour
        .iter()
        .filter(|e| e.1 >= units("0.01") && e.1 < units("1000000.01"))
        .copied()
        .collect();
    let big = hour.iter().filter(|e| e.1 >= units("16777217")).count();
    let big_mean: Vec<_> = hour
        .iter()
        .filter(|e| e.1 >= units("16777217") && e.1 < units("1000000000"))
        .copied()
        .collect();
    let mean = |v: &[&(i64, i128)]| {
        if v.is_empty() {
            f64::NAN
        } else {
            nearest(sum(&mut v.iter().copied()), v.len() as i128)
        }
    };
    let extreme = |v: &[&(i64, i128)], max: bool| {
        let it = v.iter().map(|e| e.1);
        let x = if max { it.max() } else { it.min() };
        x.map_or(f64::NAN, |x| nearest(x, 1))
    };
    vec![
        nearest(sum(&mut ten_min.iter().copied()), 1),
        nearest(sum(&mut hour.iter().copied()), 1),
        mean(&hour),
        extreme(&hour, false),
        extreme(&hour, true),
        extreme(&ten_min, true),
        nearest(sum(&mut small.iter().copied()), 1),
        big as f64,
        mean(&big_mean),
    ]
}

fn money_engine() -> (Arc<FeatureSet>, FeatureEngine) {
    let set = Arc::new(FeatureSet::parse("money.toml", MONEY_FEATURES).unwrap());
    (
        set.clone(),
        FeatureEngine::new(set, EngineLimits::default()),
    )
}

fn view(id: &str, ts_s: i64, amount: f64) -> EventView<'_> {
    EventView {
        event_id: id,
        ts_ms: ts_s * 1000,
        amount,
        account: "acc",
        card: "acc",
        terminal: "t",
        device: None,
        ..EventView::default()
    }
}

fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Thousands of payments of mixed magnitudes slide through the windows:
    /// after every one, each amount feature is the exact value's nearest `f64`.
    #[test]
    fn amount_aggregates_stay_exact_while_windows_slide(
        picks in proptest::collection::vec((0usize..AMOUNTS.len(), 1i64..500), 1500..2500),
    ) {
        let (set, mut engine) = money_engine();
        let mut out = vec![0.0; set.len()];
        let (mut t, mut seen) = (1_700_000_000i64, Vec::new());
        for (i, (pick, gap)) in picks.into_iter().enumerate() {
            t += gap;
            let text = AMOUNTS[pick];
            seen.push((t, units(text)));
            let id = i.to_string();
            engine.update(&view(&id, t, text.parse().unwrap()), &mut out);
            let want = expected(&seen, t);
            prop_assert!(same(&out, &want), "event {} ({}): got {:?}, want {:?}", i, text, out, want);
        }
    }
}

/// The field case (16-exact-money): after one payment of 16777217.00 the
/// 30-day maximum is 16777217, not 16777216; and small sums read as written.
#[test]
fn one_payment_of_16777217_reads_16777217() {
    let (set, mut engine) = money_engine();
    let mut out = vec![0.0; set.len()];
    engine.update(&view("a", 1_700_000_000, 16_777_217.0), &mut out);
    let max = set.index_of("max_1h").unwrap();
    assert_eq!(out[max], 16_777_217.0);
    assert_eq!(out[set.index_of("sum_1h").unwrap()], 16_777_217.0);
    assert_eq!(out[set.index_of("big_count_1h").unwrap()], 1.0);

    let (_, mut engine) = money_engine();
    for (i, a) in [0.01, 0.02, 0.03].into_iter().enumerate() {
        engine.update(&view(&i.to_string(), 1_700_000_000 + i as i64, a), &mut out);
    }
    // 0.01 + 0.02 + 0.03 in floating point is 0.060000000000000005.
    assert_eq!(out[set.index_of("sum_1h").unwrap()], 0.06);
    assert_eq!(out[set.index_of("mean_1h").unwrap()], 0.02);
    assert_eq!(out[set.index_of("small_sum_1h").unwrap()], 0.06);
}

/// Amounts converted from another currency carry more decimals: windows keep
/// them to 1/10,000, rounded once, so sums still add up exactly.
#[test]
fn converted_amounts_are_kept_to_a_ten_thousandth() {
    let (set, mut engine) = money_engine();
    let mut out = vec![0.0; set.len()];
    // 6000 JPY at 0.0061704 EUR = 37.0224 EUR; 1/3 EUR = 0.3333 (rounded once).
    for (i, a) in [37.0224, 1.0 / 3.0, 1.0 / 3.0, 2.0 / 3.0]
        .into_iter()
        .enumerate()
    {
        engine.update(&view(&i.to_string(), 1_700_000_000 + i as i64, a), &mut out);
    }
    assert_eq!(out[set.index_of("sum_1h").unwrap()], 38.3557);
    assert_eq!(out[set.index_of("min_1h").unwrap()], 0.3333);
}

/// `fraudstream features` writes exact amounts: 42.24, not 42.2400016784668.
#[test]
fn the_feature_csv_writes_exact_amounts() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("money.toml");
    std::fs::write(&set, MONEY_FEATURES).unwrap();
    let input = dir.path().join("tx.csv");
    std::fs::write(
        &input,
        "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n\
         1,2018-04-01 10:00:00,7,3,42.24,0\n\
         2,2018-04-01 10:01:00,7,3,16777217.00,0\n\
         3,2018-04-01 10:02:00,7,3,0.01,0\n",
    )
    .unwrap();
    let out = dir.path().join("f.csv");
    let run = Command::new(env!("CARGO_BIN_EXE_fraudstream"))
        .arg("features")
        .arg("--input")
        .arg(&input)
        .arg("--feature-set")
        .arg(&set)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows[0],
        "TRANSACTION_ID,sum_10m,sum_1h,mean_1h,min_1h,max_1h,max_10m,small_sum_1h,big_count_1h,big_mean_1h"
    );
    assert_eq!(rows[1], "1,42.24,42.24,42.24,42.24,42.24,42.24,42.24,0,");
    assert_eq!(
        rows[2],
        "2,16777259.24,16777259.24,8388629.62,42.24,16777217,16777217,42.24,1,16777217"
    );
    assert_eq!(
        rows[3],
        "3,16777259.25,16777259.25,5592419.75,0.01,16777217,16777217,42.25,1,16777217"
    );
}
