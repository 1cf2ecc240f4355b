//! Waiting until the pipeline has nothing left in flight, instead of sleeping for it: ingest has
//! handed off (and committed) every record produced so far, and the uploader has consumed and
//! committed every handed-off file (written, parked or skipped), measured as the services measure
//! their own lag ([`GroupLagSampler`]: committed offsets against the end, transaction markers
//! probed).

use std::time::{Duration, Instant};

use dwsync_contract::Table;
use dwsync_telemetry::group_lag::{GroupLagSampler, GroupLagSettings};

use super::Stack;

impl Stack {
    /// Waits until ingest's group has no record of `tables` pending, then the uploader's group
    /// no handoff record; panics with the last sample after `timeout`.
    pub async fn wait_drained(&self, tables: &[Table], timeout: Duration) {
        let sources = tables.iter().map(|t| format!("{}{}", self.prefix, t.name())).collect();
        let deadline = Instant::now() + timeout;
        for (group, topics) in [(&self.ingest_group, sources), (&self.uploader_group, vec![self.handoff_topic.clone()])]
        {
            let settings = GroupLagSettings {
                group_id: group.clone(),
                topics,
                interval: Duration::from_millis(250),
                stall_after: Duration::from_secs(3_600),
                timeout: Duration::from_secs(10),
            };
            let kafka = self.kafka.clone();
            let group = group.clone();
            tokio::task::spawn_blocking(move || {
                let mut sampler = GroupLagSampler::new(&kafka, "test-drained", settings).expect("a lag sampler");
                loop {
                    let sample = sampler.sample();
                    if matches!(&sample, Ok(lag) if !lag.partitions.is_empty() && lag.total() == 0) {
                        return;
                    }
                    assert!(Instant::now() < deadline, "group {group} still has records pending: {sample:?}");
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
            .await
            .expect("the sampler's thread");
        }
    }
}
