//! Offline replay throughput, single-threaded: the handbook's 1.75 M
//! transactions (decoded into memory first, so file decoding is not measured)
//! through the feature engine with labels fed back 7 days later, then rules and
//! model, in blocks of rows as `fraudstream backtest` runs them. Skips, loudly, without the data
//! (`FRAUDSTREAM_HANDBOOK_DIR` or `../shared/data/handbook`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fraudstream::decision::{Decider, EventView};
use fraudstream::demo::synthetic::synthetic_rule_files;
use fraudstream::features::load_feature_set;
use fraudstream::model::{ModelFile, ModelStore};
use fraudstream::offline::replay::{ReplayBlock, ReplayOptions, Replayer};
use fraudstream::rules::reload::{RuleStore, RulesSource};
use fraudstream::source::handbook::{HandbookReader, OwnedTxRow};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn load(limit: usize) -> Option<Vec<OwnedTxRow>> {
    let dir = std::env::var_os("FRAUDSTREAM_HANDBOOK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/handbook"));
    let path = dir.join("transactions.csv.gz");
    if !path.exists() {
        eprintln!(
            "\n*** SKIPPED replay bench: {} not found ***\n",
            path.display()
        );
        return None;
    }
    let mut reader = HandbookReader::open(&path).expect("handbook file");
    let mut rows = Vec::new();
    while let Some(r) = reader.next_row().expect("handbook row") {
        rows.push(OwnedTxRow::of(&r));
        if rows.len() == limit {
            break;
        }
    }
    Some(rows)
}

fn bench_replay(c: &mut Criterion) {
    // `cargo bench -- --test` (CI) runs each variant once over the first 20,000 rows.
    let quick = std::env::args().any(|a| a == "--test");
    let Some(rows) = load(if quick { 20_000 } else { usize::MAX }) else {
        return;
    };
    let set = Arc::new(load_feature_set("default").unwrap());
    let shipped_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json");
    let shipped: ModelFile =
        serde_json::from_str(&std::fs::read_to_string(&shipped_path).unwrap()).unwrap();
    let tmp = std::env::temp_dir().join(format!("fraudstream-replay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let small_path = tmp.join("first100.json");
    shipped
        .first_trees(100)
        .expect("trees")
        .save(&small_path)
        .unwrap();
    let open = |path: &Path| {
        let (models, errors) = ModelStore::open(Some(path.to_path_buf()), None, set.clone());
        assert!(errors.is_empty(), "{errors:?}");
        Arc::new(models)
    };
    let decider = |rules: usize, model: Option<&Path>| {
        let files = synthetic_rule_files(rules, &set.names);
        let store = Arc::new(RuleStore::load(RulesSource::Files(files), set.clone()).unwrap());
        let d = Decider::new(store, set.len(), None);
        match model {
            Some(p) => d.with_models(open(p)),
            None => d,
        }
    };
    let variants: [(&str, Option<Decider>); 4] = [
        ("features", None),
        (
            "features_10_rules_100_trees",
            Some(decider(10, Some(&small_path))),
        ),
        (
            "features_100_rules_100_trees",
            Some(decider(100, Some(&small_path))),
        ),
        (
            "features_100_rules_shipped_model",
            Some(decider(100, Some(&shipped_path))),
        ),
    ];
    let _ = std::fs::remove_dir_all(&tmp);
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    let mut block = ReplayBlock::new(set.len());
    for (name, mut decider) in variants {
        group.bench_function(name, |b| {
            b.iter_custom(|passes| {
                let started = Instant::now();
                let mut flagged = 0u64;
                for _ in 0..passes {
                    // As `fraudstream backtest` runs: features for a block of
                    // rows, then the models over the block, then rules and policy
                    // row by row.
                    let mut replayer = Replayer::new(set.clone(), &ReplayOptions::default());
                    for chunk in rows.chunks(ReplayBlock::ROWS) {
                        block.clear();
                        for row in chunk {
                            block.push(&row.view());
                        }
                        replayer.step_block(&mut block, i64::MIN);
                        let Some(d) = decider.as_mut() else { continue };
                        // Every row is in range here, so the block is what gets scored.
                        d.score_block(block.features(), block.len());
                        for (k, row, features) in block.rows() {
                            d.features_mut().copy_from_slice(features);
                            let subject = EventView::of_row(&row);
                            flagged += u64::from(d.assess_scored(k, &subject, false).score > 0.5);
                        }
                    }
                }
                std::hint::black_box(flagged);
                started.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
