//! A consumer group's lag measured from outside the group: its committed offsets against the
//! end of its topics, sampled on a thread of its own for the service's whole life.
//!
//! The loop that consumes can stall, restart or wait for the broker: it then updates nothing,
//! and a lag it computed itself (the high watermark less its position) stays where it was. This
//! sampler never joins the group: every `interval` it lists the topics' partitions, asks the
//! group coordinator for the group's committed offsets and the leaders for the partitions' low
//! and high watermarks, so a group that stops committing shows a lag that grows with the input.
//!
//! **Transaction markers.** The topics dwsync reads can end with commit or abort markers, or
//! with aborted records, which a `read_committed` consumer never receives: a group caught up on
//! such a partition commits the offset after its last record, and `high − committed` stays ≥ 1
//! forever. So a partition with `committed < high` whose committed offset did not move since the
//! previous sample is *probed*: a second, `read_committed` client reads it from the committed
//! offset until it receives a record (records are pending: lag `high − committed`) or the end of
//! the partition (nothing is pending: lag 0). The outcome is kept while the committed offset and
//! the high watermark stay the same, so an idle partition is read once, not every sample. A
//! partition the group never committed counts from its low watermark (`auto.offset.reset =
//! earliest`, as the services consume).
//!
//! **Stalls.** For each partition with records pending the sampler keeps the time since its
//! committed offset last moved (or since the records became pending, or since the sampler
//! started, whichever is latest); the group's [`GroupLag::since_commit`] is the longest of these.
//! Over `stall_after`, the service is unready ([`COMPONENT`], with the reason), and ready again
//! once the group commits. When a sample fails (the broker away) the last lag is kept and the
//! stall clock runs on.
//!
//! The figures are the group's, not an instance's: every instance of a service reports the
//! same values (aggregate them with `max`, not `sum`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dwsync_config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::kafka::ProbeContext;
use crate::{Health, Service};

/// The health component the sampler marks unready while the group makes no progress.
pub const COMPONENT: &str = "progress";

/// Consecutive failed samples, with the brokers answering metadata requests, after which the
/// sampler's clients are created anew.
const REBUILD_AFTER: u32 = 3;

/// A topic partition.
pub type TopicPartition = (String, i32);

/// What to measure and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLagSettings {
    /// The consumer group whose committed offsets are measured (the sampler never joins it).
    pub group_id: String,
    /// The topics the group consumes; a topic that does not exist (yet) is skipped.
    pub topics: Vec<String>,
    /// Pause between two samples.
    pub interval: Duration,
    /// The service is unready while records have waited this long without a commit.
    pub stall_after: Duration,
    /// Longest wait for one request (metadata, committed offsets, watermarks, a probe).
    pub timeout: Duration,
}

/// Why the sampler could not start or a sample failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupLagError {
    /// A Kafka client could not be created (an invalid client property).
    #[error("creating the lag sampler's Kafka client: {0}")]
    Client(KafkaError),
    /// The sampler's thread could not be started.
    #[error("starting the lag sampler's thread: {0}")]
    Thread(std::io::Error),
    /// The brokers did not answer a metadata request.
    #[error("fetching the metadata of topic {topic}: {error}")]
    Metadata {
        /// The topic asked about.
        topic: String,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// A request after the metadata failed (committed offsets, watermarks, a probe).
    #[error("{what}: {error}")]
    Request {
        /// What was asked.
        what: &'static str,
        /// librdkafka's error.
        error: KafkaError,
    },
}

/// The group's lag as of the last sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupLag {
    /// Records pending per partition: `high − committed` where a `read_committed` consumer
    /// still has records to read, else 0. Every partition of the topics is listed.
    pub partitions: BTreeMap<TopicPartition, i64>,
    /// How long the longest-waiting partition with records pending has gone without a commit;
    /// zero when nothing is pending.
    pub since_commit: Duration,
    /// Whether `since_commit` is over the settings' `stall_after`.
    pub stalled: bool,
    /// Whether the figures come from a successful sample (false until the first one; the last
    /// figures stay, with the stall clock running on, while samples fail).
    pub sampled: bool,
}

impl GroupLag {
    /// Records pending over all partitions.
    pub fn total(&self) -> i64 {
        self.partitions.values().sum()
    }

    /// [`since_commit`](Self::since_commit) in seconds.
    pub fn seconds_since_commit(&self) -> f64 {
        self.since_commit.as_secs_f64()
    }

    /// The reason the service is unready while the group is stalled.
    pub fn stall_reason(&self) -> String {
        format!("no commit for {} s with {} records pending", self.since_commit.as_secs(), self.total())
    }
}

/// What the broker says of one partition in one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offsets {
    /// The group's committed offset, if it committed one.
    committed: Option<i64>,
    /// The low watermark (first offset still stored).
    low: i64,
    /// The high watermark (offset of the next record, markers included).
    high: i64,
}

impl Offsets {
    /// Where the group reads the partition from: its committed offset, or the low watermark
    /// if it never committed or its offset was deleted.
    fn start(&self) -> i64 {
        self.committed.map_or(self.low, |c| c.max(self.low))
    }
}

/// What a `read_committed` read from a partition's start offset found first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probed {
    /// A record: records are pending.
    Record,
    /// The end of the partition: nothing is pending (only markers or aborted records).
    End,
}

/// A probe's outcome, valid while the partition starts at `at` (and, for `End`, ends at `high`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Record { at: i64 },
    End { at: i64, high: i64 },
}

#[derive(Debug, Clone, Default)]
struct PartitionState {
    committed: Option<i64>,
    /// Since when records have been pending without a commit.
    waiting_since: Option<Instant>,
    known: Option<Known>,
    lag: i64,
}

/// The pending and stall arithmetic, apart from Kafka: [`to_probe`](Self::to_probe) says which
/// partitions need a read, [`update`](Self::update) turns a sample into a [`GroupLag`].
#[derive(Debug)]
struct Tracker {
    stall_after: Duration,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    sampled: bool,
}

/// How one partition's state is decided in a sample.
enum Decision {
    /// Nothing to read, or the committed offset moved: no probe needed.
    Settled(bool),
    /// Only a read from this offset can tell.
    Probe(i64),
}

impl Tracker {
    fn new(stall_after: Duration) -> Self {
        Self { stall_after, partitions: BTreeMap::new(), sampled: false }
    }

    fn decide(previous: Option<&PartitionState>, o: &Offsets) -> Decision {
        let start = o.start();
        if start >= o.high {
            return Decision::Settled(false);
        }
        // The group is making progress: pending as far as the high watermark says (a marker at
        // the end is counted until the next sample probes it).
        let moved = previous.is_some_and(|p| p.committed != o.committed);
        if moved {
            return Decision::Settled(true);
        }
        match previous.and_then(|p| p.known) {
            Some(Known::Record { at }) if at == start => Decision::Settled(true),
            Some(Known::End { at, high }) if at == start && high == o.high => Decision::Settled(false),
            _ => Decision::Probe(start),
        }
    }

    /// The partitions whose pending state only a `read_committed` read can decide, with the
    /// offset to read from.
    fn to_probe(&self, offsets: &BTreeMap<TopicPartition, Offsets>) -> BTreeMap<TopicPartition, i64> {
        offsets
            .iter()
            .filter_map(|(tp, o)| match Self::decide(self.partitions.get(tp), o) {
                Decision::Probe(at) => Some((tp.clone(), at)),
                Decision::Settled(_) => None,
            })
            .collect()
    }

    /// Applies a sample (`probed` holds the outcomes of [`to_probe`](Self::to_probe)'s reads; a
    /// partition whose read did not finish counts as pending) taken at `now`.
    fn update(
        &mut self,
        offsets: &BTreeMap<TopicPartition, Offsets>,
        probed: &BTreeMap<TopicPartition, Probed>,
        now: Instant,
    ) -> GroupLag {
        let mut next = BTreeMap::new();
        for (tp, o) in offsets {
            let previous = self.partitions.get(tp);
            let start = o.start();
            let mut known = previous.and_then(|p| p.known);
            let pending = match Self::decide(previous, o) {
                Decision::Settled(pending) => pending,
                Decision::Probe(at) => match probed.get(tp) {
                    Some(Probed::Record) => {
                        known = Some(Known::Record { at });
                        true
                    }
                    Some(Probed::End) => {
                        known = Some(Known::End { at, high: o.high });
                        false
                    }
                    None => true,
                },
            };
            let moved = previous.is_some_and(|p| p.committed != o.committed);
            let waiting_since = match (pending, previous.and_then(|p| p.waiting_since)) {
                (false, _) => None,
                (true, Some(since)) if !moved => Some(since),
                (true, _) => Some(now),
            };
            let lag = if pending { o.high - start } else { 0 };
            let _ = next.insert(tp.clone(), PartitionState { committed: o.committed, waiting_since, known, lag });
        }
        self.partitions = next;
        self.sampled = true;
        self.report(now)
    }

    /// The last sample's figures with the stall clock at `now` (also while samples fail).
    fn report(&self, now: Instant) -> GroupLag {
        let since_commit = self
            .partitions
            .values()
            .filter_map(|p| p.waiting_since)
            .map(|since| now.saturating_duration_since(since))
            .max()
            .unwrap_or_default();
        GroupLag {
            partitions: self.partitions.iter().map(|(tp, p)| (tp.clone(), p.lag)).collect(),
            since_commit,
            stalled: since_commit > self.stall_after,
            sampled: self.sampled,
        }
    }
}

/// Its clients log like the reachability probe's: librdkafka at debug level, a failed sample
/// reported once by the sampler.
type Client = BaseConsumer<ProbeContext>;

/// The two clients: one reads the group's committed offsets and the watermarks, the other
/// probes partitions `read_committed`.
struct Clients {
    group: Client,
    probe: Client,
}

impl Clients {
    fn new(kafka: &KafkaConfig, name: &str, group_id: &str) -> Result<Self, GroupLagError> {
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
    fn offsets(
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
    fn probe(
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

/// Measures a consumer group's lag from outside it; see the [module](self) documentation.
pub struct GroupLagSampler {
    kafka: KafkaConfig,
    name: String,
    settings: GroupLagSettings,
    clients: Option<Clients>,
    tracker: Tracker,
    failures: u32,
}

impl std::fmt::Debug for GroupLagSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLagSampler").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl GroupLagSampler {
    /// A sampler of `settings.group_id` on `kafka`'s brokers, its clients named
    /// `<prefix>-<name>` and `<prefix>-<name>-probe`.
    ///
    /// Fails only on an invalid client configuration; unreachable brokers are not an error.
    pub fn new(kafka: &KafkaConfig, name: &str, settings: GroupLagSettings) -> Result<Self, GroupLagError> {
        let clients = Clients::new(kafka, name, &settings.group_id)?;
        Ok(Self {
            kafka: kafka.clone(),
            name: name.to_owned(),
            tracker: Tracker::new(settings.stall_after),
            settings,
            clients: Some(clients),
            failures: 0,
        })
    }

    /// Takes one sample now (blocking, up to a few `timeout`s): the group's lag, or why the
    /// sample failed (the previous figures are then kept; [`last`](Self::last) reports them).
    pub fn sample(&mut self) -> Result<GroupLag, GroupLagError> {
        let clients = match self.clients.take() {
            Some(clients) => clients,
            None => Clients::new(&self.kafka, &self.name, &self.settings.group_id)?,
        };
        drain(&clients.group);
        let sampled = clients.offsets(&self.settings.topics, self.settings.timeout).and_then(|offsets| {
            let targets = self.tracker.to_probe(&offsets);
            let probed =
                if targets.is_empty() { BTreeMap::new() } else { clients.probe(&targets, self.settings.timeout)? };
            Ok(self.tracker.update(&offsets, &probed, Instant::now()))
        });
        match &sampled {
            Ok(_) => self.failures = 0,
            // The brokers are away: nothing a new client would change.
            Err(GroupLagError::Metadata { .. }) => {}
            Err(_) => self.failures += 1,
        }
        if self.failures >= REBUILD_AFTER {
            tracing::info!(group = %self.settings.group_id, failures = self.failures, "Lag sampler failing while the brokers answer; creating its clients anew.");
            self.failures = 0;
            // Dropped: the next sample creates them anew.
        } else {
            self.clients = Some(clients);
        }
        sampled
    }

    /// The last sample's figures, with the stall clock at now.
    pub fn last(&self) -> GroupLag {
        self.tracker.report(Instant::now())
    }

    /// Samples every `interval` on a thread of its own until `shutdown` is cancelled, handing
    /// each result to `publish` and keeping [`COMPONENT`] unready while the group is stalled.
    ///
    /// A plain thread, not a blocking task: a sample in progress never holds up the runtime's
    /// shutdown. Returns once the thread is started.
    pub fn spawn(
        mut self,
        health: Health,
        shutdown: CancellationToken,
        mut publish: impl FnMut(&GroupLag) + Send + 'static,
    ) -> Result<(), GroupLagError> {
        let interval = self.settings.interval;
        let _detached = std::thread::Builder::new()
            .name(format!("{}-lag", self.name))
            .spawn(move || {
                let mut failing = false;
                while !shutdown.is_cancelled() {
                    let lag = match self.sample() {
                        Ok(lag) => {
                            if failing {
                                tracing::info!(group = %self.settings.group_id, "Lag sampling works again.");
                            }
                            failing = false;
                            lag
                        }
                        Err(error) => {
                            if failing {
                                tracing::debug!(group = %self.settings.group_id, %error, "Lag sample failed; retrying.");
                            } else {
                                tracing::warn!(group = %self.settings.group_id, %error, "Lag sample failed; retrying every interval.");
                            }
                            failing = true;
                            self.last()
                        }
                    };
                    publish(&lag);
                    if lag.stalled {
                        health.set_unready(COMPONENT, lag.stall_reason());
                    } else {
                        health.set_ready(COMPONENT);
                    }
                    sleep_unless_cancelled(interval, &shutdown);
                }
            })
            .map_err(GroupLagError::Thread)?;
        Ok(())
    }
}

/// Sleeps `duration`, waking every 100 ms to return early once `shutdown` is cancelled.
fn sleep_unless_cancelled(duration: Duration, shutdown: &CancellationToken) {
    let deadline = Instant::now() + duration;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || shutdown.is_cancelled() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

impl Service {
    /// Starts a [`GroupLagSampler`] of `settings` for the service's whole life (client
    /// `<name>-lag`), handing every sample to `publish` (which records the service's gauges).
    pub fn spawn_group_lag(
        &mut self,
        kafka: &KafkaConfig,
        settings: GroupLagSettings,
        publish: impl FnMut(&GroupLag) + Send + 'static,
    ) -> Result<(), GroupLagError> {
        let sampler = GroupLagSampler::new(kafka, &format!("{}-lag", self.name), settings)?;
        sampler.spawn(self.health().clone(), self.shutdown_token(), publish)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(60);

    fn tp(p: i32) -> TopicPartition {
        ("t".to_owned(), p)
    }

    fn sample(parts: &[(i32, Option<i64>, i64, i64)]) -> BTreeMap<TopicPartition, Offsets> {
        parts.iter().map(|&(p, committed, low, high)| (tp(p), Offsets { committed, low, high })).collect()
    }

    fn probed(parts: &[(i32, Probed)]) -> BTreeMap<TopicPartition, Probed> {
        parts.iter().map(|&(p, r)| (tp(p), r)).collect()
    }

    #[test]
    fn caught_up_and_behind_partitions() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        // 0: caught up; 1: 40 behind; 2: never committed, 5 records since the low watermark;
        // 3: committed before the low watermark (deleted), counts from it.
        let s = sample(&[(0, Some(10), 0, 10), (1, Some(60), 0, 100), (2, None, 5, 10), (3, Some(2), 8, 9)]);
        let targets = tracker.to_probe(&s);
        assert_eq!(targets, [(tp(1), 60), (tp(2), 5), (tp(3), 8)].into_iter().collect());
        let lag = tracker.update(&s, &probed(&[(1, Probed::Record), (2, Probed::Record), (3, Probed::Record)]), t0);
        assert_eq!(lag.partitions, [(tp(0), 0), (tp(1), 40), (tp(2), 5), (tp(3), 1)].into_iter().collect());
        assert_eq!((lag.total(), lag.since_commit, lag.stalled, lag.sampled), (46, Duration::ZERO, false, true));
    }

    #[test]
    fn a_marker_or_aborted_records_at_the_end_are_not_pending() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        // The group committed last+1 = 10; a commit marker sits at 10 (high 11). 1: aborted
        // records 20..25 and their marker.
        let s = sample(&[(0, Some(10), 0, 11), (1, Some(20), 0, 26)]);
        assert_eq!(tracker.to_probe(&s).len(), 2);
        let lag = tracker.update(&s, &probed(&[(0, Probed::End), (1, Probed::End)]), t0);
        assert_eq!((lag.total(), lag.since_commit), (0, Duration::ZERO));
        // Known while nothing changes: no second read, and never a stall.
        assert!(tracker.to_probe(&s).is_empty());
        let lag = tracker.update(&s, &BTreeMap::new(), t0 + STALL * 3);
        assert_eq!((lag.total(), lag.stalled), (0, false));
        // New records after the marker: read again; a record now.
        let s2 = sample(&[(0, Some(10), 0, 14), (1, Some(20), 0, 26)]);
        assert_eq!(tracker.to_probe(&s2), [(tp(0), 10)].into_iter().collect());
        let lag = tracker.update(&s2, &probed(&[(0, Probed::Record)]), t0 + STALL * 4);
        assert_eq!(lag.partitions[&tp(0)], 4);
    }

    #[test]
    fn a_moved_offset_is_not_probed_and_resets_the_clock() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        let s = sample(&[(0, Some(10), 0, 50)]);
        let _ = tracker.update(&s, &probed(&[(0, Probed::Record)]), t0);
        let lag = tracker.update(&s, &BTreeMap::new(), t0 + Duration::from_secs(30));
        assert_eq!(lag.since_commit, Duration::from_secs(30), "known record: not read again");
        let s2 = sample(&[(0, Some(40), 0, 60)]);
        assert!(tracker.to_probe(&s2).is_empty(), "the group moves: no read");
        let lag = tracker.update(&s2, &BTreeMap::new(), t0 + Duration::from_secs(45));
        assert_eq!((lag.total(), lag.since_commit), (20, Duration::ZERO));
        // Stuck there now: probed again (a new start offset), the clock runs from the commit.
        assert_eq!(tracker.to_probe(&s2), [(tp(0), 40)].into_iter().collect());
        let lag = tracker.update(&s2, &probed(&[(0, Probed::Record)]), t0 + Duration::from_secs(100));
        assert_eq!(lag.since_commit, Duration::from_secs(55));
        assert!(!lag.stalled);
        let lag = tracker.update(&s2, &BTreeMap::new(), t0 + Duration::from_secs(106));
        assert_eq!(lag.since_commit, Duration::from_secs(61));
        assert!(lag.stalled, "over stall_after");
        assert_eq!(lag.stall_reason(), "no commit for 61 s with 20 records pending");
        // Committed to the end: nothing pending, not stalled.
        let s3 = sample(&[(0, Some(60), 0, 60)]);
        let lag = tracker.update(&s3, &BTreeMap::new(), t0 + Duration::from_secs(110));
        assert_eq!((lag.total(), lag.since_commit, lag.stalled), (0, Duration::ZERO, false));
    }

    #[test]
    fn the_clock_starts_when_records_become_pending_and_runs_while_samples_fail() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        assert_eq!(tracker.report(t0), GroupLag::default(), "nothing before the first sample");
        // Idle and caught up for an hour, then records arrive: the clock starts then, not at
        // the last commit an hour ago.
        let idle = sample(&[(0, Some(10), 0, 10)]);
        let _ = tracker.update(&idle, &BTreeMap::new(), t0);
        let busy = sample(&[(0, Some(10), 0, 12)]);
        let lag = tracker.update(&busy, &probed(&[(0, Probed::Record)]), t0 + Duration::from_secs(3600));
        assert_eq!((lag.total(), lag.since_commit), (2, Duration::ZERO));
        // The broker is away: the last figures, the clock running on.
        let lag = tracker.report(t0 + Duration::from_secs(3661));
        assert_eq!((lag.total(), lag.since_commit, lag.stalled), (2, Duration::from_secs(61), true));
    }

    #[test]
    fn an_unfinished_probe_counts_as_pending_and_is_read_again() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        let s = sample(&[(0, Some(10), 0, 11)]);
        let lag = tracker.update(&s, &BTreeMap::new(), t0);
        assert_eq!(lag.total(), 1);
        assert_eq!(tracker.to_probe(&s).len(), 1, "not known: read again");
        let lag = tracker.update(&s, &probed(&[(0, Probed::End)]), t0 + Duration::from_secs(5));
        assert_eq!((lag.total(), lag.since_commit), (0, Duration::ZERO));
    }

    #[test]
    fn the_longest_wait_wins_and_vanished_partitions_are_forgotten() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        let s = sample(&[(0, Some(0), 0, 5), (1, Some(0), 0, 5)]);
        let _ = tracker.update(&s, &probed(&[(0, Probed::Record), (1, Probed::Record)]), t0);
        let s2 = sample(&[(0, Some(3), 0, 5), (1, Some(0), 0, 5)]);
        let lag = tracker.update(&s2, &BTreeMap::new(), t0 + Duration::from_secs(20));
        assert_eq!(lag.since_commit, Duration::from_secs(20), "partition 1 waits since t0");
        let s3 = sample(&[(0, Some(3), 0, 5)]);
        let lag = tracker.update(&s3, &probed(&[(0, Probed::Record)]), t0 + Duration::from_secs(30));
        assert_eq!((lag.partitions.len(), lag.since_commit), (1, Duration::from_secs(10)));
    }
}
