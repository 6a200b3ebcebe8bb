//! fraudstream: real-time card-fraud detection over Kafka.
pub mod cli;
pub mod config;
pub mod decision;
pub mod demo;
pub mod features;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod offline;
pub mod pipeline;
pub mod replay;
pub mod rules;
pub mod sink;
pub mod source;
pub mod state;
