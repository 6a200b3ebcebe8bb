//! The tree ensemble of a model file, whoever fitted it (fraudstream's trainer
//! or an imported LightGBM or XGBoost model): nodes in one array, a root per
//! tree, and the node-by-node walk that every serving form must equal to the bit.
//!
//! At a split, a present value goes right when `x > threshold` and left
//! otherwise; a missing value (NaN) goes where the node's `missing` says.

use serde::{Deserialize, Serialize};

/// `Node::feature` of a leaf.
pub const LEAF: u16 = u16::MAX;

/// Most trees in a model.
pub const MAX_TREES: usize = 50_000;

/// Most nodes in a model, all trees together.
pub const MAX_NODES: usize = 1 << 22;

/// Most levels of splits on a path from a root to a leaf.
pub const MAX_DEPTH: u32 = 48;

/// Largest magnitude of a node value or the base margin: with at most
/// [`MAX_TREES`] trees, every margin stays far from overflowing.
pub const MAX_ABS_VALUE: f64 = 1e6;

/// Whether `v` is a finite number of magnitude at most [`MAX_ABS_VALUE`].
fn within_bounds(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_ABS_VALUE
}

/// Where a split sends a missing (NaN) value.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// To the left child (the default when a file does not say).
    #[default]
    Left,
    /// To the right child.
    Right,
}

impl Missing {
    fn is_left(&self) -> bool {
        *self == Missing::Left
    }
}

/// One node: a split (`feature != LEAF`) or a leaf. `value` is the node's output
/// (for internal nodes too, for explanations).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Feature index into the model's features, or [`LEAF`].
    pub feature: u16,
    /// A present value goes right when `x > threshold`, left otherwise.
    pub threshold: f64,
    /// Index of the left child.
    pub left: u32,
    /// Index of the right child.
    pub right: u32,
    /// Output of the node (margin contribution).
    pub value: f64,
    /// Where a missing value goes (left when the file does not say).
    #[serde(default, skip_serializing_if = "Missing::is_left")]
    pub missing: Missing,
}

impl Node {
    /// A leaf of output `value`.
    pub fn leaf(value: f64) -> Node {
        Node {
            feature: LEAF,
            threshold: 0.0,
            left: 0,
            right: 0,
            value,
            missing: Missing::Left,
        }
    }

    /// Whether the split sends `v` (NaN: missing) to its right child.
    #[inline]
    pub fn goes_right(&self, v: f64) -> bool {
        if v.is_nan() {
            self.missing == Missing::Right
        } else {
            v > self.threshold
        }
    }
}

/// A tree ensemble (the file's `gbt` section): margin = `base` + one leaf per tree.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Gbt {
    /// Initial margin (log-odds).
    pub base: f64,
    /// All nodes of all trees.
    pub nodes: Vec<Node>,
    /// Root node index of each tree.
    pub roots: Vec<u32>,
    /// Settings of fraudstream's trainer (absent for an imported model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<GbtParams>,
    /// Cover of each node, parallel to `nodes`: the hessian sum (or count) of
    /// the training rows that reached it, which TreeSHAP explanations weigh
    /// paths by; empty when the file has none (see [`Gbt::has_cover`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cover: Vec<f64>,
}

/// Settings of one fit (also written to the model file's `gbt.params`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct GbtParams {
    /// Number of trees (with early stopping: at most this many are fitted, and
    /// the file records how many were kept).
    pub trees: usize,
    /// Maximum depth of each tree.
    pub max_depth: usize,
    /// Shrinkage applied to every leaf.
    pub learning_rate: f64,
    /// L2 regularisation of leaf values.
    pub lambda: f64,
    /// Minimum hessian (weight) in a child.
    pub min_child_weight: f64,
    /// Histogram bins per feature (at most 65535).
    pub bins: usize,
}

impl Default for GbtParams {
    fn default() -> Self {
        Self {
            trees: 300,
            max_depth: 4,
            learning_rate: 0.05,
            lambda: 1.0,
            min_child_weight: 1.0,
            bins: 256,
        }
    }
}

/// What is wrong with a tree ensemble, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeFault {
    /// Tree (index into `roots`), when the fault is inside one.
    pub tree: Option<usize>,
    /// Node (index into `nodes`), when the fault is at one.
    pub node: Option<u32>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl std::fmt::Display for TreeFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.tree, self.node) {
            (Some(t), Some(n)) => write!(f, "tree {t}, node {n}: {}", self.message),
            (Some(t), None) => write!(f, "tree {t}: {}", self.message),
            (None, Some(n)) => write!(f, "node {n}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl Gbt {
    /// Margin (log-odds) of one feature vector. The trees must have passed [`Gbt::check`].
    #[inline]
    pub fn margin(&self, x: &[f64]) -> f64 {
        let mut m = self.base;
        for &root in &self.roots {
            let mut n = &self.nodes[root as usize];
            while n.feature != LEAF {
                let next = if n.goes_right(x[n.feature as usize]) {
                    n.right
                } else {
                    n.left
                };
                n = &self.nodes[next as usize];
            }
            m += n.value;
        }
        m
    }

    /// Checks that the ensemble is servable for a model of `features` inputs:
    /// sizes within [`MAX_TREES`] and [`MAX_NODES`]; each tree a tree (acyclic,
    /// no node reached twice) at most [`MAX_DEPTH`] deep; children, roots and
    /// feature indices in range; thresholds finite; values and base finite and
    /// within [`MAX_ABS_VALUE`]. Returns the depth of the deepest tree.
    pub fn check(&self, features: usize) -> Result<u32, TreeFault> {
        let fault = |tree, node, message: String| TreeFault {
            tree,
            node,
            message,
        };
        if self.roots.len() > MAX_TREES || self.nodes.len() > MAX_NODES {
            return Err(fault(
                None,
                None,
                format!(
                    "{} trees of {} nodes in all; at most {MAX_TREES} trees and {MAX_NODES} nodes",
                    self.roots.len(),
                    self.nodes.len()
                ),
            ));
        }
        if !within_bounds(self.base) {
            return Err(fault(
                None,
                None,
                format!(
                    "base {:?} is not a finite number of magnitude at most {MAX_ABS_VALUE:e}",
                    self.base
                ),
            ));
        }
        let mut walk = Walk {
            gbt: self,
            features,
            seen: vec![Seen::No; self.nodes.len()],
            stack: Vec::new(),
        };
        let mut depth = 0;
        for (t, &root) in self.roots.iter().enumerate() {
            depth = depth.max(
                walk.tree(root)
                    .map_err(|(node, message)| fault(Some(t), node, message))?,
            );
        }
        self.check_cover()
            .map_err(|(node, message)| fault(None, node, message))?;
        Ok(depth)
    }

    /// Whether every node has a cover, so that explanations are TreeSHAP's.
    pub fn has_cover(&self) -> bool {
        !self.cover.is_empty()
    }

    /// Checks `cover`: absent, or one finite value >= 0 per node, > 0 at a
    /// split (its children's shares divide by it).
    fn check_cover(&self) -> Result<(), (Option<u32>, String)> {
        if !self.has_cover() {
            return Ok(());
        }
        if self.cover.len() != self.nodes.len() {
            return Err((
                None,
                format!(
                    "cover has {} values for {} nodes; expected one per node (or no cover)",
                    self.cover.len(),
                    self.nodes.len()
                ),
            ));
        }
        for (i, (node, &c)) in self.nodes.iter().zip(&self.cover).enumerate() {
            let split = node.feature != LEAF;
            if !(c.is_finite() && (c > 0.0 || (c == 0.0 && !split))) {
                let want = if split { "> 0 at a split" } else { ">= 0" };
                return Err((
                    Some(i as u32),
                    format!("cover {c:?}; expected a finite number {want}"),
                ));
            }
        }
        Ok(())
    }
}

/// Whether the walk of [`Gbt::check`] has met a node.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    No,
    /// Waiting on the stack: meeting it again means it has two parents.
    Queued,
    /// On the path from the current root: meeting it again is a cycle.
    OnPath,
    Done,
}

/// The depth-first walk of [`Gbt::check`], with an explicit stack (so that no
/// file can overflow the thread's stack).
struct Walk<'a> {
    gbt: &'a Gbt,
    features: usize,
    seen: Vec<Seen>,
    /// `(node, depth, leaving)`: `leaving` marks the node's subtree done.
    stack: Vec<(u32, u32, bool)>,
}

impl Walk<'_> {
    /// Checks the tree under `root`; returns its depth, or the node at fault and why.
    fn tree(&mut self, root: u32) -> Result<u32, (Option<u32>, String)> {
        let count = self.gbt.nodes.len();
        if root as usize >= count {
            return Err((
                None,
                format!("root {root} is not a node: there are {count} nodes"),
            ));
        }
        self.enter(root, 0)
            .map_err(|(_, m)| (None, format!("root {root}: {m}")))?;
        let mut depth = 0;
        while let Some((n, d, leaving)) = self.stack.pop() {
            if leaving {
                self.seen[n as usize] = Seen::Done;
                continue;
            }
            self.seen[n as usize] = Seen::OnPath;
            self.stack.push((n, d, true));
            let node = &self.gbt.nodes[n as usize];
            let at = |message: String| (Some(n), message);
            if !within_bounds(node.value) {
                return Err(at(format!(
                    "value {:?} is not a finite number of magnitude at most {MAX_ABS_VALUE:e}",
                    node.value
                )));
            }
            if node.feature == LEAF {
                depth = depth.max(d);
                continue;
            }
            if usize::from(node.feature) >= self.features {
                return Err(at(format!(
                    "feature index {} is out of range: the model has {} features",
                    node.feature, self.features
                )));
            }
            if !node.threshold.is_finite() {
                return Err(at(format!(
                    "threshold {:?} is not a finite number",
                    node.threshold
                )));
            }
            if d == MAX_DEPTH {
                return Err(at(format!(
                    "the tree is deeper than {MAX_DEPTH} levels of splits"
                )));
            }
            for (side, child) in [("right", node.right), ("left", node.left)] {
                if child as usize >= count {
                    return Err(at(format!(
                        "{side} child {child} is not a node: there are {count} nodes"
                    )));
                }
                self.enter(child, d + 1)
                    .map_err(|(_, m)| at(format!("{side} child {child}: {m}")))?;
            }
        }
        Ok(depth)
    }

    /// Queues `node` at `depth`, unless meeting it again breaks the tree.
    fn enter(&mut self, node: u32, depth: u32) -> Result<(), (Option<u32>, String)> {
        match self.seen[node as usize] {
            Seen::No => {
                self.seen[node as usize] = Seen::Queued;
                self.stack.push((node, depth, false));
                Ok(())
            }
            Seen::OnPath => Err((Some(node), "a cycle: the node is its own ancestor".into())),
            Seen::Queued | Seen::Done => Err((
                Some(node),
                "the node is reached twice; each node belongs to one place in one tree".into(),
            )),
        }
    }
}

/// The rank of `v` in a column where a missing value ranks 255, given its
/// rank `rank` where a missing one ranks 0.
#[inline(always)]
pub(crate) fn missing_high(v: f64, rank: u8) -> u8 {
    rank | (u8::from(v.is_nan()).wrapping_neg())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(feature: u16, threshold: f64, left: u32, right: u32, missing: Missing) -> Node {
        Node {
            feature,
            threshold,
            left,
            right,
            value: 0.0,
            missing,
        }
    }

    fn gbt(nodes: Vec<Node>, roots: Vec<u32>) -> Gbt {
        Gbt {
            base: 0.0,
            nodes,
            roots,
            params: None,
            cover: Vec::new(),
        }
    }

    #[test]
    fn missing_values_go_where_each_node_says() {
        // Tree 0 sends missing left, tree 1 right: one feature, split at 2.
        let g = gbt(
            vec![
                split(0, 2.0, 1, 2, Missing::Left),
                Node::leaf(1.0),
                Node::leaf(10.0),
                split(0, 2.0, 4, 5, Missing::Right),
                Node::leaf(100.0),
                Node::leaf(1000.0),
            ],
            vec![0, 3],
        );
        assert_eq!(g.check(1), Ok(1));
        assert_eq!(g.margin(&[f64::NAN]), 1001.0);
        assert_eq!(g.margin(&[2.0]), 101.0, "on the threshold: left");
        assert_eq!(g.margin(&[2.5]), 1010.0);
        assert_eq!(g.margin(&[f64::NEG_INFINITY]), 101.0);
        assert_eq!(g.margin(&[f64::INFINITY]), 1010.0);
    }

    /// Each kind of broken ensemble is refused, naming the tree and node.
    #[test]
    fn broken_trees_are_refused_with_their_place() {
        let leaf = Node::leaf(0.5);
        let ok = |l, r| split(0, 1.0, l, r, Missing::Left);
        let chain: Vec<Node> = (0..=MAX_DEPTH)
            .flat_map(|i| [ok(2 * i + 1, 2 * i + 2), leaf])
            .chain([leaf])
            .collect();
        let too_deep = format!("deeper than {MAX_DEPTH} levels");
        let cases: Vec<(Gbt, &str)> = vec![
            (
                gbt(vec![ok(0, 1), leaf], vec![0]),
                "tree 0, node 0: left child 0: a cycle",
            ),
            (
                gbt(vec![ok(1, 2), leaf, ok(0, 1)], vec![0]),
                "tree 0, node 2: right child 1: the node is reached twice",
            ),
            (
                gbt(vec![leaf, ok(2, 3), ok(1, 4), leaf, leaf], vec![0, 1]),
                "tree 1, node 2: left child 1: a cycle",
            ),
            (
                gbt(vec![ok(1, 1), leaf], vec![0]),
                "tree 0, node 0: left child 1: the node is reached twice",
            ),
            (
                gbt(vec![leaf], vec![0, 0]),
                "tree 1: root 0: the node is reached twice",
            ),
            (
                gbt(vec![ok(1, 7), leaf], vec![0]),
                "tree 0, node 0: right child 7 is not a node: there are 2 nodes",
            ),
            (gbt(vec![leaf], vec![3]), "tree 0: root 3 is not a node"),
            (
                gbt(
                    vec![split(4, 1.0, 1, 2, Missing::Left), leaf, leaf],
                    vec![0],
                ),
                "node 0: feature index 4 is out of range: the model has 1 features",
            ),
            (
                gbt(
                    vec![split(0, f64::NAN, 1, 2, Missing::Left), leaf, leaf],
                    vec![0],
                ),
                "node 0: threshold NaN is not a finite number",
            ),
            (
                gbt(
                    vec![split(0, f64::INFINITY, 1, 2, Missing::Left), leaf, leaf],
                    vec![0],
                ),
                "node 0: threshold inf",
            ),
            (
                gbt(vec![ok(1, 2), leaf, Node::leaf(f64::NAN)], vec![0]),
                "tree 0, node 2: value NaN is not a finite number",
            ),
            (
                gbt(vec![Node::leaf(2e6)], vec![0]),
                "tree 0, node 0: value 2000000.0",
            ),
            (gbt(chain, vec![0]), &too_deep),
            (
                Gbt {
                    base: f64::INFINITY,
                    ..gbt(vec![leaf], vec![0])
                },
                "base inf",
            ),
            (gbt(vec![leaf], vec![0; MAX_TREES + 1]), "50001 trees"),
        ];
        for (g, want) in cases {
            let got = g.check(1).unwrap_err().to_string();
            assert!(got.contains(want), "{got:?} should say {want:?}");
        }
        // A chain exactly at the limit is fine.
        let chain: Vec<Node> = (0..MAX_DEPTH)
            .flat_map(|i| [ok(2 * i + 1, 2 * i + 2), leaf])
            .chain([leaf])
            .collect();
        assert_eq!(gbt(chain, vec![0]).check(1), Ok(MAX_DEPTH));
    }
}
