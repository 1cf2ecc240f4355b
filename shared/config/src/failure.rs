//! [`LastFailure`]: why a Kafka client's last connection failed, for error messages.

use std::sync::{Mutex, PoisonError};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The last connection failure a Kafka client reported — refused, TLS handshake, SASL login —
/// as librdkafka said it (naming the broker and the cause, never the SASL password).
///
/// A request that fails for any of these says only "broker transport failure"; a client context
/// records the failures here from its `log` and `error` callbacks (rdkafka delivers both when
/// the client's queue is polled), and the error message takes the last one.
#[derive(Debug, Default)]
pub struct LastFailure(Mutex<Option<String>>);

impl LastFailure {
    /// From a `ClientContext::log` call: keeps a connection's failure (`FAIL`, error level).
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let severe = matches!(
            level,
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error
        );
        if fac == "FAIL" && severe {
            self.keep(message);
        }
    }

    /// From a `ClientContext::error` call: keeps the reason, unless it is "all brokers are
    /// down", which follows a connection's failure and would hide its cause.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            self.keep(reason);
        }
    }

    /// The last failure recorded since the last call, if any.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn keep(&self, reason: &str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_connection_failure_not_all_brokers_down() {
        let last = LastFailure::default();
        last.log(RDKafkaLogLevel::Debug, "FAIL", "debug noise");
        last.log(RDKafkaLogLevel::Error, "CONFWARN", "not a connection");
        assert_eq!(last.take(), None);
        last.log(RDKafkaLogLevel::Error, "FAIL", "b:9094/bootstrap: SASL authentication error: …");
        last.error(&KafkaError::Global(RDKafkaErrorCode::AllBrokersDown), "1/1 brokers are down");
        assert_eq!(last.take().as_deref(), Some("b:9094/bootstrap: SASL authentication error: …"));
        assert_eq!(last.take(), None, "taken");
        last.error(&KafkaError::Global(RDKafkaErrorCode::Authentication), "SASL authentication error");
        assert_eq!(last.take().as_deref(), Some("SASL authentication error"));
    }
}
