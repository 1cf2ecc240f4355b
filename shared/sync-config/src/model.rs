//! The domain: a workspace's sync configuration as control stores it and the services follow it, secret sealed.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use dwsync_contract::Table;

use crate::seal::Sealed;

/// The only schema version dwsync writes and accepts.
pub const SCHEMA_VERSION: u32 = dwsync_contract::SCHEMA_VERSION;

/// A workspace id: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceId(i64);

impl WorkspaceId {
    /// The largest id.
    pub const MAX: Self = Self(i64::MAX);

    /// The id, if `id` is positive.
    pub fn new(id: i64) -> Option<Self> {
        (id > 0).then_some(Self(id))
    }

    /// The id as a number.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A workspace id that is not a positive integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workspace id {0:?} is not a positive integer")]
pub struct BadWorkspaceId(pub String);

impl FromStr for WorkspaceId {
    type Err = BadWorkspaceId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<i64>().ok().and_then(Self::new).ok_or_else(|| BadWorkspaceId(s.to_owned()))
    }
}

/// Where a workspace's files go: a bucket and a prefix in one kind of store, with its sealed
/// secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing slash (may be empty).
    pub prefix: String,
    /// The kind of store and how to reach it.
    pub store: Store,
}

/// The kind of store a destination is, with its settings and sealed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// AWS S3 or an S3-compatible store.
    S3(S3Store),
    /// Google Cloud Storage.
    Gcs(GcsStore),
}

/// An S3 or S3-compatible bucket's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Store {
    /// The bucket's region.
    pub region: String,
    /// Endpoint URL of an S3-compatible store; `None` for AWS S3.
    pub endpoint: Option<String>,
    /// Path-style addressing (MinIO and most S3-compatible stores).
    pub force_path_style: bool,
    /// Whether the store honours `If-None-Match: *`.
    pub conditional_writes: bool,
    /// The access key id (not a secret; shown by the API).
    pub access_key_id: String,
    /// The secret access key, sealed.
    pub secret_access_key: Sealed,
}

/// A Google Cloud Storage bucket's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsStore {
    /// JSON API endpoint; `None` for Google Cloud's.
    pub endpoint: Option<String>,
    /// The key's service account (not a secret; shown by the API).
    pub client_email: String,
    /// The service account's whole JSON key, sealed.
    pub service_account_key: Sealed,
}

impl Destination {
    /// The kind's name: `s3` or `gcs`.
    pub fn kind(&self) -> &'static str {
        match self.store {
            Store::S3(_) => "s3",
            Store::Gcs(_) => "gcs",
        }
    }

    /// The endpoint a customer chose, if any.
    pub fn endpoint(&self) -> Option<&str> {
        match &self.store {
            Store::S3(s3) => s3.endpoint.as_deref(),
            Store::Gcs(gcs) => gcs.endpoint.as_deref(),
        }
    }

    /// The sealed secret: the S3 secret access key or the GCS service account key.
    pub fn sealed(&self) -> &Sealed {
        match &self.store {
            Store::S3(s3) => &s3.secret_access_key,
            Store::Gcs(gcs) => &gcs.service_account_key,
        }
    }

    /// The S3 settings, if it is an S3 destination.
    pub fn s3(&self) -> Option<&S3Store> {
        match &self.store {
            Store::S3(s3) => Some(s3),
            Store::Gcs(_) => None,
        }
    }
}

/// Whether one table is exported, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableState {
    /// Exported or not.
    pub enabled: bool,
    /// When `enabled` last changed (or the sync was created), ms since the Unix epoch.
    pub changed_at_ms: i64,
    /// The table's latest initial sync or catch-up, if one was asked for (`None`: files are
    /// exported as they come, with no baseline; syncs made before initial syncs existed, or
    /// control with initial syncs off).
    pub baseline: Option<Baseline>,
    /// While the table is off: the offset of the cut record written when it was turned off.
    /// Its files from there on are not kept in the lot (the archive has them); turning it back
    /// on replays them from the archive ([`Baseline::replay_from`]). `None` when off without a
    /// cut (initial syncs off): its files wait in the lot, as long as the lot keeps them.
    pub off_from: Option<i64>,
}

impl TableState {
    /// A table turned on or off at `changed_at_ms`, without a baseline.
    pub fn new(enabled: bool, changed_at_ms: i64) -> Self {
        Self { enabled, changed_at_ms, baseline: None, off_from: None }
    }
}

/// Where a table's initial sync (or catch-up) cuts the workspace's handoff partition.
///
/// Control writes a cut record (`dwsync_handoff::Cut`) for the workspace onto its handoff
/// partition and stores that record's offset here. Every handed-off file of the workspace and
/// table whose first offset is below `cut` (and, for a catch-up, at or above `replay_from`)
/// belongs to the baseline, delivered by the backfill from the archive; every file above the cut
/// is an incremental file, exported after the baseline is delivered.
///
/// - An **initial sync** (`replay_from: None`): the baseline is the table's history folded into
///   its current state (latest row per key, erased people left out, ...).
/// - A **catch-up** (`replay_from: Some(p)`, a table turned back on after a pause): the files
///   handed off while it was off, `[p, cut)`, replayed as they were, under their own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Baseline {
    /// The configuration revision that asked for it; an initial sync is known by it.
    pub epoch: u64,
    /// The workspace's handoff partition.
    pub partition: i32,
    /// The cut record's offset in that partition.
    pub cut: i64,
    /// When it was asked for, ms since the Unix epoch: the baseline's "now" (events and inbound
    /// keep the 30 days before it), so that a replay folds the same rows.
    pub at_ms: i64,
    /// A catch-up: the cut written when the table was turned off; the files from there to
    /// `cut` are replayed from the archive as they were. `None`: an initial sync.
    pub replay_from: Option<i64>,
}

impl Baseline {
    /// Whether a file of the workspace and table starting at handoff offset `first_offset`
    /// belongs to this baseline rather than to the incremental files (or, before a catch-up's
    /// range, to the files exported before the pause).
    pub fn holds(&self, first_offset: i64) -> bool {
        first_offset < self.cut && self.replay_from.is_none_or(|from| first_offset >= from)
    }
}

/// One workspace's sync configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// Whose sync it is.
    pub workspace_id: WorkspaceId,
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Where the files go.
    pub destination: Destination,
    /// Every table's state; tables missing here are treated as enabled.
    pub tables: BTreeMap<Table, TableState>,
    /// The whole sync is disabled: nothing written, nothing kept.
    pub disabled: bool,
    /// Last change, ms since the Unix epoch.
    pub updated_at_ms: i64,
    /// Incremented on every change.
    pub revision: u64,
}

/// Re-enabling the people table after its files are gone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("People file off for more than {days} days cannot be re-enabled")]
pub struct ReenableRefused {
    /// The retention, in days.
    pub days: u64,
}

impl SyncConfig {
    /// Whether `table` is exported (a table without a state is).
    pub fn is_enabled(&self, table: Table) -> bool {
        self.tables.get(&table).is_none_or(|s| s.enabled)
    }

    /// Turns `table` on or off at `now_ms`; returns whether anything changed.
    ///
    /// The people table cannot be turned on again after being off longer than `retention`
    /// (its kept files are gone), as the spec says.
    pub fn set_table(
        &mut self,
        table: Table,
        enabled: bool,
        now_ms: i64,
        retention: Duration,
    ) -> Result<bool, ReenableRefused> {
        let state = self.tables.entry(table).or_insert(TableState::new(true, now_ms));
        if state.enabled == enabled {
            return Ok(false);
        }
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        if enabled && table == Table::People && now_ms.saturating_sub(state.changed_at_ms) > retention_ms {
            return Err(ReenableRefused { days: retention.as_secs() / 86_400 });
        }
        *state = TableState { enabled, changed_at_ms: now_ms, ..*state };
        Ok(true)
    }

    /// Marks a change at `now_ms`: bumps the revision and the update time.
    pub fn touch(&mut self, now_ms: i64) {
        self.revision += 1;
        self.updated_at_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);
    const DAY_MS: i64 = 86_400_000;

    fn config() -> SyncConfig {
        SyncConfig {
            workspace_id: WorkspaceId(42),
            schema_version: SCHEMA_VERSION,
            destination: Destination {
                bucket: "b".into(),
                prefix: String::new(),
                store: Store::S3(S3Store {
                    region: "us-east-1".into(),
                    endpoint: None,
                    force_path_style: false,
                    conditional_writes: true,
                    access_key_id: "AK".into(),
                    secret_access_key: Sealed { key_id: "k".into(), nonce: vec![0; 12], ciphertext: vec![1] },
                }),
            },
            tables: BTreeMap::new(),
            disabled: false,
            updated_at_ms: 0,
            revision: 1,
        }
    }

    #[test]
    fn workspace_ids_are_positive_integers() {
        assert_eq!("42".parse::<WorkspaceId>().map(WorkspaceId::get), Ok(42));
        assert!("0".parse::<WorkspaceId>().is_err());
        assert!("-1".parse::<WorkspaceId>().is_err());
        assert!("x".parse::<WorkspaceId>().is_err());
    }

    #[test]
    fn people_cannot_come_back_after_the_retention() {
        let mut cfg = config();
        assert!(cfg.is_enabled(Table::People));
        assert_eq!(cfg.set_table(Table::People, false, 0, 7 * DAY), Ok(true));
        assert_eq!(cfg.set_table(Table::People, false, DAY_MS, 7 * DAY), Ok(false), "no change");
        let err = cfg.set_table(Table::People, true, 8 * DAY_MS, 7 * DAY).expect_err("too late");
        assert_eq!(err.to_string(), "People file off for more than 7 days cannot be re-enabled");
        assert!(!cfg.is_enabled(Table::People), "still off");
        assert_eq!(cfg.set_table(Table::People, true, 7 * DAY_MS, 7 * DAY), Ok(true), "exactly 7 days is fine");
    }

    #[test]
    fn a_baseline_holds_the_files_below_its_cut_a_catch_up_those_since_the_pause() {
        let initial = Baseline { epoch: 1, partition: 0, cut: 100, at_ms: 0, replay_from: None };
        assert!(initial.holds(0) && initial.holds(99));
        assert!(!initial.holds(100) && !initial.holds(101), "the cut and after: incremental");
        let catch_up = Baseline { replay_from: Some(40), ..initial };
        assert!(!catch_up.holds(39), "exported before the pause");
        assert!(catch_up.holds(40) && catch_up.holds(99));
        assert!(!catch_up.holds(100));
    }

    #[test]
    fn other_tables_come_back_whenever() {
        let mut cfg = config();
        assert_eq!(cfg.set_table(Table::Metrics, false, 0, 7 * DAY), Ok(true));
        assert_eq!(cfg.set_table(Table::Metrics, true, 30 * DAY_MS, 7 * DAY), Ok(true));
        assert_eq!(cfg.tables[&Table::Metrics], TableState::new(true, 30 * DAY_MS));
    }
}
