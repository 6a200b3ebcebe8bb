//! The CSV replay holds every row to the live event contract, names bad rows by
//! line, never stops early, and replays input out of time order as if sorted.
//! Field cases 04, 09 and 10 (`tests/fixtures/field-cases/`) with their right values.

use fraudstream::features::load_feature_set;
use fraudstream::offline::replay::{replay, InputOptions, ReplayError, ReplayOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

const HEADER: &str = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD";

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/field-cases")
        .join(path)
}

fn features(args: &[&str], input: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fraudstream"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("features")
        .args(args)
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// The rows of a feature CSV by transaction id, and the header.
fn rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect::<Vec<_>>());
    (lines.next().unwrap(), lines.collect())
}

/// Field case 09: an impossible date is an error naming its line, and with
/// `--skip-invalid` the other 59 rows are written and the skip counted.
#[test]
fn field_case_09_impossible_date_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.csv");
    let input = fixture("09-csv-replay/impossible_date.csv");
    let range = ["--from", "2018-04-01", "--to", "2018-04-10"];
    let failed = features(&range, &input, &out);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "impossible_date.csv:7: invalid_timestamp: TX_DATETIME '2018-04-31 05:00:00'"
        ),
        "{stderr}"
    );
    assert!(!out.exists(), "no partial output is left behind");

    let skipped = features(&[&range[..], &["--skip-invalid"]].concat(), &input, &out);
    let stderr = String::from_utf8_lossy(&skipped.stderr);
    assert!(skipped.status.success(), "{stderr}");
    assert!(
        stderr.contains("60 rows read, 59 replayed, 59 written")
            && stderr.contains("1 invalid skipped (invalid_timestamp: 1)"),
        "{stderr}"
    );
    let ids: Vec<String> = rows(&out).1.into_iter().map(|r| r[0].clone()).collect();
    let want: Vec<String> = (0..60).filter(|&i| i != 5).map(|i| i.to_string()).collect();
    assert_eq!(ids, want);
}

/// Field case 09: a row dated after `--to` in the middle of the file does not
/// end the run: the other 59 rows are written and the row is counted.
#[test]
fn field_case_09_a_row_after_to_does_not_end_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.csv");
    let input = fixture("09-csv-replay/late_row_after_to.csv");
    let run = features(
        &["--from", "2018-04-01", "--to", "2018-04-10"],
        &input,
        &out,
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("60 rows read, 59 replayed, 59 written") && stderr.contains("1 after --to"),
        "{stderr}"
    );
    let ids: Vec<String> = rows(&out).1.into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids.len(), 59);
    assert!(!ids.contains(&"5".to_string()));
}

/// `--to` before `--from` is an error, as `train` and `backtest` make it, not
/// a run that writes no row and succeeds.
#[test]
fn features_refuses_a_range_that_ends_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.csv");
    let input = fixture("09-csv-replay/base.csv");
    let run = features(
        &["--from", "2018-04-10", "--to", "2018-04-01"],
        &input,
        &out,
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("--to '2018-04-01' is before --from '2018-04-10'"),
        "{stderr}"
    );
    assert!(!out.exists());
}

/// Field case 10: the row with amount -20.00 is rejected as the live parser
/// rejects it; skipped, customer 0's 30-day mean stays 20 on every row.
#[test]
fn field_case_10_negative_amount_is_rejected_and_never_enters_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.csv");
    let input = fixture("10-csv-contract/amount_negative.csv");
    let args = [
        "--feature-set",
        "handbook",
        "--from",
        "2018-04-01",
        "--to",
        "2018-05-10",
    ];
    let failed = features(&args, &input, &out);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        stderr.contains("amount_negative.csv:3: invalid_amount"),
        "{stderr}"
    );

    let ok = features(&[&args[..], &["--skip-invalid"]].concat(), &input, &out);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let (header, rows) = rows(&out);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let source = std::fs::read_to_string(&input).unwrap();
    let customer: HashMap<&str, &str> = source
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0], f[2])
        })
        .collect();
    let mean = col("CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW");
    let of_customer_0: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| customer[r[0].as_str()] == "0")
        .collect();
    assert!(of_customer_0.len() >= 30);
    for r in of_customer_0 {
        assert_eq!(r[mean], "20", "transaction {}", r[0]);
    }
}

/// Field case 04: run from the project root, `rules test` converts with the
/// shipped rates: 6000 JPY (about 34 EUR) is not a very large payment, 6000
/// EUR is. Without a rates file the JPY case fails and says why.
#[test]
fn field_case_04_rules_test_converts_currencies() {
    let rules = fixture("04-currency/rules");
    let run = |cwd: &Path| {
        Command::new(env!("CARGO_BIN_EXE_fraudstream"))
            .current_dir(cwd)
            .args(["rules", "test"])
            .arg(&rules)
            .output()
            .unwrap()
    };
    let ok = run(Path::new(env!("CARGO_MANIFEST_DIR")));
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}");
    assert!(
        stdout.contains("PASS very_large_amount_copy :: JPY 6000")
            && stdout.contains("2 passed, 0 failed"),
        "{stdout}"
    );

    // Rules see the amount as sent as `original_amount`, in the base as `amount`.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("as_sent.yaml"),
        "rules:\n  - id: as_sent\n    when: original_amount > 5000 and amount < 50\n    action: score\n    score: 0.1\n    reason: { code: s, text: s }\n    tests:\n      - { name: jpy, events: [ { account_id: a1, terminal_id: t1, amount: 6000, currency: jpy, ts: \"2024-01-01T10:00:00Z\" } ], expect: hit }\n      - { name: eur, events: [ { account_id: a1, terminal_id: t1, amount: 6000, currency: EUR, ts: \"2024-01-01T10:00:00Z\" } ], expect: miss }\n",
    )
    .unwrap();
    let as_sent = Command::new(env!("CARGO_BIN_EXE_fraudstream"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rules", "test"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&as_sent.stdout);
    assert!(
        as_sent.status.success() && stdout.contains("2 passed, 0 failed"),
        "{stdout}"
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let no_rates = run(elsewhere.path());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&no_rates.stdout),
        String::from_utf8_lossy(&no_rates.stderr),
    );
    assert_eq!(no_rates.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("no_fx_rate: no rate for JPY into EUR")
            && stdout.contains("config/fx_rates.toml not found"),
        "{stdout}"
    );
    assert!(stderr.contains("note: no rates file"), "{stderr}");
}

/// `n` transactions of a few customers and terminals, one every 1..600 s
/// (no two at the same second), sorted.
fn transactions(n: usize, seed: u64) -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut secs = 0u64;
    (0..n)
        .map(|id| {
            secs += 1 + rng.gen_range(0..600);
            let (day, s) = (1 + secs / 86_400, secs % 86_400);
            format!(
                "{id},2018-04-{day:02} {:02}:{:02}:{:02},{},{},{}.{:02},{}",
                s / 3600,
                s % 3600 / 60,
                s % 60,
                rng.gen_range(0..30),
                rng.gen_range(0..20),
                1 + rng.gen_range(0..300),
                rng.gen_range(0..100),
                u8::from(rng.gen_range(0..10) == 0)
            )
        })
        .collect()
}

/// Replays `lines` (under the header); each transaction's features, or the error.
fn replay_lines(
    lines: &[String],
    reorder_rows: usize,
    skip_invalid: bool,
) -> Result<HashMap<String, Vec<u64>>, ReplayError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.csv");
    let mut text = format!("{HEADER}\n");
    for l in lines {
        writeln!(text, "{l}").unwrap();
    }
    std::fs::write(&path, text).unwrap();
    let set = Arc::new(load_feature_set("model").unwrap());
    let opts = ReplayOptions {
        label_delay_ms: 86_400_000,
        input: InputOptions {
            reorder_rows,
            skip_invalid,
            ..InputOptions::default()
        },
        ..ReplayOptions::default()
    };
    let mut out = HashMap::new();
    replay(
        &path,
        set,
        &opts,
        |row, f| {
            out.insert(
                row.transaction_id.to_string(),
                f.iter().map(|v| v.to_bits()).collect(),
            );
        },
        |_| {},
    )?;
    Ok(out)
}

/// Input out of time order by fewer rows than the replay holds back gets, row
/// for row and bit for bit, the features of the sorted file.
#[test]
fn out_of_order_input_within_the_buffer_replays_as_sorted() {
    for seed in 0..6 {
        let sorted = transactions(3000, seed);
        let mut rng = SmallRng::seed_from_u64(100 + seed);
        let disorder = [2, 5, 40, 300][seed as usize % 4];
        // Each row moves back by up to `disorder` places.
        let mut keyed: Vec<(usize, &String)> = sorted
            .iter()
            .enumerate()
            .map(|(i, l)| (i + rng.gen_range(0..=disorder), l))
            .collect();
        keyed.sort_by_key(|k| k.0);
        let shuffled: Vec<String> = keyed.into_iter().map(|(_, l)| l.clone()).collect();
        assert!(shuffled != sorted, "seed {seed}: the shuffle moved rows");
        let want = replay_lines(&sorted, 0, false).unwrap();
        let got = replay_lines(&shuffled, disorder + 1, false).unwrap();
        assert_eq!(got.len(), 3000);
        assert!(
            got == want,
            "seed {seed}: features differ from the sorted replay"
        );
    }
}

/// A row older than everything the replay still holds is rejected with its
/// line (never cut short, never silently placed wrong); skipped, the rest replays.
#[test]
fn a_row_out_of_order_beyond_the_buffer_is_rejected_with_its_line() {
    let mut lines = transactions(200, 9);
    let late = lines.remove(20);
    lines.insert(150, late);
    let err = replay_lines(&lines, 10, false).unwrap_err().to_string();
    assert!(
        err.contains("tx.csv:152: out_of_order: event time 2018-04-0"),
        "{err}"
    );
    assert!(
        err.contains("more than the 10 rows a replay holds back"),
        "{err}"
    );
    let skipped = replay_lines(&lines, 10, true).unwrap();
    assert_eq!(skipped.len(), 199);
    assert!(!skipped.contains_key("20"));
    // Held back far enough, the same file replays whole.
    assert_eq!(replay_lines(&lines, 200, false).unwrap().len(), 200);
}
