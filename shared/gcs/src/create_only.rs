//! Creating an object in a GCS bucket without ever overwriting one: `ifGenerationMatch=0` (the
//! object must not exist), on a single multipart request (metadata and bytes together) up to the
//! threshold, above it on a resumable upload whose final chunk is committed under the same
//! precondition. A `412` means an object was there: [`Create::Exists`], nothing changed. One call
//! is one attempt; callers retry.
//!
//! [`CreateOnly`] implements [`CreateOnlyStore`], so [`dwsync_s3::written::write_once`] tells a
//! replay from a conflict for GCS exactly as for S3.

use bytes::{BufMut as _, BytesMut};
use dwsync_s3::create_only::{Create, FileObject, Object, PartSizes, Source};
use dwsync_s3::written::CreateOnlyStore;
use dwsync_s3::{PARQUET_CONTENT_TYPE, ROWS_METADATA, SHA256_METADATA};
use reqwest::{Method, Url};

use crate::bucket::Bucket;
use dwsync_s3::error::StoreError;

use crate::error;

/// Resumable chunks are multiples of this (the API's rule; the last chunk may be shorter).
const CHUNK_GRANULE: u64 = 256 * 1024;

const INSERT: &str = "objects.insert";

/// The chunk size of resumable uploads for `part_bytes`: rounded up to a multiple of 256 KiB.
pub fn chunk_size(part_bytes: u64) -> u64 {
    part_bytes.div_ceil(CHUNK_GRANULE).max(1) * CHUNK_GRANULE
}

/// What a resumable upload's object carries besides its bytes.
#[derive(Debug, Clone, Copy)]
struct Upload<'a> {
    key: &'a str,
    sha256_hex: &'a str,
    rows: u64,
    len: u64,
}

/// Creates objects in one bucket, never overwriting.
#[derive(Debug, Clone, Copy)]
pub struct CreateOnly<'a> {
    bucket: &'a Bucket,
    parts: PartSizes,
}

impl<'a> CreateOnly<'a> {
    /// A writer into `bucket`: bodies above `parts.threshold` go as resumable uploads in chunks
    /// of [`chunk_size`]`(parts.part_bytes)`.
    pub fn new(bucket: &'a Bucket, parts: PartSizes) -> Self {
        Self { bucket, parts }
    }

    /// One attempt to create `obj` at its key without overwriting.
    pub async fn create(&self, obj: &Object) -> Result<Create, StoreError> {
        if obj.body.len() as u64 <= self.parts.threshold {
            return self.single(obj).await;
        }
        let meta = Upload { key: &obj.key, sha256_hex: &obj.sha256_hex, rows: obj.rows, len: obj.body.len() as u64 };
        self.resumable(meta, Source::Memory(&obj.body)).await
    }

    /// One attempt to create `obj` from its local file without overwriting: a body up to the
    /// threshold is read whole; a larger one goes as a resumable upload, read one chunk at a time.
    pub async fn create_file(&self, obj: &FileObject) -> Result<Create, StoreError> {
        let local = |e: std::io::Error| {
            let message = format!("{}: {e}", obj.path.display());
            error::local(INSERT, (self.bucket.name(), &obj.key), "LocalFile", message)
        };
        if obj.len <= self.parts.threshold {
            let body = bytes::Bytes::from(std::fs::read(&obj.path).map_err(local)?);
            let object = Object { key: obj.key.clone(), body, sha256_hex: obj.sha256_hex.clone(), rows: obj.rows };
            return self.single(&object).await;
        }
        let meta = Upload { key: &obj.key, sha256_hex: &obj.sha256_hex, rows: obj.rows, len: obj.len };
        self.resumable(meta, Source::File(&obj.path)).await
    }

    /// The object resource sent with the bytes: name, content type, `dwsync-*` metadata.
    fn resource(meta: Upload<'_>) -> serde_json::Value {
        serde_json::json!({
            "name": meta.key,
            "contentType": PARQUET_CONTENT_TYPE,
            "metadata": { SHA256_METADATA: meta.sha256_hex, ROWS_METADATA: meta.rows.to_string() },
        })
    }

    /// One `multipart/related` request: the resource, then the bytes.
    async fn single(&self, obj: &Object) -> Result<Create, StoreError> {
        let at = (INSERT, obj.key.as_str());
        // The boundary must not occur in the body; one made of the body's own SHA-256 cannot
        // (the body would have to contain its own hash).
        let boundary = format!("dwsync-{}", obj.sha256_hex);
        let meta = Upload { key: &obj.key, sha256_hex: &obj.sha256_hex, rows: obj.rows, len: obj.body.len() as u64 };
        let resource = Self::resource(meta).to_string();
        let mut body = BytesMut::with_capacity(obj.body.len() + resource.len() + 4 * boundary.len() + 160);
        body.put_slice(format!("--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n").as_bytes());
        body.put_slice(resource.as_bytes());
        body.put_slice(format!("\r\n--{boundary}\r\ncontent-type: {PARQUET_CONTENT_TYPE}\r\n\r\n").as_bytes());
        body.put_slice(&obj.body);
        body.put_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let url = self.bucket.upload_url("multipart", &obj.key, Some(0));
        let request = self.bucket.request(Method::POST, url, at).await?;
        let request =
            request.header("content-type", format!("multipart/related; boundary={boundary}")).body(body.freeze());
        let answer = self.bucket.send(request, at).await?;
        match answer.status().as_u16() {
            200 | 201 => Ok(Create::Created),
            412 => Ok(Create::Exists),
            _ => Err(self.bucket.failure(answer, at).await),
        }
    }

    /// A resumable upload: start a session under `ifGenerationMatch=0`, send the chunks, the
    /// last one commits (or answers `412`). An unfinished session is cancelled.
    async fn resumable(&self, meta: Upload<'_>, source: Source<'_>) -> Result<Create, StoreError> {
        let at = (INSERT, meta.key);
        let url = self.bucket.upload_url("resumable", meta.key, Some(0));
        let request = self.bucket.request(Method::POST, url, at).await?;
        let request = request
            .header("x-upload-content-type", PARQUET_CONTENT_TYPE)
            .header("x-upload-content-length", meta.len)
            .json(&Self::resource(meta));
        let answer = self.bucket.send(request, at).await?;
        match answer.status().as_u16() {
            200 | 201 => {}
            412 => return Ok(Create::Exists),
            _ => return Err(self.bucket.failure(answer, at).await),
        }
        let session = answer.headers().get("location").and_then(|l| l.to_str().ok()).and_then(|l| Url::parse(l).ok());
        let Some(session) = session.filter(|s| s.origin() == self.bucket.endpoint_url().origin()) else {
            let message = "the resumable upload's session URI is missing or not on the endpoint".to_owned();
            return Err(error::local(INSERT, (self.bucket.name(), meta.key), "BadAnswer", message));
        };
        let outcome = self.chunks(meta, source, &session).await;
        if outcome.is_err() {
            self.cancel(meta.key, session).await;
        }
        outcome
    }

    /// Sends the bytes of `source` to `session` chunk by chunk, from where the server says it is.
    async fn chunks(&self, meta: Upload<'_>, source: Source<'_>, session: &Url) -> Result<Create, StoreError> {
        let at = (INSERT, meta.key);
        let len = meta.len;
        let size = chunk_size(self.parts.part_bytes);
        let mut start = 0u64;
        loop {
            let end = len.min(start.saturating_add(size));
            let last = end == len;
            let total = if last { len.to_string() } else { "*".to_owned() };
            let range =
                if end > start { format!("bytes {start}-{}/{total}", end - 1) } else { format!("bytes */{total}") };
            let chunk = source.part(start, end).map_err(|e| {
                let message = format!("reading bytes {start}-{end}: {e}");
                error::local(INSERT, (self.bucket.name(), meta.key), "LocalFile", message)
            })?;
            let request = self.bucket.request(Method::PUT, session.clone(), at).await?;
            let request =
                request.header("content-range", range).header("content-type", PARQUET_CONTENT_TYPE).body(chunk);
            let answer = self.bucket.send(request, at).await?;
            match answer.status().as_u16() {
                200 | 201 => return Ok(Create::Created),
                412 => return Ok(Create::Exists),
                308 => {
                    // `Range: bytes=0-N`: N + 1 bytes are persisted; without it, none.
                    let persisted = answer
                        .headers()
                        .get("range")
                        .and_then(|r| r.to_str().ok())
                        .and_then(|r| r.strip_prefix("bytes=0-"))
                        .and_then(|n| n.parse::<u64>().ok())
                        .map_or(0, |n| n + 1);
                    if (persisted <= start && end > start) || persisted > len {
                        let message = format!("the upload session kept {persisted} of the first {end} bytes");
                        return Err(error::local(INSERT, (self.bucket.name(), meta.key), "NoProgress", message));
                    }
                    start = persisted;
                }
                _ => return Err(self.bucket.failure(answer, at).await),
            }
        }
    }

    /// Cancels an unfinished resumable session, best effort.
    async fn cancel(&self, key: &str, session: Url) {
        let at = ("objects.insert.cancel", key);
        let Ok(request) = self.bucket.request(Method::DELETE, session, at).await else { return };
        if let Err(err) = self.bucket.send(request, at).await {
            tracing::debug!(error = %err, "Could not cancel the resumable upload.");
        }
    }
}

impl CreateOnlyStore for CreateOnly<'_> {
    type Error = StoreError;

    async fn create(&self, obj: &Object) -> Result<Create, StoreError> {
        CreateOnly::create(self, obj).await
    }

    async fn existing_sha256(&self, key: &str) -> Result<Option<String>, StoreError> {
        let Some(meta) = self.bucket.metadata(key).await? else {
            let message = "the object the store reported as existing is gone".to_owned();
            return Err(StoreError {
                status: Some(404),
                ..error::local("objects.get", (self.bucket.name(), key), "ObjectGone", message)
            });
        };
        Ok(meta.metadata.get(SHA256_METADATA).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_multiples_of_256_kib() {
        assert_eq!(chunk_size(0), CHUNK_GRANULE);
        assert_eq!(chunk_size(1), CHUNK_GRANULE);
        assert_eq!(chunk_size(16 << 20), 16 << 20);
        assert_eq!(chunk_size((16 << 20) + 1), (16 << 20) + CHUNK_GRANULE);
    }
}
