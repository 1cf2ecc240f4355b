//! Tracing, OpenTelemetry metrics and traces (OTLP), and the /healthz and /metrics endpoints.
//!
//! Plus the plumbing every dwsync service shares: [`shutdown_signal`] (SIGINT/SIGTERM) and
//! [`Service`], which serves the endpoints, runs a service's background tasks and shuts them
//! down in order. A service's `main` is: [`dwsync_config::Args`], [`dwsync_config::load`],
//! [`init`], [`shutdown_signal`], its own `run`, then [`Telemetry::shutdown`].
//!
//! Metric names follow `dwsync_<noun>_<unit>[_total]` (counters end in `_total`), and are
//! exported exactly as written, to Prometheus and to OTLP alike: no unit or `_total` suffix is
//! appended. Record them through [`meter`]`(env!("CARGO_PKG_NAME"))`.

#[cfg(feature = "kafka")]
pub mod group_lag;
mod health;
mod http;
mod init;
#[cfg(feature = "kafka")]
pub mod kafka;
mod metrics;
mod service;
mod signal;
#[cfg(feature = "testing")]
pub mod testing;

pub use health::Health;
pub use http::{HttpError, Server, serve};
pub use init::{Telemetry, TelemetryError, init};
pub use metrics::{meter, prometheus_reader, registry};
pub use service::{Service, ServiceError};
pub use signal::{BoxError, Shutdown, run_service, shutdown_signal};
