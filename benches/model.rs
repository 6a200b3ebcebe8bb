//! Model inference per event: the shipped model and a 100-tree, depth-5
//! model (also with half its splits sending missing values right).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fraudstream::features::load_feature_set;
use fraudstream::model::gbt::GbtParams;
use fraudstream::model::shap::{ShapPath, ShapTables};
use fraudstream::model::trees::Missing;
use fraudstream::model::{
    Algorithm, BlockScratch, Model, ModelFile, Scratch, TrainingInfo, EXPLAIN_TOP,
    MODEL_FORMAT_VERSION,
};
use std::path::Path;

fn bench_model(c: &mut Criterion) {
    let set = load_feature_set("default").expect("model feature set");
    let shipped = Model::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json"),
        &set,
    )
    .expect("shipped model");
    // A 100-tree depth-5 model on synthetic data over the same features.
    let d = set.len();
    let rows = 20_000;
    let x: Vec<f64> = (0..rows * d)
        .map(|k| ((k * 7919) % 1000) as f64 / 10.0)
        .collect();
    let y: Vec<bool> = (0..rows).map(|i| x[i * d] + x[i * d + 3] > 120.0).collect();
    let gbt = fraudstream::model::gbt::fit(
        &x,
        d,
        &y,
        &GbtParams {
            trees: 100,
            max_depth: 5,
            ..GbtParams::default()
        },
        None,
    )
    .expect("fit");
    let file = ModelFile {
        format_version: MODEL_FORMAT_VERSION,
        name: "gbt100".into(),
        algorithm: Algorithm::Gbt,
        feature_set: "default".into(),
        features: set.names.clone(),
        training: Some(TrainingInfo {
            input: "synthetic".into(),
            from: String::new(),
            to: String::new(),
            label_delay_days: 0,
            rows,
            frauds: 0,
        }),
        validation: None,
        imported: None,
        logistic: None,
        gbt: Some(gbt),
        content_hash: String::new(),
    };
    let gbt100 = Model::new("gbt100", file.clone(), &set).expect("100-tree model");
    // The same trees sending missing values right at every other node, as an
    // imported model may: one more rank column per feature.
    let mut right = file;
    for (k, n) in right
        .gbt
        .as_mut()
        .expect("trees")
        .nodes
        .iter_mut()
        .enumerate()
    {
        if k % 2 == 0 {
            n.missing = Missing::Right;
        }
    }
    let gbt100_right = Model::new("gbt100-right", right, &set).expect("100-tree model");

    let vectors: Vec<Vec<f64>> = (0..32)
        .map(|k| (0..d).map(|i| ((i * 31 + k * 17) % 97) as f64).collect())
        .collect();
    let mut scratch = Scratch::default();
    let mut top = [0u16; EXPLAIN_TOP];
    let mut group = c.benchmark_group("model");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    for (name, model) in [
        ("score_gbt_100_trees_depth_5", &gbt100),
        (
            "score_gbt_100_trees_depth_5_half_missing_right",
            &gbt100_right,
        ),
        ("score_shipped_model", &shipped),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % vectors.len();
                black_box(model.score(black_box(&vectors[i]), &mut scratch))
            })
        });
    }
    // Blocks of 256 rows, as `fraudstream backtest` scores them.
    let block: Vec<f64> = (0..256)
        .flat_map(|k| vectors[k % vectors.len()].clone())
        .collect();
    let (mut block_scratch, mut scores) = (BlockScratch::default(), vec![0.0; 256]);
    group.throughput(Throughput::Elements(256));
    for (name, model) in [
        ("score_block_of_256_gbt_100_trees_depth_5", &gbt100),
        (
            "score_block_of_256_gbt_100_trees_depth_5_half_missing_right",
            &gbt100_right,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                model.score_block(black_box(&block), d, &mut block_scratch, &mut scores);
                black_box(scores[255])
            })
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("score_and_explain_shipped", |b| {
        b.iter(|| {
            i = (i + 1) % vectors.len();
            let s = shipped.score(black_box(&vectors[i]), &mut scratch);
            black_box((s, shipped.explain(&vectors[i], &mut scratch, &mut top)))
        })
    });
    // Explanations alone (paid on review and block only): TreeSHAP, and the
    // Saabas path differences that trees without cover fall back to.
    let mut without_cover = shipped.file.clone();
    if let Some(g) = without_cover.gbt.as_mut() {
        g.cover.clear();
    }
    let saabas = Model::new("saabas", without_cover, &set).expect("shipped model");
    for (name, model) in [
        ("explain_shipped_treeshap", &shipped),
        ("explain_shipped_saabas_without_cover", &saabas),
        ("explain_gbt_100_trees_depth_5_treeshap", &gbt100),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % vectors.len();
                black_box(model.explain(black_box(&vectors[i]), &mut scratch, &mut top))
            })
        });
    }
    // TreeSHAP of the shipped trees alone, back to back: the recursion
    // (Lundberg's Algorithm 2, what every explanation cost before tables) and
    // the per-leaf tables built at load, which `explain` now uses.
    let trees = shipped.file.gbt.as_ref().expect("trees");
    let tables = ShapTables::new(trees).expect("shallow trees are tabled");
    let d = shipped.file.features.len();
    let inputs: Vec<Vec<f64>> = vectors.iter().map(|v| v[..d].to_vec()).collect();
    let (mut path, mut phi) = (ShapPath::default(), vec![0.0; d]);
    group.bench_function("treeshap_shipped_recursion", |b| {
        b.iter(|| {
            i = (i + 1) % inputs.len();
            phi.fill(0.0);
            trees.shap(black_box(&inputs[i]), &mut phi, &mut path);
            black_box(phi[0])
        })
    });
    group.bench_function("treeshap_shipped_tables", |b| {
        b.iter(|| {
            i = (i + 1) % inputs.len();
            phi.fill(0.0);
            tables.add(black_box(&inputs[i]), &mut phi);
            black_box(phi[0])
        })
    });
    group.finish();
}

criterion_group!(benches, bench_model);
criterion_main!(benches);
