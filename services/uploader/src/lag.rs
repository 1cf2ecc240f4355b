//! The consumer lag sampler: every few seconds, for each assigned handoff partition, the high
//! watermark minus the consumer's position, into the `dwsync_uploader_consumer_lag` gauge.

use std::collections::BTreeMap;
use std::sync::{PoisonError, Weak};
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

use crate::metrics::Lags;
use crate::rebalance::HandoffContext;

/// The handoff consumer, as the consumer loop owns it.
pub type HandoffConsumer = StreamConsumer<HandoffContext>;

/// Longest wait for one partition's watermarks.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(5);

/// Lag per assigned partition with a known position: high watermark minus position, at least 0.
pub fn sample(consumer: &HandoffConsumer, topic: &str) -> BTreeMap<i32, i64> {
    let positions = match consumer.position() {
        Ok(positions) => positions,
        Err(error) => {
            tracing::debug!(%error, "Cannot read the consumer's positions.");
            return BTreeMap::new();
        }
    };
    let mut lags = BTreeMap::new();
    for element in positions.elements_for_topic(topic) {
        let Offset::Offset(position) = element.offset() else { continue };
        match consumer.fetch_watermarks(topic, element.partition(), WATERMARK_TIMEOUT) {
            Ok((_, high)) => {
                lags.insert(element.partition(), (high - position).max(0));
            }
            Err(error) => tracing::debug!(%error, partition = element.partition(), "Cannot fetch watermarks."),
        }
    }
    lags
}

/// Samples every `interval` into `lags` until `shutdown` or until the consumer is gone, then
/// empties `lags` so the gauge stops reporting.
pub async fn run(
    consumer: Weak<HandoffConsumer>,
    topic: String,
    interval: Duration,
    lags: Lags,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
        let (weak, topic) = (consumer.clone(), topic.clone());
        // Watermarks are a blocking request; the strong reference is dropped on that thread too,
        // where closing the consumer (if this was the last one) may block.
        let sampled = tokio::task::spawn_blocking(move || weak.upgrade().map(|c| sample(&c, &topic))).await;
        match sampled {
            Ok(Some(sampled)) => *lags.lock().unwrap_or_else(PoisonError::into_inner) = sampled,
            Ok(None) => break,
            Err(error) => tracing::warn!(%error, "The lag sampler's task failed."),
        }
    }
    lags.lock().unwrap_or_else(PoisonError::into_inner).clear();
    Ok(())
}
