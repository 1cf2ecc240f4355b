//! Test kit for dwsync's integration tests: where the real Kafka broker and the real S3 server
//! listen, clients for them, and unique names so tests never share a topic, group or bucket.
//!
//! The tests expect the servers to run (`dev/kafka start`, `dev/s3 start`, `dev/gcs start`;
//! `dev/test` does it).
//! They fail — they never skip — when a server is unreachable, so a green run proves they ran.

use std::time::Duration;

pub mod gcs;
pub mod group;
pub mod s3_gateway;
pub mod schedule;
pub mod secure;
pub mod services;
pub mod tls;

use aws_credential_types::Credentials;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

/// Kafka bootstrap servers (`DWSYNC_TEST_KAFKA`, default `127.0.0.1:9092`).
pub fn kafka_bootstrap() -> String {
    std::env::var("DWSYNC_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// S3 endpoint URL (`DWSYNC_TEST_S3_ENDPOINT`, default `http://127.0.0.1:9000`).
pub fn s3_endpoint() -> String {
    std::env::var("DWSYNC_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

/// The egress allow-list of services writing to the test S3 server as a customer's endpoint
/// (loopback, and the hosts of [`s3_endpoint`] and [`gcs::gcs_endpoint`]): customers' endpoints
/// are otherwise public only.
pub fn local_egress_allow() -> Vec<String> {
    let mut allow = vec!["127.0.0.0/8".to_owned(), "::1".to_owned()];
    for endpoint in [s3_endpoint(), gcs::gcs_endpoint()] {
        if let Some(host) = dwsync_s3::egress::endpoint_host(&endpoint)
            && !allow.iter().any(|a| a == host)
            && !host.starts_with("127.")
        {
            allow.push(host.trim_start_matches('[').trim_end_matches(']').to_owned());
        }
    }
    allow
}

/// [`local_egress_allow`] as a config section.
pub fn local_egress() -> dwsync_s3::egress::EgressConfig {
    let allow = local_egress_allow().iter().filter_map(|a| a.parse().ok()).collect();
    dwsync_s3::egress::EgressConfig { allow }
}

/// [`local_egress_allow`] as the TOML `[egress]` section of a service's config file.
pub fn local_egress_toml() -> String {
    let allow: Vec<String> = local_egress_allow().iter().map(|a| format!("{a:?}")).collect();
    format!("[egress]\nallow = [{}]\n", allow.join(", "))
}

/// S3 access key id (`S3_ACCESS_KEY`, default `dwsync-dev`, as `dev/s3` starts the server).
pub fn s3_access_key() -> String {
    std::env::var("S3_ACCESS_KEY").unwrap_or_else(|_| "dwsync-dev".into())
}

/// S3 secret key (`S3_SECRET_KEY`, default `dwsync-dev-secret-key`, as `dev/s3` starts the server).
pub fn s3_secret_key() -> String {
    std::env::var("S3_SECRET_KEY").unwrap_or_else(|_| "dwsync-dev-secret-key".into())
}

/// A name no other test uses: `<prefix>-<uuid>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A librdkafka client config pointing at the test broker.
pub fn kafka_config() -> ClientConfig {
    kafka_config_on(&kafka_bootstrap())
}

/// A librdkafka client config pointing at the broker at `bootstrap` (a test's private one).
pub fn kafka_config_on(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    let _ = c.set("bootstrap.servers", bootstrap);
    c
}

/// A config for reading topics as the services do: from the earliest offset, committed
/// transactions only, in a group of its own.
pub fn read_committed_config() -> ClientConfig {
    let mut c = kafka_config();
    let _ = c
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    c
}

/// Creates a topic with `partitions` partitions (replication 1) and waits until it exists.
pub async fn create_topic(name: &str, partitions: i32) {
    create_topic_on(&kafka_bootstrap(), name, partitions).await;
}

/// [`create_topic`] on the broker at `bootstrap`.
pub async fn create_topic_on(bootstrap: &str, name: &str, partitions: i32) {
    create_topic_with(&kafka_config_on(bootstrap), name, partitions).await;
}

/// [`create_topic`] with a client configured by `config` (a secured broker's address and
/// credentials).
pub async fn create_topic_with(config: &ClientConfig, name: &str, partitions: i32) {
    let bootstrap = config.get("bootstrap.servers").unwrap_or_default().to_owned();
    let admin: AdminClient<DefaultClientContext> = config.create().expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .unwrap_or_else(|e| panic!("cannot reach Kafka at {bootstrap} ({e}); start it with `dev/kafka start`"));
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// An S3 client for the test server, signing with `secret_key` (SigV4, path-style addressing).
pub fn s3_client_with_secret(secret_key: &str) -> aws_sdk_s3::Client {
    let credentials = Credentials::new(s3_access_key(), secret_key, None, None, "dwsync-tests");
    let endpoint = s3_endpoint();
    dwsync_s3::client(
        dwsync_s3::Location { region: "us-east-1", endpoint: Some(&endpoint), force_path_style: true },
        credentials,
    )
}

/// An S3 client for the test server with the right credentials.
pub fn s3_client() -> aws_sdk_s3::Client {
    s3_client_with_secret(&s3_secret_key())
}

/// Creates a fresh bucket and returns its name.
pub async fn create_bucket(client: &aws_sdk_s3::Client) -> String {
    let bucket = unique("dwsync-test");
    let _ = client.create_bucket().bucket(&bucket).send().await.unwrap_or_else(|e| {
        panic!("cannot create a bucket on the S3 server at {} ({e:?}); start it with `dev/s3 start`", s3_endpoint())
    });
    bucket
}
