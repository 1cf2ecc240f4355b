//! The footer metadata of an archive object: `dwsync.archive`, JSON, saying where its rows came
//! from and which row group holds which workspace.

use parquet::file::metadata::KeyValue;
use serde::{Deserialize, Serialize};

/// The footer key-value metadata key holding [`Provenance`] as JSON.
pub const PROVENANCE_METADATA: &str = "dwsync.archive";

/// Where an object's rows came from: the footer's `dwsync.archive` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The handoff topic.
    pub topic: String,
    /// The handoff partition.
    pub partition: i32,
    /// The batch's first offset.
    pub start_offset: i64,
    /// The offset after the batch's last record.
    pub end_offset: i64,
    /// The table.
    pub table: String,
    /// `changes` for the change files of people, objects and object types, else `all`.
    pub kind: String,
    /// Per workspace, in row group order.
    pub workspaces: Vec<WorkspaceRows>,
}

impl Provenance {
    /// The entry of `workspace_id`, if the object holds it.
    pub fn workspace(&self, workspace_id: i64) -> Option<&WorkspaceRows> {
        self.workspaces.iter().find(|w| w.workspace_id == workspace_id)
    }

    /// The provenance in a footer's key-value metadata: `None` when the key is absent,
    /// `Some(Err)` when its value is not valid provenance JSON.
    pub fn from_footer(metadata: Option<&Vec<KeyValue>>) -> Option<Result<Self, serde_json::Error>> {
        let value = metadata?.iter().find(|kv| kv.key == PROVENANCE_METADATA)?;
        Some(serde_json::from_str(value.value.as_deref().unwrap_or_default()))
    }

    /// The JSON written into the footer.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One workspace's rows in an archive object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRows {
    /// The workspace.
    pub workspace_id: i64,
    /// Its row group (`None` when its files hold no rows). Workspaces share row groups: their
    /// rows are consecutive in it from [`first_row`](Self::first_row).
    pub row_group: Option<usize>,
    /// Where its rows start in the row group (absent, 0, in objects written with one row group
    /// per workspace).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub first_row: u64,
    /// Its rows.
    pub rows: u64,
    /// The handed-off files its rows came from, in offset order.
    pub files: Vec<SourceFile>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A handed-off file whose rows an archive object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// The file's id.
    pub file_id: String,
    /// Offset of its first chunk in the handoff partition (the uploader's `seq`).
    pub first_offset: i64,
    /// When its window closed, epoch milliseconds.
    pub window_closed_at_ms: i64,
    /// Its rows in the row group (consecutive, in file order). Absent in objects written before
    /// it was recorded; readers then cannot place a file's rows among another part's files of the
    /// same batch (see `read`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_json_round_trips_and_reads_objects_without_file_rows() {
        let provenance = Provenance {
            topic: "dwsync.handoff".into(),
            partition: 3,
            start_offset: 10,
            end_offset: 20,
            table: "people".into(),
            kind: "changes".into(),
            workspaces: vec![WorkspaceRows {
                workspace_id: 42,
                row_group: Some(0),
                first_row: 0,
                rows: 5,
                files: vec![SourceFile {
                    file_id: "f".into(),
                    first_offset: 11,
                    window_closed_at_ms: 7,
                    rows: Some(5),
                }],
            }],
        };
        let kv = vec![KeyValue::new(PROVENANCE_METADATA.to_owned(), provenance.to_json())];
        assert_eq!(Provenance::from_footer(Some(&kv)).expect("present").expect("valid"), provenance);
        assert_eq!(provenance.workspace(42).map(|w| w.rows), Some(5));
        assert!(provenance.workspace(41).is_none());
        // The footer as the first archiver wrote it: no `rows` per file.
        let old = r#"{"topic":"t","partition":0,"start_offset":0,"end_offset":1,"table":"metrics","kind":"all",
            "workspaces":[{"workspace_id":1,"row_group":0,"rows":2,"files":[{"file_id":"a","first_offset":0,"window_closed_at_ms":1}]}]}"#;
        let kv = vec![KeyValue::new(PROVENANCE_METADATA.to_owned(), old.to_owned())];
        let parsed = Provenance::from_footer(Some(&kv)).expect("present").expect("valid");
        assert_eq!(parsed.workspaces[0].files[0].rows, None);
        assert!(Provenance::from_footer(None).is_none());
        let bad = vec![KeyValue::new(PROVENANCE_METADATA.to_owned(), "{".to_owned())];
        assert!(matches!(Provenance::from_footer(Some(&bad)), Some(Err(_))));
    }
}
