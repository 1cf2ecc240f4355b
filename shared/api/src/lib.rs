//! The control service's REST API as types: every request body and answer of
//! `services/control` (docs/CONTROL.md), declared once and used by both ends — control
//! serializes the answers and parses the requests, the CLI (`dwsync sync`, `archive`, `tokens`)
//! builds the requests and parses the answers.
//!
//! - [`sync`]: a sync as a client sends it ([`SyncSpec`]) and as the API shows it ([`SyncView`]),
//!   the workspace list, a table toggle;
//! - [`status`]: a workspace's delivery status ([`SyncStatusView`], its [`SyncState`]), its
//!   initial syncs and archive purge;
//! - [`check`]: a destination check's answer;
//! - [`tokens`]: issued workspace tokens;
//! - [`error`]: the body of every error answer.
//!
//! # Compatibility
//!
//! The wire format is the API's contract: field names, `null`s and enum strings are what
//! control has always answered. Answers are parsed leniently: unknown fields are ignored and
//! fields a server may not send (added later, or empty) default, so the CLI reads the answers of
//! older and newer servers. Requests are strict where control is (`deny_unknown_fields`).
//!
//! # The OpenAPI document
//!
//! Every type derives [`utoipa::ToSchema`]; control's handlers carry `#[utoipa::path]` and
//! control assembles the document (`services/control/src/api/openapi.rs`), served at
//! `GET /openapi.json` and checked in as `services/control/openapi.json`.
//!
//! Why `utoipa` (MIT OR Apache-2.0): the schemas come from the same serde types, honouring
//! serde's attributes (`rename_all`, `tag`, `flatten`, `default`, `skip_serializing_if`), and
//! the paths are attributes on the handlers, which stay plain axum handlers — nothing in the
//! router or the extractors changes. `aide` (with `schemars`) builds the document from the
//! router instead, which needs its own routing API (`ApiRouter`) and `OperationInput`/
//! `OperationOutput` impls for the handlers' raw extractors (control reads bodies as bytes to
//! word its own 400s), and describes error answers per handler in code; `okapi` is for Rocket.
//! `utoipa` asks nothing of the router and keeps this crate free of axum.

/// `as_str` (the name on the wire, as serde writes it) and a padded `Display` for a unit enum.
macro_rules! wire_names {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Its name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

pub mod check;
pub mod error;
pub mod status;
pub mod sync;
pub mod tokens;

pub use check::{CheckView, Checked, FailureView};
pub use error::ErrorBody;
pub use status::{ErrorView, InitialSyncView, LastCheckView, Progress, PurgeView, SyncState, SyncStatusView};
pub use sync::{
    DestinationKind, DestinationSpec, DestinationView, KindView, SyncSpec, SyncView, TableToggle, TableView,
    WorkspaceList,
};
pub use tokens::{TokenList, TokenSpec, TokenView};

/// The name of the component schema of the table names (`TableName`); its values are the v5
/// tables, which control adds to the document (this crate does not depend on the contract).
pub const TABLE_NAME_SCHEMA: &str = "TableName";

/// A reference to the `TableName` schema, for fields holding a table name.
pub(crate) fn table_name_ref() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name(TABLE_NAME_SCHEMA)
}
