//! Gradient-boosted decision trees for binary log-loss, fitted by `forust-ml`
//! (a maintained pure-Rust gradient-boosting library) and converted exactly
//! into the ensemble of [`crate::model::format::trees`], which serves them.
//!
//! forust sends a present value left when `x < split_value` and a missing one
//! to its `missing_node` (one of the two children: the trainer never asks for
//! a separate missing branch); its leaf weights are `f32` and its margin is
//! `base_score` plus one leaf per tree, added in tree order. The converted
//! split keeps `x <= threshold` on the left with `threshold` the largest `f64`
//! below `split_value`, so every score equals forust's own prediction to the bit.

pub use crate::model::format::trees::GbtParams;
use crate::model::format::trees::{Gbt, Missing, Node, LEAF};
use forust_ml::gradientbooster::GradientBooster;
use forust_ml::metric::Metric;
use forust_ml::objective::ObjectiveType;
use forust_ml::Matrix;
use std::collections::VecDeque;

/// Early stopping: rows scored after each tree, and how many trees may pass
/// without a better log-loss on them before fitting stops.
#[derive(Debug, Clone, Copy)]
pub struct EarlyStopping<'a> {
    /// Rows, row-major, as many features as the training rows.
    pub x: &'a [f64],
    /// Their labels.
    pub y: &'a [bool],
    /// Trees without improvement before stopping.
    pub rounds: usize,
}

/// Why a fit failed.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The library refused the settings or the data.
    #[error("gradient boosting: {0}")]
    Library(#[from] forust_ml::errors::ForustError),
    /// A fitted tree has no exact equivalent in the serving form.
    #[error("gradient boosting: tree {tree}, node {node}: {message}")]
    Convert {
        /// Tree index.
        tree: usize,
        /// forust's node index in that tree.
        node: usize,
        /// What could not be converted.
        message: String,
    },
}

/// forust's column-major matrix of row-major `x` (`d` features per row).
fn columns(x: &[f64], d: usize) -> Vec<f64> {
    let n = x.len() / d.max(1);
    let mut cols = vec![0.0; n * d];
    for (i, row) in x.chunks_exact(d).enumerate() {
        for (f, &v) in row.iter().enumerate() {
            cols[f * n + i] = v;
        }
    }
    cols
}

fn labels(y: &[bool]) -> Vec<f64> {
    y.iter().map(|&v| f64::from(u8::from(v))).collect()
}

/// The booster for `params`: log-loss, base score from the label mean, one
/// thread (so that the fit is the same on every machine and every run).
fn booster(params: &GbtParams, rounds: Option<usize>) -> GradientBooster {
    let bins = u16::try_from(params.bins).unwrap_or(u16::MAX);
    GradientBooster::default()
        .set_objective_type(ObjectiveType::LogLoss)
        .set_iterations(params.trees)
        .set_learning_rate(params.learning_rate as f32)
        .set_max_depth(params.max_depth)
        .set_l2(params.lambda as f32)
        .set_min_leaf_weight(params.min_child_weight as f32)
        .set_nbins(bins)
        .set_parallel(false)
        .set_initialize_base_score(true)
        .set_create_missing_branch(false)
        .set_seed(0)
        .set_evaluation_metric(rounds.map(|_| Metric::LogLoss))
        .set_early_stopping_rounds(rounds)
}

/// Fits trees to rows `x` (row-major, `d` features, NaN = missing) with labels
/// `y`; with `stop`, stops after `stop.rounds` trees without a better log-loss
/// on its rows and keeps the trees up to the best. Deterministic.
pub fn fit(
    x: &[f64],
    d: usize,
    y: &[bool],
    params: &GbtParams,
    stop: Option<EarlyStopping<'_>>,
) -> Result<Gbt, FitError> {
    let mut b = fit_booster(x, d, y, params, stop)?;
    let kept = b.prediction_iteration.unwrap_or(b.trees.len());
    b.trees.truncate(kept);
    convert(
        &b,
        GbtParams {
            trees: kept,
            ..*params
        },
    )
}

fn fit_booster(
    x: &[f64],
    d: usize,
    y: &[bool],
    params: &GbtParams,
    stop: Option<EarlyStopping<'_>>,
) -> Result<GradientBooster, FitError> {
    let mut b = booster(params, stop.map(|s| s.rounds));
    let cols = columns(x, d);
    let data = Matrix::new(&cols, y.len(), d);
    let target = labels(y);
    match stop {
        Some(s) => {
            let eval_cols = columns(s.x, d);
            let eval_y = labels(s.y);
            let eval_w = vec![1.0; s.y.len()];
            let eval = Matrix::new(&eval_cols, s.y.len(), d);
            let eval_set = vec![(eval, eval_y.as_slice(), eval_w.as_slice())];
            b.fit_unweighted(&data, &target, Some(eval_set))?;
        }
        None => b.fit_unweighted(&data, &target, None)?,
    }
    Ok(b)
}

/// The serving form of `b`'s trees (all of them), nodes in breadth-first order per tree.
fn convert(b: &GradientBooster, params: GbtParams) -> Result<Gbt, FitError> {
    let mut gbt = Gbt {
        base: b.base_score,
        nodes: Vec::new(),
        roots: Vec::new(),
        params: Some(params),
        cover: Vec::new(),
    };
    for (t, tree) in b.trees.iter().enumerate() {
        let fault = |node, message: &str| FitError::Convert {
            tree: t,
            node,
            message: message.into(),
        };
        let root = gbt.nodes.len();
        gbt.roots.push(root as u32);
        gbt.nodes.push(Node::leaf(0.0));
        let mut queue = VecDeque::from([(0usize, root)]);
        while let Some((i, at)) = queue.pop_front() {
            // A node met more often than the tree has nodes means a cycle.
            if gbt.nodes.len() - root > tree.nodes.len() {
                return Err(fault(i, "the tree is not a tree"));
            }
            let n = tree.nodes.get(i).ok_or_else(|| fault(i, "no such node"))?;
            // The node's hessian sum: the cover TreeSHAP weighs paths by.
            gbt.cover.resize(gbt.nodes.len(), 0.0);
            gbt.cover[at] = f64::from(n.hessian_sum);
            if n.is_leaf {
                gbt.nodes[at] = Node::leaf(f64::from(n.weight_value));
                continue;
            }
            let missing = if n.missing_node == n.left_child {
                Missing::Left
            } else if n.missing_node == n.right_child {
                Missing::Right
            } else {
                return Err(fault(i, "a separate branch for missing values"));
            };
            let feature = u16::try_from(n.split_feature)
                .ok()
                .filter(|&f| f != LEAF)
                .ok_or_else(|| fault(i, "feature index out of range"))?;
            if !n.split_value.is_finite() {
                return Err(fault(i, "a split value that is not finite"));
            }
            let (left, right) = (gbt.nodes.len(), gbt.nodes.len() + 1);
            gbt.nodes.extend([Node::leaf(0.0), Node::leaf(0.0)]);
            gbt.nodes[at] = Node {
                feature,
                // forust: left when x < split_value; here: left when x <= threshold.
                threshold: n.split_value.next_down(),
                left: left as u32,
                right: right as u32,
                value: f64::from(n.weight_value),
                missing,
            };
            queue.extend([(n.left_child, left), (n.right_child, right)]);
        }
    }
    Ok(gbt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// y = (x0 > 5) xor (x1 > 0.5), with a noise feature, a constant one, one
    /// always missing, and missing values in x0 that are mostly fraud.
    fn xor_rows(n: usize) -> (Vec<f64>, Vec<bool>) {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let a = (i % 10) as f64 + 0.25;
            let b = ((i / 10) % 2) as f64;
            let noise = ((i * 7919) % 13) as f64;
            let missing = i % 7 == 0;
            x.extend_from_slice(&[if missing { f64::NAN } else { a }, b, noise, 3.0, f64::NAN]);
            y.push(if missing {
                i % 3 != 0
            } else {
                (a > 5.0) != (b > 0.5)
            });
        }
        (x, y)
    }

    #[test]
    fn converted_trees_score_as_the_library_predicts() {
        let (x, y) = xor_rows(4000);
        let params = GbtParams {
            trees: 40,
            max_depth: 3,
            learning_rate: 0.3,
            ..GbtParams::default()
        };
        let b = fit_booster(&x, 5, &y, &params, None).unwrap();
        let g = convert(&b, params).unwrap();
        assert_eq!(g.check(5).map(|d| d <= 3), Ok(true));
        // Probe values on, just below and just above every split, and missing ones.
        let mut probe = x.clone();
        for n in g.nodes.iter().filter(|n| n.feature != LEAF) {
            for v in [n.threshold, n.threshold.next_up(), n.threshold.next_down()] {
                let mut row = x[..5].to_vec();
                row[n.feature as usize] = v;
                probe.extend(row);
            }
        }
        let cols = columns(&probe, 5);
        let want = b.predict(&Matrix::new(&cols, probe.len() / 5, 5), false);
        for (row, w) in probe.chunks_exact(5).zip(&want) {
            assert_eq!(g.margin(row).to_bits(), w.to_bits(), "{row:?}");
        }
        assert!(
            g.nodes
                .iter()
                .any(|n| n.feature != LEAF && n.missing == Missing::Right),
            "some splits send missing values right"
        );
        let correct = x
            .chunks_exact(5)
            .zip(&y)
            .filter(|(row, &l)| (g.margin(row) > 0.0) == l)
            .count();
        assert!(correct as f64 / y.len() as f64 > 0.9, "{correct}");
    }

    /// On simulated payments' real features (many missing: device, IP,
    /// first payments), converted scores are forust's to the bit, and its
    /// splits send missing values both ways.
    #[test]
    fn converted_trees_score_as_the_library_predicts_on_simulated_payments() {
        let (data, _) = crate::offline::train::tests::simulated(21);
        let d = data.d;
        let params = GbtParams {
            trees: 60,
            max_depth: 5,
            learning_rate: 0.2,
            ..GbtParams::default()
        };
        let b = fit_booster(&data.x, d, &data.y, &params, None).unwrap();
        let g = convert(&b, params).unwrap();
        let cols = columns(&data.x, d);
        let want = b.predict(&Matrix::new(&cols, data.y.len(), d), false);
        for (row, w) in data.x.chunks_exact(d).zip(&want) {
            assert_eq!(g.margin(row).to_bits(), w.to_bits(), "{row:?}");
        }
        let splits = g.nodes.iter().filter(|n| n.feature != LEAF);
        let right = splits
            .clone()
            .filter(|n| n.missing == Missing::Right)
            .count();
        assert!(right > 0 && right < splits.count(), "{right}");
    }

    #[test]
    fn early_stopping_keeps_the_trees_up_to_the_best() {
        let (x, y) = xor_rows(3000);
        let (val_x, val_y) = xor_rows(1000);
        let params = GbtParams {
            trees: 2000,
            max_depth: 3,
            learning_rate: 0.5,
            ..GbtParams::default()
        };
        let stop = EarlyStopping {
            x: &val_x,
            y: &val_y,
            rounds: 10,
        };
        let g = fit(&x, 5, &y, &params, Some(stop)).unwrap();
        let kept = g.params.unwrap().trees;
        assert_eq!(g.roots.len(), kept);
        assert!(kept < 200, "stopped early: {kept} trees");
        let again = fit(&x, 5, &y, &params, Some(stop)).unwrap();
        assert_eq!(g, again, "deterministic");
    }
}
