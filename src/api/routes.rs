//! `POST /v1/decisions`: checks access and the payment, queues it for the
//! pipeline thread and answers with its decision, or with the fallback once the
//! deadline passed.

use super::call::{Call, CallKind, CallSender, QueueError, Reply, Ticket};
use super::forward::{Cluster, ForwardError};
use super::owners::Owner;
use super::Outcome;
use crate::decision::{Action, Decision, Mode, Reason};
use crate::ops::metrics::Metrics;
use crate::source::event::{parse_event, Limits};
use crate::source::time::now_ms;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::Router;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub use super::call::MAX_CALL_TIMEOUT_MS;

/// What the API's routes share.
#[derive(Clone)]
pub struct ApiState(Arc<Shared>);

struct Shared {
    calls: CallSender,
    limits: Limits,
    default_timeout: Duration,
    on_timeout: Action,
    token: Option<String>,
    metrics: Arc<Metrics>,
    body_timeout: Duration,
    cluster: Option<Cluster>,
}

/// Longest wait for a request body unless [`ApiState::with_body_timeout`] says otherwise.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

impl ApiState {
    /// The routes' state: calls go to `calls`; events are checked with `limits`;
    /// a call without `timeout_ms` has `default_timeout`; past its deadline it
    /// gets `on_timeout`; with `token`, calls need `Authorization: Bearer <token>`.
    pub fn new(
        calls: CallSender,
        limits: Limits,
        default_timeout: Duration,
        on_timeout: Action,
        token: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self(Arc::new(Shared {
            calls,
            limits,
            default_timeout,
            on_timeout,
            token,
            metrics,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            cluster: None,
        }))
    }

    /// The whole body must arrive within `timeout` of the head, else 408 (a
    /// client sending it a byte at a time would hold the call for ever).
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        if let Some(s) = Arc::get_mut(&mut self.0) {
            s.body_timeout = timeout;
        }
        self
    }

    /// Forwards calls for other instances' partitions through `cluster`; call
    /// before the state is shared (serving).
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        Arc::get_mut(&mut self.0)
            .expect("with_cluster is called before the routes share the state")
            .cluster = Some(cluster);
        self
    }
}

/// `POST /v1/decisions` (405 for other methods); other paths are 404.
pub fn api_routes(state: ApiState) -> Router {
    Router::new()
        .route("/v1/decisions", routing::post(decide))
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "not_found", "no such path") })
        .with_state(state)
}

async fn decide(State(s): State<ApiState>, headers: HeaderMap, uri: Uri, body: Body) -> Response {
    let received = Instant::now();
    let (outcome, mut response) = answer(&s.0, &headers, &uri, body, received).await;
    if let Some(c) = &s.0.cluster {
        c.sign(&mut response);
    }
    let m = &s.0.metrics;
    m.api_calls.with_label_values(&[outcome.code()]).inc();
    m.api_seconds.observe(received.elapsed().as_secs_f64());
    response
}

async fn answer(
    s: &Shared,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
    received: Instant,
) -> (Outcome, Response) {
    if !authorized(s.token.as_deref(), headers) {
        let mut r = problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return (Outcome::Unauthorized, r);
    }
    let timeout = match timeout_of(uri) {
        Ok(t) => t.unwrap_or(s.default_timeout),
        Err(msg) => {
            return (
                Outcome::Invalid,
                problem(StatusCode::BAD_REQUEST, "invalid_timeout", &msg),
            )
        }
    };
    let payload = match read_body(s, body).await {
        Ok(payload) => payload,
        Err(refused) => return refused,
    };
    let (kind, invalid, owner) = match parse_event(&payload, &s.limits) {
        Ok(ev) => {
            let owner = s
                .cluster
                .as_ref()
                .and_then(|c| c.route(&ev.account_id, headers));
            (CallKind::Decide, None, owner)
        }
        Err(e) => (CallKind::DeadLetter(e.clone()), Some(e), None),
    };
    if let (Some(c), Some(owner)) = (&s.cluster, owner) {
        return forward(s, c, &owner, &payload, headers, (received, timeout)).await;
    }
    let (tx, rx) = oneshot::channel();
    let ticket = Arc::new(Ticket::default());
    let call = Call {
        payload: payload.clone(),
        kind,
        received,
        ticket: ticket.clone(),
        reply: tx,
    };
    match s.calls.try_send(call) {
        Ok(()) => {}
        Err(QueueError::Full) => {
            return (
                Outcome::QueueFull,
                busy(
                    StatusCode::TOO_MANY_REQUESTS,
                    "queue_full",
                    "too many calls waiting; retry shortly",
                ),
            )
        }
        Err(QueueError::Closed) => {
            return (
                Outcome::Unavailable,
                busy(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "stopping",
                    "the processor is stopping",
                ),
            )
        }
    }
    if let Some(e) = invalid {
        // Answered at once; the dead letter is recorded by the pipeline thread.
        return (
            Outcome::Invalid,
            problem(StatusCode::BAD_REQUEST, e.reason.code(), &e.detail),
        );
    }
    let deadline = tokio::time::Instant::from_std(received + timeout);
    let mut rx = rx;
    let reply = match tokio::time::timeout_at(deadline, &mut rx).await {
        Ok(reply) => reply,
        Err(_) => {
            let fallback = fallback_decision(&payload, &s.limits, s.on_timeout, timeout, received);
            if ticket.abandon(fallback.clone()) {
                return (Outcome::Timeout, decision_response(fallback, false));
            }
            // The pipeline took it just now: its decision is microseconds away.
            rx.await
        }
    };
    reply_response(reply)
}

/// The request body, whole, within the size limit and `body_timeout`; else the
/// answer that refuses it (413 or 408).
async fn read_body(s: &Shared, body: Body) -> Result<Bytes, (Outcome, Response)> {
    let limit = s.limits.max_message_bytes;
    let read = tokio::time::timeout(s.body_timeout, axum::body::to_bytes(body, limit));
    match read.await {
        Ok(Ok(payload)) => Ok(payload),
        Ok(Err(_)) => {
            let msg = format!("the body is larger than {limit} bytes, or was not received whole");
            Err((
                Outcome::Oversized,
                problem(StatusCode::PAYLOAD_TOO_LARGE, "oversized", &msg),
            ))
        }
        Err(_) => {
            let msg = format!(
                "the body did not arrive within {} ms",
                s.body_timeout.as_millis()
            );
            let mut r = problem(StatusCode::REQUEST_TIMEOUT, "slow_body", &msg);
            // The rest of the body may still come: the connection cannot be reused.
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err((Outcome::SlowBody, r))
        }
    }
}

/// Forwards a call to the instance owning its account's partition, and relays
/// its answer; the deadline (`received` + `timeout`) travels with it.
async fn forward(
    s: &Shared,
    c: &Cluster,
    owner: &Owner,
    payload: &Bytes,
    headers: &HeaderMap,
    (received, timeout): (Instant, Duration),
) -> (Outcome, Response) {
    let remaining = (received + timeout).saturating_duration_since(Instant::now());
    match c.forward(owner, payload.clone(), headers, remaining).await {
        Ok(r) => (Outcome::Forwarded, r),
        Err(ForwardError::Timeout) => {
            let fallback = fallback_decision(payload, &s.limits, s.on_timeout, timeout, received);
            // The owner's outcome is unknown: the fallback is answered only once
            // its record is queued here, for the owner (`crate::pipeline`'s `api`).
            if record_fallback(s, payload, &fallback, received) {
                return (Outcome::Timeout, decision_response(fallback, false));
            }
            let msg = "the instance owning the account's partition did not answer in time; retry";
            (
                Outcome::Unavailable,
                busy(StatusCode::SERVICE_UNAVAILABLE, "owner_unreachable", msg),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "forwarding a call failed");
            let msg = "the instance owning the account's partition did not answer; retry";
            (
                Outcome::Unavailable,
                busy(StatusCode::SERVICE_UNAVAILABLE, "owner_unreachable", msg),
            )
        }
    }
}

/// Queues `payload` for this instance's pipeline as a call already answered
/// with `fallback`, to be recorded; false if the queue is full or closed.
fn record_fallback(s: &Shared, payload: &Bytes, fallback: &[u8], received: Instant) -> bool {
    let ticket = Arc::new(Ticket::default());
    ticket.abandon(fallback.to_vec());
    let call = Call {
        payload: payload.clone(),
        kind: CallKind::Decide,
        received,
        ticket,
        reply: oneshot::channel().0,
    };
    s.calls.try_send(call).is_ok()
}

fn reply_response(reply: Result<Reply, oneshot::error::RecvError>) -> (Outcome, Response) {
    match reply {
        Ok(Reply::Decided { decision, replayed }) => {
            let outcome = if replayed { Outcome::Replayed } else { Outcome::Decided };
            (outcome, decision_response(decision, replayed))
        }
        Ok(Reply::DecidedOnTopic) => (
            Outcome::Duplicate,
            problem(StatusCode::CONFLICT, "duplicate_event", "this event_id was decided before and its decision is no longer kept (api.replay_entries, or a restart since); it is on the decisions topic"),
        ),
        Ok(Reply::NotOwner) => (
            Outcome::NotOwner,
            busy(StatusCode::SERVICE_UNAVAILABLE, "not_owner", "this instance does not own the account's partition; retry (or ask its owner)"),
        ),
        Ok(Reply::Restoring) => (
            Outcome::Restoring,
            busy(StatusCode::SERVICE_UNAVAILABLE, "restoring", "the account's partition is restoring its state; retry shortly"),
        ),
        Ok(Reply::Recorded) | Err(_) => (
            Outcome::Unavailable,
            busy(StatusCode::SERVICE_UNAVAILABLE, "stopping", "the processor stopped before deciding; retry"),
        ),
    }
}

/// `timeout_ms` from the query string, if given (1 ..= [`MAX_CALL_TIMEOUT_MS`]).
fn timeout_of(uri: &Uri) -> Result<Option<Duration>, String> {
    let Some(q) = uri.query() else {
        return Ok(None);
    };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("timeout_ms=") {
            return match v.parse::<u64>() {
                Ok(ms) if (1..=MAX_CALL_TIMEOUT_MS).contains(&ms) => {
                    Ok(Some(Duration::from_millis(ms)))
                }
                _ => Err(format!("timeout_ms must be a whole number of milliseconds from 1 to {MAX_CALL_TIMEOUT_MS}")),
            };
        }
    }
    Ok(None)
}

/// Whether `headers` carry `token` (always, without one), compared in constant time.
fn authorized(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The decision a call gets past its deadline: the configured action, with a
/// reason saying why. `payload` is a valid event (checked before queuing).
fn fallback_decision(
    payload: &Bytes,
    limits: &Limits,
    action: Action,
    timeout: Duration,
    received: Instant,
) -> Vec<u8> {
    let Ok(ev) = parse_event(payload, limits) else {
        return Vec::new();
    };
    let text = format!(
        "Not decided within the deadline of {} ms; the configured fallback applies ({})",
        timeout.as_millis(),
        match action {
            Action::Allow => "fail open",
            Action::Review | Action::Block => "fail closed",
        }
    );
    let reasons = [Reason {
        code: DEADLINE_REASON,
        text: &text,
        mode: Mode::Live,
    }];
    let mut out = Vec::new();
    Decision {
        event_id: &ev.event_id,
        account_id: &ev.account_id,
        action,
        score: 0.0,
        reasons: &reasons,
        rules_version: "none",
        model_version: "none",
        challenger: None,
        flagged_by: None,
        event_ts_ms: ev.ts.0,
        decided_at_ms: now_ms(),
        latency_us: received.elapsed().as_micros() as u64,
    }
    .encode(&mut out);
    out
}

/// Reason code of a decision made by the deadline fallback.
pub const DEADLINE_REASON: &str = "api_deadline_exceeded";

fn decision_response(decision: Vec<u8>, replayed: bool) -> Response {
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        decision,
    )
        .into_response();
    if replayed {
        r.headers_mut()
            .insert("fraudstream-replayed", HeaderValue::from_static("true"));
    }
    r
}

/// A JSON error body: `{"reason": code, "message": text}`.
fn problem(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({ "reason": reason, "message": message });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// [`problem`] with `Retry-After: 1`.
fn busy(status: StatusCode, reason: &str, message: &str) -> Response {
    let mut r = problem(status, reason, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::IntGauge;

    #[test]
    fn a_token_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(authorized(None, &h));
        assert!(!authorized(Some("s3cret"), &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cre"),
        );
        assert!(!authorized(Some("s3cret"), &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorized(Some("s3cret"), &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(!authorized(Some("s3cret"), &h));
    }

    /// An owner that takes the connection and never answers: the caller gets the
    /// fallback only once it is queued here to be recorded (it was answered and
    /// recorded nowhere); with the queue full, 503 and nothing to record.
    #[tokio::test(start_paused = true)]
    async fn a_forward_past_the_deadline_answers_the_fallback_only_once_queued() {
        use crate::api::owners::{OwnerRecord, Owners};
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owners = Owners::default();
        owners.apply(&OwnerRecord {
            partition: 0,
            instance: "owner".into(),
            url: format!("http://{}", silent.local_addr().unwrap()),
            generation: 1,
            owned: true,
        });
        let owner = owners.owner(0).unwrap();
        let metrics = Arc::new(Metrics::new());
        let config = crate::config::Config::default();
        let cluster = Cluster::new(&config, Arc::new(owners), metrics.clone()).unwrap();
        let (tx, rx) = super::super::call::queue(1, metrics.api_queue_depth.clone());
        let limits = Limits::from_config(&config.processing);
        let state = ApiState::new(tx, limits, Duration::ZERO, Action::Review, None, metrics);
        let payload = Bytes::from_static(br#"{"event_id":"f1","ts":1700000000000,"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}"#);
        let deadline = (Instant::now(), Duration::from_millis(30));
        let headers = HeaderMap::new();
        let forwarded = forward(&state.0, &cluster, &owner, &payload, &headers, deadline);
        let (outcome, response) = forwarded.await;
        assert_eq!(
            (outcome, response.status()),
            (Outcome::Timeout, StatusCode::OK)
        );
        let answered = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let queued = rx.recv(Duration::ZERO).expect("queued to be recorded");
        assert_eq!(queued.payload, payload);
        assert_eq!(
            queued.ticket.take(),
            Err(&answered[..]),
            "the fallback answered"
        );
        // The queue (of one) is full: no fallback is given, so none is owed.
        let (tx, _rx) = super::super::call::queue(1, IntGauge::new("d", "d").unwrap());
        let call = |t: Arc<Ticket>| Call {
            payload: payload.clone(),
            kind: CallKind::Decide,
            received: Instant::now(),
            ticket: t,
            reply: oneshot::channel().0,
        };
        tx.try_send(call(Arc::default())).unwrap();
        let full = ApiState::new(
            tx,
            limits,
            Duration::ZERO,
            Action::Review,
            None,
            Arc::new(Metrics::new()),
        );
        let (outcome, response) =
            forward(&full.0, &cluster, &owner, &payload, &headers, deadline).await;
        assert_eq!(
            (outcome, response.status()),
            (Outcome::Unavailable, StatusCode::SERVICE_UNAVAILABLE)
        );
        drop(silent);
    }

    #[test]
    fn timeout_ms_is_read_from_the_query_and_bounded() {
        let t = |u: &str| timeout_of(&u.parse::<Uri>().unwrap());
        assert_eq!(t("/v1/decisions"), Ok(None));
        assert_eq!(
            t("/v1/decisions?timeout_ms=20"),
            Ok(Some(Duration::from_millis(20)))
        );
        assert!(t("/v1/decisions?timeout_ms=0").is_err());
        assert!(t("/v1/decisions?timeout_ms=x").is_err());
        assert!(t("/v1/decisions?timeout_ms=60001").is_err());
    }
}
