//! The Kafka reachability probe: fetches cluster metadata every few seconds and keeps the
//! service unready, with the reason, while the brokers cannot be reached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dwsync_config::{KafkaConfig, LastFailure};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use rdkafka::client::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

use crate::{Health, Service, meter};

/// The health component the probe marks unready.
pub const COMPONENT: &str = "kafka";

/// Why the probe could not run.
#[derive(Debug, thiserror::Error)]
pub enum KafkaProbeError {
    /// The Kafka client could not be created (an invalid client property).
    #[error("creating the Kafka client: {0}")]
    Client(KafkaError),
    /// The brokers did not answer a metadata request in time.
    #[error("cannot fetch metadata from the Kafka brokers at {brokers}: {error}{}",
        cause.as_ref().map(|c| format!("; last connection error: {c}")).unwrap_or_default())]
    Unreachable {
        /// The configured bootstrap brokers and how they are reached: the protocol, the SASL
        /// mechanism and user ([`KafkaConfig::security_summary`]).
        brokers: String,
        /// librdkafka's error (boxed: the variant stays small).
        error: Box<KafkaError>,
        /// Why the last connection failed, as librdkafka reported it (a refused SASL login, a
        /// broker certificate that does not verify, a refused connection): the metadata error
        /// alone says "broker transport failure" for all of them.
        cause: Option<String>,
    },
    /// A metadata request panicked.
    #[error("Kafka metadata request panicked: {0}")]
    Panicked(JoinError),
}

/// Routes one librdkafka log line to `tracing` (target `librdkafka`): emergencies, alerts and
/// critical lines at `error`, the rest at `debug` (connection failures also arrive as error
/// events, which the clients report themselves). For the services' `ClientContext::log`.
pub fn log_librdkafka(level: RDKafkaLogLevel, fac: &str, log_message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
            tracing::error!(target: "librdkafka", fac, "{log_message}");
        }
        _ => tracing::debug!(target: "librdkafka", ?level, fac, "{log_message}"),
    }
}

/// Routes librdkafka's own logs to `tracing` at debug level: the probe (and the group lag
/// sampler) reports the outcome, with the last connection error it keeps. rdkafka delivers
/// logs and errors when the client's queue is polled.
#[derive(Default)]
pub(crate) struct ProbeContext {
    last_failure: LastFailure,
}

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", ?level, fac, "{log_message}");
        self.last_failure.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
        self.last_failure.error(&error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for ProbeContext {}

/// Checks that the brokers answer a metadata request; see [`KafkaProbe::run`].
pub struct KafkaProbe {
    /// A consumer without a group: it never subscribes, and polling it serves its logs and
    /// errors (an admin client's are never served).
    client: Arc<BaseConsumer<ProbeContext>>,
    bootstrap_servers: String,
    /// `<bootstrap servers> (<security summary>)`, for errors.
    brokers: String,
    timeout: Duration,
    interval: Duration,
    checks: Counter<u64>,
    latency: Histogram<f64>,
}

impl std::fmt::Debug for KafkaProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProbe").field("bootstrap_servers", &self.bootstrap_servers).finish_non_exhaustive()
    }
}

impl KafkaProbe {
    /// A probe for `cfg`'s brokers, with `client.id` `<prefix>-<client>`.
    ///
    /// Fails only on an invalid client configuration; unreachable brokers are not an error.
    pub fn new(cfg: &KafkaConfig, client: &str) -> Result<Self, KafkaProbeError> {
        let client = BaseConsumer::from_config_and_context(&cfg.client_config(client), ProbeContext::default())
            .map_err(KafkaProbeError::Client)?;
        let meter = meter(env!("CARGO_PKG_NAME"));
        Ok(Self {
            client: Arc::new(client),
            bootstrap_servers: cfg.bootstrap_servers.clone(),
            brokers: format!("{} ({})", cfg.bootstrap_servers, cfg.security_summary()),
            timeout: cfg.metadata_timeout(),
            interval: cfg.check_interval(),
            checks: meter
                .u64_counter("dwsync_kafka_metadata_checks_total")
                .with_description("Kafka reachability checks (metadata requests), by result.")
                .build(),
            latency: meter
                .f64_histogram("dwsync_kafka_metadata_fetch_seconds")
                .with_description("Duration of the Kafka reachability check's metadata request.")
                .with_boundaries(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
                .build(),
        })
    }

    /// One metadata request (in a blocking task): the number of brokers, or why none answered.
    pub async fn check(&self) -> Result<usize, KafkaProbeError> {
        let client = Arc::clone(&self.client);
        let timeout = self.timeout;
        let started = Instant::now();
        let fetched = tokio::task::spawn_blocking(move || {
            let fetched = client.fetch_metadata(None, timeout).map(|m| m.brokers().len());
            // Serve the logs and errors of the attempt (the context keeps the last failure).
            for _ in 0..1_000 {
                if client.poll(Duration::ZERO).is_none() {
                    break;
                }
            }
            fetched
        })
        .await
        .map_err(KafkaProbeError::Panicked)?;
        let result = if fetched.is_ok() { "ok" } else { "error" };
        self.checks.add(1, &[KeyValue::new("result", result)]);
        self.latency.record(started.elapsed().as_secs_f64(), &[KeyValue::new("result", result)]);
        let cause = self.client.context().last_failure.take();
        fetched.map_err(|error| KafkaProbeError::Unreachable {
            brokers: self.brokers.clone(),
            error: Box::new(error),
            cause,
        })
    }

    fn not_yet_reached(&self) -> String {
        format!("not yet reached the Kafka brokers at {}", self.bootstrap_servers)
    }

    /// Checks now and then every `check_interval_ms` until `shutdown` is cancelled, keeping
    /// [`COMPONENT`] unready, with the error as reason, while a check fails.
    pub async fn run(self, health: Health, shutdown: CancellationToken) -> Result<(), KafkaProbeError> {
        health.set_unready(COMPONENT, self.not_yet_reached());
        let mut reachable = None;
        loop {
            let checked = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                checked = self.check() => checked,
            };
            match checked {
                Ok(brokers) => {
                    if reachable != Some(true) {
                        tracing::info!(bootstrap_servers = %self.bootstrap_servers, brokers, "Kafka is reachable.");
                    }
                    reachable = Some(true);
                    health.set_ready(COMPONENT);
                }
                Err(err @ KafkaProbeError::Unreachable { .. }) => {
                    if reachable != Some(false) {
                        tracing::warn!(error = %err, "Kafka is unreachable; retrying.");
                    }
                    reachable = Some(false);
                    health.set_unready(COMPONENT, err.to_string());
                }
                Err(err) => return Err(err),
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}

impl Service {
    /// Spawns a [`KafkaProbe`] of `cfg`'s brokers (client `<name>-probe`); the service is
    /// unready from now until the first successful check.
    pub fn spawn_kafka_probe(&mut self, cfg: &KafkaConfig) -> Result<(), KafkaProbeError> {
        let probe = KafkaProbe::new(cfg, &format!("{}-probe", self.name))?;
        self.health().set_unready(COMPONENT, probe.not_yet_reached());
        let task = probe.run(self.health().clone(), self.shutdown_token());
        self.spawn("kafka-probe", task);
        Ok(())
    }
}

/// Leaves `consumer`'s group now, before the consumer closes, within `within`.
///
/// librdkafka sends a `LeaveGroup` once the unsubscribe's revocation is served, which takes
/// polls of the consumer; a consumer closed before that (`rd_kafka_consumer_close` marks it
/// terminating) leaves only if it is dynamic: a static member (`group.instance.id`) closes
/// without a `LeaveGroup` (KIP-345), so its partitions wait for the session timeout. This polls
/// (dropping any record: nothing read now is committed) until the assignment is empty and then
/// for a moment more, for the request to go out.
pub async fn leave_group<C: rdkafka::consumer::ConsumerContext + 'static>(
    consumer: &rdkafka::consumer::StreamConsumer<C>,
    within: Duration,
) {
    use rdkafka::consumer::Consumer as _;
    /// After the revocation, how long the group thread gets to send the `LeaveGroup`.
    const SEND: Duration = Duration::from_millis(300);
    if consumer.client().fatal_error().is_some() {
        return; // Fenced: it is no member any more, and every poll would fail at once.
    }
    consumer.unsubscribe();
    let deadline = tokio::time::Instant::now() + within;
    let mut released: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        if released.is_none() && consumer.assignment().is_ok_and(|a| a.count() == 0) {
            released = Some(now);
        }
        if now >= deadline || released.is_some_and(|at| now >= at + SEND) {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), consumer.recv()).await;
    }
    if released.is_none() {
        tracing::warn!("The consumer's partitions were not released in time; it may not have left its group.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> KafkaConfig {
        KafkaConfig {
            // Nothing listens on port 1: connections are refused at once.
            bootstrap_servers: "127.0.0.1:1".into(),
            metadata_timeout_ms: 300,
            check_interval_ms: 50,
            ..KafkaConfig::default()
        }
    }

    async fn wait_for(health: &Health, what: impl Fn(&Result<(), String>) -> bool) -> Result<(), String> {
        for _ in 0..200 {
            let readiness = health.readiness();
            if what(&readiness) {
                return readiness;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("readiness never matched; last: {:?}", health.readiness());
    }

    #[tokio::test]
    async fn unreachable_brokers_keep_the_service_unready() {
        let probe = KafkaProbe::new(&unreachable(), "test-probe").expect("client");
        let err = probe.check().await.expect_err("nothing listens on port 1");
        assert!(matches!(err, KafkaProbeError::Unreachable { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("(plaintext)") && msg.contains("last connection error") && msg.contains("refused"),
            "{msg}"
        );

        let (health, token) = (Health::new(), CancellationToken::new());
        let running = tokio::spawn(probe.run(health.clone(), token.clone()));
        let reason = wait_for(&health, |r| r.as_ref().is_err_and(|e| e.contains("cannot fetch metadata")))
            .await
            .expect_err("unready");
        assert!(reason.starts_with("kafka: ") && reason.contains("127.0.0.1:1"), "{reason}");
        token.cancel();
        running.await.expect("join").expect("probe stops cleanly");
    }

    /// Needs the real broker, like the `tests` crate: `dev/kafka start` (or `DWSYNC_TEST_KAFKA`).
    /// Fails, never skips, when it is down.
    #[tokio::test]
    async fn a_reachable_broker_makes_the_service_ready() {
        let cfg = KafkaConfig {
            bootstrap_servers: std::env::var("DWSYNC_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into()),
            ..KafkaConfig::default()
        };
        let probe = KafkaProbe::new(&cfg, "test-probe").expect("client");
        assert!(probe.check().await.expect("broker answers") >= 1);
        let (health, token) = (Health::new(), CancellationToken::new());
        health.set_unready(COMPONENT, "not yet checked");
        let running = tokio::spawn(probe.run(health.clone(), token.clone()));
        wait_for(&health, Result::is_ok).await.expect("ready");
        token.cancel();
        running.await.expect("join").expect("probe stops cleanly");
    }
}
