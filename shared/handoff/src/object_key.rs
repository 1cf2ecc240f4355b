//! Object keys of the exported files, as the spec names them.
//!
//! `<prefix>/<stem>_v5_<workspace_id>_<seq>.parquet`, and for the new/changes split of people,
//! objects and object types `<prefix>/<stem>_v5_chngs_<workspace_id>_<seq>.parquet`. `seq` is
//! zero-padded to 12 digits so that a listing sorts in sequence order (it grows wider past 10^12).

use dwsync_contract::{SCHEMA_VERSION, Table};
use dwsync_proto::internal::FileKind;

/// The name of the empty object written before every sync.
pub const VALIDATE_OBJECT: &str = "cio-validate";

fn join(prefix: &str, name: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") }
}

/// The key of a data file.
pub fn data_key(prefix: &str, table: Table, kind: FileKind, workspace_id: i64, seq: u64) -> String {
    let chngs = if kind == FileKind::Changes && table.def().has_change_files { "chngs_" } else { "" };
    join(prefix, &format!("{}_v{SCHEMA_VERSION}_{chngs}{workspace_id}_{seq:012}.parquet", table.stem()))
}

/// The key of one file of a table's baseline (its initial sync): the new-entity name for people,
/// objects and object types (`people_v5_<ws>_<seq>`), the table's name otherwise; `part` is the
/// second sequence of the spec's two-sequence initial metrics files
/// (`metrics_v5_<ws>_<seq1>_<seq2>`) and must be `None` for every other table.
pub fn baseline_key(prefix: &str, table: Table, workspace_id: i64, seq: u64, part: Option<u64>) -> String {
    match part {
        Some(part) => {
            join(prefix, &format!("{}_v{SCHEMA_VERSION}_{workspace_id}_{seq:012}_{part:06}.parquet", table.stem()))
        }
        None => data_key(prefix, table, FileKind::New, workspace_id, seq),
    }
}

/// The key of the `cio-validate` object.
pub fn validate_key(prefix: &str) -> String {
    join(prefix, VALIDATE_OBJECT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_spec() {
        assert_eq!(
            data_key("exports/cio", Table::Metrics, FileKind::Unspecified, 42, 7),
            "exports/cio/metrics_v5_42_000000000007.parquet"
        );
        assert_eq!(
            data_key("/a/", Table::People, FileKind::Changes, 1, 12),
            "a/people_v5_chngs_1_000000000012.parquet"
        );
        assert_eq!(data_key("", Table::People, FileKind::New, 1, 12), "people_v5_1_000000000012.parquet");
        assert_eq!(data_key("p", Table::Objects, FileKind::Changes, 9, 3), "p/object_v5_chngs_9_000000000003.parquet");
        assert_eq!(data_key("p", Table::ObjectTypes, FileKind::New, 9, 3), "p/object_types_v5_9_000000000003.parquet");
        // Tables without change files never get the infix.
        assert_eq!(data_key("p", Table::Events, FileKind::Changes, 9, 3), "p/events_v5_9_000000000003.parquet");
        assert_eq!(validate_key("exports/"), "exports/cio-validate");
        assert_eq!(validate_key(""), "cio-validate");
    }

    #[test]
    fn baseline_keys_are_new_files_or_two_sequence_metrics() {
        assert_eq!(baseline_key("p", Table::People, 1, 12, None), "p/people_v5_1_000000000012.parquet");
        assert_eq!(baseline_key("p", Table::Deliveries, 1, 12, None), "p/deliveries_v5_1_000000000012.parquet");
        assert_eq!(baseline_key("", Table::Metrics, 42, 7, Some(3)), "metrics_v5_42_000000000007_000003.parquet");
        // A baseline file sorts before the incremental files that follow it (higher seqs).
        assert!(
            baseline_key("p", Table::Metrics, 1, 99, Some(999))
                < data_key("p", Table::Metrics, FileKind::Unspecified, 1, 100)
        );
    }

    #[test]
    fn keys_sort_in_sequence_order() {
        let a = data_key("p", Table::Metrics, FileKind::Unspecified, 1, 99);
        let b = data_key("p", Table::Metrics, FileKind::Unspecified, 1, 100);
        assert!(a < b);
    }
}
