//! Currencies: ISO 4217 codes with their minor units (the `iso_currency`
//! crate), the operator's table of reference rates, and the conversion of every
//! amount into the base currency at event time.
//!
//! The rates file (`config/fx_rates.toml`) quotes, like the ECB's reference
//! rates, how many units of each currency one unit of the base buys:
//! `base_amount = amount / rate`, rounded to the base currency's minor unit.
//! Each rate is kept as the exact decimal written in the file and the quotient
//! is computed in integers, so it is rounded once, from its exact value.

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

/// A rate as the exact decimal the file wrote: `digits / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate {
    /// Significant digits; 0 where there is no rate.
    digits: u64,
    /// Decimals, at most [`MAX_RATE_SCALE`].
    scale: u32,
}

impl Rate {
    /// The nearest `f64` (for amounts beyond the exact range).
    fn as_f64(self) -> f64 {
        self.digits as f64 / 10f64.powi(self.scale as i32)
    }
}

/// Most decimals a rate may have (so that every quotient fits in a `u128`).
const MAX_RATE_SCALE: u32 = 18;

const NO_RATE: Rate = Rate {
    digits: 0,
    scale: 0,
};

const ONE: Rate = Rate {
    digits: 1,
    scale: 0,
};

/// The exact value of a TOML number's text (`1.1172`, `136`, `1_000.5`,
/// `5e-3`, `+0.8338`), if it is a decimal with at most 19 significant digits
/// and [`MAX_RATE_SCALE`] decimals; `None` for anything else (`inf`, `nan`,
/// a sign of minus, more digits).
fn exact_rate(text: &str) -> Option<Rate> {
    let text = text.strip_prefix('+').unwrap_or(text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (
            &text[..i],
            text[i + 1..].replace('_', "").parse::<i32>().ok()?,
        ),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: u64 = 0;
    let mut scale = -i64::from(exponent);
    for (part, counts) in [(int, false), (frac, true)] {
        for b in part.bytes().filter(|&b| b != b'_') {
            if !b.is_ascii_digit() {
                return None;
            }
            digits = digits.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            scale += i64::from(counts);
        }
    }
    while scale > 0 && digits != 0 && digits.is_multiple_of(10) {
        digits /= 10;
        scale -= 1;
    }
    while scale < 0 {
        digits = digits.checked_mul(10)?;
        scale += 1;
    }
    let scale = u32::try_from(scale).ok().filter(|&s| s <= MAX_RATE_SCALE)?;
    Some(Rate { digits, scale })
}

/// `num / den` rounded half away from zero (`den` > 0).
#[inline]
fn div_round_half_away(num: u128, den: u128) -> u128 {
    let (q, r) = (num / den, num % den);
    q + u128::from(r >= den - r)
}

/// Reference rates against one base currency, indexed by ISO 4217 numeric code.
#[derive(Debug, Clone)]
pub struct RateTable {
    base: Currency,
    as_of: Option<i64>,
    /// Units of the currency one base unit buys, exactly as written.
    per_base: Box<[Rate; 1000]>,
    source: String,
}

impl RateTable {
    /// A table that knows only `base` itself (no rates file configured).
    pub fn base_only(base: Currency) -> Self {
        let mut per_base = Box::new([NO_RATE; 1000]);
        per_base[usize::from(base.numeric())] = ONE;
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
            let r = *rate.get_ref();
            if !(r.is_finite() && r > 0.0) {
                return Err(at(
                    rate.span().start,
                    format!(
                        "rate of {} must be a finite number > 0, not {r}",
                        currency.code()
                    ),
                ));
            }
            let exact = exact_rate(&text[rate.span()])
                .filter(|e| e.digits > 0)
                .ok_or_else(|| {
                    at(
                        rate.span().start,
                        format!(
                            "rate of {} is {}; expected a decimal with at most 19 significant digits and {MAX_RATE_SCALE} decimals",
                            currency.code(),
                            &text[rate.span()]
                        ),
                    )
                })?;
            let slot = &mut table.per_base[usize::from(currency.numeric())];
            if currency == base {
                if exact != ONE {
                    return Err(at(
                        rate.span().start,
                        format!("the base currency's rate must be 1, not {r}"),
                    ));
                }
            } else if *slot != NO_RATE {
                return Err(at(
                    code.span().start,
                    format!("{} has two rates", currency.code()),
                ));
            }
            *slot = exact;
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
        self.per_base.iter().filter(|r| **r != NO_RATE).count()
    }

    /// Whether no currency has a rate (never true: the base has one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `amount` of `currency` in the base currency, rounded to the base's minor
    /// unit (half away from zero); `None` when the table has no rate for it.
    ///
    /// Exact: the amount's minor units (the amount is first rounded to them)
    /// times the rate's decimal, divided in integers and rounded once, so the
    /// result is the exact quotient rounded. Amounts or results of 2^53 minor
    /// units or more (no `f64` there tells minor units apart, and all are far
    /// above `processing.max_amount`) are only as close as an `f64` can be.
    /// Never allocates.
    #[inline]
    pub fn to_base(&self, amount: f64, currency: Currency) -> Option<f64> {
        if currency == self.base {
            return Some(amount);
        }
        let rate = self.per_base[usize::from(currency.numeric())];
        if rate == NO_RATE {
            return None;
        }
        let base_scale = 10f64.powi(i32::from(minor_units(self.base)));
        let units = match self.exact_quotient(amount, currency, rate) {
            Some(units) => units,
            None => (amount / rate.as_f64() * base_scale).round(),
        };
        Some(units / base_scale)
    }

    /// `amount / rate` in the base's minor units (a whole number), computed
    /// in integers; `None` when the amount is 2^53 minor units or more.
    #[inline]
    fn exact_quotient(&self, amount: f64, currency: Currency, rate: Rate) -> Option<f64> {
        const EXACT: f64 = 9_007_199_254_740_992.0;
        let from = u32::from(minor_units(currency));
        let units = (amount.abs() * 10f64.powi(from as i32)).round();
        if units.is_nan() || units >= EXACT {
            return None;
        }
        // amount / rate * 10^to = units * 10^(to + scale - from) / digits.
        let shift = i64::from(minor_units(self.base)) + i64::from(rate.scale) - i64::from(from);
        let ten = |e: i64| 10u128.checked_pow(u32::try_from(e).ok()?);
        let (num, den) = if shift >= 0 {
            (
                (units as u128).checked_mul(ten(shift)?)?,
                u128::from(rate.digits),
            )
        } else {
            (
                units as u128,
                u128::from(rate.digits).checked_mul(ten(-shift)?)?,
            )
        };
        let q = div_round_half_away(num, den) as f64;
        Some(if amount < 0.0 { -q } else { q })
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
