//! Range checks of a loaded configuration: every value outside its range is
//! reported with its key and what was expected (turned into `file:line:col`
//! by the loader).

use super::{Config, Mode};

/// Most connections `metrics.max_connections` may allow.
pub const MAX_HTTP_CONNECTIONS: usize = 100_000;
/// Most event ids `processing.dedup_window_events` may remember per partition
/// (allocated up front).
pub const MAX_DEDUP_WINDOW_EVENTS: usize = 10_000_000;
/// Most calls `api.queue_capacity` may queue.
pub const MAX_API_QUEUE: usize = 1_000_000;
/// Most decisions `api.replay_entries` may keep (allocated at start, ~600 MB).
pub const MAX_API_REPLAY: usize = 1_000_000;
/// Longest timeout a `*_timeout_ms` key may give, ms (a day).
const MAX_TIMEOUT_MS: u64 = 86_400_000;

/// Values outside their range, as (key, what was expected), in the order checked.
#[derive(Default)]
struct Problems(Vec<(&'static str, String)>);

impl Problems {
    fn check(&mut self, ok: bool, key: &'static str, expected: &str) {
        if !ok {
            self.0.push((key, format!("expected {expected}")));
        }
    }
}

impl Config {
    /// Every value outside its range, as (key, what was expected).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Problems::default();
        self.stream_problems(&mut out);
        self.endpoint_problems(&mut out);
        out.check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            "a tracing filter such as info or fraudstream=debug,rdkafka=warn",
        );
        out.check(
            self.processing.min_event_time_ms().is_some(),
            "processing.min_event_time",
            &format!(
                "RFC 3339 (2000-01-01T00:00:00Z) or YYYY-MM-DD, not '{}'",
                self.processing.min_event_time
            ),
        );
        out.check(
            self.currency.base_currency().is_some(),
            "currency.base",
            &format!("an ISO 4217 currency code, not '{}'", self.currency.base),
        );
        out.0
    }

    /// The problems of `kafka`, `processing` and `state`.
    fn stream_problems(&self, out: &mut Problems) {
        let k = &self.kafka;
        for (value, key) in [
            (&k.brokers, "kafka.brokers"),
            (&k.group_id, "kafka.group_id"),
            (&k.input_topic, "kafka.input_topic"),
            (&k.output_topic, "kafka.output_topic"),
            (&k.dlq_topic, "kafka.dlq_topic"),
            (&k.checkpoint_topic, "kafka.checkpoint_topic"),
        ] {
            out.check(!value.trim().is_empty(), key, "a non-empty name");
        }
        let p = &self.processing;
        out.check(
            p.max_batch_events >= 1,
            "processing.max_batch_events",
            "at least 1",
        );
        out.check(
            p.max_message_bytes >= 1,
            "processing.max_message_bytes",
            "at least 1",
        );
        out.check(
            p.max_amount.is_finite() && p.max_amount > 0.0,
            "processing.max_amount",
            "a finite amount above 0",
        );
        out.check(
            p.max_future_skew_secs >= 0,
            "processing.max_future_skew_secs",
            "0 or more",
        );
        let timeout = format!("1 to {MAX_TIMEOUT_MS} ms");
        out.check(
            (1..=MAX_TIMEOUT_MS).contains(&p.kafka_timeout_ms),
            "processing.kafka_timeout_ms",
            &timeout,
        );
        out.check(
            p.dedup_window_events <= MAX_DEDUP_WINDOW_EVENTS,
            "processing.dedup_window_events",
            &format!("at most {MAX_DEDUP_WINDOW_EVENTS} (0 turns the check off)"),
        );
        out.check(
            self.state.max_entities >= 1,
            "state.max_entities",
            "at least 1",
        );
        out.check(
            self.state.max_events_per_entity >= 1,
            "state.max_events_per_entity",
            "at least 1",
        );
    }

    /// The problems of `metrics` and `api`.
    fn endpoint_problems(&self, out: &mut Problems) {
        let timeout = format!("1 to {MAX_TIMEOUT_MS} ms");
        let m = &self.metrics;
        out.check(
            (1..=MAX_HTTP_CONNECTIONS).contains(&m.max_connections),
            "metrics.max_connections",
            &format!("1 to {MAX_HTTP_CONNECTIONS}"),
        );
        for (value, key) in [
            (m.read_timeout_ms, "metrics.read_timeout_ms"),
            (m.write_timeout_ms, "metrics.write_timeout_ms"),
        ] {
            out.check((1..=MAX_TIMEOUT_MS).contains(&value), key, &timeout);
        }
        let a = &self.api;
        out.check(
            (1..=MAX_API_QUEUE).contains(&a.queue_capacity),
            "api.queue_capacity",
            &format!("1 to {MAX_API_QUEUE}"),
        );
        out.check(
            (1..=MAX_TIMEOUT_MS).contains(&a.timeout_ms),
            "api.timeout_ms",
            &timeout,
        );
        out.check(
            a.replay_entries <= MAX_API_REPLAY,
            "api.replay_entries",
            &format!("at most {MAX_API_REPLAY}"),
        );
        out.check(
            (1..=MAX_HTTP_CONNECTIONS).contains(&a.max_connections),
            "api.max_connections",
            &format!("1 to {MAX_HTTP_CONNECTIONS}"),
        );
        for (value, key) in [
            (a.read_timeout_ms, "api.read_timeout_ms"),
            (a.body_timeout_ms, "api.body_timeout_ms"),
            (a.write_timeout_ms, "api.write_timeout_ms"),
        ] {
            out.check((1..=MAX_TIMEOUT_MS).contains(&value), key, &timeout);
        }
        out.check(
            a.tls_cert.is_empty() == a.tls_key.is_empty(),
            "api.tls_key",
            "api.tls_cert and api.tls_key both set (TLS) or both empty (plain HTTP)",
        );
        out.check(
            a.tls_client_ca.is_empty() || !a.tls_cert.is_empty(),
            "api.tls_client_ca",
            "api.tls_cert and api.tls_key set too: client certificates need TLS",
        );
        out.check(
            a.addr.is_empty() || self.kafka.terminal_topic.is_empty(),
            "api.addr",
            "empty while kafka.terminal_topic is set: a call is decided by its account's worker, but terminal repartitioning decides on the terminal's; clear api.addr or kafka.terminal_topic",
        );
        out.check(
            a.addr.is_empty() || self.processing.mode == Mode::Decide,
            "api.addr",
            "empty while processing.mode = \"passthrough\": passthrough decides nothing; clear api.addr or set processing.mode = \"decide\"",
        );
        if !a.advertised_url.is_empty() {
            let url = advertised_url_problem(&a.advertised_url);
            out.check(
                url.is_none(),
                "api.advertised_url",
                &url.unwrap_or_default(),
            );
            out.check(
                !a.addr.is_empty(),
                "api.advertised_url",
                "api.addr set too (forwarding is between decision APIs)",
            );
            let tls = !a.tls_cert.is_empty();
            out.check(
                a.advertised_url.starts_with("https://") == tls,
                "api.advertised_url",
                "https://host:port when api.tls_cert is set (forwarded calls go over the API's TLS), http://host:port when not",
            );
            out.check(
                !tls || !a.tls_client_ca.is_empty(),
                "api.advertised_url",
                "api.tls_client_ca set too with api.tls_cert: forwarded calls check the owner's certificate against it and present this instance's (mutual TLS)",
            );
            out.check(
                self.kafka
                    .consumer
                    .get("group.protocol")
                    .is_none_or(|p| p == "classic"),
                "api.advertised_url",
                "the classic group protocol (owner records are ordered by its generations)",
            );
        }
    }
}

/// What is wrong with `url` as an `api.advertised_url`, if anything: it must be
/// `http://host:port` or `https://host:port` (the address other instances reach
/// this one's API at).
pub fn advertised_url_problem(url: &str) -> Option<String> {
    let expected = || {
        format!("an http(s)://host:port URL other instances reach this one's API at, not '{url}'")
    };
    let Ok(uri) = url.parse::<axum::http::Uri>() else {
        return Some(expected());
    };
    let ok = matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.host().is_some_and(|h| !h.is_empty())
        && uri.port_u16().is_some()
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none();
    (!ok).then(expected)
}
