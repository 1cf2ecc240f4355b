//! `dwsync sync`: reads and changes workspaces' sync configuration through the control service's
//! REST API (`docs/CONTROL.md`): `list`, `show`, `status`, `create` / `update` a destination (S3
//! or GCS; secrets read from a file or the environment, never from the command line), `pause` /
//! `resume` a table, `disable` / `enable` the whole sync. `--json` prints the API's answer
//! instead of the readable report.

use std::fmt;
use std::io::Write;

use chrono::{DateTime, SecondsFormat};
use dwsync_api::{
    CheckView, DestinationKind, DestinationSpec, KindView, Progress, SyncSpec, SyncStatusView, SyncView, TableToggle,
    WorkspaceList,
};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;
use crate::api_client::{ApiArgs, ApiClient};
use crate::commands::Report;

/// Width of the key column of the `key: value` reports.
const KEY_WIDTH: usize = 20;

/// Tables named in the `TABLES OFF` column of `list`; more are counted.
const TABLES_NAMED: usize = 3;

/// Arguments of `dwsync sync`.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// The control API and its token.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print the API's JSON answer instead of the readable report.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: SyncAction,
}

/// `dwsync sync` actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SyncAction {
    /// List every workspace's sync (needs the admin token).
    List,
    /// Show one workspace's sync: destination and every table on or off (never the secret).
    Show {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
    },
    /// Show how one workspace's sync is doing: state, last sync, files waiting, lag, last error.
    Status {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
    },
    /// Check the stored destination as the export uses it: list, write `cio-validate`, read it
    /// back, start and abort a multipart upload; say which action failed and why.
    Check {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
    },
    /// Create a workspace's sync: its destination (S3 or GCS) and which schemas are off.
    Create {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
        /// The destination.
        #[command(flatten)]
        destination: DestinationArgs,
    },
    /// Replace a workspace's destination (its secret must be given again) and turn schemas off.
    Update {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
        /// The destination.
        #[command(flatten)]
        destination: DestinationArgs,
    },
    /// Stop exporting one schema: a table, or `campaign_metadata`, `objects` (its files are kept
    /// and sent when it is resumed).
    Pause {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
        /// The schema: a table alone in its schema (`people`, `metrics`), or `campaign_metadata`
        /// (campaigns and actions) or `objects` (objects and object types).
        table: String,
    },
    /// Export one schema again (a table, or `campaign_metadata`, `objects`).
    Resume {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
        /// The schema, as for `pause`.
        table: String,
    },
    /// Disable the whole sync: nothing is written or kept until it is enabled.
    Disable {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
    },
    /// Enable the whole sync again (it starts from the next window).
    Enable {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
    },
}

/// The kinds of destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// AWS S3 or an S3-compatible store.
    S3,
    /// Google Cloud Storage.
    Gcs,
}

/// A destination on the command line (`create`, `update`).
#[derive(Debug, Clone, clap::Args)]
pub struct DestinationArgs {
    /// The kind of store.
    #[arg(long, value_enum, default_value = "s3")]
    pub kind: Kind,
    /// The bucket.
    #[arg(long)]
    pub bucket: String,
    /// The key prefix ("path") inside the bucket, without leading or trailing `/`.
    #[arg(long, default_value = "")]
    pub path: String,
    /// The endpoint: an S3-compatible store's, or a GCS JSON API other than Google Cloud's.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// S3: the bucket's region.
    #[arg(long)]
    pub region: Option<String>,
    /// S3: the access key id.
    #[arg(long)]
    pub access_key_id: Option<String>,
    /// S3: a file holding the secret access key (else `DWSYNC_SECRET_ACCESS_KEY`).
    #[arg(long)]
    pub secret_access_key_file: Option<std::path::PathBuf>,
    /// S3: path-style addressing (MinIO and most S3-compatible stores).
    #[arg(long)]
    pub force_path_style: bool,
    /// S3: the store does not honour `If-None-Match: *` (the weaker HEAD-then-PUT is used).
    #[arg(long)]
    pub no_conditional_writes: bool,
    /// GCS: the service account's JSON key file, as Google Cloud downloads it.
    #[arg(long)]
    pub service_account_key_file: Option<std::path::PathBuf>,
    /// Schemas to turn off (a table, `campaign_metadata` or `objects`); repeat for several.
    #[arg(long = "off")]
    pub off: Vec<String>,
}

/// The environment variable an S3 secret access key is read from without `--secret-access-key-file`.
pub const SECRET_ACCESS_KEY_ENV: &str = "DWSYNC_SECRET_ACCESS_KEY";

/// A secret file's content, without its trailing newline.
fn read_secret(path: &std::path::Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::SecretFile { path: path.to_owned(), reason: e.kind().to_string() })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

impl DestinationArgs {
    /// The request body of `POST`/`PUT .../sync`, its secret read from a file or the environment.
    pub fn body(&self) -> Result<Value, Error> {
        json_body(&self.spec()?)
    }

    /// The sync spec of `POST`/`PUT .../sync`, its secret read from a file or the environment.
    pub fn spec(&self) -> Result<SyncSpec, Error> {
        let mut destination = DestinationSpec {
            bucket: self.bucket.clone(),
            prefix: self.path.clone(),
            endpoint: self.endpoint.clone(),
            ..DestinationSpec::default()
        };
        let given = |flag: &str, set: bool| (set).then(|| flag.to_owned());
        match self.kind {
            Kind::Gcs => {
                let s3_only = [
                    given("--region", self.region.is_some()),
                    given("--access-key-id", self.access_key_id.is_some()),
                    given("--secret-access-key-file", self.secret_access_key_file.is_some()),
                    given("--force-path-style", self.force_path_style),
                    given("--no-conditional-writes", self.no_conditional_writes),
                ];
                if let Some(flag) = s3_only.into_iter().flatten().next() {
                    return Err(Error::Usage(format!("{flag} is not a setting of gcs destinations")));
                }
                let path = self.service_account_key_file.as_ref().ok_or_else(|| {
                    Error::Usage("--service-account-key-file is required for a gcs destination".into())
                })?;
                destination.kind = DestinationKind::Gcs;
                destination.service_account_key = Some(read_secret(path)?.into());
            }
            Kind::S3 => {
                if self.service_account_key_file.is_some() {
                    return Err(Error::Usage("--service-account-key-file is a setting of gcs destinations".into()));
                }
                let secret = match &self.secret_access_key_file {
                    Some(path) => read_secret(path)?,
                    None => std::env::var(SECRET_ACCESS_KEY_ENV).map_err(|_| {
                        Error::Usage(format!("give --secret-access-key-file or set {SECRET_ACCESS_KEY_ENV}"))
                    })?,
                };
                destination.region = self.region.clone().unwrap_or_default();
                destination.access_key_id = self.access_key_id.clone().unwrap_or_default();
                destination.secret_access_key = Some(secret.into());
                destination.force_path_style = self.force_path_style;
                destination.conditional_writes = Some(!self.no_conditional_writes);
            }
        }
        let tables = self.off.iter().map(|t| (t.clone(), false)).collect();
        Ok(SyncSpec { destination, tables, schema_version: None })
    }
}

/// A request body as JSON.
fn json_body(body: &impl Serialize) -> Result<Value, Error> {
    serde_json::to_value(body).map_err(|e| Error::Usage(format!("the request cannot be written as JSON: {e}")))
}

impl SyncAction {
    /// The action's name, e.g. `pause`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Create { .. } => "create",
            Self::Update { .. } => "update",
            Self::Show { .. } => "show",
            Self::Status { .. } => "status",
            Self::Check { .. } => "check",
            Self::Pause { .. } => "pause",
            Self::Resume { .. } => "resume",
            Self::Disable { .. } => "disable",
            Self::Enable { .. } => "enable",
        }
    }

    /// The request: method, path segments, JSON body (a destination's secret read now).
    fn request(&self) -> Result<(Method, Vec<String>, Option<Value>), Error> {
        let sync = |id: &i64| vec!["v1".to_owned(), "workspaces".to_owned(), id.to_string(), "sync".to_owned()];
        let with = |mut path: Vec<String>, more: &[&str]| {
            path.extend(more.iter().map(|s| (*s).to_owned()));
            path
        };
        Ok(match self {
            Self::List => (Method::GET, vec!["v1".to_owned(), "workspaces".to_owned()], None),
            Self::Create { workspace, destination } => (Method::POST, sync(workspace), Some(destination.body()?)),
            Self::Update { workspace, destination } => (Method::PUT, sync(workspace), Some(destination.body()?)),
            Self::Show { workspace } => (Method::GET, sync(workspace), None),
            Self::Status { workspace } => (
                Method::GET,
                vec!["v1".to_owned(), "workspaces".to_owned(), workspace.to_string(), "status".to_owned()],
                None,
            ),
            Self::Pause { workspace, table } => (
                Method::PUT,
                with(sync(workspace), &["tables", table]),
                Some(json_body(&TableToggle { enabled: false })?),
            ),
            Self::Resume { workspace, table } => (
                Method::PUT,
                with(sync(workspace), &["tables", table]),
                Some(json_body(&TableToggle { enabled: true })?),
            ),
            Self::Check { workspace } => (Method::POST, with(sync(workspace), &["check"]), None),
            Self::Disable { workspace } => (Method::POST, with(sync(workspace), &["disable"]), None),
            Self::Enable { workspace } => (Method::POST, with(sync(workspace), &["enable"]), None),
        })
    }
}

/// The answer of `GET /v1/workspaces/{id}/status`, with its readable report.
pub type SyncStatus = Report<SyncStatusView>;

/// `enabled` or `disabled`.
fn sync_state(view: &SyncView) -> &'static str {
    if view.disabled { "disabled" } else { "enabled" }
}

/// A time in ms since the Unix epoch as RFC 3339 UTC, e.g. `2025-01-31T12:00:00Z`.
pub fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn on_off(enabled: bool) -> &'static str {
    if enabled { "on" } else { "off" }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Writes a `key: value` line with the values aligned.
fn line(f: &mut fmt::Formatter<'_>, key: &str, value: impl fmt::Display) -> fmt::Result {
    writeln!(f, "{:<KEY_WIDTH$}{value}", format!("{key}:"))
}

impl fmt::Display for Report<WorkspaceList> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.workspaces.is_empty() {
            return writeln!(f, "no syncs configured");
        }
        let headers = ["WORKSPACE", "DESTINATION", "SYNC", "TABLES OFF", "REVISION", "UPDATED"];
        let rows: Vec<[String; 6]> = self
            .workspaces
            .iter()
            .map(|w| {
                let off = w.tables_off();
                let off = match off.len() {
                    0 => "none".to_owned(),
                    n if n <= TABLES_NAMED => off.join(", "),
                    n => format!("{n} of {}", w.tables.len()),
                };
                [
                    w.workspace_id.to_string(),
                    w.location(),
                    sync_state(w).to_owned(),
                    off,
                    w.revision.to_string(),
                    format_ms(w.updated_at_ms),
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let write_row = |f: &mut fmt::Formatter<'_>, cells: &[&str]| {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(&format!("{cell:<width$}"));
            }
            writeln!(f, "{}", text.trim_end())
        };
        write_row(f, &headers)?;
        for row in &rows {
            write_row(f, &row.each_ref().map(String::as_str))?;
        }
        writeln!(f, "{} workspace(s)", rows.len())
    }
}

impl fmt::Display for Report<SyncView> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.destination;
        line(f, "workspace", self.workspace_id)?;
        line(f, "sync", sync_state(self))?;
        line(f, "revision", self.revision)?;
        line(f, "updated", format_ms(self.updated_at_ms))?;
        line(f, "schema version", self.schema_version)?;
        line(f, "bucket", &d.bucket)?;
        line(f, "prefix", if d.prefix.is_empty() { "(none)" } else { &d.prefix })?;
        line(f, "kind", d.kind())?;
        match &d.settings {
            KindView::Gcs { client_email, service_account_key_set } => {
                line(f, "endpoint", d.endpoint.as_deref().unwrap_or("Google Cloud"))?;
                line(f, "service account", if client_email.is_empty() { "-" } else { client_email })?;
                line(f, "account key", if *service_account_key_set { "set" } else { "not set" })?;
            }
            KindView::S3 { region, force_path_style, conditional_writes, access_key_id, secret_access_key_set } => {
                line(f, "region", region)?;
                line(f, "endpoint", d.endpoint.as_deref().unwrap_or("AWS S3"))?;
                line(f, "path-style", yes_no(*force_path_style))?;
                line(f, "conditional writes", yes_no(*conditional_writes))?;
                line(f, "access key id", access_key_id)?;
                line(f, "secret access key", if *secret_access_key_set { "set" } else { "not set" })?;
            }
        }
        let off = self.tables_off().len();
        line(f, "tables", format!("{} on, {off} off", self.tables.len() - off))?;
        let width = self.tables.iter().map(|t| t.table.chars().count()).max().unwrap_or(0);
        for t in &self.tables {
            let since = t.changed_at_ms.map(|ms| format!("  since {}", format_ms(ms))).unwrap_or_default();
            writeln!(f, "  {:<width$}  {:<3}{since}", t.table, on_off(t.enabled))?;
        }
        Ok(())
    }
}

impl fmt::Display for Report<SyncStatusView> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        line(f, "workspace", self.workspace_id)?;
        line(f, "state", self.state)?;
        line(f, "last sync", self.last_sync_at.as_deref().unwrap_or("never"))?;
        line(f, "files waiting", self.files_waiting)?;
        line(f, "lag", format!("{:.1} s", self.lag_seconds))?;
        match &self.last_error {
            None => line(f, "last error", "none")?,
            Some(e) => {
                line(f, "last error", &e.message)?;
                line(f, "last error at", if e.at.is_empty() { "unknown" } else { &e.at })?;
            }
        }
        line(f, "updated", self.updated_at.as_deref().unwrap_or("never"))?;
        if self.last_files.is_empty() {
            line(f, "last files", "none")?;
        } else {
            line(f, "last files", self.last_files.len())?;
            for key in &self.last_files {
                writeln!(f, "  {key}")?;
            }
        }
        if !self.initial_syncs.is_empty() {
            let done = self.initial_syncs.iter().filter(|s| s.state == Progress::Done).count();
            line(f, "initial syncs", format!("{done} of {} done", self.initial_syncs.len()))?;
            let width = self.initial_syncs.iter().map(|s| s.table.chars().count()).max().unwrap_or(0);
            for s in &self.initial_syncs {
                let reason = s.reason.as_deref().map(|r| format!("  {r}")).unwrap_or_default();
                writeln!(f, "  {:<width$}  {:<8}{:>9} rows {:>4} files{reason}", s.table, s.state, s.rows, s.files)?;
            }
        }
        if let Some(p) = &self.archive_purge {
            let finished = p.finished_at.as_deref().map(|at| format!(", finished {at}")).unwrap_or_default();
            let reason = p.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            line(
                f,
                "archive purge",
                format!(
                    "{}{reason}: {} objects rewritten, {} deleted, {} rows removed; requested {}{finished}",
                    p.state, p.objects_rewritten, p.objects_deleted, p.rows_removed, p.requested_at
                ),
            )?;
        }
        Ok(())
    }
}

/// Reads a 2xx answer as `T`.
fn decode<T: DeserializeOwned>(value: Value, request: &str) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::BadAnswer { request: request.to_owned(), reason: e.to_string() })
}

/// Runs `dwsync sync …`, writing the report (or, with `--json`, the API's answer) to `out`.
pub async fn run(args: &SyncArgs, out: &mut dyn Write) -> Result<(), Error> {
    let client = ApiClient::new(&args.api)?;
    let (method, path, body) = args.action.request()?;
    let request = format!("{method} /{}", path.join("/"));
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let value = client.call(method, &segments, body.as_ref()).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| Error::BadAnswer { request: request.clone(), reason: e.to_string() })?;
        writeln!(out, "{text}")?;
        return Ok(());
    }
    match &args.action {
        SyncAction::List => write!(out, "{}", decode::<Report<WorkspaceList>>(value, &request)?)?,
        SyncAction::Show { .. } | SyncAction::Create { .. } | SyncAction::Update { .. } => {
            write!(out, "{}", decode::<Report<SyncView>>(value, &request)?)?
        }
        SyncAction::Status { .. } => write!(out, "{}", decode::<SyncStatus>(value, &request)?)?,
        SyncAction::Check { workspace } => {
            let check: CheckView = decode(value, &request)?;
            let passed = if check.passed.is_empty() { "none".to_owned() } else { check.passed.join(", ") };
            match &check.failure {
                None => writeln!(out, "workspace {workspace}: destination check passed ({passed})")?,
                Some(f) => {
                    writeln!(
                        out,
                        "workspace {workspace}: destination check failed at {} ({}): {}\npassed: {passed}",
                        f.action, f.class, f.message
                    )?;
                    return Err(Error::CheckFailed { workspace: *workspace, class: f.class.clone() });
                }
            }
        }
        SyncAction::Pause { workspace, table } | SyncAction::Resume { workspace, table } => {
            let view: SyncView = decode(value, &request)?;
            // A schema of several tables (`campaign_metadata`, `objects`) answers for each.
            let names: Vec<&str> = match dwsync_sync_config::schemas::named(table) {
                Ok(Some(schema)) => schema.tables.iter().map(|t| t.name()).collect(),
                _ => vec![table.as_str()],
            };
            let mut any_on = false;
            for name in names {
                let state = view.table(name).ok_or_else(|| Error::BadAnswer {
                    request: request.clone(),
                    reason: format!("the answer does not list table {name:?}"),
                })?;
                let word = if state.enabled { "on (exported)" } else { "off (paused)" };
                writeln!(out, "workspace {workspace}: table {} is {word}; revision {}", state.table, view.revision)?;
                any_on |= state.enabled;
            }
            if view.disabled && any_on {
                writeln!(out, "note: the whole sync is disabled; `dwsync sync enable {workspace}` turns it on")?;
            }
        }
        SyncAction::Disable { workspace } | SyncAction::Enable { workspace } => {
            let view: SyncView = decode(value, &request)?;
            writeln!(out, "workspace {workspace}: sync {}; revision {}", sync_state(&view), view.revision)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn requests() {
        let (m, path, body) = SyncAction::Pause { workspace: 42, table: "people".into() }.request().expect("request");
        assert_eq!((m, path.join("/")), (Method::PUT, "v1/workspaces/42/sync/tables/people".to_owned()));
        assert_eq!(body, Some(json!({ "enabled": false })));
        let (m, path, body) = SyncAction::Resume { workspace: 42, table: "people".into() }.request().expect("request");
        assert_eq!((m, path.join("/")), (Method::PUT, "v1/workspaces/42/sync/tables/people".to_owned()));
        assert_eq!(body, Some(json!({ "enabled": true })));
        let (m, path, _) = SyncAction::Check { workspace: 7 }.request().expect("request");
        assert_eq!((m, path.join("/")), (Method::POST, "v1/workspaces/7/sync/check".to_owned()));
        let (m, path, _) = SyncAction::Disable { workspace: 7 }.request().expect("request");
        assert_eq!((m, path.join("/")), (Method::POST, "v1/workspaces/7/sync/disable".to_owned()));
        let (m, path, _) = SyncAction::Status { workspace: 7 }.request().expect("request");
        assert_eq!((m, path.join("/")), (Method::GET, "v1/workspaces/7/status".to_owned()));
        let (m, path, body) = SyncAction::List.request().expect("request");
        assert_eq!((m, path.join("/"), body), (Method::GET, "v1/workspaces".to_owned(), None));
    }

    #[test]
    fn times() {
        assert_eq!(format_ms(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
    }
}
