//! The footer metadata of an archive object: `dwsync.archive`, JSON, saying where its rows came
//! from and which row group holds which workspace.
//!
//! Every reader of a workspace's history reads the whole footer of each object of its partition,
//! so its size per workspace is what reading one workspace costs beyond its own rows. The
//! workspaces are therefore written as arrays, `[workspace_id, row_group, first_row, rows,
//! [[first_offset, rows], …]]` (about 40 bytes for a workspace with one file), not as named
//! fields. Objects written before (named fields, each file with its id and window close time)
//! read as they did.

use parquet::file::metadata::KeyValue;
use serde::ser::SerializeTuple;
use serde::{Deserialize, Serialize, Serializer};

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

/// One workspace's rows in an archive object; written as
/// `[workspace_id, row_group, first_row, rows, files]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "WorkspaceWire")]
pub struct WorkspaceRows {
    /// The workspace.
    pub workspace_id: i64,
    /// Its row group (`None` when its files hold no rows). Workspaces share row groups: their
    /// rows are consecutive in it from [`first_row`](Self::first_row).
    pub row_group: Option<usize>,
    /// Where its rows start in the row group (0 in objects written with one row group per
    /// workspace).
    pub first_row: u64,
    /// Its rows.
    pub rows: u64,
    /// The handed-off files its rows came from, in offset order.
    pub files: Vec<SourceFile>,
}

impl Serialize for WorkspaceRows {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(5)?;
        tuple.serialize_element(&self.workspace_id)?;
        tuple.serialize_element(&self.row_group)?;
        tuple.serialize_element(&self.first_row)?;
        tuple.serialize_element(&self.rows)?;
        tuple.serialize_element(&self.files)?;
        tuple.end()
    }
}

/// A workspace's entry as written: an array today, named fields in older objects.
#[derive(Deserialize)]
#[serde(untagged)]
enum WorkspaceWire {
    Array(i64, Option<usize>, u64, u64, Vec<SourceFile>),
    Named {
        workspace_id: i64,
        row_group: Option<usize>,
        #[serde(default)]
        first_row: u64,
        rows: u64,
        files: Vec<SourceFile>,
    },
}

impl From<WorkspaceWire> for WorkspaceRows {
    fn from(wire: WorkspaceWire) -> Self {
        match wire {
            WorkspaceWire::Array(workspace_id, row_group, first_row, rows, files)
            | WorkspaceWire::Named { workspace_id, row_group, first_row, rows, files } => {
                WorkspaceRows { workspace_id, row_group, first_row, rows, files }
            }
        }
    }
}

/// A handed-off file whose rows an archive object holds, named by its first chunk's offset in the
/// object's handoff partition; written as `[first_offset, rows]` (`[first_offset]` when its rows
/// are unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(from = "FileWire")]
pub struct SourceFile {
    /// Offset of its first chunk in the handoff partition (the uploader's `seq`).
    pub first_offset: i64,
    /// Its rows in the row group (consecutive, in file order). Absent in objects written before
    /// it was recorded; readers then cannot place a file's rows among another part's files of the
    /// same batch (see `read`).
    pub rows: Option<u64>,
}

impl Serialize for SourceFile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.rows {
            Some(rows) => (self.first_offset, rows).serialize(serializer),
            None => (self.first_offset,).serialize(serializer),
        }
    }
}

/// A file's entry as written: an array today; named fields, with the file's id and window close
/// time (no longer kept), in older objects.
#[derive(Deserialize)]
#[serde(untagged)]
enum FileWire {
    Counted(i64, u64),
    Uncounted((i64,)),
    Named {
        first_offset: i64,
        #[serde(default)]
        rows: Option<u64>,
    },
}

impl From<FileWire> for SourceFile {
    fn from(wire: FileWire) -> Self {
        match wire {
            FileWire::Counted(first_offset, rows) => SourceFile { first_offset, rows: Some(rows) },
            FileWire::Uncounted((first_offset,)) => SourceFile { first_offset, rows: None },
            FileWire::Named { first_offset, rows } => SourceFile { first_offset, rows },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provenance() -> Provenance {
        Provenance {
            topic: "dwsync.handoff".into(),
            partition: 3,
            start_offset: 10,
            end_offset: 20,
            table: "people".into(),
            kind: "changes".into(),
            workspaces: vec![
                WorkspaceRows {
                    workspace_id: 42,
                    row_group: Some(0),
                    first_row: 0,
                    rows: 5,
                    files: vec![SourceFile { first_offset: 11, rows: Some(5) }],
                },
                WorkspaceRows {
                    workspace_id: 43,
                    row_group: Some(0),
                    first_row: 5,
                    rows: 0,
                    files: vec![SourceFile { first_offset: 12, rows: None }],
                },
            ],
        }
    }

    #[test]
    fn footer_json_round_trips_as_arrays() {
        let provenance = provenance();
        let json = provenance.to_json();
        assert!(json.contains(r#""workspaces":[[42,0,0,5,[[11,5]]],[43,0,5,0,[[12]]]]"#), "{json}");
        let kv = vec![KeyValue::new(PROVENANCE_METADATA.to_owned(), json)];
        assert_eq!(Provenance::from_footer(Some(&kv)).expect("present").expect("valid"), provenance);
        assert_eq!(provenance.workspace(42).map(|w| w.rows), Some(5));
        assert!(provenance.workspace(41).is_none());
        assert!(Provenance::from_footer(None).is_none());
        let bad = vec![KeyValue::new(PROVENANCE_METADATA.to_owned(), "{".to_owned())];
        assert!(matches!(Provenance::from_footer(Some(&bad)), Some(Err(_))));
        let wrong = r#"{"topic":"t","partition":0,"start_offset":0,"end_offset":1,"table":"metrics","kind":"all",
            "workspaces":[[1,0,0]]}"#;
        let wrong = vec![KeyValue::new(PROVENANCE_METADATA.to_owned(), wrong.to_owned())];
        assert!(matches!(Provenance::from_footer(Some(&wrong)), Some(Err(_))));
    }

    #[test]
    fn footers_of_older_objects_read_as_they_did() {
        // The first archiver's footer: named fields, no rows per file, no first row.
        let first = r#"{"topic":"t","partition":0,"start_offset":0,"end_offset":1,"table":"metrics","kind":"all",
            "workspaces":[{"workspace_id":1,"row_group":0,"rows":2,"files":[{"file_id":"a","first_offset":0,"window_closed_at_ms":1}]}]}"#;
        let kv = vec![KeyValue::new(PROVENANCE_METADATA.to_owned(), first.to_owned())];
        let parsed = Provenance::from_footer(Some(&kv)).expect("present").expect("valid");
        let entry = &parsed.workspaces[0];
        assert_eq!((entry.workspace_id, entry.row_group, entry.first_row, entry.rows), (1, Some(0), 0, 2));
        assert_eq!(entry.files, vec![SourceFile { first_offset: 0, rows: None }]);
        // Packed, named: rows per file and a first row.
        let packed = r#"{"topic":"t","partition":0,"start_offset":0,"end_offset":9,"table":"metrics","kind":"all",
            "workspaces":[{"workspace_id":7,"row_group":1,"first_row":30,"rows":3,"files":[
              {"file_id":"b","first_offset":4,"window_closed_at_ms":1,"rows":2},
              {"file_id":"c","first_offset":6,"window_closed_at_ms":2,"rows":1}]},
              {"workspace_id":8,"row_group":null,"rows":0,"files":[{"file_id":"d","first_offset":7,"window_closed_at_ms":3,"rows":0}]}]}"#;
        let kv = vec![KeyValue::new(PROVENANCE_METADATA.to_owned(), packed.to_owned())];
        let parsed = Provenance::from_footer(Some(&kv)).expect("present").expect("valid");
        let entry = parsed.workspace(7).expect("workspace 7");
        assert_eq!((entry.row_group, entry.first_row, entry.rows), (Some(1), 30, 3));
        let files = vec![SourceFile { first_offset: 4, rows: Some(2) }, SourceFile { first_offset: 6, rows: Some(1) }];
        assert_eq!(entry.files, files);
        assert_eq!(
            parsed.workspace(8).map(|w| (w.row_group, w.files.clone())),
            Some((None, vec![SourceFile { first_offset: 7, rows: Some(0) }]))
        );
        // Read back and written again (a purge's rewrite), an older footer takes today's form.
        let again =
            Provenance::from_footer(Some(&vec![KeyValue::new(PROVENANCE_METADATA.to_owned(), parsed.to_json())]));
        assert_eq!(again.expect("present").expect("valid"), parsed);
        assert!(parsed.to_json().contains(r#"[7,1,30,3,[[4,2],[6,1]]]"#));
    }
}
