//! TreeSHAP against the Shapley values computed from their definition, over
//! random trees that split on the same feature more than once, send missing
//! values both ways and have children no training row reached.

use super::*;
use crate::model::format::trees::{Missing, Node};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A random tree of at most `depth` levels over `features` features, its
/// nodes appended to `g`; returns its root.
fn random_tree(g: &mut Gbt, rng: &mut SmallRng, features: u16, depth: u32, cover: f64) -> u32 {
    let index = g.nodes.len() as u32;
    g.nodes.push(Node::leaf(rng.gen_range(-2.0..2.0)));
    g.cover.push(cover);
    if depth == 0 || cover == 0.0 || rng.gen_bool(0.2) {
        return index;
    }
    // Shares that do not always add up to the parent's (as with XGBoost's
    // 32-bit hessian sums), and now and then an empty child.
    let share = match rng.gen_range(0..8) {
        0 => 0.0,
        1 => 1.0,
        _ => rng.gen_range(0.05..0.95),
    };
    let drift = if rng.gen_bool(0.3) { 1.01 } else { 1.0 };
    let left = random_tree(g, rng, features, depth - 1, cover * share);
    let right = random_tree(g, rng, features, depth - 1, cover * (1.0 - share) * drift);
    g.nodes[index as usize] = Node {
        feature: rng.gen_range(0..features),
        threshold: f64::from(rng.gen_range(0..10)),
        left,
        right,
        value: 0.0,
        missing: if rng.gen_bool(0.5) {
            Missing::Left
        } else {
            Missing::Right
        },
    };
    index
}

fn random_gbt(rng: &mut SmallRng, features: u16, trees: usize, depth: u32) -> Gbt {
    let mut g = Gbt {
        base: rng.gen_range(-1.0..1.0),
        nodes: Vec::new(),
        roots: Vec::new(),
        params: None,
        cover: Vec::new(),
    };
    for _ in 0..trees {
        let cover = rng.gen_range(1.0..1000.0);
        let root = random_tree(&mut g, rng, features, depth, cover);
        g.roots.push(root);
    }
    g.check(usize::from(features)).expect("a valid ensemble");
    g
}

/// The margin's expectation when only the features in `kept` (a bit set) are
/// known: unknown ones follow both children by cover share.
fn value_of(g: &Gbt, x: &[f64], kept: u32) -> f64 {
    fn below(g: &Gbt, x: &[f64], kept: u32, n: u32) -> f64 {
        let node = &g.nodes[n as usize];
        if node.feature == LEAF {
            return node.value;
        }
        if kept & (1 << node.feature) != 0 {
            let next = if node.goes_right(x[usize::from(node.feature)]) {
                node.right
            } else {
                node.left
            };
            return below(g, x, kept, next);
        }
        let share = |c: u32| g.cover[c as usize] / g.cover[n as usize];
        share(node.left) * below(g, x, kept, node.left)
            + share(node.right) * below(g, x, kept, node.right)
    }
    g.base + g.roots.iter().map(|&r| below(g, x, kept, r)).sum::<f64>()
}

/// Shapley values by their definition: every coalition, weighted.
fn brute_force(g: &Gbt, x: &[f64], m: usize) -> Vec<f64> {
    let fact = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
    (0..m)
        .map(|i| {
            (0..1u32 << m)
                .filter(|s| s & (1 << i) == 0)
                .map(|s| {
                    let size = s.count_ones() as usize;
                    let w = fact(size) * fact(m - size - 1) / fact(m);
                    w * (value_of(g, x, s | 1 << i) - value_of(g, x, s))
                })
                .sum()
        })
        .collect()
}

#[test]
fn treeshap_equals_the_shapley_values_by_definition() {
    let mut rng = SmallRng::seed_from_u64(21);
    let mut path = ShapPath::default();
    for case in 0..300 {
        let m = rng.gen_range(1..=6);
        let (trees, depth) = (rng.gen_range(1..4), rng.gen_range(0..7));
        let g = random_gbt(&mut rng, m as u16, trees, depth);
        let x: Vec<f64> = (0..m)
            .map(|_| match rng.gen_range(0..5) {
                0 => f64::NAN,
                _ => f64::from(rng.gen_range(0..10)) + rng.gen_range(-0.5..0.5),
            })
            .collect();
        let mut phi = vec![0.0; m];
        g.shap(&x, &mut phi, &mut path);
        let mut tabled = vec![0.0; m];
        ShapTables::new(&g)
            .expect("at most 6 levels")
            .add(&x, &mut tabled);
        let want = brute_force(&g, &x, m);
        for i in 0..m {
            for (how, phi) in [("recursion", &phi), ("tables", &tabled)] {
                assert!(
                    (phi[i] - want[i]).abs() < 1e-9,
                    "case {case}, feature {i}, {how}: {} against {}",
                    phi[i],
                    want[i]
                );
            }
        }
        assert!((g.expected_margin() - value_of(&g, &x, 0)).abs() < 1e-9);
    }
}

#[test]
fn contributions_add_up_to_the_margin_on_deep_random_trees() {
    let mut rng = SmallRng::seed_from_u64(5);
    let mut path = ShapPath::default();
    for _ in 0..50 {
        let m = rng.gen_range(1..=20);
        let g = random_gbt(&mut rng, m as u16, 20, 12);
        let x: Vec<f64> = (0..m).map(|_| f64::from(rng.gen_range(-1..11))).collect();
        let mut phi = vec![0.0; m];
        g.shap(&x, &mut phi, &mut path);
        let total = g.expected_margin() + phi.iter().sum::<f64>();
        assert!(
            (total - g.margin(&x)).abs() < 1e-6,
            "{total} against {}",
            g.margin(&x)
        );
    }
}

/// A chain of `d` splits, each on a new feature, with a leaf of value `i`
/// off split `i` and a leaf of 100 at the end, where `x = 0` goes.
fn chain(d: u16) -> Gbt {
    let mut g = Gbt {
        base: 0.0,
        nodes: Vec::new(),
        roots: vec![0],
        params: None,
        cover: Vec::new(),
    };
    for i in 0..d {
        let n = g.nodes.len() as u32;
        g.nodes.push(Node {
            feature: i,
            threshold: 0.5,
            left: n + 2,
            right: n + 1,
            value: 0.0,
            missing: Missing::Left,
        });
        g.nodes.push(Node::leaf(f64::from(i)));
        g.cover.extend([f64::from(d - i + 1), 1.0]);
    }
    g.nodes.push(Node::leaf(100.0));
    g.cover.push(1.0);
    g
}

/// The deepest servable tree fits the path scratch (a chain of
/// [`MAX_DEPTH`] splits, each on a new feature). The values are exact in
/// arithmetic; in 64 bits unwinding a path loses digits as it grows
/// (measured: 1e-12 at depth 16, 2e-8 at 32, 1e-3 at 48).
#[test]
fn the_deepest_servable_tree_is_explained() {
    for (d, tolerance) in [
        (8, 1e-12),
        (16, 1e-10),
        (24, 1e-9),
        (32, 1e-6),
        (MAX_DEPTH as u16, 1e-2),
    ] {
        let g = chain(d);
        assert_eq!(g.check(usize::from(d)), Ok(u32::from(d)));
        let x = vec![0.0; usize::from(d)];
        let mut phi = vec![0.0; usize::from(d)];
        g.shap(&x, &mut phi, &mut ShapPath::default());
        let total = g.expected_margin() + phi.iter().sum::<f64>();
        let error = (total - g.margin(&x)).abs();
        assert!(error < tolerance, "depth {d}: {error:e}");
    }
}

/// The tables explain as the recursion does, on trees of every tabled depth
/// with repeated features, missing values both ways and empty children; and
/// they are refused where they would be too deep or too large.
#[test]
fn tables_explain_as_the_recursion_does() {
    let mut rng = SmallRng::seed_from_u64(8);
    let mut path = ShapPath::default();
    for depth in 0..=MAX_TABLE_DEPTH {
        for _ in 0..10 {
            let m = rng.gen_range(1..=12);
            let trees = rng.gen_range(1..6);
            let g = random_gbt(&mut rng, m as u16, trees, depth);
            let tables = ShapTables::new(&g).expect("tabled");
            for _ in 0..20 {
                let x: Vec<f64> = (0..m)
                    .map(|_| match rng.gen_range(0..5) {
                        0 => f64::NAN,
                        _ => f64::from(rng.gen_range(-1..11)),
                    })
                    .collect();
                let (mut want, mut got) = (vec![0.0; m], vec![0.0; m]);
                g.shap(&x, &mut want, &mut path);
                tables.add(&x, &mut got);
                for (w, v) in want.iter().zip(&got) {
                    assert!(
                        (w - v).abs() <= 1e-12 * (1.0 + w.abs()),
                        "{got:?} against {want:?}"
                    );
                }
            }
        }
    }
    let deeper = chain(MAX_TABLE_DEPTH as u16 + 1);
    assert!(ShapTables::new(&deeper).is_none(), "too deep");
    // Copies of a chain of 8 splits, 5634 values each, past the limit.
    let mut large = chain(8);
    let one = large.nodes.len() as u32;
    for t in 1..=MAX_TABLE_VALUES / (8 << 8) {
        let shift = |n: u32| n + t as u32 * one;
        large.roots.push(shift(0));
        for i in 0..one as usize {
            let n = large.nodes[i];
            large.nodes.push(Node {
                left: shift(n.left),
                right: shift(n.right),
                ..n
            });
            large.cover.push(large.cover[i]);
        }
    }
    assert!(ShapTables::new(&chain(8)).is_some());
    assert!(ShapTables::new(&large).is_none(), "too large");
    let mut without_cover = chain(3);
    without_cover.cover.clear();
    assert!(ShapTables::new(&without_cover).is_none(), "no cover");
}
