//! The operator's HTTP endpoint: `/metrics`, `/healthz`, `/readyz`, served by
//! axum on hyper (HTTP/1.1).
//!
//! Routes are an axum [`Router`] over shared state, so later APIs add theirs
//! with `Router::merge`. The server around them is ours because the endpoint
//! shares the process with the Kafka clients: at most `max_connections` are
//! open (beyond that, new ones wait in the listen backlog), a request head must
//! arrive within the read timeout and every read and write must progress within
//! its timeout (so neither an idle client nor one that never reads holds a
//! connection), and accept errors such as running out of file descriptors are
//! backed off instead of retried in a busy loop.

use crate::config::MetricsConfig;
use crate::ops::lifecycle::{Health, Shutdown};
use crate::ops::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;

/// Bounds on what clients of the endpoint can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest wait for a request head, and for any read to progress.
    pub read_timeout: Duration,
    /// Longest wait for any write to progress (a client that stopped reading).
    pub write_timeout: Duration,
}

impl HttpLimits {
    /// The limits `[metrics]` configures.
    pub fn of(cfg: &MetricsConfig) -> Self {
        Self {
            max_connections: cfg.max_connections,
            read_timeout: Duration::from_millis(cfg.read_timeout_ms),
            write_timeout: Duration::from_millis(cfg.write_timeout_ms),
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self::of(&MetricsConfig::default())
    }
}

/// What the operator routes read: the metrics and the health of the processor.
#[derive(Clone)]
pub struct OperatorState {
    /// Exported by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Read by `/readyz`.
    pub health: Arc<Health>,
    /// Once triggered, `/readyz` answers 503.
    pub shutdown: Shutdown,
}

impl OperatorState {
    fn ready(&self) -> bool {
        self.health.is_ready() && !self.shutdown.is_triggered()
    }
}

/// `/metrics`, `/healthz` and `/readyz`, GET and HEAD only (405 with `Allow`
/// otherwise); any other path is 404.
pub fn operator_routes(state: OperatorState) -> Router {
    Router::new()
        .route("/metrics", routing::get(metrics))
        .route("/healthz", routing::get(|| async { "ok\n" }))
        .route("/readyz", routing::get(readyz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

async fn metrics(State(s): State<OperatorState>) -> impl IntoResponse {
    s.metrics.ready.set(i64::from(s.ready()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<OperatorState>) -> (StatusCode, &'static str) {
    if s.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Binds `addr` and serves the operator routes for the life of the runtime, so
/// `/readyz` keeps answering 503 while a graceful shutdown finishes. Returns the
/// bound address.
pub async fn serve(
    addr: &str,
    limits: HttpLimits,
    state: OperatorState,
) -> std::io::Result<SocketAddr> {
    let metrics = state.metrics.clone();
    serve_router(addr, limits, operator_routes(state), metrics).await
}

/// Binds `addr` and serves `app` under `limits` for the life of the runtime;
/// `metrics` counts its connections and accept errors. Returns the bound address.
pub async fn serve_router(
    addr: &str,
    limits: HttpLimits,
    app: Router,
    metrics: Arc<Metrics>,
) -> std::io::Result<SocketAddr> {
    serve_router_tls(addr, limits, app, metrics, None).await
}

/// [`serve_router`], over TLS when `tls` is given: each connection's handshake
/// must finish within the read timeout; one that fails is closed and counted.
pub async fn serve_router_tls(
    addr: &str,
    limits: HttpLimits,
    app: Router,
    metrics: Arc<Metrics>,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, max_connections = limits.max_connections, tls = tls.is_some(), "HTTP endpoint listening");
    tokio::spawn(accept_loop(listener, limits, app, metrics, tls));
    Ok(local)
}

/// A source of connections: a TCP listener, or a fake one in tests.
trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for TcpListener {
    type Io = TcpStream;
    async fn accept(&mut self) -> std::io::Result<TcpStream> {
        let (stream, _) = TcpListener::accept(self).await?;
        // Responses are written whole; don't hold their last segment back.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// First and longest pause after an accept error.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

async fn accept_loop(
    mut listener: impl Accept,
    limits: HttpLimits,
    app: Router,
    metrics: Arc<Metrics>,
    tls: Option<TlsAcceptor>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut backoff = BACKOFF_MIN;
    loop {
        // At the cap, stop accepting until a connection closes.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok(io) => {
                backoff = BACKOFF_MIN;
                let open = Open::new(slot, &metrics);
                tokio::spawn(serve_connection(io, app.clone(), limits, open, tls.clone()));
            }
            // A client that gave up before we accepted it: nothing to wait for.
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // Out of file descriptors, for instance: retrying at once would
                // spin a core and starve the Kafka clients of what frees up.
                metrics.http_accept_errors.inc();
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "HTTP accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// A connection slot, held while the connection is open.
struct Open {
    _slot: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Open {
    fn new(slot: OwnedSemaphorePermit, metrics: &Arc<Metrics>) -> Self {
        metrics.http_connections.inc();
        Self {
            _slot: slot,
            metrics: metrics.clone(),
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.http_connections.dec();
    }
}

/// Serves HTTP/1.1 on one connection (after its TLS handshake, with `tls`)
/// until the client closes it, a timeout expires or it errs; then frees its slot.
async fn serve_connection<IO>(
    io: IO,
    app: Router,
    limits: HttpLimits,
    open: Open,
    tls: Option<TlsAcceptor>,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut io = TimeoutStream::new(io);
    io.set_read_timeout(Some(limits.read_timeout));
    io.set_write_timeout(Some(limits.write_timeout));
    let io = Box::pin(io);
    let served = match tls {
        None => serve_http1(io, app, limits).await,
        Some(tls) => match tokio::time::timeout(limits.read_timeout, tls.accept(io)).await {
            Ok(Ok(io)) => serve_http1(io, app, limits).await,
            Ok(Err(e)) => {
                open.metrics.http_tls_errors.inc();
                tracing::debug!(error = %e, "TLS handshake failed");
                Ok(())
            }
            Err(_) => {
                open.metrics.http_tls_errors.inc();
                tracing::debug!("TLS handshake timed out");
                Ok(())
            }
        },
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "HTTP connection closed");
    }
    drop(open);
}

async fn serve_http1<IO>(io: IO, app: Router, limits: HttpLimits) -> hyper::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .await
}

/// A minimal blocking HTTP GET for tests and the demo: returns (status code, body).
pub fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    request(addr, "GET", path).map(|(code, _, body)| (code, body))
}

/// A minimal blocking HTTP request without a body: returns (status code, head, body).
pub fn request(addr: &str, method: &str, path: &str) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Ok((code, head.to_string(), body.to_string()))
}

#[cfg(test)]
mod tests;
