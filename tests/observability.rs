//! The shipped dashboard and alerts are valid PromQL and only use metrics the
//! process exports; the live exposition passes `promtool check metrics`; the
//! alerts pass their unit tests; and a real Prometheus server, scraping a live
//! demo, gets data for every dashboard query and fires alerts when provoked.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `binary` (from the Debian package `prometheus`) runs; a loud skip notice if not.
fn installed(binary: &str) -> bool {
    let ok = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip_notice(&format!(
            "*** SKIPPED: {binary} not installed (scripts/install-prometheus.sh installs it) ***"
        ));
    }
    ok
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

/// The dashboard's queries, with Grafana's interval variables replaced by what
/// Grafana would use for a short time range (`$__rate_interval` is at least four
/// scrape intervals), so they are plain PromQL.
fn dashboard_queries(grafana: &Path) -> Vec<String> {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(grafana.join("dashboards/fraudstream.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let mut e = t["expr"].as_str().unwrap().to_string();
            for (var, value) in [
                ("$__rate_interval", "1m"),
                ("${__rate_interval}", "1m"),
                ("$__interval", "1m"),
                ("${__interval}", "1m"),
                ("$__range", "15m"),
                ("${__range}", "15m"),
            ] {
                e = e.replace(var, value);
            }
            // A variable this list does not know would reach Prometheus as a syntax error
            // (a `$` before anything else is a regex anchor in a label matcher).
            let unknown_variable = e.match_indices('$').any(|(i, _)| {
                e[i + 1..].starts_with(|c: char| c == '{' || c == '_' || c.is_alphabetic())
            });
            assert!(
                !unknown_variable,
                "dashboard query with an unknown variable: {e}"
            );
            exprs.push(e);
        }
    }
    exprs
}

#[test]
fn dashboard_and_alerts_are_valid_and_use_exported_metrics() {
    if !installed("promtool") {
        return;
    }
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
        let body = fraudstream::ops::http::get(&addr, "/metrics").unwrap().1;
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
    let exprs = dashboard_queries(&grafana);
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

/// Every alert fires once its condition has held for its `for:`, and not before,
/// and all are quiet on a healthy instance (grafana/alerts_test.yml): the alerts
/// whose `for:` is too long to wait for against a live server.
#[test]
fn alert_rules_pass_their_unit_tests() {
    if !installed("promtool") {
        return;
    }
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/alerts_test.yml");
    let (ok, out) = promtool_check(&["test", "rules", tests.to_str().unwrap()], None);
    assert!(ok, "promtool test rules:\n{out}");
}

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `N` distinct loopback addresses whose ports were free a moment ago.
fn free_loopback_addrs<const N: usize>() -> [String; N] {
    let listeners = [(); N].map(|()| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|l| l.local_addr().unwrap().to_string())
}

/// Polls `check` every 250 ms until it succeeds; panics with its last error after `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what}: not after {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The JSON body of a GET on Prometheus's HTTP API. HTTP/1.0, so the body is not chunked.
fn prometheus_api(addr: &str, path: &str) -> Result<serde_json::Value, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    s.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let (_, body) = response.split_once("\r\n\r\n").ok_or("no HTTP body")?;
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{path}: {body}"));
    }
    Ok(v["data"].clone())
}

/// The samples an instant query returns, as (labels, value).
fn instant_query(addr: &str, expr: &str) -> Result<Vec<(String, f64)>, String> {
    let encoded: String = expr
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let data = prometheus_api(addr, &format!("/api/v1/query?query={encoded}"))?;
    let samples = data["result"].as_array().ok_or("no result")?;
    Ok(samples
        .iter()
        .map(|s| {
            let value = s["value"][1].as_str().unwrap_or("NaN");
            (s["metric"].to_string(), value.parse().unwrap_or(f64::NAN))
        })
        .collect())
}

/// The alerts Prometheus holds, as (alert name, `pending` or `firing`).
fn active_alerts(addr: &str) -> Result<BTreeSet<(String, String)>, String> {
    let data = prometheus_api(addr, "/api/v1/alerts")?;
    Ok(data["alerts"]
        .as_array()
        .ok_or("no alerts")?
        .iter()
        .map(|a| {
            let name = a["labels"]["alertname"].as_str().unwrap_or("?");
            (
                name.to_string(),
                a["state"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect())
}

/// The shipped prometheus.yml, scraping `target` and evaluating the shipped rule
/// files (by absolute path, unmodified) every second. JSON is YAML to Prometheus.
fn test_prometheus_config(grafana: &Path, target: &str) -> String {
    let shipped = std::fs::read_to_string(grafana.join("prometheus.yml")).unwrap();
    let mut config: serde_json::Value = marked_yaml::from_yaml(0, &shipped).unwrap();
    config["global"]["scrape_interval"] = "1s".into();
    config["global"]["evaluation_interval"] = "1s".into();
    for file in config["rule_files"].as_array_mut().unwrap() {
        *file = grafana
            .join(file.as_str().unwrap())
            .to_str()
            .unwrap()
            .into();
    }
    let jobs = config["scrape_configs"].as_array_mut().unwrap();
    assert_eq!(jobs.len(), 1, "one scrape job expected: {shipped}");
    let targets = jobs[0]["static_configs"].as_array_mut().unwrap();
    assert_eq!(targets.len(), 1, "one static target expected: {shipped}");
    targets[0]["targets"] = serde_json::json!([target]);
    serde_json::to_string_pretty(&config).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

/// Starts `fraudstream demo` (unlimited events, watching a copy of rules/) and a
/// Prometheus server with the shipped config and alerts, and returns them with
/// the demo's rules directory and Prometheus's address.
fn start_demo_and_prometheus(dir: &Path, root: &Path) -> (Killed, Killed, PathBuf, String) {
    let rules = dir.join("rules");
    copy_dir(&root.join("rules"), &rules);
    let [target, addr, api] = free_loopback_addrs();
    let log = |name: &str| Stdio::from(std::fs::File::create(dir.join(name)).unwrap());
    let demo = Command::new(env!("CARGO_BIN_EXE_fraudstream"))
        .args(["demo", "--events", "0", "--rate", "200", "--quiet"])
        .args([
            "--metrics-addr",
            &target,
            "--rules",
            rules.to_str().unwrap(),
            "--api-addr",
            &api,
        ])
        .stdout(log("demo.out"))
        .stderr(log("demo.err"))
        .spawn()
        .expect("fraudstream demo starts");
    let demo = Killed(demo);
    call_the_api(api);
    let config = dir.join("prometheus.yml");
    let config_text = test_prometheus_config(&root.join("grafana"), &target);
    std::fs::write(&config, config_text).unwrap();
    let server = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(log("prometheus.out"))
        .stderr(log("prometheus.err"))
        .spawn()
        .expect("prometheus starts");
    (demo, Killed(server), rules, addr)
}

/// Posts a payment to the demo's decision API every 50 ms, so the API's panels
/// have data; stops once the demo is gone. The deadline is generous: a call
/// waits out the pipeline thread's transaction commits (BENCHMARKS.md), which
/// the default 50 ms does not always cover on a loaded machine, and a healthy
/// demo must not be overloaded.
fn call_the_api(addr: String) {
    std::thread::spawn(move || {
        let mut failures = 0;
        for i in 0.. {
            let ts = fraudstream::source::time::now_ms();
            let body = format!(
                r#"{{"event_id":"obs-{i}","ts":{ts},"account_id":"obs-{}","terminal_id":"t-1","amount":12.5,"currency":"EUR"}}"#,
                i % 50
            );
            match common::api::post(&addr, "/v1/decisions?timeout_ms=5000", &[], body.as_bytes()) {
                Ok(_) => failures = 0,
                Err(_) if failures > 600 => return,
                Err(_) => failures += 1,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// Waits until Prometheus evaluates every alert of the shipped `alerts` file.
fn wait_for_rules_evaluated(prom: &str, alerts: &Path, logs: impl Fn() -> String) {
    let text = std::fs::read_to_string(alerts).unwrap();
    let count = text.matches("- alert:").count();
    wait_for(
        "the shipped alerts are evaluated",
        Duration::from_secs(60),
        || {
            let data =
                prometheus_api(prom, "/api/v1/rules").map_err(|e| format!("{e}\n{}", logs()))?;
            let groups = data["groups"].as_array().into_iter().flatten();
            let healthy = groups
                .filter(|g| g["file"] == alerts.to_str().unwrap())
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .filter(|r| r["type"] == "alerting" && r["health"] == "ok")
                .count();
            match healthy {
                n if n == count => Ok(()),
                n => Err(format!("{n} of {count} alerts evaluated: {data}")),
            }
        },
    );
}

/// Waits until every query returns at least one sample and none is NaN; their samples.
fn wait_for_data(prom: &str, queries: &[String]) -> Vec<Vec<(String, f64)>> {
    wait_for(
        "every dashboard query returns data",
        Duration::from_secs(90),
        || {
            let mut results = Vec::new();
            let mut empty = Vec::new();
            for q in queries {
                let samples = instant_query(prom, q)?;
                if samples.is_empty() || samples.iter().any(|(_, v)| v.is_nan()) {
                    empty.push(format!("{q} -> {samples:?}"));
                }
                results.push(samples);
            }
            match empty.is_empty() {
                true => Ok(results),
                false => Err(format!("no data:\n{}", empty.join("\n"))),
            }
        },
    )
}

/// Waits until Prometheus holds exactly the `expected` alerts, as (name, state).
fn wait_for_alerts(prom: &str, what: &str, timeout: Duration, expected: &[(&str, &str)]) {
    let expected: BTreeSet<_> = expected
        .iter()
        .map(|(name, state)| (name.to_string(), state.to_string()))
        .collect();
    wait_for(what, timeout, || match active_alerts(prom)? {
        alerts if alerts == expected => Ok(()),
        alerts => Err(format!("{alerts:?}, expected {expected:?}")),
    });
}

/// A real Prometheus server scrapes a live `fraudstream demo` with the shipped
/// scrape config and alert rules: every dashboard query returns data, no alert
/// is pending or firing on a healthy demo, and alerts fire when a rule file is
/// rejected and when the process dies.
#[test]
fn a_real_prometheus_evaluates_the_dashboard_and_alerts() {
    if !installed("prometheus") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (mut demo, _server, rules, prom) = start_demo_and_prometheus(dir.path(), root);
    let logs = || {
        let tail = |f: &str| {
            let text = std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
            let lines: Vec<_> = text.lines().collect();
            format!(
                "{f}:\n{}",
                lines[lines.len().saturating_sub(20)..].join("\n")
            )
        };
        format!("{}\n{}", tail("prometheus.err"), tail("demo.err"))
    };
    wait_for_rules_evaluated(&prom, &root.join("grafana/alerts.yml"), logs);

    let queries = dashboard_queries(&root.join("grafana"));
    let results = wait_for_data(&prom, &queries);
    let zero: Vec<_> = (queries.iter().zip(&results))
        .filter(|(_, s)| s.iter().all(|(_, v)| *v == 0.0))
        .map(|(q, _)| q.as_str())
        .collect();
    println!(
        "dashboard: {} of {} queries returned data, {} of them only zeros:\n  {}",
        results.len(),
        queries.len(),
        zero.len(),
        zero.join("\n  ")
    );

    // Healthy: nothing pending once start-up is over, and nothing ever fired.
    let healthy = "no alert pending or firing on a healthy demo";
    wait_for_alerts(&prom, healthy, Duration::from_secs(60), &[]);
    let history = started.elapsed().as_secs() + 60;
    let fired = instant_query(
        &prom,
        &format!("ALERTS{{alertstate=\"firing\"}}[{history}s]"),
    );
    assert_eq!(fired, Ok(vec![]), "an alert fired on a healthy demo");

    // A rule file with a typo: the reload is rejected.
    let typo = "rules:\n  - id: typo\n    when: acount.tx_count_1h > 3\n    action: block\n";
    std::fs::write(rules.join("zz_typo.yaml"), typo).unwrap();
    let provoked = Instant::now();
    let rejected = ("FraudstreamRulesReloadRejected", "firing");
    wait_for_alerts(
        &prom,
        "a rejected rule file",
        Duration::from_secs(60),
        &[rejected],
    );
    println!(
        "alert fired: FraudstreamRulesReloadRejected, {:.1} s after a bad rule file",
        provoked.elapsed().as_secs_f64()
    );

    // The process dies: its instance is down, and no decisions are made.
    demo.0.kill().unwrap();
    demo.0.wait().unwrap();
    let killed = Instant::now();
    let down = [
        rejected,
        ("FraudstreamInstanceDown", "firing"),
        ("FraudstreamNoDecisions", "pending"),
    ];
    wait_for_alerts(&prom, "a dead process", Duration::from_secs(120), &down);
    println!(
        "alert fired: FraudstreamInstanceDown, {:.1} s after the demo was killed (for: 1m); \
         FraudstreamNoDecisions pending (for: 5m); {:.1} s in all",
        killed.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
