//! [`MemoryStore`]: a [`ConfigStore`] in a map, for handler tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{ConfigStore, StoreError};
use crate::model::{SyncConfig, WorkspaceId};

/// Configurations in memory; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    configs: Arc<Mutex<BTreeMap<WorkspaceId, SyncConfig>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<WorkspaceId, SyncConfig>) -> R) -> R {
        f(&mut self.configs.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ConfigStore for MemoryStore {
    async fn get(&self, id: WorkspaceId) -> Result<Option<SyncConfig>, StoreError> {
        Ok(self.with(|m| m.get(&id).cloned()))
    }

    async fn list(&self) -> Result<Vec<SyncConfig>, StoreError> {
        Ok(self.with(|m| m.values().cloned().collect()))
    }

    async fn put(&self, cfg: SyncConfig) -> Result<(), StoreError> {
        self.with(|m| m.insert(cfg.workspace_id, cfg));
        Ok(())
    }

    async fn delete(&self, id: WorkspaceId) -> Result<(), StoreError> {
        self.with(|m| m.remove(&id));
        Ok(())
    }
}
