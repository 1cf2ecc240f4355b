//! Service configuration: a TOML file plus environment overrides into one typed struct.
//!
//! Every service has a `Config` struct (serde, `Default`) and loads it with [`load`]: the
//! struct's `Default` first, then the TOML file named by `--config <path>` or `DWSYNC_CONFIG`
//! (see [`Args`]), then `DWSYNC_*` environment variables, `__` separating nested keys
//! (`DWSYNC_KAFKA__BOOTSTRAP_SERVERS` sets `kafka.bootstrap_servers`).
//!
//! The sections several services share ([`KafkaConfig`], [`HttpConfig`], [`TelemetryConfig`])
//! live here; credentials are held in [`Secret`], which never prints or serializes its value.

mod args;
mod env;
mod error;
#[cfg(feature = "kafka")]
mod failure;
mod kafka_args;
mod secret;
mod sections;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use args::{Args, Invocation, ServiceConfig, effective, load_for_binary};
pub use error::ConfigError;
#[cfg(feature = "kafka")]
pub use failure::LastFailure;
pub use kafka_args::KafkaArgs;
pub use secret::Secret;
pub use sections::{HttpConfig, KafkaConfig, LogFormat, SaslMechanism, SecurityProtocol, TelemetryConfig};

/// Prefix of the environment variables every dwsync service reads its configuration from.
pub const ENV_PREFIX: &str = "DWSYNC_";

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "DWSYNC_CONFIG";

/// Loads a `T` from `T::default()`, then the TOML `file` if given, then environment variables.
///
/// Environment variables are those starting with `env_prefix`; the rest of the name, lowercased,
/// is the key, with `__` between nested keys. `<env_prefix>CONFIG` (the config file path) is
/// not a key. A variable whose key has a string default is taken verbatim; any other is parsed
/// like a TOML value (`true`, `42`, `[1, 2]`), so `DWSYNC_S3__SECRET_ACCESS_KEY=0123` stays the
/// string `"0123"`. Keys `T` does not have are ignored.
pub fn load<T>(file: Option<&Path>, env_prefix: &str) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    // Secrets must serialize as themselves here, or a default would come back as "***".
    let defaults = secret::revealed(|| Value::serialize(T::default()).map_err(ConfigError::from))?;
    let mut figment = Figment::from(Serialized::defaults(&defaults));
    if let Some(path) = file {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(env::EnvLayer::new(env_prefix, defaults));
    if let Some(password) = password_from_file(&figment)? {
        figment = figment.merge(Serialized::default(PASSWORD_KEY, password));
    }
    Ok(figment.extract()?)
}

/// The key [`password_from_file`] sets.
const PASSWORD_KEY: &str = "kafka.sasl_password";

/// The key naming the file it reads.
const PASSWORD_FILE_KEY: &str = "kafka.sasl_password_file";

/// The SASL password read from `kafka.sasl_password_file`, if that key is set: the file's
/// content without one trailing newline. Never the content in an error.
fn password_from_file(figment: &Figment) -> Result<Option<String>, ConfigError> {
    let Ok(Some(path)) = figment.extract_inner::<Option<String>>(PASSWORD_FILE_KEY) else { return Ok(None) };
    let invalid = |message: String| ConfigError::Invalid {
        key: PASSWORD_FILE_KEY.to_owned(),
        origin: figment.find_metadata(PASSWORD_FILE_KEY).map_or_else(|| "?".to_owned(), |m| m.name.to_string()),
        message,
    };
    let password_set = figment.extract_inner::<String>(PASSWORD_KEY).is_ok_and(|p| !p.is_empty());
    if password_set {
        return Err(invalid(format!("set either {PASSWORD_KEY} or {PASSWORD_FILE_KEY}, not both")));
    }
    let content = std::fs::read_to_string(&path).map_err(|e| invalid(format!("cannot read {path}: {e}")))?;
    let password = content.strip_suffix('\n').map(|p| p.strip_suffix('\r').unwrap_or(p)).unwrap_or(&content);
    if password.is_empty() {
        return Err(invalid(format!("{path} is empty")));
    }
    Ok(Some(password.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use figment::Jail;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct TestConfig {
        kafka: KafkaConfig,
        http: HttpConfig,
        telemetry: TelemetryConfig,
        password: Secret,
        retries: u32,
    }

    impl Default for TestConfig {
        fn default() -> Self {
            Self {
                kafka: KafkaConfig { client_id_prefix: "test".into(), ..KafkaConfig::default() },
                http: HttpConfig::localhost(9000),
                telemetry: TelemetryConfig::default(),
                password: Secret::default(),
                retries: 3,
            }
        }
    }

    fn load_test(jail: &Jail, file: Option<&str>) -> Result<TestConfig, ConfigError> {
        let path = file.map(|f| jail.directory().join(f));
        load(path.as_deref(), ENV_PREFIX)
    }

    #[expect(clippy::result_large_err, reason = "figment::Jail's closures return figment::Result")]
    fn jail(f: impl FnOnce(&mut Jail) -> Result<(), ConfigError>) {
        Jail::expect_with(|jail| {
            jail.clear_env();
            f(jail).map_err(|e| e.to_string().into())
        });
    }

    #[test]
    fn the_sasl_password_comes_from_a_file_when_one_is_named() {
        jail(|jail| {
            jail.create_file("password", "s3cr3t\n")?;
            let path = jail.directory().join("password");
            jail.set_env("DWSYNC_KAFKA__SASL_PASSWORD_FILE", path.display());
            let cfg = load_test(jail, None)?;
            assert_eq!(cfg.kafka.sasl_password.expose(), "s3cr3t", "one trailing newline removed");

            jail.set_env("DWSYNC_KAFKA__SASL_PASSWORD", "other");
            let both = load_test(jail, None).expect_err("both set");
            assert_eq!(both.key(), Some("kafka.sasl_password_file"));
            assert!(!both.to_string().contains("s3cr3t") && !both.to_string().contains("other"), "{both}");

            jail.set_env("DWSYNC_KAFKA__SASL_PASSWORD", "");
            jail.create_file("empty", "")?;
            jail.set_env("DWSYNC_KAFKA__SASL_PASSWORD_FILE", jail.directory().join("empty").display());
            assert!(load_test(jail, None).expect_err("empty").to_string().contains("is empty"));
            jail.set_env("DWSYNC_KAFKA__SASL_PASSWORD_FILE", jail.directory().join("missing").display());
            let missing = load_test(jail, None).expect_err("missing");
            assert!(missing.to_string().contains("cannot read"), "{missing}");
            Ok(())
        });
    }

    #[test]
    fn defaults_come_from_default() {
        jail(|jail| {
            let cfg = load_test(jail, None)?;
            assert_eq!(cfg, TestConfig::default());
            assert_eq!(cfg.kafka.bootstrap_servers, "127.0.0.1:9092");
            assert_eq!(cfg.kafka.client_id_prefix, "test", "the struct's default, not the section's");
            assert_eq!(cfg.telemetry.otlp_endpoint, None);
            assert_eq!(cfg.telemetry.log_format, LogFormat::Text);
            assert_eq!(cfg.password.expose(), "", "a default secret must not come back as ***");
            Ok(())
        });
    }

    #[test]
    fn file_overrides_defaults() {
        jail(|jail| {
            jail.create_file(
                "dwsync.toml",
                r#"
                retries = 7
                [kafka]
                bootstrap_servers = "kafka-1:9092,kafka-2:9092"
                [telemetry]
                log_format = "json"
                otlp_endpoint = "http://collector:4318"
                "#,
            )
            .map_err(|e| ConfigError::Usage(e.to_string()))?;
            let cfg = load_test(jail, Some("dwsync.toml"))?;
            assert_eq!(cfg.retries, 7);
            assert_eq!(cfg.kafka.bootstrap_servers, "kafka-1:9092,kafka-2:9092");
            assert_eq!(cfg.kafka.client_id_prefix, "test", "keys absent from the file keep defaults");
            assert_eq!(cfg.telemetry.log_format, LogFormat::Json);
            assert_eq!(cfg.telemetry.otlp_endpoint.as_deref(), Some("http://collector:4318"));
            assert_eq!(cfg.http, HttpConfig::localhost(9000));
            Ok(())
        });
    }

    #[test]
    fn env_overrides_file() {
        jail(|jail| {
            jail.create_file("dwsync.toml", "retries = 7\n[http]\nlisten = \"127.0.0.1:1\"\n")
                .map_err(|e| ConfigError::Usage(e.to_string()))?;
            jail.set_env("DWSYNC_RETRIES", "9");
            jail.set_env("DWSYNC_HTTP__LISTEN", "0.0.0.0:8081");
            jail.set_env("DWSYNC_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092");
            jail.set_env("DWSYNC_TELEMETRY__OTLP_ENDPOINT", "http://otel:4318");
            jail.set_env("DWSYNC_CONFIG", "ignored-as-a-key.toml");
            jail.set_env("OTHER_RETRIES", "1");
            let cfg = load_test(jail, Some("dwsync.toml"))?;
            assert_eq!(cfg.retries, 9);
            assert_eq!(
                cfg.http.listen,
                "0.0.0.0:8081".parse::<SocketAddr>().map_err(|e| ConfigError::Usage(e.to_string()))?
            );
            assert_eq!(cfg.kafka.bootstrap_servers, "kafka:9092");
            assert_eq!(cfg.telemetry.otlp_endpoint.as_deref(), Some("http://otel:4318"));
            Ok(())
        });
    }

    #[test]
    fn env_strings_are_taken_verbatim() {
        jail(|jail| {
            jail.set_env("DWSYNC_PASSWORD", "0123");
            jail.set_env("DWSYNC_KAFKA__CLIENT_ID_PREFIX", "true");
            let cfg = load_test(jail, None)?;
            assert_eq!(cfg.password.expose(), "0123");
            assert_eq!(cfg.kafka.client_id_prefix, "true");
            Ok(())
        });
    }

    #[test]
    fn bad_env_value_names_key_and_variable() {
        jail(|jail| {
            jail.set_env("DWSYNC_HTTP__LISTEN", "not-an-address");
            let err = load_test(jail, None).expect_err("invalid address");
            assert_eq!(err.key(), Some("http.listen"));
            let msg = err.to_string();
            assert!(msg.contains("`http.listen`") && msg.contains("DWSYNC_HTTP__LISTEN"), "{msg}");
            Ok(())
        });
    }

    #[test]
    fn bad_file_value_names_key_and_file() {
        jail(|jail| {
            jail.create_file("dwsync.toml", "[telemetry]\nlog_format = \"xml\"\n")
                .map_err(|e| ConfigError::Usage(e.to_string()))?;
            let err = load_test(jail, Some("dwsync.toml")).expect_err("unknown variant");
            assert_eq!(err.key(), Some("telemetry.log_format"));
            let msg = err.to_string();
            assert!(msg.contains("dwsync.toml") && msg.contains("xml"), "{msg}");
            Ok(())
        });
    }

    #[test]
    fn kafka_security_from_the_file_and_the_password_from_the_environment() {
        jail(|jail| {
            jail.create_file(
                "dwsync.toml",
                r#"
                [kafka]
                security_protocol = "sasl_ssl"
                sasl_mechanism = "scram-sha-512"
                sasl_username = "dwsync"
                ssl_ca_location = "/etc/dwsync/kafka-ca/ca.crt"
                "#,
            )
            .map_err(|e| ConfigError::Usage(e.to_string()))?;
            jail.set_env("DWSYNC_KAFKA__SASL_PASSWORD", "0123");
            let cfg = load_test(jail, Some("dwsync.toml"))?;
            assert_eq!(cfg.kafka.security_protocol, SecurityProtocol::SaslSsl);
            assert_eq!(cfg.kafka.sasl_mechanism, SaslMechanism::ScramSha512);
            assert_eq!(cfg.kafka.sasl_username, "dwsync");
            assert_eq!(cfg.kafka.sasl_password.expose(), "0123", "taken verbatim");
            assert_eq!(cfg.kafka.ssl_ca_location.as_deref(), Some("/etc/dwsync/kafka-ca/ca.crt"));
            assert_eq!(cfg.kafka.client_id_prefix, "test", "keys absent from the file keep defaults");
            Ok(())
        });
    }

    #[test]
    fn a_kafka_typo_is_refused_with_its_key() {
        let cases = [
            ("[kafka]\nsecurity_protocol = \"SASL-SSL\"\n", "kafka.security_protocol", "sasl_ssl"),
            (
                "[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"scram-sha512\"\n",
                "kafka.sasl_mechanism",
                "scram-sha-512",
            ),
            ("[kafka]\nsasl_pasword = \"hunter2-secret\"\n", "kafka", "sasl_pasword"),
        ];
        for (toml, key, named) in cases {
            jail(|jail| {
                jail.create_file("dwsync.toml", toml).map_err(|e| ConfigError::Usage(e.to_string()))?;
                let err = load_test(jail, Some("dwsync.toml")).expect_err(toml);
                let msg = err.to_string();
                assert!(msg.contains(key) && msg.contains(named) && msg.contains("dwsync.toml"), "{msg}");
                assert!(!msg.contains("hunter2-secret"), "{msg}");
                Ok(())
            });
        }
        jail(|jail| {
            jail.set_env("DWSYNC_KAFKA__SECURITY_PROTOCOL", "tls");
            let err = load_test(jail, None).expect_err("unknown protocol");
            let msg = err.to_string();
            assert!(msg.contains("DWSYNC_KAFKA__SECURITY_PROTOCOL") && msg.contains("tls"), "{msg}");
            Ok(())
        });
    }

    #[test]
    fn typos_in_the_shared_sections_are_refused_naming_the_key() {
        for (toml, named) in [
            ("[http]\nshutdown_grace = 5\n", "shutdown_grace"),
            ("[telemetry]\notlp_endpiont = \"http://otel:4318\"\n", "otlp_endpiont"),
        ] {
            jail(|jail| {
                jail.create_file("dwsync.toml", toml).map_err(|e| ConfigError::Usage(e.to_string()))?;
                let err = load_test(jail, Some("dwsync.toml")).expect_err(toml);
                let msg = err.to_string();
                assert!(msg.contains(named) && msg.contains("dwsync.toml"), "{msg}");
                Ok(())
            });
        }
        jail(|jail| {
            jail.set_env("DWSYNC_HTTP__LISTN", "0.0.0.0:1");
            let err = load_test(jail, None).expect_err("a typo in a variable");
            assert!(err.to_string().contains("listn"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_secret_that_is_not_a_string_is_refused_without_being_shown() {
        jail(|jail| {
            jail.create_file("dwsync.toml", "[kafka]\nsasl_password = 918273645\n")
                .map_err(|e| ConfigError::Usage(e.to_string()))?;
            let err = load_test(jail, Some("dwsync.toml")).expect_err("a number");
            let msg = err.to_string();
            assert!(msg.contains("kafka.sasl_password") && !msg.contains("918273645"), "{msg}");
            Ok(())
        });
    }

    #[test]
    fn missing_or_malformed_file_is_an_error() {
        jail(|jail| {
            let err = load_test(jail, Some("absent.toml")).expect_err("missing file");
            assert!(matches!(err, ConfigError::File { .. }), "{err:?}");
            assert!(err.to_string().contains("absent.toml"), "{err}");

            jail.create_file("broken.toml", "[kafka\n").map_err(|e| ConfigError::Usage(e.to_string()))?;
            let err = load_test(jail, Some("broken.toml")).expect_err("malformed file");
            assert!(err.to_string().contains("broken.toml"), "{err}");
            Ok(())
        });
    }
}
