//! Output formats of dwsync: the streaming Parquet writer of the v5 files.

mod parquet_writer;

pub use parquet_writer::{Codec, FileOptions, ParquetFileWriter, ParquetOptions, WriteError};
