//! `init` with an OTLP endpoint, in a process of its own: metrics and spans reach a collector.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use dwsync_config::TelemetryConfig;
use dwsync_telemetry::{init, meter};
use tokio::net::TcpListener;

type Received = Arc<Mutex<Vec<(String, String, usize)>>>;

async fn collect(
    State(received): State<Received>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    received.lock().expect("lock").push((uri.path().to_owned(), content_type, body.len()));
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_spans_are_pushed_to_the_collector() {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/metrics", post(collect))
        .route("/v1/traces", post(collect))
        .with_state(received.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let collector = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let cfg = TelemetryConfig { otlp_endpoint: Some(collector), ..TelemetryConfig::for_service("dwsync-test") };
    let telemetry = init(&cfg).expect("init");
    meter(env!("CARGO_PKG_NAME")).u64_counter("dwsync_test_batches_total").build().add(1, &[]);
    tracing::info_span!("upload", table = "people").in_scope(|| tracing::info!("Uploading."));

    // Shutdown flushes: the last metrics and the pending span are exported now.
    telemetry.shutdown().await.expect("flush");

    let received = received.lock().expect("lock").clone();
    for path in ["/v1/metrics", "/v1/traces"] {
        let hit = received.iter().find(|(p, ..)| p == path);
        let (_, content_type, len) = hit.unwrap_or_else(|| panic!("nothing posted to {path}: {received:?}"));
        assert_eq!(content_type, "application/x-protobuf");
        assert!(*len > 0);
    }
}
