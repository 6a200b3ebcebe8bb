//! Offset bookkeeping of one topic-partition, shared by the input and the
//! terminal-topic sides of a worker.

/// Offsets of one topic-partition: what was read and what is durably committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffsetTrack {
    /// Next offset to read, once anything was read since assignment.
    pub next: Option<i64>,
    /// Next offset as of the last successful commit (or the first offset read).
    pub committed: Option<i64>,
}

impl OffsetTrack {
    /// Records that `offset` was processed.
    pub fn advance(&mut self, offset: i64) {
        if self.committed.is_none() {
            self.committed = Some(offset);
        }
        self.next = Some(offset + 1);
    }

    /// Whether output for offsets past the last commit is pending.
    pub fn dirty(&self) -> bool {
        self.next.is_some() && self.next != self.committed
    }

    /// Marks what was read before `next` (a [`OffsetTrack::next`] seen earlier)
    /// as committed; `None` (nothing read then) changes nothing.
    pub fn mark_committed(&mut self, next: Option<i64>) {
        if next.is_some() {
            self.committed = next;
        }
    }

    /// Forgets uncommitted progress; returns where reading must resume.
    pub fn rewind(&mut self) -> Option<i64> {
        self.next = self.committed;
        self.committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the mix of reads, commits (started, then finished after
        /// more reads) and aborts, the committed offset only moves to what was
        /// read when its commit started, and a rewind resumes right after the
        /// last commit.
        #[test]
        fn offsets_never_commit_unread_and_rewind_to_last_commit(ops in proptest::collection::vec(0u8..4, 1..100)) {
            let mut t = OffsetTrack::default();
            let mut offset = 100i64;
            let mut committed_model: Option<i64> = None;
            let mut in_flight: Option<Option<i64>> = None;
            for op in ops {
                match op {
                    0 => {
                        if committed_model.is_none() { committed_model = Some(offset); }
                        t.advance(offset);
                        offset += 1;
                    }
                    1 => { in_flight.get_or_insert(t.next); }
                    2 => {
                        if let Some(next) = in_flight.take() {
                            t.mark_committed(next);
                            if next.is_some() { committed_model = next; }
                        }
                    }
                    _ => {
                        in_flight = None;
                        let resume = t.rewind();
                        prop_assert_eq!(resume, committed_model);
                        if let Some(r) = resume { offset = r; }
                        prop_assert!(!t.dirty());
                    }
                }
                prop_assert!(t.committed.unwrap_or(0) <= t.next.unwrap_or(0));
                prop_assert_eq!(t.committed, committed_model);
            }
        }
    }
}
