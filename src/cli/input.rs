//! Flags shared by the commands that replay a transactions file (`features`,
//! `train`, `backtest`), and the event contract their rows are held to.

use crate::replay::{InputOptions, DEFAULT_REORDER_ROWS};
use crate::source::currency::RatesSource;
use crate::source::event::Limits;
use crate::source::handbook::RowContract;
use crate::source::time::now_ms;
use clap::Args;
use std::sync::Arc;

/// How the transactions file is read.
#[derive(Debug, Args)]
pub struct InputArgs {
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
        })
    }
}
