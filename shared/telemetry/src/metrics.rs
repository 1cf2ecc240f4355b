//! The process's Prometheus registry and the OTel meters that feed it.

use std::sync::LazyLock;

use opentelemetry::global;
use opentelemetry::metrics::Meter;
use opentelemetry_prometheus::PrometheusExporter;
use opentelemetry_sdk::error::OTelSdkError;
use prometheus::Registry;

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The process's Prometheus registry: [`init`](crate::init) exports every OTel metric into it,
/// and services serve it on `/metrics`.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

/// The global meter for instrumentation scope `scope`; pass `env!("CARGO_PKG_NAME")`.
///
/// Create instruments after [`init`](crate::init): one created before it comes from the no-op
/// provider and records nothing, ever. Name them `dwsync_<noun>_<unit>[_total]`.
pub fn meter(scope: &'static str) -> Meter {
    global::meter(scope)
}

/// A metric reader exporting into `registry`, with names exactly as the instruments spell them.
///
/// [`init`](crate::init) uses it with [`registry()`]; tests can give it a registry of their own.
pub fn prometheus_reader(registry: &Registry) -> Result<PrometheusExporter, OTelSdkError> {
    opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .without_units()
        .without_counter_suffixes()
        .build()
}
