//! Retention on the real S3 server: objects of events (30 days) are deleted once their batch is
//! older than that, every other table's are kept; a later sweep lists only what is not settled.

use std::collections::BTreeMap;

use dwsync_archive::key::{BatchRange, Part, object_key};
use dwsync_archiver::retention::{Retention, Sweeper};
use dwsync_contract::Table;
use dwsync_proto::internal::FileKind;
use dwsync_tests::{create_bucket, s3_client};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

async fn keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = client.list_objects_v2().bucket(bucket).send().await.expect("list");
    out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

#[tokio::test]
async fn events_go_after_their_retention_the_rest_stays() {
    let client = s3_client();
    let bucket = create_bucket(&client).await;
    let prefix = "archive";
    let tables = [Table::Events, Table::Metrics, Table::People, Table::Inbound];
    let mut written = Vec::new();
    for partition in [0, 3] {
        for (start, end) in [(0, 10), (10, 25)] {
            let range = BatchRange { partition, start, end };
            for table in tables {
                let key = object_key(prefix, range, Part { table, kind: FileKind::Unspecified });
                client
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .body(b"parquet".to_vec().into())
                    .send()
                    .await
                    .expect("put");
                written.push(key);
            }
        }
    }
    // A key that is not an archive key is never touched.
    client.put_object().bucket(&bucket).key("archive/p0000/README").body(Vec::new().into()).send().await.expect("put");

    let retention = Retention::new(&BTreeMap::from([("events".to_owned(), 30), ("inbound".to_owned(), 30)]));
    let mut sweeper = Sweeper::new(client.clone(), &bucket, prefix, retention);

    // A day later: nothing is old enough.
    let swept = sweeper.sweep(now_ms() + DAY_MS).await.expect("sweep");
    assert!(swept.deleted.is_empty(), "{swept:?}");
    assert_eq!(keys(&client, &bucket).await.len(), written.len() + 1);

    // 31 days later: every events and inbound object is gone, the rest stays.
    let swept = sweeper.sweep(now_ms() + 31 * DAY_MS).await.expect("sweep");
    assert_eq!(swept.deleted, BTreeMap::from([(Table::Events, 4), (Table::Inbound, 4)]));
    let left = keys(&client, &bucket).await;
    assert_eq!(left.len(), 8 + 1);
    assert!(left.iter().all(|k| !k.ends_with("/events.parquet") && !k.ends_with("/inbound.parquet")), "{left:?}");
    assert!(left.iter().any(|k| k == "archive/p0000/README"));

    // The next sweep starts where everything is settled: nothing left to list but what follows.
    let swept = sweeper.sweep(now_ms() + 32 * DAY_MS).await.expect("sweep");
    assert!(swept.deleted.is_empty());
    assert_eq!(swept.listed, 0, "{swept:?}");
}
