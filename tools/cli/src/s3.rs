//! The S3 connection of the CLI: endpoint, region and addressing from flags, static credentials
//! from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (the secret is never printed).

use aws_credential_types::Credentials;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::Error;

/// Where and how to reach S3.
#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    /// S3 endpoint URL, e.g. `http://127.0.0.1:9000` (default: AWS S3 for the region).
    #[arg(long, env = "DWSYNC_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Region used for signing.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Path-style addressing (`<endpoint>/<bucket>/<key>`), needed by most S3-compatible servers.
    #[arg(long)]
    pub path_style: bool,
}

impl S3Args {
    /// The endpoint for messages: the URL, or `AWS S3 (<region>)`.
    pub fn endpoint_label(&self) -> String {
        match &self.endpoint {
            Some(url) => url.clone(),
            None => format!("AWS S3 ({})", self.region),
        }
    }
}

/// Static credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, if set,
/// `AWS_SESSION_TOKEN`.
pub fn credentials_from_env() -> Result<Credentials, Error> {
    let var = |name: &'static str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let key_id = var("AWS_ACCESS_KEY_ID").ok_or(Error::MissingEnv("AWS_ACCESS_KEY_ID"))?;
    let secret = var("AWS_SECRET_ACCESS_KEY").ok_or(Error::MissingEnv("AWS_SECRET_ACCESS_KEY"))?;
    Ok(Credentials::new(key_id, secret, var("AWS_SESSION_TOKEN"), None, "dwsync-cli-env"))
}

/// An S3 client for `args` signing with `credentials`; checksums only where S3 requires them,
/// so S3-compatible servers without the newer checksum headers work.
pub fn client(args: &S3Args, credentials: Credentials) -> aws_sdk_s3::Client {
    let location = dwsync_s3::Location {
        region: &args.region,
        endpoint: args.endpoint.as_deref(),
        force_path_style: args.path_style,
    };
    dwsync_s3::client(location, credentials)
}

/// A one-line reason for a failed S3 call: the S3 error code and message, or the connection
/// error's causes; with a hint when the credentials were refused.
pub fn describe_error<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(code) = err.code() {
        let mut reason = match err.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        };
        if let Some(response) = err.raw_response() {
            reason.push_str(&format!(" (HTTP {})", response.status().as_u16()));
        }
        if matches!(code, "AccessDenied" | "SignatureDoesNotMatch" | "InvalidAccessKeyId" | "NotSignedUp") {
            reason.push_str("; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        }
        return reason;
    }
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
