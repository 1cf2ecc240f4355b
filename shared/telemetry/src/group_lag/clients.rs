//! The sampler's two Kafka clients: the group's committed offsets and the watermarks, and the
//! `read_committed` probe of partitions that may end in transaction markers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dwsync_config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::tracker::{Offsets, Probed};
use super::{GroupLagError, TopicPartition};
use crate::kafka::ProbeContext;

/// Its clients log like the reachability probe's: librdkafka at debug level, a failed sample
/// reported once by the sampler.
pub(super) type Client = BaseConsumer<ProbeContext>;

/// The two clients: one reads the group's committed offsets and the watermarks, the other
/// probes partitions `read_committed`.
pub(super) struct Clients {
    group: Client,
    probe: Client,
}

impl Clients {
    /// Empties the group client's queue of events nobody waits for.
    pub(super) fn drain_events(&self) {
        drain(&self.group);
    }

    pub(super) fn new(kafka: &KafkaConfig, name: &str, group_id: &str) -> Result<Self, GroupLagError> {
        // The group's id, to read its committed offsets; it never subscribes, so it never joins,
        // and it commits nothing. Watermarks as a read_uncommitted reader sees them.
        let group = kafka
            .client_config(name)
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_uncommitted")
            .create_with_context(ProbeContext::default())
            .map_err(GroupLagError::Client)?;
        // Reads assigned partitions, a little at a time. librdkafka assigns only with a group
        // id; this one never joins (no subscription) and commits nothing.
        let probe = kafka
            .client_config(&format!("{name}-probe"))
            .set("group.id", format!("{group_id}.lag-probe"))
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .set("fetch.message.max.bytes", "1024")
            .set("fetch.max.bytes", "1048576")
            .set("queued.min.messages", "1")
            .set("queued.max.messages.kbytes", "1024")
            .create_with_context(ProbeContext::default())
            .map_err(GroupLagError::Client)?;
        Ok(Self { group, probe })
    }

    /// The topics' partitions with the group's committed offsets and their watermarks.
    pub(super) fn offsets(
        &self,
        topics: &[String],
        timeout: Duration,
    ) -> Result<BTreeMap<TopicPartition, Offsets>, GroupLagError> {
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            let metadata = self
                .group
                .fetch_metadata(Some(topic), timeout)
                .map_err(|error| GroupLagError::Metadata { topic: topic.clone(), error })?;
            for t in metadata.topics() {
                if let Some(error) = t.error() {
                    tracing::debug!(topic = t.name(), ?error, "Topic not measured (it may not exist yet).");
                    continue;
                }
                for p in t.partitions() {
                    tpl.add_partition(t.name(), p.id());
                }
            }
        }
        if tpl.count() == 0 {
            return Ok(BTreeMap::new());
        }
        let committed = self
            .group
            .committed_offsets(tpl.clone(), timeout)
            .map_err(|error| GroupLagError::Request { what: "fetching the group's committed offsets", error })?;
        let low = self.list_offsets(&tpl, Offset::Beginning, timeout)?;
        let high = self.list_offsets(&tpl, Offset::End, timeout)?;
        let mut offsets = BTreeMap::new();
        for e in committed.elements() {
            let committed = match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            };
            let key = (e.topic().to_owned(), e.partition());
            let (Some(&low), Some(&high)) = (low.get(&key), high.get(&key)) else {
                tracing::debug!(topic = e.topic(), partition = e.partition(), "No watermarks for the partition.");
                continue;
            };
            let _ = offsets.insert(key, Offsets { committed, low, high });
        }
        Ok(offsets)
    }

    /// Every partition of `tpl`'s low (`Offset::Beginning`) or high (`Offset::End`) watermark,
    /// in one ListOffsets request per broker: librdkafka's watermark query asks two requests
    /// per partition (96 every sample for a 48-partition handoff topic, the broker's most
    /// frequent request while the uploader ran; docs/PERFORMANCE.md).
    fn list_offsets(
        &self,
        tpl: &TopicPartitionList,
        which: Offset,
        timeout: Duration,
    ) -> Result<BTreeMap<TopicPartition, i64>, GroupLagError> {
        let mut wanted = TopicPartitionList::new();
        for e in tpl.elements() {
            wanted
                .add_partition_offset(e.topic(), e.partition(), which)
                .map_err(|error| GroupLagError::Request { what: "listing partitions for their watermarks", error })?;
        }
        // A timestamp of -1 (`Offset::End`) asks the broker for the high watermark, -2
        // (`Offset::Beginning`) for the low one (ListOffsets' LATEST and EARLIEST).
        let listed = self
            .group
            .offsets_for_times(wanted, timeout)
            .map_err(|error| GroupLagError::Request { what: "fetching watermarks", error })?;
        let mut found = BTreeMap::new();
        for e in listed.elements() {
            e.error().map_err(|error| GroupLagError::Request { what: "fetching watermarks", error })?;
            if let Offset::Offset(o) = e.offset() {
                let _ = found.insert((e.topic().to_owned(), e.partition()), o);
            }
        }
        Ok(found)
    }

    /// Reads each partition `read_committed` from its offset until a record or its end comes
    /// first; partitions with neither within `timeout` are left out.
    pub(super) fn probe(
        &self,
        targets: &BTreeMap<TopicPartition, i64>,
        timeout: Duration,
    ) -> Result<BTreeMap<TopicPartition, Probed>, GroupLagError> {
        let mut found = BTreeMap::new();
        // An end of partition names the partition only, not its topic: one topic at a time.
        let topics: BTreeSet<&str> = targets.keys().map(|(t, _)| t.as_str()).collect();
        for topic in topics {
            let mut tpl = TopicPartitionList::new();
            let mut waiting = BTreeMap::new();
            for ((t, p), at) in targets.range((topic.to_owned(), i32::MIN)..=(topic.to_owned(), i32::MAX)) {
                if tpl.add_partition_offset(t, *p, Offset::Offset(*at)).is_ok() {
                    let _ = waiting.insert(*p, *at);
                }
            }
            self.probe
                .assign(&tpl)
                .map_err(|error| GroupLagError::Request { what: "assigning partitions to probe", error })?;
            let deadline = Instant::now() + timeout;
            while !waiting.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    tracing::debug!(topic, partitions = ?waiting.keys().collect::<Vec<_>>(), "Probe timed out.");
                    break;
                }
                match self.probe.poll(left.min(Duration::from_millis(100))) {
                    Some(Ok(m)) if m.topic() == topic => {
                        if waiting.get(&m.partition()).is_some_and(|at| m.offset() >= *at) {
                            let _ = waiting.remove(&m.partition());
                            let _ = found.insert((topic.to_owned(), m.partition()), Probed::Record);
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(p))) => {
                        if waiting.remove(&p).is_some() {
                            let _ = found.insert((topic.to_owned(), p), Probed::End);
                        }
                    }
                    Some(Err(error)) => tracing::debug!(topic, %error, "Probe read failed."),
                    Some(Ok(_)) | None => {}
                }
            }
            self.probe
                .unassign()
                .map_err(|error| GroupLagError::Request { what: "unassigning probed partitions", error })?;
            // An end of partition left in the queue must not be taken for the next topic's.
            drain(&self.probe);
        }
        Ok(found)
    }
}

/// Empties a client's queue of events nobody waits for (errors while the broker is away), so it
/// never grows.
fn drain(client: &Client) {
    for _ in 0..10_000 {
        match client.poll(Duration::ZERO) {
            Some(Err(error)) => tracing::trace!(%error, "Lag sampler client event."),
            Some(Ok(_)) => {}
            None => return,
        }
    }
}
