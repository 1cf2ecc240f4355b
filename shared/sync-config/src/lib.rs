//! Each workspace's sync configuration, shared by the service that writes it (control) and the
//! services that follow it (the uploader).
//!
//! [`model`] is the domain (destination, tables, disabled), [`seal`] keeps secret keys encrypted
//! at rest, and [`store`] keeps the configurations on a compacted Kafka topic keyed by workspace
//! id, read into memory by every process that follows it. [`generation`] keeps the handoff
//! topic's generation.

pub mod checks;
pub mod generation;
pub mod initial;
pub mod model;
pub mod purge;
pub mod schemas;
pub mod seal;
pub mod status;
pub mod store;
pub mod tokens;

pub use initial::{INITIAL_SYNC_TOPIC, InitialState, InitialSync, InitialSyncs, initial_sync_store};
pub use model::{Baseline, Destination, GcsStore, S3Store, Store, SyncConfig, TableState, WorkspaceId};
pub use purge::{
    ARCHIVE_PURGE_STATUS_TOPIC, ARCHIVE_PURGE_TOPIC, PurgeRequest, PurgeState, PurgeStatus, archive_purge_status_store,
    archive_purge_store,
};
pub use seal::{Sealed, Sealer};
pub use status::{LastError, SyncStatus};
pub use store::{ConfigStore, Following, KafkaStore, StoreConfig, StoreError, TopicValue, is_transient};
