//! The HTTP endpoints of every service: `/healthz`, `/readyz` and `/metrics`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::task::{JoinError, JoinHandle};

use crate::{Health, meter};

/// Why the HTTP endpoints could not be served.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address could not be bound.
    #[error("binding the HTTP listener on {addr}: {error}")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// The OS error.
        error: io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("serving HTTP: {0}")]
    Serve(io::Error),
    /// The server task panicked or was aborted.
    #[error("HTTP server task: {0}")]
    Task(JoinError),
}

/// A running HTTP server, stopped by the `shutdown` future given to [`serve`].
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    pub(crate) task: JoinHandle<io::Result<()>>,
}

impl Server {
    /// The address actually bound (the real port when port `0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the server has stopped (after `shutdown` resolved and connections closed).
    pub async fn wait(self) -> Result<(), HttpError> {
        self.task.await.map_err(HttpError::Task)?.map_err(HttpError::Serve)
    }
}

#[derive(Clone)]
struct AppState {
    health: Health,
    registry: Registry,
    requests: Counter<u64>,
}

/// Binds `listen` and serves `/healthz`, `/readyz` (from `health`) and `/metrics` (`registry`,
/// Prometheus text format) until `shutdown` resolves.
///
/// Returns once the listener is bound. Counts requests in `dwsync_http_requests_total`.
pub async fn serve<F>(listen: SocketAddr, health: Health, registry: Registry, shutdown: F) -> Result<Server, HttpError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(listen).await.map_err(|error| HttpError::Bind { addr: listen, error })?;
    let addr = listener.local_addr().map_err(HttpError::Serve)?;
    let requests = meter(env!("CARGO_PKG_NAME"))
        .u64_counter("dwsync_http_requests_total")
        .with_description("HTTP requests answered on /healthz, /readyz and /metrics, by path and status.")
        .build();
    let state = AppState { health, registry, requests };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state);
    let task = tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await });
    tracing::info!(%addr, "Serving /healthz, /readyz and /metrics.");
    Ok(Server { addr, task })
}

/// Counts answered requests; as a route layer it only sees the three routes, so `path` is bounded.
async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let attributes = [KeyValue::new("path", path), KeyValue::new("status", response.status().as_str().to_owned())];
    state.requests.add(1, &attributes);
    response
}

async fn healthz(State(state): State<AppState>) -> (StatusCode, String) {
    status(state.health.liveness())
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    status(state.health.readiness())
}

fn status(result: Result<(), String>) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(reasons) => (StatusCode::SERVICE_UNAVAILABLE, reasons),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&state.registry.gather(), &mut body) {
        Ok(()) => ([(CONTENT_TYPE, encoder.format_type().to_owned())], body).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {err}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;
    use tokio::sync::oneshot;

    use super::*;
    use crate::prometheus_reader;

    #[tokio::test]
    async fn serves_health_readiness_and_metrics() {
        let registry = Registry::new();
        let provider = SdkMeterProvider::builder().with_reader(prometheus_reader(&registry).expect("reader")).build();
        let records = provider.meter("dwsync-test").u64_counter("dwsync_test_records_total").build();
        records.add(3, &[KeyValue::new("table", "deliveries")]);

        let health = Health::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = serve("127.0.0.1:0".parse().expect("addr"), health.clone(), registry, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
        let base = format!("http://{}", server.local_addr());
        let client = reqwest::Client::new();
        let get = |path: &str| client.get(format!("{base}{path}")).send();

        let res = get("/healthz").await.expect("GET /healthz");
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.expect("body"), "ok");

        health.set_unhealthy("disk", "full");
        let res = get("/healthz").await.expect("GET /healthz");
        assert_eq!(res.status(), 503);
        assert_eq!(res.text().await.expect("body"), "disk: full");

        health.set_healthy("disk");
        health.set_unready("kafka", "unreachable");
        assert_eq!(get("/healthz").await.expect("GET /healthz").status(), 200);
        let res = get("/readyz").await.expect("GET /readyz");
        assert_eq!(res.status(), 503);
        assert_eq!(res.text().await.expect("body"), "kafka: unreachable");

        let res = get("/metrics").await.expect("GET /metrics");
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[CONTENT_TYPE], "text/plain; version=0.0.4");
        let body = res.text().await.expect("body");
        let line = body.lines().find(|l| l.starts_with("dwsync_test_records_total{")).expect(&body);
        assert!(line.contains("table=\"deliveries\"") && line.ends_with(" 3"), "{line}");
        assert!(body.contains("# TYPE dwsync_test_records_total counter"), "{body}");

        assert_eq!(get("/nope").await.expect("GET /nope").status(), 404);

        stop.send(()).expect("server is running");
        server.wait().await.expect("clean stop");
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = serve(addr, Health::new(), Registry::new(), std::future::pending()).await.expect_err("port in use");
        assert!(matches!(err, HttpError::Bind { .. }), "{err:?}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
