//! The S3 client settings every dwsync component shares: static SigV4 credentials, a region,
//! an optional endpoint for S3-compatible stores, path-style addressing, and checksums only where
//! an operation requires them (S3-compatible stores differ in the trailing-checksum encodings
//! they accept; the body's SHA-256 is signed by SigV4 either way).

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Builder, Region, RequestChecksumCalculation, ResponseChecksumValidation};

pub use aws_credential_types::Credentials as StaticCredentials;

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

/// A config builder for `location` signing with `credentials`; callers add retry and timeouts.
pub fn config_builder(location: Location<'_>, credentials: Credentials) -> Builder {
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

/// A client for `location` signing with `credentials`, with the SDK's default retry policy.
pub fn client(location: Location<'_>, credentials: Credentials) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(config_builder(location, credentials).build())
}
