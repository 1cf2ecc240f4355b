//! The subcommands, one module each. A control-API command (list/show/status/pause/resume)
//! gets its own module and variant here.

pub mod dead_letters;
pub mod objects;

use std::io::Write;

use crate::Error;

/// A `dwsync` subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the objects of an export bucket with the row counts of its Parquet files.
    Objects(objects::ObjectsArgs),
    /// Work with the dead-letter topic (records that could not be decoded).
    DeadLetters(dead_letters::DeadLettersArgs),
}

impl Command {
    /// What the command talks to, for error messages (never a secret).
    pub fn target(&self) -> String {
        match self {
            Self::Objects(args) => format!("S3 endpoint {}", args.s3.endpoint_label()),
            Self::DeadLetters(args) => match &args.action {
                dead_letters::DeadLettersAction::Replay(r) => format!("Kafka {} topic {}", r.bootstrap, r.topic),
            },
        }
    }

    /// Runs the command, writing its report to `out`.
    pub async fn run(self, out: &mut dyn Write) -> Result<(), Error> {
        match self {
            Self::Objects(args) => objects::run(&args, out).await,
            Self::DeadLetters(args) => dead_letters::run(&args, out).await,
        }
    }
}
