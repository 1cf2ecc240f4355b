//! `shutdown_signal` in a process of its own (the test signals itself).

use std::process::Command;
use std::time::Duration;

use dwsync_telemetry::shutdown_signal;

#[cfg(unix)]
#[tokio::test]
async fn sigterm_and_sigint_resolve_the_shutdown_future() {
    for signal in ["-TERM", "-INT"] {
        let shutdown = shutdown_signal().expect("register handlers");
        let status = Command::new("kill").args([signal, &std::process::id().to_string()]).status().expect("run kill");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(5), shutdown).await.expect("signal received");
    }
}
