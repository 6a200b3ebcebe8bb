//! The serving form of a trained [`Gbt`]: complete trees in flat arrays, walked
//! without branches on the data, and (when every feature has at most 255
//! distinct thresholds) with splits compared as one-byte ranks.

use super::gbt::{Gbt, LEAF};

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
    use crate::model::gbt::{GbtParams, Node};

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

}
