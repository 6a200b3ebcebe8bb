//! Gradient-boosted decision trees for binary log-loss: histogram training of
//! the ensembles of [`super::trees`].

use super::trees::{Gbt, Node, LEAF};
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

impl Gbt {
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
            params: Some(params),
            cover: Vec::new(),
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
                cover: &mut model.cover,
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
    cover: &'a mut Vec<f64>,
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
        self.nodes.push(Node::leaf(value));
        self.cover.push(h);
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

#[cfg(test)]
mod tests {
    use super::*;

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
