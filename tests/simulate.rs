//! `fraudstream simulate` end to end: the same flags write the same bytes, and a
//! backtest over the file reports each fraud pattern against all genuine payments.

use fraudstream::model::evaluate::{auc_roc, average_precision};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fraudstream"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn simulate(dir: &Path, name: &str, seed: &str) -> (PathBuf, String) {
    let out = dir.join(name);
    let printed = run(bin()
        .args(["simulate", "--days", "45", "--customers", "1000"])
        .args(["--seed", seed, "--out"])
        .arg(&out));
    (out, printed)
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn the_same_flags_write_the_same_file_and_the_summary_names_every_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let (a, printed) = simulate(dir.path(), "a.csv.gz", "7");
    let (b, _) = simulate(dir.path(), "b.csv.gz", "7");
    let (c, _) = simulate(dir.path(), "c.csv.gz", "8");
    let bytes = std::fs::read(&a).unwrap();
    assert_eq!(bytes, std::fs::read(&b).unwrap());
    assert_ne!(bytes, std::fs::read(&c).unwrap());
    for name in [
        "card_testing",
        "account_takeover",
        "compromised_terminal",
        "slow_drain",
        "high_risk_burst",
        "bin_attack",
        "cross_border_spree",
    ] {
        assert!(printed.contains(name), "{printed}");
    }
}

#[test]
fn backtest_reports_each_pattern_against_all_genuine_payments() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = simulate(dir.path(), "sim.csv.gz", "3");
    let (scores, report) = (dir.path().join("scores.csv"), dir.path().join("report"));
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json");
    let printed = run(bin()
        .args(["backtest", "--from", "2024-01-31", "--to", "2024-02-14"])
        .arg("--input")
        .arg(&input)
        .arg("--model")
        .arg(&model)
        .arg("--scores-out")
        .arg(&scores)
        .arg("--report-dir")
        .arg(&report));
    assert!(printed.contains("per fraud pattern"), "{printed}");

    // The truth from the file, the scores from the backtest.
    let mut truth: BTreeMap<String, u8> = BTreeMap::new();
    for line in gunzip(&input).lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[7] == "1" {
            truth.insert(f[0].to_string(), f[8].parse().unwrap());
        }
    }
    let scored: Vec<(f64, Option<u8>)> = std::fs::read_to_string(&scores)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (f[1].parse().unwrap(), truth.get(f[0]).copied())
        })
        .collect();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap())
            .unwrap();
    let reported = summary["by_pattern"].as_array().unwrap();
    let codes: BTreeSet<u8> = scored.iter().filter_map(|s| s.1).collect();
    assert!(codes.len() >= 5, "patterns in the window: {codes:?}");
    assert_eq!(reported.len(), codes.len());
    for (p, code) in reported.iter().zip(&codes) {
        assert_eq!(p["scenario"].as_u64().unwrap(), u64::from(*code));
        let rows: Vec<(f64, bool)> = scored
            .iter()
            .filter(|s| s.1.is_none() || s.1 == Some(*code))
            .map(|s| (s.0, s.1.is_some()))
            .collect();
        let (s, l): (Vec<f64>, Vec<bool>) = rows.into_iter().unzip();
        let frauds = l.iter().filter(|&&x| x).count() as u64;
        assert_eq!(p["frauds"].as_u64().unwrap(), frauds);
        // Scores are written with six decimals: close, not equal.
        let auc = p["auc"].as_f64().unwrap();
        assert!((auc - auc_roc(&s, &l)).abs() < 1e-3, "{p}");
        let ap = p["average_precision"].as_f64().unwrap();
        assert!((ap - average_precision(&s, &l)).abs() < 1e-2, "{p}");
    }
    let total: u64 = reported.iter().map(|p| p["frauds"].as_u64().unwrap()).sum();
    assert_eq!(total, summary["frauds"].as_u64().unwrap());
}
