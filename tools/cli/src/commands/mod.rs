//! The subcommands, one module each: `objects` (S3), `dead-letters` and `handoff` (Kafka), `sync`, `archive`
//! and `tokens` (the control service's REST API).

pub mod archive;
pub mod dead_letters;
pub mod handoff;
pub mod objects;
pub mod sync;
pub mod tokens;

use std::io::Write;

use serde::Deserialize;

use crate::Error;

/// An answer of the control API ([`dwsync_api`]) with its readable report (`Display`): what the
/// commands print without `--json`. Parses as the answer itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Report<T>(pub T);

impl<T> std::ops::Deref for Report<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A `dwsync` subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the objects of an export bucket with the row counts of its Parquet files.
    Objects(objects::ObjectsArgs),
    /// Work with the dead-letter topic (records that could not be decoded).
    DeadLetters(dead_letters::DeadLettersArgs),
    /// The handoff topic's generation: show it with the groups' progress, or advance it after
    /// the topic was replaced.
    Handoff(handoff::HandoffArgs),
    /// Read and change workspaces' sync configuration through the control API.
    Sync(sync::SyncArgs),
    /// Purge a workspace's archived data through the control API, and follow the purge.
    Archive(archive::ArchiveArgs),
    /// Issue, list and revoke a workspace's API tokens through the control API (admin token).
    Tokens(tokens::TokensArgs),
}

impl Command {
    /// What the command talks to or does, for error messages (never a secret).
    pub fn target(&self) -> String {
        match self {
            Self::Objects(args) => format!("S3 endpoint {}", args.s3.endpoint_label()),
            Self::DeadLetters(args) => match &args.action {
                dead_letters::DeadLettersAction::Replay(r) => format!("Kafka topic {}", r.topic),
            },
            Self::Handoff(args) => format!("handoff {}", args.action.name()),
            // The errors of the API client name the URL themselves.
            Self::Sync(args) => format!("sync {}", args.action.name()),
            Self::Archive(args) => format!("archive {}", args.action.name()),
            Self::Tokens(args) => format!("tokens {}", args.action.name()),
        }
    }

    /// Runs the command, writing its report to `out`.
    pub async fn run(self, out: &mut dyn Write) -> Result<(), Error> {
        match self {
            Self::Objects(args) => objects::run(&args, out).await,
            Self::DeadLetters(args) => dead_letters::run(&args, out).await,
            Self::Handoff(args) => handoff::run(&args, out).await,
            Self::Sync(args) => sync::run(&args, out).await,
            Self::Archive(args) => archive::run(&args, out).await,
            Self::Tokens(args) => tokens::run(&args, out).await,
        }
    }
}
