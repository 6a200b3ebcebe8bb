//! Source: payment events in, parsed and validated (JSON from Kafka, CSV files),
//! with amounts converted into the base currency.
pub mod currency;
pub mod event;
pub mod handbook;
pub mod kafka;
pub mod view;
/// Event time lives in the leaf [`crate::time`]; re-exported for the stages that name it here.
pub use crate::time;
