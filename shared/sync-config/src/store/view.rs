//! The in-memory view of the configuration topic, and waiting for it to reach an offset.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::{StoreError, TopicValue, codec};
use crate::model::WorkspaceId;

#[derive(Debug)]
struct State<T> {
    configs: BTreeMap<WorkspaceId, T>,
    /// Per partition, the offset after the last record applied.
    positions: HashMap<i32, i64>,
}

impl<T> Default for State<T> {
    fn default() -> Self {
        Self { configs: BTreeMap::new(), positions: HashMap::new() }
    }
}

/// Every workspace's latest value (configuration or status) as read so far, and how far it has read.
#[derive(Debug)]
pub(super) struct View<T> {
    state: RwLock<State<T>>,
    applied: watch::Sender<u64>,
    stopped: AtomicBool,
}

impl<T: TopicValue> View<T> {
    /// An empty view at the start of every partition.
    pub(super) fn new() -> Self {
        Self { state: RwLock::default(), applied: watch::Sender::new(0), stopped: AtomicBool::new(false) }
    }

    /// Applies the record at `partition`/`offset`: a configuration, or a tombstone (no value).
    ///
    /// A record that does not decode is logged (never its value) and skipped.
    pub(super) fn apply(&self, partition: i32, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        let change = key.ok_or(codec::DecodeError::Key).and_then(codec::decode_key).and_then(|id| match value {
            None => Ok((id, None)),
            Some(bytes) => {
                let cfg = T::decode(bytes)?;
                if cfg.workspace_id() == id {
                    Ok((id, Some(cfg)))
                } else {
                    Err(codec::DecodeError::Invalid("workspace_id differs from the key"))
                }
            }
        });
        {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            match change {
                Ok((id, Some(cfg))) => {
                    let _ = state.configs.insert(id, cfg);
                }
                Ok((id, None)) => {
                    let _ = state.configs.remove(&id);
                }
                Err(err) => {
                    tracing::error!(partition, offset, error = %err, "Skipping an unreadable configuration record.");
                }
            }
            let _ = state.positions.insert(partition, offset + 1);
        }
        self.applied.send_modify(|n| *n += 1);
    }

    /// Marks the view as no longer following the topic; waiters fail with [`StoreError::Stopped`].
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.applied.send_modify(|n| *n += 1);
    }

    /// The configuration of `id`.
    pub(super) fn get(&self, id: WorkspaceId) -> Option<T> {
        self.state.read().unwrap_or_else(PoisonError::into_inner).configs.get(&id).cloned()
    }

    /// Every configuration.
    pub(super) fn list(&self) -> Vec<T> {
        self.state.read().unwrap_or_else(PoisonError::into_inner).configs.values().cloned().collect()
    }

    /// Where `partition` is read up to (the offset after the last record applied), if anywhere.
    pub(super) fn position(&self, partition: i32) -> Option<i64> {
        self.state.read().unwrap_or_else(PoisonError::into_inner).positions.get(&partition).copied()
    }

    /// How many records have been applied so far (it only grows).
    pub(super) fn read_count(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Whether every `(partition, offset)` has been read up to (excluding) `offset`.
    pub(super) fn reached(&self, targets: &[(i32, i64)]) -> bool {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        targets.iter().all(|(p, target)| *target <= 0 || state.positions.get(p).is_some_and(|pos| pos >= target))
    }

    /// Waits until every partition has been read up to its target offset, at most `timeout`.
    pub(super) async fn wait_for(&self, targets: &[(i32, i64)], timeout: Duration) -> Result<(), StoreError> {
        let mut applied = self.applied.subscribe();
        let wait = async {
            loop {
                if self.reached(targets) {
                    return Ok(());
                }
                if self.stopped.load(Ordering::SeqCst) {
                    return Err(StoreError::Stopped);
                }
                if applied.changed().await.is_err() {
                    return Err(StoreError::Stopped);
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| StoreError::Timeout(timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_the_offset_then_sees_the_tombstone() {
        let view = std::sync::Arc::new(View::<crate::model::SyncConfig>::new());
        let short = Duration::from_millis(50);
        assert!(view.wait_for(&[(0, 0)], short).await.is_ok(), "empty partition");
        assert!(matches!(view.wait_for(&[(0, 1)], short).await, Err(StoreError::Timeout(_))));

        let waiter = tokio::spawn({
            let view = view.clone();
            async move { view.wait_for(&[(0, 2)], Duration::from_secs(5)).await }
        });
        view.apply(0, 0, Some(b"x"), Some(b"junk"));
        view.apply(0, 1, Some(b"42"), None);
        assert!(waiter.await.expect("join").is_ok());
        assert!(view.list().is_empty(), "the junk record was skipped, the tombstone removed nothing");

        view.stop();
        assert!(matches!(view.wait_for(&[(0, 9)], short).await, Err(StoreError::Stopped)));
    }
}
