//! Feature parity with the handbook's published feature values.

mod common;

use fraudstream::features::load_feature_set;
use fraudstream::offline::replay::{parse_date_ms, replay, ReplayOptions};
use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;

#[test]
fn handbook_features_match_reference_values() {
    let Some(dir) = common::handbook_dir() else {
        return;
    };
    let set = Arc::new(load_feature_set("handbook").unwrap());
    let opts = ReplayOptions {
        from_ms: parse_date_ms("2018-07-25").unwrap(),
        to_ms: parse_date_ms("2018-08-15").unwrap(),
        ..ReplayOptions::default()
    };
    // Reference: TRANSACTION_ID -> the 15 feature columns, by name.
    let file =
        std::fs::File::open(dir.join("handbook-features_2018-07-25_2018-08-14.csv.gz")).unwrap();
    let mut lines = std::io::BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    let cols: Vec<usize> = set
        .names
        .iter()
        .map(|n| {
            header
                .iter()
                .position(|h| h == n)
                .unwrap_or_else(|| panic!("reference lacks {n}"))
        })
        .collect();
    let mut reference: HashMap<String, Vec<f64>> = HashMap::new();
    for line in lines {
        let line = line.unwrap();
        let f: Vec<&str> = line.split(',').collect();
        reference.insert(
            f[0].to_string(),
            cols.iter().map(|&c| f[c].parse().unwrap()).collect(),
        );
    }
    assert_eq!(reference.len(), 201_295);

    let mut rows = 0usize;
    let mut mismatched_rows = 0usize;
    let mut per_feature = vec![0usize; set.len()];
    let mut examples = Vec::new();
    replay(
        &dir.join("transactions.csv.gz"),
        set.clone(),
        &opts,
        |row, features| {
            rows += 1;
            let want = &reference[row.transaction_id];
            let mut bad = false;
            for (i, (&got, &exp)) in features.iter().zip(want).enumerate() {
                if (got - exp).abs() > 1e-6 * exp.abs().max(1.0) {
                    per_feature[i] += 1;
                    bad = true;
                    if examples.len() < 5 {
                        examples.push(format!(
                            "tx {} {}: got {got} want {exp}",
                            row.transaction_id, set.names[i]
                        ));
                    }
                }
            }
            mismatched_rows += usize::from(bad);
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(rows, 201_295);
    let share = mismatched_rows as f64 / rows as f64;
    eprintln!("rows {rows}, mismatched {mismatched_rows} ({:.4}%), per feature {per_feature:?}, e.g. {examples:?}", share * 100.0);
    // The remaining 2 rows are customer 3414's transactions 1240489 and 1240490,
    // both at 2018-08-08 10:25:54: pandas' (unstable) sort ordered the second one
    // first, so its rolling windows count one more row for 1240489 and one less
    // for 1240490. Ties within a second are processed in file order here.
    assert!(
        share <= 0.001,
        "{mismatched_rows} of {rows} rows differ: {examples:?}"
    );
}
