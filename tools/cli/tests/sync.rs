//! `dwsync sync …` (the built binary) against the real control API: the control service's router
//! over its in-memory store, served on a local port (the Kafka store is tested in
//! `services/control`). `status` runs against a stub serving the endpoint's documented shape,
//! and so do `dwsync archive purge` / `status` (the purge itself is tested end to end in
//! `services/backfill/tests/purge.rs`).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use dwsync_cli::commands::sync::SyncStatus;
use dwsync_config::Secret;
use dwsync_control::api::{self, AppState, Tokens};
use dwsync_control::seal::Sealer;
use dwsync_control::store::MemoryStore;
use dwsync_control::validate::Policy;
use serde_json::{Value, json};

const ADMIN: &str = "cli-admin-token-0123456789";
const WS42: &str = "cli-ws42-token-abcdef";
const WS7: &str = "cli-ws7-token-ghijkl";
const WRONG: &str = "cli-wrong-token-zyxwvu";
const SECRET: &str = "cliSecretKey/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DAY_MS: i64 = 86_400_000;

/// Serves `app` on a free local port from its own thread; returns the base URL.
fn serve(app: axum::Router) -> String {
    serve_with(app, None)
}

/// Serves `app` over HTTPS (control's own TLS listener) with `certs`; returns the base URL.
fn serve_https(app: axum::Router, certs: &dwsync_tests::tls::TestCerts) -> String {
    let files = dwsync_control::tls::TlsFiles { cert: certs.cert.clone(), key: certs.key.clone() };
    serve_with(app, Some(dwsync_control::tls::ReloadingTls::new(files).expect("the test certificate loads")))
}

/// Serves `app` from its own thread, over TLS if `tls` is given.
fn serve_with(app: axum::Router, tls: Option<dwsync_control::tls::ReloadingTls>) -> String {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (tx, rx) = std::sync::mpsc::channel();
    let _server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(tcp.local_addr().expect("address")).expect("send the address");
            match tls {
                Some(tls) => {
                    let listener = tls.listen(tcp, tokio_util::sync::CancellationToken::new()).expect("listen");
                    axum::serve(listener, app).await.expect("serve");
                }
                None => axum::serve(tcp, app).await.expect("serve"),
            }
        });
    });
    format!("{scheme}://{}", rx.recv().expect("the server's address"))
}

/// A control API with tokens for the admin and workspaces 42 and 7, and a movable clock.
struct Control {
    url: String,
    now: Arc<AtomicI64>,
    /// The client that sets up and checks (trusting the test CA over HTTPS).
    http: reqwest::Client,
}

impl Control {
    fn start() -> Self {
        let (state, now) = Self::state();
        Self { url: serve(api::router(state)), now, http: reqwest::Client::new() }
    }

    /// The same API over HTTPS with `certs`.
    fn start_https(certs: &dwsync_tests::tls::TestCerts) -> Self {
        let (state, now) = Self::state();
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).expect("CA")).expect("PEM");
        let http = reqwest::Client::builder().tls_certs_only([ca]).build().expect("client");
        Self { url: serve_https(api::router(state), certs), now, http }
    }

    /// The API with destinations on this machine's S3 server admitted (`http://`, loopback).
    fn start_local() -> Self {
        let allow = vec!["127.0.0.0/8".parse().expect("network")];
        let egress = dwsync_s3::egress::EgressPolicy::new(&dwsync_s3::egress::EgressConfig { allow });
        let (state, now) = Self::state_with(Policy { allow_insecure_endpoints: true, egress });
        Self { url: serve(api::router(state)), now, http: reqwest::Client::new() }
    }

    fn state() -> (AppState<MemoryStore>, Arc<AtomicI64>) {
        Self::state_with(Policy::default())
    }

    fn state_with(policy: Policy) -> (AppState<MemoryStore>, Arc<AtomicI64>) {
        let ws = BTreeMap::from([("42".to_owned(), Secret::new(WS42)), ("7".to_owned(), Secret::new(WS7))]);
        let tokens = Tokens::new(&Secret::new(ADMIN), &ws).expect("tokens");
        let mut state = AppState::new(
            MemoryStore::new(),
            Some(Sealer::new(&[9; 32])),
            tokens,
            policy,
            Duration::from_secs(7 * 86_400),
        );
        let now = Arc::new(AtomicI64::new(1_700_000_000_000));
        let clock = now.clone();
        state.clock = Arc::new(move || clock.load(Ordering::SeqCst));
        (state, now)
    }

    fn advance(&self, ms: i64) {
        let _ = self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Calls the API directly (setup and checks).
    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON") })
    }

    async fn create(&self, id: i64, token: &str, tables: Value) {
        let body = json!({
            "destination": {
                "bucket": "acme-exports",
                "prefix": "dw/v5",
                "region": "eu-west-1",
                "access_key_id": "AKIAEXAMPLE",
                "secret_access_key": SECRET,
            },
            "tables": tables,
        });
        let (status, view) =
            self.call(reqwest::Method::POST, &format!("/v1/workspaces/{id}/sync"), token, Some(body)).await;
        assert_eq!(status, 201, "{view}");
    }

    async fn read(&self, id: i64) -> Value {
        let (status, view) = self.call(reqwest::Method::GET, &format!("/v1/workspaces/{id}/sync"), ADMIN, None).await;
        assert_eq!(status, 200, "{view}");
        view
    }

    async fn table_enabled(&self, id: i64, table: &str) -> bool {
        let view = self.read(id).await;
        let tables = view["tables"].as_array().expect("tables");
        tables.iter().find(|t| t["table"] == table).and_then(|t| t["enabled"].as_bool()).expect(table)
    }
}

/// What a run of the binary printed.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:?}");
        assert!(self.stderr.is_empty(), "{self:?}");
        &self.stdout
    }

    fn failed(&self) -> &str {
        assert_eq!(self.code, Some(1), "{self:?}");
        assert!(self.stderr.starts_with("dwsync: error: "), "{self:?}");
        &self.stderr
    }
}

/// Runs `dwsync sync <args> --api <url>` with `token` in `DWSYNC_TOKEN` (if given); checks that
/// neither the secret key nor any token is printed.
fn dwsync(url: &str, token: Option<&str>, args: &[&str]) -> Run {
    dwsync_in("sync", url, token, args)
}

/// Runs `dwsync <group> <args> --api <url>`, as [`dwsync`] does for `sync`.
fn dwsync_in(group: &str, url: &str, token: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dwsync"));
    let _ = cmd.env_remove("DWSYNC_API").env_remove("DWSYNC_TOKEN").arg(group).args(args).args(["--api", url]);
    if let Some(token) = token {
        let _ = cmd.env("DWSYNC_TOKEN", token);
    }
    let out = cmd.output().expect("run dwsync");
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8(out.stderr).expect("utf-8"),
    };
    for secret in [SECRET, ADMIN, WS42, WS7, WRONG] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "printed a secret: {run:?}");
    }
    run
}

/// The line of `text` whose first word is `first`.
fn row<'a>(text: &'a str, first: &str) -> &'a str {
    text.lines().find(|l| l.split_whitespace().next() == Some(first)).unwrap_or_else(|| panic!("no {first} in\n{text}"))
}

#[tokio::test]
async fn list_and_show() {
    let control = Control::start();
    let url = control.url.as_str();
    assert_eq!(dwsync(url, Some(ADMIN), &["list"]).ok(), "no syncs configured\n");

    control.create(42, WS42, json!({ "people": false, "events": false })).await;
    let off: BTreeMap<&str, bool> =
        ["metrics", "deliveries", "people", "events", "subjects"].iter().map(|t| (*t, false)).collect();
    control.create(7, ADMIN, json!(off)).await;
    let (status, _) = control.call(reqwest::Method::POST, "/v1/workspaces/7/sync/disable", ADMIN, None).await;
    assert_eq!(status, 200);

    let list = dwsync(url, Some(ADMIN), &["list"]);
    let text = list.ok();
    assert!(text.starts_with("WORKSPACE"), "{text}");
    for header in ["DESTINATION", "SYNC", "TABLES OFF", "REVISION", "UPDATED"] {
        assert!(text.lines().next().is_some_and(|l| l.contains(header)), "{text}");
    }
    let ws42 = row(text, "42");
    for part in ["s3://acme-exports/dw/v5", "enabled", "people", "events", "2023-11-14T22:13:20Z"] {
        assert!(ws42.contains(part), "{part:?} missing in {ws42:?}");
    }
    let ws7 = row(text, "7");
    for part in ["disabled", "5 of 15", " 2 "] {
        assert!(ws7.contains(part), "{part:?} missing in {ws7:?}");
    }
    assert!(text.ends_with("2 workspace(s)\n"), "{text}");

    let show = dwsync(url, Some(WS42), &["show", "42"]);
    let text = show.ok();
    for line in [
        "workspace:          42",
        "sync:               enabled",
        "revision:           1",
        "bucket:             acme-exports",
        "prefix:             dw/v5",
        "region:             eu-west-1",
        "endpoint:           AWS S3",
        "access key id:      AKIAEXAMPLE",
        "secret access key:  set",
        "tables:             13 on, 2 off",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing in\n{text}");
    }
    assert!(row(text, "people").contains(" off "), "{text}");
    assert!(row(text, "events").contains(" off "), "{text}");
    assert!(row(text, "metrics").contains(" on "), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("  ")).count(), 15, "{text}");

    // --json: the API's answer as it is.
    let json_text = dwsync(url, Some(WS42), &["show", "42", "--json"]).ok().to_owned();
    let shown: Value = serde_json::from_str(&json_text).expect("JSON output");
    assert_eq!(shown, control.read(42).await);
    let listed: Value = serde_json::from_str(dwsync(url, Some(ADMIN), &["--json", "list"]).ok()).expect("JSON");
    assert_eq!(listed["workspaces"].as_array().map(Vec::len), Some(2));

    // Another workspace's token, or a workspace token on the admin list: 403 with the API's message.
    for args in [&["list"][..], &["show", "7"]] {
        let err = dwsync(url, Some(WS42), args);
        let err = err.failed();
        assert!(err.contains("HTTP 403 Forbidden: this token may not access this resource"), "{err}");
    }
    let missing = dwsync(url, Some(ADMIN), &["show", "99"]);
    let err = missing.failed();
    assert!(
        err.contains("GET /v1/workspaces/99/sync: HTTP 404 Not Found: workspace 99 has no sync configured"),
        "{err}"
    );
}

#[tokio::test]
async fn pause_and_resume_tables() {
    let control = Control::start();
    let url = control.url.as_str();
    control.create(42, WS42, json!({})).await;

    let out = dwsync(url, Some(WS42), &["pause", "42", "metrics"]);
    assert_eq!(out.ok(), "workspace 42: table metrics is off (paused); revision 2\n");
    assert!(!control.table_enabled(42, "metrics").await);
    let out = dwsync(url, Some(WS42), &["resume", "42", "metrics"]);
    assert_eq!(out.ok(), "workspace 42: table metrics is on (exported); revision 3\n");
    assert!(control.table_enabled(42, "metrics").await);

    // The admin token works on any workspace; the flag works as well as the variable.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dwsync"));
    let out = cmd
        .env_remove("DWSYNC_TOKEN")
        .env("DWSYNC_API", url)
        .args(["sync", "--token", ADMIN, "pause", "42", "people"])
        .output()
        .expect("run dwsync");
    assert!(out.status.success(), "{out:?}");
    assert!(!control.table_enabled(42, "people").await);

    // The people rule: off for more than 7 days cannot come back; the API's message is shown.
    control.advance(8 * DAY_MS);
    let refused = dwsync(url, Some(WS42), &["resume", "42", "people"]);
    let err = refused.failed();
    assert!(
        err.contains(
            "PUT /v1/workspaces/42/sync/tables/people: HTTP 409 Conflict: \
             People file off for more than 7 days cannot be re-enabled"
        ),
        "{err}"
    );
    assert!(!control.table_enabled(42, "people").await);

    let unknown = dwsync(url, Some(WS42), &["pause", "42", "peeple"]);
    let err = unknown.failed();
    assert!(err.contains("HTTP 400 Bad Request: unknown tables: peeple"), "{err}");

    // The spec's schemas of several tables move together; a table of one alone names it.
    let out = dwsync(url, Some(WS42), &["pause", "42", "campaign_metadata"]);
    assert_eq!(
        out.ok(),
        "workspace 42: table campaigns is off (paused); revision 5\nworkspace 42: table actions is off (paused); revision 5\n"
    );
    assert!(!control.table_enabled(42, "campaigns").await && !control.table_enabled(42, "actions").await);
    let alone = dwsync(url, Some(WS42), &["resume", "42", "actions"]);
    let err = alone.failed();
    assert!(err.contains("HTTP 400 Bad Request: table actions belongs to the Campaign Metadata schema"), "{err}");
    assert!(err.contains("turn `campaign_metadata` on or off"), "{err}");
}

#[tokio::test]
async fn create_and_update_with_either_kind_of_destination() {
    let control = Control::start();
    let url = control.url.as_str();
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("service-account.json");
    std::fs::write(&key_file, dwsync_tests::gcs::service_account_key()).expect("key file");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    let key = key_file.to_str().expect("path");

    let s3 = [
        "create",
        "42",
        "--bucket",
        "acme-exports",
        "--path",
        "dw/v5",
        "--region",
        "eu-west-1",
        "--access-key-id",
        "AKIAEXAMPLE",
        "--secret-access-key-file",
        secret_file.to_str().expect("path"),
        "--off",
        "people",
    ];
    let out = dwsync(url, Some(WS42), &s3);
    assert_eq!(row(out.ok(), "kind:"), "kind:               s3");
    assert!(row(out.ok(), "people").contains("off"), "{out:?}");
    let view = control.read(42).await;
    assert_eq!(view["destination"]["access_key_id"], "AKIAEXAMPLE");

    let gcs =
        ["update", "42", "--kind", "gcs", "--bucket", "acme-gcs", "--path", "dw", "--service-account-key-file", key];
    let out = dwsync(url, Some(WS42), &gcs);
    let text = out.ok();
    assert_eq!(row(text, "kind:"), "kind:               gcs");
    assert!(row(text, "service").contains(dwsync_tests::gcs::CLIENT_EMAIL), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let view = control.read(42).await;
    assert_eq!(
        (view["destination"]["kind"].as_str(), view["destination"]["bucket"].as_str()),
        (Some("gcs"), Some("acme-gcs"))
    );
    assert_eq!(view["destination"]["service_account_key_set"], true);

    // Flags of the other kind are refused before any request; so is a missing key file.
    let mixed = [
        "update",
        "42",
        "--kind",
        "gcs",
        "--bucket",
        "b-1",
        "--region",
        "eu-west-1",
        "--service-account-key-file",
        key,
    ];
    assert!(dwsync(url, Some(WS42), &mixed).failed().contains("--region is not a setting of gcs destinations"));
    let no_key = ["update", "42", "--kind", "gcs", "--bucket", "b-1"];
    assert!(dwsync(url, Some(WS42), &no_key).failed().contains("--service-account-key-file is required"));
    // The API's refusal of a key that is not one names the field, never the content.
    std::fs::write(
        &key_file,
        r#"{"private_key": "-----BEGIN PRIVATE KEY-----\nSECRETBYTES\n-----END PRIVATE KEY-----\n"}"#,
    )
    .expect("bad key");
    let err = dwsync(url, Some(WS42), &gcs);
    assert!(err.failed().contains("destination.service_account_key lacks the field `client_email`"), "{err:?}");
    assert!(!err.stderr.contains("SECRETBYTES"), "{err:?}");
    assert_eq!(control.read(42).await["revision"], 2, "nothing changed");
}

#[tokio::test]
async fn disable_and_enable() {
    let control = Control::start();
    let url = control.url.as_str();
    control.create(42, WS42, json!({})).await;

    assert_eq!(dwsync(url, Some(WS42), &["disable", "42"]).ok(), "workspace 42: sync disabled; revision 2\n");
    assert_eq!(control.read(42).await["disabled"], true);
    assert!(row(dwsync(url, Some(ADMIN), &["list"]).ok(), "42").contains("disabled"));
    // Resuming a table of a disabled sync says so.
    let out = dwsync(url, Some(WS42), &["pause", "42", "metrics"]);
    assert!(!out.ok().contains("note:"), "{out:?}");
    let out = dwsync(url, Some(WS42), &["resume", "42", "metrics"]);
    assert!(out.ok().contains("note: the whole sync is disabled"), "{out:?}");

    assert_eq!(dwsync(url, Some(WS42), &["enable", "42"]).ok(), "workspace 42: sync enabled; revision 5\n");
    assert_eq!(control.read(42).await["disabled"], false);
    let disabled = dwsync(url, Some(WS42), &["--json", "enable", "42"]);
    let view: Value = serde_json::from_str(disabled.ok()).expect("JSON");
    assert_eq!(view["disabled"], false);
    assert_eq!(view["revision"], 5, "enabling an enabled sync changes nothing");
}

#[tokio::test]
async fn bad_tokens_and_unreachable_apis() {
    let control = Control::start();
    let url = control.url.as_str();
    control.create(42, WS42, json!({})).await;

    let wrong = dwsync(url, Some(WRONG), &["show", "42"]);
    let err = wrong.failed();
    assert!(err.contains("HTTP 401 Unauthorized: a valid bearer token is required"), "{err}");

    let none = dwsync(url, None, &["show", "42"]);
    assert!(none.failed().contains("no API token: pass --token or set DWSYNC_TOKEN"), "{none:?}");

    // Nothing listens on a port just released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let refused = dwsync(&dead, Some(WS42), &["pause", "42", "metrics"]);
    let err = refused.failed();
    assert!(err.contains(&format!("cannot connect to the control API at {dead}/")), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");

    let ftp = dwsync("ftp://control.example.com", Some(WS42), &["list"]);
    assert!(ftp.failed().contains("must be an https:// or http:// URL"), "{ftp:?}");

    // The help shows the variable, never its value.
    let out = Command::new(env!("CARGO_BIN_EXE_dwsync"))
        .env("DWSYNC_TOKEN", WS42)
        .args(["sync", "--help"])
        .output()
        .expect("run dwsync");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("DWSYNC_TOKEN") && !help.contains(WS42), "{help}");
}

#[tokio::test]
async fn over_https_with_a_private_ca() {
    let dir = std::env::temp_dir().join(dwsync_tests::unique("dwsync-cli-https"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (ours, other) =
        (dwsync_tests::tls::ca_and_server(&dir, "ours"), dwsync_tests::tls::ca_and_server(&dir, "other"));
    let control = Control::start_https(&ours);
    control.create(42, WS42, json!({})).await;
    let url = control.url.as_str();
    let ca = |certs: &dwsync_tests::tls::TestCerts| certs.ca.to_str().expect("utf-8 path").to_owned();

    let listed = dwsync(url, Some(ADMIN), &["list", "--ca-file", &ca(&ours)]);
    assert!(row(listed.ok(), "42").contains("enabled"), "{listed:?}");
    let untrusted = dwsync(url, Some(ADMIN), &["list", "--ca-file", &ca(&other)]);
    assert!(untrusted.failed().contains("cannot connect to the control API"), "{untrusted:?}");
    assert!(untrusted.stderr.to_lowercase().contains("certificate"), "the reason names the certificate: {untrusted:?}");
    let missing = dwsync(url, Some(ADMIN), &["list", "--ca-file", "/nonexistent/ca.pem"]);
    assert!(missing.failed().contains("--ca-file /nonexistent/ca.pem"), "{missing:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A status answer of the documented shape.
fn status_sample() -> Value {
    json!({
        "workspace_id": 42,
        "state": "failing",
        "last_sync_at": "2025-06-01T12:00:00Z",
        "last_files": ["dw/v5/metrics_v5_42_000000000007.parquet", "dw/v5/people_v5_chngs_42_000000000008.parquet"],
        "files_waiting": 3,
        "last_error": { "message": "AccessDenied: Access Denied", "at": "2025-06-01T12:05:00Z" },
        "lag_seconds": 12.5,
        "updated_at": "2025-06-01T12:05:30Z",
        "initial_syncs": [
            {"table": "deliveries", "state": "done", "rows": 1200, "files": 1, "reason": null},
            {"table": "metrics", "state": "running", "rows": 2000000, "files": 2, "reason": null},
            {"table": "events", "state": "failed", "rows": 0, "files": 0,
             "reason": "reading events from the archive (handoff partition 3): object k is missing"}
        ]
    })
}

const STATUS_REPORT: &str = "\
workspace:          42
state:              failing
last sync:          2025-06-01T12:00:00Z
files waiting:      3
lag:                12.5 s
last error:         AccessDenied: Access Denied
last error at:      2025-06-01T12:05:00Z
updated:            2025-06-01T12:05:30Z
last files:         2
  dw/v5/metrics_v5_42_000000000007.parquet
  dw/v5/people_v5_chngs_42_000000000008.parquet
initial syncs:      1 of 3 done
  deliveries  done         1200 rows    1 files
  metrics     running   2000000 rows    2 files
  events      failed          0 rows    0 files  reading events from the archive (handoff partition 3): object k is missing
";

#[test]
fn status_rendering() {
    let status: SyncStatus = serde_json::from_value(status_sample()).expect("the documented shape");
    assert_eq!(status.to_string(), STATUS_REPORT);

    let fresh = json!({
        "workspace_id": 7, "state": "ok", "last_sync_at": null, "last_files": [], "files_waiting": 0,
        "last_error": null, "lag_seconds": 0.0, "updated_at": null, "a_later_field": true
    });
    let status: SyncStatus = serde_json::from_value(fresh).expect("nulls and unknown fields");
    assert_eq!(
        status.to_string(),
        "\
workspace:          7
state:              ok
last sync:          never
files waiting:      0
lag:                0.0 s
last error:         none
updated:            never
last files:         none
"
    );
}

#[tokio::test]
async fn status_over_http() {
    let stub = axum::Router::new().route(
        "/v1/workspaces/{id}/status",
        axum::routing::get(|headers: HeaderMap| async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
            if auth == Some(&format!("Bearer {WS42}")) {
                (StatusCode::OK, Json(status_sample()))
            } else {
                (StatusCode::UNAUTHORIZED, Json(json!({ "error": "a valid bearer token is required" })))
            }
        }),
    );
    let url = serve(stub);
    assert_eq!(dwsync(&url, Some(WS42), &["status", "42"]).ok(), STATUS_REPORT);
    let raw: Value = serde_json::from_str(dwsync(&url, Some(WS42), &["status", "42", "--json"]).ok()).expect("JSON");
    assert_eq!(raw, status_sample());
    let wrong = dwsync(&url, Some(WRONG), &["status", "42"]);
    assert!(wrong.failed().contains("GET /v1/workspaces/42/status: HTTP 401 Unauthorized"), "{wrong:?}");
}

/// A purge answer of the documented shape.
fn purge_sample(state: &str) -> Value {
    json!({
        "workspace_id": 42, "epoch": 1, "partition": 3, "cut": 5120, "state": state,
        "requested_at": "2026-11-29T04:00:00.000Z",
        "finished_at": if state == "done" { json!("2026-11-29T04:00:41.310Z") } else { Value::Null },
        "objects_rewritten": 311, "objects_deleted": 12, "rows_removed": 1920410,
        "reason": null, "failed_attempts": 0, "updated_at": null
    })
}

#[tokio::test]
async fn archive_purge_and_its_status_over_http() {
    let admin = |headers: &HeaderMap| {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {ADMIN}"))
    };
    let stub = axum::Router::new()
        .route(
            "/v1/workspaces/{id}/archive/purge",
            axum::routing::post(move |headers: HeaderMap| async move {
                if admin(&headers) {
                    (StatusCode::ACCEPTED, Json(purge_sample("queued")))
                } else {
                    (StatusCode::FORBIDDEN, Json(json!({ "error": "this token may not access this resource" })))
                }
            }),
        )
        .route(
            "/v1/workspaces/{id}/status",
            axum::routing::get(|axum::extract::Path(id): axum::extract::Path<i64>| async move {
                let mut status = json!({"workspace_id": id, "state": "no_sync", "last_files": [], "initial_syncs": []});
                status["archive_purge"] = if id == 42 { purge_sample("done") } else { Value::Null };
                Json(status)
            }),
        );
    let url = serve(stub);
    let asked = dwsync_in("archive", &url, Some(ADMIN), &["purge", "42"]);
    assert_eq!(
        asked.ok(),
        "workspace 42: archive purge 1 asked for (everything handed off before offset 5120 of handoff partition 3); `dwsync archive status 42` follows it\n"
    );
    let refused = dwsync_in("archive", &url, Some(WS42), &["purge", "42"]);
    assert!(refused.failed().contains("POST /v1/workspaces/42/archive/purge: HTTP 403 Forbidden"), "{refused:?}");
    assert_eq!(
        dwsync_in("archive", &url, Some(ADMIN), &["status", "42"]).ok(),
        "\
workspace:          42
archive purge:      done
requested:          2026-11-29T04:00:00.000Z
finished:           2026-11-29T04:00:41.310Z
cut:                offset 5120 of handoff partition 3
objects rewritten:  311
objects deleted:    12
rows removed:       1920410
"
    );
    assert_eq!(
        dwsync_in("archive", &url, Some(ADMIN), &["status", "7"]).ok(),
        "workspace 7: no archive purge was asked for\n"
    );
    let status = dwsync(&url, Some(ADMIN), &["status", "42"]);
    assert!(
        status.ok().contains(
            "archive purge:      done: 311 objects rewritten, 12 deleted, 1920410 rows removed; requested 2026-11-29T04:00:00.000Z, finished 2026-11-29T04:00:41.310Z"
        ),
        "{status:?}"
    );
}

#[tokio::test]
async fn check_tries_the_stored_destination_and_fails_with_its_class() {
    let control = Control::start_local();
    let url = control.url.as_str();
    let bucket = dwsync_tests::create_bucket(&dwsync_tests::s3_client()).await;
    let good = dwsync_tests::s3_secret_key();
    for (id, token, secret) in [(42, WS42, good.as_str()), (7, WS7, "not-the-secret")] {
        let body = json!({"destination": {
            "bucket": bucket, "prefix": format!("checked{id}"), "region": "us-east-1",
            "endpoint": dwsync_tests::s3_endpoint(), "force_path_style": true,
            "access_key_id": dwsync_tests::s3_access_key(), "secret_access_key": secret,
        }});
        let (status, view) =
            control.call(reqwest::Method::POST, &format!("/v1/workspaces/{id}/sync"), token, Some(body)).await;
        assert_eq!(status, 201, "{view}");
    }

    let passed = dwsync(url, Some(WS42), &["check", "42"]);
    assert_eq!(passed.ok().trim(), "workspace 42: destination check passed (list, write, read, multipart)");

    // A wrong secret: the report says where and why, and the exit status says it failed.
    let failed = dwsync(url, Some(WS7), &["check", "7"]);
    assert_eq!(failed.code, Some(1), "{failed:?}");
    assert!(failed.stdout.starts_with("workspace 7: destination check failed at list (bad_signature): "), "{failed:?}");
    assert!(failed.stdout.contains("passed: none"), "{failed:?}");
    assert!(failed.failed().contains("the destination check of workspace 7 failed (bad_signature)"), "{failed:?}");
    for run in [&passed, &failed] {
        assert!(!run.stdout.contains(&good) && !run.stderr.contains(&good), "the S3 secret printed: {run:?}");
    }
}
