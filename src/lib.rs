//! fraudstream: real-time card-fraud detection over Kafka.
pub mod source;
pub mod state;
pub mod features;
pub mod replay;
