//! `dwsync archive`: the operator's archive through the control service's REST API
//! (`docs/CONTROL.md`): `purge` asks for one workspace's archived data to be removed (admin
//! token), `status` shows how far its purge is. `--json` prints the API's answer instead.

use std::fmt;
use std::io::Write;

use dwsync_api::{PurgeView, SyncStatusView};
use reqwest::Method;
use serde_json::Value;

use crate::Error;
use crate::api_client::{ApiArgs, ApiClient};
use crate::commands::Report;

/// Width of the key column of the reports.
const KEY_WIDTH: usize = 20;

/// Arguments of `dwsync archive`.
#[derive(Debug, Clone, clap::Args)]
pub struct ArchiveArgs {
    /// The control API and its token.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print the API's JSON answer instead of the readable report.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: ArchiveAction,
}

/// `dwsync archive` actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ArchiveAction {
    /// Remove everything a workspace handed off until now from the archive (a workspace leaving
    /// the platform; needs the admin token). The backfill does it; `status` follows it.
    Purge {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
    },
    /// Show a workspace's latest archive purge: queued, running, done or failed, with counts.
    Status {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
    },
}

impl ArchiveAction {
    /// The action's name, e.g. `purge`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Purge { .. } => "purge",
            Self::Status { .. } => "status",
        }
    }

    /// The request: method and path segments.
    fn request(&self) -> (Method, Vec<String>) {
        let workspace = |id: &i64| vec!["v1".to_owned(), "workspaces".to_owned(), id.to_string()];
        match self {
            Self::Purge { workspace: id } => {
                let mut path = workspace(id);
                path.extend(["archive".to_owned(), "purge".to_owned()]);
                (Method::POST, path)
            }
            Self::Status { workspace: id } => {
                let mut path = workspace(id);
                path.push("status".to_owned());
                (Method::GET, path)
            }
        }
    }
}

/// A workspace's archive purge, as the API shows it, with its readable report.
pub type Purge = Report<PurgeView>;

impl fmt::Display for Report<PurgeView> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = |f: &mut fmt::Formatter<'_>, key: &str, value: &dyn fmt::Display| {
            writeln!(f, "{:<KEY_WIDTH$}{value}", format!("{key}:"))
        };
        line(f, "workspace", &self.workspace_id)?;
        line(f, "archive purge", &self.state)?;
        if let Some(reason) = &self.reason {
            line(f, "reason", reason)?;
        }
        line(f, "requested", &self.requested_at)?;
        line(f, "finished", &self.finished_at.as_deref().unwrap_or("not yet"))?;
        line(f, "cut", &format!("offset {} of handoff partition {}", self.cut, self.partition))?;
        line(f, "objects rewritten", &self.objects_rewritten)?;
        line(f, "objects deleted", &self.objects_deleted)?;
        line(f, "rows removed", &self.rows_removed)
    }
}

/// Runs `dwsync archive …`, writing the report (or, with `--json`, the API's answer) to `out`.
pub async fn run(args: &ArchiveArgs, out: &mut dyn Write) -> Result<(), Error> {
    let client = ApiClient::new(&args.api)?;
    let (method, path) = args.action.request();
    let request = format!("{method} /{}", path.join("/"));
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let value = client.call(method, &segments, None).await?;
    let bad = |reason: String| Error::BadAnswer { request: request.clone(), reason };
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&value).map_err(|e| bad(e.to_string()))?)?;
        return Ok(());
    }
    match &args.action {
        ArchiveAction::Purge { workspace } => {
            let purge: Purge = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
            writeln!(
                out,
                "workspace {workspace}: archive purge {} asked for (everything handed off before offset {} of handoff partition {}); `dwsync archive status {workspace}` follows it",
                purge.epoch, purge.cut, purge.partition
            )?;
        }
        ArchiveAction::Status { workspace } => {
            let status: SyncStatusView = serde_json::from_value::<Value>(value)
                .and_then(serde_json::from_value)
                .map_err(|e| bad(e.to_string()))?;
            match status.archive_purge {
                Some(purge) => write!(out, "{}", Report(purge))?,
                None => writeln!(out, "workspace {workspace}: no archive purge was asked for")?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let (m, path) = ArchiveAction::Purge { workspace: 42 }.request();
        assert_eq!((m, path.join("/")), (Method::POST, "v1/workspaces/42/archive/purge".to_owned()));
        let (m, path) = ArchiveAction::Status { workspace: 7 }.request();
        assert_eq!((m, path.join("/")), (Method::GET, "v1/workspaces/7/status".to_owned()));
    }

    #[test]
    fn a_purge_prints_its_counts() {
        let purge: Purge = serde_json::from_value(serde_json::json!({
            "workspace_id": 7, "epoch": 1, "partition": 2, "cut": 90, "state": "done",
            "requested_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:01:00.000Z",
            "objects_rewritten": 3, "objects_deleted": 1, "rows_removed": 40, "reason": null,
        }))
        .expect("the documented shape");
        let text = purge.to_string();
        assert!(text.contains("archive purge:      done"), "{text}");
        assert!(text.contains("objects rewritten:  3") && text.contains("rows removed:       40"), "{text}");
    }
}
