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
//!
//! With several instances ([`forward`]), a call for another instance's partition
//! is forwarded to it, found in the table of partition owners ([`owners`]).

pub mod call;
pub mod forward;
pub mod owners;
mod partitioner;
pub mod replay;
pub mod routes;
pub mod tls;

pub use crate::config::Partitioner;
pub use crate::ops::metrics::ApiOutcome as Outcome;
pub use partitioner::murmur2;
pub use routes::{api_routes, ApiState, DEADLINE_REASON};

use crate::config::Config;
use crate::ops::http::{serve_router_tls, HttpLimits};
use crate::ops::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Header that marks an input record written by the API: its decision is
/// already on the decisions topic, so reading it back only updates state.
pub const RECORD_HEADER: &str = "fraudstream.api";

/// Header that marks an input record written by an instance that does not own
/// its partition for a call answered with the deadline's fallback: its value is
/// that fallback decision (JSON), which the owner records on the decisions topic
/// when it reads the event, unless the `event_id` was decided before.
pub const FALLBACK_HEADER: &str = "fraudstream.api.fallback";

/// Whether an input record was written by the API (its decision is already out).
pub fn is_api_record<M: rdkafka::message::Message>(msg: &M) -> bool {
    matches!(api_record(msg), Some(ApiRecord::Decided))
}

/// An input record written by the API, by its header.
#[derive(Debug, PartialEq, Eq)]
pub enum ApiRecord<'a> {
    /// [`RECORD_HEADER`]: decided, its decision is on the decisions topic.
    Decided,
    /// [`FALLBACK_HEADER`]: its decision (the fallback its client got) is still
    /// to be recorded, by the partition's owner.
    Fallback(&'a [u8]),
}

/// What the API's header on `msg` says, if it has one.
pub fn api_record<M: rdkafka::message::Message>(msg: &M) -> Option<ApiRecord<'_>> {
    use rdkafka::message::Headers;
    msg.headers()?.iter().find_map(|h| match h.key {
        RECORD_HEADER => Some(ApiRecord::Decided),
        FALLBACK_HEADER => Some(ApiRecord::Fallback(h.value.unwrap_or(&[]))),
        _ => None,
    })
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A TLS file is missing or wrong.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The owners topic could not be followed or written (several instances).
    #[error("api.advertised_url: {0}")]
    Owners(#[from] owners::OwnersError),
    /// The address could not be bound.
    #[error("cannot listen on api.addr = {addr}: {source}")]
    Bind {
        /// `api.addr`.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Creates the call queue for `config.api`, serves the API on `config.api.addr`
/// (over TLS when `tls_cert` is set) on the current runtime, and returns the
/// bound address and the queue's receiving end, for
/// [`crate::pipeline::run_with_api`].
pub async fn serve(
    config: &Config,
    metrics: Arc<Metrics>,
) -> Result<(SocketAddr, call::CallReceiver), ApiError> {
    let a = &config.api;
    let tls = tls::acceptor(a)?;
    let (tx, rx) = call::queue(a.queue_capacity, metrics.api_queue_depth.clone());
    let token = (!a.bearer_token.is_empty()).then(|| a.bearer_token.clone());
    let mut state = ApiState::new(
        tx,
        crate::source::event::Limits::from_config(&config.processing),
        Duration::from_millis(a.timeout_ms),
        a.on_timeout.into(),
        token,
        metrics.clone(),
    )
    .with_body_timeout(Duration::from_millis(a.body_timeout_ms));
    let mut rx = rx;
    if owners::topic(config).is_some() {
        let table = Arc::new(owners::Owners::default());
        owners::follow(config, &table)?;
        let publisher = owners::Publisher::new(config)?;
        state = state.with_cluster(forward::Cluster::new(config, table, metrics.clone())?);
        rx = rx.with_owners(publisher);
    }
    let limits = HttpLimits {
        max_connections: a.max_connections,
        read_timeout: Duration::from_millis(a.read_timeout_ms),
        write_timeout: Duration::from_millis(a.write_timeout_ms),
    };
    let addr = serve_router_tls(&a.addr, limits, api_routes(state), metrics, tls)
        .await
        .map_err(|source| ApiError::Bind {
            addr: a.addr.clone(),
            source,
        })?;
    Ok((addr, rx))
}
