//! The `fraudstream` binary as a user runs it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fraudstream"))
}

#[test]
fn demo_catches_fraud_writes_a_summary_and_never_logs_card_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let out = bin()
        .args([
            "--log-format",
            "json",
            "demo",
            "--events",
            "6000",
            "--rate",
            "20000",
            "--metrics-addr",
            "",
            "--quiet",
        ])
        .arg("--summary-json")
        .arg(&summary)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fraudstream demo summary"), "{stdout}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    for key in [
        "events",
        "decisions",
        "allow",
        "review",
        "block",
        "dlq",
        "frauds",
        "frauds_caught",
        "latency_us_p50",
        "latency_us_p99",
        "events_per_sec",
    ] {
        assert!(s[key].is_number(), "summary lacks {key}: {s}");
    }
    let n = |k: &str| s[k].as_u64().unwrap();
    // The model trained on the generated history scored every decision.
    let version = s["model_version"].as_str().unwrap();
    assert!(version.starts_with("demo@"), "{s}");
    let split = |k: &str, f: &str| s[k][f].as_u64().unwrap();
    for (by, total) in [
        ("frauds_caught_by", "frauds_caught"),
        ("legit_flagged_by", "legit_flagged"),
    ] {
        assert_eq!(
            split(by, "rules_only") + split(by, "model_only") + split(by, "both"),
            n(total),
            "{by} adds up to {total}: {s}"
        );
    }
    assert!(
        split("frauds_caught_by", "model_only") > 0,
        "the model adds catches: {s}"
    );
    let reasons = s["reasons"].as_object().unwrap();
    let model_reasons: u64 = reasons
        .iter()
        .filter(|(code, _)| code.starts_with("model:"))
        .map(|(_, v)| v[0].as_u64().unwrap())
        .sum();
    assert!(model_reasons > 0, "model reasons on frauds: {s}");
    assert!(
        stdout.contains("rules only") && stdout.contains(version),
        "{stdout}"
    );
    assert_eq!(n("events"), 6000);
    assert_eq!(
        n("decisions") + n("dlq"),
        6000,
        "every event is decided or dead-lettered"
    );
    assert_eq!(n("allow") + n("review") + n("block"), n("decisions"));
    assert!(n("dlq") > 0, "the demo stream includes malformed events");
    assert!(n("frauds") > 50, "{s}");
    assert!(
        n("frauds_caught") * 2 > n("frauds"),
        "most fraud is caught: {s}"
    );
    assert!(
        n("legit_flagged") * 50 < n("decisions"),
        "few good customers are bothered: {s}"
    );
    // Every generated event carries the generator's card number; DLQ lines
    // are logged (a shorter digit run may be any number).
    assert!(stderr.contains("dead-letter"), "DLQ events are logged");
    assert!(
        !stderr.contains(fraudstream::demo::generator::PAN),
        "a card number reached the logs"
    );
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

#[test]
fn a_config_with_an_unknown_key_is_rejected_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[kafka]\nbrokers = \"x:1\"\ncommit_intervall_ms = 5\n",
    )
    .unwrap();
    let out = bin().arg("run").arg("--config").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("commit_intervall_ms") && stderr.contains("bad.toml"),
        "{stderr}"
    );
}

#[test]
fn run_stops_cleanly_on_sigterm_and_commits_what_it_decided() {
    let cluster = common::Cluster::start(2);
    let now = fraudstream::source::time::now_ms();
    let events: Vec<_> = (0..3000)
        .map(|i| {
            common::event(
                &format!("e{i}"),
                &format!("a{}", i % 31),
                now - 5000 + i,
                9.0,
            )
        })
        .collect();
    cluster.produce("payments", &events);
    let mut child = bin()
        .args([
            "run",
            "--brokers",
            &cluster.config.kafka.brokers,
            "--metrics-addr",
            "127.0.0.1:0",
            "--instance-id",
            "sigterm",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = cluster.reader();
    let mut out = common::Output::default();
    common::read_until(&mut reader, &mut out, Duration::from_secs(60), |o| {
        o.decisions.len() == 3000
    });
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "exit status {code}");
    let committed: i64 = common::committed(&cluster.config, 2).values().sum();
    assert_eq!(committed, 3000);
}

#[test]
fn features_replay_writes_one_row_per_transaction_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tx.csv");
    std::fs::write(
        &csv,
        "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO\n\
         0,2018-04-01 00:00:31,1,7,10.00,31,0,0,0\n\
         1,2018-04-02 10:00:00,1,7,30.00,0,1,1,1\n\
         2,2018-04-09 10:00:01,2,7,20.00,0,8,0,0\n\
         3,2018-04-10 06:00:00,1,8,50.00,0,9,0,0\n",
    )
    .unwrap();
    let out_path = dir.path().join("f.csv");
    let out = bin()
        .args([
            "features",
            "--feature-set",
            "handbook",
            "--from",
            "2018-04-02",
            "--to",
            "2018-04-10",
        ])
        .arg("--input")
        .arg(&csv)
        .arg("--out")
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_path).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0][0], "TRANSACTION_ID");
    assert_eq!(rows[0].len(), 16);
    assert_eq!(
        rows.iter().skip(1).map(|r| r[0]).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    let col = |name: &str| rows[0].iter().position(|c| *c == name).unwrap();
    // Customer 1 on 04-02: two payments in 7 days, mean 20.
    assert_eq!(rows[1][col("CUSTOMER_ID_NB_TX_7DAY_WINDOW")], "2");
    assert_eq!(rows[1][col("CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW")], "20");
    // Terminal 7 on 04-09 10:00:01: the delayed 7-day window holds the two payments
    // of 04-01 and 04-02, one of them fraud (its label arrived on 04-09 10:00).
    assert_eq!(rows[2][col("TERMINAL_ID_NB_TX_7DAY_WINDOW")], "2");
    assert_eq!(rows[2][col("TERMINAL_ID_RISK_7DAY_WINDOW")], "0.5");
    assert_eq!(rows[3][col("TX_DURING_NIGHT")], "1");
    let bad = bin()
        .args([
            "features",
            "--from",
            "2018-13-01",
            "--out",
            "/dev/null",
            "--input",
        ])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM-DD"));
}

#[test]
fn rules_check_and_test_report_file_line_col_and_exit_1() {
    let ok = bin()
        .args(["rules", "check", "rules"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let test = bin()
        .args(["rules", "test", "rules"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success()
            && out.contains(" passed, 0 failed")
            && out.contains("PASS card_testing_burst"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("velocity.yaml"),
        "rules:\n  - id: v\n    when: account.tx_count_10m > 5 and acount.tx_count_1h > 2\n    action: review\n    reason: { code: v, text: t }\n",
    )
    .unwrap();
    let bad = bin().args(["rules", "check"]).arg(&rules).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("rules/velocity.yaml:3:40: unknown feature 'acount.tx_count_1h'; did you mean 'account.tx_count_1h'?"), "{out}");

    std::fs::write(
        rules.join("velocity.yaml"),
        "rules:\n  - id: v\n    when: amount > 100\n    action: review\n    reason: { code: v, text: t }\n    tests:\n      - { name: small, features: { amount: 5 }, expect: hit }\n      - { name: big, features: { amount: 500 }, expect: hit }\n",
    )
    .unwrap();
    let failing = bin().args(["rules", "test"]).arg(&rules).output().unwrap();
    assert_eq!(failing.status.code(), Some(1));
    let out = String::from_utf8_lossy(&failing.stdout);
    assert!(
        out.contains("FAIL v :: small")
            && out.contains("PASS v :: big")
            && out.contains("1 passed, 1 failed"),
        "{out}"
    );

    let explain = bin()
        .args(["rules", "explain", "terminal.id in ['a'] and amount > 3"])
        .output()
        .unwrap();
    assert!(explain.status.success());
    assert!(String::from_utf8_lossy(&explain.stdout).contains("; terminal.id"));
}

/// Field cases 06, 07, 08 and 16 as rule tests (each failed before its fix:
/// 08 counted 4 payments, 16 read 16777216), and the forged-hash fixture.
#[test]
fn rules_test_passes_the_rule_field_cases_and_check_reports_list_values() {
    // Each with the number of its tests, so a case that stops being read fails.
    for (dir, passed) in [
        (
            "tests/fixtures/field-cases/06-missing-through-functions/rules",
            1,
        ),
        ("tests/fixtures/field-cases/07-list-values/rules", 3),
        ("tests/fixtures/field-cases/08-out-of-order/rules", 2),
        ("tests/fixtures/field-cases/16-exact-money/rules", 1),
        ("tests/fixtures/forged-hash/rules", 10),
    ] {
        let test = bin()
            .args(["rules", "test", dir])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&test.stdout);
        assert!(
            test.status.success() && out.contains(&format!("{passed} passed, 0 failed")),
            "{dir}: {out}{}",
            String::from_utf8_lossy(&test.stderr)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("lists")).unwrap();
    std::fs::write(
        rules.join("c.yaml"),
        "rules:\n  - id: c\n    when: currency in lists.cur and country in lists.cc\n    action: review\n    reason: { code: c, text: t }\n",
    )
    .unwrap();
    std::fs::write(rules.join("lists/cur.txt"), "EUR\n  EURO  # typo\n").unwrap();
    std::fs::write(rules.join("lists/cc.txt"), "fr\nFR\n").unwrap();
    let check = |want_code| {
        let out = bin().args(["rules", "check"]).arg(&rules).output().unwrap();
        assert_eq!(out.status.code(), Some(want_code));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let out = check(1);
    assert!(
        out.contains("rules/lists/cur.txt:2:3: 'EURO' can never match"),
        "{out}"
    );
    std::fs::write(rules.join("lists/cur.txt"), "EUR\n").unwrap();
    let out = check(0);
    assert!(
        out.contains("rules/lists/cc.txt:2:1: warning: 'FR' is listed again (first on line 1)"),
        "{out}"
    );
}
