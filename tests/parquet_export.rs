//! `fraudstream features --format parquet`: the file holds exactly the values
//! the CSV export holds (features, nulls where the CSV is empty), plus each
//! row's event time, entity ids, amounts as written and labels; it is written
//! in row groups; `pyarrow` reads it the same; and the data scientist's guide's
//! Python example (`docs/data-science.md`) trains on it, and its model imports.
//!
//! The Python tests use the virtualenv of `scripts/python-deps.sh` (or
//! `$FRAUDSTREAM_PYTHON`) and skip loudly where pyarrow or LightGBM is absent.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Float64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use fraudstream::features::load_feature_set;
use fraudstream::model::{Model, Scratch};
use fraudstream::offline::parquet::{ParquetFeatures, META_FEATURES};
use fraudstream::offline::replay::{parse_date_ms, replay, ReplayOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const DAY_MS: i64 = 86_400_000;

/// A transactions file of `rows` random payments over April 2018 in
/// `currencies`, with devices (some missing) and IPs, amounts with 0 to 2
/// decimals as a user writes them (`7`, `7.5`, `7.50`; JPY whole), 1 in 12 a fraud.
fn transactions(dir: &Path, rows: usize, currencies: &[&str]) -> PathBuf {
    let mut csv = String::from(
        "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,CURRENCY,DEVICE_ID,IP,TX_FRAUD\n",
    );
    let mut rng = SmallRng::seed_from_u64(20);
    let mut secs = 0;
    for id in 0..rows {
        secs += rng.gen_range(0..1200);
        let (day, s) = (1 + secs / 86_400, secs % 86_400);
        let currency = currencies[rng.gen_range(0..currencies.len())];
        let amount = match (currency, rng.gen_range(0..4)) {
            ("JPY", _) => rng.gen_range(100..90_000).to_string(),
            (_, 0) => rng.gen_range(1..500).to_string(),
            (_, 1) => format!("{}.{}", rng.gen_range(0..500), rng.gen_range(0..10)),
            (_, 2) => format!("{}.{:02}", rng.gen_range(0..500), rng.gen_range(0..100)),
            _ => format!("{}.{}0", rng.gen_range(0..500), rng.gen_range(0..10)),
        };
        let device = match rng.gen_range(0..3) {
            0 => String::new(),
            _ => format!("d{}", rng.gen_range(0..60)),
        };
        writeln!(
            csv,
            "tx-{id},2018-04-{day:02} {:02}:{:02}:{:02},c{},t{},{amount},{currency},{device},10.0.0.{},{}",
            s / 3600,
            s % 3600 / 60,
            s % 60,
            rng.gen_range(0..50),
            rng.gen_range(0..30),
            rng.gen_range(0..9),
            u8::from(rng.gen_range(0..12) == 0)
        )
        .unwrap();
    }
    let path = dir.join("tx.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

/// Runs `fraudstream features` from the project root (its shipped FX rates).
fn export(input: &Path, format: &str, out: &Path) {
    let done = Command::new(env!("CARGO_BIN_EXE_fraudstream"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "features",
            "--feature-set",
            "default",
            "--from",
            "2018-04-08",
        ])
        .args(["--label-delay", "3d", "--format", format, "--input"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
}

/// A feature CSV: its header and its rows' fields.
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect::<Vec<_>>());
    (lines.next().unwrap(), lines.collect())
}

/// The input file's fields of each transaction, by id and column name.
fn read_input(path: &Path) -> HashMap<String, HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let fields: HashMap<String, String> = header
                .iter()
                .cloned()
                .zip(r.iter().map(String::from))
                .collect();
            (fields["TRANSACTION_ID"].clone(), fields)
        })
        .collect()
}

/// An amount as written (`12.3`) in 1/10,000 units, from its digits alone.
fn units(written: &str) -> i128 {
    let (whole, frac) = written.split_once('.').unwrap_or((written, ""));
    assert!(frac.len() <= 4, "{written}");
    format!("{whole}{frac:0<4}").parse().unwrap()
}

/// One column of a batch, as text (or `None` when null), whatever its type.
fn texts(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let column = batch.column_by_name(name).unwrap();
    let strings = column.as_string::<i32>();
    (0..batch.num_rows())
        .map(|i| strings.is_valid(i).then(|| strings.value(i).to_string()))
        .collect()
}

/// The Parquet file's batches, checking its column types on the way.
fn read_parquet(path: &Path) -> (Vec<String>, Vec<RecordBatch>, usize) {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let groups = builder.metadata().num_row_groups();
    let schema = builder.schema().clone();
    let features: Vec<String> = serde_json::from_str(&schema.metadata()[META_FEATURES]).unwrap();
    let time = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    for (name, ty) in [
        ("event_time", time.clone()),
        ("label_known_at", time),
        ("tx_amount", DataType::Decimal128(18, 4)),
        ("base_amount", DataType::Decimal128(18, 4)),
        ("label_final", DataType::Boolean),
    ] {
        assert_eq!(schema.field_with_name(name).unwrap().data_type(), &ty);
    }
    for name in &features {
        assert_eq!(
            schema.field_with_name(name).unwrap().data_type(),
            &DataType::Float64
        );
    }
    let batches = builder.build().unwrap().map(|b| b.unwrap()).collect();
    (features, batches, groups)
}

/// The CSV's id and feature fields, and the file's: the same rows in the same
/// order, every feature the same `f64` to the bit, null exactly where the CSV
/// field is empty; returns (null, non-null) feature counts.
fn assert_same_features(
    csv: &(Vec<String>, Vec<Vec<String>>),
    ids: &[String],
    features: &[Vec<Option<f64>>],
) -> (usize, usize) {
    let (header, rows) = csv;
    assert_eq!(ids.len(), rows.len(), "row count");
    let (mut nulls, mut values) = (0, 0);
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row[0], ids[k], "row {k}: id");
        for (j, field) in row[1..].iter().enumerate() {
            let got = features[j][k];
            let want = (!field.is_empty()).then(|| field.parse::<f64>().unwrap());
            assert_eq!(
                got.map(f64::to_bits),
                want.map(f64::to_bits),
                "row {k} ({}), {}: parquet {got:?}, csv '{field}'",
                row[0],
                header[j + 1]
            );
            if got.is_some() {
                values += 1
            } else {
                nulls += 1
            }
        }
    }
    (nulls, values)
}

#[test]
fn parquet_holds_the_csv_features_and_each_rows_own_fields() {
    let dir = tempfile::tempdir().unwrap();
    let input = transactions(dir.path(), 4000, &["EUR", "EUR", "USD", "JPY"]);
    let (csv_out, parquet_out) = (dir.path().join("f.csv"), dir.path().join("f.parquet"));
    export(&input, "csv", &csv_out);
    export(&input, "parquet", &parquet_out);
    let csv = read_csv(&csv_out);
    let (features, batches, _) = read_parquet(&parquet_out);
    assert_eq!(csv.0[0], "TRANSACTION_ID");
    assert_eq!(
        csv.0[1..],
        features[..],
        "the CSV's feature columns, in order"
    );

    let mut ids = Vec::new();
    let mut values: Vec<Vec<Option<f64>>> = vec![Vec::new(); features.len()];
    let given = read_input(&input);
    let mut converted = 0;
    for batch in &batches {
        let id = texts(batch, "TRANSACTION_ID");
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        let event_time = column("event_time");
        let event_time = event_time.as_primitive::<TimestampMillisecondType>();
        let known_at = column("label_known_at");
        let known_at = known_at.as_primitive::<TimestampMillisecondType>();
        let tx_amount = column("tx_amount");
        let tx_amount = tx_amount.as_primitive::<Decimal128Type>();
        let base_amount = column("base_amount");
        let base_amount = base_amount.as_primitive::<Decimal128Type>();
        let label = column("label_final");
        let label = label.as_boolean();
        let amount_feature = column("amount");
        let amount_feature = amount_feature.as_primitive::<Float64Type>();
        let strings: Vec<Vec<Option<String>>> = [
            "account_id",
            "card_id",
            "terminal_id",
            "device_id",
            "ip",
            "currency",
        ]
        .iter()
        .map(|name| texts(batch, name))
        .collect();
        for i in 0..batch.num_rows() {
            let id = id[i].clone().unwrap();
            let row = &given[&id];
            let (date, time) = row["TX_DATETIME"].split_once(' ').unwrap();
            let (h, rest) = time.split_once(':').unwrap();
            let (m, s) = rest.split_once(':').unwrap();
            let ts = parse_date_ms(date).unwrap()
                + ((h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap()) * 60
                    + s.parse::<i64>().unwrap())
                    * 1000;
            assert_eq!(event_time.value(i), ts, "{id}");
            assert_eq!(
                known_at.value(i),
                ts + 3 * DAY_MS,
                "{id}: the label arrives 3 days later"
            );
            assert_eq!(label.value(i), row["TX_FRAUD"] == "1", "{id}");
            assert_eq!(
                tx_amount.value(i),
                units(&row["TX_AMOUNT"]),
                "{id}: as written"
            );
            let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
            let want = [
                some(&row["CUSTOMER_ID"]),
                some(&row["CUSTOMER_ID"]),
                some(&row["TERMINAL_ID"]),
                some(&row["DEVICE_ID"]),
                some(&row["IP"]),
                some(&row["CURRENCY"]),
            ];
            for (column, want) in strings.iter().zip(want) {
                assert_eq!(column[i], want, "{id}");
            }
            // The engine's amount in EUR, to 1/10,000: the `amount` feature rounded.
            let base = base_amount.value(i) as f64 / 1e4;
            assert!(
                (base - amount_feature.value(i)).abs() <= 0.5e-4,
                "{id}: {base}"
            );
            if row["CURRENCY"] == "EUR" {
                assert_eq!(base_amount.value(i), tx_amount.value(i), "{id}");
            } else {
                converted += 1;
            }
        }
        ids.extend(id.into_iter().map(Option::unwrap));
        for (j, name) in features.iter().enumerate() {
            let f = batch
                .column_by_name(name)
                .unwrap()
                .as_primitive::<Float64Type>();
            values[j].extend((0..f.len()).map(|i| f.is_valid(i).then(|| f.value(i))));
        }
    }
    assert!(converted > 500, "amounts converted from USD and JPY");
    let (nulls, present) = assert_same_features(&csv, &ids, &values);
    assert!(
        ids.len() > 3000 && nulls > 1000 && present > 10_000,
        "{nulls} {present}"
    );
}

/// The writer hands rows on in row groups of the size asked, so memory holds
/// one group, and what it wrote reads back as the replay's vectors.
#[test]
fn rows_are_written_in_row_groups_of_the_size_asked() {
    let dir = tempfile::tempdir().unwrap();
    let input = transactions(dir.path(), 2500, &["EUR"]);
    let set = Arc::new(load_feature_set("default").unwrap());
    let path = dir.path().join("f.parquet");
    let mut writer =
        ParquetFeatures::new(std::fs::File::create(&path).unwrap(), &set, 0, 300).unwrap();
    let mut want: Vec<Vec<f64>> = Vec::new();
    let opts = ReplayOptions::default();
    replay(
        &input,
        set.clone(),
        &opts,
        |row, f| {
            writer.push(row, f).unwrap();
            want.push(f.to_vec());
        },
        |_| {},
    )
    .unwrap();
    writer.finish().unwrap();
    let (_, batches, groups) = read_parquet(&path);
    assert_eq!(groups, want.len().div_ceil(300));
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap();
    for g in builder.metadata().row_groups() {
        assert!(g.num_rows() <= 300);
    }
    let mut k = 0;
    for batch in &batches {
        for i in 0..batch.num_rows() {
            for (j, name) in set.names.iter().enumerate() {
                let f = batch
                    .column_by_name(name)
                    .unwrap()
                    .as_primitive::<Float64Type>();
                let got = if f.is_valid(i) { f.value(i) } else { f64::NAN };
                assert_eq!(got.to_bits(), want[k][j].to_bits(), "row {k}, {name}");
            }
            k += 1;
        }
    }
    assert_eq!(k, want.len());
}

/// The interpreter of `scripts/python-deps.sh` if it can import `modules`,
/// else `None` after a loud notice.
fn python(modules: &str) -> Option<PathBuf> {
    let python = std::env::var_os("FRAUDSTREAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/python/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::skip_notice(&format!(
            "*** SKIPPED: no Python with {modules} at {} (run scripts/python-deps.sh or set FRAUDSTREAM_PYTHON) ***",
            python.display()
        ));
    }
    ok.then_some(python)
}

/// pyarrow, another Parquet reader, reads the CSV's values and the row's own
/// columns with the types the module documents.
#[test]
fn pyarrow_reads_the_csv_values() {
    let Some(python) = python("pyarrow") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = transactions(dir.path(), 3000, &["EUR", "USD", "JPY"]);
    let (csv_out, parquet_out) = (dir.path().join("f.csv"), dir.path().join("f.parquet"));
    export(&input, "csv", &csv_out);
    export(&input, "parquet", &parquet_out);
    let script = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
features = json.loads(t.schema.metadata[b"fraudstream.features"])
print(json.dumps({
    "types": {f.name: str(f.type) for f in t.schema},
    "ids": t.column("TRANSACTION_ID").to_pylist(),
    "features": [t.column(f).to_pylist() for f in features],
    "amounts": [str(a) for a in t.column("tx_amount").to_pylist()],
}))
"#;
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&parquet_out)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let types = &read["types"];
    assert_eq!(types["event_time"], "timestamp[ms, tz=UTC]");
    assert_eq!(types["tx_amount"], "decimal128(18, 4)");
    assert_eq!(types["label_final"], "bool");
    assert_eq!(types["amount"], "double");
    let ids: Vec<String> = serde_json::from_value(read["ids"].clone()).unwrap();
    let features: Vec<Vec<Option<f64>>> = serde_json::from_value(read["features"].clone()).unwrap();
    let csv = read_csv(&csv_out);
    let (nulls, present) = assert_same_features(&csv, &ids, &features);
    assert!(nulls > 500 && present > 10_000, "{nulls} {present}");
    let given = read_input(&input);
    let amounts: Vec<String> = serde_json::from_value(read["amounts"].clone()).unwrap();
    for (id, amount) in ids.iter().zip(&amounts) {
        assert_eq!(
            units(amount),
            units(&given[id]["TX_AMOUNT"]),
            "{id}: {amount}"
        );
    }
}

/// The Python block of `docs/data-science.md`, as a user copies it.
fn guide_example() -> String {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/data-science.md"))
            .unwrap();
    let start = guide.find("```python\n").expect("a python block") + "```python\n".len();
    let len = guide[start..].find("```").unwrap();
    guide[start..start + len].to_string()
}

/// The guide's example, run on a small simulated slice exported as Parquet,
/// trains LightGBM and saves a model that `model import` takes.
#[test]
fn the_guides_python_example_trains_a_model_that_imports() {
    let Some(python) = python("pyarrow, pandas, lightgbm") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim.csv");
    let bin = || Command::new(env!("CARGO_BIN_EXE_fraudstream"));
    let run = |cmd: &mut Command| {
        let out = cmd.current_dir(dir.path()).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{cmd:?}: {text}");
        text
    };
    run(bin()
        .args(["simulate", "--days", "28", "--customers", "600", "--out"])
        .arg(&sim));
    run(bin()
        .args([
            "features",
            "--feature-set",
            "model",
            "--format",
            "parquet",
            "--input",
        ])
        .arg(&sim)
        .args(["--out", "features.parquet"]));
    std::fs::write(dir.path().join("train.py"), guide_example()).unwrap();
    let printed = run(Command::new(&python).arg("train.py"));
    assert!(printed.contains("test AUC"), "{printed}");
    run(bin()
        .args(["model", "import", "--from", "lightgbm", "model.txt"])
        .args(["--feature-set", "model", "--out", "lgbm.json"]));

    // The imported model scores the file's rows as LightGBM does.
    let predict = r#"
import json, sys
import lightgbm as lgb, pyarrow.parquet as pq
t = pq.read_table("features.parquet")
features = json.loads(t.schema.metadata[b"fraudstream.features"])
booster = lgb.Booster(model_file="model.txt")
print(json.dumps(list(booster.predict(t.select(features).to_pandas()))))
"#;
    let printed = run(Command::new(&python).args(["-c", predict]));
    let want: Vec<f64> = serde_json::from_str(printed.lines().next().unwrap()).unwrap();
    let set = load_feature_set("model").unwrap();
    let model = Model::load(&dir.path().join("lgbm.json"), &set).unwrap();
    let (features, batches, _) = read_parquet(&dir.path().join("features.parquet"));
    assert_eq!(features, set.names);
    let (mut k, mut scratch, mut row) = (0, Scratch::default(), vec![0.0; set.len()]);
    for batch in &batches {
        let columns: Vec<_> = features
            .iter()
            .map(|f| {
                batch
                    .column_by_name(f)
                    .unwrap()
                    .as_primitive::<Float64Type>()
                    .clone()
            })
            .collect();
        for i in 0..batch.num_rows() {
            for (x, c) in row.iter_mut().zip(&columns) {
                *x = if c.is_valid(i) { c.value(i) } else { f64::NAN };
            }
            let p = model.score(&row, &mut scratch);
            assert!(
                (p - want[k]).abs() <= 1e-6,
                "row {k}: {p} != lightgbm {}",
                want[k]
            );
            k += 1;
        }
    }
    assert!(k == want.len() && k > 10_000, "{k} rows");
}

/// A feature named like an export column fails the export before the replay,
/// says which and why, and leaves no file behind.
#[test]
fn a_feature_named_like_an_export_column_fails_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let input = transactions(dir.path(), 50, &["EUR"]);
    let set = dir.path().join("clash.toml");
    let feature = "[[feature]]\nname = \"label_final\"\ndescription = \"d\"\nevent = \"amount\"\n";
    std::fs::write(
        &set,
        format!("name = \"clash\"\ndescription = \"d\"\n{feature}"),
    )
    .unwrap();
    let out = dir.path().join("f.parquet");
    let done = Command::new(env!("CARGO_BIN_EXE_fraudstream"))
        .args(["features", "--format", "parquet", "--feature-set"])
        .arg(&set)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(!done.status.success());
    assert!(
        stderr.contains("feature 'label_final' has the name of an export column"),
        "{stderr}"
    );
    assert!(!out.exists());
}
