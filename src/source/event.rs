//! The payment event: the input contract, parsed without allocation and validated.

use super::currency::{fits_minor_units, minor_units, parse_currency, with_installed, RateTable};
use super::time::{now_ms, rfc3339_ms, EventTime, IN_SECONDS};
use iso_currency::Currency;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Version of the payment event contract (`config/payment-event.schema.json`).
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// Longest accepted identifier or string field, in bytes.
pub const MAX_FIELD_LEN: usize = 256;

/// A payment event as it arrives on the input topic. Strings borrow from the
/// message bytes unless they contain JSON escapes; unknown fields are skipped.
#[derive(Debug, Deserialize)]
pub struct PaymentEvent<'a> {
    /// Unique id of the payment, echoed in the decision.
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    /// Event time: RFC 3339 string or epoch milliseconds.
    pub ts: EventTime,
    /// Account (customer) id; also the message key.
    #[serde(borrow)]
    pub account_id: Cow<'a, str>,
    /// Card id; defaults to the account.
    #[serde(borrow, default)]
    pub card_id: Option<Cow<'a, str>>,
    /// Merchant terminal id.
    #[serde(borrow)]
    pub terminal_id: Cow<'a, str>,
    /// Amount in major units of `currency` as sent (JSON `amount`); finite,
    /// >= 0, with no more decimals than the currency's minor units.
    #[serde(rename = "amount")]
    pub original_amount: Amount,
    /// The amount in the base currency, converted at event time by the parser
    /// (what features, rules' `amount` and models read).
    #[serde(skip)]
    pub amount: Amount,
    /// ISO 4217 currency of `original_amount`, in any letter case on input.
    pub currency: CurrencyCode,
    /// Device fingerprint, if known.
    #[serde(borrow, default)]
    pub device_id: Option<Cow<'a, str>>,
    /// Client IP address, if known.
    #[serde(borrow, default)]
    pub ip: Option<Cow<'a, str>>,
    /// ISO 3166 country of the payment (2 or 3 letters, any case on input), if known.
    #[serde(default)]
    pub country: Option<CountryCode>,
    /// Merchant category code, as a number or numeric string.
    #[serde(default)]
    pub mcc: Option<Mcc>,
    /// Channel such as `pos`, `ecom`, `atm`.
    #[serde(borrow, default)]
    pub channel: Option<Cow<'a, str>>,
}

impl PaymentEvent<'_> {
    /// The card id, or the account id when the event has none.
    pub fn card(&self) -> &str {
        self.card_id.as_deref().unwrap_or(&self.account_id)
    }
}

/// A payment amount, accepted as a JSON number or a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Amount(pub f64);

/// Start of the message of a currency that is not ISO 4217 (the parser classifies errors by it).
const NOT_ISO_4217: &str = "currency is not an ISO 4217 code";

/// An ISO 4217 currency with minor units, upper-cased on input (`eur` is EUR).
/// Reads as its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyCode(pub Currency);

impl CurrencyCode {
    /// The currency `text` names, in any letter case.
    pub fn parse(text: &str) -> Result<Self, InvalidEvent> {
        parse_currency(text).map(Self).ok_or_else(|| {
            InvalidEvent::new(
                InvalidReason::InvalidCurrency,
                format!("{NOT_ISO_4217} with minor units: {}", quoted(text)),
            )
        })
    }
}

impl std::ops::Deref for CurrencyCode {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.code()
    }
}

impl<'de> Deserialize<'de> for CurrencyCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CurrencyCode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a three-letter currency code")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CurrencyCode, E> {
                CurrencyCode::parse(v).map_err(|e| E::custom(e.detail))
            }
        }
        d.deserialize_str(V)
    }
}

/// A country code (ISO 3166-1 alpha-2 or alpha-3 shape: 2 or 3 ASCII letters),
/// upper-cased on input without allocating. Reads as the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountryCode {
    bytes: [u8; 3],
    len: u8,
}

impl CountryCode {
    /// The code in `text`, upper-cased; `None` unless 2 or 3 ASCII letters.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if !(2..=3).contains(&b.len()) || !b.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        let mut bytes = [0; 3];
        for (to, from) in bytes.iter_mut().zip(b) {
            *to = from.to_ascii_uppercase();
        }
        Some(Self {
            bytes,
            len: b.len() as u8,
        })
    }
}

impl std::ops::Deref for CountryCode {
    type Target = str;
    fn deref(&self) -> &str {
        // ASCII letters only (checked in `parse`), so always UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

/// Start of the message of a malformed country (the parser classifies errors by it).
const NOT_A_COUNTRY: &str = "country must be an ISO 3166 code";

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CountryCode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a country code")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CountryCode, E> {
                CountryCode::parse(v).ok_or_else(|| {
                    E::custom(format!(
                        "{NOT_A_COUNTRY} (2 or 3 letters), not {}",
                        quoted(v)
                    ))
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal amount")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
                Ok(Amount(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                Ok(Amount(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                Amount::parse_decimal(v)
                    .ok_or_else(|| E::custom("amount string is not a decimal number"))
            }
        }
        d.deserialize_any(V)
    }
}

impl Amount {
    /// An amount written as text (a JSON string, a CSV field): a plain decimal
    /// such as `12.34`, at most 32 bytes; no exponent, sign `+`, spaces or
    /// thousands separators. Live and replayed input read text with this alone.
    pub fn parse_decimal(text: &str) -> Option<Amount> {
        let plain = !text.is_empty()
            && text.len() <= 32
            && text
                .bytes()
                .all(|c| c.is_ascii_digit() || c == b'.' || c == b'-');
        plain.then(|| text.parse().ok().map(Amount)).flatten()
    }
}

/// `text` in quotes for an error message, or its length when too long to show.
fn quoted(text: &str) -> String {
    if text.len() <= 16 {
        format!("'{text}'")
    } else {
        format!("a text of {} bytes", text.len())
    }
}

/// A merchant category code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mcc(pub u16);

/// Every code's digits, four each, for [`Mcc::as_str`].
static MCC_DIGITS: [[u8; 4]; 10_000] = {
    let mut t = [[0u8; 4]; 10_000];
    let mut i = 0;
    while i < 10_000 {
        let n = i as u16;
        t[i] = [
            b'0' + (n / 1000) as u8,
            b'0' + (n / 100 % 10) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ];
        i += 1;
    }
    t
};

impl Mcc {
    /// The code as rules compare it: its digits without leading zeros (`742`,
    /// `5411`); empty for a value over 9999, which parsing never yields.
    pub fn as_str(self) -> &'static str {
        let Some(digits) = MCC_DIGITS.get(usize::from(self.0)) else {
            return "";
        };
        let zeros = digits[..3].iter().take_while(|&&d| d == b'0').count();
        // ASCII digits only, so always UTF-8.
        std::str::from_utf8(&digits[zeros..]).unwrap_or("")
    }
}

impl<'de> Deserialize<'de> for Mcc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Mcc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a 4-digit merchant category code")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Mcc, E> {
                u16::try_from(v)
                    .ok()
                    .filter(|v| *v <= 9999)
                    .map(Mcc)
                    .ok_or_else(|| E::custom("mcc out of range"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Mcc, E> {
                self.visit_u64(u64::try_from(v).map_err(|_| E::custom("mcc out of range"))?)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Mcc, E> {
                match v.parse::<u64>() {
                    Ok(n) if v.len() <= 4 => self.visit_u64(n),
                    _ => Err(E::custom("mcc is not a number")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Why an input message was rejected; the label value of the invalid-events metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// Larger than `max_message_bytes`.
    Oversized,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Not a JSON document (syntax error, truncated, too deeply nested).
    InvalidJson,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type or an unparsable value.
    WrongType,
    /// Amount is not finite, negative, finer than the currency's minor units,
    /// or above the configured maximum.
    InvalidAmount,
    /// Timestamp is unparsable or before 1970.
    InvalidTimestamp,
    /// Timestamp is further in the future than the allowed clock skew.
    FutureTimestamp,
    /// A string field is empty, too long, or (country) not a 2- or 3-letter code.
    InvalidField,
    /// `currency` is not an ISO 4217 code of a currency with minor units.
    InvalidCurrency,
    /// The rates table has no rate for the payment's currency.
    NoFxRate,
    /// A numeric `ts` of 10 or 11 digits: epoch seconds where milliseconds are expected.
    TimestampInSeconds,
    /// Event time before `processing.min_event_time`.
    TimestampBeforeMin,
}

impl InvalidReason {
    /// Every reason, for pre-registering metric label values.
    pub const ALL: [InvalidReason; 13] = [
        Self::Oversized,
        Self::InvalidUtf8,
        Self::InvalidJson,
        Self::MissingField,
        Self::WrongType,
        Self::InvalidAmount,
        Self::InvalidTimestamp,
        Self::FutureTimestamp,
        Self::InvalidField,
        Self::InvalidCurrency,
        Self::NoFxRate,
        Self::TimestampInSeconds,
        Self::TimestampBeforeMin,
    ];

    /// Position in [`InvalidReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable snake_case code, used in DLQ headers and metric labels.
    pub fn code(self) -> &'static str {
        match self {
            Self::Oversized => "oversized",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::InvalidJson => "invalid_json",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::InvalidAmount => "invalid_amount",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::FutureTimestamp => "future_timestamp",
            Self::InvalidField => "invalid_field",
            Self::InvalidCurrency => "invalid_currency",
            Self::NoFxRate => "no_fx_rate",
            Self::TimestampInSeconds => "timestamp_in_seconds",
            Self::TimestampBeforeMin => "timestamp_before_min",
        }
    }
}

/// A rejected message: the reason code and a human-readable, PAN-free detail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {detail}", reason.code())]
pub struct InvalidEvent {
    /// Classification of the problem.
    pub reason: InvalidReason,
    /// What was wrong, with any card-number-like digits masked.
    pub detail: String,
}

impl InvalidEvent {
    /// A rejection for `reason`; card numbers in `detail` are masked.
    pub fn new(reason: InvalidReason, detail: impl AsRef<str>) -> Self {
        Self {
            reason,
            detail: redact_pans(detail.as_ref()),
        }
    }
}

/// Limits applied when validating events.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted message in bytes.
    pub max_message_bytes: usize,
    /// Largest accepted amount, in the base currency.
    pub max_amount: f64,
    /// How far in the future an event time may be, in milliseconds.
    pub max_future_skew_ms: i64,
    /// Earliest accepted event time, epoch ms (`processing.min_event_time`).
    pub min_event_time_ms: i64,
}

/// Latest accepted event time, epoch ms: 2106-02-07T06:28:15.999Z, the last
/// second a `u32` of epoch seconds (the state's entries) holds.
pub const MAX_EVENT_TIME_MS: i64 = u32::MAX as i64 * 1000 + 999;

/// Default of `processing.min_event_time`: 2000-01-01T00:00:00Z.
pub const DEFAULT_MIN_EVENT_TIME_MS: i64 = 946_684_800_000;

impl Limits {
    /// The input validation limits the `[processing]` settings describe.
    pub fn from_config(p: &crate::config::ProcessingConfig) -> Self {
        Self {
            max_message_bytes: p.max_message_bytes,
            max_amount: p.max_amount,
            max_future_skew_ms: p.max_future_skew_secs.saturating_mul(1000),
            // Checked by `load`; the default only for a config built in code.
            min_event_time_ms: p.min_event_time_ms().unwrap_or(DEFAULT_MIN_EVENT_TIME_MS),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_amount: 1.0e9,
            max_future_skew_ms: 3_600_000,
            min_event_time_ms: DEFAULT_MIN_EVENT_TIME_MS,
        }
    }
}

/// Parses and validates one message payload. Never panics on any input.
pub fn parse_event<'a>(
    payload: &'a [u8],
    limits: &Limits,
) -> Result<PaymentEvent<'a>, InvalidEvent> {
    parse_event_at(payload, limits, now_ms())
}

/// [`parse_event`] with an injected wall clock (for tests and replays).
pub fn parse_event_at<'a>(
    payload: &'a [u8],
    limits: &Limits,
    now_ms: i64,
) -> Result<PaymentEvent<'a>, InvalidEvent> {
    with_installed(|rates| parse_event_with(payload, limits, rates, now_ms))
}

/// [`parse_event_at`] converting with `rates` instead of the installed table.
pub fn parse_event_with<'a>(
    payload: &'a [u8],
    limits: &Limits,
    rates: &RateTable,
    now_ms: i64,
) -> Result<PaymentEvent<'a>, InvalidEvent> {
    use InvalidReason::*;
    if payload.len() > limits.max_message_bytes {
        return Err(InvalidEvent::new(
            Oversized,
            format!(
                "message is {} bytes, limit {}",
                payload.len(),
                limits.max_message_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(payload).map_err(|e| {
        InvalidEvent::new(
            InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let mut ev: PaymentEvent<'a> =
        serde_json::from_str(text).map_err(|e| classify_json_error(e, text))?;
    ev.validate(limits, rates, now_ms)?;
    Ok(ev)
}

fn classify_json_error(e: serde_json::Error, text: &str) -> InvalidEvent {
    use serde_json::error::Category;
    let msg = e.to_string();
    let reason = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => InvalidReason::InvalidJson,
        // A value is checked as soon as it is read: in a truncated message the
        // last value read may be cut (a 13-digit time cut to 10 digits). Not
        // being JSON comes first.
        Category::Data if serde_json::from_str::<de::IgnoredAny>(text).is_err() => {
            InvalidReason::InvalidJson
        }
        Category::Data if msg.starts_with("missing field") => InvalidReason::MissingField,
        Category::Data if msg.starts_with(IN_SECONDS) => InvalidReason::TimestampInSeconds,
        Category::Data if msg.starts_with(NOT_ISO_4217) => InvalidReason::InvalidCurrency,
        Category::Data if msg.starts_with(NOT_A_COUNTRY) => InvalidReason::InvalidField,
        Category::Data if msg.contains("timestamp") => InvalidReason::InvalidTimestamp,
        Category::Data if msg.contains("amount") => InvalidReason::InvalidAmount,
        Category::Data => InvalidReason::WrongType,
    };
    InvalidEvent::new(reason, msg)
}

impl PaymentEvent<'_> {
    /// Checks the event against the contract (live and replay alike) and sets
    /// `amount` to `original_amount` in the base currency of `rates`.
    pub fn validate(
        &mut self,
        limits: &Limits,
        rates: &RateTable,
        now_ms: i64,
    ) -> Result<(), InvalidEvent> {
        self.amount = Amount(check_amount(
            self.original_amount.0,
            self.currency.0,
            limits,
            rates,
        )?);
        check_time(self.ts.0, limits, now_ms)?;
        let required = [
            ("event_id", Some(&self.event_id)),
            ("account_id", Some(&self.account_id)),
            ("terminal_id", Some(&self.terminal_id)),
        ];
        for (name, value) in required {
            check_str(name, value, false)?;
        }
        let optional = [
            ("card_id", self.card_id.as_ref()),
            ("device_id", self.device_id.as_ref()),
            ("ip", self.ip.as_ref()),
            ("channel", self.channel.as_ref()),
        ];
        for (name, value) in optional {
            check_str(name, value, true)?;
        }
        Ok(())
    }
}

/// The amount in the base currency, if `amount` of `currency` is a valid payment amount.
fn check_amount(
    amount: f64,
    currency: Currency,
    limits: &Limits,
    rates: &RateTable,
) -> Result<f64, InvalidEvent> {
    use InvalidReason::*;
    // Zero is a payment: card networks' account-verification authorizations,
    // which card testers use (the handbook has 42). Negative amounts are refunds,
    // not payments.
    if !amount.is_finite() || amount < 0.0 {
        return Err(InvalidEvent::new(
            InvalidAmount,
            "amount must be a finite number >= 0",
        ));
    }
    if !fits_minor_units(amount, currency) {
        return Err(InvalidEvent::new(
            InvalidAmount,
            format!(
                "amount has more decimals than the {} minor units of {}",
                minor_units(currency),
                currency.code()
            ),
        ));
    }
    let base = rates.to_base(amount, currency).ok_or_else(|| {
        InvalidEvent::new(
            NoFxRate,
            format!(
                "no rate for {} into {} in {}",
                currency.code(),
                rates.base().code(),
                rates.source()
            ),
        )
    })?;
    if base > limits.max_amount {
        return Err(InvalidEvent::new(
            InvalidAmount,
            format!(
                "amount is {base} {} after conversion, above processing.max_amount {}",
                rates.base().code(),
                limits.max_amount
            ),
        ));
    }
    Ok(base)
}

/// Checks an event time against the floor and the wall clock.
fn check_time(ts_ms: i64, limits: &Limits, now_ms: i64) -> Result<(), InvalidEvent> {
    use InvalidReason::*;
    if ts_ms < 0 {
        return Err(InvalidEvent::new(InvalidTimestamp, "timestamp before 1970"));
    }
    if ts_ms < limits.min_event_time_ms {
        return Err(InvalidEvent::new(
            TimestampBeforeMin,
            format!(
                "event time {} is before processing.min_event_time {}",
                rfc3339_ms(ts_ms),
                rfc3339_ms(limits.min_event_time_ms)
            ),
        ));
    }
    if ts_ms > now_ms.saturating_add(limits.max_future_skew_ms) {
        return Err(InvalidEvent::new(
            FutureTimestamp,
            format!("timestamp is {} s in the future", (ts_ms - now_ms) / 1000),
        ));
    }
    // Reached only with a clock far ahead (`rules test` accepts any date):
    // the state keeps whole seconds in a u32.
    if ts_ms > MAX_EVENT_TIME_MS {
        return Err(InvalidEvent::new(
            InvalidTimestamp,
            format!(
                "event time {} is after {}, the latest the state holds (microseconds or nanoseconds where milliseconds are expected?)",
                rfc3339_ms(ts_ms),
                rfc3339_ms(MAX_EVENT_TIME_MS)
            ),
        ));
    }
    Ok(())
}

fn check_str(name: &str, value: Option<&Cow<'_, str>>, optional: bool) -> Result<(), InvalidEvent> {
    match value {
        None if optional => Ok(()),
        Some(v) if !v.is_empty() && v.len() <= MAX_FIELD_LEN => Ok(()),
        Some(v) if v.is_empty() => Err(InvalidEvent::new(
            InvalidReason::InvalidField,
            format!("{name} is empty"),
        )),
        _ => Err(InvalidEvent::new(
            InvalidReason::InvalidField,
            format!("{name} is longer than {MAX_FIELD_LEN} bytes"),
        )),
    }
}

/// Masks every digit run that can be a card number: 13 to 19 digits (single
/// spaces or dashes between them allowed) that pass the Luhn check, and any
/// longer run with such a stretch inside (a card number glued to other
/// digits). Other numbers (amounts, offsets, timestamps) stay readable.
pub fn redact_pans(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut digits = [0u8; 64];
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            let ch = text[i..].chars().next().unwrap_or('?');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        // Extend over digits and single separators between digits.
        let (start, mut j, mut end, mut n) = (i, i, i, 0usize);
        while j < b.len() {
            if b[j].is_ascii_digit() {
                if n < digits.len() {
                    digits[n] = b[j] - b'0';
                }
                n += 1;
                j += 1;
                end = j;
            } else if (b[j] == b' ' || b[j] == b'-') && j + 1 < b.len() && b[j + 1].is_ascii_digit()
            {
                j += 1;
            } else {
                break;
            }
        }
        if can_be_card_number(&digits[..n.min(digits.len())], n) {
            out.push_str("[REDACTED]");
        } else {
            out.push_str(&text[start..end]);
        }
        i = end;
    }
    out
}

/// Whether a run of `n` digits (the first 64 in `digits`) is, or holds, a
/// 13..=19 digit number that passes the Luhn check.
fn can_be_card_number(digits: &[u8], n: usize) -> bool {
    match n {
        0..=12 => false,
        13..=19 => luhn(digits),
        // Too long to inspect stretch by stretch: mask, it is no ordinary number.
        _ if n > digits.len() => true,
        _ => (13..=19).any(|len| digits.windows(len).any(luhn)),
    }
}

/// The Luhn (mod 10) check of a card number's digits.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let d = u32::from(d);
            if k % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests;
