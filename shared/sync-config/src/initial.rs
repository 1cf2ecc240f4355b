//! Each workspace's initial syncs, as the backfill reports them on a compacted topic (keyed by
//! workspace id, JSON value): the uploader waits on them before a table's incremental files,
//! the control API serves them.

use std::collections::BTreeMap;

use dwsync_contract::Table;
use serde::{Deserialize, Serialize};

use crate::model::Baseline;
use crate::store::StoreConfig;

/// The default topic of initial syncs.
pub const INITIAL_SYNC_TOPIC: &str = "dwsync.initial-syncs";

/// The initial syncs' store settings: `store.initial_sync_topic`, otherwise `store`'s.
pub fn initial_sync_store(store: &StoreConfig) -> StoreConfig {
    StoreConfig { topic: store.initial_sync_topic.clone(), ..store.clone() }
}

/// Where one table's initial sync is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InitialState {
    /// Asked for; waiting for its turn or for the archive to reach the cut.
    Queued {
        /// Why it waits (for example the archive's end in the partition), if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waiting_for: Option<String>,
    },
    /// Being delivered: rows and files written so far.
    Running,
    /// Every baseline file is in the bucket; the table's incremental files follow.
    Done,
    /// The last attempt failed; it is tried again.
    Failed {
        /// What failed (never a secret).
        reason: String,
        /// Attempts so far.
        attempts: u32,
    },
}

/// One table's initial sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialSync {
    /// The configuration revision that asked for it ([`Baseline::epoch`]).
    pub epoch: u64,
    /// The cut it delivers up to ([`Baseline::cut`]).
    pub cut: i64,
    /// Where it is.
    #[serde(flatten)]
    pub state: InitialState,
    /// Rows written to the bucket so far.
    pub rows: u64,
    /// Files written to the bucket so far (`cio-validate` not counted).
    pub files: u64,
    /// The object keys written, in order (at most a few hundred; the rest are counted in `files`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// When this state was reported, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

impl InitialSync {
    /// A queued initial sync for `baseline`.
    pub fn queued(baseline: &Baseline, now_ms: i64) -> Self {
        Self {
            epoch: baseline.epoch,
            cut: baseline.cut,
            state: InitialState::Queued { waiting_for: None },
            rows: 0,
            files: 0,
            keys: Vec::new(),
            updated_at_ms: now_ms,
        }
    }

    /// Whether this is `baseline`'s initial sync and it is delivered.
    pub fn is_done_for(&self, baseline: &Baseline) -> bool {
        self.epoch == baseline.epoch && self.cut == baseline.cut && self.state == InitialState::Done
    }
}

/// A workspace's initial syncs, per table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialSyncs {
    /// Whose they are.
    pub workspace_id: i64,
    /// The latest initial sync of each table that had one.
    pub tables: BTreeMap<Table, InitialSync>,
}

impl InitialSyncs {
    /// No initial sync yet.
    pub fn new(workspace_id: i64) -> Self {
        Self { workspace_id, tables: BTreeMap::new() }
    }

    /// Whether `table`'s initial sync for `baseline` is delivered.
    pub fn is_done(&self, table: Table, baseline: &Baseline) -> bool {
        self.tables.get(&table).is_some_and(|sync| sync.is_done_for(baseline))
    }
}

crate::store::json_topic_value!(InitialSyncs);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TopicValue;

    #[test]
    fn round_trips_and_says_when_a_baseline_is_done() {
        let baseline = Baseline { epoch: 4, partition: 1, cut: 120, at_ms: 9, replay_from: None };
        let mut syncs = InitialSyncs::new(7);
        assert!(!syncs.is_done(Table::People, &baseline));
        let mut people = InitialSync::queued(&baseline, 10);
        people.state = InitialState::Done;
        people.rows = 3;
        let _ = syncs.tables.insert(Table::People, people);
        let mut metrics = InitialSync::queued(&baseline, 10);
        metrics.state = InitialState::Failed { reason: "archive object missing".into(), attempts: 2 };
        let _ = syncs.tables.insert(Table::Metrics, metrics);
        let back = InitialSyncs::decode(&syncs.encode()).expect("decodes");
        assert_eq!(back, syncs);
        assert!(back.is_done(Table::People, &baseline));
        assert!(!back.is_done(Table::Metrics, &baseline), "failed is not done");
        assert!(!back.is_done(Table::People, &Baseline { epoch: 5, ..baseline }), "another epoch");
        let json = String::from_utf8(syncs.encode()).expect("utf-8");
        assert!(json.contains(r#""people":{"epoch":4,"cut":120,"state":"done""#), "{json}");
        assert!(InitialSyncs::decode(&InitialSyncs::new(0).encode()).is_err());
    }
}
