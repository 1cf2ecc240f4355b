//! What ingest's integration tests share.
#![allow(dead_code, unreachable_pub)]

use dwsync_config::HttpConfig;
use dwsync_ingest::Config;
use dwsync_tests::unique;

/// An ingest on the test broker with a group and an instance of its own and its HTTP endpoints on
/// a free port, reading `tables` under `prefix` and writing `handoff` and `dead_letters`.
pub fn config(prefix: &str, tables: &[&str], handoff: &str, dead_letters: &str) -> Config {
    let mut cfg = Config { http: HttpConfig::localhost(0), ..Config::default() };
    cfg.kafka.bootstrap_servers = dwsync_tests::kafka_bootstrap();
    cfg.ingest.group_id = unique("ingest");
    cfg.ingest.instance_id = unique("instance");
    cfg.ingest.topic_prefix = prefix.to_owned();
    cfg.ingest.tables = tables.iter().map(|t| (*t).to_owned()).collect();
    cfg.ingest.handoff_topic = handoff.to_owned();
    cfg.ingest.dead_letter_topic = dead_letters.to_owned();
    cfg
}

/// The first `n` dead letters of `topic` (read from its start, `read_committed`), each as its
/// headers by name (values as text).
pub async fn dead_letters(topic: &str, n: usize) -> Vec<std::collections::BTreeMap<String, String>> {
    use rdkafka::Message as _;
    use rdkafka::consumer::{Consumer as _, StreamConsumer};
    use rdkafka::message::Headers as _;

    let reader: StreamConsumer = dwsync_tests::kafka_config()
        .set("group.id", unique("dlq-check"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    reader.subscribe(&[topic]).unwrap();
    let mut letters = Vec::with_capacity(n);
    while letters.len() < n {
        let wait = std::time::Duration::from_secs(30);
        let msg = tokio::time::timeout(wait, reader.recv()).await.expect("dead letters").unwrap();
        let headers = msg.headers().map(|h| {
            h.iter()
                .map(|h| {
                    (h.key.to_owned(), h.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default())
                })
                .collect()
        });
        letters.push(headers.unwrap_or_default());
    }
    letters
}
