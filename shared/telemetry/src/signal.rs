//! [`shutdown_signal`]: the future `main` hands to a service's `run` as its shutdown trigger, and
//! [`run_service`]: what every service binary's `main` does with it.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;

use dwsync_config::TelemetryConfig;

/// Any error a service binary reports.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The shutdown trigger [`run_service`] hands to a service.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Sets up telemetry, runs `run` until SIGINT or SIGTERM, then flushes telemetry (also when the
/// service failed).
pub async fn run_service<F, Fut, E>(telemetry: &TelemetryConfig, run: F) -> Result<(), BoxError>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    let telemetry = crate::init(telemetry)?;
    let shutdown =
        shutdown_signal().map_err(|e| io::Error::new(e.kind(), format!("registering the signal handlers: {e}")))?;
    let ran = run(Box::pin(shutdown)).await.map_err(Into::into);
    if let Err(err) = telemetry.shutdown().await {
        tracing::warn!(error = %err, "Telemetry was not fully flushed.");
    }
    ran
}

/// Registers SIGINT and SIGTERM handlers now; the returned future resolves on the first signal.
///
/// Must be called inside the Tokio runtime. Once registered, the signals no longer kill the
/// process: the service decides when to exit.
#[cfg(unix)]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Received SIGINT; shutting down."),
            _ = terminate.recv() => tracing::info!("Received SIGTERM; shutting down."),
        }
    })
}

/// Registers the Ctrl-C handler now; the returned future resolves on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "Cannot listen for Ctrl-C; shutting down.");
        }
    })
}
