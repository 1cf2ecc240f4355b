//! Where sync configurations live: the [`ConfigStore`] seam, the Kafka store and an in-memory
//! one for tests.

pub mod codec;
mod kafka;
mod memory;
mod view;

use std::future::Future;
use std::time::Duration;

pub use kafka::{Follower, KafkaStore};
pub use memory::MemoryStore;

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
