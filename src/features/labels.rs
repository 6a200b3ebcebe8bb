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

/// Where a remembered event sits in its entities' state: per label entity kind,
/// the entity key (0 when the event has none) and the entry's sequence number.
pub type LabelTargets = ([u64; MAX_LABEL_ENTITIES], [u32; MAX_LABEL_ENTITIES]);

/// Most labels parked while waiting for their event.
pub const MAX_EARLY_LABELS: usize = 65_536;

/// Both sides of the event/label join, bounded: a fixed-capacity ring of recent
/// events indexed by event-id hash (the oldest is forgotten when full), and the
/// labels that arrived before their event (oldest dropped beyond a cap).
pub struct LabelJoin {
    ring: Vec<Pending>,
    next: usize,
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
            ring: Vec::new(),
            next: 0,
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
        let pos = if self.ring.len() < self.cap {
            self.ring.push(p);
            self.ring.len() - 1
        } else {
            let pos = self.next;
            let old = self.ring[pos];
            if self.indexed && self.index.get(&old.id) == Some(&(pos as u32)) {
                self.index.remove(&old.id);
            }
            self.ring[pos] = p;
            self.next = (pos + 1) % self.cap;
            pos
        };
        if self.indexed {
            self.index.insert(id, pos as u32);
        }
        Some(LabelTicket {
            pos: pos as u32,
            id,
        })
    }

    /// Forgets and returns the time and targets of event `id`, if remembered.
    pub fn take(&mut self, id: u64) -> Option<(u32, LabelTargets)> {
        let i = self.index.remove(&id)? as usize;
        let p = &mut self.ring[i];
        p.taken = true;
        Some((p.ts_s, (p.keys, p.seqs)))
    }

    /// What [`LabelJoin::take_ticket`] would return for `t`, without taking it.
    pub fn peek_ticket(&self, t: LabelTicket) -> Option<(u32, LabelTargets)> {
        let p = self.ring.get(t.pos as usize)?;
        (p.id == t.id && !p.taken).then_some((p.ts_s, (p.keys, p.seqs)))
    }

    /// [`LabelJoin::take`] by ticket: `None` once the event was forgotten (its
    /// place reused) or its label already taken.
    pub fn take_ticket(&mut self, t: LabelTicket) -> Option<(u32, LabelTargets)> {
        let p = self.ring.get_mut(t.pos as usize)?;
        if p.id != t.id || p.taken {
            return None;
        }
        p.taken = true;
        if self.indexed && self.index.get(&t.id) == Some(&t.pos) {
            self.index.remove(&t.id);
        }
        Some((p.ts_s, (p.keys, p.seqs)))
    }

    /// Approximate bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<Pending>()
            + self.index.capacity() * 13
            + self.early.capacity() * 17
            + self.early_order.capacity() * 8
    }
}
