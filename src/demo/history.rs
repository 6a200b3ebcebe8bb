//! The demo's model: a few simulated weeks of history from the demo's own
//! generator (other customers than the live stream: another seed), written as
//! a transactions file and trained on with `fraudstream train`'s code, in
//! seconds, before the live stream starts.

use super::generator::{Generator, Pattern};
use crate::model::gbt::GbtParams;
use crate::model::ModelFile;
use crate::offline::train::{train, Blend, Grid, TrainOptions};
use crate::source::time::parse_date_ms;
use std::path::Path;

/// First day of the history: fixed, so that the demo's model is the same on
/// every machine and every day.
const HISTORY_START: &str = "2026-01-05";

/// Mixed into the demo's seed so that the history's customers are not the
/// live stream's.
const HISTORY_SEED: u64 = 0x005e_ed0f_4157_0e1e;

/// The history the demo trains on.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// Simulated days.
    pub days: u32,
    /// Accounts (as many as the live stream has).
    pub accounts: usize,
    /// The live stream's seed.
    pub seed: u64,
}

/// What [`write_history`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryStats {
    /// Payments.
    pub payments: u64,
    /// Of which frauds.
    pub frauds: u64,
}

/// Writes `opts.days` of generated payments from [`HISTORY_START`] to `path`
/// in the handbook's CSV format with the card, device, country and channel
/// columns (malformed messages left out: a bank's history holds payments).
pub fn write_history(opts: &HistoryOptions, path: &Path) -> anyhow::Result<HistoryStats> {
    let start = parse_date_ms(HISTORY_START).expect("a valid date");
    let end = start + i64::from(opts.days) * 86_400_000;
    // Fraud starts after a day, when accounts have habits to deviate from.
    let warmup = (86_400_000 / Generator::step_ms(opts.accounts)) as u64;
    let mut gen = Generator::new(opts.seed ^ HISTORY_SEED, opts.accounts, warmup, start)
        .with_malformed_rate(0.0);
    let mut out = csv::Writer::from_path(path)?;
    out.write_record([
        "TRANSACTION_ID",
        "TX_DATETIME",
        "CUSTOMER_ID",
        "TERMINAL_ID",
        "TX_AMOUNT",
        "TX_FRAUD",
        "CARD_ID",
        "DEVICE_ID",
        "COUNTRY",
        "CHANNEL",
    ])?;
    let mut stats = HistoryStats {
        payments: 0,
        frauds: 0,
    };
    loop {
        let g = gen.next(i64::MAX);
        if g.pattern == Pattern::Malformed {
            continue;
        }
        let e: serde_json::Value = serde_json::from_slice(&g.payload)?;
        let ts = e["ts"].as_i64().unwrap_or(end);
        if ts >= end {
            break;
        }
        let when = chrono::DateTime::from_timestamp_millis(ts)
            .ok_or_else(|| anyhow::anyhow!("generated time {ts} out of range"))?;
        let text = |k: &str| e[k].as_str().unwrap_or("").to_string();
        out.write_record([
            g.seq.to_string(),
            when.format("%Y-%m-%d %H:%M:%S").to_string(),
            text("account_id"),
            text("terminal_id"),
            format!("{:.2}", e["amount"].as_f64().unwrap_or(0.0)),
            u8::from(g.pattern.is_fraud()).to_string(),
            text("card_id"),
            text("device_id"),
            text("country"),
            text("channel"),
        ])?;
        stats.payments += 1;
        stats.frauds += u64::from(g.pattern.is_fraud());
    }
    out.flush()?;
    Ok(stats)
}

/// Writes the history into `dir` and trains the demo's model on it for the
/// feature set `feature_set`: small gradient-boosted trees, labels known a
/// day after each payment, the last quarter of the history for validation.
/// The model file is `dir/demo.json`.
pub fn train_model(
    opts: &HistoryOptions,
    feature_set: &str,
    dir: &Path,
) -> anyhow::Result<(HistoryStats, ModelFile)> {
    let input = dir.join("history.csv");
    let stats = write_history(opts, &input)?;
    let day = |d: u32| {
        let ms = parse_date_ms(HISTORY_START).expect("a valid date") + i64::from(d) * 86_400_000;
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    // The window is the whole history, from its cold start (as the live run
    // starts with no state, the model must know payments without history); its
    // last 3 days are the validation period, and the validation fits learn from
    // what precedes them by the label delay.
    let last = opts.days.max(5) - 1;
    let train_options = TrainOptions {
        feature_set: feature_set.into(),
        label_delay_days: 1,
        validation_days: Some(3),
        grid: Grid {
            max_depths: vec![4],
            learning_rates: vec![0.1],
            max_trees: 60,
            early_stopping_rounds: 20,
            blend: Blend::Never,
            base: GbtParams::default(),
        },
        ..TrainOptions::new("demo", &day(0), &day(last))
    };
    let file = train(&input, &dir.join("demo.json"), &train_options, |_, _| {})?.file;
    Ok((stats, file))
}
