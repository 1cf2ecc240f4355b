//! `dwsync objects`: lists a bucket (ListObjectsV2, every page) and reads the footer of each
//! Parquet file (ranged GETs of the file's tail) to report its row count, then totals: Parquet
//! files, rows per table, `cio-validate` objects.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;

use aws_sdk_s3::Client;
use bytes::Bytes;
use dwsync_contract::Table;
use parquet::file::FOOTER_SIZE;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use tokio::task::JoinSet;

use crate::Error;
use crate::object_key::{ObjectKind, parse_key};
use crate::s3::{self, S3Args};

/// Bytes fetched from the end of a Parquet file in the first read; the footer of the files dwsync
/// writes fits, larger footers cost one more read.
const TAIL_BYTES: u64 = 64 * 1024;

/// Footers read at once.
const CONCURRENT_READS: usize = 16;

/// Arguments of `dwsync objects`.
#[derive(Debug, Clone, clap::Args)]
pub struct ObjectsArgs {
    /// S3 connection.
    #[command(flatten)]
    pub s3: S3Args,
    /// The bucket to list.
    #[arg(long)]
    pub bucket: String,
    /// List only keys starting with this prefix.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Print only the total number of rows in the Parquet files (for scripts).
    #[arg(long)]
    pub total_rows: bool,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// What the key says the object is.
    pub kind: ObjectKind,
    /// Rows from the Parquet footer (`None` for non-Parquet objects, `Err` when unreadable).
    pub rows: Option<Result<u64, String>>,
}

/// The objects under a prefix, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectsReport {
    /// Every listed object.
    pub objects: Vec<ObjectInfo>,
}

impl ObjectsReport {
    /// Number of Parquet files (by name).
    pub fn parquet_files(&self) -> usize {
        self.objects.iter().filter(|o| o.kind.is_parquet()).count()
    }

    /// Rows of the v5 data files, per table.
    pub fn rows_per_table(&self) -> BTreeMap<Table, u64> {
        let mut rows = BTreeMap::new();
        for o in &self.objects {
            if let (ObjectKind::Data(file), Some(Ok(n))) = (o.kind, &o.rows) {
                *rows.entry(file.table).or_default() += n;
            }
        }
        rows
    }

    /// Rows of all readable Parquet files.
    pub fn total_rows(&self) -> u64 {
        self.objects.iter().filter_map(|o| o.rows.as_ref()?.as_ref().ok()).sum()
    }

    /// Number of `cio-validate` objects.
    pub fn validate_objects(&self) -> usize {
        self.objects.iter().filter(|o| o.kind == ObjectKind::Validate).count()
    }

    /// Number of Parquet files whose footer could not be read.
    pub fn unreadable(&self) -> usize {
        self.objects.iter().filter(|o| matches!(o.rows, Some(Err(_)))).count()
    }
}

impl fmt::Display for ObjectsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.objects.iter().map(|o| o.key.chars().count()).max().unwrap_or(0).max(3);
        writeln!(f, "{:<width$}  {:>12}  {:>10}", "KEY", "SIZE", "ROWS")?;
        for o in &self.objects {
            let rows = match &o.rows {
                None => "-".to_owned(),
                Some(Ok(n)) => n.to_string(),
                Some(Err(e)) => format!("unreadable: {e}"),
            };
            writeln!(f, "{:<width$}  {:>12}  {:>10}", o.key, o.size, rows)?;
        }
        writeln!(f)?;
        writeln!(f, "objects: {}", self.objects.len())?;
        write!(f, "parquet files: {} ({} rows)", self.parquet_files(), self.total_rows())?;
        match self.unreadable() {
            0 => writeln!(f)?,
            n => writeln!(f, ", {n} unreadable")?,
        }
        writeln!(f, "cio-validate objects: {}", self.validate_objects())?;
        let per_table = self.rows_per_table();
        if !per_table.is_empty() {
            writeln!(f, "rows per table:")?;
            for (table, rows) in per_table {
                writeln!(f, "  {:<18} {rows:>12}", table.name())?;
            }
        }
        Ok(())
    }
}

/// Runs `dwsync objects`: credentials from the environment, the report to `out`; fails when the
/// bucket cannot be listed or a Parquet file cannot be read.
pub async fn run(args: &ObjectsArgs, out: &mut dyn Write) -> Result<(), Error> {
    let client = s3::client(&args.s3, s3::credentials_from_env()?);
    let report = report(&client, &args.bucket, &args.prefix, None).await?;
    if args.total_rows {
        writeln!(out, "{}", report.total_rows())?;
    } else {
        write!(out, "{report}")?;
    }
    match report.unreadable() {
        0 => Ok(()),
        n => Err(Error::Unreadable(n)),
    }
}

/// Lists every object under `prefix` (pages of `page_size` keys, default 1000) and reads the row
/// count of each Parquet file.
pub async fn report(
    client: &Client,
    bucket: &str,
    prefix: &str,
    page_size: Option<i32>,
) -> Result<ObjectsReport, Error> {
    let list_error = |reason: String| Error::List { bucket: bucket.to_owned(), prefix: prefix.to_owned(), reason };
    let mut pages =
        client.list_objects_v2().bucket(bucket).prefix(prefix).set_max_keys(page_size).into_paginator().send();
    let mut objects = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| list_error(s3::describe_error(&e)))?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            let size = o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
            let kind = parse_key(key);
            objects.push(ObjectInfo { key: key.to_owned(), size, kind, rows: None });
        }
    }
    read_row_counts(client, bucket, &mut objects).await;
    Ok(ObjectsReport { objects })
}

/// Fills `rows` of every Parquet object, a few footers at a time.
async fn read_row_counts(client: &Client, bucket: &str, objects: &mut [ObjectInfo]) {
    let parquet: Vec<usize> = (0..objects.len()).filter(|&i| objects[i].kind.is_parquet()).collect();
    for batch in parquet.chunks(CONCURRENT_READS) {
        let mut reads = JoinSet::new();
        for &i in batch {
            let (client, bucket, key, size) =
                (client.clone(), bucket.to_owned(), objects[i].key.clone(), objects[i].size);
            let _ = reads.spawn(async move { (i, parquet_rows(&client, &bucket, &key, size).await) });
        }
        while let Some(done) = reads.join_next().await {
            match done {
                Ok((i, rows)) => objects[i].rows = Some(rows),
                Err(e) => {
                    // A panicked read: mark the batch's unread objects.
                    for &i in batch {
                        let _ = objects[i].rows.get_or_insert_with(|| Err(format!("read task failed: {e}")));
                    }
                }
            }
        }
    }
}

/// The row count in the footer of the Parquet object `key` of `size` bytes.
async fn parquet_rows(client: &Client, bucket: &str, key: &str, size: u64) -> Result<u64, String> {
    let footer = FOOTER_SIZE as u64;
    if size < footer + 4 {
        return Err(format!("{size} bytes is too small for a Parquet file"));
    }
    let tail = get_range(client, bucket, key, size - size.min(TAIL_BYTES), size).await?;
    let last: &[u8; FOOTER_SIZE] =
        tail.get(tail.len() - FOOTER_SIZE..).and_then(|s| s.try_into().ok()).ok_or("short read")?;
    let metadata_len = FooterTail::try_new(last).map_err(|e| e.to_string())?.metadata_length() as u64;
    if metadata_len + footer + 4 > size {
        return Err(format!("footer claims {metadata_len} bytes of metadata in a {size}-byte file"));
    }
    let metadata = if metadata_len + footer <= tail.len() as u64 {
        let end = tail.len() - FOOTER_SIZE;
        tail.slice(end - metadata_len as usize..end)
    } else {
        get_range(client, bucket, key, size - footer - metadata_len, size - footer).await?
    };
    let metadata = ParquetMetaDataReader::decode_metadata(&metadata).map_err(|e| e.to_string())?;
    u64::try_from(metadata.file_metadata().num_rows()).map_err(|_| "negative row count".to_owned())
}

/// Bytes `start..end` of an object.
async fn get_range(client: &Client, bucket: &str, key: &str, start: u64, end: u64) -> Result<Bytes, String> {
    let range = format!("bytes={start}-{}", end - 1);
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(range)
        .send()
        .await
        .map_err(|e| format!("GET failed: {}", s3::describe_error(&e)))?;
    let body = object.body.collect().await.map_err(|e| format!("reading the body failed: {e}"))?.into_bytes();
    if body.len() as u64 != end - start {
        return Err(format!("asked for {} bytes, got {}", end - start, body.len()));
    }
    Ok(body)
}
