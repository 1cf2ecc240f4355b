//! The dwsync archive in one place: its format, shared by the archiver (the writer) and the
//! readers of a workspace's history, and the fold of that history into baselines.
//!
//! - [`key`]: object keys `<prefix>/p<partition:04>/<start:020>-<end:020>/<table>[_chngs].parquet`
//!   and their parsing;
//! - [`footer`]: the `dwsync.archive` footer metadata (which row group holds which workspace);
//! - [`write`]: one archive object from a batch's files (one row group per workspace);
//! - [`location`]: where an archive is and how to read it (a service's `[archive]` section);
//! - [`partition`]: workspace → handoff partition (Kafka's murmur2 partitioner);
//! - [`purge`]: one workspace removed from the archive (objects rewritten without it);
//! - [`retention`]: how long each table is kept, and an object's archived time;
//! - [`read`]: one workspace's history, per table in archive order (or file by file in an
//!   offset range, for a catch-up), reading only the footers and that workspace's row groups;
//! - [`fold`]: what each table's baseline holds, from its history (streaming, spilling the
//!   latest-per-key folds to local disk past a memory budget);
//! - [`anonymize`]: deleted or suppressed people's rows kept without what identifies them.
//!
//! See `docs/HISTORY.md`.

pub mod anonymize;
pub mod fixture;
pub mod fold;
pub mod footer;
pub mod key;
pub mod location;
pub mod partition;
pub mod purge;
pub mod read;
pub mod retention;
#[cfg(test)]
mod testing;
pub mod write;

pub use footer::{PROVENANCE_METADATA, Provenance, SourceFile, WorkspaceRows};
pub use key::{BatchRange, ObjectKey, Part, object_key, parse_key};
pub use location::ArchiveLocation;
pub use partition::handoff_partition;
pub use read::{ArchiveReader, ArchivedFile, ReadError, TableFiles, TableHistory, TableStream, WorkspaceHistory};
