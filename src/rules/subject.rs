//! The text fields of the event that the rules compare, read from its view.

use super::compile::STRING_FIELDS;
use crate::source::view::EventView;

/// The values of [`STRING_FIELDS`] of `ev`, in order (missing fields `None`).
pub fn strings<'a>(ev: &EventView<'a>) -> [Option<&'a str>; STRING_FIELDS.len()] {
    [
        Some(ev.account),
        Some(ev.card),
        Some(ev.terminal),
        ev.device,
        ev.ip,
        ev.country,
        Some(ev.currency),
        ev.channel,
        ev.mcc,
    ]
}
