//! Reader for transaction files in the handbook's CSV format (optionally
//! gzipped), read with the `csv` crate (byte-order mark, quoted fields, CRLF,
//! columns in any order and any number), each row held to the live event
//! contract ([`PaymentEvent::validate`]).

use super::currency::{installed, RateTable};
use super::event::{
    Amount, CountryCode, CurrencyCode, InvalidEvent, InvalidReason, Limits, Mcc, PaymentEvent,
};
use super::time::{now_ms, parse_naive_datetime_ms, EventTime};
use iso_currency::Currency;
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

/// A problem reading a transactions file.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The header lacks a required column, or names one twice.
    #[error("{path}:1: {message}")]
    BadHeader {
        /// File path.
        path: String,
        /// What is wrong with the header.
        message: String,
    },
    /// A row breaks the event contract; reading can go on with the next row.
    #[error("{path}:{line}: {reason}: {message}")]
    BadRow {
        /// File path.
        path: String,
        /// 1-based line number where the row starts.
        line: u64,
        /// Stable code: an [`InvalidReason`] code, `malformed_row` or `out_of_order`.
        reason: &'static str,
        /// What was wrong, card numbers masked.
        message: String,
    },
}

/// One transaction row, borrowing its text from the reader's record.
#[derive(Debug, Clone, Copy)]
pub struct TxRow<'a> {
    /// `TRANSACTION_ID`.
    pub transaction_id: &'a str,
    /// `TX_DATETIME` as epoch milliseconds (UTC).
    pub ts_ms: i64,
    /// `CUSTOMER_ID`: the account (and the card when there is no `CARD_ID`).
    pub customer_id: &'a str,
    /// `CARD_ID`, if the file has one.
    pub card_id: Option<&'a str>,
    /// `TERMINAL_ID`.
    pub terminal_id: &'a str,
    /// The amount in the base currency (what features and rules' `amount` read).
    pub amount: f64,
    /// `TX_AMOUNT` as written, in `currency`.
    pub original_amount: f64,
    /// `CURRENCY`, or the base currency when the file has none (the handbook).
    pub currency: Currency,
    /// `DEVICE_ID`.
    pub device_id: Option<&'a str>,
    /// `IP`.
    pub ip: Option<&'a str>,
    /// `COUNTRY`, upper-cased.
    pub country: Option<CountryCode>,
    /// `MCC`.
    pub mcc: Option<Mcc>,
    /// `CHANNEL`.
    pub channel: Option<&'a str>,
    /// `TX_FRAUD`.
    pub fraud: bool,
    /// `TX_FRAUD_SCENARIO` (0 when absent).
    pub scenario: u8,
}

impl<'a> TxRow<'a> {
    /// A row of the handbook's columns only: in EUR, no optional fields.
    pub fn new(
        transaction_id: &'a str,
        ts_ms: i64,
        customer_id: &'a str,
        terminal_id: &'a str,
        amount: f64,
        fraud: bool,
    ) -> Self {
        Self {
            transaction_id,
            ts_ms,
            customer_id,
            card_id: None,
            terminal_id,
            amount,
            original_amount: amount,
            currency: Currency::EUR,
            device_id: None,
            ip: None,
            country: None,
            mcc: None,
            channel: None,
            fraud,
            scenario: 0,
        }
    }

    /// The card: `CARD_ID`, or the customer when the file has none.
    pub fn card(&self) -> &str {
        self.card_id.unwrap_or(self.customer_id)
    }
}

/// A [`TxRow`] with its own text, refilled in place (no allocation once its
/// strings have grown to the longest row).
#[derive(Debug, Clone, Default)]
pub struct OwnedTxRow {
    text: [String; 7],
    present: u8,
    ts_ms: i64,
    amount: f64,
    original_amount: f64,
    currency: Option<Currency>,
    country: Option<CountryCode>,
    mcc: Option<Mcc>,
    fraud: bool,
    scenario: u8,
}

impl OwnedTxRow {
    /// A copy of `row`.
    pub fn of(row: &TxRow<'_>) -> Self {
        let mut owned = Self::default();
        owned.fill(row);
        owned
    }

    /// Makes this a copy of `row`.
    pub fn fill(&mut self, row: &TxRow<'_>) {
        let texts = [
            Some(row.transaction_id),
            Some(row.customer_id),
            Some(row.terminal_id),
            row.card_id,
            row.device_id,
            row.ip,
            row.channel,
        ];
        self.present = 0;
        for (k, (to, from)) in self.text.iter_mut().zip(texts).enumerate() {
            to.clear();
            if let Some(from) = from {
                to.push_str(from);
                self.present |= 1 << k;
            }
        }
        (self.ts_ms, self.amount, self.original_amount) =
            (row.ts_ms, row.amount, row.original_amount);
        (self.currency, self.country, self.mcc) = (Some(row.currency), row.country, row.mcc);
        (self.fraud, self.scenario) = (row.fraud, row.scenario);
    }

    /// Event time, epoch ms.
    pub fn ts_ms(&self) -> i64 {
        self.ts_ms
    }

    /// The row, borrowing from this copy.
    pub fn view(&self) -> TxRow<'_> {
        let text = |k: usize| (self.present & (1 << k) != 0).then(|| self.text[k].as_str());
        TxRow {
            transaction_id: &self.text[0],
            ts_ms: self.ts_ms,
            customer_id: &self.text[1],
            terminal_id: &self.text[2],
            card_id: text(3),
            device_id: text(4),
            ip: text(5),
            channel: text(6),
            amount: self.amount,
            original_amount: self.original_amount,
            currency: self.currency.unwrap_or(Currency::EUR),
            country: self.country,
            mcc: self.mcc,
            fraud: self.fraud,
            scenario: self.scenario,
        }
    }
}

/// Columns a transactions file may have, by header name; the first six are required.
const COLUMNS: [&str; 14] = [
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
    "CARD_ID",
    "DEVICE_ID",
    "IP",
    "COUNTRY",
    "MCC",
    "CHANNEL",
    "CURRENCY",
];
const REQUIRED: usize = 6;

/// What rows are checked against: the live limits, the rates and the wall clock.
#[derive(Debug, Clone)]
pub struct RowContract {
    /// The live event limits (`processing.*`).
    pub limits: Limits,
    /// Rates into the base currency; rows without `CURRENCY` are in its base.
    pub rates: Arc<RateTable>,
    /// Wall clock for the future-skew check, epoch ms.
    pub now_ms: i64,
}

impl Default for RowContract {
    /// Default limits, the installed rates, now.
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            rates: installed(),
            now_ms: now_ms(),
        }
    }
}

/// Streams rows of a handbook-format CSV file with one reused record.
pub struct HandbookReader {
    path: String,
    input: csv::Reader<Box<dyn Read>>,
    record: csv::ByteRecord,
    /// Position of each of [`COLUMNS`] in the header.
    cols: [Option<usize>; COLUMNS.len()],
    width: usize,
    contract: RowContract,
}

impl HandbookReader {
    /// Opens `path` (a `.gz` suffix means gzip), checking rows against the default contract.
    pub fn open(path: &Path) -> Result<Self, CsvError> {
        Self::open_with(path, RowContract::default())
    }

    /// Opens `path`, checking rows against `contract`.
    pub fn open_with(path: &Path, contract: RowContract) -> Result<Self, CsvError> {
        let p = path.display().to_string();
        let file = File::open(path).map_err(|source| CsvError::Io {
            path: p.clone(),
            source,
        })?;
        let raw: Box<dyn Read> = if p.ends_with(".gz") {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                1 << 20,
                file,
            )))
        } else {
            Box::new(file)
        };
        let mut input = csv::ReaderBuilder::new()
            .flexible(true)
            .buffer_capacity(1 << 20)
            .from_reader(raw);
        let header = input.byte_headers().map_err(|e| csv_error(&p, e))?.clone();
        let mut cols = [None; COLUMNS.len()];
        for (i, name) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(name);
            let Some(k) = COLUMNS
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name.trim()))
            else {
                continue;
            };
            if cols[k].replace(i).is_some() {
                return Err(CsvError::BadHeader {
                    path: p,
                    message: format!("column '{}' appears twice", COLUMNS[k]),
                });
            }
        }
        if let Some(k) = cols[..REQUIRED].iter().position(Option::is_none) {
            return Err(CsvError::BadHeader {
                path: p,
                message: format!(
                    "header has no column '{}'; required: {}",
                    COLUMNS[k],
                    COLUMNS[..REQUIRED].join(", ")
                ),
            });
        }
        Ok(Self {
            path: p,
            width: header.len(),
            input,
            record: csv::ByteRecord::new(),
            cols,
            contract,
        })
    }

    /// The file's name, as in error messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Line where the last row read starts (1 is the header).
    pub fn line(&self) -> u64 {
        self.record.position().map_or(1, |p| p.line())
    }

    /// Uncompressed bytes read so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.input.position().byte()
    }

    /// The next row, or `None` at the end of the file. A row that breaks the
    /// contract is a [`CsvError::BadRow`], after which reading can go on.
    pub fn next_row(&mut self) -> Result<Option<TxRow<'_>>, CsvError> {
        let more = self
            .input
            .read_byte_record(&mut self.record)
            .map_err(|e| csv_error(&self.path, e))?;
        if !more {
            return Ok(None);
        }
        let line = self.record.position().map_or(0, |p| p.line());
        let bad = |(reason, message): (&'static str, String)| CsvError::BadRow {
            path: self.path.clone(),
            line,
            reason,
            message: super::event::redact_pans(&message),
        };
        if self.record.len() != self.width {
            return Err(bad((
                "malformed_row",
                format!(
                    "expected {} fields, found {}",
                    self.width,
                    self.record.len()
                ),
            )));
        }
        decode(&self.record, &self.cols, &self.contract)
            .map(Some)
            .map_err(bad)
    }
}

fn csv_error(path: &str, e: csv::Error) -> CsvError {
    let path = path.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(source) => CsvError::Io { path, source },
        other => CsvError::Io {
            path,
            source: std::io::Error::other(format!("{other:?}")),
        },
    }
}

type RowProblem = (&'static str, String);

/// Field `k` of [`COLUMNS`] in `record`: `None` when the file has no such column
/// or the field is empty.
fn field<'r>(
    record: &'r csv::ByteRecord,
    cols: &[Option<usize>; COLUMNS.len()],
    k: usize,
) -> Result<Option<&'r str>, RowProblem> {
    let Some(bytes) = cols[k]
        .and_then(|i| record.get(i))
        .filter(|b| !b.is_empty())
    else {
        return Ok(None);
    };
    std::str::from_utf8(bytes).map(Some).map_err(|_| {
        (
            InvalidReason::InvalidUtf8.code(),
            format!("{} is not UTF-8", COLUMNS[k]),
        )
    })
}

/// A row as an event: parsed field by field, then validated as the live parser does.
fn decode<'r>(
    record: &'r csv::ByteRecord,
    cols: &[Option<usize>; COLUMNS.len()],
    contract: &RowContract,
) -> Result<TxRow<'r>, RowProblem> {
    use InvalidReason::*;
    let text = |k| field(record, cols, k);
    let required = |k: usize| -> Result<&'r str, RowProblem> {
        text(k)?.ok_or_else(|| problem(InvalidField, format!("{} is empty", COLUMNS[k])))
    };
    let datetime = required(1)?;
    let ts = parse_naive_datetime_ms(datetime).ok_or_else(|| {
        problem(
            InvalidTimestamp,
            format!("TX_DATETIME '{datetime}' is not a real YYYY-MM-DD HH:MM:SS time"),
        )
    })?;
    let amount_text = required(4)?;
    // The live contract's reading of an amount as text: no exponent, no `+`.
    let amount = Amount::parse_decimal(amount_text)
        .map(|a| a.0)
        .ok_or_else(|| {
            problem(
                InvalidAmount,
                format!("TX_AMOUNT '{amount_text}' is not a decimal number such as 12.34"),
            )
        })?;
    let (fraud, scenario) = label(required(5)?, &text)?;
    let (currency, country, mcc) = codes(&text, contract)?;
    let (id, account, terminal) = (
        text(0)?.unwrap_or(""),
        text(2)?.unwrap_or(""),
        text(3)?.unwrap_or(""),
    );
    let (card_id, device_id, ip, channel) = (text(7)?, text(8)?, text(9)?, text(12)?);
    let mut ev = PaymentEvent {
        event_id: Cow::Borrowed(id),
        ts: EventTime(ts.0),
        account_id: Cow::Borrowed(account),
        card_id: card_id.map(Cow::Borrowed),
        terminal_id: Cow::Borrowed(terminal),
        original_amount: Amount(amount),
        amount: Amount::default(),
        currency,
        device_id: device_id.map(Cow::Borrowed),
        ip: ip.map(Cow::Borrowed),
        country,
        mcc,
        channel: channel.map(Cow::Borrowed),
    };
    ev.validate(&contract.limits, &contract.rates, contract.now_ms)
        .map_err(|e: InvalidEvent| (e.reason.code(), e.detail))?;
    Ok(TxRow {
        transaction_id: id,
        ts_ms: ev.ts.0,
        customer_id: account,
        card_id,
        terminal_id: terminal,
        amount: ev.amount.0,
        original_amount: amount,
        currency: currency.0,
        device_id,
        ip,
        country,
        mcc,
        channel,
        fraud,
        scenario,
    })
}

fn problem(reason: InvalidReason, message: String) -> RowProblem {
    (reason.code(), message)
}

/// TX_FRAUD (given) and TX_FRAUD_SCENARIO (read by `text`): whether the row
/// is fraud, and its pattern (0 without one).
fn label<'r>(
    fraud: &str,
    text: &impl Fn(usize) -> Result<Option<&'r str>, RowProblem>,
) -> Result<(bool, u8), RowProblem> {
    let fraud = match fraud {
        "0" => false,
        "1" => true,
        other => {
            return Err(problem(
                InvalidReason::InvalidField,
                format!("TX_FRAUD '{other}' is not 0 or 1"),
            ))
        }
    };
    let scenario = match text(6)? {
        None => 0,
        Some(s) => s.parse().map_err(|_| {
            problem(
                InvalidReason::InvalidField,
                format!("TX_FRAUD_SCENARIO '{s}' is not a small number"),
            )
        })?,
    };
    Ok((fraud, scenario))
}

/// CURRENCY (the base currency when empty), COUNTRY and MCC, read by `text`.
fn codes<'r>(
    text: &impl Fn(usize) -> Result<Option<&'r str>, RowProblem>,
    contract: &RowContract,
) -> Result<(CurrencyCode, Option<CountryCode>, Option<Mcc>), RowProblem> {
    use InvalidReason::*;
    let currency = match text(13)? {
        None => CurrencyCode(contract.rates.base()),
        Some(c) => CurrencyCode::parse(c).map_err(|e| (e.reason.code(), e.detail))?,
    };
    let country = match text(10)? {
        None => None,
        Some(c) => Some(CountryCode::parse(c).ok_or_else(|| {
            problem(
                InvalidField,
                format!("COUNTRY '{c}' is not a 2- or 3-letter code"),
            )
        })?),
    };
    let mcc = match text(11)? {
        None => None,
        Some(m) => Some(
            m.parse::<u16>()
                .ok()
                .filter(|&v| v <= 9999 && m.len() <= 4)
                .map(Mcc)
                .ok_or_else(|| problem(WrongType, format!("MCC '{m}' is not a 4-digit code")))?,
        ),
    };
    Ok((currency, country, mcc))
}

#[cfg(test)]
mod tests;
