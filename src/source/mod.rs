//! Source: payment events in, parsed and validated (JSON from Kafka, CSV files),
//! with amounts converted into the base currency.
pub mod currency;
pub mod event;
pub mod handbook;
pub mod kafka;
pub mod time;
