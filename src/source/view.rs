//! The one borrowed view of a payment that the later stages (features, rules,
//! decision) read, whichever source it came from: a Kafka message
//! ([`PaymentEvent`]) or a transactions file row ([`TxRow`]).

use super::event::PaymentEvent;
use super::handbook::TxRow;

/// A payment's fields, borrowed from its source. Optional fields the event
/// does not carry stay `None` (features of them are missing, rules' comparisons
/// of them are false).
#[derive(Debug, Clone, Copy, Default)]
pub struct EventView<'a> {
    /// Unique event id (for the label join and the decision).
    pub event_id: &'a str,
    /// Event time, epoch milliseconds.
    pub ts_ms: i64,
    /// Amount in the base currency (windows keep it to 1/10,000: [`crate::state::Money`]).
    pub amount: f64,
    /// The amount as sent, in `currency` (rules' `original_amount`).
    pub original_amount: f64,
    /// ISO 4217 code of `original_amount`.
    pub currency: &'a str,
    /// Account id.
    pub account: &'a str,
    /// Card id (the account when the event has none).
    pub card: &'a str,
    /// Terminal id.
    pub terminal: &'a str,
    /// Device id.
    pub device: Option<&'a str>,
    /// IP address.
    pub ip: Option<&'a str>,
    /// Country code, upper case.
    pub country: Option<&'a str>,
    /// Merchant category code, as digits without leading zeros ([`super::event::Mcc::as_str`]).
    pub mcc: Option<&'a str>,
    /// Channel (`pos`, `ecom`, `atm`, ...), as sent.
    pub channel: Option<&'a str>,
}

impl<'a> EventView<'a> {
    /// The view of a parsed payment event.
    pub fn of(ev: &'a PaymentEvent<'a>) -> Self {
        Self {
            event_id: &ev.event_id,
            ts_ms: ev.ts.0,
            amount: ev.amount.0,
            original_amount: ev.original_amount.0,
            currency: &ev.currency,
            account: &ev.account_id,
            card: ev.card(),
            terminal: &ev.terminal_id,
            device: ev.device_id.as_deref(),
            ip: ev.ip.as_deref(),
            country: ev.country.as_deref(),
            mcc: ev.mcc.map(|m| m.as_str()),
            channel: ev.channel.as_deref(),
        }
    }

    /// The view of a transactions file row.
    pub fn of_row(row: &'a TxRow<'a>) -> Self {
        Self {
            event_id: row.transaction_id,
            ts_ms: row.ts_ms,
            amount: row.amount,
            original_amount: row.original_amount,
            currency: row.currency.code(),
            account: row.customer_id,
            card: row.card(),
            terminal: row.terminal_id,
            device: row.device_id,
            ip: row.ip,
            country: row.country.as_deref(),
            mcc: row.mcc.map(|m| m.as_str()),
            channel: row.channel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::event::{parse_event_at, Limits, Mcc};
    use crate::source::handbook::HandbookReader;

    /// The same payments as file rows and as Kafka messages give the same view,
    /// optional fields present, absent or written differently (case, padding).
    #[test]
    fn a_row_and_an_event_of_the_same_payment_give_the_same_view() {
        let rows = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD,CARD_ID,DEVICE_ID,IP,COUNTRY,MCC,CHANNEL\n\
                    e-1,2018-04-01 10:00:00,c-1,t-1,12.50,0,card-9,dev-1,10.0.0.1,de,5411,ecom\n\
                    e-2,2018-04-01 10:00:01,c-2,t-2,7.00,1,,,,,0742,\n\
                    e-3,2018-04-01 10:00:02,c-3,t-3,1.00,0,,,,FRA,,atm\n";
        let events = [
            r#"{"event_id":"e-1","ts":"2018-04-01T10:00:00Z","account_id":"c-1","card_id":"card-9","terminal_id":"t-1","amount":"12.50","currency":"EUR","device_id":"dev-1","ip":"10.0.0.1","country":"DE","mcc":5411,"channel":"ecom"}"#,
            r#"{"event_id":"e-2","ts":"2018-04-01T10:00:01Z","account_id":"c-2","terminal_id":"t-2","amount":7,"currency":"eur","mcc":"742"}"#,
            r#"{"event_id":"e-3","ts":1522576802000,"account_id":"c-3","terminal_id":"t-3","amount":1,"currency":"EUR","country":"fra","channel":"atm"}"#,
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tx.csv");
        std::fs::write(&path, rows).unwrap();
        let mut reader = HandbookReader::open(&path).unwrap();
        for json in events {
            let row = reader.next_row().unwrap().unwrap();
            let ev = parse_event_at(json.as_bytes(), &Limits::default(), i64::MAX / 4).unwrap();
            let (a, b) = (EventView::of_row(&row), EventView::of(&ev));
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{json}");
        }
        assert!(reader.next_row().unwrap().is_none());
    }

    #[test]
    fn mcc_text_has_no_leading_zeros() {
        let cases = [
            (0, "0"),
            (7, "7"),
            (742, "742"),
            (5411, "5411"),
            (9999, "9999"),
        ];
        for (code, text) in cases {
            assert_eq!(Mcc(code).as_str(), text);
            assert_eq!(Mcc(code).as_str(), code.to_string());
        }
        assert_eq!(Mcc(10_000).as_str(), "");
    }
}
