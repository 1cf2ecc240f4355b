//! A handoff transaction committing on a thread of its own while the loop reads on, and the
//! gate a revocation waits at until it is decided: no partition leaves this instance while a
//! transaction holding its offsets is neither committed nor aborted.
//!
//! One transaction at a time: the loop begins the next one only after the previous one
//! committed ([`CommittingTransaction`] resolved), and restarts from the group's committed offsets if it
//! did not.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dwsync_producer::{Delivery, DeliveryProducer};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;
use tokio::sync::oneshot;

use crate::handoff::Committed;

/// Whether a transaction is committing; a revocation waits here until it is decided.
#[derive(Debug)]
pub struct CommitGate {
    busy: Mutex<bool>,
    idle: Condvar,
    max_wait: Duration,
}

impl CommitGate {
    /// A gate whose waits give up after `max_wait` (the transaction timeout: by then the
    /// broker has aborted the transaction).
    pub fn new(max_wait: Duration) -> Self {
        Self { busy: Mutex::new(false), idle: Condvar::new(), max_wait }
    }

    pub(crate) fn set(&self, busy: bool) {
        *self.busy.lock().unwrap_or_else(PoisonError::into_inner) = busy;
        if !busy {
            self.idle.notify_all();
        }
    }

    /// Blocks until no transaction is committing: how long it waited, or `None` if one still
    /// was after the gate's `max_wait`.
    pub fn wait_idle(&self) -> Option<Duration> {
        let started = Instant::now();
        let busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        let (busy, _) =
            self.idle.wait_timeout_while(busy, self.max_wait, |busy| *busy).unwrap_or_else(PoisonError::into_inner);
        (!*busy).then(|| started.elapsed())
    }
}

/// The consumer group's metadata (member and generation) as it is now. Read just before the
/// offsets are added to a transaction: a rebalance that began after the flush has by then given
/// the group a new generation, and offsets sent with the old one would fail the transaction
/// (`ILLEGAL_GENERATION`), with every open window read again.
pub(crate) type GroupMetadata = Arc<dyn Fn() -> Option<ConsumerGroupMetadata> + Send + Sync>;

/// What a record of a handoff transaction carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrying {
    /// A chunk of a Parquet file.
    FileChunk,
    /// A dead letter.
    DeadLetter,
}

/// Deliveries of a transaction's records, in the order they were sent.
pub(crate) type Deliveries = VecDeque<(Delivery, Carrying)>;

/// Why a transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// It failed and was aborted: nothing of it is visible, and the producer can begin another.
    /// `refused` says what the record carried when the broker refused one.
    #[error("the handoff transaction was aborted: {error}")]
    Aborted {
        /// The failure.
        error: KafkaError,
        /// What the refused record carried, when a delivery failed.
        refused: Option<Carrying>,
    },
    /// It failed and could not be aborted, or its outcome is unknown: the producer is unusable.
    #[error(transparent)]
    Failed(KafkaError),
}

/// What the committing thread needs to finish one transaction.
struct Job {
    deliveries: Deliveries,
    committed: Committed,
    offsets: TopicPartitionList,
    group: GroupMetadata,
    reply: oneshot::Sender<Result<Committed, CommitError>>,
}

/// The thread that commits the handoff producer's transactions, one job at a time.
pub(crate) struct Committer {
    jobs: mpsc::Sender<Job>,
    gate: Arc<CommitGate>,
}

impl Committer {
    /// Starts the thread; it ends when the committer is dropped.
    pub(crate) fn start(
        producer: DeliveryProducer,
        timeout: Duration,
        gate: Arc<CommitGate>,
    ) -> Result<Self, KafkaError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread_gate = Arc::clone(&gate);
        std::thread::Builder::new()
            .name("handoff-commit".into())
            .spawn(move || {
                for Job { deliveries, committed, offsets, group, reply: replier } in queue {
                    let outcome = commit(&producer, timeout, deliveries, committed, &offsets, &*group);
                    // Released before the reply: the loop may drop the consumer right after it.
                    drop(group);
                    let reply =
                        outcome.map_err(|(error, refused)| match producer.producer().abort_transaction(timeout) {
                            Ok(()) => CommitError::Aborted { error, refused },
                            Err(abort) => {
                                tracing::warn!(error = %abort, "Aborting the handoff transaction failed.");
                                CommitError::Failed(error)
                            }
                        });
                    // Idle before the reply: the loop submits its next job only after the reply,
                    // so this never clears the gate of a newer transaction.
                    thread_gate.set(false);
                    // The loop may have stopped waiting: the outcome is then only the gate's.
                    let _ = replier.send(reply);
                }
            })
            .map_err(|e| KafkaError::ClientCreation(format!("starting the handoff commit thread: {e}")))?;
        Ok(Self { jobs, gate })
    }

    /// Hands a sent transaction to the thread: it waits for the `deliveries`, adds `offsets`
    /// for the `group` as it is then and commits (or aborts on any error). The gate is busy
    /// until then.
    pub(crate) fn submit(
        &self,
        deliveries: Deliveries,
        committed: Committed,
        offsets: TopicPartitionList,
        group: GroupMetadata,
    ) -> CommittingTransaction {
        let (reply, done) = oneshot::channel();
        self.gate.set(true);
        if self.jobs.send(Job { deliveries, committed, offsets, group, reply }).is_err() {
            // The thread is gone (only a panic ends it while the committer lives): the dropped
            // reply reads as cancelled, and the loop restarts with a new producer, which aborts
            // the open transaction.
            self.gate.set(false);
        }
        CommittingTransaction { done }
    }
}

/// Waits for every delivery, adds the offsets to the transaction for the group as it is now, and
/// commits it. On failure, what the refused record carried if a delivery failed.
fn commit(
    producer: &DeliveryProducer,
    timeout: Duration,
    deliveries: Deliveries,
    mut committed: Committed,
    offsets: &TopicPartitionList,
    group: &(dyn Fn() -> Option<ConsumerGroupMetadata> + Send + Sync),
) -> Result<Committed, (KafkaError, Option<Carrying>)> {
    let started = Instant::now();
    for (delivery, carrying) in deliveries {
        let _ = delivery.wait().map_err(|e| (e, Some(carrying)))?;
    }
    committed.delivery_wait = started.elapsed();
    // The consumer has left its group (it is closing): the transaction cannot carry the offsets.
    let group = group().ok_or((KafkaError::Canceled, None))?;
    let deadline = started + RETRIABLE_FOR_TIMEOUTS * timeout;
    until_not_retriable(deadline, || producer.producer().send_offsets_to_transaction(offsets, &group, timeout))
        .map_err(|e| (e, None))?;
    committed.offsets_wait = started.elapsed() - committed.delivery_wait;
    until_not_retriable(deadline, || producer.producer().commit_transaction(timeout)).map_err(|e| (e, None))?;
    committed.commit_wait = started.elapsed();
    Ok(committed)
}

/// How many transaction timeouts a retriable failure of a transaction call is retried for.
const RETRIABLE_FOR_TIMEOUTS: u32 = 3;

/// Calls `call` again while it fails with an error librdkafka calls retriable (a broker outage
/// times the call out; the call then resumes where it stood), until `deadline`. Aborting instead
/// would fail too ("a conflicting call is in progress") and cost a restart of the loop.
fn until_not_retriable(deadline: Instant, mut call: impl FnMut() -> Result<(), KafkaError>) -> Result<(), KafkaError> {
    loop {
        match call() {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && Instant::now() < deadline => {
                tracing::warn!(error = %e, "A transaction call timed out; retrying it.");
            }
            outcome => return outcome,
        }
    }
}

/// A transaction being committed; resolves to what it carried once it is committed.
#[derive(Debug)]
pub struct CommittingTransaction {
    done: oneshot::Receiver<Result<Committed, CommitError>>,
}

impl Future for CommittingTransaction {
    type Output = Result<Committed, CommitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A dropped reply means the thread went away: the transaction's fate is unknown, and
        // the loop restarts from the committed offsets.
        Pin::new(&mut self.done)
            .poll(cx)
            .map(|outcome| outcome.unwrap_or(Err(CommitError::Failed(KafkaError::Canceled))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_gate_holds_a_waiter_until_it_is_set_idle() {
        let gate = Arc::new(CommitGate::new(Duration::from_secs(10)));
        gate.set(true);
        let waiter = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || {
                let started = Instant::now();
                (gate.wait_idle(), started.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        gate.set(false);
        let (idle, waited) = waiter.join().expect("waiter thread");
        let idle = idle.expect("idle before the max wait");
        assert!(waited >= Duration::from_millis(150), "returned after {waited:?}, before the gate was idle");
        assert!(idle >= Duration::from_millis(150) && idle <= waited, "reported {idle:?} of {waited:?}");
    }

    #[test]
    fn a_gate_stuck_busy_gives_up_after_its_max_wait() {
        let gate = CommitGate::new(Duration::from_millis(100));
        gate.set(true);
        assert_eq!(gate.wait_idle(), None);
        gate.set(false);
        assert!(gate.wait_idle().is_some_and(|waited| waited < Duration::from_millis(100)));
    }
}
