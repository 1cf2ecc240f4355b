//! The Kafka store against the real broker (`dev/kafka start`): the compacted topic is
//! created, replicas agree, a late replica reads everything from the beginning, the record holds
//! the sealed secret only; and the whole service answers the API over it.

use std::collections::BTreeMap;
use std::time::Duration;

use dwsync_config::{HttpConfig, KafkaConfig, Secret};
use dwsync_contract::Table;
use dwsync_control::model::{Destination, S3Store, SCHEMA_VERSION, Store, SyncConfig, TableState, WorkspaceId};
use dwsync_control::seal::Sealer;
use dwsync_control::store::{ConfigStore, KafkaStore, codec};
use dwsync_control::{ApiConfig, Config, InitialSyncConfig, StoreConfig};
use dwsync_tests::{kafka_bootstrap, kafka_config, unique};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "kafka-test-secret/0123456789abcdef";

fn kafka() -> KafkaConfig {
    KafkaConfig { bootstrap_servers: kafka_bootstrap(), ..KafkaConfig::default() }
}

fn store_config(topic: &str) -> StoreConfig {
    StoreConfig { topic: topic.to_owned(), ..StoreConfig::default() }
}

async fn replica(topic: &str, stop: &CancellationToken) -> KafkaStore {
    let (store, follower) = KafkaStore::connect(&kafka(), &store_config(topic)).await.unwrap_or_else(|e| {
        panic!("cannot reach Kafka at {} ({e}); start it with `dev/kafka start`", kafka_bootstrap())
    });
    drop(tokio::spawn(follower.run(stop.clone())));
    store
}

fn config(sealer: &Sealer, id: i64, bucket: &str) -> SyncConfig {
    let workspace_id = WorkspaceId::new(id).expect("id");
    SyncConfig {
        workspace_id,
        schema_version: SCHEMA_VERSION,
        destination: Destination {
            bucket: bucket.into(),
            prefix: "dw".into(),
            store: Store::S3(S3Store {
                region: "us-east-1".into(),
                endpoint: None,
                force_path_style: false,
                conditional_writes: true,
                access_key_id: "AKIA".into(),
                secret_access_key: sealer.seal(&Secret::new(SECRET), &id.to_string()).expect("seal"),
            }),
        },
        tables: Table::ALL.iter().map(|t| (*t, TableState::new(true, 1))).collect(),
        disabled: false,
        updated_at_ms: 1,
        revision: 1,
    }
}

/// Every record of `topic`, raw: (key, value).
fn raw_records(topic: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let consumer: BaseConsumer = kafka_config().set("group.id", unique("raw")).create().expect("consumer");
    let (_, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)).expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut position = 0;
    while position < high {
        let m = consumer.poll(Duration::from_secs(10)).expect("a record").expect("no error");
        position = m.offset() + 1;
        out.push((m.key().unwrap_or_default().to_vec(), m.payload().map(<[u8]>::to_vec)));
    }
    out
}

#[tokio::test]
async fn replicas_agree_through_the_compacted_topic() {
    let topic = unique("dwsync-sync-config");
    let stop = CancellationToken::new();
    let sealer = Sealer::new(&[3; 32]);
    let a = replica(&topic, &stop).await;
    let b = replica(&topic, &stop).await;

    // The topic was created compacted.
    let admin: AdminClient<DefaultClientContext> = kafka_config().create().expect("admin");
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await
        .expect("describe")
        .remove(0)
        .expect("topic config");
    assert_eq!(described.get("cleanup.policy").and_then(|e| e.value.as_deref()), Some("compact"));

    let id = WorkspaceId::new(42).expect("id");
    assert_eq!(a.get(id).await.expect("get"), None);
    let first = config(&sealer, 42, "bucket-one");
    a.put(first.clone()).await.expect("put");
    assert_eq!(a.get(id).await.expect("read your write"), Some(first.clone()));
    assert_eq!(b.get(id).await.expect("the other replica"), Some(first.clone()), "no wait needed on B");

    let mut second = config(&sealer, 42, "bucket-two");
    second.revision = 2;
    b.put(second.clone()).await.expect("put on B");
    b.put(config(&sealer, 7, "bucket-seven")).await.expect("put 7");
    assert_eq!(a.get(id).await.expect("get"), Some(second.clone()));
    let ids: Vec<_> = a.list().await.expect("list").iter().map(|c| c.workspace_id.get()).collect();
    assert_eq!(ids, [7, 42]);

    a.delete(WorkspaceId::new(7).expect("id")).await.expect("delete");
    assert_eq!(b.get(WorkspaceId::new(7).expect("id")).await.expect("get"), None);

    // A replica started later reads the state from the beginning.
    let late = replica(&topic, &stop).await;
    assert_eq!(late.list().await.expect("list"), vec![second.clone()]);

    // On the topic: key = workspace id, value = SyncConfig protobuf, tombstone on delete, and the
    // secret only sealed.
    let records = raw_records(&topic);
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].0, b"42");
    assert_eq!(records[3], (b"7".to_vec(), None));
    for (_, value) in &records {
        if let Some(value) = value {
            assert!(!value.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "plaintext secret on the topic");
            let cfg = codec::decode(value).expect("a SyncConfig");
            let ws = cfg.workspace_id.to_string();
            assert_eq!(sealer.open(cfg.destination.sealed(), &ws).expect("opens").expose(), SECRET);
        }
    }
    stop.cancel();
}

/// control on `store`, writing cut records on `handoff`, with an admin token and workspace 42's.
fn service_config(store: StoreConfig, handoff: &str) -> Config {
    Config {
        kafka: kafka(),
        http: HttpConfig::localhost(0),
        api: ApiConfig {
            listen: HttpConfig::localhost(0).listen,
            admin_token: Secret::new("admin-t"),
            workspace_tokens: BTreeMap::from([("42".to_owned(), Secret::new("ws42-t"))]),
            allow_insecure_endpoints: true,
            ..ApiConfig::default()
        },
        store,
        initial_sync: InitialSyncConfig { enabled: true, handoff_topic: handoff.to_owned() },
        egress: dwsync_tests::local_egress(),
        ..Config::default()
    }
}

#[tokio::test]
async fn the_service_serves_the_api_over_kafka() {
    dwsync_telemetry::testing::init_once();
    let topic = unique("dwsync-sync-config");
    let handoff = unique("dwsync-handoff");
    dwsync_tests::create_topic(&handoff, 4).await;
    let cfg = service_config(store_config(&topic), &handoff);
    let started = dwsync_control::start(cfg, Some(Sealer::new(&[5; 32]))).await.expect("start (is Kafka running?)");
    let api = format!("http://{}", started.api_addr);
    let health = format!("http://{}", started.service.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(started.service.run_until(async {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();

    assert_eq!(client.get(format!("{health}/readyz")).send().await.expect("readyz").status(), 200);
    let body = json!({"destination": {
        "bucket": "acme-exports", "region": "us-east-1", "endpoint": "http://127.0.0.1:9000",
        "force_path_style": true, "access_key_id": "AK", "secret_access_key": SECRET,
    }});
    let res = client.post(format!("{api}/v1/workspaces/42/sync")).bearer_auth("ws42-t").json(&body).send().await;
    let res = res.expect("POST");
    assert_eq!(res.status(), 201);
    let res = client.get(format!("{api}/v1/workspaces/42/sync")).bearer_auth("ws42-t").send().await.expect("GET");
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("body");
    assert!(!text.contains(SECRET), "{text}");
    let view: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(view["destination"]["secret_access_key_set"], true);
    let res = client.get(format!("{api}/v1/workspaces")).send().await.expect("GET list");
    assert_eq!(res.status(), 401);
    let res = client.get(format!("{api}/v1/workspaces")).bearer_auth("admin-t").send().await.expect("GET list");
    assert_eq!(res.status(), 200);

    // The new sync's initial sync: one cut record on workspace 42's handoff partition (the one
    // ingest's murmur2 partitioner gives its files), its offset stored as every table's cut.
    let stored = replica(&topic, &CancellationToken::new()).await;
    let cfg = stored.get(WorkspaceId::new(42).expect("id")).await.expect("read").expect("stored");
    let partition = dwsync_handoff::handoff_partition(42, 4).expect("partition");
    let baselines: Vec<_> = Table::ALL.iter().map(|t| cfg.tables[t].baseline.expect("a baseline")).collect();
    assert!(baselines.iter().all(|b| *b == baselines[0]), "one cut for all tables: {baselines:?}");
    let baseline = baselines[0];
    assert_eq!((baseline.epoch, baseline.partition), (1, partition));
    let consumer: BaseConsumer = kafka_config().set("group.id", unique("raw")).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&handoff, partition, Offset::Offset(baseline.cut)).expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let record = consumer.poll(Duration::from_secs(10)).expect("the cut record").expect("no error");
    assert_eq!(record.offset(), baseline.cut);
    assert_eq!(record.payload(), None, "a cut record holds no file");
    let header = record.headers().and_then(|h| h.iter().find(|h| h.key == dwsync_handoff::CUT_HEADER));
    assert_eq!(header.and_then(|h| h.value), Some(&b"42:1"[..]));
    let res = client.get(format!("{api}/v1/workspaces/42/status")).bearer_auth("ws42-t").send().await.expect("GET");
    let status: Value = res.json().await.expect("json");
    assert_eq!(status["state"], "initial_sync", "{status}");
    assert_eq!(status["initial_syncs"].as_array().map(Vec::len), Some(15), "{status}");

    stop_tx.send(()).expect("running");
    running.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn tokens_issued_through_the_api_work_on_their_workspace_until_revoked() {
    dwsync_telemetry::testing::init_once();
    let store = store_config(&unique("dwsync-sync-config"));
    let store = StoreConfig { token_topic: unique("dwsync-api-tokens"), ..store };
    let token_topic = store.token_topic.clone();
    let handoff = unique("dwsync-handoff");
    dwsync_tests::create_topic(&handoff, 2).await;
    let cfg = service_config(store, &handoff);
    let started = dwsync_control::start(cfg, Some(Sealer::new(&[5; 32]))).await.expect("start (is Kafka running?)");
    let api = format!("http://{}", started.api_addr);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(started.service.run_until(async {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let tokens_of = |ws: i64| format!("{api}/v1/workspaces/{ws}/tokens");

    // Only the admin issues; the name is checked.
    let res = client.post(tokens_of(77)).bearer_auth("ws42-t").json(&json!({"name": "ci"})).send().await.expect("POST");
    assert_eq!(res.status(), 403);
    let res = client.post(tokens_of(77)).bearer_auth("admin-t").json(&json!({"name": ""})).send().await.expect("POST");
    assert_eq!(res.status(), 400);
    let res =
        client.post(tokens_of(77)).bearer_auth("admin-t").json(&json!({"name": "ci"})).send().await.expect("POST");
    assert_eq!(res.status(), 201);
    let issued: Value = res.json().await.expect("json");
    let token = issued["token"].as_str().expect("the token, once").to_owned();
    let token_id = issued["id"].as_str().expect("an id").to_owned();
    assert!(token.starts_with("dws_") && issued["name"] == "ci", "{issued}");

    // The token works on its workspace (which had no sync yet), and nowhere else.
    let body = json!({"destination": {
        "bucket": "acme-exports", "region": "us-east-1", "endpoint": "http://127.0.0.1:9000",
        "force_path_style": true, "access_key_id": "AK", "secret_access_key": SECRET,
    }});
    let sync77 = format!("{api}/v1/workspaces/77/sync");
    let res = client.post(&sync77).bearer_auth(&token).json(&body).send().await.expect("POST sync");
    assert_eq!(res.status(), 201);
    assert_eq!(client.get(&sync77).bearer_auth(&token).send().await.expect("GET").status(), 200);
    let other = client.get(format!("{api}/v1/workspaces/42/sync")).bearer_auth(&token).send().await.expect("GET");
    assert_eq!(other.status(), 401, "an issued token is valid on its own workspace only");
    assert_eq!(client.get(format!("{api}/v1/workspaces")).bearer_auth(&token).send().await.expect("GET").status(), 401);

    // Listed without the token; stored as its digest only.
    let listed = client.get(tokens_of(77)).bearer_auth("admin-t").send().await.expect("GET tokens");
    assert_eq!(listed.status(), 200);
    let text = listed.text().await.expect("body");
    assert!(!text.contains(&token), "{text}");
    let list: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(list["tokens"][0]["id"], token_id.as_str());
    assert_eq!(list["tokens"][0]["name"], "ci");
    assert!(list["tokens"][0]["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{list}");
    let consumer: BaseConsumer = kafka_config().set("group.id", unique("raw")).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&token_topic, 0, Offset::Beginning).expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let record = consumer.poll(Duration::from_secs(10)).expect("the token record").expect("no error");
    let stored = String::from_utf8_lossy(record.payload().expect("a value")).into_owned();
    assert!(!stored.contains(&token) && stored.contains("sha256"), "{stored}");

    // Revoked: refused from the answer on; a second revocation is 404.
    let revoke = format!("{}/{token_id}", tokens_of(77));
    assert_eq!(client.delete(&revoke).bearer_auth("admin-t").send().await.expect("DELETE").status(), 204);
    assert_eq!(client.get(&sync77).bearer_auth(&token).send().await.expect("GET").status(), 401);
    assert_eq!(client.delete(&revoke).bearer_auth("admin-t").send().await.expect("DELETE").status(), 404);

    stop_tx.send(()).expect("running");
    running.await.expect("join").expect("clean stop");
}
