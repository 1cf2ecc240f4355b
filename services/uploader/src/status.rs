//! Each workspace's delivery status as this uploader sees it: last files written, last error,
//! files waiting in the lot. Changed statuses are reported on the status topic every few seconds,
//! where the control API reads them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use dwsync_sync_config::{KafkaStore, LastError, SyncStatus};

use crate::lot::ParkedFiles;

/// How many recent object keys a status lists.
const LAST_FILES: usize = 5;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The statuses of the workspaces this uploader delivered to, or failed to.
#[derive(Debug, Default)]
pub struct StatusBoard {
    statuses: HashMap<i64, SyncStatus>,
    last_files: HashMap<i64, VecDeque<String>>,
    changed: HashSet<i64>,
}

impl StatusBoard {
    /// No status yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn status(&mut self, workspace_id: i64) -> &mut SyncStatus {
        let _ = self.changed.insert(workspace_id);
        self.statuses.entry(workspace_id).or_insert_with(|| SyncStatus::new(workspace_id))
    }

    /// A file of `workspace_id` was written at `key`: the destination works.
    pub fn written(&mut self, workspace_id: i64, key: String) {
        let files = self.last_files.entry(workspace_id).or_default();
        if files.len() == LAST_FILES {
            let _ = files.pop_front();
        }
        files.push_back(key);
        let files: Vec<String> = files.iter().cloned().collect();
        let status = self.status(workspace_id);
        status.failing = false;
        status.last_sync_at_ms = Some(now_ms());
        status.last_files = files;
    }

    /// Delivering to `workspace_id` failed with `message` (which holds no secret).
    pub fn failed(&mut self, workspace_id: i64, message: String) {
        let status = self.status(workspace_id);
        status.failing = true;
        status.last_error = Some(LastError { message, at_ms: now_ms() });
    }

    /// Sets every workspace's waiting files from the lot's summary.
    pub fn waiting(&mut self, summary: &HashMap<i64, ParkedFiles>) {
        let now = now_ms();
        let known: Vec<i64> = self.statuses.keys().copied().chain(summary.keys().copied()).collect();
        for workspace_id in known {
            let w = summary.get(&workspace_id).cloned().unwrap_or_default();
            let lag_ms = w.oldest_window_closed_at_ms.map_or(0, |oldest| now.saturating_sub(oldest).max(0));
            let current = self.statuses.get(&workspace_id);
            if current.is_some_and(|s| s.files_waiting == w.files && s.files_paused == w.paused && w.files == 0) {
                continue;
            }
            let status = self.status(workspace_id);
            status.files_waiting = w.files;
            status.files_paused = w.paused;
            status.lag_ms = lag_ms;
        }
    }

    /// The statuses that changed since the last call, stamped now.
    pub fn take_changed(&mut self) -> Vec<SyncStatus> {
        let now = now_ms();
        let mut out = Vec::new();
        for id in std::mem::take(&mut self.changed) {
            if let Some(status) = self.statuses.get_mut(&id) {
                status.updated_at_ms = now;
                out.push(status.clone());
            }
        }
        out
    }
}

/// Reports `statuses` on the status topic in the background (a failed report is logged; the
/// next change reports again).
pub fn report(store: &KafkaStore<SyncStatus>, statuses: Vec<SyncStatus>) {
    if statuses.is_empty() {
        return;
    }
    let store = store.clone();
    drop(tokio::spawn(async move {
        for status in statuses {
            if let Err(error) = store.write(&status).await {
                tracing::warn!(%error, workspace_id = status.workspace_id, "Cannot report a sync status.");
            }
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_files_errors_and_waiting() {
        let mut board = StatusBoard::new();
        board.failed(1, "AccessDenied".into());
        let summary = HashMap::from([(
            1,
            ParkedFiles { files: 3, paused: 1, oldest_window_closed_at_ms: Some(now_ms() - 5_000) },
        )]);
        board.waiting(&summary);
        let changed = board.take_changed();
        assert_eq!(changed.len(), 1);
        let s = &changed[0];
        assert!(s.failing && s.files_waiting == 3 && s.files_paused == 1 && s.lag_ms >= 5_000, "{s:?}");
        assert_eq!(s.last_error.as_ref().map(|e| e.message.as_str()), Some("AccessDenied"));
        assert!(board.take_changed().is_empty(), "nothing changed since");

        for n in 0..7 {
            board.written(1, format!("k{n}"));
        }
        board.waiting(&HashMap::new());
        let s = board.take_changed().remove(0);
        assert!(!s.failing && s.files_waiting == 0 && s.lag_ms == 0 && s.last_sync_at_ms.is_some());
        assert_eq!(s.last_files, vec!["k2", "k3", "k4", "k5", "k6"], "the last five, newest last");
        assert!(s.last_error.is_some(), "the last error stays, with its time");
    }
}
