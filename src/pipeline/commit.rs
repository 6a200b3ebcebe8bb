//! Committing the batch: its offsets and checkpoints, the end of its commit
//! (the offsets it covered marked committed, or everything since the last
//! commit rewound), and then the inputs parked while it ran ([`super::batch`]).

use super::assignment::PipelineContext;
use super::batch::Finished;
use super::checkpoint::Checkpoint;
use super::parked::Produce;
use super::Pipeline;
use crate::ops::internal_events::{BatchAborted, BatchCommitted};
use crate::sink::SinkError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

impl Pipeline {
    /// Ends the running commit if it finished (waiting up to `wait` for it), or
    /// starts a commit when the open batch is due.
    pub(super) fn maybe_commit(
        &mut self,
        consumer: &BaseConsumer<PipelineContext>,
        wait: Duration,
    ) -> Result<(), SinkError> {
        if self.batch.committing() {
            if let Some(f) = self.batch.finished(wait)? {
                self.finish(consumer, f)?;
            }
        } else if self.batch.due() {
            self.start_commit(consumer)?;
        }
        Ok(())
    }

    /// Commits the open batch and waits until it is durable (after the commit
    /// running, if any): before partitions are revoked, and at shutdown.
    pub(super) fn commit(
        &mut self,
        consumer: &BaseConsumer<PipelineContext>,
    ) -> Result<(), SinkError> {
        if let Some(f) = self.batch.wait()? {
            self.finish(consumer, f)?;
        }
        self.start_commit(consumer)?;
        if let Some(f) = self.batch.wait()? {
            self.finish(consumer, f)?;
        }
        Ok(())
    }

    /// Starts committing the open batch: output and input offsets together.
    fn start_commit(&mut self, consumer: &BaseConsumer<PipelineContext>) -> Result<(), SinkError> {
        self.output.hot.flush();
        if self.batch.events() == 0 {
            return Ok(());
        }
        let offsets = self.offsets_and_checkpoints();
        if let Some(api) = &mut self.api {
            api.commit_started();
        }
        match self.batch.commit(offsets, consumer)? {
            Some(f) => self.finish(consumer, f),
            None => Ok(()),
        }
    }

    /// The offsets to commit (the next to read, per topic-partition read since
    /// the last commit); with checkpoints, also produces each such partition's
    /// checkpoint into the transaction.
    /// The checkpoints are kept in `self.committing`, to mark them committed
    /// when the commit ends (inputs read meanwhile belong to the next batch).
    fn offsets_and_checkpoints(&mut self) -> TopicPartitionList {
        let mut offsets = TopicPartitionList::new();
        self.committing.clear();
        for (p, w) in self.workers.slots.iter().enumerate() {
            let Some(w) = w.as_ref().filter(|w| w.dirty()) else {
                continue;
            };
            let cp = w.checkpoint();
            self.committing.push((p, cp));
            for (topic, next) in self.tracked(&cp) {
                let _ = offsets.add_partition_offset(topic, p as i32, Offset::Offset(next));
            }
            if self.checkpoints {
                let value = serde_json::to_vec(&cp).unwrap_or_default();
                let key = Checkpoint::key(p as i32);
                let topic = &self.output.topics.checkpoint;
                let (mut sink, _) = self.batch.output();
                sink.send_to_partition(topic, p as i32, key.as_bytes(), &value);
            }
        }
        offsets
    }

    /// Ends a commit: marks what it covered committed, then produces the inputs
    /// parked meanwhile into the next transaction; or, if it aborted, rewinds.
    fn finish(
        &mut self,
        consumer: &BaseConsumer<PipelineContext>,
        f: Finished,
    ) -> Result<(), SinkError> {
        match f {
            Finished::Committed(tally) => {
                // What was read while it ran belongs to the next batch.
                for (p, cp) in self.committing.drain(..) {
                    if let Some(w) = self.workers.slots.get_mut(p).and_then(Option::as_mut) {
                        w.mark_committed(&cp);
                    }
                }
                if let Some(api) = &mut self.api {
                    api.committed();
                }
                self.stats.decided += tally.decided;
                self.stats.invalid += tally.invalid;
                self.stats.commits += 1;
                BatchCommitted.emit(&self.metrics);
                self.batch.unpark()
            }
            Finished::Aborted(reason) => {
                // Nothing of the batch (nor of the inputs parked for the next)
                // is visible; it will be decided again.
                self.stats.aborts += 1;
                if let Some(api) = &mut self.api {
                    api.aborted();
                }
                BatchAborted { reason: &reason }.emit(&self.metrics);
                self.rewind(consumer);
                Ok(())
            }
        }
    }

    /// After an abort: resume every partition at its last commit. The state of those
    /// partitions included the aborted events, so it is rebuilt from empty.
    fn rewind(&mut self, consumer: &BaseConsumer<PipelineContext>) {
        let timeout = Duration::from_secs(5);
        for p in 0..self.workers.slots.len() {
            let called = self.api.as_mut().is_some_and(|a| a.take_touched(p as i32));
            let Some(w) = self.workers.slots[p].as_mut() else {
                continue;
            };
            if !w.dirty() && !called {
                continue;
            }
            let until = w.rewind();
            for (topic, offset) in self.tracked(&until) {
                if let Err(e) = consumer.seek(topic, p as i32, Offset::Offset(offset), timeout) {
                    tracing::error!(error = %e, topic = %topic, partition = p, "seek after abort failed");
                }
            }
            // The state included the aborted events: rebuild it up to the last commit.
            if self.fresh_worker(p as i32, Some(until)) {
                self.pause(consumer, p as i32);
            }
        }
    }

    /// The topics and offsets a checkpoint records, for the topics in use.
    fn tracked<'a>(&'a self, cp: &Checkpoint) -> impl Iterator<Item = (&'a str, i64)> {
        [
            (self.output.topics.input.as_str(), cp.input_offset),
            (self.output.topics.labels.as_str(), cp.labels_offset),
            (self.output.topics.terminal.as_str(), cp.terminal_offset),
        ]
        .into_iter()
        .filter_map(|(topic, offset)| Some((topic, offset?)))
        .filter(|(topic, _)| !topic.is_empty())
    }
}
