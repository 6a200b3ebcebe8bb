//! XGBoost's JSON model (`Booster.save_model("model.json")`, format 1.0 and later).
//!
//! XGBoost reads features as 32-bit floats and sends a value left when
//! `(x as f32) < split_condition`, a missing one where `default_left` says. The
//! format's rule (`x > threshold` goes right, in 64 bits) says the same with
//! the threshold [`f32_less_than`] gives. Leaves are the `split_condition` of
//! a node without children; the base margin is the logit of `base_score`, as
//! XGBoost computes it in 32 bits.

use super::{at, unnamed, Failure, Parsed};
use crate::model::format::trees::{Gbt, Missing, Node};
use serde::Deserialize;

/// The largest `f64` `T` such that every `x <= T` has `(x as f32) < t`, so that
/// for every `x` that is not NaN: `(x as f32) < t` exactly when `!(x > T)`.
/// `None` when no value is below `t` (`t` is NaN or -inf).
pub(super) fn f32_less_than(t: f32) -> Option<f64> {
    if t.is_nan() || t == f32::NEG_INFINITY {
        return None;
    }
    // Values between the f32 below `t` and `t` round to the nearer of the two,
    // the midpoint (exact in f64) to the one with an even significand. Past
    // f32::MAX the next step would be 2^128, where rounding gives infinity.
    let half_top_step = 2f64.powi(103);
    let below = t.next_down();
    let mid = if t == f32::INFINITY {
        f64::from(f32::MAX) + half_top_step
    } else if below == f32::NEG_INFINITY {
        f64::from(t) - half_top_step
    } else {
        (f64::from(below) + f64::from(t)) / 2.0
    };
    let last = if (mid as f32) < t {
        mid
    } else {
        mid.next_down()
    };
    debug_assert!((last as f32) < t && (last.next_up() as f32) >= t);
    Some(last)
}

#[derive(Deserialize)]
struct File {
    learner: Learner,
    #[serde(default)]
    version: Vec<u32>,
}

#[derive(Deserialize)]
struct Learner {
    #[serde(default)]
    feature_names: Vec<String>,
    #[serde(default)]
    feature_types: Vec<String>,
    gradient_booster: Booster,
    learner_model_param: ModelParam,
    objective: Objective,
}

#[derive(Deserialize)]
struct Booster {
    name: String,
    model: Option<Forest>,
}

#[derive(Deserialize)]
struct Forest {
    trees: Vec<Tree>,
}

#[derive(Deserialize)]
struct Tree {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<i64>,
    split_conditions: Vec<f64>,
    default_left: Vec<Flag>,
    #[serde(default)]
    split_type: Vec<i64>,
    #[serde(default)]
    sum_hessian: Vec<f64>,
    tree_param: TreeParam,
}

/// XGBoost writes `default_left` as 0/1 (older versions as booleans).
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Int(i64),
}

#[derive(Deserialize)]
struct TreeParam {
    #[serde(default)]
    size_leaf_vector: Option<String>,
}

#[derive(Deserialize)]
struct ModelParam {
    base_score: String,
    #[serde(default)]
    num_class: Option<String>,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct Objective {
    name: String,
}

/// Parses the JSON model.
pub(super) fn parse(bytes: &[u8]) -> Result<Parsed, Failure> {
    if bytes.starts_with(b"tree\n") {
        return Err(at(
            "file",
            "LightGBM's text model; import it with --from lightgbm",
        ));
    }
    if !bytes.trim_ascii_start().starts_with(b"{") {
        return Err(at("file", "not JSON; expected XGBoost's JSON model (save_model with a .json name; UBJSON is not read)"));
    }
    let file: File = serde_json::from_slice(bytes)?;
    let l = file.learner;
    if l.objective.name != "binary:logistic" {
        return Err(at(
            "objective",
            format!(
                "'{}' is not supported; expected binary:logistic",
                l.objective.name
            ),
        ));
    }
    let one = |v: &Option<String>| v.as_deref().is_none_or(|s| s == "0" || s == "1");
    if !one(&l.learner_model_param.num_class) || !one(&l.learner_model_param.num_target) {
        return Err(at(
            "learner_model_param",
            "several classes or targets; expected one binary target",
        ));
    }
    if let Some(i) = l.feature_types.iter().position(|t| t == "c") {
        return Err(at(format!("feature_types[{i}]"), "a categorical feature; categorical features are not supported (encode them as numbers before training)"));
    }
    let Some(forest) = l
        .gradient_booster
        .model
        .filter(|_| l.gradient_booster.name == "gbtree")
    else {
        return Err(at(
            "gradient_booster",
            format!(
                "booster '{}' is not supported; expected gbtree",
                l.gradient_booster.name
            ),
        ));
    };
    if l.feature_names.is_empty() {
        return Err(Failure::At(unnamed()));
    }
    let base = base_margin(&l.learner_model_param.base_score)?;
    let mut gbt = Gbt {
        base,
        nodes: Vec::new(),
        roots: Vec::new(),
        params: None,
        cover: Vec::new(),
    };
    for (t, tree) in forest.trees.iter().enumerate() {
        add_tree(t, tree, l.feature_names.len(), &mut gbt)?;
    }
    // The hessian sums are XGBoost's cover; a model lacking some has none.
    if forest
        .trees
        .iter()
        .all(|t| t.sum_hessian.len() == t.left_children.len())
    {
        gbt.cover = forest
            .trees
            .iter()
            .flat_map(|t| t.sum_hessian.iter().copied())
            .collect();
    }
    let version = file
        .version
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".");
    Ok(Parsed {
        gbt,
        features: l.feature_names,
        version,
        objective: l.objective.name,
        fill_split_values: true,
    })
}

/// The margin of `base_score` (a probability, `0.5` or `[5E-1]`):
/// `-ln(1 / p - 1)` in 32 bits, as XGBoost computes it.
fn base_margin(text: &str) -> Result<f64, Failure> {
    let p: f32 = text
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| at("base_score", format!("'{text}': expected one probability")))?;
    if !(p > 0.0 && p < 1.0) {
        return Err(at(
            "base_score",
            format!("{p}: expected a probability strictly between 0 and 1"),
        ));
    }
    Ok(f64::from(-(1.0f32 / p - 1.0f32).ln()))
}

/// Appends tree `t` to `gbt`, node `i` at `first + i`.
fn add_tree(t: usize, tree: &Tree, features: usize, gbt: &mut Gbt) -> Result<(), Failure> {
    let place = format!("tree {t}");
    let n = tree.left_children.len();
    if n == 0 {
        return Err(at(&place, "no nodes"));
    }
    if tree
        .tree_param
        .size_leaf_vector
        .as_deref()
        .is_some_and(|s| s != "0" && s != "1")
    {
        return Err(at(
            &place,
            "vector leaves (multi-target trees) are not supported",
        ));
    }
    let lengths = [
        tree.right_children.len(),
        tree.split_indices.len(),
        tree.split_conditions.len(),
        tree.default_left.len(),
    ];
    if lengths.iter().any(|&len| len != n) {
        return Err(at(&place, format!("{n} left_children but {lengths:?} right_children, split_indices, split_conditions, default_left; expected as many of each")));
    }
    let first = gbt.nodes.len();
    let child = |c: i64, i: usize| -> Result<u32, Failure> {
        usize::try_from(c)
            .ok()
            .filter(|&c| c < n)
            .map(|c| (first + c) as u32)
            .ok_or_else(|| {
                at(
                    format!("tree {t}, node {i}"),
                    format!("child {c} is out of range: the tree has {n} nodes"),
                )
            })
    };
    for i in 0..n {
        let place = format!("tree {t}, node {i}");
        let condition = tree.split_conditions[i] as f32;
        if tree.left_children[i] == -1 {
            gbt.nodes.push(Node::leaf(f64::from(condition)));
            continue;
        }
        if tree.split_type.get(i).is_some_and(|&s| s != 0) {
            return Err(at(&place, "a categorical split; categorical features are not supported (encode them as numbers before training)"));
        }
        let feature = u16::try_from(tree.split_indices[i])
            .ok()
            .filter(|&f| usize::from(f) < features)
            .ok_or_else(|| {
                at(
                    &place,
                    format!(
                        "split index {} is out of range: the model names {features} features",
                        tree.split_indices[i]
                    ),
                )
            })?;
        let threshold = f32_less_than(condition).ok_or_else(|| {
            at(
                &place,
                format!(
                    "split condition {condition} sends every value right; expected a finite number"
                ),
            )
        })?;
        let left = match tree.default_left[i] {
            Flag::Bool(b) => b,
            Flag::Int(v) => v != 0,
        };
        gbt.nodes.push(Node {
            feature,
            threshold,
            left: child(tree.left_children[i], i)?,
            right: child(tree.right_children[i], i)?,
            value: 0.0,
            missing: if left { Missing::Left } else { Missing::Right },
        });
    }
    gbt.roots.push(first as u32);
    Ok(())
}

/// Sets each split's value to the mean of the leaves below it weighted by
/// their hessian sums (the cover), for explanations of a model without cover
/// (plain mean then). `gbt` must pass [`Gbt::check`] (so the recursion is shallow).
pub(super) fn fill_split_values(gbt: &mut Gbt) {
    fn fill(gbt: &mut Gbt, n: u32) -> (f64, f64) {
        let node = gbt.nodes[n as usize];
        let weight = gbt
            .cover
            .get(n as usize)
            .copied()
            .filter(|h| *h > 0.0)
            .unwrap_or(1.0);
        if node.feature == crate::model::format::trees::LEAF {
            return (node.value, weight);
        }
        let (l, wl) = fill(gbt, node.left);
        let (r, wr) = fill(gbt, node.right);
        let mean = (l * wl + r * wr) / (wl + wr);
        gbt.nodes[n as usize].value = mean;
        (mean, weight)
    }
    for t in 0..gbt.roots.len() {
        fill(gbt, gbt.roots[t]);
    }
}
