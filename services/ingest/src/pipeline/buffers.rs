//! The consumer lag: high watermarks sampled off the loop on a client of its own, compared with
//! the loop's positions every [`LAG_EVERY`].

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;

use super::{Kafka, State};
use crate::config::Config;
use crate::metrics;

/// How often the consumer lag is measured.
pub(super) const LAG_EVERY: Duration = Duration::from_secs(15);

/// The assigned partitions (set by the loop) and their high watermarks (set by the sampler).
#[derive(Default)]
pub(super) struct Watermarks {
    partitions: Vec<(String, i32)>,
    watermarks: HashMap<(String, i32), i64>,
}

pub(super) type Highs = Arc<std::sync::Mutex<Watermarks>>;

/// Asks the broker for the assigned partitions' high watermarks every [`LAG_EVERY`] on a
/// client of its own, on a blocking thread, so the loop never waits on it (a watermark request
/// through the consumer can wait behind its long-poll fetch). Stops when the loop is gone.
pub(super) fn sample_highs(cfg: &Config) -> Result<Highs, KafkaError> {
    let client: rdkafka::consumer::BaseConsumer =
        cfg.kafka.client_config("ingest-lag").set("group.id", "dwsync-ingest-lag").create()?;
    let highs: Highs = Arc::default();
    let weak = Arc::downgrade(&highs);
    // A plain thread: it never holds up the runtime's shutdown and ends after the loop is gone.
    let spawned = std::thread::Builder::new().name("ingest-lag".into()).spawn(move || {
        loop {
            std::thread::sleep(LAG_EVERY);
            let Some(highs) = weak.upgrade() else { return };
            let parts = highs.lock().unwrap_or_else(PoisonError::into_inner).partitions.clone();
            let mut fresh = HashMap::new();
            for (topic, partition) in parts {
                if let Ok((_, high)) = client.fetch_watermarks(&topic, partition, Duration::from_secs(5)) {
                    let _ = fresh.insert((topic, partition), high);
                }
            }
            highs.lock().unwrap_or_else(PoisonError::into_inner).watermarks = fresh;
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "Cannot start the lag sampler; dwsync_ingest_consumer_lag stays 0.");
    }
    Ok(highs)
}

impl State<'_> {
    /// Publishes the consumer lag (the sampler's high watermarks less the positions) and the
    /// buffers' size, and tells the sampler which partitions are assigned.
    pub(super) fn measure_lag(&self, consumer: &Kafka) {
        let Ok(assignment) = consumer.assignment() else { return };
        let Ok(position) = consumer.position() else { return };
        let parts: Vec<(String, i32)> =
            assignment.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
        let mut lag = 0;
        {
            let mut highs = self.highs.lock().unwrap_or_else(PoisonError::into_inner);
            for (topic, partition) in &parts {
                let Some(high) = highs.watermarks.get(&(topic.clone(), *partition)) else { continue };
                let at =
                    position.find_partition(topic, *partition).and_then(|p| p.offset().to_raw()).filter(|o| *o >= 0);
                lag += high - at.unwrap_or(0);
            }
            highs.partitions = parts;
        }
        metrics::lag(lag);
        metrics::buffers(self.windows.footprint(), self.windows.len());
    }
}
