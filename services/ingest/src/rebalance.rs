//! A consumer context that records revoked partitions for the pipeline loop (no work in the
//! callback). The group uses the cooperative-sticky assignor: a rebalance revokes only the
//! partitions that move, and librdkafka (through rdkafka's default `rebalance`) assigns and
//! unassigns incrementally.

use std::sync::{Mutex, PoisonError};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};

/// Collects revoked partitions until the loop takes them.
#[derive(Default)]
pub struct RebalanceContext {
    revoked: Mutex<Vec<(String, i32)>>,
}

impl RebalanceContext {
    /// The `(topic, partition)`s revoked since the last call.
    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
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
