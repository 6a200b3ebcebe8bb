//! `fraudstream train`: replay, collect features and labels, choose the
//! settings on a validation period by a rule fixed in advance, refit on the
//! training window, write the model file.
//!
//! The split respects the label delay, as the handbook's validation protocol
//! does (Le Borgne et al., chapter 5): the validation period is the end of the
//! window; the validation fits learn from a period as long as the training
//! window that ends one label delay before the validation period starts, so
//! they use no label that would not have been known when it started. Each
//! setting of the grid is fitted there (trees with early stopping on the
//! validation log-loss), scored on the validation period with and without the
//! logistic blend, and the one with the best validation Average Precision wins
//! (ties: the earlier in the table, which lists smaller trees first). The
//! served model is then refitted on the training window with the winner's
//! settings and number of trees.

use super::day_range;
use crate::features::{load_feature_set, FeatureSet};
use crate::model::evaluate::{auc_roc, average_precision};
use crate::model::gbt::{self, EarlyStopping, FitError, GbtParams};
use crate::model::logistic::Logistic;
use crate::model::trees::Gbt;
use crate::model::{Algorithm, ModelFile, TrainingInfo, ValidationInfo, MODEL_FORMAT_VERSION};
use crate::offline::replay::{replay, InputOptions, ReplayOptions};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

const DAY_MS: i64 = 86_400_000;

/// What `train` replays and fits.
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
    /// Days after which labels are known.
    pub label_delay_days: u32,
    /// Length of the validation period at the end of the window, days
    /// (`None`: as long as the training window).
    pub validation_days: Option<u32>,
    /// The settings tried.
    pub grid: Grid,
    /// How the transactions file is read.
    pub input: InputOptions,
    /// Learn from rows whose windows reach before the input's first event
    /// too (see [`Dataset::history`]); by default they only warm the state.
    pub keep_partial_windows: bool,
}

impl TrainOptions {
    /// `train`'s defaults (those of the command line) for the window `from ..= to`.
    pub fn new(name: &str, from: &str, to: &str) -> Self {
        Self {
            name: name.into(),
            from: from.into(),
            to: to.into(),
            feature_set: DEFAULT_FEATURE_SET.into(),
            label_delay_days: 7,
            validation_days: None,
            grid: Grid::default(),
            input: InputOptions::default(),
            keep_partial_windows: false,
        }
    }
}

/// The feature set `train` uses unless told otherwise.
pub const DEFAULT_FEATURE_SET: &str = "default";

/// Whether the served margin averages the trees' with a logistic regression's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Blend {
    /// Try both; validation decides.
    Try,
    /// Always blend (the `ensemble` algorithm).
    Always,
    /// Trees alone (the `gbt` algorithm).
    Never,
}

/// The settings `fit_model` tries: every depth with every learning rate,
/// each with and (per `blend`) without the logistic blend.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Tree depths.
    pub max_depths: Vec<usize>,
    /// Learning rates.
    pub learning_rates: Vec<f64>,
    /// Most trees per fit; early stopping picks fewer.
    pub max_trees: usize,
    /// Trees without a better validation log-loss before a fit stops.
    pub early_stopping_rounds: usize,
    /// The logistic blend.
    pub blend: Blend,
    /// Everything else of each fit (its `trees`, `max_depth` and
    /// `learning_rate` are the grid's).
    pub base: GbtParams,
}

impl Default for Grid {
    fn default() -> Self {
        Self {
            max_depths: vec![3, 4, 5],
            learning_rates: vec![0.05, 0.1],
            max_trees: 1000,
            early_stopping_rounds: 50,
            blend: Blend::Try,
            base: GbtParams::default(),
        }
    }
}

/// Rows to learn from: row-major features, labels and event times, in time order.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Features, `rows x d`, NaN where missing.
    pub x: Vec<f64>,
    /// Features per row.
    pub d: usize,
    /// Labels (fraud or not).
    pub y: Vec<bool>,
    /// Event time of each row, epoch ms, non-decreasing.
    pub ts_ms: Vec<i64>,
    /// Where the rows' state starts, when known: rows before its end have
    /// partial windows, and [`fit_model`] neither learns nor validates on them.
    pub history: Option<History>,
}

/// The history behind a [`Dataset`]'s features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    /// Event time of the input's first row, epoch ms.
    pub first_ms: i64,
    /// How far back the features read, ms ([`FeatureSet::history_reach_s`]).
    pub reach_ms: i64,
}

impl History {
    /// The first event time with full windows, epoch ms.
    pub fn full_from_ms(&self) -> i64 {
        self.first_ms.saturating_add(self.reach_ms)
    }
}

impl Dataset {
    /// The rows with event times in `[from_ms, to_ms)` and full windows.
    fn period(&self, from_ms: i64, to_ms: i64) -> (&[f64], &[bool]) {
        let from_ms = from_ms.max(self.history.map_or(i64::MIN, |h| h.full_from_ms()));
        let a = self.ts_ms.partition_point(|&t| t < from_ms);
        let b = self.ts_ms.partition_point(|&t| t < to_ms).max(a);
        (&self.x[a * self.d..b * self.d], &self.y[a..b])
    }

    /// The rows in `[from_ms, to_ms)` whose windows are partial.
    fn warmup_rows(&self, from_ms: i64, to_ms: i64) -> usize {
        let end = self
            .history
            .map_or(i64::MIN, |h| h.full_from_ms())
            .min(to_ms);
        let a = self.ts_ms.partition_point(|&t| t < from_ms);
        self.ts_ms.partition_point(|&t| t < end).max(a) - a
    }
}

/// How [`fit_model`] splits its rows by time (all epoch ms; windows `[from, to)`).
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Model name.
    pub name: String,
    /// Start of the training window the served model learns from.
    pub from_ms: i64,
    /// End of the training window (exclusive).
    pub to_ms: i64,
    /// How long after a payment its label is known.
    pub label_delay_ms: i64,
    /// Length of the validation period, which ends at `to_ms`.
    pub validation_ms: i64,
    /// The settings tried.
    pub grid: Grid,
}

impl FitOptions {
    /// The validation fits' window and the validation period.
    pub fn validation_split(&self) -> ((i64, i64), (i64, i64)) {
        let val_from = self.to_ms - self.validation_ms;
        let fit_to = val_from - self.label_delay_ms;
        (
            (fit_to - (self.to_ms - self.from_ms), fit_to),
            (val_from, self.to_ms),
        )
    }
}

/// One setting tried, with its validation metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Trees alone or blended.
    pub algorithm: Algorithm,
    /// Depth, learning rate, and the trees kept by early stopping.
    pub params: GbtParams,
    /// Validation AUC ROC.
    pub auc: f64,
    /// Validation Average Precision (the selection rule).
    pub average_precision: f64,
    /// Seconds the validation fit of the trees took.
    pub fit_secs: f64,
}

/// A fitted model and what was tried to choose it.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The model (content hash filled in; `training.input` empty).
    pub file: ModelFile,
    /// Every setting tried, in grid order.
    pub trials: Vec<Trial>,
    /// Index of the winner in `trials`.
    pub chosen: usize,
    /// Features with a single value (or always missing) over the training
    /// window: the model cannot use them.
    pub constant: Vec<String>,
    /// Features that read labels from a window younger than the label delay,
    /// so never see one ([`FeatureSet::label_blind`]).
    pub label_blind: Vec<String>,
    /// Rows of the validation fits' window and the training window left out
    /// because their windows reach before the input's first event, and the
    /// first event time with full windows (epoch ms); `None` when none were.
    pub warmup: Option<(usize, i64)>,
}

/// Why fitting failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A part of the split has too few rows or no fraud.
    #[error("the {part} ({from} .. {to}) has {rows} rows and {frauds} frauds; it needs more than 100 rows and a fraud (widen the window, or check the input covers it)")]
    TooFew {
        /// `training window`, `validation period`, ...
        part: &'static str,
        /// First day.
        from: String,
        /// Last day.
        to: String,
        /// Rows there.
        rows: usize,
        /// Frauds there.
        frauds: usize,
    },
    /// A part of the split lies (mostly) before the windows are full.
    #[error(transparent)]
    Warmup(Box<PartialSplit>),
    /// The grid is empty or a setting is out of range.
    #[error("bad training settings: {0}")]
    Settings(String),
    /// The library failed.
    #[error(transparent)]
    Fit(#[from] FitError),
}

/// A part of the split with too few rows with full windows ([`TrainError::Warmup`]).
#[derive(Debug, thiserror::Error)]
#[error("the {part} ({from} .. {to}) has {rows} rows with full windows and {frauds} frauds: the input starts {first} and the features read {reach_days} days back, so rows have full windows from {full_from}; with these window lengths, train to {earliest_to} or later (or keep the partial rows with --keep-partial-windows)")]
pub struct PartialSplit {
    /// `training window`, `validation period`, ...
    pub part: &'static str,
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// Rows there with full windows.
    pub rows: usize,
    /// Frauds among them.
    pub frauds: usize,
    /// Day of the input's first event.
    pub first: String,
    /// [`FeatureSet::history_reach_s`] in days.
    pub reach_days: f64,
    /// Day of the first event with full windows.
    pub full_from: String,
    /// The earliest last training day whose split lies in full windows.
    pub earliest_to: String,
}

const LOGISTIC_EPOCHS: usize = 400;

fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d").to_string())
}

/// Checks a part of the split has enough rows to learn or validate on.
fn enough<'a>(
    part: &'static str,
    (from, to): (i64, i64),
    (x, y): (&'a [f64], &'a [bool]),
) -> Result<(&'a [f64], &'a [bool]), TrainError> {
    let frauds = y.iter().filter(|&&v| v).count();
    if y.len() > 100 && frauds > 0 {
        return Ok((x, y));
    }
    Err(TrainError::TooFew {
        part,
        from: day(from),
        to: day(to - 1),
        rows: y.len(),
        frauds,
    })
}

/// The grid's settings in table order: depth, then learning rate.
fn settings(grid: &Grid) -> Vec<GbtParams> {
    let mut out = Vec::new();
    for &max_depth in &grid.max_depths {
        for &learning_rate in &grid.learning_rates {
            out.push(GbtParams {
                trees: grid.max_trees,
                max_depth,
                learning_rate,
                ..grid.base
            });
        }
    }
    out
}

fn check_grid(grid: &Grid) -> Result<(), TrainError> {
    let bad = |m: &str| Err(TrainError::Settings(m.into()));
    if grid.max_depths.is_empty() || grid.learning_rates.is_empty() {
        return bad("the grid needs at least one depth and one learning rate");
    }
    if grid.max_depths.iter().any(|&d| d == 0 || d > 16) {
        return bad("depths are 1 to 16");
    }
    if grid.learning_rates.iter().any(|&r| !(r > 0.0 && r <= 1.0)) {
        return bad("learning rates are in (0, 1]");
    }
    if grid.max_trees == 0 || grid.max_trees > crate::model::trees::MAX_TREES {
        return bad("the number of trees is 1 to 50000");
    }
    Ok(())
}

/// Fits the trees of every setting on `fit`, early-stopped on `val`, on up to
/// as many threads as the machine has (each fit is single-threaded, so the
/// result does not depend on the scheduling). `progress(done, total)`.
fn fit_grid(
    fit: (&[f64], &[bool]),
    val: (&[f64], &[bool]),
    d: usize,
    grid: &Grid,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<(Gbt, f64)>, TrainError> {
    let all = settings(grid);
    let next = Mutex::new(0usize);
    let (tx, rx) = mpsc::channel();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(all.len()));
    let mut results: Vec<Option<Result<(Gbt, f64), FitError>>> =
        (0..all.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (tx, next, all) = (tx.clone(), &next, &all);
            s.spawn(move || loop {
                let k = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    *n += 1;
                    *n - 1
                };
                let Some(p) = all.get(k) else { break };
                let started = std::time::Instant::now();
                let stop = EarlyStopping {
                    x: val.0,
                    y: val.1,
                    rounds: grid.early_stopping_rounds,
                };
                let r = gbt::fit(fit.0, d, fit.1, p, Some(stop));
                if tx
                    .send((k, r.map(|g| (g, started.elapsed().as_secs_f64()))))
                    .is_err()
                {
                    break;
                }
            });
        }
        drop(tx);
        for (done, (k, r)) in rx.into_iter().enumerate() {
            results[k] = Some(r);
            progress(done + 1, all.len() + 1);
        }
    });
    results
        .into_iter()
        .map(|r| match r {
            Some(r) => r.map_err(TrainError::from),
            None => Err(TrainError::Settings("a grid fit did not finish".into())),
        })
        .collect()
}

fn blended(g: &Gbt, l: Option<&Logistic>, row: &[f64]) -> f64 {
    match l {
        Some(l) => 0.5 * (g.margin(row) + l.margin(row)),
        None => g.margin(row),
    }
}

fn metrics(g: &Gbt, l: Option<&Logistic>, (x, y): (&[f64], &[bool]), d: usize) -> (f64, f64) {
    let scores: Vec<f64> = x.chunks_exact(d).map(|r| blended(g, l, r)).collect();
    (auc_roc(&scores, y), average_precision(&scores, y))
}

/// Chooses the settings on the validation split of `data` and fits the served
/// model on the training window (see the module doc). `set` names the model's
/// features (its columns are `data`'s). Deterministic: the same rows and
/// options give the same file. `progress(done, total)` counts fits.
pub fn fit_model(
    data: &Dataset,
    set: &FeatureSet,
    opts: &FitOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<Fitted, TrainError> {
    check_grid(&opts.grid)?;
    if opts.validation_ms <= 0 || opts.to_ms <= opts.from_ms {
        return Err(TrainError::Settings(
            "the training window and validation period must not be empty".into(),
        ));
    }
    let d = data.d;
    let (fit_window, val_window) = opts.validation_split();
    let train_window = (opts.from_ms, opts.to_ms);
    let fit = part(data, opts, "validation fits' window", fit_window)?;
    let val = part(data, opts, "validation period", val_window)?;
    let all = part(data, opts, "training window", train_window)?;
    let warmup = data
        .history
        .map(|h| {
            let rows = data.warmup_rows(fit_window.0.min(opts.from_ms), opts.to_ms);
            (rows, h.full_from_ms())
        })
        .filter(|&(rows, _)| rows > 0);

    let fits = fit_grid(fit, val, d, &opts.grid, &mut progress)?;
    let logistic = (opts.grid.blend != Blend::Never)
        .then(|| Logistic::train(fit.0, d, fit.1, LOGISTIC_EPOCHS, |_| {}));
    let trials = score_trials(&fits, logistic.as_ref(), val, d, &opts.grid);
    let chosen = best_trial(&trials);
    let win = trials[chosen].clone();

    // The served model learns from the training window alone.
    let gbt = gbt::fit(all.0, d, all.1, &win.params, None)?;
    progress(fits.len() + 1, fits.len() + 1);
    let logistic = (win.algorithm == Algorithm::Ensemble)
        .then(|| Logistic::train(all.0, d, all.1, LOGISTIC_EPOCHS, |_| {}));
    let mut file = ModelFile {
        format_version: MODEL_FORMAT_VERSION,
        name: opts.name.clone(),
        algorithm: win.algorithm,
        feature_set: set.name.clone(),
        features: set.names.clone(),
        training: Some(TrainingInfo {
            input: String::new(),
            from: day(opts.from_ms),
            to: day(opts.to_ms - 1),
            label_delay_days: (opts.label_delay_ms / DAY_MS) as u32,
            rows: all.1.len(),
            frauds: all.1.iter().filter(|&&v| v).count(),
        }),
        validation: Some(ValidationInfo {
            rows: val.1.len(),
            auc: win.auc,
            average_precision: win.average_precision,
        }),
        imported: None,
        logistic,
        gbt: Some(gbt),
        content_hash: String::new(),
    };
    file.content_hash = file.compute_hash();
    Ok(Fitted {
        file,
        trials,
        chosen,
        constant: constant_features(all.0, d, set),
        label_blind: set
            .label_blind((opts.label_delay_ms / 1000).clamp(0, i64::from(u32::MAX)) as u32)
            .into_iter()
            .map(String::from)
            .collect(),
        warmup,
    })
}

/// The rows of one part of the split with full windows, if enough
/// ([`enough`]); when too few because the part starts in the warm-up, the
/// error says from which last training day the split would fit.
fn part<'a>(
    data: &'a Dataset,
    opts: &FitOptions,
    name: &'static str,
    window: (i64, i64),
) -> Result<(&'a [f64], &'a [bool]), TrainError> {
    let rows = data.period(window.0, window.1);
    match (enough(name, window, rows), data.history) {
        (Err(TrainError::TooFew { rows, frauds, .. }), Some(h)) if h.full_from_ms() > window.0 => {
            // The validation fits' window starts first: it sets the earliest end.
            let full_day = h
                .full_from_ms()
                .saturating_add(DAY_MS - 1)
                .div_euclid(DAY_MS)
                * DAY_MS;
            let (fit_from, _) = opts.validation_split().0;
            let earliest_to = full_day + (opts.to_ms - fit_from.min(opts.from_ms));
            Err(TrainError::Warmup(Box::new(PartialSplit {
                part: name,
                from: day(window.0),
                to: day(window.1 - 1),
                rows,
                frauds,
                first: day(h.first_ms),
                reach_days: h.reach_ms as f64 / DAY_MS as f64,
                full_from: day(h.full_from_ms()),
                earliest_to: day(earliest_to - 1),
            })))
        }
        (r, _) => r,
    }
}

/// Names of the features with one value (missing counts as one) over `x`.
fn constant_features(x: &[f64], d: usize, set: &FeatureSet) -> Vec<String> {
    let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    let first = &x[..d.min(x.len())];
    (0..first.len())
        .filter(|&f| x.chunks_exact(d).all(|row| same(row[f], first[f])))
        .filter_map(|f| set.names.get(f).cloned())
        .collect()
}

/// Each fit of `grid` scored on the validation period, as it is and (as
/// `grid.blend` asks) blended with `logistic`.
fn score_trials(
    fits: &[(Gbt, f64)],
    logistic: Option<&Logistic>,
    val: (&[f64], &[bool]),
    d: usize,
    grid: &Grid,
) -> Vec<Trial> {
    let mut trials = Vec::new();
    for (g, secs) in fits {
        let params = g.params.unwrap_or(grid.base);
        for (algorithm, l) in [(Algorithm::Gbt, None), (Algorithm::Ensemble, logistic)] {
            let wanted = match grid.blend {
                Blend::Try => true,
                Blend::Always => l.is_some(),
                Blend::Never => l.is_none(),
            };
            if wanted {
                let (auc, average_precision) = metrics(g, l, val, d);
                trials.push(Trial {
                    algorithm,
                    params,
                    auc,
                    average_precision,
                    fit_secs: *secs,
                });
            }
        }
    }
    trials
}

/// The rule declared in advance: the best validation AP; ties keep the earlier.
fn best_trial(trials: &[Trial]) -> usize {
    (0..trials.len())
        .reduce(
            |best, k| match trials[k].average_precision > trials[best].average_precision {
                true => k,
                false => best,
            },
        )
        .unwrap_or(0)
}

/// Collects the features, labels and event times of every row in
/// `[from_ms, to_ms)`, labels fed back to the feature engine `label_delay_days`
/// after each payment.
pub fn collect(
    input: &Path,
    set: Arc<FeatureSet>,
    from_ms: i64,
    to_ms: i64,
    label_delay_days: u32,
    input_options: &InputOptions,
) -> anyhow::Result<Dataset> {
    let opts = ReplayOptions {
        from_ms,
        to_ms,
        label_delay_ms: i64::from(label_delay_days) * DAY_MS,
        input: input_options.clone(),
        ..ReplayOptions::default()
    };
    let mut data = Dataset {
        d: set.len(),
        ..Dataset::default()
    };
    let reach_ms = i64::from(set.history_reach_s()) * 1000;
    let stats = replay(
        input,
        set,
        &opts,
        |row, f| {
            data.x.extend_from_slice(f);
            data.y.push(row.fraud);
            data.ts_ms.push(row.ts_ms);
        },
        |_| {},
    )?;
    data.history = stats
        .first_ms
        .map(|first_ms| History { first_ms, reach_ms });
    Ok(data)
}

/// Replays `input` over the validation split and the training window of
/// `opts`, fits with [`fit_model`] and writes the model to `out`.
/// `progress(done, total)` counts fits.
pub fn train(
    input: &Path,
    out: &Path,
    opts: &TrainOptions,
    progress: impl FnMut(usize, usize),
) -> anyhow::Result<Fitted> {
    let (from_ms, to_ms) = day_range(&opts.from, &opts.to).map_err(anyhow::Error::msg)?;
    let set = Arc::new(load_feature_set(&opts.feature_set)?);
    let window = to_ms - from_ms;
    let fit = FitOptions {
        name: opts.name.clone(),
        from_ms,
        to_ms,
        label_delay_ms: i64::from(opts.label_delay_days) * DAY_MS,
        validation_ms: opts
            .validation_days
            .map_or(window, |v| i64::from(v) * DAY_MS),
        grid: opts.grid.clone(),
    };
    let first = fit.validation_split().0 .0.min(from_ms);
    let mut data = collect(
        input,
        set.clone(),
        first,
        to_ms,
        opts.label_delay_days,
        &opts.input,
    )?;
    if opts.keep_partial_windows {
        data.history = None;
    }
    let mut fitted = fit_model(&data, &set, &fit, progress)?;
    fitted.file.feature_set = opts.feature_set.clone();
    if let Some(t) = fitted.file.training.as_mut() {
        t.input = input
            .file_name()
            .map_or(String::new(), |f| f.to_string_lossy().to_string());
    }
    fitted.file = fitted.file.save(out)?;
    Ok(fitted)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::offline::simulate::{simulate, Columns, SimOptions};

    /// Features and labels of `days` simulated days from 2024-01-01 (500
    /// customers, seed 7), through the live feature engine with a 7-day label delay.
    pub(crate) fn simulated(days: u32) -> (Dataset, FeatureSet) {
        let sim = simulate(&SimOptions {
            days,
            seed: 7,
            customers: 500,
            start: "2024-01-01".into(),
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.csv");
        sim.write_file(&path, Columns::Full).unwrap();
        let set = Arc::new(load_feature_set(DEFAULT_FEATURE_SET).unwrap());
        let mut data = collect(
            &path,
            set.clone(),
            i64::MIN,
            i64::MAX,
            7,
            &InputOptions::default(),
        )
        .unwrap();
        // These tests choose settings on windows that start a week in; the
        // warm-up has its own (`train_warmup_tests`).
        data.history = None;
        (data, (*set).clone())
    }

    fn options(data: &Dataset) -> FitOptions {
        let start = data.ts_ms[0] - data.ts_ms[0].rem_euclid(DAY_MS);
        FitOptions {
            name: "sim".into(),
            from_ms: start + 21 * DAY_MS,
            to_ms: start + 35 * DAY_MS,
            label_delay_ms: 7 * DAY_MS,
            validation_ms: 7 * DAY_MS,
            grid: Grid {
                max_depths: vec![2, 4],
                learning_rates: vec![0.1, 0.3],
                max_trees: 200,
                early_stopping_rounds: 10,
                ..Grid::default()
            },
        }
    }

    /// What a trial found, without its timing.
    fn strip(t: &[Trial]) -> Vec<(Algorithm, GbtParams, f64, f64)> {
        t.iter()
            .map(|t| (t.algorithm, t.params, t.auc, t.average_precision))
            .collect()
    }

    #[test]
    fn the_split_keeps_the_label_delay_and_the_window_lengths() {
        let day = |d: i64| d * DAY_MS;
        let opts = FitOptions {
            from_ms: day(100),
            to_ms: day(107),
            label_delay_ms: day(7),
            validation_ms: day(7),
            ..options(&Dataset {
                ts_ms: vec![0],
                ..Dataset::default()
            })
        };
        assert_eq!(
            opts.validation_split(),
            ((day(86), day(93)), (day(100), day(107)))
        );
        let opts = FitOptions {
            to_ms: day(114),
            validation_ms: day(3),
            label_delay_ms: day(2),
            ..opts
        };
        assert_eq!(
            opts.validation_split(),
            ((day(95), day(109)), (day(111), day(114)))
        );
    }

    /// The grid, the rule and the refit, on simulated payments: every setting is
    /// tried with and without the blend, the best validation AP wins, the file
    /// is the winner refitted, and the same rows give the same file.
    #[test]
    fn fit_model_chooses_by_validation_ap_and_is_deterministic() {
        let (data, set) = simulated(35);
        let opts = options(&data);
        let a = fit_model(&data, &set, &opts, |_, _| {}).unwrap();
        assert_eq!(a.trials.len(), 2 * 2 * 2);
        let best = a
            .trials
            .iter()
            .map(|t| t.average_precision)
            .fold(f64::MIN, f64::max);
        let win = &a.trials[a.chosen];
        assert_eq!(win.average_precision, best);
        assert!(a.trials[..a.chosen]
            .iter()
            .all(|t| t.average_precision < best));
        assert_eq!(a.file.algorithm, win.algorithm);
        assert_eq!(
            a.file.logistic.is_some(),
            win.algorithm == Algorithm::Ensemble
        );
        let g = a.file.gbt.as_ref().unwrap();
        assert_eq!(g.params, Some(win.params));
        assert_eq!(g.roots.len(), win.params.trees);
        assert!(
            win.params.trees < 200 || win.params.learning_rate < 0.3,
            "early stopping"
        );
        assert!(win.auc > 0.75, "{win:?}");
        assert_eq!(a.file.compute_hash(), a.file.content_hash);
        // The 7-day label windows without a delay see no label under a 7-day
        // label delay, so never vary.
        assert_eq!(a.label_blind.len(), 3, "{:?}", a.label_blind);
        for name in &a.label_blind {
            assert!(a.constant.contains(name), "{name} in {:?}", a.constant);
        }
        assert!(!a.constant.contains(&"amount".to_string()));
        assert!(a.file.check().is_ok());
        let b = fit_model(&data, &set, &opts, |_, _| {}).unwrap();
        assert_eq!(
            serde_json::to_string(&a.file).unwrap(),
            serde_json::to_string(&b.file).unwrap()
        );
        assert_eq!(strip(&a.trials), strip(&b.trials));
    }

    /// Labels not yet known when the validation period starts (the label delay
    /// before it) and rows before the validation fits' window change nothing.
    #[test]
    fn validation_uses_no_label_unknown_at_its_start() {
        let (data, set) = simulated(35);
        let opts = FitOptions {
            grid: Grid {
                max_depths: vec![3],
                learning_rates: vec![0.2],
                max_trees: 100,
                ..options(&data).grid
            },
            ..options(&data)
        };
        // From the definition, not from `validation_split`: labels known when
        // the validation period starts are those of payments a delay earlier,
        // and the validation fits learn from a window as long as the training one.
        let val_from = opts.to_ms - opts.validation_ms;
        let known_to = val_from - opts.label_delay_ms;
        let fit_from = known_to - (opts.to_ms - opts.from_ms);
        let base = fit_model(&data, &set, &opts, |_, _| {}).unwrap();
        let mut poisoned = data.clone();
        for (t, y) in poisoned.ts_ms.iter().zip(poisoned.y.iter_mut()) {
            if *t < fit_from || (*t >= known_to && *t < val_from) {
                *y = !*y;
            }
        }
        let p = fit_model(&poisoned, &set, &opts, |_, _| {}).unwrap();
        assert_eq!(strip(&base.trials), strip(&p.trials));
    }

    #[test]
    fn too_little_history_is_an_error_naming_the_part() {
        let (data, set) = simulated(35);
        let opts = FitOptions {
            validation_ms: 28 * DAY_MS,
            ..options(&data)
        };
        let e = fit_model(&data, &set, &opts, |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("validation fits' window (2023-12-"), "{e}");
        let empty = Grid {
            max_depths: vec![],
            ..Grid::default()
        };
        let opts = FitOptions {
            grid: empty,
            ..options(&data)
        };
        assert!(matches!(
            fit_model(&data, &set, &opts, |_, _| {}),
            Err(TrainError::Settings(_))
        ));
    }
}
