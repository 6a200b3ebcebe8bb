//! The shipped dashboard and alerts are valid PromQL and only use metrics the
//! process exports; the live exposition passes `promtool check metrics`.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn promtool() -> Option<()> {
    let ok = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip_notice(
            "*** SKIPPED: promtool not installed (scripts/install-promtool.sh installs it) ***",
        );
    }
    ok.then_some(())
}

fn promtool_check(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if expr[i..].starts_with("fraudstream_") || expr[i..].starts_with("process_") {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            names.insert(expr[start..i].to_string());
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn dashboard_and_alerts_are_valid_and_use_exported_metrics() {
    let Some(()) = promtool() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let grafana = root.join("grafana");

    // A running processor with traffic: valid, invalid, labels.
    let cluster = Cluster::start(2);
    let now = fraudstream::source::time::now_ms();
    let mut gen = fraudstream::demo::Generator::new(
        7,
        200,
        500,
        now - 4000 * fraudstream::demo::Generator::step_ms(200),
    );
    let events: Vec<_> = (0..4000)
        .map(|_| {
            let g = gen.next(now);
            (g.key, g.payload)
        })
        .collect();
    cluster.produce("payments", &events);
    cluster.produce(
        "labels",
        &[(
            "acc-1".to_string(),
            br#"{"event_id":"ev-3","label":"fraud"}"#.to_vec(),
        )],
    );
    let running = Running::start(&cluster.config);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = running.serve_http(&rt);
    // Wait (bounded) for the periodic series too: lag comes with librdkafka's statistics.
    let deadline = Instant::now() + Duration::from_secs(90);
    let scrape = loop {
        let body = fraudstream::http::get(&addr, "/metrics").unwrap().1;
        if body.contains("fraudstream_consumer_lag{")
            && body.contains("fraudstream_state_entities{")
            && body.contains("fraudstream_events_decided_total 39")
        {
            break body;
        }
        assert!(Instant::now() < deadline, "metrics never complete:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    running.stop();

    let (ok, out) = promtool_check(&["check", "metrics"], Some(&scrape));
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}"
    );
    let exported: BTreeSet<String> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or("").to_string())
        .collect();

    // Alerts: valid rules, known metrics.
    let alerts = grafana.join("alerts.yml");
    let (ok, out) = promtool_check(&["check", "rules", alerts.to_str().unwrap()], None);
    assert!(ok, "promtool check rules alerts.yml:\n{out}");
    let alert_text = std::fs::read_to_string(&alerts).unwrap();
    let alert_exprs: Vec<String> = alert_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:").map(|e| e.trim().to_string()))
        .collect();
    assert!(alert_exprs.len() >= 5);

    // Dashboard: every query as a recording rule, checked by promtool.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(grafana.join("dashboards/fraudstream.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("dashboard_rules.yml");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        ));
    }
    std::fs::write(&rules_path, rules).unwrap();
    let (ok, out) = promtool_check(&["check", "rules", rules_path.to_str().unwrap()], None);
    assert!(ok, "a dashboard query is not valid PromQL:\n{out}");

    let mut unknown = BTreeSet::new();
    for e in exprs.iter().chain(&alert_exprs) {
        for name in metric_names(e) {
            if !exported.contains(&name) {
                unknown.insert(name);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "queries use metrics the process does not export: {unknown:?}"
    );

    let (ok, out) = promtool_check(
        &[
            "check",
            "config",
            grafana.join("prometheus.yml").to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{out}");
}
