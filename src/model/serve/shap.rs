//! Exact path-dependent TreeSHAP of a tree ensemble: each feature's Shapley
//! value of the margin, where a feature left out of a coalition follows both
//! children of its splits in proportion to their training cover.
//!
//! Source: S. M. Lundberg, G. G. Erion, S.-I. Lee, "Consistent Individualized
//! Feature Attribution for Tree Ensembles" (2018, arXiv:1802.03888),
//! Algorithm 2 (EXTEND, UNWIND and the recursion), in the form XGBoost serves
//! it (`TreeShap` in `src/tree/tree_model.cc`). Cost: O(leaves x depth²) per
//! tree, paid only when a decision is explained; shallow trees are explained
//! from tables built at load instead ([`ShapTables`]), whose rows the same
//! EXTEND and UNWIND compute.
//!
//! The values add up: `expected_margin() + Σ contributions = margin(x)`,
//! exactly in arithmetic; in 64 bits, unwinding a path of many distinct
//! features loses digits (1e-12 of the margin at depth 16, 1e-3 at the
//! deepest servable tree, 48).

mod table;

pub use table::{ShapTables, MAX_TABLE_DEPTH, MAX_TABLE_VALUES};

use crate::model::format::trees::{Gbt, LEAF, MAX_DEPTH};

/// One feature on the path from the root: the share of cover that follows the
/// path when the feature is left out (`zero`) or kept (`one`, 0 or 1), and
/// the weight of the coalitions of each size (`weight`).
#[derive(Debug, Clone, Copy, Default)]
struct Element {
    feature: u16,
    zero: f64,
    one: f64,
    weight: f64,
}

/// Path segments of every recursion level of the deepest servable tree
/// ([`MAX_DEPTH`] splits): level `l` uses `l + 1` elements after the
/// previous level's.
const PATH_LEN: usize = (MAX_DEPTH as usize + 2) * (MAX_DEPTH as usize + 3) / 2;

/// Scratch space of [`Gbt::shap`], sized once for any servable tree (40 KiB),
/// so that explaining allocates nothing.
pub struct ShapPath(Box<[Element]>);

impl Default for ShapPath {
    fn default() -> Self {
        Self(vec![Element::default(); PATH_LEN].into_boxed_slice())
    }
}

impl std::fmt::Debug for ShapPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShapPath({} elements)", self.0.len())
    }
}

/// `1 / k` for the path lengths the weights are scaled by: multiplying is
/// several times faster than dividing, and explanations divide most.
static RECIPROCAL: [f64; MAX_DEPTH as usize + 3] = {
    let mut r = [0.0; MAX_DEPTH as usize + 3];
    let mut k = 1;
    while k < r.len() {
        r[k] = 1.0 / k as f64;
        k += 1;
    }
    r
};

/// EXTEND: appends `e` as element `depth` of `path`, updating the weights.
fn extend(path: &mut [Element], depth: usize, e: Element) {
    path[depth] = Element {
        weight: if depth == 0 { 1.0 } else { 0.0 },
        ..e
    };
    let per = RECIPROCAL[depth + 1];
    for i in (0..depth).rev() {
        path[i + 1].weight += e.one * path[i].weight * (i + 1) as f64 * per;
        path[i].weight = e.zero * path[i].weight * (depth - i) as f64 * per;
    }
}

/// UNWIND: removes element `k` from the `depth + 1` elements of `path`. An
/// element's `one` is 0 or 1 (whether the input takes that branch).
fn unwind(path: &mut [Element], depth: usize, k: usize) {
    let Element { zero, one, .. } = path[k];
    debug_assert!(one == 0.0 || one == 1.0);
    let (d1, per) = ((depth + 1) as f64, RECIPROCAL[depth + 1]);
    let mut next = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let w = path[i].weight;
            path[i].weight = next * d1 * RECIPROCAL[i + 1];
            next = w - path[i].weight * zero * (depth - i) as f64 * per;
        } else {
            path[i].weight = path[i].weight * d1 * RECIPROCAL[depth - i] / zero;
        }
    }
    for i in k..depth {
        let Element {
            feature, zero, one, ..
        } = path[i + 1];
        path[i] = Element {
            feature,
            zero,
            one,
            weight: path[i].weight,
        };
    }
}

/// The total weight of the path with element `k` unwound, without changing it.
fn unwound_sum(path: &[Element], depth: usize, k: usize) -> f64 {
    let Element { zero, one, .. } = path[k];
    let (d1, per) = ((depth + 1) as f64, RECIPROCAL[depth + 1]);
    let mut next = path[depth].weight;
    let mut total = 0.0;
    if one != 0.0 {
        for i in (0..depth).rev() {
            let w = next * d1 * RECIPROCAL[i + 1];
            total += w;
            next = path[i].weight - w * zero * (depth - i) as f64 * per;
        }
    } else if zero != 0.0 {
        for i in (0..depth).rev() {
            total += path[i].weight * RECIPROCAL[depth - i];
        }
        total *= d1 / zero;
    }
    total
}

/// One explanation in progress: the trees, the input, the output.
struct Walk<'a> {
    gbt: &'a Gbt,
    x: &'a [f64],
    phi: &'a mut [f64],
}

impl Walk<'_> {
    /// The recursion of Algorithm 2 at `node`: the parent's path (`depth`
    /// elements from `parent`) is copied after itself and extended by `e`.
    fn node(&mut self, path: &mut [Element], parent: usize, depth: usize, node: u32, e: Element) {
        let start = parent + depth + 1;
        path.copy_within(parent..parent + depth + 1, start);
        let seg = &mut path[start..];
        extend(seg, depth, e);
        let n = &self.gbt.nodes[node as usize];
        if n.feature == LEAF {
            for k in 1..=depth {
                let el = seg[k];
                let w = unwound_sum(seg, depth, k);
                self.phi[usize::from(el.feature)] += w * (el.one - el.zero) * n.value;
            }
            return;
        }
        let (hot, cold) = if n.goes_right(self.x[usize::from(n.feature)]) {
            (n.right, n.left)
        } else {
            (n.left, n.right)
        };
        let cover = &self.gbt.cover;
        let here = cover[node as usize];
        let (mut zero, mut one, mut depth) = (1.0, 1.0, depth);
        // A feature split on again above: undo that split and redo it here.
        if let Some(k) = (1..=depth).find(|&k| seg[k].feature == n.feature) {
            (zero, one) = (seg[k].zero, seg[k].one);
            unwind(seg, depth, k);
            depth -= 1;
        }
        let feature = n.feature;
        for (child, one) in [(hot, one), (cold, 0.0)] {
            let zero = cover[child as usize] / here * zero;
            // A child no coalition reaches (no cover, not taken) adds nothing.
            if zero != 0.0 || one != 0.0 {
                let e = Element {
                    feature,
                    zero,
                    one,
                    weight: 0.0,
                };
                self.node(path, start, depth + 1, child, e);
            }
        }
    }
}

impl Gbt {
    /// Adds each feature's contribution to the margin into `contrib` (Saabas path
    /// differences: what trees without cover are explained by; they need not
    /// be consistent).
    pub fn contributions(&self, x: &[f64], contrib: &mut [f64]) {
        for &root in &self.roots {
            let mut n = &self.nodes[root as usize];
            while n.feature != LEAF {
                let next = &self.nodes[if n.goes_right(x[n.feature as usize]) {
                    n.right
                } else {
                    n.left
                } as usize];
                contrib[n.feature as usize] += next.value - n.value;
                n = next;
            }
        }
    }

    /// Adds each feature's TreeSHAP value (margin units) of input `x` into
    /// `contrib`. Needs [`Gbt::has_cover`] and a [`Gbt::check`]ed ensemble.
    pub fn shap(&self, x: &[f64], contrib: &mut [f64], path: &mut ShapPath) {
        assert!(self.has_cover(), "TreeSHAP needs the nodes' cover");
        let mut walk = Walk {
            gbt: self,
            x,
            phi: contrib,
        };
        let root = Element {
            feature: LEAF,
            zero: 1.0,
            one: 1.0,
            weight: 0.0,
        };
        for &r in &self.roots {
            walk.node(&mut path.0, 0, 0, r, root);
        }
    }

    /// The margin with every feature left out: `base` plus each tree's leaves
    /// weighted by the share of the root's cover that reaches them. With
    /// [`Gbt::shap`]'s values it adds up to [`Gbt::margin`].
    pub fn expected_margin(&self) -> f64 {
        fn below(g: &Gbt, n: u32) -> f64 {
            let node = &g.nodes[n as usize];
            if node.feature == LEAF {
                return node.value;
            }
            let share = |c: u32| g.cover[c as usize] / g.cover[n as usize];
            share(node.left) * below(g, node.left) + share(node.right) * below(g, node.right)
        }
        self.base + self.roots.iter().map(|&r| below(self, r)).sum::<f64>()
    }
}

#[cfg(test)]
mod tests;
