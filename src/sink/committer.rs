//! Transactions committed off the polling thread.
//!
//! A commit waits for the brokers: every record of the transaction delivered,
//! the offsets added, the transaction ended; several round trips, tens of
//! milliseconds on a loaded machine. The [`Committer`] runs it on a thread of
//! its own: the polling thread hands over the [`Sink`] with the batch's offsets
//! and later takes it back with the result. While the Sink is away the polling
//! thread cannot produce (it does not hold it); it keeps deciding the decision
//! API's calls and parks their records for the next transaction.
//!
//! The committer also begins the next transaction, and the consumer group's
//! metadata travels back with the Sink to be used again: both are requests
//! to librdkafka's main thread that wait for its answer, which on a busy
//! machine can take milliseconds, and the polling thread has calls to answer.

use super::{Sink, SinkError};
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::TopicPartitionList;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

/// One commit to run: the Sink whose transaction it is, and what it commits.
struct Job {
    sink: Sink,
    offsets: TopicPartitionList,
    group: Option<ConsumerGroupMetadata>,
}

/// A finished commit: the Sink back, and how the commit ended
/// ([`Sink::commit_transaction`]'s result).
pub struct Committed {
    /// The Sink, with the next transaction begun after a commit (none open
    /// after an abort or if beginning failed: [`Sink::begin`] tells why).
    pub sink: Sink,
    /// The group metadata the commit was given, for the next one (the group's
    /// generation is unchanged until the next rebalance).
    pub group: Option<ConsumerGroupMetadata>,
    /// `Err(Aborted)`: nothing of the transaction is visible.
    pub result: Result<(), SinkError>,
}

/// A thread that commits one transaction at a time ([`Sink::commit_transaction`]).
pub struct Committer {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Committed>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the commit thread.
    pub fn start() -> Result<Self, SinkError> {
        let (jobs, todo) = mpsc::sync_channel::<Job>(1);
        let (finished, done) = mpsc::sync_channel(1);
        #[cfg(test)]
        let gate = faults::take();
        let thread = std::thread::Builder::new()
            .name("fraudstream-commit".into())
            .spawn(move || {
                for mut job in todo {
                    #[cfg(test)]
                    faults::held(&gate);
                    let result = job
                        .sink
                        .commit_transaction(&job.offsets, job.group.as_ref());
                    if result.is_ok() {
                        // An error here recurs when the polling thread begins.
                        let _ = job.sink.begin();
                    }
                    let (sink, group) = (job.sink, job.group);
                    if finished
                        .send(Committed {
                            sink,
                            group,
                            result,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            })
            .map_err(|e| SinkError::Committer(e.to_string()))?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Hands `sink` over to commit its transaction with `offsets` (the next offset
    /// to read per partition) of consumer group `group`; [`Committer::done`]
    /// gives it back. One commit at a time.
    pub fn submit(
        &self,
        sink: Sink,
        offsets: TopicPartitionList,
        group: Option<ConsumerGroupMetadata>,
    ) -> Result<(), SinkError> {
        let job = Job {
            sink,
            offsets,
            group,
        };
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| SinkError::Committer("it takes no more commits".into()))
    }

    /// The submitted commit once it finished, waiting up to `wait` for it;
    /// `Ok(None)` while it runs.
    pub fn done(&self, wait: Duration) -> Result<Option<Committed>, SinkError> {
        let gone = || SinkError::Committer("it stopped during a commit".into());
        if wait.is_zero() {
            match self.done.try_recv() {
                Ok(c) => Ok(Some(c)),
                Err(TryRecvError::Empty) => Ok(None),
                Err(TryRecvError::Disconnected) => Err(gone()),
            }
        } else {
            match self.done.recv_timeout(wait) {
                Ok(c) => Ok(Some(c)),
                Err(RecvTimeoutError::Timeout) => Ok(None),
                Err(RecvTimeoutError::Disconnected) => Err(gone()),
            }
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // A commit still running finishes (its result goes unread); then the thread ends.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Test-only hook: the commits of a pipeline started on this thread wait for a release.
#[cfg(test)]
pub(crate) mod faults {
    use super::*;
    use std::cell::RefCell;
    use std::sync::mpsc::Sender;

    /// Lets a held commit go ahead.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Release;

    type Gate = (Sender<()>, Receiver<Release>);

    thread_local! {
        static GATE: RefCell<Option<Gate>> = const { RefCell::new(None) };
    }

    /// Holds every commit of the next [`Committer`] started on this thread: each
    /// says so on `started`, then waits for `release`; once `release`'s sender is
    /// dropped, commits go through.
    pub(crate) fn hold_commits(started: Sender<()>, release: Receiver<Release>) {
        GATE.with(|g| *g.borrow_mut() = Some((started, release)));
    }

    pub(super) fn take() -> Option<Gate> {
        GATE.with(|g| g.borrow_mut().take())
    }

    /// Waits at the gate, if any, until released (or the release is dropped).
    pub(super) fn held(gate: &Option<Gate>) {
        if let Some((started, release)) = gate {
            let _ = started.send(());
            let _ = release.recv();
        }
    }
}
