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

    /// Marks everything read as committed.
    pub fn mark_committed(&mut self) {
        self.committed = self.next;
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
        /// Whatever the mix of reads, commits and aborts, the committed offset only
        /// moves forward, and a rewind resumes right after the last commit.
        #[test]
        fn offsets_never_commit_unread_and_rewind_to_last_commit(ops in proptest::collection::vec(0u8..3, 1..100)) {
            let mut t = OffsetTrack::default();
            let mut offset = 100i64;
            let mut committed_model: Option<i64> = None;
            for op in ops {
                match op {
                    0 => {
                        if committed_model.is_none() { committed_model = Some(offset); }
                        t.advance(offset);
                        offset += 1;
                    }
                    1 => { t.mark_committed(); if t.next.is_some() { committed_model = t.next; } }
                    _ => {
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
