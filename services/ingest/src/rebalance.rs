//! A consumer context that records rebalances for the pipeline loop (no work in the callback).

use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};

/// Counts partition revocations; the loop drops its buffered state when the count moves.
#[derive(Default)]
pub struct RebalanceContext {
    revocations: AtomicU64,
}

impl RebalanceContext {
    /// Revocations seen so far.
    pub fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::SeqCst)
    }
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(
                partitions = tpl.count(),
                "Partitions revoked; open windows are dropped and read again by their next owner."
            );
            let _ = self.revocations.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "Partitions assigned.");
        }
    }
}
