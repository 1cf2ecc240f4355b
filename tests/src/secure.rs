//! The secured broker of `dev/kafka-secure`: its SASL_SSL address, the CA that signed its
//! certificate, and its users (one per SASL mechanism), read from the files the script writes.

use std::path::{Path, PathBuf};

use dwsync_config::{KafkaConfig, SaslMechanism, Secret, SecurityProtocol};

/// One SASL user of the secured broker.
#[derive(Debug, Clone)]
pub struct SecureUser {
    /// Its mechanism (a SCRAM user has credentials for its own mechanism only).
    pub mechanism: SaslMechanism,
    /// Its name.
    pub name: String,
    /// Its password.
    pub password: Secret,
}

/// The secured broker (`dev/kafka-secure start`; `dev/test` starts it).
#[derive(Debug, Clone)]
pub struct SecureKafka {
    /// Its SASL_SSL bootstrap address (`DWSYNC_TEST_KAFKA_SECURE`, default `127.0.0.1:9094`).
    pub bootstrap: String,
    /// The script's directory (`DWSYNC_TEST_KAFKA_SECURE_DIR`, else `$DWSYNC_RUN/kafka-secure`,
    /// else `<repo>/.dev/kafka-secure`).
    pub dir: PathBuf,
    users: Vec<SecureUser>,
}

impl SecureKafka {
    /// The broker as `dev/kafka-secure` left it; panics (the test fails, never skips) when the
    /// script has not run.
    pub fn from_env() -> Self {
        let bootstrap = std::env::var("DWSYNC_TEST_KAFKA_SECURE").unwrap_or_else(|_| "127.0.0.1:9094".into());
        let dir = std::env::var_os("DWSYNC_TEST_KAFKA_SECURE_DIR").map(PathBuf::from).unwrap_or_else(|| {
            let run = std::env::var_os("DWSYNC_RUN")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".dev"));
            run.join("kafka-secure")
        });
        let users_file = dir.join("users");
        let text = std::fs::read_to_string(&users_file).unwrap_or_else(|e| {
            panic!("cannot read {} ({e}); start the secured broker with `dev/kafka-secure start`", users_file.display())
        });
        let users = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let mechanism = match fields.next()? {
                    "PLAIN" => SaslMechanism::Plain,
                    "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
                    "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
                    _ => return None,
                };
                let name = fields.next()?.to_owned();
                let password = Secret::new(fields.next()?);
                Some(SecureUser { mechanism, name, password })
            })
            .filter(|u| u.name != "broker")
            .collect();
        Self { bootstrap, dir, users }
    }

    /// The CA file to trust (`ssl_ca_location`).
    pub fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    /// A client certificate and its key signed by the CA (the broker requests one, requires none).
    pub fn client_certificate(&self) -> (String, String) {
        (self.dir.join("client.pem").display().to_string(), self.dir.join("client.key").display().to_string())
    }

    /// The user of `mechanism`.
    pub fn user(&self, mechanism: SaslMechanism) -> &SecureUser {
        self.users
            .iter()
            .find(|u| u.mechanism == mechanism)
            .unwrap_or_else(|| panic!("no {mechanism:?} user in {}", self.dir.join("users").display()))
    }

    /// The `[kafka]` section of a client logging in as the user of `mechanism` over SASL_SSL,
    /// trusting the broker's CA.
    pub fn config(&self, mechanism: SaslMechanism) -> KafkaConfig {
        let user = self.user(mechanism);
        KafkaConfig {
            bootstrap_servers: self.bootstrap.clone(),
            security_protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: mechanism,
            sasl_username: user.name.clone(),
            sasl_password: user.password.clone(),
            ssl_ca_location: Some(self.ca()),
            ..KafkaConfig::default()
        }
    }
}

/// The `[kafka]` section of a service's TOML config for `cfg`, without the password (pass it in
/// the environment: [`kafka_password_env`]).
pub fn kafka_toml(cfg: &KafkaConfig) -> String {
    let mut toml = format!(
        "[kafka]\nbootstrap_servers = \"{}\"\nsecurity_protocol = \"{}\"\n",
        cfg.bootstrap_servers,
        cfg.security_protocol.as_librdkafka()
    );
    if cfg.security_protocol.uses_sasl() {
        toml.push_str(&format!(
            "sasl_mechanism = \"{}\"\nsasl_username = \"{}\"\n",
            cfg.sasl_mechanism.as_librdkafka().to_ascii_lowercase(),
            cfg.sasl_username
        ));
    }
    let files = [
        ("ssl_ca_location", &cfg.ssl_ca_location),
        ("ssl_certificate_location", &cfg.ssl_certificate_location),
        ("ssl_key_location", &cfg.ssl_key_location),
    ];
    for (key, value) in files {
        if let Some(path) = value {
            toml.push_str(&format!("{key} = \"{path}\"\n"));
        }
    }
    toml
}

/// The environment that passes `cfg`'s SASL password to a service (none when it has none).
pub fn kafka_password_env(cfg: &KafkaConfig) -> Vec<(&'static str, String)> {
    if cfg.sasl_password.is_empty() {
        Vec::new()
    } else {
        vec![("DWSYNC_KAFKA__SASL_PASSWORD", cfg.sasl_password.expose().to_owned())]
    }
}
