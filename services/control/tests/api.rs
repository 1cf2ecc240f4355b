//! The REST API over the in-memory store: every endpoint, every auth rule, the validation
//! errors, the people rule, the OpenAPI document — and no response body ever holds a secret.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use dwsync_config::Secret;
use dwsync_control::api::{self, Access, AppState, Endpoint, Tokens};
use dwsync_control::model::WorkspaceId;
use dwsync_control::seal::Sealer;
use dwsync_control::store::{ConfigStore, MemoryStore, codec};
use dwsync_control::validate::Policy;
use dwsync_s3::egress::{EgressConfig, EgressPolicy};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ADMIN: &str = "admin-token-0123456789";
const WS42: &str = "ws42-token-abcdef";
const WS7: &str = "ws7-token-ghijkl";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SECRET2: &str = "second-secret-Zz9/Yy8+Xx7";
const DAY_MS: i64 = 86_400_000;

/// The router over a memory store, a movable clock, and every response body seen.
struct Harness {
    app: Router,
    store: MemoryStore,
    sealer: Sealer,
    now: Arc<AtomicI64>,
    bodies: Mutex<Vec<String>>,
}

impl Harness {
    fn new(policy: Policy) -> Self {
        let store = MemoryStore::new();
        let sealer = Sealer::new(&[9; 32]);
        let ws = BTreeMap::from([("42".to_owned(), Secret::new(WS42)), ("7".to_owned(), Secret::new(WS7))]);
        let tokens = Tokens::new(&Secret::new(ADMIN), &ws).expect("tokens");
        let now = Arc::new(AtomicI64::new(1_700_000_000_000));
        let mut state =
            AppState::new(store.clone(), Some(sealer.clone()), tokens, policy, Duration::from_secs(7 * 86_400));
        let clock = now.clone();
        state.clock = Arc::new(move || clock.load(Ordering::SeqCst));
        Self { app: api::router(state), store, sealer, now, bodies: Mutex::new(Vec::new()) }
    }

    fn strict() -> Self {
        Self::new(Policy::default())
    }

    fn advance(&self, ms: i64) {
        let _ = self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sends a request; checks the body is JSON (or empty) and holds no secret.
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method.clone()).uri(path);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8(bytes.to_vec()).expect("utf-8 body");
        for secret in [SECRET, SECRET2] {
            assert!(!text.contains(secret), "{method} {path} answered with a secret: {text}");
        }
        self.bodies.lock().expect("lock").push(text.clone());
        let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") };
        (status, value)
    }

    async fn create(&self, id: i64, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, &format!("/v1/workspaces/{id}/sync"), Some(token), Some(body)).await
    }
}

fn spec(secret: Option<&str>) -> Value {
    let mut destination = json!({
        "bucket": "acme-exports",
        "prefix": "dw/v5",
        "region": "eu-west-1",
        "access_key_id": "AKIAEXAMPLE",
    });
    if let Some(s) = secret {
        destination["secret_access_key"] = json!(s);
    }
    json!({ "destination": destination })
}

/// The local dev stack's policy: http:// and loopback endpoints allowed.
fn local_policy() -> Policy {
    let allow = vec!["127.0.0.0/8".parse().expect("an entry")];
    Policy { allow_insecure_endpoints: true, egress: EgressPolicy::new(&EgressConfig { allow }) }
}

fn table(view: &Value, name: &str) -> Value {
    view["tables"].as_array().expect("tables").iter().find(|t| t["table"] == name).cloned().expect(name)
}

fn error(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_else(|| panic!("no error in {body}"))
}

#[tokio::test]
async fn create_read_update_delete() {
    let h = Harness::strict();
    let (status, view) = h.create(42, WS42, spec(Some(SECRET))).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["workspace_id"], 42);
    assert_eq!(view["schema_version"], 5);
    assert_eq!(view["revision"], 1);
    assert_eq!(view["disabled"], false);
    assert_eq!(view["destination"]["access_key_id"], "AKIAEXAMPLE");
    assert_eq!(view["destination"]["secret_access_key_set"], true);
    assert_eq!(view["destination"]["conditional_writes"], true);
    assert!(view["destination"].get("secret_access_key").is_none());
    let tables = view["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 15);
    assert!(tables.iter().all(|t| t["enabled"] == true));

    let (status, body) = h.create(42, WS42, spec(Some(SECRET))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error(&body).contains("already has a sync"), "{body}");

    let (status, read) = h.call(Method::GET, "/v1/workspaces/42/sync", Some(WS42), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, view);

    // The secret is sealed in the store, for this workspace.
    let stored = h.store.get(WorkspaceId::new(42).expect("id")).await.expect("get").expect("stored");
    let bytes = codec::encode(&stored);
    assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "plaintext in the record");
    assert_eq!(h.sealer.open(stored.destination.sealed(), "42").expect("open").expose(), SECRET);

    // Update: the secret must come again; the change bumps the revision.
    let (status, body) = h.call(Method::PUT, "/v1/workspaces/42/sync", Some(WS42), Some(spec(None))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("secret_access_key is required"), "{body}");
    let mut update = spec(Some(SECRET2));
    update["destination"]["bucket"] = json!("acme-exports-2");
    update["tables"] = json!({ "metrics": false });
    h.advance(1_000);
    let (status, view) = h.call(Method::PUT, "/v1/workspaces/42/sync", Some(WS42), Some(update)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["revision"], 2);
    assert_eq!(view["destination"]["bucket"], "acme-exports-2");
    assert_eq!(table(&view, "metrics")["enabled"], false);
    assert_eq!(table(&view, "deliveries")["enabled"], true, "tables not named are unchanged");
    let stored = h.store.get(WorkspaceId::new(42).expect("id")).await.expect("get").expect("stored");
    assert_eq!(h.sealer.open(stored.destination.sealed(), "42").expect("open").expose(), SECRET2);

    let (status, body) = h.call(Method::DELETE, "/v1/workspaces/42/sync", Some(WS42), None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = h.call(Method::GET, "/v1/workspaces/42/sync", Some(WS42), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error(&body), "workspace 42 has no sync configured");
    let (status, _) = h.call(Method::DELETE, "/v1/workspaces/42/sync", Some(WS42), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h.call(Method::PUT, "/v1/workspaces/42/sync", Some(WS42), Some(spec(Some(SECRET)))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn create_with_tables_off_and_options() {
    let h = Harness::strict();
    let mut body = spec(Some(SECRET));
    body["tables"] = json!({ "people": false, "events": false });
    body["schema_version"] = json!(5);
    body["destination"]["endpoint"] = json!("https://storage.yandexcloud.net");
    body["destination"]["force_path_style"] = json!(true);
    body["destination"]["conditional_writes"] = json!(false);
    let (status, view) = h.create(7, ADMIN, body).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(table(&view, "people")["enabled"], false);
    assert_eq!(table(&view, "events")["enabled"], false);
    assert_eq!(table(&view, "metrics")["enabled"], true);
    assert_eq!(view["destination"]["endpoint"], "https://storage.yandexcloud.net");
    assert_eq!(view["destination"]["force_path_style"], true);
    assert_eq!(view["destination"]["conditional_writes"], false);
}

fn gcs_spec(key: Option<&str>) -> Value {
    let mut destination = json!({ "kind": "gcs", "bucket": "acme-exports", "path": "dw/v5" });
    if let Some(key) = key {
        destination["service_account_key"] = json!(key);
    }
    json!({ "destination": destination })
}

#[tokio::test]
async fn a_gcs_destination_keeps_its_key_sealed_and_needs_it_on_every_update() {
    let h = Harness::strict();
    let key = dwsync_tests::gcs::service_account_key();
    let (status, view) = h.create(42, WS42, gcs_spec(Some(&key))).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let destination = &view["destination"];
    assert_eq!(destination["kind"], "gcs");
    assert_eq!((destination["bucket"].as_str(), destination["prefix"].as_str()), (Some("acme-exports"), Some("dw/v5")));
    assert_eq!(destination["client_email"], dwsync_tests::gcs::CLIENT_EMAIL);
    assert_eq!(destination["service_account_key_set"], true);
    for s3_only in ["region", "access_key_id", "secret_access_key_set", "service_account_key"] {
        assert!(destination.get(s3_only).is_none(), "{s3_only}: {destination}");
    }
    let pem_line = dwsync_tests::gcs::private_key_pem().lines().nth(1).expect("a PEM body line");
    assert!(!view.to_string().contains(pem_line), "the key is never answered");
    let (_, read) = h.call(Method::GET, "/v1/workspaces/42/sync", Some(WS42), None).await;
    assert_eq!(read, view);

    let stored = h.store.get(WorkspaceId::new(42).expect("id")).await.expect("get").expect("stored");
    assert_eq!(stored.destination.kind(), "gcs");
    let bytes = codec::encode(&stored);
    assert!(!bytes.windows(pem_line.len()).any(|w| w == pem_line.as_bytes()), "plaintext in the record");
    assert_eq!(h.sealer.open(stored.destination.sealed(), "42").expect("open").expose(), key);

    let (status, body) = h.call(Method::PUT, "/v1/workspaces/42/sync", Some(WS42), Some(gcs_spec(None))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error(&body),
        "destination.service_account_key is required on every create and update of a gcs destination"
    );
    // Back to S3 and to GCS again: the kind is the client's to change, with its secret.
    let (status, view) = h.call(Method::PUT, "/v1/workspaces/42/sync", Some(WS42), Some(spec(Some(SECRET)))).await;
    assert_eq!((status, view["destination"]["kind"].as_str()), (StatusCode::OK, Some("s3")), "{view}");
    let (status, view) = h.call(Method::PUT, "/v1/workspaces/42/sync", Some(WS42), Some(gcs_spec(Some(&key)))).await;
    assert_eq!((status, view["destination"]["kind"].as_str()), (StatusCode::OK, Some("gcs")), "{view}");

    // Keys that are not keys: 400 naming the field, never echoing the key.
    let whole: Value = serde_json::from_str(&key).expect("JSON key");
    let without = |field: &str| {
        let mut partial = whole.clone();
        partial.as_object_mut().expect("object").remove(field);
        partial.to_string()
    };
    for (bad, message) in [
        (format!("{key} trailing"), "destination.service_account_key is not a JSON object"),
        (without("client_email"), "destination.service_account_key lacks the field `client_email`"),
        (without("private_key"), "destination.service_account_key lacks the field `private_key`"),
    ] {
        let (status, err) = h.create(43, ADMIN, gcs_spec(Some(&bad))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
        assert!(error(&err).starts_with(message), "{err}");
        assert!(!err.to_string().contains(pem_line) && !err.to_string().contains("0123456789abcdef"), "{err}");
    }
    let mut mixed = gcs_spec(Some(&key));
    mixed["destination"]["access_key_id"] = json!("AKIA");
    let (status, err) = h.create(43, ADMIN, mixed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error(&err), "destination.access_key_id is not a setting of gcs destinations");
    let mut unknown = gcs_spec(Some(&key));
    unknown["destination"]["kind"] = json!("azure");
    let (status, err) = h.create(43, ADMIN, unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&err).contains("unknown variant `azure`, expected `s3` or `gcs`"), "{err}");
}

#[tokio::test]
async fn table_toggles_and_the_people_rule() {
    let h = Harness::strict();
    assert_eq!(h.create(42, WS42, spec(Some(SECRET))).await.0, StatusCode::CREATED);
    let path = |t: &str| format!("/v1/workspaces/42/sync/tables/{t}");

    let (status, view) = h.call(Method::PUT, &path("metrics"), Some(WS42), Some(json!({"enabled": false}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(table(&view, "metrics")["enabled"], false);
    assert_eq!(view["revision"], 2);
    let (_, view) = h.call(Method::PUT, &path("metrics"), Some(WS42), Some(json!({"enabled": false}))).await;
    assert_eq!(view["revision"], 2, "no change, no new revision");
    h.advance(30 * DAY_MS);
    let (status, view) = h.call(Method::PUT, &path("metrics"), Some(WS42), Some(json!({"enabled": true}))).await;
    assert_eq!(status, StatusCode::OK, "other tables come back whenever");
    assert_eq!(table(&view, "metrics")["enabled"], true);

    // People: off 7 days is fine, off 8 days is refused with the spec's message.
    assert_eq!(
        h.call(Method::PUT, &path("people"), Some(WS42), Some(json!({"enabled": false}))).await.0,
        StatusCode::OK
    );
    h.advance(7 * DAY_MS);
    assert_eq!(
        h.call(Method::PUT, &path("people"), Some(WS42), Some(json!({"enabled": true}))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        h.call(Method::PUT, &path("people"), Some(WS42), Some(json!({"enabled": false}))).await.0,
        StatusCode::OK
    );
    h.advance(8 * DAY_MS);
    let (status, body) = h.call(Method::PUT, &path("people"), Some(WS42), Some(json!({"enabled": true}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error(&body), "People file off for more than 7 days cannot be re-enabled");
    let mut update = spec(Some(SECRET));
    update["tables"] = json!({ "people": true });
    let (status, body) = h.call(Method::PUT, "/v1/workspaces/42/sync", Some(WS42), Some(update)).await;
    assert_eq!(status, StatusCode::CONFLICT, "the rule holds through a full update too");
    assert_eq!(error(&body), "People file off for more than 7 days cannot be re-enabled");
    let (_, view) = h.call(Method::GET, "/v1/workspaces/42/sync", Some(WS42), None).await;
    assert_eq!(table(&view, "people")["enabled"], false);

    let (status, body) = h.call(Method::PUT, &path("peeple"), Some(WS42), Some(json!({"enabled": true}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("peeple"), "{body}");
    let (status, body) = h.call(Method::PUT, &path("metrics"), Some(WS42), Some(json!({"on": true}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("unknown field `on`"), "{body}");
    let (status, _) =
        h.call(Method::PUT, "/v1/workspaces/7/sync/tables/metrics", Some(WS7), Some(json!({"enabled": true}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_specs_schemas_move_their_tables_together() {
    let h = Harness::strict();
    let mut created = spec(Some(SECRET));
    created["tables"] = json!({ "campaign_metadata": false, "objects": true });
    let (status, view) = h.create(42, WS42, created).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(
        (table(&view, "campaigns")["enabled"].clone(), table(&view, "actions")["enabled"].clone()),
        (json!(false), json!(false))
    );
    let path = |t: &str| format!("/v1/workspaces/42/sync/tables/{t}");

    // Campaign Metadata on: campaigns and actions; Objects off: objects and object types.
    let (status, view) =
        h.call(Method::PUT, &path("campaign_metadata"), Some(WS42), Some(json!({"enabled": true}))).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(table(&view, "campaigns")["enabled"], true);
    assert_eq!(table(&view, "actions")["enabled"], true);
    let (status, view) = h.call(Method::PUT, &path("objects"), Some(WS42), Some(json!({"enabled": false}))).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (table(&view, "objects")["enabled"].clone(), table(&view, "object_types")["enabled"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(table(&view, "object_attributes")["enabled"], true, "a schema of its own");

    // A table that is only part of its schema names the schema to use.
    for (name, schema) in
        [("actions", "campaign_metadata"), ("campaigns", "campaign_metadata"), ("object_types", "objects")]
    {
        let (status, body) = h.call(Method::PUT, &path(name), Some(WS42), Some(json!({"enabled": false}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert!(error(&body).contains(&format!("turn `{schema}` on or off")), "{body}");
    }
    // Asked apart in a full update: refused, naming the schema; alike: fine.
    let mut split = spec(Some(SECRET));
    split["tables"] = json!({ "campaigns": true, "actions": false });
    let (status, body) = h.call(Method::PUT, "/v1/workspaces/42/sync", Some(WS42), Some(split)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("Campaign Metadata schema (campaigns, actions)"), "{body}");
    let mut half = spec(Some(SECRET));
    half["tables"] = json!({ "object_types": true });
    let (status, body) = h.call(Method::PUT, "/v1/workspaces/42/sync", Some(WS42), Some(half)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).contains("set `objects`"), "{body}");
    let mut alike = spec(Some(SECRET));
    alike["tables"] = json!({ "objects": true, "object_types": true });
    let (status, view) = h.call(Method::PUT, "/v1/workspaces/42/sync", Some(WS42), Some(alike)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(table(&view, "object_types")["enabled"], true);
}

#[tokio::test]
async fn disable_and_enable() {
    let h = Harness::strict();
    assert_eq!(h.create(42, WS42, spec(Some(SECRET))).await.0, StatusCode::CREATED);
    let (status, view) = h.call(Method::POST, "/v1/workspaces/42/sync/disable", Some(WS42), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((view["disabled"].clone(), view["revision"].clone()), (json!(true), json!(2)));
    let (_, view) = h.call(Method::POST, "/v1/workspaces/42/sync/disable", Some(WS42), None).await;
    assert_eq!(view["revision"], 2, "already disabled");
    let (status, view) = h.call(Method::POST, "/v1/workspaces/42/sync/enable", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((view["disabled"].clone(), view["revision"].clone()), (json!(false), json!(3)));
    let (status, _) = h.call(Method::POST, "/v1/workspaces/7/sync/enable", Some(WS7), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn status_before_any_report_and_when_disabled() {
    // Reports come from the uploaders over Kafka (tests/tests/control_plane.rs); without them
    // the state follows the configuration alone.
    let h = Harness::strict();
    let (status, _) = h.call(Method::GET, "/v1/workspaces/42/status", Some(WS42), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no sync, no status");
    assert_eq!(h.create(42, WS42, spec(Some(SECRET))).await.0, StatusCode::CREATED);
    let (status, view) = h.call(Method::GET, "/v1/workspaces/42/status", Some(WS42), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["state"], "unknown", "{view}");
    assert_eq!((view["files_waiting"].clone(), view["last_error"].clone()), (json!(0), Value::Null));
    let _ = h.call(Method::POST, "/v1/workspaces/42/sync/disable", Some(WS42), None).await;
    let (_, view) = h.call(Method::GET, "/v1/workspaces/42/status", Some(ADMIN), None).await;
    assert_eq!(view["state"], "disabled", "{view}");
}

#[tokio::test]
async fn list_is_admin_only() {
    let h = Harness::strict();
    assert_eq!(h.create(42, WS42, spec(Some(SECRET))).await.0, StatusCode::CREATED);
    assert_eq!(h.create(7, WS7, spec(Some(SECRET2))).await.0, StatusCode::CREATED);
    let (status, body) = h.call(Method::GET, "/v1/workspaces", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<_> = body["workspaces"].as_array().expect("list").iter().map(|w| w["workspace_id"].clone()).collect();
    assert_eq!(ids, [json!(7), json!(42)]);
    let (status, body) = h.call(Method::GET, "/v1/workspaces", Some(WS42), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error(&body), "this token may not access this resource");
}

/// A request for every endpoint on workspace `id`.
fn requests(id: &str) -> Vec<(Endpoint, Method, String, Option<Value>)> {
    Endpoint::ALL
        .iter()
        .map(|e| {
            let path = e.path().replace("{id}", id).replace("{table}", "metrics").replace("{token_id}", "0123abcd");
            let body = match e {
                Endpoint::CreateSync | Endpoint::UpdateSync => Some(spec(Some(SECRET))),
                Endpoint::SetTable => Some(json!({"enabled": false})),
                Endpoint::CreateToken => Some(json!({"name": "ci"})),
                _ => None,
            };
            (*e, e.method(), path, body)
        })
        .collect()
}

#[tokio::test]
async fn every_auth_rule_on_every_endpoint() {
    let h = Harness::strict();
    assert_eq!(h.create(7, WS7, spec(Some(SECRET2))).await.0, StatusCode::CREATED);
    for (e, method, path, body) in requests("7") {
        if e.access() == Access::Public {
            assert_eq!(h.call(method, &path, None, None).await.0, StatusCode::OK, "{path}");
            continue;
        }
        for token in [None, Some("wrong-token"), Some(""), Some(&ADMIN[..5])] {
            let (status, err) = h.call(method.clone(), &path, token, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}");
            assert_eq!(error(&err), "a valid bearer token is required");
        }
        // Workspace 42's token on workspace 7 (which exists) and on 8 (which does not): the same 403.
        let (status, on_7) = h.call(method.clone(), &path, Some(WS42), body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        let other = path.replace("/7/", "/8/");
        let (status, on_8) = h.call(method.clone(), &other, Some(WS42), body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {other}");
        assert_eq!(on_7, on_8, "a 403 never tells whether the workspace exists");
    }
    // The owner and the admin get through (creating on 7 is a conflict, not an auth error).
    for token in [WS7, ADMIN] {
        for (e, method, path, body) in requests("7") {
            if e == Endpoint::DeleteSync || (e.access() == Access::Admin && token == WS7) {
                continue;
            }
            let (status, body) = h.call(method.clone(), &path, Some(token), body).await;
            let expected = match e {
                Endpoint::CreateSync => StatusCode::CONFLICT,
                // No cutter, no purge topic and no token topic in memory: refused, past the auth
                // checks.
                Endpoint::PurgeArchive | Endpoint::CreateToken | Endpoint::ListTokens | Endpoint::RevokeToken => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::OK,
            };
            assert_eq!(status, expected, "{method} {path}: {body}");
        }
    }
    let (status, _) = h.call(Method::DELETE, "/v1/workspaces/7/sync", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn validation_errors() {
    let h = Harness::strict();
    let post = |body: Value| h.create(42, WS42, body);

    let mut body = spec(Some(SECRET));
    body["tables"] = json!({ "metrics": true, "nope": false, "peeple": true });
    let (status, err) = post(body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&err).starts_with("unknown tables: nope, peeple;"), "{err}");

    for bad in ["ab", "Acme", "acme..exports", "10.0.0.1", "-acme", "acme_exports"] {
        let mut body = spec(Some(SECRET));
        body["destination"]["bucket"] = json!(bad);
        let (status, err) = post(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(error(&err).starts_with(&format!("bad bucket name {bad:?}")), "{err}");
    }

    let mut body = spec(Some(SECRET));
    body["destination"]["endpoint"] = json!("http://127.0.0.1:9000");
    let (status, err) = post(body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&err).contains("must be an https:// URL"), "{err}");
    let insecure = Harness::new(Policy { allow_insecure_endpoints: true, ..Policy::default() });
    let (status, err) = insecure.create(42, WS42, body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "http:// allowed, but 127.0.0.1 is the operator's");
    assert_eq!(
        error(&err),
        "endpoint host \"127.0.0.1\" points to a loopback address; customer endpoints must be public"
    );
    let local = Harness::new(local_policy());
    assert_eq!(local.create(42, WS42, body).await.0, StatusCode::CREATED, "allowed for local use");

    let (status, err) = post(spec(None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error(&err), "destination.secret_access_key is required on every create and update");
    let (status, _) = post(spec(Some(""))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let mut body = spec(Some(SECRET));
    body["schema_version"] = json!(4);
    let (status, err) = post(body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error(&err), "schema_version 4 is not supported; only 5 is");

    let mut body = spec(Some(SECRET));
    body["destination"]["colour"] = json!("blue");
    let (status, err) = post(body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&err).contains("unknown field `colour`"), "{err}");

    // A secret of the wrong type is refused without echoing it.
    let mut body = spec(None);
    body["destination"]["secret_access_key"] = json!([SECRET]);
    let (status, err) = post(body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&err).starts_with("request body is not valid"), "{err}");

    let (status, _) = h.call(Method::POST, "/v1/workspaces/42/sync", Some(WS42), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no body");
    let (status, err) = h.call(Method::GET, "/v1/workspaces/forty-two/sync", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&err).contains("not a positive integer"), "{err}");
    let (status, _) = h.call(Method::GET, "/v1/workspaces/0/sync", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Nothing was stored by any refused request.
    assert!(h.store.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn endpoints_into_the_operators_network_are_refused_naming_the_class() {
    let h = Harness::strict();
    let with_endpoint = |url: &str| {
        let mut body = spec(Some(SECRET));
        body["destination"]["endpoint"] = json!(url);
        body
    };
    for (url, host, class) in [
        ("https://127.0.0.1:9000", "127.0.0.1", "loopback"),
        ("https://10.20.30.40", "10.20.30.40", "private"),
        ("https://192.168.1.10:9000", "192.168.1.10", "private"),
        ("https://100.64.0.10", "100.64.0.10", "shared (carrier-grade NAT)"),
        ("https://169.254.169.254/latest", "169.254.169.254", "cloud metadata"),
        ("https://169.254.3.4", "169.254.3.4", "link-local"),
        ("https://[fd00::5]:9000", "[fd00::5]", "unique-local"),
        ("https://[::ffff:10.0.0.1]", "[::ffff:10.0.0.1]", "private"),
        ("https://239.1.2.3", "239.1.2.3", "multicast"),
        ("https://0.0.0.0:9000", "0.0.0.0", "unspecified"),
        // A name resolving to a loopback address (/etc/hosts): the name is shown, not the address.
        ("https://localhost:9000", "localhost", "loopback"),
    ] {
        let (status, err) = h.create(42, WS42, with_endpoint(url)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {err}");
        assert_eq!(
            error(&err),
            format!("endpoint host {host:?} points to a {class} address; customer endpoints must be public"),
            "{url}"
        );
    }
    assert!(h.store.get(WorkspaceId::new(42).expect("id")).await.expect("store").is_none(), "nothing stored");

    // A public endpoint is accepted; changing it to a private one is refused and changes nothing.
    assert_eq!(h.create(42, WS42, with_endpoint("https://52.95.110.1")).await.0, StatusCode::CREATED);
    let (status, err) =
        h.call(Method::PUT, "/v1/workspaces/42/sync", Some(WS42), Some(with_endpoint("https://10.0.0.1"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let stored = h.store.get(WorkspaceId::new(42).expect("id")).await.expect("store").expect("sync");
    assert_eq!(stored.destination.endpoint(), Some("https://52.95.110.1"));

    // The operator's allow-list admits what it names, and only that.
    let local = Harness::new(local_policy());
    assert_eq!(local.create(42, WS42, with_endpoint("https://localhost:9000")).await.0, StatusCode::CREATED);
    let (status, err) = local.create(7, WS7, with_endpoint("https://10.0.0.1")).await;
    assert_eq!(
        (status, error(&err)),
        (
            StatusCode::BAD_REQUEST,
            "endpoint host \"10.0.0.1\" points to a private address; customer endpoints must be public"
        )
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let h = Harness::strict();
    let (status, err) = h.call(Method::GET, "/v2/nothing", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error(&err).starts_with("no such endpoint"));
    let (status, err) = h.call(Method::PATCH, "/v1/workspaces/42/sync", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(error(&err).starts_with("method not allowed"));
}

#[tokio::test]
async fn the_openapi_document_is_checked_in_and_lists_every_route() {
    let h = Harness::strict();
    let (status, served) = h.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("DWSYNC_UPDATE_OPENAPI").is_some() {
        std::fs::write(&file, serde_json::to_string_pretty(&served).expect("json") + "\n").expect("write openapi.json");
    }
    let text =
        std::fs::read_to_string(&file).expect("services/control/openapi.json (DWSYNC_UPDATE_OPENAPI=1 writes it)");
    let checked_in: Value = serde_json::from_str(&text).expect("openapi.json is JSON");
    assert_eq!(served, checked_in, "openapi.json is stale: rerun with DWSYNC_UPDATE_OPENAPI=1");

    // Every route is documented ...
    for e in Endpoint::ALL {
        let method = e.method().as_str().to_lowercase();
        assert!(served["paths"][e.path()][&method].is_object(), "{method} {} missing", e.path());
    }
    // ... and every documented operation is routed (not the 404/405 fallbacks).
    let mut operations = 0;
    for (path, item) in served["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations += 1;
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let uri = path.replace("{id}", "1").replace("{table}", "metrics");
            let (status, body) = h.call(method.clone(), &uri, Some(ADMIN), None).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if status == StatusCode::NOT_FOUND {
                assert!(!error(&body).starts_with("no such endpoint"), "{method} {path} is not routed");
            }
        }
    }
    assert_eq!(operations, Endpoint::ALL.len());
}

#[tokio::test]
async fn no_response_ever_holds_a_secret() {
    let h = Harness::strict();
    // Exercise every endpoint with both secrets, then check every body seen (call checks each too).
    assert_eq!(h.create(42, WS42, spec(Some(SECRET))).await.0, StatusCode::CREATED);
    for (_, method, path, body) in requests("42") {
        let _ = h.call(method.clone(), &path, Some(ADMIN), body.clone()).await;
        let _ = h.call(method, &path, Some(WS7), body).await;
    }
    let bodies = h.bodies.lock().expect("lock");
    assert!(bodies.len() > 15);
    for body in bodies.iter() {
        assert!(!body.contains(SECRET) && !body.contains(SECRET2), "{body}");
    }
}

#[tokio::test]
async fn without_a_sealing_key_secrets_are_refused_but_the_rest_works() {
    let h = Harness::strict();
    assert_eq!(h.create(42, WS42, spec(Some(SECRET))).await.0, StatusCode::CREATED);
    let tokens = Tokens::new(&Secret::new(ADMIN), &BTreeMap::new()).expect("tokens");
    let keyless = api::router(AppState::new(h.store.clone(), None, tokens, Policy::default(), Duration::from_secs(1)));
    let keyless = Harness { app: keyless, ..Harness::strict() };
    let (status, err) = keyless.create(7, ADMIN, spec(Some(SECRET))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error(&err).contains("DWSYNC_SEAL_KEY"), "{err}");
    let (status, _) = keyless.call(Method::PUT, "/v1/workspaces/42/sync", Some(ADMIN), Some(spec(Some(SECRET)))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = keyless.call(Method::GET, "/v1/workspaces/42/sync", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = keyless.call(Method::POST, "/v1/workspaces/42/sync/disable", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.store.list().await.expect("list").len(), 1, "nothing created without a key");
}
