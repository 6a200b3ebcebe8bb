//! Bounded memory of recent events, so a late label can find its event's entities.

use crate::state::KeyHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Most entity kinds that can read labels.
pub const MAX_LABEL_ENTITIES: usize = 4;

#[derive(Clone, Copy, Default)]
struct Pending {
    id: u64,
    ts_s: u32,
    keys: [u64; MAX_LABEL_ENTITIES],
}

/// A fixed-capacity ring of recent events indexed by event-id hash; the oldest
/// is forgotten when full, so memory is bounded by the capacity.
pub struct LabelJoin {
    ring: Vec<Pending>,
    next: usize,
    index: HashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
    kinds: usize,
    cap: usize,
}

impl LabelJoin {
    /// A join remembering at most `capacity` events with `kinds` entity keys each.
    pub fn new(capacity: usize, kinds: usize) -> Self {
        assert!(kinds <= MAX_LABEL_ENTITIES, "at most {MAX_LABEL_ENTITIES} label entity kinds");
        Self {
            ring: Vec::new(),
            next: 0,
            index: HashMap::default(),
            kinds,
            cap: capacity,
        }
    }

    /// Remembers event `id` at `ts_s` with its entity keys.
    pub fn remember(&mut self, id: u64, ts_s: u32, keys: impl Iterator<Item = u64>) {
        if self.cap == 0 {
            return;
        }
        let mut p = Pending { id, ts_s, keys: [0; MAX_LABEL_ENTITIES] };
        for (slot, k) in p.keys.iter_mut().zip(keys).take(self.kinds) {
            *slot = k;
        }
        if self.ring.len() < self.cap {
            self.ring.push(p);
            self.index.insert(id, (self.ring.len() - 1) as u32);
        } else {
            let old = self.ring[self.next];
            if self.index.get(&old.id) == Some(&(self.next as u32)) {
                self.index.remove(&old.id);
            }
            self.ring[self.next] = p;
            self.index.insert(id, self.next as u32);
            self.next = (self.next + 1) % self.cap;
        }
    }

    /// Forgets and returns the time and keys of event `id`, if remembered.
    pub fn take(&mut self, id: u64) -> Option<(u32, [u64; MAX_LABEL_ENTITIES])> {
        let i = self.index.remove(&id)? as usize;
        let p = self.ring[i];
        Some((p.ts_s, p.keys))
    }

    /// Approximate bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<Pending>() + self.index.capacity() * 13
    }
}
