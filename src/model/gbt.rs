//! Gradient-boosted decision trees for binary log-loss: histogram training and
//! flat-array inference with per-feature contributions (Saabas path attribution).

use serde::{Deserialize, Serialize};

/// Training settings.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct GbtParams {
    /// Number of trees.
    pub trees: usize,
    /// Maximum depth of each tree.
    pub max_depth: usize,
    /// Shrinkage applied to every leaf.
    pub learning_rate: f64,
    /// L2 regularisation of leaf values.
    pub lambda: f64,
    /// Minimum hessian (weight) in a child.
    pub min_child_weight: f64,
    /// Histogram bins per feature.
    pub bins: usize,
}

impl Default for GbtParams {
    fn default() -> Self {
        // Chosen on the handbook's validation split, before the test week
        // (scripts/model_selection.sh, models/selection.md).
        Self {
            trees: 800,
            max_depth: 4,
            learning_rate: 0.03,
            lambda: 1.0,
            min_child_weight: 1.0,
            bins: 64,
        }
    }
}

/// One node: a split (`feature < NONE`) or a leaf. `value` is the node's output
/// (for internal nodes too, for explanations).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Node {
    /// Feature index, or `u16::MAX` for a leaf.
    pub feature: u16,
    /// Go left when `x <= threshold` or `x` is missing.
    pub threshold: f64,
    /// Index of the left child.
    pub left: u32,
    /// Index of the right child.
    pub right: u32,
    /// Output of the node (margin contribution).
    pub value: f64,
}

/// A trained ensemble.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Gbt {
    /// Initial margin (log-odds of the base rate).
    pub base: f64,
    /// All nodes of all trees.
    pub nodes: Vec<Node>,
    /// Root node index of each tree.
    pub roots: Vec<u32>,
    /// Settings it was trained with.
    pub params: GbtParams,
}

const LEAF: u16 = u16::MAX;

impl Gbt {
    /// Margin (log-odds) of one feature vector.
    #[inline]
    pub fn margin(&self, x: &[f64]) -> f64 {
        let mut m = self.base;
        for &root in &self.roots {
            let mut n = &self.nodes[root as usize];
            while n.feature != LEAF {
                let v = x[n.feature as usize];
                let next = if v <= n.threshold || v.is_nan() {
                    n.left
                } else {
                    n.right
                };
                n = &self.nodes[next as usize];
            }
            m += n.value;
        }
        m
    }

    /// Depth of the tree rooted at `node` (a lone leaf has depth 0).
    fn depth_of(&self, node: u32) -> u32 {
        let n = &self.nodes[node as usize];
        if n.feature == LEAF {
            0
        } else {
            1 + self.depth_of(n.left).max(self.depth_of(n.right))
        }
    }

    /// Adds each feature's contribution to the margin into `contrib` (Saabas).
    pub fn contributions(&self, x: &[f64], contrib: &mut [f64]) {
        for &root in &self.roots {
            let mut n = &self.nodes[root as usize];
            while n.feature != LEAF {
                let v = x[n.feature as usize];
                let next = &self.nodes[if v <= n.threshold || v.is_nan() {
                    n.left
                } else {
                    n.right
                } as usize];
                contrib[n.feature as usize] += next.value - n.value;
                n = next;
            }
        }
    }

    /// Trains on rows `x` (row-major, `d` features) with labels `y`.
    pub fn train(
        x: &[f64],
        d: usize,
        y: &[bool],
        params: GbtParams,
        mut progress: impl FnMut(usize),
    ) -> Gbt {
        let n = y.len();
        let binned = Binned::new(x, d, n, params.bins);
        let pos = y.iter().filter(|&&v| v).count().max(1) as f64;
        let base = (pos / (n as f64 - pos).max(1.0)).ln();
        let mut margin = vec![base; n];
        let mut grad = vec![0.0; n];
        let mut hess = vec![0.0; n];
        let mut model = Gbt {
            base,
            nodes: Vec::new(),
            roots: Vec::new(),
            params,
        };
        let mut rows: Vec<u32> = (0..n as u32).collect();
        for t in 0..params.trees {
            for i in 0..n {
                let p = 1.0 / (1.0 + (-margin[i]).exp());
                grad[i] = p - f64::from(u8::from(y[i]));
                hess[i] = (p * (1.0 - p)).max(1e-12);
            }
            let root = model.nodes.len() as u32;
            model.roots.push(root);
            let mut builder = TreeBuilder {
                binned: &binned,
                grad: &grad,
                hess: &hess,
                params,
                nodes: &mut model.nodes,
            };
            builder.grow(&mut rows[..], 0);
            // Update margins with the new tree.
            for i in 0..n {
                let mut node = &model.nodes[root as usize];
                while node.feature != LEAF {
                    let b = binned.bin(i, node.feature as usize);
                    let go_left = b <= binned.threshold_bin(node.feature as usize, node.threshold);
                    node = &model.nodes[if go_left { node.left } else { node.right } as usize];
                }
                margin[i] += node.value;
            }
            progress(t + 1);
        }
        model
    }
}

/// Feature values mapped to quantile bins; bin 0 holds missing values.
struct Binned {
    d: usize,
    bins: Vec<u8>,
    /// Upper edges of bins 1.. per feature (bin b holds values <= edges[b-1]).
    edges: Vec<Vec<f64>>,
}

impl Binned {
    fn new(x: &[f64], d: usize, n: usize, max_bins: usize) -> Self {
        let max_bins = max_bins.clamp(2, 255);
        let mut edges = Vec::with_capacity(d);
        for f in 0..d {
            let mut vals: Vec<f64> = (0..n)
                .map(|i| x[i * d + f])
                .filter(|v| !v.is_nan())
                .collect();
            vals.sort_by(f64::total_cmp);
            vals.dedup();
            let e: Vec<f64> = if vals.len() < max_bins {
                vals
            } else {
                let mut e: Vec<f64> = (1..max_bins)
                    .map(|k| vals[k * vals.len() / max_bins])
                    .collect();
                e.dedup();
                if e.last() != vals.last() {
                    e.push(*vals.last().unwrap_or(&0.0));
                }
                e
            };
            edges.push(e);
        }
        let mut bins = vec![0u8; n * d];
        for i in 0..n {
            for f in 0..d {
                let v = x[i * d + f];
                bins[i * d + f] = if v.is_nan() {
                    0
                } else {
                    (edges[f]
                        .partition_point(|&e| e < v)
                        .min(edges[f].len().saturating_sub(1))
                        + 1) as u8
                };
            }
        }
        Self { d, bins, edges }
    }

    #[inline]
    fn bin(&self, i: usize, f: usize) -> u8 {
        self.bins[i * self.d + f]
    }

    fn bins_of(&self, f: usize) -> usize {
        self.edges[f].len() + 1
    }

    /// The threshold of a split after bin `b` (values <= it go left). Splitting
    /// after the missing-value bin uses the lowest finite value, which JSON can hold.
    fn threshold(&self, f: usize, b: usize) -> f64 {
        if b == 0 {
            f64::MIN
        } else {
            self.edges[f][b - 1]
        }
    }

    fn threshold_bin(&self, f: usize, t: f64) -> u8 {
        if t == f64::MIN {
            0
        } else {
            (self.edges[f].partition_point(|&e| e < t) + 1) as u8
        }
    }
}

struct TreeBuilder<'a> {
    binned: &'a Binned,
    grad: &'a [f64],
    hess: &'a [f64],
    params: GbtParams,
    nodes: &'a mut Vec<Node>,
}

impl TreeBuilder<'_> {
    /// Grows the subtree over `rows`; returns its node index.
    fn grow(&mut self, rows: &mut [u32], depth: usize) -> u32 {
        let (g, h) = rows.iter().fold((0.0, 0.0), |(g, h), &i| {
            (g + self.grad[i as usize], h + self.hess[i as usize])
        });
        let lambda = self.params.lambda;
        let value = -g / (h + lambda) * self.params.learning_rate;
        let index = self.nodes.len() as u32;
        self.nodes.push(Node {
            feature: LEAF,
            threshold: 0.0,
            left: 0,
            right: 0,
            value,
        });
        if depth >= self.params.max_depth || rows.len() < 2 {
            return index;
        }
        let parent_gain = g * g / (h + lambda);
        let mut best: Option<(f64, usize, usize)> = None;
        let mut hist_g = vec![0.0; 256];
        let mut hist_h = vec![0.0; 256];
        for f in 0..self.binned.d {
            let nb = self.binned.bins_of(f);
            hist_g[..nb].fill(0.0);
            hist_h[..nb].fill(0.0);
            for &i in rows.iter() {
                let b = self.binned.bin(i as usize, f) as usize;
                hist_g[b] += self.grad[i as usize];
                hist_h[b] += self.hess[i as usize];
            }
            let (mut gl, mut hl) = (0.0, 0.0);
            for b in 0..nb - 1 {
                gl += hist_g[b];
                hl += hist_h[b];
                let (gr, hr) = (g - gl, h - hl);
                if hl < self.params.min_child_weight || hr < self.params.min_child_weight {
                    continue;
                }
                let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent_gain;
                if gain > 1e-9 && best.is_none_or(|(bg, _, _)| gain > bg) {
                    best = Some((gain, f, b));
                }
            }
        }
        let Some((_, f, b)) = best else { return index };
        // Partition rows: bin <= b go left.
        let mut split = 0;
        for k in 0..rows.len() {
            if (self.binned.bin(rows[k] as usize, f) as usize) <= b {
                rows.swap(k, split);
                split += 1;
            }
        }
        let (left_rows, right_rows) = rows.split_at_mut(split);
        let left = self.grow(left_rows, depth + 1);
        let right = self.grow(right_rows, depth + 1);
        let node = &mut self.nodes[index as usize];
        node.feature = f as u16;
        node.threshold = self.binned.threshold(f, b);
        node.left = left;
        node.right = right;
        index
    }
}

/// Deepest tree served from the branch-free [`FlatGbt`] layout (deeper ensembles
/// are walked node by node).
pub const MAX_FLAT_DEPTH: u32 = 10;

/// The serving form of a [`Gbt`], built at load: every tree padded to a complete
/// binary tree of the ensemble's depth and stored in flat arrays, so scoring walks
/// `depth` comparisons per tree with no branches on the data and no pointer chasing.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatGbt {
    depth: u32,
    /// One more than the largest feature index used: the shortest valid input.
    inputs: usize,
    base: f64,
    /// Split feature of each internal node, `2^depth - 1` per tree, breadth first.
    features: Vec<u16>,
    /// Go right when `x > threshold` (so missing values go left, as in training).
    thresholds: Vec<f64>,
    /// Output of each internal node (for explanations).
    values: Vec<f64>,
    /// `2^depth` leaf values per tree.
    leaves: Vec<f64>,
}

impl FlatGbt {
    /// The flat form of `gbt`, or `None` when a tree is deeper than [`MAX_FLAT_DEPTH`].
    pub fn new(gbt: &Gbt) -> Option<Self> {
        // At least one level, so that every tree has a node to walk.
        let depth = gbt
            .roots
            .iter()
            .map(|&r| gbt.depth_of(r))
            .max()
            .unwrap_or(0)
            .max(1);
        if depth > MAX_FLAT_DEPTH {
            return None;
        }
        let internal = (1usize << depth) - 1;
        let mut flat = FlatGbt {
            depth,
            inputs: 0,
            base: gbt.base,
            features: vec![0; internal * gbt.roots.len()],
            // A padding node sends everything left: nothing is greater than +inf.
            thresholds: vec![f64::INFINITY; internal * gbt.roots.len()],
            values: vec![0.0; internal * gbt.roots.len()],
            leaves: vec![0.0; (internal + 1) * gbt.roots.len()],
        };
        for (t, &root) in gbt.roots.iter().enumerate() {
            flat.place(gbt, t, root, 0, 0);
        }
        flat.inputs = flat
            .features
            .iter()
            .map(|&f| f as usize + 1)
            .max()
            .unwrap_or(0);
        Some(flat)
    }

    /// Puts node `node` of tree `t` at breadth-first position `pos` (at `level`).
    fn place(&mut self, gbt: &Gbt, t: usize, node: u32, pos: usize, level: u32) {
        let internal = (1usize << self.depth) - 1;
        let n = &gbt.nodes[node as usize];
        if level == self.depth {
            self.leaves[t * (internal + 1) + pos - internal] = n.value;
            return;
        }
        self.values[t * internal + pos] = n.value;
        let (left, right) = if n.feature == LEAF {
            // A leaf above the last level: both subtrees repeat it.
            (node, node)
        } else {
            self.features[t * internal + pos] = n.feature;
            self.thresholds[t * internal + pos] = n.threshold;
            (n.left, n.right)
        };
        self.place(gbt, t, left, 2 * pos + 1, level + 1);
        self.place(gbt, t, right, 2 * pos + 2, level + 1);
    }

    /// Margin (log-odds) of one feature vector; equal to [`Gbt::margin`] to the bit.
    ///
    /// Panics if `x` is shorter than the largest feature index the trees use.
    #[inline]
    pub fn margin(&self, x: &[f64]) -> f64 {
        assert!(x.len() >= self.inputs, "feature vector too short");
        // One walk per depth, so that the levels unroll into straight-line code.
        match self.depth {
            1 => self.margin_of_depth::<1>(x),
            2 => self.margin_of_depth::<2>(x),
            3 => self.margin_of_depth::<3>(x),
            4 => self.margin_of_depth::<4>(x),
            5 => self.margin_of_depth::<5>(x),
            6 => self.margin_of_depth::<6>(x),
            7 => self.margin_of_depth::<7>(x),
            8 => self.margin_of_depth::<8>(x),
            9 => self.margin_of_depth::<9>(x),
            _ => self.margin_of_depth::<MAX_FLAT_DEPTH>(x),
        }
    }

    /// [`FlatGbt::margin`] for trees of depth `D` (`self.depth == D`, and `x` long enough).
    #[inline(always)]
    fn margin_of_depth<const D: u32>(&self, x: &[f64]) -> f64 {
        debug_assert!(self.depth == D && x.len() >= self.inputs);
        let internal = (1usize << D) - 1;
        let (features, thresholds) = (&self.features[..], &self.thresholds[..]);
        // SAFETY (both closures): `t` is a tree index below `self.leaves.len() /
        // (internal + 1)`, so `t * internal + i` with `i < internal` is inside
        // `features` and `thresholds`; every feature index is below `self.inputs
        // <= x.len()`, checked by the caller; after `D` steps, `internal <= i < 2 *
        // internal + 1`, so the leaf index is inside `leaves`.
        let step = |t: usize, i: usize| unsafe {
            let node = t * internal + i;
            let right = *x.get_unchecked(*features.get_unchecked(node) as usize)
                > *thresholds.get_unchecked(node);
            2 * i + 1 + usize::from(right)
        };
        let leaf = |t: usize, i: usize| unsafe {
            *self.leaves.get_unchecked(t * (internal + 1) + i - internal)
        };
        let trees = self.leaves.len() / (internal + 1);
        let mut m = self.base;
        // Four trees at a time: their walks are independent chains of dependent
        // loads, which the CPU overlaps when they are interleaved.
        let mut t = 0;
        while t + 4 <= trees {
            let mut i = [0usize; 4];
            for _ in 0..D {
                for (k, i) in i.iter_mut().enumerate() {
                    *i = step(t + k, *i);
                }
            }
            // Summed in tree order, so the result equals the tree-by-tree walk to the bit.
            for (k, &i) in i.iter().enumerate() {
                m += leaf(t + k, i);
            }
            t += 4;
        }
        for t in t..trees {
            let mut i = 0;
            for _ in 0..D {
                i = step(t, i);
            }
            m += leaf(t, i);
        }
        m
    }

    /// Adds each feature's contribution to the margin into `contrib` (Saabas), as
    /// [`Gbt::contributions`] does (padding nodes add zero).
    pub fn contributions(&self, x: &[f64], contrib: &mut [f64]) {
        let internal = (1usize << self.depth) - 1;
        let trees = self
            .features
            .chunks_exact(internal)
            .zip(self.thresholds.chunks_exact(internal))
            .zip(self.values.chunks_exact(internal))
            .zip(self.leaves.chunks_exact(internal + 1));
        for (((features, thresholds), values), leaves) in trees {
            let mut i = 0;
            for _ in 0..self.depth {
                let f = features[i] as usize;
                let child = 2 * i + 1 + usize::from(x[f] > thresholds[i]);
                let below = if child < internal {
                    values[child]
                } else {
                    leaves[child - internal]
                };
                contrib[f] += below - values[i];
                i = child;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The flat serving form scores exactly like the node walk, missing values included.
        #[test]
        fn flat_form_scores_like_the_nodes(
            seed in 0u64..1000,
            depth in 1usize..6,
            trees in 1usize..20,
            probe in proptest::collection::vec(proptest::option::of(-5.0f64..15.0), 3),
        ) {
            let mut x = Vec::new();
            let mut y = Vec::new();
            for i in 0..600u64 {
                let h = (i + 1).wrapping_mul(6364136223846793005).wrapping_add(seed);
                let a = (h >> 33) as f64 % 10.0;
                let b = (h >> 13) as f64 % 7.0;
                let c = if i % 11 == 0 { f64::NAN } else { (h >> 40) as f64 % 3.0 };
                x.extend_from_slice(&[a, b, c]);
                y.push(a + b > 9.0 || (c == 1.0 && a > 6.0));
            }
            let params = GbtParams { trees, max_depth: depth, ..GbtParams::default() };
            let g = Gbt::train(&x, 3, &y, params, |_| {});
            let flat = FlatGbt::new(&g).expect("shallow trees flatten");
            let probe: Vec<f64> = probe.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
            proptest::prop_assert_eq!(flat.margin(&probe).to_bits(), g.margin(&probe).to_bits());
            for row in x.chunks(3).take(50) {
                proptest::prop_assert_eq!(flat.margin(row).to_bits(), g.margin(row).to_bits());
                let (mut a, mut b) = ([0.0; 3], [0.0; 3]);
                flat.contributions(row, &mut a);
                g.contributions(row, &mut b);
                proptest::prop_assert_eq!(a, b);
            }
        }
    }

    /// Every depth the flat form serves, 1 to [`MAX_FLAT_DEPTH`], scores like the
    /// nodes: trees that are chains (a split whose left side is a leaf) of each depth.
    #[test]
    fn flat_form_of_every_depth_scores_like_the_nodes() {
        let mut state = 0x853c_49e6_748f_ea9bu64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for depth in 1..=MAX_FLAT_DEPTH {
            let mut g = Gbt {
                base: -1.5,
                nodes: Vec::new(),
                roots: Vec::new(),
                params: GbtParams::default(),
            };
            // 7 trees: one group of four walked together, then three alone.
            for t in 0..7u32 {
                g.roots.push(g.nodes.len() as u32);
                for level in 0..depth {
                    let at = g.nodes.len() as u32;
                    let split = Node {
                        feature: ((t + level) % 3) as u16,
                        threshold: next() * 10.0,
                        left: at + 1,
                        right: at + 2,
                        value: next(),
                    };
                    let leaf = Node {
                        feature: LEAF,
                        value: next() - 0.5,
                        ..split
                    };
                    // The split, its left leaf, then (at the bottom) its right leaf.
                    g.nodes.extend([split, leaf]);
                    if level + 1 == depth {
                        g.nodes.push(Node {
                            value: next() - 0.5,
                            ..leaf
                        });
                    }
                }
            }
            let flat = FlatGbt::new(&g).expect("flattens");
            assert_eq!(flat.depth, depth);
            for _ in 0..2000 {
                let x: Vec<f64> = (0..3)
                    .map(|_| match next() {
                        v if v < 0.1 => f64::NAN,
                        v => v * 10.0,
                    })
                    .collect();
                assert_eq!(
                    flat.margin(&x).to_bits(),
                    g.margin(&x).to_bits(),
                    "depth {depth}"
                );
            }
        }
    }

    #[test]
    fn learns_a_threshold_and_an_interaction() {
        // y = (x0 > 5) xor (x1 > 0.5), with a noise feature and missing values.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..4000 {
            let a = (i % 10) as f64;
            let b = ((i / 10) % 2) as f64;
            let noise = ((i * 7919) % 13) as f64;
            x.extend_from_slice(&[if i % 97 == 0 { f64::NAN } else { a }, b, noise]);
            y.push((a > 5.0) != (b > 0.5));
        }
        let m = Gbt::train(
            &x,
            3,
            &y,
            GbtParams {
                trees: 30,
                max_depth: 3,
                ..GbtParams::default()
            },
            |_| {},
        );
        let mut correct = 0;
        for i in 0..y.len() {
            let p = 1.0 / (1.0 + (-m.margin(&x[i * 3..i * 3 + 3])).exp());
            correct += usize::from((p > 0.5) == y[i]);
        }
        assert!(correct as f64 / y.len() as f64 > 0.97, "{correct}");
        let mut c = [0.0; 3];
        m.contributions(&[9.0, 0.0, 3.0], &mut c);
        // Contributions are relative to each tree's expected output (its root value).
        let expected: f64 = m.base
            + m.roots
                .iter()
                .map(|&r| m.nodes[r as usize].value)
                .sum::<f64>();
        let total: f64 = c.iter().sum::<f64>() + expected;
        assert!(
            (total - m.margin(&[9.0, 0.0, 3.0])).abs() < 1e-9,
            "contributions add up to the margin"
        );
        assert!(
            c[2].abs() < c[0].abs(),
            "noise matters less than the signal: {c:?}"
        );
    }
}
