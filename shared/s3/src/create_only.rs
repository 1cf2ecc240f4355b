//! Creating an object without ever overwriting one: a conditional PUT (`If-None-Match: *`) or a
//! conditionally completed multipart upload; stores without conditional writes get the weaker
//! HEAD-then-PUT. One call is one attempt; callers retry.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use crate::error::{Store, StoreError, status};
use crate::{PARQUET_CONTENT_TYPE, ROWS_METADATA, SHA256_METADATA};

/// The most parts S3 accepts in one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// A data object to create.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its key.
    pub key: String,
    /// Its bytes.
    pub body: Bytes,
    /// SHA-256 of `body`, lowercase hex (stored as `x-amz-meta-dwsync-sha256`).
    pub sha256_hex: String,
    /// Rows in the file (stored as `x-amz-meta-dwsync-rows`).
    pub rows: u64,
}

impl Object {
    fn meta(&self) -> Meta<'_> {
        Meta { key: &self.key, sha256_hex: &self.sha256_hex, rows: self.rows, len: self.body.len() as u64 }
    }
}

/// A data object to create from a local file (read part by part: never whole in memory when
/// it goes as a multipart upload).
#[derive(Debug, Clone)]
pub struct FileObject {
    /// Its key.
    pub key: String,
    /// The local file holding its bytes.
    pub path: std::path::PathBuf,
    /// Its size in bytes.
    pub len: u64,
    /// SHA-256 of its bytes, lowercase hex (stored as `x-amz-meta-dwsync-sha256`).
    pub sha256_hex: String,
    /// Rows in the file (stored as `x-amz-meta-dwsync-rows`).
    pub rows: u64,
}

/// Where a body's bytes are: in memory, or in a local file read one part at a time.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The whole body, in memory (parts are slices of it).
    Memory(&'a Bytes),
    /// A local file holding the body.
    File(&'a std::path::Path),
}

impl Source<'_> {
    /// The bytes `[start, end)`.
    pub fn part(&self, start: u64, end: u64) -> std::io::Result<Bytes> {
        match self {
            Self::Memory(body) => {
                Ok(body.slice(usize::try_from(start).unwrap_or(usize::MAX)..usize::try_from(end).unwrap_or(usize::MAX)))
            }
            Self::File(path) => {
                use std::os::unix::fs::FileExt as _;
                let file = std::fs::File::open(path)?;
                let mut buffer = vec![0; usize::try_from(end - start).unwrap_or(usize::MAX)];
                file.read_exact_at(&mut buffer, start)?;
                Ok(Bytes::from(buffer))
            }
        }
    }
}

/// What a created object carries besides its bytes.
#[derive(Debug, Clone, Copy)]
struct Meta<'a> {
    key: &'a str,
    sha256_hex: &'a str,
    rows: u64,
    len: u64,
}

/// Multipart settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSizes {
    /// Bodies larger than this go as multipart uploads.
    pub threshold: u64,
    /// Part size (raised when a body would need more than 10,000 parts).
    pub part_bytes: u64,
}

/// The part size for a body of `len` bytes: `part_bytes`, or larger to stay within 10,000 parts.
pub fn part_size(len: u64, part_bytes: u64) -> u64 {
    part_bytes.max(len.div_ceil(MAX_PARTS)).max(1)
}

/// What one attempt to create an object found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// The object was created now.
    Created,
    /// An object already was at the key; it was left alone.
    Exists,
}

/// Creates objects in one bucket with one client, never overwriting.
#[derive(Debug, Clone, Copy)]
pub struct CreateOnly<'a> {
    client: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    /// Whether the store supports `If-None-Match: *`.
    conditional: bool,
    parts: PartSizes,
}

impl<'a> CreateOnly<'a> {
    /// A writer into `bucket` through `client`; `conditional` says whether the store supports
    /// `If-None-Match: *` (else HEAD-then-PUT).
    pub fn new(client: &'a aws_sdk_s3::Client, bucket: &'a str, conditional: bool, parts: PartSizes) -> Self {
        Self { client, bucket, conditional, parts }
    }

    /// The bucket written to.
    pub fn bucket(&self) -> &str {
        self.bucket
    }

    fn error<E>(&self, operation: &'static str, key: &str, err: SdkError<E>) -> StoreError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        StoreError::from_sdk(operation, self.bucket, key, err)
    }

    /// One attempt to create `obj` at its key without overwriting.
    pub async fn create(&self, obj: &Object) -> Result<Create, StoreError> {
        let multipart = obj.body.len() as u64 > self.parts.threshold;
        // Without conditional writes this HEAD is the only guard (the weaker fallback: a writer
        // racing between it and the PUT can be overwritten). With them, it only spares a
        // replayed large file its whole upload; the conditional completion still decides.
        if (multipart || !self.conditional) && self.head(&obj.key).await?.is_some() {
            return Ok(Create::Exists);
        }
        if multipart { self.multipart(obj.meta(), Source::Memory(&obj.body)).await } else { self.put(obj).await }
    }

    /// One attempt to create `obj` from its local file without overwriting: a body up to the
    /// multipart threshold is read whole and PUT; a larger one goes as a multipart upload, read
    /// one part at a time.
    pub async fn create_file(&self, obj: &FileObject) -> Result<Create, StoreError> {
        let local = |e: std::io::Error| {
            StoreError::local(
                Store::S3,
                "ReadLocalFile",
                (self.bucket, &obj.key),
                "LocalFile",
                format!("{}: {e}", obj.path.display()),
            )
        };
        if obj.len <= self.parts.threshold {
            let body = Bytes::from(std::fs::read(&obj.path).map_err(local)?);
            let object = Object { key: obj.key.clone(), body, sha256_hex: obj.sha256_hex.clone(), rows: obj.rows };
            return self.create(&object).await;
        }
        if self.head(&obj.key).await?.is_some() {
            return Ok(Create::Exists);
        }
        let meta = Meta { key: &obj.key, sha256_hex: &obj.sha256_hex, rows: obj.rows, len: obj.len };
        self.multipart(meta, Source::File(&obj.path)).await
    }

    async fn put(&self, obj: &Object) -> Result<Create, StoreError> {
        let mut put = self
            .client
            .put_object()
            .bucket(self.bucket)
            .key(&obj.key)
            .content_type(PARQUET_CONTENT_TYPE)
            .metadata(SHA256_METADATA, &obj.sha256_hex)
            .metadata(ROWS_METADATA, obj.rows.to_string())
            .body(ByteStream::from(obj.body.clone()));
        if self.conditional {
            put = put.if_none_match("*");
        }
        match put.send().await {
            Ok(_) => Ok(Create::Created),
            Err(err) if status(&err) == Some(412) => Ok(Create::Exists),
            Err(err) => Err(self.error("PutObject", &obj.key, err)),
        }
    }

    async fn multipart(&self, obj: Meta<'_>, source: Source<'_>) -> Result<Create, StoreError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(self.bucket)
            .key(obj.key)
            .content_type(PARQUET_CONTENT_TYPE)
            .metadata(SHA256_METADATA, obj.sha256_hex)
            .metadata(ROWS_METADATA, obj.rows.to_string())
            .send()
            .await
            .map_err(|e| self.error("CreateMultipartUpload", obj.key, e))?;
        let Some(upload_id) = created.upload_id() else {
            return Err(StoreError::local(
                Store::S3,
                "CreateMultipartUpload",
                (self.bucket, obj.key),
                "NoUploadId",
                "the response has no upload id".to_owned(),
            ));
        };
        let outcome = self.upload_parts(obj, source, upload_id).await;
        if !matches!(outcome, Ok(Create::Created)) {
            self.abort(obj.key, upload_id).await;
        }
        outcome
    }

    async fn upload_parts(&self, obj: Meta<'_>, source: Source<'_>, upload_id: &str) -> Result<Create, StoreError> {
        let len = obj.len;
        let size = usize::try_from(part_size(len, self.parts.part_bytes)).unwrap_or(usize::MAX);
        let mut parts = Vec::new();
        for (index, start) in (0..len).step_by(size).enumerate() {
            let number = i32::try_from(index + 1).unwrap_or(i32::MAX);
            let body = source.part(start, len.min(start.saturating_add(size as u64))).map_err(|e| {
                StoreError::local(
                    Store::S3,
                    "UploadPart",
                    (self.bucket, obj.key),
                    "LocalFile",
                    format!("reading part {number}: {e}"),
                )
            })?;
            let uploaded = self
                .client
                .upload_part()
                .bucket(self.bucket)
                .key(obj.key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| self.error("UploadPart", obj.key, e))?;
            parts.push(
                CompletedPart::builder().part_number(number).set_e_tag(uploaded.e_tag().map(str::to_owned)).build(),
            );
        }
        let mut complete = self
            .client
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(obj.key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
        if self.conditional {
            complete = complete.if_none_match("*");
        }
        match complete.send().await {
            Ok(_) => Ok(Create::Created),
            Err(err) if status(&err) == Some(412) => Ok(Create::Exists),
            Err(err) => Err(self.error("CompleteMultipartUpload", obj.key, err)),
        }
    }

    /// Aborts an unfinished upload, best effort: a store may already have dropped it.
    async fn abort(&self, key: &str, upload_id: &str) {
        let abort = self.client.abort_multipart_upload().bucket(self.bucket).key(key).upload_id(upload_id);
        if let Err(err) = abort.send().await {
            let err = self.error("AbortMultipartUpload", key, err);
            tracing::debug!(error = %err, "Could not abort the multipart upload.");
        }
    }

    /// The object's metadata, `None` when there is no object at `key`.
    pub async fn head(&self, key: &str) -> Result<Option<HeadObjectOutput>, StoreError> {
        match self.client.head_object().bucket(self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(out)),
            Err(err) if status(&err) == Some(404) => Ok(None),
            Err(err) => Err(self.error("HeadObject", key, err)),
        }
    }
}

impl crate::written::CreateOnlyStore for CreateOnly<'_> {
    type Error = StoreError;

    async fn create(&self, obj: &Object) -> Result<Create, StoreError> {
        CreateOnly::create(self, obj).await
    }

    async fn existing_sha256(&self, key: &str) -> Result<Option<String>, StoreError> {
        let Some(head) = self.head(key).await? else {
            let message = "the object the store reported as existing is gone".to_owned();
            let gone = StoreError::local(Store::S3, "HeadObject", (self.bucket, key), "ObjectGone", message);
            return Err(StoreError { status: Some(404), ..gone });
        };
        Ok(head.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_to_stay_within_ten_thousand() {
        let mib = 1u64 << 20;
        assert_eq!(part_size(100 * mib, 16 * mib), 16 * mib);
        assert_eq!(part_size(0, 16 * mib), 16 * mib);
        let huge = 400_000 * mib;
        let size = part_size(huge, 16 * mib);
        assert!(size > 16 * mib && huge.div_ceil(size) <= MAX_PARTS, "{size}");
    }
}
