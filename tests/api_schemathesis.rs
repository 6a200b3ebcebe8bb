//! schemathesis (PyPI; `scripts/python-deps.sh` installs it into .tools/python,
//! which `.ci/run` calls) generates calls from `config/openapi.yaml`, valid and
//! not, against a processor with the API on over the mock cluster. No call may
//! get a 5xx or an answer the document does not declare, the processor stays
//! up, and afterwards it still decides Kafka events and calls.
//!
//! Skips loudly where the virtualenv lacks schemathesis (CI always has it).

mod common;

use common::api::{post, ApiProcessor};
use common::{read_until, Cluster, Output};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The Python with schemathesis: `$FRAUDSTREAM_PYTHON`, else .tools/python.
fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("FRAUDSTREAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".tools/python/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import schemathesis"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

fn payment(id: &str, account: &str) -> Vec<u8> {
    let ts = fraudstream::source::time::now_ms() - 1000;
    format!(
        r#"{{"event_id":"{id}","ts":{ts},"account_id":"{account}","terminal_id":"t-1","amount":30,"currency":"EUR"}}"#
    )
    .into_bytes()
}

#[test]
fn schemathesis_finds_nothing_and_the_processor_keeps_deciding() {
    let Some(python) = python() else {
        eprintln!(
            "*** SKIPPED: no Python with schemathesis at $FRAUDSTREAM_PYTHON or .tools/python (run scripts/python-deps.sh) ***"
        );
        return;
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rules = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(2);
    let mut config = cluster.config.clone();
    config.api.addr = "127.0.0.1:0".into();
    config.api.timeout_ms = 30_000;
    config.rules.dir = rules.path().display().to_string();
    config.processing.commit_interval_ms = 20;
    let api = ApiProcessor::start(&config);
    api.wait_ready();

    let report = tempfile::tempdir().unwrap();
    let run = Command::new(&python)
        .args(["-m", "schemathesis.cli", "run"])
        .arg(root.join("config/openapi.yaml"))
        .args(["--url", &format!("http://{}", api.addr)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "300",
            "--seed",
            "7",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--report-dir",
        ])
        .arg(report.path())
        .env("NO_COLOR", "1")
        .current_dir(report.path())
        .output()
        .expect("schemathesis runs");
    let text =
        String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "schemathesis found problems:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("{}", lines[lines.len().saturating_sub(12)..].join("\n"));
    let calls: u64 = fraudstream::ops::metrics::ApiOutcome::ALL
        .iter()
        .map(|o| api.metrics.api_calls.with_label_values(&[o.code()]).get())
        .sum();
    assert!(
        calls >= 100,
        "schemathesis made only {calls} calls:\n{text}"
    );
    assert_eq!(
        api.metrics
            .api_calls
            .with_label_values(&["unavailable"])
            .get(),
        0
    );

    // Still deciding, by both paths.
    let r = post(
        &api.addr,
        "/v1/decisions",
        &[],
        &payment("after-fuzz", "acc-a"),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    cluster.produce(
        &config.kafka.input_topic,
        &[("acc-k".to_string(), payment("kafka-after-fuzz", "acc-k"))],
    );
    let mut reader = cluster.reader();
    let mut out = Output::default();
    read_until(&mut reader, &mut out, Duration::from_secs(60), |o| {
        o.decisions.contains_key("kafka-after-fuzz")
    });
    api.stop();
}
