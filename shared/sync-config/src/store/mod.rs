//! Where sync configurations live: the [`ConfigStore`] seam, the Kafka store and an in-memory
//! one for tests.

pub mod codec;
mod kafka;
mod memory;
mod view;

use std::future::Future;
use std::time::Duration;

pub(crate) use kafka::ensure_topic;
pub use kafka::{CHECK_INTERVAL, Follower, Following, KafkaStore, STALL_LIMIT, is_transient, on_following};
pub use memory::MemoryStore;

use serde::{Deserialize, Serialize};

use crate::model::{SyncConfig, WorkspaceId};

/// Why the store could not answer. Never contains configuration values.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Kafka refused or failed a request.
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A write was not delivered, or the view did not catch up, in time.
    #[error("the configuration topic did not answer within {0:?}")]
    Timeout(Duration),
    /// The store's consumer task has stopped.
    #[error("the configuration store has stopped")]
    Stopped,
}

/// A value stored on a compacted topic, keyed by its workspace id.
pub trait TopicValue: Clone + Send + Sync + 'static {
    /// Whose value it is (the record key).
    fn workspace_id(&self) -> WorkspaceId;
    /// The record value.
    fn encode(&self) -> Vec<u8>;
    /// Reads a record value.
    fn decode(bytes: &[u8]) -> Result<Self, codec::DecodeError>;
}

impl TopicValue for SyncConfig {
    fn workspace_id(&self) -> WorkspaceId {
        self.workspace_id
    }

    fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    fn decode(bytes: &[u8]) -> Result<Self, codec::DecodeError> {
        codec::decode(bytes)
    }
}

/// Implements [`TopicValue`] for a serde type with a `workspace_id: i64` field: JSON values,
/// a record whose id is not positive refused.
macro_rules! json_topic_value {
    ($t:ty) => {
        impl $crate::store::TopicValue for $t {
            fn workspace_id(&self) -> $crate::model::WorkspaceId {
                // Only written for positive ids; a broken one maps to an id no caller asks for.
                $crate::model::WorkspaceId::new(self.workspace_id).unwrap_or($crate::model::WorkspaceId::MAX)
            }

            fn encode(&self) -> Vec<u8> {
                serde_json::to_vec(self).unwrap_or_default()
            }

            fn decode(bytes: &[u8]) -> Result<Self, $crate::store::codec::DecodeError> {
                let value: Self = serde_json::from_slice(bytes)
                    .map_err(|e| $crate::store::codec::DecodeError::Protobuf(e.to_string()))?;
                if value.workspace_id > 0 {
                    Ok(value)
                } else {
                    Err($crate::store::codec::DecodeError::Invalid("workspace_id must be positive"))
                }
            }
        }
    };
}

pub(crate) use json_topic_value;

/// Reads and writes sync configurations; reads see every write that finished before them.
pub trait ConfigStore: Send + Sync + 'static {
    /// The configuration of `id`, if it has one.
    fn get(&self, id: WorkspaceId) -> impl Future<Output = Result<Option<SyncConfig>, StoreError>> + Send;
    /// Every configuration, by workspace id.
    fn list(&self) -> impl Future<Output = Result<Vec<SyncConfig>, StoreError>> + Send;
    /// Stores `cfg` (keyed by its workspace id), returning once reads see it.
    fn put(&self, cfg: SyncConfig) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes `id`'s configuration, returning once reads no longer see it.
    fn delete(&self, id: WorkspaceId) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The compacted configuration topic and how long to wait on it (`[store]`). An unknown key is
/// refused when the config loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The compacted topic, keyed by workspace id. Default: `"dwsync.sync-config"`.
    pub topic: String,
    /// The compacted topic the uploaders report each workspace's delivery status on.
    /// Default: `"dwsync.sync-status"`.
    pub status_topic: String,
    /// The compacted topic the backfill reports each workspace's initial syncs on.
    /// Default: `"dwsync.initial-syncs"`.
    pub initial_sync_topic: String,
    /// The compacted topic control writes archive purge requests on (the backfill follows it).
    /// Default: `"dwsync.archive-purges"`.
    pub archive_purge_topic: String,
    /// The compacted topic the backfill reports archive purges on (control serves them).
    /// Default: `"dwsync.archive-purge-status"`.
    pub archive_purge_status_topic: String,
    /// The compacted topic control keeps the workspace tokens it issued on (digests only).
    /// Default: `"dwsync.api-tokens"`.
    pub token_topic: String,
    /// The compacted topic control keeps each workspace's last destination check on.
    /// Default: `"dwsync.destination-checks"`.
    pub check_topic: String,
    /// Partitions of the topic when control creates it. Default: `1`.
    pub partitions: i32,
    /// Replication factor of the topic when control creates it. Default: `1`.
    pub replication_factor: i32,
    /// Longest wait for a write's delivery or for the view to catch up, in ms. Default: `10000`.
    pub timeout_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            topic: "dwsync.sync-config".into(),
            status_topic: crate::status::STATUS_TOPIC.into(),
            initial_sync_topic: crate::initial::INITIAL_SYNC_TOPIC.into(),
            archive_purge_topic: crate::purge::ARCHIVE_PURGE_TOPIC.into(),
            archive_purge_status_topic: crate::purge::ARCHIVE_PURGE_STATUS_TOPIC.into(),
            token_topic: crate::tokens::TOKEN_TOPIC.into(),
            check_topic: crate::checks::CHECK_TOPIC.into(),
            partitions: 1,
            replication_factor: 1,
            timeout_ms: 10_000,
        }
    }
}

impl StoreConfig {
    /// [`timeout_ms`](Self::timeout_ms) as a `Duration`.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}
