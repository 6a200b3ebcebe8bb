//! Rule screens checked eight at a time with AVX-512. The numbers (up to 64)
//! sit in up to eight registers; each group of eight screens picks its slots' values
//! with permutes (gathers are slower on the CPUs measured) and compares them
//! with its bounds in four vector compares, leaving a bit mask of the rules to
//! interpret. Row by row, a screen costs about a dozen instructions and a
//! branch the data decides.

use super::program::Screen;
use std::arch::x86_64::*;
use std::ops::Range;

/// Groups whose masks are found in one go.
const CHUNK: usize = 64;

/// Runs of sixteen numbers (two registers, one permute) screens pick from.
const RUNS: usize = 4;

/// Screens side by side, eight to a group, field by field.
#[derive(Debug, Clone, Default)]
pub struct ScreenLanes {
    /// Per group, the first and the second slot of each screen.
    slots: Vec<[[i64; 8]; 2]>,
    /// Per group and side, for each run of sixteen numbers, the lanes whose slot is in it.
    runs: Vec<[[u8; RUNS]; 2]>,
    lo: Vec<[f64; 8]>,
    hi: Vec<[f64; 8]>,
    /// Per group, the lanes of open screens ([`Screen::is_open`]), which pass missing values.
    open: Vec<u8>,
    /// Screens held (the last group may be partly empty).
    len: usize,
    /// One more than the largest slot read: the fewest numbers to check.
    reads: usize,
}

impl ScreenLanes {
    /// `screens`, in order.
    pub fn new(screens: impl IntoIterator<Item = Screen>) -> Self {
        let mut lanes = Self::default();
        for (i, s) in screens.into_iter().enumerate() {
            let (g, k) = (i / 8, i % 8);
            if k == 0 {
                lanes.slots.push([[0; 8]; 2]);
                lanes.runs.push([[0; RUNS]; 2]);
                lanes.lo.push([f64::NEG_INFINITY; 8]);
                lanes.hi.push([f64::INFINITY; 8]);
                lanes.open.push(0);
            }
            // An open lane passes whatever its (unused) slots hold.
            let slots = if s.is_open() { [0, 0] } else { s.slots };
            for (side, &slot) in slots.iter().enumerate() {
                lanes.slots[g][side][k] = i64::from(slot);
                if let Some(run) = lanes.runs[g][side].get_mut(usize::from(slot) / 16) {
                    *run |= 1 << k;
                }
                lanes.reads = lanes.reads.max(usize::from(slot) + 1);
            }
            lanes.lo[g][k] = s.lo;
            lanes.hi[g][k] = s.hi;
            lanes.open[g] |= u8::from(s.is_open()) << k;
            lanes.len = i + 1;
        }
        lanes
    }

    /// Whether this CPU runs [`ScreenLanes::each_open`].
    pub fn available() -> bool {
        is_x86_feature_detected!("avx512f")
    }

    /// Most numbers [`ScreenLanes::each_open`] picks from.
    pub const MAX_NUMBERS: usize = 16 * RUNS;

    /// Fewest screens worth checking eight at a time: below this, the fixed
    /// cost (loading the numbers, a call) outweighs the savings. Measured: 13
    /// starter rules take 50 ns one by one and 62 ns eight at a time; 100 rules
    /// 152 ns against 107 ns.
    pub const MIN_SCREENS: usize = 32;

    /// Whether [`ScreenLanes::each_open`] can read every slot of `nums`, and
    /// there are enough screens to be worth it.
    pub fn suits(&self, nums: &[f64]) -> bool {
        nums.len() >= self.reads && self.reads <= Self::MAX_NUMBERS && self.len >= Self::MIN_SCREENS
    }

    /// Calls `open` with the index of each screen that does not reject `nums`
    /// ([`Screen::rejects`]), in order.
    ///
    /// Panics unless the screens can read every slot of `nums` (see [`ScreenLanes::suits`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F ([`ScreenLanes::available`]).
    pub unsafe fn each_open(&self, nums: &[f64], mut open: impl FnMut(usize)) {
        assert!(
            nums.len() >= self.reads && self.reads <= Self::MAX_NUMBERS,
            "fewer numbers than the screens read"
        );
        // The masks first, then the rules: the rules' code stays out of the
        // vector code (and its registers).
        let mut masks = [0u8; CHUNK];
        for first in (0..self.slots.len()).step_by(CHUNK) {
            let groups = first..self.slots.len().min(first + CHUNK);
            // SAFETY: as for this function.
            unsafe { self.open_masks(nums, groups.clone(), &mut masks) };
            for (g, &mask) in groups.zip(&masks) {
                let mut mask = mask;
                while mask != 0 {
                    open(8 * g + mask.trailing_zeros() as usize);
                    mask &= mask - 1;
                }
            }
        }
    }

    /// Writes to `masks` the open lanes of each group in `groups`.
    #[target_feature(enable = "avx512f")]
    unsafe fn open_masks(&self, nums: &[f64], groups: Range<usize>, masks: &mut [u8; CHUNK]) {
        // The numbers, registers of eight (masked loads stop at the end).
        let n = nums.len().min(Self::MAX_NUMBERS);
        let runs = n.div_ceil(16);
        let mut table = [_mm512_setzero_pd(); 2 * RUNS];
        for (r, t) in table.iter_mut().enumerate().take(2 * runs) {
            let here = n.saturating_sub(8 * r).min(8);
            // SAFETY: the mask covers only lanes inside `nums`.
            *t = unsafe {
                _mm512_maskz_loadu_pd(
                    ((1u16 << here) - 1) as u8,
                    nums.as_ptr().wrapping_add(8 * r),
                )
            };
        }
        // Each lane's number: from the run of sixteen its slot is in.
        let pick = |slots: __m512i, lanes_of_run: &[u8; RUNS]| {
            let mut v = _mm512_permutex2var_pd(table[0], slots, table[1]);
            for run in 1..runs {
                let here = _mm512_permutex2var_pd(table[2 * run], slots, table[2 * run + 1]);
                v = _mm512_mask_blend_pd(lanes_of_run[run], v, here);
            }
            v
        };
        for (g, mask) in groups.zip(masks.iter_mut()) {
            let (slots, [first_runs, second_runs]) = (&self.slots[g], &self.runs[g]);
            let (lo, hi) = (&self.lo[g], &self.hi[g]);
            // SAFETY: the arrays hold eight lanes each.
            let (first, second, lo, hi) = unsafe {
                (
                    _mm512_loadu_si512(slots[0].as_ptr().cast()),
                    _mm512_loadu_si512(slots[1].as_ptr().cast()),
                    _mm512_loadu_pd(lo.as_ptr()),
                    _mm512_loadu_pd(hi.as_ptr()),
                )
            };
            let (x, y) = (pick(first, first_runs), pick(second, second_runs));
            // Ordered compares: a missing value (NaN) is never inside, and a
            // lane with either value missing is closed unless its screen is
            // open (as `Screen::rejects`).
            let x_inside =
                _mm512_cmp_pd_mask::<_CMP_GE_OQ>(x, lo) & _mm512_cmp_pd_mask::<_CMP_LE_OQ>(x, hi);
            let y_inside =
                _mm512_cmp_pd_mask::<_CMP_GE_OQ>(y, lo) & _mm512_cmp_pd_mask::<_CMP_LE_OQ>(y, hi);
            let present = _mm512_cmp_pd_mask::<_CMP_ORD_Q>(x, y);
            let lanes = (self.len - 8 * g).min(8);
            let passes = (x_inside | y_inside) & present | self.open[g];
            *mask = passes & ((1u16 << lanes) - 1) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Open, one-slot and two-slot screens over 40 numbers (three runs of sixteen).
    fn screen() -> impl Strategy<Value = Screen> {
        (0u16..40, 0u16..40, -3i32..3, 0i32..4, 0u8..4).prop_map(|(a, b, lo, width, kind)| {
            let (lo, hi) = (f64::from(lo), f64::from(lo + width));
            match kind {
                0 => Screen::OPEN,
                1 => Screen {
                    slots: [a, a],
                    lo,
                    hi,
                },
                2 => Screen {
                    slots: [a, b],
                    lo,
                    hi,
                },
                _ => Screen {
                    slots: [a, b],
                    lo: f64::NEG_INFINITY,
                    hi,
                },
            }
        })
    }

    proptest! {
        #[test]
        fn lanes_open_exactly_where_the_screen_does_not_reject(
            screens in proptest::collection::vec(screen(), 1..80),
            nums in proptest::collection::vec(
                prop_oneof![Just(f64::NAN), (-4i32..4).prop_map(f64::from)],
                40,
            ),
        ) {
            if !ScreenLanes::available() {
                return Ok(());
            }
            let lanes = ScreenLanes::new(screens.iter().copied());
            let mut open = Vec::new();
            // SAFETY: the CPU has AVX-512 F (checked above).
            unsafe { lanes.each_open(&nums, |i| open.push(i)) };
            let want: Vec<usize> = (0..screens.len()).filter(|&i| !screens[i].rejects(&nums)).collect();
            prop_assert_eq!(open, want);
        }
    }
}
