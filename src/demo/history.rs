//! The demo's model and the history behind it: the live stream's own
//! customers over the weeks before it (the feature set's longest window, then
//! the days the model learns from), written as a transactions file and trained
//! on with `fraudstream train`'s code, in seconds. The demo then plays the same
//! history through the processor before the live stream, so the model scores
//! live payments on full windows, as it learned.

use super::generator::{Generator, Pattern};
use crate::model::gbt::GbtParams;
use crate::offline::train::{train, Blend, Fitted, Grid, TrainOptions};
use std::path::Path;

const DAY_MS: i64 = 86_400_000;

/// Days after which the demo's chargeback feed labels a payment, in the
/// history the model learns from and in the live stream alike.
pub const LABEL_DELAY_DAYS: u32 = 1;

/// Days at the end of the training window the trainer validates on.
const VALIDATION_DAYS: u32 = 3;

/// The history the demo trains on.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// Days the model learns from.
    pub days: u32,
    /// How far back the feature set reads, in whole days
    /// ([`crate::features::FeatureSet::history_reach_s`] rounded up).
    pub reach_days: u32,
    /// Accounts (the live stream's).
    pub accounts: usize,
    /// The live stream's seed.
    pub seed: u64,
    /// Where the history ends and the live stream starts, epoch ms (midnight UTC).
    pub end_ms: i64,
}

impl HistoryOptions {
    /// Simulated days in the history: the reach, so that every window of the
    /// validation fits is full, the label delay and validation period, and the
    /// training window.
    pub fn total_days(&self) -> u32 {
        self.reach_days + LABEL_DELAY_DAYS + VALIDATION_DAYS + self.days.max(VALIDATION_DAYS + 2)
    }

    /// First event time of the history, epoch ms.
    pub fn start_ms(&self) -> i64 {
        self.end_ms - i64::from(self.total_days()) * DAY_MS
    }

    /// The stream's generator, at the start of the history (its first
    /// message at or before [`HistoryOptions::start_ms`]): fraud starts after
    /// a day, when accounts have habits to deviate from.
    pub fn generator(&self) -> Generator {
        let step = Generator::step_ms(self.accounts);
        let warmup = (DAY_MS / step) as u64;
        Generator::new(self.seed, self.accounts, warmup, self.start_ms() - 2 * step)
    }
}

/// What [`write_history`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryStats {
    /// Payments.
    pub payments: u64,
    /// Of which frauds.
    pub frauds: u64,
    /// Messages the generator made before the live stream, malformed ones included.
    pub messages: u64,
    /// Of which malformed (left out of the file; dead-lettered when played).
    pub malformed: u64,
}

/// Writes the stream's payments before `opts.end_ms` to `path` in the
/// handbook's CSV format with the card, device, country and channel columns
/// (malformed messages left out: a bank's history holds payments).
pub fn write_history(opts: &HistoryOptions, path: &Path) -> anyhow::Result<HistoryStats> {
    let end = opts.end_ms;
    let mut gen = opts.generator();
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
        messages: 0,
        malformed: 0,
    };
    loop {
        let g = gen.next(i64::MAX);
        if gen.clock_ms() >= end {
            break;
        }
        stats.messages += 1;
        if g.pattern == Pattern::Malformed {
            stats.malformed += 1;
            continue;
        }
        let e: serde_json::Value = serde_json::from_slice(&g.payload)?;
        let ts = e["ts"].as_i64().unwrap_or(end);
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
/// feature set `feature_set`: small gradient-boosted trees, labels known
/// [`LABEL_DELAY_DAYS`] after each payment, on the last `opts.days` days
/// (validated on their last 3), every window full. The model file is
/// `dir/demo.json`.
pub fn train_model(
    opts: &HistoryOptions,
    feature_set: &str,
    dir: &Path,
) -> anyhow::Result<(HistoryStats, Fitted)> {
    let input = dir.join("history.csv");
    let stats = write_history(opts, &input)?;
    let day = |d: u32| {
        let ms = opts.start_ms() + i64::from(d) * DAY_MS;
        crate::time::rfc3339_ms(ms)[..10].to_string()
    };
    // The validation fits learn from the days before the validation period
    // (less the label delay) and start right after the reach: full windows.
    let total = opts.total_days();
    let train_options = TrainOptions {
        feature_set: feature_set.into(),
        label_delay_days: LABEL_DELAY_DAYS,
        validation_days: Some(VALIDATION_DAYS),
        grid: Grid {
            max_depths: vec![4],
            learning_rates: vec![0.1],
            max_trees: 60,
            early_stopping_rounds: 20,
            blend: Blend::Never,
            base: GbtParams::default(),
        },
        ..TrainOptions::new(
            "demo",
            &day(total - opts.days.max(VALIDATION_DAYS + 2)),
            &day(total - 1),
        )
    };
    let fitted = train(&input, &dir.join("demo.json"), &train_options, |_, _| {})?;
    Ok((stats, fitted))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The history ends where the live stream starts (the same generator, one
    /// message later), and the model learns on full windows only: the
    /// trainer leaves out no row for partial windows.
    #[test]
    fn the_model_learns_on_full_windows_of_the_live_streams_own_history() {
        let dir = tempfile::tempdir().unwrap();
        let set = crate::features::load_feature_set("default").unwrap();
        let opts = HistoryOptions {
            days: 5,
            reach_days: set.history_reach_s().div_ceil(86_400),
            accounts: 200,
            seed: 3,
            end_ms: crate::time::parse_date_ms("2026-03-01").unwrap(),
        };
        let (stats, fitted) = train_model(&opts, "default", dir.path()).unwrap();
        assert_eq!(fitted.warmup, None);
        let training = fitted.file.training.as_ref().unwrap();
        // 39 days from 2026-01-21: the validation fits start after the 30-day
        // reach, the label delay and validation period after them.
        assert_eq!(training.from, "2026-02-24");
        assert_eq!(training.to, "2026-02-28");
        let mut gen = opts.generator();
        for _ in 0..stats.messages {
            gen.next(i64::MAX);
            assert!(gen.clock_ms() < opts.end_ms);
        }
        gen.next(i64::MAX);
        assert!(gen.clock_ms() >= opts.end_ms, "the next message is live");
    }
}
