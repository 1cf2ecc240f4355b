//! The dwsync operator CLI (`dwsync`): one module per subcommand under [`commands`], the S3
//! connection in [`s3`], the control API's HTTP client in [`api_client`], the names of exported
//! objects in [`object_key`].

pub mod api_client;
pub mod commands;
pub mod kafka;
pub mod object_key;
pub mod s3;

/// A failure of a CLI command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An environment variable the command needs is not set.
    #[error("{0} is not set; export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")]
    MissingEnv(&'static str),
    /// The bucket cannot be listed (unreachable endpoint, missing bucket, refused credentials).
    #[error("cannot list s3://{bucket}/{prefix}: {reason}")]
    List {
        /// The bucket.
        bucket: String,
        /// The key prefix.
        prefix: String,
        /// What S3 or the connection said.
        reason: String,
    },
    /// Some Parquet files were listed but their footers could not be read.
    #[error("{0} Parquet file(s) could not be read (see the report above)")]
    Unreadable(usize),
    /// Kafka refused an operation.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// The Kafka settings (`--config`, `DWSYNC_KAFKA__*`) are not valid.
    #[error("the Kafka settings: {0}")]
    Config(#[from] dwsync_config::ConfigError),
    /// No token for the control API was given.
    #[error("no API token: pass --token or set DWSYNC_TOKEN")]
    MissingToken,
    /// The token cannot be sent in an HTTP header (the token itself is never shown).
    #[error("the API token contains characters that cannot be sent in an HTTP header")]
    BadToken,
    /// The control API URL is not usable.
    #[error("bad control API URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--ca-file` cannot be used.
    #[error("--ca-file {}: {reason}", path.display())]
    CaFile {
        /// The file as given.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The control API could not be reached.
    #[error("cannot connect to the control API at {url}: {reason} (is dwsync-control running there? see --api)")]
    Connect {
        /// The API's base URL.
        url: String,
        /// What the connection said.
        reason: String,
    },
    /// The request failed in transit (timeout, connection reset, ...).
    #[error("{request} at {url} failed: {reason}")]
    Transport {
        /// Method and path, e.g. `GET /v1/workspaces`.
        request: String,
        /// The API's base URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The control API answered with an error status.
    #[error("{request}: HTTP {status}: {message}")]
    Api {
        /// Method and path, e.g. `PUT /v1/workspaces/42/sync/tables/people`.
        request: String,
        /// The status (shown with its reason, e.g. `409 Conflict`).
        status: reqwest::StatusCode,
        /// The API's error message.
        message: String,
    },
    /// The control API answered 2xx with a body this CLI does not understand.
    #[error("{request}: unexpected answer: {reason}")]
    BadAnswer {
        /// Method and path.
        request: String,
        /// Why the body could not be read.
        reason: String,
    },
    /// Writing the report failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// A destination's settings on the command line do not fit together.
    #[error("{0}")]
    Usage(String),
    /// A destination check failed (the report above says where and why): the exit status says
    /// so too, for scripts.
    #[error("the destination check of workspace {workspace} failed ({class})")]
    CheckFailed {
        /// The workspace checked.
        workspace: i64,
        /// The failure class (`bad_signature`, `bucket_missing`, ...).
        class: String,
    },
    /// A secret's file cannot be read (its content is never shown).
    #[error("cannot read {}: {reason}", path.display())]
    SecretFile {
        /// The file as given.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
}
