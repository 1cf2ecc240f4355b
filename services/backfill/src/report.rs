//! Reporting one workspace's initial syncs on the compacted topic: the backfill is its only
//! writer, and at most one job (or the scheduler, for jobs not started) writes a workspace's
//! value at a time, so each write starts from the last one read back.
//!
//! Each write is a Kafka round trip and waits until the topic's view has read it back (about
//! 50 ms on the benchmark's loaded machine), so a table's `done` is not written on its own: it
//! waits in the value for the next write — the one made before the next table that has files to
//! write ([`Reporter::flush`]), a failure, or the job's end. A job of 15 tables, 12 of them
//! without rows, writes 5 times instead of 17; a table is never reported `done` before its files
//! are in the bucket, and at most the tables without work that follow it delay its report.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dwsync_contract::Table;
use dwsync_sync_config::{Baseline, InitialState, InitialSync, InitialSyncs, KafkaStore, StoreError, WorkspaceId};

/// At most one progress report per workspace in this interval (other state changes are written
/// at once, `done` at the next write).
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One workspace's initial syncs, as this process reports them.
#[derive(Debug)]
pub struct Reporter {
    store: KafkaStore<InitialSyncs>,
    value: InitialSyncs,
    written: Option<Instant>,
    /// The value has changes not written yet (a `done`, or progress within the interval).
    pending: bool,
    max_keys: usize,
    /// The attempts of the last failure of the tables set since (their failure is replaced by
    /// `Running` when the job tries again).
    attempts: u32,
}

impl Reporter {
    /// The reporter of `workspace`, starting from its value as read so far.
    pub fn new(store: &KafkaStore<InitialSyncs>, workspace: WorkspaceId, max_keys: usize) -> Self {
        let value = store.cached(workspace).unwrap_or_else(|| InitialSyncs::new(workspace.get()));
        Self { store: store.clone(), value, written: None, pending: false, max_keys, attempts: 0 }
    }

    /// `table`'s reported initial sync, if any.
    pub fn get(&self, table: Table) -> Option<&InitialSync> {
        self.value.tables.get(&table)
    }

    /// Sets `tables` to `state` for `baseline` with no rows, files or keys (rows kept when the
    /// state is a failure), and writes if anything changed.
    async fn set(&mut self, tables: &[Table], baseline: &Baseline, state: InitialState) -> Result<(), StoreError> {
        let before = self.value.tables.clone();
        let now = now_ms();
        for table in tables {
            let entry = self.value.tables.entry(*table).or_insert_with(|| InitialSync::queued(baseline, now));
            let same = entry.epoch == baseline.epoch && entry.cut == baseline.cut;
            if let (true, InitialState::Failed { attempts, .. }) = (same, &entry.state) {
                self.attempts = self.attempts.max(*attempts);
            }
            if !same || !matches!(state, InitialState::Failed { .. }) {
                *entry = InitialSync::queued(baseline, now);
            }
            entry.state = state.clone();
        }
        if unchanged(&before, &self.value.tables) && !self.pending {
            return Ok(());
        }
        self.write().await
    }

    /// Queued (for its turn, or `waiting_for` something), unless already queued so for this
    /// baseline.
    pub async fn queued(
        &mut self,
        tables: &[Table],
        baseline: &Baseline,
        waiting_for: Option<String>,
    ) -> Result<(), StoreError> {
        self.set(tables, baseline, InitialState::Queued { waiting_for }).await
    }

    /// Running, nothing written yet.
    pub async fn running(&mut self, tables: &[Table], baseline: &Baseline) -> Result<(), StoreError> {
        self.set(tables, baseline, InitialState::Running).await
    }

    /// Failed: `attempts` is one more than the last failure of the same baseline.
    pub async fn failed(&mut self, tables: &[Table], baseline: &Baseline, reason: &str) -> Result<u32, StoreError> {
        let before = tables
            .iter()
            .filter_map(|t| self.value.tables.get(t))
            .filter(|s| s.epoch == baseline.epoch && s.cut == baseline.cut)
            .filter_map(|s| match &s.state {
                InitialState::Failed { attempts, .. } => Some(*attempts),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let attempts = before.max(self.attempts).saturating_add(1);
        self.set(tables, baseline, InitialState::Failed { reason: reason.to_owned(), attempts }).await?;
        Ok(attempts)
    }

    /// A file of `table` with `rows` rows is in the bucket at `key`: counted, and reported at
    /// most every [`PROGRESS_INTERVAL`].
    pub async fn file(&mut self, table: Table, baseline: &Baseline, key: &str, rows: u64) -> Result<(), StoreError> {
        let max_keys = self.max_keys;
        let entry = self.value.tables.entry(table).or_insert_with(|| InitialSync::queued(baseline, now_ms()));
        entry.state = InitialState::Running;
        entry.rows += rows;
        entry.files += 1;
        if entry.keys.len() < max_keys {
            entry.keys.push(key.to_owned());
        }
        if self.written.is_some_and(|at| at.elapsed() < PROGRESS_INTERVAL) {
            self.pending = true;
            return Ok(());
        }
        self.write().await
    }

    /// Writes the changes not written yet, if any: before a table that has files to write, and
    /// at the job's end.
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending { self.write().await } else { Ok(()) }
    }

    /// Every file of `table` is in the bucket: reported `done` at the next write.
    pub fn done(&mut self, table: Table, baseline: &Baseline) {
        let entry = self.value.tables.entry(table).or_insert_with(|| InitialSync::queued(baseline, now_ms()));
        entry.state = InitialState::Done;
        self.pending = true;
    }

    async fn write(&mut self) -> Result<(), StoreError> {
        let now = now_ms();
        for sync in self.value.tables.values_mut() {
            sync.updated_at_ms = sync.updated_at_ms.max(now);
        }
        self.store.write(&self.value).await?;
        self.written = Some(Instant::now());
        self.pending = false;
        Ok(())
    }
}

/// Whether two reports say the same but for their times.
fn unchanged(
    a: &std::collections::BTreeMap<Table, InitialSync>,
    b: &std::collections::BTreeMap<Table, InitialSync>,
) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ta, sa), (tb, sb))| {
            ta == tb && InitialSync { updated_at_ms: 0, ..sa.clone() } == InitialSync { updated_at_ms: 0, ..sb.clone() }
        })
}
