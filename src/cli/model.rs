//! `fraudstream train`, `fraudstream backtest` and `fraudstream model import`.

use crate::features::load_feature_set;
use crate::model::gbt::GbtParams;
use crate::model::import::{import, Library};
use crate::model::trees::Missing;
use crate::model::Model;
use crate::offline::backtest::{backtest, BacktestOptions, BacktestReport};
use crate::offline::train::{train, Blend, Grid, TrainOptions};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Flags of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The transactions file and how it is read.
    #[command(flatten)]
    pub input: super::input::InputArgs,
    /// First training day (YYYY-MM-DD).
    #[arg(long)]
    pub train_from: String,
    /// Last training day (inclusive).
    #[arg(long)]
    pub train_to: String,
    /// The feature set the model reads.
    #[command(flatten)]
    pub feature_set: super::input::FeatureSetArgs,
    /// Days after which labels are known to the feature engine; also the gap
    /// between the validation fits' window and the validation period.
    #[arg(long, default_value_t = 7)]
    pub label_delay_days: u32,
    /// Length of the validation period at the end of the window, in days
    /// (default: as long as the window). The validation fits learn from a
    /// period as long as the window that ends a label delay before it, so the
    /// input must reach back that far.
    #[arg(long)]
    pub validation_days: Option<u32>,
    /// The model file written.
    #[command(flatten)]
    pub out: super::input::ModelOutArgs,
    /// Tree depths tried.
    #[arg(long, value_delimiter = ',', default_values_t = Grid::default().max_depths)]
    pub max_depths: Vec<usize>,
    /// Learning rates tried.
    #[arg(long, value_delimiter = ',', default_values_t = Grid::default().learning_rates)]
    pub learning_rates: Vec<f64>,
    /// Most trees per fit; early stopping on the validation log-loss picks fewer.
    #[arg(long, default_value_t = Grid::default().max_trees)]
    pub max_trees: usize,
    /// Trees without a better validation log-loss before a fit stops.
    #[arg(long, default_value_t = Grid::default().early_stopping_rounds)]
    pub early_stopping_rounds: usize,
    /// The logistic-regression blend: tried both ways, always, or never.
    #[arg(long, value_enum, default_value = "try")]
    pub blend: Blend,
    /// Minimum hessian in a leaf.
    #[arg(long, default_value_t = GbtParams::default().min_child_weight)]
    pub min_child_weight: f64,
    /// Learn from rows whose windows reach before the input's first event too
    /// (by default they only build the state, and a line says how many).
    #[arg(long)]
    pub keep_partial_windows: bool,
}

/// Flags of `backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The transactions file and how it is read.
    #[command(flatten)]
    pub input: super::input::InputArgs,
    /// First day (YYYY-MM-DD).
    #[arg(long)]
    pub from: String,
    /// Last day (inclusive).
    #[arg(long)]
    pub to: String,
    /// Model file.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Rules directory (default: no rules).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Feature set (default: the model's).
    #[arg(long)]
    pub feature_set: Option<String>,
    /// Only transactions listed here count (one id per line, or a CSV with TRANSACTION_ID first), matched as text.
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// Days after which labels are fed back.
    #[arg(long, default_value_t = 7)]
    pub label_delay_days: u32,
    /// Write `TRANSACTION_ID,score,action,reasons`.
    #[arg(long)]
    pub scores_out: Option<PathBuf>,
    /// Write plots (SVG) and summary.json here.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Compare with this model (which decisions change, for which labels).
    #[arg(long)]
    pub compare_model: Option<PathBuf>,
    /// Compare with this rules directory.
    #[arg(long)]
    pub compare_rules: Option<PathBuf>,
}

/// Flags of `model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ModelCommand,
}

/// The subcommands of `model`.
#[derive(Debug, clap::Subcommand)]
pub enum ModelCommand {
    /// Turn a LightGBM or XGBoost binary-logistic model into a model file.
    Import(ImportArgs),
}

/// Flags of `model import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The library that wrote FILE: LightGBM's text model or JSON dump, or
    /// XGBoost's JSON model.
    #[arg(long = "from", value_enum)]
    pub library: Library,
    /// The library's model file.
    pub file: PathBuf,
    /// Feature set whose features the model reads, by name (built-in name or TOML path).
    #[arg(long)]
    pub feature_set: String,
    /// The model file written.
    #[command(flatten)]
    pub out: super::input::ModelOutArgs,
}

/// Runs `model`.
pub fn run_model(args: ModelArgs) -> anyhow::Result<()> {
    match args.command {
        ModelCommand::Import(args) => run_import(args),
    }
}

/// Imports a model, writes it, and loads it back as the processor would.
fn run_import(args: ImportArgs) -> anyhow::Result<()> {
    let set = load_feature_set(&args.feature_set)?;
    let file = import(args.library, &args.file, &set, &args.out.name())?.save(&args.out.path)?;
    let model = Model::load(&args.out.path, &set)?;
    let g = file.gbt.as_ref().context("an imported model has trees")?;
    // Checked by the import: the depth is there.
    let depth = g.check(file.features.len()).unwrap_or_default();
    let right = g
        .nodes
        .iter()
        .filter(|n| n.missing == Missing::Right)
        .count();
    let trees = g.roots.len();
    println!(
        "{} imported from {}: {trees} trees of depth up to {depth}, {} features, {right} splits sending missing values right; written to {}",
        model.version,
        args.file.display(),
        file.features.len(),
        args.out.path.display()
    );
    Ok(())
}

/// What `train` is asked to do, its input options left to the caller.
fn train_options(args: &TrainArgs) -> TrainOptions {
    TrainOptions {
        name: args.out.name(),
        from: args.train_from.clone(),
        to: args.train_to.clone(),
        feature_set: args.feature_set.feature_set.clone(),
        label_delay_days: args.label_delay_days,
        validation_days: args.validation_days,
        grid: Grid {
            max_depths: args.max_depths.clone(),
            learning_rates: args.learning_rates.clone(),
            max_trees: args.max_trees,
            early_stopping_rounds: args.early_stopping_rounds,
            blend: args.blend,
            base: GbtParams {
                min_child_weight: args.min_child_weight,
                ..GbtParams::default()
            },
        },
        input: Default::default(),
        keep_partial_windows: args.keep_partial_windows,
    }
}

/// Trains and writes a model, printing the table of the settings tried.
pub fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let opts = TrainOptions {
        input: args.input.options()?,
        ..train_options(&args)
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} fits [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    eprintln!(
        "replaying {} through the feature engine...",
        args.input.path.display()
    );
    let started = std::time::Instant::now();
    let fitted = train(&args.input.path, &args.out.path, &opts, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let file = &fitted.file;
    let (Some(training), Some(validation)) = (&file.training, &file.validation) else {
        anyhow::bail!("the trainer wrote no training or validation summary");
    };
    if let Some((rows, full_from)) = fitted.warmup {
        eprintln!(
            "warm-up: {rows} rows before {} only built the state, not the model: the feature set's windows reach back before the input's first event for them (--keep-partial-windows learns from them too)",
            crate::source::time::rfc3339_ms(full_from)
        );
    }
    if !fitted.label_blind.is_empty() {
        eprintln!(
            "warning: {} features read labels only from payments younger than the label delay ({} d), so never see one: {} (give them a `delay` of the label delay, as the `_delay_7d` features have)",
            fitted.label_blind.len(),
            args.label_delay_days,
            fitted.label_blind.join(", ")
        );
    }
    if !fitted.constant.is_empty() {
        eprintln!(
            "note: {} features never vary over the training window, so the model cannot use them: {}",
            fitted.constant.len(),
            fitted.constant.join(", ")
        );
    }
    println!("settings tried (validation fits' window, then the validation period; the best validation AP wins):");
    println!("| algorithm | depth | learning rate | trees | AUC | AP | fit s |");
    println!("|---|---|---|---|---|---|---|");
    for (k, t) in fitted.trials.iter().enumerate() {
        println!(
            "| {:?}{} | {} | {} | {} | {:.4} | {:.4} | {:.1} |",
            t.algorithm,
            if k == fitted.chosen { " (chosen)" } else { "" },
            t.params.max_depth,
            t.params.learning_rate,
            t.params.trees,
            t.auc,
            t.average_precision,
            t.fit_secs,
        );
    }
    println!(
        "{} ({:?}, {} features) trained on {} rows ({} frauds) in {:.1} s; validation on {} rows: AUC {:.3}, AP {:.3}; written to {}",
        file.name,
        file.algorithm,
        file.features.len(),
        training.rows,
        training.frauds,
        started.elapsed().as_secs_f64(),
        validation.rows,
        validation.auc,
        validation.average_precision,
        args.out.path.display()
    );
    Ok(())
}

/// Runs a backtest and prints its metrics.
pub fn run_backtest(args: BacktestArgs) -> anyhow::Result<()> {
    let opts = BacktestOptions {
        from: args.from,
        to: args.to,
        model: args.model,
        rules: args.rules,
        feature_set: args.feature_set,
        ids: args.ids,
        label_delay_days: args.label_delay_days,
        scores_out: args.scores_out,
        report_dir: args.report_dir.clone(),
        compare_model: args.compare_model,
        compare_rules: args.compare_rules,
        input: args.input.options()?,
    };
    let started = std::time::Instant::now();
    let r = backtest(&args.input.path, &opts, |_| {})?;
    print_report(&r, started.elapsed().as_secs_f64());
    if let Some(dir) = args.report_dir {
        println!("report: {}", dir.display());
    }
    Ok(())
}

fn print_report(r: &BacktestReport, secs: f64) {
    println!(
        "model {} | rules {} | {:.1} s",
        r.model_version, r.rules_version, secs
    );
    println!(
        "replayed {} rows: decoding {:.1} s, engine {:.1} s ({:.0} rows/s single-threaded)",
        r.replayed_rows,
        r.decode_seconds,
        r.engine_seconds,
        r.replayed_rows as f64 / r.engine_seconds.max(1e-9)
    );
    println!("transactions {} ({} fraud)", r.transactions, r.frauds);
    println!("AUC ROC            {:.4}", r.auc);
    println!("Average Precision  {:.4}", r.average_precision);
    println!("Card Precision@100 {:.4}", r.card_precision_at_100);
    println!("{:<8} {:>8} {:>10}", "action", "fraud", "genuine");
    for (action, c) in &r.confusion {
        println!("{action:<8} {:>8} {:>10}", c.fraud, c.legit);
    }
    if !r.by_pattern.is_empty() {
        println!("per fraud pattern, against all genuine payments:");
        println!(
            "{:<8} {:>8} {:>8} {:>8} {:>8}",
            "scenario", "frauds", "alerted", "AUC", "AP"
        );
        for p in &r.by_pattern {
            println!(
                "{:<8} {:>8} {:>8} {:>8.4} {:>8.4}",
                p.scenario, p.frauds, p.alerted, p.auc, p.average_precision
            );
        }
    }
    if let Some(cmp) = &r.comparison {
        println!(
            "\ncompared with {}: AUC {:.4}, AP {:.4}, CP@100 {:.4}",
            cmp.against, cmp.auc, cmp.average_precision, cmp.card_precision_at_100
        );
        for (change, c) in &cmp.changed {
            println!(
                "  {change:<16} fraud {:>6}  genuine {:>8}",
                c.fraud, c.legit
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `fraudstream train` without settings flags trains as `TrainOptions::new`
    /// (what the shipped model's test reproduces).
    #[test]
    fn train_flags_default_to_the_library_defaults() {
        let cli = crate::cli::Cli::try_parse_from([
            "fraudstream",
            "train",
            "--input",
            "t.csv.gz",
            "--train-from",
            "2018-07-25",
            "--train-to",
            "2018-07-31",
            "--out",
            "models/handbook.json",
        ])
        .unwrap();
        let crate::cli::Command::Train(args) = cli.command else {
            panic!("not train")
        };
        let got = train_options(&args);
        let want = TrainOptions::new("handbook", "2018-07-25", "2018-07-31");
        assert_eq!(
            (&got.name, &got.from, &got.to, &got.feature_set),
            (&want.name, &want.from, &want.to, &want.feature_set)
        );
        assert_eq!(
            (got.label_delay_days, got.validation_days),
            (want.label_delay_days, want.validation_days)
        );
        assert_eq!(got.grid, want.grid);
    }
}
