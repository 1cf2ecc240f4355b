//! Protobuf messages of dwsync: the v5 table rows (`v5`, rendered from the contract) and the
//! internal handoff and sync-configuration records (`internal`).

/// One message per v5 table; one message is one row.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod v5 {
    include!(concat!(env!("OUT_DIR"), "/dwsync.v5.rs"));
}

/// Messages the services exchange: the file handoff and the sync configuration.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod internal {
    include!(concat!(env!("OUT_DIR"), "/dwsync.internal.v1.rs"));
}

pub use prost::Message;
pub use prost_types::Timestamp;
