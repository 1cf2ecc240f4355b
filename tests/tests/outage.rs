//! Broker outages at the moments that used to leave clients broken, on a private Apache Kafka
//! broker (`dev/kafka` with its own ports and data directory, so other tests keep theirs) and
//! the real S3 server: control, one ingest and two uploaders as processes, syncs created through
//! control's API. One broker lifecycle stops the broker for [`OUTAGE`] at each moment:
//!
//! 1. the services just started (the uploaders reading the configuration topic, joining);
//! 2. mid-join: one uploader stopped and a new one started, the broker stopped while it joins;
//! 3. mid-stream: records produced all along (the producer waits out the outage);
//! 4. mid-lot-drain: a table paused (its files parked in the lot), resumed, and the broker
//!    stopped as the uploader starts writing the parked files.
//!
//! After each restart, every row produced so far must be in the buckets within [`ROWS_BOUND`]
//! of the broker answering again, and control's API must answer 200 within [`API_BOUND`]; at
//! the end every row exactly once (the kit's `verify`). It prints the measured times.
//!
//! `DWSYNC_TEST_OUTAGE_KAFKA_PORT` (19092; the controller uses the next port) picks the
//! private broker's port; its data lives in `$TMPDIR/dwsync-outage-kafka`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::private::{Private, Server, StopOnDrop};
use common::*;
use dwsync_contract::Table;
use dwsync_loadgen::Generator;
use dwsync_tests::s3_secret_key;
use dwsync_tests::services::ServiceProcess;

const A: i64 = 7001;
const B: i64 = 7002;
const TABLES: [Table; 2] = [Table::Metrics, Table::People];

/// How long the broker stays down at each moment.
const OUTAGE: Duration = Duration::from_secs(8);
/// Every row produced must be visible this long after the broker answers again.
const ROWS_BOUND: Duration = Duration::from_secs(45);
/// Control's API must answer 200 this long after the broker answers again.
const API_BOUND: Duration = Duration::from_secs(20);

/// The private broker.
fn broker() -> Private {
    Private::new(Server::Kafka, "DWSYNC_TEST_OUTAGE_KAFKA_PORT", 19092, "dwsync-outage-kafka")
}

/// Stops `broker` for [`OUTAGE`]; returns when it answers again.
fn stop_broker(broker: &Private, moment: &str) -> Instant {
    println!("{moment}: stopping the broker for {OUTAGE:?}");
    broker.dev("stop");
    std::thread::sleep(OUTAGE);
    broker.dev("start");
    println!("{moment}: the broker answers again");
    Instant::now()
}

/// What one moment measured after the broker answered again.
struct Recovery {
    moment: &'static str,
    api: Duration,
    rows: Duration,
}

/// Waits until control's API answers 200, at most [`API_BOUND`] after `back`.
async fn api_answers(api: &Api, back: Instant, control: &mut ServiceProcess) -> Duration {
    loop {
        let answer = api.http.get(format!("{}/v1/workspaces/{A}/sync", api.base)).bearer_auth(&api.token).send().await;
        if answer.is_ok_and(|r| r.status().as_u16() == 200) {
            return back.elapsed();
        }
        assert!(control.is_running(), "control exited:\n{}", control.log_tail(30));
        assert!(
            back.elapsed() < API_BOUND,
            "control's API did not answer 200 within {API_BOUND:?}:\n{}",
            control.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the buckets hold `want` rows, at most [`ROWS_BOUND`] after `back`.
async fn rows_arrive(stack: &Stack, want: usize, back: Instant, services: &mut [&mut ServiceProcess]) -> Duration {
    let mut cache = BTreeMap::new();
    loop {
        let _ = read_objects(stack, &mut cache).await;
        let rows: usize = cache.values().map(|o| o.batch.num_rows()).sum();
        if rows >= want {
            return back.elapsed();
        }
        for s in services.iter_mut() {
            assert!(s.is_running(), "{} exited:\n{}", s.name(), s.log_tail(30));
        }
        let tails: Vec<String> = services.iter().map(|s| format!("{}:\n{}", s.name(), s.log_tail(15))).collect();
        assert!(
            back.elapsed() < ROWS_BOUND,
            "{rows} of {want} rows {ROWS_BOUND:?} after the broker came back:\n{}",
            tails.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_recovers_from_broker_outages_at_any_moment() {
    let broker = broker();
    broker.dev("start");
    let _stop = StopOnDrop(broker.clone());
    let stack = Stack::with_control_on(&broker.address(), &[A, B], &TABLES).await;
    let api = Api::new(stack.control.as_ref().unwrap());
    let mut control = stack.control_with("control", &[]);
    api.wait_ready(&mut control).await;
    for ws in [A, B] {
        let body = Api::sync_body(ws, &stack.buckets[&ws], &s3_secret_key());
        let (status, answer) = api.call(reqwest::Method::POST, &format!("/v1/workspaces/{ws}/sync"), Some(body)).await;
        assert_eq!(status, 201, "{answer}");
    }
    let producer = producer_on(&stack.bootstrap);
    let mut generator = Generator::new(7);
    let mut produced = Produced::default();
    let mut next = 0u64;
    let mut recoveries = Vec::new();
    let started = Instant::now();

    // 1. The services just started: reading the configuration topic, joining their groups.
    produce(&stack, &producer, &mut generator, (&[A, B], &TABLES), next..next + 20, &mut produced).await;
    next += 20;
    let mut ingest = stack.ingest("ingest");
    let mut up1 = stack.uploader("uploader-1");
    let mut up2 = stack.uploader("uploader-2");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back = stop_broker(&broker, "just started");
    let api_took = api_answers(&api, back, &mut control).await;
    let rows = rows_arrive(&stack, produced.total(), back, &mut [&mut ingest, &mut up1, &mut up2]).await;
    recoveries.push(Recovery { moment: "just started", api: api_took, rows });

    // 2. Mid-join: one uploader leaves (SIGTERM: it leaves the group at once; a `kill -9` would
    // hold its partitions for the session timeout, 45 s, outage or not) and a new one joins
    // (the rebalance and its lot reads under way).
    up2.stop();
    let mut up3 = stack.uploader("uploader-3");
    produce(&stack, &producer, &mut generator, (&[A, B], &TABLES), next..next + 20, &mut produced).await;
    next += 20;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let back = stop_broker(&broker, "mid-join");
    let api_took = api_answers(&api, back, &mut control).await;
    let rows = rows_arrive(&stack, produced.total(), back, &mut [&mut ingest, &mut up1, &mut up3]).await;
    recoveries.push(Recovery { moment: "mid-join", api: api_took, rows });

    // 3. Mid-stream: records produced every 300 ms before, during and after the outage.
    let load = {
        async {
            let mut rounds = 0;
            let until = Instant::now() + OUTAGE + Duration::from_secs(8);
            while Instant::now() < until {
                produce(&stack, &producer, &mut generator, (&[A, B], &TABLES), next..next + 2, &mut produced).await;
                next += 2;
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            rounds
        }
    };
    let outage = {
        let broker = broker.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            tokio::task::spawn_blocking(move || stop_broker(&broker, "mid-stream")).await.unwrap()
        }
    };
    let (rounds, back) = tokio::join!(load, outage);
    println!("mid-stream: {rounds} rounds produced");
    let api_took = api_answers(&api, back, &mut control).await;
    let rows = rows_arrive(&stack, produced.total(), back, &mut [&mut ingest, &mut up1, &mut up3]).await;
    recoveries.push(Recovery { moment: "mid-stream", api: api_took, rows });

    // 4. Mid-lot-drain: A's people paused, its files parked, then resumed as the broker stops.
    api.set_table(A, Table::People, false).await;
    let paused_from = next;
    produce(&stack, &producer, &mut generator, (&[A, B], &TABLES), next..next + 30, &mut produced).await;
    next += 30;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = api.status(A).await;
        if status["files_paused"].as_u64() > Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "A's people files were not parked: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    api.set_table(A, Table::People, true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let back = stop_broker(&broker, "mid-lot-drain");
    let api_took = api_answers(&api, back, &mut control).await;
    let rows = rows_arrive(&stack, produced.total(), back, &mut [&mut ingest, &mut up1, &mut up3]).await;
    recoveries.push(Recovery { moment: "mid-lot-drain", api: api_took, rows });
    println!("records {paused_from}..{next} of A's people went through the lot");

    verify(&stack, &produced, Duration::from_secs(30), &mut [&mut ingest, &mut up1, &mut up3]).await;
    for r in &recoveries {
        println!(
            "outage at {:<14} control API 200 after {:>5.1} s, every row after {:>5.1} s (from the broker answering)",
            r.moment,
            r.api.as_secs_f64(),
            r.rows.as_secs_f64()
        );
    }
    println!(
        "{} records, 4 outages of {OUTAGE:?}, 0 lost, 0 duplicated, {:.0} s",
        produced.total(),
        started.elapsed().as_secs_f64()
    );
    for p in [&mut ingest, &mut up1, &mut up3, &mut control] {
        p.stop();
    }
}
