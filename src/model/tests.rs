//! Model files in, served models out: loading, rejecting bad files, scoring.

use super::*;
use crate::features::{load_feature_set, FeatureSet};
use crate::model::trees::Gbt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::sync::Arc;

fn tiny_model(set: &FeatureSet) -> ModelFile {
    let features: Vec<String> = ["TX_AMOUNT", "AMOUNT_TO_CUSTOMER_AVG_30D"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let x: Vec<f64> = (0..400)
        .flat_map(|i| [f64::from(i % 300), f64::from(i % 7)])
        .collect();
    let y: Vec<bool> = (0..400).map(|i| i % 300 > 220).collect();
    let gbt = gbt::fit(
        &x,
        2,
        &y,
        &gbt::GbtParams {
            trees: 10,
            max_depth: 2,
            ..Default::default()
        },
        None,
    )
    .expect("fit");
    assert!(set.index_of("TX_AMOUNT").is_some());
    ModelFile {
        format_version: MODEL_FORMAT_VERSION,
        name: "tiny".into(),
        algorithm: Algorithm::Gbt,
        feature_set: "model".into(),
        features,
        training: Some(TrainingInfo {
            input: "x".into(),
            from: "a".into(),
            to: "b".into(),
            label_delay_days: 7,
            rows: 400,
            frauds: 1,
        }),
        validation: Some(ValidationInfo {
            rows: 0,
            auc: 0.5,
            average_precision: 0.5,
        }),
        imported: None,
        logistic: None,
        gbt: Some(gbt),
        content_hash: String::new(),
    }
}

#[test]
fn a_saved_model_loads_scores_and_explains() {
    let set = load_feature_set("model").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    tiny_model(&set).save(&path).unwrap();
    let m = Model::load(&path, &set).unwrap();
    let mut f = vec![f64::NAN; set.len()];
    f[set.index_of("TX_AMOUNT").unwrap()] = 280.0;
    f[set.index_of("AMOUNT_TO_CUSTOMER_AVG_30D").unwrap()] = 1.0;
    let mut scratch = Scratch::default();
    let high = m.score(&f, &mut scratch);
    let mut top = [0; EXPLAIN_TOP];
    let n = m.explain(&f, &mut scratch, &mut top);
    assert!(n >= 1 && top[0] == 0, "TX_AMOUNT explains a high amount");
    assert_eq!(m.reason(0).0, "model:TX_AMOUNT");
    f[set.index_of("TX_AMOUNT").unwrap()] = 20.0;
    assert!(m.score(&f, &mut scratch) < high);
}

/// Random feature rows for the shipped model's feature set: a tenth missing,
/// some zero, the rest over several magnitudes.
fn random_rows(set: &FeatureSet, rows: usize, seed: u64) -> Vec<f64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..rows * set.len())
        .map(|_| match rng.gen_range(0..10) {
            0 => f64::NAN,
            1 => 0.0,
            k => f64::from(rng.gen_range(0..100_000)) / 10f64.powi(k % 4),
        })
        .collect()
}

fn shipped() -> ModelFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/handbook.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The explanation adds up: the expected margin plus every input's
/// contribution is the margin, for the shipped ensemble, its trees alone (by
/// TreeSHAP, from the cover the trainer writes), its regression alone, and
/// trees without cover (Saabas, the fallback).
#[test]
fn contributions_add_up_to_the_margin() {
    let trees_only = shipped();
    let set = load_feature_set(&trees_only.feature_set).unwrap();
    assert!(
        trees_only.gbt.as_ref().unwrap().has_cover(),
        "the trainer writes cover"
    );
    let rows = random_rows(&set, 300, 11);
    let labels: Vec<bool> = rows.chunks_exact(set.len()).map(|r| r[0] > 500.0).collect();
    let shipped = ModelFile {
        algorithm: Algorithm::Ensemble,
        logistic: Some(logistic::Logistic::train(
            &rows,
            set.len(),
            &labels,
            20,
            |_| {},
        )),
        ..trees_only.clone()
    };
    let mut without_cover = trees_only.clone();
    without_cover.gbt.as_mut().unwrap().cover.clear();
    let regression_only = ModelFile {
        algorithm: Algorithm::Logistic,
        gbt: None,
        ..shipped.clone()
    };
    let mut scratch = Scratch::default();
    for file in [shipped, trees_only, without_cover, regression_only] {
        let what = format!(
            "{:?}, cover {:?}",
            file.algorithm,
            file.gbt.as_ref().map(Gbt::has_cover)
        );
        let m = Model::new("shipped", file, &set).unwrap();
        for row in rows.chunks_exact(set.len()) {
            let margin = m.margin(row, &mut scratch);
            let total =
                m.expected_margin() + m.contributions(row, &mut scratch).iter().sum::<f64>();
            assert!(
                (total - margin).abs() < 1e-6,
                "{what}: {total} against {margin}"
            );
        }
    }
}

/// `score_block` gives each row exactly what `score` gives it alone: for the
/// shipped model (trees), its trees blended with a logistic regression, the regression alone and a tiny model.
#[test]
fn a_block_scores_each_row_as_scoring_it_alone_does() {
    let shipped = shipped();
    let set = load_feature_set(&shipped.feature_set).unwrap();
    let mut rng = SmallRng::seed_from_u64(7);
    let rows = 700;
    let features: Vec<f64> = (0..rows * set.len())
        .map(|_| match rng.gen_range(0..10) {
            0 => f64::NAN,
            1 => 0.0,
            k => f64::from(rng.gen_range(0..100_000)) / 10f64.powi(k % 4),
        })
        .collect();
    let labels: Vec<bool> = features
        .chunks_exact(set.len())
        .map(|r| r[0] > 500.0)
        .collect();
    let logistic = logistic::Logistic::train(&features, set.len(), &labels, 20, |_| {});
    let ensemble = ModelFile {
        algorithm: Algorithm::Ensemble,
        logistic: Some(logistic.clone()),
        ..shipped.clone()
    };
    let regression_only = ModelFile {
        algorithm: Algorithm::Logistic,
        gbt: None,
        logistic: Some(logistic),
        ..shipped.clone()
    };
    let tiny_set = load_feature_set("model").unwrap();
    let tiny_features = random_rows(&tiny_set, rows, 7);
    let cases = [
        (shipped, &set, &features),
        (ensemble, &set, &features),
        (regression_only, &set, &features),
        (tiny_model(&tiny_set), &tiny_set, &tiny_features),
    ];
    for (file, set, features) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let name = file.save(&path).unwrap().name;
        let m = Model::load(&path, &set).unwrap();
        let mut block = BlockScratch::default();
        // No rows is no scores (and no panic).
        m.score_block(&[], set.len(), &mut block, &mut []);
        let mut got = vec![0.0; rows];
        m.score_block(features, set.len(), &mut block, &mut got);
        let mut scratch = Scratch::default();
        for (k, row) in features.chunks_exact(set.len()).enumerate() {
            let want = m.score(row, &mut scratch);
            assert_eq!(got[k].to_bits(), want.to_bits(), "{name}: row {k}");
        }
    }
}

/// How to break a good model file, and what the error must then say.
enum Break {
    /// Change the model, then save it (with a matching content hash).
    Model(fn(&mut ModelFile) -> String),
    /// Change the saved text.
    Text(fn(&str) -> (String, String)),
}

/// The first split that roots a tree, as `(tree, root)`, from tree 3 on.
fn split_root(f: &ModelFile) -> (usize, u32) {
    let g = f.gbt.as_ref().unwrap();
    (3..g.roots.len())
        .map(|t| (t, g.roots[t]))
        .find(|&(_, r)| g.nodes[r as usize].feature != trees::LEAF)
        .expect("a tree that splits")
}

/// Where `needle` starts in `text`, as `line:` (1-based).
fn line_of(text: &str, needle: &str) -> String {
    let at = text.find(needle).expect("needle in text");
    format!("m.json:{}:", text[..at].matches('\n').count() + 1)
}

/// Every kind of bad model file, with what its error says.
fn breaks() -> Vec<(&'static str, Break)> {
    let mut all = tree_breaks();
    all.extend(file_breaks());
    all.extend(text_breaks());
    all
}

/// Broken trees: cycles, shared nodes, indices past the end, too deep, too many.
fn tree_breaks() -> Vec<(&'static str, Break)> {
    use Break::Model as M;
    let mut all = vec![
        (
            "a split that is its own child",
            M(|f| {
                let (t, r) = split_root(f);
                gbt(f).nodes[r as usize].left = r;
                format!("gbt: tree {t}, node {r}: left child {r}: a cycle")
            }),
        ),
        (
            "a leaf turned into a split back to its root",
            M(|f| {
                let (t, r) = split_root(f);
                let g = gbt(f);
                let c = g.nodes[r as usize].left;
                g.nodes[c as usize] = trees::Node {
                    feature: 0,
                    threshold: 1.0,
                    left: r,
                    right: r,
                    value: 0.0,
                    missing: trees::Missing::Left,
                };
                format!("gbt: tree {t}, node {c}: right child {r}: a cycle")
            }),
        ),
        (
            "two trees sharing a root",
            M(|f| {
                let (t, r) = split_root(f);
                gbt(f).roots[t + 1] = r;
                format!("gbt: tree {}: root {r}: the node is reached twice", t + 1)
            }),
        ),
        (
            "a child past the last node",
            M(|f| {
                let (t, r) = split_root(f);
                let n = gbt(f).nodes.len();
                gbt(f).nodes[r as usize].right = 1_000_000;
                format!("gbt: tree {t}, node {r}: right child 1000000 is not a node: there are {n} nodes")
            }),
        ),
        (
            "a root past the last node",
            M(|f| {
                gbt(f).roots[0] = u32::MAX;
                "gbt: tree 0: root 4294967295 is not a node".into()
            }),
        ),
        (
            "a tree deeper than the limit",
            M(|f| {
                let g = gbt(f);
                let first = g.nodes.len() as u32;
                g.roots.push(first);
                for i in 0..=trees::MAX_DEPTH {
                    let at = first + 2 * i;
                    g.nodes.push(trees::Node {
                        feature: 0,
                        threshold: 1.0,
                        left: at + 1,
                        right: at + 2,
                        value: 0.0,
                        missing: trees::Missing::Right,
                    });
                    g.nodes.push(trees::Node::leaf(0.1));
                }
                g.nodes.push(trees::Node::leaf(0.2));
                format!(
                    "gbt: tree {}, node {}: the tree is deeper than 48 levels",
                    g.roots.len() - 1,
                    first + 96
                )
            }),
        ),
        (
            "more trees than the limit",
            M(|f| {
                let g = gbt(f);
                while g.roots.len() <= trees::MAX_TREES {
                    g.roots.push(g.nodes.len() as u32);
                    g.nodes.push(trees::Node::leaf(0.0));
                }
                "gbt: 50001 trees".into()
            }),
        ),
    ];
    all.extend(tree_value_breaks());
    all
}

fn gbt(f: &mut ModelFile) -> &mut Gbt {
    f.gbt.as_mut().unwrap()
}

/// Trees whose numbers do not fit: cover, feature indices, values.
fn tree_value_breaks() -> Vec<(&'static str, Break)> {
    use Break::Model as M;
    vec![
        (
            "a cover missing for some nodes",
            M(|f| {
                let n = gbt(f).nodes.len();
                gbt(f).cover.pop();
                format!(
                    "gbt: cover has {} values for {n} nodes; expected one per node",
                    n - 1
                )
            }),
        ),
        (
            "a split that no training row reached",
            M(|f| {
                let (_, r) = split_root(f);
                gbt(f).cover[r as usize] = 0.0;
                format!("gbt: node {r}: cover 0.0; expected a finite number > 0 at a split")
            }),
        ),
        (
            "a negative cover",
            M(|f| {
                let g = gbt(f);
                let leaf = g
                    .nodes
                    .iter()
                    .position(|n| n.feature == trees::LEAF)
                    .unwrap();
                g.cover[leaf] = -1.0;
                format!("gbt: node {leaf}: cover -1.0; expected a finite number >= 0")
            }),
        ),
        (
            "a feature index past the features",
            M(|f| {
                let (t, r) = split_root(f);
                gbt(f).nodes[r as usize].feature = 2;
                format!("gbt: tree {t}, node {r}: feature index 2 is out of range: the model has 2 features")
            }),
        ),
        (
            "a huge leaf value",
            M(|f| {
                let (t, r) = split_root(f);
                let g = gbt(f);
                let leaf = (r..)
                    .find(|&n| g.nodes[n as usize].feature == trees::LEAF)
                    .unwrap();
                g.nodes[leaf as usize].value = 1e300;
                format!("gbt: tree {t}, node {leaf}: value 1e300 is not a finite number of magnitude at most 1e6")
            }),
        ),
        (
            "a huge base",
            M(|f| {
                gbt(f).base = -1e7;
                "gbt: base -10000000.0 is not a finite number".into()
            }),
        ),
    ]
}

/// Files whose features, parts or version do not fit.
fn file_breaks() -> Vec<(&'static str, Break)> {
    use Break::Model as M;
    vec![
        (
            "a feature this processor does not compute",
            M(|f| {
                f.features[1] = "NOT_A_FEATURE".into();
                "features[1]: 'NOT_A_FEATURE' is not in the feature set 'model' of this processor"
                    .into()
            }),
        ),
        (
            "a feature listed twice",
            M(|f| {
                f.features[1] = f.features[0].clone();
                "features[1]: 'TX_AMOUNT' is listed twice".into()
            }),
        ),
        (
            "more features than the limit",
            M(|f| {
                f.features.extend((0..127).map(|i| format!("F{i}")));
                "features: 129 features; at most 128".into()
            }),
        ),
        (
            "an ensemble without its logistic part",
            M(|f| {
                f.algorithm = Algorithm::Ensemble;
                "algorithm: Ensemble needs both a logistic part and trees (gbt); the file has trees only".into()
            }),
        ),
        (
            "a logistic part with a zero scale",
            M(|f| {
                f.algorithm = Algorithm::Ensemble;
                f.logistic = Some(logistic::Logistic {
                    mean: vec![0.0; 2],
                    scale: vec![1.0, 0.0],
                    weights: vec![1.0; 2],
                    bias: 0.0,
                });
                "logistic.scale[1]: 0.0 is not a finite positive number".into()
            }),
        ),
        (
            "a logistic part of the wrong width",
            M(|f| {
                f.algorithm = Algorithm::Ensemble;
                f.logistic = Some(logistic::Logistic {
                    mean: vec![0.0; 3],
                    scale: vec![1.0; 3],
                    weights: vec![1.0; 3],
                    bias: 0.0,
                });
                "logistic.weights: 3 values; expected one per feature (2)".into()
            }),
        ),
        (
            "an older format",
            M(|f| {
                f.format_version = 1;
                "format_version: 1 is not supported; expected 2".into()
            }),
        ),
        (
            "a future format",
            M(|f| {
                f.format_version = 99;
                "format_version: 99 is not supported; expected 2".into()
            }),
        ),
    ]
}

/// Files edited, cut or misspelt after saving.
fn text_breaks() -> Vec<(&'static str, Break)> {
    use Break::Text as T;
    vec![
        (
            "an edit after saving",
            T(|text| {
                (
                    text.replace("\"tiny\"", "\"tinY\""),
                    "content_hash: ".into(),
                )
            }),
        ),
        (
            "a threshold out of range",
            T(|text| {
                let at = text.find("\"threshold\": ").unwrap() + "\"threshold\": ".len();
                let end = at + text[at..].find(',').unwrap();
                let bad = format!("{}1e999{}", &text[..at], &text[end..]);
                let line = line_of(&bad, "1e999");
                (bad, line)
            }),
        ),
        (
            "a truncated file",
            T(|text| {
                let cut = text[..text.len() / 2].to_string();
                let line = format!("m.json:{}:", cut.lines().count());
                (cut, line)
            }),
        ),
        (
            "an unknown field in a node",
            T(|text| {
                let bad = text.replacen("\"value\":", "\"valeu\":", 1);
                let line = line_of(&bad, "\"valeu\"");
                (bad, line)
            }),
        ),
    ]
}

/// Every kind of bad model file is refused with an error that names the file,
/// the place and what was expected; a running model store keeps its model and
/// reports the error, and no file crashes the process (a cycle used to
/// overflow the stack).
#[test]
fn bad_model_files_are_refused_and_the_running_model_stays() {
    let set = load_feature_set("model").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    let good = tiny_model(&set).save(&path).unwrap();
    let store = ModelStore::load(Some(path.clone()), None, Arc::new(set.clone())).unwrap();
    let running = store.champion().unwrap().version.clone();
    for (what, how) in breaks() {
        let says = match how {
            Break::Model(change) => {
                let mut bad = good.clone();
                let says = change(&mut bad);
                bad.save(&path).unwrap();
                says
            }
            Break::Text(change) => {
                let (text, says) = change(&serde_json::to_string_pretty(&good).unwrap());
                std::fs::write(&path, text).unwrap();
                says
            }
        };
        let e = Model::load(&path, &set).unwrap_err().to_string();
        assert!(
            e.contains(&*path.display().to_string()) && e.contains(&says),
            "{what}: {e:?} should say {says:?}"
        );
        let reloaded = store.reload();
        assert!(
            matches!(&reloaded[..], [Err(e2)] if e2.to_string() == e),
            "{what}: {reloaded:?}"
        );
        assert_eq!(
            store.champion().unwrap().version,
            running,
            "{what}: the running model stays"
        );
    }
    // Not a model file at all: the live store starts without it and reports
    // the error; once the file is fixed, a reload brings it in.
    std::fs::write(&path, "{\n  \"format_version\": 2,\n  oops").unwrap();
    let (store, errors) = ModelStore::open(Some(path.clone()), None, Arc::new(set.clone()));
    assert!(store.configured() && store.champion().is_none() && errors.len() == 1);
    assert!(errors[0].to_string().contains("m.json:3:"), "{}", errors[0]);
    good.save(&path).unwrap();
    assert!(store.reload()[0].is_ok());
    assert!(store.champion().is_some());
}

proptest::proptest! {
    /// Arbitrary node arrays (cycles, shared nodes, indices anywhere, any
    /// numbers) are refused or served, never crash or hang; when served, every
    /// serving walk scores like the node walk.
    #[test]
    fn any_ensemble_is_refused_or_served_exactly(
        nodes in proptest::collection::vec(
            (0u16..4, proptest::prop_oneof![-3.0f64..3.0, proptest::num::f64::ANY], 0u32..12, 0u32..12, -2.0f64..2.0, proptest::bool::ANY),
            1..12,
        ),
        roots in proptest::collection::vec(0u32..12, 0..4),
        rows in proptest::collection::vec(proptest::collection::vec(proptest::option::of(-3.0f64..3.0), 2), 1..40),
    ) {
        let set = load_feature_set("model").unwrap();
        let mut file = tiny_model(&set);
        let nodes = nodes.into_iter().map(|(f, threshold, left, right, value, right_missing)| trees::Node {
            feature: if f >= 2 { trees::LEAF } else { f },
            threshold, left, right, value,
            missing: if right_missing { trees::Missing::Right } else { trees::Missing::Left },
        }).collect();
        let g = Gbt { base: 0.1, nodes, roots, params: None, cover: Vec::new() };
        file.gbt = Some(g.clone());
        if let Ok(m) = Model::new("random", file, &set) {
            let width = set.len();
            let mut features = vec![f64::NAN; width * rows.len()];
            let (a, b) = (set.index_of("TX_AMOUNT").unwrap(), set.index_of("AMOUNT_TO_CUSTOMER_AVG_30D").unwrap());
            for (k, r) in rows.iter().enumerate() {
                features[k * width + a] = r[0].unwrap_or(f64::NAN);
                features[k * width + b] = r[1].unwrap_or(f64::NAN);
            }
            let mut block = vec![0.0; rows.len()];
            m.score_block(&features, width, &mut BlockScratch::default(), &mut block);
            let mut scratch = Scratch::default();
            for (k, row) in features.chunks(width).enumerate() {
                let x = [row[a], row[b]];
                let want = 1.0 / (1.0 + (-g.margin(&x)).exp());
                proptest::prop_assert_eq!(m.score(row, &mut scratch).to_bits(), want.to_bits());
                proptest::prop_assert_eq!(block[k].to_bits(), want.to_bits());
            }
        }
    }
}
