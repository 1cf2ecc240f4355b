//! What a change asks of the backfill, and asking it: the cut record first, then each table's
//! [`Baseline`] (or where it was turned off) in the configuration about to be stored.

use std::sync::Arc;

use dwsync_contract::Table;

use super::error::ApiError;
use crate::cut::{self, Cutter};
use crate::model::{Baseline, SyncConfig, TableState};

/// What a change means for one table's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ask {
    /// An initial sync: the table's history folded into a baseline, then incremental files.
    Initial,
    /// A catch-up: the files handed off since the table was turned off (at `from`) replayed
    /// from the archive, then incremental files.
    CatchUp {
        /// The cut written when the table was turned off.
        from: i64,
    },
    /// Turned off: files from the cut on are left to the archive (a catch-up replays them).
    Off,
}

/// What changing `before` into `after` asks, per table (`before` is `None` for a new sync).
/// `delivered` says whether a table's current baseline was delivered.
///
/// - a new sync, or one enabled again after being disabled: an initial sync of every enabled
///   table ("as if starting a new integration");
/// - a table turned on that never was (no baseline): an initial sync;
/// - a table turned back on after a pause with a cut ([`TableState::off_from`]): a catch-up from
///   there — or, if its previous baseline was never delivered, a new initial sync (a catch-up
///   would leave the undelivered one's files out);
/// - a table turned off: a cut, from which its files wait in the archive instead of the lot.
///
/// A table turned back on that went off without a cut (initial syncs were off) catches up from
/// the files the lot kept, as without initial syncs.
pub(super) fn asks(
    before: Option<&SyncConfig>,
    after: &SyncConfig,
    delivered: impl Fn(Table, &Baseline) -> bool,
) -> Vec<(Table, Ask)> {
    if after.disabled {
        return Vec::new();
    }
    Table::ALL
        .iter()
        .copied()
        .filter_map(|t| {
            let on = after.is_enabled(t);
            let before = match before {
                Some(before) if !before.disabled => before,
                _ => return on.then_some((t, Ask::Initial)),
            };
            let state = before.tables.get(&t).copied();
            match (before.is_enabled(t), on) {
                (true, false) => Some((t, Ask::Off)),
                (false, true) => match state.and_then(|s| s.baseline.map(|b| (b, s.off_from))) {
                    None => Some((t, Ask::Initial)),
                    Some((b, Some(from))) if delivered(t, &b) => Some((t, Ask::CatchUp { from })),
                    Some((_, Some(_))) => Some((t, Ask::Initial)),
                    Some((_, None)) => None,
                },
                _ => None,
            }
        })
        .collect()
}

/// Writes the cut record of revision `epoch` of `cfg` and records what `asks` says in each
/// table's state; does nothing without a cutter (initial syncs off) or asks.
pub(super) async fn ask(
    cutter: Option<&Arc<dyn Cutter>>,
    cfg: &mut SyncConfig,
    asks: &[(Table, Ask)],
    epoch: u64,
    now_ms: i64,
) -> Result<(), ApiError> {
    let Some(cutter) = cutter else { return Ok(()) };
    if asks.is_empty() {
        return Ok(());
    }
    let placed = cut::place(cutter, cfg.workspace_id, epoch).await?;
    let baseline =
        |replay_from| Baseline { epoch, partition: placed.partition, cut: placed.offset, at_ms: now_ms, replay_from };
    for (table, ask) in asks {
        let state = cfg.tables.entry(*table).or_insert(TableState::new(true, now_ms));
        match ask {
            Ask::Initial => {
                state.baseline = Some(baseline(None));
                state.off_from = None;
            }
            Ask::CatchUp { from } => {
                state.baseline = Some(baseline(Some(*from)));
                state.off_from = None;
            }
            Ask::Off => state.off_from = Some(placed.offset),
        }
    }
    tracing::info!(
        workspace_id = %cfg.workspace_id,
        epoch,
        partition = placed.partition,
        cut = placed.offset,
        ?asks,
        "Cut written: initial syncs, catch-ups or tables off."
    );
    Ok(())
}

/// A sync enabled again forgets the baselines of the tables that are off: they count as never
/// on, and get their own initial sync when turned on.
pub(super) fn forget_baselines_of_tables_off(cfg: &mut SyncConfig) {
    for state in cfg.tables.values_mut().filter(|s| !s.enabled) {
        state.baseline = None;
        state.off_from = None;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Destination, S3Store, SCHEMA_VERSION, Store, TableState, WorkspaceId};
    use crate::seal::Sealed;

    fn config(tables: &[(Table, bool, bool)]) -> SyncConfig {
        let baseline = Baseline { epoch: 1, partition: 0, cut: 5, at_ms: 1, replay_from: None };
        SyncConfig {
            workspace_id: WorkspaceId::new(3).expect("id"),
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
            tables: tables
                .iter()
                .map(|(t, on, based)| {
                    (
                        *t,
                        TableState {
                            enabled: *on,
                            changed_at_ms: 1,
                            baseline: based.then_some(baseline),
                            off_from: None,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
            disabled: false,
            updated_at_ms: 1,
            revision: 1,
        }
    }

    fn initial(asks: &[(Table, Ask)]) -> Vec<Table> {
        asks.iter().filter(|(_, a)| *a == Ask::Initial).map(|(t, _)| *t).collect()
    }

    fn set(cfg: &SyncConfig, table: Table, enabled: bool, off_from: Option<i64>) -> SyncConfig {
        let mut cfg = cfg.clone();
        let state = cfg.tables.entry(table).or_insert(TableState::new(true, 1));
        state.enabled = enabled;
        state.off_from = off_from;
        cfg
    }

    const DELIVERED: fn(Table, &Baseline) -> bool = |_, _| true;

    #[test]
    fn a_new_sync_gets_an_initial_sync_of_every_enabled_table() {
        let after = config(&[(Table::People, false, false)]);
        let tables = initial(&asks(None, &after, DELIVERED));
        assert_eq!(tables.len(), 14, "all but people");
        assert!(!tables.contains(&Table::People));
    }

    #[test]
    fn first_enable_is_an_initial_sync_a_resume_after_a_cut_is_a_catch_up() {
        let before = config(&[(Table::People, false, false), (Table::Metrics, true, true)]);
        // Metrics turned off: a cut.
        let after = set(&before, Table::Metrics, false, None);
        assert_eq!(asks(Some(&before), &after, DELIVERED), vec![(Table::Metrics, Ask::Off)]);
        // Turned back on after the cut at 40: a catch-up from there; people, never on: initial.
        let off = set(&before, Table::Metrics, false, Some(40));
        let on = set(&set(&off, Table::Metrics, true, Some(40)), Table::People, true, None);
        assert_eq!(
            asks(Some(&off), &on, DELIVERED),
            vec![(Table::Metrics, Ask::CatchUp { from: 40 }), (Table::People, Ask::Initial)]
        );
        // ...unless its baseline was never delivered: a new initial sync then.
        let not_yet = asks(Some(&off), &on, |t, _| t != Table::Metrics);
        assert!(not_yet.contains(&(Table::Metrics, Ask::Initial)), "{not_yet:?}");
        // Off without a cut (initial syncs were off): the lot's files catch it up; no ask.
        let on_without_cut = set(&set(&before, Table::Metrics, false, None), Table::Metrics, true, None);
        assert!(asks(Some(&set(&before, Table::Metrics, false, None)), &on_without_cut, DELIVERED).is_empty());
        assert!(asks(Some(&before), &before, DELIVERED).is_empty(), "no change, no ask");
    }

    #[test]
    fn enabling_a_disabled_sync_starts_again_and_disabled_syncs_ask_nothing() {
        let mut before = config(&[(Table::People, false, true)]);
        before.tables.get_mut(&Table::People).expect("people").off_from = Some(9);
        before.disabled = true;
        assert!(asks(None, &before, DELIVERED).is_empty(), "disabled: nothing");
        let mut after = before.clone();
        after.disabled = false;
        forget_baselines_of_tables_off(&mut after);
        assert_eq!(initial(&asks(Some(&before), &after, DELIVERED)).len(), 14);
        let people = after.tables[&Table::People];
        assert_eq!((people.baseline, people.off_from), (None, None), "off: counts as never on");
    }
}
