//! Bounded memory of recent events, so a late label (or a correction of one)
//! can find its event's entities.

use crate::state::KeyHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

/// Most entity kinds that can read labels.
pub const MAX_LABEL_ENTITIES: usize = 5;

/// No label yet, in [`Pending::label`].
const UNLABELLED: u8 = 0;
/// Labelled legit.
const LEGIT: u8 = 1;
/// Labelled fraud.
const FRAUD: u8 = 2;

#[derive(Clone, Copy, Default)]
struct Pending {
    id: u64,
    ts_s: u32,
    keys: [u64; MAX_LABEL_ENTITIES],
    seqs: [u32; MAX_LABEL_ENTITIES],
    /// Its latest label: [`UNLABELLED`], [`LEGIT`] or [`FRAUD`].
    label: u8,
}

/// Where [`LabelJoin::remember`] put an event: a replay that knows which label
/// belongs to which event hands this back instead of the id, skipping the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelTicket {
    pos: u32,
    id: u64,
}

impl LabelTicket {
    /// The event's id hash.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Where a remembered event sits in its entities' state: per label entity kind,
/// the entity key (0 when the event has none) and the entry's sequence number.
pub type LabelTargets = ([u64; MAX_LABEL_ENTITIES], [u32; MAX_LABEL_ENTITIES]);

/// Most labels parked while waiting for their event.
pub const MAX_EARLY_LABELS: usize = 65_536;

/// What [`LabelJoin::relabel`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relabel {
    /// The event is remembered: its time, where it sits, and the label it had
    /// before this one (`None`: none).
    Found(u32, LabelTargets, Option<bool>),
    /// The event was remembered, and forgotten at capacity: a label for it
    /// comes too late.
    Forgotten,
    /// The event is not known (not arrived yet, or forgotten too long ago).
    NotSeen,
}

/// Both sides of the event/label join, bounded: the recent events with their
/// latest label, indexed by event-id hash (the oldest is forgotten beyond a
/// capacity, and its id is kept for as many events again, so that a label for
/// it is known to be too late), and the labels that arrived before their event
/// (oldest dropped beyond a cap). A labelled event stays, so that a later label
/// can correct it. Joins fed only by ticket (replays, one label per event) let
/// labelled events leave from the old end instead, and hold only the events
/// still waiting.
pub struct LabelJoin {
    /// Remembered events, oldest first: position `base + i` is `ring[i]`.
    ring: VecDeque<Pending>,
    base: u32,
    /// Whether events are indexed by id (off for joins fed only by ticket).
    indexed: bool,
    /// Event id -> position; positions before `base` are forgotten events.
    index: HashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
    /// Ids of forgotten events still in `index`, oldest first.
    forgotten: VecDeque<u64>,
    kinds: usize,
    cap: usize,
    early: HashMap<u64, bool, BuildHasherDefault<KeyHasher>>,
    early_order: VecDeque<u64>,
}

impl LabelJoin {
    /// A join remembering at most `capacity` events with `kinds` entity keys each.
    pub fn new(capacity: usize, kinds: usize) -> Self {
        assert!(
            kinds <= MAX_LABEL_ENTITIES,
            "at most {MAX_LABEL_ENTITIES} label entity kinds"
        );
        Self {
            ring: VecDeque::new(),
            base: 0,
            indexed: true,
            index: HashMap::default(),
            forgotten: VecDeque::new(),
            kinds,
            cap: capacity,
            early: HashMap::default(),
            early_order: VecDeque::new(),
        }
    }

    /// Stops indexing events by id: labels then come back only through
    /// [`LabelJoin::take_ticket`] (replays, which hold every event's ticket).
    pub fn ticket_only(&mut self) {
        self.indexed = false;
        self.index = HashMap::default();
    }

    /// Parks a label whose event has not been seen yet (a later one for the
    /// same event replaces it).
    pub fn park(&mut self, id: u64, fraud: bool) {
        if self.cap == 0 {
            return;
        }
        if self.early_order.len() >= MAX_EARLY_LABELS {
            if let Some(old) = self.early_order.pop_front() {
                self.early.remove(&old);
            }
        }
        if self.early.insert(id, fraud).is_none() {
            self.early_order.push_back(id);
        }
    }

    /// Takes the parked label of event `id`, if one arrived before it.
    #[inline]
    pub fn take_early(&mut self, id: u64) -> Option<bool> {
        if self.early.is_empty() {
            return None;
        }
        self.early.remove(&id)
    }

    /// Remembers event `id` at `ts_s` with its entity keys and sequence numbers.
    pub fn remember(
        &mut self,
        id: u64,
        ts_s: u32,
        targets: impl Iterator<Item = (u64, u32)>,
    ) -> Option<LabelTicket> {
        if self.cap == 0 {
            return None;
        }
        let mut p = Pending {
            id,
            ts_s,
            ..Pending::default()
        };
        for (k, (key, seq)) in targets.take(self.kinds).enumerate() {
            p.keys[k] = key;
            p.seqs[k] = seq;
        }
        if self.ring.len() == self.cap {
            self.forget_oldest();
        }
        let pos = self.base.wrapping_add(self.ring.len() as u32);
        self.ring.push_back(p);
        if self.indexed {
            self.index.insert(id, pos);
        }
        Some(LabelTicket { pos, id })
    }

    /// Forgets the oldest event, keeping its id (bounded) to recognise a label
    /// that comes for it later.
    fn forget_oldest(&mut self) {
        let Some(old) = self.ring.pop_front() else {
            return;
        };
        if self.indexed && self.index.get(&old.id) == Some(&self.base) {
            self.forgotten.push_back(old.id);
            if self.forgotten.len() > self.cap {
                let gone = self.forgotten.pop_front().unwrap_or_default();
                // Unless it was remembered again since.
                if self.index.get(&gone).is_some_and(|&pos| !self.holds(pos)) {
                    self.index.remove(&gone);
                }
            }
        }
        self.base = self.base.wrapping_add(1);
    }

    /// Whether position `pos` is in the ring.
    #[inline]
    fn holds(&self, pos: u32) -> bool {
        (pos.wrapping_sub(self.base) as usize) < self.ring.len()
    }

    /// The event remembered at position `pos`, if still held.
    fn at(&mut self, pos: u32) -> Option<&mut Pending> {
        self.ring.get_mut(pos.wrapping_sub(self.base) as usize)
    }

    /// Records `fraud` as the latest label of event `id` (by index).
    pub fn relabel(&mut self, id: u64, fraud: bool) -> Relabel {
        let Some(&pos) = self.index.get(&id) else {
            return Relabel::NotSeen;
        };
        let Some(p) = self.at(pos) else {
            return Relabel::Forgotten;
        };
        let before = match p.label {
            UNLABELLED => None,
            label => Some(label == FRAUD),
        };
        p.label = if fraud { FRAUD } else { LEGIT };
        Relabel::Found(p.ts_s, (p.keys, p.seqs), before)
    }

    /// What [`LabelJoin::take_ticket`] would return for `t`, without taking it.
    pub fn peek_ticket(&self, t: LabelTicket) -> Option<(u32, LabelTargets)> {
        let p = self.ring.get(t.pos.wrapping_sub(self.base) as usize)?;
        (p.id == t.id && p.label == UNLABELLED).then_some((p.ts_s, (p.keys, p.seqs)))
    }

    /// The time and targets of the event `t` was given for, recording its label
    /// `fraud`: `None` once the event was forgotten (its place reused) or
    /// labelled. In a join fed only by ticket, labelled events then leave from
    /// the old end.
    pub fn take_ticket(&mut self, t: LabelTicket, fraud: bool) -> Option<(u32, LabelTargets)> {
        let p = self.at(t.pos)?;
        if p.id != t.id || p.label != UNLABELLED {
            return None;
        }
        p.label = if fraud { FRAUD } else { LEGIT };
        let taken = (p.ts_s, (p.keys, p.seqs));
        while !self.indexed && self.ring.front().is_some_and(|p| p.label != UNLABELLED) {
            self.ring.pop_front();
            self.base = self.base.wrapping_add(1);
        }
        Some(taken)
    }

    /// Events held (labelled ones included).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Approximate bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<Pending>()
            + self.index.capacity() * 13
            + self.forgotten.capacity() * 8
            + self.early.capacity() * 17
            + self.early_order.capacity() * 8
    }
}
