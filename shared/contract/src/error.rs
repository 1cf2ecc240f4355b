//! Typed decoding errors: every error names the table, the field where there is one, and the reason.

use crate::table::Table;

/// A record that could not be decoded into a row of `table`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table {table}: {kind}")]
pub struct DecodeError {
    /// The table the record was decoded for.
    pub table: Table,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

/// What was wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The bytes are not JSON at all (syntax error, bad UTF-8, trailing data).
    #[error("not valid JSON: {0}")]
    NotJson(String),
    /// The JSON value is not an object.
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// The bytes are not a valid protobuf message of the table's type.
    #[error("not a valid protobuf message: {0}")]
    NotProtobuf(String),
    /// A required field is absent.
    #[error("field `{0}`: required but missing")]
    MissingField(&'static str),
    /// A required field is present but null.
    #[error("field `{0}`: required but null")]
    NullField(&'static str),
    /// A field holds a value of another type.
    #[error("field `{field}`: expected {expected}, found {found}")]
    WrongType {
        /// Field name.
        field: &'static str,
        /// The type the contract wants.
        expected: &'static str,
        /// What the record held.
        found: &'static str,
    },
    /// A field has the right type but an unusable value (out of range, unparsable timestamp).
    #[error("field `{field}`: {reason}")]
    InvalidValue {
        /// Field name.
        field: &'static str,
        /// Why the value is unusable.
        reason: String,
    },
    /// A field appears twice in one JSON object.
    #[error("field `{0}`: appears more than once")]
    DuplicateField(&'static str),
    /// `workspace_id` is zero or negative.
    #[error("field `workspace_id`: must be a positive integer, found {0}")]
    InvalidWorkspaceId(i64),
}

impl DecodeErrorKind {
    /// A short, stable error class for metrics labels and dead-letter headers.
    pub fn class(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::NotAnObject(_) => "not_an_object",
            Self::NotProtobuf(_) => "not_protobuf",
            Self::MissingField(_) => "missing_field",
            Self::NullField(_) => "null_field",
            Self::WrongType { .. } => "wrong_type",
            Self::InvalidValue { .. } => "invalid_value",
            Self::DuplicateField(_) => "duplicate_field",
            Self::InvalidWorkspaceId(_) => "invalid_workspace_id",
        }
    }

    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::MissingField(f) | Self::NullField(f) | Self::DuplicateField(f) => Some(f),
            Self::WrongType { field, .. } | Self::InvalidValue { field, .. } => Some(field),
            Self::InvalidWorkspaceId(_) => Some("workspace_id"),
            Self::NotJson(_) | Self::NotAnObject(_) | Self::NotProtobuf(_) => None,
        }
    }
}
