//! The payment-event parser never panics, whatever the bytes, and what it
//! accepts meets the contract.
#![no_main]

use fraudstream::features::EventView;
use fraudstream::source::event::{parse_event_at, redact_pans, Limits, MAX_FIELD_LEN};
use libfuzzer_sys::fuzz_target;

/// 2027-01-15, a fixed wall clock so runs reproduce.
const NOW_MS: i64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    match parse_event_at(data, &limits, NOW_MS) {
        Ok(ev) => {
            let amount = ev.amount.0;
            assert!(amount.is_finite() && amount > 0.0 && amount <= limits.max_amount);
            assert!(ev.ts.0 >= 0 && ev.ts.0 <= NOW_MS + limits.max_future_skew_ms);
            for id in [&ev.event_id, &ev.account_id, &ev.terminal_id] {
                assert!(!id.is_empty() && id.len() <= MAX_FIELD_LEN);
            }
            assert!(ev.currency.len() == 3);
            let view = EventView::of(&ev);
            assert_eq!(view.card, ev.card());
        }
        Err(e) => {
            let _ = redact_pans(&e.to_string());
        }
    }
});
