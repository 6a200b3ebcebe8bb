//! In-memory windowed state per entity (account, card, terminal, ...), owned by one partition.
//!
//! Each entity keeps a time-ordered ring of its recent events and, per window, a
//! pair of cursors into that ring plus running sums. A new event moves each
//! cursor forward past the events that entered or left the window, so an update
//! costs O(1) amortised and never rescans the window. Windows are exact to the
//! second and driven by event time; nothing here reads the wall clock.
//!
//! **Point in time.** The features of every accepted event equal those that a
//! fresh table computes when fed, in event-time order, every accepted event that
//! had arrived up to and including it (events of the same second count as
//! simultaneous and keep their arrival order; labels as known when it arrived).
//! An event up to `lateness_s` older than its entity's newest is inserted in
//! order and gets the windows as of its own time (see [`history`]); an older
//! one, or one of an entity the table does not hold whose history, evicted for
//! idleness, may have reached its time, is
//! [`Applied::Dropped`]: left out of the state, with no features of its own.
//! An entity's history counts for `horizon` seconds (its longest window,
//! delay included, or its `first_seen` horizon if longer): an event with no
//! earlier event within it is first seen. Exact while no entity exceeds
//! `max_events_per_entity` or is evicted for capacity (both counted).

mod evicted;
mod history;
mod recent;
mod trackers;
mod window;

pub use evicted::REMEMBER_EVICTED_S;
pub use recent::RecentIds;
pub use trackers::{TrackerSpec, DISTINCT_CAP};
pub use window::{
    cents_squared, hour_point, hour_vector, AmountFilter, Entry, Money, WindowAcc, WindowSpec,
    WindowValue, HOUR_SCALE, MONEY_SCALE,
};

use evicted::EvictedKeys;
use history::{Hashes, LateView};
use trackers::{Distinct, Extreme};

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

const NIL: u32 = u32::MAX;

/// Bounds that keep one table's memory in check.
#[derive(Debug, Clone, Copy)]
pub struct TableLimits {
    /// Most entities kept; the least recently seen is evicted beyond it.
    pub max_entities: usize,
    /// Most events kept per entity; the oldest are dropped beyond it.
    pub max_events_per_entity: usize,
    /// How far behind an entity's newest event a late event is still applied, seconds.
    pub lateness_s: u32,
}

impl Default for TableLimits {
    fn default() -> Self {
        Self {
            max_entities: 1_000_000,
            max_events_per_entity: 512,
            lateness_s: 300,
        }
    }
}

/// Counters a table accumulates; the pipeline publishes them as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Entities evicted after being idle longer than the longest window.
    pub evicted_idle: u64,
    /// Entities evicted because the table was full (least recently seen first).
    pub evicted_lru: u64,
    /// Out-of-order events inserted within the allowed lateness.
    pub late_applied: u64,
    /// Events too late to apply to the state (still decided, without this entity's features).
    pub late_dropped: u64,
    /// Old events dropped because an entity exceeded its event cap.
    pub truncated: u64,
}

/// How an observed event was applied to its entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// In order (or same second as the newest event).
    OnTime,
    /// Out of order but within lateness: inserted in time order; its features
    /// are the windows as of its own time.
    Late,
    /// Too late: not applied, and no features (they would count a wrong window).
    Dropped,
}

/// What [`EntityTable::observe`] found and did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Slot of the entity, valid until the next call that may evict (not for
    /// a dropped event).
    pub slot: u32,
    /// The entity has no earlier event within its horizon.
    pub first_seen: bool,
    /// Time of the entity's previous event (in event-time order) within its horizon, epoch ms.
    pub prev_seen_ms: Option<i64>,
    /// How the event was applied.
    pub applied: Applied,
    /// Sequence number of the event's entry in the entity's history (a hint for
    /// [`EntityTable::apply_label`]; a later late insert can shift it).
    pub seq: u32,
}

/// One entity's own state: one cache line (its windows and trackers are in
/// the table's per-slot arrays).
#[repr(align(64))]
struct EntityState {
    key: u64,
    ring: VecDeque<Entry>,
    /// Sequence number of `ring[0]`.
    base: u32,
    newest_s: u32,
    /// Time of the latest entry dropped from the front of `ring`, epoch ms
    /// (`i64::MIN`: none): the previous event of any event the ring can take.
    trimmed_ms: i64,
    prev: u32,
    next: u32,
}

// One cache line, not more: a lookup touches one line.
const _: () = assert!(std::mem::size_of::<EntityState>() == 64);

/// State of every entity of one kind in one partition.
pub struct EntityTable {
    windows: Box<[WindowSpec]>,
    trackers: Box<[TrackerSpec]>,
    /// Window aggregates of every slot, `windows.len()` per slot: found from the
    /// slot number alone, without a pointer to follow.
    accs: Vec<WindowAcc>,
    /// Min/max trackers of every slot, `extremes_per_slot` per slot, likewise.
    extremes: Vec<Extreme>,
    extremes_per_slot: usize,
    /// Distinct-count trackers of every slot, `distincts_per_slot` per slot, likewise.
    distincts: Vec<Distinct>,
    distincts_per_slot: usize,
    /// Per slot with distinct trackers, their value hashes for each ring entry
    /// (`distincts_per_slot` per entry), to count them as of a late event's time.
    hashes: Vec<VecDeque<u32>>,
    /// Index of each tracker among the trackers of its kind.
    tracker_index: Box<[usize]>,
    index: HashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
    slots: Vec<EntityState>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    limits: TableLimits,
    /// How far back an entity's history counts, seconds (see the module doc).
    horizon_s: u32,
    /// How far back from an event its windows and distinct counts reach, seconds.
    span_s: u32,
    retention_s: u32,
    clock_s: u32,
    /// Entities evicted for idleness: an event of one of them whose windows
    /// could reach the history dropped is dropped too; a key the table
    /// neither holds nor remembers has no history.
    evicted: EvictedKeys,
    stats: TableStats,
    /// The last late event's windows and trackers as of its own time.
    late_view: LateView,
}

impl EntityTable {
    /// A table whose entities each maintain `windows` (and `trackers` over them) and
    /// are remembered for at least `horizon_s` after their last event (beyond their
    /// longest window).
    pub fn new(
        windows: Vec<WindowSpec>,
        trackers: Vec<TrackerSpec>,
        horizon_s: u32,
        limits: TableLimits,
    ) -> Self {
        let distinct_longest = trackers.iter().filter_map(|t| match t {
            TrackerSpec::Distinct { length_s } => Some(*length_s),
            TrackerSpec::Extreme { .. } => None,
        });
        let span_s = windows
            .iter()
            .map(|w| w.length_s.saturating_add(w.delay_s))
            .chain(distinct_longest)
            .max()
            .unwrap_or(0);
        let horizon_s = span_s.max(horizon_s);
        let is_extreme = |t: &TrackerSpec| matches!(t, TrackerSpec::Extreme { .. });
        let extremes_per_slot = trackers.iter().filter(|t| is_extreme(t)).count();
        let distincts_per_slot = trackers.len() - extremes_per_slot;
        let tracker_index = trackers
            .iter()
            .enumerate()
            .map(|(i, t)| {
                trackers[..i]
                    .iter()
                    .filter(|u| is_extreme(u) == is_extreme(t))
                    .count()
            })
            .collect();
        Self {
            late_view: LateView::new(windows.len(), trackers.len()),
            windows: windows.into_boxed_slice(),
            trackers: trackers.into_boxed_slice(),
            accs: Vec::new(),
            extremes: Vec::new(),
            extremes_per_slot,
            distincts: Vec::new(),
            distincts_per_slot,
            hashes: Vec::new(),
            tracker_index,
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            retention_s: horizon_s.saturating_add(limits.lateness_s).max(1),
            horizon_s,
            span_s,
            limits,
            clock_s: 0,
            evicted: EvictedKeys::default(),
            stats: TableStats::default(),
        }
    }

    /// Number of entities held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the table holds no entity.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Counters since the table was created.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Aggregates of window `w` of the entity in `slot`.
    #[inline]
    pub fn acc(&self, slot: u32, w: usize) -> &WindowAcc {
        &self.accs(slot)[w]
    }

    /// Aggregates of every window of the entity in `slot`, in window order.
    #[inline]
    pub fn accs(&self, slot: u32) -> &[WindowAcc] {
        &self.accs[self.accs_of(slot)]
    }

    /// Asks the CPU to start loading the history entries that
    /// [`EntityTable::observe`] of entity `key` will move its windows over (or,
    /// with `entry`, the entry [`EntityTable::apply_label`] will label), so that
    /// a caller who knows its next event overlaps their cache misses with
    /// current work. Reads the entity's state to find them; changes nothing.
    #[inline]
    pub fn prefetch(&self, key: u64, entry: Option<u32>) {
        let Some(&slot) = self.index.get(&key) else {
            return;
        };
        let st = &self.slots[slot as usize];
        let accs = &self.accs[self.accs_of(slot)];
        let fetch = |seq: u32| {
            if let Some(e) = st.ring.get(seq.wrapping_sub(st.base) as usize) {
                prefetch(e);
            }
        };
        if let Some(seq) = entry {
            return fetch(seq);
        }
        fetch((st.base + st.ring.len() as u32).wrapping_sub(1));
        // Moving it to the front of the recency list rewrites its neighbours.
        for n in [st.prev, st.next] {
            if let Some(n) = self.slots.get(n as usize) {
                prefetch(&n.prev);
            }
        }
        for acc in accs {
            fetch(acc.start);
            fetch(acc.end);
        }
        for ex in &self.extremes[self.extremes_of(slot)] {
            prefetch(ex);
        }
    }

    /// Where the aggregates of the entity in `slot` sit in `accs`.
    #[inline]
    fn accs_of(&self, slot: u32) -> Range<usize> {
        run_of(slot, self.windows.len())
    }

    /// Where the min/max trackers of the entity in `slot` sit in `extremes`.
    #[inline]
    fn extremes_of(&self, slot: u32) -> Range<usize> {
        run_of(slot, self.extremes_per_slot)
    }

    /// Where the distinct-count trackers of the entity in `slot` sit in `distincts`.
    #[inline]
    fn distincts_of(&self, slot: u32) -> Range<usize> {
        run_of(slot, self.distincts_per_slot)
    }

    /// Records an event of entity `key` at `ts_ms` and brings its windows to its
    /// newest time. `tag` identifies the event among its entity's events of the
    /// same second (for [`EntityTable::apply_label`]); `distinct` holds, per
    /// distinct tracker in order, the hash of the counted field's value (0 when
    /// the event has none). Read the event's features with
    /// [`EntityTable::accs_at`] and [`EntityTable::tracker_at`].
    pub fn observe(
        &mut self,
        key: u64,
        ts_ms: i64,
        amount: Money,
        tag: u32,
        distinct: &[u32],
    ) -> Observation {
        let entry = Entry::new(ts_ms, amount, tag);
        let ts_s = entry.ts;
        self.clock_s = self.clock_s.max(ts_s);
        self.evict_idle(2);
        let lateness = self.limits.lateness_s;
        let slot = match self.index.get(&key) {
            Some(&slot) => slot,
            // Its entity's history, if it had one, may have been evicted.
            None if self.may_have_been_evicted(key, ts_s) => return self.dropped(),
            None => self.allocate(key, ts_s),
        };
        self.touch(slot);
        let newest_s = self.slots[slot as usize].newest_s;
        if ts_s >= newest_s {
            self.on_time(slot, entry, distinct)
        } else if newest_s - ts_s <= lateness {
            self.late(slot, entry, distinct)
        } else {
            self.dropped()
        }
    }

    /// An event in time order: appended, and the windows moved up to it.
    fn on_time(&mut self, slot: u32, entry: Entry, distinct: &[u32]) -> Observation {
        let range = self.accs_of(slot);
        let accs = &mut self.accs[range];
        let st = &mut self.slots[slot as usize];
        let prev = st.ring.back().map_or(st.trimmed_ms, Entry::ts_ms);
        st.ring.push_back(entry);
        st.newest_s = entry.ts;
        let seq = st.base + st.ring.len() as u32 - 1;
        if let Some(hashes) = self.hashes.get_mut(slot as usize) {
            for &h in distinct {
                hashes.push_back(h);
            }
        }
        history::advance(st, accs, &self.windows, entry.ts);
        let reach = i64::from(self.limits.lateness_s) + i64::from(self.span_s);
        self.settle(slot, entry.ts, distinct, i64::from(entry.ts) - reach, false);
        self.observation(slot, entry, prev, Applied::OnTime, seq)
    }

    /// An out-of-order event within lateness: inserted in time order, the
    /// newest-time windows corrected, and its own windows and trackers computed
    /// as of its time into `late`.
    fn late(&mut self, slot: u32, entry: Entry, distinct: &[u32]) -> Observation {
        self.stats.late_applied += 1;
        let range = self.accs_of(slot);
        let accs = &mut self.accs[range];
        let st = &mut self.slots[slot as usize];
        let per_entry = self.distincts_per_slot;
        let hashes = self.hashes.get_mut(slot as usize);
        let inserted = hashes.map(|ring| (Hashes { ring, per_entry }, distinct));
        let seq = history::insert_late(st, accs, &self.windows, inserted, entry);
        let pos = (seq - st.base) as usize;
        let prev = match pos {
            0 => st.trimmed_ms,
            _ => st.ring[pos - 1].ts_ms(),
        };
        let hashes = self.hashes.get(slot as usize).map(|h| (h, per_entry));
        let specs = (&self.windows[..], &self.trackers[..]);
        self.late_view.fill(specs, st, accs, hashes, pos, entry.ts);
        // Sequence numbers after the insert moved: rebuild the min/max deques.
        self.settle(slot, entry.ts, distinct, i64::MIN, true);
        self.observation(slot, entry, prev, Applied::Late, seq)
    }

    /// After an event entered `slot`'s ring: drops the entries at or before
    /// `keep_after_s` (once the ring is full: dropping them only when it would
    /// grow, not at every event, spares a read of its old end, and they take no
    /// memory it has not taken already) and the oldest beyond the cap, and
    /// brings the trackers up to date (`rebuild` after an insert moved
    /// sequence numbers).
    #[inline(always)]
    fn settle(&mut self, slot: u32, ts_s: u32, distinct: &[u32], keep_after_s: i64, rebuild: bool) {
        let ring = &self.slots[slot as usize].ring;
        if ring.len() == ring.capacity() {
            self.forget_before(slot, keep_after_s);
        }
        let per_entry = self.distincts_per_slot;
        let range = self.accs_of(slot);
        self.stats.truncated += history::truncate(
            &mut self.slots[slot as usize],
            &mut self.accs[range],
            &self.windows,
            self.hashes
                .get_mut(slot as usize)
                .map(|ring| Hashes { ring, per_entry }),
            self.limits.max_events_per_entity,
        );
        if !self.trackers.is_empty() {
            self.track(slot, ts_s, distinct, rebuild);
        }
    }

    /// [`history::forget_before`] for `slot`.
    #[cold]
    #[inline(never)]
    fn forget_before(&mut self, slot: u32, keep_after_s: i64) {
        let per_entry = self.distincts_per_slot;
        let hashes = self.hashes.get_mut(slot as usize);
        let st = &mut self.slots[slot as usize];
        history::forget_before(
            st,
            hashes.map(|ring| Hashes { ring, per_entry }),
            keep_after_s,
        );
    }

    /// Brings `slot`'s min/max deques and distinct tables up to date after an
    /// event at `ts_s` with distinct values `distinct`.
    #[inline(always)]
    fn track(&mut self, slot: u32, ts_s: u32, distinct: &[u32], rebuild: bool) {
        let (extremes, distincts) = (self.extremes_of(slot), self.distincts_of(slot));
        update_trackers(
            &self.slots[slot as usize],
            &self.accs[self.accs_of(slot)],
            &mut self.extremes[extremes],
            &mut self.distincts[distincts],
            &self.windows,
            &self.trackers,
            distinct,
            ts_s,
            rebuild,
        );
    }

    /// The observation of `entry`, given its previous event's time (`i64::MIN`: none).
    fn observation(
        &self,
        slot: u32,
        entry: Entry,
        prev_ms: i64,
        applied: Applied,
        seq: u32,
    ) -> Observation {
        let within =
            prev_ms != i64::MIN && entry.ts_ms() - prev_ms <= i64::from(self.horizon_s) * 1000;
        Observation {
            slot,
            first_seen: !within,
            prev_seen_ms: within.then_some(prev_ms),
            applied,
            seq,
        }
    }

    /// A dropped event: counted, with nothing to read.
    fn dropped(&mut self) -> Observation {
        self.stats.late_dropped += 1;
        Observation {
            slot: NIL,
            first_seen: false,
            prev_seen_ms: None,
            applied: Applied::Dropped,
            seq: NIL,
        }
    }

    /// The window aggregates of the event `obs` was returned for, as of its
    /// time (`obs` must be the last observation, and not a dropped one).
    #[inline]
    pub fn accs_at(&self, obs: &Observation) -> &[WindowAcc] {
        match obs.applied {
            Applied::Late => &self.late_view.accs,
            _ => self.accs(obs.slot),
        }
    }

    /// Tracker `t` of the event `obs` was returned for, as of its time (`obs`
    /// must be the last observation, and not a dropped one).
    #[inline]
    pub fn tracker_at(&self, obs: &Observation, t: usize) -> f64 {
        match obs.applied {
            Applied::Late => self.late_view.trackers[t],
            _ => self.tracker(obs.slot, t),
        }
    }

    /// Tracker `t` of the entity in `slot`: the window's min/max amount (NaN when
    /// empty) or the distinct count up to the entity's newest event.
    pub fn tracker(&self, slot: u32, t: usize) -> f64 {
        let i = self.tracker_index[t];
        match self.trackers[t] {
            TrackerSpec::Extreme { .. } => self.extremes[self.extremes_of(slot)][i].value(),
            TrackerSpec::Distinct { length_s } => self.distincts[self.distincts_of(slot)][i]
                .count(self.slots[slot as usize].newest_s, length_s),
        }
    }

    /// Sets the fraud/legit label of the event of entity `key` at `ts_s` with
    /// id tag `tag`, whose [`Observation::seq`] was `seq`, replacing an earlier
    /// label: every window that holds the event counts the new one instead.
    /// Returns false when the entity or event is no longer held.
    pub fn apply_label(&mut self, key: u64, ts_s: u32, tag: u32, seq: u32, fraud: bool) -> bool {
        let Some(&slot) = self.index.get(&key) else {
            return false;
        };
        let range = self.accs_of(slot);
        let accs = &mut self.accs[range];
        let st = &mut self.slots[slot as usize];
        let Some(i) = history::find(st, ts_s, tag, seq) else {
            return false;
        };
        let e = &mut st.ring[i];
        let (labelled, was_fraud) = (e.labelled(), e.fraud());
        e.set_label(fraud);
        // What each window holding it gains: 0 or 1 labelled, -1, 0 or 1 fraud.
        let (more_labelled, more_fraud) = (1 - labelled, u32::from(fraud).wrapping_sub(was_fraud));
        let (amount, seq) = (e.amount, st.base + i as u32);
        for (spec, acc) in self.windows.iter().zip(accs.iter_mut()) {
            if acc.start <= seq && seq < acc.end && spec.filter.accepts(amount) {
                acc.labelled += more_labelled;
                acc.fraud = acc.fraud.wrapping_add(more_fraud);
            }
        }
        true
    }

    /// Approximate heap and inline bytes held by this table.
    pub fn memory_bytes(&self) -> usize {
        let per_slot = std::mem::size_of::<EntityState>()
            + self.windows.len() * std::mem::size_of::<WindowAcc>()
            + self.extremes_per_slot * std::mem::size_of::<Extreme>()
            + self.distincts_per_slot * std::mem::size_of::<Distinct>();
        // (of which the window aggregates live in `accs`, one run per initialised slot)
        let rings: usize = self
            .slots
            .iter()
            .map(|s| s.ring.capacity() * std::mem::size_of::<Entry>())
            .sum::<usize>()
            + self
                .hashes
                .iter()
                .map(|h| std::mem::size_of::<VecDeque<u32>>() + h.capacity() * 4)
                .sum::<usize>();
        // hashbrown: key + value + one control byte per bucket.
        let index = self.index.capacity() * (8 + 4 + 1);
        // Slots beyond `len` are reserved address space that is never touched, so
        // count initialised slots: this tracks resident memory.
        let evicted = self.evicted.memory_bytes();
        self.slots.len() * per_slot + rings + index + evicted + self.free.capacity() * 4
    }

    fn allocate(&mut self, key: u64, ts_s: u32) -> u32 {
        if self.index.len() >= self.limits.max_entities.max(1) && self.tail != NIL {
            self.remove(self.tail);
            self.stats.evicted_lru += 1;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(EntityState {
                    key,
                    ring: VecDeque::new(),
                    base: 0,
                    newest_s: 0,
                    trimmed_ms: i64::MIN,
                    prev: NIL,
                    next: NIL,
                });
                self.accs
                    .resize(self.slots.len() * self.windows.len(), WindowAcc::default());
                self.extremes.resize(
                    self.slots.len() * self.extremes_per_slot,
                    Extreme::default(),
                );
                self.distincts.resize(
                    self.slots.len() * self.distincts_per_slot,
                    Distinct::default(),
                );
                if self.distincts_per_slot > 0 {
                    self.hashes.resize_with(self.slots.len(), VecDeque::new);
                }
                (self.slots.len() - 1) as u32
            }
        };
        let range = self.accs_of(slot);
        self.accs[range].fill(WindowAcc::default());
        let range = self.extremes_of(slot);
        self.extremes[range].fill(Extreme::default());
        let range = self.distincts_of(slot);
        self.distincts[range].fill(Distinct::default());
        let st = &mut self.slots[slot as usize];
        st.key = key;
        st.ring.clear();
        if st.ring.capacity() > 64 {
            st.ring.shrink_to(16);
        }
        st.base = 0;
        st.newest_s = ts_s;
        st.trimmed_ms = i64::MIN;
        if let Some(h) = self.hashes.get_mut(slot as usize) {
            h.clear();
            if h.capacity() > 64 * self.distincts_per_slot {
                h.shrink_to(16 * self.distincts_per_slot);
            }
        }
        self.index.insert(key, slot);
        slot
    }

    fn remove(&mut self, slot: u32) {
        self.unlink(slot);
        let key = self.slots[slot as usize].key;
        self.index.remove(&key);
        self.free.push(slot);
    }

    /// Whether an event at `ts_s` of an entity the table does not hold could
    /// have an idle-evicted history within its reach (then its features would
    /// miss that history, so it is dropped). Only evictions decide it, not how
    /// far the event is behind the table's newest: a table fed by several
    /// upstream partitions (the terminal topic) sees one entity's stream far
    /// behind another's; and only this key's own eviction, while it is
    /// remembered ([`REMEMBER_EVICTED_S`]), so that one event stamped ahead of
    /// the others, which evicts entities early, never drops new entities.
    fn may_have_been_evicted(&self, key: u64, ts_s: u32) -> bool {
        self.evicted
            .may_reach(key, ts_s, self.horizon_s.max(self.span_s))
    }

    fn evict_idle(&mut self, max: usize) {
        // Forgetting as fast as evicting keeps the remembered keys bounded.
        let keep_s = u64::from(self.retention_s) + u64::from(REMEMBER_EVICTED_S);
        self.evicted.forget(self.clock_s, keep_s, max);
        for _ in 0..max {
            let t = self.tail;
            if t == NIL
                || u64::from(self.slots[t as usize].newest_s) + u64::from(self.retention_s)
                    >= u64::from(self.clock_s)
            {
                return;
            }
            let (key, newest_s) = (self.slots[t as usize].key, self.slots[t as usize].newest_s);
            self.evicted.remember(key, newest_s);
            self.remove(t);
            self.stats.evicted_idle += 1;
        }
    }

    fn touch(&mut self, slot: u32) {
        if self.head == slot {
            return;
        }
        self.unlink(slot);
        let st = &mut self.slots[slot as usize];
        st.prev = NIL;
        st.next = self.head;
        if self.head != NIL {
            self.slots[self.head as usize].prev = slot;
        }
        self.head = slot;
        if self.tail == NIL {
            self.tail = slot;
        }
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let st = &self.slots[slot as usize];
            (st.prev, st.next)
        };
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else if self.head == slot {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else if self.tail == slot {
            self.tail = prev;
        }
        let st = &mut self.slots[slot as usize];
        st.prev = NIL;
        st.next = NIL;
    }
}

/// Where the `n` per-slot items of `slot` sit in a per-slot array.
#[inline]
fn run_of(slot: u32, n: usize) -> Range<usize> {
    slot as usize * n..(slot as usize + 1) * n
}

/// Hints the CPU to load the cache line of `p` (nothing on other targets).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
}

/// Brings min/max deques and distinct tables up to date after an event;
/// `rebuild` after sequence numbers moved (a late insert).
#[allow(clippy::too_many_arguments)]
fn update_trackers(
    st: &EntityState,
    accs: &[WindowAcc],
    extremes: &mut [Extreme],
    distincts: &mut [Distinct],
    windows: &[WindowSpec],
    trackers: &[TrackerSpec],
    distinct: &[u32],
    ts_s: u32,
    rebuild: bool,
) {
    let (mut e, mut d) = (0, 0);
    for t in trackers {
        match *t {
            TrackerSpec::Extreme { window, max } => {
                let acc = &accs[window as usize];
                let ex = &mut extremes[e];
                if rebuild {
                    ex.reset(acc.start);
                }
                ex.update(&st.ring, st.base, acc, &windows[window as usize], max);
                e += 1;
            }
            TrackerSpec::Distinct { .. } => {
                if let Some(&h) = distinct.get(d) {
                    if h != 0 {
                        distincts[d].record(h, ts_s);
                    }
                }
                d += 1;
            }
        }
    }
}

/// Hasher for keys that already are 64-bit hashes.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Stable 64-bit hash of an entity id, seeded by entity kind (FNV-1a then a mixer).
#[inline]
pub fn key_hash(seed: u64, id: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for &b in id {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// A strong 64-bit finaliser (splitmix64).
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
