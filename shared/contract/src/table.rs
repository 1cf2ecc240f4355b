//! The v5 tables: one definition per table — columns in the spec's order, types, nullability,
//! file stem. Every other part of dwsync (decoders, Arrow schema, Parquet writer, `.proto`
//! rendering, object keys) reads these definitions; no other field list exists.

use std::fmt;
use std::str::FromStr;

/// The value type of a column, as the spec names it, with its Arrow mapping in [`crate::schema`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Spec `INTEGER`: Arrow `Int64`, Parquet `INT64`.
    Int64,
    /// Spec `STRING`: Arrow `Utf8`, Parquet `BYTE_ARRAY (STRING)`.
    Utf8,
    /// Spec `BOOLEAN` / `Boolean`: Arrow `Boolean`.
    Boolean,
    /// Spec `TIMESTAMP`: Arrow `Timestamp(Millisecond, "UTC")`, Parquet `TIMESTAMP(MILLIS, UTC)`.
    Timestamp,
    /// Spec `LIST` / `ARRAY of STRINGS`: Arrow `List<Utf8>` with non-null elements.
    ListUtf8,
}

impl FieldType {
    /// A short human name used in error messages ("integer", "timestamp", ...).
    pub fn describe(self) -> &'static str {
        match self {
            Self::Int64 => "integer",
            Self::Utf8 => "string",
            Self::Boolean => "boolean",
            Self::Timestamp => "timestamp (RFC 3339 string or integer epoch milliseconds)",
            Self::ListUtf8 => "list of strings",
        }
    }
}

/// One column of a v5 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Column name, exactly as the spec writes it.
    pub name: &'static str,
    /// Value type.
    pub ty: FieldType,
    /// Whether the column may hold nulls (spec `Nullable` / `Optional`, or a contract decision).
    pub nullable: bool,
}

const fn req(name: &'static str, ty: FieldType) -> Field {
    Field { name, ty, nullable: false }
}

const fn opt(name: &'static str, ty: FieldType) -> Field {
    Field { name, ty, nullable: true }
}

use FieldType::{Boolean, Int64, ListUtf8, Timestamp, Utf8};

/// The contract of one table: its identity, file stem and columns.
#[derive(Debug)]
pub struct TableDef {
    /// Table name (snake case), used in config, topics and metrics.
    pub name: &'static str,
    /// File stem of the exported objects (`<stem>_v5_<workspace_id>_<seq>.parquet`).
    pub stem: &'static str,
    /// Protobuf message name of one row in `proto/dwsync/v5/tables.proto`.
    pub message: &'static str,
    /// Columns in the spec's order.
    pub fields: &'static [Field],
    /// Primary key columns as the spec ticks them (empty for `actions`, which has none).
    pub primary_key: &'static [&'static str],
    /// Whether the spec splits the table into a new-entity file and a `_chngs_` file.
    pub has_change_files: bool,
    /// Index of the `workspace_id` column (every table has one).
    pub workspace_column: usize,
}

/// Index of the column called `name` in `fields`, at compile time (fails the build when absent).
const fn column_of(fields: &[Field], name: &str) -> usize {
    let mut i = 0;
    while i < fields.len() {
        let (a, b) = (fields[i].name.as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("a table without the column")
}

impl TableDef {
    /// Index of the column called `name`, if the table has one.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

macro_rules! tables {
    ($( $variant:ident => $name:literal, stem $stem:literal, message $msg:literal,
        pk [$($pk:literal),*], chngs $chngs:literal, [$($field:expr),+ $(,)?] );+ $(;)?) => {
        /// A v5 table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Table { $(
            #[doc = concat!("The `", $name, "` table.")]
            $variant,
        )+ }

        impl Table {
            /// Every table, in the spec's order.
            pub const ALL: &'static [Table] = &[$(Table::$variant),+];

            /// The table's contract.
            pub fn def(self) -> &'static TableDef {
                match self { $(
                    Table::$variant => {
                        const FIELDS: &[Field] = &[$($field),+];
                        static DEF: TableDef = TableDef {
                            name: $name,
                            stem: $stem,
                            message: $msg,
                            fields: FIELDS,
                            primary_key: &[$($pk),*],
                            has_change_files: $chngs,
                            workspace_column: column_of(FIELDS, "workspace_id"),
                        };
                        &DEF
                    }
                )+ }
            }
        }
    };
}

tables! {
    Deliveries => "deliveries", stem "deliveries", message "Delivery", pk ["delivery_id"], chngs false, [
        req("workspace_id", Int64),
        req("delivery_id", Utf8),
        opt("internal_customer_id", Utf8),
        opt("subject_id", Utf8),
        opt("event_id", Utf8),
        req("delivery_type", Utf8),
        opt("campaign_id", Int64),
        opt("action_id", Int64),
        opt("newsletter_id", Int64),
        opt("content_id", Int64),
        opt("trigger_id", Int64),
        req("created_at", Timestamp),
        opt("transactional_message_id", Int64),
        req("seq_num", Int64),
    ];
    DeliveryContent => "delivery_content", stem "delivery_content", message "DeliveryContent", pk ["delivery_id"], chngs false, [
        req("delivery_id", Utf8),
        req("workspace_id", Int64),
        req("type", Utf8),
        opt("campaign_id", Int64),
        opt("action_id", Int64),
        opt("newsletter_id", Int64),
        opt("content_id", Int64),
        opt("from", Utf8),
        opt("reply_to", Utf8),
        opt("bcc", Utf8),
        req("recipient", Utf8),
        opt("subject", Utf8),
        req("body", Utf8),
        opt("body_amp", Utf8),
        opt("body_plain", Utf8),
        opt("preheader", Utf8),
        opt("url", Utf8),
        opt("method", Utf8),
        opt("headers", Utf8),
    ];
    Metrics => "metrics", stem "metrics", message "Metric", pk ["event_id"], chngs false, [
        req("event_id", Utf8),
        req("workspace_id", Int64),
        req("delivery_id", Utf8),
        req("metric", Utf8),
        opt("reason", Utf8),
        opt("link_id", Int64),
        opt("link_url", Utf8),
        req("created_at", Timestamp),
        req("seq_num", Int64),
        req("proxied", Boolean),
        req("prefetched", Boolean),
        req("machine", Boolean),
        opt("user_agent", Utf8),
        opt("email_client", Utf8),
        opt("inbox_domain", Utf8),
        opt("inbox_provider", Utf8),
        opt("mx_host", Utf8),
    ];
    Outputs => "outputs", stem "outputs", message "Output", pk ["output_id"], chngs false, [
        req("workspace_id", Int64),
        req("output_id", Utf8),
        req("subject_name", Utf8),
        req("output_type", Utf8),
        req("action_id", Int64),
        req("explanation", Utf8),
        opt("delivery_id", Utf8),
        opt("draft", Boolean),
        opt("link_tracked", Boolean),
        opt("split_test_index", Int64),
        opt("delay_ends_at", Timestamp),
        opt("branch_index", Int64),
        opt("manual_segment_id", Int64),
        opt("add_to_manual_segment", Boolean),
        req("created_at", Timestamp),
        req("seq_num", Int64),
    ];
    People => "people", stem "people", message "Person", pk ["internal_customer_id"], chngs true, [
        req("workspace_id", Int64),
        req("customer_id", Utf8),
        req("internal_customer_id", Utf8),
        opt("deleted", Boolean),
        opt("suppressed", Boolean),
        req("created_at", Timestamp),
        req("updated_at", Timestamp),
        opt("email_addr", Utf8),
    ];
    Subjects => "subjects", stem "subjects", message "Subject", pk ["subject_name"], chngs false, [
        req("workspace_id", Int64),
        req("subject_name", Utf8),
        opt("internal_customer_id", Utf8),
        req("campaign_type", Utf8),
        req("campaign_id", Int64),
        opt("event_id", Utf8),
        opt("trigger_id", Int64),
        req("started_campaign_at", Timestamp),
        req("created_at", Timestamp),
        req("seq_num", Int64),
    ];
    Attributes => "attributes", stem "attributes", message "Attribute", pk ["internal_customer_id"], chngs false, [
        req("workspace_id", Int64),
        req("internal_customer_id", Utf8),
        req("attribute_name", Utf8),
        req("attribute_value", Utf8),
        req("timestamp", Timestamp),
    ];
    Campaigns => "campaigns", stem "campaigns", message "Campaign", pk ["campaign_id"], chngs false, [
        req("workspace_id", Int64),
        req("campaign_id", Int64),
        req("name", Utf8),
        req("created_at", Timestamp),
        req("updated_at", Timestamp),
        req("version", Int64),
        opt("topic_names", ListUtf8),
    ];
    Broadcasts => "broadcasts", stem "broadcasts", message "Broadcast", pk ["broadcast_id"], chngs false, [
        req("workspace_id", Int64),
        req("broadcast_id", Int64),
        req("name", Utf8),
        req("created_at", Timestamp),
        req("updated_at", Timestamp),
        opt("topic_names", ListUtf8),
    ];
    Actions => "actions", stem "actions", message "Action", pk [], chngs false, [
        req("workspace_id", Int64),
        req("campaign_id", Int64),
        req("action_id", Int64),
        opt("name", Utf8),
        req("created_at", Timestamp),
        req("updated_at", Timestamp),
        req("version", Int64),
        opt("topic_names", ListUtf8),
    ];
    Objects => "objects", stem "object", message "Object", pk ["internal_object_id"], chngs true, [
        req("workspace_id", Int64),
        req("object_type_id", Int64),
        req("object_id", Utf8),
        req("internal_object_id", Utf8),
        opt("deleted", Boolean),
        req("created_at", Timestamp),
        req("updated_at", Timestamp),
    ];
    ObjectTypes => "object_types", stem "object_types", message "ObjectType", pk ["object_type_id"], chngs true, [
        req("workspace_id", Int64),
        req("object_type_id", Int64),
        req("name", Utf8),
        req("slug", Utf8),
        req("deleted", Boolean),
        req("enabled", Boolean),
        req("updated_at", Timestamp),
    ];
    ObjectAttributes => "object_attributes", stem "object_attributes", message "ObjectAttribute", pk ["internal_object_id"], chngs false, [
        req("workspace_id", Int64),
        req("object_type_id", Int64),
        req("internal_object_id", Utf8),
        req("attribute_name", Utf8),
        req("attribute_value", Utf8),
        req("timestamp", Timestamp),
    ];
    Events => "events", stem "events", message "Event", pk ["event_id"], chngs false, [
        req("workspace_id", Int64),
        req("event_id", Utf8),
        req("internal_customer_id", Utf8),
        req("name", Utf8),
        req("type", Utf8),
        req("data", Utf8),
        req("timestamp", Timestamp),
        req("processed_at", Timestamp),
        req("sources", ListUtf8),
        req("source_uas", ListUtf8),
    ];
    Inbound => "inbound", stem "inbound", message "Inbound", pk ["event_id"], chngs false, [
        req("workspace_id", Int64),
        req("event_id", Utf8),
        req("internal_customer_id", Utf8),
        req("timestamp", Timestamp),
        req("processed_at", Timestamp),
        req("channel", Utf8),
        req("from", Utf8),
        req("to", Utf8),
        req("body", Utf8),
        // Contract decision: the spec marks it Required but says "if any".
        opt("keyword", Utf8),
        req("optout", Boolean),
        req("messaging_service_sid", Utf8),
        req("message_sid", Utf8),
        // Contract decision: the spec marks it Required but says it is null when unmatched.
        opt("in_reply_to_delivery_id", Utf8),
    ];
}

/// The schema version dwsync writes.
pub const SCHEMA_VERSION: u32 = 5;

impl Table {
    /// The table's name (`deliveries`, `delivery_content`, ...).
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The table's file stem (`object` for the objects table, as the spec writes it).
    pub fn stem(self) -> &'static str {
        self.def().stem
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A table name that is not one of the 15 v5 tables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown table {0:?}; expected one of the v5 tables (deliveries, delivery_content, metrics, ...)")]
pub struct UnknownTable(pub String);

impl FromStr for Table {
    type Err = UnknownTable;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Table::ALL.iter().copied().find(|t| t.name() == s).ok_or_else(|| UnknownTable(s.to_owned()))
    }
}

/// A table is written as its name (in JSON values such as the initial syncs' status, and as a
/// map key).
impl serde::Serialize for Table {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Table {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_serialized_by_name() {
        assert_eq!(serde_json::to_string(&Table::DeliveryContent).ok().as_deref(), Some(r#""delivery_content""#));
        assert_eq!(serde_json::from_str::<Table>(r#""metrics""#).ok(), Some(Table::Metrics));
        assert!(serde_json::from_str::<Table>(r#""nope""#).is_err());
    }

    #[test]
    fn fifteen_tables_with_unique_names_and_stems() {
        assert_eq!(Table::ALL.len(), 15);
        let mut names: Vec<_> = Table::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 15);
        assert_eq!(Table::Objects.stem(), "object");
        assert_eq!(Table::ObjectTypes.stem(), "object_types");
    }

    #[test]
    fn every_table_starts_with_or_has_a_required_workspace_id() {
        for t in Table::ALL {
            let i = t.def().index_of("workspace_id").expect("workspace_id");
            let f = t.def().fields[i];
            assert_eq!((f.ty, f.nullable), (FieldType::Int64, false), "{t}");
        }
    }

    #[test]
    fn primary_keys_name_existing_columns() {
        for t in Table::ALL {
            for pk in t.def().primary_key {
                assert!(t.def().index_of(pk).is_some(), "{t}.{pk}");
            }
        }
    }

    #[test]
    fn contract_decisions_hold() {
        let f = |t: Table, n: &str| t.def().fields[t.def().index_of(n).expect(n)];
        assert!(f(Table::Inbound, "keyword").nullable);
        assert!(f(Table::Inbound, "in_reply_to_delivery_id").nullable);
        assert!(!f(Table::People, "created_at").nullable);
        assert!(!f(Table::Metrics, "proxied").nullable);
        assert_eq!(f(Table::Events, "sources").ty, FieldType::ListUtf8);
        let with_changes: Vec<_> = Table::ALL.iter().filter(|t| t.def().has_change_files).collect();
        assert_eq!(with_changes, [&Table::People, &Table::Objects, &Table::ObjectTypes]);
    }

    #[test]
    fn table_names_parse() {
        for t in Table::ALL {
            assert_eq!(t.name().parse::<Table>(), Ok(*t));
        }
        assert!("people_v5".parse::<Table>().is_err());
    }
}
