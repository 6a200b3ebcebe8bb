//! `fraudstream train`, `fraudstream backtest` and `fraudstream model import`.

use crate::features::load_feature_set;
use crate::model::gbt::GbtParams;
use crate::model::import::{import, Library};
use crate::model::trees::Missing;
use crate::model::{Algorithm, Model};
use crate::offline::backtest::{backtest, BacktestOptions, BacktestReport};
use crate::offline::train::{train, TrainOptions};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Flags of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Transactions in the handbook's CSV format (`.csv` or `.csv.gz`).
    #[arg(long)]
    pub input: PathBuf,
    /// First training day (YYYY-MM-DD).
    #[arg(long)]
    pub train_from: String,
    /// Last training day (inclusive).
    #[arg(long)]
    pub train_to: String,
    /// Feature set (built-in name or TOML path); the default is the processor's
    /// default set, so `run` serves the model with the shipped config.
    #[arg(long, default_value = "default")]
    pub feature_set: String,
    /// Learning algorithm.
    #[arg(long, value_enum, default_value = "gbt")]
    pub algorithm: Algorithm,
    /// Days after which labels are known to the feature engine.
    #[arg(long, default_value_t = 7)]
    pub label_delay_days: u32,
    /// Model file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Model name (default: the output file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// Trees (gbt).
    #[arg(long, default_value_t = GbtParams::default().trees)]
    pub trees: usize,
    /// Maximum tree depth (gbt).
    #[arg(long, default_value_t = GbtParams::default().max_depth)]
    pub max_depth: usize,
    /// Learning rate (gbt).
    #[arg(long, default_value_t = GbtParams::default().learning_rate)]
    pub learning_rate: f64,
    /// Minimum hessian in a leaf (gbt).
    #[arg(long, default_value_t = GbtParams::default().min_child_weight)]
    pub min_child_weight: f64,
    /// How the input is read.
    #[command(flatten)]
    pub input_args: super::input::InputArgs,
}

/// Flags of `backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Transactions in the handbook's CSV format.
    #[arg(long)]
    pub input: PathBuf,
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
    /// Only transactions listed here count (CSV with TRANSACTION_ID first).
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
    /// How the input is read.
    #[command(flatten)]
    pub input_args: super::input::InputArgs,
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
    /// Model file to write (e.g. models/NAME.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Model name (default: the output file's stem).
    #[arg(long)]
    pub name: Option<String>,
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
    let name = args.name.clone().unwrap_or_else(|| stem(&args.out));
    let file = import(args.library, &args.file, &set, &name)?.save(&args.out)?;
    let model = Model::load(&args.out, &set)?;
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
        args.out.display()
    );
    Ok(())
}

fn stem(path: &std::path::Path) -> String {
    path.file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().to_string())
}

/// Trains and writes a model.
pub fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let name = args.name.clone().unwrap_or_else(|| stem(&args.out));
    let opts = TrainOptions {
        name,
        from: args.train_from,
        to: args.train_to,
        feature_set: args.feature_set,
        algorithm: args.algorithm,
        label_delay_days: args.label_delay_days,
        validation_share: 0.25,
        gbt: GbtParams {
            trees: args.trees,
            max_depth: args.max_depth,
            learning_rate: args.learning_rate,
            min_child_weight: args.min_child_weight,
            ..GbtParams::default()
        },
        input: args.input_args.options()?,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} training [{bar:40}] {pos}/{len} {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    eprintln!(
        "replaying {} through the feature engine...",
        args.input.display()
    );
    let started = std::time::Instant::now();
    let file = train(&args.input, &args.out, &opts, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let (Some(training), Some(validation)) = (&file.training, &file.validation) else {
        anyhow::bail!("the trainer wrote no training or validation summary");
    };
    println!(
        "{} ({:?}, {} features) trained on {} rows ({} frauds) in {:.1} s; validation on the last {} rows: AUC {:.3}, AP {:.3}; written to {}",
        file.name,
        file.algorithm,
        file.features.len(),
        training.rows,
        training.frauds,
        started.elapsed().as_secs_f64(),
        validation.rows,
        validation.auc,
        validation.average_precision,
        args.out.display()
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
        input: args.input_args.options()?,
    };
    let started = std::time::Instant::now();
    let r = backtest(&args.input, &opts, |_| {})?;
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
