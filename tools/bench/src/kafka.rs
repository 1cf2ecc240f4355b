//! Kafka clients of the harness: client configs, creating and deleting the run's topics, and the
//! `[kafka]` section (brokers, TLS, SASL) the harness's clients and the services it starts share.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, bail};
use dwsync_config::KafkaConfig;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

/// The run's `[kafka]` section, set once at start ([`init`]).
static SETTINGS: OnceLock<KafkaConfig> = OnceLock::new();

/// Sets the run's `[kafka]` section (`--config`, `DWSYNC_KAFKA__*`, `--bootstrap`), for every
/// client made and every service started from then on; the first call wins.
pub(crate) fn init(settings: KafkaConfig) {
    let _ = SETTINGS.set(settings);
}

/// The run's `[kafka]` section (the defaults, a plaintext local broker, before [`init`]).
pub(crate) fn settings() -> &'static KafkaConfig {
    SETTINGS.get_or_init(KafkaConfig::default)
}

/// A client config for `bootstrap` with the run's security settings (TLS, SASL).
pub(crate) fn config(bootstrap: &str) -> ClientConfig {
    let mut c = settings().client_config("bench");
    let _ = c.set("bootstrap.servers", bootstrap);
    c
}

/// The run's `[kafka]` section as the `DWSYNC_KAFKA__*` variables of a service: each setting of
/// `settings` (none left unset), the password by its file when one is named, else by value.
pub(crate) fn service_env(settings: &KafkaConfig) -> anyhow::Result<Vec<(String, String)>> {
    let serde_json::Value::Object(keys) = serde_json::to_value(settings)? else {
        bail!("the [kafka] section does not serialize as a table");
    };
    let mut env = Vec::new();
    for (key, value) in keys {
        let value = match value {
            // Secrets serialize masked: the password is passed below.
            _ if key == "sasl_password" => continue,
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        env.push((format!("DWSYNC_KAFKA__{}", key.to_ascii_uppercase()), value));
    }
    if settings.sasl_password_file.is_none() && !settings.sasl_password.is_empty() {
        env.push(("DWSYNC_KAFKA__SASL_PASSWORD".to_owned(), settings.sasl_password.expose().to_owned()));
    }
    Ok(env)
}

fn admin(bootstrap: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    config(bootstrap).create().context("cannot create a Kafka admin client")
}

/// Creates `topics` (replication 1) with `partitions` each; existing ones are an error (names are unique per run).
pub(crate) async fn create_topics(bootstrap: &str, topics: &[String], partitions: i32) -> anyhow::Result<()> {
    let admin = admin(bootstrap)?;
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1))).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&new, &opts).await.with_context(|| {
        format!("cannot reach Kafka at {bootstrap} to create topics (is it running? `dev/kafka status`)")
    })?;
    for result in results {
        if let Err((topic, code)) = result {
            bail!("cannot create topic {topic}: {code}");
        }
    }
    Ok(())
}

/// Deletes a run's `sources` and `services` topics; a failure is only reported, under `who`.
pub(crate) async fn delete_run_topics(bootstrap: &str, sources: &[String], services: &[String], who: &str) {
    let all: Vec<String> = sources.iter().chain(services).cloned().collect();
    if let Err(e) = delete_topics(bootstrap, &all).await {
        eprintln!("[{who}] could not delete the run's topics: {e:#}");
    }
}

/// Deletes `topics`; missing ones are fine.
pub(crate) async fn delete_topics(bootstrap: &str, topics: &[String]) -> anyhow::Result<()> {
    let admin = admin(bootstrap)?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.delete_topics(&names, &opts).await.context("cannot delete the run's topics")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, code)) => bail!("cannot delete topic {topic}: {code}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use dwsync_config::{SaslMechanism, Secret, SecurityProtocol};

    use super::*;

    fn secured() -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9094".into(),
            security_protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: SaslMechanism::ScramSha512,
            sasl_username: "bench".into(),
            sasl_password: Secret::new("s3cret"),
            ssl_ca_location: Some("/tls/ca.pem".into()),
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn services_get_every_setting_and_the_password() {
        let env = service_env(&secured()).expect("env");
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("DWSYNC_KAFKA__BOOTSTRAP_SERVERS"), Some("127.0.0.1:9094"));
        assert_eq!(get("DWSYNC_KAFKA__SECURITY_PROTOCOL"), Some("sasl_ssl"));
        assert_eq!(get("DWSYNC_KAFKA__SASL_USERNAME"), Some("bench"));
        assert_eq!(get("DWSYNC_KAFKA__SASL_PASSWORD"), Some("s3cret"));
        assert_eq!(get("DWSYNC_KAFKA__SSL_CA_LOCATION"), Some("/tls/ca.pem"));
        assert_eq!(get("DWSYNC_KAFKA__METADATA_TIMEOUT_MS"), Some("5000"));
        assert_eq!(get("DWSYNC_KAFKA__SSL_KEY_LOCATION"), None, "unset settings are not passed");
        assert!(env.iter().all(|(_, v)| v != "***"), "no masked value: {env:?}");
        // The services read them back into the same section.
        let mechanism = get("DWSYNC_KAFKA__SASL_MECHANISM").expect("mechanism");
        let parsed: SaslMechanism = serde_json::from_value(serde_json::Value::String(mechanism.into())).expect("parse");
        assert_eq!(parsed, SaslMechanism::ScramSha512);

        // A password from a file is passed as its file, never as its value.
        let from_file = KafkaConfig { sasl_password_file: Some("/secrets/kafka".into()), ..secured() };
        let env = service_env(&from_file).expect("env");
        assert!(env.iter().any(|(k, v)| k == "DWSYNC_KAFKA__SASL_PASSWORD_FILE" && v == "/secrets/kafka"));
        assert!(env.iter().all(|(k, _)| k != "DWSYNC_KAFKA__SASL_PASSWORD"));

        // A plaintext broker: no password at all.
        let env = service_env(&KafkaConfig::default()).expect("env");
        assert!(env.iter().all(|(k, _)| !k.starts_with("DWSYNC_KAFKA__SASL_PASSWORD")));
    }

    #[test]
    fn clients_carry_the_security_settings() {
        let config = secured().client_config("bench");
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("ssl.ca.location"), Some("/tls/ca.pem"));
    }
}
