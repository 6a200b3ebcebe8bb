//! The subject of a decision: the identity and string fields of the event
//! that the rules read, borrowed from a payment event or a transactions row.

use super::compile::STRING_FIELDS;
use crate::source::event::PaymentEvent;
use crate::source::handbook::TxRow;

/// The identity and string fields of the event being decided.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `event_id`.
    pub event_id: &'a str,
    /// `account_id`.
    pub account_id: &'a str,
    /// Event time, epoch ms.
    pub event_ts_ms: i64,
    /// The amount as sent, in the event's currency (rules' `original_amount`).
    pub original_amount: f64,
    /// Values of [`STRING_FIELDS`], in order.
    pub strings: [Option<&'a str>; STRING_FIELDS.len()],
}

impl<'a> Subject<'a> {
    /// The subject of a parsed payment event (`mcc` goes through `mcc_buf`).
    pub fn of(ev: &'a PaymentEvent<'a>, mcc_buf: &'a mut itoa_buf::Buf) -> Self {
        let mcc = ev.mcc.map(|m| mcc_buf.format(m.0));
        Self {
            event_id: &ev.event_id,
            account_id: &ev.account_id,
            event_ts_ms: ev.ts.0,
            original_amount: ev.original_amount.0,
            strings: [
                Some(&ev.account_id),
                Some(ev.card()),
                Some(&ev.terminal_id),
                ev.device_id.as_deref(),
                ev.ip.as_deref(),
                ev.country.as_deref(),
                Some(&ev.currency),
                ev.channel.as_deref(),
                mcc,
            ],
        }
    }

    /// The subject of a transactions file row (`mcc` goes through `mcc_buf`).
    pub fn of_row(row: &'a TxRow<'a>, mcc_buf: &'a mut itoa_buf::Buf) -> Self {
        Self {
            event_id: row.transaction_id,
            account_id: row.customer_id,
            event_ts_ms: row.ts_ms,
            original_amount: row.original_amount,
            strings: [
                Some(row.customer_id),
                Some(row.card()),
                Some(row.terminal_id),
                row.device_id,
                row.ip,
                row.country.as_deref(),
                Some(row.currency.code()),
                row.channel,
                row.mcc.map(|m| mcc_buf.format(m.0)),
            ],
        }
    }
}

/// Formatting a small number without allocating.
pub mod itoa_buf {
    /// A stack buffer for a formatted `u16`.
    #[derive(Default)]
    pub struct Buf(itoa::Buffer);

    impl Buf {
        /// Formats `v` and returns it as text.
        pub fn format(&mut self, v: u16) -> &str {
            self.0.format(v)
        }
    }
}
