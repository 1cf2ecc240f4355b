//! Which syncs already had their `cio-validate` written by this process.
//!
//! A sync is the set of files of one window of a workspace, identified by
//! `(workspace_id, window_closed_at_ms)`. The spec rewrites `cio-validate` before every sync, so
//! forgetting a sync only costs one more (harmless) rewrite; a few recent syncs per workspace
//! are remembered, which covers the files of one window arriving table by table.

use std::collections::{HashMap, VecDeque};

/// How many recent syncs are remembered per workspace.
const REMEMBERED_PER_WORKSPACE: usize = 16;

/// The syncs whose `cio-validate` was written.
#[derive(Debug, Default)]
pub struct Syncs {
    validated: HashMap<i64, VecDeque<i64>>,
}

impl Syncs {
    /// Nothing validated yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `cio-validate` was written for the sync `(workspace_id, window_closed_at_ms)`.
    pub fn is_validated(&self, workspace_id: i64, window_closed_at_ms: i64) -> bool {
        self.validated.get(&workspace_id).is_some_and(|windows| windows.contains(&window_closed_at_ms))
    }

    /// Records that `cio-validate` was written for the sync.
    pub fn mark_validated(&mut self, workspace_id: i64, window_closed_at_ms: i64) {
        let windows = self.validated.entry(workspace_id).or_default();
        if windows.contains(&window_closed_at_ms) {
            return;
        }
        if windows.len() == REMEMBERED_PER_WORKSPACE {
            windows.pop_front();
        }
        windows.push_back(window_closed_at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_is_a_window_of_a_workspace() {
        let mut syncs = Syncs::new();
        assert!(!syncs.is_validated(1, 100));
        syncs.mark_validated(1, 100);
        assert!(syncs.is_validated(1, 100));
        assert!(!syncs.is_validated(1, 200), "another window is another sync");
        assert!(!syncs.is_validated(2, 100), "another workspace is another sync");
        syncs.mark_validated(1, 100);
        assert_eq!(syncs.validated[&1].len(), 1);
    }

    #[test]
    fn old_syncs_are_forgotten() {
        let mut syncs = Syncs::new();
        for window in 0..=REMEMBERED_PER_WORKSPACE as i64 {
            syncs.mark_validated(1, window);
        }
        assert!(!syncs.is_validated(1, 0), "the oldest is forgotten (and would be validated again)");
        assert!(syncs.is_validated(1, 1) && syncs.is_validated(1, REMEMBERED_PER_WORKSPACE as i64));
    }
}
