//! [`KafkaArgs`]: the Kafka options of the tools (the `dwsync` CLI, `dwsync-loadgen`): the
//! `[kafka]` section the services read — brokers, TLS, SASL — from a dwsync config file and
//! `DWSYNC_KAFKA__*` variables, so a tool runs beside a service with its settings (its password
//! from the same secret).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, ENV_PREFIX, KafkaConfig};

/// The Kafka options of a command.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct KafkaArgs {
    /// A dwsync config file (a service's will do): its `[kafka]` section is used — brokers,
    /// `security_protocol`, SASL and TLS settings — the other sections are ignored.
    /// `DWSYNC_KAFKA__*` variables override it (`DWSYNC_KAFKA__SASL_PASSWORD`), as for the
    /// services.
    #[arg(long, env = "DWSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers [default: the config's `kafka.bootstrap_servers`, else
    /// `DWSYNC_KAFKA__BOOTSTRAP_SERVERS`, else 127.0.0.1:9092].
    #[arg(long)]
    pub bootstrap: Option<String>,
}

/// A config file read for its `[kafka]` section only.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct KafkaSection {
    kafka: KafkaConfig,
}

impl KafkaArgs {
    /// The brokers at `bootstrap`, other settings from the environment.
    pub fn with_bootstrap(bootstrap: impl Into<String>) -> Self {
        Self { config: None, bootstrap: Some(bootstrap.into()) }
    }

    /// The `[kafka]` section: defaults, then the config file, then `DWSYNC_KAFKA__*`, then
    /// `--bootstrap`.
    pub fn load(&self) -> Result<KafkaConfig, ConfigError> {
        let mut kafka = crate::load::<KafkaSection>(self.config.as_deref(), ENV_PREFIX)?.kafka;
        if let Some(bootstrap) = &self.bootstrap {
            kafka.bootstrap_servers.clone_from(bootstrap);
        }
        Ok(kafka)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_overrides_the_config_and_security_comes_from_it() {
        let dir = std::env::temp_dir().join(format!("dwsync-kafka-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("ingest.toml");
        let toml = "[kafka]\nbootstrap_servers = \"b-1:9096\"\nsecurity_protocol = \"sasl_ssl\"\n\
                    sasl_mechanism = \"scram-sha-512\"\nsasl_username = \"dwsync\"\n\
                    [ingest]\ngroup_id = \"other sections are ignored\"\n";
        std::fs::write(&file, toml).expect("write");
        let args = KafkaArgs { config: Some(file.clone()), bootstrap: None };
        let kafka = args.load().expect("load");
        assert_eq!(kafka.bootstrap_servers, "b-1:9096");
        assert_eq!(kafka.security_summary(), "sasl_ssl, SCRAM-SHA-512 as user \"dwsync\"");
        let args = KafkaArgs { config: Some(file), bootstrap: Some("b-2:9096".into()) };
        assert_eq!(args.load().expect("load").bootstrap_servers, "b-2:9096");
        let _ = std::fs::remove_dir_all(dir);
    }
}
