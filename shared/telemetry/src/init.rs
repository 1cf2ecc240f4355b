//! [`init`]: the process's tracing subscriber, meter provider and (with OTLP) tracer provider.

use std::sync::atomic::{AtomicBool, Ordering};

use dwsync_config::{LogFormat, TelemetryConfig};
use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{ExporterBuildError, MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing_subscriber::filter::{EnvFilter, FromEnvError, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};
use tracing_subscriber::{Layer, fmt};

use crate::metrics::{prometheus_reader, registry};

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Why telemetry could not be set up or flushed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// [`init`] was already called in this process.
    #[error("telemetry is already initialised in this process")]
    AlreadyInitialized,
    /// `RUST_LOG` is not a valid filter.
    #[error("invalid RUST_LOG: {0}")]
    Filter(FromEnvError),
    /// The Prometheus exporter could not be built.
    #[error("building the Prometheus exporter: {0}")]
    Prometheus(OTelSdkError),
    /// An OTLP exporter could not be built (bad endpoint, ...).
    #[error("building the OTLP exporter for {endpoint}: {error}")]
    Otlp {
        /// The endpoint the exporter was to send to.
        endpoint: String,
        /// What went wrong.
        error: ExporterBuildError,
    },
    /// Another global tracing subscriber is already installed.
    #[error("installing the tracing subscriber: {0}")]
    Subscriber(TryInitError),
    /// Flushing or shutting down the providers failed (buffered telemetry may be lost).
    #[error("shutting down telemetry: {0}")]
    Shutdown(String),
}

/// The installed providers; [`Telemetry::shutdown`] flushes them before the process exits.
#[derive(Debug)]
pub struct Telemetry {
    meter_provider: SdkMeterProvider,
    tracer_provider: Option<SdkTracerProvider>,
}

/// Installs logging, metrics and (when `cfg.otlp_endpoint` is set) OTLP export, process-wide.
///
/// - Logs: a `tracing` subscriber on stderr, text or JSON, filtered by `RUST_LOG` (default
///   `info`).
/// - Metrics: the global meter provider, read into [`registry()`](crate::registry) for
///   `/metrics`, and with OTLP also pushed to `<otlp_endpoint>/v1/metrics` (every 60 s, or
///   `OTEL_METRIC_EXPORT_INTERVAL` ms).
/// - Traces, with OTLP only: `tracing` spans exported to `<otlp_endpoint>/v1/traces`.
///
/// Call once, inside the Tokio runtime (OTLP export runs on it); later calls fail.
pub fn init(cfg: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    if INITIALIZED.swap(true, Ordering::SeqCst) {
        return Err(TelemetryError::AlreadyInitialized);
    }
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .map_err(TelemetryError::Filter)?;
    let resource = Resource::builder().with_service_name(cfg.service_name.clone()).build();

    let mut meters = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_reader(prometheus_reader(registry()).map_err(TelemetryError::Prometheus)?);
    let mut tracer_provider = None;
    if let Some(base) = cfg.otlp_endpoint.as_deref() {
        let base = base.trim_end_matches('/');
        let endpoint = format!("{base}/v1/metrics");
        let exporter = MetricExporter::builder().with_http().with_endpoint(&endpoint).build();
        let exporter = exporter.map_err(|error| TelemetryError::Otlp { endpoint, error })?;
        meters = meters.with_reader(PeriodicReader::builder(exporter, Tokio).build());

        let endpoint = format!("{base}/v1/traces");
        let exporter = SpanExporter::builder().with_http().with_endpoint(&endpoint).build();
        let exporter = exporter.map_err(|error| TelemetryError::Otlp { endpoint, error })?;
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build())
            .build();
        tracer_provider = Some(provider);
    }
    let meter_provider = meters.build();

    let fmt_layer = match cfg.log_format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    // The exporters' own HTTP client is instrumented too: keep its spans out of the export,
    // or every export would produce spans to export.
    let exporter_internals = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("h2", LevelFilter::OFF)
        .with_target("reqwest", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF);
    let otel_layer = tracer_provider.as_ref().map(|p| {
        tracing_opentelemetry::layer().with_tracer(p.tracer(env!("CARGO_PKG_NAME"))).with_filter(exporter_internals)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(TelemetryError::Subscriber)?;

    global::set_meter_provider(meter_provider.clone());
    if let Some(provider) = &tracer_provider {
        global::set_tracer_provider(provider.clone());
    }
    tracing::info!(
        service = %cfg.service_name,
        otlp_endpoint = cfg.otlp_endpoint.as_deref().unwrap_or("off"),
        "Telemetry initialised."
    );
    Ok(Telemetry { meter_provider, tracer_provider })
}

impl Telemetry {
    /// Exports what is buffered (last metrics, pending spans) and stops the providers.
    pub async fn shutdown(self) -> Result<(), TelemetryError> {
        // The providers block until their exporter tasks answer; those run on the Tokio
        // runtime, so wait on a blocking thread rather than on a runtime worker.
        let Self { meter_provider, tracer_provider } = self;
        let errors = tokio::task::spawn_blocking(move || {
            let mut errors = Vec::new();
            if let Some(provider) = tracer_provider
                && let Err(err) = provider.shutdown()
            {
                errors.push(format!("traces: {err}"));
            }
            if let Err(err) = meter_provider.shutdown() {
                errors.push(format!("metrics: {err}"));
            }
            errors
        })
        .await
        .map_err(|err| TelemetryError::Shutdown(err.to_string()))?;
        if errors.is_empty() { Ok(()) } else { Err(TelemetryError::Shutdown(errors.join("; "))) }
    }
}
