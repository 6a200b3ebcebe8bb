//! The synchronous decision API: `POST /v1/decisions` takes one payment event
//! (the input topic's contract) and answers with its decision (the output
//! topic's contract), decided by the same engine and state as the Kafka path.
//!
//! The HTTP side ([`routes`]) checks access and the payment and queues it,
//! bounded, for the pipeline thread ([`call`]); the pipeline decides it on the
//! worker that owns the account's partition (by the input producers'
//! [`Partitioner`]) between Kafka messages, and records the event on the input
//! topic and the decision on the decisions topic in its open transaction
//! (`crate::pipeline`'s `api` module).

pub mod call;
mod partitioner;
pub mod routes;

pub use partitioner::{murmur2, Partitioner};
pub use routes::{api_routes, ApiState, DEADLINE_REASON};

use crate::config::Config;
use crate::http::{serve_router, HttpLimits};
use crate::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Header that marks an input record written by the API: its decision is
/// already on the decisions topic, so reading it back only updates state.
pub const RECORD_HEADER: &str = "fraudstream.api";

/// Whether an input record was written by the API (its decision is already out).
pub fn is_api_record<M: rdkafka::message::Message>(msg: &M) -> bool {
    use rdkafka::message::Headers;
    msg.headers()
        .is_some_and(|h| h.iter().any(|h| h.key == RECORD_HEADER))
}

/// How a call ended, the `outcome` label of `fraudstream_api_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Decided.
    Decided,
    /// Answered with the decision of an earlier call with the same `event_id`.
    Replayed,
    /// Already decided from the input topic (409).
    Duplicate,
    /// Past its deadline: the fallback decision.
    Timeout,
    /// Not a valid payment or request (400).
    Invalid,
    /// Body over the size limit (413).
    Oversized,
    /// Missing or wrong bearer token (401).
    Unauthorized,
    /// The queue was full (429).
    QueueFull,
    /// The account's partition is restoring (503).
    Restoring,
    /// The account's partition is not assigned to this instance (503).
    NotOwner,
    /// The processor is stopping (503).
    Unavailable,
}

impl Outcome {
    /// Every outcome, for pre-registering label values.
    pub const ALL: [Outcome; 11] = [
        Self::Decided,
        Self::Replayed,
        Self::Duplicate,
        Self::Timeout,
        Self::Invalid,
        Self::Oversized,
        Self::Unauthorized,
        Self::QueueFull,
        Self::Restoring,
        Self::NotOwner,
        Self::Unavailable,
    ];

    /// The label value.
    pub fn code(self) -> &'static str {
        match self {
            Self::Decided => "decided",
            Self::Replayed => "replayed",
            Self::Duplicate => "duplicate",
            Self::Timeout => "timeout",
            Self::Invalid => "invalid",
            Self::Oversized => "oversized",
            Self::Unauthorized => "unauthorized",
            Self::QueueFull => "queue_full",
            Self::Restoring => "restoring",
            Self::NotOwner => "not_owner",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Creates the call queue for `config.api`, serves the API on `config.api.addr`
/// on the current runtime, and returns the bound address and the queue's
/// receiving end, for [`crate::pipeline::run_with_api`].
pub async fn serve(
    config: &Config,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SocketAddr, call::CallReceiver)> {
    let a = &config.api;
    let (tx, rx) = call::queue(a.queue_capacity, metrics.api_queue_depth.clone());
    let token = (!a.bearer_token.is_empty()).then(|| a.bearer_token.clone());
    let state = ApiState::new(
        tx,
        config.processing.event_limits(),
        Duration::from_millis(a.timeout_ms),
        a.on_timeout,
        token,
        metrics.clone(),
    );
    let addr = serve_router(
        &a.addr,
        HttpLimits::of(&config.metrics),
        api_routes(state),
        metrics,
    )
    .await?;
    Ok((addr, rx))
}
