//! `create_file` on the real S3 server (`dev/s3`, or `DWSYNC_TEST_S3_ENDPOINT`): a file larger
//! than the multipart threshold goes as a multipart upload read part by part from disk, arrives
//! byte for byte with its metadata, and is never overwritten; a small one is one PUT.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use dwsync_s3::create_only::{Create, CreateOnly, FileObject, PartSizes};

mod common;

fn client() -> aws_sdk_s3::Client {
    common::client_of(&common::endpoint(), dwsync_s3::https_client(), None, Duration::from_secs(60))
}

#[tokio::test]
async fn a_large_file_goes_part_by_part_from_disk_and_is_never_overwritten() {
    let s3 = client();
    let bucket = format!("create-file-{}", std::process::id());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mib = 1usize << 20;
    // 11 MiB + 3 bytes in parts of 5 MiB: three parts, the last one short.
    let bytes: Vec<u8> = (0..11 * mib + 3).map(|i| (i % 251) as u8).collect();
    let path = dir.path().join("big.parquet");
    std::fs::write(&path, &bytes).unwrap();
    let object = |key: &str, path: &std::path::Path, len: usize| FileObject {
        key: key.to_owned(),
        path: path.to_owned(),
        len: len as u64,
        sha256_hex: "ab".repeat(32),
        rows: 7,
    };
    let parts = PartSizes { threshold: mib as u64, part_bytes: 5 * mib as u64 };
    let writer = CreateOnly::new(&s3, &bucket, true, parts);
    let big = object("big.parquet", &path, bytes.len());
    assert_eq!(writer.create_file(&big).await.unwrap(), Create::Created);
    let got = s3.get_object().bucket(&bucket).key("big.parquet").send().await.unwrap();
    assert_eq!(got.metadata().and_then(|m| m.get("dwsync-rows")).map(String::as_str), Some("7"));
    assert!(got.body.collect().await.unwrap().into_bytes() == bytes, "byte for byte");
    // Again (a job run again): there already, left alone.
    std::fs::write(&path, vec![0u8; bytes.len()]).unwrap();
    assert_eq!(writer.create_file(&big).await.unwrap(), Create::Exists);
    let got = s3.get_object().bucket(&bucket).key("big.parquet").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes() == bytes, "not overwritten");
    // A small file: one PUT, conditional.
    let small_path = dir.path().join("small.parquet");
    std::fs::write(&small_path, b"PAR1 small").unwrap();
    let small = object("small.parquet", &small_path, 10);
    assert_eq!(writer.create_file(&small).await.unwrap(), Create::Created);
    assert_eq!(writer.create_file(&small).await.unwrap(), Create::Exists);
    // A file that is gone: a typed error naming the key, nothing created.
    let gone = object("gone.parquet", &dir.path().join("gone"), 3 * mib);
    let error = writer.create_file(&gone).await.unwrap_err();
    assert!(error.summary().contains("gone.parquet"), "{}", error.summary());
    assert!(writer.head("gone.parquet").await.unwrap().is_none());
    for key in ["big.parquet", "small.parquet"] {
        s3.delete_object().bucket(&bucket).key(key).send().await.unwrap();
    }
    s3.delete_bucket().bucket(&bucket).send().await.unwrap();
}
