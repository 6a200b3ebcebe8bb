//! Currencies: ISO 4217 codes with their minor units (the `iso_currency`
//! crate), the operator's table of reference rates, and the conversion of every
//! amount into the base currency at event time.
//!
//! The rates file (`config/fx_rates.toml`) quotes, like the ECB's reference
//! rates, how many units of each currency one unit of the base buys:
//! `base_amount = amount / rate`, rounded to the base currency's minor unit.

use crate::text::line_col;
use arc_swap::ArcSwapOption;
use iso_currency::Currency;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// A rates file that cannot be used: where, and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum FxError {
    /// `currency.base` names no currency payments can be in.
    #[error("invalid configuration: currency.base '{0}' is not an ISO 4217 currency code")]
    Base(String),
    /// The file could not be read.
    #[error("{file}: cannot read the rates file: {source}")]
    Io {
        /// File path.
        file: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid rates table.
    #[error("{file}:{line}:{col}: {message}")]
    Invalid {
        /// File path.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// The ISO 4217 currency `code` names, in any letter case (`eur`, `Eur`), if it
/// is a currency payments can be in: one with minor units (not gold, SDRs or the
/// test code). Never allocates: one index into a table of every three-letter code.
#[inline]
pub fn parse_currency(code: &str) -> Option<Currency> {
    let &[a, b, c] = code.as_bytes() else {
        return None;
    };
    let letter = |x: u8| {
        let x = x.to_ascii_uppercase();
        x.is_ascii_uppercase().then(|| usize::from(x - b'A'))
    };
    let index = (letter(a)? * 26 + letter(b)?) * 26 + letter(c)?;
    payment_currencies()[index]
}

/// Every three-letter code (AAA..ZZZ, by index) to its payment currency,
/// built once from `iso_currency`'s table (its lookup compares the code with
/// each currency's in turn).
fn payment_currencies() -> &'static [Option<Currency>; 26 * 26 * 26] {
    static TABLE: std::sync::OnceLock<Box<[Option<Currency>; 26 * 26 * 26]>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Box::new([None; 26 * 26 * 26]);
        for (i, slot) in table.iter_mut().enumerate() {
            let code = [i / 676, i / 26 % 26, i % 26].map(|k| b'A' + k as u8);
            let code = std::str::from_utf8(&code).unwrap_or("");
            *slot = Currency::from_code(code).filter(|c| c.exponent().is_some());
        }
        table
    })
}

/// Digits after the decimal point that amounts in `currency` may have (2 for EUR, 0 for JPY).
pub fn minor_units(currency: Currency) -> u16 {
    currency.exponent().unwrap_or(0)
}

/// Whether `amount` is a whole number of `currency`'s minor units: the `f64`
/// nearest to a decimal with at most that many decimals, as a parsed `"12.34"`
/// is. Exact, with no tolerance: `5000.000000000001` EUR is not (it would pass
/// as a payment above 5000). Amounts of 2^53 minor units or more are not told
/// apart (no `f64` there has a fraction finer than the unit to find), and are
/// far above `processing.max_amount`.
pub fn fits_minor_units(amount: f64, currency: Currency) -> bool {
    let scale = 10f64.powi(i32::from(minor_units(currency)));
    let units = (amount * scale).round();
    // Both are integers below 2^53, exact in f64, so the quotient is correctly
    // rounded: the f64 nearest to the decimal units / 10^k.
    units.abs() >= 9_007_199_254_740_992.0 || units / scale == amount
}

/// Reference rates against one base currency, indexed by ISO 4217 numeric code.
#[derive(Debug, Clone)]
pub struct RateTable {
    base: Currency,
    as_of: Option<i64>,
    /// Units of the currency one base unit buys; NaN where there is no rate.
    per_base: Box<[f64; 1000]>,
    source: String,
}

impl RateTable {
    /// A table that knows only `base` itself (no rates file configured).
    pub fn base_only(base: Currency) -> Self {
        let mut per_base = Box::new([f64::NAN; 1000]);
        per_base[usize::from(base.numeric())] = 1.0;
        Self {
            base,
            as_of: None,
            per_base,
            source: "no rates file configured".into(),
        }
    }

    /// Reads and validates the rates file at `path`, quoted against `base`.
    pub fn load(path: &Path, base: Currency) -> Result<Self, FxError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FxError::Io {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &text, base)
    }

    /// Parses a rates file's `text` (named `file` in errors), quoted against `base`.
    pub fn parse(file: &str, text: &str, base: Currency) -> Result<Self, FxError> {
        let at = |offset: usize, message: String| {
            let (line, col) = line_col(text, offset);
            FxError::Invalid {
                file: file.to_string(),
                line,
                col,
                message,
            }
        };
        let raw: RatesFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().to_string())
        })?;
        let quoted = parse_currency(raw.base.get_ref());
        if quoted != Some(base) {
            return Err(at(
                raw.base.span().start,
                format!(
                    "rates are quoted against '{}', but currency.base is {}; expected base = \"{}\"",
                    raw.base.get_ref(),
                    base.code(),
                    base.code()
                ),
            ));
        }
        let as_of = super::time::parse_date_ms(raw.as_of.get_ref()).ok_or_else(|| {
            at(
                raw.as_of.span().start,
                format!(
                    "as_of '{}' is not a date; expected YYYY-MM-DD",
                    raw.as_of.get_ref()
                ),
            )
        })?;
        let mut table = Self::base_only(base);
        table.as_of = Some(as_of);
        table.source = format!("{file} (as of {})", raw.as_of.get_ref());
        for (code, rate) in &raw.rates {
            let currency = parse_currency(code.get_ref()).ok_or_else(|| {
                at(
                    code.span().start,
                    format!(
                        "'{}' is not an ISO 4217 currency with minor units",
                        code.get_ref()
                    ),
                )
            })?;
            let slot = &mut table.per_base[usize::from(currency.numeric())];
            let r = *rate.get_ref();
            if currency == base {
                if r != 1.0 {
                    return Err(at(
                        rate.span().start,
                        format!("the base currency's rate must be 1, not {r}"),
                    ));
                }
            } else if !slot.is_nan() {
                return Err(at(
                    code.span().start,
                    format!("{} has two rates", currency.code()),
                ));
            }
            if !(r.is_finite() && r > 0.0) {
                return Err(at(
                    rate.span().start,
                    format!(
                        "rate of {} must be a finite number > 0, not {r}",
                        currency.code()
                    ),
                ));
            }
            *slot = r;
        }
        Ok(table)
    }

    /// The base currency.
    pub fn base(&self) -> Currency {
        self.base
    }

    /// Date of the rates (epoch ms at 00:00 UTC), if they came from a file.
    pub fn as_of_ms(&self) -> Option<i64> {
        self.as_of
    }

    /// Where the rates came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Currencies with a rate (the base included).
    pub fn len(&self) -> usize {
        self.per_base.iter().filter(|r| !r.is_nan()).count()
    }

    /// Whether no currency has a rate (never true: the base has one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `amount` of `currency` in the base currency, rounded to the base's minor
    /// unit (half away from zero); `None` when the table has no rate for it.
    #[inline]
    pub fn to_base(&self, amount: f64, currency: Currency) -> Option<f64> {
        if currency == self.base {
            return Some(amount);
        }
        let rate = self.per_base[usize::from(currency.numeric())];
        if rate.is_nan() {
            return None;
        }
        let scale = 10f64.powi(i32::from(minor_units(self.base)));
        Some((amount / rate * scale).round() / scale)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatesFile {
    base: Spanned<String>,
    as_of: Spanned<String>,
    rates: BTreeMap<Spanned<String>, Spanned<f64>>,
}

/// The process's rate table, read by every parse of a payment event. Installed
/// at start by the commands that parse events and swapped on reload; until
/// then only the default base currency (EUR) is known.
static INSTALLED: ArcSwapOption<RateTable> = ArcSwapOption::const_empty();

/// Held by tests that install tables, so that they do not see each other's.
#[cfg(test)]
pub(crate) static TEST_INSTALL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Makes `table` the one every later parse converts with (an atomic swap).
pub fn install(table: Arc<RateTable>) {
    INSTALLED.store(Some(table));
}

/// Runs `f` with the installed rate table (a lock-free load, no allocation).
#[inline]
pub fn with_installed<R>(f: impl FnOnce(&RateTable) -> R) -> R {
    let guard = INSTALLED.load();
    match guard.as_deref() {
        Some(table) => f(table),
        None => f(default_table()),
    }
}

/// The installed rate table (for readers that keep it for a whole file).
pub fn installed() -> Arc<RateTable> {
    INSTALLED
        .load_full()
        .unwrap_or_else(|| default_table().clone())
}

fn default_table() -> &'static Arc<RateTable> {
    static DEFAULT: std::sync::OnceLock<Arc<RateTable>> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(RateTable::base_only(Currency::EUR)))
}

/// The configured rates: the base currency and the file they are read from.
#[derive(Debug, Clone)]
pub struct RatesSource {
    /// Base currency every amount is converted into.
    pub base: Currency,
    /// The rates file; `None` accepts only payments in the base currency.
    pub path: Option<PathBuf>,
}

impl RatesSource {
    /// Where the `[currency]` settings take the rates from; an error if `base`
    /// is not an ISO 4217 code.
    pub fn from_config(c: &crate::config::CurrencyConfig) -> Result<Self, FxError> {
        let base = parse_currency(&c.base).ok_or_else(|| FxError::Base(c.base.clone()))?;
        Ok(Self {
            base,
            path: (!c.rates.is_empty()).then(|| c.rates.clone().into()),
        })
    }

    /// Reads and validates the table (the base alone without a file).
    pub fn load(&self) -> Result<RateTable, FxError> {
        match &self.path {
            Some(p) => RateTable::load(p, self.base),
            None => Ok(RateTable::base_only(self.base)),
        }
    }

    /// [`RatesSource::load`], but a missing file gives the base alone, with a
    /// source that says which file was missing (in every `no_fx_rate` message).
    pub fn load_or_base_only(&self) -> Result<RateTable, FxError> {
        match self.load() {
            Err(FxError::Io { file, source }) if source.kind() == std::io::ErrorKind::NotFound => {
                let cwd = std::env::current_dir().unwrap_or_default();
                let mut table = RateTable::base_only(self.base);
                table.source = format!(
                    "no rates file ({file} not found from {}; set currency.rates or run from the directory that holds it)",
                    cwd.display()
                );
                Ok(table)
            }
            other => other,
        }
    }

    /// Loads the table and installs it; on an error the installed one stays.
    pub fn reload(&self) -> Result<Arc<RateTable>, FxError> {
        let table = Arc::new(self.load()?);
        install(table.clone());
        Ok(table)
    }
}

#[cfg(test)]
mod tests;
