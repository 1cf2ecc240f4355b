//! Rows 1 and 2 in one loop: the pre-loaded records consumed with ingest's consumer settings and
//! decoded, buffered and encoded as Parquet on the consuming thread — what a single-threaded
//! ingest loop could do at best, without transactions, handoff or S3.
//!
//! A consumer slower than the fetch fills librdkafka's fetch queue, and a full queue postpones the
//! next fetch by `fetch.queue.backoff.ms`: 10 ms here as in ingest (`--consumer-prop
//! fetch.queue.backoff.ms=1000` shows librdkafka's default).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use dwsync_contract::{Encoding, Table};
use rdkafka::Message as _;
use rdkafka::consumer::Consumer as _;
use rdkafka::message::Headers as _;

use crate::ceiling;
use crate::encode_ceiling::{Encoded, Encoder};
use crate::preload::Loaded;
use crate::scenario::{ModeText as _, Scenario};

/// Longest pause without a message before the read is given up.
const STALL: Duration = Duration::from_secs(30);

/// Consumes, decodes and encodes every pre-loaded record on one thread.
pub(crate) fn run(
    scenario: &Scenario,
    bootstrap: &str,
    loaded: &Loaded,
    group: &str,
    props: &[(String, String)],
) -> anyhow::Result<Encoded> {
    let consumer = ceiling::consumer(bootstrap, group, props)?;
    let tables: HashMap<&str, Table> =
        loaded.topics.iter().map(String::as_str).zip(scenario.tables.iter().copied()).collect();
    let default_encoding = match scenario.encoding.topic_encoding() {
        "protobuf" => Encoding::Protobuf,
        _ => Encoding::Json,
    };
    let topics: Vec<&str> = loaded.topics.iter().map(String::as_str).collect();
    let started = Instant::now();
    consumer.subscribe(&topics)?;
    let mut encoder = Encoder::new();
    let mut last = Instant::now();
    while encoder.records() < loaded.records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                let Some(&table) = tables.get(msg.topic()) else { continue };
                let encoding = msg
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "content-type"))
                    .and_then(|h| std::str::from_utf8(h.value?).ok())
                    .and_then(Encoding::from_content_type)
                    .unwrap_or(default_encoding);
                encoder.add(table, encoding, msg.payload().unwrap_or_default())?;
                last = Instant::now();
            }
            // Kafka errors (a broker restarting) are transient; a read that stops is caught here.
            Some(Err(_)) | None if last.elapsed() > STALL => {
                bail!("read only {} of {} records (nothing for {STALL:?})", encoder.records(), loaded.records)
            }
            Some(Err(_)) | None => {}
        }
    }
    encoder.finish(|| started.elapsed().as_secs_f64())
}
