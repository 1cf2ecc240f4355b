//! A Google Cloud Storage destination end to end, on the real broker, the S3 server and the GCS
//! server (fake-gcs-server, `dev/gcs`), every service a process: a GCS sync created through the
//! API receives every row exactly once (read back from its Parquet files) beside an S3 sync;
//! a GCS destination whose bucket is missing is parked without delaying either, and delivers
//! every parked file once its bucket exists. A GCS sync created after its workspace's history
//! gets its initial sync from the archive (the backfill writing to GCS), then every new record,
//! each metric exactly once.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::initial::*;
use common::*;
use dwsync_contract::Table;
use dwsync_loadgen::Generator;

const GCS: i64 = 4101;
const S3: i64 = 4102;
const MISSING: i64 = 4103;
const TABLES: [Table; 3] = [Table::Metrics, Table::Deliveries, Table::People];

/// Rows of `ws` in its bucket now.
async fn rows(stack: &Stack, cache: &mut BTreeMap<(i64, String), Object>, ws: i64) -> usize {
    let _ = read_objects(stack, cache).await;
    cache.values().filter(|o| o.workspace == ws).map(|o| o.batch.num_rows()).sum()
}

#[tokio::test]
async fn a_gcs_sync_gets_every_row_once_beside_an_s3_sync_and_a_failing_one_waits_alone() {
    let workspaces = [GCS, S3, MISSING];
    let mut stack = Stack::with_control(&workspaces, &TABLES).await;
    stack.use_gcs(GCS).await;
    stack.use_gcs(MISSING).await;
    // MISSING's bucket is named but not there yet.
    let missing_bucket = dwsync_tests::unique("dwsync-missing");
    let _ = stack.buckets.insert(MISSING, missing_bucket.clone());
    let mut control = stack.control_with("control", &[]);
    let api = Api::new(stack.control.as_ref().unwrap());
    api.wait_ready(&mut control).await;
    for ws in workspaces {
        let body = if ws == S3 {
            Api::sync_body(ws, &stack.buckets[&ws], &dwsync_tests::s3_secret_key())
        } else {
            Api::gcs_sync_body(ws, &stack.buckets[&ws])
        };
        let (status, resp) = api.call(reqwest::Method::POST, &format!("/v1/workspaces/{ws}/sync"), Some(body)).await;
        assert_eq!(status, 201, "{resp}");
        let kind = if ws == S3 { "s3" } else { "gcs" };
        assert_eq!(resp["destination"]["kind"], kind, "{resp}");
        assert!(!resp.to_string().contains("PRIVATE KEY"), "the key is never answered");
    }
    let mut ingest = stack.ingest("ingest");
    let mut uploader = stack.uploader("uploader");
    let producer = producer();
    let mut generator = Generator::new(27);
    let mut produced = Produced::default();

    // Two rounds: GCS and S3 get each round's rows while MISSING fails.
    let mut cache = BTreeMap::new();
    let mut worst = Duration::ZERO;
    for round in 0..2u64 {
        produce(&stack, &producer, &mut generator, (&workspaces, &TABLES), round * 10..(round + 1) * 10, &mut produced)
            .await;
        let sent = Instant::now();
        for ws in [GCS, S3] {
            let want: usize = TABLES.iter().map(|t| produced.records.get(&(ws, *t)).map_or(0, BTreeMap::len)).sum();
            loop {
                let got = rows(&stack, &mut cache, ws).await;
                assert!(got <= want, "ws {ws}: more rows than produced");
                if got == want {
                    break;
                }
                assert!(sent.elapsed() < Duration::from_secs(60), "ws {ws} round {round}: {got} of {want} rows");
                for p in [&mut control, &mut ingest, &mut uploader] {
                    assert!(p.is_running(), "{} exited:\n{}", p.name(), p.log_tail(30));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        worst = worst.max(sent.elapsed());
    }
    println!(
        "GCS and S3 workspaces: every round's rows visible within {} ms of producing (window 2 s)",
        worst.as_millis()
    );

    // MISSING: nothing written, its files parked, its status names the failure.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = api.status(MISSING).await;
        if status["state"] == "failing" && status["files_waiting"].as_u64() > Some(0) {
            break status;
        }
        assert!(Instant::now() < deadline, "status of MISSING: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let message = status["last_error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("gs://{missing_bucket}/")) && message.contains("HTTP 404"), "{status}");
    println!("status of MISSING: {status}");

    // Its bucket appears: every parked file is delivered, and everything is exactly once.
    let url = format!("{}/storage/v1/b", dwsync_tests::gcs::gcs_endpoint());
    let created = reqwest::Client::new().post(url).json(&serde_json::json!({ "name": missing_bucket })).send().await;
    assert!(created.unwrap().status().is_success());
    verify(&stack, &produced, Duration::from_secs(120), &mut [&mut control, &mut ingest, &mut uploader]).await;
    let status = api.status(MISSING).await;
    assert_eq!(status["state"], "ok", "{status}");
    let log = std::fs::read_to_string(&uploader.log).unwrap();
    assert!(!log.contains("PRIVATE KEY"), "no key in the uploader's log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcs_sync_created_after_its_history_gets_its_initial_sync_then_every_change_once() {
    const W: i64 = 4111;
    const TABLES2: [Table; 2] = [Table::Metrics, Table::People];
    const HISTORY2: u64 = 200;
    let mut stack = Stack::with_control(&[W], &TABLES2).await;
    stack.use_gcs(W).await;
    let (api, mut services) = Services::start(&stack, &[]).await;
    let producer = producer();
    let generator = Generator::new(83);
    let mut sent = SentFields::default();
    let now = now_ms();
    send(&stack, &producer, &mut sent, W, &TABLES2, records(&generator, W, &TABLES2, 0..HISTORY2, now)).await;
    archived_at_least(&mut services, 2 * HISTORY2, Duration::from_secs(60)).await;
    let body = Api::gcs_sync_body(W, &stack.buckets[&W]);
    let (status, resp) = api.call(reqwest::Method::POST, &format!("/v1/workspaces/{W}/sync"), Some(body)).await;
    assert_eq!(status, 201, "{resp}");

    let _ = initial_syncs_done(&api, W, &TABLES2, &mut services).await;
    let after = HISTORY2..HISTORY2 + 20;
    send(&stack, &producer, &mut sent, W, &TABLES2, records(&generator, W, &TABLES2, after, now)).await;
    let all = files_with_metrics(&stack, W, (HISTORY2 + 20) as usize, Duration::from_secs(90), &mut services).await;
    assert_every_metric_once(&all, &sent, W, "in the GCS bucket");
    let baseline = all.values().filter(|f| f.table == Table::Metrics && f.part.is_some()).count();
    assert!(baseline > 0, "initial metrics files (two sequences in their names) came from the backfill");
    println!("GCS initial sync: {} files, {baseline} of them initial metrics files", all.len());
}
