//! What the tests on the real S3 server share: its endpoint and a client of it.
#![allow(dead_code)]

use std::time::Duration;

use dwsync_s3::{Location, SharedHttpClient, StaticCredentials};

/// An environment variable, or `default`.
pub(crate) fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The test S3 server's endpoint (`DWSYNC_TEST_S3_ENDPOINT`, `dev/s3`'s by default).
pub(crate) fn endpoint() -> String {
    env("DWSYNC_TEST_S3_ENDPOINT", "http://127.0.0.1:9000")
}

/// A client of the S3 server at `endpoint` on `https`, with the test server's key pair (the
/// secret replaced by `secret` if given), no retries, and `attempt` per request.
pub(crate) fn client_of(
    endpoint: &str,
    https: SharedHttpClient,
    secret: Option<&str>,
    attempt: Duration,
) -> aws_sdk_s3::Client {
    let location = Location { region: "us-east-1", endpoint: Some(endpoint), force_path_style: true };
    let secret = secret.map_or_else(|| env("S3_SECRET_KEY", "dwsync-dev-secret-key"), str::to_owned);
    let credentials = StaticCredentials::new(env("S3_ACCESS_KEY", "dwsync-dev"), secret, None, None, "test");
    dwsync_s3::client_without_retries(location, credentials, https, (Duration::from_secs(5), attempt))
}
