//! Block scoring with AVX-512: the ranked trees of a
//! [`FlatGbt`](super::flat::FlatGbt) walked for 64 rows at once, one byte lane
//! per row.
//!
//! A row's walk down a tree is a position per level. With 64 rows in the byte
//! lanes of one register, a level is decided node by node: each node compares
//! its rank column (64 rows, one load) with its threshold rank, for
//! the lanes standing at that node. A tree of depth 5 costs 31 such compares
//! for 64 rows, where walking row by row costs 5 dependent lookups per row.
//! Leaves are picked with permutes and summed tree by tree in tree order, so
//! margins equal the row-by-row walk to the bit.

use crate::model::format::trees::missing_high;
use std::arch::x86_64::*;

/// Rows walked together: one byte lane each.
pub const ROWS: usize = 64;

/// Deepest trees walked here: a leaf's position must fit in a byte lane.
pub const MAX_DEPTH: u32 = 8;

/// Whether this CPU runs [`margins`].
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("popcnt")
}

/// Where row `k`'s rank in column `f` goes in the rank columns [`margins`]
/// reads, of `columns` columns: 64 rows at a time, column after column.
#[inline]
pub fn column_index(k: usize, f: usize, columns: usize) -> usize {
    ((k / ROWS) * columns + f) * ROWS + k % ROWS
}

/// Writes the rank columns of `rows` rows of `xs` (one every `stride` values,
/// `inputs` features each) to `cols`, laid out by [`column_index`] and zeroed
/// past the last row. Column `f < inputs`: how many of feature `f`'s cuts lie
/// below the value (0 for a missing one). Column `inputs + j`: the same for
/// feature `nan_high[j]`, but 255 for a missing value. `cuts` holds each
/// feature's cuts ascending, padded with +inf to whole runs of eight; feature
/// `f`'s run is `cuts[starts[f]..starts[f + 1]]`. Counting eight cuts per
/// compare beats a binary search over a few dozen.
///
/// # Safety
/// The CPU must support AVX-512 F and POPCNT ([`available`]).
#[target_feature(enable = "avx512f,popcnt")]
pub unsafe fn ranks(
    cuts: &[f64],
    starts: &[u32],
    nan_high: &[u8],
    xs: &[f64],
    stride: usize,
    rows: usize,
    cols: &mut Vec<u8>,
) {
    let inputs = starts.len() - 1;
    let columns = inputs + nan_high.len();
    assert!(
        stride >= inputs && xs.len() >= rows * stride,
        "fewer rows than asked"
    );
    assert!(starts
        .iter()
        .all(|&s| s as usize <= cuts.len() && s % 8 == 0));
    cols.clear();
    cols.resize(rows.div_ceil(ROWS) * columns * ROWS, 0);
    for (k, x) in xs.chunks(stride).take(rows).enumerate() {
        for f in 0..inputs {
            let v = _mm512_set1_pd(x[f]);
            let mut rank = 0;
            for at in (starts[f]..starts[f + 1]).step_by(8) {
                // SAFETY: `starts` are multiples of 8 within `cuts` (asserted).
                let c = unsafe { _mm512_loadu_pd(cuts.as_ptr().add(at as usize)) };
                // Ordered: a missing value is below no cut.
                rank += _mm512_cmp_pd_mask::<_CMP_LT_OQ>(c, v).count_ones();
            }
            cols[column_index(k, f, columns)] = rank as u8;
        }
        for (j, &f) in nan_high.iter().enumerate() {
            let f = usize::from(f);
            let rank = cols[column_index(k, f, columns)];
            cols[column_index(k, inputs + j, columns)] = missing_high(x[f], rank);
        }
    }
}

/// Writes to `out` the margin of each row: `base` plus, tree after tree, the
/// leaf the row reaches. Trees are complete, of depth `D`: `2^D - 1` nodes
/// `(feature, threshold rank)` each in `nodes`, breadth first, and `2^D` values
/// each in `leaves`. A row goes right at a node when its rank in the node's
/// column is above the node's rank. `cols` holds the `columns` rank columns of
/// `out.len()` rows (rounded up to 64, the rest zero) laid out by [`column_index`].
///
/// # Safety
/// The CPU must support AVX-512 F and BW ([`available`]), and every node's
/// column must be below `columns`.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn margins<const D: u32>(
    nodes: &[[u8; 2]],
    leaves: &[f64],
    base: f64,
    cols: &[u8],
    columns: usize,
    out: &mut [f64],
) {
    assert!((1..=MAX_DEPTH).contains(&D), "depth {D} walked by rows");
    let internal = (1usize << D) - 1;
    let per_tree = internal + 1;
    let trees = leaves.len() / per_tree;
    assert_eq!(nodes.len(), trees * internal, "nodes and leaves disagree");
    assert!(
        cols.len() >= out.len().div_ceil(ROWS) * columns * ROWS,
        "rank columns too short"
    );
    // Leaves are looked up sixteen at a time (two registers of eight); a tree
    // with fewer loads only its own.
    let tables = per_tree.div_ceil(16);
    let load_masks = |table: usize| -> [__mmask8; 2] {
        let n = (per_tree - 16 * table).min(16);
        [
            (((1u32 << n.min(8)) - 1) & 0xff) as __mmask8,
            (((1u32 << n.saturating_sub(8)) - 1) & 0xff) as __mmask8,
        ]
    };
    let one = _mm512_set1_epi8(1);
    let mut lanes = [0u8; ROWS];
    let mut sums = [0f64; ROWS];
    for (g, out) in out.chunks_mut(ROWS).enumerate() {
        let cols = &cols[g * columns * ROWS..][..columns * ROWS];
        let mut acc = [_mm512_set1_pd(base); ROWS / 8];
        for t in 0..trees {
            let nodes = &nodes[t * internal..][..internal];
            // Each lane's position within the level it has reached.
            let mut at = _mm512_setzero_si512();
            for level in 0..D {
                let first = (1usize << level) - 1;
                let mut right: __mmask64 = 0;
                for (j, &[f, rank]) in nodes[first..2 * first + 1].iter().enumerate() {
                    // SAFETY: `f < columns`, so the column lies inside `cols`.
                    let col = unsafe {
                        _mm512_loadu_si512(cols.as_ptr().add(usize::from(f) * ROWS).cast())
                    };
                    let here = if level == 0 {
                        !0
                    } else {
                        _mm512_cmpeq_epi8_mask(at, _mm512_set1_epi8(j as i8))
                    };
                    right |= _mm512_mask_cmpgt_epu8_mask(here, col, _mm512_set1_epi8(rank as i8));
                }
                let twice = _mm512_add_epi8(at, at);
                at = _mm512_mask_add_epi8(twice, right, twice, one);
            }
            // SAFETY: `lanes` holds 64 bytes.
            unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), at) };
            let leaves = &leaves[t * per_tree..][..per_tree];
            for (k, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `lanes` holds 64 bytes, so eight from `8 * k` (k < 8).
                let idx = _mm512_cvtepu8_epi64(unsafe {
                    _mm_loadl_epi64(lanes.as_ptr().add(8 * k).cast())
                });
                let mut leaf = _mm512_setzero_pd();
                for table in 0..tables {
                    let [lo, hi] = load_masks(table);
                    // SAFETY: masked loads touch only the lanes inside `leaves`.
                    let (a, b) = unsafe {
                        let p = leaves.as_ptr().wrapping_add(16 * table);
                        (
                            _mm512_maskz_loadu_pd(lo, p),
                            _mm512_maskz_loadu_pd(hi, p.wrapping_add(8)),
                        )
                    };
                    let picked = _mm512_permutex2var_pd(a, idx, b);
                    leaf = if tables == 1 {
                        picked
                    } else {
                        let mine = _mm512_cmpeq_epi64_mask(
                            _mm512_srli_epi64::<4>(idx),
                            _mm512_set1_epi64(table as i64),
                        );
                        _mm512_mask_mov_pd(leaf, mine, picked)
                    };
                }
                *acc = _mm512_add_pd(*acc, leaf);
            }
        }
        for (k, acc) in acc.iter().enumerate() {
            // SAFETY: `sums` holds 64 values, so eight from `8 * k` (k < 8).
            unsafe { _mm512_storeu_pd(sums.as_mut_ptr().add(8 * k), *acc) };
        }
        out.copy_from_slice(&sums[..out.len()]);
    }
}
