//! The serving form of a trained [`Gbt`]: complete trees in flat arrays, walked
//! without branches on the data, and (when every feature has at most 255
//! distinct thresholds) with splits compared as one-byte ranks. Blocks of rows
//! are walked 64 at a time with AVX-512 where the CPU has it.

#[cfg(target_arch = "x86_64")]
use super::avx512;
use crate::model::format::trees::{missing_high, Gbt, Missing, LEAF};
use std::ops::Range;

/// Deepest tree served from the branch-free [`FlatGbt`] layout (deeper ensembles
/// are walked node by node).
pub const MAX_FLAT_DEPTH: u32 = 10;

/// Trees walked together.
const LANES: usize = 8;

/// Most tree slots (trees times leaves per padded tree) laid out flat: about
/// 30 bytes each. Larger ensembles are walked node by node.
const MAX_FLAT_SLOTS: usize = 1 << 22;

/// Whether block scoring can walk 64 rows at a time with AVX-512.
fn wide_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx512::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

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
    /// A present value goes right when `x > threshold`.
    thresholds: Vec<f64>,
    /// Whether a missing value goes right, per internal node.
    nan_right: Vec<bool>,
    /// Output of each internal node (for explanations).
    values: Vec<f64>,
    /// `2^depth` leaf values per tree.
    leaves: Vec<f64>,
    /// The same splits compared by rank, when the thresholds allow it.
    ranked: Option<Ranked>,
}

/// Splits compared by rank. For feature `f`, `rank(v)` counts `f`'s distinct
/// split thresholds below `v`. Then `x > t` exactly when `rank(x) > rank(t)`:
/// both say some threshold of `f` at least `t` lies below `x`. A node shrinks
/// from eleven bytes to two, so the trees take fewer cache lines; the price is
/// one search per feature and event.
///
/// A node compares a rank *column*: column `f < inputs` holds feature `f`'s
/// ranks with a missing value ranked 0 (below every threshold rank: it goes
/// left); for a feature that some node sends right when missing, one more
/// column holds its ranks with a missing value ranked 255, above every
/// threshold rank (at most 254, as a threshold is one of at most 255 cuts):
/// it goes right. So the walks compare one byte per node whatever the
/// direction, and a missing value costs nothing at the nodes.
#[derive(Debug, Clone, PartialEq)]
struct Ranked {
    /// Each feature's distinct thresholds, ascending, one run per feature,
    /// padded with +inf to a multiple of eight (for counting eight at a time).
    cuts: Vec<f64>,
    /// Where each feature's run starts in `cuts` (and, last, where the final one's padding ends).
    starts: Vec<u32>,
    /// Where each feature's thresholds end in `cuts` (before the padding).
    ends: Vec<u32>,
    /// The feature of each column after the first `inputs`: missing ranks 255.
    nan_high: Vec<u8>,
    /// `(column, rank of threshold)` of each internal node, laid out like `features`.
    nodes: Vec<[u8; 2]>,
}

impl Ranked {
    /// The ranked form of `flat`'s splits, or `None` when a column index or a
    /// rank does not fit in a byte. (Thresholds are finite: [`Gbt::check`].)
    fn new(flat: &FlatGbt) -> Option<Self> {
        let mut nan_high: Vec<u8> = Vec::new();
        for (&f, _) in flat
            .features
            .iter()
            .zip(&flat.nan_right)
            .filter(|(_, &r)| r)
        {
            let f = u8::try_from(f).ok()?;
            if !nan_high.contains(&f) {
                nan_high.push(f);
            }
        }
        nan_high.sort_unstable();
        if flat.inputs + nan_high.len() > 256 {
            return None;
        }
        let mut per_feature: Vec<Vec<f64>> = vec![Vec::new(); flat.inputs];
        for (&f, &t) in flat.features.iter().zip(&flat.thresholds) {
            // Padding nodes (+inf) rank above every value: no cut needed.
            if t != f64::INFINITY {
                per_feature[f as usize].push(t);
            }
        }
        let (mut cuts, mut starts, mut ends) = (Vec::new(), vec![0u32], Vec::new());
        for mut ts in per_feature {
            ts.sort_by(f64::total_cmp);
            // -0.0 and 0.0 split alike, so they are one cut.
            ts.dedup_by(|a, b| a == b);
            if ts.len() > usize::from(u8::MAX) {
                return None;
            }
            cuts.extend(ts);
            ends.push(cuts.len() as u32);
            cuts.resize(cuts.len().next_multiple_of(8), f64::INFINITY);
            starts.push(cuts.len() as u32);
        }
        let mut ranked = Ranked {
            cuts,
            starts,
            ends,
            nodes: Vec::with_capacity(flat.features.len()),
            nan_high,
        };
        let splits = flat
            .features
            .iter()
            .zip(&flat.thresholds)
            .zip(&flat.nan_right);
        for ((&f, &t), &nan_right) in splits {
            let column = match nan_right {
                // Found: every nan-right feature is listed.
                true => flat.inputs + ranked.nan_high.binary_search(&(f as u8)).ok()?,
                false => usize::from(f),
            };
            let rank = ranked.rank(f as usize, t);
            ranked.nodes.push([column as u8, rank]);
        }
        Some(ranked)
    }

    /// Rank columns: the features' and then the copies of [`Ranked::nan_high`].
    fn columns(&self, inputs: usize) -> usize {
        inputs + self.nan_high.len()
    }

    /// Writes the rank columns of the row `x` (of at least `inputs` features) to `out`.
    #[inline(always)]
    fn row_ranks(&self, x: &[f64], inputs: usize, out: &mut [u8; 256]) {
        for (f, (r, &v)) in out.iter_mut().zip(x).take(inputs).enumerate() {
            *r = self.rank(f, v);
        }
        for (j, &f) in self.nan_high.iter().enumerate() {
            out[inputs + j] = missing_high(x[usize::from(f)], out[usize::from(f)]);
        }
    }

    /// Feature `f`'s cuts, ascending.
    #[inline]
    fn cuts(&self, f: usize) -> &[f64] {
        &self.cuts[self.starts[f] as usize..self.ends[f] as usize]
    }

    /// How many of feature `f`'s cuts lie below `v` (0 when `v` is NaN).
    #[inline]
    fn rank(&self, f: usize, v: f64) -> u8 {
        self.cuts(f).partition_point(|&c| c < v) as u8
    }
}

/// Whether a split at `threshold` sends `v` right; a missing `v` goes right
/// when `nan_right` ([`Node::goes_right`](crate::model::format::trees::Node::goes_right)).
#[inline(always)]
fn goes_right(v: f64, threshold: f64, nan_right: bool) -> bool {
    (v > threshold) | (nan_right & v.is_nan())
}

impl FlatGbt {
    /// The flat form of `gbt`, or `None` when the trees fail [`Gbt::check`], a
    /// tree is deeper than [`MAX_FLAT_DEPTH`], or the padded trees would take
    /// more than [`MAX_FLAT_SLOTS`].
    pub fn new(gbt: &Gbt) -> Option<Self> {
        // At least one level, so that every tree has a node to walk.
        let depth = gbt.check(usize::from(LEAF)).ok()?.max(1);
        if depth > MAX_FLAT_DEPTH || gbt.roots.len() << depth > MAX_FLAT_SLOTS {
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
            nan_right: vec![false; internal * gbt.roots.len()],
            values: vec![0.0; internal * gbt.roots.len()],
            leaves: vec![0.0; (internal + 1) * gbt.roots.len()],
            ranked: None,
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
        flat.ranked = Ranked::new(&flat);
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
            self.nan_right[t * internal + pos] = n.missing == Missing::Right;
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

    /// Margins of the rows `xs[k * stride..]`, one per element of `out`, each
    /// equal to [`FlatGbt::margin`] of its row to the bit. On a CPU with AVX-512,
    /// ranked trees up to depth 8 are walked for 64 rows at once (about 4.5
    /// times faster for 100 trees of depth 5); otherwise the trees are walked a
    /// chunk at a time for every row, so that a chunk stays in cache while the
    /// rows go by. `ranks` is scratch space, reused across calls.
    ///
    /// Panics if a row is shorter than the largest feature index the trees use.
    pub fn margins(&self, xs: &[f64], stride: usize, ranks: &mut Vec<u8>, out: &mut [f64]) {
        self.margins_by(xs, stride, ranks, out, wide_available());
    }

    /// [`FlatGbt::margins`], walking 64 rows at a time with AVX-512 when `wide`
    /// (which the CPU must support) and the splits rank.
    fn margins_by(
        &self,
        xs: &[f64],
        stride: usize,
        ranks: &mut Vec<u8>,
        out: &mut [f64],
        wide: bool,
    ) {
        assert!(stride >= self.inputs, "feature vector too short");
        assert!(xs.len() >= out.len() * stride, "fewer rows than margins");
        match self.depth {
            1 => self.margins_of_depth::<1>(xs, stride, ranks, out, wide),
            2 => self.margins_of_depth::<2>(xs, stride, ranks, out, wide),
            3 => self.margins_of_depth::<3>(xs, stride, ranks, out, wide),
            4 => self.margins_of_depth::<4>(xs, stride, ranks, out, wide),
            5 => self.margins_of_depth::<5>(xs, stride, ranks, out, wide),
            6 => self.margins_of_depth::<6>(xs, stride, ranks, out, wide),
            7 => self.margins_of_depth::<7>(xs, stride, ranks, out, wide),
            8 => self.margins_of_depth::<8>(xs, stride, ranks, out, wide),
            9 => self.margins_of_depth::<9>(xs, stride, ranks, out, false),
            _ => self.margins_of_depth::<MAX_FLAT_DEPTH>(xs, stride, ranks, out, false),
        }
    }

    /// Trees per chunk in [`FlatGbt::margins`]: a few kilobytes of nodes and leaves.
    const CHUNK: usize = 8 * LANES;

    /// [`FlatGbt::margins`] for trees of depth `D`.
    #[inline(always)]
    fn margins_of_depth<const D: u32>(
        &self,
        xs: &[f64],
        stride: usize,
        ranks: &mut Vec<u8>,
        out: &mut [f64],
        wide: bool,
    ) {
        let Some(ranked) = &self.ranked else {
            for (x, m) in xs.chunks(stride.max(1)).zip(out.iter_mut()) {
                *m = self.margin_of_depth::<D>(x);
            }
            return;
        };
        let (n, columns) = (self.inputs, ranked.columns(self.inputs));
        #[cfg(target_arch = "x86_64")]
        if wide && D <= avx512::MAX_DEPTH {
            let (cuts, starts, high) = (&ranked.cuts, &ranked.starts, &ranked.nan_high);
            // SAFETY: `wide` only where the CPU has AVX-512 (`margins` asks
            // `wide_available`); node columns are below `columns` (`Ranked::new`).
            unsafe {
                avx512::ranks(cuts, starts, high, xs, stride, out.len(), ranks);
                avx512::margins::<D>(&ranked.nodes, &self.leaves, self.base, ranks, columns, out);
            }
            return;
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = wide;
        ranks.clear();
        ranks.resize(out.len() * columns, 0);
        // Feature by feature, so that one feature's cuts stay in registers and
        // the rows' searches are independent of each other.
        for f in 0..n {
            let cuts = ranked.cuts(f);
            for (r, x) in ranks.chunks_exact_mut(columns).zip(xs.chunks(stride)) {
                r[f] = cuts.partition_point(|&c| c < x[f]) as u8;
            }
        }
        for (j, &f) in ranked.nan_high.iter().enumerate() {
            let f = usize::from(f);
            for (r, x) in ranks.chunks_exact_mut(columns).zip(xs.chunks(stride)) {
                r[n + j] = missing_high(x[f], r[f]);
            }
        }
        out.fill(self.base);
        let trees = self.leaves.len() >> D;
        let mut row_ranks = [0u8; 256];
        for first in (0..trees).step_by(Self::CHUNK) {
            let chunk = first..trees.min(first + Self::CHUNK);
            // (No trees: no columns; the margins stay at `base`.)
            for (r, m) in ranks.chunks_exact(columns.max(1)).zip(out.iter_mut()) {
                row_ranks[..r.len()].copy_from_slice(r);
                *m = self.walk_ranked::<D>(ranked, &row_ranks, chunk.clone(), *m);
            }
        }
    }

    /// [`FlatGbt::margin`] for trees of depth `D` (`self.depth == D`, and `x` long enough).
    #[inline(always)]
    fn margin_of_depth<const D: u32>(&self, x: &[f64]) -> f64 {
        debug_assert!(self.depth == D && x.len() >= self.inputs);
        let trees = 0..self.leaves.len() >> D;
        let Some(ranked) = &self.ranked else {
            let (features, thresholds) = (&self.features[..], &self.thresholds[..]);
            let nan_right = &self.nan_right[..];
            // SAFETY: `walk` passes node indices below `features.len() ==
            // thresholds.len() == nan_right.len()`; feature indices are below
            // `self.inputs <= x.len()`.
            return self.walk::<D>(trees, self.base, |node| unsafe {
                goes_right(
                    *x.get_unchecked(*features.get_unchecked(node) as usize),
                    *thresholds.get_unchecked(node),
                    *nan_right.get_unchecked(node),
                )
            });
        };
        let mut ranks = [0u8; 256];
        ranked.row_ranks(x, self.inputs, &mut ranks);
        self.walk_ranked::<D>(ranked, &ranks, trees, self.base)
    }

    /// `m` plus the leaves of `trees` for the row whose ranks are `ranks`.
    #[inline(always)]
    fn walk_ranked<const D: u32>(
        &self,
        ranked: &Ranked,
        ranks: &[u8; 256],
        trees: Range<usize>,
        m: f64,
    ) -> f64 {
        let nodes = &ranked.nodes[..];
        // SAFETY: `walk` passes node indices below `nodes.len()`; a `u8` indexes `ranks`.
        self.walk::<D>(trees, m, |node| unsafe {
            let [f, rank] = *nodes.get_unchecked(node);
            ranks[f as usize] > rank
        })
    }

    /// `m` plus each tree's leaf, for the trees `trees` in order, where
    /// `right(node)` says whether internal node `node` (an index into
    /// `features`) sends the walk right.
    #[inline(always)]
    fn walk<const D: u32>(
        &self,
        trees: Range<usize>,
        mut m: f64,
        right: impl Fn(usize) -> bool,
    ) -> f64 {
        let internal = (1usize << D) - 1;
        let step = |t: usize, i: usize| 2 * i + 1 + usize::from(right(t * internal + i));
        // SAFETY: `t` is a tree index below `self.leaves.len() / (internal + 1)` and,
        // after `D` steps, `internal <= i < 2 * internal + 1`, so the index is inside `leaves`.
        let leaf = |t: usize, i: usize| unsafe {
            *self.leaves.get_unchecked(t * (internal + 1) + i - internal)
        };
        debug_assert!(trees.end <= self.leaves.len() / (internal + 1));
        // `LANES` trees at a time: their walks are independent chains of dependent
        // loads, which the CPU overlaps when they are interleaved (8 measured
        // fastest: 4 leaves it idle, 16 runs out of registers).
        let mut t = trees.start;
        while t + LANES <= trees.end {
            let mut i = [0usize; LANES];
            for _ in 0..D {
                for (k, i) in i.iter_mut().enumerate() {
                    *i = step(t + k, *i);
                }
            }
            // Summed in tree order, so the result equals the tree-by-tree walk to the bit.
            for (k, &i) in i.iter().enumerate() {
                m += leaf(t + k, i);
            }
            t += LANES;
        }
        for t in t..trees.end {
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
        // Splits decided as the margin's walk decides them: by rank where the
        // splits rank (one byte compare, no branch on the data).
        let mut ranks = [0u8; 256];
        if let Some(ranked) = &self.ranked {
            ranked.row_ranks(x, self.inputs, &mut ranks);
        }
        let right = |node: usize| match &self.ranked {
            Some(ranked) => {
                let [column, rank] = ranked.nodes[node];
                ranks[usize::from(column)] > rank
            }
            None => goes_right(
                x[usize::from(self.features[node])],
                self.thresholds[node],
                self.nan_right[node],
            ),
        };
        let internal = (1usize << self.depth) - 1;
        let trees = self
            .values
            .chunks_exact(internal)
            .zip(self.leaves.chunks_exact(internal + 1));
        for (t, (values, leaves)) in trees.enumerate() {
            let mut i = 0;
            for _ in 0..self.depth {
                let node = t * internal + i;
                let child = 2 * i + 1 + usize::from(right(node));
                let below = if child < internal {
                    values[child]
                } else {
                    leaves[child - internal]
                };
                contrib[usize::from(self.features[node])] += below - values[i];
                i = child;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::format::trees::Node;
    use crate::model::train::gbt::GbtParams;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

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
            let mut g = crate::model::train::gbt::fit(&x, 3, &y, &params, None).expect("fit");
            // Missing values go right at about half the splits (as an imported
            // model's may), left at the others.
            for (i, n) in g.nodes.iter_mut().enumerate() {
                if (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(seed) >> 63 == 1 {
                    n.missing = Missing::Right;
                }
            }
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
            let want: Vec<u64> = x.chunks(3).map(|row| g.margin(row).to_bits()).collect();
            assert_blocks_score(&flat, &x, 3, &want);
        }
    }

    /// Seeded floats in [0, 1).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        move || rng.gen()
    }

    /// `trees` chains of `depth` splits (each split's left side a leaf), the
    /// split of tree `t` at level `l` on feature `feature(t, l)` at `threshold()`,
    /// sending missing values right where `value()` (drawn for it) is above 0.5.
    fn chains(
        depth: u32,
        trees: u32,
        feature: impl Fn(u32, u32) -> u16,
        mut threshold: impl FnMut() -> f64,
        mut value: impl FnMut() -> f64,
    ) -> Gbt {
        let mut g = Gbt {
            base: -1.5,
            nodes: Vec::new(),
            roots: Vec::new(),
            params: None,
            cover: Vec::new(),
        };
        for t in 0..trees {
            g.roots.push(g.nodes.len() as u32);
            for level in 0..depth {
                let at = g.nodes.len() as u32;
                let split = Node {
                    feature: feature(t, level),
                    threshold: threshold(),
                    left: at + 1,
                    right: at + 2,
                    value: value(),
                    missing: if value() > 0.5 {
                        Missing::Right
                    } else {
                        Missing::Left
                    },
                };
                let leaf = Node {
                    feature: LEAF,
                    value: value() - 0.5,
                    ..split
                };
                // The split, its left leaf, then (at the bottom) its right leaf.
                g.nodes.extend([split, leaf]);
                if level + 1 == depth {
                    g.nodes.push(Node {
                        value: value() - 0.5,
                        ..leaf
                    });
                }
            }
        }
        g
    }

    /// Values that sit on thresholds, signed zeros and infinities included.
    const EDGES: [f64; 8] = [
        -0.0,
        0.0,
        1.0,
        2.5,
        5.0,
        7.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];

    /// Checks `flat` against the node walk of `g` (margins and explanations) on
    /// inputs of `width` features: missing, on the edge values, or anywhere in [0, 10).
    /// Also checks [`FlatGbt::margins`] over all those rows at once, in rows one
    /// wider than needed.
    fn assert_scores_like_nodes(g: &Gbt, flat: &FlatGbt, width: usize, seed: u64) {
        let mut next = uniform(seed);
        let (mut xs, mut want) = (Vec::new(), Vec::new());
        for _ in 0..2000 {
            let x: Vec<f64> = (0..=width)
                .map(|_| match next() {
                    v if v < 0.1 => f64::NAN,
                    v if v < 0.5 => EDGES[(v * 100.0) as usize % EDGES.len()],
                    v => v * 10.0,
                })
                .collect();
            let m = g.margin(&x);
            assert_eq!(flat.margin(&x).to_bits(), m.to_bits(), "{x:?}");
            let (mut a, mut b) = (vec![0.0; width + 1], vec![0.0; width + 1]);
            flat.contributions(&x, &mut a);
            g.contributions(&x, &mut b);
            assert_eq!(a, b, "explanations of {x:?}");
            xs.extend_from_slice(&x);
            want.push(m.to_bits());
        }
        assert_blocks_score(flat, &xs, width + 1, &want);
    }

    /// Checks [`FlatGbt::margins`] of `xs` (rows of `stride`) against `want`
    /// (margin bits), walking row by row and, where the CPU can, 64 rows at a
    /// time; in whole blocks, and in blocks of sizes that do not divide by 64.
    fn assert_blocks_score(flat: &FlatGbt, xs: &[f64], stride: usize, want: &[u64]) {
        let mut walks = vec![false];
        if wide_available() {
            walks.push(true);
        } else {
            eprintln!("*** this CPU has no AVX-512: the 64-row block walk is not tested ***");
        }
        for wide in walks {
            for rows in [want.len(), 1, 63, 64, 65, 200] {
                let rows = rows.min(want.len());
                let mut got = vec![0.0; rows];
                flat.margins_by(xs, stride, &mut Vec::new(), &mut got, wide);
                let got: Vec<u64> = got.iter().map(|m| m.to_bits()).collect();
                assert!(
                    got == want[..rows],
                    "margins of a block of {rows} differ from the node walk (wide: {wide})"
                );
            }
        }
    }

    /// Every depth the flat form serves, 1 to [`MAX_FLAT_DEPTH`], scores like the
    /// nodes, with thresholds on edge values as well as anywhere.
    #[test]
    fn flat_form_of_every_depth_scores_like_the_nodes() {
        let (mut pick, mut value) = (uniform(0x853c_49e6_748f_ea9b), uniform(7));
        for depth in 1..=MAX_FLAT_DEPTH {
            // One group of trees walked together, then three alone.
            let g = chains(
                depth,
                LANES as u32 + 3,
                |t, level| ((t + level) % 3) as u16,
                || match pick() {
                    // The finite edges: thresholds are finite.
                    v if v < 0.4 => EDGES[(v * 100.0) as usize % 6],
                    v => v * 10.0,
                },
                &mut value,
            );
            let flat = FlatGbt::new(&g).expect("flattens");
            assert_eq!(flat.depth, depth);
            assert!(
                flat.ranked.is_some(),
                "few thresholds: splits compared by rank"
            );
            assert_scores_like_nodes(&g, &flat, 3, u64::from(depth));
        }
    }

    /// Thresholds that ranks cannot stand for leave the float walk serving.
    #[test]
    fn models_beyond_byte_ranks_use_the_float_walk() {
        let mut value = uniform(11);
        let mut k = 0.0;
        let mut many = || {
            k += 0.03;
            k
        };
        let too_many_cuts = chains(1, 300, |_, _| 0, &mut many, &mut value);
        let wide = chains(
            3,
            5,
            |t, l| if t == 4 { 300 } else { l as u16 },
            || 2.5,
            &mut value,
        );
        for (g, width) in [(too_many_cuts, 1), (wide, 301)] {
            let flat = FlatGbt::new(&g).expect("flattens");
            assert!(flat.ranked.is_none());
            assert_scores_like_nodes(&g, &flat, width, 3);
        }
        // 255 distinct thresholds still rank.
        let mut k = 0.0;
        let g = chains(
            1,
            255,
            |_, _| 0,
            || {
                k += 0.03;
                k
            },
            &mut value,
        );
        let flat = FlatGbt::new(&g).expect("flattens");
        assert!(flat.ranked.is_some());
        assert_scores_like_nodes(&g, &flat, 1, 4);
    }

    /// A feature that some node sends right when missing takes a second rank
    /// column; past 256 columns the float walk serves. Both score like the nodes.
    #[test]
    fn missing_values_going_right_take_a_rank_column_of_their_own() {
        let mut value = uniform(5);
        for (features, ranks) in [(128u16, true), (129, false)] {
            let mut g = chains(
                2,
                u32::from(features),
                |t, l| (t + l) as u16 % features,
                || 2.5,
                &mut value,
            );
            g.nodes.iter_mut().for_each(|n| n.missing = Missing::Right);
            let flat = FlatGbt::new(&g).expect("flattens");
            assert_eq!(flat.ranked.is_some(), ranks, "{features} features");
            assert_scores_like_nodes(&g, &flat, usize::from(features), 9);
        }
    }

    /// Trees that fail their check, or that would take too much room padded,
    /// have no flat form (and are walked node by node, or refused at load).
    #[test]
    fn broken_or_huge_trees_have_no_flat_form() {
        let mut value = uniform(3);
        let mut cyclic = chains(2, 1, |_, _| 0, || 1.0, &mut value);
        cyclic.nodes[2].right = 0;
        assert!(FlatGbt::new(&cyclic).is_none());
        let huge = chains(
            10,
            (MAX_FLAT_SLOTS >> 10) as u32 + 1,
            |_, _| 0,
            || 1.0,
            &mut value,
        );
        assert!(FlatGbt::new(&huge).is_none());
    }
}
