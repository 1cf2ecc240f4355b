//! `init` in a process of its own: the global meter feeds `/metrics` under the conventional name.

use dwsync_config::TelemetryConfig;
use dwsync_telemetry::{Health, TelemetryError, init, meter, registry, serve};
use opentelemetry::KeyValue;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn global_meter_metrics_are_served_on_metrics() {
    let telemetry = init(&TelemetryConfig::for_service("dwsync-test")).expect("init");
    let again = init(&TelemetryConfig::default());
    assert!(matches!(again, Err(TelemetryError::AlreadyInitialized)), "{again:?}");

    let files = meter(env!("CARGO_PKG_NAME"))
        .u64_counter("dwsync_test_files_total")
        .with_description("Files written by the test.")
        .build();
    files.add(2, &[KeyValue::new("table", "people")]);
    let bytes = meter(env!("CARGO_PKG_NAME")).u64_histogram("dwsync_test_file_size_bytes").with_unit("By").build();
    bytes.record(1024, &[]);

    let health = Health::new();
    let stop = CancellationToken::new();
    let server =
        serve("127.0.0.1:0".parse().expect("addr"), health.clone(), registry().clone(), stop.clone().cancelled_owned())
            .await
            .expect("serve");
    let base = format!("http://{}", server.local_addr());

    let res = reqwest::get(format!("{base}/healthz")).await.expect("GET /healthz");
    assert_eq!(res.status(), 200);
    health.set_unhealthy("writer", "stuck");
    let res = reqwest::get(format!("{base}/healthz")).await.expect("GET /healthz");
    assert_eq!(res.status(), 503);
    assert_eq!(res.text().await.expect("body"), "writer: stuck");

    let body = reqwest::get(format!("{base}/metrics")).await.expect("GET /metrics").text().await.expect("body");
    let files = body.lines().find(|l| l.starts_with("dwsync_test_files_total{")).expect(&body);
    assert!(files.contains("table=\"people\"") && files.contains("otel_scope_name=\"dwsync-telemetry\""), "{files}");
    assert!(files.ends_with(" 2"), "{files}");
    // Names are exported as written: no unit suffix appended, no doubled `_total`.
    assert!(body.contains("# TYPE dwsync_test_file_size_bytes histogram"), "{body}");
    assert!(!body.contains("_bytes_bytes") && !body.contains("_total_total"), "{body}");
    assert!(
        body.lines().any(|l| l.starts_with("dwsync_http_requests_total{") && l.contains("status=\"503\"")),
        "{body}"
    );
    assert!(body.contains("service_name=\"dwsync-test\""), "{body}");

    stop.cancel();
    server.wait().await.expect("clean stop");
    telemetry.shutdown().await.expect("flush");
}
