//! Renders `proto/dwsync/v5/tables.proto` from the contract, so the protobuf messages cannot
//! drift from the table definitions (a test compares the checked-in file with this rendering).

use std::fmt::Write as _;

use crate::table::{FieldType, Table};

/// The `.proto` source of the 15 v5 row messages.
pub fn render_tables_proto() -> String {
    let mut out = String::from(
        "// @generated from the dwsync v5 contract (shared/contract/src/table.rs). Do not edit by hand:\n\
         // regenerate with `DWSYNC_BLESS=1 cargo test -p dwsync-contract --lib proto_file_matches_contract`.\n\
         //\n\
         // One message per v5 table; one message = one row. Field number n is column n of the table.\n\
         // Required scalars are plain proto3 fields (absent = default value); nullable scalars are\n\
         // `optional` (absent = NULL); TIMESTAMP is google.protobuf.Timestamp (required ones must be\n\
         // set); LIST is `repeated string` (an empty nullable list is NULL).\n\
         syntax = \"proto3\";\n\npackage dwsync.v5;\n\nimport \"google/protobuf/timestamp.proto\";\n",
    );
    for table in Table::ALL {
        let def = table.def();
        let _ = write!(
            out,
            "\n// A row of the `{}` table (files `{}_v5_<workspace_id>_<seq>.parquet`).\nmessage {} {{\n",
            def.name, def.stem, def.message
        );
        for (i, f) in def.fields.iter().enumerate() {
            let ty = match f.ty {
                FieldType::Int64 => "int64",
                FieldType::Utf8 => "string",
                FieldType::Boolean => "bool",
                FieldType::Timestamp => "google.protobuf.Timestamp",
                FieldType::ListUtf8 => "repeated string",
            };
            let label = if f.nullable && matches!(f.ty, FieldType::Int64 | FieldType::Utf8 | FieldType::Boolean) {
                "optional "
            } else {
                ""
            };
            let note = if f.nullable { "" } else { " // required" };
            let _ = writeln!(out, "  {label}{ty} {} = {};{note}", f.name, i + 1);
        }
        out.push_str("}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_file_matches_contract() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/dwsync/v5/tables.proto");
        let rendered = render_tables_proto();
        if std::env::var_os("DWSYNC_BLESS").is_some() {
            std::fs::write(path, &rendered).expect("write tables.proto");
        }
        let on_disk = std::fs::read_to_string(path).expect("read tables.proto");
        assert!(
            on_disk == rendered,
            "proto/dwsync/v5/tables.proto differs from the contract; regenerate it (see its header)"
        );
    }
}
