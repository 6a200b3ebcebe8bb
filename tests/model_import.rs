//! `fraudstream model import`: LightGBM and XGBoost models score what the
//! libraries themselves predict.
//!
//! The handbook test trains both libraries in Python (the virtualenv of
//! `scripts/python-deps.sh`, or `$FRAUDSTREAM_PYTHON`) on features exported by
//! `fraudstream features`, and skips loudly where either is absent.

mod common;

use fraudstream::features::{load_feature_set, FeatureSet};
use fraudstream::model::import::{import, Library};
use fraudstream::model::trees::{Missing, LEAF};
use fraudstream::model::{BlockScratch, Model, Scratch};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Largest difference allowed between a library's probability and ours.
const TOLERANCE: f64 = 1e-6;

fn fraudstream(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fraudstream"))
        .args(args)
        .output()
        .expect("run fraudstream");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fraudstream {args:?}: {text}");
    text
}

/// The Python interpreter that has LightGBM, XGBoost and pandas, or `None`
/// (with a loud notice).
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("FRAUDSTREAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/python/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import lightgbm, xgboost, pandas"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::skip_notice(&format!(
            "*** SKIPPED: no Python with lightgbm, xgboost and pandas at {} (run scripts/python-deps.sh or set FRAUDSTREAM_PYTHON) ***",
            python.display()
        ));
    }
    ok.then_some(python)
}

/// Rows of a scored CSV: the feature set's columns (by name, empty = missing)
/// as processor feature vectors, and the named probability columns.
struct Scored {
    features: Vec<f64>,
    probabilities: Vec<Vec<f64>>,
    rows: usize,
    missing: usize,
}

fn read_scored(path: &Path, set: &FeatureSet, columns: &[&str]) -> Scored {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let slot: Vec<Option<usize>> = header.iter().map(|h| set.index_of(h)).collect();
    let wanted: Vec<usize> = columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == c)
                .expect("probability column")
        })
        .collect();
    let mut s = Scored {
        features: Vec::new(),
        probabilities: vec![Vec::new(); columns.len()],
        rows: 0,
        missing: 0,
    };
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let mut row = vec![f64::NAN; set.len()];
        for (cell, slot) in cells.iter().zip(&slot) {
            if let Some(i) = slot {
                row[*i] = if cell.is_empty() {
                    f64::NAN
                } else {
                    cell.parse().unwrap()
                };
                s.missing += usize::from(cell.is_empty());
            }
        }
        for (p, &c) in s.probabilities.iter_mut().zip(&wanted) {
            p.push(cells[c].parse().unwrap());
        }
        s.features.extend(row);
        s.rows += 1;
    }
    s
}

/// Scores every row with `model`, one by one and in one block; returns the
/// largest difference from `want` (and checks the two ways agree to the bit).
fn largest_difference(model: &Model, scored: &Scored, width: usize, want: &[f64]) -> f64 {
    let mut block = vec![0.0; scored.rows];
    model.score_block(
        &scored.features,
        width,
        &mut BlockScratch::default(),
        &mut block,
    );
    let mut scratch = Scratch::default();
    let mut worst: f64 = 0.0;
    for (k, row) in scored.features.chunks(width).enumerate() {
        let p = model.score(row, &mut scratch);
        assert_eq!(
            p.to_bits(),
            block[k].to_bits(),
            "row {k}: block and row walks differ"
        );
        worst = worst.max((p - want[k]).abs());
    }
    worst
}

/// The handbook's chapter-3 protocol: features of the training week
/// (2018-07-25..31) and of the test week (2018-08-08..14, the `ch3-test-ids`)
/// exported by `fraudstream features`, a share of values blanked so that
/// missing values go both ways, both libraries trained in Python, each
/// model imported with `fraudstream model import` and scored on the same rows.
#[test]
fn imported_models_score_what_the_libraries_predict_on_the_handbook_test_week() {
    let Some(data) = common::handbook_dir() else {
        return;
    };
    let Some(python) = python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let input = data.join("transactions.csv.gz");
    for (week, from, to) in [
        ("train", "2018-07-25", "2018-07-31"),
        ("test", "2018-08-08", "2018-08-14"),
    ] {
        let out = dir.join(format!("{week}.csv"));
        fraudstream(&[
            "features",
            "--input",
            input.to_str().unwrap(),
            "--from",
            from,
            "--to",
            to,
            "--feature-set",
            "model",
            "--out",
            out.to_str().unwrap(),
        ]);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/train_reference_models.py");
    let status = Command::new(&python)
        .arg(&script)
        .args([
            "--train",
            "train.csv",
            "--test",
            "test.csv",
            "--blank",
            "0.05",
            "--out",
            "ref",
        ])
        .arg("--labels")
        .arg(&input)
        .arg("--test-ids")
        .arg(data.join("ch3-test-ids.csv.gz"))
        .current_dir(dir)
        .status()
        .expect("run the Python trainer");
    assert!(status.success(), "{} failed", script.display());
    let set = load_feature_set("model").unwrap();
    let scored = read_scored(&dir.join("ref/scored.csv"), &set, &["lightgbm", "xgboost"]);
    assert_eq!(scored.rows, 58_264, "the chapter-3 test ids");
    assert!(
        scored.missing > 50_000,
        "missing values: {}",
        scored.missing
    );
    for (library, file, column) in [
        ("lightgbm", "lightgbm.txt", 0),
        ("lightgbm", "lightgbm.json", 0),
        ("xgboost", "xgboost.json", 1),
    ] {
        let out = dir.join(format!("imported-{file}"));
        let said = fraudstream(&[
            "model",
            "import",
            "--from",
            library,
            dir.join("ref").join(file).to_str().unwrap(),
            "--feature-set",
            "model",
            "--out",
            out.to_str().unwrap(),
        ]);
        let model = Model::load(&out, &set).unwrap();
        let worst = largest_difference(&model, &scored, set.len(), &scored.probabilities[column]);
        eprintln!(
            "{file}: largest difference {worst:e} over {} rows ({})",
            scored.rows,
            said.trim()
        );
        assert!(worst <= TOLERANCE, "{file}: {worst:e}");
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/model-import")
        .join(name)
}

/// Small models of both libraries (`scripts/make_import_fixtures.py`), scored
/// on rows whose values sit on and one step around every threshold (in 64 bits,
/// and around XGBoost's 32-bit rounding) or are missing, also where the model
/// saw no missing value in training: scores equal the libraries' own.
#[test]
fn imported_models_score_like_the_libraries_on_and_around_every_threshold() {
    let set = load_feature_set("model").unwrap();
    let scored = read_scored(&fixture("probes.csv"), &set, &["lightgbm", "xgboost"]);
    assert!(scored.rows == 3000 && scored.missing > 1000);
    for (library, file, column) in [
        (Library::Lightgbm, "lightgbm.txt", 0),
        (Library::Lightgbm, "lightgbm.json", 0),
        (Library::Xgboost, "xgboost.json", 1),
    ] {
        let imported = import(library, &fixture(file), &set, file).unwrap();
        let g = imported.gbt.as_ref().unwrap();
        assert!(
            g.nodes.iter().any(|n| n.missing == Missing::Right)
                && g.nodes
                    .iter()
                    .any(|n| n.missing == Missing::Left && n.feature != LEAF),
            "{file}: missing values go both ways"
        );
        let model = Model::new(file, imported, &set).unwrap();
        let worst = largest_difference(&model, &scored, set.len(), &scored.probabilities[column]);
        eprintln!("{file}: largest difference {worst:e}");
        assert!(worst <= TOLERANCE, "{file}: {worst:e}");
    }
}

/// The rows of a library's explanations (`TRANSACTION_ID`, then a value per
/// feature and the bias).
fn explanations(text: &str) -> impl Iterator<Item = Vec<f64>> + '_ {
    text.lines().skip(1).map(|line| {
        line.split(',')
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect()
    })
}

/// An imported XGBoost model explains a score as XGBoost itself does
/// (`approx_contribs`, the Saabas attribution explanations fall back to for
/// trees without cover): its splits
/// carry the hessian-weighted means of their leaves.
#[test]
fn imported_xgboost_models_explain_as_xgboost_does() {
    let set = load_feature_set("model").unwrap();
    let file = import(Library::Xgboost, &fixture("xgboost.json"), &set, "x").unwrap();
    let g = file.gbt.as_ref().unwrap();
    let scored = read_scored(&fixture("probes.csv"), &set, &["xgboost"]);
    let text = std::fs::read_to_string(fixture("xgboost-contributions.csv")).unwrap();
    let slots: Vec<usize> = file
        .features
        .iter()
        .map(|f| set.index_of(f).unwrap())
        .collect();
    let bias = g.base
        + g.roots
            .iter()
            .map(|&r| g.nodes[r as usize].value)
            .sum::<f64>();
    let mut worst: f64 = 0.0;
    for (want, row) in explanations(&text).zip(scored.features.chunks(set.len())) {
        let x: Vec<f64> = slots.iter().map(|&s| row[s]).collect();
        let mut got = vec![0.0; x.len()];
        g.contributions(&x, &mut got);
        got.push(bias);
        for (a, b) in got.iter().zip(&want) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!("largest difference from XGBoost's contributions: {worst:e}");
    assert!(worst < 1e-5, "{worst:e}");
}

/// Imported models explain a score as their library's exact TreeSHAP does
/// (XGBoost's `pred_contribs=True`, LightGBM's `pred_contrib=True`): each
/// feature's value and the expected margin, from the cover the import reads
/// (XGBoost's hessian sums, LightGBM's training counts).
#[test]
fn imported_models_explain_as_the_libraries_treeshap_does() {
    let set = load_feature_set("model").unwrap();
    let scored = read_scored(&fixture("probes.csv"), &set, &["xgboost"]);
    // XGBoost computes in 32 bits, LightGBM in 64.
    for (library, model, reference, tolerance) in [
        (Library::Xgboost, "xgboost.json", "xgboost-shap.csv", 1e-5),
        (Library::Lightgbm, "lightgbm.txt", "lightgbm-shap.csv", 1e-9),
        (
            Library::Lightgbm,
            "lightgbm.json",
            "lightgbm-shap.csv",
            1e-9,
        ),
    ] {
        let file = import(library, &fixture(model), &set, model).unwrap();
        assert!(
            file.gbt.as_ref().unwrap().has_cover(),
            "{model}: cover read"
        );
        let m = Model::new(model, file, &set).unwrap();
        let text = std::fs::read_to_string(fixture(reference)).unwrap();
        let mut scratch = Scratch::default();
        let mut worst: f64 = 0.0;
        for (want, row) in explanations(&text).zip(scored.features.chunks(set.len())) {
            let mut got = m.contributions(row, &mut scratch).to_vec();
            got.push(m.expected_margin());
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                worst = worst.max((a - b).abs());
            }
        }
        eprintln!("{model}: largest difference from the library's TreeSHAP: {worst:e}");
        assert!(worst < tolerance, "{model}: {worst:e}");
    }
}

/// What the libraries write that cannot be imported is refused with a message
/// that says what and where; nothing is written.
#[test]
fn models_that_cannot_be_imported_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let edits = std::cell::Cell::new(0);
    let edited = |name: &str, from: &str, to: &str| {
        let text = std::fs::read_to_string(fixture(name)).unwrap();
        assert!(text.contains(from), "{name} has {from}");
        edits.set(edits.get() + 1);
        let path = tmp.path().join(format!("edit{}-{name}", edits.get()));
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        path
    };
    let cases = [
        (Library::Lightgbm, fixture("lightgbm-categorical.txt"), "model", "categorical splits (num_cat > 0) are not supported"),
        (Library::Lightgbm, fixture("lightgbm-zero-as-missing.txt"), "model", "tree 0, node 0: missing_type Zero (zero_as_missing=true) is not supported"),
        (Library::Xgboost, fixture("xgboost-categorical.json"), "model", "feature_types[1]: a categorical feature"),
        (Library::Xgboost, edited("xgboost.json", "\"split_type\":[0", "\"split_type\":[1"), "model", "tree 0, node 0: a categorical split"),
        (Library::Lightgbm, edited("lightgbm.json", "\"decision_type\": \"<=\"", "\"decision_type\": \"==\""), "model", "tree 0, node 0: a categorical split"),
        (Library::Lightgbm, edited("lightgbm.json", "\"missing_type\": \"None\"", "\"missing_type\": \"Zero\""), "model", "missing_type Zero (zero_as_missing=true) is not supported"),
        (Library::Lightgbm, fixture("lightgbm.txt"), "default", "6 of the model's 6 features are not in the feature set 'default': TX_AMOUNT, CUSTOMER_ID_NB_TX_1DAY_WINDOW, AMOUNT_TO_CUSTOMER_AVG_30D, CUSTOMER_ID_SECS_SINCE_LAST, TERMINAL_ID_RISK_7DAY_WINDOW, CUSTOMER_ID_AVG_AMOUNT_1DAY_TO_30DAY; expected names from: amount, "),
        (Library::Xgboost, fixture("xgboost.json"), "handbook", "3 of the model's 6 features are not in the feature set 'handbook': AMOUNT_TO_CUSTOMER_AVG_30D, CUSTOMER_ID_SECS_SINCE_LAST, CUSTOMER_ID_AVG_AMOUNT_1DAY_TO_30DAY;"),
        (Library::Xgboost, edited("xgboost.json", "\"feature_names\":[", "\"feature_namez\":["), "model", "feature names: the model names no features"),
        (Library::Xgboost, edited("xgboost.json", "\"name\":\"binary:logistic\"", "\"name\":\"reg:squarederror\""), "model", "objective: 'reg:squarederror' is not supported; expected binary:logistic"),
        (Library::Xgboost, edited("xgboost.json", "\"name\":\"gbtree\"", "\"name\":\"dart\""), "model", "gradient_booster: booster 'dart' is not supported; expected gbtree"),
        (Library::Xgboost, edited("xgboost.json", "\"left_children\":[1", "\"left_children\":[0"), "model", "tree 0, node 0: left child 0: a cycle"),
        (Library::Xgboost, edited("xgboost.json", "\"left_children\":[1", "\"left_children\":[99"), "model", "tree 0, node 0: child 99 is out of range: the tree has"),
        (Library::Xgboost, edited("xgboost.json", "{\"learner\"", "{\"learner\" 1"), "model", "xgboost.json:1:12: "),
        (Library::Xgboost, fixture("lightgbm.txt"), "model", "LightGBM's text model; import it with --from lightgbm"),
        (Library::Xgboost, fixture("probes.csv"), "model", "not JSON; expected XGBoost's JSON model"),
        (Library::Lightgbm, fixture("xgboost.json"), "model", "file: an XGBoost model; import it with --from xgboost"),
        (Library::Lightgbm, fixture("probes.csv"), "model", "line 1: expected 'tree'"),
    ];
    for (library, path, set_name, says) in cases {
        let set = load_feature_set(set_name).unwrap();
        let e = import(library, &path, &set, "m").unwrap_err().to_string();
        let file = path.file_name().unwrap().to_str().unwrap();
        assert!(
            e.contains(file) && e.contains(says),
            "{e:?} should say {says:?}"
        );
    }
    // Through the command line: the error, a failure status, and no file written.
    let out = tmp.path().join("out.json");
    let run = Command::new(env!("CARGO_BIN_EXE_fraudstream"))
        .args(["model", "import", "--from", "lightgbm"])
        .arg(fixture("lightgbm-zero-as-missing.txt"))
        .args(["--feature-set", "model", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success() && !out.exists());
    assert!(String::from_utf8_lossy(&run.stderr).contains("zero_as_missing"));
}
