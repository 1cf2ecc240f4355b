//! `dwsync-loadgen`: produces realistic v5 records to dwsync's source topics.
//!
//! ```sh
//! dwsync-loadgen --tables metrics,people --workspaces 5 --records 100000 --encoding mixed
//! dwsync-loadgen --tables metrics --workspaces 10000 --skew 0.5 --records 1000000 --rate 20000
//! ```

mod args;
mod produce;
mod summary;

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args::Args::parse();
    let summary = produce::run(&args).await?;
    println!("{summary}");
    Ok(())
}
