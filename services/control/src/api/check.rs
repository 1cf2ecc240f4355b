//! `POST /v1/workspaces/{id}/sync/check` and `?check=true` on create and update: a destination
//! tried as the export will use it ([`dwsync_s3::check`]), through the same egress policy as
//! the uploader, answered with a failure class and the action, never the server's body.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use dwsync_api::{CheckView, Checked, FailureView};
use dwsync_s3::check::{self as s3check, CheckReport, Target};
use dwsync_s3::{Location, SharedHttpClient, StaticCredentials};
use dwsync_sync_config::checks::{CheckFailure, LastCheck};

use super::AppState;
use super::error::ApiError;
use super::handlers::parse_body;
use crate::model::{DestinationKind, Store, SyncSpec, WorkspaceId};
use crate::store::ConfigStore;
use crate::validate::{self, Valid};

/// How checks connect: the customers' HTTPS client (egress checked at every connection) and the
/// timeouts of one request.
#[derive(Clone, Debug)]
pub struct Checker {
    /// The HTTPS client, [`dwsync_s3::egress::customer_https_client`] of the API's policy.
    pub https: SharedHttpClient,
    /// The HTTP client of GCS destinations, [`dwsync_gcs::http::customer_http_client`] of the
    /// API's policy.
    pub gcs_http: reqwest::Client,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest single request.
    pub attempt_timeout: Duration,
}

/// `?check=true` on create and update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckParam {
    /// true: check the destination first (as POST .../sync/check) and refuse it (400) if the
    /// check fails.
    #[param(required = false, default = json!(false))]
    pub check: bool,
}

impl CheckParam {
    /// The parameter of a query string (`check=true`, `check=false`, or nothing); anything else
    /// is a 400.
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut param = Self::default();
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            param.check = match pair {
                "check=true" | "check=1" | "check" => true,
                "check=false" | "check=0" => false,
                _ => return Err(ApiError::BadRequest("the only query parameter is check=true or check=false".into())),
            };
        }
        Ok(param)
    }
}

/// The answer of a check of `bucket` that `report`ed.
fn view(id: WorkspaceId, destination: Checked, bucket: &str, report: &CheckReport) -> CheckView {
    CheckView {
        workspace_id: id.get(),
        destination,
        ok: report.ok(),
        bucket: bucket.to_owned(),
        passed: report.passed.iter().map(|a| a.name().to_owned()).collect(),
        failure: report.failure.as_ref().map(|f| FailureView {
            class: f.class.name().to_owned(),
            action: f.action.name().to_owned(),
            operation: f.operation.to_owned(),
            http_status: f.status,
            message: f.message.clone(),
        }),
    }
}

/// `POST /v1/workspaces/{id}/sync/check`: checks the destination in the body (a sync spec, as
/// for create), or the stored sync's when the body is empty. 200 with the result either way.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{id}/sync/check",
    operation_id = "checkSync",
    summary = "Check a destination as the export uses it: list the bucket, write cio-validate, read it back, start and abort a multipart upload, through the same egress rules as the uploader. With a body (a sync spec, as for create) that destination is checked, without one the stored sync's. 200 with the result: the actions that passed and the first failure, classed (bucket_missing, access_denied, wrong_region, bad_signature, unknown_access_key, tls_failure, timeout, unreachable, egress_refused, other), never the server's own words.",
    params(super::openapi::WorkspacePath),
    request_body(content = Option<dwsync_api::SyncSpec>, description = "The destination to check; without a body, the stored sync's."),
    responses((status = 200, description = "Done.", body = CheckView)),
)]
pub(super) async fn check<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CheckView>, ApiError> {
    let id = app.tokens.workspace(&headers, &id)?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let valid = validate::validate(parse_body::<SyncSpec>(&body)?, &app.policy)?;
        validate::egress(&valid, &app.policy).await?;
        return Ok(Json(run(&app, id, &valid, Checked::Submitted).await));
    }
    let cfg = app.store.get(id).await?.ok_or(ApiError::NotFound(id))?;
    let sealer = app.sealer.as_ref().ok_or(ApiError::NoSealKey)?;
    let d = &cfg.destination;
    let secret = sealer.open(d.sealed(), &id.to_string())?;
    let mut spec = crate::model::DestinationSpec {
        bucket: d.bucket.clone(),
        prefix: d.prefix.clone(),
        endpoint: d.endpoint().map(str::to_owned),
        ..Default::default()
    };
    let mut client_email = None;
    match &d.store {
        Store::S3(s3) => {
            spec.region = s3.region.clone();
            spec.force_path_style = s3.force_path_style;
            spec.conditional_writes = Some(s3.conditional_writes);
            spec.access_key_id = s3.access_key_id.clone();
        }
        Store::Gcs(gcs) => {
            spec.kind = DestinationKind::Gcs;
            client_email = Some(gcs.client_email.clone());
        }
    }
    let stored = Valid { destination: spec, secret, client_email, tables: Default::default() };
    Ok(Json(run(&app, id, &stored, Checked::Stored).await))
}

/// `?check=true`: refuses `valid` (400 naming the failure) unless its check passes.
pub(super) async fn require<S>(
    app: &AppState<S>,
    id: WorkspaceId,
    valid: &Valid,
    param: CheckParam,
) -> Result<(), ApiError> {
    if !param.check {
        return Ok(());
    }
    let view = run(app, id, valid, Checked::Submitted).await;
    match view.failure {
        None => Ok(()),
        Some(failure) => Err(ApiError::CheckFailed { class: failure.class, message: failure.message }),
    }
}

/// Tries `valid`'s destination.
async fn run<S>(app: &AppState<S>, id: WorkspaceId, valid: &Valid, checked: Checked) -> CheckView {
    let d = &valid.destination;
    let report = match d.endpoint.as_deref().map(|url| app.policy.egress.check_literal_endpoint(url)) {
        Some(Err(refused)) => CheckReport {
            passed: Vec::new(),
            failure: Some(s3check::CheckFailure {
                action: s3check::Action::List,
                operation: "ListObjectsV2",
                class: s3check::FailureClass::EgressRefused,
                status: None,
                message: refused.to_string(),
            }),
        },
        _ if d.kind == DestinationKind::Gcs => run_gcs(app, valid).await,
        _ => run_s3(app, valid).await,
    };
    let view = view(id, checked, &d.bucket, &report);
    tracing::info!(workspace_id = %id, ok = view.ok, failure = view.failure.as_ref().map(|f| f.class.as_str()), "Destination checked.");
    keep(app, &view).await;
    view
}

/// Tries a GCS destination: write `cio-validate`, read it back.
async fn run_gcs<S>(app: &AppState<S>, valid: &Valid) -> CheckReport {
    let d = &valid.destination;
    let validate_key = dwsync_handoff::validate_key(&d.prefix);
    let timeouts = dwsync_gcs::bucket::Timeouts { attempt: app.checker.attempt_timeout };
    let bucket = dwsync_gcs::ServiceAccountKey::parse(valid.secret.expose()).map_err(|_| ()).and_then(|key| {
        dwsync_gcs::Bucket::new(app.checker.gcs_http.clone(), d.endpoint.as_deref(), &d.bucket, &key, timeouts)
            .map_err(|_| ())
    });
    match bucket {
        Ok(bucket) => dwsync_gcs::check::check(&bucket, &validate_key).await,
        Err(()) => CheckReport {
            passed: Vec::new(),
            failure: Some(s3check::CheckFailure {
                action: s3check::Action::Write,
                operation: "objects.insert",
                class: s3check::FailureClass::BadSignature,
                status: None,
                message: "the service account key cannot sign tokens".into(),
            }),
        },
    }
}

/// Tries an S3 destination: list, write `cio-validate`, read it back, start a multipart upload.
async fn run_s3<S>(app: &AppState<S>, valid: &Valid) -> CheckReport {
    let d = &valid.destination;
    let location =
        Location { region: &d.region, endpoint: d.endpoint.as_deref(), force_path_style: d.force_path_style };
    let credentials =
        StaticCredentials::new(d.access_key_id.clone(), valid.secret.expose().to_owned(), None, None, "dwsync-check");
    let checker = &app.checker;
    let timeouts = (checker.connect_timeout, checker.attempt_timeout);
    let client = dwsync_s3::client_without_retries(location, credentials, checker.https.clone(), timeouts);
    let validate_key = dwsync_handoff::validate_key(&d.prefix);
    let target = Target { bucket: &d.bucket, prefix: &d.prefix, region: &d.region, validate_key: &validate_key };
    s3check::check(&client, target).await
}

/// Keeps `view` as its workspace's last check (served in the status); a check whose record
/// cannot be written is still answered, and the failure logged.
async fn keep<S>(app: &AppState<S>, view: &CheckView) {
    let Some(checks) = &app.checks else { return };
    let record = LastCheck {
        workspace_id: view.workspace_id,
        at_ms: (app.clock)(),
        destination: view.destination.as_str().to_owned(),
        ok: view.ok,
        bucket: view.bucket.clone(),
        passed: view.passed.clone(),
        failure: view.failure.as_ref().map(|f| CheckFailure {
            class: f.class.clone(),
            action: f.action.clone(),
            operation: f.operation.clone(),
            http_status: f.http_status,
            message: f.message.clone(),
        }),
    };
    if let Err(error) = checks.write(&record).await {
        tracing::warn!(workspace_id = view.workspace_id, %error, "The destination check was answered but not kept.");
    }
}
