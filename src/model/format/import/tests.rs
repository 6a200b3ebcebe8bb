//! The import's rewriting of each library's split rule, on hand-made inputs.

use super::xgboost::f32_less_than;
use super::*;
use crate::features::load_feature_set;
use crate::model::format::trees::Missing;

/// `(x as f32) < t` exactly when `!(x > f32_less_than(t))`, for `x` around `t`
/// (the negated compare is the serving walk's, written as it is there).
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn assert_less_than_rewrites(t: f32) {
    let Some(last) = f32_less_than(t) else {
        assert!(t.is_nan() || t == f32::NEG_INFINITY, "{t:e}");
        return;
    };
    let t64 = f64::from(t);
    let mut xs = vec![
        last,
        last.next_up(),
        last.next_down(),
        t64,
        t64.next_up(),
        t64.next_down(),
    ];
    xs.extend([
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN,
    ]);
    for x in xs {
        assert_eq!((x as f32) < t, !(x > last), "t {t:e} x {x:e} last {last:e}");
    }
}

#[test]
fn xgboost_thresholds_compare_as_xgboost_does_in_32_bits() {
    let special = [
        0.0,
        -0.0,
        1.0,
        0.5,
        0.1,
        -0.1,
        194.66,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1),
        -f32::from_bits(1),
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    for t in special {
        assert_less_than_rewrites(t);
    }
    // A 64-bit value just below a 32-bit one is 32-bit equal to it: not below.
    let t = 0.1f32;
    assert!(f32_less_than(t).unwrap() < f64::from(t));
    assert!((f64::from(t).next_down() as f32) == t);
    let mut bits = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200_000 {
        bits ^= bits << 13;
        bits ^= bits >> 7;
        bits ^= bits << 17;
        assert_less_than_rewrites(f32::from_bits(bits as u32));
    }
}

/// A LightGBM text model of two trees over two features, `decision_types`
/// those of tree 0's two splits.
fn lightgbm_text(decision_types: &str, threshold: &str) -> String {
    format!(
        "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=1\n\
         objective=binary sigmoid:1\nfeature_names=TX_AMOUNT CUSTOMER_ID_SECS_SINCE_LAST\n\
         feature_infos=[0:10] [0:10]\ntree_sizes=1 1\n\n\
         Tree=0\nnum_leaves=3\nnum_cat=0\nsplit_feature=0 1\nsplit_gain=1 1\n\
         threshold={threshold} -2\ndecision_type={decision_types}\nleft_child=1 -1\nright_child=-3 -2\n\
         leaf_value=0.25 0.5 1\nleaf_weight=1 1 1\nleaf_count=1 1 1\ninternal_value=0.3 0.4\n\
         internal_weight=1 1\ninternal_count=2 1\nis_linear=0\nshrinkage=1\n\n\n\
         Tree=1\nnum_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\n\
         left_child=\nright_child=\nleaf_value=-0.125\nleaf_weight=\nleaf_count=\ninternal_value=\n\
         internal_weight=\ninternal_count=\nis_linear=0\nshrinkage=1\n\n\nend of trees\n"
    )
}

fn import_text(text: &str) -> Result<ModelFile, ModelError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.txt");
    std::fs::write(&path, text).unwrap();
    import(
        Library::Lightgbm,
        &path,
        &load_feature_set("model").unwrap(),
        "m",
    )
}

/// LightGBM's `missing_type` and `default_left` become the node's direction
/// (None: where 0.0 goes), leaves and a one-leaf tree are read, `<=` goes left.
#[test]
fn lightgbm_splits_become_the_formats() {
    // Tree 0: amount <= 3 ? (secs <= -2 ? 0.25 : 0.5) : 1.0; tree 1: -0.125.
    for (types, threshold, missing) in [
        ("2 2", "3", [Missing::Left, Missing::Right]), // None: 0 <= 3 left; 0 <= -2 no: right
        ("2 2", "-1", [Missing::Right, Missing::Right]),
        ("8 10", "3", [Missing::Right, Missing::Left]), // NaN: default_left bit
        ("10 8", "3", [Missing::Left, Missing::Right]),
    ] {
        let file = import_text(&lightgbm_text(types, threshold)).unwrap();
        let g = file.gbt.as_ref().unwrap();
        assert_eq!(g.roots, [0, 5]);
        assert_eq!([g.nodes[0].missing, g.nodes[1].missing], missing, "{types}");
        let t: f64 = threshold.parse().unwrap();
        assert_eq!(
            g.margin(&[t, -2.0]),
            0.25 - 0.125,
            "on both thresholds: left"
        );
        assert_eq!(g.margin(&[t, -1.5]), 0.5 - 0.125);
        assert_eq!(g.margin(&[t + 0.5, -2.0]), 1.0 - 0.125);
        assert_eq!(
            g.nodes[1].value, 0.4,
            "internal values kept for explanations"
        );
    }
    // LightGBM's split of missing against present values: +inf, kept finite.
    let file = import_text(&lightgbm_text("8 2", "inf")).unwrap();
    let g = file.gbt.as_ref().unwrap();
    assert_eq!(
        (g.nodes[0].threshold, g.nodes[0].missing),
        (f64::MAX, Missing::Right)
    );
    assert_eq!(g.margin(&[f64::NAN, 0.0]), 0.875);
    assert_eq!(g.margin(&[1e300, 0.0]), 0.375);
}

/// What LightGBM's text model can say that cannot be imported is refused,
/// naming the line or the tree and node.
#[test]
fn lightgbm_text_that_cannot_be_imported_is_refused_with_its_place() {
    let good = lightgbm_text("2 2", "3");
    for (bad, says) in [
        (good.replace("decision_type=2 2", "decision_type=2 3"), "tree 0, node 1: a categorical split"),
        (good.replace("decision_type=2 2", "decision_type=4 2"), "tree 0, node 0: missing_type Zero (zero_as_missing=true) is not supported"),
        (good.replace("binary sigmoid:1", "regression"), "objective: 'regression' is not supported; expected binary"),
        (good.replace("binary sigmoid:1", "binary sigmoid:2"), "objective: 'binary sigmoid:2' is not supported"),
        (good.replace("num_class=1", "num_class=3"), "num_class: 3 classes"),
        (good.replace("tree\nversion", "average_output\nversion").replace("max_feature_idx", "tree\nmax_feature_idx"), "line 1: expected 'tree'"),
        (good.replace("left_child=1 -1", "left_child=1 -7"), "tree 0 (line 12): child -7 is out of range for 3 leaves"),
        (good.replace("left_child=1 -1", "left_child=1 0"), "tree 0, node 1: left child 0: a cycle"),
        (good.replace("left_child=1 -1", "left_child=1"), "line 19: left_child has 1 values; expected 2"),
        (good.replace("threshold=3 -2", "threshold=3 x"), "line 17: threshold: 'x' is not a number"),
        (good.replace("threshold=3 -2", "threshold=3 nan"), "tree 0, node 1: threshold NaN; expected a number or +inf"),
        (good.replace("split_feature=0 1", "split_feature=0 2"), "tree 0, node 1: split feature 2 is out of range: the model names 2 features"),
        (good.replacen("is_linear=0", "is_linear=1", 1), "tree 0 (line 12): a linear tree"),
        (good.replace("feature_names=TX_AMOUNT", "feature_names=TX_AMOUNTS"), "1 of the model's 2 features are not in the feature set 'model': TX_AMOUNTS; expected names from: TX_AMOUNT, "),
    ] {
        let e = import_text(&bad).unwrap_err().to_string();
        assert!(e.contains("model.txt: ") && e.contains(says), "{e:?} should say {says:?}");
    }
}
