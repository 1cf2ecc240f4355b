//! ingest's lag and readiness on the real broker: records held without a commit show as the
//! group's lag and the time since its commit, and past `ingest.stall_after_ms` `/readyz` says
//! why the service is unready.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use dwsync_telemetry::testing;
use dwsync_tests::{create_topic, kafka_config, unique};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The value of the gauge `name` in the process's registry, if it was recorded.
fn gauge(name: &str) -> Option<f64> {
    let families = dwsync_telemetry::registry().gather();
    let family = families.iter().find(|f| f.name() == name)?;
    family.get_metric().first().map(|m| m.get_gauge().get_value())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_waiting_without_a_commit_show_as_lag_and_make_ingest_unready() {
    testing::init_once();
    let prefix = format!("{}.", unique("progress"));
    let topic = format!("{prefix}metrics");
    create_topic(&topic, 1).await;
    let producer: FutureProducer = kafka_config().create().unwrap();
    // Malformed records: dead-lettered with their partition's commit, at the window's close.
    for _ in 0..5 {
        let record = FutureRecord::to(&topic).key("101").payload("not json");
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }

    let mut cfg = common::config(&prefix, &["metrics"], &unique("progress-handoff"), &unique("progress-dlq"));
    cfg.ingest.handoff_partitions = 1;
    cfg.ingest.lag_interval_ms = 300;
    cfg.ingest.stall_after_ms = Some(2_500);
    // Nothing commits within the test: the window is far longer than stall_after.
    cfg.window.duration_ms = 600_000;
    cfg.window.spread_by_partition = false;
    let service = dwsync_ingest::start(cfg).await.unwrap();
    let health = service.health().clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopper = stop.clone();
    let running = tokio::spawn(async move { service.run_until(stopper.cancelled_owned()).await });

    let started = Instant::now();
    let reason = loop {
        match health.readiness() {
            Err(reason) if reason.contains("progress: ") => break reason,
            other => assert!(started.elapsed() < Duration::from_secs(25), "never unready for progress: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(started.elapsed() >= Duration::from_millis(2_500), "not before stall_after: {reason}");
    assert!(reason.contains("progress: no commit for ") && reason.contains(" s with 5 records pending"), "{reason}");
    assert_eq!(gauge("dwsync_ingest_consumer_lag_records"), Some(5.0));
    assert!(gauge("dwsync_ingest_time_since_commit_seconds").is_some_and(|s| s > 2.5));

    stop.cancel();
    running.await.unwrap().unwrap();
}
