//! `dwsync`: the operator CLI.
//!
//! ```sh
//! AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
//!   dwsync objects --endpoint http://127.0.0.1:9000 --bucket dwsync-dev --path-style
//! ```

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use dwsync_cli::commands::Command;

/// Operator CLI of dwsync.
#[derive(Debug, Parser)]
#[command(name = "dwsync", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the whole cause chain on one line, without a backtrace.
            eprintln!("dwsync: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(Cli { command }: Cli) -> anyhow::Result<()> {
    let target = command.target();
    let mut out = std::io::stdout().lock();
    command.run(&mut out).await.with_context(|| target)
}
