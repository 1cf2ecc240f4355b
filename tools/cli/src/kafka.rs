//! How the CLI reaches Kafka: the `[kafka]` section the services read — brokers, TLS, SASL —
//! from a dwsync config file and `DWSYNC_KAFKA__*` variables, so a command runs beside a
//! service with its settings (its password from the same secret).

use std::time::Duration;

pub use dwsync_config::KafkaArgs;
use dwsync_config::{KafkaConfig, LastFailure};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::error::KafkaError;

use crate::Error;

/// The context of the CLI's Kafka clients: it keeps the last connection failure (a refused
/// SASL login, an untrusted broker certificate) for the error message.
#[derive(Debug, Default)]
pub struct CliContext {
    last_failure: LastFailure,
}

impl ClientContext for CliContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.last_failure.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.last_failure.error(&error, reason);
    }
}

impl ConsumerContext for CliContext {}

/// A Kafka failure of `consumer`'s command: the brokers, how the CLI authenticated (never the
/// password), the error and the last connection failure (served by polling the consumer).
pub fn failure(kafka: &KafkaConfig, consumer: &BaseConsumer<CliContext>, error: &KafkaError) -> Error {
    for _ in 0..1_000 {
        if consumer.poll(Duration::ZERO).is_none() {
            break;
        }
    }
    let cause =
        consumer.context().last_failure.take().map(|c| format!("; last connection error: {c}")).unwrap_or_default();
    Error::Kafka(format!("brokers {} ({}): {error}{cause}", kafka.bootstrap_servers, kafka.security_summary()))
}
