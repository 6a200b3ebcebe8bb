//! Helpers for the decision API tests: a blocking HTTP client, a processor
//! with the API on, and a check of responses against `config/openapi.yaml`.

use fraudstream::config::Config;
use fraudstream::decision::Decider;
use fraudstream::features::load_feature_set;
use fraudstream::model::ModelStore;
use fraudstream::ops::lifecycle::{Health, Shutdown};
use fraudstream::ops::metrics::Metrics;
use fraudstream::pipeline::{Encoded, PartitionWorker};
use fraudstream::pipeline::{PipelineError, RunStats};
use fraudstream::rules::reload::RuleStore;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

/// `c` as instance `id` of a group: its API on a free loopback port of its
/// own, advertised as `{advertised}:{port}` (`http://127.0.0.1`, `https://localhost`).
pub fn as_instance(mut c: Config, id: &str, advertised: &str) -> Config {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    c.kafka.instance_id = id.into();
    c.api.addr = format!("127.0.0.1:{port}");
    c.api.advertised_url = format!("{advertised}:{port}");
    c
}

/// One HTTP response: status, lower-cased head, body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    }
}

/// POSTs `body` to `path` on `addr` with the extra `headers`; `Err` when the
/// connection fails (the processor is down).
pub fn post(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    exchange(&mut s, addr, path, headers, body)
}

/// Writes one `POST` on `s` (plain or TLS) and reads the whole answer.
pub fn exchange<S: Read + Write>(
    s: &mut S,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    parse_response(&out)
}

/// The status, head and body of a whole HTTP response.
pub fn parse_response(out: &str) -> std::io::Result<Response> {
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {out:?}")))?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((out, ""));
    Ok(Response {
        status,
        head: head.to_lowercase(),
        body: body.to_string(),
    })
}

/// A processor with the decision API on, in this process.
pub struct ApiProcessor {
    pub addr: String,
    pub stop: Shutdown,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    handle: JoinHandle<Result<RunStats, PipelineError>>,
    _rt: tokio::runtime::Runtime,
}

impl ApiProcessor {
    /// Starts the pipeline and the API (on `config.api.addr`, e.g. `127.0.0.1:0`).
    pub fn start(config: &Config) -> ApiProcessor {
        if std::env::var_os("RUST_LOG").is_some() {
            fraudstream::cli::init_logging(fraudstream::config::LogFormat::Text, "info");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (stop, health, metrics) = (Shutdown::new(), Health::new(), Arc::new(Metrics::new()));
        let (addr, calls) = rt
            .block_on(fraudstream::api::serve(config, metrics.clone()))
            .expect("API");
        let (c, s, h, m) = (
            config.clone(),
            stop.clone(),
            health.clone(),
            metrics.clone(),
        );
        let handle = std::thread::spawn(move || {
            fraudstream::pipeline::run_with_api(
                &c,
                fraudstream::rules::reload::RulesSource::from_config(&c.rules),
                m,
                h,
                s,
                calls,
            )
        });
        ApiProcessor {
            addr: addr.to_string(),
            stop,
            health,
            metrics,
            handle,
            _rt: rt,
        }
    }

    /// Waits until partitions are assigned and restored.
    pub fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !self.health.is_ready() {
            assert!(!self.handle.is_finished(), "the pipeline stopped");
            assert!(std::time::Instant::now() < deadline, "never ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(self) -> RunStats {
        self.stop.trigger();
        self.handle
            .join()
            .expect("pipeline thread")
            .expect("pipeline result")
    }
}

/// The `model` feature set and shipped model, so every score depends on the
/// account's whole window state; the API on an ephemeral port.
pub fn api_config(cluster: &super::Cluster) -> Config {
    let mut c = cluster.config.clone();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    c.features.set = "default".into();
    c.model.path = root.join("models/handbook.json").display().to_string();
    // No rules: the model alone decides (the starter rules read other features).
    let rules =
        std::env::temp_dir().join(format!("fraudstream-api-test-rules-{}", std::process::id()));
    std::fs::create_dir_all(&rules).unwrap();
    c.rules.dir = rules.display().to_string();
    c.api.addr = "127.0.0.1:0".into();
    c.processing.commit_interval_ms = 20;
    c.kafka
        .consumer
        .insert("fetch.wait.max.ms".into(), "10".into());
    c
}

/// The decisions one worker makes for `payloads` in this order: the reference.
pub fn reference(config: &Config, payloads: &[&[u8]]) -> Vec<serde_json::Value> {
    let set = Arc::new(load_feature_set(&config.features.set).unwrap());
    let rules = Arc::new(
        RuleStore::load(
            fraudstream::rules::reload::RulesSource::from_config(&config.rules),
            set.clone(),
        )
        .unwrap(),
    );
    let (models, errors) = ModelStore::open(config.model.paths().0, None, set.clone());
    assert!(errors.is_empty(), "{errors:?}");
    let mut decider = Decider::new(rules, set.len(), None).with_models(Arc::new(models));
    let mut w = PartitionWorker::new(
        set,
        fraudstream::features::EngineLimits::from_config(&config.state),
        1000,
        None,
    );
    let mut out = Encoded::default();
    let limits = fraudstream::source::event::Limits::from_config(&config.processing);
    payloads
        .iter()
        .map(|p| {
            w.decide(p, &limits, &mut decider, Instant::now(), &mut out)
                .unwrap()
                .unwrap();
            comparable(&serde_json::from_slice(&out.decision).unwrap())
        })
        .collect()
}

pub fn comparable(v: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({"event_id": v["event_id"], "action": v["action"], "score": v["score"], "reasons": v["reasons"]})
}

/// The shipped OpenAPI document as JSON (YAML scalars arrive as strings).
pub fn openapi() -> Value {
    let path = format!("{}/config/openapi.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    marked_yaml::from_yaml(0, &text).expect("config/openapi.yaml parses")
}

/// Checks a response of `POST /v1/decisions` against the document: its status
/// is declared, and its JSON body matches the declared schema.
pub fn check_against_openapi(doc: &Value, r: &Response) {
    let responses = &doc["paths"]["/v1/decisions"]["post"]["responses"];
    let declared = &responses[r.status.to_string()];
    assert!(
        declared.is_object(),
        "status {} is not in config/openapi.yaml: {}",
        r.status,
        r.body
    );
    let Some(schema) = declared
        .get("content")
        .map(|c| &c["application/json"]["schema"])
    else {
        return;
    };
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let body: Value = r.json();
    if let Err(e) = validate(doc, schema, &body, "$") {
        panic!(
            "status {} body does not match config/openapi.yaml: {e}\n{}",
            r.status, r.body
        );
    }
    for name in declared
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        // Headers declared for an error status are always sent with it.
        if r.status == 429 || r.status == 503 || r.status == 401 {
            assert!(
                r.header(&name.to_lowercase()).is_some(),
                "status {} lacks {name}",
                r.status
            );
        }
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.parse().ok())
}

/// The JSON Schema subset the document uses: $ref, type, required, properties,
/// additionalProperties, enum, const, minimum, maximum, items, oneOf.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return validate(doc, &doc["components"]["schemas"][name], v, at);
    }
    if let Some(alts) = schema.get("oneOf").and_then(Value::as_array) {
        let ok = alts
            .iter()
            .filter(|s| validate(doc, s, v, at).is_ok())
            .count();
        return if ok == 1 {
            Ok(())
        } else {
            Err(format!("{at}: matches {ok} of oneOf"))
        };
    }
    let same = |want: &Value| match (want, v) {
        (Value::String(w), Value::String(g)) => w == g,
        (Value::String(w), other) => w.as_str() == other.to_string(),
        (w, g) => w == g,
    };
    if let Some(c) = schema.get("const") {
        if !same(c) {
            return Err(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.iter().any(same) {
            return Err(format!("{at}: {v} not in {e:?}"));
        }
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let type_ok = match ty {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some(other) => return Err(format!("{at}: unsupported type {other}")),
    };
    if !type_ok {
        return Err(format!("{at}: {v} is not a {}", ty.unwrap_or("?")));
    }
    if let (Some(min), Some(x)) = (schema.get("minimum").and_then(num), v.as_f64()) {
        if x < min {
            return Err(format!("{at}: {x} < {min}"));
        }
    }
    if let (Some(max), Some(x)) = (schema.get("maximum").and_then(num), v.as_f64()) {
        if x > max {
            return Err(format!("{at}: {x} > {max}"));
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            validate(doc, items, item, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = req.as_str().unwrap_or_default();
            if !obj.contains_key(req) {
                return Err(format!("{at}: missing {req}"));
            }
        }
        let closed = schema
            .get("additionalProperties")
            .is_some_and(|a| a == false || a == "false");
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, val, &format!("{at}.{k}"))?,
                None if closed => return Err(format!("{at}: undeclared property {k}")),
                None => {}
            }
        }
    }
    Ok(())
}
