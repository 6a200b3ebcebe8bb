//! The ids of the most recent events, to recognise an event delivered twice.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes are already mixed: use them as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The 64-bit id hashes of the last `capacity` events, oldest forgotten first.
/// Memory is allocated once, up front; inserting never allocates.
pub struct RecentIds {
    capacity: usize,
    order: VecDeque<u64>,
    present: HashSet<u64, BuildHasherDefault<Identity>>,
}

impl RecentIds {
    /// Remembers up to `capacity` ids (0 remembers none: nothing is a duplicate).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            order: VecDeque::with_capacity(capacity),
            present: HashSet::with_capacity_and_hasher(capacity, Default::default()),
        }
    }

    /// Records `id`; false if it was already among the remembered ids.
    #[inline]
    pub fn insert(&mut self, id: u64) -> bool {
        if self.capacity == 0 {
            return true;
        }
        if !self.present.insert(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.present.remove(&old);
            }
        }
        self.order.push_back(id);
        true
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_the_horizon_are_caught_and_older_ones_forgotten() {
        let mut r = RecentIds::new(3);
        assert!(r.insert(1) && r.insert(2) && r.insert(3));
        assert!(!r.insert(2), "a repeat inside the horizon");
        assert!(r.insert(4), "pushes 1 out");
        assert!(r.insert(1), "1 was forgotten");
        assert_eq!(r.len(), 3);
        let mut off = RecentIds::new(0);
        assert!(off.insert(7) && off.insert(7));
    }
}
