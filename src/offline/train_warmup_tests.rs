//! `train` on a window that starts less than the feature set's reach after
//! the input's first event: the rows with partial windows only build state.

use super::simulate::{simulate, Columns, SimOptions};
use super::train::{train, Grid, TrainError, TrainOptions};
use crate::time::parse_date_ms;

const DAY_MS: i64 = 86_400_000;

/// Features reaching 3 days back at most (a 2-day window with a 1-day delay).
const SET: &str = r#"name = "short"
[[feature]]
name = "amount"
event = "amount"
[[feature]]
name = "card.tx_count_1d"
entity = "card"
aggregate = "count"
window = "1d"
[[feature]]
name = "terminal.fraud_rate_2d_delay_1d"
entity = "terminal"
aggregate = "fraud_rate"
window = "2d"
delay = "1d"
"#;

/// A simulated file of 16 days from 2024-01-01 and the short feature set,
/// in `dir`; the event times of the file's rows.
fn input(dir: &std::path::Path) -> (std::path::PathBuf, String, Vec<i64>) {
    let sim = simulate(&SimOptions {
        days: 16,
        seed: 11,
        customers: 400,
        start: "2024-01-01".into(),
    })
    .unwrap();
    let (csv, set) = (dir.join("sim.csv"), dir.join("short.toml"));
    sim.write_file(&csv, Columns::Full).unwrap();
    std::fs::write(&set, SET).unwrap();
    let mut reader =
        crate::source::handbook::HandbookReader::open_with(&csv, Default::default()).unwrap();
    let mut ts = Vec::new();
    while let Some(row) = reader.next_row().unwrap() {
        ts.push(row.ts_ms);
    }
    (csv, set.display().to_string(), ts)
}

fn options(set: &str, from: &str, to: &str) -> TrainOptions {
    TrainOptions {
        feature_set: set.into(),
        label_delay_days: 1,
        validation_days: Some(2),
        grid: Grid {
            max_depths: vec![2],
            learning_rates: vec![0.3],
            max_trees: 20,
            early_stopping_rounds: 5,
            ..Grid::default()
        },
        ..TrainOptions::new("warmup", from, to)
    }
}

fn rows_in(ts: &[i64], from_ms: i64, to_ms: i64) -> usize {
    ts.iter().filter(|&&t| t >= from_ms && t < to_ms).count()
}

/// The window starts 2 days in: the validation fits' window (2 days before the
/// validation period less the 1-day label delay) starts before the input does.
/// Rows before the first event plus 3 days build state only; the model
/// learns from the others, and says how many it left out.
#[test]
fn rows_whose_windows_reach_before_the_input_only_build_state() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, set, ts) = input(dir.path());
    let day = |d| parse_date_ms("2024-01-01").unwrap() + d * DAY_MS;
    let full_from = ts[0] + 3 * DAY_MS;
    assert!(full_from > day(2), "the window starts in the warm-up");
    let opts = options(&set, "2024-01-03", "2024-01-10");
    let fitted = train(&csv, &dir.path().join("m.json"), &opts, |_, _| {}).unwrap();
    let training = fitted.file.training.as_ref().unwrap();
    assert_eq!(training.rows, rows_in(&ts, full_from, day(10)));
    // The validation fits' window starts at day 2 - 3 = day -1.
    assert_eq!(
        fitted.warmup,
        Some((rows_in(&ts, day(-1), full_from), full_from))
    );
    // Asked to, it learns from them too, as before.
    let keep = TrainOptions {
        keep_partial_windows: true,
        ..opts
    };
    let kept = train(&csv, &dir.path().join("k.json"), &keep, |_, _| {}).unwrap();
    assert_eq!(
        kept.file.training.as_ref().unwrap().rows,
        rows_in(&ts, day(2), day(10))
    );
    assert_eq!(kept.warmup, None);
}

/// A split that lies in the warm-up is an error naming the earliest last
/// training day that fits; that day trains with no partial window.
#[test]
fn a_split_in_the_warm_up_names_the_first_day_it_could_end() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, set, _) = input(dir.path());
    let out = dir.path().join("m.json");
    let e = train(
        &csv,
        &out,
        &options(&set, "2024-01-01", "2024-01-05"),
        |_, _| {},
    )
    .unwrap_err();
    let Some(TrainError::Warmup(split)) = e.downcast_ref::<TrainError>() else {
        panic!("{e:#}");
    };
    let (part, earliest_to) = (split.part, split.earliest_to.as_str());
    assert_eq!(part, "validation fits' window");
    assert!(e.to_string().contains("--keep-partial-windows"), "{e}");
    // 5 days of window, 2 of validation and 1 of label delay after the first
    // day with full windows (the input starts on 2024-01-01, reach 3 days).
    assert_eq!(earliest_to, "2024-01-12");
    let fitted = train(
        &csv,
        &out,
        &options(&set, "2024-01-08", earliest_to),
        |_, _| {},
    )
    .unwrap();
    assert_eq!(fitted.warmup, None);
}
