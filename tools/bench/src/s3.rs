//! The S3 side of the harness: a fresh bucket per scenario and the final listing that checks
//! every handed-off file is there.

use std::collections::BTreeSet;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use dwsync_s3::{Location, StaticCredentials};

use crate::services::S3Target;

/// How long an unreachable server is waited for.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// A client for the target (path-style, SigV4).
pub(crate) fn client(target: &S3Target) -> aws_sdk_s3::Client {
    let credentials = StaticCredentials::new(&target.access_key, &target.secret_key, None, None, "dwsync-bench");
    dwsync_s3::client(
        Location { region: "us-east-1", endpoint: Some(&target.endpoint), force_path_style: true },
        credentials,
    )
}

/// Creates `bucket`.
pub(crate) async fn create_bucket(client: &aws_sdk_s3::Client, target: &S3Target, bucket: &str) -> anyhow::Result<()> {
    let _ = client.create_bucket().bucket(bucket).send().await.map_err(aws_sdk_s3::Error::from).with_context(|| {
        format!(
            "cannot create bucket {bucket} on the S3 server at {} (is it running? `dev/s3 status`)",
            target.endpoint
        )
    })?;
    Ok(())
}

/// Every key in `bucket`. A server that cannot be reached (restarting) is tried again for up to
/// two minutes.
pub(crate) async fn list_keys(client: &aws_sdk_s3::Client, bucket: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    let mut token = None;
    let mut unreachable_since = None;
    loop {
        let page = match client.list_objects_v2().bucket(bucket).set_continuation_token(token.clone()).send().await {
            Ok(page) => page,
            Err(SdkError::DispatchFailure(_) | SdkError::TimeoutError(_))
                if unreachable_since.get_or_insert_with(Instant::now).elapsed() < RETRY_FOR =>
            {
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(e) => {
                return Err(anyhow::anyhow!("{}", DisplayErrorContext(e)))
                    .with_context(|| format!("cannot list bucket {bucket}"));
            }
        };
        unreachable_since = None;
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return Ok(keys);
        }
    }
}

/// Which of `keys` are in `bucket`, asked one HEAD each, `in_flight` at a time. (Listing a
/// bucket costs the local server a walk of all of it per page: hours at the ~700,000 objects of a
/// 30-minute soak.)
pub(crate) async fn existing(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    keys: Vec<String>,
    in_flight: usize,
) -> anyhow::Result<BTreeSet<String>> {
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = keys.len().div_ceil(in_flight.max(1)).max(1);
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let chunk: Vec<String> = keys.by_ref().take(per_task).collect();
        let (client, bucket) = (client.clone(), bucket.to_owned());
        let _ = tasks.spawn(async move {
            let mut found = Vec::new();
            for key in chunk {
                match client.head_object().bucket(&bucket).key(&key).send().await {
                    Ok(_) => found.push(key),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
                    Err(e) => {
                        return Err(anyhow::anyhow!("{}", DisplayErrorContext(e)))
                            .with_context(|| format!("cannot look up {key} in bucket {bucket}"));
                    }
                }
            }
            Ok(found)
        });
    }
    let mut found = BTreeSet::new();
    while let Some(task) = tasks.join_next().await {
        found.extend(task.context("a lookup task failed")??);
    }
    Ok(found)
}

/// Deletes `keys` (1,000 per request) and then `bucket` itself.
///
/// (s3s-fs keeps each object's metadata files in its root directory after the delete; that is
/// the server's limit, see docs/S3_SERVER.md.)
pub(crate) async fn delete_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let keys: Vec<&String> = keys.iter().collect();
    for batch in keys.chunks(1000) {
        let objects =
            batch.iter().map(|k| ObjectIdentifier::builder().key(k.as_str()).build()).collect::<Result<Vec<_>, _>>()?;
        let delete = Delete::builder().set_objects(Some(objects)).quiet(true).build()?;
        let _ = client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
            .with_context(|| format!("cannot delete the objects of bucket {bucket}"))?;
    }
    let _ = client
        .delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
        .with_context(|| format!("cannot delete bucket {bucket}"))?;
    Ok(())
}

/// Deletes each of `buckets` with every object in it; a failure is only reported, under `scenario`.
pub(crate) async fn delete_buckets(client: &aws_sdk_s3::Client, buckets: &[&str], scenario: &str) {
    for bucket in buckets {
        let keys = list_keys(client, bucket).await.unwrap_or_default();
        if let Err(e) = delete_bucket(client, bucket, &keys).await {
            eprintln!("[{scenario}] could not delete bucket {bucket}: {e:#}");
        }
    }
}

/// The Parquet objects of a bucket, read back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ParquetObjects {
    /// Objects whose key ends in `.parquet`.
    pub(crate) objects: u64,
    /// Their rows, from their footers.
    pub(crate) rows: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
}

/// Reads every `.parquet` object of `bucket`: how many, their rows and bytes.
pub(crate) async fn parquet_objects(client: &aws_sdk_s3::Client, bucket: &str) -> anyhow::Result<ParquetObjects> {
    let mut found = ParquetObjects::default();
    for key in list_keys(client, bucket).await?.iter().filter(|k| k.ends_with(".parquet")) {
        let object = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
            .with_context(|| format!("cannot read {key}"))?;
        let body = object.body.collect().await.with_context(|| format!("reading {key}"))?.into_bytes();
        found.bytes += body.len() as u64;
        let reader =
            parquet::file::reader::SerializedFileReader::new(body).with_context(|| format!("{key} is not Parquet"))?;
        let rows = parquet::file::reader::FileReader::metadata(&reader).file_metadata().num_rows();
        found.rows += u64::try_from(rows).with_context(|| format!("{key}: a negative row count"))?;
        found.objects += 1;
    }
    Ok(found)
}
