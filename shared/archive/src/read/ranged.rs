//! Byte ranges of one S3 object: ranged GETs, counted, and the fetched bytes served to the
//! Parquet reader as if they were the whole file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use bytes::{Buf, Bytes};
use dwsync_s3::error::StoreError;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

use super::ReadError;

/// What reading fetched: requests and bytes, shared by every object read.
#[derive(Debug, Default)]
pub struct Fetched {
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl Fetched {
    /// Ranged GETs sent.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Bytes received.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// One object of the archive bucket, read by byte ranges.
#[derive(Debug, Clone)]
pub(crate) struct RangedObject<'a> {
    pub(crate) client: &'a aws_sdk_s3::Client,
    pub(crate) bucket: &'a str,
    pub(crate) key: &'a str,
    pub(crate) size: u64,
    pub(crate) fetched: &'a Arc<Fetched>,
}

impl RangedObject<'_> {
    /// The bytes `[start, end)` of the object, exactly (a short answer is an error).
    pub(crate) async fn get(&self, start: u64, end: u64) -> Result<Bytes, ReadError> {
        if start >= end || end > self.size {
            return Err(ReadError::unreadable(
                self.key,
                format!("range {start}..{end} outside its {} bytes", self.size),
            ));
        }
        let out = self
            .client
            .get_object()
            .bucket(self.bucket)
            .key(self.key)
            .range(format!("bytes={start}-{}", end - 1))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| ReadError::unreadable(self.key, format!("reading the body: {e}")))?
            .into_bytes();
        self.fetched.requests.fetch_add(1, Ordering::Relaxed);
        self.fetched.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        if body.len() as u64 != end - start {
            return Err(ReadError::unreadable(
                self.key,
                format!(
                    "asked bytes {start}..{end}, got {} bytes (object changed, or ranges unsupported?)",
                    body.len()
                ),
            ));
        }
        Ok(body)
    }

    fn error(&self, error: SdkError<GetObjectError>) -> ReadError {
        if matches!(&error, SdkError::ServiceError(e) if e.err().is_no_such_key())
            || dwsync_s3::error::status(&error) == Some(404)
        {
            return ReadError::Missing { bucket: self.bucket.to_owned(), key: self.key.to_owned() };
        }
        ReadError::S3(StoreError::from_sdk("GetObject", self.bucket, self.key, error))
    }
}

/// The bytes fetched of one row group, served at their place in a file of `len` bytes; any
/// read outside them is an error (the reader was given a row group it should not read).
#[derive(Debug, Clone)]
pub(crate) struct RowGroupBytes {
    pub(crate) offset: u64,
    pub(crate) bytes: Bytes,
    pub(crate) len: u64,
}

impl RowGroupBytes {
    fn slice(&self, start: u64, length: Option<usize>) -> parquet::errors::Result<Bytes> {
        let outside = || {
            ParquetError::General(format!(
                "read at {start} (+{length:?}) outside the fetched bytes {}..{}",
                self.offset,
                self.offset + self.bytes.len() as u64
            ))
        };
        let from = usize::try_from(start.checked_sub(self.offset).ok_or_else(outside)?).map_err(|_| outside())?;
        let to = match length {
            Some(length) => from.checked_add(length).ok_or_else(outside)?,
            None => self.bytes.len(),
        };
        if to > self.bytes.len() || from > to {
            return Err(outside());
        }
        Ok(self.bytes.slice(from..to))
    }
}

impl Length for RowGroupBytes {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for RowGroupBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}
