//! Offline jobs over a transactions file, on the live engine: training a model
//! and backtesting rules and models. Both replay through [`crate::offline::replay`].

pub mod backtest;
pub mod parquet;
pub mod replay;
mod report;
pub mod simulate;
pub mod train;
#[cfg(test)]
mod train_warmup_tests;

use crate::offline::replay::parse_date_ms;

/// A day range `[from, to]` in epoch ms: from 00:00 of `from` to the end of `to`.
pub fn day_range(from: &str, to: &str) -> Result<(i64, i64), String> {
    let f = parse_date_ms(from).ok_or_else(|| format!("bad date '{from}', expected YYYY-MM-DD"))?;
    let t = parse_date_ms(to).ok_or_else(|| format!("bad date '{to}', expected YYYY-MM-DD"))?;
    if t < f {
        return Err(format!("'{to}' is before '{from}'"));
    }
    Ok((f, t + 86_400_000))
}
