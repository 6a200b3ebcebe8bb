//! The payment event: the input contract, parsed without allocation and validated.

use super::time::{now_ms, EventTime};
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
    /// Amount in major units of `currency`; must be finite and > 0.
    pub amount: Amount,
    /// ISO 4217 currency code, three upper-case letters.
    #[serde(borrow)]
    pub currency: Cow<'a, str>,
    /// Device fingerprint, if known.
    #[serde(borrow, default)]
    pub device_id: Option<Cow<'a, str>>,
    /// Client IP address, if known.
    #[serde(borrow, default)]
    pub ip: Option<Cow<'a, str>>,
    /// ISO 3166 country of the payment, if known.
    #[serde(borrow, default)]
    pub country: Option<Cow<'a, str>>,
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amount(pub f64);

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
                let ok = !v.is_empty()
                    && v.len() <= 32
                    && v.bytes()
                        .all(|c| c.is_ascii_digit() || c == b'.' || c == b'-');
                match v.parse::<f64>() {
                    Ok(a) if ok => Ok(Amount(a)),
                    _ => Err(E::custom("amount string is not a decimal number")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A merchant category code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mcc(pub u16);

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
    /// Amount is not finite, not > 0, or above the configured maximum.
    InvalidAmount,
    /// Timestamp is unparsable or before 1970.
    InvalidTimestamp,
    /// Timestamp is further in the future than the allowed clock skew.
    FutureTimestamp,
    /// A string field is empty, too long, or (currency) not ISO 4217 shaped.
    InvalidField,
}

impl InvalidReason {
    /// Every reason, for pre-registering metric label values.
    pub const ALL: [InvalidReason; 9] = [
        Self::Oversized,
        Self::InvalidUtf8,
        Self::InvalidJson,
        Self::MissingField,
        Self::WrongType,
        Self::InvalidAmount,
        Self::InvalidTimestamp,
        Self::FutureTimestamp,
        Self::InvalidField,
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
    fn new(reason: InvalidReason, detail: impl AsRef<str>) -> Self {
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
    /// Largest accepted amount.
    pub max_amount: f64,
    /// How far in the future an event time may be, in milliseconds.
    pub max_future_skew_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_amount: 1.0e9,
            max_future_skew_ms: 3_600_000,
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
    let ev: PaymentEvent<'a> = serde_json::from_str(text).map_err(classify_json_error)?;
    validate(&ev, limits, now_ms)?;
    Ok(ev)
}

fn classify_json_error(e: serde_json::Error) -> InvalidEvent {
    use serde_json::error::Category;
    let msg = e.to_string();
    let reason = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => InvalidReason::InvalidJson,
        Category::Data if msg.starts_with("missing field") => InvalidReason::MissingField,
        Category::Data if msg.contains("timestamp") => InvalidReason::InvalidTimestamp,
        Category::Data if msg.contains("amount") => InvalidReason::InvalidAmount,
        Category::Data => InvalidReason::WrongType,
    };
    InvalidEvent::new(reason, msg)
}

fn validate(ev: &PaymentEvent<'_>, limits: &Limits, now_ms: i64) -> Result<(), InvalidEvent> {
    use InvalidReason::*;
    let amount = ev.amount.0;
    if !amount.is_finite() || amount <= 0.0 || amount > limits.max_amount {
        return Err(InvalidEvent::new(
            InvalidAmount,
            format!("amount must be finite, > 0 and <= {}", limits.max_amount),
        ));
    }
    if ev.ts.0 < 0 {
        return Err(InvalidEvent::new(InvalidTimestamp, "timestamp before 1970"));
    }
    if ev.ts.0 > now_ms.saturating_add(limits.max_future_skew_ms) {
        return Err(InvalidEvent::new(
            FutureTimestamp,
            format!("timestamp is {} s in the future", (ev.ts.0 - now_ms) / 1000),
        ));
    }
    let required = [
        ("event_id", Some(&ev.event_id)),
        ("account_id", Some(&ev.account_id)),
        ("terminal_id", Some(&ev.terminal_id)),
    ];
    for (name, value) in required {
        check_str(name, value, false)?;
    }
    let optional = [
        ("card_id", ev.card_id.as_ref()),
        ("device_id", ev.device_id.as_ref()),
        ("ip", ev.ip.as_ref()),
        ("country", ev.country.as_ref()),
        ("channel", ev.channel.as_ref()),
    ];
    for (name, value) in optional {
        check_str(name, value, true)?;
    }
    let c = ev.currency.as_bytes();
    if c.len() != 3 || !c.iter().all(u8::is_ascii_uppercase) {
        return Err(InvalidEvent::new(
            InvalidField,
            "currency must be a 3-letter ISO 4217 code",
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

/// Masks every run of 12..=19 digits (optionally separated by spaces or dashes),
/// the shape of a card number, so it can never reach a log line or an error text.
pub fn redact_pans(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            // Extend over digits and single separators.
            let start = i;
            let mut digits = 0;
            let mut end = i;
            let mut j = i;
            while j < b.len() {
                if b[j].is_ascii_digit() {
                    digits += 1;
                    j += 1;
                    end = j;
                } else if (b[j] == b' ' || b[j] == b'-')
                    && j + 1 < b.len()
                    && b[j + 1].is_ascii_digit()
                {
                    j += 1;
                } else {
                    break;
                }
            }
            if digits >= 12 {
                out.push_str("[REDACTED]");
            } else {
                out.push_str(&text[start..end]);
            }
            i = end;
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn parse(s: &str) -> Result<PaymentEvent<'_>, InvalidEvent> {
        parse_event_at(s.as_bytes(), &Limits::default(), NOW)
    }

    const GOOD: &str = r#"{"event_id":"e1","ts":"2023-11-14T22:13:20Z","account_id":"a1","terminal_id":"t1","amount":12.5,"currency":"EUR","pan":"4111111111111111","extra":{"x":[1,2]}}"#;

    #[test]
    fn good_event_borrows_and_ignores_unknown_fields() {
        let ev = parse(GOOD).unwrap();
        assert!(matches!(ev.event_id, Cow::Borrowed("e1")));
        assert_eq!(ev.card(), "a1");
        assert_eq!(ev.amount.0, 12.5);
        assert_eq!(ev.ts.0, NOW);
    }

    #[test]
    fn epoch_millis_and_string_amount_are_accepted() {
        let ev = parse(r#"{"event_id":"e","ts":1699999999000,"account_id":"a","terminal_id":"t","amount":"3.10","currency":"USD","mcc":"5411"}"#).unwrap();
        assert_eq!(ev.ts.0, 1_699_999_999_000);
        assert_eq!(ev.amount.0, 3.10);
        assert_eq!(ev.mcc, Some(Mcc(5411)));
    }

    #[test]
    fn every_kind_of_bad_input_is_classified() {
        use InvalidReason::*;
        let cases: &[(&[u8], InvalidReason)] = &[
            (b"\xff\xfe{}", InvalidUtf8),
            (b"not json", InvalidJson),
            (br#"{"event_id":"e","ts":1,"#, InvalidJson),
            (br#"{"ts":1,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, MissingField),
            (br#"{"event_id":"e","ts":1,"account_id":7,"terminal_id":"t","amount":1,"currency":"EUR"}"#, WrongType),
            (br#"{"event_id":"e","ts":1,"account_id":"a","terminal_id":"t","amount":-1,"currency":"EUR"}"#, InvalidAmount),
            (br#"{"event_id":"e","ts":1,"account_id":"a","terminal_id":"t","amount":0,"currency":"EUR"}"#, InvalidAmount),
            (br#"{"event_id":"e","ts":1,"account_id":"a","terminal_id":"t","amount":1e300,"currency":"EUR"}"#, InvalidAmount),
            (br#"{"event_id":"e","ts":1,"account_id":"a","terminal_id":"t","amount":"NaN","currency":"EUR"}"#, InvalidAmount),
            (br#"{"event_id":"e","ts":"yesterday","account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, InvalidTimestamp),
            (br#"{"event_id":"e","ts":99999999999999,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, FutureTimestamp),
            (br#"{"event_id":"e","ts":-5,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, InvalidTimestamp),
            (br#"{"event_id":"","ts":1,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#, InvalidField),
            (br#"{"event_id":"e","ts":1,"account_id":"a","terminal_id":"t","amount":1,"currency":"euro"}"#, InvalidField),
        ];
        for (input, want) in cases {
            let got = parse_event_at(input, &Limits::default(), NOW).unwrap_err();
            assert_eq!(
                got.reason,
                *want,
                "input {:?}: {got}",
                String::from_utf8_lossy(input)
            );
        }
        let deep = format!(r#"{{"extra":{}"#, "[".repeat(10_000));
        assert_eq!(parse(&deep).unwrap_err().reason, InvalidReason::InvalidJson);
        let huge = format!(
            r#"{{"event_id":"{}","ts":1,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}}"#,
            "x".repeat(1000)
        );
        assert_eq!(
            parse(&huge).unwrap_err().reason,
            InvalidReason::InvalidField
        );
        let big = vec![b' '; 70_000];
        assert_eq!(
            parse_event_at(&big, &Limits::default(), NOW)
                .unwrap_err()
                .reason,
            InvalidReason::Oversized
        );
    }

    #[test]
    fn errors_never_contain_card_numbers() {
        let bad = r#"{"event_id":"e","ts":1,"account_id":"4111 1111 1111 1111","terminal_id":"t","amount":"4111111111111111x","currency":"EUR"}"#;
        let err = parse(bad).unwrap_err();
        assert!(!err.detail.contains("4111"), "{}", err.detail);
        let err = parse(r#"{"event_id":"e","ts":1,"account_id":4111111111111111,"terminal_id":"t","amount":1,"currency":"EUR"}"#).unwrap_err();
        assert!(!err.to_string().contains("4111111111111111"), "{err}");
    }

    #[test]
    fn redaction_keeps_short_numbers() {
        assert_eq!(
            redact_pans("amount 1234 card 4111-1111-1111-1111 ok"),
            "amount 1234 card [REDACTED] ok"
        );
        assert_eq!(
            redact_pans("ünïcode 5555555555554444"),
            "ünïcode [REDACTED]"
        );
    }
}
