//! The S3 client settings every dwsync component shares: SigV4 credentials (static, or the AWS
//! default chain for operator buckets: [`credentials`]), a region,
//! an optional endpoint for S3-compatible stores, path-style addressing, and checksums only where
//! an operation requires them (S3-compatible stores differ in the trailing-checksum encodings
//! they accept; the body's SHA-256 is signed by SigV4 either way).
//!
//! Many clients can share one [`https_client`] (hyper + rustls with aws-lc, one connection pool,
//! the TLS roots loaded once), so thousands of destinations, each with its own credentials, cost
//! one connection pool rather than one each. [`create_only`] writes an object without ever
//! overwriting one (`If-None-Match: *`), for the uploader and the archiver alike; [`written`] tells
//! a replay from a conflict when the key was taken, for every kind of store. [`error`] is one failure type for
//! every kind of store. [`egress`] keeps
//! customers' endpoints out of the operator's network (their clients share
//! [`egress::customer_https_client`]).

pub mod check;
pub mod create_only;
pub mod credentials;
pub mod egress;
pub mod error;
pub mod list;
pub mod written;

use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_s3::config::{BehaviorVersion, Builder, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_smithy_http_client::tls;

pub use aws_credential_types::Credentials as StaticCredentials;
pub use aws_sdk_s3::config::SharedHttpClient;

/// User metadata key holding a data object's SHA-256, lowercase hex.
pub const SHA256_METADATA: &str = "dwsync-sha256";

/// User metadata key holding a data file's row count.
pub const ROWS_METADATA: &str = "dwsync-rows";

/// Content type of the data objects.
pub const PARQUET_CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// Where a bucket lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location<'a> {
    /// Signing region (`us-east-1`).
    pub region: &'a str,
    /// Endpoint URL of an S3-compatible store; `None` for AWS S3.
    pub endpoint: Option<&'a str>,
    /// `<endpoint>/<bucket>/<key>` addressing, which MinIO and s3s need.
    pub force_path_style: bool,
}

/// A new HTTPS client: one connection pool for every S3 client given it
/// ([`config_builder`]`.http_client(…)`). Its connections run on the tokio runtime that opened
/// them, so share it within one runtime (one service), not across runtimes.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .build_https()
}

/// A config builder for `location` signing with `credentials` (on the SDK's own HTTPS client
/// unless the caller sets a shared one); callers add retry and timeouts.
pub fn config_builder(location: Location<'_>, credentials: impl ProvideCredentials + 'static) -> Builder {
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(location.region.to_owned()))
        .credentials_provider(credentials)
        .force_path_style(location.force_path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(url) = location.endpoint {
        builder = builder.endpoint_url(url);
    }
    builder
}

/// A client for `location` signing with `credentials` on the shared `https` client, without the
/// SDK's retries (the caller's retry loop is the only one, so every failure is seen and counted),
/// with a `connect` timeout and an `attempt` timeout per request.
pub fn client_without_retries(
    location: Location<'_>,
    credentials: impl ProvideCredentials + 'static,
    https: SharedHttpClient,
    (connect, attempt): (std::time::Duration, std::time::Duration),
) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::retry::RetryConfig;
    use aws_sdk_s3::config::timeout::TimeoutConfig;
    let config = config_builder(location, credentials)
        .http_client(https)
        .retry_config(RetryConfig::disabled())
        .timeout_config(TimeoutConfig::builder().connect_timeout(connect).operation_attempt_timeout(attempt).build());
    aws_sdk_s3::Client::from_conf(config.build())
}

/// A client for `location` signing with `credentials`, with the SDK's default retry policy.
pub fn client(location: Location<'_>, credentials: impl ProvideCredentials + 'static) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(config_builder(location, credentials).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clients_share_one_http_client_and_keep_their_own_settings() {
        let location = |region| Location { region, endpoint: Some("http://127.0.0.1:1"), force_path_style: true };
        let https = https_client();
        let a = aws_sdk_s3::Client::from_conf(
            config_builder(location("us-east-1"), StaticCredentials::new("a", "sa", None, None, "test"))
                .http_client(https.clone())
                .build(),
        );
        let b = config_builder(location("eu-west-1"), StaticCredentials::new("b", "sb", None, None, "test"))
            .http_client(https)
            .build();
        assert_eq!(a.config().region().map(|r| r.as_ref()), Some("us-east-1"));
        assert_eq!(b.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let shared = b.http_client().expect("the shared client is set, not the SDK's per-client default");
        let before = format!("{shared:?}");
        // Nothing listens on port 1: the request fails, but it builds a connector in the pool.
        let _ = a.head_bucket().bucket("b").send().await;
        assert_ne!(format!("{shared:?}"), before, "a's request went through the client b holds too");
    }
}
