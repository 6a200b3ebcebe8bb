//! The batch and its transaction: the batch open for input, the one being
//! committed, and the records parked in between.
//!
//! In exactly-once mode a batch's commit runs on the [`Committer`]'s thread,
//! which holds the [`Sink`] until it is done. Meanwhile nothing can be produced:
//! inputs decided meanwhile (Kafka messages and calls) park their records here
//! ([`Parked`], at most `processing.max_batch_events` records),
//! to be produced as soon as the next transaction begins, right after the
//! commit. They belong to that next batch: its events, its tally, its offsets
//! and its fate. When the commit aborts instead, the parked records are dropped
//! with it (their inputs are read again and rewound like the aborted batch's).
//! In at-least-once mode the commit runs in place.

use super::output::Tally;
use super::parked::{Out, Parked};
use crate::sink::{Committer, Sink, SinkError};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, ConsumerGroupMetadata};
use rdkafka::TopicPartitionList;
use std::time::{Duration, Instant};

/// How a batch's commit ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Finished {
    /// Durable, with this tally.
    Committed(Tally),
    /// Nothing of it is visible (nor of the inputs parked meanwhile), for this reason.
    Aborted(String),
}

/// The batch and transaction step.
pub(super) struct Batch {
    /// The producer; `None` while the committer has it.
    sink: Option<Sink>,
    /// Runs transactional commits off this thread (exactly-once mode).
    committer: Option<Committer>,
    max_events: usize,
    interval: Duration,
    /// Inputs of the open batch (Kafka messages and calls, parked ones included;
    /// while a commit runs, all of them are parked).
    events: usize,
    started: Instant,
    /// What the open batch produced (or parked).
    open: Tally,
    /// What the batch being committed produced; `Some` while its commit runs.
    in_flight: Option<Tally>,
    /// Records of inputs decided while a commit runs, for the next transaction.
    parked: Parked,
    /// The consumer group's metadata, kept from one commit to the next (asking
    /// librdkafka for it waits for its main thread); forgotten at a rebalance.
    group: Option<ConsumerGroupMetadata>,
}

impl Batch {
    /// A batch step over `sink` that commits after `max_events` inputs or
    /// `interval`, whichever first; transactions commit on `committer` if given.
    pub fn new(
        sink: Sink,
        committer: Option<Committer>,
        max_events: usize,
        interval: Duration,
    ) -> Self {
        Self {
            sink: Some(sink),
            committer,
            max_events: max_events.max(1),
            interval,
            events: 0,
            started: Instant::now(),
            open: Tally::default(),
            in_flight: None,
            parked: Parked::default(),
            group: None,
        }
    }

    /// Whether a commit is running (nothing can be produced until it finishes).
    pub fn committing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Inputs in the open batch.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Counts one more input read at `at` into the open batch and opens its
    /// transaction if needed; where to produce its records (parked while a
    /// commit runs: callers check [`Batch::can_park`] first).
    pub fn open(&mut self, at: Instant) -> Result<(Out<'_>, &mut Tally), SinkError> {
        self.count(at);
        if let Some(sink) = self.sink.as_mut() {
            sink.begin()?;
        }
        Ok(self.output())
    }

    fn count(&mut self, at: Instant) {
        if self.events == 0 {
            self.started = at;
        }
        self.events += 1;
    }

    /// The open batch's tally.
    pub fn tally(&mut self) -> &mut Tally {
        &mut self.open
    }

    /// Whether one more input can be decided while a commit runs (else it waits:
    /// a call in its queue, a Kafka message in the consumer): fewer than
    /// `max_events` records are parked. Inputs that park nothing (a duplicate, a
    /// call's own event read back) do not count, or reading back the calls of the
    /// last batch would fill it and hold the calls up.
    pub fn can_park(&self) -> bool {
        self.parked.len() < self.max_events
    }

    /// Whether the open batch should commit now: it is full, old enough, or has
    /// a record that could not be queued (it can only abort: do it now).
    pub fn due(&self) -> bool {
        !self.committing()
            && (self.events >= self.max_events
                || self.sink.as_ref().is_some_and(Sink::batch_failed)
                || (self.events > 0 && self.started.elapsed() >= self.interval))
    }

    /// Serves the producer's delivery reports (unless a commit has it).
    pub fn poll(&self) {
        if let Some(sink) = &self.sink {
            sink.poll();
        }
    }

    /// Where the open batch's records go (the Sink, or parked while a commit
    /// runs) and its tally, between [`Batch::open`] and the next commit.
    pub fn output(&mut self) -> (Out<'_>, &mut Tally) {
        let to = match self.sink.as_mut() {
            Some(sink) => Out::Sink(sink),
            None => Out::Parked(&mut self.parked),
        };
        (to, &mut self.open)
    }

    /// The group's generation may have changed (a rebalance): the next commit
    /// asks for the group's metadata again.
    pub fn forget_group(&mut self) {
        self.group = None;
    }

    /// Commits the open batch with `offsets`: hands it to the committer
    /// (`Ok(None)`: see [`Batch::finished`]), or commits it in place.
    pub fn commit<C: ConsumerContext>(
        &mut self,
        offsets: TopicPartitionList,
        consumer: &BaseConsumer<C>,
    ) -> Result<Option<Finished>, SinkError> {
        if self.committing() {
            return Ok(None);
        }
        self.in_flight = Some(std::mem::take(&mut self.open));
        self.events = 0;
        let mut sink = self.sink.take().expect("present while no commit runs");
        match &self.committer {
            // A batch with a record that could not be queued can only abort: in place.
            Some(committer) if sink.transactional() && !sink.batch_failed() => {
                let group = self.group.take().or_else(|| consumer.group_metadata());
                committer.submit(sink, offsets, group)?;
                Ok(None)
            }
            _ => {
                let result = sink.commit(&offsets, consumer);
                self.sink = Some(sink);
                self.end(result).map(Some)
            }
        }
    }

    /// The running commit's end, waiting up to `wait` for it; `None` while it
    /// runs (or if none runs).
    pub fn finished(&mut self, wait: Duration) -> Result<Option<Finished>, SinkError> {
        let Some(committer) = self.committer.as_ref().filter(|_| self.committing()) else {
            return Ok(None);
        };
        let Some(done) = committer.done(wait)? else {
            return Ok(None);
        };
        self.sink = Some(done.sink);
        // After an abort (a fenced generation, say), ask again.
        self.group = done.group.filter(|_| done.result.is_ok());
        self.end(done.result).map(Some)
    }

    /// Waits for the running commit, if any, to end.
    pub fn wait(&mut self) -> Result<Option<Finished>, SinkError> {
        if !self.committing() {
            return Ok(None);
        }
        loop {
            if let Some(f) = self.finished(Duration::from_secs(1))? {
                return Ok(Some(f));
            }
        }
    }

    fn end(&mut self, result: Result<(), SinkError>) -> Result<Finished, SinkError> {
        let tally = self.in_flight.take().unwrap_or_default();
        match result {
            Ok(()) => Ok(Finished::Committed(tally)),
            Err(SinkError::Aborted(reason)) => {
                self.open = Tally::default();
                self.parked.clear();
                self.events = 0;
                Ok(Finished::Aborted(reason))
            }
            Err(e) => Err(e),
        }
    }

    /// After a commit: opens the next transaction for the parked records (the
    /// committer begun it already, unless that failed) and produces them, in
    /// the order they were parked.
    pub fn unpark(&mut self) -> Result<(), SinkError> {
        if self.parked.is_empty() {
            return Ok(());
        }
        let sink = self.sink.as_mut().expect("present after a commit ended");
        sink.begin()?;
        self.parked.drain_into(&mut Out::Sink(sink));
        Ok(())
    }
}
