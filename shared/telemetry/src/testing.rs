//! Helpers for the services' tests (feature `testing`): one check of the endpoints every
//! service serves, instead of a copy in each service.

use std::sync::Once;
use std::time::Duration;

use dwsync_config::{KafkaConfig, TelemetryConfig};
use tokio::sync::oneshot;

use crate::{Service, init};

/// Calls [`init`] once per test process, so metrics reach [`registry()`](crate::registry).
pub fn init_once() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let telemetry = init(&TelemetryConfig::for_service("dwsync-test")).expect("telemetry init");
        // Tests end with the process; nothing to flush.
        std::mem::forget(telemetry);
    });
}

/// Kafka settings pointing at a port nothing listens on, checked often.
pub fn unreachable_kafka() -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: "127.0.0.1:1".into(),
        metadata_timeout_ms: 300,
        check_interval_ms: 100,
        ..KafkaConfig::default()
    }
}

/// Runs `service` (started after [`init_once`]), checks `/healthz`, `/readyz` and `/metrics`,
/// then shuts it down through its shutdown future and checks it stopped cleanly.
///
/// With `kafka_unreachable`, the service must have a Kafka probe of [`unreachable_kafka`]:
/// `/readyz` must turn 503 naming Kafka while `/healthz` stays 200.
pub async fn check_service(service: Service, kafka_unreachable: bool) {
    let base = format!("http://{}", service.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(service.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let request = client.get(format!("{base}{path}")).send();
        async move {
            let response = request.await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
            let status = response.status().as_u16();
            let content_type = response.headers().get("content-type").map(|v| v.as_bytes().to_vec());
            let body = response.text().await.unwrap_or_else(|e| panic!("GET {path} body: {e}"));
            (status, content_type, body)
        }
    };

    let (status, _, body) = get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    if kafka_unreachable {
        let mut last = (0, String::new());
        for _ in 0..100 {
            let (status, _, body) = get("/readyz").await;
            last = (status, body);
            if last.0 == 503 && last.1.contains("cannot fetch metadata") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(last.0, 503, "{}", last.1);
        assert!(last.1.starts_with("kafka: ") && last.1.contains("127.0.0.1:1"), "{}", last.1);
        let (status, _, _) = get("/healthz").await;
        assert_eq!(status, 200, "an unreachable Kafka makes the service unready, not unhealthy");
    } else {
        let (status, _, body) = get("/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }

    let (status, content_type, body) = get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some(&b"text/plain; version=0.0.4"[..]));
    assert!(
        body.lines().any(|l| l.starts_with("dwsync_http_requests_total{") && l.contains("path=\"/healthz\"")),
        "{body}"
    );
    if kafka_unreachable {
        assert!(
            body.lines()
                .any(|l| l.starts_with("dwsync_kafka_metadata_checks_total{") && l.contains("result=\"error\"")),
            "{body}"
        );
    }

    stop.send(()).expect("the service is running");
    let stopped = tokio::time::timeout(Duration::from_secs(15), running).await.expect("stops within the grace period");
    stopped.expect("join").expect("clean shutdown");
    assert!(client.get(format!("{base}/healthz")).send().await.is_err(), "HTTP server stopped");
}
