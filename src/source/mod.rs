//! Source: payment events in, parsed and validated.
pub mod event;
pub mod handbook;
pub mod kafka;
pub mod time;
