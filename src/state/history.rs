//! An entity's history: its time-ordered ring of events, the windows' cursors
//! into it, and the same windows as of an earlier time, for a late event.
//!
//! The windows' running aggregates are kept as of the entity's newest event
//! time `N`. A late event at `t` (`N - lateness <= t < N`) is inserted in time
//! order, and its own features are those windows moved back to `t`: each
//! cursor walks back over the entries between the window's bounds at `t` and at
//! `N`, taking them out of (or into) a copy of the aggregates. That needs the
//! ring to reach `lateness` further back than the longest window: older
//! entries go ([`forget_before`]) only once the ring is full.

use super::trackers::{TrackerSpec, DISTINCT_CAP};
use super::window::{Entry, Money, WindowAcc, WindowSpec, TAG_MASK};
use super::EntityState;
use std::collections::VecDeque;

/// The value hashes of the distinct-count trackers, `per_entry` per ring entry,
/// in ring order (the entry at ring index `i` owns `i * per_entry ..`).
pub(super) struct Hashes<'a> {
    pub ring: &'a mut VecDeque<u32>,
    pub per_entry: usize,
}

/// Moves every window of `st` to end at `now_s` (minus its delay).
pub(super) fn advance(
    st: &EntityState,
    accs: &mut [WindowAcc],
    windows: &[WindowSpec],
    now_s: u32,
) {
    let last = st.base + st.ring.len() as u32;
    for (spec, acc) in windows.iter().zip(accs.iter_mut()) {
        let hi = i64::from(now_s) - i64::from(spec.delay_s);
        let lo = hi - i64::from(spec.length_s);
        while acc.end < last {
            let e = &st.ring[(acc.end - st.base) as usize];
            if i64::from(e.ts) > hi {
                break;
            }
            acc.add(e, spec, 1);
            acc.end += 1;
        }
        while acc.start < acc.end {
            let e = &st.ring[(acc.start - st.base) as usize];
            if i64::from(e.ts) > lo {
                break;
            }
            acc.add(e, spec, -1);
            acc.start += 1;
        }
    }
}

/// Drops the oldest entry (and its distinct values), remembering its time.
#[inline]
fn pop(st: &mut EntityState, hashes: &mut Option<Hashes<'_>>) {
    if let Some(front) = st.ring.pop_front() {
        st.trimmed_ms = front.ts_ms();
        st.base += 1;
        if let Some(h) = hashes {
            for _ in 0..h.per_entry {
                h.ring.pop_front();
            }
        }
    }
}

/// Drops the entries at or before `keep_after_s`, which no window of a late
/// event can reach any more.
pub(super) fn forget_before(
    st: &mut EntityState,
    mut hashes: Option<Hashes<'_>>,
    keep_after_s: i64,
) {
    while st
        .ring
        .front()
        .is_some_and(|e| i64::from(e.ts) <= keep_after_s)
    {
        pop(st, &mut hashes);
    }
}

/// Drops the oldest entries beyond `cap`, out of the windows that hold them;
/// returns how many.
#[inline(always)]
pub(super) fn truncate(
    st: &mut EntityState,
    accs: &mut [WindowAcc],
    windows: &[WindowSpec],
    mut hashes: Option<Hashes<'_>>,
    cap: usize,
) -> u64 {
    let mut forced = 0;
    while st.ring.len() > cap.max(1) {
        let front = st.ring[0];
        for (spec, acc) in windows.iter().zip(accs.iter_mut()) {
            if acc.start == st.base {
                if acc.end > st.base {
                    acc.add(&front, spec, -1);
                } else {
                    acc.end += 1;
                }
                acc.start += 1;
            }
        }
        pop(st, &mut hashes);
        forced += 1;
    }
    forced
}

/// Inserts a late entry after every entry of its second (ties keep arrival
/// order), with its distinct values, and fixes the windows' cursors and
/// aggregates as of the newest time; returns its sequence number.
pub(super) fn insert_late(
    st: &mut EntityState,
    accs: &mut [WindowAcc],
    windows: &[WindowSpec],
    hashes: Option<(Hashes<'_>, &[u32])>,
    entry: Entry,
) -> u32 {
    let pos = st.ring.partition_point(|e| e.ts <= entry.ts);
    let seq = st.base + pos as u32;
    for (spec, acc) in windows.iter().zip(accs.iter_mut()) {
        if seq < acc.start {
            acc.start += 1;
            acc.end += 1;
        } else if seq < acc.end {
            acc.add(&entry, spec, 1);
            acc.end += 1;
        }
    }
    st.ring.insert(pos, entry);
    if let Some((h, values)) = hashes {
        for (d, &v) in values.iter().enumerate().take(h.per_entry) {
            h.ring.insert(pos * h.per_entry + d, v);
        }
    }
    seq
}

/// The aggregates of window `spec` as of time `t_s`, from `acc`, the same
/// window as of the entity's newest time (`t_s` is not later): its cursors
/// walk back over the entries between the two positions.
pub(super) fn window_at(
    st: &EntityState,
    acc: &WindowAcc,
    spec: &WindowSpec,
    t_s: u32,
) -> WindowAcc {
    let hi = i64::from(t_s) - i64::from(spec.delay_s);
    let lo = hi - i64::from(spec.length_s);
    let at = |seq: u32| &st.ring[(seq - st.base) as usize];
    let mut w = *acc;
    // If the window at `t_s` ends before the newest one starts, entries between
    // them are subtracted here and added back below: the result is the same.
    while w.end > st.base && i64::from(at(w.end - 1).ts) > hi {
        w.end -= 1;
        w.add(at(w.end), spec, -1);
    }
    while w.start > st.base && i64::from(at(w.start - 1).ts) > lo {
        w.start -= 1;
        w.add(at(w.start), spec, 1);
    }
    w
}

/// The min (or, with `max`, max) amount of the entries `acc.start..acc.end`
/// that `spec`'s filter takes; NaN when there are none.
pub(super) fn extreme_in(st: &EntityState, acc: &WindowAcc, spec: &WindowSpec, max: bool) -> f64 {
    let amounts = (acc.start..acc.end)
        .map(|seq| st.ring[(seq - st.base) as usize].amount)
        .filter(|&a| spec.filter.accepts(a));
    let best: Option<Money> = if max { amounts.max() } else { amounts.min() };
    best.map_or(f64::NAN, Money::to_f64)
}

/// Distinct non-zero values of tracker `d` among the entries up to ring index
/// `last` (inclusive) with time after `after_s`, up to [`DISTINCT_CAP`].
pub(super) fn distinct_in(
    st: &EntityState,
    hashes: &VecDeque<u32>,
    per_entry: usize,
    d: usize,
    last: usize,
    after_s: i64,
) -> f64 {
    let first = st.ring.partition_point(|e| i64::from(e.ts) <= after_s);
    let mut seen = [0u32; DISTINCT_CAP];
    let mut n = 0;
    for i in first..=last {
        let h = hashes[i * per_entry + d];
        if h != 0 && !seen[..n].contains(&h) {
            seen[n] = h;
            n += 1;
            if n == DISTINCT_CAP {
                break;
            }
        }
    }
    n as f64
}

/// Ring index of the entry at `ts_s` whose id tag is `tag`: `hint` (its
/// sequence number when it arrived) if that still holds it, else the first
/// such entry of that second (a late insert before it shifted it).
pub(super) fn find(st: &EntityState, ts_s: u32, tag: u32, hint: u32) -> Option<usize> {
    let is_it = |e: &Entry| e.ts == ts_s && e.tag() == tag & TAG_MASK;
    let i = hint.wrapping_sub(st.base) as usize;
    if st.ring.get(i).is_some_and(is_it) {
        return Some(i);
    }
    let first = st.ring.partition_point(|e| e.ts < ts_s);
    (first..st.ring.len())
        .take_while(|&i| st.ring[i].ts == ts_s)
        .find(|&i| is_it(&st.ring[i]))
}

/// A late event's window aggregates and trackers as of its own time.
pub(super) struct LateView {
    pub accs: Box<[WindowAcc]>,
    pub trackers: Box<[f64]>,
}

impl LateView {
    /// Room for `windows` window aggregates and `trackers` tracker values.
    pub fn new(windows: usize, trackers: usize) -> Self {
        Self {
            accs: vec![WindowAcc::default(); windows].into_boxed_slice(),
            trackers: vec![f64::NAN; trackers].into_boxed_slice(),
        }
    }

    /// Computes the view of the late event at ring index `pos` (time `t_s`) of
    /// `st`, from `accs` (its entity's windows as of the newest time) and, with
    /// distinct trackers, the ring's value hashes (`per_entry` per entry).
    pub fn fill(
        &mut self,
        (windows, trackers): (&[WindowSpec], &[TrackerSpec]),
        st: &EntityState,
        accs: &[WindowAcc],
        hashes: Option<(&VecDeque<u32>, usize)>,
        pos: usize,
        t_s: u32,
    ) {
        for ((spec, acc), late) in windows.iter().zip(accs).zip(self.accs.iter_mut()) {
            *late = window_at(st, acc, spec, t_s);
        }
        let mut d = 0;
        for (t, value) in trackers.iter().zip(self.trackers.iter_mut()) {
            *value = match (*t, hashes) {
                (TrackerSpec::Extreme { window, max }, _) => {
                    let w = window as usize;
                    extreme_in(st, &self.accs[w], &windows[w], max)
                }
                (TrackerSpec::Distinct { length_s }, Some((hashes, per_entry))) => {
                    d += 1;
                    let after_s = i64::from(t_s) - i64::from(length_s);
                    distinct_in(st, hashes, per_entry, d - 1, pos, after_s)
                }
                (TrackerSpec::Distinct { .. }, None) => {
                    unreachable!("distinct trackers keep hashes")
                }
            };
        }
    }
}
