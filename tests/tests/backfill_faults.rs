//! An initial sync through the faults an operator meets, on a private Apache Kafka broker and a
//! private S3 server (`dev/kafka` and `dev/s3` on ports and data directories of their own, so the
//! other tests keep theirs), every service a process: a workspace's history (metrics and people)
//! is archived, its sync created, and once the backfill has written its first baseline file the
//! S3 server is stopped for 60 s (the archive and the workspace's bucket both gone); meanwhile
//! records keep coming and the backfill is killed with `kill -9` and started again; when S3 is
//! back the broker is restarted. In the end the initial syncs are done, and every metric — the
//! baseline's and those handed off after the cut — is in the bucket exactly once.
//!
//! `DWSYNC_TEST_FAULTS_KAFKA_PORT` (19192; the controller uses the next port) and
//! `DWSYNC_TEST_FAULTS_S3_PORT` (19010) pick the private servers' ports; their data lives in
//! `$TMPDIR/dwsync-faults-kafka` and `$TMPDIR/dwsync-faults-s3`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::initial::*;
use common::private::{Private, Server, StopOnDrop};
use common::*;
use dwsync_contract::Table;
use dwsync_loadgen::Generator;

const W: i64 = 5301;
const TABLES: [Table; 2] = [Table::Metrics, Table::People];
/// Records of history per table.
const HISTORY: u64 = 3000;
/// Records sent during the S3 outage, and after the broker restart.
const DURING: u64 = 50;
const AFTER: u64 = 50;
/// How long the S3 server stays down.
const S3_OUTAGE: Duration = Duration::from_secs(60);

/// Set in the child process that runs the test against the private servers.
const CHILD: &str = "DWSYNC_TEST_FAULTS_CHILD";

fn servers() -> (Private, Private) {
    (
        Private::new(Server::Kafka, "DWSYNC_TEST_FAULTS_KAFKA_PORT", 19192, "dwsync-faults-kafka"),
        Private::new(Server::S3, "DWSYNC_TEST_FAULTS_S3_PORT", 19010, "dwsync-faults-s3"),
    )
}

/// Starts the private servers, then runs this test again as a child process whose kit (S3
/// client, broker address, the services' config) points at them, and stops them.
#[test]
fn an_initial_sync_survives_an_s3_outage_a_broker_restart_and_a_kill() {
    let (kafka, s3) = servers();
    if std::env::var_os(CHILD).is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(faults(kafka, s3));
        return;
    }
    kafka.dev("start");
    let _stop_kafka = StopOnDrop(kafka.clone());
    s3.dev("start");
    let _stop_s3 = StopOnDrop(s3.clone());
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "an_initial_sync_survives_an_s3_outage_a_broker_restart_and_a_kill", "--nocapture"])
        .env(CHILD, "1")
        .env("DWSYNC_TEST_S3_ENDPOINT", s3.address())
        .env("DWSYNC_TEST_KAFKA", kafka.address())
        .status()
        .unwrap();
    assert!(status.success(), "the test against the private servers failed (its output is above)");
}

async fn faults(kafka: Private, s3: Private) {
    let started = Instant::now();
    let stack = Stack::with_control_on(&kafka.address(), &[W], &TABLES).await;
    let (api, mut services) = Services::start(&stack, &[]).await;
    let producer = producer_on(&kafka.address());
    let generator = Generator::new(83);
    let mut sent = SentFields::default();
    let now = now_ms();
    send(&stack, &producer, &mut sent, W, &TABLES, records(&generator, W, &TABLES, 0..HISTORY, now)).await;
    archived_at_least(&mut services, TABLES.len() as u64 * HISTORY, Duration::from_secs(90)).await;
    api.create_sync(W, &stack.buckets[&W]).await;

    // The S3 server stopped once the first baseline file is in the bucket.
    let parts = HISTORY.div_ceil(METRICS_PER_FILE) as usize;
    let written = first_baseline_metrics(&stack, W, &mut services).await;
    s3.dev("stop");
    let outage = Instant::now();
    eprintln!("S3 stopped with {written} of {parts} initial metrics files written");
    assert!(written < parts, "the backfill was still writing when S3 stopped");

    send(&stack, &producer, &mut sent, W, &TABLES, records(&generator, W, &TABLES, HISTORY..HISTORY + DURING, now))
        .await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    services.backfill.kill9();
    services.restart_backfill(&stack);
    eprintln!("killed the backfill with kill -9 and started it again, S3 still down");
    tokio::time::sleep(S3_OUTAGE.saturating_sub(outage.elapsed())).await;
    s3.dev("start");
    eprintln!("S3 back after {:.0} s; restarting the broker", outage.elapsed().as_secs_f64());
    kafka.dev("stop");
    tokio::time::sleep(Duration::from_secs(2)).await;
    kafka.dev("start");
    send(
        &stack,
        &producer,
        &mut sent,
        W,
        &TABLES,
        records(&generator, W, &TABLES, HISTORY + DURING..HISTORY + DURING + AFTER, now),
    )
    .await;

    let status = initial_syncs_done_within(&api, W, &TABLES, &mut services, Duration::from_secs(180)).await;
    let total = (HISTORY + DURING + AFTER) as usize;
    let all = files_with_metrics(&stack, W, total, Duration::from_secs(120), &mut services).await;
    let baseline_files = all.values().filter(|f| f.table == Table::Metrics && f.part.is_some()).count();
    assert_eq!(baseline_files, parts, "the baseline's two-sequence metrics files, each once: {status}");
    assert_every_metric_once(&all, &sent, W, "after the outage, the restart and the kill");
    eprintln!("{total} metrics exactly once ({parts} baseline files) in {:.0} s", started.elapsed().as_secs_f64());
}
