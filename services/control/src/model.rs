//! The stored domain, [`dwsync_sync_config::model`], and the sync as a client sends it
//! ([`dwsync_api::sync`]), re-exported here.

pub use dwsync_api::{DestinationKind, DestinationSpec, SyncSpec};
pub use dwsync_sync_config::model::*;
