//! Every object under a prefix, one `ListObjectsV2` page after another.

use crate::error::StoreError;

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its size in bytes (0 if the store does not say).
    pub size: u64,
}

/// Every object of `bucket` under `prefix`, in the store's (lexicographic) key order; one
/// attempt per page, no retries of its own.
pub async fn list_prefix(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<Listed>, StoreError> {
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("ListObjectsV2", bucket, prefix, e))?;
        listed.extend(out.contents().iter().filter_map(|o| {
            let size = o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or_default();
            o.key().map(|key| Listed { key: key.to_owned(), size })
        }));
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return Ok(listed);
        }
    }
}
