//! The dwsync operator CLI (`dwsync`): one module per subcommand under [`commands`], the S3
//! connection in [`s3`], the names of exported objects in [`object_key`].

pub mod commands;
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
    /// Writing the report failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}
