//! TreeSHAP from tables built at load, for shallow trees: per-leaf path
//! tables in the manner of Fast TreeSHAP v2 (J. Yang, "Fast TreeSHAP:
//! Accelerating SHAP Value Computation for Trees", 2021, arXiv:2109.09847).
//!
//! A leaf's share of each feature's Shapley value depends on the event only
//! through which of the features on the leaf's path the event follows (a
//! feature split on twice is followed when both splits go the leaf's way):
//! `2^d` patterns for `d` distinct path features. Each pattern's `d` values are
//! computed once, at load, by the recursion's EXTEND and UNWIND over the
//! leaf's merged path, times the leaf's value. Explaining an event is then,
//! per tree, one pass over the splits that marks for every node the path
//! features the event leaves on the way to it (its pattern), and one table
//! row added per leaf: O(leaves x depth) per tree instead of O(leaves x
//! depth²), with no division and no branch on the data but the splits'.

use super::{extend, unwound_sum, Element};
use crate::model::format::trees::{Gbt, Node, LEAF};

/// Deepest tree explained from tables: a leaf's pattern is a byte.
pub const MAX_TABLE_DEPTH: u32 = 8;

/// Most table values (8 bytes each) of one model: 8 MiB. A model that would
/// need more is explained by the recursion.
pub const MAX_TABLE_VALUES: usize = 1 << 20;

/// Nodes of the largest tree of [`MAX_TABLE_DEPTH`].
const MAX_TREE_NODES: usize = (2 << MAX_TABLE_DEPTH) - 1;

/// A split of a tabled tree. Nodes are numbered in pre-order within their
/// tree, so a split comes before its children.
#[derive(Debug, Clone, Copy)]
struct Split {
    threshold: f64,
    feature: u16,
    nan_right: bool,
    /// The bit of its feature in the patterns below it.
    bit: u8,
    /// Its own node number and its children's.
    node: u16,
    left: u16,
    right: u16,
}

/// A leaf of a tabled tree.
#[derive(Debug, Clone, Copy)]
struct Leaf {
    /// Its node number.
    node: u16,
    /// Where its rows start in `values`.
    rows: u32,
}

/// Every tree's TreeSHAP table: per leaf, `2^d` rows of `width` values for
/// its `d` distinct path features (padded with zeros to `width`).
#[derive(Debug, Clone)]
pub struct ShapTables {
    splits: Vec<Split>,
    leaves: Vec<Leaf>,
    /// Where each tree's splits and leaves end.
    trees: Vec<(u32, u32)>,
    /// The most distinct features on a path of any tree.
    width: usize,
    /// Each leaf's rows: row `p` (bit `k` set when the event leaves path
    /// feature `k`) holds the leaf's share of each path feature's value.
    values: Vec<f64>,
    /// Each leaf's `width` path features, in the order of its rows' values
    /// (padding repeats a feature, with a value of 0).
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
        let mut path = Vec::with_capacity(MAX_TABLE_DEPTH as usize);
        let width = gbt
            .roots
            .iter()
            .map(|&r| widest(gbt, r, &mut Vec::new()))
            .max()
            .unwrap_or(0);
        let mut tables = ShapTables {
            splits: Vec::new(),
            leaves: Vec::new(),
            trees: Vec::new(),
            width,
            values: Vec::new(),
            features: Vec::new(),
        };
        for &root in &gbt.roots {
            let mut next = 0;
            tables.place(gbt, root, &mut next, &mut path)?;
            let ends = (tables.splits.len() as u32, tables.leaves.len() as u32);
            tables.trees.push(ends);
        }
        Some(tables)
    }

    /// Appends node `node` and its subtree, numbered in pre-order from
    /// `next`, below the distinct features `path` (each with its share of
    /// cover on the way here); returns its number. `None` past
    /// [`MAX_TABLE_VALUES`].
    fn place(
        &mut self,
        gbt: &Gbt,
        node: u32,
        next: &mut u16,
        path: &mut Vec<(u16, f64)>,
    ) -> Option<u16> {
        let number = *next;
        *next += 1;
        let n = gbt.nodes[node as usize];
        if n.feature == LEAF {
            self.leaf(number, &n, path)?;
            return Some(number);
        }
        let known = path.iter().position(|&(f, _)| f == n.feature);
        let k = known.unwrap_or_else(|| {
            path.push((n.feature, 1.0));
            path.len() - 1
        });
        let at = self.splits.len();
        self.splits.push(Split {
            threshold: n.threshold,
            feature: n.feature,
            nan_right: n.goes_right(f64::NAN),
            bit: 1 << k,
            node: number,
            left: 0,
            right: 0,
        });
        let here = gbt.cover[node as usize];
        let share = path[k].1;
        path[k].1 = gbt.cover[n.left as usize] / here * share;
        self.splits[at].left = self.place(gbt, n.left, next, path)?;
        path[k].1 = gbt.cover[n.right as usize] / here * share;
        self.splits[at].right = self.place(gbt, n.right, next, path)?;
        path[k].1 = share;
        if known.is_none() {
            path.pop();
        }
        Some(number)
    }

    /// Appends leaf `n`, numbered `number`, below `path`, with its rows.
    fn leaf(&mut self, number: u16, n: &Node, path: &[(u16, f64)]) -> Option<()> {
        let (d, width) = (path.len(), self.width);
        let rows = 1usize << d;
        if self.values.len() + rows * width > MAX_TABLE_VALUES {
            return None;
        }
        self.leaves.push(Leaf {
            node: number,
            rows: self.values.len() as u32,
        });
        let pad = path.first().map_or(0, |p| p.0);
        self.features.extend(path.iter().map(|&(f, _)| f));
        self.features.resize(self.features.len() + width - d, pad);
        let mut elements = [Element::default(); MAX_TABLE_DEPTH as usize + 1];
        for pattern in 0..rows {
            let left_out = |k: usize| pattern & (1 << k) != 0;
            let end = self.values.len() + width;
            // A path feature no training row reached and the event leaves:
            // no coalition reaches the leaf (the recursion skips it).
            if (0..d).any(|k| path[k].1 == 0.0 && left_out(k)) {
                self.values.resize(end, 0.0);
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
            self.values.resize(end, 0.0);
        }
        Some(())
    }

    /// Adds each feature's TreeSHAP value (margin units) of input `x` into
    /// `contrib`, equal to [`Gbt::shap`] up to rounding. Allocates nothing.
    pub fn add(&self, x: &[f64], contrib: &mut [f64]) {
        // Rows of a fixed width, so that a leaf's loop unrolls.
        match self.width {
            0 => {}
            1 => self.add_rows::<1>(x, contrib),
            2 => self.add_rows::<2>(x, contrib),
            3 => self.add_rows::<3>(x, contrib),
            4 => self.add_rows::<4>(x, contrib),
            5 => self.add_rows::<5>(x, contrib),
            6 => self.add_rows::<6>(x, contrib),
            7 => self.add_rows::<7>(x, contrib),
            _ => self.add_rows::<{ MAX_TABLE_DEPTH as usize }>(x, contrib),
        }
    }

    /// [`ShapTables::add`] for rows of `W` values (`self.width == W`).
    fn add_rows<const W: usize>(&self, x: &[f64], contrib: &mut [f64]) {
        // Per node, the path features the event leaves on the way to it (the
        // root's stays 0: no split sends the walk to node 0).
        let mut left_out = [0u8; MAX_TREE_NODES];
        let (mut splits, mut leaves) = (0, 0);
        for &(split_end, leaf_end) in &self.trees {
            for s in &self.splits[splits..split_end as usize] {
                let p = left_out[usize::from(s.node)];
                let v = x[usize::from(s.feature)];
                let right = (v > s.threshold) | (s.nan_right & v.is_nan());
                let (hot, cold) = if right {
                    (s.right, s.left)
                } else {
                    (s.left, s.right)
                };
                left_out[usize::from(hot)] = p;
                left_out[usize::from(cold)] = p | s.bit;
            }
            let range = leaves..leaf_end as usize;
            let features = self.features[range.start * W..range.end * W].chunks_exact(W);
            for (leaf, features) in self.leaves[range].iter().zip(features) {
                let p = usize::from(left_out[usize::from(leaf.node)]);
                let row = &self.values[leaf.rows as usize + p * W..][..W];
                for k in 0..W {
                    contrib[usize::from(features[k])] += row[k];
                }
            }
            (splits, leaves) = (split_end as usize, leaf_end as usize);
        }
    }
}

/// The most distinct features on a path from `node` down, below `path`.
fn widest(gbt: &Gbt, node: u32, path: &mut Vec<u16>) -> usize {
    let n = &gbt.nodes[node as usize];
    if n.feature == LEAF {
        return path.len();
    }
    let new = !path.contains(&n.feature);
    if new {
        path.push(n.feature);
    }
    let width = widest(gbt, n.left, path).max(widest(gbt, n.right, path));
    if new {
        path.pop();
    }
    width
}
