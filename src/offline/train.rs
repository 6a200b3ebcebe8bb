//! `fraudstream train`: replay, collect the training window's features and
//! labels, hold out its last days for validation, train, write the model file.

use super::day_range;
use crate::features::load_feature_set;
use crate::model::evaluate::{auc_roc, average_precision};
use crate::model::gbt::GbtParams;
use crate::model::logistic::Logistic;
use crate::model::trees::Gbt;
use crate::model::{Algorithm, ModelFile, TrainingInfo, ValidationInfo, MODEL_FORMAT_VERSION};
use crate::replay::{replay, InputOptions, ReplayOptions};
use std::path::Path;
use std::sync::Arc;

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Model name.
    pub name: String,
    /// First training day (YYYY-MM-DD).
    pub from: String,
    /// Last training day (inclusive).
    pub to: String,
    /// Feature set name or path.
    pub feature_set: String,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Days after which labels are known.
    pub label_delay_days: u32,
    /// Share of the window (by time, at the end) held out for validation.
    pub validation_share: f64,
    /// Gradient-boosting settings (for `gbt`).
    pub gbt: GbtParams,
    /// How the transactions file is read.
    pub input: InputOptions,
}

/// A training set: row-major features and labels, in time order.
pub struct Dataset {
    /// Features, `rows x d`.
    pub x: Vec<f64>,
    /// Features per row.
    pub d: usize,
    /// Labels.
    pub y: Vec<bool>,
}

/// Collects the features and labels of every row in `[from_ms, to_ms)`.
pub fn collect(
    input: &Path,
    feature_set: &str,
    from_ms: i64,
    to_ms: i64,
    label_delay_days: u32,
    input_options: &InputOptions,
) -> anyhow::Result<Dataset> {
    let set = Arc::new(load_feature_set(feature_set)?);
    let d = set.len();
    let opts = ReplayOptions {
        from_ms,
        to_ms,
        label_delay_ms: i64::from(label_delay_days) * 86_400_000,
        input: input_options.clone(),
        ..ReplayOptions::default()
    };
    let mut data = Dataset {
        x: Vec::new(),
        d,
        y: Vec::new(),
    };
    replay(
        input,
        set,
        &opts,
        |row, f| {
            data.x.extend_from_slice(f);
            data.y.push(row.fraud);
        },
        |_| {},
    )?;
    Ok(data)
}

fn fit(
    opts: &TrainOptions,
    x: &[f64],
    d: usize,
    y: &[bool],
    progress: &mut dyn FnMut(usize),
) -> (Option<Logistic>, Option<Gbt>) {
    match opts.algorithm {
        Algorithm::Logistic => (
            Some(Logistic::train(x, d, y, LOGISTIC_EPOCHS, progress)),
            None,
        ),
        Algorithm::Gbt => (None, Some(Gbt::train(x, d, y, opts.gbt, progress))),
        Algorithm::Ensemble => {
            let gbt = Gbt::train(x, d, y, opts.gbt, &mut *progress);
            let logistic =
                Logistic::train(x, d, y, LOGISTIC_EPOCHS, |e| progress(opts.gbt.trees + e));
            (Some(logistic), Some(gbt))
        }
    }
}

const LOGISTIC_EPOCHS: usize = 400;

fn margin(l: &Option<Logistic>, g: &Option<Gbt>, row: &[f64]) -> f64 {
    match (l, g) {
        (Some(l), Some(g)) => 0.5 * (l.margin(row) + g.margin(row)),
        (Some(l), None) => l.margin(row),
        (None, Some(g)) => g.margin(row),
        (None, None) => f64::NAN,
    }
}

/// Trains a model on `input` and writes it to `out`. `progress(done, total)` is
/// told about training steps (both fits: validation and final).
pub fn train(
    input: &Path,
    out: &Path,
    opts: &TrainOptions,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<ModelFile> {
    let (from_ms, to_ms) = day_range(&opts.from, &opts.to).map_err(anyhow::Error::msg)?;
    let data = collect(
        input,
        &opts.feature_set,
        from_ms,
        to_ms,
        opts.label_delay_days,
        &opts.input,
    )?;
    let n = data.y.len();
    anyhow::ensure!(
        n > 100 && data.y.iter().any(|&v| v),
        "the training window has {n} rows and needs frauds"
    );
    let set = load_feature_set(&opts.feature_set)?;
    let steps = match opts.algorithm {
        Algorithm::Logistic => LOGISTIC_EPOCHS,
        Algorithm::Gbt => opts.gbt.trees,
        Algorithm::Ensemble => opts.gbt.trees + LOGISTIC_EPOCHS,
    };
    // Validation: fit on the earlier part of the window, score its last days.
    let cut = ((n as f64) * (1.0 - opts.validation_share)) as usize;
    let (l, g) = fit(
        opts,
        &data.x[..cut * data.d],
        data.d,
        &data.y[..cut],
        &mut |s| progress(s, 2 * steps),
    );
    let scores: Vec<f64> = (cut..n)
        .map(|i| margin(&l, &g, &data.x[i * data.d..(i + 1) * data.d]))
        .collect();
    let validation = ValidationInfo {
        rows: n - cut,
        auc: auc_roc(&scores, &data.y[cut..]),
        average_precision: average_precision(&scores, &data.y[cut..]),
    };
    // The served model learns from the whole window.
    let (logistic, gbt) = fit(opts, &data.x, data.d, &data.y, &mut |s| {
        progress(steps + s, 2 * steps)
    });
    let file = ModelFile {
        format_version: MODEL_FORMAT_VERSION,
        name: opts.name.clone(),
        algorithm: opts.algorithm,
        feature_set: opts.feature_set.clone(),
        features: set.names.clone(),
        training: Some(TrainingInfo {
            input: input
                .file_name()
                .map_or(String::new(), |f| f.to_string_lossy().to_string()),
            from: opts.from.clone(),
            to: opts.to.clone(),
            label_delay_days: opts.label_delay_days,
            rows: n,
            frauds: data.y.iter().filter(|&&v| v).count(),
        }),
        validation: Some(validation),
        imported: None,
        logistic,
        gbt,
        content_hash: String::new(),
    };
    Ok(file.save(out)?)
}
