//! Flags shared by several commands: the transactions file a replay reads
//! (`features`, `train`, `backtest`) and the event contract its rows are held
//! to, the feature set (`features`, `train`), the model file written (`train`,
//! `model import`), and the metrics address (`run`, `demo`).

use crate::offline::replay::{InputOptions, DEFAULT_REORDER_ROWS};
use crate::source::currency::RatesSource;
use crate::source::event::Limits;
use crate::source::handbook::RowContract;
use crate::source::time::now_ms;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

/// The transactions file and how it is read.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Transactions in the handbook's CSV format (`.csv` or `.csv.gz`).
    #[arg(id = "input", long = "input", value_name = "INPUT")]
    pub path: PathBuf,
    /// Skip rows that break the event contract (each reported with its line,
    /// all counted in the summary) instead of failing.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Rows held back to put a file that is out of time order back in order
    /// (about 250 bytes each); a row older than all of them is rejected.
    #[arg(long, default_value_t = DEFAULT_REORDER_ROWS)]
    pub reorder_rows: usize,
}

impl InputArgs {
    /// The replay's input options: the live contract of the configuration in
    /// the working directory (`config/default.toml`, `FRAUDSTREAM__*`), its
    /// rates file (without one, only base-currency rows are accepted), and these flags.
    pub fn options(&self) -> anyhow::Result<InputOptions> {
        let config = crate::config::load(None, figment::Figment::new())?;
        let rates = RatesSource::from_config(&config.currency)?.load_or_base_only()?;
        Ok(InputOptions {
            contract: RowContract {
                limits: Limits::from_config(&config.processing),
                rates: Arc::new(rates),
                now_ms: now_ms(),
            },
            skip_invalid: self.skip_invalid,
            reorder_rows: self.reorder_rows,
            dedup_window: config.processing.dedup_window_events,
        })
    }
}

/// The feature set a command computes.
#[derive(Debug, Args)]
pub struct FeatureSetArgs {
    /// Feature set (built-in name or TOML path); the default is the processor's
    /// default set, so `run` serves a model trained on it with the shipped config.
    #[arg(long, default_value = "default")]
    pub feature_set: String,
}

/// The model file a command writes.
#[derive(Debug, Args)]
pub struct ModelOutArgs {
    /// Model file to write (e.g. models/NAME.json).
    #[arg(id = "out", long = "out", value_name = "OUT")]
    pub path: PathBuf,
    /// Model name (default: the output file's stem).
    #[arg(long)]
    pub name: Option<String>,
}

impl ModelOutArgs {
    /// The model's name: `--name`, or the output file's stem.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().to_string())
        })
    }
}

/// The metrics and health endpoint's address.
#[derive(Debug, Args)]
pub struct MetricsAddrArgs {
    /// Metrics/health address (`metrics.addr`; `demo`'s default is
    /// 127.0.0.1:9464); empty to disable.
    #[arg(long)]
    pub metrics_addr: Option<String>,
}
