//! Output formats of dwsync: the streaming Parquet writer of the v5 files.

mod parquet_writer;

pub use parquet_writer::{Codec, FileOptions, ParquetFileWriter, ParquetOptions, WriteError, new_value_per_row};
