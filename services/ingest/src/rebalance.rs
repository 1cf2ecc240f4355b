//! A consumer context that records revoked partitions for the pipeline loop, after waiting for
//! a handoff transaction still committing ([`CommitGate`]). The group uses the
//! cooperative-sticky assignor: a rebalance revokes only the partitions that move, and
//! librdkafka (through rdkafka's default `rebalance`) assigns and unassigns incrementally.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};

use crate::blocking::block_in_place;
use crate::in_flight::CommitGate;

/// Collects revoked partitions until the loop takes them.
pub struct RebalanceContext {
    revoked: Mutex<Vec<(String, i32)>>,
    gate: Arc<CommitGate>,
}

impl RebalanceContext {
    /// A context whose revocations wait at `gate` for the transaction committing.
    pub fn new(gate: Arc<CommitGate>) -> Self {
        Self { revoked: Mutex::default(), gate }
    }

    /// The `(topic, partition)`s revoked since the last call.
    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // The loop reads on while its last transaction commits: its partitions are released
            // only once that is decided, so their next owner starts from the offsets it
            // committed (or, if it aborted, from the ones before).
            match block_in_place(|| self.gate.wait_idle()) {
                Some(waited) if waited >= Duration::from_millis(1) => tracing::info!(
                    waited_ms = waited.as_millis() as u64,
                    "A revocation waited for the handoff transaction to commit."
                ),
                Some(_) => {}
                None => tracing::warn!(
                    "A handoff transaction is still undecided after its timeout; releasing the partitions."
                ),
            }
            tracing::info!(
                partitions = tpl.count(),
                "Partitions revoked; their open windows are dropped and read again by their next owner."
            );
            let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
            revoked.extend(tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "Partitions assigned.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::consumer::Consumer as _;
    use rdkafka::{ClientConfig, TopicPartitionList};

    #[test]
    fn a_revocation_waits_for_the_transaction_committing() {
        let gate = Arc::new(CommitGate::new(Duration::from_secs(10)));
        let consumer: Arc<BaseConsumer<RebalanceContext>> = Arc::new(
            ClientConfig::new()
                .set("group.id", "rebalance-unit-test")
                .create_with_context(RebalanceContext::new(Arc::clone(&gate)))
                .expect("a consumer (no broker needed)"),
        );
        gate.set(true);
        let revoking = {
            let consumer = Arc::clone(&consumer);
            std::thread::spawn(move || {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition("source", 3);
                consumer.context().pre_rebalance(&consumer, &Rebalance::Revoke(&tpl));
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(consumer.context().take_revoked().is_empty(), "revoked while the transaction was committing");
        gate.set(false);
        revoking.join().expect("revoking thread");
        assert_eq!(consumer.context().take_revoked(), vec![("source".to_owned(), 3)]);
    }
}
