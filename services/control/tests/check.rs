//! Destination checks (`POST /v1/workspaces/{id}/sync/check`, `?check=true`) against the real S3
//! server (`dev/s3`, SigV4 checked): a good destination, a missing bucket, a wrong secret, an
//! endpoint that refuses connections, never answers or serves a certificate no trusted CA signed,
//! and a private endpoint without the operator's allow-list.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use dwsync_config::Secret;
use dwsync_control::api::{self, AppState, Tokens};
use dwsync_control::seal::Sealer;
use dwsync_control::store::MemoryStore;
use dwsync_control::validate::Policy;
use dwsync_s3::egress::{EgressConfig, EgressPolicy};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const WS42: &str = "ws42-check-token";

fn router(allow: &[&str]) -> Router {
    let allow = allow.iter().map(|a| a.parse().unwrap()).collect();
    let policy = Policy { allow_insecure_endpoints: true, egress: EgressPolicy::new(&EgressConfig { allow }) };
    let tokens = Tokens::new(&Secret::new(""), &BTreeMap::from([("42".to_owned(), Secret::new(WS42))])).unwrap();
    let state =
        AppState::new(MemoryStore::new(), Some(Sealer::new(&[3; 32])), tokens, policy, Duration::from_secs(86_400))
            .with_check_timeout(Duration::from_millis(1500));
    api::router(state)
}

async fn call(app: &Router, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {WS42}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(!text.contains(&dwsync_tests::s3_secret_key()), "a secret in {text}");
    (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
}

fn spec(endpoint: &str, bucket: &str, secret: &str) -> Value {
    json!({"destination": {
        "bucket": bucket, "prefix": "checked", "region": "us-east-1", "endpoint": endpoint,
        "force_path_style": true, "access_key_id": dwsync_tests::s3_access_key(), "secret_access_key": secret,
    }})
}

async fn bucket() -> String {
    dwsync_tests::create_bucket(&dwsync_tests::s3_client()).await
}

#[tokio::test]
async fn a_good_destination_passes_every_action() {
    let app = router(&["127.0.0.0/8"]);
    let bucket = bucket().await;
    let body = spec(&dwsync_tests::s3_endpoint(), &bucket, &dwsync_tests::s3_secret_key());
    let (status, view) = call(&app, Method::POST, "/v1/workspaces/42/sync/check", Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["ok"], true, "{view}");
    assert_eq!(view["destination"], "submitted");
    assert_eq!(view["passed"], json!(["list", "write", "read", "multipart"]));
    // Created with ?check=true, then the stored destination checked.
    let (status, created) = call(&app, Method::POST, "/v1/workspaces/42/sync?check=true", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, view) = call(&app, Method::POST, "/v1/workspaces/42/sync/check", None).await;
    assert_eq!((status, &view["ok"], &view["destination"]), (StatusCode::OK, &json!(true), &json!("stored")), "{view}");
}

#[tokio::test]
async fn failures_are_classed_with_the_action() {
    let app = router(&["127.0.0.0/8"]);
    let endpoint = dwsync_tests::s3_endpoint();
    let bucket = bucket().await;
    let check = |body: Value| {
        let app = app.clone();
        async move {
            let (status, view) = call(&app, Method::POST, "/v1/workspaces/42/sync/check", Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{view}");
            assert_eq!(view["ok"], false, "{view}");
            view["failure"].clone()
        }
    };
    let missing = check(spec(&endpoint, "no-such-bucket-dwsync-check", &dwsync_tests::s3_secret_key())).await;
    assert_eq!((&missing["class"], &missing["action"]), (&json!("bucket_missing"), &json!("list")), "{missing}");
    assert_eq!(missing["message"], "bucket \"no-such-bucket-dwsync-check\" does not exist (ListObjectsV2)");

    let bad_secret = check(spec(&endpoint, &bucket, "not-the-secret")).await;
    assert_eq!(bad_secret["class"], "bad_signature", "{bad_secret}");
    assert_eq!(bad_secret["http_status"], 403);

    // An access key the server does not know (s3s-fs answers `NotSignedUp`, AWS
    // `InvalidAccessKeyId`).
    let mut stranger = spec(&endpoint, &bucket, &dwsync_tests::s3_secret_key());
    stranger["destination"]["access_key_id"] = json!("AKIADWSYNCNOBODY");
    let stranger = check(stranger).await;
    assert_eq!((&stranger["class"], &stranger["action"]), (&json!("unknown_access_key"), &json!("list")), "{stranger}");

    // Nothing listens on this port: the connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let unreachable = check(spec(&format!("http://{closed}"), &bucket, "s")).await;
    assert_eq!(unreachable["class"], "unreachable", "{unreachable}");

    // A server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let timeout = check(spec(&format!("http://{addr}"), &bucket, "s")).await;
    assert_eq!(timeout["class"], "timeout", "{timeout}");
    held.abort();

    // An HTTPS server whose certificate a public CA did not sign: the TLS handshake fails.
    let dir = std::env::temp_dir().join(dwsync_tests::unique("check-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    let certs = dwsync_tests::tls::ca_and_server(&dir, "untrusted");
    let files = dwsync_control::tls::TlsFiles { cert: certs.cert.clone(), key: certs.key.clone() };
    let tls = dwsync_control::tls::ReloadingTls::new(files).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let listener = tls.listen(tcp, stop.clone()).unwrap();
    let served = tokio::spawn(async move { axum::serve(listener, Router::new()).await });
    let untrusted = check(spec(&format!("https://{addr}"), &bucket, "s")).await;
    assert_eq!(untrusted["class"], "tls_failure", "{untrusted}");
    stop.cancel();
    served.abort();

    // ?check=true refuses a failing destination, naming the class; nothing is stored.
    let (status, err) =
        call(&app, Method::POST, "/v1/workspaces/42/sync?check=true", Some(spec(&endpoint, &bucket, "wrong"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["error"].as_str().unwrap().starts_with("destination check failed (bad_signature)"), "{err}");
    assert_eq!(call(&app, Method::GET, "/v1/workspaces/42/sync", None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_private_endpoint_is_refused_without_the_allow_list() {
    let app = router(&[]);
    let body = spec(&dwsync_tests::s3_endpoint(), "any-bucket", &dwsync_tests::s3_secret_key());
    let (status, err) = call(&app, Method::POST, "/v1/workspaces/42/sync/check", Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["error"].as_str().unwrap().contains("points to a loopback address"), "{err}");
    // A name resolving to loopback passes validation's resolver only to be refused at connection.
    let body = spec(&dwsync_tests::s3_endpoint().replace("127.0.0.1", "localhost"), "any-bucket", "s");
    let (status, err) = call(&app, Method::POST, "/v1/workspaces/42/sync/check", Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "refused at validation: {err}");
}

#[tokio::test]
async fn the_last_check_is_kept_and_shown_in_the_status() {
    // The checks' store on the real broker, as control follows it.
    let kafka = dwsync_config::KafkaConfig {
        bootstrap_servers: dwsync_tests::kafka_bootstrap(),
        ..dwsync_config::KafkaConfig::default()
    };
    let store = dwsync_sync_config::StoreConfig {
        check_topic: dwsync_tests::unique("checks"),
        ..dwsync_sync_config::StoreConfig::default()
    };
    let (checks, follower) = dwsync_sync_config::KafkaStore::<dwsync_sync_config::checks::LastCheck>::connect(
        &kafka,
        &dwsync_sync_config::checks::check_store(&store),
    )
    .await
    .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    drop(tokio::spawn(follower.run(stop.clone())));
    let allow = vec!["127.0.0.0/8".parse().unwrap()];
    let policy = Policy { allow_insecure_endpoints: true, egress: EgressPolicy::new(&EgressConfig { allow }) };
    let tokens = Tokens::new(&Secret::new(""), &BTreeMap::from([("42".to_owned(), Secret::new(WS42))])).unwrap();
    let state =
        AppState::new(MemoryStore::new(), Some(Sealer::new(&[3; 32])), tokens, policy, Duration::from_secs(86_400))
            .with_check_timeout(Duration::from_millis(1500))
            .with_checks(checks);
    let app = api::router(state);
    let bucket = bucket().await;
    let endpoint = dwsync_tests::s3_endpoint();

    let body = spec(&endpoint, &bucket, &dwsync_tests::s3_secret_key());
    let (status, created) = call(&app, Method::POST, "/v1/workspaces/42/sync", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, view) = call(&app, Method::GET, "/v1/workspaces/42/status", None).await;
    assert_eq!(view["last_check"], Value::Null, "no check yet: {view}");

    let (_, checked) = call(&app, Method::POST, "/v1/workspaces/42/sync/check", None).await;
    assert_eq!(checked["ok"], true, "{checked}");
    let (_, view) = call(&app, Method::GET, "/v1/workspaces/42/status", None).await;
    let last = &view["last_check"];
    assert_eq!((&last["ok"], &last["destination"], &last["bucket"]), (&json!(true), &json!("stored"), &json!(bucket)));
    assert_eq!(last["passed"], json!(["list", "write", "read", "multipart"]));

    // A failing one replaces it, with its class and action.
    let bad = spec(&endpoint, &bucket, "not-the-secret");
    let (_, checked) = call(&app, Method::POST, "/v1/workspaces/42/sync/check", Some(bad)).await;
    assert_eq!(checked["ok"], false, "{checked}");
    let (_, view) = call(&app, Method::GET, "/v1/workspaces/42/status", None).await;
    let last = &view["last_check"];
    assert_eq!((&last["ok"], &last["destination"]), (&json!(false), &json!("submitted")), "{view}");
    assert_eq!((&last["failure"]["class"], &last["failure"]["action"]), (&json!("bad_signature"), &json!("list")));
    assert!(last["checked_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{last}");
    stop.cancel();
}

/// The classes s3s-fs cannot produce (it accepts any region and has no permissions), against a
/// gateway that checks both as AWS does (`dev/s3-gateway`).
#[tokio::test]
async fn a_wrong_region_and_a_missing_right_are_classed_on_a_real_gateway() {
    let app = router(&["127.0.0.0/8"]);
    let endpoint = dwsync_tests::s3_gateway::endpoint();
    let bucket = dwsync_tests::s3_gateway::create_bucket().await;
    let check = |region: &str, (key, secret): (&str, &str)| {
        let app = app.clone();
        let body = json!({"destination": {
            "bucket": bucket, "prefix": "checked", "region": region, "endpoint": endpoint,
            "force_path_style": true, "access_key_id": key, "secret_access_key": secret,
        }});
        async move {
            let (status, view) = call(&app, Method::POST, "/v1/workspaces/42/sync/check", Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{view}");
            view
        }
    };
    let owner = check("us-east-1", dwsync_tests::s3_gateway::ROOT).await;
    assert_eq!(owner["ok"], true, "the owner passes: {owner}");

    let elsewhere = check("eu-west-3", dwsync_tests::s3_gateway::ROOT).await;
    assert_eq!(
        (&elsewhere["ok"], &elsewhere["failure"]["class"]),
        (&json!(false), &json!("wrong_region")),
        "{elsewhere}"
    );
    assert_eq!(elsewhere["failure"]["action"], "list", "{elsewhere}");

    let stranger = check("us-east-1", dwsync_tests::s3_gateway::USER).await;
    let failure = &stranger["failure"];
    assert_eq!((&failure["class"], &failure["action"]), (&json!("access_denied"), &json!("list")), "{stranger}");
    assert_eq!(failure["http_status"], 403);
    let message = failure["message"].as_str().unwrap_or_default();
    assert!(message.contains("s3:ListBucket"), "the message names the permission: {message}");
    assert!(!stranger.to_string().contains(dwsync_tests::s3_gateway::USER.1), "no secret in the answer");
}
