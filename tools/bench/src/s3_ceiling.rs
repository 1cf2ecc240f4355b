//! Row 5: the S3 write ceiling — the objects of row 3 written again, straight to the same S3
//! server, with the uploader's S3 client and as many writes in flight as the uploader allows; no
//! Kafka, no Parquet. It tells the server's own PUT rate for this run's objects from dwsync's.
//!
//! Each data file becomes a PUT of its size (zeros) with the uploader's headers (content type,
//! two metadata entries, `If-None-Match: *`) under `ceiling/<its key>`, preceded by an empty
//! `cio-validate` PUT the first time its workspace's folder comes up; the run's remaining
//! `cio-validate` objects (later syncs) are written after, round-robin over the folders.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use dwsync_s3::{PARQUET_CONTENT_TYPE, ROWS_METADATA, SHA256_METADATA};
use serde::Serialize;

use crate::handoff_files::HandedOff;
use crate::report::Latency;

/// Writes in flight: the uploader's default `upload.concurrency`.
pub(crate) const IN_FLIGHT: usize = 48;

/// Where the ceiling's objects go inside the run's bucket.
pub(crate) const PREFIX: &str = "ceiling/";

/// One object to write.
#[derive(Debug, Clone, PartialEq)]
struct Put {
    key: String,
    bytes: u64,
    /// A data file (conditional create) rather than a `cio-validate` (plain overwrite).
    data: bool,
}

/// What row 5 measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct WriteCeiling {
    /// Objects written (data files and `cio-validate`).
    pub(crate) objects: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Writes in flight.
    pub(crate) in_flight: usize,
    /// Wall seconds for all of them.
    pub(crate) secs: f64,
    /// Objects per second.
    pub(crate) puts_per_sec: f64,
    /// Time per PUT (request sent → 200), ms.
    pub(crate) put: Latency,
    /// Seconds this server needs for the objects of one window close of row 3, on average
    /// (objects ÷ distinct close times ÷ PUT/s): the least any close → visible can take here.
    pub(crate) secs_per_close: f64,
}

/// The PUTs replaying row 3's objects: `files` in order, each workspace folder's first
/// `cio-validate` before its first file, the other `validates` after.
fn plan(files: &[HandedOff], validates: u64) -> Vec<Put> {
    let mut folders: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    let mut puts = Vec::with_capacity(files.len() + validates as usize);
    let validate = |folder: &str| Put { key: format!("{PREFIX}{folder}/cio-validate"), bytes: 0, data: false };
    for f in files {
        let folder = f.key.rsplit_once('/').map_or("", |(folder, _)| folder);
        if (folders.len() as u64) < validates && seen.insert(folder) {
            folders.push(folder);
            puts.push(validate(folder));
        }
        puts.push(Put { key: format!("{PREFIX}{}", f.key), bytes: f.bytes, data: true });
    }
    let rest = validates.saturating_sub(folders.len() as u64) as usize;
    puts.extend(folders.iter().cycle().take(if folders.is_empty() { 0 } else { rest }).map(|f| validate(f)));
    puts
}

/// Writes row 3's objects again under [`PREFIX`] in `bucket` and returns the figures and the
/// keys written, once per PUT (for the clean-up).
pub(crate) async fn run(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    files: &[HandedOff],
    validates: u64,
) -> anyhow::Result<(WriteCeiling, Vec<String>)> {
    let puts = Arc::new(plan(files, validates));
    let largest = puts.iter().map(|p| p.bytes).max().unwrap_or(0);
    let zeros = Bytes::from(vec![0u8; usize::try_from(largest)?]);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT.min(puts.len()) {
        let (client, bucket, puts, next, zeros) =
            (client.clone(), bucket.to_owned(), Arc::clone(&puts), Arc::clone(&next), zeros.clone());
        workers.spawn(async move {
            let mut took_ms = Vec::new();
            while let Some(p) = puts.get(next.fetch_add(1, Ordering::Relaxed)) {
                let t = Instant::now();
                put(&client, &bucket, p, zeros.slice(..p.bytes as usize)).await?;
                took_ms.push(t.elapsed().as_millis() as i64);
            }
            anyhow::Ok(took_ms)
        });
    }
    let mut took_ms = Vec::with_capacity(puts.len());
    while let Some(done) = workers.join_next().await {
        took_ms.extend(done.context("a writer task panicked")??);
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let closes = {
        let mut at: Vec<i64> = files.iter().map(|f| f.closed_at_ms).collect();
        at.sort_unstable();
        at.dedup();
        at.len().max(1)
    };
    let puts_per_sec = puts.len() as f64 / secs;
    let ceiling = WriteCeiling {
        objects: puts.len() as u64,
        bytes: puts.iter().map(|p| p.bytes).sum(),
        in_flight: IN_FLIGHT,
        secs,
        puts_per_sec,
        put: Latency::of(took_ms),
        secs_per_close: puts.len() as f64 / closes as f64 / puts_per_sec.max(1e-9),
    };
    Ok((ceiling, puts.iter().map(|p| p.key.clone()).collect()))
}

/// One PUT with the headers the uploader sends for data files (content type, its two metadata
/// entries, `If-None-Match: *`).
async fn put(client: &aws_sdk_s3::Client, bucket: &str, p: &Put, body: Bytes) -> anyhow::Result<()> {
    let mut req = client.put_object().bucket(bucket).key(&p.key).body(ByteStream::from(body));
    if p.data {
        req = req
            .content_type(PARQUET_CONTENT_TYPE)
            .metadata(SHA256_METADATA, "0".repeat(64))
            .metadata(ROWS_METADATA, "1")
            .if_none_match("*");
    }
    let _ = req
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
        .with_context(|| format!("S3 write ceiling: cannot write {bucket}/{}", p.key))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str, bytes: u64) -> HandedOff {
        HandedOff {
            key: key.to_owned(),
            table: dwsync_contract::Table::Metrics,
            rows: 1,
            bytes,
            closed_at_ms: 0,
            reason: "time".to_owned(),
        }
    }

    #[test]
    fn a_validate_before_each_folders_first_file_and_the_rest_after() {
        let files = [file("ws1/a.parquet", 10), file("ws2/b.parquet", 20), file("ws1/c.parquet", 30)];
        let keys: Vec<(String, u64, bool)> = plan(&files, 3).into_iter().map(|p| (p.key, p.bytes, p.data)).collect();
        assert_eq!(
            keys,
            [
                ("ceiling/ws1/cio-validate".to_owned(), 0, false),
                ("ceiling/ws1/a.parquet".to_owned(), 10, true),
                ("ceiling/ws2/cio-validate".to_owned(), 0, false),
                ("ceiling/ws2/b.parquet".to_owned(), 20, true),
                ("ceiling/ws1/c.parquet".to_owned(), 30, true),
                ("ceiling/ws1/cio-validate".to_owned(), 0, false),
            ]
        );
    }

    #[test]
    fn no_more_validates_than_the_run_wrote() {
        let files = [file("ws1/a.parquet", 1), file("ws2/b.parquet", 1)];
        assert_eq!(plan(&files, 1).iter().filter(|p| !p.data).count(), 1);
        assert_eq!(plan(&files, 0).len(), 2);
        assert!(plan(&[], 5).is_empty());
    }
}
