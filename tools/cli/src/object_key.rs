//! Reads the names of exported objects: `<prefix>/<stem>_v5_[chngs_]<workspace_id>_<seq>.parquet`
//! and `<prefix>/cio-validate`.

use dwsync_contract::{SCHEMA_VERSION, Table};
use dwsync_handoff::VALIDATE_OBJECT;

/// A data file named as the spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataFile {
    /// The table (from the file stem; `object` is the objects table).
    pub table: Table,
    /// Whether it is a `_chngs_` (changes) file.
    pub changes: bool,
    /// The workspace.
    pub workspace_id: i64,
    /// The file's sequence number.
    pub seq: u64,
}

/// What an object is, judged by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A v5 Parquet data file.
    Data(DataFile),
    /// A `.parquet` object whose name does not follow the v5 pattern.
    OtherParquet,
    /// The `cio-validate` object.
    Validate,
    /// Anything else.
    Other,
}

impl ObjectKind {
    /// Whether the object is a Parquet file (named as the spec says or not).
    pub fn is_parquet(self) -> bool {
        matches!(self, Self::Data(_) | Self::OtherParquet)
    }
}

/// Classifies an object key.
pub fn parse_key(key: &str) -> ObjectKind {
    let name = key.rsplit('/').next().unwrap_or(key);
    if name == VALIDATE_OBJECT {
        return ObjectKind::Validate;
    }
    let Some(base) = name.strip_suffix(".parquet") else {
        return ObjectKind::Other;
    };
    data_file(base).map_or(ObjectKind::OtherParquet, ObjectKind::Data)
}

fn data_file(base: &str) -> Option<DataFile> {
    let (stem, rest) = base.split_once(&format!("_v{SCHEMA_VERSION}_"))?;
    let table = Table::ALL.iter().copied().find(|t| t.stem() == stem)?;
    let (changes, rest) = match rest.strip_prefix("chngs_") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let (workspace, seq) = rest.split_once('_')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(workspace) || !all_digits(seq) {
        return None;
    }
    Some(DataFile { table, changes, workspace_id: workspace.parse().ok()?, seq: seq.parse().ok()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(table: Table, changes: bool, workspace_id: i64, seq: u64) -> ObjectKind {
        ObjectKind::Data(DataFile { table, changes, workspace_id, seq })
    }

    #[test]
    fn reads_spec_names() {
        assert_eq!(parse_key("exports/metrics_v5_42_000000000007.parquet"), data(Table::Metrics, false, 42, 7));
        assert_eq!(parse_key("people_v5_chngs_1_12.parquet"), data(Table::People, true, 1, 12));
        assert_eq!(parse_key("a/b/object_v5_chngs_9_3.parquet"), data(Table::Objects, true, 9, 3));
        assert_eq!(parse_key("p/object_types_v5_9_3.parquet"), data(Table::ObjectTypes, false, 9, 3));
        assert_eq!(parse_key("p/object_attributes_v5_9_3.parquet"), data(Table::ObjectAttributes, false, 9, 3));
        assert_eq!(parse_key("p/delivery_content_v5_1001_1.parquet"), data(Table::DeliveryContent, false, 1001, 1));
        assert_eq!(parse_key("exports/cio-validate"), ObjectKind::Validate);
        assert_eq!(parse_key("cio-validate"), ObjectKind::Validate);
    }

    #[test]
    fn other_names_are_not_data_files() {
        for key in [
            "p/objects_v5_9_3.parquet",
            "p/metrics_v4_9_3.parquet",
            "p/metrics_v5_x_3.parquet",
            "p/metrics_v5_9_3_4.parquet",
            "p/metrics_v5_-9_3.parquet",
            "p/metrics_v5_9.parquet",
        ] {
            assert_eq!(parse_key(key), ObjectKind::OtherParquet, "{key}");
        }
        assert_eq!(parse_key("p/readme.txt"), ObjectKind::Other);
        assert_eq!(parse_key("p/cio-validate.bak"), ObjectKind::Other);
        assert!(!ObjectKind::Validate.is_parquet());
    }
}
