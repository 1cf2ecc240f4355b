//! The real S3 server: the operations dwsync relies on, with SigV4 signatures checked.
#![allow(clippy::unwrap_used, missing_docs)]

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use dwsync_tests::{create_bucket, s3_client, s3_client_with_secret};

async fn get(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client.get_object().bucket(bucket).key(key).send().await.unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn put_get_head_and_list_objects() {
    let s3 = s3_client();
    let bucket = create_bucket(&s3).await;
    for key in ["exports/metrics_v5_42_1.parquet", "exports/metrics_v5_42_2.parquet", "other/cio-validate"] {
        s3.put_object().bucket(&bucket).key(key).body(ByteStream::from(key.as_bytes().to_vec())).send().await.unwrap();
    }
    assert_eq!(get(&s3, &bucket, "exports/metrics_v5_42_2.parquet").await, b"exports/metrics_v5_42_2.parquet");
    let head = s3.head_object().bucket(&bucket).key("other/cio-validate").send().await.unwrap();
    assert_eq!(head.content_length(), Some("other/cio-validate".len() as i64));
    let listed = s3.list_objects_v2().bucket(&bucket).prefix("exports/").send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["exports/metrics_v5_42_1.parquet", "exports/metrics_v5_42_2.parquet"]);
    let missing = s3.head_object().bucket(&bucket).key("nope").send().await.unwrap_err();
    assert_eq!(missing.raw_response().map(|r| r.status().as_u16()), Some(404));
}

#[tokio::test]
async fn a_wrong_secret_is_rejected() {
    let s3 = s3_client();
    let bucket = create_bucket(&s3).await;
    let intruder = s3_client_with_secret("not-the-secret");
    let err =
        intruder.put_object().bucket(&bucket).key("x").body(ByteStream::from_static(b"x")).send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "nothing was written with the wrong secret");
}

#[tokio::test]
async fn if_none_match_creates_once_and_never_overwrites() {
    let s3 = s3_client();
    let bucket = create_bucket(&s3).await;
    let put = |body: &'static [u8]| {
        s3.put_object()
            .bucket(&bucket)
            .key("deliveries_v5_7_1.parquet")
            .if_none_match("*")
            .body(ByteStream::from_static(body))
            .send()
    };
    put(b"first").await.unwrap();
    let err = put(b"second").await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(412));
    assert_eq!(get(&s3, &bucket, "deliveries_v5_7_1.parquet").await, b"first");
}

#[tokio::test]
async fn multipart_upload_completes_conditionally() {
    let s3 = s3_client();
    let bucket = create_bucket(&s3).await;
    let key = "events_v5_9_3.parquet";
    let part1 = vec![b'a'; 5 << 20];
    let part2 = b"tail".to_vec();
    let upload = |if_none_match: bool| {
        let (s3, bucket, part1, part2) = (s3.clone(), bucket.clone(), part1.clone(), part2.clone());
        async move {
            let created = s3.create_multipart_upload().bucket(&bucket).key(key).send().await.unwrap();
            let id = created.upload_id().unwrap().to_owned();
            let mut parts = Vec::new();
            for (n, body) in [(1, part1), (2, part2)] {
                let out = s3
                    .upload_part()
                    .bucket(&bucket)
                    .key(key)
                    .upload_id(&id)
                    .part_number(n)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .unwrap();
                parts.push(CompletedPart::builder().part_number(n).set_e_tag(out.e_tag().map(str::to_owned)).build());
            }
            let mut complete = s3
                .complete_multipart_upload()
                .bucket(&bucket)
                .key(key)
                .upload_id(&id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
            if if_none_match {
                complete = complete.if_none_match("*");
            }
            complete.send().await
        }
    };
    upload(true).await.unwrap();
    let mut expected = part1.clone();
    expected.extend_from_slice(&part2);
    assert_eq!(get(&s3, &bucket, key).await, expected);
    let err = upload(true).await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(412));
}
