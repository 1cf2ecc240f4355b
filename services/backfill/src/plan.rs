//! What is to be done, from the followed configurations and the reported initial syncs: pure,
//! no I/O.
//!
//! - [`pending`]: per enabled sync, each enabled table with a baseline whose initial sync is not
//!   done for it, grouped per (workspace, epoch, cut) so one job reads the workspace's history
//!   once for all its tables; oldest `at_ms` first. Initial syncs and catch-ups (a baseline with
//!   `replay_from`) of the same (epoch, cut) share a job; each table keeps its own mode.
//! - [`replay_start`]: whether the archive reaches back to a catch-up's pause.
//! - [`choose`]: the jobs to start now, at most one per workspace and `free` in all.
//! - [`coverage`]: whether the archive has reached a cut.
//! - [`files`]: the files of a table's baseline and their keys.

use std::collections::{BTreeMap, HashMap, HashSet};

use dwsync_archive::BatchRange;
use dwsync_contract::Table;
use dwsync_sync_config::{Baseline, InitialSyncs, SyncConfig, WorkspaceId};

/// One job: a workspace's tables pending for one baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The (epoch, partition, cut, time) its tables share; `replay_from` is always `None` here:
    /// a catch-up's is in [`replays`](Self::replays).
    pub baseline: Baseline,
    /// The tables, in [`Table`]'s order.
    pub tables: Vec<Table>,
    /// The tables that are catch-ups, with their `replay_from`; the others are initial syncs.
    pub replays: BTreeMap<Table, i64>,
}

impl Work {
    /// `table`'s baseline as its configuration names it.
    pub fn baseline_of(&self, table: Table) -> Baseline {
        Baseline { replay_from: self.replays.get(&table).copied(), ..self.baseline }
    }
}

/// Whether `table`'s baseline `baseline` is still asked for by `cfg`: the sync exists, is not
/// disabled, the table is enabled and still names that baseline.
pub fn still_wanted(cfg: Option<&SyncConfig>, table: Table, baseline: &Baseline) -> bool {
    cfg.is_some_and(|cfg| {
        !cfg.disabled
            && cfg.tables.get(&table).is_some_and(|state| state.enabled && state.baseline.as_ref() == Some(baseline))
    })
}

/// Every pending job, oldest `at_ms` first (then by workspace and epoch).
pub fn pending(configs: &[SyncConfig], syncs: &HashMap<WorkspaceId, InitialSyncs>) -> Vec<Work> {
    let mut jobs: BTreeMap<(i64, WorkspaceId, u64, i64), Work> = BTreeMap::new();
    for cfg in configs.iter().filter(|cfg| !cfg.disabled) {
        let reported = syncs.get(&cfg.workspace_id);
        for (table, state) in &cfg.tables {
            let Some(baseline) = state.baseline.filter(|_| state.enabled) else { continue };
            if reported.is_some_and(|syncs| syncs.is_done(*table, &baseline)) {
                continue;
            }
            let order = (baseline.at_ms, cfg.workspace_id, baseline.epoch, baseline.cut);
            let shared = Baseline { replay_from: None, ..baseline };
            let work = jobs.entry(order).or_insert_with(|| Work {
                workspace: cfg.workspace_id,
                baseline: shared,
                tables: Vec::new(),
                replays: BTreeMap::new(),
            });
            work.tables.push(*table);
            if let Some(from) = baseline.replay_from {
                let _ = work.replays.insert(*table, from);
            }
        }
    }
    jobs.into_values().collect()
}

/// The jobs of `pending` to start now, in its order: at most `free`, none of a workspace in
/// `busy` (running, or waiting out a retry backoff), at most one per workspace.
pub fn choose(pending: Vec<Work>, busy: &HashSet<WorkspaceId>, free: usize) -> Vec<Work> {
    let mut taken: HashSet<WorkspaceId> = busy.clone();
    let mut chosen = Vec::new();
    for work in pending {
        if chosen.len() == free {
            break;
        }
        if taken.insert(work.workspace) {
            chosen.push(work);
        }
    }
    chosen
}

/// Whether the archive of a partition holds every file below a cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// A batch holds the cut record, or starts after it: every file before it is archived.
    Covered,
    /// Not yet: the archive ends at this offset (`None`: nothing archived in the partition).
    Behind(Option<i64>),
}

/// Whether `batches` (one partition's, contiguous, in offset order) cover `cut`: some batch has
/// `start <= cut < end`, or starts after the cut.
pub fn coverage(batches: &[BatchRange], cut: i64) -> Coverage {
    // A batch holding the cut (`start <= cut < end`) or starting after it: either way one that
    // ends after the cut.
    if batches.iter().any(|b| cut < b.end) {
        Coverage::Covered
    } else {
        Coverage::Behind(batches.iter().map(|b| b.end).max())
    }
}

/// The reason a job waits for the archive.
pub fn waiting_for(baseline: &Baseline, coverage: &Coverage) -> Option<String> {
    let Coverage::Behind(end) = coverage else { return None };
    let end = end.map_or_else(|| "nothing archived yet".to_owned(), |end| format!("archived up to {end}"));
    Some(format!("the archive to pass offset {} of handoff partition {} ({end})", baseline.cut, baseline.partition))
}

/// Why a catch-up replaying from `from` cannot be delivered from an archive whose batches of
/// the partition (in offset order) are `batches`: the archive starts after the pause (or holds
/// nothing), so files handed off since the pause are not in it. `None`: it reaches back.
///
/// Conservative: the first listed batch must start at or before `from`. Records between the
/// pause and the archive's first batch cannot be told apart from lost files here, so a catch-up
/// fails rather than deliver part of what was handed off.
pub fn replay_start(batches: &[BatchRange], partition: i32, from: i64) -> Option<String> {
    match batches.first() {
        Some(first) if first.start <= from => None,
        Some(first) => Some(format!(
            "the archive starts at offset {}, after the pause at {from}: files since the pause are not in the archive (handoff partition {partition})",
            first.start
        )),
        None => Some(format!(
            "the archive holds nothing before the cut, the pause began at {from}: files since the pause are not in the archive (handoff partition {partition})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use dwsync_sync_config::{Destination, InitialState, InitialSync, S3Store, Sealed, Store, TableState};

    use super::*;

    fn ws(id: i64) -> WorkspaceId {
        WorkspaceId::new(id).expect("positive")
    }

    fn baseline(epoch: u64, at_ms: i64) -> Baseline {
        Baseline { epoch, partition: 1, cut: 100 + epoch as i64, at_ms, replay_from: None }
    }

    fn config(id: i64, tables: &[(Table, bool, Option<Baseline>)]) -> SyncConfig {
        SyncConfig {
            workspace_id: ws(id),
            schema_version: dwsync_contract::SCHEMA_VERSION,
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
            tables: tables
                .iter()
                .map(|&(t, enabled, baseline)| (t, TableState { enabled, changed_at_ms: 0, baseline, off_from: None }))
                .collect(),
            disabled: false,
            updated_at_ms: 0,
            revision: 1,
        }
    }

    fn report(id: i64, table: Table, b: &Baseline, state: InitialState) -> (WorkspaceId, InitialSyncs) {
        let mut syncs = InitialSyncs::new(id);
        let _ = syncs.tables.insert(table, InitialSync { state, ..InitialSync::queued(b, 0) });
        (ws(id), syncs)
    }

    #[test]
    fn pending_work_is_enabled_tables_with_an_undone_baseline_oldest_first() {
        let (b1, b2, old) = (baseline(3, 500), baseline(4, 900), baseline(2, 100));
        let configs = vec![
            // Workspace 1: people and metrics at epoch 3, events off, campaigns without baseline,
            // deliveries done, attributes done for an older epoch only.
            config(
                1,
                &[
                    (Table::People, true, Some(b1)),
                    (Table::Metrics, true, Some(b1)),
                    (Table::Events, false, Some(b1)),
                    (Table::Campaigns, true, None),
                    (Table::Deliveries, true, Some(b1)),
                    (Table::Attributes, true, Some(b1)),
                ],
            ),
            // Workspace 2: asked for earlier (at_ms 100): first.
            config(2, &[(Table::Metrics, true, Some(old))]),
            // Workspace 3: two epochs (a table enabled later): two jobs.
            config(3, &[(Table::People, true, Some(b1)), (Table::Subjects, true, Some(b2))]),
            // Workspace 4: disabled.
            SyncConfig { disabled: true, ..config(4, &[(Table::Metrics, true, Some(b1))]) },
        ];
        let syncs: HashMap<_, _> = [
            report(1, Table::Deliveries, &b1, InitialState::Done),
            report(3, Table::People, &b1, InitialState::Failed { reason: "x".into(), attempts: 1 }),
        ]
        .into_iter()
        .collect();
        let mut syncs = syncs;
        let _ = syncs.get_mut(&ws(1)).expect("1").tables.insert(
            Table::Attributes,
            InitialSync { state: InitialState::Done, ..InitialSync::queued(&baseline(2, 500), 0) },
        );
        let work = pending(&configs, &syncs);
        let summary: Vec<(i64, u64, Vec<Table>)> =
            work.iter().map(|w| (w.workspace.get(), w.baseline.epoch, w.tables.clone())).collect();
        let sorted = |mut tables: Vec<Table>| {
            tables.sort();
            tables
        };
        assert_eq!(
            summary,
            [
                (2, 2, vec![Table::Metrics]),
                (1, 3, sorted(vec![Table::Metrics, Table::People, Table::Attributes])),
                (3, 3, vec![Table::People]),
                (3, 4, vec![Table::Subjects]),
            ]
        );
    }

    #[test]
    fn choose_takes_one_job_per_workspace_up_to_the_free_slots() {
        let work = |id, epoch| Work {
            workspace: ws(id),
            baseline: baseline(epoch, 0),
            tables: vec![Table::People],
            replays: BTreeMap::new(),
        };
        let pending = vec![work(3, 1), work(3, 2), work(1, 1), work(2, 1), work(4, 1)];
        let busy: HashSet<_> = [ws(1)].into();
        let chosen: Vec<_> =
            choose(pending.clone(), &busy, 2).iter().map(|w| (w.workspace.get(), w.baseline.epoch)).collect();
        assert_eq!(chosen, [(3, 1), (2, 1)]);
        assert!(choose(pending, &busy, 0).is_empty());
    }

    #[test]
    fn a_job_is_dropped_when_its_baseline_is_no_longer_asked_for() {
        let b = baseline(3, 0);
        let cfg = config(1, &[(Table::People, true, Some(b)), (Table::Metrics, false, Some(b))]);
        assert!(still_wanted(Some(&cfg), Table::People, &b));
        assert!(!still_wanted(Some(&cfg), Table::Metrics, &b), "turned off");
        assert!(!still_wanted(Some(&cfg), Table::People, &baseline(4, 0)), "a new epoch");
        assert!(!still_wanted(Some(&SyncConfig { disabled: true, ..cfg.clone() }), Table::People, &b), "disabled");
        assert!(!still_wanted(None, Table::People, &b), "deleted");
    }

    #[test]
    fn the_archive_covers_a_cut_once_a_batch_holds_it_or_starts_after_it() {
        let b = |start, end| BatchRange { partition: 0, start, end };
        assert_eq!(coverage(&[], 5), Coverage::Behind(None));
        assert_eq!(coverage(&[b(0, 5)], 5), Coverage::Behind(Some(5)), "the cut record is not archived yet");
        assert_eq!(coverage(&[b(0, 5), b(5, 6)], 5), Coverage::Covered, "the batch holding the cut");
        assert_eq!(coverage(&[b(0, 3), b(3, 9)], 5), Coverage::Covered);
        assert_eq!(coverage(&[b(7, 9)], 5), Coverage::Covered, "after the cut (earlier batches gone)");
        let waiting = waiting_for(
            &Baseline { epoch: 1, partition: 2, cut: 5, at_ms: 0, replay_from: None },
            &Coverage::Behind(Some(4)),
        );
        assert_eq!(waiting.as_deref(), Some("the archive to pass offset 5 of handoff partition 2 (archived up to 4)"));
        assert_eq!(waiting_for(&baseline(1, 0), &Coverage::Covered), None);
    }

    #[test]
    fn catch_ups_and_initial_syncs_of_one_cut_share_a_job_each_table_in_its_mode() {
        let b = baseline(3, 500);
        let catch_up = Baseline { replay_from: Some(40), ..b };
        let configs = vec![config(
            1,
            &[
                (Table::People, true, Some(catch_up)),
                (Table::Metrics, true, Some(b)),
                (Table::Events, true, Some(catch_up)),
            ],
        )];
        let syncs: HashMap<_, _> = [report(1, Table::Events, &catch_up, InitialState::Done)].into_iter().collect();
        let work = pending(&configs, &syncs);
        assert_eq!(work.len(), 1, "one job: {work:?}");
        let work = &work[0];
        assert_eq!(work.tables, [Table::Metrics, Table::People], "in Table's order; events' catch-up is done");
        assert_eq!(work.baseline, b, "the shared baseline has no replay_from");
        assert_eq!(work.replays, BTreeMap::from([(Table::People, 40)]));
        assert_eq!(work.baseline_of(Table::People), catch_up);
        assert_eq!(work.baseline_of(Table::Metrics), b);
        assert!(still_wanted(Some(&configs[0]), Table::People, &work.baseline_of(Table::People)));
        assert!(!still_wanted(Some(&configs[0]), Table::People, &b), "not the configured catch-up");
    }

    #[test]
    fn a_catch_up_needs_the_archive_to_reach_back_to_the_pause() {
        let b = |start, end| BatchRange { partition: 2, start, end };
        assert_eq!(replay_start(&[b(0, 10), b(10, 20)], 2, 5), None);
        assert_eq!(replay_start(&[b(5, 10)], 2, 5), None, "starting at the pause");
        assert_eq!(
            replay_start(&[b(8, 10), b(10, 20)], 2, 5).as_deref(),
            Some(
                "the archive starts at offset 8, after the pause at 5: files since the pause are not in the archive (handoff partition 2)"
            )
        );
        let none = replay_start(&[], 2, 5).expect("nothing archived");
        assert!(none.contains("files since the pause are not in the archive"), "{none}");
    }
}
