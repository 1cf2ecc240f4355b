//! Which tables a change gives an initial sync, and asking for them (the cut record first, then
//! each table's [`Baseline`] in the configuration about to be stored).

use std::sync::Arc;

use dwsync_contract::Table;

use super::error::ApiError;
use crate::cut::{self, Cutter};
use crate::model::{Baseline, SyncConfig};

/// The tables that need a baseline when `before` becomes `after` (`before` is `None` for a new
/// sync):
///
/// - a new sync, or one enabled again after being disabled: every enabled table ("as if starting
///   a new integration");
/// - a table turned on that was never on (it has no baseline yet).
///
/// A table turned back on after a pause has a baseline already: it catches up from the files
/// kept while it was off, not from the archive.
pub(super) fn needing_baselines(before: Option<&SyncConfig>, after: &SyncConfig) -> Vec<Table> {
    if after.disabled {
        return Vec::new();
    }
    Table::ALL
        .iter()
        .copied()
        .filter(|t| after.is_enabled(*t))
        .filter(|t| match before {
            None => true,
            Some(before) if before.disabled => true,
            Some(before) => !before.is_enabled(*t) && before.tables.get(t).is_none_or(|s| s.baseline.is_none()),
        })
        .collect()
}

/// Writes the cut record of revision `epoch` of `cfg` and records it as the baseline of
/// `tables`; does nothing without a cutter (initial syncs off) or tables.
pub(super) async fn ask(
    cutter: Option<&Arc<dyn Cutter>>,
    cfg: &mut SyncConfig,
    tables: &[Table],
    epoch: u64,
    now_ms: i64,
) -> Result<(), ApiError> {
    let Some(cutter) = cutter else { return Ok(()) };
    if tables.is_empty() {
        return Ok(());
    }
    let placed = cut::place(cutter, cfg.workspace_id, epoch).await?;
    let baseline =
        Baseline { epoch, partition: placed.partition, cut: placed.offset, at_ms: now_ms, replay_from: None };
    for table in tables {
        let state = cfg.tables.entry(*table).or_insert(crate::model::TableState::new(true, now_ms));
        state.baseline = Some(baseline);
    }
    tracing::info!(
        workspace_id = %cfg.workspace_id,
        epoch,
        partition = placed.partition,
        cut = placed.offset,
        tables = tables.len(),
        "Initial sync asked for."
    );
    Ok(())
}

/// A sync enabled again forgets the baselines of the tables that are off: they count as never
/// on, and get their own baseline when turned on.
pub(super) fn forget_baselines_of_tables_off(cfg: &mut SyncConfig) {
    for state in cfg.tables.values_mut().filter(|s| !s.enabled) {
        state.baseline = None;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Destination, SCHEMA_VERSION, TableState, WorkspaceId};
    use crate::seal::Sealed;

    fn config(tables: &[(Table, bool, bool)]) -> SyncConfig {
        let baseline = Baseline { epoch: 1, partition: 0, cut: 5, at_ms: 1, replay_from: None };
        SyncConfig {
            workspace_id: WorkspaceId::new(3).expect("id"),
            schema_version: SCHEMA_VERSION,
            destination: Destination {
                bucket: "b".into(),
                prefix: String::new(),
                region: "us-east-1".into(),
                endpoint: None,
                force_path_style: false,
                conditional_writes: true,
                access_key_id: "AK".into(),
                secret_access_key: Sealed { key_id: "k".into(), nonce: vec![0; 12], ciphertext: vec![1] },
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

    #[test]
    fn a_new_sync_gets_every_enabled_table() {
        let after = config(&[(Table::People, false, false)]);
        let tables = needing_baselines(None, &after);
        assert_eq!(tables.len(), 14, "all but people");
        assert!(!tables.contains(&Table::People));
    }

    #[test]
    fn only_tables_never_on_get_one_when_turned_on() {
        let before = config(&[(Table::People, false, false), (Table::Metrics, false, true)]);
        let mut after = before.clone();
        for t in [Table::People, Table::Metrics] {
            after.tables.insert(t, TableState { enabled: true, ..before.tables[&t] });
        }
        assert_eq!(
            needing_baselines(Some(&before), &after),
            vec![Table::People],
            "metrics was on before: it catches up"
        );
        assert!(needing_baselines(Some(&after), &after).is_empty(), "no change, no baseline");
    }

    #[test]
    fn enabling_a_disabled_sync_starts_again_and_disabled_syncs_get_none() {
        let mut before = config(&[(Table::People, false, true)]);
        before.disabled = true;
        assert!(needing_baselines(None, &before).is_empty(), "disabled: nothing");
        let mut after = before.clone();
        after.disabled = false;
        forget_baselines_of_tables_off(&mut after);
        let tables = needing_baselines(Some(&before), &after);
        assert_eq!(tables.len(), 14);
        assert_eq!(after.tables[&Table::People].baseline, None, "off: counts as never on");
    }
}
