//! `dwsync objects` against the real S3 server (`dev/s3 start`).

use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use dwsync_cli::Error;
use dwsync_cli::commands::objects::report;
use dwsync_contract::{BatchBuilder, Table, decode_json};
use dwsync_format::{FileOptions, ParquetFileWriter};
use dwsync_loadgen::Generator;
use dwsync_tests::{create_bucket, s3_access_key, s3_client, s3_endpoint, s3_secret_key, unique};

/// A Parquet file of `rows` generated records of `table`.
fn parquet(table: Table, rows: u64) -> Vec<u8> {
    let mut generator = Generator::new(1);
    let mut batch = BatchBuilder::new(table);
    for n in 0..rows {
        let record = generator.record(table, 1001, n);
        batch.append(&decode_json(table, &record.json).expect("generated records decode"));
    }
    let mut writer = ParquetFileWriter::new(table, Vec::new(), &FileOptions::default()).expect("writer");
    for chunk in batch.finish().expect("batch") {
        writer.write(&chunk).expect("write");
    }
    writer.finish().expect("finish")
}

async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    let _ = client.put_object().bucket(bucket).key(key).body(ByteStream::from(body)).send().await.expect("put");
}

#[tokio::test]
async fn reports_rows_per_table_and_validate_objects() {
    let client = s3_client();
    let bucket = create_bucket(&client).await;
    put(&client, &bucket, "exports/cio-validate", Vec::new()).await;
    put(&client, &bucket, "exports/metrics_v5_1001_000000000001.parquet", parquet(Table::Metrics, 3)).await;
    put(&client, &bucket, "exports/people_v5_chngs_1001_000000000002.parquet", parquet(Table::People, 2)).await;
    put(&client, &bucket, "exports/object_v5_1001_000000000003.parquet", parquet(Table::Objects, 5)).await;
    put(&client, &bucket, "exports/notes.txt", b"not data".to_vec()).await;
    put(&client, &bucket, "elsewhere/metrics_v5_1001_000000000001.parquet", parquet(Table::Metrics, 7)).await;

    // Pages of two keys: the listing must follow the continuation tokens.
    let r = report(&client, &bucket, "exports/", Some(2)).await.expect("report");
    assert_eq!(r.objects.len(), 5, "{r}");
    assert_eq!(r.parquet_files(), 3);
    assert_eq!(r.validate_objects(), 1);
    assert_eq!(r.unreadable(), 0);
    assert_eq!(r.total_rows(), 10);
    let per_table: Vec<_> = r.rows_per_table().into_iter().collect();
    assert_eq!(per_table, [(Table::Metrics, 3), (Table::People, 2), (Table::Objects, 5)]);
    let text = r.to_string();
    assert!(text.contains("exports/people_v5_chngs_1001_000000000002.parquet"), "{text}");
    assert!(text.contains("cio-validate objects: 1"), "{text}");
    assert!(text.contains("parquet files: 3 (10 rows)"), "{text}");

    let everything = report(&client, &bucket, "", None).await.expect("report");
    assert_eq!(everything.objects.len(), 6);
    assert_eq!(everything.rows_per_table()[&Table::Metrics], 10);
}

#[tokio::test]
async fn a_broken_parquet_file_is_reported_not_fatal() {
    let client = s3_client();
    let bucket = create_bucket(&client).await;
    put(&client, &bucket, "metrics_v5_1_000000000001.parquet", parquet(Table::Metrics, 4)).await;
    put(&client, &bucket, "metrics_v5_1_000000000002.parquet", b"PAR1 this is not parquet PAR1".to_vec()).await;
    put(&client, &bucket, "metrics_v5_1_000000000003.parquet", b"tiny".to_vec()).await;
    let r = report(&client, &bucket, "", None).await.expect("report");
    assert_eq!(r.parquet_files(), 3);
    assert_eq!(r.unreadable(), 2, "{r}");
    assert_eq!(r.total_rows(), 4);
    assert!(r.to_string().contains("unreadable"));
}

#[tokio::test]
async fn a_missing_bucket_is_an_error() {
    let client = s3_client();
    let missing = unique("dwsync-missing");
    let err = report(&client, &missing, "", None).await.expect_err("missing bucket");
    assert!(matches!(err, Error::List { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing), "{err}");
}

fn dwsync(args: &[&str], secret: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dwsync"));
    let _ = cmd.args(args).env_remove("AWS_SESSION_TOKEN").env_remove("DWSYNC_S3_ENDPOINT");
    match secret {
        Some(secret) => {
            let _ = cmd.env("AWS_ACCESS_KEY_ID", s3_access_key()).env("AWS_SECRET_ACCESS_KEY", secret);
        }
        None => {
            let _ = cmd.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
        }
    }
    cmd.output().expect("run dwsync")
}

#[tokio::test]
async fn the_binary_prints_the_report_and_fails_clearly() {
    let client = s3_client();
    let bucket = create_bucket(&client).await;
    put(&client, &bucket, "p/cio-validate", Vec::new()).await;
    put(&client, &bucket, "p/events_v5_1001_000000000001.parquet", parquet(Table::Events, 6)).await;
    let endpoint = s3_endpoint();
    let secret = s3_secret_key();

    let args = ["objects", "--endpoint", &endpoint, "--bucket", &bucket, "--prefix", "p/", "--path-style"];
    let ok = dwsync(&args, Some(&secret));
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout.contains("parquet files: 1 (6 rows)") && stdout.contains("events"), "{stdout}");

    let wrong = "not-the-secret-0123456789";
    let refused = dwsync(&args, Some(wrong));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("cannot list") && stderr.contains(&bucket), "{stderr}");
    assert!(!stderr.contains(wrong) && !String::from_utf8_lossy(&refused.stdout).contains(wrong));

    let missing = unique("dwsync-missing");
    let args = ["objects", "--endpoint", &endpoint, "--bucket", &missing, "--path-style"];
    let failed = dwsync(&args, Some(&secret));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(stderr.contains(&missing) && stderr.contains(&endpoint), "{stderr}");
    assert!(!stderr.contains(&secret), "{stderr}");

    let no_credentials = dwsync(&args, None);
    assert!(!no_credentials.status.success());
    assert!(String::from_utf8_lossy(&no_credentials.stderr).contains("AWS_ACCESS_KEY_ID is not set"));
}
