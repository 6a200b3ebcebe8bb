//! Calls for another instance's partitions: forwarded to the owner, whose
//! answer is relayed unchanged.
//!
//! Forwarding rather than redirecting: a payment client that does not follow
//! redirects (most authorisation services do not, for a POST) needs no change,
//! and needs no route to every instance, only to one; the price is one more hop
//! inside our own network. The owner is found in [`Owners`], which follows
//! rebalances through the owners topic.
//!
//! A forwarded call carries [`FORWARDED_BY`] and is never forwarded again: when
//! its partition moved on meanwhile, the owner-no-more answers 503 `not_owner`
//! with `Retry-After`, and the client retries against a table that caught up.
//! The deadline goes along as the remaining `timeout_ms`; the owner answers by
//! its deadline (its decision, or its fallback, which it records), and the
//! forwarder waits [`FORWARD_GRACE`] longer for that answer to cross the network.
//! Past that the caller gets the fallback, once this instance's pipeline has it
//! queued to be recorded (`crate::pipeline`'s `api` module says how).
//!
//! With `api.tls_cert`, calls are forwarded over TLS only, to `https://` owners,
//! checking them against `api.tls_client_ca` and presenting this instance's
//! certificate ([`tls::forward_client`]).

use super::call::MAX_CALL_TIMEOUT_MS;
use super::owners::{Owner, Owners};
use super::tls::{self, TlsError};
use super::Partitioner;
use crate::config::Config;
use crate::ops::metrics::{ForwardOutcome, Metrics};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::Response;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// Request header of a forwarded call: the forwarding instance's id.
pub const FORWARDED_BY: &str = "fraudstream-forwarded-by";
/// Response header of a decision: the id of the instance that decided it.
pub const DECIDED_BY: &str = "fraudstream-decided-by";
/// How much longer than the call's deadline the forwarder waits for the owner's answer.
pub const FORWARD_GRACE: Duration = Duration::from_millis(20);
/// Largest answer relayed from an owner (a decision is well under 16 KiB).
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Headers of the owner's answer that are part of the contract, relayed as sent.
const RELAYED: [&str; 5] = [
    "content-type",
    "retry-after",
    "www-authenticate",
    "fraudstream-replayed",
    DECIDED_BY,
];

/// Why a forwarded call got no answer from the owner.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The owner could not be reached, or the exchange broke off.
    #[error("the owner at {url} did not answer: {detail}")]
    Unreachable {
        /// The owner's advertised URL.
        url: String,
        /// What the HTTP client reported.
        detail: String,
    },
    /// The owner did not answer before the call's deadline (plus [`FORWARD_GRACE`]).
    #[error("the owner did not answer within the deadline")]
    Timeout,
}

/// What forwarding needs: the owners table, this instance's id and an HTTP client.
pub struct Cluster {
    owners: Arc<Owners>,
    instance: HeaderValue,
    partitioner: Partitioner,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    metrics: Arc<Metrics>,
}

impl Cluster {
    /// Forwarding for `config` (`kafka.instance_id`, `api.partitioner`) from
    /// `owners`; with `api.tls_cert`, over mutual TLS only ([`tls::forward_client`]),
    /// else over plain HTTP only. Fails on a TLS file that cannot serve.
    pub fn new(
        config: &Config,
        owners: Arc<Owners>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, TlsError> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        connector.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new();
        let connector = match tls::forward_client(&config.api)? {
            Some(tls) => https.with_tls_config(tls).https_only(),
            // Plain: the TLS side is never used (an https owner fails to connect).
            None => https.with_tls_config(no_tls()).https_or_http(),
        }
        .enable_http1()
        .wrap_connector(connector);
        let instance = HeaderValue::from_str(&config.kafka.instance_id)
            .unwrap_or_else(|_| HeaderValue::from_static("unnamed"));
        Ok(Self {
            owners,
            instance,
            partitioner: config.api.partitioner,
            client: Client::builder(TokioExecutor::new()).build(connector),
            metrics,
        })
    }

    /// The owner to forward a call for `account` to: `None` to decide it here
    /// (this instance owns the partition, no owner is known, or the call was
    /// forwarded already).
    pub fn route(&self, account: &str, headers: &HeaderMap) -> Option<Owner> {
        if headers.contains_key(FORWARDED_BY) {
            return None;
        }
        let n = self.owners.partitions();
        if n == 0 {
            return None;
        }
        let owner = self
            .owners
            .owner(self.partitioner.partition(account.as_bytes(), n))?;
        (owner.instance.as_bytes() != self.instance.as_bytes()).then_some(owner)
    }

    /// Marks a decision answered by this instance with [`DECIDED_BY`] (a relayed
    /// one keeps its owner's).
    pub fn sign(&self, response: &mut Response) {
        if response.status() == StatusCode::OK && !response.headers().contains_key(DECIDED_BY) {
            response
                .headers_mut()
                .insert(DECIDED_BY, self.instance.clone());
        }
    }

    /// Sends the call (`payload`, with the caller's `Authorization`) to `owner`
    /// with `remaining` of its deadline, and returns the owner's answer.
    pub async fn forward(
        &self,
        owner: &Owner,
        payload: Bytes,
        headers: &HeaderMap,
        remaining: Duration,
    ) -> Result<Response, ForwardError> {
        let ms = (remaining.as_millis() as u64).clamp(1, MAX_CALL_TIMEOUT_MS);
        let unreachable = |detail: String| ForwardError::Unreachable {
            url: owner.url.to_string(),
            detail,
        };
        let mut req = Request::post(format!("{}/v1/decisions?timeout_ms={ms}", owner.url))
            .header(header::CONTENT_TYPE, "application/json")
            .header(FORWARDED_BY, self.instance.clone());
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            req = req.header(header::AUTHORIZATION, auth);
        }
        let req = req
            .body(Body::from(payload))
            .map_err(|e| unreachable(e.to_string()))?;
        let exchange = async {
            let answer = self
                .client
                .request(req)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let (parts, body) = answer.into_parts();
            let body = axum::body::to_bytes(Body::new(body), MAX_ANSWER_BYTES)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let mut out = Response::new(Body::from(body));
            *out.status_mut() = parts.status;
            for name in RELAYED {
                if let Some(v) = parts.headers.get(name) {
                    out.headers_mut()
                        .insert(HeaderName::from_static(name), v.clone());
                }
            }
            Ok(out)
        };
        let result = match tokio::time::timeout(remaining + FORWARD_GRACE, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ForwardError::Timeout),
        };
        let outcome = match &result {
            Ok(r) if r.status() == StatusCode::OK => ForwardOutcome::Decided,
            Ok(_) => ForwardOutcome::Refused,
            Err(ForwardError::Unreachable { .. }) => ForwardOutcome::Unreachable,
            Err(ForwardError::Timeout) => ForwardOutcome::Timeout,
        };
        self.metrics
            .api_forwarded
            .with_label_values(&[outcome.code()])
            .inc();
        result
    }
}

/// A TLS client that trusts no one: for the plain HTTP client, which needs one.
fn no_tls() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use crate::config::{advertised_url_problem, Config};

    /// The advertised URL's scheme follows the API's TLS, and forwarding over
    /// TLS needs the CA to check owners with.
    #[test]
    fn with_tls_the_advertised_url_is_https_and_a_client_ca_is_set() {
        let cases = [
            ("http://h:1", "", "", None),
            (
                "https://h:1",
                "",
                "",
                Some("https://host:port when api.tls_cert"),
            ),
            (
                "http://h:1",
                "c.pem",
                "ca.pem",
                Some("https://host:port when api.tls_cert"),
            ),
            (
                "https://h:1",
                "c.pem",
                "",
                Some("api.tls_client_ca set too"),
            ),
            ("https://h:1", "c.pem", "ca.pem", None),
        ];
        for (url, cert, ca, problem) in cases {
            let mut c = Config::default();
            c.api.addr = "127.0.0.1:0".into();
            c.api.advertised_url = url.into();
            c.api.tls_cert = cert.into();
            c.api.tls_client_ca = ca.into();
            let found: Vec<String> = c
                .problems()
                .into_iter()
                .filter(|(key, _)| *key == "api.advertised_url")
                .map(|(_, why)| why)
                .collect();
            match problem {
                None => assert!(found.is_empty(), "{url} {cert} {ca}: {found:?}"),
                Some(p) => assert!(
                    found.len() == 1 && found[0].contains(p),
                    "{url} {cert} {ca}: {found:?}"
                ),
            }
        }
    }

    #[test]
    fn an_advertised_url_is_http_host_and_port() {
        for good in [
            "http://10.0.0.7:8080",
            "http://api-1.fraud.svc:80/",
            "http://[::1]:9000",
            "https://10.0.0.7:8443",
        ] {
            assert_eq!(advertised_url_problem(good), None, "{good}");
        }
        for bad in [
            "10.0.0.7:8080",
            "http://10.0.0.7",
            "ftp://10.0.0.7:8443",
            "http://10.0.0.7:8080/v1",
            "http://10.0.0.7:8080/?x=1",
            "http://:8080",
            "not a url",
        ] {
            let problem = advertised_url_problem(bad).unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(problem.contains(bad), "{problem}");
        }
    }
}
