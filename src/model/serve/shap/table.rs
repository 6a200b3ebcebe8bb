//! TreeSHAP from tables built at load, for shallow trees: per-leaf path
//! tables in the manner of Fast TreeSHAP v2 (J. Yang, "Fast TreeSHAP:
//! Accelerating SHAP Value Computation for Trees", 2021, arXiv:2109.09847).
//!
//! A leaf's share of each feature's Shapley value depends on the event only
//! through which of the features on the leaf's path the event follows (a
//! feature split on twice is followed when both splits go the leaf's way):
//! `2^d` patterns for `d` distinct path features. Each pattern's `d` values are
//! computed once, at load, by the recursion's EXTEND and UNWIND over the
//! leaf's merged path, times the leaf's value. Explaining an event is then one
//! walk over every node of every tree, carrying the set of path features the
//! event leaves (its pattern), and a table row added per leaf: O(leaves x
//! depth) per tree instead of O(leaves x depth²), with no division.

use super::{extend, unwound_sum, Element};
use crate::model::format::trees::{Gbt, Node, LEAF};

/// Deepest tree explained from tables: a leaf's pattern is a byte.
pub const MAX_TABLE_DEPTH: u32 = 8;

/// Most table values (8 bytes each) of one model: 8 MiB. A model that would
/// need more is explained by the recursion.
pub const MAX_TABLE_VALUES: usize = 1 << 20;

/// Nodes of the largest tree of [`MAX_TABLE_DEPTH`].
const MAX_TREE_NODES: usize = (2 << MAX_TABLE_DEPTH) - 1;

/// A node of a tabled tree. Nodes are in pre-order, so a parent comes before
/// its children; children are indices within the tree.
#[derive(Debug, Clone, Copy)]
struct TableNode {
    threshold: f64,
    /// Split: left child. Leaf: where its rows start in `values`.
    a: u32,
    /// Split: right child. Leaf: where its path features start in `features`.
    b: u32,
    /// Split feature, or [`LEAF`].
    feature: u16,
    nan_right: bool,
    /// Split: the bit of its feature in the pattern. Leaf: its path's count
    /// of distinct features `d`.
    bit: u8,
}

/// Every tree's TreeSHAP table: `2^d` rows of `d` values per leaf.
#[derive(Debug, Clone)]
pub struct ShapTables {
    nodes: Vec<TableNode>,
    /// Where each tree's nodes start in `nodes`, and (last) where they end.
    trees: Vec<u32>,
    /// Each leaf's rows: row `p` (the pattern's bit `k` set when the event
    /// leaves path feature `k`) holds that leaf's share of each path feature's value.
    values: Vec<f64>,
    /// Each leaf's distinct path features, in the order of its rows' values.
    features: Vec<u16>,
}

impl ShapTables {
    /// The tables of `gbt`, or `None` when it has no cover, fails
    /// [`Gbt::check`], has a tree deeper than [`MAX_TABLE_DEPTH`] or would
    /// need more than [`MAX_TABLE_VALUES`].
    pub fn new(gbt: &Gbt) -> Option<Self> {
        if !gbt.has_cover() || gbt.check(usize::from(LEAF)).ok()? > MAX_TABLE_DEPTH {
            return None;
        }
        let mut tables = ShapTables {
            nodes: Vec::new(),
            trees: vec![0],
            values: Vec::new(),
            features: Vec::new(),
        };
        let mut path = Vec::with_capacity(MAX_TABLE_DEPTH as usize);
        for &root in &gbt.roots {
            tables.place(gbt, root, &mut path)?;
            tables.trees.push(tables.nodes.len() as u32);
        }
        Some(tables)
    }

    /// Appends node `node` and its subtree in pre-order, below the distinct
    /// features `path` (each with its share of cover on the way here);
    /// returns its index within its tree. `None` past [`MAX_TABLE_VALUES`].
    fn place(&mut self, gbt: &Gbt, node: u32, path: &mut Vec<(u16, f64)>) -> Option<u32> {
        let tree_start = *self.trees.last()? as usize;
        let at = self.nodes.len();
        let n = gbt.nodes[node as usize];
        if n.feature == LEAF {
            let leaf = self.leaf(&n, path)?;
            self.nodes.push(leaf);
            return Some((at - tree_start) as u32);
        }
        let known = path.iter().position(|&(f, _)| f == n.feature);
        let k = known.unwrap_or_else(|| {
            path.push((n.feature, 1.0));
            path.len() - 1
        });
        self.nodes.push(TableNode {
            threshold: n.threshold,
            a: 0,
            b: 0,
            feature: n.feature,
            nan_right: n.goes_right(f64::NAN),
            bit: 1 << k,
        });
        let here = gbt.cover[node as usize];
        let share = path[k].1;
        let mut children = [0; 2];
        for (slot, child) in children.iter_mut().zip([n.left, n.right]) {
            path[k].1 = gbt.cover[child as usize] / here * share;
            *slot = self.place(gbt, child, path)?;
        }
        path[k].1 = share;
        if known.is_none() {
            path.pop();
        }
        [self.nodes[at].a, self.nodes[at].b] = children;
        Some((at - tree_start) as u32)
    }

    /// The node of leaf `n` below `path`, its rows appended.
    fn leaf(&mut self, n: &Node, path: &[(u16, f64)]) -> Option<TableNode> {
        let d = path.len();
        let rows = 1usize << d;
        if self.values.len() + rows * d > MAX_TABLE_VALUES {
            return None;
        }
        let node = TableNode {
            threshold: 0.0,
            a: self.values.len() as u32,
            b: self.features.len() as u32,
            feature: LEAF,
            nan_right: false,
            bit: d as u8,
        };
        self.features.extend(path.iter().map(|&(f, _)| f));
        let mut elements = [Element::default(); MAX_TABLE_DEPTH as usize + 1];
        for pattern in 0..rows {
            let left_out = |k: usize| pattern & (1 << k) != 0;
            // A path feature no training row reached and the event leaves:
            // no coalition reaches the leaf (the recursion skips it).
            if (0..d).any(|k| path[k].1 == 0.0 && left_out(k)) {
                self.values.resize(self.values.len() + d, 0.0);
                continue;
            }
            let root = Element {
                feature: LEAF,
                zero: 1.0,
                one: 1.0,
                weight: 0.0,
            };
            extend(&mut elements, 0, root);
            for (k, &(feature, zero)) in path.iter().enumerate() {
                let one = if left_out(k) { 0.0 } else { 1.0 };
                let e = Element {
                    feature,
                    zero,
                    one,
                    weight: 0.0,
                };
                extend(&mut elements, k + 1, e);
            }
            for k in 1..=d {
                let e = elements[k];
                let w = unwound_sum(&elements, d, k);
                self.values.push(w * (e.one - e.zero) * n.value);
            }
        }
        Some(node)
    }

    /// Adds each feature's TreeSHAP value (margin units) of input `x` into
    /// `contrib`, equal to [`Gbt::shap`] up to rounding. Allocates nothing.
    pub fn add(&self, x: &[f64], contrib: &mut [f64]) {
        // Per node, the path features the event leaves on the way to it.
        let mut left_out = [0u8; MAX_TREE_NODES];
        for bounds in self.trees.windows(2) {
            let nodes = &self.nodes[bounds[0] as usize..bounds[1] as usize];
            for (i, n) in nodes.iter().enumerate() {
                let p = left_out[i];
                if n.feature == LEAF {
                    let d = usize::from(n.bit);
                    let row = &self.values[n.a as usize + usize::from(p) * d..][..d];
                    let features = &self.features[n.b as usize..][..d];
                    for (&f, &v) in features.iter().zip(row) {
                        contrib[usize::from(f)] += v;
                    }
                    continue;
                }
                let v = x[usize::from(n.feature)];
                let right = (v > n.threshold) | (n.nan_right & v.is_nan());
                let (hot, cold) = if right { (n.b, n.a) } else { (n.a, n.b) };
                left_out[hot as usize] = p;
                left_out[cold as usize] = p | n.bit;
            }
        }
    }
}
