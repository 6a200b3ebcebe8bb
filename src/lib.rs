#![warn(missing_docs)]
//! fraudstream: real-time card-fraud detection over Kafka.
//!
//! Data flows one way: [`source`] (payment events in) -> [`state`] (per-entity
//! windows) -> [`features`] (the feature vector) -> [`rules`] and [`model`]
//! (scores) -> [`decision`] (policy and the decision contract) -> [`sink`]
//! (decisions and dead letters out). [`pipeline`] runs that loop against Kafka;
//! [`replay`] and [`offline`] run the same engine over files.

pub mod api;
pub mod cli;
/// Layered configuration (defaults, files, environment, flags).
pub mod config;
pub mod decision;
pub mod demo;
pub mod features;
/// The `/metrics`, `/healthz` and `/readyz` endpoint.
pub mod http;
pub mod internal_events;
pub mod latency;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod offline;
pub mod pipeline;
pub mod rules;
pub mod sink;
pub mod source;
pub mod state;
pub mod text;
pub mod time;
