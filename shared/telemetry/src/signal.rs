//! [`shutdown_signal`]: the future `main` hands to a service's `run` as its shutdown trigger.

use std::future::Future;
use std::io;

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
