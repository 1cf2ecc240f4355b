//! The subcommands, one module each. A control-API command (list/show/status/pause/resume)
//! gets its own module and variant here.

pub mod objects;

use std::io::Write;

use crate::Error;

/// A `dwsync` subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the objects of an export bucket with the row counts of its Parquet files.
    Objects(objects::ObjectsArgs),
}

impl Command {
    /// What the command talks to, for error messages (never a secret).
    pub fn target(&self) -> String {
        match self {
            Self::Objects(args) => format!("S3 endpoint {}", args.s3.endpoint_label()),
        }
    }

    /// Runs the command, writing its report to `out`.
    pub async fn run(self, out: &mut dyn Write) -> Result<(), Error> {
        match self {
            Self::Objects(args) => objects::run(&args, out).await,
        }
    }
}
