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
