//! Which changes ask for an initial sync, over the in-memory store with a cutter that counts: a
//! new sync, a table turned on for the first time, a sync enabled again — never a table turned
//! back on after a pause; a cut that cannot be written changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use dwsync_config::Secret;
use dwsync_contract::Table;
use dwsync_control::api::{self, AppState, Tokens};
use dwsync_control::cut::{CutError, CutFuture, Cutter, Placed};
use dwsync_control::model::{Baseline, WorkspaceId};
use dwsync_control::seal::Sealer;
use dwsync_control::store::{ConfigStore, MemoryStore};
use dwsync_control::validate::Policy;
use dwsync_handoff::Cut;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ADMIN: &str = "admin-token-0123456789";
const NOW: i64 = 1_700_000_000_000;

/// Cut records at offsets 100, 101, ... of partition 3; fails while `broken`.
#[derive(Default)]
struct CountingCutter {
    next: AtomicI64,
    broken: AtomicBool,
    cuts: std::sync::Mutex<Vec<Cut>>,
}

impl Cutter for CountingCutter {
    fn cut(&self, cut: Cut) -> CutFuture<'_> {
        Box::pin(async move {
            if self.broken.load(Ordering::SeqCst) {
                return Err(CutError::Write { topic: "handoff".into(), error: "broker down".into() });
            }
            self.cuts.lock().expect("lock").push(cut);
            Ok(Placed { partition: 3, offset: 100 + self.next.fetch_add(1, Ordering::SeqCst) })
        })
    }
}

struct Harness {
    app: Router,
    store: MemoryStore,
    cutter: Arc<CountingCutter>,
}

impl Harness {
    fn new() -> Self {
        let store = MemoryStore::new();
        let tokens = Tokens::new(&Secret::new(ADMIN), &BTreeMap::new()).expect("tokens");
        let cutter = Arc::new(CountingCutter::default());
        let policy = Policy::default();
        let mut state =
            AppState::new(store.clone(), Some(Sealer::new(&[9; 32])), tokens, policy, Duration::from_secs(7 * 86_400))
                .with_cutter(cutter.clone());
        state.clock = Arc::new(|| NOW);
        Self { app: api::router(state), store, cutter }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder().method(method).uri(path).header("authorization", format!("Bearer {ADMIN}"));
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON") };
        (status, value)
    }

    async fn baselines(&self) -> BTreeMap<Table, Option<Baseline>> {
        let cfg = self.store.get(WorkspaceId::new(42).expect("id")).await.expect("store").expect("sync");
        Table::ALL.iter().map(|t| (*t, cfg.tables.get(t).and_then(|s| s.baseline))).collect()
    }
}

fn spec(tables: Value) -> Value {
    json!({
        "destination": {
            "bucket": "acme-exports", "region": "eu-west-1", "access_key_id": "AKIAEXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        },
        "tables": tables,
    })
}

fn at(epoch: u64, cut: i64) -> Option<Baseline> {
    Some(Baseline { epoch, partition: 3, cut, at_ms: NOW, replay_from: None })
}

#[tokio::test]
async fn a_new_sync_asks_one_baseline_for_its_enabled_tables() {
    let h = Harness::new();
    let (status, body) = h.call(Method::POST, "/v1/workspaces/42/sync", Some(spec(json!({"people": false})))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let baselines = h.baselines().await;
    assert_eq!(baselines[&Table::People], None, "off at creation: no baseline yet");
    for t in Table::ALL.iter().filter(|t| **t != Table::People) {
        assert_eq!(baselines[t], at(1, 100), "{t}");
    }
    assert_eq!(h.cutter.cuts.lock().expect("lock").as_slice(), &[Cut { workspace_id: 42, epoch: 1 }], "one cut record");

    // The status shows every enabled table's initial sync as queued until the backfill reports.
    let (status, body) = h.call(Method::GET, "/v1/workspaces/42/status", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let syncs = body["initial_syncs"].as_array().expect("initial_syncs");
    assert_eq!(syncs.len(), 14);
    assert!(syncs.iter().all(|s| s["state"] == "queued" && s["rows"] == 0), "{body}");
    assert_eq!(body["state"], "initial_sync");
}

#[tokio::test]
async fn first_enable_gets_an_initial_sync_a_pause_a_catch_up_and_enable_starts_again() {
    let h = Harness::new();
    let _ = h.call(Method::POST, "/v1/workspaces/42/sync", Some(spec(json!({"people": false})))).await;

    // People, never on: turned on → a baseline of its own at the next revision.
    let (status, body) =
        h.call(Method::PUT, "/v1/workspaces/42/sync/tables/people", Some(json!({"enabled": true}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let baselines = h.baselines().await;
    assert_eq!(baselines[&Table::People], at(2, 101));
    assert_eq!(baselines[&Table::Metrics], at(1, 100), "others keep theirs");

    // Metrics paused: a cut (102) from which its files are left to the archive; resumed: a
    // catch-up replaying them, from the pause's cut to the resume's (103).
    let (status, _) =
        h.call(Method::PUT, "/v1/workspaces/42/sync/tables/metrics", Some(json!({"enabled": false}))).await;
    assert_eq!(status, StatusCode::OK);
    let stored = h.store.get(WorkspaceId::new(42).expect("id")).await.expect("store").expect("sync");
    assert_eq!(stored.tables[&Table::Metrics].off_from, Some(102));
    assert_eq!(stored.tables[&Table::Metrics].baseline, at(1, 100), "its initial sync stays");
    let (status, body) =
        h.call(Method::PUT, "/v1/workspaces/42/sync/tables/metrics", Some(json!({"enabled": true}))).await;
    assert_eq!(status, StatusCode::OK);
    let revision = body["revision"].as_u64().expect("revision");
    let catch_up = Baseline { replay_from: Some(102), ..at(revision, 103).expect("baseline") };
    assert_eq!(h.baselines().await[&Table::Metrics], Some(catch_up));
    let stored = h.store.get(WorkspaceId::new(42).expect("id")).await.expect("store").expect("sync");
    assert_eq!(stored.tables[&Table::Metrics].off_from, None);
    assert_eq!(h.cutter.cuts.lock().expect("lock").len(), 4);

    // Disabled, events turned off meanwhile, enabled again: every enabled table starts again;
    // events, off, counts as never on.
    let (status, _) = h.call(Method::POST, "/v1/workspaces/42/sync/disable", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        h.call(Method::PUT, "/v1/workspaces/42/sync/tables/events", Some(json!({"enabled": false}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h.call(Method::POST, "/v1/workspaces/42/sync/enable", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revision = body["revision"].as_u64().expect("revision");
    let baselines = h.baselines().await;
    assert_eq!(baselines[&Table::Events], None);
    for t in Table::ALL.iter().filter(|t| **t != Table::Events) {
        assert_eq!(baselines[t], at(revision, 104), "{t}");
    }
    let (_, body) = h.call(Method::PUT, "/v1/workspaces/42/sync/tables/events", Some(json!({"enabled": true}))).await;
    assert_eq!(h.baselines().await[&Table::Events], at(revision + 1, 105), "{body}");
}

#[tokio::test]
async fn a_cut_that_cannot_be_written_changes_nothing() {
    let h = Harness::new();
    h.cutter.broken.store(true, Ordering::SeqCst);
    let (status, body) = h.call(Method::POST, "/v1/workspaces/42/sync", Some(spec(json!({})))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("initial sync could not be started")), "{body}");
    assert!(h.store.get(WorkspaceId::new(42).expect("id")).await.expect("store").is_none(), "nothing stored");

    h.cutter.broken.store(false, Ordering::SeqCst);
    let (status, _) = h.call(Method::POST, "/v1/workspaces/42/sync", Some(spec(json!({"people": false})))).await;
    assert_eq!(status, StatusCode::CREATED);
    h.cutter.broken.store(true, Ordering::SeqCst);
    let (status, _) = h.call(Method::PUT, "/v1/workspaces/42/sync/tables/people", Some(json!({"enabled": true}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let cfg = h.store.get(WorkspaceId::new(42).expect("id")).await.expect("store").expect("sync");
    assert!(!cfg.is_enabled(Table::People), "the table stays off");
    assert_eq!(cfg.revision, 1);
}
