#![warn(missing_docs)]
//! fraudstream: real-time card-fraud detection over Kafka.
//!
//! Data flows one way: [`source`] (payment events in) -> [`state`] (per-entity
//! windows) -> [`features`] (the feature vector) -> [`rules`] and [`model`]
//! (scores) -> [`decision`] (policy and the decision contract) -> [`sink`]
//! (decisions and dead letters out). [`pipeline`] runs that loop against Kafka,
//! [`api`] feeds it synchronous calls, [`offline`] runs the same engine over
//! files; [`ops`] holds what the operator watches (metrics, health, internal
//! events).

pub mod api;
pub mod cli;
/// Layered configuration (defaults, files, environment, flags).
pub mod config;
pub mod decision;
pub mod demo;
pub mod features;
pub mod model;
pub mod offline;
pub mod ops;
pub mod pipeline;
pub mod rules;
pub mod sink;
pub mod source;
pub mod state;
pub mod text;
pub mod time;
