//! Runs a blocking librdkafka call (transactions, watermarks) without stalling other tasks.

use tokio::runtime::{Handle, RuntimeFlavor};

/// `tokio::task::block_in_place` on a multi-threaded runtime; a plain call elsewhere.
pub(crate) fn block_in_place<R>(f: impl FnOnce() -> R) -> R {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
