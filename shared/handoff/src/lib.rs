//! The file handoff between ingest and the uploader over the handoff topic: a finished Parquet
//! file is split into protobuf [`FileChunk`]s below the broker's message size
//! ([`chunk`]), reassembled and checked by the uploader ([`reassembly`]), and written under the
//! object key of the spec ([`object_key`]). A workspace's files are all in one partition
//! ([`partition`]); an initial sync divides it at a cut record ([`cut`]). Positions derived from its offsets keep
//! increasing across topic generations ([`generation`]).

pub mod chunk;
pub mod cut;
pub mod dead_letter;
pub mod generation;
pub mod object_key;
pub mod partition;
pub mod reassembly;

pub use chunk::{FileMeta, split};
pub use cut::{BadCut, CUT_HEADER, Cut, HandoffRecord, cut_value};
pub use dwsync_proto::internal::{FileChunk, FileKind, SourceRange};
pub use generation::{Generation, Located};
pub use object_key::{VALIDATE_OBJECT, baseline_key, data_key, validate_key};
pub use partition::handoff_partition;
pub use reassembly::{CompleteFile, HandoffError, Reassembler};
