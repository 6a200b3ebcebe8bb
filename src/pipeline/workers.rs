//! This instance's partition workers, and the restores that rebuild their state
//! while their partitions are paused.

use super::assignment::PipelineContext;
use super::checkpoint::Checkpoint;
use super::partition::PartitionWorker;
use super::restore::Restore;
use super::Pipeline;
use crate::features::{EngineLimits, FeatureSet};
use crate::ops::internal_events::{KafkaErrorEvent, StateRestored};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;

/// This instance's partition workers, by partition number.
pub(super) struct Workers {
    pub slots: Vec<Option<PartitionWorker>>,
    pub set: Arc<FeatureSet>,
    pub limits: EngineLimits,
    pub dedup_window: usize,
    /// Partitions of the terminal topic, when terminal features are repartitioned.
    pub terminal_partitions: Option<i32>,
}

impl Workers {
    /// No workers yet; each new one gets `set`, `limits` and a duplicate check
    /// over its last `dedup_window` event ids.
    pub(super) fn new(set: Arc<FeatureSet>, limits: EngineLimits, dedup_window: usize) -> Self {
        Self {
            slots: Vec::new(),
            set,
            limits,
            dedup_window,
            terminal_partitions: None,
        }
    }

    fn new_worker(&self) -> PartitionWorker {
        PartitionWorker::new(
            self.set.clone(),
            self.limits,
            self.dedup_window,
            self.terminal_partitions,
        )
    }

    fn slot(&mut self, partition: i32) -> &mut Option<PartitionWorker> {
        let i = partition.max(0) as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        &mut self.slots[i]
    }

    /// The worker of `partition`, created if missing (a message can only come from
    /// an assigned partition, but be safe if not).
    pub(super) fn get(&mut self, partition: i32) -> &mut PartitionWorker {
        if self.slot(partition).is_none() {
            let w = self.new_worker();
            return self.slot(partition).insert(w);
        }
        self.slot(partition).as_mut().expect("just checked")
    }

    /// A worker with empty state at `partition`, replacing any.
    pub(super) fn fresh(&mut self, partition: i32) -> &mut PartitionWorker {
        let w = self.new_worker();
        self.slot(partition).insert(w)
    }

    pub(super) fn remove(&mut self, partition: i32) {
        if let Some(w) = self.slots.get_mut(partition.max(0) as usize) {
            *w = None;
        }
    }

    /// The worker of `partition`, if assigned.
    pub(super) fn get_mut(&mut self, partition: i32) -> Option<&mut PartitionWorker> {
        self.slots.get_mut(partition.max(0) as usize)?.as_mut()
    }

    pub(super) fn assigned(&self) -> usize {
        self.iter().count()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &PartitionWorker> {
        self.slots.iter().flatten()
    }
}

impl Pipeline {
    /// Puts a worker with empty state at `partition` (replacing any) and, when
    /// `restore_to` is given, starts its offsets there and queues the rebuild of
    /// its state from the input up to there; returns whether it queued one (the partition must then stay paused until
    /// [`Pipeline::restore_step`] finishes it).
    pub(super) fn fresh_worker(&mut self, partition: i32, restore_to: Option<Checkpoint>) -> bool {
        let worker = self.workers.fresh(partition);
        if let Some(cp) = &restore_to {
            worker.resume_at(cp);
        }
        self.restoring.retain(|r| r.partition() != partition);
        let api = self.api.is_some();
        let mut until = match restore_to.filter(|_| self.restore_state) {
            Some(until) => until,
            None if api && self.restore_state => Checkpoint::default(),
            None => return false,
        };
        if api {
            // Calls' records are re-read before calls are taken, checkpoint or not.
            until.input_offset.get_or_insert(0);
        }
        let restore = Restore::new(&self.config, partition, &until);
        self.restoring.push(if api {
            restore.with_api_tail()
        } else {
            restore
        });
        true
    }

    /// Drops `partition`'s worker and any restore of it (revoked).
    pub(super) fn remove_worker(&mut self, partition: i32) {
        self.workers.remove(partition);
        self.restoring.retain(|r| r.partition() != partition);
    }

    /// The topic-partitions that belong to input partition `partition`: its input,
    /// labels and terminal partitions, for those topics in use.
    fn partition_set(&self, partition: i32) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        let terminal = self
            .workers
            .terminal_partitions
            .map(|_| &self.output.topics.terminal);
        for topic in [
            Some(&self.output.topics.input),
            Some(&self.output.topics.labels),
            terminal,
        ]
        .into_iter()
        .flatten()
        .filter(|t| !t.is_empty())
        {
            tpl.add_partition(topic, partition);
        }
        tpl
    }

    /// Pauses `partition`'s topic-partitions while its state is rebuilt.
    pub(super) fn pause(&self, consumer: &BaseConsumer<PipelineContext>, partition: i32) {
        if let Err(e) = consumer.pause(&self.partition_set(partition)) {
            tracing::error!(partition, error = %e, "cannot pause a restoring partition");
        }
    }

    /// A message of a partition still restoring must wait, and so must any
    /// message while a commit runs with no room left to park: rewinds it to that
    /// message (it is read again later). Paused partitions deliver nothing, and
    /// the poll loop does not poll while nothing can park, so this only catches
    /// a message fetched before the pause.
    pub(super) fn held_back(
        &self,
        consumer: &BaseConsumer<PipelineContext>,
        msg: &BorrowedMessage<'_>,
    ) -> bool {
        let p = msg.partition();
        let full = self.batch.committing() && !self.batch.can_park();
        if !full && !self.restoring.iter().any(|r| r.partition() == p) {
            return false;
        }
        let at = Offset::Offset(msg.offset());
        if let Err(e) = consumer.seek(msg.topic(), p, at, Duration::ZERO) {
            tracing::error!(partition = p, error = %e, "cannot hold back a message of a restoring partition");
        }
        true
    }

    /// Advances the oldest restore for a slice of time (the poll loop calls it
    /// between polls); a finished or failed one resumes its partition.
    pub(super) fn restore_step(&mut self, consumer: &BaseConsumer<PipelineContext>) {
        let Some(r) = self.restoring.first_mut() else {
            return;
        };
        let partition = r.partition();
        let Some(worker) = self.workers.get_mut(partition) else {
            self.restoring.remove(0);
            return;
        };
        let slice = Duration::from_millis(100);
        match r.step(&self.config, worker, &self.limits, slice) {
            Ok(false) => return,
            Ok(true) => {
                let r = &r.done;
                StateRestored {
                    partition,
                    events: r.events,
                    labels: r.labels,
                    routed: r.routed,
                    seconds: r.seconds,
                }
                .emit(&self.metrics);
            }
            Err(e) => KafkaErrorEvent::Restore {
                partition,
                error: &e,
            }
            .emit(&self.metrics),
        }
        self.restoring.remove(0);
        if let Err(e) = consumer.resume(&self.partition_set(partition)) {
            tracing::error!(partition, error = %e, "cannot resume a restored partition");
        }
    }
}
