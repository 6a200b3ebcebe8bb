//! Bounded memory of recent events, so a late label can find its event's entities.

use crate::state::KeyHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

/// Most entity kinds that can read labels.
pub const MAX_LABEL_ENTITIES: usize = 4;

#[derive(Clone, Copy, Default)]
struct Pending {
    id: u64,
    ts_s: u32,
    keys: [u64; MAX_LABEL_ENTITIES],
    seqs: [u32; MAX_LABEL_ENTITIES],
    /// Its label was applied (by id or by ticket).
    taken: bool,
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

/// Both sides of the event/label join, bounded: the recent events, indexed by
/// event-id hash (the oldest is forgotten beyond a capacity), and the labels
/// that arrived before their event (oldest dropped beyond a cap). Events whose
/// labels were taken leave from the old end, so when labels come back roughly
/// in order (as in a replay) the join holds only the events still waiting.
pub struct LabelJoin {
    /// Remembered events, oldest first: position `base + i` is `ring[i]`.
    ring: VecDeque<Pending>,
    base: u32,
    /// Whether events are indexed by id (off for joins fed only by ticket).
    indexed: bool,
    index: HashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
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

    /// Parks a label whose event has not been seen yet.
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
            // Full: forget the oldest.
            if let Some(old) = self.ring.pop_front() {
                if self.indexed && self.index.get(&old.id) == Some(&self.base) {
                    self.index.remove(&old.id);
                }
                self.base = self.base.wrapping_add(1);
            }
        }
        let pos = self.base.wrapping_add(self.ring.len() as u32);
        self.ring.push_back(p);
        if self.indexed {
            self.index.insert(id, pos);
        }
        Some(LabelTicket { pos, id })
    }

    /// The event remembered at position `pos`, if still held.
    fn at(&mut self, pos: u32) -> Option<&mut Pending> {
        self.ring.get_mut(pos.wrapping_sub(self.base) as usize)
    }

    /// Marks the event at `pos` taken and returns its time and targets; then
    /// lets taken events leave from the old end.
    fn take_at(&mut self, pos: u32) -> Option<(u32, LabelTargets)> {
        let p = self.at(pos)?;
        p.taken = true;
        let taken = (p.ts_s, (p.keys, p.seqs));
        while self.ring.front().is_some_and(|p| p.taken) {
            self.ring.pop_front();
            self.base = self.base.wrapping_add(1);
        }
        Some(taken)
    }

    /// Forgets and returns the time and targets of event `id`, if remembered.
    pub fn take(&mut self, id: u64) -> Option<(u32, LabelTargets)> {
        let pos = self.index.remove(&id)?;
        self.take_at(pos)
    }

    /// What [`LabelJoin::take_ticket`] would return for `t`, without taking it.
    pub fn peek_ticket(&self, t: LabelTicket) -> Option<(u32, LabelTargets)> {
        let p = self.ring.get(t.pos.wrapping_sub(self.base) as usize)?;
        (p.id == t.id && !p.taken).then_some((p.ts_s, (p.keys, p.seqs)))
    }

    /// [`LabelJoin::take`] by ticket: `None` once the event was forgotten (its
    /// place reused) or its label already taken.
    pub fn take_ticket(&mut self, t: LabelTicket) -> Option<(u32, LabelTargets)> {
        let p = self.at(t.pos)?;
        if p.id != t.id || p.taken {
            return None;
        }
        if self.indexed && self.index.get(&t.id) == Some(&t.pos) {
            self.index.remove(&t.id);
        }
        self.take_at(t.pos)
    }

    /// Events held (taken ones included until they leave from the old end).
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
            + self.early.capacity() * 17
            + self.early_order.capacity() * 8
    }
}
