//! The operator's pieces: what lets someone run fraudstream and watch it.
//!
//! - [`metrics`]: every exported metric, with small fixed label sets;
//! - [`latency`]: the fixed-size latency histogram (p50/p99/p99.9);
//! - [`lifecycle`]: shutdown, health and readiness, reload requests, file watches;
//! - [`internal_events`]: each noteworthy occurrence as its log line and counter;
//! - [`http`]: the `/metrics`, `/healthz` and `/readyz` endpoint.
//!
//! `metrics`, `latency` and `lifecycle` are leaves any stage may import;
//! `internal_events` reads the stages' types up to the sink, and `http` serves
//! what they publish, so those two sit after the sink in the pipeline's order
//! (`tests/architecture.rs`).

/// The `/metrics`, `/healthz` and `/readyz` endpoint.
pub mod http;
pub mod internal_events;
pub mod latency;
pub mod lifecycle;
pub mod metrics;
