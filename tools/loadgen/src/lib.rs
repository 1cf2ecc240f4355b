//! Load generator for dwsync: deterministic, realistic records of every v5 table.
//!
//! [`Generator::record`] makes record `n` of a table in a workspace as a field map, its JSON and
//! its protobuf encoding; the table's [`id_column`] holds a value unique per
//! `(workspace, table, n)`, for exactly-once checks. [`Workspaces`] spreads records over a skewed
//! set of workspaces. The `dwsync-loadgen` binary produces them to the source topics.

mod encoding_mode;
mod generator;
mod ids;
mod protobuf;
mod rng;
mod tables;
mod values;
mod vocab;
mod workspaces;

pub use encoding_mode::EncodingMode;
pub use generator::{Generator, Record};
pub use ids::id_column;
pub use protobuf::{EncodeError, encode_protobuf};
pub use workspaces::{DEFAULT_EXPONENT, FIRST_WORKSPACE_ID, Schedule, Workspaces};
