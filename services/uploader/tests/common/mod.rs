//! Shared pieces of the uploader's integration tests: a transactional handoff producer (as
//! ingest produces), the uploader running in-process, its `/metrics`, the group's committed
//! offsets, and S3 reads. Real Kafka and real S3 only (`dev/kafka start`, `dev/s3 start`).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use dwsync_config::{HttpConfig, KafkaConfig, Secret};
use dwsync_contract::Table;
use dwsync_handoff::{FileKind, FileMeta, SourceRange, split};
use dwsync_proto::Message as _;
use dwsync_telemetry::{ServiceError, testing};
use dwsync_tests::{create_topic, kafka_bootstrap, kafka_config, s3_access_key, s3_endpoint, s3_secret_key};
use dwsync_uploader::config::{LotConfig, SyncConfigSource};
use dwsync_uploader::{Config, Destination, DestinationKind, HandoffConfig, UploadConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const MIB: usize = 1 << 20;

/// How long a test waits for the uploader to get somewhere.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// Uploader settings for tests: a low multipart threshold (5 MiB parts, S3's minimum) and
/// quick retries.
pub fn config(topic: &str, group: &str, destinations: Vec<Destination>) -> Config {
    Config {
        kafka: KafkaConfig { bootstrap_servers: kafka_bootstrap(), ..KafkaConfig::default() },
        http: HttpConfig::localhost(0),
        handoff: HandoffConfig {
            topic: topic.into(),
            group_id: group.into(),
            lag_interval_ms: 300,
            ..HandoffConfig::default()
        },
        upload: UploadConfig {
            multipart_threshold_bytes: 5 * MIB as u64,
            part_bytes: 5 * MIB as u64,
            retry_initial_ms: 50,
            retry_max_ms: 400,
            attempts: 3,
            ..UploadConfig::default()
        },
        // These tests use static destinations; the control topic is tested in tests/.
        sync_config: SyncConfigSource { follow: false, ..SyncConfigSource::default() },
        lot: LotConfig {
            topic: format!("{topic}.lot"),
            retry_initial_ms: 200,
            retry_max_ms: 1_000,
            ..LotConfig::default()
        },
        destinations,
        ..Config::default()
    }
}

/// A destination on the test S3 server with the right credentials.
pub fn destination(workspace_id: i64, bucket: &str, prefix: &str) -> Destination {
    Destination {
        workspace_id,
        bucket: bucket.into(),
        prefix: prefix.into(),
        region: "us-east-1".into(),
        endpoint: Some(s3_endpoint()),
        force_path_style: true,
        access_key_id: s3_access_key(),
        secret_access_key: Secret::new(s3_secret_key()),
        tables: Vec::new(),
        conditional_writes: true,
        kind: DestinationKind::S3,
        service_account_key: Secret::default(),
    }
}

/// The header of a test file.
pub fn meta(file_id: &str, workspace_id: i64, table: Table, kind: FileKind, window_closed_at_ms: i64) -> FileMeta {
    FileMeta {
        file_id: file_id.into(),
        workspace_id,
        table,
        kind,
        row_count: 17,
        sources: vec![SourceRange { topic: "src".into(), partition: 0, first_offset: 0, last_offset: 16 }],
        window_opened_at_ms: window_closed_at_ms - 900_000,
        window_closed_at_ms,
        close_reason: "time".into(),
    }
}

/// Deterministic file bytes, different per `seed`.
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Where a file's chunks landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// One record of a handoff transaction.
pub enum Piece<'a> {
    /// A chunk of a file: (file header, file bytes, chunk size, chunk index).
    Chunk(&'a FileMeta, &'a [u8], usize, usize),
    /// Raw bytes.
    Raw(&'a [u8]),
}

/// A transactional producer of handoff records, as ingest produces them.
pub struct Handoff {
    pub topic: String,
    producer: FutureProducer,
}

impl Handoff {
    /// Creates `topic` with `partitions` partitions and a transactional producer for it.
    pub async fn new(topic: &str, partitions: i32) -> Self {
        create_topic(topic, partitions).await;
        let producer: FutureProducer = kafka_config()
            .set("transactional.id", dwsync_tests::unique("uploader-test-tx"))
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        producer.init_transactions(Duration::from_secs(30)).expect("init_transactions");
        Self { topic: topic.into(), producer }
    }

    /// Produces `pieces` to `partition` in one transaction; returns each piece's offset.
    pub async fn transaction(&self, partition: i32, pieces: &[Piece<'_>]) -> Vec<i64> {
        self.producer.begin_transaction().unwrap();
        let mut offsets = Vec::new();
        for piece in pieces {
            let payload = match piece {
                Piece::Chunk(meta, file, chunk_bytes, index) => split(meta, file, *chunk_bytes)[*index].encode_to_vec(),
                Piece::Raw(raw) => raw.to_vec(),
            };
            let key = match piece {
                Piece::Chunk(meta, ..) => meta.workspace_id.to_string(),
                Piece::Raw(_) => "raw".into(),
            };
            let record = FutureRecord::to(&self.topic).partition(partition).key(&key).payload(&payload);
            let delivered = self.producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).unwrap();
            offsets.push(delivered.offset);
        }
        self.producer.commit_transaction(Duration::from_secs(30)).unwrap();
        offsets
    }

    /// Produces a whole file, chunk by chunk, in one transaction.
    pub async fn file(&self, partition: i32, meta: &FileMeta, file: &[u8], chunk_bytes: usize) -> Produced {
        let count = split(meta, file, chunk_bytes).len();
        let pieces: Vec<_> = (0..count).map(|i| Piece::Chunk(meta, file, chunk_bytes, i)).collect();
        let offsets = self.transaction(partition, &pieces).await;
        Produced { partition, first_offset: offsets[0], last_offset: offsets[count - 1] }
    }
}

/// The uploader, started in this process with `start(cfg)` and run until [`Uploader::stop`].
pub struct Uploader {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServiceError>>,
}

impl Uploader {
    pub async fn start(cfg: Config) -> Self {
        testing::init_once();
        let service = dwsync_uploader::start(cfg).await.expect("the uploader starts");
        let addr = service.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.run_until(async {
            let _ = stopped.await;
        }));
        Self { addr, stop, task }
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> Metrics {
        let body = reqwest::get(format!("http://{}/metrics", self.addr)).await.unwrap().text().await.unwrap();
        Metrics(body)
    }

    /// `/readyz`'s status code.
    pub async fn readyz(&self) -> u16 {
        reqwest::get(format!("http://{}/readyz", self.addr)).await.unwrap().status().as_u16()
    }

    /// Stops it through its shutdown future; it must stop cleanly and within the grace period.
    pub async fn stop(self) {
        self.stop.send(()).expect("the uploader is running");
        let stopped = tokio::time::timeout(Duration::from_secs(20), self.task).await.expect("stops in time");
        stopped.expect("join").expect("a clean shutdown");
    }
}

/// A `/metrics` scrape.
#[derive(Debug, Clone)]
pub struct Metrics(pub String);

impl Metrics {
    /// The sum of metric `name` over the series whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
                let wanted = metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
                wanted.then(|| value.parse::<f64>().ok()).flatten()
            })
            .sum()
    }

    /// [`sum`](Self::sum) minus the same sum in `before`.
    pub fn delta(&self, before: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(name, labels) - before.sum(name, labels)
    }
}

/// The group's committed offsets of `topic`'s `partitions` (`None`: nothing committed).
pub fn committed(group: &str, topic: &str, partitions: &[i32]) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = kafka_config().set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for p in partitions {
        list.add_partition(topic, *p);
    }
    let offsets = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    partitions
        .iter()
        .map(|p| match offsets.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect()
}

/// Polls `check` every 200 ms until it gives `Some`, or panics naming `what` after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the group has committed `offsets` (partition → offset) for `topic`.
pub async fn wait_committed(group: &str, topic: &str, offsets: &BTreeMap<i32, i64>) {
    let partitions: Vec<i32> = offsets.keys().copied().collect();
    let want: Vec<Option<i64>> = offsets.values().map(|o| Some(*o)).collect();
    let (group, topic) = (group.to_owned(), topic.to_owned());
    eventually(&format!("group {group} to commit {offsets:?}"), || {
        let (group, topic, partitions, want) = (group.clone(), topic.clone(), partitions.clone(), want.clone());
        async move {
            let got = tokio::task::spawn_blocking(move || committed(&group, &topic, &partitions)).await.unwrap();
            (got == want).then_some(())
        }
    })
    .await;
}

/// Every key in `bucket`.
pub async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut token = None;
    loop {
        let page = s3.list_objects_v2().bucket(bucket).set_continuation_token(token.take()).send().await.unwrap();
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return keys,
        }
    }
}

/// An object's bytes.
pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3.get_object().bucket(bucket).key(key).send().await.unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Whether `key` exists in `bucket`.
pub async fn exists(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    s3.head_object().bucket(bucket).key(key).send().await.is_ok()
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(dwsync_handoff::chunk::sha256(bytes))
}
