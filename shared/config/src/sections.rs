//! Config sections several services share: Kafka (with TLS and SASL), the HTTP endpoints,
//! telemetry.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Secret;

/// How to reach the Kafka cluster (`[kafka]`), including TLS and SASL.
///
/// Every dwsync Kafka client is configured from this one section by
/// [`client_config`](Self::client_config). A key this section does not have (a typo such as
/// `sasl_pasword`) is refused when the config loads, and so is an unknown protocol or mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` bootstrap brokers. Default: `"127.0.0.1:9092"`.
    pub bootstrap_servers: String,
    /// Prefix of every client's `client.id` (`<prefix>-<client>`). Default: `"dwsync"`.
    pub client_id_prefix: String,
    /// Longest wait for one metadata request, in milliseconds. Default: `5000`.
    pub metadata_timeout_ms: u64,
    /// Pause between two broker reachability checks, in milliseconds. Default: `5000`.
    pub check_interval_ms: u64,
    /// How clients talk to the brokers (librdkafka's `security.protocol`). Default: `plaintext`.
    pub security_protocol: SecurityProtocol,
    /// The SASL mechanism, used with `sasl_plaintext` and `sasl_ssl` (`sasl.mechanism`).
    /// Default: `plain`.
    pub sasl_mechanism: SaslMechanism,
    /// The SASL user name, required with `sasl_plaintext` and `sasl_ssl`. Default: empty.
    pub sasl_username: String,
    /// The SASL password: a [`Secret`], never printed, serialized or logged; set it from the
    /// environment (`DWSYNC_KAFKA__SASL_PASSWORD`) rather than in a file. Default: empty.
    pub sasl_password: Secret,
    /// A file holding the SASL password instead (a mounted Kubernetes Secret, a Docker secret):
    /// read when the config loads, one trailing newline removed; an unreadable or empty file,
    /// or a password set as well, stops the service naming this key. Default: none.
    pub sasl_password_file: Option<String>,
    /// PEM file (or directory) of the CAs that sign the brokers' certificates, used with `ssl`
    /// and `sasl_ssl` (`ssl.ca.location`). Default: none, the system's CA certificates (enough
    /// for brokers with publicly signed certificates, such as Amazon MSK or Confluent Cloud).
    pub ssl_ca_location: Option<String>,
    /// PEM file of this client's certificate, for brokers that authenticate clients by TLS
    /// (`ssl.certificate.location`; with `ssl_key_location`). Default: none.
    pub ssl_certificate_location: Option<String>,
    /// PEM file of the private key of `ssl_certificate_location`, unencrypted
    /// (`ssl.key.location`). Default: none.
    pub ssl_key_location: Option<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            client_id_prefix: "dwsync".into(),
            metadata_timeout_ms: 5_000,
            check_interval_ms: 5_000,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: SaslMechanism::Plain,
            sasl_username: String::new(),
            sasl_password: Secret::default(),
            sasl_password_file: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
        }
    }
}

impl KafkaConfig {
    /// [`metadata_timeout_ms`](Self::metadata_timeout_ms) as a `Duration`.
    pub fn metadata_timeout(&self) -> Duration {
        Duration::from_millis(self.metadata_timeout_ms)
    }

    /// [`check_interval_ms`](Self::check_interval_ms) as a `Duration`.
    pub fn check_interval(&self) -> Duration {
        Duration::from_millis(self.check_interval_ms)
    }

    /// How the clients reach and authenticate to the brokers, for messages (never the
    /// password): `plaintext`, `ssl`, `sasl_ssl, SCRAM-SHA-512 as user "dwsync"`.
    pub fn security_summary(&self) -> String {
        let protocol = self.security_protocol.as_librdkafka();
        if self.security_protocol.uses_sasl() {
            format!("{protocol}, {} as user {:?}", self.sasl_mechanism.as_librdkafka(), self.sasl_username)
        } else {
            protocol.to_owned()
        }
    }

    /// The librdkafka properties of this section, as `(name, value)` pairs: the brokers,
    /// `client.id` `<prefix>-<client>`, reconnects backing off to at most 1 s (librdkafka's
    /// default is 10 s, so every client is back within about a second of a broker's return),
    /// `security.protocol`, and the SASL and TLS properties the protocol uses (the others are
    /// not passed). The SASL password is among them: never log these pairs.
    pub fn client_properties(&self, client: &str) -> Vec<(&'static str, String)> {
        let mut props = vec![
            ("bootstrap.servers", self.bootstrap_servers.clone()),
            ("client.id", format!("{}-{client}", self.client_id_prefix)),
            ("reconnect.backoff.max.ms", "1000".to_owned()),
            ("security.protocol", self.security_protocol.as_librdkafka().to_owned()),
        ];
        if self.security_protocol.uses_sasl() {
            props.push(("sasl.mechanism", self.sasl_mechanism.as_librdkafka().to_owned()));
            props.push(("sasl.username", self.sasl_username.clone()));
            props.push(("sasl.password", self.sasl_password.expose().to_owned()));
        }
        if self.security_protocol.uses_tls() {
            let files = [
                ("ssl.ca.location", &self.ssl_ca_location),
                ("ssl.certificate.location", &self.ssl_certificate_location),
                ("ssl.key.location", &self.ssl_key_location),
            ];
            props.extend(files.into_iter().filter_map(|(name, value)| value.clone().map(|v| (name, v))));
        }
        props
    }

    /// An rdkafka client configuration with [`client_properties`](Self::client_properties).
    /// librdkafka checks them when the client is created: SASL without a user name or password,
    /// or a certificate without its key, is refused then.
    #[cfg(feature = "kafka")]
    pub fn client_config(&self, client: &str) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        for (name, value) in self.client_properties(client) {
            config.set(name, value);
        }
        config
    }
}

/// How Kafka clients talk to the brokers (`kafka.security_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No encryption, no authentication (`"plaintext"`).
    #[default]
    Plaintext,
    /// TLS, with a client certificate if one is configured (`"ssl"`).
    Ssl,
    /// SASL authentication without encryption (`"sasl_plaintext"`).
    SaslPlaintext,
    /// SASL authentication over TLS (`"sasl_ssl"`): Amazon MSK, Confluent Cloud, Strimzi.
    SaslSsl,
}

impl SecurityProtocol {
    /// librdkafka's name of the protocol (`security.protocol`).
    pub const fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    /// Whether the protocol authenticates with SASL.
    pub const fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// Whether the protocol encrypts with TLS.
    pub const fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// The SASL mechanism (`kafka.sasl_mechanism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// The password sent as is, inside TLS (`"plain"`; Confluent Cloud).
    #[default]
    #[serde(rename = "plain")]
    Plain,
    /// Salted challenge-response with SHA-256 (`"scram-sha-256"`).
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// Salted challenge-response with SHA-512 (`"scram-sha-512"`; Amazon MSK, Strimzi).
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// librdkafka's name of the mechanism (`sasl.mechanism`).
    pub const fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Where a service serves `/healthz`, `/readyz` and `/metrics` (`[http]`). An unknown key is
/// refused when the config loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address. Default: set by each service (`127.0.0.1:8081` ingest, `:8082` uploader,
    /// `:8083` control); `127.0.0.1:8080` for `HttpConfig::default()`. Port `0` picks a free port.
    pub listen: SocketAddr,
    /// On SIGTERM, how long `/readyz` answers 503 before the service stops taking work (so a
    /// load balancer or Kubernetes stops routing to it first), in ms. Default: `0`.
    pub shutdown_delay_ms: u64,
    /// Then, how long in-flight work may take to finish before it is abandoned (an abandoned
    /// flush or upload is not committed, so it is redone after a restart), in ms. Default: `10000`.
    pub shutdown_grace_ms: u64,
}

impl HttpConfig {
    /// Listen on `127.0.0.1:<port>`.
    pub const fn localhost(port: u16) -> Self {
        Self {
            listen: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            shutdown_delay_ms: 0,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self::localhost(8080)
    }
}

/// Logs, metrics and traces (`[telemetry]`). An unknown key is refused when the config loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP collector (`http://otel-collector:4318`); metrics go to
    /// `<url>/v1/metrics`, spans to `<url>/v1/traces`. Default: none, OTLP export off
    /// (metrics are still served on `/metrics`).
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported telemetry. Default: the service's name (`dwsync-ingest`,
    /// ...); `"dwsync"` for `TelemetryConfig::default()`.
    pub service_name: String,
    /// Log line format on stderr. Default: `"text"`.
    pub log_format: LogFormat,
}

impl TelemetryConfig {
    /// The default telemetry settings with `service.name` set to `service_name`.
    pub fn for_service(service_name: &str) -> Self {
        Self { service_name: service_name.to_owned(), ..Self::default() }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { otlp_endpoint: None, service_name: "dwsync".into(), log_format: LogFormat::Text }
    }
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (`"text"`).
    #[default]
    Text,
    /// One JSON object per line (`"json"`).
    Json,
}

#[cfg(test)]
mod tests {
    use figment::value::Value;

    use super::*;

    fn props(cfg: &KafkaConfig) -> Vec<(&'static str, String)> {
        cfg.client_properties("ingest")
    }

    fn sasl_ssl() -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: "b-1.msk:9096,b-2.msk:9096".into(),
            security_protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: SaslMechanism::ScramSha512,
            sasl_username: "dwsync".into(),
            sasl_password: Secret::new("pa55-w0rd-918273"),
            ssl_ca_location: Some("/etc/dwsync/kafka-ca/ca.crt".into()),
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn the_security_summary_names_the_mechanism_and_the_user_never_the_password() {
        assert_eq!(KafkaConfig::default().security_summary(), "plaintext");
        let summary = sasl_ssl().security_summary();
        assert_eq!(summary, "sasl_ssl, SCRAM-SHA-512 as user \"dwsync\"");
        assert!(!summary.contains("pa55-w0rd-918273"));
    }

    #[test]
    fn plaintext_passes_no_sasl_or_tls_property() {
        let expected = [
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("client.id", "dwsync-ingest"),
            ("reconnect.backoff.max.ms", "1000"),
            ("security.protocol", "plaintext"),
        ];
        let mut cfg = KafkaConfig::default();
        assert_eq!(props(&cfg), expected.map(|(k, v)| (k, v.to_owned())));
        // SASL and TLS settings are passed only with a protocol that uses them.
        cfg.sasl_username = "u".into();
        cfg.ssl_ca_location = Some("/ca.pem".into());
        assert_eq!(props(&cfg), expected.map(|(k, v)| (k, v.to_owned())));
    }

    #[test]
    fn sasl_ssl_passes_the_mechanism_the_credentials_and_the_ca() {
        let expected = [
            ("bootstrap.servers", "b-1.msk:9096,b-2.msk:9096"),
            ("client.id", "dwsync-ingest"),
            ("reconnect.backoff.max.ms", "1000"),
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "dwsync"),
            ("sasl.password", "pa55-w0rd-918273"),
            ("ssl.ca.location", "/etc/dwsync/kafka-ca/ca.crt"),
        ];
        assert_eq!(props(&sasl_ssl()), expected.map(|(k, v)| (k, v.to_owned())));
    }

    #[test]
    fn each_protocol_and_mechanism_has_its_librdkafka_name() {
        let cases = [
            (SecurityProtocol::SaslPlaintext, SaslMechanism::Plain, "sasl_plaintext", Some("PLAIN")),
            (SecurityProtocol::SaslSsl, SaslMechanism::ScramSha256, "sasl_ssl", Some("SCRAM-SHA-256")),
            (SecurityProtocol::Ssl, SaslMechanism::ScramSha512, "ssl", None),
        ];
        for (protocol, mechanism, name, sasl) in cases {
            let cfg = KafkaConfig { security_protocol: protocol, sasl_mechanism: mechanism, ..KafkaConfig::default() };
            let props = props(&cfg);
            let get = |key: &str| props.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
            assert_eq!(get("security.protocol"), Some(name));
            assert_eq!(get("sasl.mechanism"), sasl, "{name}");
        }
    }

    #[test]
    fn ssl_passes_the_client_certificate_and_key() {
        let cfg = KafkaConfig {
            security_protocol: SecurityProtocol::Ssl,
            ssl_certificate_location: Some("/tls/client.crt".into()),
            ssl_key_location: Some("/tls/client.key".into()),
            sasl_username: "ignored".into(),
            ..KafkaConfig::default()
        };
        let props = props(&cfg);
        assert_eq!(
            props[3..].to_vec(),
            [
                ("security.protocol", "ssl".to_owned()),
                ("ssl.certificate.location", "/tls/client.crt".to_owned()),
                ("ssl.key.location", "/tls/client.key".to_owned()),
            ]
        );
    }

    #[test]
    fn the_password_is_never_in_debug_or_serialized_output() {
        let cfg = sasl_ssl();
        for shown in [format!("{cfg:?}"), format!("{cfg:#?}")] {
            assert!(!shown.contains("pa55-w0rd-918273") && shown.contains("sasl_password: ***"), "{shown}");
        }
        let dumped = Value::serialize(&cfg).expect("serializes");
        assert_eq!(dumped.find_ref("sasl_password").and_then(Value::as_str), Some("***"));
        assert_eq!(dumped.find_ref("security_protocol").and_then(Value::as_str), Some("sasl_ssl"));
        assert_eq!(dumped.find_ref("sasl_mechanism").and_then(Value::as_str), Some("scram-sha-512"));
    }

    /// The linked librdkafka must be built with TLS and SCRAM, or these settings would only fail
    /// once a service starts. Creating a client checks its configuration; no broker is needed.
    #[cfg(feature = "kafka")]
    #[test]
    fn librdkafka_accepts_every_protocol_and_mechanism() {
        use rdkafka::admin::AdminClient;
        use rdkafka::client::DefaultClientContext;

        for protocol in [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ] {
            for mechanism in [SaslMechanism::Plain, SaslMechanism::ScramSha256, SaslMechanism::ScramSha512] {
                let cfg = KafkaConfig {
                    bootstrap_servers: "127.0.0.1:1".into(),
                    security_protocol: protocol,
                    sasl_mechanism: mechanism,
                    ssl_ca_location: None,
                    ..sasl_ssl()
                };
                let created: Result<AdminClient<DefaultClientContext>, _> = cfg.client_config("test").create();
                if let Err(err) = created {
                    panic!("{protocol:?} with {mechanism:?} refused by librdkafka: {err}");
                }
            }
        }
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn librdkafka_refuses_sasl_without_a_user_name() {
        use rdkafka::admin::AdminClient;
        use rdkafka::client::DefaultClientContext;

        let cfg = KafkaConfig {
            bootstrap_servers: "127.0.0.1:1".into(),
            sasl_username: String::new(),
            sasl_mechanism: SaslMechanism::Plain,
            ..sasl_ssl()
        };
        let created: Result<AdminClient<DefaultClientContext>, _> = cfg.client_config("test").create();
        let Err(err) = created else { panic!("SASL PLAIN without a user name was accepted") };
        assert!(!err.to_string().contains("pa55-w0rd-918273"), "{err}");
    }
}
