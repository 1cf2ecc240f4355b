//! [`Service`]: the run loop every dwsync service shares.
//!
//! Start the HTTP endpoints, spawn the service's tasks, wait for the shutdown future (or a task
//! failure), then stop in order: mark unready, wait `http.shutdown_delay_ms` (so traffic moves
//! away first), cancel the tasks and give them `http.shutdown_grace_ms` to finish, abort the
//! rest, and stop the HTTP server last, so `/healthz` keeps answering while the tasks drain.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use dwsync_config::HttpConfig;
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::{Health, HttpError, Server, registry, serve};

/// The health component a service marks unready while it shuts down.
const SHUTDOWN_COMPONENT: &str = "shutdown";

type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a service stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The HTTP endpoints failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A task returned an error.
    #[error("task {task} failed: {error}")]
    Task {
        /// The name the task was spawned with.
        task: &'static str,
        /// Its error.
        error: BoxError,
    },
    /// A task panicked.
    #[error("task {task} panicked")]
    Panicked {
        /// The name the task was spawned with.
        task: &'static str,
    },
}

/// A running service: its HTTP endpoints, its health, and its background tasks.
#[derive(Debug)]
pub struct Service {
    pub(crate) name: &'static str,
    health: Health,
    tasks_token: CancellationToken,
    http_token: CancellationToken,
    /// Stops the HTTP server if the service is dropped without running (a failed startup).
    _http_guard: DropGuard,
    server: Server,
    tasks: JoinSet<Result<(), BoxError>>,
    task_names: HashMap<Id, &'static str>,
    shutdown_delay: Duration,
    shutdown_grace: Duration,
}

impl Service {
    /// Serves `/healthz`, `/readyz` and `/metrics` ([`registry()`]) on `http.listen`.
    ///
    /// `name` is the short service name (`ingest`) used in logs and Kafka client ids.
    pub async fn start(name: &'static str, http: &HttpConfig) -> Result<Self, ServiceError> {
        let health = Health::new();
        let http_token = CancellationToken::new();
        let server =
            serve(http.listen, health.clone(), registry().clone(), http_token.clone().cancelled_owned()).await?;
        Ok(Self {
            name,
            health,
            tasks_token: CancellationToken::new(),
            _http_guard: http_token.clone().drop_guard(),
            http_token,
            server,
            tasks: JoinSet::new(),
            task_names: HashMap::new(),
            shutdown_delay: Duration::from_millis(http.shutdown_delay_ms),
            shutdown_grace: Duration::from_millis(http.shutdown_grace_ms),
        })
    }

    /// The bound HTTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The service's health, for its components to mark themselves (un)ready.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// A token cancelled when shutdown begins; tasks stop soon after it is.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.tasks_token.clone()
    }

    /// Runs `task` until it ends; an error (or panic) stops the whole service.
    ///
    /// Tasks should finish soon after [`shutdown_token`](Self::shutdown_token) is cancelled.
    pub fn spawn<F, E>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let handle = self.tasks.spawn(async move { task.await.map_err(Into::into) });
        self.task_names.insert(handle.id(), name);
    }

    /// Runs until `shutdown` resolves or a task fails, then stops everything in order.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
        tracing::info!(service = self.name, http = %self.local_addr(), "Service started.");
        tokio::pin!(shutdown);
        let mut result = Ok(());
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(joined) = self.tasks.join_next_with_id() => {
                    if let Err(err) = self.outcome(joined) {
                        tracing::error!(error = %err, "Service task failed; shutting down.");
                        result = Err(err);
                        break;
                    }
                }
                served = &mut self.server.task => {
                    // Only `http_token` stops the server, and it is not cancelled yet.
                    let err = match served {
                        Ok(Ok(())) => HttpError::Serve(std::io::Error::other("HTTP server stopped unexpectedly")),
                        Ok(Err(err)) => HttpError::Serve(err),
                        Err(err) => HttpError::Task(err),
                    };
                    tracing::error!(error = %err, "HTTP server failed; shutting down.");
                    self.stop_tasks().await;
                    return Err(err.into());
                }
            }
        }
        self.stop_tasks().await;
        self.http_token.cancel();
        let served = self.server.wait().await;
        tracing::info!(service = self.name, "Service stopped.");
        result.and(served.map_err(ServiceError::from))
    }

    /// Marks the service unready, cancels the tasks, waits up to the grace period, aborts the rest.
    async fn stop_tasks(&mut self) {
        self.health.set_unready(SHUTDOWN_COMPONENT, "shutting down");
        if !self.shutdown_delay.is_zero() {
            tracing::info!(delay = ?self.shutdown_delay, "Unready; stopping after the shutdown delay.");
            tokio::time::sleep(self.shutdown_delay).await;
        }
        self.tasks_token.cancel();
        let grace = self.shutdown_grace;
        let drain = async {
            while let Some(joined) = self.tasks.join_next_with_id().await {
                if let Err(err) = self.outcome(joined) {
                    tracing::warn!(error = %err, "Service task failed while shutting down.");
                }
            }
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(grace = ?grace, "Tasks still running after the grace period; aborting them.");
            self.tasks.shutdown().await;
        }
    }

    fn outcome(&mut self, joined: Result<(Id, Result<(), BoxError>), JoinError>) -> Result<(), ServiceError> {
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(err) => err.id(),
        };
        let task = self.task_names.remove(&id).unwrap_or("unnamed");
        match joined {
            Ok((_, Ok(()))) => Ok(()),
            Ok((_, Err(error))) => Err(ServiceError::Task { task, error }),
            Err(err) if err.is_cancelled() => Ok(()),
            Err(_) => Err(ServiceError::Panicked { task }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use tokio::sync::oneshot;

    use super::*;

    async fn start() -> Service {
        Service::start("test", &HttpConfig::localhost(0)).await.expect("start")
    }

    #[tokio::test]
    async fn stops_tasks_then_http_on_shutdown() {
        let mut service = start().await;
        let token = service.shutdown_token();
        let (done_tx, done_rx) = oneshot::channel();
        service.spawn("worker", async move {
            token.cancelled().await;
            let _ = done_tx.send(());
            Ok::<_, io::Error>(())
        });
        let addr = service.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(service.run_until(async {
            let _ = stopped.await;
        }));

        let res = reqwest::get(format!("http://{addr}/readyz")).await.expect("GET /readyz");
        assert_eq!(res.status(), 200);
        stop.send(()).expect("running");
        running.await.expect("join").expect("clean stop");
        done_rx.await.expect("worker saw the cancellation");
        assert!(reqwest::get(format!("http://{addr}/healthz")).await.is_err(), "server stopped");
    }

    #[tokio::test]
    async fn readiness_goes_false_first_and_work_gets_the_grace_period() {
        let http = HttpConfig { shutdown_delay_ms: 600, shutdown_grace_ms: 300, ..HttpConfig::localhost(0) };
        let mut service = Service::start("test", &http).await.expect("start");
        let token = service.shutdown_token();
        let (cancelled_tx, cancelled_rx) = oneshot::channel();
        // A task that ignores cancellation beyond the grace period: it is aborted.
        service.spawn("slow", async move {
            token.cancelled().await;
            let _ = cancelled_tx.send(std::time::Instant::now());
            std::future::pending::<()>().await;
            Ok::<_, io::Error>(())
        });
        let addr = service.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(service.run_until(async {
            let _ = stopped.await;
        }));
        let get = |path: &'static str| async move {
            reqwest::get(format!("http://{addr}{path}")).await.map(|r| r.status().as_u16()).unwrap_or(0)
        };
        assert_eq!(get("/readyz").await, 200);
        let asked = std::time::Instant::now();
        stop.send(()).expect("running");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(get("/readyz").await, 503, "unready during the delay");
        assert_eq!(get("/healthz").await, 200, "still live");
        let cancelled_at = cancelled_rx.await.expect("the task saw the cancellation");
        assert!(cancelled_at - asked >= Duration::from_millis(600), "work stops only after the delay");
        running.await.expect("join").expect("stops after the grace period");
        assert!(asked.elapsed() < Duration::from_secs(5), "the stuck task was aborted after the grace period");
    }

    #[tokio::test]
    async fn a_failing_task_stops_the_service() {
        let mut service = start().await;
        service.spawn("doomed", async { Err(io::Error::other("disk on fire")) });
        let err = service.run_until(std::future::pending()).await.expect_err("task failed");
        assert!(matches!(err, ServiceError::Task { task: "doomed", .. }), "{err:?}");
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }

    #[tokio::test]
    async fn a_panicking_task_is_named() {
        let mut service = start().await;
        service.spawn("panicky", async {
            if true {
                panic!("boom");
            }
            Ok::<_, io::Error>(())
        });
        let err = service.run_until(std::future::pending()).await.expect_err("task panicked");
        assert!(matches!(err, ServiceError::Panicked { task: "panicky" }), "{err:?}");
    }
}
