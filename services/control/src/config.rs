//! control's configuration: the Kafka cluster, the API's listener and tokens, the store.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dwsync_config::{HttpConfig, KafkaConfig, Secret, TelemetryConfig};
use dwsync_s3::egress::EgressConfig;
pub use dwsync_sync_config::store::StoreConfig;
use serde::{Deserialize, Serialize};

/// control's configuration: `Config::default()`, then `--config <file>`, then `DWSYNC_*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The Kafka cluster holding the configuration topic. Default: `127.0.0.1:9092`.
    pub kafka: KafkaConfig,
    /// `/healthz`, `/readyz` and `/metrics`. Default: listen on `127.0.0.1:8083`.
    pub http: HttpConfig,
    /// The configuration REST API (`[api]`).
    pub api: ApiConfig,
    /// Where the configuration is stored (`[store]`).
    pub store: StoreConfig,
    /// Initial syncs: whether a new sync gets its history, and where cuts are written
    /// (`[initial_sync]`).
    pub initial_sync: InitialSyncConfig,
    /// Which non-public networks and hosts customers' endpoints may lead to (`[egress]`).
    /// Default: none; endpoints must be public addresses.
    pub egress: EgressConfig,
    /// Logs, metrics and traces. Default: `service_name = "dwsync-control"`, text logs, no OTLP.
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            http: HttpConfig::localhost(8083),
            api: ApiConfig::default(),
            store: StoreConfig::default(),
            initial_sync: InitialSyncConfig::default(),
            egress: EgressConfig::default(),
            telemetry: TelemetryConfig::for_service("dwsync-control"),
        }
    }
}

/// The REST API: where it listens, who may call it, what it accepts (`[api]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address of the API. Default: `127.0.0.1:8090`. Port `0` picks a free port.
    pub listen: SocketAddr,
    /// Bearer token allowed on every workspace and on `GET /v1/workspaces`. Default: empty,
    /// which disables admin access.
    pub admin_token: Secret,
    /// Bearer token per workspace id (`workspace_tokens = { "42" = "..." }`): each only on its
    /// own workspace. Default: none.
    pub workspace_tokens: BTreeMap<String, Secret>,
    /// Accept `http://` endpoint URLs (local S3 servers only). Default: `false`.
    pub allow_insecure_endpoints: bool,
    /// How long a turned-off people table's files are kept; re-enabling it after longer is
    /// refused (409). Default: 7 days.
    pub people_retention_days: u32,
    /// HTTPS: the certificate chain (PEM, leaf first). With [`tls_key_file`](Self::tls_key_file)
    /// the API serves HTTPS only. Default: none.
    pub tls_cert_file: Option<PathBuf>,
    /// HTTPS: the certificate's private key (PEM). Default: none.
    pub tls_key_file: Option<PathBuf>,
    /// How often the two files are checked for a change (a renewed certificate is served
    /// without a restart). Default: 10 000 ms.
    pub tls_reload_ms: u64,
    /// Longest a destination check (`POST .../sync/check`, `?check=true`) waits for one S3
    /// request, in ms. Default: 10 000.
    pub check_timeout_ms: u64,
    /// Serve plain HTTP on an address other than loopback (behind a TLS-terminating proxy or
    /// mesh). The API receives customers' secret keys, so without TLS files control refuses to
    /// listen anywhere but on loopback unless this is `true`. Default: `false`.
    pub allow_plain_http: bool,
}

/// The default of [`ApiConfig::check_timeout_ms`].
pub(crate) const DEFAULT_CHECK_TIMEOUT_MS: u64 = 10_000;

/// How the API is served, as [`ApiConfig::transport`] decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS with these files.
    Https(crate::tls::TlsFiles),
    /// Plain HTTP on a loopback address.
    PlainLoopback,
    /// Plain HTTP elsewhere, because `allow_plain_http` says so.
    PlainAllowed,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: HttpConfig::localhost(8090).listen,
            admin_token: Secret::default(),
            workspace_tokens: BTreeMap::new(),
            allow_insecure_endpoints: false,
            people_retention_days: 7,
            tls_cert_file: None,
            tls_key_file: None,
            tls_reload_ms: 10_000,
            check_timeout_ms: DEFAULT_CHECK_TIMEOUT_MS,
            allow_plain_http: false,
        }
    }
}

/// An `[api]` setting that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct InvalidApi {
    /// The key at fault.
    pub key: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ApiConfig {
    /// How to serve the API: HTTPS with both TLS files, plain HTTP on loopback, or plain HTTP
    /// elsewhere only with `allow_plain_http`.
    pub fn transport(&self) -> Result<Transport, InvalidApi> {
        let fail = |key, message: &str| Err(InvalidApi { key, message: message.to_owned() });
        if self.tls_reload_ms == 0 {
            return fail("api.tls_reload_ms", "must be positive");
        }
        if self.check_timeout_ms == 0 {
            return fail("api.check_timeout_ms", "must be positive");
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => {
                Ok(Transport::Https(crate::tls::TlsFiles { cert: cert.clone(), key: key.clone() }))
            }
            (Some(_), None) => fail("api.tls_key_file", "must be set with api.tls_cert_file"),
            (None, Some(_)) => fail("api.tls_cert_file", "must be set with api.tls_key_file"),
            (None, None) if self.listen.ip().is_loopback() => Ok(Transport::PlainLoopback),
            (None, None) if self.allow_plain_http => Ok(Transport::PlainAllowed),
            (None, None) => fail(
                "api.listen",
                &format!(
                    "{} is not a loopback address and the API would receive secret keys over plain HTTP: \
                     set api.tls_cert_file and api.tls_key_file, or api.allow_plain_http = true behind a TLS proxy",
                    self.listen
                ),
            ),
        }
    }

    /// [`tls_reload_ms`](Self::tls_reload_ms) as a `Duration`.
    pub fn tls_reload(&self) -> Duration {
        Duration::from_millis(self.tls_reload_ms)
    }

    /// [`people_retention_days`](Self::people_retention_days) as a `Duration`.
    pub fn people_retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.people_retention_days) * 86_400)
    }
}

/// Initial syncs (`[initial_sync]`): a sync created, enabled again after being disabled, or a
/// table turned on for the first time gets a baseline of the workspace's history from the archive
/// (delivered by the backfill) before its incremental files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitialSyncConfig {
    /// Ask for initial syncs. With `false` a sync starts with the files handed off after it
    /// exists, without history (no archiver or backfill needed). Default: `true`.
    pub enabled: bool,
    /// The handoff topic, where cut records are written. Default: `"dwsync.handoff"`.
    pub handoff_topic: String,
}

impl Default for InitialSyncConfig {
    fn default() -> Self {
        Self { enabled: true, handoff_topic: "dwsync.handoff".into() }
    }
}

impl dwsync_config::ServiceConfig for Config {
    /// The API's transport, and its TLS files loaded if it serves HTTPS.
    fn check(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Transport::Https(files) = self.api.transport()? {
            drop(files.load()?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use figment::Jail;

    use super::*;

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let api = |listen: &str, f: &dyn Fn(&mut ApiConfig)| {
            let mut api = ApiConfig { listen: listen.parse().expect("addr"), ..ApiConfig::default() };
            f(&mut api);
            api.transport()
        };
        assert_eq!(api("127.0.0.1:8090", &|_| {}), Ok(Transport::PlainLoopback));
        assert_eq!(api("[::1]:8090", &|_| {}), Ok(Transport::PlainLoopback));
        let refused = api("0.0.0.0:8090", &|_| {}).expect_err("plain off loopback");
        assert_eq!(refused.key, "api.listen");
        assert!(refused.to_string().contains("api.allow_plain_http"), "{refused}");
        assert_eq!(api("10.0.0.7:8090", &|a| a.allow_plain_http = true), Ok(Transport::PlainAllowed));
        let https = api("0.0.0.0:8090", &|a| {
            a.tls_cert_file = Some("tls.crt".into());
            a.tls_key_file = Some("tls.key".into());
        });
        assert_eq!(https, Ok(Transport::Https(crate::tls::TlsFiles { cert: "tls.crt".into(), key: "tls.key".into() })));
        let half = api("127.0.0.1:8090", &|a| a.tls_cert_file = Some("tls.crt".into())).expect_err("half a pair");
        assert_eq!(half.key, "api.tls_key_file");
        let half = api("127.0.0.1:8090", &|a| a.tls_key_file = Some("tls.key".into())).expect_err("half a pair");
        assert_eq!(half.key, "api.tls_cert_file");
        assert_eq!(api("127.0.0.1:8090", &|a| a.tls_reload_ms = 0).expect_err("zero").key, "api.tls_reload_ms");
    }

    #[test]
    #[expect(clippy::result_large_err, reason = "figment::Jail's closures return figment::Result")]
    fn unknown_keys_are_refused_naming_the_nearest() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("control.toml", "[api]\nlisten_addr = \"127.0.0.1:1\"\n")?;
            let err =
                dwsync_config::load::<Config>(Some(std::path::Path::new("control.toml")), dwsync_config::ENV_PREFIX)
                    .expect_err("unknown key")
                    .to_string();
            assert!(err.contains("listen_addr") && err.contains("did you mean `listen`?"), "{err}");
            jail.create_file("control.toml", "")?;
            jail.set_env("DWSYNC_API__ALLOW_PLAIN_HTTPS", "true");
            let err =
                dwsync_config::load::<Config>(Some(std::path::Path::new("control.toml")), dwsync_config::ENV_PREFIX)
                    .expect_err("unknown variable")
                    .to_string();
            assert!(err.contains("DWSYNC_API__ALLOW_PLAIN_HTTPS") || err.contains("allow_plain_https"), "{err}");
            assert!(err.contains("did you mean `allow_plain_http`?"), "{err}");
            jail.clear_env();
            jail.create_file("control.toml", "[egress]\nallow = [\"10.0.0.0/8\", \"http://minio\"]\n")?;
            let err =
                dwsync_config::load::<Config>(Some(std::path::Path::new("control.toml")), dwsync_config::ENV_PREFIX)
                    .expect_err("a bad allow-list entry")
                    .to_string();
            assert!(err.contains("egress.allow entry \"http://minio\" is not a network"), "{err}");
            jail.create_file("control.toml", "[egress]\nallow = [\"10.0.0.0/8\", \"minio\"]\n")?;
            let cfg =
                dwsync_config::load::<Config>(Some(std::path::Path::new("control.toml")), dwsync_config::ENV_PREFIX)
                    .map_err(|e| e.to_string())?;
            let allow: Vec<String> = cfg.egress.allow.iter().map(ToString::to_string).collect();
            assert_eq!(allow, ["10.0.0.0/8", "minio"]);
            Ok(())
        });
    }
}
